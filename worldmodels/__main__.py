"""``python -m worldmodels`` runs the command line."""

import sys

from worldmodels.cli import main

sys.exit(main())
