"""``python -m worldmodels`` runs the command line."""

import sys

from worldmodels.cli import main

if __name__ == "__main__":
    sys.exit(main())
