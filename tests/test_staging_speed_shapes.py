"""Staging a working tree, shape by shape: the tree made is the tree ``git add -A && git write-tree`` gives.

The shapes are the ones ``benchmarks/checkpoint.py`` times (issue 14): files
modified in place, files added in new folders, deletions (a whole folder
among them), renames, ignored files written, a capture right after a
rollback; and the corners of the cache tree (a file becoming a folder and
back, the last file of a folder going, symlinks and the execute bit) and of
git's racy-clean rule.  Each checks the tree a :class:`Checkpointer` commits,
or the one :class:`Staging` makes, against git run on a copy of the repository
made before; the line counts :meth:`Staging.file_changes` gives against
``git diff --numstat``; and an index read afresh from disk against the one
kept in memory.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from dulwich.index import index_entry_from_stat
from dulwich.repo import Repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro import Checkpointer, CheckpointError
from maestro.git.index import GitIndex, Objects, _cache_tree, signature
from maestro.git.staging import Staging
from tests.support.checkpoints import (
    SID,
    add_all_tree,
    assert_git_clean,
    commit_tree,
    git,
    git_changes,
    link,
    make_repo,
    put,
    rev,
    tree_files,
)

IGNORES = "__pycache__/\n*.pyc\n*.log\n/build/\n.venv/\nlogs/*\n!logs/keep.txt\n/vendor/\n"


def module(path: str, k: int) -> str:
    return f'"""{path}"""\n\nVALUE = {k}\n\n\ndef f(x: int) -> int:\n    return x + VALUE\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A committed repository of 120 modules in nested folders, a .gitignore, a file tracked in an ignored folder
    (``git add -f``), and ignored files already there."""
    files: dict[str, str | bytes] = {".gitignore": IGNORES, "README.md": "readme\n"}
    for k in range(120):
        files[f"src/p{k // 40}/m{k // 10 % 4}/f{k % 10}.py"] = module(f"f{k}", k)
    r = make_repo(tmp_path / "repo", files)
    put(r, "vendor/lib/keep.py", "kept\n")
    git(r, "add", "-f", "vendor/lib/keep.py")
    git(r, "commit", "-q", "-m", "a tracked file in an ignored folder")
    put(r, ".venv/lib/site.py", "venv\n")
    put(r, "build/out.txt", "built\n")
    put(r, "src/p0/m0/__pycache__/f0.cpython-311.pyc", b"\0pyc")
    return r


def modify(r: Path) -> None:
    for k in (0, 7, 33, 61, 119):
        p = r / f"src/p{k // 40}/m{k // 10 % 4}/f{k % 10}.py"
        p.write_text(p.read_text() + f"CHANGED = {k}\n")
    put(r, "README.md", "READ!!\n")  # same size: stat data alone tell it


def add_folders(r: Path) -> None:
    for j in range(3):
        for i in range(4):
            put(r, f"src/p1/new{j}/deep/er/a{i}.py", module(f"a{j}{i}", i))
    put(r, "top/level/file.txt", "new\n")


def delete(r: Path) -> None:
    shutil.rmtree(r / "src/p2/m3")  # a whole folder
    for name in ("src/p0/m1/f0.py", "src/p1/m0/f9.py", "src/p2/m2/f1.py"):
        (r / name).unlink()


def rename(r: Path) -> None:
    os.rename(r / "src/p0/m0/f1.py", r / "src/p2/m2/moved.py")
    os.rename(r / "src/p1/m1", r / "src/p1/renamed")  # a folder
    os.rename(r / "README.md", r / "docs.md")


def ignored(r: Path) -> None:
    put(r, "src/p0/m2/__pycache__/f3.cpython-311.pyc", b"\0pyc")
    put(r, "src/p0/m2/run.log", "log\n")
    put(r, "build/lib/x.py", "x\n")
    put(r, ".venv/bin/python", "#!\n")
    put(r, "logs/a.txt", "ignored: logs/*\n")
    put(r, "logs/keep.txt", "kept: !logs/keep.txt\n")
    put(r, "vendor/lib/new.py", "ignored: in an ignored folder, beside a tracked file\n")
    put(r, "vendor/lib/keep.py", "kept, and changed\n")
    put(r, "src/p1/m1/f0.py", "changed beside the ignored files\n")


