"""Where a session's worktrees live: outside the user's working tree, where the repository's own tools do not look.

::

    worktrees_root(repo)                    # $MAESTRO_WORKTREES or ~/.cache/maestro/worktrees, then <name>-<hash>
    worktree_dir(repo, "s1", "integration") # <root>/s1/maestro-s1-integration

Not inside the working tree, where pytest, ruff, tsc and IDE indexers would find them; and
not inside ``.git/`` either, because coding agents refuse to write there (Claude Code
guards every path under a ``.git`` directory, even in ``acceptEdits`` mode).  The root is
per user (``$XDG_CACHE_HOME/maestro/worktrees``, or ``$MAESTRO_WORKTREES`` when set), one
folder per repository named after it and a digest of its git directory's real path, so two
clones never share one; each worktree's folder name is unique in the repository
(``maestro-<session>-<name>``) because git names a worktree's administrative folder
(``.git/worktrees/<name>``) after it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["ENV_ROOT", "worktree_dir", "worktrees_root"]

ENV_ROOT = "MAESTRO_WORKTREES"


def worktrees_root(common_dir: str | os.PathLike[str]) -> Path:
    """The folder holding the worktrees of the repository whose (common) git directory is ``common_dir``."""
    real = Path(common_dir).resolve()
    top = real.parent if real.name == ".git" else real
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:10]
    base = os.environ.get(ENV_ROOT)
    if base:
        root = Path(base)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(cache) / "maestro" / "worktrees"
    return root / f"{top.name or 'repo'}-{digest}"


def worktree_dir(common_dir: str | os.PathLike[str], session: str, name: str) -> Path:
    """The folder of the session's worktree ``name`` (``integration``, ``w1``, …)."""
    return worktrees_root(common_dir) / session / f"maestro-{session}-{name}"
