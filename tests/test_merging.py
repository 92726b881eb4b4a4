"""Three-way merges without a working tree (:mod:`maestro.git.merging`), checked against ``git merge-tree``.

Every merge is made in a real repository (objects written with dulwich, refs
``refs/heads/ours`` and ``refs/heads/theirs`` on two children of one base) and
the same merge is asked of git: ``git merge-tree --write-tree --name-only ours
theirs`` (git 2.38+, base found by git, which is our base).  A clean merge must
give git's tree id, byte for byte; a conflicting one must name the same paths
(git names a file that a folder displaced ``path~ours``: the suffix is cut).
Git detects renames and we do not: the generated histories never delete a file
and add a similar one on the same side, where the two would part ways
(``test_a_rename_is_a_conflict_not_a_wrong_tree`` pins what we do then).
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.repo import Repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.core.errors import CheckpointError
from maestro.git.merging import Conflict, MergeResult, commit_merge, merge_commits

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")

Files = Mapping[str, bytes | tuple[bytes, int]]  # path -> content, or (content, mode)
AUTHOR = b"maestro test <test@example.com>"
EXEC, LINK, GITLINK = 0o100755, 0o120000, 0o160000


# =====================================================================================
# helpers: commits made with dulwich, merges asked of git
# =====================================================================================


def write_tree(repo: Repo, files: Files) -> ObjectID:
    """The tree of ``files`` (nested folders made as needed), written to ``repo``."""
    root: dict[str, object] = {}
    for path, value in files.items():
        data, mode = value if isinstance(value, tuple) else (value, 0o100644)
        *folders, name = path.split("/")
        node = root
        for f in folders:
            node = node.setdefault(f, {})  # type: ignore[assignment]
        blob = Blob.from_string(data)
        repo.object_store.add_object(blob)
        node[name] = (mode, blob.id)

    def build(node: dict[str, object]) -> ObjectID:
        tree = Tree()
        for name, value in node.items():
            if isinstance(value, dict):
                tree.add(name.encode(), stat.S_IFDIR, build(value))
            else:
                mode, sha = value  # type: ignore[misc]
                tree.add(name.encode(), mode, sha)
        repo.object_store.add_object(tree)
        return tree.id

    return build(root)


def make_commit(repo: Repo, files: Files, parents: list[ObjectID], message: str = "c") -> ObjectID:
    c = Commit()
    c.tree = write_tree(repo, files)
    c.parents = parents
    c.author = c.committer = AUTHOR
    c.author_time = c.commit_time = 1_700_000_000 + len(parents)
    c.author_timezone = c.commit_timezone = 0
    c.message = message.encode() + b"\n"
    repo.object_store.add_object(c)
    return c.id


def history(repo: Repo, base: Files, ours: Files, theirs: Files) -> tuple[ObjectID, ObjectID, ObjectID]:
    """Commits base, ours (a child of base) and theirs (another child), ``ours`` and ``theirs`` as branches."""
    b = make_commit(repo, base, [], "base")
    o = make_commit(repo, ours, [b], "ours")
    t = make_commit(repo, theirs, [b], "theirs")
    repo.refs[b"refs/heads/ours"] = o
    repo.refs[b"refs/heads/theirs"] = t
    return b, o, t


def git_merge(repo: Repo) -> tuple[ObjectID | None, set[str]]:
    """What git makes of merging ``theirs`` into ``ours``: the tree (``None`` on conflicts) and the conflicting
    paths (``~ours`` / ``~theirs`` cut)."""
    out = subprocess.run(
        ["git", "merge-tree", "--write-tree", "--name-only", "ours", "theirs"],
        cwd=repo.path,
        capture_output=True,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    lines = out.stdout.decode().split("\n")
    if out.returncode == 0:
        return ObjectID(lines[0].encode()), set()
    paths = set()
    for line in lines[1:]:
        if not line:
            break
        paths.add(line.removesuffix("~ours").removesuffix("~theirs"))
    return None, paths


def files_of(repo: Repo, tree: ObjectID, prefix: str = "") -> dict[str, tuple[bytes, int]]:
    out: dict[str, tuple[bytes, int]] = {}
    t = repo.object_store[tree]
    assert isinstance(t, Tree)
    for entry in t.iteritems():
        path = prefix + entry.path.decode()
        if stat.S_ISDIR(entry.mode):
            out.update(files_of(repo, entry.sha, path + "/"))
        else:
            blob = repo.object_store[entry.sha]
            assert isinstance(blob, Blob)
            out[path] = (blob.data, entry.mode)
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    r = Repo.init(str(tmp_path / "repo"), mkdir=True)
    yield r
    r.close()


def merge(repo: Repo, base: Files, ours: Files, theirs: Files) -> tuple[MergeResult, ObjectID | None, set[str]]:
    """Our merge and git's of the same history; asserts they agree (same tree, or same conflicting paths)."""
    b, o, t = history(repo, base, ours, theirs)
    result = merge_commits(repo, b, o, t)
    git_tree, git_paths = git_merge(repo)
    ours_paths = {c.path for c in result.conflicts}
    assert (result.tree, ours_paths) == (git_tree, git_paths)
    return result, git_tree, git_paths


