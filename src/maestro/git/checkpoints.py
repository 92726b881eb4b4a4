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
writes only the files that differ between the two trees.  No garbage
collection runs here.

What is never lost: uncommitted work present when the session starts is saved
at ``refs/maestro/<session>/base`` (and stays in the tree); before a rollback
changes anything, the tree as it is goes to
``refs/maestro/<session>/pre-rollback-<k>``.  ``.flow/`` (maestro's own state)
is never staged and never touched.  The user's branch is never moved.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import difflib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
from dulwich.diff_tree import TreeChange, tree_changes
from dulwich.errors import NotGitRepository
from dulwich.ignore import IgnoreFilterManager
from dulwich.index import blob_from_path_and_stat, build_file_from_blob, index_entry_from_stat
from dulwich.object_store import commit_tree_changes
from dulwich.objects import Blob, Commit, ObjectID, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.worktree import add_worktree

from maestro.core.errors import CheckpointError
from maestro.core.records import SESSION_ID, CheckpointRecord, FileChange, format_ts
from maestro.core.seams import Clock, SystemClock
from maestro.git.index import MODE_BITS, GitIndex, StatKey, file_mode, signature

__all__ = ["Checkpointer"]

log = logging.getLogger("maestro")

FLOW = b".flow"
_GITLINK = 0o160000
_DEFAULT_IDENTITY = b"maestro <maestro@localhost>"


@attrs.define
class _Scan:
    """What a walk of the working tree found against the index."""

    changed: dict[bytes, tuple[int, ObjectID, os.stat_result]] = attrs.field(factory=dict)  # added or modified
    removed: set[bytes] = attrs.field(factory=set)
    restat: dict[bytes, os.stat_result] = attrs.field(factory=dict)  # same content, new stat data


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
        self.workdir = top / ".flow" / "maestro" / "worktrees" / sid if worktree else top
        self._repo: Repo | None = None
        self._index: GitIndex | None = None
        self._tree: ObjectID | None = None  # the tree our in-memory index stands for
        self._tracked_dirs: set[bytes] = set()
        self._ignore: IgnoreFilterManager | None = None
        self._records: dict[int, CheckpointRecord] = {}
        self._filemode = True

    # -- public -------------------------------------------------------------------
    def start(self, *, state: str | None = None) -> CheckpointRecord:
        """Set up the session branch (once) and return checkpoint 0."""
        self._check_unlocked(self._main)
        refs = self._main.refs
        existing = self._peel(self.tag_prefix + b"0")
        if existing is not None and self.branch in refs:
            self._open_workdir()
            if not self.worktree and refs.read_ref(Ref(b"HEAD")) != b"ref: " + self.branch:
                self._main.refs.set_symbolic_ref(Ref(b"HEAD"), self.branch)
            return self._record(0)
        self._exclude_flow()
        head = self._head_commit(self._main)
        self._repo = self._main
        # Stage the user's tree: in a worktree session, read-only (their index stays as it is).
        self._load_index(self._main)
        assert self._tree is not None
        scan = self._scan()
        tree = self._apply_scan(scan, write_index=not self.worktree)
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
            self._index = None
            self._add_worktree()
        else:
            refs.set_symbolic_ref(Ref(b"HEAD"), self.branch)
        self._tag(0, zero_commit, label, state)
        record = self._make_record(0, zero_commit, label, head_tree=self._parent_tree(zero_commit))
        self._records[0] = record
        log.info("session %s: checkpoint 0 at %s (%s)", self.session, zero_commit.decode()[:12], label)
        return record

    def checkpoint(self, label: str, *, allow_empty: bool = False, state: str | None = None) -> CheckpointRecord | None:
        """Commit every change since the last checkpoint; ``None`` (and no commit) if there is none.

        With ``allow_empty`` a checkpoint is made even when nothing changed (a
        commit with its parent's tree), so that the step it ends is on record.
        """
        repo = self._open_workdir()
        self._check_unlocked(repo)
        head = self._branch_head()
        self._load_index(repo)
        scan = self._scan()
        old_tree = self._tree
        tree = self._apply_scan(scan, write_index=True)
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
        self._load_index(repo)
        scan = self._scan()
        return bool(scan.changed or scan.removed) or self._tree != self._commit(head).tree

    def rollback(self, to: int | str) -> CheckpointRecord:
        """Restore the tree and index to checkpoint ``to`` (number, tag or commit) and move the branch there.

        The tree as it is first goes to ``refs/maestro/<session>/pre-rollback-<k>``.
        """
        repo = self._open_workdir()
        self._check_unlocked(repo)
        target_n, target = self._resolve(to)
        head = self._branch_head()
        self._load_index(repo)
        # Save what is there now, staged exactly as a checkpoint would (the index is written
        # only once the rollback is known to go through).
        scan = self._scan()
        tree = self._apply_scan(scan, write_index=False)
        want = self._commit(target).tree
        changes = list(tree_changes(self._main.object_store, tree, want))
        self._check_obstacles(changes)  # before anything is written
        self._stage(scan, tree)
        saved = head if tree == self._commit(head).tree else self._new_commit(tree, [head], "before rollback")
        k = 1 + max((int(r.rsplit(b"-", 1)[1]) for r in self._pre_rollback_refs()), default=0)
        repo.refs[Ref(self.ref_prefix + f"pre-rollback-{k}".encode())] = saved
        self._write_changes(changes)
        self._tree = want
        self._write_index()
        repo.refs[self.branch] = target
        log.info("session %s: rolled back to checkpoint %d (tree before: pre-rollback-%d)", self.session, target_n, k)
        return self._record(target_n)

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
        return 1 + max((int(r[len(self.tag_prefix) :]) for r in self._tag_refs()), default=0)

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

    def _identity(self) -> bytes:
        config = self._main.get_config_stack()
        try:
            name = config.get((b"user",), b"name")
            email = config.get((b"user",), b"email")
        except KeyError:
            return _DEFAULT_IDENTITY
        return name + b" <" + email + b">"

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _new_commit(self, tree: ObjectID, parents: builtins.list[ObjectID], label: str) -> ObjectID:
        c = Commit()
        c.tree = tree
        c.parents = parents
        c.author = c.committer = self._identity()
        c.author_time = c.commit_time = self._now()
        c.author_timezone = c.commit_timezone = 0
        c.message = f"maestro({self.session}): {label}\n".encode()
        self._main.object_store.add_object(c)
        return c.id

    def _tag(self, n: int, commit: ObjectID, label: str, state: str | None) -> None:
        t = Tag()
        t.object = (Commit, commit)
        t.name = f"maestro/{self.session}/{n}".encode()
        t.tagger = self._identity()
        t.tag_time = self._commit(commit).commit_time  # one time for the checkpoint: its commit's
        t.tag_timezone = 0
        where = f", state {state}" if state else ""
        t.message = f"maestro checkpoint {n} of session {self.session}{where}: {label}\n".encode()
        self._main.object_store.add_object(t)
        self._main.refs[Ref(self.tag_prefix + str(n).encode())] = t.id

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
        store = self._main.object_store
        out: list[FileChange] = []
        for ch in tree_changes(store, a, b, change_type_same=True):  # a file that became a symlink: modified
            if ch.type == "add":
                assert ch.new is not None and ch.new.path is not None and ch.new.sha is not None
                out.append(FileChange(_path(ch.new.path), "added", *_line_delta(b"", self._blob(ch.new.sha))))
            elif ch.type == "delete":
                assert ch.old is not None and ch.old.path is not None and ch.old.sha is not None
                out.append(FileChange(_path(ch.old.path), "deleted", *_line_delta(self._blob(ch.old.sha), b"")))
            elif ch.type in ("modify", "typechange"):
                assert ch.old is not None and ch.new is not None and ch.new.path is not None
                assert ch.old.sha is not None and ch.new.sha is not None
                old, new = self._blob(ch.old.sha), self._blob(ch.new.sha)
                out.append(FileChange(_path(ch.new.path), "modified", *_line_delta(old, new)))
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

    def _add_worktree(self) -> None:
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        commit = self._branch_head()
        main = self._main
        # dulwich seeds the new worktree's HEAD from the main HEAD, which an unborn repository
        # lacks: it is shown the session's commit instead (in memory; the user's HEAD is not touched).
        main.head = lambda: commit  # type: ignore[method-assign]
        try:
            wt = add_worktree(main, str(self.workdir), commit=commit)
            wt.refs.set_symbolic_ref(Ref(b"HEAD"), self.branch)
        except (ValueError, KeyError, OSError) as exc:
            raise CheckpointError(f"{self.workdir}: cannot add the session's worktree: {exc}") from exc
        finally:
            del main.head
        self._repo = wt
        self._index = None

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

    def _load_index(self, repo: Repo) -> None:
        """Read the index, unless the one in memory is still the one on disk."""
        held = self._index
        fresh = held is not None and held.path == repo.index_path() and held.signature is not None
        if fresh and held is not None and held.signature == signature(held.path):
            return
        self._index = GitIndex.read(repo)
        self._tree = self._index.tree(self._main.object_store)  # once per Checkpointer (or after a foreign write)
        self._tracked_dirs = set()
        self._track(self._index.paths())
        self._filemode = repo.get_config_stack().get_boolean((b"core",), b"filemode", True)

    def _track(self, paths: Iterable[bytes]) -> None:
        """Note the folders that hold tracked files: a walk enters them even if ignored."""
        dirs = self._tracked_dirs
        for path in paths:
            d = path.rpartition(b"/")[0]
            while d and d not in dirs:
                dirs.add(d)
                d = d.rpartition(b"/")[0]

    def _ignored(self, rel: bytes, is_dir: bool) -> bool:
        """Whether an untracked file is ignored, or an untracked folder can be skipped whole.

        A folder is skipped only when a pattern excludes it by name (``build/``):
        ``logs/*`` with ``!logs/keep.txt`` must still be entered, as git does.
        """
        assert self._ignore is not None
        if is_dir:
            return self._ignore.may_prune_directory(os.fsdecode(rel) + "/")
        return bool(self._ignore.is_ignored(os.fsdecode(rel)))

    def _scan(self) -> _Scan:
        """Walk the working tree once and compare it with the index by stat data.

        The hot path is a file whose stat data match its index entry: it costs a
        ``lstat`` and a few comparisons, nothing else (no path is even built).
        """
        assert self._index is not None and self._repo is not None
        entries, dirs = self._index.entries, self._index.dirs
        top = os.fsencode(self._repo.path)
        sig = self._index.signature
        racy_after = sig[0] if sig else 0  # entries not older than the index are hashed (git's racy rule)
        add_object = self._main.object_store.add_object
        # Fresh every walk: .gitignore, .gitattributes and info/exclude may have changed since the last one.
        self._ignore = IgnoreFilterManager.from_repo(self._repo)
        normalize = self._normalizer()
        scan = _Scan()
        visited: set[bytes] = set()
        tracked_dirs = self._tracked_dirs
        kept = self._index.kept
        none: dict[bytes, StatKey] = {}
        todo: list[bytes] = [b""]
        while todo:
            rel_dir = todo.pop()
            try:
                it = os.scandir(top + b"/" + rel_dir if rel_dir else top)
            except (FileNotFoundError, NotADirectoryError):
                continue
            visited.add(rel_dir)
            names = dirs.get(rel_dir, none)
            prefix = rel_dir + b"/" if rel_dir else b""
            matched = 0  # tracked names found here as files
            with it:
                for e in it:
                    name = e.name
                    if name == b".git" or (not rel_dir and name == FLOW):
                        continue
                    if e.is_dir(follow_symlinks=False):
                        rel = prefix + name
                        if rel in kept:  # a submodule: its commit stays as recorded
                            matched += 1
                            continue
                        if rel in tracked_dirs:
                            todo.append(rel)
                        elif os.path.lexists(e.path + b"/.git"):
                            log.warning("skipping %s: a nested git repository", os.fsdecode(rel))
                        elif not self._ignored(rel, True):
                            todo.append(rel)
                        continue
                    st = e.stat(follow_symlinks=False)
                    key = names.get(name)
                    if (
                        key is not None
                        and key[1] == st.st_mtime_ns
                        and key[0] == st.st_size
                        and key[1] < racy_after
                        and key[2] == st.st_ctime_ns
                        and key[3] == st.st_ino
                        and key[4] == st.st_mode & MODE_BITS
                    ):
                        matched += 1
                        continue  # unchanged: the content is what the index says
                    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                        continue  # a fifo or socket: not content (a tracked one counts as deleted)
                    rel = prefix + name
                    if rel in kept:  # skip-worktree: git assumes it unchanged
                        matched += 1
                        continue
                    if key is None:
                        if self._ignored(rel, False):
                            continue
                        blob = normalize(blob_from_path_and_stat(e.path, st), rel)
                        add_object(blob)
                        scan.changed[rel] = (self._mode(st.st_mode, None), blob.id, st)
                        continue
                    matched += 1
                    entry = entries[rel]
                    mode = self._mode(st.st_mode, entry.mode)
                    blob = normalize(blob_from_path_and_stat(e.path, st), rel)
                    if blob.id == entry.sha and mode == entry.mode:
                        scan.restat[rel] = st
                    else:
                        add_object(blob)
                        scan.changed[rel] = (mode, blob.id, st)
            if matched != len(names):  # some tracked files of this folder are gone
                scan.removed.update(prefix + n for n in names if prefix + n not in scan.changed)
                self._keep_present(scan, top, prefix, names)
        for d, names in dirs.items():
            if d not in visited:  # the whole folder is gone (or is a file now)
                prefix = d + b"/" if d else b""
                scan.removed.update(prefix + n for n in names)
        scan.removed -= kept
        return scan

    def _normalizer(self) -> Callable[[Blob, bytes], Blob]:
        """Check-in normalisation (``text=auto``, ``eol``, ``core.autocrlf``) as ``git add`` applies it.

        Matching attributes costs about a millisecond a file in dulwich, so it is
        skipped when nothing could ask for it: no ``.gitattributes`` anywhere in the
        index or at the top, no ``info/attributes``, no ``core.autocrlf``.
        """
        assert self._repo is not None and self._index is not None
        config = self._repo.get_config_stack()
        try:
            autocrlf: bytes | None = config.get((b"core",), b"autocrlf")
        except KeyError:
            autocrlf = None
        attributes = (
            any(b".gitattributes" in names for names in self._index.dirs.values())
            or os.path.lexists(os.path.join(self._repo.path, ".gitattributes"))
            or os.path.lexists(os.path.join(self._main.controldir(), "info", "attributes"))
        )
        if not attributes and autocrlf in (None, b"false"):
            return _as_is
        return self._repo.get_blob_normalizer().checkin_normalize

    def _mode(self, st_mode: int, recorded: int | None) -> int:
        """The mode to stage: with ``core.fileMode = false`` the execute bit is not the file's to say."""
        mode = file_mode(st_mode)
        if self._filemode or mode == 0o120000:
            return mode
        return recorded if recorded in (0o100644, 0o100755) else 0o100644

    def _keep_present(self, scan: _Scan, top: bytes, prefix: bytes, names: dict[bytes, StatKey]) -> None:
        """Of a folder's tracked files first counted as removed, keep those still there as files."""
        for n in names:
            rel = prefix + n
            if rel not in scan.removed:
                continue
            try:
                st = os.lstat(top + b"/" + rel)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                scan.removed.discard(rel)

    def _apply_scan(self, scan: _Scan, *, write_index: bool) -> ObjectID:
        """The tree of the working tree: the index's tree with the scan's changes; update the index."""
        assert self._index is not None and self._tree is not None
        if not scan.changed and not scan.removed and not scan.restat:
            return self._tree
        changes: list[tuple[bytes, int | None, ObjectID | None]] = []
        files = set(scan.changed)
        for path in sorted(scan.removed):
            if not any(p in files for p in _parents(path)):  # a folder replaced by a file goes with it
                changes.append((path, None, None))
        changes += [(p, mode, sha) for p, (mode, sha, _st) in sorted(scan.changed.items())]
        tree = commit_tree_changes(self._main.object_store, self._tree, changes) if changes else self._tree
        if write_index:
            self._stage(scan, tree)
        return tree

    def _stage(self, scan: _Scan, tree: ObjectID) -> None:
        """Record the scan in the index (and write it): the index now stands for ``tree``."""
        assert self._index is not None
        if scan.changed or scan.removed or scan.restat:
            index = self._index
            for path in scan.removed:
                index.remove(path)
            for path, (mode, sha, st) in scan.changed.items():
                index.set(path, index_entry_from_stat(st, sha, mode))
            for path, st in scan.restat.items():
                old = index.entries[path]
                index.set(path, index_entry_from_stat(st, old.sha, old.mode))
            self._track(scan.changed)
            self._tree = tree
            self._write_index()

    def _write_index(self) -> None:
        assert self._index is not None
        self._index.write()

    def _check_obstacles(self, changes: builtins.list[TreeChange]) -> None:
        """Refuse a rollback that files nobody may delete (ignored ones) would stop half-way."""
        assert self._repo is not None
        top = os.fsencode(self._repo.path)
        deleting = {ch.old.path for ch in changes if ch.type == "delete" and ch.old is not None and ch.old.path}
        for ch in changes:
            new = ch.new
            if ch.type == "delete" or new is None or not new.path:
                continue
            replaced = False  # a parent that is a file or symlink the rollback deletes: nothing below it is in the way
            for parent in reversed(list(_parents(new.path))):  # from the top down, never through a symlink
                full = top + b"/" + parent
                if os.path.islink(full) or os.path.isfile(full):
                    if parent not in deleting:
                        raise CheckpointError(f"{os.fsdecode(full)}: an ignored file is in the way of the checkpoint")
                    replaced = True
                    break
            if replaced:
                continue
            full = top + b"/" + new.path
            if os.path.isdir(full) and not os.path.islink(full):
                for root, _dirs, files in os.walk(full):
                    for f in files:
                        rel = os.path.relpath(os.path.join(root, f), top)
                        if rel not in deleting:
                            where = os.fsdecode(os.path.join(root, f))
                            raise CheckpointError(f"{where}: an ignored file is in the way of the checkpoint")

    def _write_changes(self, changes: builtins.list[TreeChange]) -> None:
        """Make the working tree go from one tree to another, touching only what differs."""
        assert self._index is not None and self._repo is not None
        store = self._main.object_store
        top = os.fsencode(self._repo.path)
        index = self._index
        # Deletions first (deepest first), so that a folder can become a file and back.
        gone = [ch.old.path for ch in changes if ch.type == "delete" and ch.old is not None and ch.old.path]
        for path in sorted(gone, reverse=True):
            full = top + b"/" + path
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(full)
            index.remove(path)
            _remove_empty_parents(full, top)
        for ch in changes:
            new = ch.new
            if ch.type == "delete" or new is None or new.path is None or new.sha is None or new.mode is None:
                continue
            if new.mode == _GITLINK:
                continue
            full = top + b"/" + new.path
            parent = os.path.dirname(full)
            if os.path.lexists(parent) and not os.path.isdir(parent):
                os.unlink(parent)  # a file where a folder must be
            os.makedirs(parent, exist_ok=True)
            if os.path.isdir(full) and not os.path.islink(full):
                _remove_empty_folders(full)  # as git does; a folder holding files stays, and is an error
                if os.path.lexists(full):
                    raise CheckpointError(f"{os.fsdecode(full)}: a folder with files is in the way of a file")
            blob = store[new.sha]
            assert isinstance(blob, Blob)
            st = build_file_from_blob(blob, new.mode, full)
            index.set(new.path, index_entry_from_stat(st, new.sha, new.mode))
        self._tracked_dirs = set()
        self._track(index.paths())


def _as_is(blob: Blob, _path: bytes) -> Blob:
    return blob


def _parents(path: bytes) -> Iterator[bytes]:
    d = path.rpartition(b"/")[0]
    while d:
        yield d
        d = d.rpartition(b"/")[0]


def _remove_empty_folders(folder: bytes) -> None:
    """Remove ``folder`` if it holds nothing but empty folders."""
    for root, _dirs, _files in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(root)


def _remove_empty_parents(full: bytes, top: bytes) -> None:
    d = os.path.dirname(full)
    while d != top and d.startswith(top):
        try:
            os.rmdir(d)
        except OSError:
            return
        d = os.path.dirname(d)


def _path(p: bytes) -> str:
    return os.fsdecode(p)


def _lines(data: bytes) -> list[bytes]:
    """Lines as git splits them: at ``\\n`` only, each keeping its end (a last line may lack one)."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _line_delta(old: bytes, new: bytes) -> tuple[int, int]:
    """Lines added and deleted from ``old`` to ``new``, as ``git diff --numstat`` counts them.

    The counts of a shortest edit script (Myers' algorithm, git's default);
    ``(0, 0)`` for binary content, which git does not count either.
    """
    if b"\0" in old[:8000] or b"\0" in new[:8000]:
        return 0, 0
    a, b = _lines(old), _lines(new)
    d = _edit_distance(a, b)
    growth = len(b) - len(a)
    return (d + growth) // 2, (d - growth) // 2


def _edit_distance(a: list[bytes], b: list[bytes]) -> int:
    """The number of lines inserted plus deleted by a shortest edit script from ``a`` to ``b`` (Myers 1986)."""
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    n, m = len(a), len(b)
    if not n or not m:
        return n + m
    if n * m > 25_000_000:  # huge and very different: the cost would be quadratic; count by matching lines
        sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
        return n + m - 2 * sum(block.size for block in sm.get_matching_blocks())
    offset = n + m + 1
    v = [0] * (2 * offset + 1)
    for d in range(n + m + 1):
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[offset + k - 1] < v[offset + k + 1]):
                x = v[offset + k + 1]
            else:
                x = v[offset + k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            v[offset + k] = x
            if x >= n and y >= m:
                return d
    return n + m
