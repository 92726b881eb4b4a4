"""Three-way merges of commits without a working tree, as ``git merge-tree --write-tree`` makes them.

::

    result = merge_commits(repo, base, ours=session_head, theirs=task_commit)
    if result.conflicts:
        feedback = result.feedback()   # each conflicting path and its hunks, for the task's next attempt
    else:
        head = commit_merge(repo, result.tree, [session_head, task_commit], "merge task t3",
                            ref=branch, expected=session_head, author=identity, when=now)

The one idea: git's merge (``merge-ort``, without rename detection) in pure
Python, the same tree id as git for a clean merge and the same conflicting
paths otherwise.  A path only one side changed takes that side; a path both
changed the same way takes it; a folder both changed is merged entry by entry;
a text file both changed is merged line by line, and changes that overlap or
touch are a conflict.  A file's executable bit follows the side that changed it.

The text merge is ``dulwich.merge.make_merge3`` (merge3, the Breezy/bzr
three-way merge) on lines split at ``\\n`` only, as git splits them, with
git's line alignment as merge3's sequence matcher (:class:`_GitLineMatcher`,
xdiff's histogram diff and its compaction of changed runs; difflib, merge3's
default, aligns repeated lines otherwise and so merges some changes git calls
a conflict, and the other way round).  The tree walk is this module's:
``dulwich.merge.Merger`` reads every entry of both trees at each level and
calls conflicts what git merges (one side changing a file's mode while the
other changes its text; one side deleting a folder in which the other added a
file).

The conflicts, each a :class:`Conflict` with the conflicting hunks in git's
markers (``<<<<<<< session`` / ``=======`` / ``>>>>>>> task``):

* ``content`` — both sides changed the same lines of a text file (or a symlink's
  target, or a submodule's commit, differently);
* ``delete/modify`` — one side deleted a file the other changed;
* ``add/add`` — both sides added a file at one path with different content;
* ``binary`` — both sides changed a binary file (a NUL byte in the first
  8,000 bytes of a version, git's test);
* ``mode`` — the sides disagree on a path's type (file, symlink, submodule)
  or, for a file both added, its executable bit;
* ``file/directory`` — a file on one side where the other has a folder.

The cost follows the change: a folder one side left as it was in the base is
taken from the other side whole, by its id, without being read, so only the
folders both sides changed are read, and only the files both sides changed are
merged.  Nothing is written when there is a conflict; a clean merge writes
only the trees (and merged files) that are new.

Where it parts from git: renames are not detected (a file one side renamed
and the other changed is a delete/modify conflict where git follows the
rename: a conflict, never a wrong tree); ``.gitattributes`` merge drivers are
not applied; where every line two regions of a file share repeats more than 64
times, git aligns them with its Myers diff and this with difflib.

:func:`commit_merge` writes the merge commit and moves a ref to it with
compare-and-swap: :class:`~maestro.core.errors.CheckpointError` when the ref
is no longer where the caller expected it.
"""

from __future__ import annotations

import difflib
import logging
import os
import stat
from binascii import unhexlify
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import attrs
from dulwich.merge import make_merge3
from dulwich.objects import Blob, Commit, ObjectID, Tree, parse_tree
from dulwich.refs import Ref

from maestro.core.errors import CheckpointError
from maestro.git.index import Objects

if TYPE_CHECKING:
    from dulwich.object_store import BaseObjectStore
    from dulwich.repo import Repo
    from merge3 import SequenceMatcherProtocol

__all__ = ["Conflict", "MergeResult", "commit_merge", "merge_commits"]

log = logging.getLogger("maestro")

HUNKS_MAX = 4_000  # characters of one conflict's hunks, at most (the rest is summarised in a line)
BINARY_PROBE = 8_000  # bytes of a file git looks at for a NUL to call it binary
OURS_LABEL, THEIRS_LABEL = "session", "task"

_Entry = tuple[int, ObjectID]  # (mode, id) of a tree entry


@attrs.frozen
class Conflict:
    """A path both sides changed in ways that do not merge: its ``kind`` (see the module docstring) and the
    conflicting region(s) in git's markers, ``<<<<<<< session`` / ``=======`` / ``>>>>>>> task``
    (at most about 4,000 characters)."""

    path: str
    kind: str
    hunks: str


