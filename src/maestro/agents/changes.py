"""Change files: what an attempt changed in the working tree, recorded, saved and re-applied.

What an attempt changed in the working tree is saved beside its transcripts as
a *change file*, ``<session_dir>/agents/<task>.<attempt>.<agent>.changes.json``::

    {"version": 1, "changes": [
      {"op": "delete",  "path": "old.py"},
      {"op": "write",   "path": "src/calc.py", "content_b64": "ZGVm…", "mode": 420},
      {"op": "symlink", "path": "latest", "target": "src/calc.py"}
    ]}

``mode`` is 420 (0o644) or 493 (0o755): like git, only the executable bit is
kept.  :func:`snapshot` takes the state of a tree (every file and symlink
except ``.git`` folders, the top ``.flow`` folder and what ``.gitignore``
ignores and git does not track), :func:`capture_changes` compares the tree with
a snapshot taken before (:func:`changes_between` reads the same list off two
trees of the object store: an attempt's base and its commit), and
:func:`write_changes` / :func:`read_changes` save
and load the list; :func:`apply_changes` re-applies it, refusing any path that
leaves the working directory (:func:`resolve_inside`, the path check every
agent that writes files uses).  A planning answer is saved as
``<session_dir>/plan.json``, a refinement round's as ``plan-refinement-<n>.json``
(:func:`write_plan`, :func:`plan_file`).

The recording agent (:mod:`maestro.agents.recording`) and the scripted agent
write change files; the replay agent (:mod:`maestro.agents.replay`) re-applies them.
The module holds one idea, the change file: taking it (snapshot, capture, or between two trees),
keeping it (write, read) and re-applying it (apply, with its path checks).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import itertools
import json
import os
import posixpath
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from maestro.agents.base import Plan
from maestro.core.errors import ChangeError, StoreError
from maestro.git.identity import config_signature
from maestro.git.tree import TreeWalk
from maestro.store.filestore import atomic_write

__all__ = [
    "CHANGES_VERSION",
    "PLAN_FILE",
    "Change",
    "ChangeError",
    "Entry",
    "Snapshot",
    "apply_changes",
    "capture_changes",
    "changes_between",
    "changes_path",
    "plan_file",
    "read_changes",
    "resolve_inside",
    "snapshot",
    "write_changes",
    "write_plan",
]

CHANGES_VERSION = 1
PLAN_FILE = "plan.json"
_MODES = (0o644, 0o755)
_OPS = ("write", "delete", "symlink")
_PRIVATE = (".git", ".flow")  # never written by an agent, never recorded
_TOP_SKIP: tuple[tuple[str, ...], tuple[str, ...]] = ((), (".flow",))  # [at the top?]: skipped there (.git: anywhere)


# -- paths ----------------------------------------------------------------------------------------------------------


def resolve_inside(root: Path, rel: str, *, follow_last: bool = True) -> Path:
    """``root / rel`` with symlinks resolved, if it stays inside ``root`` and outside ``.git/`` and ``.flow/``.

    ``root`` must already be resolved.  ``rel`` must be relative, without
    ``..``; every symlink on the way must point inside ``root``.  With
    ``follow_last=False`` the last component is not followed (deleting or
    replacing a symlink touches the link, not what it points at).  Anything
    else raises :class:`ChangeError` saying why.
    """
    if not isinstance(rel, str) or not rel:
        raise ChangeError(f"{rel!r}: not a file path")
    if "\x00" in rel:
        raise ChangeError(f"{rel!r}: a path cannot hold a NUL character")
    pure = PurePosixPath(rel)
    if pure.is_absolute():
        raise ChangeError(f"{rel}: an absolute path leaves the repository")
    if ".." in pure.parts:
        raise ChangeError(f"{rel}: '..' leaves the repository")
    if not pure.parts:
        raise ChangeError(f"{rel!r}: not a file path")
    _check_private(rel, pure.parts)
    target = root.joinpath(*pure.parts)
    try:
        real = target.resolve() if follow_last else target.parent.resolve() / target.name
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ChangeError(f"{rel}: cannot resolve: {exc}") from None
    if real == root or root not in real.parents:
        raise ChangeError(f"{rel}: goes through a symlink to {real}, outside the repository")
    _check_private(rel, real.relative_to(root).parts)
    return real


def _check_private(rel: str, parts: Sequence[str]) -> None:
    if parts and parts[0].casefold() in _PRIVATE:
        raise ChangeError(f"{rel}: under {parts[0]}/, which belongs to git and maestro")
    if any(p.casefold() == ".git" for p in parts):
        raise ChangeError(f"{rel}: inside a .git folder")


def changes_path(session_dir: Path | None, task: str, attempt: int, agent: str) -> Path | None:
    """Where one attempt's change file goes: ``<session>/agents/<task>.<attempt>.<agent>.changes.json``."""
    if session_dir is None:
        return None
    return session_dir / "agents" / f"{task}.{attempt}.{agent}.changes.json"


