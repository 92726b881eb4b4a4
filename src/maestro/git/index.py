"""The git index, held in memory so that writing it back and making its tree cost the change, not the repository.

One idea, for all its length: the index as git keeps it on disk (entries, cache tree) and in memory (stat keys
by folder, each folder's tree), and the objects its trees need written.

The index is read once (versions 2 and 3 parsed here, others by dulwich);
each entry is then kept as its serialized bytes and its stat key (what a walk
of the tree compares against), so that writing the index after a checkpoint
re-encodes only the entries that changed and joins the rest.  The file
written is index version 2 (3 when an entry has extended flags), with git's
cache tree (the ``TREE`` extension) of the folders whose tree is known.

The index also keeps the tree of each folder (git's cache tree, in memory,
taken from the file where git left it valid): a change forgets the trees of
the folders above it, and :meth:`GitIndex.tree` makes only those again, from
the entries, never reading an object back.
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
_STAT_FIELDS = struct.Struct(">LLLL4xLL8xL20xH")  # of _HEAD: ctime, mtime, ino, mode, size, flags
_MASK = 0xFFFFFFFF
_NAME_MASK = 0xFFF
_EXTENDED = 0x4000
_SKIP_WORKTREE = 0x4000  # in the extended flags
_STAGE = 0x3000  # a merge stage: an unmerged path
_GITLINK = 0o160000


#: What must match between an index entry and ``lstat`` for the content to be trusted: size, mtime_ns,
#: ctime_ns, ino and mode bits (``st_mode & MODE_BITS``: the file type and the owner's execute bit, all
#: that git records of a mode).  A plain tuple: an index of 50,000 entries makes 50,000 of them.
StatKey = tuple[int, int, int, int, int]


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
    return (st.st_size & _MASK, st.st_mtime_ns, st.st_ctime_ns, st.st_ino & _MASK, st.st_mode & MODE_BITS)


def _entry_key(e: IndexEntry) -> StatKey:
    return (e.size & _MASK, _ns(e.mtime), _ns(e.ctime), e.ino & _MASK, _BITS_OF.get(e.mode, -1))


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


class _Entries(Mapping[bytes, IndexEntry]):
    """The index's entries by path, decoded from their serialized bytes when first asked for."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: dict[bytes, bytes], decoded: dict[bytes, IndexEntry]) -> None:
        self._raw = raw
        self._decoded = decoded

    def __getitem__(self, path: bytes) -> IndexEntry:
        e = self._decoded.get(path)
        if e is None:
            e = self._decoded[path] = _decode(self._raw[path])
        return e

    def __contains__(self, path: object) -> bool:
        return path in self._raw

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._raw)