@attrs.frozen
class MergeResult:
    """The merged tree (``None`` when there are conflicts), the conflicts, and whether the merge was a fast
    forward (``ours`` was the base: the result is ``theirs``' tree, nothing merged)."""

    tree: ObjectID | None
    conflicts: tuple[Conflict, ...] = ()
    fast_forward: bool = False

    @property
    def clean(self) -> bool:
        return not self.conflicts

    def feedback(self) -> str:
        """The conflicts as text for an agent: each conflicting path, what kind of conflict, and its hunks."""
        if not self.conflicts:
            return "The task's changes merge cleanly with the session's."
        n = len(self.conflicts)
        lines = [
            f"The task's changes conflict with changes made on the session branch since the task started, "
            f"in {n} file{'s' if n != 1 else ''}. Each conflict shows the session's version between "
            f"<<<<<<< {OURS_LABEL} and =======, and the task's between ======= and >>>>>>> {THEIRS_LABEL}."
        ]
        for c in self.conflicts:
            lines += ["", f"{c.path} ({_KIND_TEXT.get(c.kind, c.kind)}):", c.hunks.rstrip("\n")]
        return "\n".join(lines) + "\n"


_KIND_TEXT = {
    "content": "both changed the same lines",
    "delete/modify": "deleted on one side, changed on the other",
    "add/add": "added on both sides with different content",
    "binary": "a binary file changed on both sides",
    "mode": "the sides disagree on the file's type or mode",
    "file/directory": "a file on one side, a folder on the other",
}


def merge_commits(repo: Repo, base: ObjectID, ours: ObjectID, theirs: ObjectID) -> MergeResult:
    """Merge commit ``theirs`` into commit ``ours``, ``base`` their common ancestor (three commit ids).

    A fast forward when ``ours`` is ``base``; ``ours``' tree when ``theirs`` is ``base`` (or changed nothing).
    Writes the merged objects when the merge is clean, nothing when it conflicts.
    """
    store = repo.object_store
    if store.object_format.oid_length != 20:
        raise CheckpointError(
            f"merge: {repo.path}: a {store.object_format.name} repository (maestro merges SHA-1 ones)"
        )
    base_tree, ours_tree, theirs_tree = (_commit_tree(store, c) for c in (base, ours, theirs))
    if ours == base:
        return MergeResult(theirs_tree, fast_forward=True)
    merger = _TreeMerger(store)
    tree = merger.merge_trees(base_tree, ours_tree, theirs_tree)
    if merger.conflicts:
        log.info("merge of %s onto %s: %d conflicting paths", theirs.decode()[:12], ours.decode()[:12],
                 len(merger.conflicts))  # fmt: skip
        return MergeResult(None, tuple(merger.conflicts))
    if tree is None:  # everything deleted: the empty tree
        tree = merger.new(b"tree", b"")
    objects = Objects(store)  # loose objects, as git writes them
    for kind, oid, data in merger.new_objects:
        if not objects.has(oid):
            objects.write(kind, oid, data)
    return MergeResult(tree)


def commit_merge(
    repo: Repo,
    tree: ObjectID,
    parents: Sequence[ObjectID],
    message: str,
    *,
    ref: bytes,
    expected: ObjectID,
    author: bytes,
    when: int,
) -> ObjectID:
    """Write a commit of ``tree`` with ``parents`` and move ``ref`` from ``expected`` to it (compare-and-swap).

    ``author`` (``b"Name <email>"``) is also the committer, ``when`` (seconds since the epoch, UTC) both times.
    Raises :class:`CheckpointError` when ``ref`` is not at ``expected`` (someone moved it); the commit object
    is then written but nothing points to it.
    """
    c = Commit()
    c.tree = tree
    c.parents = list(parents)
    c.author = c.committer = author
    c.author_time = c.commit_time = when
    c.author_timezone = c.commit_timezone = 0
    c.message = message.encode() if message.endswith("\n") else (message + "\n").encode()
    repo.object_store.add_object(c)
    if not repo.refs.set_if_equals(Ref(ref), expected, c.id):
        raise CheckpointError(f"{ref.decode()} moved while merging (expected {expected.decode()})")
    return c.id


# -- the tree walk -----------------------------------------------------------------------------------------


def _commit_tree(store: BaseObjectStore, sha: ObjectID) -> ObjectID:
    try:
        obj = store[sha]
    except KeyError:
        raise CheckpointError(f"merge: no commit {sha.decode()} in the repository") from None
    if not isinstance(obj, Commit):
        raise CheckpointError(f"merge: {sha.decode()} is not a commit")
    tree: ObjectID = obj.tree
    return tree


