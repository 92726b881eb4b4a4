"""The working tree against its index, at the cost of the change: what changed, staged as a tree, written back.

::

    staging = Staging(repo)            # the repository whose object store takes the blobs and trees
    staging.load(workdir_repo)         # the index, read once (again only if something else rewrote it)
    scan = staging.scan()              # the working tree compared with the index by stat data
    tree = staging.apply(scan, write_index=True)   # the tree of the working tree; the index updated
    staging.write_changes(changes)     # the working tree and index follow changes to another tree (a rollback)

A scan walks the tree once, skipping ignored folders, and hashes only the
files whose stat data differ from the index (or that were written in the same
timestamp tick as the index: git's racy-clean rule); the new tree is built from
the index's tree by rewriting only the trees on changed paths.  Writing changes
back touches only the files that differ.  ``.flow/`` (maestro's own state) is
never scanned.  :class:`~maestro.git.checkpoints.Checkpointer` drives it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator

import attrs
from dulwich.config import StackedConfig
from dulwich.diff_tree import TreeChange
from dulwich.index import build_file_from_blob, index_entry_from_stat
from dulwich.objects import Blob, ObjectID
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError
from maestro.core.records import FileChange
from maestro.git.index import MODE_BITS, Change, GitIndex, Objects, StatKey, file_mode, signature
from maestro.git.numstat import PathChange, file_changes
from maestro.git.tree import IgnoreRules

__all__ = ["FLOW", "Scan", "Staging"]

log = logging.getLogger("maestro")

FLOW = b".flow"
_GITLINK = 0o160000
_KEEP_CONTENT = 32 << 20  # bytes of changed files a scan keeps for the line counts of the change


@attrs.define
class Scan:
    """What a walk of the working tree found against the index."""

    changed: dict[bytes, tuple[int, ObjectID, os.stat_result]] = attrs.field(factory=dict)  # added or modified
    removed: set[bytes] = attrs.field(factory=set)
    restat: dict[bytes, os.stat_result] = attrs.field(factory=dict)  # same content, new stat data
    contents: dict[ObjectID, bytes] = attrs.field(factory=dict)  # what the changed files hold (up to 32 MiB)


class _ScanJob:
    """What a scan does with a file its stat data do not vouch for: hash it, and stage it if it changed."""

    def __init__(self, staging: Staging, normalize: Callable[[bytes, bytes], bytes]) -> None:
        assert staging.index is not None
        self.staging = staging
        self.entries = staging.index.entries
        self.kept = staging.index.kept
        self.add = staging._objects.add
        self.normalize = normalize
        self.scan = Scan()
        self.kept_bytes = 0

    def file(self, rel: bytes, full: bytes, st: os.stat_result, tracked: bool) -> bool:
        """Look at file ``rel`` (at ``full``); whether it is a tracked name found."""
        scan = self.scan
        if rel in self.kept:  # skip-worktree: git assumes it unchanged
            return True
        if not tracked:
            if self.staging._ignored(rel, False):
                return False
            data = self.normalize(_read(full, st), rel)
            sha = self.add(b"blob", data)
            scan.changed[rel] = (self.staging._mode(st.st_mode, None), sha, st)
            self._keep(sha, data)
            return False
        entry = self.entries[rel]
        mode = self.staging._mode(st.st_mode, entry.mode)
        data = self.normalize(_read(full, st), rel)
        sha = Objects.id_of(b"blob", data)
        if sha == entry.sha and mode == entry.mode:
            scan.restat[rel] = st
        else:
            self.add(b"blob", data)
            scan.changed[rel] = (mode, sha, st)
            self._keep(sha, data)
        return True

    def _keep(self, sha: ObjectID, data: bytes) -> None:
        """Keep a changed file's content for the line counts, while the scan holds less than its limit."""
        if self.kept_bytes + len(data) <= _KEEP_CONTENT:
            self.scan.contents[sha] = data
            self.kept_bytes += len(data)


