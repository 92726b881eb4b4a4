"""Git checkpoints and rollback, in pure Python (dulwich), whose cost follows the change.

::

    cp = Checkpointer(repo, session.id)    # the session's id (or anything with an ``id``)
    zero = cp.start()                      # branch maestro/<session>; checkpoint 0
    session.record(zero)                   # the caller records what the checkpointer returns
    one = cp.checkpoint("group 1")         # commit + annotated tag maestro/<session>/1
    cp.rollback(0)                         # the tree and index exactly as at checkpoint 0
    cp.diff(0, 1)                          # files added, modified, deleted, +/- lines

How the cost follows the change: the index is read once per ``Checkpointer``
and kept in memory (read again only if something else rewrote it); a
checkpoint walks the tree once, skipping ignored folders, and hashes only the
files whose stat data differ from the index (or that were written in the same
timestamp tick as the index: git's racy-clean rule); the new tree is built from
the previous one by rewriting only the trees on changed paths.  A rollback
writes only the files that differ between the two trees.  That half, the
working tree against its index, is :mod:`maestro.git.staging`; this module
holds the session's history in git (its branch, tags, refs and records), and
the line counts of a change are :mod:`maestro.git.numstat`'s.  No garbage
collection runs here.

What is never lost: uncommitted work present when the session starts is saved
at ``refs/maestro/<session>/base`` (and stays in the tree); before a rollback
changes anything, the tree as it is goes to
``refs/maestro/<session>/pre-rollback-<k>``.  ``.flow/`` (maestro's own state)
is never staged and never touched.  The user's branch is never moved.

The module holds one idea, a session's history in git: its branch, its checkpoints, and the
worktree that shows them (made, shown at a commit, rolled back, cleared of what a gate changed).
"""

from __future__ import annotations

import builtins
import datetime as _dt
import functools
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from dulwich.diff_tree import tree_changes
from dulwich.errors import NotGitRepository
from dulwich.objects import Blob, Commit, ObjectID, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError
from maestro.core.records import SESSION_ID, CheckpointRecord, FileChange, format_ts
from maestro.core.seams import Clock, SystemClock
from maestro.git.housekeeping import with_index_retry
from maestro.git.identity import identity
from maestro.git.numstat import line_delta
from maestro.git.places import worktree_dir
from maestro.git.staging import Staging
from maestro.git.worktrees import WorktreePool

__all__ = ["Checkpointer"]

log = logging.getLogger("maestro")


F = TypeVar("F", bound=Callable[..., Any])


def _waits_for_git(method: F) -> F:
    """A method that writes the session's refs or its worktree's index, run again while another git process holds
    one of their locks (an IDE's ``git status``), a few seconds at most (:func:`with_index_retry`)."""

    @functools.wraps(method)
    def wrapper(self: Checkpointer, *args: Any, **kwargs: Any) -> Any:
        return with_index_retry(lambda: method(self, *args, **kwargs), before_retry=self._staging.forget)

    return cast(F, wrapper)


