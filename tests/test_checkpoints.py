"""Checkpoints: commits and annotated tags on ``maestro/<session>``, exact rollback, diffs, and what git says of them.

Every test builds a real git repository with the git binary and cross-checks the
:class:`maestro.Checkpointer` against git itself: the tree a checkpoint commits is
the tree ``git add -A && git write-tree`` gives on a copy of the repository, the
files after a rollback are byte for byte (mode and symlink target included) the
files of the checkpoint's commit, ``git status`` is clean and ``git fsck --strict``
finds nothing.  The helpers (``tests.support.checkpoints``) are shared with ``test_checkpoint_properties``.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import maestro
from maestro import Checkpointer, CheckpointError, CheckpointRecord, FileChange
from maestro.git.index import GitIndex
from tests.support.checkpoints import (
    BASE,
    BRANCH,
    EMPTY_TREE,
    GIT,
    GITLINK,
    IGNORE,
    SID,
    IndexHeldOnce,
    add_all,
    add_all_tree,
    add_all_tree_in_place,
    assert_git_clean,
    by_path,
    commit_tree,
    git,
    git_changes,
    git_out,
    ignored_view,
    link,
    make_repo,
    parents,
    parse_ts,
    put,
    rev,
    snapshot,
    tracked_view,
    tree_files,
    walk,
)

# =====================================================================================
# fixtures (the helpers, git, files and trees, are in tests.support.checkpoints)
# =====================================================================================

T = TypeVar("T")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a first commit on master: text, an executable, a symlink, a nested file, a .gitignore."""
    r = make_repo(tmp_path / "repo", {"README.md": "hello\nworld\n", ".gitignore": IGNORE, "docs/guide.md": "guide\n"})
    put(r, "run.sh", "#!/bin/sh\necho hi\n", exe=True)
    link(r, "readme-link", "README.md")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "second")
    return r


def started(repo: Path, **kw: object) -> tuple[Checkpointer, CheckpointRecord]:
    cp = Checkpointer(repo, SID, **kw)  # type: ignore[arg-type]
    return cp, cp.start()


# =====================================================================================
# the API
# =====================================================================================


def test_checkpointer_and_its_error_are_exported() -> None:
    assert maestro.Checkpointer is Checkpointer
    assert issubclass(maestro.CheckpointError, maestro.MaestroError)
    assert "Checkpointer" in maestro.__all__
    assert "CheckpointError" in maestro.__all__


# =====================================================================================
# start
# =====================================================================================


def test_start_on_a_clean_tree_branches_from_head(repo: Path) -> None:
    head = rev(repo, "HEAD")
    files = snapshot(repo)
    cp, rec0 = started(repo)
    assert isinstance(rec0, CheckpointRecord)
    assert rec0.n == 0
    assert rec0.commit == head
    assert git(repo, "symbolic-ref", "HEAD") == BRANCH
    assert (repo / ".git" / "HEAD").read_text() == f"ref: {BRANCH}\n"
    assert rev(repo, BRANCH) == head
    assert rev(repo, "refs/heads/master") == head
    assert rev(repo, BASE) is None  # nothing to save
    assert cp.workdir.resolve() == repo.resolve()
    assert cp.list() == [rec0]
    # the working tree is as it was
    now = snapshot(repo)
    assert {p: v for p, v in now.items() if p.split(os.sep)[0] != ".git"} == {
        p: v for p, v in files.items() if p.split(os.sep)[0] != ".git"
    }
    assert "/.flow/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert_git_clean(repo)


def test_flow_is_excluded_so_git_status_stays_clean(repo: Path) -> None:
    put(repo, ".flow/maestro/sessions/x/events.jsonl", "{}\n")
    cp, rec0 = started(repo)
    assert rec0.commit == rev(repo, "refs/heads/master")  # .flow/ is not dirt: no base commit
    assert rev(repo, BASE) is None
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    put(repo, ".flow/other.txt", "scratch\n")
    assert cp.checkpoint("only .flow changed") is None
    put(repo, "new.txt", "new\n")
    rec = cp.checkpoint("a new file")
    assert rec is not None
    assert not [p for p in tree_files(repo, rec.commit) if p.startswith(".flow")]


def test_a_session_object_names_the_branch(repo: Path) -> None:
    store = maestro.Store(repo)
    session = maestro.Session.create(store, "checkpoint me", clock=maestro.TickingClock(), ids=maestro.SequentialIds())
    try:
        cp = Checkpointer(repo, session)
        rec0 = cp.start()
        branch = f"refs/heads/maestro/{session.id}"
        assert git(repo, "symbolic-ref", "HEAD") == branch
        assert rec0.commit == rev(repo, "refs/heads/master")  # the store under .flow/ is not dirt
        assert rev(repo, f"refs/maestro/{session.id}/base") is None
        put(repo, "a.txt", "a\n")
        rec1 = cp.checkpoint("first")
        assert rec1 is not None
        assert rec1.tag == f"maestro/{session.id}/1"
        assert git(repo, "log", "-1", "--format=%s", rec1.commit) == f"maestro({session.id}): first"
        assert set(tree_files(repo, rec1.commit)) == {".gitignore", "README.md", "a.txt", "docs/guide.md",
                                                       "readme-link", "run.sh"}  # fmt: skip
    finally:
        session.close()


def test_start_again_resumes_without_creating_anything(repo: Path) -> None:
    put(repo, "README.md", "dirty\n")  # a dirty start: the base commit must not be made twice
    cp, rec0 = started(repo)
    put(repo, "a.txt", "a\n")
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    refs = git(repo, "for-each-ref")
    objects = sorted(p for p in snapshot(repo / ".git" / "objects"))
    exclude = (repo / ".git" / "info" / "exclude").read_bytes()
    files = walk(repo)

    again = Checkpointer(repo, SID)
    assert again.start() == rec0
    assert git(repo, "for-each-ref") == refs
    assert sorted(snapshot(repo / ".git" / "objects")) == objects
    assert (repo / ".git" / "info" / "exclude").read_bytes() == exclude  # /.flow/ not added twice
    assert walk(repo) == files
    assert again.list() == [rec0, rec1]
    put(repo, "b.txt", "b\n")
    rec2 = again.checkpoint("two")
    assert rec2 is not None
    assert rec2.n == 2
    assert parents(repo, rec2.commit) == [rec1.commit]