# -- changes --------------------------------------------------------------------------------------------------------


@attrs.frozen
class Change:
    """One change to a working tree: a file written (whole), a path deleted, or a symlink made.

    Build them with :meth:`write`, :meth:`delete` and :meth:`symlink`.
    """

    op: str = attrs.field(validator=attrs.validators.in_(_OPS))
    path: str = attrs.field(validator=attrs.validators.instance_of(str))
    content: bytes | None = None
    mode: int | None = None
    target: str | None = None

    @classmethod
    def write(cls, path: str, content: bytes, mode: int = 0o644) -> Change:
        """``path`` becomes a regular file holding ``content`` (``mode`` 0o644 or 0o755)."""
        if mode not in _MODES:
            raise ValueError(f"mode must be 0o644 or 0o755, not {mode:#o}")
        return cls("write", path, content=bytes(content), mode=mode)

    @classmethod
    def delete(cls, path: str) -> Change:
        """``path`` (a file or a symlink) is removed."""
        return cls("delete", path)

    @classmethod
    def symlink(cls, path: str, target: str) -> Change:
        """``path`` becomes a symlink to ``target`` (as written: usually relative)."""
        return cls("symlink", path, target=target)

    def to_json(self) -> dict[str, Any]:
        """The change as it is written in a change file."""
        if self.op == "write":
            assert self.content is not None
            content = base64.b64encode(self.content).decode("ascii")
            return {"op": "write", "path": self.path, "content_b64": content, "mode": self.mode}
        if self.op == "symlink":
            return {"op": "symlink", "path": self.path, "target": self.target}
        return {"op": "delete", "path": self.path}


_KEYS = {"write": ("op", "path", "content_b64", "mode"), "delete": ("op", "path"), "symlink": ("op", "path", "target")}


def _change_from_json(obj: Any, where: str) -> Change:
    if not isinstance(obj, dict):
        raise ChangeError(f"{where}: a change is an object with op and path")
    op = obj.get("op")
    if op not in _OPS:
        raise ChangeError(f"{where}: op: expected one of {', '.join(_OPS)}, not {op!r}")
    keys = _KEYS[op]
    for key in obj:
        if key not in keys:
            raise ChangeError(f"{where}: {key}: unknown field for op {op} (known: {', '.join(keys)})")
    for key in keys:
        if key not in obj:
            raise ChangeError(f"{where}: {key}: missing")
    path = obj["path"]
    if not isinstance(path, str) or not path:
        raise ChangeError(f"{where}: path: expected a non-empty string, not {path!r}")
    if op == "delete":
        return Change.delete(path)
    if op == "symlink":
        target = obj["target"]
        if not isinstance(target, str) or not target:
            raise ChangeError(f"{where}: target: expected a non-empty string, not {target!r}")
        return Change.symlink(path, target)
    mode = obj["mode"]
    if type(mode) is not int or mode not in _MODES:
        raise ChangeError(f"{where}: mode: expected 420 (0o644) or 493 (0o755), not {mode!r}")
    raw = obj["content_b64"]
    if not isinstance(raw, str):
        raise ChangeError(f"{where}: content_b64: expected a base64 string, not {raw!r}")
    try:
        content = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ChangeError(f"{where}: content_b64: not base64: {exc}") from None
    return Change.write(path, content, mode)


