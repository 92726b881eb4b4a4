"""Walking a working tree: the one ``os.scandir`` walk behind the recording agent's snapshots, the
checkpointer's scan and the repository facts.

:class:`TreeWalk` lists each folder once (``os.scandir``: a folder's entries
come with their type, and their ``lstat`` data is fetched once, on demand) and
decides which subfolders to enter: not those ``prune`` refuses, nor those
deeper than ``max_depth``.  Read it two ways:

* :meth:`TreeWalk.folders` — each folder walked (:class:`Folder`: its relative
  path, its entries, the subfolders entered), for a caller that works folder by
  folder (the checkpointer compares each folder with the index);
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
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Collection, Iterator
from typing import AnyStr, Generic, NamedTuple

__all__ = ["Folder", "TreeEntry", "TreeWalk"]


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