def kinds(r: Path) -> None:
    """A file becomes a folder, a folder a file, a file a symlink, a mode changes."""
    (r / "src/p0/m0/f2.py").unlink()
    put(r, "src/p0/m0/f2.py/inner.py", "a folder now\n")
    (r / "src/p0/m0/f3.py").unlink()  # and, in the same folder, a file gone
    shutil.rmtree(r / "src/p0/m3")
    put(r, "src/p0/m3", "a file now\n")
    (r / "src/p1/m2/f4.py").unlink()
    link(r, "src/p1/m2/f4.py", "../m0/f0.py")
    (r / "src/p2/m0/f5.py").chmod(0o755)


SHAPES: dict[str, Callable[[Path], None]] = {
    "modify": modify,
    "add_folders": add_folders,
    "delete": delete,
    "rename": rename,
    "ignored": ignored,
    "kinds": kinds,
}


def fresh_tree(r: Path) -> str:
    """The tree of the repository's index read afresh from disk (a full build, nothing remembered)."""
    repo = Repo(str(r))
    try:
        return GitIndex.read(repo).tree(Objects(repo.object_store)).decode()
    finally:
        repo.close()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_checkpoint_of_each_shape_commits_what_git_add_all_stages(tree: Path, shape: str) -> None:
    cp = Checkpointer(tree, SID)
    cp.start()
    for rnd in range(2):  # twice: the second on the index and trees the first left in memory
        if rnd == 0:
            SHAPES[shape](tree)
        else:
            put(tree, f"round{rnd}/x.txt", "more\n")
        want = add_all_tree(tree)
        rec = cp.checkpoint(f"{shape} {rnd}")
        assert rec is not None
        assert commit_tree(tree, rec.commit) == want
        assert git(tree, "write-tree") == want  # the index written stands for the tree
        assert fresh_tree(tree) == want
        parent = git(tree, "rev-parse", f"{rec.commit}^")
        assert rec.files == git_changes(tree, parent, rec.commit)
        assert_git_clean(tree)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_staging_knows_the_line_counts_of_what_it_staged(tree: Path, shape: str) -> None:
    repo = Repo(str(tree))
    staging = Staging(repo)
    staging.load(repo)
    before = staging.tree
    assert before is not None
    SHAPES[shape](tree)
    tree_id = staging.apply(staging.scan(), write_index=True)
    assert tree_id.decode() == add_all_tree(tree)
    files = staging.file_changes(before, tree_id)
    assert files == git_changes(tree, before.decode(), tree_id.decode())
    assert files  # every shape changes something git commits
    assert staging.file_changes(tree_id, before) is None  # not the change it made: it does not say
    assert staging.file_changes(before, before) is None


def test_a_capture_right_after_a_rollback_commits_what_git_stages(tree: Path) -> None:
    cp = Checkpointer(tree, SID)
    zero = cp.start()
    modify(tree)
    add_folders(tree)
    one = cp.checkpoint("one")
    assert one is not None
    delete(tree)
    rename(tree)
    two = cp.checkpoint("two")
    assert two is not None
    cp.rollback(one.n)
    assert git(tree, "write-tree") == commit_tree(tree, one.commit)
    kinds(tree)
    ignored(tree)
    want = add_all_tree(tree)
    three = cp.checkpoint("after the rollback")
    assert three is not None
    assert commit_tree(tree, three.commit) == want
    assert fresh_tree(tree) == want
    assert three.files == git_changes(tree, one.commit, three.commit)
    cp.rollback(zero.n)  # and back to the start: every tree made on the way is still whole
    assert git(tree, "write-tree") == commit_tree(tree, zero.commit)
    assert_git_clean(tree)