def test_dirty_start_saves_the_work_and_leaves_the_files_alone(repo: Path) -> None:
    head = rev(repo, "HEAD")
    assert head is not None
    put(repo, "README.md", "changed\n")  # modified
    (repo / "docs" / "guide.md").unlink()  # deleted
    put(repo, "notes/todo.txt", "untracked\n")  # untracked
    (repo / "run.sh").chmod(0o644)  # mode change
    put(repo, "debug.log", "ignored\n")  # ignored: not dirt, not saved
    expected = add_all_tree(repo)
    before = walk(repo)
    before_view = tracked_view(repo)

    cp, rec0 = started(repo)
    base = rev(repo, BASE)
    assert base is not None
    assert rec0.n == 0
    assert rec0.commit == base
    assert rev(repo, BRANCH) == base
    assert parents(repo, base) == [head]
    assert commit_tree(repo, base) == expected
    assert tree_files(repo, base) == before_view
    assert "debug.log" not in tree_files(repo, base)
    assert walk(repo) == before  # the files stay exactly as they were
    assert rev(repo, "refs/heads/master") == head
    assert git(repo, "symbolic-ref", "HEAD") == BRANCH
    assert cp.checkpoint("nothing since the start") is None

    # more work, a checkpoint, then back to 0: the dirty work is there again
    put(repo, "README.md", "more\n")
    put(repo, "notes/todo.txt", "done\n")
    put(repo, "extra.txt", "extra\n")
    assert cp.checkpoint("more") is not None
    assert cp.rollback(0) == rec0
    assert tracked_view(repo) == before_view
    assert walk(repo) == before
    assert_git_clean(repo)


def test_unborn_head_gets_a_root_commit_of_the_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", ".gitignore": IGNORE, "src/m.py": "x = 1\n"}, commit=False)
    put(repo, "tool", "#!/bin/sh\n", exe=True)
    link(repo, "alias", "a.txt")
    put(repo, "out.log", "ignored\n")
    expected = add_all_tree(repo)
    before = walk(repo)

    cp, rec0 = started(repo)
    assert rec0.n == 0
    assert parents(repo, rec0.commit) == []
    assert commit_tree(repo, rec0.commit) == expected
    assert tree_files(repo, rec0.commit)["tool"][0] == "100755"
    assert tree_files(repo, rec0.commit)["alias"] == ("120000", b"a.txt")
    assert "out.log" not in tree_files(repo, rec0.commit)
    assert walk(repo) == before
    assert git(repo, "symbolic-ref", "HEAD") == BRANCH
    assert rev(repo, BRANCH) == rec0.commit
    assert rev(repo, "refs/heads/master") is None  # the user's (unborn) branch is not made
    base = rev(repo, BASE)
    if base is not None:  # the untracked files were dirt: saved as a root commit
        assert base == rec0.commit
    assert cp.checkpoint("nothing yet") is None
    put(repo, "a.txt", "b\n")
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    assert parents(repo, rec1.commit) == [rec0.commit]
    assert cp.rollback(0) == rec0
    assert walk(repo) == before


def test_unborn_head_of_an_empty_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", commit=False)
    cp, rec0 = started(repo)
    assert parents(repo, rec0.commit) == []
    assert commit_tree(repo, rec0.commit) == EMPTY_TREE
    assert rev(repo, "refs/heads/master") is None
    put(repo, "first.txt", "one\ntwo\n")
    rec1 = cp.checkpoint("first file")
    assert rec1 is not None
    assert rec1.files == (FileChange("first.txt", "added", 2, 0),)
    assert parents(repo, rec1.commit) == [rec0.commit]
    assert_git_clean(repo)
    assert cp.rollback(0) == rec0
    assert not (repo / "first.txt").exists()


def test_detached_head(repo: Path) -> None:
    first = rev(repo, "HEAD~1")
    master = rev(repo, "refs/heads/master")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    cp, rec0 = started(repo)
    assert rec0.commit == first
    assert git(repo, "symbolic-ref", "HEAD") == BRANCH
    assert rev(repo, "refs/heads/master") == master
    put(repo, "README.md", "detached work\n")
    rec1 = cp.checkpoint("on a detached head")
    assert rec1 is not None
    assert parents(repo, rec1.commit) == [first]
    assert rev(repo, BRANCH) == rec1.commit
    assert rev(repo, "refs/heads/master") == master
    assert_git_clean(repo)


# =====================================================================================
# checkpoint
# =====================================================================================


def test_checkpoint_commits_exactly_what_git_add_all_would(repo: Path) -> None:
    master = rev(repo, "refs/heads/master")
    cp, rec0 = started(repo)
    put(repo, "README.md", "hello\nworld\nagain\n")  # modified
    (repo / "docs" / "guide.md").unlink()  # deleted
    put(repo, "src/pkg/é 日本.py", "print('hi')\n")  # new, nested, unicode, a space
    put(repo, "bin/tool", "#!/bin/sh\nexit 0\n", exe=True)  # new executable
    link(repo, "dangling", "no/such/file")  # new symlink, dangling
    link(repo, "docs-link", "src")  # a symlink to a directory
    put(repo, "app.log", "ignored\n")
    put(repo, "build/out.o", b"\x00\x01")
    expected = add_all_tree(repo)

    rec = cp.checkpoint("first real work")
    assert rec is not None
    assert rec.n == 1
    assert rec.tag == f"maestro/{SID}/1"
    assert rec.label == "first real work"
    assert len(rec.commit) == 40
    assert commit_tree(repo, rec.commit) == expected
    assert_git_clean(repo)
    tree = tree_files(repo, rec.commit)
    assert tree["bin/tool"][0] == "100755"
    assert tree["run.sh"][0] == "100755"
    assert tree["dangling"] == ("120000", b"no/such/file")
    assert tree["docs-link"] == ("120000", b"src")
    assert tree["src/pkg/é 日本.py"] == ("100644", b"print('hi')\n")
    assert "docs/guide.md" not in tree
    assert "app.log" not in tree
    assert "build/out.o" not in tree
    assert tree == tracked_view(repo)
    # commit, branch, tag
    assert parents(repo, rec.commit) == [rec0.commit]
    assert rev(repo, BRANCH) == rec.commit
    assert git(repo, "symbolic-ref", "HEAD") == BRANCH
    assert git(repo, "log", "-1", "--format=%s", rec.commit) == f"maestro({SID}): first real work"
    assert git(repo, "cat-file", "-t", f"refs/tags/maestro/{SID}/1") == "tag"
    assert rev(repo, f"refs/tags/maestro/{SID}/1^{{commit}}") == rec.commit
    assert "first real work" in git(repo, "cat-file", "tag", f"refs/tags/maestro/{SID}/1").split("\n\n", 1)[1]
    assert rev(repo, "refs/heads/master") == master
    # what changed, with line counts, as git counts them
    assert by_path(rec.files) == git_changes(repo, rec0.commit, rec.commit)
    assert FileChange("README.md", "modified", 1, 0) in rec.files
    assert FileChange("docs/guide.md", "deleted", 0, 1) in rec.files
    assert FileChange("src/pkg/é 日本.py", "added", 1, 0) in rec.files


def test_nothing_changed_gives_none_and_no_commit(repo: Path) -> None:
    cp, _rec0 = started(repo)
    refs = git(repo, "for-each-ref")
    assert cp.checkpoint("nothing") is None
    put(repo, "README.md", "hello\nworld\n")  # rewritten with the same bytes
    os.utime(repo / "run.sh")  # touched
    put(repo, "trace.log", "ignored\n")
    put(repo, "build/x", "ignored\n")
    put(repo, ".flow/state", "not staged\n")
    (repo / "empty-dir" / "nested").mkdir(parents=True)  # git does not track empty folders
    assert cp.checkpoint("still nothing") is None
    assert git(repo, "for-each-ref") == refs
    assert len(cp.list()) == 1
    put(repo, "README.md", "now it changed\n")
    rec = cp.checkpoint("something")
    assert rec is not None
    assert rec.n == 1
    assert cp.checkpoint("and nothing again") is None
    assert len(cp.list()) == 2


