"""``python -m o365lib.evaluation GT.json DETS.json ...``: see :mod:`o365lib.evaluation.cli`."""

import sys

from o365lib.evaluation.cli import main

sys.exit(main())
