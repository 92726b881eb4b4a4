"""Cleaning up: the worktrees that sessions left (``maestro clean``).

::

    cleaned = clean(store, "s1")   # the session's worktrees and git's admin folders of them
    cleaned = clean_all(store)     # every session's found under the worktrees' root, live ones skipped;
                                   # and git's admin folders of maestro-* worktrees whose folder is gone

A session that ends removes its worktrees itself; a paused or crashed one keeps them, and
a resume makes again any that are missing, so cleaning a paused session loses nothing.
Each session is cleaned holding its lock: a live session (a process holds the lock) is
refused by :func:`clean` (:class:`~maestro.core.errors.SessionLocked`, nothing removed)
and skipped by :func:`clean_all`.  Branches, tags and ``refs/maestro/*`` stay.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

import attrs
from dulwich.repo import Repo

from maestro.core.errors import SessionLocked, StoreError
from maestro.core.records import SESSION_ID
from maestro.git.worktrees import WorktreePool, session_worktrees
from maestro.store.filestore import Lock, Store

__all__ = ["Cleaned", "clean", "clean_all"]

log = logging.getLogger("maestro")


@attrs.frozen
class Cleaned:
    """What was cleaned: the worktrees removed by session, the live sessions skipped (their pid, ``None`` when
    unknown), and the admin folders of ``maestro-*`` worktrees whose folder had gone (``stale``)."""

    removed: Mapping[str, int] = attrs.field(factory=dict)
    live: Mapping[str, int | None] = attrs.field(factory=dict)
    stale: int = 0

    @property
    def nothing(self) -> bool:
        return not self.removed and not self.stale


def clean(store: Store, session_id: str) -> Cleaned:
    """Remove session ``session_id``'s worktrees (folders and git's admin folders).

    Raises :class:`~maestro.core.errors.SessionLocked` when a process holds the session (nothing removed), and
    :class:`~maestro.core.errors.StoreError` when the repository knows no such session.
    """
    known = store.session_dir(session_id).is_dir()  # a bad id is refused here
    if not known and session_id not in session_worktrees(store.repo):
        raise StoreError(f"no session {session_id} in {store.root}")
    n = _clean_one(store, session_id, known)
    return Cleaned(removed={session_id: n} if n else {})


def clean_all(store: Store) -> Cleaned:
    """Remove the worktrees of every session that has some and no live process; then git's admin folders of
    ``maestro-*`` worktrees whose folder has gone (what ``git worktree prune`` would do, for maestro's alone)."""
    removed: dict[str, int] = {}
    live: dict[str, int | None] = {}
    for sid in session_worktrees(store.repo):
        if not SESSION_ID.match(sid):
            log.warning("%s: not a session's folder, left alone", sid)
            continue
        try:
            n = _clean_one(store, sid, store.session_dir(sid).is_dir())
        except SessionLocked as exc:
            live[sid] = exc.pid
            continue
        if n:
            removed[sid] = n
    return Cleaned(removed=removed, live=live, stale=_prune(store, set(live)))


def _clean_one(store: Store, sid: str, known: bool) -> int:
    """Remove one session's worktrees holding its lock (a session the store has lost has no lock to hold)."""
    lock = Lock(store.session_dir(sid) / "lock", sid) if known else None
    try:
        n = len(WorktreePool(store.repo, sid).remove_all())
    finally:
        if lock is not None:
            lock.release()
    if n:
        log.info("session %s: %d worktree(s) removed", sid, n)
    return n


def _prune(store: Store, live: set[str]) -> int:
    """Remove git's admin folders of ``maestro-*`` worktrees whose folder has gone; how many.

    Left alone, as ``git worktree prune`` leaves them: a locked one (``locked`` in it: being made); and
    those of a live session.
    """
    repo = Repo(str(store.repo))
    try:
        common = Path(repo.commondir()).resolve()
    finally:
        repo.close()
    admins = common / "worktrees"
    pruned = 0
    with contextlib.suppress(FileNotFoundError):
        for admin in sorted(admins.iterdir()):
            if not admin.name.startswith("maestro-") or not admin.is_dir() or (admin / "locked").exists():
                continue
            try:
                dotgit = Path((admin / "gitdir").read_text(encoding="utf-8").strip())
            except (OSError, UnicodeDecodeError):
                dotgit = None  # git prunes an admin folder without a readable gitdir too
            if dotgit is not None and dotgit.exists():
                continue
            sid = dotgit.parent.parent.name if dotgit is not None else ""
            if sid in live or (SESSION_ID.match(sid) and store.holder(sid) is not None):
                continue  # a live session's: it may be making or removing that worktree right now
            shutil.rmtree(admin, ignore_errors=True)
            pruned += 1
            log.info("%s: removed (its worktree %s had gone)", admin, dotgit.parent if dotgit else "?")
    with contextlib.suppress(OSError):
        admins.rmdir()  # as git leaves it when the last linked worktree goes
    return pruned