def _is_dir(entry: _Entry | None) -> bool:
    return entry is not None and stat.S_ISDIR(entry[0])


class _TreeMerger:
    """One merge: the conflicts found and the objects to write if there are none."""

    def __init__(self, store: BaseObjectStore) -> None:
        self.store = store
        self.oid_length = store.object_format.oid_length  # bytes of an id in a tree (20: SHA-1, the only one)
        self.conflicts: list[Conflict] = []
        self.new_objects: list[tuple[bytes, ObjectID, bytes]] = []  # (kind, id, data): written if the merge is clean

    # trees ------------------------------------------------------------------------------------------------
    def merge_trees(self, base: ObjectID | None, ours: ObjectID | None, theirs: ObjectID | None) -> ObjectID | None:
        """The merged root tree's id (``None``: empty), conflicts recorded."""
        return self._trees(base, ours, theirs, b"")

    def _entries(self, tree: ObjectID | None) -> dict[bytes, _Entry]:
        if tree is None:
            return {}
        type_num, raw = self.store.get_raw(tree)
        if type_num != Tree.type_num:
            raise CheckpointError(f"merge: {tree.decode()} is not a tree")
        return cast("dict[bytes, _Entry]", {name: (mode, sha) for name, mode, sha in parse_tree(raw, self.oid_length)})

    def _trees(
        self, base: ObjectID | None, ours: ObjectID | None, theirs: ObjectID | None, prefix: bytes
    ) -> ObjectID | None:
        """Merge three trees (``None``: absent or empty) at ``prefix``; the trivial cases are the caller's."""
        if ours in (theirs, base):
            return theirs
        if theirs == base:
            return ours
        b, o, t = self._entries(base), self._entries(ours), self._entries(theirs)
        merged: dict[bytes, _Entry] = {}
        for name in sorted(b.keys() | o.keys() | t.keys()):
            be, oe, te = b.get(name), o.get(name), t.get(name)
            if oe in (te, be):
                result = te
            elif te == be:
                result = oe
            else:
                result = self._path(be, oe, te, prefix + name)
            if result is not None:
                merged[name] = result
        if not merged:
            return None
        # git's order: a folder sorts as if its name ended with "/"
        order = sorted(merged, key=lambda n: n + b"/" if stat.S_ISDIR(merged[n][0]) else n)
        raw = b"".join(b"%o %s\0%s" % (merged[n][0], n, unhexlify(merged[n][1])) for n in order)
        return self.new(b"tree", raw)

    def new(self, kind: bytes, data: bytes) -> ObjectID:
        """The id of a new object, to write if the merge is clean."""
        oid = Objects.id_of(kind, data)
        self.new_objects.append((kind, oid, data))
        return oid

    def _path(self, be: _Entry | None, oe: _Entry | None, te: _Entry | None, path: bytes) -> _Entry | None:
        """One name all three sides have differently: its folder part and its file part merged apart."""
        dirs = [e[1] if e is not None and stat.S_ISDIR(e[0]) else None for e in (be, oe, te)]
        files = [None if e is None or _is_dir(e) else e for e in (be, oe, te)]
        folder: ObjectID | None = None
        if any(dirs):
            folder = self._trees(dirs[0], dirs[1], dirs[2], path + b"/")
        bf, of, tf = files
        known = len(self.conflicts)
        if of in (tf, bf):
            file = tf
        elif tf == bf:
            file = of
        else:
            other_dir = dirs[1] if of is None else dirs[2] if tf is None else None
            file = self._file(bf, of, tf, path, other_dir)
        if file is not None and folder is not None and not any(c.path == _str(path) for c in self.conflicts[known:]):
            self._conflict(path, "file/directory", _side_text(oe, self), _side_text(te, self))
            return file
        return (stat.S_IFDIR, folder) if folder is not None else file

    # files -----------------------------------------------------------------------------------------------
    def _file(
        self, be: _Entry | None, oe: _Entry | None, te: _Entry | None, path: bytes, other_dir: ObjectID | None
    ) -> _Entry | None:
        """A file all three sides have differently (an absent side: deleted or never there)."""
        if oe is None or te is None:
            kind = "file/directory" if other_dir is not None else "delete/modify"
            ours = "(a folder)" if oe is None and other_dir else "(deleted)" if oe is None else self._text(oe)
            theirs = "(a folder)" if te is None and other_dir else "(deleted)" if te is None else self._text(te)
            self._conflict(path, kind, ours, theirs)
            return oe or te
        if stat.S_IFMT(oe[0]) != stat.S_IFMT(te[0]):
            self._conflict(path, "add/add" if be is None else "mode", _mode_text(oe), _mode_text(te))
            return oe
        # git's mode merge: the side that changed it; both changed it (only when both added the file): a conflict
        if oe[0] == te[0] or (be is not None and oe[0] == be[0]):
            mode = te[0]
        elif be is not None and te[0] == be[0]:
            mode = oe[0]
        else:
            self._conflict(path, "add/add" if oe[1] != te[1] else "mode", _mode_text(oe), _mode_text(te))
            return oe
        if oe[1] == te[1] or (be is not None and oe[1] == be[1]):
            return mode, te[1]
        if be is not None and te[1] == be[1]:
            return mode, oe[1]
        if be is None:
            self._conflict(path, "add/add", self._text(oe), self._text(te))
            return oe
        if not stat.S_ISREG(mode):  # a symlink's target, a submodule's commit: no line merge
            self._conflict(path, "content", self._text(oe), self._text(te))
            return oe
        base_data, ours_data, theirs_data = self._data(be), self._data(oe), self._data(te)
        if any(b"\0" in d[:BINARY_PROBE] for d in (base_data, ours_data, theirs_data)):
            self._conflict(path, "binary", _binary_text(ours_data), _binary_text(theirs_data))
            return oe
        merged, hunks = _merge_text(base_data, ours_data, theirs_data)
        if merged is None:
            self.conflicts.append(Conflict(_str(path), "content", _cap(hunks)))
            return oe
        return mode, self.new(b"blob", merged)

    def _data(self, entry: _Entry) -> bytes:
        type_num, raw = self.store.get_raw(entry[1])
        if type_num != Blob.type_num:
            raise CheckpointError(f"merge: {entry[1].decode()} is not a blob")
        return raw

    def _text(self, entry: _Entry) -> str:
        if entry[0] == 0o160000:
            return f"(submodule at commit {entry[1].decode()})"
        data = self._data(entry)
        if stat.S_ISLNK(entry[0]):
            return f"(symlink to {_str(data)})"
        if b"\0" in data[:BINARY_PROBE]:
            return _binary_text(data)
        return data.decode("utf-8", "replace")

    def _conflict(self, path: bytes, kind: str, ours: str, theirs: str) -> None:
        self.conflicts.append(Conflict(_str(path), kind, _cap(_markers(ours, theirs))))


