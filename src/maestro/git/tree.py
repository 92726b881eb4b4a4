"""Walking a working tree: the ``os.scandir`` walk behind the recording agent's snapshots and the
repository facts, and git's ignore rules as a walk asks them (the checkpointer's scan, whose hot loop is
its own in :mod:`maestro.git.staging`, asks them too).

:class:`TreeWalk` lists each folder once (``os.scandir``: a folder's entries
come with their type, and their ``lstat`` data is fetched once, on demand) and
decides which subfolders to enter: not those ``prune`` refuses, nor those
deeper than ``max_depth``.  Read it two ways:

* :meth:`TreeWalk.folders` — each folder walked (:class:`Folder`: its relative
  path, its entries, the subfolders entered), for a caller that works folder by
  folder;
* iterating the walk — its entries one by one (:class:`TreeEntry`: relative
  path, ``os.DirEntry``, and with ``stat=True`` the ``lstat`` data), the
  subfolders entered and everything that is not a folder, ``max_files``
  regular files at most.

:attr:`TreeWalk.truncated` says whether ``max_depth`` or ``max_files`` left
something out.  Paths may be ``str`` or ``bytes`` (as ``top`` is); relative
paths use ``/``.  Names in ``skip`` (``.git`` by default) are left out
everywhere, names in ``skip_top`` at the top only.  A folder that vanishes
during the walk is passed over; another error reading a folder goes to
``onerror`` (which then gets every error, the folder passed over) or is raised.
Symlinks are entries, never followed.

:class:`IgnoreRules` answers what such a walk asks of git's ignore rules, top
down: whether an untracked file is ignored, whether an untracked folder can
be left out whole.  It reads a folder's ``.gitignore`` only when something in
that folder is asked about (again only once it changed), and matches a path
against all the patterns of one file in a single regular expression.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import AnyStr, Generic, NamedTuple

from dulwich.config import StackedConfig
from dulwich.ignore import IgnoreFilter, default_user_ignore_filter_path
from dulwich.repo import Repo

__all__ = ["Folder", "IgnoreRules", "TreeEntry", "TreeWalk"]

log = logging.getLogger("maestro")


class Folder(Generic[AnyStr]):
    """One folder of a walk: ``rel`` (empty for the top; ``/``-separated), ``path``, ``depth`` (0 for the top),
    its ``entries`` (but skipped names) and the subfolders of them the walk enters (``entered``), in order."""

    __slots__ = ("depth", "entered", "entries", "path", "rel")

    rel: AnyStr
    path: AnyStr
    depth: int
    entries: list[os.DirEntry[AnyStr]]
    entered: list[os.DirEntry[AnyStr]]

    def __init__(
        self,
        rel: AnyStr,
        path: AnyStr,
        depth: int,
        entries: list[os.DirEntry[AnyStr]],
        entered: list[os.DirEntry[AnyStr]],
    ) -> None:
        self.rel = rel
        self.path = path
        self.depth = depth
        self.entries = entries
        self.entered = entered

    def __repr__(self) -> str:
        return f"Folder({self.rel!r}, {len(self.entries)} entries, {len(self.entered)} entered)"


class TreeEntry(NamedTuple, Generic[AnyStr]):
    """An entry of a walk: its path relative to the top, its ``os.DirEntry``, and its ``lstat`` (``None`` for a
    folder, or when the walk does not stat)."""

    rel: AnyStr
    entry: os.DirEntry[AnyStr]
    stat: os.stat_result | None


class TreeWalk(Generic[AnyStr]):
    """A walk of the tree under ``top``; see the module docstring.

    ``prefix`` is the relative path of ``top`` itself (when walking part of a
    tree).  ``prune(rel, entry)`` is asked about each subfolder: true leaves it
    out.  ``breadth_first`` walks level by level (else depth first, a stack);
    ``sort`` lists each folder's entries by name (else in the file system's
    order).  ``stat`` (for iteration) fetches each non-folder entry's ``lstat``,
    leaving out entries that vanished meanwhile.
    """

    top: AnyStr
    prune: Callable[[AnyStr, os.DirEntry[AnyStr]], bool] | None
    skip: frozenset[AnyStr]
    skip_top: frozenset[AnyStr]
    onerror: Callable[[AnyStr, OSError], None] | None
    truncated: bool

    def __init__(
        self,
        top: AnyStr,
        *,
        prefix: AnyStr | None = None,
        prune: Callable[[AnyStr, os.DirEntry[AnyStr]], bool] | None = None,
        skip: Collection[AnyStr] | None = None,
        skip_top: Collection[AnyStr] = (),
        max_depth: int | None = None,
        max_files: int | None = None,
        breadth_first: bool = False,
        sort: bool = False,
        stat: bool = False,
        onerror: Callable[[AnyStr, OSError], None] | None = None,
    ) -> None:
        binary = isinstance(top, bytes)
        self.top = top
        self.sep: AnyStr = b"/" if binary else "/"  # type: ignore[assignment]
        self.prefix: AnyStr = prefix if prefix is not None else top[:0]
        self.prune = prune
        git: AnyStr = b".git" if binary else ".git"  # type: ignore[assignment]
        self.skip = frozenset((git,) if skip is None else skip)
        self.skip_top = self.skip | frozenset(skip_top)
        self.max_depth = max_depth
        self.max_files = max_files
        self.breadth_first = breadth_first
        self.sort = sort
        self.stat = stat
        self.onerror = onerror
        self.truncated = False

    def folders(self) -> Iterator[Folder[AnyStr]]:
        """Each folder walked, the top first; a folder's subfolders are chosen before it is yielded."""
        prune, max_depth, sep, onerror = self.prune, self.max_depth, self.sep, self.onerror
        todo: deque[tuple[AnyStr, AnyStr, int]] = deque([(self.prefix, self.top, 0)])
        pop = todo.popleft if self.breadth_first else todo.pop
        while todo:
            rel, path, depth = pop()
            try:
                with os.scandir(path) as it:
                    found = list(it)
            except OSError as exc:
                if onerror is not None:
                    onerror(path, exc)
                    continue
                if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                    continue  # gone, or a file now: nothing to walk
                raise
            if self.sort:
                found.sort(key=_name)
            skip = self.skip_top if depth == 0 else self.skip
            head = rel + sep if rel else rel
            entries: list[os.DirEntry[AnyStr]] = []
            entered: list[os.DirEntry[AnyStr]] = []
            for e in found:
                name = e.name
                if name in skip:
                    continue
                entries.append(e)
                if e.is_dir(follow_symlinks=False):
                    child = head + name
                    if prune is not None and prune(child, e):
                        continue
                    if max_depth is not None and depth >= max_depth:
                        self.truncated = True
                        continue
                    entered.append(e)
                    todo.append((child, e.path, depth + 1))
            yield Folder(rel, path, depth, entries, entered)

    def __iter__(self) -> Iterator[TreeEntry[AnyStr]]:
        """The subfolders entered and the other entries, folder by folder; at most ``max_files`` regular files."""
        max_files, with_stat, sep = self.max_files, self.stat, self.sep
        new = tuple.__new__  # TreeEntry(...) without the Python-level __new__ of a named tuple: this loop is hot
        files = 0
        for folder in self.folders():
            head = folder.rel + sep if folder.rel else folder.rel
            entered = iter(folder.entered)  # a subsequence of the entries, in their order
            next_in = next(entered, None)
            for e in folder.entries:
                if e is next_in:
                    yield new(TreeEntry, (head + e.name, e, None))
                    next_in = next(entered, None)
                    continue
                if e.is_dir(follow_symlinks=False):
                    continue
                if max_files is not None and e.is_file(follow_symlinks=False):
                    if files >= max_files:
                        self.truncated = True
                        return
                    files += 1
                st = None
                if with_stat:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except (FileNotFoundError, NotADirectoryError):
                        continue  # gone meanwhile
                yield new(TreeEntry, (head + e.name, e, st))


