"""Who maestro's commits and tags are by: the repository's ``user.name`` and ``user.email``, else maestro itself.

Reading git's configuration stack costs about a millisecond (three files parsed); a session makes a few commits
per task, so the answer is kept until one of the files it came from changes (their sizes and modification times).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from dulwich.repo import Repo

__all__ = ["DEFAULT_IDENTITY", "config_signature", "identity"]

DEFAULT_IDENTITY = b"maestro <maestro@localhost>"

_ENV = ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM")
_cache: dict[str, tuple[tuple[object, ...], bytes]] = {}
_cache_lock = threading.Lock()


def config_signature(controldir: Path, commondir: Path, *more: Path) -> tuple[object, ...]:
    """What git's configuration stack of a repository depends on: the environment variables that move its files, and
    each file's size, modification time and inode (None where there is none): the repository's ``config`` (and a
    worktree's ``config.worktree``), the user's and the system's.  ``more``: other files to watch alike."""
    env = tuple(os.environ.get(k) for k in _ENV)
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    paths = [
        controldir / "config",
        controldir / "config.worktree",
        commondir / "config",
        Path(os.path.expanduser("~/.gitconfig")),
        Path(xdg) / "git" / "config",
        Path("/etc/gitconfig"),
        *(Path(p) for p in (os.environ.get("GIT_CONFIG_GLOBAL"), os.environ.get("GIT_CONFIG_SYSTEM")) if p),
        *more,
    ]
    stats: list[object] = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            stats.append(None)
        else:
            stats.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return (env, tuple(stats))


def _signature(repo: Repo) -> tuple[object, ...]:
    return config_signature(Path(repo.controldir()), Path(repo.commondir()))


def identity(repo: Repo) -> bytes:
    """``Name <email>`` from the repository's configuration (its own, the user's, the system's), or the default."""
    key = os.path.abspath(repo.controldir())
    sig = _signature(repo)
    with _cache_lock:
        known = _cache.get(key)
    if known is not None and known[0] == sig:
        return known[1]
    config = repo.get_config_stack()
    try:
        name = config.get((b"user",), b"name")
        email = config.get((b"user",), b"email")
    except KeyError:
        who = DEFAULT_IDENTITY
    else:
        who = bytes(name + b" <" + email + b">")
    with _cache_lock:
        _cache[key] = (sig, who)
    return who
