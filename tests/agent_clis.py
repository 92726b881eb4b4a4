"""Install the real coding-agent CLIs into folders of this checkout, for the contract tests.

    python tests/agent_clis.py        # install what is missing (.ci/run does this)

The code is ``tests/support/agent_clis.py`` (the contract tests call its functions); this script runs it.
It is standard library only, so it runs by path, whatever is on ``sys.path``.
"""

from __future__ import annotations

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().parent / "support" / "agent_clis.py"), run_name="__main__")