# =====================================================================================
# named cases
# =====================================================================================

TEXT = b"".join(b"line %d\n" % i for i in range(1, 21))


def edit(text: bytes, **lines: str) -> bytes:
    """``text`` with line ``n`` (``l<n>=...``, 1-based) replaced."""
    out = text.split(b"\n")
    for key, value in lines.items():
        out[int(key[1:]) - 1] = value.encode()
    return b"\n".join(out)


def test_fast_forward_when_ours_is_the_base(repo: Repo) -> None:
    b = make_commit(repo, {"a": TEXT}, [])
    t = make_commit(repo, {"a": TEXT, "b": b"new\n"}, [b])
    result = merge_commits(repo, b, b, t)
    theirs = repo.object_store[t]
    assert isinstance(theirs, Commit)
    assert result == MergeResult(theirs.tree, (), fast_forward=True)


def test_theirs_unchanged_keeps_ours(repo: Repo) -> None:
    b = make_commit(repo, {"a": TEXT}, [])
    o = make_commit(repo, {"a": TEXT, "b": b"new\n"}, [b])
    result = merge_commits(repo, b, o, b)
    ours = repo.object_store[o]
    assert isinstance(ours, Commit)
    assert (result.tree, result.conflicts, result.fast_forward) == (ours.tree, (), False)


def test_disjoint_changes_in_one_folder_merge_cleanly(repo: Repo) -> None:
    base = {"pkg/a.py": TEXT, "pkg/b.py": TEXT, "pkg/c.py": TEXT}
    ours = {**base, "pkg/a.py": edit(TEXT, l3="ours"), "pkg/new_ours.py": b"x\n"}
    theirs = {"pkg/a.py": TEXT, "pkg/b.py": edit(TEXT, l3="theirs"), "pkg/new_theirs.py": b"y\n"}  # c.py deleted
    result, _, _ = merge(repo, base, ours, theirs)
    assert result.tree is not None and not result.fast_forward
    merged = files_of(repo, result.tree)
    assert sorted(merged) == ["pkg/a.py", "pkg/b.py", "pkg/new_ours.py", "pkg/new_theirs.py"]
    assert merged["pkg/a.py"][0] == edit(TEXT, l3="ours")
    assert merged["pkg/b.py"][0] == edit(TEXT, l3="theirs")


def test_non_overlapping_hunks_in_one_file_merge_cleanly(repo: Repo) -> None:
    ours = edit(TEXT, l2="ours two", l3="ours three")
    theirs = edit(TEXT, l15="theirs fifteen") + b"appended\n"
    result, _, _ = merge(repo, {"f": TEXT}, {"f": ours}, {"f": theirs})
    assert result.tree is not None
    assert files_of(repo, result.tree)["f"][0] == edit(TEXT, l2="ours two", l3="ours three", l15="theirs fifteen") + (
        b"appended\n"
    )


def test_overlapping_hunks_are_a_content_conflict_with_markers(repo: Repo) -> None:
    result, _, _ = merge(
        repo, {"f": TEXT, "g": TEXT}, {"f": edit(TEXT, l5="ours five"), "g": TEXT}, {"f": edit(TEXT, l5="theirs five")}
    )
    assert result.tree is None
    (c,) = result.conflicts
    assert (c.path, c.kind) == ("f", "content")
    assert "<<<<<<< session\nours five\n=======\ntheirs five\n>>>>>>> task\n" in c.hunks
    assert "@@ session line 5, task line 5 @@" in c.hunks
    text = result.feedback()
    assert "f (both changed the same lines):" in text and "ours five" in text and "theirs five" in text


