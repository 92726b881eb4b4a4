"""Git repositories for tests: an empty one made with dulwich (no git binary needed), or one the git binary made."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from dulwich.objects import ObjectID


def git_init(path: Path) -> Path:
    """A real, empty git repository at ``path`` (made with dulwich: no git binary needed)."""
    from dulwich.repo import Repo

    path.mkdir(parents=True, exist_ok=True)
    Repo.init(str(path)).close()
    return path


#: A fixed identity for the commits the git binary makes in tests (no user configuration is read: HOME is the repo)
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}


def git_cli(repo: Path, *args: str) -> str:
    """``git args…`` in ``repo`` (the binary), its output stripped; a failure raises."""
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(repo), **IDENTITY})  # fmt: skip
    return out.stdout.strip()


def commit_all(repo: Path, message: str) -> ObjectID:
    """Everything in ``repo`` committed (``git add -A``); the commit."""
    git_cli(repo, "add", "-A")
    git_cli(repo, "commit", "-qm", message)
    return ObjectID(git_cli(repo, "rev-parse", "HEAD").encode())


def committed(path: Path, files: Mapping[str, str]) -> Path:
    """A repository made by the git binary at ``path`` with ``files`` (relative path → text) in one commit."""
    path.mkdir(parents=True, exist_ok=True)
    git_cli(path, "init", "-q")
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    commit_all(path, "one")
    return path