def test_staging_without_writing_the_index_leaves_it_as_it_was(tree: Path) -> None:
    repo = Repo(str(tree))
    staging = Staging(repo)
    staging.load(repo)
    before = staging.tree
    modify(tree)
    delete(tree)
    scan = staging.scan()
    made = staging.apply(scan, write_index=False)
    assert made.decode() == add_all_tree(tree)
    assert staging.tree == before
    assert staging.index is not None and staging.index.tree(Objects(repo.object_store)) == before
    staging.stage(scan, made)  # what a rollback does next: now the index takes it
    assert staging.tree == made
    assert git(tree, "write-tree") == made.decode()


def test_every_object_written_is_one_git_reads(tree: Path) -> None:
    cp = Checkpointer(tree, SID)
    cp.start()
    add_folders(tree)
    put(tree, "big.bin", os.urandom(300_000))
    rec = cp.checkpoint("objects")
    assert rec is not None
    files = tree_files(tree, rec.commit)
    assert files["big.bin"][1] == (tree / "big.bin").read_bytes()
    loose = list((tree / ".git" / "objects").glob("??/*"))
    assert loose, "the new objects are loose, as git writes them"
    assert all(not p.name.startswith("tmp_obj_") for p in loose)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in loose)
    assert_git_clean(tree)  # fsck --strict reads every one


def _racy_setup(r: Path) -> tuple[Repo, Path, int]:
    """The index holds README.md with the stat data of its content now, but the blob of what it held before."""
    git(r, "add", "-A")
    readme = r / "README.md"
    old = git(r, "rev-parse", ":README.md").encode()
    readme.write_text("racy!!\n")  # the same size as "readme\n"
    repo = Repo(str(r))
    index = GitIndex.read(repo)
    e = index.entries[b"README.md"]
    index.set(b"README.md", index_entry_from_stat(os.lstat(readme), old, e.mode))
    index.write()
    return repo, readme, os.lstat(readme).st_mtime_ns


def test_a_racy_entry_is_hashed_again(tree: Path) -> None:
    """Written in the same tick as the index, a file's stat data cannot vouch for it: git hashes it; so does a scan."""
    repo, _readme, mtime = _racy_setup(tree)
    index_path = repo.index_path()
    os.utime(index_path, ns=(mtime, mtime))  # the index written in the file's own tick
    staging = Staging(repo)
    staging.load(repo)
    scan = staging.scan()
    assert set(scan.changed) == {b"README.md"}
    made = staging.apply(scan, write_index=False)
    want = add_all_tree(tree)  # git on a copy: it sees the change too
    assert made.decode() == want
    assert tree_files(tree, want)["README.md"][1] == b"racy!!\n"


def test_a_non_racy_entry_is_trusted(tree: Path) -> None:
    """The same entry with the index written a second later: its stat data are trusted, nothing is hashed."""
    repo, _readme, mtime = _racy_setup(tree)
    later = mtime + 1_000_000_000
    os.utime(repo.index_path(), ns=(later, later))
    staging = Staging(repo)
    staging.load(repo)
    scan = staging.scan()
    assert b"README.md" not in scan.changed  # what the racy rule exists for: only it catches the change


def test_a_racy_clean_entry_is_restatted_not_restaged(tree: Path) -> None:
    git(tree, "add", "-A")
    repo = Repo(str(tree))
    readme = tree / "README.md"
    mtime = os.lstat(readme).st_mtime_ns
    os.utime(repo.index_path(), ns=(mtime, mtime))
    staging = Staging(repo)
    staging.load(repo)
    before = staging.tree
    scan = staging.scan()
    assert b"README.md" in scan.restat  # hashed, and found unchanged
    assert not scan.changed and not scan.removed
    assert staging.apply(scan, write_index=True) == before
    assert rev(tree, "HEAD^{tree}") == before.decode()


def test_after_a_rollback_that_only_deletes_the_next_capture_has_no_stale_folder(tree: Path) -> None:
    """The rollback removes a file from a folder nothing later touches: that folder's tree must be made again."""
    cp = Checkpointer(tree, SID)
    zero = cp.start()
    put(tree, "src/p2/m1/extra.py", "extra\n")
    put(tree, "solo/only.py", "only\n")
    one = cp.checkpoint("extra files")
    assert one is not None
    cp.rollback(zero.n)
    assert not (tree / "src/p2/m1/extra.py").exists()
    put(tree, "src/p0/m0/f0.py", "elsewhere\n")
    want = add_all_tree(tree)
    two = cp.checkpoint("a change elsewhere")
    assert two is not None
    assert commit_tree(tree, two.commit) == want
    assert "src/p2/m1/extra.py" not in tree_files(tree, two.commit)
    assert "solo/only.py" not in tree_files(tree, two.commit)
    assert two.files == git_changes(tree, zero.commit, two.commit)


