"""The git index, held in memory so that writing it back and making its tree cost the change, not the repository.

dulwich reads the index (once); each entry is then kept with its stat key
(what a walk of the tree compares against) and its serialized bytes, so that
writing the index after a checkpoint re-encodes only the entries that changed
and joins the rest.  The file written is index version 2 (3 when an entry has
extended flags), without the optional cache extensions, which git rebuilds.

The index also keeps the tree of each folder (git's cache tree, in memory):
a change forgets the trees of the folders above it, and :meth:`GitIndex.tree`
makes only those again, from the entries, never reading an object back.
:class:`Objects` writes loose objects as git does (``core.looseCompression``,
default 1; an object already there, loose or packed, is not written again).
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import hashlib
import os
import secrets
import stat
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import ClassVar, NamedTuple

from dulwich.index import ConflictedIndexEntry, IndexEntry
from dulwich.object_store import BaseObjectStore, DiskObjectStore
from dulwich.objects import Blob, ObjectID, ShaFile, Tree
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError

__all__ = ["MODE_BITS", "Change", "GitIndex", "Objects", "StatKey", "file_mode", "signature", "stat_key"]

#: A path's new mode and blob id, or ``None``: the path goes.
Change = tuple[int, ObjectID] | None

_HEAD = struct.Struct(">10L20sH")
_MASK = 0xFFFFFFFF
_NAME_MASK = 0xFFF
_EXTENDED = 0x4000
_SKIP_WORKTREE = 0x4000  # in the extended flags
_GITLINK = 0o160000


class StatKey(NamedTuple):
    """What must match between an index entry and ``lstat`` for the content to be trusted.

    ``mode_bits`` is ``st_mode & MODE_BITS`` as it must be: the file type and the
    owner's execute bit, all that git records of a mode.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    mode_bits: int


MODE_BITS = 0o170100
_BITS_OF = {0o100644: 0o100000, 0o100755: 0o100100, 0o120000: 0o120100}


def _ns(t: int | float | tuple[int, int]) -> int:
    if isinstance(t, tuple):
        return t[0] * 1_000_000_000 + t[1]
    return int(t * 1_000_000_000)


def file_mode(st_mode: int) -> int:
    """The mode git records for a file or symlink (``cleanup_mode`` for the two kinds a walk stages)."""
    if stat.S_ISLNK(st_mode):
        return 0o120000
    return 0o100755 if st_mode & 0o100 else 0o100644


def stat_key(st: os.stat_result) -> StatKey:
    return StatKey(st.st_size & _MASK, st.st_mtime_ns, st.st_ctime_ns, st.st_ino & _MASK, st.st_mode & MODE_BITS)


def _entry_key(e: IndexEntry) -> StatKey:
    return StatKey(e.size & _MASK, _ns(e.mtime), _ns(e.ctime), e.ino & _MASK, _BITS_OF.get(e.mode, -1))


def _split(t: int | float | tuple[int, int]) -> tuple[int, int]:
    ns = _ns(t)
    return ns // 1_000_000_000, ns % 1_000_000_000


def serialize(path: bytes, e: IndexEntry) -> bytes:
    """One entry as index version 2/3 writes it (padded with 1 to 8 NULs)."""
    cs, cn = _split(e.ctime)
    ms, mn = _split(e.mtime)
    flags = min(len(path), _NAME_MASK) | (e.flags & ~_NAME_MASK & ~_EXTENDED)
    ext = b""
    if e.extended_flags:
        flags |= _EXTENDED
        ext = struct.pack(">H", e.extended_flags)
    head = _HEAD.pack(
        cs & _MASK, cn, ms & _MASK, mn, e.dev & _MASK, e.ino & _MASK, e.mode, e.uid & _MASK, e.gid & _MASK,
        e.size & _MASK, bytes.fromhex(e.sha.decode("ascii")), flags,
    )  # fmt: skip
    n = len(head) + len(ext) + len(path)
    return head + ext + path + b"\0" * (8 - n % 8)


