"""The loop's steps as plain functions over typed settings and paths.

One module per step; each ``hinqs`` command only parses its options and calls one of
these, and :mod:`hinqs.loop.driver` calls them in-process to run whole loops. They read and
write the files named by :mod:`hinqs.io.layout` through :mod:`hinqs.io.files`.

- :func:`hinqs.steps.prepare.prepare`              integrals + references (Hamiltonian folder)
- :func:`hinqs.steps.nqs.init_model`               the initial NQS checkpoint
- :func:`hinqs.steps.nqs.sample`                   samples.npz (+ statistics)
- :func:`hinqs.steps.subspace.build_subspace`      subspace.npz: previous + samples + HF (+ expansion, cap)
- :func:`hinqs.steps.diagonalize.diagonalize`      sqd/result.json + sqd/state.npz
- :func:`hinqs.steps.check.check`                  status.json (stop or go on)
- :func:`hinqs.steps.nqs.train`                    the next checkpoint (+ history)
- :func:`hinqs.steps.summarize.summarize`          summary.json, energies.csv, convergence.png

Importing this package imports nothing heavy; each step module imports what it needs.
"""