class Checkpointer:
    """Checkpoints of one session's work on branch ``maestro/<session>``.

    It acts on git and returns :class:`~maestro.CheckpointRecord` s; it never writes a session's log (the runner
    records what it returns, so a crash between the tag and the record leaves a tag the log does not have, which a
    resume untags: :meth:`discard_after`).
    """

    def __init__(
        self,
        repo: str | os.PathLike[str],
        session: Any,
        *,
        worktree: bool = False,
        clock: Clock | None = None,
    ) -> None:
        sid = session if isinstance(session, str) else getattr(session, "id", None)
        if not isinstance(sid, str) or not SESSION_ID.match(sid) or ".." in sid or sid.endswith((".lock", ".")):
            raise CheckpointError(f"bad session id {sid!r}: it names a git branch (letters, digits, '.', '_', '-')")
        self.session = sid
        self.clock = clock or SystemClock()
        path = Path(repo)
        if not path.is_dir():
            raise CheckpointError(f"{repo}: no such directory")
        try:
            main = Repo.discover(str(path))
        except NotGitRepository:
            raise CheckpointError(f"{repo}: not a git repository") from None
        if main.bare:
            raise CheckpointError(f"{main.path}: a bare repository has no working tree to checkpoint")
        self._main = main
        self.worktree = worktree
        self.branch = Ref(f"refs/heads/maestro/{sid}".encode())
        self.tag_prefix = f"refs/tags/maestro/{sid}/".encode()
        self.ref_prefix = f"refs/maestro/{sid}/".encode()
        top = Path(main.path).resolve()
        # a worktree session works outside the user's working tree (maestro.git.places says where and why)
        self.workdir = worktree_dir(main.commondir(), sid, "integration") if worktree else top
        self._repo: Repo | None = None
        self._staging = Staging(main)
        self._records: dict[int, CheckpointRecord] = {}
        self._top: int | None = None  # the highest checkpoint number tagged (None: not read yet)

    # -- public -------------------------------------------------------------------
    def start(self, *, state: str | None = None) -> CheckpointRecord:
        """Set up the session branch (once) and return checkpoint 0."""
        if not self.worktree:  # a worktree session only reads the user's index: a git running there is no obstacle
            self._check_unlocked(self._main)
        refs = self._main.refs
        existing = self._peel(self.tag_prefix + b"0")
        if existing is not None and self.branch in refs:
            if self.worktree and not self._worktree_whole():
                self._add_worktree()  # removed (a cleaned session, a wiped cache) or cut short: made again
            self._open_workdir()
            if not self.worktree and refs.read_ref(Ref(b"HEAD")) != b"ref: " + self.branch:
                self._main.refs.set_symbolic_ref(Ref(b"HEAD"), self.branch)
            return self._record(0)
        self._exclude_flow()
        head = self._head_commit(self._main)
        self._repo = self._main
        # Stage the user's tree: in a worktree session, read-only (their index stays as it is).
        staging = self._staging
        staging.load(self._main)
        assert staging.tree is not None
        scan = staging.scan()
        tree = staging.apply(scan, write_index=not self.worktree)
        dirty = head is None or tree != self._commit(head).tree
        if dirty:
            base = self._new_commit(tree, [head] if head is not None else [], "session start: work in progress")
            refs[Ref(self.ref_prefix + b"base")] = base
            zero_commit, label = base, "start (uncommitted work saved as base)"
        else:
            assert head is not None
            zero_commit, label = head, "start"
        refs[self.branch] = zero_commit
        if self.worktree:
            self._repo = None
            staging.forget()
            self._add_worktree()
        else:
            refs.set_symbolic_ref(Ref(b"HEAD"), self.branch)
        self._tag(0, zero_commit, label, state)
        record = self._make_record(0, zero_commit, label, head_tree=self._parent_tree(zero_commit))
        self._records[0] = record
        log.info("session %s: checkpoint 0 at %s (%s)", self.session, zero_commit.decode()[:12], label)
        return record

    @_waits_for_git
    def checkpoint(self, label: str, *, allow_empty: bool = False, state: str | None = None) -> CheckpointRecord | None:
        """Commit every change since the last checkpoint; ``None`` (and no commit) if there is none.

        With ``allow_empty`` a checkpoint is made even when nothing changed (a
        commit with its parent's tree), so that the step it ends is on record.
        """
        repo = self._open_workdir()
        self._check_unlocked(repo)
        head = self._branch_head()
        staging = self._staging
        staging.load(repo)
        scan = staging.scan()
        old_tree = staging.tree
        tree = staging.apply(scan, write_index=True)
        if tree == self._commit(head).tree and tree == old_tree and not allow_empty:
            log.info("session %s: nothing changed since the last checkpoint", self.session)
            return None
        n = self._next_number()
        commit = self._new_commit(tree, [head], label)
        if not repo.refs.set_if_equals(self.branch, head, commit):
            raise CheckpointError(f"{self.branch.decode()} moved while checkpointing (expected {head.decode()})")
        self._tag(n, commit, label, state)
        record = self._make_record(n, commit, label, head_tree=self._commit(head).tree)
        self._records[n] = record
        log.info("session %s: checkpoint %d at %s: %s", self.session, n, commit.decode()[:12], label)
        return record

    def has_changes(self) -> bool:
        """Whether the working tree differs from the session branch's head (read only: nothing is written).

        The same scan as a checkpoint's (the index's stat data; only changed files are hashed).
        """
        repo = self._open_workdir()
        head = self._branch_head()
        self._staging.load(repo)
        scan = self._staging.scan()
        return bool(scan.changed or scan.removed) or self._staging.tree != self._commit(head).tree

    @property
    def repo(self) -> Repo:
        """The user's repository (its object store holds every commit of the session)."""
        return self._main

    def head(self) -> ObjectID:
        """The session branch's commit (the last checkpoint's, unless a run stopped before recording one)."""
        return self._branch_head()

    @_waits_for_git
    def show(self, commit: ObjectID) -> None:
        """Put the session's tree (and index) at ``commit`` without moving the branch: only what differs is written.

        What the tree held that no commit has (a command that wrote files) is saved first, as a rollback saves it.
        """
        self._move_tree(commit, "before showing another commit", always=False)

    def next_number(self) -> int:
        """The number the next checkpoint gets."""
        return self._next_number()

    def changes(self, before: ObjectID, after: ObjectID) -> tuple[FileChange, ...]:
        """The files that differ from commit ``before`` to commit ``after`` (what a checkpoint's record lists)."""
        return self._changes(self._commit(before).tree, self._commit(after).tree)

    @_waits_for_git
    def advance(
        self, commit: ObjectID, label: str, *, state: str | None = None, files: tuple[FileChange, ...] | None = None
    ) -> CheckpointRecord:
        """Make ``commit`` (a child of the branch head) the next checkpoint: the branch moves to it (compare-and-swap)
        and it is tagged.  ``files``: its :meth:`changes` from the head, when the caller has them already."""
        head = self._branch_head()
        n = self._next_number()
        if not self._main.refs.set_if_equals(self.branch, head, commit):
            raise CheckpointError(f"{self.branch.decode()} moved while checkpointing (expected {head.decode()})")
        self._tag(n, commit, label, state)
        if files is None:
            record = self._make_record(n, commit, label, head_tree=self._commit(head).tree)
        else:
            ts = format_ts(_dt.datetime.fromtimestamp(self._commit(commit).commit_time, _dt.UTC))
            record = CheckpointRecord(n, commit.decode(), f"maestro/{self.session}/{n}", label, ts, files)
        self._records[n] = record
        log.info("session %s: checkpoint %d at %s: %s", self.session, n, commit.decode()[:12], label)
        return record

    @_waits_for_git
    def discard_changes(self, label: str) -> tuple[builtins.list[str], str | None]:
        """Undo whatever changed in the working tree since the branch head; return the paths and the ref keeping them.

        Nothing changed: ``([], None)``.  What was there is kept at a new ``pre-rollback-<k>`` ref.
        """
        head = self._branch_head()
        k = self._move_tree(head, label, always=False)
        if not k:
            return [], None
        ref = self.ref_prefix + f"pre-rollback-{k}".encode()
        saved = self._main.refs[Ref(ref)]
        if saved == head:
            return [], None
        paths = []
        for ch in tree_changes(self._main.object_store, self._commit(head).tree, self._commit(saved).tree):
            entry = ch.new if ch.new is not None and ch.new.path is not None else ch.old
            if entry is not None and entry.path is not None:
                paths.append(_path(entry.path))
        return sorted(paths), ref.decode()

    def commit_tree(self, tree: ObjectID, parents: builtins.list[ObjectID], label: str) -> ObjectID:
        """A commit of ``tree`` with these parents (written to the object store; no ref moves)."""
        return self._new_commit(tree, parents, label)

    @_waits_for_git
    def rollback(self, to: int | str) -> CheckpointRecord:
        """Restore the tree and index to checkpoint ``to`` (number, tag or commit) and move the branch there.

        The tree as it is first goes to ``refs/maestro/<session>/pre-rollback-<k>``.
        """
        target_n, target = self._resolve(to)
        if self.worktree and not (self.workdir / ".git").exists():  # an ended session: its branch alone
            k = self._save_branch()
            self._main.refs[self.branch] = target
        else:
            k = self._move_tree(target, "before rollback")
            self._open_workdir().refs[self.branch] = target
        log.info("session %s: rolled back to checkpoint %d (tree before: pre-rollback-%d)", self.session, target_n, k)
        return self._record(target_n)

    def _save_branch(self) -> int:
        """The branch head at a new pre-rollback ref (its number)."""
        k = 1 + max((int(r.rsplit(b"-", 1)[1]) for r in self._pre_rollback_refs()), default=0)
        self._main.refs[Ref(self.ref_prefix + f"pre-rollback-{k}".encode())] = self._branch_head()
        return k

    def _move_tree(self, target: ObjectID, label: str, *, always: bool = True) -> int:
        """The working tree and index at ``target``; what was there goes to a new pre-rollback ref (its number).

        Without ``always`` the ref is made only when the tree held something its index did not (0: none made).
        """
        repo = self._open_workdir()
        self._check_unlocked(repo)
        head = self._branch_head()
        staging = self._staging
        staging.load(repo)
        # Save what is there now, staged exactly as a checkpoint would (the index is written
        # only once the move is known to go through).
        scan = staging.scan()
        shown = staging.tree
        tree = staging.apply(scan, write_index=False)
        want = self._commit(target).tree
        changes = list(tree_changes(self._main.object_store, tree, want))
        staging.check_obstacles(changes)  # before anything is written
        staging.stage(scan, tree)
        if not always and tree == shown:
            staging.write_changes(changes)
            staging.tree = want
            staging.write_index()
            return 0
        saved = head if tree == self._commit(head).tree else self._new_commit(tree, [head], label)
        k = 1 + max((int(r.rsplit(b"-", 1)[1]) for r in self._pre_rollback_refs()), default=0)
        repo.refs[Ref(self.ref_prefix + f"pre-rollback-{k}".encode())] = saved
        staging.write_changes(changes)
        staging.tree = want
        staging.write_index()
        return k

    def discard_after(self, n: int) -> builtins.list[int]:
        """Untag the checkpoints after ``n`` (made by a run that stopped before recording them); return them.

        Their commits stay reachable at ``refs/maestro/<session>/interrupted-<k>``.
        """
        gone: builtins.list[int] = []
        for ref in self._tag_refs():
            k = int(ref[len(self.tag_prefix) :])
            if k > n:
                commit = self._peel(ref)
                if commit is not None:
                    self._main.refs[Ref(self.ref_prefix + f"interrupted-{k}".encode())] = commit
                self._main.refs.remove_if_equals(Ref(ref), None)
                gone.append(k)
        self._top = None
        for k in gone:
            self._records.pop(k, None)
        if gone:
            log.warning("session %s: checkpoint(s) %s were made but never recorded: untagged", self.session, gone)
        return sorted(gone)

    def diff(self, a: int | str, b: int | str) -> tuple[FileChange, ...]:
        """What changed from ``a`` to ``b`` (checkpoint numbers, tags, commits, or ``"base"``)."""
        ta = self._commit(self._resolve(a)[1]).tree
        tb = self._commit(self._resolve(b)[1]).tree
        return self._changes(ta, tb)

    def list(self) -> builtins.list[CheckpointRecord]:
        """Every checkpoint of the session, checkpoint 0 first."""
        numbers = sorted(int(r[len(self.tag_prefix) :]) for r in self._tag_refs())
        return [self._record(n) for n in numbers]

    # -- resolving ------------------------------------------------------------------
    def _tag_refs(self) -> builtins.list[bytes]:
        return [
            r
            for r in self._main.refs.keys()  # noqa: SIM118 - RefsContainer is not a dict
            if r.startswith(self.tag_prefix) and r[len(self.tag_prefix) :].isdigit()
        ]

    def _pre_rollback_refs(self) -> builtins.list[bytes]:
        return [
            r
            for r in self._main.refs.keys()  # noqa: SIM118
            if r.startswith(self.ref_prefix + b"pre-rollback-")
        ]

    def _next_number(self) -> int:
        """The next checkpoint's number (the refs are read once: one runner per session makes the tags)."""
        if self._top is None:
            self._top = max((int(r[len(self.tag_prefix) :]) for r in self._tag_refs()), default=0)
        return self._top + 1

    def _peel(self, ref: bytes) -> ObjectID | None:
        try:
            sha = self._main.refs[Ref(ref)]
        except KeyError:
            return None
        obj = self._main.object_store[sha]
        while isinstance(obj, Tag):
            obj = self._main.object_store[obj.object[1]]
        return obj.id

    def _resolve(self, to: int | str) -> tuple[int, ObjectID]:
        """A checkpoint's number and commit from its number, tag name, commit id or ``"base"``."""
        if to == "base":
            to = 0
        if isinstance(to, int) and not isinstance(to, bool):
            commit = self._peel(self.tag_prefix + str(to).encode())
            if commit is None:
                raise CheckpointError(
                    f"no checkpoint {to} in session {self.session} (no tag maestro/{self.session}/{to})"
                )
            return to, commit
        if isinstance(to, str):
            name = to.removeprefix("refs/tags/")
            prefix = self.tag_prefix.decode().removeprefix("refs/tags/")
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                return self._resolve(int(name[len(prefix) :]))
            if re.fullmatch(r"[0-9a-f]{4,40}", to):
                for n, rec in ((rec.n, rec) for rec in self.list()):
                    if rec.commit.startswith(to):
                        return n, ObjectID(rec.commit.encode())
        raise CheckpointError(f"unknown checkpoint {to!r} in session {self.session}")

    def _record(self, n: int) -> CheckpointRecord:
        cached = self._records.get(n)
        if cached is not None:
            return cached
        ref = self.tag_prefix + str(n).encode()
        try:
            tag = self._main.object_store[self._main.refs[Ref(ref)]]
        except KeyError:
            raise CheckpointError(f"no checkpoint {n} in session {self.session} (no tag {ref.decode()})") from None
        if not isinstance(tag, Tag):
            raise CheckpointError(f"{ref.decode()} is not an annotated maestro tag")
        commit = self._commit(tag.object[1])
        label = tag.message.decode("utf-8", "replace").split(": ", 1)[-1].removesuffix("\n")
        when = _dt.datetime.fromtimestamp(tag.tag_time, _dt.UTC)
        record = self._make_record(n, commit.id, label, head_tree=self._parent_tree(commit.id), when=when)
        self._records[n] = record
        return record

    # -- objects -------------------------------------------------------------------
    def _commit(self, sha: ObjectID) -> Commit:
        obj = self._main.object_store[sha]
        if not isinstance(obj, Commit):
            raise CheckpointError(f"{sha.decode()} is not a commit")
        return obj

    def _parent_tree(self, commit: ObjectID) -> ObjectID | None:
        parents = self._commit(commit).parents
        return self._commit(parents[0]).tree if parents else None

    def _head_commit(self, repo: Repo) -> ObjectID | None:
        try:
            return repo.refs[Ref(b"HEAD")]
        except KeyError:
            return None  # an unborn HEAD

    def _branch_head(self) -> ObjectID:
        try:
            return self._main.refs[self.branch]
        except KeyError:
            raise CheckpointError(f"session {self.session} has no branch {self.branch.decode()}: start first") from None

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _new_commit(self, tree: ObjectID, parents: builtins.list[ObjectID], label: str) -> ObjectID:
        c = Commit()
        c.tree = tree
        c.parents = parents
        c.author = c.committer = identity(self._main)
        c.author_time = c.commit_time = self._now()
        c.author_timezone = c.commit_timezone = 0
        c.message = f"maestro({self.session}): {label}\n".encode()
        self._main.object_store.add_object(c)
        return c.id

    def _tag(self, n: int, commit: ObjectID, label: str, state: str | None) -> None:
        t = Tag()
        t.object = (Commit, commit)
        t.name = f"maestro/{self.session}/{n}".encode()
        t.tagger = identity(self._main)
        t.tag_time = self._commit(commit).commit_time  # one time for the checkpoint: its commit's
        t.tag_timezone = 0
        where = f", state {state}" if state else ""
        t.message = f"maestro checkpoint {n} of session {self.session}{where}: {label}\n".encode()
        self._main.object_store.add_object(t)
        self._main.refs[Ref(self.tag_prefix + str(n).encode())] = t.id
        self._top = max(n, self._top or 0)

    def _make_record(
        self,
        n: int,
        commit: ObjectID,
        label: str,
        *,
        head_tree: ObjectID | None,
        when: _dt.datetime | None = None,
    ) -> CheckpointRecord:
        c = self._commit(commit)
        files = self._changes(head_tree, c.tree)  # against its parent; a root commit adds everything
        ts = format_ts(when or _dt.datetime.fromtimestamp(c.commit_time, _dt.UTC))
        return CheckpointRecord(n, commit.decode(), f"maestro/{self.session}/{n}", label, ts, files)

    def _changes(self, a: ObjectID | None, b: ObjectID | None) -> tuple[FileChange, ...]:
        known = self._staging.file_changes(a, b) if b is not None else None
        if known is not None:  # the scan that made ``b`` from ``a`` knows its changes: no tree diff
            return known
        store = self._main.object_store
        out: list[FileChange] = []
        for ch in tree_changes(store, a, b, change_type_same=True):  # a file that became a symlink: modified
            if ch.type == "add":
                assert ch.new is not None and ch.new.path is not None and ch.new.sha is not None
                out.append(FileChange(_path(ch.new.path), "added", *line_delta(b"", self._blob(ch.new.sha))))
            elif ch.type == "delete":
                assert ch.old is not None and ch.old.path is not None and ch.old.sha is not None
                out.append(FileChange(_path(ch.old.path), "deleted", *line_delta(self._blob(ch.old.sha), b"")))
            elif ch.type in ("modify", "typechange"):
                assert ch.old is not None and ch.new is not None and ch.new.path is not None
                assert ch.old.sha is not None and ch.new.sha is not None
                old, new = self._blob(ch.old.sha), self._blob(ch.new.sha)
                out.append(FileChange(_path(ch.new.path), "modified", *line_delta(old, new)))
        return tuple(sorted(out, key=lambda f: f.path))

    def _blob(self, sha: ObjectID) -> bytes:
        """A blob's bytes; empty for what is not a blob here (a submodule's commit lives elsewhere)."""
        try:
            obj = self._main.object_store[sha]
        except KeyError:
            return b""
        return obj.as_raw_string() if isinstance(obj, Blob) else b""

    # -- the working tree and its index ----------------------------------------------
    def _open_workdir(self) -> Repo:
        if self._repo is None:
            if self.worktree:
                if not (self.workdir / ".git").exists():
                    raise CheckpointError(f"session {self.session} has no worktree at {self.workdir}: call start()")
                self._repo = Repo(str(self.workdir))
            else:
                self._repo = self._main
        return self._repo

    def _admin_dir(self) -> Path:
        return Path(self._main.commondir()) / "worktrees" / self.workdir.name

    def _worktree_whole(self) -> bool:
        """Whether the session's worktree is there and whole: its ``.git`` file, its admin folder's HEAD and index."""
        admin = self._admin_dir()
        return (self.workdir / ".git").is_file() and (admin / "HEAD").is_file() and (admin / "index").is_file()

    def _add_worktree(self) -> None:
        """Make the session's worktree at the branch head, its HEAD on the branch.

        Whatever a stopped run left there goes first, even a whole worktree: it may hold another commit (a run
        killed before checkpoint 0 was tagged, then the user's tree changed).  It is then written as
        :class:`~maestro.git.worktrees.WorktreePool` writes its worktrees (the files straight from the packs, on
        threads; the index from what was written, waiting for another git holding its lock, such as an IDE's ``git
        status`` in the new folder): at 10,000 files 0.5 s where dulwich's ``add_worktree`` took 1.8 s.
        """
        for leftover in (self.workdir, self._admin_dir()):
            if leftover.exists() or leftover.is_symlink():
                log.warning("session %s: removing %s, left by a stopped run", self.session, leftover)
                if leftover.is_symlink():
                    leftover.unlink()
                else:
                    shutil.rmtree(leftover, ignore_errors=True)
        commit = self._branch_head()
        pool = WorktreePool(self._main.path, self.session, clock=self.clock, watch=False)
        try:
            made = pool.integration(commit).path
        finally:
            pool.close()
        if made.resolve() != self.workdir.resolve():
            raise CheckpointError(f"{made}: the session's worktree was expected at {self.workdir}")
        try:
            wt = Repo(str(self.workdir))
            wt.refs.set_symbolic_ref(Ref(b"HEAD"), self.branch)
        except (NotGitRepository, ValueError, KeyError, OSError) as exc:
            raise CheckpointError(f"{self.workdir}: cannot add the session's worktree: {exc}") from exc
        self._repo = wt
        self._staging.forget()

    def _exclude_flow(self) -> None:
        """List ``/.flow/`` in ``.git/info/exclude`` so that git, too, never shows maestro's state."""
        exclude = Path(self._main.controldir()) / "info" / "exclude"
        try:
            text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
            if "/.flow/" not in text.splitlines():
                exclude.parent.mkdir(parents=True, exist_ok=True)
                sep = "" if not text or text.endswith("\n") else "\n"
                exclude.write_text(f"{text}{sep}# maestro's session state\n/.flow/\n", encoding="utf-8")
        except OSError as exc:
            raise CheckpointError(f"{exclude}: cannot write: {exc.strerror or exc}") from exc

    def _check_unlocked(self, repo: Repo) -> None:
        lock = Path(repo.index_path() + ".lock")
        if lock.exists():
            raise CheckpointError(f"{lock} exists: another git process is running (or one crashed; remove the file)")


def _path(p: bytes) -> str:
    return os.fsdecode(p)