def _name(entry: os.DirEntry[AnyStr]) -> AnyStr:
    return entry.name


class _Rules:
    """The patterns of one ignore file, matched all at once: the last pattern matching a path decides."""

    __slots__ = ("_dirs", "_files", "excludes")

    def __init__(self, source: str, lines: Sequence[bytes], ignorecase: bool) -> None:
        patterns = [p for p in IgnoreFilter(lines, ignorecase, path=source).patterns if not p.is_empty]
        self.excludes = [p.is_exclude for p in patterns]
        flags = re.MULTILINE | re.DOTALL | (re.IGNORECASE if ignorecase else 0)

        def combined(which: list[int]) -> re.Pattern[bytes] | None:
            if not which:
                return None
            alternatives = []
            for i in reversed(which):  # the last pattern first: the first alternative matching is the one
                body = patterns[i]._name_re.pattern.removeprefix(b"(?ms)")  # the flags go on the whole
                alternatives.append(b"(?P<p%d>%s)" % (i, body))
            return re.compile(b"|".join(alternatives), flags)

        self._files = combined([i for i, p in enumerate(patterns) if not p.is_directory_only])
        self._dirs = combined(list(range(len(patterns))))

    def decide(self, rel: bytes, is_dir: bool) -> bool | None:
        """True: the last pattern matching ``rel`` (relative to the file's folder) excludes it; False: it
        re-includes it; None: no pattern matches."""
        regex = self._dirs if is_dir else self._files
        if regex is None:
            return None
        m = regex.match(rel)
        if m is None:
            return None
        name = m.lastgroup
        assert name is not None
        return self.excludes[int(name[1:])]


