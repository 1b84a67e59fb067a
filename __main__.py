"""``python -m fracture_tune``: the ``fracture-tune`` command line."""

import sys

from fracture_tune.search.cli import main

sys.exit(main())
