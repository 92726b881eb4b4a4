"""Landing a session: its branch brought into the user's current branch, and the user's checkout moved there.

::

    landed = land(store, "s1")               # fast-forward when possible, else a merge commit
    landed.how, landed.commit, landed.files_changed
    land(store, "s1", force=True)            # a session that did not complete: whatever its branch holds

The only time maestro writes the user's checkout, and only when asked (``maestro land``).
It holds the session's lock (a live session is refused) and refuses, before anything is
written, a tree with uncommitted changes (maestro's ``.flow/`` aside), a detached HEAD, a
session that did not complete (unless ``force``), a session without a branch, and a merge
that conflicts (the conflicting paths named).  The current branch is fast-forwarded when
its commit is an ancestor of the session's head; otherwise a merge commit is made without
a working tree (:mod:`maestro.git.merging`, three-way) and the branch moves to it by
compare-and-swap.  The index and the working tree then follow, writing only the files
that differ (:class:`~maestro.git.staging.Staging`, as a rollback does); ignored files in
the way are found before the branch moves.  A session whose head the branch already
holds is "already landed": nothing is written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs
from dulwich.diff_tree import TreeChange, tree_changes
from dulwich.graph import can_fast_forward, find_merge_base
from dulwich.objects import Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError, StoreError
from maestro.core.seams import Clock, SystemClock
from maestro.core.text import first_line
from maestro.git.housekeeping import dirty_paths, locked_path, stale_locks, with_index_retry
from maestro.git.identity import identity
from maestro.git.merging import commit_merge, merge_commits
from maestro.git.repostate import refuse_in_progress
from maestro.git.staging import Staging
from maestro.model.state import rebuild
from maestro.store.filestore import Lock, Store

__all__ = ["Landing", "land"]

log = logging.getLogger("maestro")

_NAMED = 3  # dirty or conflicting paths a message names; the rest are counted


@attrs.frozen
class Landing:
    """What :func:`land` did: ``how`` is ``fast-forward``, ``merge`` or ``already landed``; ``branch`` the user's
    branch (short name), ``commit`` where it is now, ``files_changed`` the files the checkout changed by."""

    session: str
    branch: str
    how: str
    commit: str
    files_changed: int

    @property
    def fast_forward(self) -> bool:
        return self.how == "fast-forward"


def land(store: Store, session_id: str, *, force: bool = False, clock: Clock | None = None) -> Landing:
    """Bring branch ``maestro/<session_id>`` into the user's current branch, and the checkout with it.

    ``force`` lands a session that did not complete (failed, aborted, paused or stopped): whatever its branch holds.
    Raises :class:`~maestro.core.errors.SessionLocked` when a process holds the session, and
    :class:`~maestro.core.errors.CheckpointError` for every other refusal; nothing is written then.
    """
    if not store.exists(session_id):
        raise StoreError(f"no session {session_id} in {store.root}")
    lock = Lock(store.session_dir(session_id) / "lock", session_id)  # no run of the session moves its branch meanwhile
    try:
        repo = Repo(str(store.repo))
        try:
            return _Lander(store, repo, session_id, clock or SystemClock()).land(force=force)
        finally:
            repo.close()
    finally:
        lock.release()


class _Lander:
    def __init__(self, store: Store, repo: Repo, sid: str, clock: Clock) -> None:
        self.store, self.repo, self.sid, self.clock = store, repo, sid, clock
        self.session_branch = Ref(f"refs/heads/maestro/{sid}".encode())
        self.request = ""

    def land(self, *, force: bool) -> Landing:
        sid, repo = self.sid, self.repo
        try:
            theirs = repo.refs[self.session_branch]
        except KeyError:
            raise CheckpointError(f"session {sid} has no branch maestro/{sid} in {self.store.repo}") from None
        state = rebuild(self.store.read_events(sid), where=str(self.store.events_path(sid)))
        self.request = state.request
        if state.state != "completed" and not force:
            ended = state.state in ("failed", "aborted", "paused")
            how = f"is {state.state}" if ended else f"stopped in {state.state}"
            raise CheckpointError(f"session {sid} {how}, not completed: `maestro land {sid} --force` lands what "
                                  f"branch maestro/{sid} holds")  # fmt: skip
        refuse_in_progress(self.store.repo)  # a merge or rebase of the user's half done: theirs to finish first
        blocking = stale_locks(self.store.repo, sid, state.updated_at, with_user_locks=True).blocking
        if blocking:
            raise CheckpointError(f"{blocking[0]}: a lock file left by another git process; remove it if no git "
                                  "command is running")  # fmt: skip
        head = repo.refs.read_ref(Ref(b"HEAD")) or b""
        if not head.startswith(b"ref: refs/heads/"):
            raise CheckpointError(f"{self.store.repo}: HEAD is detached: check out the branch to land "
                                  f"maestro/{sid} into")  # fmt: skip
        branch = Ref(head[len(b"ref: ") :].strip())
        name = branch.decode("utf-8", "replace").removeprefix("refs/heads/")
        try:
            ours: ObjectID | None = repo.refs[branch]
        except KeyError:
            ours = None  # an unborn branch: landing makes it
        if ours is not None and (ours == theirs or can_fast_forward(repo, theirs, ours)):
            log.info("session %s: already landed in %s", sid, name)
            return Landing(sid, name, "already landed", ours.decode(), 0)
        dirty = dirty_paths(self.store.repo)
        if dirty:
            raise CheckpointError(f"{self.store.repo}: uncommitted changes ({_named(dirty)}): commit or stash them "
                                  f"before landing maestro/{sid}")  # fmt: skip
        if ours is None or can_fast_forward(repo, ours, theirs):
            return self._move(branch, name, ours, theirs, self._commit(theirs).tree, merge=False)
        bases = find_merge_base(repo, [ours, theirs])
        if not bases:
            raise CheckpointError(f"maestro/{sid} and {name} have no commit in common: nothing to merge from")
        result = merge_commits(repo, bases[0], ours, theirs)
        if result.tree is None:
            paths = [c.path for c in result.conflicts]
            raise CheckpointError(f"landing maestro/{sid} into {name} conflicts in {_named(paths)}: merge it with "
                                  f"git (git merge maestro/{sid}) to resolve them")  # fmt: skip
        return self._move(branch, name, ours, theirs, result.tree, merge=True)

    def _move(
        self, branch: Ref, name: str, ours: ObjectID | None, theirs: ObjectID, want: ObjectID, *, merge: bool
    ) -> Landing:
        """Check the checkout can follow, move the branch (compare-and-swap), then write the files that differ."""
        repo = self.repo
        lock = Path(repo.index_path() + ".lock")

        def unlocked() -> None:
            if lock.exists():
                raise CheckpointError(f"{lock} exists: another git process is running (or one crashed; remove the "
                                      "file)")  # fmt: skip

        with_index_retry(unlocked)  # an IDE's `git status` holds it a moment: waited for, a few seconds at most
        staging = Staging(repo)
        staging.load(repo)
        scan = staging.scan()
        tree = staging.apply(scan, write_index=False)
        have = self._commit(ours).tree if ours is not None else None
        if tree != staging.tree or (have is not None and tree != have):  # changed since dirty_paths looked
            raise CheckpointError(f"{self.store.repo}: the checkout changed while landing: commit or stash the "
                                  f"changes, then land again")  # fmt: skip
        changes = list(tree_changes(repo.object_store, have, want))
        staging.check_obstacles(changes)  # before anything is written
        self._check_overwrites(changes)
        who = identity(self.repo)
        when = int(self.clock.now().timestamp())
        if merge:
            assert ours is not None
            message = f"Merge maestro/{self.sid}: {first_line(self.request) or 'session ' + self.sid}\n"
            commit = commit_merge(repo, want, [ours, theirs], message, ref=branch, expected=ours, author=who,
                                  when=when)  # fmt: skip
            how = "merge"
        else:
            reflog = f"maestro land {self.sid}: fast-forward".encode()
            moved = (
                repo.refs.add_if_new(branch, theirs, committer=who, timestamp=when, message=reflog)
                if ours is None
                else repo.refs.set_if_equals(branch, ours, theirs, committer=who, timestamp=when, message=reflog)
            )
            if not moved:
                raise CheckpointError(f"{branch.decode()} moved while landing (expected {_hex(ours)})")
            commit, how = theirs, "fast-forward"
        staging.stage(scan, tree)  # the stat data the scan refreshed (the content is the branch's)
        staging.write_changes(changes)
        staging.tree = want
        try:
            with_index_retry(staging.write_index)  # a `git status` that began meanwhile holds the lock
        except CheckpointError as exc:
            held = locked_path(exc.__cause__) if exc.__cause__ is not None else None
            why = f"{held}: another git process held it through every try" if held else str(exc)
            raise CheckpointError(f"{why}; {name} is at {commit.decode()[:12]} and its files are written, but the "
                                  "index still lists the old ones: `git reset -q` refreshes it once no other git "
                                  "runs") from exc  # fmt: skip
        log.info("session %s: %s %s to %s (%d files)", self.sid, how, name, commit.decode()[:12], len(changes))
        return Landing(self.sid, name, how, commit.decode(), len(changes))

    def _check_overwrites(self, changes: list[TreeChange]) -> None:
        """Refuse a file the branch adds where an ignored file of the user's is: writing it would lose theirs."""
        top = os.fsencode(self.repo.path)
        deleting = {ch.old.path for ch in changes if ch.type == "delete" and ch.old is not None}
        for ch in changes:
            path = ch.new.path if ch.type == "add" and ch.new is not None else None
            if path and path not in deleting and os.path.lexists(top + b"/" + path):
                full = os.fsdecode(top + b"/" + path)
                if not os.path.isdir(full) or os.path.islink(full):  # a folder: check_obstacles looked inside
                    raise CheckpointError(f"{full}: an ignored file is in the way of maestro/{self.sid}'s: move it, "
                                          "then land again")  # fmt: skip

    def _commit(self, sha: ObjectID) -> Commit:
        obj = self.repo.object_store[sha]
        if not isinstance(obj, Commit):
            raise CheckpointError(f"{sha.decode()} is not a commit")
        return obj


def _named(paths: list[str]) -> str:
    """Up to three paths, then how many more."""
    shown = ", ".join(os.fsdecode(p) for p in paths[:_NAMED])
    more = len(paths) - _NAMED
    return f"{shown} and {more} more" if more > 0 else shown


def _hex(sha: ObjectID | None) -> str:
    return sha.decode() if sha is not None else "nothing"