class IgnoreRules:
    """git's ignore rules for one working tree, asked top down during a walk (see the module docstring).

    A path is ignored when the last pattern matching it excludes it, the
    ``.gitignore`` of its own folder first, then those of the folders above,
    then ``info/exclude``, then ``core.excludesFile``; a directory-only pattern
    (``build/``) matches folders only; and whatever is below an excluded folder
    is ignored (nothing can re-include it), even in a folder a walk enters
    because it holds tracked files.  Call :meth:`begin` before each walk.
    ``top`` is the working tree, ``common_dir`` the repository's (shared) git
    folder, where ``info/exclude`` is.
    """

    def __init__(self, top: bytes, common_dir: str) -> None:
        self.top = top
        self._common_dir = common_dir
        self.ignorecase = False
        self._global_paths: list[str] = []
        self._files: dict[str, tuple[tuple[int, int, int, int], _Rules]] = {}  # parsed, by path, with their stat
        self._chains: dict[bytes, list[tuple[bytes, _Rules]]] = {}  # a folder's rules (its folder, the rules)
        self._excluded: dict[bytes, bool] = {b"": False}

    @classmethod
    def of(cls, repo: Repo) -> IgnoreRules:
        """The rules of ``repo``'s working tree (a linked worktree shares ``info/exclude`` with its repository)."""
        rules = cls(os.fsencode(repo.path), repo.commondir())
        rules.begin(repo.get_config_stack())
        return rules

    def begin(self, config: StackedConfig) -> None:
        """Before a walk: take the configuration as it is, forget what the last walk learnt of the tree (its
        .gitignore files are checked again, and parsed again if they changed)."""
        ignorecase = config.get_boolean((b"core",), b"ignorecase", False)
        if ignorecase != self.ignorecase:
            self._files = {}
            self.ignorecase = ignorecase
        self._global_paths = [
            os.path.join(self._common_dir, "info", "exclude"),
            os.path.expanduser(default_user_ignore_filter_path(config)),
        ]
        self._chains = {}
        self._excluded = {b"": False}

    def ignored(self, rel: bytes, is_dir: bool) -> bool:
        """Whether the untracked file (or folder: then it can be left out whole) at ``rel`` is ignored."""
        folder = rel.rpartition(b"/")[0]
        if self._folder_excluded(folder):
            return True
        return self._decide(rel, is_dir, self._chain(folder)) is True

    def _folder_excluded(self, folder: bytes) -> bool:
        known = self._excluded.get(folder)
        if known is not None:
            return known
        parent = folder.rpartition(b"/")[0]
        out = self._folder_excluded(parent) or self._decide(folder, True, self._chain(parent)) is True
        self._excluded[folder] = out
        return out

    @staticmethod
    def _decide(rel: bytes, is_dir: bool, chain: list[tuple[bytes, _Rules]]) -> bool | None:
        for where, rules in reversed(chain):  # the deepest .gitignore first; the global files last
            verdict = rules.decide(rel[len(where) + 1 :] if where else rel, is_dir)
            if verdict is not None:
                return verdict
        return None

    def _chain(self, folder: bytes) -> list[tuple[bytes, _Rules]]:
        """The rules that apply in ``folder``: the global ones, then each .gitignore from the top down to it."""
        chain = self._chains.get(folder)
        if chain is not None:
            return chain
        if folder:
            chain = list(self._chain(folder.rpartition(b"/")[0]))
        else:
            chain = [(b"", r) for path in reversed(self._global_paths) if (r := self._load(path)) is not None]
        where = self.top + b"/" + folder if folder else self.top
        own = self._load(os.fsdecode(where + b"/.gitignore"))
        if own is not None:
            chain.append((folder, own))
        self._chains[folder] = chain
        return chain

    def _load(self, path: str) -> _Rules | None:
        """An ignore file's rules (parsed again only when its stat data change); None if there is none."""
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISLNK(st.st_mode):
                log.debug("%s: a symbolic link, not read (as git does)", path)
            return None
        sig = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        known = self._files.get(path)
        if known is not None and known[0] == sig:
            return known[1]
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        rules = _Rules(path, _lines(data), self.ignorecase)
        self._files[path] = (sig, rules)
        return rules


def _lines(data: bytes) -> list[bytes]:
    """The patterns of an ignore file, as git reads them (comments, blank lines and trailing spaces dropped)."""
    out = []
    for raw in data.removeprefix(b"\xef\xbb\xbf").split(b"\n"):  # a UTF-8 byte order mark is skipped, as git does
        line = raw.rstrip(b"\r\n")
        if not line.strip() or line.startswith(b"#"):
            continue
        while line.endswith(b" ") and not line.endswith(b"\\ "):
            line = line[:-1]
        out.append(line.replace(b"\\ ", b" "))
    return out