class Objects:
    """Objects written into a repository's object store as git writes them: loose, each once.

    A loose object is compressed at ``core.looseCompression`` (git's default, 1,
    when unset), written to a temporary file in its folder and renamed into
    place; an object already in the store (loose, freshened as git does, or
    packed) is not written again.  Stores this does not know how to write to
    (another object format, shared permissions, not on disk) get dulwich's
    ``add_object``.
    """

    _TYPES: ClassVar[dict[bytes, type[Blob] | type[Tree]]] = {b"blob": Blob, b"tree": Tree}

    def __init__(self, store: BaseObjectStore) -> None:
        self.store = store
        plain = (
            isinstance(store, DiskObjectStore)
            and store.object_format.hex_length == 40
            and getattr(store, "shared_perm", None) is None
        )
        self._dir: str | None = os.fspath(store.path) if isinstance(store, DiskObjectStore) and plain else None
        level = getattr(store, "loose_compression_level", -1)
        self._level = 1 if level is None or level == -1 else int(level)
        self._fsync = bool(getattr(store, "fsync_object_files", False))

    @staticmethod
    def id_of(kind: bytes, data: bytes) -> ObjectID:
        h = hashlib.sha1(b"%s %d\0" % (kind, len(data)), usedforsecurity=False)
        h.update(data)
        return ObjectID(h.hexdigest().encode("ascii"))

    def add(self, kind: bytes, data: bytes) -> ObjectID:
        """Object ``kind`` (``blob`` or ``tree``) of ``data``, written unless the store has it; its id."""
        oid = self.id_of(kind, data)
        if not self.has(oid):
            self.write(kind, oid, data)
        return oid

    def has(self, oid: ObjectID) -> bool:
        store = self.store
        if self._dir is None:
            return oid in store
        try:
            os.utime(self._path(oid))  # a loose object: freshened, so that a gc now does not prune it
            return True
        except FileNotFoundError:
            pass
        except OSError:
            if os.path.exists(self._path(oid)):
                return True
        assert isinstance(store, DiskObjectStore)
        return store.contains_packed(oid) or any(oid in alternate for alternate in store.alternates)

    def write(self, kind: bytes, oid: ObjectID, data: bytes) -> None:
        """Write object ``oid`` (its id already computed) to the store."""
        if self._dir is None:
            obj: ShaFile = self._TYPES[kind].from_string(data)
            self.store.add_object(obj)
            return
        path = self._path(oid)
        folder = os.path.dirname(path)
        tmp = os.path.join(folder, "tmp_obj_" + secrets.token_hex(6))
        z = zlib.compressobj(self._level)
        payload = memoryview(z.compress(b"%s %d\0" % (kind, len(data))) + z.compress(data) + z.flush())
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                while payload:
                    payload = payload[os.write(fd, payload) :]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CheckpointError(f"{path}: cannot write the object: {exc.strerror or exc}") from exc

    def _path(self, oid: ObjectID) -> str:
        assert self._dir is not None
        name = oid.decode("ascii")
        return os.path.join(self._dir, name[:2], name[2:])


class _Overlay:
    """A tree being made from the index and changes: the changes by folder, the folders they touch."""

    def __init__(self, changes: Mapping[bytes, Change]) -> None:
        self.by_dir: dict[bytes, dict[bytes, Change]] = {}
        for path, change in changes.items():
            d, _, name = path.rpartition(b"/")
            self.by_dir.setdefault(d, {})[name] = change
        self.touched: set[bytes] = {b""} if changes else set()  # folders holding a change, and those above
        self.new_kids: dict[bytes, set[bytes]] = {}  # their subfolders, some of which the index may not have
        for folder in self.by_dir:
            d = folder
            while d and d not in self.touched:
                self.touched.add(d)
                parent, _, name = d.rpartition(b"/")
                self.new_kids.setdefault(parent, set()).add(name)
                d = parent
        self.made: dict[bytes, ObjectID] = {}  # the touched folders' trees
        self.pending: dict[bytes, tuple[ObjectID, bytes, list[bytes]]] = {}  # every tree made: id, body, subtrees made