# =====================================================================================
# ignore rules, asked top down during the walk: what git add -A leaves out, and nothing more
# =====================================================================================

_RULES = (
    ("*",),
    ("*", "!keep*"),
    ("*", "!*/"),
    ("!keep.txt",),
    ("*.log", "!keep.log"),
    ("b/",),
    ("/b",),
    ("c",),
    ("**/d/*.txt",),
    ("b/**",),
    ("*.TXT",),
    ("[ck]eep.txt",),
    ("e\\ ",),
)
_FILES = (
    "x.txt", "keep.txt", "a.log", "keep.log", "a/x.txt", "a/keep.txt", "a/a.log", "a/b/x.txt", "a/b/keep.txt",
    "a/b/c/x.txt", "a/b/c/keep.txt", "a/c", "a/d/x.txt", "a/d/keep.log", "b/x.txt", "b/keep.txt", "c/x.txt",
    "a/b/d/deep/x.txt", "e ", "a/e ",
)  # fmt: skip
_RULE_LISTS = st.lists(st.sampled_from(_RULES), max_size=3).map(lambda groups: [p for g in groups for p in g])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=_RULE_LISTS,
    a=_RULE_LISTS,
    ab=_RULE_LISTS,
    user=_RULE_LISTS,
    files=st.lists(st.sampled_from(_FILES), min_size=1, max_size=12, unique=True),
    tracked=st.lists(st.sampled_from(_FILES), max_size=3, unique=True),
)
def test_the_walk_ignores_what_git_add_all_ignores(
    top: list[str], a: list[str], ab: list[str], user: list[str], files: list[str], tracked: list[str]
) -> None:
    """Nested .gitignore files (a folder's own rules re-including what its parent's exclude), core.excludesFile,
    files tracked in ignored folders: the tree staged is git's."""
    with tempfile.TemporaryDirectory(prefix="maestro-ignore-") as d:
        r = make_repo(Path(d) / "repo", {"README": "r\n"})
        for name in tracked:  # tracked before the rules exist: git add -A keeps them whatever the rules say
            put(r, name, f"tracked {name}\n")
        git(r, "add", "-A")
        git(r, "commit", "-q", "--allow-empty", "-m", "tracked")
        put(r, ".gitignore", "".join(f"{p}\n" for p in top))
        put(r, "a/.gitignore", "".join(f"{p}\n" for p in a))
        put(r, "a/b/.gitignore", "".join(f"{p}\n" for p in ab))
        put(Path(d), "user-ignore", "".join(f"{p}\n" for p in user))
        git(r, "config", "core.excludesFile", str(Path(d) / "user-ignore"))
        for name in files:
            put(r, name, f"{name}\n")
        want = add_all_tree(r)
        repo = Repo(str(r))
        try:
            staging = Staging(repo)
            staging.load(repo)
            assert staging.apply(staging.scan(), write_index=False).decode() == want
        finally:
            repo.close()


# =====================================================================================
# reading the index: dulwich's entries, git's cache tree where it is valid
# =====================================================================================


def _dulwich_entries(r: Path) -> dict[bytes, object]:
    repo = Repo(str(r))
    try:
        return dict(repo.open_index().items())
    finally:
        repo.close()


def test_the_index_read_holds_the_entries_dulwich_reads(tree: Path) -> None:
    git(tree, "update-index", "--skip-worktree", "README.md")  # an extended flag: version 3
    want = _dulwich_entries(tree)
    repo = Repo(str(tree))
    try:
        index = GitIndex.read(repo)
        assert set(index.entries) == set(want)
        assert {p: index.entries[p] for p in want} == want
        assert index.kept == {b"README.md"}
        assert index.signature == signature(repo.index_path())
    finally:
        repo.close()


