"""``python -m hinqs`` runs the command line."""

import sys

from hinqs.cli import main

sys.exit(main())
