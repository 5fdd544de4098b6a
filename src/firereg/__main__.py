"""``python -m firereg`` runs the command line."""

import sys

from firereg.cli.main import main

sys.exit(main())