class Staging:
    """One working tree and its index, held in memory between calls.

    ``repo`` is the repository of the working tree (the main one or a session's
    worktree), ``index`` its index and ``tree`` the tree that index stands for.
    Blobs and trees go to the object store of ``main``.
    """

    def __init__(self, main: Repo) -> None:
        self._main = main
        self._objects = Objects(main.object_store)
        self._made: tuple[Scan, ObjectID, dict[bytes, ObjectID]] | None = None  # what apply made, for stage
        # The last apply: the tree before and after, the paths it changed and the content the scan kept.
        self._last: tuple[ObjectID, ObjectID, list[PathChange], dict[ObjectID, bytes]] | None = None
        self.repo: Repo | None = None
        self.index: GitIndex | None = None
        self.tree: ObjectID | None = None  # the tree our in-memory index stands for
        self._tracked_dirs: set[bytes] = set()
        self._ignore: IgnoreRules | None = None
        self._filemode = True

    def forget(self) -> None:
        """Drop the index held: the next :meth:`load` reads it again."""
        self.index = None

    def load(self, repo: Repo) -> None:
        """Work on ``repo``'s working tree; read its index, unless the one in memory is still the one on disk (when
        someone else rewrote it, only the entries that differ are taken again)."""
        self.repo = repo
        held = self.index
        if held is not None and held.path == repo.index_path():
            if held.signature is not None and held.signature == signature(held.path):
                return
            if held.reread():  # rewritten by someone else: the entries that differ are taken again
                self.adopt(repo, held, held.tree(self._objects))
                return
        index = GitIndex.read(repo)
        self.adopt(repo, index, index.tree(self._objects))  # once per Staging (or when it cannot be reread)

    def adopt(self, repo: Repo, index: GitIndex, tree: ObjectID) -> None:
        """Work on ``repo``'s working tree with ``index`` (as on disk, standing for ``tree``): what :meth:`load`
        does once it has read the index, for a caller that has just written one (a new worktree)."""
        self.repo = repo
        self.index = index
        self.tree = tree
        self._tracked_dirs = index.folders()
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
        return self._ignore.ignored(rel, is_dir)

    def scan(self) -> Scan:
        """Walk the working tree once and compare it with the index by stat data.

        The hot path is a file whose stat data match its index entry: it costs an
        ``lstat`` relative to its folder (``fstatat``: no path to resolve) and a few
        comparisons, nothing else (no path is even built).  The walk is the scan's
        own loop (``listdir``, then one ``fstatat`` a name, which also tells the
        folders), not :class:`~maestro.git.tree.TreeWalk` and its ``DirEntry``
        objects: 15% of the scan's time.
        """
        assert self.index is not None and self.repo is not None
        index = self.index
        dirs = index.dirs
        top = os.fsencode(self.repo.path)
        sig = index.signature
        racy_after = sig[0] if sig else 0  # entries not older than the index are hashed (git's racy rule)
        # Fresh every walk: .gitignore, .gitattributes, info/exclude and the config may have changed since the last.
        config = self.repo.get_config_stack()
        if self._ignore is None or self._ignore.top != top:
            self._ignore = IgnoreRules(top, self.repo.commondir())
        self._ignore.begin(config)
        job = _ScanJob(self, self._normalizer(config))
        scan = job.scan
        visited: set[bytes] = set()
        tracked_dirs, kept = self._tracked_dirs, index.kept
        lstat, listdir, is_reg, is_lnk = os.stat, os.listdir, stat.S_ISREG, stat.S_ISLNK
        dir_bits, file_type = stat.S_IFDIR, 0o170000
        none: dict[bytes, StatKey] = {}
        todo: list[tuple[bytes, bytes]] = [(b"", top)]
        while todo:
            rel_dir, path = todo.pop()
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone, or a file now: nothing to walk
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    continue  # a symlink now: not entered
                raise
            visited.add(rel_dir)
            names = dirs.get(rel_dir, none)
            prefix = rel_dir + b"/" if rel_dir else b""
            matched = 0  # tracked names found here as files (or submodules)
            try:
                listing = listdir(path)
                for name in listing:
                    if name == b".git" or (name == FLOW and not rel_dir):
                        continue  # git's own, and maestro's
                    try:
                        st = lstat(name, dir_fd=fd, follow_symlinks=False)  # fstatat: no path to resolve
                    except FileNotFoundError:
                        continue  # gone meanwhile
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
                    if st.st_mode & file_type == dir_bits:
                        child = prefix + name
                        if child in kept:  # a submodule: tracked, found, its commit left as recorded
                            matched += 1
                            continue
                        full = path + b"/" + name
                        if child in tracked_dirs or not self._prune(child, full):
                            todo.append((child, full))
                        continue
                    if not (is_reg(st.st_mode) or is_lnk(st.st_mode)):
                        continue  # a fifo or socket: not content (a tracked one counts as deleted)
                    if job.file(prefix + name, path + b"/" + name, st, key is not None):
                        matched += 1
            finally:
                os.close(fd)
            if matched != len(names):  # some tracked files of this folder are gone
                present = set(listing)
                gone = [n for n in names if n not in present]
                if len(gone) == len(names) - matched:  # every tracked name still listed was found
                    scan.removed.update(prefix + n for n in gone)
                else:  # a tracked name listed but no file now (a folder, a fifo), or one gone meanwhile
                    scan.removed.update(prefix + n for n in names if prefix + n not in scan.changed)
                    self._keep_present(scan, top, prefix, names)
        for d, tracked in dirs.items():
            if d not in visited:  # the whole folder is gone (or is a file now)
                prefix = d + b"/" if d else b""
                scan.removed.update(prefix + n for n in tracked)
        scan.removed -= kept
        return scan

    def _prune(self, rel: bytes, full: bytes) -> bool:
        """An untracked folder left out: a nested repository, an ignored folder."""
        if os.path.lexists(full + b"/.git"):
            log.warning("skipping %s: a nested git repository", os.fsdecode(rel))
            return True
        return self._ignored(rel, True)

    def _normalizer(self, config: StackedConfig) -> Callable[[bytes, bytes], bytes]:
        """Check-in normalisation (``text=auto``, ``eol``, ``core.autocrlf``) as ``git add`` applies it.

        Matching attributes costs about a millisecond a file in dulwich, so it is
        skipped when nothing could ask for it: no ``.gitattributes`` anywhere in the
        index or at the top, no ``info/attributes``, no ``core.autocrlf``.
        """
        assert self.repo is not None and self.index is not None
        try:
            autocrlf: bytes | None = config.get((b"core",), b"autocrlf")
        except KeyError:
            autocrlf = None
        attributes = (
            any(b".gitattributes" in names for names in self.index.dirs.values())
            or os.path.lexists(os.path.join(self.repo.path, ".gitattributes"))
            or os.path.lexists(os.path.join(self._main.controldir(), "info", "attributes"))
        )
        if not attributes and autocrlf in (None, b"false"):
            return _as_is
        checkin = self.repo.get_blob_normalizer().checkin_normalize

        def normalize(data: bytes, path: bytes) -> bytes:
            return checkin(Blob.from_string(data), path).as_raw_string()

        return normalize

    def _mode(self, st_mode: int, recorded: int | None) -> int:
        """The mode to stage: with ``core.fileMode = false`` the execute bit is not the file's to say."""
        mode = file_mode(st_mode)
        if self._filemode or mode == 0o120000:
            return mode
        return recorded if recorded in (0o100644, 0o100755) else 0o100644

    def _keep_present(self, scan: Scan, top: bytes, prefix: bytes, names: dict[bytes, StatKey]) -> None:
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

    def apply(self, scan: Scan, *, write_index: bool) -> ObjectID:
        """The tree of the working tree: the index's tree with the scan's changes; update the index.

        Only the trees of the folders holding a change (and those above them) are made.
        """
        assert self.index is not None and self.tree is not None
        if not scan.changed and not scan.removed and not scan.restat:
            self._last = (self.tree, self.tree, [], {})
            return self.tree
        changes: dict[bytes, Change] = dict.fromkeys(scan.removed)
        changes.update((p, (mode, sha)) for p, (mode, sha, _st) in scan.changed.items())
        tree, made = self.index.tree_with(changes, self._objects) if changes else (self.tree, {})
        self._made = (scan, tree, made)
        entries = self.index.entries
        paths: list[PathChange] = []
        for path, change in changes.items():
            e = entries.get(path)
            paths.append((path, None if e is None else (e.mode, e.sha), change))
        self._last = (self.tree, tree, paths, scan.contents)
        if write_index:
            self.stage(scan, tree)
        return tree

    def file_changes(self, old: ObjectID | None, new: ObjectID) -> tuple[FileChange, ...] | None:
        """What changed from tree ``old`` to tree ``new``, with line counts, if the last :meth:`apply` went from
        one to the other (``None`` if not: ask a tree diff); no tree is read, only the blobs of the change."""
        last = self._last
        if last is None or last[0] != old or last[1] != new:
            return None
        contents, store = last[3], self._main.object_store

        def blob(sha: ObjectID) -> bytes:
            data = contents.get(sha)
            if data is not None:
                return data
            try:
                obj = store[sha]
            except KeyError:
                return b""
            return obj.as_raw_string() if isinstance(obj, Blob) else b""

        return file_changes(last[2], blob)

    def stage(self, scan: Scan, tree: ObjectID) -> None:
        """Record the scan in the index (and write it): the index now stands for ``tree``."""
        assert self.index is not None
        if scan.changed or scan.removed or scan.restat:
            index = self.index
            for path in scan.removed:
                index.remove(path)
            for path, (mode, sha, st) in scan.changed.items():
                index.set(path, index_entry_from_stat(st, sha, mode))
            for path, st in scan.restat.items():
                old = index.entries[path]
                index.set(path, index_entry_from_stat(st, old.sha, old.mode))
            made = self._made
            if made is not None and made[0] is scan and made[1] == tree:
                index.adopt(made[2])  # the folders' trees apply made, now the index's own
            self._made = None
            self._track(scan.changed)
            self.tree = tree
            self.write_index()

    def write_index(self) -> None:
        assert self.index is not None
        self.index.write()

    def check_obstacles(self, changes: list[TreeChange]) -> None:
        """Refuse a rollback that files nobody may delete (ignored ones) would stop half-way."""
        assert self.repo is not None
        top = os.fsencode(self.repo.path)
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

    def write_changes(self, changes: list[TreeChange]) -> None:
        """Make the working tree go from one tree to another, touching only what differs."""
        assert self.index is not None and self.repo is not None
        store = self._main.object_store
        top = os.fsencode(self.repo.path)
        index = self.index
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
        self._tracked_dirs = index.folders()


def _as_is(data: bytes, _path: bytes) -> bytes:
    return data


def _read(path: bytes, st: os.stat_result) -> bytes:
    """What git stages for a file or symlink: its bytes, or the symlink's target."""
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path)
    with open(path, "rb") as fh:
        return fh.read()


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