def write_changes(path: Path, changes: Iterable[Change]) -> None:
    """Save ``changes`` as a version 1 change file at ``path`` (atomically; folders made as needed)."""
    items = [json.dumps(c.to_json(), ensure_ascii=False) for c in changes]
    body = "[]" if not items else "[\n  " + ",\n  ".join(items) + "\n]"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path.parent}: cannot create: {exc.strerror or exc}") from exc
    atomic_write(path, f'{{"version": {CHANGES_VERSION}, "changes": {body}}}\n')


def changes_between(store: Any, old_tree: bytes, new_tree: bytes) -> list[Change]:
    """What turns the tree ``old_tree`` into ``new_tree`` (ids in the object store ``store``, a dulwich
    ``BaseObjectStore``) as changes, in a change file's order: deletions first, then writes and symlinks, each sorted
    by path.  Only the folders that differ are read.  Submodules (gitlinks) are left out, as a snapshot leaves them."""
    from dulwich.diff_tree import tree_changes  # dulwich: imported here, as in _make_ignore_filter
    from dulwich.objects import ObjectID  # dulwich: as above

    gone: list[Change] = []
    made: list[Change] = []
    for change in tree_changes(store, ObjectID(old_tree), ObjectID(new_tree)):
        old, new = change.old, change.new
        if new is None or new.path is None or new.mode is None or stat.S_ISDIR(new.mode) or new.mode == 0o160000:
            if old is not None and old.path is not None and old.mode is not None and old.mode != 0o160000:
                gone.append(Change.delete(os.fsdecode(old.path)))
            continue
        path = os.fsdecode(new.path)
        data = store[new.sha].data
        if stat.S_ISLNK(new.mode):
            made.append(Change.symlink(path, os.fsdecode(data)))
        else:
            made.append(Change.write(path, data, 0o755 if new.mode & 0o100 else 0o644))
    return sorted(gone, key=lambda c: c.path) + sorted(made, key=lambda c: c.path)