def test_adjacent_changes_conflict_as_in_git(repo: Repo) -> None:
    result, _, _ = merge(repo, {"f": TEXT}, {"f": edit(TEXT, l5="ours")}, {"f": edit(TEXT, l6="theirs")})
    assert [c.path for c in result.conflicts] == ["f"]


def test_delete_modify_conflicts_both_ways(repo: Repo) -> None:
    base = {"a": TEXT, "b": TEXT}
    result, _, _ = merge(repo, base, {"a": edit(TEXT, l1="changed")}, {"a": TEXT, "b": edit(TEXT, l2="changed")})
    # ours deleted b, theirs changed it; ours changed a, theirs kept a: one conflict
    assert [(c.path, c.kind) for c in result.conflicts] == [("b", "delete/modify")]
    assert "<<<<<<< session\n(deleted)\n=======\nline 1\nchanged\n" in result.conflicts[0].hunks
    result, _, _ = merge(repo, base, {"a": TEXT, "b": edit(TEXT, l2="ours")}, {"a": TEXT})
    assert [(c.path, c.kind) for c in result.conflicts] == [("b", "delete/modify")]
    assert result.conflicts[0].hunks.endswith("=======\n(deleted)\n>>>>>>> task\n")


def test_a_deleted_folder_against_changes_inside_it(repo: Repo) -> None:
    base = {"d/a": TEXT, "d/b": TEXT, "e": TEXT}
    # theirs removes the folder; ours adds a file in it and leaves the rest: git keeps the new file
    result, _, _ = merge(repo, base, {**base, "d/c": b"new\n"}, {"e": TEXT})
    assert result.tree is not None
    assert sorted(files_of(repo, result.tree)) == ["d/c", "e"]
    # ours changes a file in it: that file alone conflicts
    result, _, _ = merge(repo, base, {**base, "d/a": edit(TEXT, l1="x")}, {"e": TEXT})
    assert [(c.path, c.kind) for c in result.conflicts] == [("d/a", "delete/modify")]


def test_add_add_with_different_content_conflicts_and_the_same_merges(repo: Repo) -> None:
    result, _, _ = merge(repo, {"a": TEXT}, {"a": TEXT, "n": b"one\ntwo\n"}, {"a": TEXT, "n": b"one\nthree\n"})
    assert [(c.path, c.kind) for c in result.conflicts] == [("n", "add/add")]
    assert "one\ntwo\n=======\none\nthree\n" in result.conflicts[0].hunks
    result, _, _ = merge(repo, {"a": TEXT}, {"a": TEXT, "n": b"same\n"}, {"a": TEXT, "n": b"same\n"})
    assert result.tree is not None


def test_binary_changed_on_both_sides_conflicts(repo: Repo) -> None:
    blob = b"\x89PNG\0" + bytes(range(256)) * 4
    result, _, _ = merge(repo, {"i.png": blob}, {"i.png": blob + b"\0ours"}, {"i.png": blob + b"\0theirs"})
    assert [(c.path, c.kind) for c in result.conflicts] == [("i.png", "binary")]
    assert "(binary, 1034 bytes)" in result.conflicts[0].hunks
    # one side only: clean, that side's
    result, git_tree, _ = merge(
        repo, {"i.png": blob, "t": TEXT}, {"i.png": blob + b"\0ours", "t": TEXT}, {"i.png": blob}
    )
    assert result.tree == git_tree


def test_a_file_on_one_side_and_a_folder_on_the_other(repo: Repo) -> None:
    result, _, _ = merge(repo, {"a": TEXT}, {"a": TEXT, "x": b"a file\n"}, {"a": TEXT, "x/inner": b"in a folder\n"})
    assert [(c.path, c.kind) for c in result.conflicts] == [("x", "file/directory")]
    assert "(a folder: inner)" in result.conflicts[0].hunks
    # a file the other side changed, replaced by a folder on this side
    result, _, _ = merge(repo, {"x": TEXT}, {"x/inner": b"now a folder\n"}, {"x": edit(TEXT, l1="changed")})
    assert [(c.path, c.kind) for c in result.conflicts] == [("x", "file/directory")]
    # replaced by a folder on one side, untouched on the other: clean
    result, _, _ = merge(repo, {"x": TEXT, "y": TEXT}, {"x/inner": b"f\n", "y": TEXT}, {"x": TEXT, "y": b"changed\n"})
    assert result.tree is not None