# -- text ---------------------------------------------------------------------------------------------------


class _GitLineMatcher:
    """The lines two texts have in common as git's merge finds them (merge3 asks it for ``get_matching_blocks``).

    merge3's default, difflib, aligns repeated lines differently from git, so that a merge git calls a
    conflict would merge and the other way round.  This is git's: ``merge-ort`` diffs each side against the
    base with xdiff's histogram diff (``xhistogram.c``), then slides each run of changed lines as far down
    as it goes, merging runs that meet, and back up to line up with a run changed in the other text
    (``xdl_change_compact``).  Where every common line of a region repeats more than 64 times, git falls
    back to its Myers diff; this uses difflib there.
    """

    def __init__(self, isjunk: None, a: Sequence[bytes], b: Sequence[bytes]) -> None:
        ids: dict[bytes, int] = {}
        self.a = [ids.setdefault(line, len(ids)) for line in a]
        self.b = [ids.setdefault(line, len(ids)) for line in b]
        # changed[k][i + 1]: line i of text k is changed (a 0 either side: git's sentinels)
        self.changed = [bytearray(len(self.a) + 2), bytearray(len(self.b) + 2)]

    def get_matching_blocks(self) -> list[tuple[int, int, int]]:
        a, b = self.a, self.b
        regions = [(0, len(a), 0, len(b))]
        while regions:
            regions.extend(self._histogram(*regions.pop()))
        _compact(a, self.changed[0], self.changed[1])
        _compact(b, self.changed[1], self.changed[0])
        ca, cb = self.changed
        blocks: list[tuple[int, int, int]] = []
        i = j = 0
        while i < len(a) and j < len(b):
            if ca[i + 1]:
                i += 1
            elif cb[j + 1]:
                j += 1
            else:
                if blocks and blocks[-1][0] + blocks[-1][2] == i and blocks[-1][1] + blocks[-1][2] == j:
                    blocks[-1] = (blocks[-1][0], blocks[-1][1], blocks[-1][2] + 1)
                else:
                    blocks.append((i, j, 1))
                i, j = i + 1, j + 1
        blocks.append((len(a), len(b), 0))
        return blocks

    def _mark(self, k: int, start: int, end: int) -> None:
        self.changed[k][start + 1 : end + 1] = b"\1" * (end - start)

    def _histogram(self, s1: int, e1: int, s2: int, e2: int) -> list[tuple[int, int, int, int]]:
        """One step of ``histogram_diff`` on ``a[s1:e1]`` and ``b[s2:e2]``: the regions left to diff."""
        if s1 == e1 or s2 == e2:
            self._mark(0, s1, e1)
            self._mark(1, s2, e2)
            return []
        a, b = self.a, self.b
        # scanA: each line's element, its first occurrence, its count, and the next occurrence of each line
        first: dict[int, int] = {}
        count: dict[int, int] = {}
        following = [-1] * (e1 - s1)
        for p in range(e1 - 1, s1 - 1, -1):
            x = a[p]
            if x in first:
                following[p - s1] = first[x]
                count[x] += 1
            else:
                count[x] = 1
            first[x] = p
        best_cnt = _MAX_CHAIN + 1
        has_common = False
        lcs: tuple[int, int, int, int] | None = None  # begin1, begin2, end1, end2 (inclusive)
        bp = s2
        while bp < e2:
            b_next = bp + 1
            y = b[bp]
            if y in first:
                has_common = True
                cnt = count[y]
                if cnt <= best_cnt:
                    ap = first[y]
                    while True:
                        nxt = following[ap - s1]
                        as_, bs, ae, be, rc = ap, bp, ap, bp, cnt
                        while s1 < as_ and s2 < bs and a[as_ - 1] == b[bs - 1]:
                            as_, bs = as_ - 1, bs - 1
                            if rc > 1:
                                rc = min(rc, count[a[as_]])
                        while ae < e1 - 1 and be < e2 - 1 and a[ae + 1] == b[be + 1]:
                            ae, be = ae + 1, be + 1
                            if rc > 1:
                                rc = min(rc, count[a[ae]])
                        if b_next <= be:
                            b_next = be + 1
                        if (lcs[2] - lcs[0] if lcs else 0) < ae - as_ or rc < best_cnt:
                            lcs, best_cnt = (as_, bs, ae, be), rc
                        while nxt != -1 and nxt <= ae:
                            nxt = following[nxt - s1]
                        if nxt == -1:
                            break
                        ap = nxt
            bp = b_next
        if lcs is None:
            if has_common:  # every common line repeats too often: git's Myers diff there, difflib here
                self._fallback(s1, e1, s2, e2)
            else:
                self._mark(0, s1, e1)
                self._mark(1, s2, e2)
            return []
        return [(s1, lcs[0], s2, lcs[1]), (lcs[2] + 1, e1, lcs[3] + 1, e2)]

    def _fallback(self, s1: int, e1: int, s2: int, e2: int) -> None:
        self._mark(0, s1, e1)
        self._mark(1, s2, e2)
        m = difflib.SequenceMatcher(None, self.a[s1:e1], self.b[s2:e2], autojunk=False)
        for i, j, n in m.get_matching_blocks():
            self.changed[0][s1 + i + 1 : s1 + i + n + 1] = bytes(n)
            self.changed[1][s2 + j + 1 : s2 + j + n + 1] = bytes(n)


