"""``python -m divergences``: the same as the ``divergences`` command."""

from .cli import main

raise SystemExit(main())