def test_the_executable_bit_follows_the_side_that_set_it(repo: Repo) -> None:
    base = {"run.sh": TEXT}
    result, _, _ = merge(repo, base, {"run.sh": (TEXT, EXEC)}, {"run.sh": edit(TEXT, l9="theirs")})
    assert result.tree is not None
    assert files_of(repo, result.tree)["run.sh"] == (edit(TEXT, l9="theirs"), EXEC)
    result, _, _ = merge(repo, base, {"run.sh": (TEXT, EXEC), "o": b""}, {"run.sh": (TEXT, EXEC), "t": b""})
    assert result.tree is not None
    # added on both sides, the same text, one executable: a mode conflict
    result, _, _ = merge(repo, {"a": TEXT}, {"a": TEXT, "n": (TEXT, EXEC)}, {"a": TEXT, "n": TEXT})
    assert [(c.path, c.kind) for c in result.conflicts] == [("n", "mode")]


def test_symlinks_changed_on_both_sides_conflict(repo: Repo) -> None:
    result, _, _ = merge(repo, {"l": (b"a", LINK)}, {"l": (b"b", LINK)}, {"l": (b"c", LINK)})
    assert [(c.path, c.kind) for c in result.conflicts] == [("l", "content")]
    assert "(symlink to b)" in result.conflicts[0].hunks
    result, _, _ = merge(repo, {"l": (b"a", LINK)}, {"l": b"a file now\n"}, {"l": (b"c", LINK)})
    assert [(c.path, c.kind) for c in result.conflicts] == [("l", "mode")]


def test_submodules_changed_on_both_sides_conflict(repo: Repo) -> None:
    """A submodule's commit is not merged (git would look for a fast-forward in the submodule, absent here)."""
    c1, c2, c3 = (ObjectID(b"%d" % i * 40) for i in (1, 2, 3))
    base = {"a": TEXT}
    trees = []
    for sha in (c1, c2, c3):
        tree = repo.object_store[write_tree(repo, base)]
        assert isinstance(tree, Tree)
        tree.add(b"sub", GITLINK, sha)
        repo.object_store.add_object(tree)
        trees.append(tree.id)
    commits = []
    for i, tree_id in enumerate(trees):
        c = Commit()
        c.tree, c.parents = tree_id, commits[:1]
        c.author = c.committer = AUTHOR
        c.author_time = c.commit_time = 1_700_000_000 + i
        c.author_timezone = c.commit_timezone = 0
        c.message = b"sub\n"
        repo.object_store.add_object(c)
        commits.append(c.id)
    b, o, t = commits
    repo.refs[b"refs/heads/ours"], repo.refs[b"refs/heads/theirs"] = o, t
    result = merge_commits(repo, b, o, t)
    assert [(c.path, c.kind) for c in result.conflicts] == [("sub", "content")]
    assert f"(submodule at commit {c2.decode()})" in result.conflicts[0].hunks
    assert git_merge(repo) == (None, {"sub"})


def test_a_sha256_repository_is_refused(tmp_path: Path) -> None:
    r = Repo.init(str(tmp_path / "r256"), mkdir=True, object_format="sha256")
    try:
        blob = Blob.from_string(b"x")
        r.object_store.add_object(blob)
        with pytest.raises(CheckpointError, match="a sha256 repository"):
            merge_commits(r, blob.id, blob.id, blob.id)
    finally:
        r.close()


def test_everything_deleted_is_the_empty_tree(repo: Repo) -> None:
    result, _, _ = merge(repo, {"a": TEXT, "b": TEXT}, {"b": TEXT}, {"a": TEXT})
    assert result.tree == Tree().id


def test_a_rename_is_a_conflict_not_a_wrong_tree(repo: Repo) -> None:
    """git follows the rename; we report the changed file as deleted on the other side (the task is re-run)."""
    b, o, t = history(repo, {"old.py": TEXT}, {"new.py": TEXT}, {"old.py": edit(TEXT, l4="theirs")})
    result = merge_commits(repo, b, o, t)
    assert [(c.path, c.kind) for c in result.conflicts] == [("old.py", "delete/modify")]
    git_tree, _ = git_merge(repo)
    assert git_tree is not None  # git's rename detection merges it