_MAX_CHAIN = 64  # xhistogram.c: a line repeated more often than this does not anchor the diff


def _compact(recs: list[int], ch: bytearray, other: bytearray) -> None:
    """``xdl_change_compact`` without the indent heuristic (merges do not use it); ``ch[i + 1]``: line i changed."""
    n = len(recs)
    n_other = len(other) - 2
    # a group: the lines [start, end) changed between two unchanged ones; the groups of both texts pair up
    gs = ge = 0
    while ch[ge + 1]:
        ge += 1
    os_ = oe = 0
    while other[oe + 1]:
        oe += 1
    while True:
        if ge != gs:
            while True:
                size = ge - gs
                end_matching_other = -1
                # slide up as far as possible
                while gs > 0 and recs[gs - 1] == recs[ge - 1]:
                    gs -= 1
                    ch[gs + 1] = 1
                    ge -= 1
                    ch[ge + 1] = 0
                    while ch[gs]:
                        gs -= 1
                    # the other text's previous group
                    oe = os_ - 1
                    os_ = oe
                    while other[os_]:
                        os_ -= 1
                earliest_end = ge
                if oe > os_:
                    end_matching_other = ge
                # slide down as far as possible
                while ge < n and recs[gs] == recs[ge]:
                    ch[gs + 1] = 0
                    gs += 1
                    ch[ge + 1] = 1
                    ge += 1
                    while ch[ge + 1]:
                        ge += 1
                    os_ = oe + 1
                    oe = os_
                    while other[oe + 1]:
                        oe += 1
                    if oe > os_:
                        end_matching_other = ge
                if size == ge - gs:
                    break
            if ge != earliest_end and end_matching_other != -1:
                # back up to line up with the last group changed in the other text
                while oe == os_:
                    gs -= 1
                    ch[gs + 1] = 1
                    ge -= 1
                    ch[ge + 1] = 0
                    while ch[gs]:
                        gs -= 1
                    oe = os_ - 1
                    os_ = oe
                    while other[os_]:
                        os_ -= 1
        # the next group of each text
        if ge == n:
            break
        gs = ge + 1
        ge = gs
        while ch[ge + 1]:
            ge += 1
        if oe == n_other:
            raise AssertionError("xdl_change_compact: the groups of the two texts are out of step")
        os_ = oe + 1
        oe = os_
        while other[oe + 1]:
            oe += 1


