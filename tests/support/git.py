"""Git repositories for tests: an empty one, made with dulwich (no git binary needed)."""

from __future__ import annotations

from pathlib import Path


def git_init(path: Path) -> Path:
    """A real, empty git repository at ``path`` (made with dulwich: no git binary needed)."""
    from dulwich.repo import Repo

    path.mkdir(parents=True, exist_ok=True)
    Repo.init(str(path)).close()
    return path