def test_cost_follows_the_change(repo: Repo) -> None:
    """Folders only one side changed are never read; only the two changed leaves' folders are."""
    base = {f"p{i}/m{j}/f{k}.py": b"%d %d %d\n" % (i, j, k) for i in range(10) for j in range(10) for k in range(5)}
    ours = {**base, "p1/m1/f1.py": b"ours\n", "p3/m3/f3.py": b"ours\n"}
    theirs = {**base, "p1/m1/f2.py": b"theirs\n", "p7/m7/f7.py": b"theirs\n"}
    b, o, t = history(repo, base, ours, theirs)
    read: list[bytes] = []
    get_raw = repo.object_store.get_raw

    def counting(sha: bytes) -> tuple[int, bytes]:
        read.append(sha)
        return get_raw(sha)

    repo.object_store.get_raw = counting  # type: ignore[method-assign]
    try:
        result = merge_commits(repo, b, o, t)
    finally:
        del repo.object_store.get_raw
    assert result.tree is not None and result.tree == git_merge(repo)[0]
    # the three commits, their three root trees, the three p1 trees, the three p1/m1 trees: nothing else
    assert len(read) == 12
    assert {o, t, b} <= set(read)


def test_commit_merge_moves_the_ref_with_compare_and_swap(repo: Repo) -> None:
    b, o, t = history(repo, {"a": TEXT}, {"a": edit(TEXT, l1="o")}, {"a": edit(TEXT, l20="t")})
    result = merge_commits(repo, b, o, t)
    assert result.tree is not None
    ref = b"refs/heads/maestro/s1"
    repo.refs[ref] = o
    head = commit_merge(repo, result.tree, [o, t], "merge task t", ref=ref, expected=o, author=AUTHOR, when=1234)
    assert repo.refs[ref] == head
    c = repo.object_store[head]
    assert isinstance(c, Commit)
    assert (c.tree, c.parents, c.author, c.committer, c.commit_time, c.message) == (
        result.tree,
        [o, t],
        AUTHOR,
        AUTHOR,
        1234,
        b"merge task t\n",
    )
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=repo.path, capture_output=True, check=False)
    assert fsck.returncode == 0, fsck.stderr
    # the ref moved on since: refused, the ref left where it is
    with pytest.raises(CheckpointError, match="refs/heads/maestro/s1 moved while merging"):
        commit_merge(repo, result.tree, [o, t], "again", ref=ref, expected=o, author=AUTHOR, when=1235)
    assert repo.refs[ref] == head


def test_an_unknown_commit_is_a_checkpoint_error(repo: Repo) -> None:
    b = make_commit(repo, {"a": TEXT}, [])
    with pytest.raises(CheckpointError, match="no commit"):
        merge_commits(repo, b, b, ObjectID(b"0" * 40))


def test_feedback_caps_each_conflict(repo: Repo) -> None:
    big = b"".join(b"base %d\n" % i for i in range(2000))
    ours = b"".join(b"ours %d\n" % i for i in range(2000))
    theirs = b"".join(b"theirs %d\n" % i for i in range(2000))
    result, _, _ = merge(repo, {"big": big}, {"big": ours}, {"big": theirs})
    (c,) = result.conflicts
    assert len(c.hunks) <= 4_100 and "more characters]" in c.hunks
    assert isinstance(c, Conflict)


# =====================================================================================
# the property: random histories, the same answer as git's
# =====================================================================================

