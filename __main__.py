"""``python -m fracture_tune``: the ``fracture-tune`` command line."""

import sys

from fracture_tune.cli import main

sys.exit(main())