def _lines(data: bytes) -> list[bytes]:
    """``data`` split after each ``\\n`` (git's lines: a lone ``\\r`` does not end one)."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _merge_text(base: bytes, ours: bytes, theirs: bytes) -> tuple[bytes | None, str]:
    """The merged text, or ``None`` and the conflicting regions in markers (with their line in ``ours``)."""
    a, b = _lines(ours), _lines(theirs)
    m = make_merge3(_lines(base), a, b, sequence_matcher=cast("type[SequenceMatcherProtocol[bytes]]", _GitLineMatcher))
    out: list[bytes] = []
    hunks: list[str] = []
    for what, *at in m.merge_regions():
        if what == "unchanged":
            out.extend(m.base[at[0] : at[1]])
        elif what in ("same", "a"):
            out.extend(a[at[0] : at[1]])
        elif what == "b":
            out.extend(b[at[0] : at[1]])
        else:  # "conflict": base start, base end, a start, a end, b start, b end
            a0, a1, b0, b1 = at[2], at[3], at[4], at[5]
            # the lines both sides agree on at the region's ends are not part of the conflict (git's "zealous")
            while a0 < a1 and b0 < b1 and a[a0] == b[b0]:
                a0, b0 = a0 + 1, b0 + 1
            while a1 > a0 and b1 > b0 and a[a1 - 1] == b[b1 - 1]:
                a1, b1 = a1 - 1, b1 - 1
            where = f"@@ session line {a0 + 1}, task line {b0 + 1} @@\n"
            hunks.append(where + _markers(_decode(a[a0:a1]), _decode(b[b0:b1])))
    if hunks:
        return None, "".join(hunks)
    return b"".join(out), ""


def _decode(lines: Sequence[bytes]) -> str:
    return b"".join(lines).decode("utf-8", "replace")


def _markers(ours: str, theirs: str) -> str:
    def block(text: str) -> str:
        return text if not text or text.endswith("\n") else text + "\n"

    return f"<<<<<<< {OURS_LABEL}\n{block(ours)}=======\n{block(theirs)}>>>>>>> {THEIRS_LABEL}\n"


def _cap(text: str) -> str:
    if len(text) <= HUNKS_MAX:
        return text
    cut = text.rfind("\n", 0, HUNKS_MAX) + 1 or HUNKS_MAX
    return text[:cut] + f"[… {len(text) - cut} more characters]\n"


def _binary_text(data: bytes) -> str:
    return f"(binary, {len(data)} bytes)"


def _mode_text(entry: _Entry) -> str:
    names = {0o100644: "a file", 0o100755: "an executable file", 0o120000: "a symlink", 0o160000: "a submodule"}
    return f"({names.get(entry[0], 'mode ' + oct(entry[0]))}, mode {entry[0]:o})"


def _side_text(entry: _Entry | None, merger: _TreeMerger) -> str:
    if entry is None:
        return "(deleted)"
    if _is_dir(entry):
        names = sorted(merger._entries(entry[1]))
        shown = ", ".join(_str(n) for n in names[:10]) + (", …" if len(names) > 10 else "")
        return f"(a folder: {shown})"
    return merger._text(entry)


def _str(path: bytes) -> str:
    return os.fsdecode(path)