VOCAB = [b"\n", b"}\n", b"pass\n", b"return x\n", b"    x += 1\n"]  # lines that repeat, as in real code


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, bytes | tuple[bytes, int]], ...]:
    """A base of a few files in a few folders, and two sides' random edits of it.

    No file is ever empty, and an added file's lines are new ones: git would call a file deleted and one
    added alike on one side a rename (an empty one too), and merge them where we do not.
    """
    counter = iter(range(10**6))

    def fresh(tag: str) -> bytes:
        return b"%s %d\n" % (tag.encode(), next(counter))

    def text(tag: str) -> bytes:
        n = draw(st.integers(0, 12))
        return b"".join(draw(st.sampled_from(VOCAB)) if draw(st.booleans()) else fresh(tag) for _ in range(n))

    folders = ["", "a/", "a/b/", "c/"]
    names = [f"{d}{n}" for d in folders for n in ("f", "g")]
    base: dict[str, bytes | tuple[bytes, int]] = {
        p: text("base") + fresh("base")
        for p in draw(st.lists(st.sampled_from(names), min_size=1, max_size=6, unique=True))
    }
    shared_line = fresh("both")  # a line both sides may write: the same change made twice

    def side(tag: str) -> dict[str, bytes | tuple[bytes, int]]:
        files = dict(base)
        for _ in range(draw(st.integers(0, 5))):
            action = draw(st.sampled_from(["edit", "edit", "edit", "add", "delete", "chmod", "binary", "folder"]))
            present = sorted(files)
            if action == "edit" and present:
                path = draw(st.sampled_from(present))
                value = files[path]
                data, mode = value if isinstance(value, tuple) else (value, 0o100644)
                parts = data.split(b"\n")
                lines = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
                for _ in range(draw(st.integers(1, 3))):
                    at = draw(st.integers(0, len(lines)))
                    op = draw(st.sampled_from(["replace", "insert", "delete"]))
                    new = shared_line if draw(st.integers(0, 4)) == 0 else fresh(tag)
                    if op == "insert" or not lines or at == len(lines):
                        lines.insert(at, new)
                    elif op == "replace":
                        lines[at] = new
                    else:
                        del lines[at]
                files[path] = (b"".join(lines) or fresh(tag), mode)  # never empty: see the docstring
            elif action == "add":
                path = draw(st.sampled_from([*names, "new/f", "c/new"]))
                if any(p.startswith(path + "/") for p in files):
                    continue
                files = {p: v for p, v in files.items() if not path.startswith(p + "/")}
                files[path] = shared_line if draw(st.integers(0, 3)) == 0 else fresh(tag) + fresh(tag)
            elif action == "delete" and present:
                files.pop(draw(st.sampled_from(present)))
            elif action == "chmod" and present:
                path = draw(st.sampled_from(present))
                value = files[path]
                data = value[0] if isinstance(value, tuple) else value
                files[path] = (data, EXEC)
            elif action == "binary" and present:  # git's test: a NUL in the first 8,000 bytes
                path = draw(st.sampled_from(present))
                files[path] = b"\0binary " + fresh(tag)
            elif action == "folder" and present:  # a file becomes a folder holding one
                path = draw(st.sampled_from(present))
                files.pop(path)
                files[path + "/inner"] = fresh(tag)
        return files

    return base, side("ours"), side("theirs")


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """One repository for all the examples of a property (objects are content-addressed: they do not clash)."""
    r = Repo.init(str(tmp_path_factory.mktemp("merges")))
    yield r
    r.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories())
def test_merges_as_git_merges(shared_repo: Repo, sides: tuple[dict[str, bytes | tuple[bytes, int]], ...]) -> None:
    base, ours, theirs = sides
    result, git_tree, _ = merge(shared_repo, base, ours, theirs)
    if git_tree is not None:
        assert result.tree == git_tree and not result.conflicts
    else:
        assert result.tree is None and result.conflicts
        assert result.feedback().count(">>>>>>> task") >= len(result.conflicts)


@st.composite
def texts(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """A base text of few distinct lines (so that they repeat and align ambiguously) and two edits of it."""
    vocab = draw(st.integers(1, 8))
    line = st.integers(0, vocab).map(lambda i: b"l%d\n" % i)
    base = draw(st.lists(line, max_size=60))

    def side() -> bytes:
        lines = list(base)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(lines)))
            new = draw(st.lists(line, min_size=1, max_size=3))
            op = draw(st.sampled_from(["insert", "replace", "delete"]))
            if op == "insert" or at == len(lines):
                lines[at:at] = new
            elif op == "replace":
                lines[at : at + draw(st.integers(1, 3))] = new
            else:
                del lines[at : at + draw(st.integers(1, 3))]
        end = draw(st.sampled_from([b"", b"", b"tail without a newline"]))
        return b"".join(lines) + end

    return b"".join(base), side(), side()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts())
def test_text_merges_as_git_merges(shared_repo: Repo, sides: tuple[bytes, bytes, bytes]) -> None:
    """Lines that repeat are aligned as git aligns them (difflib, merge3's default, fails this)."""
    base, ours, theirs = sides
    merge(shared_repo, {"f": base, "g": b"g\n"}, {"f": ours, "g": b"g\n"}, {"f": theirs})


def test_a_lone_carriage_return_does_not_end_a_line(repo: Repo) -> None:
    base = b"a\rb\nc\nd\ne\n"
    result, _, _ = merge(repo, {"f": base}, {"f": b"a\rX\nc\nd\ne\n"}, {"f": b"a\rb\nc\nd\nY\n"})
    assert result.tree is not None
    assert files_of(repo, result.tree)["f"][0] == b"a\rX\nc\nd\nY\n"