class GitIndex:
    """A repository's index: entries by path, kept sorted, written back incrementally."""

    def __init__(self, path: str, entries: Iterable[tuple[bytes, IndexEntry]]) -> None:
        self.path = path
        self.entries: dict[bytes, IndexEntry] = {}
        self.dirs: dict[bytes, dict[bytes, StatKey]] = {}  # folder -> name -> stat key: what a walk looks up
        self._raw: dict[bytes, bytes] = {}
        for p, e in entries:
            self.entries[p] = e
            d, _, name = p.rpartition(b"/")
            self.dirs.setdefault(d, {})[name] = _entry_key(e)
            self._raw[p] = serialize(p, e)
        self._order = sorted(self.entries)
        # Entries a walk must leave as they are: submodules (gitlinks) and skip-worktree paths.
        self.kept: set[bytes] = {p for p, e in self.entries.items() if _kept(e)}
        self._extended = any(e.extended_flags for e in self.entries.values())
        self.signature = _signature(path)
        # The cache tree: each folder's subfolders (those holding entries), and the tree of each folder whose
        # tree is known (a folder's tree known means its subfolders' trees are known too).
        self._subdirs: dict[bytes, builtins.set[bytes]] = {b"": builtins.set()}
        self._trees: dict[bytes, ObjectID] = {}
        for d in self.dirs:
            self._link(d)

    @classmethod
    def read(cls, repo: Repo) -> GitIndex:
        path = repo.index_path()
        try:
            index = repo.open_index()
            items = list(index.items())
        except Exception as exc:  # dulwich errors (a split index, a bad checksum …) end here
            raise CheckpointError(f"{path}: cannot read the index: {type(exc).__name__}: {exc}") from exc
        unmerged = [p for p, e in items if isinstance(e, ConflictedIndexEntry)]
        if unmerged:
            raise CheckpointError(f"{path}: unmerged paths ({os.fsdecode(unmerged[0])} …): resolve them first")
        return cls(path, ((p, e) for p, e in items if isinstance(e, IndexEntry)))

    def __contains__(self, path: bytes) -> bool:
        return path in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def paths(self) -> Iterator[bytes]:
        return iter(self._order)

    def set(self, path: bytes, entry: IndexEntry) -> None:
        old = self.entries.get(path)
        if old is None:
            bisect.insort(self._order, path)
        self.entries[path] = entry
        d, _, name = path.rpartition(b"/")
        names = self.dirs.get(d)
        if names is None:
            names = self.dirs[d] = {}
            self._link(d)
        names[name] = _entry_key(entry)
        self._raw[path] = serialize(path, entry)
        self._extended = self._extended or bool(entry.extended_flags)
        if _kept(entry):
            self.kept.add(path)
        else:
            self.kept.discard(path)
        if old is None or old.sha != entry.sha or old.mode != entry.mode:
            self._forget_trees(d)

    def remove(self, path: bytes) -> None:
        if self.entries.pop(path, None) is None:
            return
        d, _, name = path.rpartition(b"/")
        names = self.dirs[d]
        del names[name]
        if not names:
            del self.dirs[d]
            self._unlink(d)
        del self._raw[path]
        self.kept.discard(path)
        i = bisect.bisect_left(self._order, path)
        del self._order[i]
        self._forget_trees(d)

    def write(self) -> None:
        """Write the index file: ``index.lock`` made exclusively, then renamed over ``index``."""
        version = 3 if self._extended else 2
        raw = self._raw
        body = b"DIRC" + struct.pack(">LL", version, len(self._order)) + b"".join(map(raw.__getitem__, self._order))
        lock = self.path + ".lock"
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise CheckpointError(f"{lock} exists: another git process is running (or one crashed)") from None
        data = memoryview(body + hashlib.sha1(body, usedforsecurity=False).digest())
        try:
            try:
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)
            os.replace(lock, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            raise CheckpointError(f"{self.path}: cannot write the index: {exc.strerror or exc}") from exc
        self.signature = _signature(self.path)

    # -- the cache tree ------------------------------------------------------------------
    def _link(self, d: bytes) -> None:
        """Note folder ``d`` (and the folders above it) as a subfolder of its parent."""
        subdirs = self._subdirs
        while d:
            parent, _, name = d.rpartition(b"/")
            kids = subdirs.get(parent)
            if kids is None:
                kids = subdirs[parent] = set()
            elif name in kids:
                return
            kids.add(name)
            d = parent

    def _unlink(self, d: bytes) -> None:
        """Forget folder ``d`` (and the folders above it) once it holds nothing."""
        subdirs = self._subdirs
        while d and d not in self.dirs and not subdirs.get(d):
            subdirs.pop(d, None)
            parent, _, name = d.rpartition(b"/")
            subdirs[parent].discard(name)
            d = parent

    def _forget_trees(self, d: bytes) -> None:
        trees = self._trees
        while True:
            trees.pop(d, None)
            if not d:
                return
            d = d.rpartition(b"/")[0]

    def tree(self, objects: Objects) -> ObjectID:
        """The tree these entries stand for; the trees of the changed folders are made, and written if new."""
        return self.tree_with({}, objects)[0]

    def tree_with(self, changes: Mapping[bytes, Change], objects: Objects) -> tuple[ObjectID, dict[bytes, ObjectID]]:
        """The tree of these entries with ``changes`` made (the index itself unchanged), and the trees made of
        the folders the changes touch (for :meth:`adopt`, once the index has the changes)."""
        job = _Overlay(changes)
        try:
            root = self._make(b"", job)
            assert root is not None
            if job.pending:
                self._write_trees(b"", job, objects)
        except BaseException:
            for d in job.pending:  # not known to be written
                self._trees.pop(d, None)
            raise
        return root, job.made

    def adopt(self, made: Mapping[bytes, ObjectID]) -> None:
        """Take the trees :meth:`tree_with` made, once the index holds the changes they were made with."""
        self._trees.update(made)

    def _make(self, d: bytes, job: _Overlay) -> ObjectID | None:
        """Folder ``d``'s tree (``None`` if it holds nothing), made if not known; what is made goes to the job."""
        changed = d in job.touched
        if not changed:
            known = self._trees.get(d)
            if known is not None:
                return known
        prefix = d + b"/" if d else b""
        lines: list[tuple[bytes, bytes]] = []  # (sort key, entry): a folder sorts as its name and a slash
        over = job.by_dir.get(d) if changed else None
        names = self.dirs.get(d)
        if names:
            entries, raw = self.entries, self._raw
            for name in names:
                if over is not None and name in over:
                    continue
                path = prefix + name
                lines.append((name, b"%o %s\0%s" % (entries[path].mode, name, raw[path][40:60])))
        if over:
            for name, change in over.items():
                if change is not None:
                    lines.append((name, b"%o %s\0%s" % (change[0], name, bytes.fromhex(change[1].decode("ascii")))))
        kids: AbstractSet[bytes] = self._subdirs.get(d, frozenset())
        if changed and d in job.new_kids:
            kids = kids | job.new_kids[d]
        made_kids: list[bytes] = []
        if kids:
            files = {name for name, _ in lines}
            for name in kids:
                if name in files:
                    continue  # a file where a folder was: the file wins, as it does in git
                sub = self._make(prefix + name, job)
                if sub is not None:
                    lines.append((name + b"/", b"40000 %s\0%s" % (name, bytes.fromhex(sub.decode("ascii")))))
                    if prefix + name in job.pending:
                        made_kids.append(prefix + name)
        if not lines and d:
            return None
        lines.sort()
        body = b"".join([line for _, line in lines])
        tree = Objects.id_of(b"tree", body)
        job.pending[d] = (tree, body, made_kids)
        if changed:
            job.made[d] = tree
        else:
            self._trees[d] = tree
        return tree

    def _write_trees(self, d: bytes, job: _Overlay, objects: Objects) -> None:
        """Write the trees made under ``d`` that the store lacks, each after its subtrees (a tree there has its
        subtrees there: nothing below one is looked up)."""
        tree, body, kids = job.pending[d]
        if objects.has(tree):
            return
        for kid in kids:
            self._write_trees(kid, job, objects)
        objects.write(b"tree", tree, body)


def _kept(e: IndexEntry) -> bool:
    return e.mode == _GITLINK or bool(e.extended_flags & _SKIP_WORKTREE)


def _signature(path: str) -> tuple[int, int, int] | None:
    """What tells that the index file is still the one we hold: mtime, size, inode."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def signature(path: str) -> tuple[int, int, int] | None:
    return _signature(path)
