"""The user's repository as a session finds it: its git folders, an operation git is in the middle of, and what
of the user's a session's base snapshot cannot hold.

::

    dirs = git_dirs(repo)          # top, git_dir (HEAD, index, a merge's state), common_dir (objects, refs)
    refuse_in_progress(repo)       # CheckpointError if a merge, rebase, cherry-pick, revert or bisect is under way
    report = base_report(repo)     # staged content, empty folders, submodules with uncommitted changes
    save_staged(repo, session_id, report, when=...)   # refs/maestro/<session>/index: a commit of the user's index

``.git`` may be a folder or a *gitdir file* (``gitdir: <path>``: a linked worktree made by ``git worktree add``,
or a submodule).  A linked worktree has a git folder of its own (``<common>/worktrees/<name>``: its ``HEAD``, its
``index``, the state of a merge or rebase in it) and shares the common one (objects, refs, ``packed-refs``,
``config``, ``worktrees/``) with the main worktree; a submodule's git folder (``<super>/.git/modules/<name>``) is
both.  dulwich reads gitdir files too (``Repo(path).controldir()`` and ``.commondir()``), but accepts one that
points nowhere and fails later (a ``KeyError`` on ``HEAD``); :func:`git_dirs` refuses it at once, in one line.

A session's base is the user's working tree as it is (HEAD plus every uncommitted change, as a checkpoint stages
it).  Three things of the user's are not in it: what was *staged* (the index, when it differs from both HEAD and
the working tree: ``git add`` then more edits), which :func:`save_staged` keeps at a ref of its own; empty folders,
which git does not store; and uncommitted work inside a submodule, whose commit alone a tree records.  The
:class:`BaseReport` says which of these there are, so that the session can say so before it starts.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import attrs
from dulwich import porcelain
from dulwich.diff_tree import tree_changes
from dulwich.errors import NotGitRepository
from dulwich.objects import Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError
from maestro.core.records import SESSION_ID
from maestro.git.identity import identity
from maestro.git.index import GitIndex, Objects
from maestro.git.tree import IgnoreRules, TreeWalk

__all__ = [
    "BaseReport",
    "GitDirs",
    "InProgress",
    "SubmoduleChanges",
    "base_report",
    "git_dirs",
    "in_progress",
    "refuse_in_progress",
    "save_staged",
]

log = logging.getLogger("maestro")

_GITLINK = 0o160000
_INTENT_TO_ADD = 0x2000  # in an index entry's extended flags: `git add -N`, left out of the trees git writes
_GITFILE_MAX = 4096  # a gitdir file is one short line


@attrs.frozen
class GitDirs:
    """Where a working tree's git data is: ``top`` (the working tree), ``git_dir`` (its own git folder: ``HEAD``,
    ``index``, the state of a merge or rebase), ``common_dir`` (shared by every worktree of the repository:
    objects, refs, ``packed-refs``, ``config``, ``worktrees/``); ``gitfile`` when ``.git`` is a gitdir file."""

    top: Path
    git_dir: Path
    common_dir: Path
    gitfile: bool


def git_dirs(repo: str | os.PathLike[str]) -> GitDirs:
    """The git folders of the working tree holding ``repo`` (its top, or any path in it).

    Raises :class:`CheckpointError` (one line, naming the path) when there is no repository, or when ``.git`` is a
    gitdir file that cannot be read, is not one, or points to something that is not a git folder.
    """
    start = Path(repo).absolute()
    if not start.is_dir():
        raise CheckpointError(f"{repo}: no such directory")
    for d in (start, *start.parents):
        dotgit = d / ".git"
        if dotgit.is_dir():
            git_dir, gitfile = dotgit, False
            break
        if os.path.lexists(dotgit):
            git_dir, gitfile = _read_gitfile(dotgit), True
            break
    else:
        raise CheckpointError(f"{repo}: not a git repository (no .git here or above)")
    git_dir = git_dir.resolve()
    if not (git_dir / "HEAD").is_file():
        where = f"{dotgit} points to {git_dir}, which" if gitfile else f"{dotgit}"
        raise CheckpointError(f"{where} is not a git folder (no HEAD in it)")
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        try:
            text = commondir.read_bytes()[:_GITFILE_MAX].decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{commondir}: cannot read: {exc}") from exc
        common = (git_dir / text).resolve()
    if not (common / "objects").is_dir() or not (common / "refs").is_dir():
        raise CheckpointError(f"{commondir}: points to {common}, which is not a git folder (no objects, refs)")
    return GitDirs(d.resolve(), git_dir, common, gitfile)


def _read_gitfile(dotgit: Path) -> Path:
    """The folder a gitdir file names (relative to the file's folder, as git reads it)."""
    try:
        with open(dotgit, "rb") as fh:
            data = fh.read(_GITFILE_MAX)
    except OSError as exc:
        raise CheckpointError(f"{dotgit}: cannot read: {exc.strerror or exc}") from exc
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line.startswith(b"gitdir: ") or not line[8:].strip():
        raise CheckpointError(f"{dotgit}: neither a git folder nor a gitdir file ('gitdir: <path>')")
    try:
        target = line[8:].strip().decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{dotgit}: the gitdir file's path is not UTF-8") from None
    return dotgit.parent / target


# -- an operation under way ----------------------------------------------------------------------
@attrs.frozen
class InProgress:
    """An operation git is in the middle of: what it is, the file that says so, how to end it."""

    operation: str
    path: Path
    how: str

    def message(self) -> str:
        return (
            f"{self.path}: the repository is in the middle of {self.operation}; "
            f"finish it or abort it ({self.how}) before running maestro"
        )


# The files git leaves in a worktree's own git folder while an operation waits for the user, in the order git's
# own `git status` looks at them (a rebase that stopped on a conflict also has a CHERRY_PICK_HEAD, say).
_OPERATIONS: tuple[tuple[str, str, str], ...] = (
    ("rebase-merge", "a rebase", "git rebase --continue, or git rebase --abort"),
    ("rebase-apply", "a rebase", "git rebase --continue, or git rebase --abort"),
    ("MERGE_HEAD", "a merge", "git commit, or git merge --abort"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --continue, or git cherry-pick --abort"),
    ("REVERT_HEAD", "a revert", "git revert --continue, or git revert --abort"),
    (
        "sequencer/todo",
        "a cherry-pick or revert of several commits",
        "git cherry-pick (or revert) --continue or --abort",
    ),
    ("BISECT_LOG", "a bisect", "git bisect reset"),
)


def in_progress(repo: str | os.PathLike[str]) -> InProgress | None:
    """The operation git is in the middle of in the working tree holding ``repo`` (its own git folder: a linked
    worktree's, not the main one's), or None."""
    git_dir = git_dirs(repo).git_dir
    for name, operation, how in _OPERATIONS:
        path = git_dir / name
        if not os.path.lexists(path):
            continue
        if name == "rebase-apply" and (path / "applying").exists():
            return InProgress("a git am", path, "git am --continue, or git am --abort")
        return InProgress(operation, path, how)
    return None


def refuse_in_progress(repo: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` naming the operation and its file if git is in the middle of a merge, rebase,
    ``git am``, cherry-pick, revert or bisect; a repository git cannot be found in raises too."""
    found = in_progress(repo)
    if found is not None:
        raise CheckpointError(found.message())


# -- what the base snapshot cannot hold ---------------------------------------------------------
@attrs.frozen
class SubmoduleChanges:
    """A submodule whose uncommitted work a session's base cannot hold (a tree records a submodule's commit only).

    ``changes`` in ``git status``'s words: ``new commits`` (its HEAD is not the commit recorded),
    ``modified content`` (tracked files changed, staged or not), ``untracked content``.
    """

    path: str
    recorded: str
    head: str | None
    changes: tuple[str, ...]


@attrs.frozen
class BaseReport:
    """What of the user's is not in a session's base snapshot (the working tree as it is), found before it starts.

    ``index_tree`` is the tree of the user's index when it differs from HEAD's (something is staged), ``staged`` the
    paths where it does; :func:`save_staged` keeps it.  ``empty_folders`` are the topmost folders holding nothing
    at all (git stores no folders, so the session's worktrees do not have them).  ``submodules`` are those with
    uncommitted work, which is not captured.
    """

    head: str | None
    index_tree: str | None
    staged: tuple[str, ...]
    empty_folders: tuple[str, ...]
    submodules: tuple[SubmoduleChanges, ...]

    def notes(self) -> list[str]:
        """One line for each thing to tell the user (none when everything is in the base)."""
        out: list[str] = []
        if self.index_tree is not None:
            out.append(f"Staged, not committed: {_some(self.staged)}; the index is kept as it was at session start")
        if self.empty_folders:
            out.append(f"Empty folders are not in the session (git stores no folders): {_some(self.empty_folders)}")
        for sub in self.submodules:
            out.append(f"Submodule {sub.path} has {', '.join(sub.changes)}: not captured (only its commit is)")
        return out


def _some(paths: tuple[str, ...], shown: int = 3) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def base_report(repo: str | os.PathLike[str]) -> BaseReport:
    """What of the user's a session started now would not have in its base (see :class:`BaseReport`).

    Reads the user's index, HEAD and working tree; writes nothing but the trees of the index into the object store
    (as ``git write-tree`` does; the index itself is not written).  An index with unmerged paths raises
    :class:`CheckpointError`.
    """
    dirs = git_dirs(repo)
    try:
        main = Repo(str(dirs.top))
    except (NotGitRepository, OSError, ValueError) as exc:
        raise CheckpointError(f"{dirs.top}: cannot open the repository: {exc}") from exc
    try:
        index = GitIndex.read(main)
        head = _head(main)
        index_tree = _index_tree(index, Objects(main.object_store))
        head_tree = _tree_of(main, head) if head is not None else None
        staged: tuple[str, ...] = ()
        if index_tree != head_tree:
            staged = tuple(sorted(_changed_paths(main, head_tree, index_tree)))
        gitlinks = {p: e.sha for p in index.kept if (e := index.entries[p]).mode == _GITLINK}
        return BaseReport(
            head=None if head is None else head.decode("ascii"),
            index_tree=index_tree.decode("ascii") if staged else None,
            staged=staged,
            empty_folders=tuple(_empty_folders(dirs, main, set(gitlinks))),
            submodules=tuple(s for p, sha in sorted(gitlinks.items()) if (s := _submodule(dirs.top, p, sha))),
        )
    finally:
        main.close()


def save_staged(repo: str | os.PathLike[str], session_id: str, report: BaseReport, *, when: _dt.datetime) -> str | None:
    """Keep the user's index (``report.index_tree``) at ``refs/maestro/<session>/index``: a commit of it on HEAD,
    as ``git stash`` keeps an index.  None (nothing written) when nothing was staged; a ref already there (a
    resumed start) is kept and its commit returned."""
    if report.index_tree is None:
        return None
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        raise CheckpointError(f"bad session id {session_id!r}: it names a ref (letters, digits, '.', '_', '-')")
    ref = Ref(f"refs/maestro/{session_id}/index".encode())
    main = Repo(str(git_dirs(repo).top))
    try:
        if ref in main.refs:
            return main.refs[ref].decode("ascii")
        c = Commit()
        c.tree = ObjectID(report.index_tree.encode("ascii"))
        c.parents = [] if report.head is None else [ObjectID(report.head.encode("ascii"))]
        c.author = c.committer = identity(main)
        c.author_time = c.commit_time = int(when.timestamp())
        c.author_timezone = c.commit_timezone = 0
        c.message = f"session {session_id} start: the index (staged, not committed)\n".encode()
        try:
            main.object_store.add_object(c)
            if not main.refs.add_if_new(ref, c.id):
                return main.refs[ref].decode("ascii")
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{ref.decode()}: cannot keep the index: {exc}") from exc
        return c.id.decode("ascii")
    finally:
        main.close()


def _head(main: Repo) -> ObjectID | None:
    try:
        return main.refs[Ref(b"HEAD")]
    except KeyError:
        return None  # no commit yet


def _tree_of(main: Repo, commit: ObjectID) -> ObjectID:
    obj = main.object_store[commit]
    if not isinstance(obj, Commit):
        raise CheckpointError(f"{main.path}: HEAD names {commit.decode()}, which is not a commit")
    tree: ObjectID = obj.tree
    return tree


def _index_tree(index: GitIndex, objects: Objects) -> ObjectID:
    """The tree ``git write-tree`` makes of the index: intent-to-add entries (``git add -N``) left out."""
    ita: dict[bytes, None] = {}
    if getattr(index, "_extended", True):  # only an index with extended flags can hold one
        ita = {p: None for p in index.paths() if index.entries[p].extended_flags & _INTENT_TO_ADD}
    if not ita:
        return index.tree(objects)
    return index.tree_with(ita, objects)[0]


def _changed_paths(main: Repo, old: ObjectID | None, new: ObjectID) -> list[str]:
    out: list[str] = []
    for ch in tree_changes(main.object_store, old, new):
        entry = ch.new if ch.new is not None and ch.new.path is not None else ch.old
        if entry is not None and entry.path is not None:
            out.append(os.fsdecode(entry.path))
    return out


def _empty_folders(dirs: GitDirs, main: Repo, submodules: set[bytes]) -> list[str]:
    """The topmost folders of the working tree that hold nothing but folders holding nothing (ignored folders,
    nested repositories and submodules aside, and ``.flow/``)."""
    top = os.fsencode(dirs.top)
    rules = IgnoreRules(top, str(dirs.common_dir))
    rules.begin(main.get_config_stack())

    def prune(rel: bytes, entry: os.DirEntry[bytes]) -> bool:
        return rel in submodules or os.path.lexists(entry.path + b"/.git") or rules.ignored(rel, True)

    holds: dict[bytes, bool] = {}  # a folder walked: whether it holds anything but empty folders
    parent: dict[bytes, bytes] = {}
    order: list[bytes] = []
    for folder in TreeWalk(top, prune=prune, skip_top=(b".flow",)).folders():
        entered = {e.name for e in folder.entered}
        holds[folder.rel] = len(entered) != len(folder.entries)  # a file, a symlink, a folder left out
        order.append(folder.rel)
        for name in entered:
            parent[folder.rel + b"/" + name if folder.rel else name] = folder.rel
    for rel in reversed(order):  # a folder comes after its parent: children are settled first
        if holds[rel] and rel:
            holds[parent[rel]] = True
    empty = [rel for rel in order if rel and not holds[rel] and (not parent[rel] or holds[parent[rel]])]
    return sorted(os.fsdecode(rel) for rel in empty)


def _submodule(top: Path, path: bytes, recorded: ObjectID) -> SubmoduleChanges | None:
    """The uncommitted work in the submodule at ``path``, or None (none, or it is not checked out)."""
    where = top / os.fsdecode(path)
    if not os.path.lexists(where / ".git"):
        return None  # not checked out: nothing of the user's there
    try:
        sub = Repo(str(where))
    except (NotGitRepository, OSError, ValueError) as exc:
        log.warning("%s: cannot read the submodule: %s", where, exc)
        return SubmoduleChanges(os.fsdecode(path), recorded.decode("ascii"), None, ("an unreadable repository",))
    try:
        head = _head(sub)
        changes: list[str] = []
        if head != recorded:
            changes.append("new commits")
        status = porcelain.status(sub, untracked_files="normal")  # reads only: the submodule's index is not written
        if any(status.staged.values()) or status.unstaged:
            changes.append("modified content")
        if status.untracked:
            changes.append("untracked content")
    finally:
        sub.close()
    if not changes:
        return None
    return SubmoduleChanges(
        os.fsdecode(path), recorded.decode("ascii"), None if head is None else head.decode(), tuple(changes)
    )