def test_a_mode_change_alone_is_a_change(repo: Path) -> None:
    cp, rec0 = started(repo)
    (repo / "run.sh").chmod(0o644)
    rec = cp.checkpoint("not executable any more")
    assert rec is not None
    assert rec.files == (FileChange("run.sh", "modified", 0, 0),)
    assert tree_files(repo, rec.commit)["run.sh"][0] == "100644"
    (repo / "README.md").chmod(0o755)
    rec2 = cp.checkpoint("executable now")
    assert rec2 is not None
    assert tree_files(repo, rec2.commit)["README.md"][0] == "100755"
    assert_git_clean(repo)
    assert cp.rollback(rec0.n) == rec0
    assert os.stat(repo / "run.sh").st_mode & stat.S_IXUSR
    assert not os.stat(repo / "README.md").st_mode & stat.S_IXUSR


def test_numbering_log_tags_and_list(repo: Path) -> None:
    cp, rec0 = started(repo)
    recs = [rec0]
    labels = ["add a", "change a", "add b, ✓ unicode"]
    for i, label in enumerate(labels):
        put(repo, "a.txt" if i < 2 else "b.txt", f"content {i}\n")
        rec = cp.checkpoint(label)
        assert rec is not None
        assert rec.n == i + 1
        assert rec.label == label
        assert rec.tag == f"maestro/{SID}/{i + 1}"
        recs.append(rec)
    subjects = git(repo, "log", "--format=%s", f"{rec0.commit}..{BRANCH}").splitlines()
    assert subjects == [f"maestro({SID}): {label}" for label in reversed(labels)]
    tags = git(repo, "tag", "--list", f"maestro/{SID}/*").splitlines()
    assert {f"maestro/{SID}/{n}" for n in (1, 2, 3)} <= set(tags)
    for rec in recs[1:]:
        assert git(repo, "cat-file", "-t", f"refs/tags/{rec.tag}") == "tag"
        assert rev(repo, f"refs/tags/{rec.tag}^{{commit}}") == rec.commit
    assert cp.list() == recs
    assert [r.n for r in cp.list()] == [0, 1, 2, 3]
    # the records read back from git are the ones the checkpoints returned
    assert Checkpointer(repo, SID).list() == recs