def read_changes(path: Path) -> list[Change]:
    """Load a change file; anything malformed raises :class:`ChangeError` naming the file and the change."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ChangeError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChangeError(f"{path}: cannot read: {exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ChangeError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ChangeError(f"{path}: a change file is an object with version and changes")
    unknown = sorted(set(doc) - {"version", "changes"})
    if unknown:
        raise ChangeError(f"{path}: {unknown[0]}: unknown field (known: version, changes)")
    if doc.get("version") != CHANGES_VERSION or type(doc.get("version")) is not int:
        raise ChangeError(f"{path}: version: expected {CHANGES_VERSION}, not {doc.get('version')!r}")
    items = doc.get("changes")
    if not isinstance(items, list):
        raise ChangeError(f"{path}: changes: expected a list")
    return [_change_from_json(item, f"{path}: changes[{i}]") for i, item in enumerate(items)]


def apply_changes(workdir: Path, changes: Sequence[Change]) -> None:
    """Apply ``changes`` to ``workdir`` in order.

    Every path is checked first (:func:`resolve_inside`; a symlink's target
    must stay inside too, resolved on the real filesystem: through the
    symlinks already on its way), so a change file refused then writes
    nothing.  Each path is checked again just before its change, since an
    earlier change may have made a symlink, and every symlink made is checked
    once more at the end (a later symlink can change where an earlier one
    leads); a change refused only then leaves the changes before it applied,
    and a symlink found leading outside at the end is removed.  A ``write``
    or ``symlink`` replaces whatever is at the path (a file, a symlink, an
    emptied folder); deleting a path that is already gone is not an error.
    """
    root = Path(workdir).resolve()
    for c in changes:
        _check_change(root, c)
    made: list[tuple[Change, Path]] = []
    for c in changes:
        real = _check_change(root, c)
        try:
            if c.op == "delete":
                if real.is_dir() and not real.is_symlink():
                    raise ChangeError(f"{c.path}: is a folder; a change deletes files and symlinks only")
                real.unlink(missing_ok=True)
                continue
            _clear(real)
            real.parent.mkdir(parents=True, exist_ok=True)
            if c.op == "symlink":
                assert c.target is not None
                os.symlink(c.target, real)
                made.append((c, real))
            else:
                assert c.content is not None and c.mode is not None
                real.write_bytes(c.content)
                real.chmod(c.mode)
        except OSError as exc:
            raise ChangeError(f"{c.path}: cannot {c.op}: {exc.strerror or exc}") from exc
    escaped = [(c, real) for c, real in made if not _inside(root, os.path.realpath(real))]
    for _, real in escaped:
        with contextlib.suppress(OSError):
            real.unlink()
    if escaped:
        c, real = escaped[0]
        leads = os.path.realpath(real.parent / str(c.target))
        raise ChangeError(f"{c.path}: the symlink to {c.target} leads to {leads} once the later changes are made, "
                          "outside the repository (removed)")  # fmt: skip


def _check_change(root: Path, c: Change) -> Path:
    real = resolve_inside(root, c.path, follow_last=False)
    if c.op == "symlink":
        assert c.target is not None
        if posixpath.isabs(c.target):
            raise ChangeError(f"{c.path}: a symlink to the absolute path {c.target} leaves the repository")
        inside = posixpath.normpath(posixpath.join(posixpath.dirname(c.path), c.target))
        if inside == ".." or inside.startswith("../"):
            raise ChangeError(f"{c.path}: a symlink to {c.target} leaves the repository")
        # where it leads on the real filesystem: through the symlinks already on the way (normpath ignores them)
        leads = os.path.realpath(os.path.join(os.path.realpath(real.parent), c.target))
        if not _inside(root, leads):
            raise ChangeError(f"{c.path}: a symlink to {c.target} leads to {leads}, outside the repository")
    return real


def _inside(root: Path, path: str) -> bool:
    """Whether ``path`` (resolved) is ``root`` or under it."""
    return path == str(root) or path.startswith(str(root).rstrip(os.sep) + os.sep)


def _clear(real: Path) -> None:
    """Remove what is at ``real`` (a file, a symlink or a folder) so that something else can take its place."""
    if real.is_symlink() or real.is_file():
        real.unlink()
    elif real.is_dir():
        shutil.rmtree(real)


# -- snapshots ------------------------------------------------------------------------------------------------------


@attrs.frozen
class Entry:
    """One path of a snapshot: a ``file`` (mode 0o644/0o755) or a ``symlink`` (its target in ``digest``).

    A file's content is read only when its stat data cannot vouch for it: a
    file last written before the snapshot began (by the file system's own
    clock) has ``stat`` (size, mtime_ns, inode) and an empty ``digest``; a file
    written in the same clock tick ("racy", as git calls it) also has the
    sha256 of its content.
    """

    kind: str
    mode: int
    digest: str
    stat: tuple[int, int, int] | None = None


@attrs.frozen
class Snapshot:
    """The state of a tree: relative POSIX path → :class:`Entry`.

    ``scope`` is the paths it was limited to (None: the whole tree); a later
    :func:`capture_changes` looks at the same paths, with the same ignore rules.
    """

    entries: Mapping[str, Entry]
    scope: tuple[str, ...] | None = None
    ignored: Callable[[str, bool], bool] | None = attrs.field(default=None, eq=False, repr=False)


def snapshot(workdir: Path, scope: Iterable[str] | None = None, *, by_stat: bool = False) -> Snapshot:
    """The files and symlinks under ``workdir`` (or under the paths of ``scope`` only), by mode and content.

    Left out: ``.git`` folders, the top ``.flow`` folder, other file types, and —
    when ``workdir`` is a git repository — files ``.gitignore`` ignores that git
    does not track.  Two snapshots of equal trees are equal.  With ``by_stat``
    (for :func:`capture_changes` on the same tree later) its cost follows the
    tree's size in stat calls, not in bytes: contents are read only for racy
    files (see :class:`Entry`).
    """
    root = Path(workdir).resolve()
    scoped = None if scope is None else tuple(sorted(set(scope)))
    ignored = _ignore_filter(root)
    now = _fs_now(root) if by_stat else -1
    entries: dict[str, Entry] = {}
    for rel, kind, mode, st, where in _walk(root, scoped, ignored):
        if kind == "symlink":
            entries[rel] = Entry("symlink", 0o120000, where)
        elif st.st_mtime_ns < now:
            entries[rel] = Entry("file", mode, "", (st.st_size, st.st_mtime_ns, st.st_ino))
        else:
            data = _read(where)
            if data is not None:
                entries[rel] = Entry("file", mode, hashlib.sha256(data).hexdigest())
    return Snapshot(entries, scoped, ignored)


def capture_changes(workdir: Path, before: Snapshot) -> list[Change]:
    """What changed in ``workdir`` since ``before``: deletions first, then writes and symlinks, each sorted by path."""
    root = Path(workdir).resolve()
    seen: set[str] = set()
    made: list[Change] = []
    ignored = before.ignored or _ignore_filter(root)
    for rel, kind, mode, st, where in _walk(root, before.scope, ignored):
        was = before.entries.get(rel)
        if kind == "symlink":
            seen.add(rel)
            if was != Entry("symlink", 0o120000, where):
                made.append(Change.symlink(rel, where))
            continue
        same_kind = was is not None and was.kind == "file" and was.mode == mode
        if same_kind and was is not None and not was.digest and was.stat == (st.st_size, st.st_mtime_ns, st.st_ino):
            seen.add(rel)  # its stat data vouch for it: not read
            continue
        data = _read(where)
        if data is None:  # gone meanwhile
            continue
        seen.add(rel)
        if same_kind and was is not None and was.digest and was.digest == hashlib.sha256(data).hexdigest():
            continue
        made.append(Change.write(rel, data, mode))
    gone = [Change.delete(rel) for rel in sorted(set(before.entries) - seen)]
    return gone + sorted(made, key=lambda c: c.path)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _fs_now(root: Path) -> int:
    """The file system's clock now, in ns: the mtime of a file written just now (git's racy-clean rule).

    Written in the repository's git folder; without one, two seconds ago by the
    system clock (every file written since counts as racy).
    """
    folder = _git_dir(root)
    if folder is not None:
        marker = folder / f"maestro-clock-{os.getpid()}-{threading.get_ident()}"
        try:
            with open(marker, "wb") as fh:
                fh.write(b"\n")
            return os.stat(marker).st_mtime_ns
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(marker)
    return time.time_ns() - 2_000_000_000


def _git_dir(root: Path) -> Path | None:
    """The git folder of the working tree ``root`` (``.git``, or where a worktree's ``.git`` file points)."""
    git = root / ".git"
    if git.is_dir():
        return git
    if git.is_file():
        try:
            line = git.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if line.startswith("gitdir:"):
            candidate = (root / line.removeprefix("gitdir:").strip()).resolve()
            return candidate if candidate.is_dir() else None
    return None


def _walk(
    root: Path, scope: tuple[str, ...] | None, ignored: Callable[[str, bool], bool]
) -> Iterator[tuple[str, str, int, os.stat_result, str]]:
    """(relative path, kind, mode, lstat, file path or link target) of every recorded path (in no set order)."""
    if scope is None:
        yield from _walk_dir(str(root), "", ignored)
        return
    for rel in scope:
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            continue
        if pure.parts[0].casefold() in _PRIVATE or ".git" in pure.parts:
            continue
        path = root.joinpath(*pure.parts)
        item = _item(path, pure.as_posix(), ignored)
        if item is not None:
            yield item
        elif path.is_dir() and not path.is_symlink():
            yield from _walk_dir(str(path), pure.as_posix(), ignored)


def _walk_dir(
    folder: str, prefix: str, ignored: Callable[[str, bool], bool]
) -> Iterator[tuple[str, str, int, os.stat_result, str]]:
    """The files and symlinks under ``folder`` (``prefix`` its relative path): no ``.git``, no top ``.flow``."""
    walk = TreeWalk(folder, prefix=prefix, prune=lambda rel, _e: ignored(rel, True), skip_top=_TOP_SKIP[not prefix])
    for here in walk.folders():  # folder by folder: the hot loop is this one, with no layer of generator under it
        head = f"{here.rel}/" if here.rel else ""
        for e in here.entries:
            if e.is_dir(follow_symlinks=False):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone meanwhile
            mode = st.st_mode
            if stat.S_ISREG(mode):
                rel = head + e.name
                if not ignored(rel, False):
                    yield rel, "file", 0o755 if mode & 0o100 else 0o644, st, e.path
            elif stat.S_ISLNK(mode):
                rel = head + e.name
                if not ignored(rel, False):
                    try:
                        yield rel, "symlink", 0o120000, st, os.readlink(e.path)
                    except (FileNotFoundError, NotADirectoryError):
                        continue


def _item(
    path: Path, rel: str, ignored: Callable[[str, bool], bool]
) -> tuple[str, str, int, os.stat_result, str] | None:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return None if ignored(rel, False) else (rel, "symlink", 0o120000, st, os.readlink(path))
        if not stat.S_ISREG(st.st_mode) or ignored(rel, False):
            return None
        return rel, "file", 0o755 if st.st_mode & 0o100 else 0o644, st, str(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


_FILTERS: dict[tuple[Any, ...], Callable[[str, bool], bool]] = {}
_FILTERS_LOCK = threading.Lock()


def _ignore_filter(root: Path) -> Callable[[str, bool], bool]:
    """``(rel, is_dir) -> skip?``: what ``.gitignore`` ignores and the index does not track (nothing without git).

    Kept while the index and the top ``.gitignore`` are unchanged (by their stat
    data) and the shared rules are (:func:`_global_ignores`: ``info/exclude``, the
    configuration, ``core.excludesFile``), and each answer remembered: a snapshot
    of an unchanged tree asks dulwich nothing.  (A deeper ``.gitignore`` an agent
    edits counts from the next checkpoint, which rewrites the index.)
    """
    if not (root / ".git").exists():
        return lambda _rel, _is_dir: False
    git = _git_dir(root)
    shared, generation = _global_ignores(root, git)
    watched = [root / ".gitignore"] + ([git / "index"] if git is not None else [])
    key = (str(root), generation, *(_stat_key(path) for path in watched))
    with _FILTERS_LOCK:  # built by one thread: the others starting at the same time wait, then share it
        cached = _FILTERS.get(key)
        if cached is None:
            if len(_FILTERS) > 64:
                _FILTERS.clear()
            cached = _FILTERS[key] = functools.lru_cache(maxsize=None)(_make_ignore_filter(root, git, shared))
    return cached


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _make_ignore_filter(
    root: Path, git: Path | None, found: tuple[list[Any], bool] | None
) -> Callable[[str, bool], bool]:
    """The filter for ``root``: dulwich's ignore rules (its per-folder ``.gitignore`` files read as asked), the
    global ones (``info/exclude``, ``core.excludesFile``) kept across calls while their files and the configuration
    are unchanged, and the index read only once a path matches a rule (a tracked file is never ignored)."""
    # imported here: dulwich is heavy, and only a snapshot in a git repository needs it
    from dulwich.ignore import IgnoreFilterManager  # dulwich: as above
    from dulwich.index import Index  # dulwich: as above

    if found is None:
        return lambda _rel, _is_dir: False
    manager = IgnoreFilterManager(str(root), *found)
    index_path = None if git is None else git / "index"
    known: list[tuple[set[str], set[str]]] = []

    def tracked() -> tuple[set[str], set[str]]:
        """The index's paths and their folders, read once (when a rule first matches)."""
        if not known:
            paths: set[str] = set()
            if index_path is not None and index_path.exists():
                paths = {os.fsdecode(p) for p in Index(str(index_path)).paths()}
            dirs = {str(PurePosixPath(p).parent) for p in paths}
            for d in list(dirs):
                dirs.update(str(q) for q in PurePosixPath(d).parents)
            known.append((paths, dirs))
        return known[0]

    def ignored(rel: str, is_dir: bool) -> bool:
        if is_dir:
            return bool(manager.may_prune_directory(rel + "/")) and rel not in tracked()[1]
        return bool(manager.is_ignored(rel)) and rel not in tracked()[0]

    return ignored


_GLOBALS: dict[tuple[Any, ...], tuple[tuple[list[Any], bool] | None, int, Path | None, Any]] = {}
_GENERATIONS = itertools.count(1)
_GLOBALS_LOCK = threading.Lock()  # not _FILTERS_LOCK: a filter is made (and this called) holding that one


def _global_ignores(root: Path, git: Path | None) -> tuple[tuple[list[Any], bool] | None, int]:
    """The ignore filters every folder shares (``info/exclude``, the user's ``core.excludesFile``) and
    ``core.ignorecase``, as dulwich's ``IgnoreFilterManager.from_repo`` reads them (None when ``root`` is no
    repository), and a number that changes whenever they are read again.  Opening the repository and reading
    the configuration stack is most of a filter's cost: they are read again only when one of the files they
    come from, or an environment variable that moves them, changed."""
    from dulwich.errors import NotGitRepository  # dulwich: as in _make_ignore_filter
    from dulwich.ignore import IgnoreFilter, default_user_ignore_filter_path  # dulwich: as above
    from dulwich.repo import Repo  # dulwich: as above

    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path(os.path.expanduser("~")) / ".config")
    if git is None:
        signature = config_signature(root, root, xdg / "git" / "ignore")
    else:
        common = git
        with contextlib.suppress(OSError, UnicodeDecodeError):
            common = (git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve()
        signature = config_signature(git, common, xdg / "git" / "ignore", git / "info" / "exclude")
    key = (str(root), str(git), signature)
    with _GLOBALS_LOCK:
        hit = _GLOBALS.get(key)
    if hit is not None and (hit[2] is None or _stat_key(hit[2]) == hit[3]):  # the excludes file named unchanged
        return hit[0], hit[1]
    excludes_path: Path | None = None
    try:
        repo = Repo(str(root))
    except (NotGitRepository, OSError):
        found = None
    else:
        try:
            config = repo.get_config_stack()
            filters = []
            excludes = default_user_ignore_filter_path(config)
            if excludes:
                excludes_path = Path(os.path.expanduser(excludes))
            for path in (os.path.join(repo.controldir(), "info", "exclude"), excludes):
                with contextlib.suppress(OSError):
                    filters.append(IgnoreFilter.from_path(os.path.expanduser(path)))
            found = (filters, bool(config.get_boolean((b"core"), (b"ignorecase"), False)))
        finally:
            repo.close()
    with _GLOBALS_LOCK:
        if len(_GLOBALS) > 64:
            _GLOBALS.clear()
        generation = next(_GENERATIONS)
        _GLOBALS[key] = (found, generation, excludes_path, None if excludes_path is None else _stat_key(excludes_path))
    return found, generation


# -- the plan file --------------------------------------------------------------------------------------------------


def plan_file(refinement: int = 0) -> str:
    """The name of a planning answer's file: ``plan.json``, ``plan-refinement-<n>.json`` for refinement round n."""
    return PLAN_FILE if refinement <= 0 else f"plan-refinement-{refinement}.json"


def write_plan(session_dir: Path, plan: Plan, refinement: int = 0) -> Path:
    """Save the planning answer as ``<session_dir>/plan.json`` (``{"prd_markdown", "tasks_yaml"}``; a refinement
    round's as :func:`plan_file` names it) and return it."""
    path = session_dir / plan_file(refinement)
    answer = {"prd_markdown": plan.prd_markdown, "tasks_yaml": plan.tasks_yaml}
    atomic_write(path, json.dumps(answer, indent=1, ensure_ascii=False) + "\n")
    return path
