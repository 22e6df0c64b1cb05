"""``python -m hinqs`` runs the command line (also how MPI ranks start it via mpi4py.futures)."""

import sys

from hinqs.cli import main

if __name__ == "__main__":
    sys.exit(main())
