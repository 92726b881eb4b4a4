"""The git index, held in memory so that writing it back costs the change, not the repository.

dulwich reads the index (once); each entry is then kept with its stat key
(what a walk of the tree compares against) and its serialized bytes, so that
writing the index after a checkpoint re-encodes only the entries that changed
and joins the rest.  The file written is index version 2 (3 when an entry has
extended flags), without the optional cache extensions, which git rebuilds.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import stat
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from dulwich.index import ConflictedIndexEntry, IndexEntry, commit_tree
from dulwich.object_store import BaseObjectStore
from dulwich.objects import ObjectID
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError

__all__ = ["MODE_BITS", "GitIndex", "StatKey", "file_mode", "signature", "stat_key"]

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
        if path not in self.entries:
            bisect.insort(self._order, path)
        self.entries[path] = entry
        d, _, name = path.rpartition(b"/")
        self.dirs.setdefault(d, {})[name] = _entry_key(entry)
        self._raw[path] = serialize(path, entry)
        self._extended = self._extended or bool(entry.extended_flags)
        if _kept(entry):
            self.kept.add(path)
        else:
            self.kept.discard(path)

    def remove(self, path: bytes) -> None:
        if self.entries.pop(path, None) is None:
            return
        d, _, name = path.rpartition(b"/")
        names = self.dirs[d]
        del names[name]
        if not names:
            del self.dirs[d]
        del self._raw[path]
        self.kept.discard(path)
        i = bisect.bisect_left(self._order, path)
        del self._order[i]

    def tree(self, store: BaseObjectStore) -> ObjectID:
        """The tree these entries stand for (every tree object written to ``store``)."""
        return commit_tree(store, ((p, e.sha, e.mode) for p, e in ((p, self.entries[p]) for p in self._order)))

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
