"""maestro's own git worktrees: a session's integration worktree and a pool of attempt worktrees, never the user's.

::

    pool = WorktreePool(repo, session.id)          # repo: the user's repository (any path in it)
    integration = pool.integration(base)           # <root>/<session>/maestro-<session>-integration, made once
    wt = pool.acquire(head)                        # a free worktree (w1, w2, … made as needed) moved to head
    commit, changed = wt.capture(head, "t1 attempt 1", b"refs/maestro/<session>/attempts/t1/1")
    pool.release(wt)                               # back in the pool: the next acquire moves it
    pool.remove_all()                              # folders and git's admin folders gone; refs stay

Each worktree is a linked git worktree with a detached HEAD, in the folder
:mod:`maestro.git.places` names (outside the user's working tree and outside
``.git/``); its folder's name, ``maestro-<session>-<name>``, is also the name of
its admin folder (``<git dir>/worktrees/<that name>``), unique in the repository.

The one idea of this module: maestro's worktrees, each operation on them costing
the change, not the repository.  **Moving** a worktree to a commit
(:meth:`Worktree.move`) is ``git checkout -f --detach`` that also undoes
untracked files: its tree and index become exactly the commit's, whatever was
left there (files modified, deleted or added by an attempt, even one killed
half-way), and ignored files stay unless one is in the way of a file of the
commit.  Only the files that differ are written (removed first, then written
anew, as git does).  **Capturing** (:meth:`Worktree.capture`) commits the
worktree as a checkpoint would stage it (``.flow/`` and ignored files never)
onto a given parent, at a given ref.  Both find what changed with a checkpoint's
scan (:mod:`maestro.git.staging`: the index's stat data, only changed files
hashed), unless the worktree's **watch** (:class:`_Watch`, Linux's inotify) says
nothing at all happened there since it last matched its index: then there is
nothing to scan.  **Making** a worktree writes the commit's files straight from
the packs (:class:`_PackReader`, five times leaner than dulwich's per-object
path) on a few threads (file creation is system time, which threads overlap),
their stat data going into the new index: no second pass, no rehash.

Threads: the pool is driven from one thread (acquire, release, remove); moves and
captures of different worktrees may run at once in others.  Each worktree holds
its own repositories (object store, refs) and its own index in memory: they
share no mutable state; the object store takes loose objects and refs are
written under git's lock files.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
import shutil
import stat
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dulwich.diff_tree import TreeChange
from dulwich.errors import NotGitRepository
from dulwich.ignore import default_user_ignore_filter_path
from dulwich.index import IndexEntry
from dulwich.object_store import BaseObjectStore
from dulwich.objects import Commit, ObjectID, Tree, TreeEntry, parse_tree
from dulwich.pack import apply_delta
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError
from maestro.core.records import SESSION_ID
from maestro.core.seams import Clock, SystemClock
from maestro.git.housekeeping import with_index_retry
from maestro.git.identity import identity
from maestro.git.index import GitIndex
from maestro.git.inotify import AVAILABLE as INOTIFY
from maestro.git.inotify import IN_CREATE, IN_IGNORED, IN_ISDIR, IN_MOVE_SELF, IN_MOVED_TO, IN_Q_OVERFLOW, Inotify
from maestro.git.places import worktrees_root
from maestro.git.staging import FLOW, Scan, Staging
from maestro.git.tree import IgnoreRules

__all__ = ["Worktree", "WorktreePool", "session_worktrees"]

log = logging.getLogger("maestro")

INTEGRATION = "integration"
_TREE, _LINK, _GITLINK, _EXEC = 0o040000, 0o120000, 0o160000, 0o100755
_POOLED = re.compile(r"w([1-9][0-9]*)\Z")
_THREADED_FROM = 2_000  # files: below this, writing on one thread costs less than starting more
_WRITERS = max(1, min(4, os.cpu_count() or 1))


class Worktree:
    """One maestro-owned worktree: ``name`` (``integration``, ``w1`` …), ``path``, ``session``.

    Its repositories (the worktree's, for HEAD and the index; the common one, for objects and refs)
    and its index in memory are its own: different worktrees may be moved and captured on different
    threads at once; one worktree is used by one thread at a time.
    """

    def __init__(self, common: Path, session: str, name: str, path: Path, clock: Clock, *, watch: bool = True) -> None:
        self.name = name
        self.path = path
        self.session = session
        self._clock = clock
        self._common = common
        self.admin = common / "worktrees" / path.name
        try:
            self._store = Repo(str(common))  # objects, refs and config; info/attributes of the repository
            self._repo = Repo(str(path))
        except (NotGitRepository, OSError) as exc:
            raise CheckpointError(f"{path}: cannot open the worktree: {exc}") from exc
        self._staging = Staging(self._store)
        self._watching = watch and INOTIFY  # False once a watch could not be kept
        self._watch: _Watch | None = None

    def __repr__(self) -> str:
        return f"Worktree({self.name!r}, {str(self.path)!r})"

    # -- reading --------------------------------------------------------------------
    def head(self) -> ObjectID:
        """The commit its HEAD names (detached; a symbolic HEAD is followed)."""
        try:
            return self._repo.refs[Ref(b"HEAD")]
        except KeyError:
            raise CheckpointError(f"{self.admin / 'HEAD'}: the worktree's HEAD names no commit") from None

    def has_changes(self) -> bool:
        """Whether anything in it (tracked, or untracked and not ignored) differs from HEAD's tree.

        The scan of a checkpoint: stat data, only changed files hashed (their blobs go to the object store).
        """
        staging = self._staging
        quiet = self._begin()
        scan = Scan() if quiet else staging.scan()
        changed = bool(scan.changed or scan.removed)
        if not changed:
            self._end(())
        return changed or staging.tree != self._tree_of(self.head())

    # -- writing --------------------------------------------------------------------
    def move(self, commit: ObjectID) -> int:
        """Detach HEAD at ``commit``, the tree and the index exactly its tree; how many files were written or removed.

        Whatever differs from the index (modified, deleted, untracked files not ignored) is undone;
        ignored files stay, but one in the way of a file of the commit is removed (``git checkout -f``).
        Only the files that differ are written.  Another git process holding the worktree's index (an IDE
        running ``git status`` in it) is waited for, a few seconds at most (:func:`with_index_retry`).
        """
        return with_index_retry(lambda: self._move(commit), before_retry=self._staging.forget)

    def _move(self, commit: ObjectID) -> int:
        self._check_unlocked()
        want = self._tree_of(commit)
        staging = self._staging
        quiet = self._begin()
        scan = Scan() if quiet else staging.scan()  # quiet: nothing happened since it matched its index
        current = staging.apply(scan, write_index=False)  # the tree as it is (untracked files in it)
        changes = _tree_diff(self._store.object_store, current, want)
        if scan.changed or scan.removed:
            staging.stage(scan, current)  # the index stands for what is there: the changes are relative to it
        cleared = self._clear_the_way(changes)
        self._unlink_modified(changes)
        staging.write_changes(changes)
        staging.tree = want
        staging.write_index()
        self._write_head(commit)
        self._end(p for ch in changes for p in (ch.old.path if ch.old else None, ch.new.path if ch.new else None) if p)
        return cleared + sum(1 for ch in changes if ch.type == "delete" or not _gitlink(ch))

    def capture(
        self, parent: ObjectID, message: str, ref: bytes, *, clock: Clock | None = None
    ) -> tuple[ObjectID, bool]:
        """Commit everything in the worktree (as a checkpoint stages it) on ``parent``; store it at ``ref``.

        The index and HEAD move to the commit.  A commit is made even when nothing changed (its tree is
        ``parent``'s): every attempt has one.  Returns the commit and whether its tree differs from ``parent``'s.
        Another git process holding the index or the ref (dulwich's ``FileLocked``) is waited for, as :meth:`move`
        waits.
        """
        if not ref.startswith(b"refs/"):
            raise CheckpointError(f"{self.path}: cannot capture at {ref!r}: not a ref under refs/")
        return with_index_retry(lambda: self._capture(parent, message, ref, clock), before_retry=self._staging.forget)

    def _capture(self, parent: ObjectID, message: str, ref: bytes, clock: Clock | None) -> tuple[ObjectID, bool]:
        self._check_unlocked()
        parent_tree = self._tree_of(parent)
        staging = self._staging
        quiet = self._begin()
        scan = Scan() if quiet else staging.scan()
        tree = staging.apply(scan, write_index=True)
        c = Commit()
        c.tree = tree
        c.parents = [parent]
        c.author = c.committer = identity(self._store)
        c.author_time = c.commit_time = int((clock or self._clock).now().timestamp())
        c.author_timezone = c.commit_timezone = 0
        c.message = message.encode() if message.endswith("\n") else (message + "\n").encode()
        self._store.object_store.add_object(c)
        try:
            self._store.refs[Ref(ref)] = c.id
        except (OSError, ValueError) as exc:
            where = ref.decode(errors="replace")
            raise CheckpointError(f"{self.path}: cannot store the capture at {where}: {exc}") from exc
        self._write_head(c.id)
        self._end(())  # nothing written in the worktree: any event is someone else's
        return c.id, tree != parent_tree

    def close(self) -> None:
        """Release the open files (packs) of its repositories and its watch; the worktree stays on disk."""
        self._unwatch()
        self._repo.close()
        self._store.close()

    # -- the watch: no scan when nothing happened --------------------------------------
    def _begin(self) -> bool:
        """Load the index; whether the worktree is known to still match it (no event since it did), without a scan.

        The watch is brought up to date first (new folders watched), so that a scan that follows
        covers anything an event would not report.
        """
        staging = self._staging
        held = staging.index
        staging.load(self._repo)
        watch = self._watch
        try:
            if watch is None:
                if not self._watching:
                    return False
                watch = self._watch = _Watch(self.path, self._repo, self._rules())
                assert staging.index is not None
                watch.watch_all(staging.index.dirs)
                return False
            seen = watch.drain()
            if seen is None:
                assert staging.index is not None
                watch.watch_all(staging.index.dirs)
        except OSError as exc:
            log.info("%s: changes are found by scanning (%s)", self.path, exc)
            self._unwatch()
            self._watching = False
            return False
        quiet = watch.quiet and seen == set() and staging.index is held  # a foreign index: scan
        watch.quiet = False
        return quiet

    def _end(self, ours: Iterable[bytes]) -> None:
        """The worktree matches its index now: quiet, unless something but ``ours`` (paths written) happened."""
        watch = self._watch
        if watch is None:
            return
        try:
            seen = watch.drain()
        except OSError as exc:
            log.info("%s: changes are found by scanning (%s)", self.path, exc)
            self._unwatch()
            self._watching = False
            return
        if seen is None:
            return  # watched again from the top; the next operation scans
        allowed: set[bytes] = set()
        for written in ours:
            path = written
            while path and path not in allowed:
                allowed.add(path)
                path = path.rpartition(b"/")[0]
        watch.quiet = seen <= allowed

    def _unwatch(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _rules(self) -> list[Path]:
        """The files whose change changes what is ignored or how content is staged, besides ``.gitignore`` files."""
        info = self._common / "info"
        rules = [info / "exclude", info / "attributes"]
        with contextlib.suppress(KeyError, OSError):
            rules.append(Path(os.path.expanduser(default_user_ignore_filter_path(self._store.get_config_stack()))))
        return rules

    # -- creating -------------------------------------------------------------------
    def _populate(self, commit: ObjectID) -> None:
        """Write ``commit``'s files into the (new, empty) worktree, the index with them, and HEAD."""
        tree = self._tree_of(commit)
        top = os.fsencode(self.path)
        with _PackReader(self._common / "objects", self._store.object_store) as reader:
            dirs, files = _listing(reader, tree)
            try:
                for d in dirs:
                    os.mkdir(top + b"/" + d)
            except OSError as exc:
                raise CheckpointError(f"{self.path}: cannot make the worktree's folders: {exc}") from exc
            n = len(files)
            parts = _WRITERS if n >= _THREADED_FROM else 1
            chunks = [files[i * n // parts : (i + 1) * n // parts] for i in range(parts)]
            if parts == 1:
                written = [_write_files(reader, top, files)]
            else:
                with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="maestro-worktree") as pool:
                    written = list(pool.map(lambda chunk: _write_files(reader, top, chunk), chunks))
        index = GitIndex(self._repo.index_path(), (e for part in written for e in part))
        with_index_retry(index.write)  # a `git status` run in the new folder the moment it appeared holds the lock
        self._staging.adopt(self._repo, index, tree)
        self._write_head(commit)
        if self._watching:
            try:
                watch = self._watch = _Watch(self.path, self._repo, self._rules())
                watch.watch(dirs)  # every folder there is: nobody else has written here yet
                watch.quiet = True
            except OSError as exc:
                log.info("%s: changes are found by scanning (%s)", self.path, exc)
                self._unwatch()
                self._watching = False

    # -- helpers --------------------------------------------------------------------
    @property
    def object_store(self) -> BaseObjectStore:
        """The repository's object store (dulwich's ``BaseObjectStore``): what a capture wrote, to read."""
        return self._store.object_store

    def tree_of(self, commit: ObjectID) -> ObjectID:
        """The tree of ``commit`` (:class:`CheckpointError` if it is not a commit of the repository)."""
        return self._tree_of(commit)

    def _tree_of(self, commit: ObjectID) -> ObjectID:
        try:
            obj = self._store.object_store[commit]
        except KeyError:
            raise CheckpointError(
                f"{self.path}: no commit {commit.decode(errors='replace')} in the repository"
            ) from None
        if not isinstance(obj, Commit):
            raise CheckpointError(f"{self.path}: {commit.decode(errors='replace')} is not a commit")
        tree: ObjectID = obj.tree
        return tree

    def _check_unlocked(self) -> None:
        lock = Path(self._repo.index_path() + ".lock")
        if lock.exists():
            raise CheckpointError(f"{lock} exists: another git process is running (or one crashed; remove the file)")

    def _write_head(self, commit: ObjectID) -> None:
        """HEAD detached at ``commit``: ``HEAD.lock`` made exclusively, then renamed over ``HEAD`` (as git does)."""
        _write_locked(self.admin / "HEAD", commit + b"\n")

    def _unlink_modified(self, changes: Sequence[TreeChange]) -> None:
        """Remove the files about to be rewritten, so that each is written as a new file (as git does).

        Rewriting a file in place truncates it, and ext4 (``auto_da_alloc``) then writes its blocks out
        on close: a disk wait a file, where a new file's blocks go out later with everything else.
        """
        top = os.fsencode(self.path)
        for ch in changes:
            if ch.type == "modify" and ch.new is not None and ch.new.path and ch.new.mode != _GITLINK:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    os.unlink(top + b"/" + ch.new.path)

    def _clear_the_way(self, changes: Sequence[TreeChange]) -> int:
        """Remove what would make a file of the target land elsewhere or fail: how many were removed.

        Left after the scan, these are ignored (or skipped) entries: a file or symlink where the
        target has a folder (a symlinked folder would be written through), a folder where it has a file.
        """
        top = os.fsencode(self.path)
        removed = 0
        for ch in changes:
            new = ch.new
            if ch.type == "delete" or new is None or not new.path:
                continue
            parts = new.path.split(b"/")
            full = top
            for i, part in enumerate(parts):
                full = full + b"/" + part
                try:
                    st = os.lstat(full)
                except (FileNotFoundError, NotADirectoryError):
                    break  # nothing there, nor below
                if stat.S_ISDIR(st.st_mode):
                    if i == len(parts) - 1 and new.mode != _GITLINK:
                        removed += _remove_tree(full)
                    continue
                if i < len(parts) - 1:  # a file or symlink where a folder must be
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(full)
                    removed += 1
                break
        return removed


class WorktreePool:
    """A session's worktrees: its integration worktree and a pool of attempt worktrees (``w1``, ``w2`` …).

    :meth:`acquire` and :meth:`release` may be called from any thread: choosing the worktree is
    done under a lock, moving it (or making it) outside, by the worker it is handed to, which may
    capture it on its own thread until :meth:`release` gives it back.  The other methods are for
    the coordinating thread while no worker holds a worktree.
    """

    def __init__(
        self,
        repo: str | os.PathLike[str],
        session: str,
        *,
        clock: Clock | None = None,
        watch: bool = True,
        root: Path | None = None,
    ) -> None:
        if not isinstance(session, str) or not SESSION_ID.match(session) or session.endswith((".lock", ".")):
            raise CheckpointError(f"bad session id {session!r}: it names worktrees (letters, digits, '.', '_', '-')")
        self.session = session
        self._clock = clock or SystemClock()
        self._watch = watch
        self._common = _common_dir(repo)
        # git's admin files hold absolute paths; ``root``: the session's folder elsewhere (a Dask worker's own)
        self.root = (root if root is not None else worktrees_root(self._common) / session).absolute()
        self._open: dict[str, Worktree] = {}  # opened or made by this pool
        self._busy: set[str] = set()  # handed out by acquire, not released yet
        self._lock = threading.RLock()  # guards _open and _busy: workers acquire and release on their own threads

    def integration(self, commit: ObjectID | None = None) -> Worktree:
        """The session's integration worktree: opened if it exists, else made at ``commit``."""
        wt = self._open.get(INTEGRATION) or self._open_existing(INTEGRATION)
        if wt is not None:
            return wt
        if commit is None:
            raise CheckpointError(
                f"{self._path(INTEGRATION)}: no integration worktree yet: give the commit to make it at"
            )
        return self._create(INTEGRATION, commit)

    def acquire(self, commit: ObjectID) -> Worktree:
        """A free pooled worktree moved to ``commit``: one released before, one left on disk, or a new one.

        Thread-safe: the worktree is chosen under the pool's lock and moved (or made) outside it.
        """
        with self._lock:
            free = self._free_names()
            if free:
                name = free[0]
                wt: Worktree | None = self._open.get(name) or self._open_existing(name)
            else:
                k = 1
                while f"w{k}" in self._open or f"w{k}" in self._busy or self._path(f"w{k}").exists():
                    k += 1
                name, wt = f"w{k}", None
            self._busy.add(name)
        try:
            if wt is None:
                wt = self._create(name, commit)  # a new one, or what a crash left of one: made again
            else:
                wt.move(commit)  # on failure it is free again: a later move starts from whatever it holds
        except BaseException:
            with self._lock:
                self._busy.discard(name)
            raise
        return wt

    def release(self, wt: Worktree) -> None:
        """Give ``wt`` back: the next :meth:`acquire` may hand it out (moved to its commit)."""
        with self._lock:
            if self._open.get(wt.name) is not wt or wt.name == INTEGRATION:
                raise CheckpointError(f"{wt.path}: not a pooled worktree of session {self.session}")
            self._busy.discard(wt.name)

    def close(self) -> None:
        """Release the open files of every worktree this pool opened (they stay on disk, and open again)."""
        with self._lock:
            opened = list(self._open.values())
            self._open.clear()
            self._busy.clear()
        for wt in opened:
            wt.close()

    def existing(self) -> list[Worktree]:
        """Every worktree of the session on disk (the integration one first), opened."""
        out: list[Worktree] = []
        for name in [INTEGRATION, *self._pooled_on_disk()]:
            wt = self._open.get(name) or self._open_existing(name)
            if wt is not None:
                out.append(wt)
        return out

    def remove_all(self) -> list[Path]:
        """Remove every worktree of the session: its folder and git's admin folder; refs and branches stay.

        Returns the worktree folders removed (or whose admin folder was left when the folder had gone).
        """
        for wt in self._open.values():
            wt.close()
        self._open.clear()
        self._busy.clear()
        removed = _remove_session(self._common, self.root)
        log.info("session %s: %d worktree(s) removed", self.session, len(removed))
        return removed

    # -- helpers --------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        return self.root / f"maestro-{self.session}-{name}"  # worktree_dir's name, under root

    def _admin(self, name: str) -> Path:
        return self._common / "worktrees" / self._path(name).name

    def _free_names(self) -> list[str]:
        """The pooled worktrees not handed out: those this pool opened first, then the others on disk."""
        known = [n for n in self._open if n != INTEGRATION and n not in self._busy]
        return known + [n for n in self._pooled_on_disk() if n not in self._open and n not in self._busy]

    def _pooled_on_disk(self) -> list[str]:
        """The names of the pooled worktrees whose folders exist, in number order."""
        prefix = f"maestro-{self.session}-"
        try:
            names = [p.name[len(prefix) :] for p in self.root.iterdir() if p.name.startswith(prefix)]
        except FileNotFoundError:
            return []
        matched = [(int(m.group(1)), n) for n in names if (m := _POOLED.match(n))]
        return [n for _k, n in sorted(matched)]

    def _open_existing(self, name: str) -> Worktree | None:
        """The worktree ``name`` if it is whole on disk (folder, ``.git`` file, admin folder, index, HEAD)."""
        path, admin = self._path(name), self._admin(name)
        whole = all(p.is_file() for p in (path / ".git", admin / "gitdir", admin / "HEAD", admin / "index"))
        if not whole:
            return None
        try:
            pointed = (admin / "gitdir").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if Path(pointed) != path / ".git":
            return None  # the admin folder of another worktree of the same name (another clone of the cache?)
        wt = Worktree(self._common, self.session, name, path, self._clock, watch=self._watch)
        with self._lock:
            self._open[name] = wt
        return wt

    def _create(self, name: str, commit: ObjectID) -> Worktree:
        """Make worktree ``name`` at ``commit`` (what a crashed attempt left of it removed first)."""
        path, admin = self._path(name), self._admin(name)
        for leftover in (path, admin):
            if leftover.exists() or leftover.is_symlink():
                log.warning("%s: removing what an unfinished worktree left", leftover)
                _remove_tree(os.fsencode(leftover))
        try:
            path.mkdir(parents=True)
            admin.mkdir(parents=True)
            # "locked" while it is made, as git does: a `git worktree prune` meanwhile leaves it alone.
            (admin / "locked").write_bytes(b"initializing\n")
            (path / ".git").write_bytes(b"gitdir: " + os.fsencode(admin) + b"\n")
            (admin / "commondir").write_bytes(b"../..\n")
            (admin / "HEAD").write_bytes(commit + b"\n")
            (admin / "gitdir").write_bytes(os.fsencode(path / ".git") + b"\n")
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot make the worktree: {exc.strerror or exc}") from exc
        wt = Worktree(self._common, self.session, name, path, self._clock, watch=self._watch)
        try:
            wt._populate(commit)
        except BaseException:
            wt.close()  # its repositories' open packs; what was written stays for the next _create to remove
            raise
        (admin / "locked").unlink()
        with self._lock:
            self._open[name] = wt
        log.info("session %s: worktree %s made at %s", self.session, path, commit.decode()[:12])
        return wt


def session_worktrees(repo: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Every session with worktrees of ``repo`` (folders, or git admin folders whose folder has gone): their paths."""
    common = _common_dir(repo)
    root = worktrees_root(common).absolute()
    out: dict[str, set[Path]] = {}
    with contextlib.suppress(FileNotFoundError):
        for session_dir in root.iterdir():
            for p in session_dir.iterdir() if session_dir.is_dir() else ():
                if p.name.startswith(f"maestro-{session_dir.name}-"):
                    out.setdefault(session_dir.name, set()).add(p)
    for path in _admin_paths(common).values():
        if path.parent.parent == root:
            out.setdefault(path.parent.name, set()).add(path)
    return {s: sorted(paths) for s, paths in sorted(out.items())}


# -- module helpers ---------------------------------------------------------------------
def _common_dir(repo: str | os.PathLike[str]) -> Path:
    """The common git directory of the repository holding ``repo`` (a working tree's path, or any path in it)."""
    path = Path(repo)
    if not path.is_dir():
        raise CheckpointError(f"{repo}: no such directory")
    try:
        found = Repo.discover(str(path))
    except NotGitRepository:
        raise CheckpointError(f"{repo}: not a git repository") from None
    try:
        return Path(found.commondir()).resolve()
    finally:
        found.close()


def _admin_paths(common: Path) -> dict[Path, Path]:
    """git's admin folders of the linked worktrees whose folder is named ``maestro-*``: admin → worktree folder."""
    out: dict[Path, Path] = {}
    with contextlib.suppress(FileNotFoundError):
        for admin in (common / "worktrees").iterdir():
            if not admin.name.startswith("maestro-"):
                continue
            try:
                dotgit = Path((admin / "gitdir").read_text(encoding="utf-8").strip())
            except (OSError, UnicodeDecodeError):
                continue
            out[admin] = dotgit.parent
    return out


def _remove_session(common: Path, root: Path) -> list[Path]:
    """Remove the worktrees under ``root`` (one session's folder) and their admin folders; the folders removed."""
    removed: set[Path] = set()
    for admin, path in _admin_paths(common).items():
        if path.parent == root:
            _remove_tree(os.fsencode(path))
            _remove_tree(os.fsencode(admin))
            removed.add(path)
    with contextlib.suppress(FileNotFoundError):
        for path in root.iterdir():  # a folder whose admin folder had gone (`git worktree prune` would not know it)
            if path.name.startswith(f"maestro-{root.name}-"):
                _remove_tree(os.fsencode(path))
                removed.add(path)
    with contextlib.suppress(OSError):
        root.rmdir()
    with contextlib.suppress(OSError):
        (common / "worktrees").rmdir()  # as git leaves it when the last linked worktree goes
    return sorted(removed)


class _Watch:
    """What happened in a worktree's folders since it last matched its index: Linux's inotify, one instance a worktree.

    Every folder that may hold something a scan would see is watched (not ``.git``, ``.flow/``,
    nested repositories, nor folders ignored by name unless they hold tracked files).  A folder
    created later is watched when its creation is read (and walked then: anything made in it
    before is covered by the scan that a change always causes).  An overflow of the queue, a
    watched folder moved, or a change to the ignore rules (a ``.gitignore``, ``info/exclude``,
    the global excludes file) makes it watch everything again and say "unknown".  What inotify
    does not report: writes through ``mmap``, through another hard link, or from another machine
    on a network file system.
    """

    def __init__(self, top: Path, repo: Repo, rules: Sequence[Path]) -> None:
        self._inotify = Inotify()
        self._top = os.fsencode(top)
        self._repo = repo
        self._rules = rules
        self._signature = self._rules_signature()
        self._folders: dict[int, bytes] = {}  # watch descriptor -> folder (relative; b"" for the top)
        self.quiet = False  # the worktree matched its index when the events were last read

    def close(self) -> None:
        self._inotify.close()

    def watch(self, folders: Iterable[bytes]) -> None:
        """Watch these folders (and the top): a new worktree's, all known."""
        for rel in (b"", *folders):
            self._add(rel)

    def watch_all(self, tracked: Iterable[bytes]) -> None:
        """Watch every folder a scan would enter, and every folder holding tracked files (with their parents)."""
        self._folders.clear()  # the kernel gives the same descriptors back for folders it already watches
        self._add_tree(b"", IgnoreRules.of(self._repo))
        for folder in tracked:
            rel = folder
            while rel:
                self._add(rel)
                rel = rel.rpartition(b"/")[0]

    def drain(self) -> set[bytes] | None:
        """The paths with events since the last drain, new folders watched on the way; None when unknown."""
        paths: set[bytes] = set()
        unknown = False
        rules = False
        created: list[bytes] = []
        folders = self._folders
        for wd, mask, name in self._inotify.events():
            if mask & IN_Q_OVERFLOW:
                unknown = True
                continue
            folder = folders.get(wd)
            if mask & IN_IGNORED:
                folders.pop(wd, None)  # its folder is gone; its parent reported that
                continue
            if folder is None:
                continue  # a folder watched before a rescan and since moved out of the way
            path = (folder + b"/" + name if folder else name) if name else folder
            paths.add(path)
            if mask & IN_MOVE_SELF:
                unknown = True  # every path under it moved: watch again from the top
            elif mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                created.append(path)
            if name == b".gitignore":
                rules = True
        signature = self._rules_signature()
        if signature != self._signature:
            self._signature, rules = signature, True
        if unknown or rules:
            return None
        if created:
            ignore = IgnoreRules.of(self._repo)
            for rel in created:
                self._add_tree(rel, ignore)
        return paths

    def _add_tree(self, rel: bytes, ignore: IgnoreRules) -> None:
        todo = [rel]
        while todo:
            d = todo.pop()
            if not self._add(d):
                continue
            full = self._top + b"/" + d if d else self._top
            try:
                with os.scandir(full) as it:
                    subfolders = [e for e in it if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue  # gone meanwhile (its parent's event says so)
            for e in subfolders:
                if e.name == b".git" or (not d and e.name == FLOW) or os.path.lexists(e.path + b"/.git"):
                    continue
                child = d + b"/" + e.name if d else e.name
                if not ignore.ignored(child, True):
                    todo.append(child)

    def _add(self, rel: bytes) -> bool:
        wd = self._inotify.add(self._top + b"/" + rel if rel else self._top)  # OSError: past the user's limit
        if wd is None:
            return False
        self._folders[wd] = rel
        return True

    def _rules_signature(self) -> list[tuple[int, int, int] | None]:
        out: list[tuple[int, int, int] | None] = []
        for p in self._rules:
            try:
                st = os.stat(p)
            except OSError:
                out.append(None)
            else:
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return out


class _PackReader:
    """The objects a new worktree needs, read straight from the repository's packs.

    dulwich reads an object through several layers (index bisection, object header classes, an
    LRU cache, delta resolution with checks): about 25 µs a small blob, five times what the
    bytes cost.  Writing a whole tree reads every blob once, so this reader maps each pack
    (``.idx`` version 2 and ``.pack``, up to 250,000 objects) itself: one dict from binary id to offset, then per
    object a header, one ``zlib`` call and dulwich's C ``apply_delta`` down an offset-delta
    chain, bases kept while they fit a budget.  What it does not handle (a loose object, an
    alternate, a reference delta, another index version or object format) goes to dulwich.
    Threads may share one reader: the maps are read-only and the cache only an optimisation.
    """

    _BUDGET = 64 << 20  # bytes of delta bases kept
    _MAPPED_MAX = 250_000  # objects in a pack mapped (a map costs about 100 bytes an object)

    def __init__(self, objects: Path, store: BaseObjectStore) -> None:
        self._store = store
        self._packs: list[tuple[dict[bytes, int], mmap.mmap]] = []
        self._cache: dict[tuple[int, int], tuple[int, bytes]] = {}
        self._cached = 0
        for idx in sorted((objects / "pack").glob("pack-*.idx")):
            with contextlib.suppress(OSError, ValueError):
                self._open(idx)

    def _open(self, idx: Path) -> None:
        data = idx.read_bytes()
        if data[:8] != b"\xfftOc\x00\x00\x00\x02":
            return  # index version 1, or another format: dulwich reads those
        n = int.from_bytes(data[8 + 255 * 4 : 8 + 256 * 4], "big")
        if n > self._MAPPED_MAX:
            return  # a map would cost more than dulwich's lookups save: dulwich reads this pack
        names_at, size = 8 + 256 * 4, 20
        if len(data) < names_at + n * (size + 8) + 2 * size:
            return  # not SHA-1 names (or a torn file)
        names = data[names_at : names_at + size * n]
        offsets_at = names_at + (size + 4) * n
        offsets = list(struct.unpack(f">{n}L", data[offsets_at : offsets_at + 4 * n]))
        large_at = offsets_at + 4 * n
        for i, off in enumerate(offsets):
            if off & 0x80000000:  # past 2 GiB: the offset is in the table of 8-byte offsets
                k = large_at + 8 * (off & 0x7FFFFFFF)
                offsets[i] = int.from_bytes(data[k : k + 8], "big")
        with open(idx.with_suffix(".pack"), "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        ids = [names[i : i + size] for i in range(0, size * n, size)]
        self._packs.append((dict(zip(ids, offsets, strict=True)), mm))

    def __enter__(self) -> _PackReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        for _names, mm in self._packs:
            mm.close()
        self._packs = []
        self._cache.clear()

    def get(self, sha: ObjectID) -> tuple[int, bytes]:
        """The object's type number and bytes."""
        if len(sha) == 40:
            binary = bytes.fromhex(sha.decode("ascii"))
            for i, (names, _mm) in enumerate(self._packs):
                offset = names.get(binary)
                if offset is not None:
                    found = self._at(i, offset)
                    if found is not None:
                        return found
                    break
        return self._store.get_raw(sha)

    def _at(self, pack: int, offset: int) -> tuple[int, bytes] | None:
        """The object at ``offset`` of pack ``pack``, its offset deltas applied; None for a reference delta."""
        mm = self._packs[pack][1]
        cache = self._cache
        chain: list[tuple[int, bytes]] = []
        while True:
            hit = cache.get((pack, offset))
            if hit is not None:
                kind, data = hit
                break
            c = mm[offset]
            kind, size, shift, pos = (c >> 4) & 7, c & 15, 4, offset + 1
            while c & 0x80:
                c = mm[pos]
                pos += 1
                size |= (c & 0x7F) << shift
                shift += 7
            if kind == 7:
                return None  # a reference delta (a thin pack's): dulwich resolves it
            if kind != 6:
                data = _inflate(mm, pos, size)
                if chain:
                    self._keep(pack, offset, kind, data)
                break
            c = mm[pos]
            pos += 1
            back = c & 0x7F
            while c & 0x80:
                c = mm[pos]
                pos += 1
                back = ((back + 1) << 7) | (c & 0x7F)
            chain.append((offset, _inflate(mm, pos, size)))
            offset -= back
        for k, (at, delta) in enumerate(reversed(chain)):
            data = b"".join(apply_delta(data, delta))
            if k < len(chain) - 1:
                self._keep(pack, at, kind, data)  # the base of the next one
        return kind, data

    def _keep(self, pack: int, offset: int, kind: int, data: bytes) -> None:
        if self._cached > self._BUDGET:
            self._cache.clear()
            self._cached = 0
        self._cache[(pack, offset)] = (kind, data)
        self._cached += len(data)


_BAD_NAMES = frozenset((b"", b".", b"..", b".git"))


def _check_name(name: bytes, path: bytes) -> None:
    """Refuse a tree entry git would refuse to check out: it could write outside the worktree or into ``.git``."""
    if name.lower() in _BAD_NAMES or b"/" in name or b"\0" in name:
        raise CheckpointError(f"{os.fsdecode(path)}: a path git refuses to check out (in a tree of the repository)")


def _inflate(mm: mmap.mmap, pos: int, size: int) -> bytes:
    """The ``size`` bytes of the zlib stream at ``pos`` (which never takes more than size + size/1000 + 64 bytes)."""
    return zlib.decompressobj().decompress(mm[pos : pos + size + size // 1000 + 64])


def _listing(reader: _PackReader, tree: ObjectID) -> tuple[list[bytes], list[tuple[bytes, int, ObjectID]]]:
    """The folders (parents first) and the files (path order) of ``tree``: paths relative to its top."""
    dirs: list[bytes] = []
    files: list[tuple[bytes, int, ObjectID]] = []
    todo: list[tuple[bytes, ObjectID]] = [(b"", tree)]
    while todo:
        prefix, sha = todo.pop()
        kind, raw = reader.get(sha)
        if kind != Tree.type_num:
            raise CheckpointError(f"{sha.decode(errors='replace')} is not a tree")
        for name, mode, child in parse_tree(raw, len(sha) // 2):
            path = prefix + name
            _check_name(name, path)
            if mode == _TREE:
                dirs.append(path)  # after its parent's
                todo.append((path + b"/", ObjectID(child)))
            else:
                files.append((path, mode, ObjectID(child)))
    files.sort()  # one writer's share of the files is a run of neighbouring folders
    return dirs, files


def _tree_diff(store: BaseObjectStore, a: ObjectID, b: ObjectID) -> list[TreeChange]:
    """What ``dulwich.diff_tree.tree_changes(store, a, b)`` gives (a change of kind is a delete and an add), leaner.

    Only the trees on differing paths are read, each parsed once into a dict: a move of a few files
    through a deep tree costs tens of tree reads, not a Python object per entry of every tree on the way.
    """
    out: list[TreeChange] = []
    get_raw = store.get_raw
    sha_len = len(a) // 2  # bytes of a binary object id (hex ids here)

    def entries(sha: ObjectID | None) -> dict[bytes, tuple[int, ObjectID]]:
        if sha is None:
            return {}
        kind, raw = get_raw(sha)
        if kind != Tree.type_num:
            raise CheckpointError(f"{sha.decode(errors='replace')} is not a tree")
        return {name: (mode, ObjectID(child)) for name, mode, child in parse_tree(raw, sha_len)}

    def walk(prefix: bytes, x_sha: ObjectID | None, y_sha: ObjectID | None) -> None:
        xs, ys = entries(x_sha), entries(y_sha)
        for name in sorted(xs.keys() | ys.keys()):
            x, y = xs.get(name), ys.get(name)
            if x == y:
                continue
            path = prefix + name
            _check_name(name, path)
            x_dir = x is not None and x[0] == _TREE
            y_dir = y is not None and y[0] == _TREE
            if x_dir and y_dir:
                assert x is not None and y is not None
                walk(path + b"/", x[1], y[1])
                continue
            if x is not None and y is not None and not x_dir and not y_dir and (x[0] ^ y[0]) & 0o170000 == 0:
                out.append(TreeChange("modify", TreeEntry(path, *x), TreeEntry(path, *y)))
                continue
            if x is not None:
                if x_dir:
                    walk(path + b"/", x[1], None)
                else:
                    out.append(TreeChange.delete(TreeEntry(path, *x)))
            if y is not None:
                if y_dir:
                    walk(path + b"/", None, y[1])
                else:
                    out.append(TreeChange.add(TreeEntry(path, *y)))

    if a != b:
        walk(b"", a, b)
    return out


def _write_files(
    reader: _PackReader, top: bytes, files: Iterable[tuple[bytes, int, ObjectID]]
) -> list[tuple[bytes, IndexEntry]]:
    """Write each file (its folder exists) and return its index entry, from the stat data of what was written."""
    get_raw = reader.get
    out: list[tuple[bytes, IndexEntry]] = []
    append = out.append
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for path, mode, sha in files:
        full = top + b"/" + path
        try:
            if mode == _GITLINK:  # a submodule: an empty folder, as git leaves it
                os.mkdir(full)
                st = os.lstat(full)
            elif mode == _LINK:
                os.symlink(get_raw(sha)[1], full)
                st = os.lstat(full)
            else:
                fd = os.open(full, flags, 0o777 if mode == _EXEC else 0o666)
                try:
                    data = memoryview(get_raw(sha)[1])
                    while data:
                        data = data[os.write(fd, data) :]
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
        except (OSError, KeyError) as exc:
            raise CheckpointError(f"{os.fsdecode(full)}: cannot write the file: {exc}") from exc
        # index_entry_from_stat's fields, without its per-call checks (a fifth of this loop's Python time)
        ctime, mtime = divmod(st.st_ctime_ns, 1_000_000_000), divmod(st.st_mtime_ns, 1_000_000_000)
        append((path, IndexEntry(ctime, mtime, st.st_dev, st.st_ino, mode, st.st_uid, st.st_gid, st.st_size, sha)))
    return out


def _write_locked(path: Path, data: bytes) -> None:
    lock = str(path) + ".lock"
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise CheckpointError(f"{lock} exists: another git process is running (or one crashed)") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(lock, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _remove_tree(full: bytes) -> int:
    """Remove a folder (never following a symlink) or a file; how many files (and symlinks) went."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(full)
        return 1
    count = sum(len(names) for _root, _dirs, names in os.walk(full))
    try:
        shutil.rmtree(full)
    except OSError as exc:
        raise CheckpointError(f"{os.fsdecode(full)}: cannot remove: {exc.strerror or exc}") from exc
    return count


def _gitlink(ch: TreeChange) -> bool:
    return ch.new is not None and ch.new.mode == _GITLINK
