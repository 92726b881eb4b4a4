"""``python -m maestro``: the same as the ``maestro`` command."""

from maestro.cli.main import main

raise SystemExit(main())
