"""``python -m sketch2anime ...`` is the ``sketch2anime`` command."""

import sys

from .cli import main

sys.exit(main())
