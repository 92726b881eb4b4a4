"""Git housekeeping around a session: the user's uncommitted changes, deleted files, and stale index locks."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from dulwich import porcelain

__all__ = ["clear_stale_index_locks", "deleted_paths", "dirty_paths", "index_locks", "session_ref_locks"]

log = logging.getLogger(__name__)


def _text(p: bytes | str) -> str:
    return p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)


def dirty_paths(repo: Path) -> list[str]:
    """Uncommitted changes in ``repo`` (staged, unstaged, untracked; maestro's own ``.flow/`` aside)."""
    st = porcelain.status(str(repo), untracked_files="normal")
    paths = [*st.staged["add"], *st.staged["delete"], *st.staged["modify"], *st.unstaged, *st.untracked]
    out = sorted({_text(p) for p in paths})
    return [p for p in out if not (p == ".flow/" or p.startswith(".flow/"))]


def deleted_paths(workdir: Path) -> list[str]:
    """Tracked files of ``workdir`` that are gone from the disk (not staged), sorted."""
    status = porcelain.status(str(workdir), untracked_files="no")
    changed = [_text(p) for p in status.unstaged]
    return sorted(p for p in changed if not (workdir / p).exists() and not os.path.islink(workdir / p))


def index_locks(repo: Path, session_id: str) -> list[Path]:
    """Where a run of the session writes a git index lock: its worktrees' (``.git/worktrees/maestro-<session>-*``)."""
    admin = repo / ".git" / "worktrees"
    return sorted(d / "index.lock" for d in admin.glob(f"maestro-{session_id}-*") if d.is_dir())


def session_ref_locks(repo: Path, session_id: str) -> list[Path]:
    """The lock files of the session's own refs (its branch, tags and ``refs/maestro/<session>/``) and its worktrees'
    HEADs: nothing but a run of the session writes them, and a resume holds the session's lock."""
    git_dir = repo / ".git"
    found = [git_dir / "refs" / "heads" / "maestro" / f"{session_id}.lock"]
    for folder in (git_dir / "refs" / "tags" / "maestro" / session_id, git_dir / "refs" / "maestro" / session_id):
        found.extend(folder.rglob("*.lock"))
    found.extend(d / "HEAD.lock" for d in (git_dir / "worktrees").glob(f"maestro-{session_id}-*"))
    return sorted(p for p in found if p.is_file())


def clear_stale_index_locks(locks: Iterable[Path], last_event_ts: str | None, *, min_age_s: float = 2.0) -> None:
    """Remove a lock file left by a dead run: made after its last event, and older than a live git's (``min_age_s``;
    0 for the session's own refs, which no other process writes)."""
    try:
        since = _dt.datetime.fromisoformat(last_event_ts).timestamp() - 1.0 if last_event_ts else None
    except ValueError:
        since = None
    for lock in locks:
        try:
            st = lock.stat()
        except OSError:
            continue
        if since is not None and st.st_mtime >= since and time.time() - st.st_mtime >= min_age_s:
            log.warning("%s: removing the lock the stopped run left behind", lock)
            lock.unlink(missing_ok=True)
