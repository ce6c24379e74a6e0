"""``python -m benchmarks <suite> [flags]``: see :mod:`benchmarks.run`."""

import sys

from .run import main

sys.exit(main())
