"""Git packs between two object stores: what one side has and the other lacks, as one pack file's bytes.

::

    data, n = pack_of(store, missing_objects(store, want=commit, have=commit_they_have))
    added = unpack(their_store, data)              # the objects written there (loose or as a pack)

The one idea: a commit's *tree* shipped to another machine costs what changed since a commit it already
holds, not the repository.  :func:`missing_objects` walks the wanted commit's tree beside the tree of a commit
the other side has, descending only into the folders whose ids differ (a folder with the same id there is all
there, however big), so a warm shipment of a 10,000-file tree where three files changed reads a few trees.
Only the commit itself travels, not its ancestors: a worktree at a commit and a capture on top of it need its
tree, never its history.  Submodule entries (gitlinks) name commits of another repository: never shipped.

The pack is written from the objects' raw bytes, undeltified (the objects of one attempt differ by file; a
delta search would cost more than it saves), lightly compressed.  :func:`unpack` writes a handful of objects
loose and a larger pack as a pack file (with its index), as git's ``unpack.unpackLimit`` does.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Iterable, Iterator

from dulwich.object_store import BaseObjectStore
from dulwich.objects import Commit, ObjectID, ShaFile, Tree, parse_tree
from dulwich.pack import PackData, UnpackedObject, write_pack_data

from maestro.core.errors import CheckpointError

__all__ = ["LOOSE_LIMIT", "missing_objects", "pack_of", "tree_of", "unpack"]

LOOSE_LIMIT = 100
"""Up to this many objects a pack is unpacked into loose objects; more are kept as a pack file."""

_GITLINK = 0o160000


def tree_of(store: BaseObjectStore, commit: ObjectID) -> ObjectID:
    """The tree of ``commit`` (a :class:`CheckpointError` naming it when it is missing or not a commit)."""
    try:
        kind, raw = store.get_raw(commit)
    except KeyError:
        raise CheckpointError(f"no commit {commit.decode(errors='replace')} in the object store") from None
    if kind != Commit.type_num:
        raise CheckpointError(f"{commit.decode(errors='replace')} is not a commit")
    first = raw.split(b"\n", 1)[0]
    if not first.startswith(b"tree "):
        raise CheckpointError(f"commit {commit.decode(errors='replace')} names no tree")
    return ObjectID(first[5:])


def missing_objects(
    store: BaseObjectStore, *, want: ObjectID, have: ObjectID | None, commit: bool = True
) -> list[ObjectID]:
    """The ids of ``want``'s commit (with ``commit``) and of the trees and blobs under its tree that are not under
    ``have``'s tree (None: the other side has nothing): what the other side needs to hold ``want`` whole.

    Both commits must be in ``store``.  An entry with the same id at the same path is skipped whole; a blob
    moved within its folder is not sent again.  Nothing else is assumed of the other side, so an object both
    trees hold at different paths is sent (harmless: an object store keeps one copy).
    """
    out: list[ObjectID] = [want] if commit else []
    seen: set[bytes] = set()
    start = tree_of(store, want)
    todo: list[tuple[bytes, bytes | None]] = [(start, tree_of(store, have) if have is not None else None)]
    while todo:
        ours, theirs = todo.pop()
        if ours == theirs or ours in seen:
            continue
        seen.add(ours)
        out.append(ObjectID(ours))
        entries = _entries(store, ours)
        other = {name: (mode, sha) for name, mode, sha in _entries(store, theirs)} if theirs is not None else {}
        shared = {sha for _mode, sha in other.values()}
        for name, mode, sha in entries:
            if mode == _GITLINK:
                continue
            there = other.get(name)
            if there is not None and there[1] == sha:
                continue
            if stat.S_ISDIR(mode):
                below = there[1] if there is not None and stat.S_ISDIR(there[0]) else None
                todo.append((sha, below))
            elif sha not in shared and sha not in seen:
                seen.add(sha)
                out.append(ObjectID(sha))
    return out


def pack_of(store: BaseObjectStore, ids: Iterable[ObjectID]) -> tuple[bytes, int]:
    """A pack file holding the objects ``ids`` names (read raw from ``store``): its bytes and how many objects."""
    wanted = list(dict.fromkeys(ids))

    def records() -> Iterator[UnpackedObject]:
        for sha in wanted:
            try:
                kind, raw = store.get_raw(sha)
            except KeyError:
                raise CheckpointError(f"cannot pack {sha.decode(errors='replace')}: not in the object store") from None
            yield UnpackedObject(kind, decomp_chunks=[raw], decomp_len=len(raw), sha=sha)

    buf = io.BytesIO()
    write_pack_data(buf.write, records(), store.object_format, num_records=len(wanted), compression_level=1)
    return buf.getvalue(), len(wanted)


def unpack(store: BaseObjectStore, data: bytes) -> int:
    """Add the objects of the pack ``data`` to ``store``: how many.  A damaged pack is a :class:`CheckpointError`."""
    pack: PackData | None = None
    try:
        pack = PackData("shipped.pack", store.object_format, file=io.BytesIO(data), size=len(data))
        count = len(pack)
        if count > LOOSE_LIMIT:
            pack.check()  # the trailing checksum: a truncated shipment is refused, not half-stored
            store.add_pack_data(count, pack.iter_unpacked())  # type: ignore[attr-defined]  # every pack store has it
            return count
        objects: list[ShaFile] = [u.sha_file() for u in pack.iter_unpacked()]
        pack.check()
    except CheckpointError:
        raise
    except Exception as exc:  # dulwich raises ChecksumMismatch, AssertionError, ValueError … for a bad pack
        raise CheckpointError(f"a shipped pack of {len(data)} bytes cannot be read: {exc}") from exc
    finally:
        if pack is not None:
            pack.close()
    for obj in objects:
        store.add_object(obj)
    return count


def _entries(store: BaseObjectStore, tree: bytes) -> list[tuple[bytes, int, bytes]]:
    try:
        kind, raw = store.get_raw(ObjectID(tree))
    except KeyError:
        raise CheckpointError(f"no tree {tree.decode(errors='replace')} in the object store") from None
    if kind != Tree.type_num:
        raise CheckpointError(f"{tree.decode(errors='replace')} is not a tree")
    return list(parse_tree(raw, len(tree) // 2))