def test_commit_and_tag_times_come_from_the_clock(repo: Path) -> None:
    put(repo, "README.md", "dirty: start makes a commit\n")
    clock = maestro.TickingClock()
    cp = Checkpointer(repo, SID, clock=clock)
    rec0 = cp.start()
    put(repo, "a.txt", "a\n")
    rec1 = cp.checkpoint("timed")
    assert rec1 is not None
    lo = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
    hi = lo + _dt.timedelta(hours=1)
    for rec in (rec0, rec1):
        for fmt in ("%at", "%ct"):
            when = _dt.datetime.fromtimestamp(int(git(repo, "log", "-1", f"--format={fmt}", rec.commit)), _dt.UTC)
            assert lo <= when < hi, (rec.n, fmt, when)
    tagged = git(repo, "for-each-ref", "--format=%(taggerdate:unix)", f"refs/tags/{rec1.tag}")
    assert lo <= _dt.datetime.fromtimestamp(int(tagged), _dt.UTC) < hi
    assert lo <= parse_ts(rec1.ts) < hi
    assert parse_ts(rec0.ts) <= parse_ts(rec1.ts)


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["same-second", "same-mtime"])
@pytest.mark.parametrize("tracked_before", [False, True], ids=["new-file", "tracked-file"])
def test_a_same_size_rewrite_in_the_same_tick_is_seen(repo: Path, keep_mtime: bool, tracked_before: bool) -> None:
    p = repo / "same.txt"
    if tracked_before:
        put(repo, "same.txt", "aaaa\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "same.txt")
    cp, _rec0 = started(repo)
    put(repo, "same.txt", "bbbb\n")
    st = p.stat()
    first = cp.checkpoint("first")
    assert first is not None
    p.write_bytes(b"cccc\n")  # same size, at once
    if keep_mtime:  # as on a file system whose clock ticks once a second
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = cp.checkpoint("second")
    assert second is not None, "a rewrite of the same size in the same tick was missed"
    assert second.files == (FileChange("same.txt", "modified", 1, 1),)
    assert git_out(repo, "cat-file", "blob", f"{second.commit}:same.txt") == b"cccc\n"
    assert_git_clean(repo)
    # and once more after a rollback, which rewrites the file itself
    assert cp.rollback(first.n) == first
    assert p.read_bytes() == b"bbbb\n"
    st = p.stat()
    p.write_bytes(b"dddd\n")
    if keep_mtime:
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    third = cp.checkpoint("third")
    assert third is not None, "a rewrite of the same size right after a rollback was missed"
    assert git_out(repo, "cat-file", "blob", f"{third.commit}:same.txt") == b"dddd\n"


# =====================================================================================
# ignored files
# =====================================================================================


def test_ignored_files_are_never_staged_and_survive_rollback(repo: Path) -> None:
    put(repo, ".gitignore", "*.log\n!keep.log\nbuild/\n")
    put(repo, "sub/.gitignore", "*.tmp\n!important.tmp\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore rules")
    cp, rec0 = started(repo)
    with (repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("secret.txt\n")
    put(repo, "debug.log", "ignored\n")
    put(repo, "keep.log", "kept: negated\n")
    put(repo, "build/deep/out.bin", b"\x00ignored")
    put(repo, "sub/scratch.tmp", "ignored by sub/.gitignore\n")
    put(repo, "sub/important.tmp", "negated in sub/.gitignore\n")
    put(repo, "scratch.tmp", "not ignored at the top\n")
    put(repo, "secret.txt", "ignored by info/exclude\n")
    put(repo, "sub/secret.txt", "info/exclude has no slash: ignored here too\n")
    expected = add_all_tree(repo)
    rec1 = cp.checkpoint("with ignored files around")
    assert rec1 is not None
    assert commit_tree(repo, rec1.commit) == expected
    tree = tree_files(repo, rec1.commit)
    for path in ("keep.log", "sub/important.tmp", "scratch.tmp", "sub/.gitignore"):
        assert path in tree, path
    for path in ("debug.log", "build/deep/out.bin", "sub/scratch.tmp", "secret.txt", "sub/secret.txt"):
        assert path not in tree, path
    assert_git_clean(repo)

    # ignored files made after the checkpoint, in folders that the rollback removes
    put(repo, "newdir/work.txt", "not ignored: goes\n")
    put(repo, "newdir/trace.log", "ignored: stays\n")
    put(repo, "build/more.o", "ignored: stays\n")
    put(repo, "debug.log", "ignored, changed: stays changed\n")
    kept = ignored_view(repo)
    assert cp.rollback(0) == rec0
    assert ignored_view(repo) == kept
    assert not (repo / "newdir" / "work.txt").exists()
    assert (repo / "newdir" / "trace.log").read_text() == "ignored: stays\n"
    assert not (repo / "keep.log").exists()  # not ignored: added since 0, so removed
    assert tracked_view(repo) == tree_files(repo, rec0.commit)
    assert_git_clean(repo)


def test_a_tracked_file_that_is_ignored_stays_tracked(repo: Path) -> None:
    """As with ``git add -A``: ignore rules keep untracked files out, they do not drop tracked ones."""
    put(repo, "old.log", "tracked before *.log was ignored\n")
    git(repo, "add", "-f", "old.log")
    git(repo, "commit", "-q", "-m", "a tracked log")
    cp, rec0 = started(repo)
    put(repo, "old.log", "changed\n")
    put(repo, "new.txt", "new\n")
    expected = add_all_tree(repo)
    rec1 = cp.checkpoint("tracked but ignored")
    assert rec1 is not None
    assert commit_tree(repo, rec1.commit) == expected
    assert tree_files(repo, rec1.commit)["old.log"] == ("100644", b"changed\n")
    assert_git_clean(repo)
    assert cp.rollback(0) == rec0
    assert (repo / "old.log").read_text() == "tracked before *.log was ignored\n"


# =====================================================================================
# rollback
# =====================================================================================


def test_rollback_restores_the_checkpoint_byte_for_byte(repo: Path) -> None:
    master = rev(repo, "refs/heads/master")
    cp, rec0 = started(repo)
    # checkpoint 1: a little of everything
    link(repo, "dir-link", "docs")
    put(repo, "swap", "a file that will become a folder\n")
    put(repo, "nested/deep/é.txt", "unicode\n")
    put(repo, "bin/tool", "#!/bin/sh\n", exe=True)
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    # checkpoint 2: change all of it
    put(repo, "README.md", "rewritten\n")
    (repo / "run.sh").chmod(0o644)
    link(repo, "readme-link", "docs/guide.md")  # retargeted
    (repo / "dir-link").unlink()
    put(repo, "dir-link", "a file where a symlink was\n")
    (repo / "swap").unlink()
    put(repo, "swap/inner.txt", "a folder where a file was\n")
    shutil.rmtree(repo / "nested")
    put(repo, "added/日本.txt", "new\n")
    (repo / "docs" / "guide.md").unlink()
    link(repo, "docs/guide.md", "../README.md")  # a file turned symlink
    rec2 = cp.checkpoint("two")
    assert rec2 is not None
    # uncommitted work, ignored files and .flow/ on top
    put(repo, "README.md", "uncommitted\n")
    put(repo, "scratch/notes.txt", "uncommitted\n")
    (repo / "empty" / "folder").mkdir(parents=True)
    put(repo, "app.log", "ignored\n")
    put(repo, "build/artifact.bin", b"\x00\xff")
    put(repo, ".flow/maestro/sessions/s/events.jsonl", '{"seq": 1}\n')
    expected_pre = add_all_tree(repo)
    pre_view = tracked_view(repo)
    kept = ignored_view(repo)
    flow = snapshot(repo / ".flow")

    back = cp.rollback(1)
    assert back == rec1
    assert tracked_view(repo) == tree_files(repo, rec1.commit)
    assert ignored_view(repo) == kept
    assert snapshot(repo / ".flow") == flow
    assert rev(repo, BRANCH) == rec1.commit
    assert git(repo, "symbolic-ref", "HEAD") == BRANCH
    assert rev(repo, "refs/heads/master") == master
    assert_git_clean(repo)  # the index is the checkpoint's too
    # the work before the rollback is kept
    pre = rev(repo, f"refs/maestro/{SID}/pre-rollback-1")
    assert pre is not None
    assert commit_tree(repo, pre) == expected_pre
    assert tree_files(repo, pre) == pre_view
    # the checkpoints after 1 are still there, and numbering goes on
    assert rev(repo, f"refs/tags/maestro/{SID}/2^{{commit}}") == rec2.commit
    put(repo, "after.txt", "after the rollback\n")
    rec3 = cp.checkpoint("three")
    assert rec3 is not None
    assert rec3.n == 3
    assert parents(repo, rec3.commit) == [rec1.commit]
    assert by_path(rec3.files) == git_changes(repo, rec1.commit, rec3.commit)
    assert cp.list() == [rec0, rec1, rec2, rec3]
    # and a rollback to 2 (a checkpoint off the branch now) works just as well
    assert cp.rollback(2) == rec2
    assert tracked_view(repo) == tree_files(repo, rec2.commit)
    assert ignored_view(repo) == kept
    assert rev(repo, BRANCH) == rec2.commit
    assert rev(repo, f"refs/maestro/{SID}/pre-rollback-2") is not None
    assert_git_clean(repo)


def test_rollback_checked_against_a_checkout_of_the_commit(repo: Path, tmp_path: Path) -> None:
    """The restored files equal what ``git archive`` of the checkpoint's commit unpacks to."""
    cp, _rec0 = started(repo)
    put(repo, "x/y/z.sh", "#!/bin/sh\n", exe=True)
    link(repo, "x/up", "../README.md")
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    shutil.rmtree(repo / "x")
    put(repo, "x", "now a file\n")
    put(repo, "README.md", "other\n")
    assert cp.checkpoint("two") is not None
    cp.rollback(rec1.n)
    out = tmp_path / "archive"
    out.mkdir()
    tar = subprocess.run([GIT, "archive", "--format=tar", rec1.commit], cwd=repo, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar.stdout, check=True)
    assert tracked_view(repo) == walk(out)


def test_rollback_by_number_tag_or_commit(repo: Path) -> None:
    cp, rec0 = started(repo)
    put(repo, "a.txt", "1\n")
    rec1 = cp.checkpoint("one")
    put(repo, "a.txt", "2\n")
    rec2 = cp.checkpoint("two")
    assert rec1 is not None
    assert rec2 is not None
    assert cp.rollback(f"maestro/{SID}/1") == rec1
    assert (repo / "a.txt").read_text() == "1\n"
    assert cp.rollback(rec2.commit) == rec2
    assert (repo / "a.txt").read_text() == "2\n"
    assert cp.rollback(0) == rec0
    assert not (repo / "a.txt").exists()
    for k in (1, 2, 3):  # one pre-rollback ref per rollback
        assert rev(repo, f"refs/maestro/{SID}/pre-rollback-{k}") is not None
    assert rev(repo, f"refs/maestro/{SID}/pre-rollback-4") is None
    assert tree_files(repo, f"refs/maestro/{SID}/pre-rollback-1")["a.txt"] == ("100644", b"2\n")
    assert tree_files(repo, f"refs/maestro/{SID}/pre-rollback-3")["a.txt"] == ("100644", b"2\n")
    # rolling back where one already is changes nothing in the tree
    assert cp.rollback(0) == rec0
    assert cp.checkpoint("nothing") is None


def test_rollback_keeps_flow_untouched(repo: Path) -> None:
    put(repo, ".flow/maestro/config.yaml", "a: 1\n")
    cp, _rec0 = started(repo)
    put(repo, "a.txt", "a\n")
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    put(repo, ".flow/maestro/config.yaml", "a: 2\n")
    put(repo, ".flow/new/file.txt", "made after the checkpoint\n")
    link(repo, ".flow/link", "../a.txt")
    put(repo, "b.txt", "b\n")
    flow = snapshot(repo / ".flow")
    assert cp.rollback(0) is not None
    assert snapshot(repo / ".flow") == flow
    assert not (repo / "a.txt").exists()
    assert not (repo / "b.txt").exists()


def test_checkpoint_after_rollback_to_an_identical_tree_is_none(repo: Path) -> None:
    cp, _rec0 = started(repo)
    put(repo, "a.txt", "a\n")
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    put(repo, "a.txt", "b\n")
    cp.rollback(1)
    assert cp.checkpoint("same as 1") is None


# =====================================================================================
# diff
# =====================================================================================


def test_diff_between_checkpoints_as_git_counts(repo: Path) -> None:
    put(repo, "a.txt", "1\n2\n3\n")
    put(repo, "b.txt", "x\n")
    put(repo, "gone.txt", "g1\ng2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "diff fixtures")
    cp, rec0 = started(repo)
    put(repo, "a.txt", "1\n2\n3\n4\n5\n")
    put(repo, "new.txt", "n1\nn2\nn3\n")
    (repo / "gone.txt").unlink()
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    put(repo, "a.txt", "1\nTWO\n3\n4\n5\n")
    put(repo, "b.txt", "x")  # the last newline dropped: git counts one line out, one in
    put(repo, "sub/c.txt", "c\n")
    (repo / "new.txt").chmod(0o755)
    rec2 = cp.checkpoint("two")
    assert rec2 is not None

    assert by_path(rec1.files) == git_changes(repo, rec0.commit, rec1.commit)
    assert by_path(rec1.files) == (
        FileChange("a.txt", "modified", 2, 0),
        FileChange("gone.txt", "deleted", 0, 2),
        FileChange("new.txt", "added", 3, 0),
    )
    assert by_path(rec2.files) == git_changes(repo, rec1.commit, rec2.commit)
    assert by_path(rec2.files) == (
        FileChange("a.txt", "modified", 1, 1),
        FileChange("b.txt", "modified", 1, 1),
        FileChange("new.txt", "modified", 0, 0),
        FileChange("sub/c.txt", "added", 1, 0),
    )
    assert cp.diff(0, 1) == by_path(rec1.files)
    assert cp.diff(1, 2) == by_path(rec2.files)
    assert cp.diff("base", 2) == git_changes(repo, rec0.commit, rec2.commit)
    assert cp.diff(0, 2) == cp.diff("base", 2)
    assert cp.diff(2, 0) == git_changes(repo, rec2.commit, rec0.commit)
    assert cp.diff(rec1.tag, rec2.commit) == cp.diff(1, 2)
    assert cp.diff(f"maestro/{SID}/2", rec1.commit) == git_changes(repo, rec2.commit, rec1.commit)
    assert cp.diff(1, 1) == ()
    assert cp.diff("base", "base") == ()
    d = cp.diff("base", 2)
    assert isinstance(d, tuple)
    assert [f.path for f in d] == sorted(f.path for f in d)


def test_diff_of_symlinks_and_unicode_paths(repo: Path) -> None:
    cp, rec0 = started(repo)
    link(repo, "readme-link", "docs/guide.md")
    put(repo, "ü/日本.txt", "a\nb\n")
    put(repo, "é.txt", "x\n")
    rec1 = cp.checkpoint("links and names")
    assert rec1 is not None
    assert cp.diff(0, 1) == git_changes(repo, rec0.commit, rec1.commit)
    assert [f.path for f in cp.diff(0, 1)] == ["readme-link", "é.txt", "ü/日本.txt"]


# =====================================================================================
# worktree mode
# =====================================================================================


def _user_state(repo: Path) -> tuple[object, ...]:
    """The user's checkout: its files (ignored ones too, .flow/ left out), its index and HEAD, its branch."""
    git_dir = repo / ".git"
    return (walk(repo), (git_dir / "index").read_bytes(), (git_dir / "HEAD").read_bytes(), rev(repo, "master"))


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_worktree_mode_leaves_the_users_checkout_alone(repo: Path, dirty: bool) -> None:
    if dirty:
        put(repo, "README.md", "the user's own uncommitted work\n")
        put(repo, "wip.txt", "untracked\n")
        git(repo, "add", "wip.txt")  # staged, even
        put(repo, "local.log", "ignored\n")
    user = _user_state(repo)

    cp = Checkpointer(repo, SID, worktree=True)
    rec0 = cp.start()
    wd = cp.workdir
    assert not wd.resolve().is_relative_to(repo.resolve())  # outside the user's working tree (and its .git)
    assert wd.name == f"maestro-{SID}-integration"
    assert wd.is_dir()
    listing = git(repo, "worktree", "list", "--porcelain").split("\n\n")
    mine = [block for block in listing if f"worktree {wd.resolve()}" in block.splitlines()]
    assert len(mine) == 1, listing
    assert f"branch {BRANCH}" in mine[0].splitlines()
    assert git(wd, "symbolic-ref", "HEAD") == BRANCH
    assert rev(repo, BRANCH) == rec0.commit
    assert tracked_view(wd) == tree_files(wd, rec0.commit)
    assert _user_state(repo) == user
    if not dirty:
        assert rec0.commit == rev(repo, "master")

    put(wd, "README.md", "agent's work\n")
    put(wd, "feature/日本.py", "x = 1\n")
    put(wd, "tool.sh", "#!/bin/sh\n", exe=True)
    link(wd, "alias", "README.md")
    put(wd, "agent.log", "ignored in the worktree too\n")
    expected = add_all_tree_in_place(wd)
    rec1 = cp.checkpoint("agent work")
    assert rec1 is not None
    assert commit_tree(wd, rec1.commit) == expected
    assert "agent.log" not in tree_files(wd, rec1.commit)
    assert_git_clean(wd)
    assert git(wd, "cat-file", "-t", f"refs/tags/{rec1.tag}") == "tag"
    assert _user_state(repo) == user

    put(wd, "README.md", "more\n")
    put(wd, "later.txt", "later\n")
    assert cp.rollback(0) == rec0
    assert tracked_view(wd) == tree_files(wd, rec0.commit)
    assert (wd / "agent.log").exists()
    assert rev(repo, f"refs/maestro/{SID}/pre-rollback-1") is not None
    assert_git_clean(wd)
    assert cp.diff(0, 1) == git_changes(wd, rec0.commit, rec1.commit)
    assert cp.list() == [rec0, rec1]
    assert _user_state(repo) == user

    # resume: same worktree, same checkpoint 0
    again = Checkpointer(repo, SID, worktree=True)
    assert again.start() == rec0
    assert again.workdir.resolve() == wd.resolve()
    assert _user_state(repo) == user
    # and the user's own git status is unchanged by the worktree
    status = git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all")
    assert ".flow" not in status


# =====================================================================================
# errors: named, and nothing written
# =====================================================================================


def _message(info: pytest.ExceptionInfo[CheckpointError]) -> str:
    return str(info.value)


def test_not_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "f.txt").write_text("x\n")
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError) as info:
        Checkpointer(plain, SID).start()
    assert str(plain) in _message(info) or str(plain.resolve()) in _message(info)
    assert snapshot(tmp_path) == before


def test_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(CheckpointError) as info:
        Checkpointer(missing, SID).start()
    assert "nowhere" in _message(info)
    assert not missing.exists()


def test_a_bare_repository(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError) as info:
        Checkpointer(bare, SID).start()
    assert "bare.git" in _message(info)
    assert snapshot(tmp_path) == before


def test_index_lock_at_start(repo: Path) -> None:
    put(repo, "README.md", "dirty: start would write a commit\n")
    (repo / ".git" / "index.lock").write_bytes(b"")
    before = snapshot(repo)
    with pytest.raises(CheckpointError) as info:
        Checkpointer(repo, SID).start()
    assert "index.lock" in _message(info)
    assert snapshot(repo) == before


def test_index_lock_at_checkpoint_and_rollback(repo: Path) -> None:
    cp, _rec0 = started(repo)
    put(repo, "a.txt", "a\n")
    rec1 = cp.checkpoint("one")
    assert rec1 is not None
    put(repo, "a.txt", "changed\n")
    put(repo, "b.txt", "new\n")
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    before = snapshot(repo)
    with pytest.raises(CheckpointError) as info:
        cp.checkpoint("blocked")
    assert "index.lock" in _message(info)
    assert snapshot(repo) == before
    with pytest.raises(CheckpointError) as info:
        cp.rollback(0)
    assert "index.lock" in _message(info)
    assert snapshot(repo) == before
    lock.unlink()
    rec2 = cp.checkpoint("unblocked")
    assert rec2 is not None
    assert rec2.n == 2
    assert_git_clean(repo)


def test_a_whole_worktree_a_stopped_run_left_is_made_again_at_the_new_start(repo: Path) -> None:
    """A run killed after the worktree was made but before checkpoint 0 was tagged, then the user's tree changed:
    the next start must not keep the old worktree (its files would be committed over the user's change)."""
    put(repo, "a.txt", "one\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-qm", "a")
    cp, _rec0 = started(repo, worktree=True)
    assert (cp.workdir / "a.txt").read_text() == "one\n"
    git(repo, "tag", "-d", f"maestro/{SID}/0")  # as if killed before the tag
    put(repo, "a.txt", "two\n")  # the user's change meanwhile (uncommitted: saved as the new base)
    again, rec0 = started(repo, worktree=True)
    assert (again.workdir / "a.txt").read_text() == "two\n"
    assert git(again.workdir, "status", "--porcelain") == ""
    assert again.checkpoint("nothing") is None  # nothing of the old worktree's is committed
    assert git(repo, "show", f"{rec0.commit}:a.txt") == "two"


def test_a_git_status_in_the_new_worktree_holding_its_index_is_waited_for(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI met it: an IDE's `git status` run in the session's worktree the moment its folder appeared held
    index.lock while the index was written, and the run ended "index.lock exists"."""
    held = IndexHeldOnce(GitIndex, "path")
    held.install(monkeypatch)
    cp, rec0 = started(repo, worktree=True)
    assert held.held and held.held[0].parent.name == cp.workdir.name  # the new worktree's lock was met
    assert held.writes >= 2  # written again once the lock went
    assert git(cp.workdir, "status", "--porcelain") == ""
    assert git(cp.workdir, "rev-parse", "HEAD") == rec0.commit
    assert git(cp.workdir, "symbolic-ref", "HEAD") == BRANCH


USER_COMMIT = "<a commit of the user's, not a checkpoint>"


@pytest.mark.parametrize(
    "bad",
    [99, -1, "nope", f"maestro/{SID}/99", "maestro/other/1", "0" * 40, "deadbeef" * 5, USER_COMMIT],
    ids=["99", "-1", "nope", "tag-99", "other-session", "zeros", "no-such-commit", "user-commit"],
)
def test_unknown_checkpoints_are_refused(repo: Path, bad: object) -> None:
    cp, _rec0 = started(repo)
    put(repo, "a.txt", "a\n")
    assert cp.checkpoint("one") is not None
    put(repo, "a.txt", "uncommitted\n")
    if bad == USER_COMMIT:
        bad = rev(repo, "master~1")  # an ancestor of checkpoint 0, but no checkpoint
    before = snapshot(repo)
    with pytest.raises(CheckpointError) as info:
        cp.rollback(bad)  # type: ignore[arg-type]
    named = str(bad) if len(str(bad)) != 40 else str(bad)[:7]  # a commit id may be shortened
    assert named in _message(info), _message(info)
    assert snapshot(repo) == before
    with pytest.raises(CheckpointError):
        cp.diff(0, bad)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError):
        cp.diff(bad, "base")  # type: ignore[arg-type]
    assert snapshot(repo) == before
    assert (repo / "a.txt").read_text() == "uncommitted\n"


# =====================================================================================
# corners: what git does, maestro does
# =====================================================================================


def _outcome(call: Callable[[], T]) -> T | CheckpointError:
    """What ``call`` returns, or the CheckpointError it raises."""
    try:
        return call()
    except CheckpointError as exc:
        return exc


def test_rollback_removes_an_empty_folder_where_the_checkpoint_has_a_file(repo: Path) -> None:
    cp, _rec0 = started(repo)
    put(repo, "tool", "a file\n")
    rec1 = cp.checkpoint("tool is a file")
    assert rec1 is not None
    (repo / "tool").unlink()
    (repo / "tool" / "empty" / "deeper").mkdir(parents=True)  # git does not track empty folders
    assert cp.rollback(1) == rec1
    assert (repo / "tool").read_text() == "a file\n"
    assert tracked_view(repo) == tree_files(repo, rec1.commit)
    assert_git_clean(repo)


def test_a_rollback_blocked_by_ignored_files_changes_nothing(repo: Path) -> None:
    """A folder of ignored files where the checkpoint has a file: either way, never half a rollback."""
    cp, _rec0 = started(repo)
    put(repo, "pkg", "a module as one file\n")
    rec1 = cp.checkpoint("pkg is a file")
    assert rec1 is not None
    (repo / "pkg").unlink()
    put(repo, "pkg/__init__.py", "a package now\n")
    put(repo, "pkg/other.py", "x = 1\n")
    put(repo, "pkg/trace.log", "ignored\n")  # ignored: rollback leaves it alone
    put(repo, "README.md", "changed too\n")
    view, kept, branch = tracked_view(repo), ignored_view(repo), rev(repo, BRANCH)
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    back = _outcome(lambda: cp.rollback(1))
    if isinstance(back, CheckpointError):
        assert "pkg" in str(back)
        assert tracked_view(repo) == view, "a refused rollback changed the files"
        assert ignored_view(repo) == kept
        assert rev(repo, BRANCH) == branch
        assert git(repo, "status", "--porcelain", "--untracked-files=all") == status, "it changed the index"
    else:
        assert back == rec1
        assert tracked_view(repo) == tree_files(repo, rec1.commit)
        assert_git_clean(repo)


def test_a_negation_inside_a_folder_pattern_is_honoured(repo: Path) -> None:
    put(repo, ".gitignore", "logs/*\n!logs/keep.txt\nout/\n!out/x.txt\n")  # out/ itself ignored: no way back in
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "rules")
    cp, rec0 = started(repo)
    for name in ("logs/a.txt", "logs/keep.txt", "out/x.txt", "out/y.txt"):
        put(repo, name, f"{name}\n")
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("logs")
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree
    assert "logs/keep.txt" in expected
    assert_git_clean(repo)
    assert cp.rollback(0) == rec0
    assert not (repo / "logs" / "keep.txt").exists()
    assert (repo / "logs" / "a.txt").exists()  # ignored: left alone
    assert (repo / "out" / "x.txt").exists()


def test_an_ignored_folder_holding_a_tracked_file(repo: Path) -> None:
    put(repo, "build/keep.txt", "tracked although build/ is ignored\n")
    git(repo, "add", "-f", "build/keep.txt")
    git(repo, "commit", "-q", "-m", "tracked in an ignored folder")
    cp, _rec0 = started(repo)
    put(repo, "build/keep.txt", "changed: staged\n")
    put(repo, "build/new.txt", "untracked in an ignored folder: not staged\n")
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("build")
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree
    assert_git_clean(repo)


def test_a_global_excludes_file_is_honoured(repo: Path, tmp_path: Path) -> None:
    excludes = tmp_path / "global-ignore"
    excludes.write_text("*.secret\n")
    git(repo, "config", "core.excludesFile", str(excludes))
    cp, _rec0 = started(repo)
    put(repo, "token.secret", "never committed\n")
    put(repo, "ok.txt", "ok\n")
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("secrets")
    assert rec1 is not None
    assert "token.secret" not in tree_files(repo, rec1.commit)
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree


@pytest.mark.parametrize(
    "name",
    ["new\nline.txt", "back\\slash", "tab\t.txt", " leading", "trailing ", 'quote"s', "star*", "-dash", "emoji😀.txt"],
)
def test_unusual_file_names(repo: Path, name: str) -> None:
    cp, rec0 = started(repo)
    put(repo, name, "odd\n")
    put(repo, f"dir {name}/inner", "odd too\n")
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("an odd name")
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree
    assert_git_clean(repo)
    assert cp.diff(0, 1) == git_changes(repo, rec0.commit, rec1.commit)
    assert cp.rollback(0) == rec0
    assert not (repo / name).exists()
    assert cp.rollback(1) == rec1
    assert tracked_view(repo) == tree_files(repo, rec1.commit)


def test_only_the_owners_execute_bit_counts(repo: Path) -> None:
    """As git: 0o754 is executable, 0o654 is not, 0o444 is a plain file."""
    cp, _rec0 = started(repo)
    for name, mode in (("owner-x", 0o744), ("group-x", 0o654), ("read-only", 0o444), ("all-x", 0o777)):
        put(repo, name, f"{name}\n")
        (repo / name).chmod(mode)
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("modes")
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree
    assert [tree_files(repo, rec1.commit)[n][0] for n in ("owner-x", "group-x", "read-only", "all-x")] == [
        "100755", "100644", "100644", "100755",
    ]  # fmt: skip


def test_a_file_that_becomes_a_symlink_is_one_modified_file(repo: Path) -> None:
    cp, rec0 = started(repo)
    (repo / "README.md").unlink()
    link(repo, "README.md", "docs/guide.md")
    (repo / "readme-link").unlink()
    put(repo, "readme-link", "a file where a symlink was\n")
    rec1 = cp.checkpoint("type changes")
    assert rec1 is not None
    assert by_path(rec1.files) == git_changes(repo, rec0.commit, rec1.commit)
    assert [(f.path, f.change) for f in by_path(rec1.files)] == [("README.md", "modified"), ("readme-link", "modified")]
    assert cp.diff(0, 1) == by_path(rec1.files)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"c\na\na\nc\na\na\n", b"c\nc\na\n"),  # only deletions: git counts +0 -3
        (b"a\na\na\n", b"a\nb\na\na\n"),  # one line in: +1 -0
        (b"a\rb\rc\n", b"a\rb\rd\n"),  # a lone CR ends no line for git: one line, changed
        (b"x", b"x\n"),  # the last newline added
        (b"", b"one\ntwo\n"),
        (b"one\ntwo\n", b""),
    ],
    ids=["deletions-only", "one-insert", "lone-cr", "newline-at-eof", "from-empty", "to-empty"],
)
def test_line_counts_are_gits(repo: Path, old: bytes, new: bytes) -> None:
    put(repo, "f.txt", old)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "f.txt")
    cp, rec0 = started(repo)
    put(repo, "f.txt", new)
    rec1 = cp.checkpoint("lines")
    assert rec1 is not None
    assert rec1.files == git_changes(repo, rec0.commit, rec1.commit)
    assert cp.diff(0, 1) == rec1.files
    assert cp.diff(1, 0) == git_changes(repo, rec1.commit, rec0.commit)


@pytest.mark.parametrize("label", ["  spaced  ", "colon: inside: twice", "", "multi\nline\nlabel", "ünïcødé ✓"])
def test_labels_come_back_from_git_as_given(repo: Path, label: str) -> None:
    cp, _rec0 = started(repo)
    put(repo, "a.txt", "a\n")
    rec1 = cp.checkpoint(label)
    assert rec1 is not None
    assert rec1.label == label
    fresh = Checkpointer(repo, SID)
    fresh.start()
    assert fresh.list()[1] == rec1  # read back from the tag by another Checkpointer
    assert fresh.rollback(1) == rec1


def test_git_working_alongside_between_checkpoints(repo: Path) -> None:
    """The index rewritten by git itself (version 4, a `git add`, a `git rm --cached`) between checkpoints."""
    cp, _rec0 = started(repo)
    put(repo, "a.txt", "a\n")
    assert cp.checkpoint("one") is not None
    git(repo, "update-index", "--index-version", "4")
    put(repo, "b.txt", "b\n")
    git(repo, "add", "b.txt")
    git(repo, "rm", "-q", "--cached", "docs/guide.md")
    put(repo, "a.txt", "a again\n")
    expected_tree, expected = add_all(repo)
    rec2 = cp.checkpoint("two")
    assert rec2 is not None
    assert tree_files(repo, rec2.commit) == expected
    assert commit_tree(repo, rec2.commit) == expected_tree
    assert_git_clean(repo)
    git(repo, "status")  # git refreshes (rewrites) the index
    put(repo, "c.txt", "c\n")
    rec3 = cp.checkpoint("three")
    assert rec3 is not None
    assert {f.path for f in rec3.files} == {"c.txt"}
    assert cp.rollback(1) is not None
    assert_git_clean(repo)


def test_sparse_checkout_files_are_not_deleted(repo: Path) -> None:
    """A skip-worktree file absent from the tree is not a deletion (``git add -A`` keeps it)."""
    cp, _rec0 = started(repo)
    git(repo, "update-index", "--skip-worktree", "docs/guide.md")
    (repo / "docs" / "guide.md").unlink()
    put(repo, "a.txt", "a\n")
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("sparse")
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree
    assert "docs/guide.md" in tree_files(repo, rec1.commit)


def test_an_index_maestro_cannot_read_is_a_checkpoint_error(repo: Path) -> None:
    """A split index (``git update-index --split-index``): handled, or refused as a CheckpointError."""
    cp, _rec0 = started(repo)
    git(repo, "update-index", "--split-index")
    put(repo, "a.txt", "a\n")
    git(repo, "add", "a.txt")
    put(repo, "b.txt", "b\n")
    expected_tree, expected = add_all(repo)
    rec1 = _outcome(lambda: cp.checkpoint("split index"))
    if isinstance(rec1, CheckpointError):
        assert "index" in str(rec1)
        return
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree
    assert_git_clean(repo)


def test_a_submodule_is_kept(repo: Path, tmp_path: Path) -> None:
    """A submodule is a commit id in the tree (mode 160000): a checkpoint keeps it, a rollback leaves its files."""
    lib = make_repo(tmp_path / "lib", {"lib.txt": "library\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "deps/lib")
    git(repo, "commit", "-q", "-m", "a submodule")
    head = rev(repo, "HEAD")
    cp, rec0 = started(repo)
    assert rec0.commit == head  # a clean checkout with a submodule is clean
    assert rev(repo, BASE) is None
    put(repo, "a.txt", "a\n")
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("beside a submodule")
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree
    assert tree_files(repo, rec1.commit)["deps/lib"][0] == GITLINK
    assert [f.path for f in rec1.files] == ["a.txt"]
    assert_git_clean(repo)
    assert cp.rollback(0) == rec0
    assert (repo / "deps" / "lib" / "lib.txt").read_text() == "library\n"
    assert_git_clean(repo)


def test_text_attributes_are_applied_as_git_add_does(repo: Path) -> None:
    """With ``* text=auto`` in .gitattributes git stores CRLF text with LF: so must a checkpoint."""
    put(repo, ".gitattributes", "* text=auto\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "attributes")
    cp, _rec0 = started(repo)
    put(repo, "crlf.txt", b"one\r\ntwo\r\n")
    expected_tree, expected = add_all(repo)
    rec1 = cp.checkpoint("crlf")
    assert rec1 is not None
    assert tree_files(repo, rec1.commit) == expected
    assert commit_tree(repo, rec1.commit) == expected_tree


def test_core_filemode_false_is_honoured(repo: Path) -> None:
    """With ``core.fileMode=false`` git ignores the execute bit of the files: a mode change alone is no change."""
    git(repo, "config", "core.fileMode", "false")
    cp, _rec0 = started(repo)
    (repo / "README.md").chmod(0o755)
    _tree, expected = add_all(repo)
    rec1 = cp.checkpoint("only a mode")
    got = tree_files(repo, rec1.commit if rec1 is not None else "HEAD")
    assert got == expected
    assert rec1 is None


def test_worktree_mode_on_an_unborn_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"}, commit=False)
    user = walk(repo)
    cp = Checkpointer(repo, SID, worktree=True)
    rec0 = cp.start()
    assert parents(repo, rec0.commit) == []
    assert walk(repo) == user
    assert rev(repo, "refs/heads/master") is None
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/master"  # the user's HEAD stays unborn
    put(cp.workdir, "b.txt", "b\n")
    rec1 = cp.checkpoint("b")
    assert rec1 is not None
    assert parents(repo, rec1.commit) == [rec0.commit]
    assert_git_clean(cp.workdir)


def test_two_checkpointers_on_one_session(repo: Path) -> None:
    """Two Checkpointer objects on the same session (as two processes would be) see each other's checkpoints."""
    a, rec0 = started(repo)
    b = Checkpointer(repo, SID)
    assert b.start() == rec0
    put(repo, "x.txt", "x\n")
    ra = a.checkpoint("by a")
    put(repo, "y.txt", "y\n")
    rb = b.checkpoint("by b")
    assert ra is not None
    assert rb is not None
    assert (ra.n, rb.n) == (1, 2)
    assert parents(repo, rb.commit) == [ra.commit]
    assert set(tree_files(repo, rb.commit)) >= {"x.txt", "y.txt"}
    put(repo, "z.txt", "z\n")
    assert a.rollback(1) == ra
    assert not (repo / "y.txt").exists()
    put(repo, "w.txt", "w\n")
    rb3 = b.checkpoint("by b, after a's rollback")
    assert rb3 is not None
    assert rb3.n == 3
    assert parents(repo, rb3.commit) == [ra.commit]
    assert set(tree_files(repo, rb3.commit)) - set(tree_files(repo, ra.commit)) == {"w.txt"}
    assert_git_clean(repo)


def test_rollback_through_a_folder_that_became_a_symlink(repo: Path) -> None:
    """A folder replaced by a symlink to another folder: the symlink goes, the folder's files come back.

    Found by the checkpoint property test: the obstacle check followed the
    symlink and took ``sub dir/a`` (seen as ``a/a``) for an ignored file in the way.
    """
    make_repo(repo, {"sub dir/a": "", "a/a/a": "deep\n"})
    cp = maestro.Checkpointer(repo, "s1")
    cp.start()
    shutil.rmtree(repo / "a")
    link(repo, "a", "sub dir")
    cp.rollback(0)
    assert not (repo / "a").is_symlink()
    assert (repo / "a" / "a" / "a").read_text() == "deep\n"
    assert (repo / "sub dir" / "a").read_text() == ""
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("cut", ["dotgit", "admin_index", "admin"])
def test_a_worktree_left_unfinished_by_a_killed_run_is_made_again(repo: Path, cut: str) -> None:
    """A run killed while making the session's worktree leaves a folder without its .git file, or an admin folder
    without its index: the next start makes the worktree again instead of refusing ("path already exists")."""
    put(repo, "README.md", "hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-qm", "base")
    cp = Checkpointer(repo, SID, worktree=True)
    zero = cp.start()
    wd = cp.workdir
    admin = repo / ".git" / "worktrees" / wd.name
    assert admin.is_dir()
    if cut == "dotgit":
        (wd / ".git").unlink()
    elif cut == "admin_index":
        (admin / "index").unlink()
    else:
        shutil.rmtree(admin)
    put(wd, "junk.txt", "left behind\n")
    again = Checkpointer(repo, SID, worktree=True)
    assert again.start() == zero
    assert (wd / ".git").is_file() and (admin / "index").is_file()
    assert not (wd / "junk.txt").exists()
    assert tracked_view(wd) == tree_files(wd, zero.commit)
    assert_git_clean(wd)