class GitIndex:
    """A repository's index: entries by path, kept sorted, written back incrementally.

    ``entries`` maps a path to its :class:`~dulwich.index.IndexEntry` (decoded
    when first asked for: reading an index builds none), ``dirs`` a folder to
    the stat keys of its files by name (what a walk looks up).
    """

    def __init__(self, path: str, entries: Iterable[tuple[bytes, IndexEntry]]) -> None:
        raw: dict[bytes, bytes] = {}
        decoded: dict[bytes, IndexEntry] = {}
        dirs: dict[bytes, dict[bytes, StatKey]] = {}
        kept: builtins.set[bytes] = builtins.set()
        extended = False
        for p, e in entries:
            raw[p] = serialize(p, e)
            decoded[p] = e
            d, _, name = p.rpartition(b"/")
            dirs.setdefault(d, {})[name] = _entry_key(e)
            if _kept(e):
                kept.add(p)
            extended = extended or bool(e.extended_flags)
        parsed = _Parsed(raw, dirs, kept, extended, {})
        self._setup(path, parsed, decoded=decoded, sig=_signature(path))

    def _setup(
        self, path: str, parsed: _Parsed, *, decoded: dict[bytes, IndexEntry], sig: tuple[int, int, int] | None
    ) -> None:
        self.path = path
        self._raw = parsed.raw
        self._decoded = decoded
        self.entries: Mapping[bytes, IndexEntry] = _Entries(parsed.raw, decoded)
        self.dirs = parsed.dirs
        self._order = sorted(parsed.raw)
        # Entries a walk must leave as they are: submodules (gitlinks) and skip-worktree paths.
        self.kept = parsed.kept
        self._extended = parsed.extended
        self.signature = sig
        # The cache tree: each folder's subfolders (those holding entries), and the tree of each folder whose
        # tree is known (a folder's tree known means its subfolders' trees are known too).
        self._subdirs: dict[bytes, builtins.set[bytes]] = {b"": builtins.set()}
        self._trees: dict[bytes, ObjectID] = {}
        for d in self.dirs:
            self._link(d)

    @classmethod
    def read(cls, repo: Repo) -> GitIndex:
        """The index of ``repo``'s working tree (empty if there is none yet).

        Versions 2 and 3 are parsed here, the checksum checked, the entries kept
        as their bytes, and git's cache tree (the ``TREE`` extension) taken for
        the folders it says are valid; others (version 4, a split or sparse
        index) are read by dulwich.
        """
        path = repo.index_path()
        loaded = _load_file(path)
        if loaded is None:
            return cls(path, ())
        data, sig = loaded
        parsed = _parse(path, data)
        if parsed is None:
            return cls._read_with_dulwich(repo)
        index = cls.__new__(cls)
        index._setup(path, parsed, decoded={}, sig=sig)
        if parsed.cache_tree:
            index._take_cache_tree(parsed.cache_tree)
        return index

    @classmethod
    def _read_with_dulwich(cls, repo: Repo) -> GitIndex:
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

    def _counts(self) -> dict[bytes, int]:
        """The number of entries under each folder, at any depth (the top's: all of them)."""
        counts: dict[bytes, int] = {}

        def count(d: bytes) -> int:
            prefix = d + b"/" if d else b""
            n = len(self.dirs.get(d, ())) + sum(count(prefix + k) for k in self._subdirs.get(d, ()))
            counts[d] = n
            return n

        count(b"")
        return counts

    def reread(self) -> bool:
        """Bring this index up to the file at its path, which someone else rewrote: only the entries whose bytes
        differ are taken again (a rewrite by git changes few).  False, with nothing changed here, when the file
        is gone or is not one this reads (version 4, split, sparse): read it afresh then."""
        loaded = _load_file(self.path)
        if loaded is None:
            return False
        data, sig = loaded
        count = _entry_count(self.path, data)
        if count is None:
            return False
        old = self._raw
        changed: list[tuple[bytes, bytes]] = []
        listed: list[bytes] = []
        found = 0  # names of the file that were entries already
        off, end_of_entries = 12, len(data) - 20
        for _ in range(count):
            flags = int.from_bytes(data[off + 60 : off + 62], "big")
            p = off + 64 if flags & _EXTENDED else off + 62
            n = flags & _NAME_MASK
            end = data.index(b"\0", p) if n == _NAME_MASK else p + n
            name = data[p:end]
            nxt = off + (end - off) // 8 * 8 + 8
            if flags & _STAGE or nxt > end_of_entries:
                _check_entry(self.path, name, flags, nxt, end_of_entries)
            r = data[off:nxt]
            was = old.get(name)
            if was is not None:
                found += 1
            if was != r:
                changed.append((name, r))
            listed.append(name)
            off = nxt
        extensions = _extensions(data, off, end_of_entries)
        if extensions is None:
            return False
        if found != len(old):  # some entries are gone
            for gone in builtins.set(old) - builtins.set(listed):
                self.remove(gone)
        for name, r in changed:
            self._set_raw(name, r)
            self._decoded.pop(name, None)
        self.signature = sig
        if extensions:
            self._take_cache_tree(extensions)
        return True

    def _take_cache_tree(self, cache_tree: dict[bytes, tuple[int, ObjectID]]) -> None:
        """Take git's trees of the folders whose entry count is right and whose subfolders' trees are taken too."""
        counts = self._counts()
        taken = {d: tree for d, (n, tree) in cache_tree.items() if counts.get(d) == n}
        for d in sorted(taken, key=lambda f: -f.count(b"/") - bool(f)):  # the deepest first
            prefix = d + b"/" if d else b""
            if any(prefix + k not in taken for k in self._subdirs.get(d, ())):
                del taken[d]
        self._trees.update(taken)

    def __contains__(self, path: bytes) -> bool:
        return path in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def paths(self) -> Iterator[bytes]:
        return iter(self._order)

    def folders(self) -> builtins.set[bytes]:
        """Every folder holding an entry, at any depth (the top, ``b""``, left out)."""
        out = builtins.set(self.dirs)
        out.update(self._subdirs)
        out.discard(b"")
        return out

    def set(self, path: bytes, entry: IndexEntry) -> None:
        self._set_raw(path, serialize(path, entry))
        self._decoded[path] = entry

    def _set_raw(self, path: bytes, r: bytes) -> None:
        """Make ``r`` (an entry's bytes) the entry at ``path``; the trees above it are forgotten if it changed."""
        old = self._raw.get(path)
        if old is None:
            bisect.insort(self._order, path)
        self._raw[path] = r
        cs, cn, ms, mn, ino, mode, size, flags = _STAT_FIELDS.unpack_from(r)
        ext = int.from_bytes(r[62:64], "big") if flags & _EXTENDED else 0
        d, _, name = path.rpartition(b"/")
        names = self.dirs.get(d)
        if names is None:
            names = self.dirs[d] = {}
            self._link(d)
        names[name] = (size, ms * 1_000_000_000 + mn, cs * 1_000_000_000 + cn, ino, _BITS_OF.get(mode, -1))
        self._extended = self._extended or bool(ext)
        if mode == _GITLINK or ext & _SKIP_WORKTREE:
            self.kept.add(path)
        else:
            self.kept.discard(path)
        if old is None or old[24:28] != r[24:28] or old[40:60] != r[40:60]:  # its mode or blob changed
            self._forget_trees(d)

    def remove(self, path: bytes) -> None:
        if path not in self._raw:
            return
        self._decoded.pop(path, None)
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
        head = b"DIRC" + struct.pack(">LL", version, len(self._order))
        body = b"".join(map(self._raw.__getitem__, self._order))  # no copy of it is made after this one
        tree = self._tree_extension()
        digest = hashlib.sha1(head, usedforsecurity=False)
        digest.update(body)
        digest.update(tree)
        parts = [head, body, tree, digest.digest()]
        lock = self.path + ".lock"
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise CheckpointError(f"{lock} exists: another git process is running (or one crashed)") from None
        try:
            try:
                done = os.writev(fd, parts)
                rest = memoryview(b"".join(parts))[done:] if done < sum(map(len, parts)) else memoryview(b"")
                while rest:
                    rest = rest[os.write(fd, rest) :]
                st = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(lock, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            raise CheckpointError(f"{self.path}: cannot write the index: {exc.strerror or exc}") from exc
        self.signature = (st.st_mtime_ns, st.st_size, st.st_ino)

    def _tree_extension(self) -> bytes:
        """git's cache tree (the ``TREE`` extension) of the folders whose tree is known, so that the next reader
        (git, or a Staging reading the index again) builds no tree for them; none when nothing is known, or when
        an entry has extended flags (an intent-to-add entry is left out of git's trees, not of these)."""
        if self._extended or b"" not in self._trees or not self._raw:
            return b""
        trees, subdirs, dirs = self._trees, self._subdirs, self.dirs
        out: list[bytes] = []

        def one(d: bytes, name: bytes) -> int:
            """Write folder ``d`` and its subfolders (its header last, once its entry count is known)."""
            kids = sorted(subdirs.get(d, ()))
            at = len(out)
            out.append(b"")
            tree = trees.get(d)
            if tree is not None:
                out.append(bytes.fromhex(tree.decode("ascii")))
            prefix = d + b"/" if d else b""
            count = len(dirs.get(d, ())) + sum([one(prefix + k, k) for k in kids])
            out[at] = b"%s\0%d %d\n" % (name, count if tree is not None else -1, len(kids))
            return count

        one(b"", b"")
        data = b"".join(out)
        return b"TREE" + struct.pack(">L", len(data)) + data

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
            raw = self._raw
            for name in names:
                if over is not None and name in over:
                    continue
                r = raw[prefix + name]
                lines.append((name, b"%o %s\0%s" % (int.from_bytes(r[24:28], "big"), name, r[40:60])))
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


def _decode(r: bytes) -> IndexEntry:
    """An entry from its serialized bytes (version 2 or 3)."""
    cs, cn, ms, mn, dev, ino, mode, uid, gid, size, sha, flags = _HEAD.unpack_from(r)
    ext = int.from_bytes(r[62:64], "big") if flags & _EXTENDED else 0
    sha_hex = ObjectID(sha.hex().encode())
    return IndexEntry((cs, cn), (ms, mn), dev, ino, mode, uid, gid, size, sha_hex, flags & ~_NAME_MASK, ext)


class _Parsed(NamedTuple):
    raw: dict[bytes, bytes]  # each entry's bytes, by path
    dirs: dict[bytes, dict[bytes, StatKey]]
    kept: builtins.set[bytes]
    extended: bool  # an entry has extended flags: the index is written as version 3
    cache_tree: dict[bytes, tuple[int, ObjectID]]  # git's: folder -> entry count, tree (the valid ones)


def _load_file(path: str) -> tuple[bytes, tuple[int, int, int]] | None:
    """An index file's bytes and signature (of the file read); None if there is none."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the index: {exc.strerror or exc}") from exc
    return data, (st.st_mtime_ns, st.st_size, st.st_ino)


def _entry_count(path: str, data: bytes) -> int | None:
    """The number of entries of an index file of version 2 or 3 (its checksum checked); None for another."""
    if len(data) < 32 or data[:4] != b"DIRC":
        raise CheckpointError(f"{path}: cannot read the index: not an index file")
    version, count = struct.unpack_from(">LL", data, 4)
    if version not in (2, 3):
        return None
    if hashlib.sha1(memoryview(data)[:-20], usedforsecurity=False).digest() != data[-20:]:
        raise CheckpointError(f"{path}: cannot read the index: bad checksum")
    return int(count)


def _check_entry(path: str, name: bytes, flags: int, nxt: int, end_of_entries: int) -> None:
    if flags & _STAGE:
        raise CheckpointError(f"{path}: unmerged paths ({os.fsdecode(name)} …): resolve them first")
    if nxt > end_of_entries:
        raise CheckpointError(f"{path}: cannot read the index: truncated")


def _extensions(data: bytes, off: int, end: int) -> dict[bytes, tuple[int, ObjectID]] | None:
    """git's cache tree from the extensions after the entries (empty if none); None if the index is split or
    sparse (dulwich's to read, or to refuse)."""
    cache_tree: dict[bytes, tuple[int, ObjectID]] = {}
    while off + 8 <= end:
        sig, size = data[off : off + 4], int.from_bytes(data[off + 4 : off + 8], "big")
        if sig in (b"link", b"sdir"):
            return None
        if sig == b"TREE":
            cache_tree = _cache_tree(data[off + 8 : off + 8 + size])
        off += 8 + size
    return cache_tree


def _parse(path: str, data: bytes) -> _Parsed | None:
    """An index file of version 2 or 3: its entries' bytes by path, the stat keys by folder, the kept paths and
    git's cache tree (folder -> entry count, tree); None for what dulwich must read (version 4, split, sparse)."""
    count = _entry_count(path, data)
    if count is None:
        return None
    raw: dict[bytes, bytes] = {}
    dirs: dict[bytes, dict[bytes, StatKey]] = {}
    kept: builtins.set[bytes] = builtins.set()
    unpack, bits_of = _STAT_FIELDS.unpack_from, _BITS_OF
    off, end_of_entries = 12, len(data) - 20
    extended = False
    for _ in range(count):
        cs, cn, ms, mn, ino, mode, size, flags = unpack(data, off)
        p = off + 62
        ext = 0
        if flags & _EXTENDED:
            ext = int.from_bytes(data[p : p + 2], "big")
            p += 2
            extended = True
        n = flags & _NAME_MASK
        end = data.index(b"\0", p) if n == _NAME_MASK else p + n
        name = data[p:end]
        nxt = off + (end - off) // 8 * 8 + 8
        if flags & _STAGE or nxt > end_of_entries:
            _check_entry(path, name, flags, nxt, end_of_entries)
        raw[name] = data[off:nxt]
        d, _, base = name.rpartition(b"/")
        names = dirs.get(d)
        if names is None:
            names = dirs[d] = {}
        names[base] = (size, ms * 1_000_000_000 + mn, cs * 1_000_000_000 + cn, ino, bits_of.get(mode, -1))
        if mode == _GITLINK or ext & _SKIP_WORKTREE:
            kept.add(name)
        off = nxt
    cache_tree = _extensions(data, off, end_of_entries)
    if cache_tree is None:
        return None
    return _Parsed(raw, dirs, kept, extended, cache_tree)


def _cache_tree(body: bytes) -> dict[bytes, tuple[int, ObjectID]]:
    """git's cache tree: each folder with a valid tree, its entry count and tree (an unreadable one: nothing)."""
    out: dict[bytes, tuple[int, ObjectID]] = {}
    pos = 0

    def one(parent: bytes | None) -> None:
        nonlocal pos
        nul = body.index(b"\0", pos)
        name = body[pos:nul]
        lf = body.index(b"\n", nul)
        entries, subtrees = (int(x) for x in body[nul + 1 : lf].split(b" "))
        pos = lf + 1
        folder = name if parent is None or not parent else parent + b"/" + name
        if parent is None:
            folder = b""
        if entries >= 0:
            out[folder] = (entries, ObjectID(body[pos : pos + 20].hex().encode()))
            pos += 20
        for _ in range(subtrees):
            one(folder)

    try:
        one(None)
    except (ValueError, IndexError, RecursionError):
        return {}
    return out


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
