"""``python -m maestro``: the same as the ``maestro`` command."""

from maestro.cli import main

raise SystemExit(main())