def test_the_cache_tree_git_wrote_is_taken_where_valid(tree: Path) -> None:
    """After a commit git's cache tree is whole; a `git add` invalidates the folders above the file it adds."""
    repo = Repo(str(tree))
    try:
        whole = GitIndex.read(repo)
        assert whole._trees.get(b"", b"").decode() == rev(tree, "HEAD^{tree}")  # taken: no tree built
        assert whole.tree(Objects(repo.object_store)).decode() == rev(tree, "HEAD^{tree}")
        put(tree, "src/p1/m2/f0.py", "changed\n")
        put(tree, "src/p1/m2/new.py", "new\n")
        git(tree, "add", "src/p1/m2")
        partial = GitIndex.read(repo)
        assert b"" not in partial._trees and b"src/p1/m2" not in partial._trees
        assert b"src/p0" in partial._trees and b"src/p1/m1" in partial._trees
        assert partial.tree(Objects(repo.object_store)).decode() == git(tree, "write-tree")
        partial._trees.clear()  # and built from the entries alone: the same tree
        assert partial.tree(Objects(repo.object_store)).decode() == git(tree, "write-tree")
    finally:
        repo.close()


def test_an_index_with_unmerged_paths_is_refused(tree: Path) -> None:
    git(tree, "checkout", "-q", "-b", "other")
    put(tree, "README.md", "theirs\n")
    git(tree, "commit", "-q", "-am", "theirs")
    git(tree, "checkout", "-q", "master")
    put(tree, "README.md", "ours\n")
    git(tree, "commit", "-q", "-am", "ours")
    subprocess.run(["git", "merge", "-q", "other"], cwd=tree, capture_output=True)  # a conflict: exit 1
    repo = Repo(str(tree))
    try:
        with pytest.raises(CheckpointError, match=r"unmerged paths \(README\.md"):
            GitIndex.read(repo)
    finally:
        repo.close()


def test_a_corrupt_index_is_refused(tree: Path) -> None:
    index = tree / ".git" / "index"
    data = bytearray(index.read_bytes())
    data[100] ^= 0xFF
    index.write_bytes(bytes(data))
    repo = Repo(str(tree))
    try:
        with pytest.raises(CheckpointError, match="bad checksum"):
            GitIndex.read(repo)
    finally:
        repo.close()


def _check_cache_tree(r: Path, root: str) -> int:
    """Every tree the index's TREE extension claims is ``root``'s at that folder, with the right entry count;
    the number of folders it claims."""
    data = (r / ".git" / "index").read_bytes()
    at = data.find(b"TREE", 12)
    assert at > 0, "no TREE extension"
    size = int.from_bytes(data[at + 4 : at + 8], "big")
    claims = _cache_tree(data[at + 8 : at + 8 + size])
    listed = git(r, "ls-files").splitlines()
    for folder, (count, tree) in claims.items():
        f = folder.decode()
        assert tree.decode() == rev(r, f"{root}:{f}" if f else root), f
        assert count == sum(1 for p in listed if not f or p.startswith(f + "/")), f
    return len(claims)


def test_the_index_written_carries_the_cache_tree_git_would(tree: Path) -> None:
    """After a checkpoint the index says which tree each folder has (so that nobody builds them again): each
    one is the commit's, with the right count; git's own commits on top of it are what git add -A makes."""
    cp = Checkpointer(tree, SID)
    cp.start()
    modify(tree)
    add_folders(tree)
    rec = cp.checkpoint("one")
    assert rec is not None
    assert _check_cache_tree(tree, rec.commit + "^{tree}") > 10
    repo = Repo(str(tree))
    try:
        again = GitIndex.read(repo)
        assert again._trees.get(b"", b"").decode() == commit_tree(tree, rec.commit)  # taken back: nothing built
    finally:
        repo.close()
    put(tree, "src/p2/m1/by-git.py", "git adds this\n")  # the user's git, on the index maestro wrote
    put(tree, "src/p0/m0/f0.py", "and changes this\n")
    want = add_all_tree(tree)
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "by git")
    assert rev(tree, "HEAD^{tree}") == want
    assert_git_clean(tree)


