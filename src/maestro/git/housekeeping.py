"""Git housekeeping around a session: the user's uncommitted changes, deleted files, the lock files a killed run
left, and waiting out the locks a live git holds.

Lock files (``<file>.lock``, made exclusively, renamed over ``<file>``) are how git and dulwich write a ref, HEAD,
an index, ``packed-refs`` (dulwich also writes each loose object through ``objects/xx/<id>.lock``; git writes
``objects/xx/tmp_obj_*`` instead).  A killed writer leaves its lock, and every later writer of that file fails
(dulwich: ``FileLocked``) until someone removes it.  :func:`stale_locks` sorts the lock files a resume may meet:

* the session's own (its branch, tags, ``refs/maestro/<session>/``; its worktrees' admin folders
  ``worktrees/maestro-<session>-*/``): nothing but a run of the session writes them, so with the session's lock
  free (the run is dead; the resume holds it) they are the dead run's: removable.  Its worktrees' locks must also
  be older than ``min_age_s`` (a git an agent started there may still be running), no matter when the log's last
  event was: a lock a resume that failed left behind is older than the events that resume wrote, and must still go;
* dulwich's loose-object locks (``objects/xx/<id>.lock``): removable when made while the dead run ran (not before
  its last event, less a second) and older than ``min_age_s``; an older one is another process's: blocking;
* ``packed-refs.lock`` (dulwich takes it to delete a packed ref, git to pack refs): another process's, blocking
  once older than ``min_age_s`` (a younger one is a live git's, there for milliseconds: left alone);
* with ``with_user_locks``: the user's ``HEAD.lock``, ``index.lock`` and current branch's lock, the same way.  A
  resume writes none of them (its session works in worktrees of its own), so it asks without; ``land``, which
  writes all three, asks with.

:func:`clear_stale_locks` removes the removable ones (waiting, once, for those too young to tell) and raises a
one-line :class:`~maestro.CheckpointError` for a blocking one.  :func:`with_index_retry` runs an operation again,
with a growing pause, while a lock it needs is held by a live git (an IDE's ``git status``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple, TypeVar

from dulwich import porcelain
from dulwich.file import FileLocked

from maestro.core.errors import CheckpointError, StoreError
from maestro.core.records import SESSION_ID
from maestro.git.repostate import GitDirs, git_dirs
from maestro.store.filestore import Store

__all__ = [
    "StaleLocks",
    "clear_stale_index_locks",
    "clear_stale_locks",
    "deleted_paths",
    "dirty_paths",
    "index_locks",
    "locked_path",
    "session_ref_locks",
    "stale_locks",
    "with_index_retry",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


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


def _checked(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):  # it goes into glob patterns
        raise CheckpointError(f"bad session id {session_id!r} (letters, digits, '.', '_', '-')")
    return session_id


def _admin_dirs(common: Path, session_id: str) -> list[Path]:
    """The admin folders of the session's worktrees: ``<common>/worktrees/maestro-<session>-<name>``, ``<name>``
    ``integration`` or ``w<k>`` (exactly: session ``s`` must not take session ``s-1``'s)."""
    own = re.compile(rf"maestro-{re.escape(_checked(session_id))}-(?:integration|w[0-9]+)\Z")
    return [d for d in (common / "worktrees").glob(f"maestro-{session_id}-*") if own.match(d.name) and d.is_dir()]


def index_locks(repo: Path, session_id: str) -> list[Path]:
    """Where a run of the session writes a git index lock: its worktrees' (``<common>/worktrees/maestro-<session>-*``;
    ``.git`` may be a gitdir file)."""
    return sorted(d / "index.lock" for d in _admin_dirs(git_dirs(repo).common_dir, session_id))


def session_ref_locks(repo: Path, session_id: str) -> list[Path]:
    """The lock files of the session's own refs (its branch, tags and ``refs/maestro/<session>/``) and its worktrees'
    HEADs: nothing but a run of the session writes them, and a resume holds the session's lock."""
    common = git_dirs(repo).common_dir
    sid = _checked(session_id)
    found = _own_ref_locks(common, sid)
    found.extend(p for d in _admin_dirs(common, sid) if (p := d / "HEAD.lock").is_file())
    return sorted(found)


def _own_ref_locks(common: Path, session_id: str) -> list[Path]:
    """The lock files of the session's branch, its tags and its refs under ``refs/maestro/<session>/``."""
    found = [common / "refs" / "heads" / "maestro" / f"{session_id}.lock"]
    for folder in (common / "refs" / "tags" / "maestro" / session_id, common / "refs" / "maestro" / session_id):
        found.extend(folder.rglob("*.lock"))
    return [p for p in found if p.is_file()]


def _worktree_locks(common: Path, session_id: str) -> list[Path]:
    """Every lock file in the admin folders of the session's worktrees (``HEAD.lock``, ``index.lock`` …)."""
    return [p for d in _admin_dirs(common, session_id) for p in d.glob("*.lock") if p.is_file()]


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


# -- the locks a killed run left ------------------------------------------------------------------
class StaleLocks(NamedTuple):
    """Lock files a resume may meet: ``removable`` (the dead run's), ``blocking`` (another process's, or not
    provably the run's: the resume must stop and say so)."""

    removable: list[Path]
    blocking: list[Path]


_OBJECT_LOCK = re.compile(r"[0-9a-f]{38}\.lock\Z")
_BLOCKING = "a lock file left by another git process; remove it if no git command is running"


def stale_locks(
    repo: str | os.PathLike[str],
    session_id: str,
    last_event_ts: str | None,
    *,
    min_age_s: float = 2.0,
    with_user_locks: bool = False,
    now: float | None = None,
) -> StaleLocks:
    """Sort the lock files a resume of ``session_id`` may meet (see the module docstring).

    ``last_event_ts`` is the session's last event's time (``SessionState.updated_at``).  The session's lock (the
    store's ``sessions/<session>/lock``) counts as free when nobody, or this process, holds it; held by another
    live process, the session's own locks are that process's: blocking.  A lock younger than ``min_age_s`` that
    could be a live process's is in neither list (:func:`clear_stale_locks` waits for it).
    """
    when = time.time() if now is None else now
    survey = _survey(repo, session_id, last_event_ts, min_age_s=min_age_s, with_user_locks=with_user_locks, now=when)
    return StaleLocks(survey[0], survey[1])


def clear_stale_locks(
    repo: str | os.PathLike[str],
    session_id: str,
    last_event_ts: str | None,
    *,
    min_age_s: float = 2.0,
    with_user_locks: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Remove the lock files the session's dead run left; the paths removed.

    A blocking lock raises :class:`CheckpointError` (``<path>: a lock file left by another git process; remove it
    if no git command is running``) before anything is removed.  A lock too young to tell is waited for, once, until
    it is ``min_age_s`` old; one still there then (or made again) is a live process's, and raises too.
    """
    removed: list[Path] = []
    for round_ in range(2):
        now = time.time()
        removable, blocking, young = _survey(
            repo, session_id, last_event_ts, min_age_s=min_age_s, with_user_locks=with_user_locks, now=now
        )
        if blocking:
            raise CheckpointError(f"{blocking[0]}: {_BLOCKING}")
        for lock in removable:
            log.warning("%s: removing the lock file the stopped run left", lock)
            try:
                lock.unlink(missing_ok=True)
            except OSError as exc:
                raise CheckpointError(f"{lock}: cannot remove the stopped run's lock file: {exc.strerror}") from exc
        removed.extend(removable)
        if round_ == 1:  # made since the wait: a live process's. A loose object's is another session's: no matter
            young = [p for p in young if not _OBJECT_LOCK.match(p.name)]
        if not young:
            return removed
        if round_ == 0:
            newest = max(_mtime(p) for p in young)
            sleep(max(0.0, newest + min_age_s - now) + 0.05)
    raise CheckpointError(f"{young[0]}: held by a running git process (an agent's, left running?); stop it and resume")


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _survey(
    repo: str | os.PathLike[str],
    session_id: str,
    last_event_ts: str | None,
    *,
    min_age_s: float,
    with_user_locks: bool,
    now: float,
) -> tuple[list[Path], list[Path], list[Path]]:
    """The locks sorted: removable, blocking, and young (maybe a live process's: wait and look again)."""
    sid = _checked(session_id)
    dirs = git_dirs(repo)
    common = dirs.common_dir
    held = _held_by_another(dirs, sid)
    since = _since(last_event_ts)
    removable: list[Path] = []
    blocking: list[Path] = []
    young: list[Path] = []
    seen: set[Path] = set()

    def age(p: Path) -> float | None:
        try:
            return now - p.lstat().st_mtime
        except OSError:
            return None  # gone meanwhile

    for lock in _own_ref_locks(common, sid):
        seen.add(lock)
        (blocking if held else removable).append(lock)
    for lock in _worktree_locks(common, sid):
        seen.add(lock)
        a = age(lock)
        if a is None:
            continue
        (blocking if held else young if a < min_age_s else removable).append(lock)
    for lock in common.glob("objects/[0-9a-f][0-9a-f]/*.lock"):
        a = age(lock)
        if a is None or not _OBJECT_LOCK.match(lock.name):
            continue
        if a < min_age_s:
            young.append(lock)
        elif not held and since is not None and now - a >= since:
            removable.append(lock)
        else:
            blocking.append(lock)
    for lock in _shared_locks(dirs, with_user_locks):
        a = age(lock)
        if lock not in seen and a is not None and a >= min_age_s:
            blocking.append(lock)
    return sorted(removable), sorted(blocking), sorted(young)


def _shared_locks(dirs: GitDirs, with_user_locks: bool) -> list[Path]:
    """``packed-refs.lock``; with ``with_user_locks`` the user's ``HEAD.lock``, ``index.lock`` and the lock of the
    branch HEAD names."""
    out = [dirs.common_dir / "packed-refs.lock"]
    if with_user_locks:
        out += [dirs.git_dir / "HEAD.lock", dirs.git_dir / "index.lock"]
        try:
            head = (dirs.git_dir / "HEAD").read_bytes()
        except OSError:
            head = b""
        if head.startswith(b"ref: refs/"):
            out.append(dirs.common_dir / (os.fsdecode(head[5:].strip()) + ".lock"))
    return [p for p in out if os.path.lexists(p)]


def _held_by_another(dirs: GitDirs, session_id: str) -> bool:
    """Whether a live process other than this one holds the session's lock."""
    try:
        holder = Store(dirs.top).holder(session_id)
    except StoreError:
        return False
    return holder is not None and holder != os.getpid()


def _since(last_event_ts: str | None) -> float | None:
    """From when on a lock may be the dead run's: its last event, less a second (another thread may have been
    writing while the event was)."""
    if not last_event_ts:
        return None
    try:
        return _dt.datetime.fromisoformat(last_event_ts).timestamp() - 1.0
    except ValueError:
        return None


# -- a lock a live git holds -----------------------------------------------------------------------
_LOCK_EXISTS = re.compile(r"(.+\.lock) exists: another git process")


def locked_path(exc: BaseException) -> str | None:
    """The lock file ``exc`` says another process holds, or None: dulwich's ``FileLocked``, a ``FileExistsError`` on
    a ``.lock``, or maestro's ``<path>.lock exists: another git process …``."""
    if isinstance(exc, FileLocked):
        return os.fsdecode(exc.lockfilename)
    if isinstance(exc, FileExistsError) and exc.filename is not None:
        name = os.fsdecode(exc.filename)
        return name if name.endswith(".lock") else None
    if isinstance(exc, CheckpointError):
        m = _LOCK_EXISTS.match(str(exc))
        return m.group(1) if m else None
    return None


def with_index_retry(
    fn: Callable[[], T],
    *,
    attempts: int = 10,
    backoff: float = 0.05,
    max_backoff: float = 1.0,
    sleep: Callable[[float], None] | None = None,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """``fn()``, run again while it fails on a lock another git holds (see :func:`locked_path`), with pauses of
    ``backoff`` seconds doubling up to ``max_backoff``, ``attempts`` tries in all (the defaults wait 5.5 s at most).

    ``fn`` must write nothing before it meets the lock, or ``before_retry`` must undo what it did (a
    :class:`~maestro.git.staging.Staging` whose index write failed: ``forget()``, so that it reads the index on
    disk again).  Any other error goes through at once; the lock still held after the last try raises
    :class:`CheckpointError` naming it.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    delay, waited = backoff, 0.0
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (FileLocked, FileExistsError, CheckpointError) as exc:
            lock = locked_path(exc)
            if lock is None:
                raise
            if attempt == attempts:
                raise CheckpointError(
                    f"{lock}: held by another git process through {attempts} tries ({waited:.1f} s); "
                    "try again once it is done (or remove it if no git command is running)"
                ) from exc
            log.info("%s: held by another git process; trying again in %.2f s", lock, delay)
            (sleep or time.sleep)(delay)  # ``time.sleep`` looked up now: a test may replace it
            waited += delay
            delay = min(delay * 2, max_backoff)
            if before_retry is not None:
                before_retry()
    raise AssertionError("unreachable: the last attempt returns or raises")
