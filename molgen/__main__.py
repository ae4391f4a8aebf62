"""``python -m molgen`` (also what ``torchrun -m molgen`` runs)."""

import sys

from molgen.cli import main

sys.exit(main())