def test_no_cache_tree_is_written_beside_extended_flags(tree: Path) -> None:
    git(tree, "update-index", "--skip-worktree", "README.md")
    cp = Checkpointer(tree, SID)
    cp.start()
    put(tree, "src/new.py", "new\n")
    rec = cp.checkpoint("one")
    assert rec is not None
    assert b"TREE" not in (tree / ".git" / "index").read_bytes()[-4096:]
    assert git(tree, "write-tree") == commit_tree(tree, rec.commit)


def _same_index(held: GitIndex, fresh: GitIndex, objects: Objects) -> None:
    """Two indexes hold the same entries, the same way, and every tree ``held`` knows is the right one."""
    assert held._raw == fresh._raw
    assert held._order == fresh._order
    assert held.dirs == fresh.dirs
    assert held.kept == fresh.kept
    assert held.folders() == fresh.folders()
    assert {d: k for d, k in held._subdirs.items() if k} == {d: k for d, k in fresh._subdirs.items() if k}
    fresh._trees.clear()
    assert held.tree(objects) == fresh.tree(objects)  # built from the entries alone
    assert held._trees == {d: fresh._trees[d] for d in held._trees}


def _git_add(r: Path) -> None:
    put(r, "src/p0/m0/new.py", "new\n")
    put(r, "src/p1/m1/f1.py", "x\n")
    git(r, "add", "-A")


def _git_reset(r: Path) -> None:
    put(r, "gone/a.py", "a\n")
    git(r, "add", "-A")
    git(r, "reset", "-q", "--hard")


def _git_checkout(r: Path) -> None:
    """To a branch where src/p1 is gone and side/ is new, and back: the index rewritten twice."""
    git(r, "checkout", "-q", "-b", "side")
    shutil.rmtree(r / "src/p1")
    put(r, "side/only.py", "side\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "side")
    git(r, "checkout", "-q", "master")
    git(r, "checkout", "-q", "side", "--", "side")


def _git_status(r: Path) -> None:
    os.utime(r / "README.md")
    git(r, "status", "--porcelain")


_GIT_REWRITES: dict[str, Callable[[Path], object]] = {
    "add": _git_add,
    "rm --cached": lambda r: git(r, "rm", "-q", "--cached", "-r", "src/p2/m3"),
    "chmod": lambda r: git(r, "update-index", "--chmod=+x", "src/p0/m1/f1.py"),
    "reset --hard": _git_reset,
    "checkout": _git_checkout,
    "skip-worktree": lambda r: git(r, "update-index", "--skip-worktree", "src/p0/m0/f0.py"),
    "status": _git_status,
}


@pytest.mark.parametrize("rewrite", sorted(_GIT_REWRITES))
def test_an_index_rewritten_by_git_is_taken_again_entry_by_entry(tree: Path, rewrite: str) -> None:
    repo = Repo(str(tree))
    try:
        objects = Objects(repo.object_store)
        staging = Staging(repo)
        staging.load(repo)
        held = staging.index
        assert held is not None
        put(tree, "src/p2/m2/f2.py", "changed before\n")  # staged by maestro first: the memory differs from git's
        staging.apply(staging.scan(), write_index=True)
        _GIT_REWRITES[rewrite](tree)
        staging.load(repo)
        assert staging.index is held, "the index held was brought up to date, not read afresh"
        _same_index(held, GitIndex.read(repo), objects)
        assert staging.tree is not None and staging.tree.decode() == git(tree, "write-tree")
        assert staging.apply(staging.scan(), write_index=False).decode() == add_all_tree(tree)
    finally:
        repo.close()


def test_an_index_git_rewrote_as_version_4_is_read_afresh(tree: Path) -> None:
    repo = Repo(str(tree))
    try:
        staging = Staging(repo)
        staging.load(repo)
        held = staging.index
        git(tree, "update-index", "--index-version", "4")
        staging.load(repo)
        assert staging.index is not held
        assert staging.tree is not None and staging.tree.decode() == git(tree, "write-tree")
    finally:
        repo.close()
