"""Files: where a run's files live (layout), one reader and one writer per format (files),
atomic writes, the Hamiltonian folder and the determinant encodings. Imports nothing of
hinqs but :mod:`hinqs.errors`; every other package reads and writes through it."""
