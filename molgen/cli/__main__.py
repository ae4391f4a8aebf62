"""``python -m molgen.cli``."""

import sys

from molgen.cli import main

sys.exit(main())
