"""The shared building blocks: core.yamlio (limits, one-line errors), core.text (the message helpers) and
git.tree (the one tree walker)."""

from __future__ import annotations

import os
import stat
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.core import yamlio
from maestro.core.errors import MaestroError, YamlError
from maestro.core.text import first_line, last_line, last_lines, one_line, shown, tail
from maestro.git.tree import Folder, TreeWalk
from tests.support.git import git_init

# -- yamlio ---------------------------------------------------------------------------------------------------------


def refused(text: str, **kw: Any) -> YamlError:
    with pytest.raises(YamlError) as info:
        yamlio.load(text, path="doc.yaml", **kw)
    message = str(info.value)
    assert "\n" not in message and message == f"doc.yaml{'' if info.value.line is None else f':{info.value.line}'}: " \
        f"{info.value.problem}"  # fmt: skip
    return info.value


def laughs(levels: int, width: int = 10) -> str:
    """A "billion laughs": each level a list of ``width`` aliases of the level below (``width ** levels`` leaves)."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_yaml_error_is_a_maestro_error_with_its_parts() -> None:
    exc = YamlError("mapping values are not allowed here", path=Path("a/b.yaml"), line=3)
    assert isinstance(exc, MaestroError)
    assert (exc.path, exc.line, exc.kind) == ("a/b.yaml", 3, "syntax")
    assert str(exc) == "a/b.yaml:3: mapping values are not allowed here"
    assert str(YamlError("too large", kind="size")) == "<input>: too large"


def test_safe_and_round_trip_loads() -> None:
    text = "b: 1  # one\na: [x, 'y']\n"
    assert yamlio.load(text) == {"b": 1, "a": ["x", "y"]}
    assert type(yamlio.load(text)) is dict
    doc = yamlio.load(text, rt=True)
    assert doc.lc.key("a") == (1, 0)  # round trip: lines are known
    assert yamlio.dump(doc, rt=True) == "b: 1  # one\na: [x, y]\n"  # the comment survives
    quoted = yamlio.load(text, rt=True, preserve_quotes=True)
    assert yamlio.dump(quoted, rt=True) == text
    assert yamlio.load("") is None and yamlio.load("# only a comment\n", rt=True) is None


def test_dump_keeps_order_in_block_style_and_indents_as_asked() -> None:
    assert yamlio.dump({"z": 1, "a": [1, 2]}) == "z: 1\na:\n- 1\n- 2\n"
    assert yamlio.dump(yamlio.load("a:\n- 1\n", rt=True), rt=True, indent=(2, 4, 2)) == "a:\n  - 1\n"


@pytest.mark.parametrize("rt", [False, True])
def test_duplicate_keys_are_refused_with_their_line(rt: bool) -> None:
    exc = refused("a: 1\nb:\n  c: 2\n  c: 3\n", rt=rt)
    assert exc.kind == "syntax" and exc.line == 4
    assert exc.problem == 'found duplicate key "c" with value "3" (original value: "2")'
    assert yamlio.load("a: 1\na: 2\n", rt=rt, allow_duplicates=True)["a"] in (1, 2)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("a: 1\nb: [2\n", 3, "expected ',' or ']', but got '<stream end>'"),
        ("a: 1\n  b: : :\n", 2, "mapping values are not allowed here"),
        ("a: b\n---\nc: d\n", 2, "expected a single document in the stream, but found another document"),
        ("a: 1\nb: *nowhere\n", 2, "found undefined alias 'nowhere'"),
        ("a: 1\nb: x\x00y\n", 2, "unacceptable character #x0000: special characters are not allowed"),
    ],
)
def test_syntax_errors_name_the_line(text: str, line: int, problem: str) -> None:
    for rt in (False, True):
        exc = refused(text, rt=rt)
        assert (exc.kind, exc.line, exc.problem) == ("syntax", line, problem)
    assert refused(text, first_line=5).line == line + 4  # front matter: file lines


def test_values_a_tag_cannot_make_and_deep_nesting_are_one_line_errors() -> None:
    assert refused("when: 2026-13-01\n").problem == "a value cannot be read: month must be in 1..12"
    assert refused("x: !!float fast\n", rt=True).kind == "value"
    exc = refused("[" * 5000 + "]" * 5000)
    assert (exc.kind, exc.problem, exc.line) == ("depth", "nested too deeply to read", None)


def test_the_size_limit_counts_utf8_bytes() -> None:
    assert yamlio.load("a: " + "x" * 90, max_bytes=100) == {"a": "x" * 90}
    exc = refused("a: " + "é" * 60, max_bytes=100)  # 63 characters, 123 bytes
    assert exc.kind == "size" and exc.line is None
    assert exc.problem == "too large to read: 123 bytes, more than 100"
    big = "- 1\n" * (yamlio.MAX_BYTES // 4 + 1)
    assert refused(big).kind == "size"


@pytest.mark.parametrize("rt", [False, True])
def test_a_billion_laughs_is_refused_fast_and_small(rt: bool) -> None:
    text = laughs(9)  # 10 ** 9 leaves
    tracemalloc.start()
    started = time.perf_counter()
    exc = refused(text, rt=rt)
    took = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert exc.kind == "aliases" and exc.problem == "aliases expand the document to more than 1,000,000 nodes"
    assert exc.line == 6  # l5, the first level past a million nodes: 1 + 10 * 111,111
    assert took < 1.0 and peak < 5_000_000


def test_the_node_limit_is_exact_and_a_parameter() -> None:
    text = laughs(2, width=3)  # a mapping of 3 keys; l0: 4 nodes, l1: 1 + 3 * 4, l2: 1 + 3 * 13
    total = 1 + 3 + 4 + 13 + 40
    assert yamlio.load(text, max_nodes=total) is not None
    exc = refused(text, max_nodes=total - 1)
    assert exc.kind == "aliases" and exc.line == 1  # the top mapping is where it crosses the line
    assert yamlio.load(laughs(4), max_nodes=200_000)["l4"][0][0][0][0] == ["lol"] * 10


def test_merge_keys_count_what_they_merge() -> None:
    lines = ["m0: &m0 {k0: 0}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}" for i in range(1, 40)]
    exc = refused("\n".join(lines) + "\n")
    assert exc.kind == "aliases"
    assert yamlio.load("base: &b {x: 1}\nmore:\n  <<: *b\n  y: 2\n") == {"base": {"x": 1}, "more": {"x": 1, "y": 2}}


def test_a_recursive_alias_is_refused_unless_asked_for() -> None:
    exc = refused("a: 1\nb: &loop [1, *loop]\n")
    assert (exc.kind, exc.line) == ("aliases", 2)
    assert "recursive" in exc.problem
    loop = yamlio.load("b: &loop [1, *loop]\n", recursive=True)["b"]
    assert loop[1] is loop


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20)  # ruamel mangles NEL, LS
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _text)
_data = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@given(_data)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_dump_then_load_gives_the_data_back(data: Any) -> None:
    assert yamlio.load(yamlio.dump(data)) == data


@given(st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"# \n\t.1é")), max_size=60), st.booleans())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_loads_or_is_a_one_line_yaml_error(text: str, rt: bool) -> None:
    try:
        yamlio.load(text, path="t.yaml", rt=rt)
    except YamlError as exc:
        error = exc
    else:
        return
    assert "\n" not in str(error) and str(error).startswith("t.yaml")
    assert error.kind in ("syntax", "value", "depth", "size", "aliases")
    assert error.line is None or 1 <= error.line <= text.count("\n") + 2


def test_yaml_is_constructed_in_yamlio_only() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "maestro"
    makers = [str(p.relative_to(src)) for p in src.rglob("*.py") if "YAML(" in p.read_text(encoding="utf-8")]
    assert makers == ["core/yamlio.py"]


# -- text -----------------------------------------------------------------------------------------------------------


def test_first_and_last_lines() -> None:
    text = "\n  \n  first  \n$ echo hi\nsecond\n\n last \n\n"
    assert first_line(text) == "first" and last_line(text) == "last"
    assert first_line("$ make\n  $ x\nerror: boom\n", skip="$ ") == "$ x"  # skip looks at the line as written
    assert first_line("$ make\nerror: boom\n", skip=("$ ", "error"), limit=3) == ""
    assert first_line("abcdef", limit=3) == "abc"
    assert first_line("") == last_line(" \n ") == ""


def test_one_line_cuts_its_end_and_tail_its_start() -> None:
    assert one_line(" a\n\tb  c ") == "a b c"
    assert one_line("abcdef", 6) == "abcdef" and one_line("abcdefg", 6) == "abcde…"
    assert tail(" a\n b ", 10) == "a b"
    assert tail("abcdefg", 6) == "…bcdefg"  # the mark, then the last 6
    assert tail("x" * 600) == "x" * 600 and tail("y" + "x" * 600) == "…" + "x" * 600


def test_last_lines_keep_lines_and_a_length() -> None:
    text = "".join(f"line {i}\n" for i in range(100)) + "\n\n"
    assert last_lines(text, 2, 100) == "line 98\nline 99"
    assert last_lines(text, 40, 4000) == "\n".join(f"line {i}" for i in range(60, 100))
    assert last_lines("abcdef", 1, 6) == "abcdef" and last_lines("abcdefg", 1, 6) == "…cdefg"


@given(st.text(max_size=300), st.integers(min_value=1, max_value=80))
def test_the_one_line_helpers_stay_within_their_limits(text: str, limit: int) -> None:
    for out in (one_line(text, limit), tail(text, limit)):
        assert "\n" not in out and "  " not in out and out == out.strip()
    assert len(one_line(text, limit)) <= limit and len(tail(text, limit)) <= limit + 1
    assert len(last_lines(text, 3, limit)) <= max(limit, 0)
    assert one_line(text, limit) == one_line(text) or one_line(text, limit).endswith("…")


@pytest.mark.parametrize(
    ("value", "plain", "yaml", "items"),
    [
        ("x", "'x'", "'x'", "'x'"),
        ({"a": 1}, "a mapping", "a mapping", "a mapping"),
        ([1, "b"], "a list", "a list", "the list [1, 'b']"),
        ((1, 2), "(1, 2)", "a list", "(1, 2)"),
        (None, "None", "null", "None"),
        (True, "True", "true", "True"),
        (2.5, "2.5", "2.5", "2.5"),
        (Path("p"), repr(Path("p")), "p", repr(Path("p"))),
    ],
)
def test_shown(value: Any, plain: str, yaml: str, items: str) -> None:
    assert shown(value) == plain
    assert shown(value, yaml_words=True) == yaml
    assert shown(value, list_items=True) == items


# -- the tree walker ------------------------------------------------------------------------------------------------


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


TREE = {
    "a.txt": "a",
    "src/m.py": "m",
    "src/pkg/n.py": "n",
    "src/pkg/deep/er/x.py": "x",
    "build/out.o": "o",
    ".git/HEAD": "ref",
    "src/.git": "gitdir: elsewhere",
    ".flow/maestro/events.jsonl": "{}",
    "docs/.flow": "kept: only the top .flow is skipped",
}


def rels(walk: TreeWalk[str]) -> set[str]:
    return {entry.rel for entry in walk}


def test_the_walk_lists_files_and_folders_skipping_git_and_the_top_flow(tmp_path: Path) -> None:
    root = make(tmp_path, TREE)
    walk = TreeWalk(str(root), skip_top=(".flow",))
    assert rels(walk) == {
        "a.txt", "src", "src/m.py", "src/pkg", "src/pkg/n.py", "src/pkg/deep", "src/pkg/deep/er",
        "src/pkg/deep/er/x.py", "build", "build/out.o", "docs", "docs/.flow",
    }  # fmt: skip
    assert not walk.truncated
    everything = rels(TreeWalk(str(root), skip=()))
    assert {".git/HEAD", "src/.git", ".flow/maestro/events.jsonl"} <= everything


def test_prune_leaves_a_folder_out_and_is_asked_with_its_relative_path(tmp_path: Path) -> None:
    root = make(tmp_path, TREE)
    asked: list[str] = []

    def prune(rel: str, entry: os.DirEntry[str]) -> bool:
        asked.append(rel)
        assert entry.is_dir(follow_symlinks=False)
        return entry.name in ("build", "deep")

    found = rels(TreeWalk(str(root), prune=prune, skip_top=(".flow",)))
    assert "build" not in found and "build/out.o" not in found and "src/pkg/deep" not in found
    assert "src/pkg/n.py" in found
    assert sorted(asked) == ["build", "docs", "src", "src/pkg", "src/pkg/deep"]


def test_folders_list_every_entry_and_say_which_subfolders_are_entered(tmp_path: Path) -> None:
    root = make(tmp_path, TREE)
    walk = TreeWalk(str(root), prune=lambda rel, _e: rel == "build", skip_top=(".flow",), sort=True)
    folders = {f.rel: f for f in walk.folders()}
    assert set(folders) == {"", "src", "src/pkg", "src/pkg/deep", "src/pkg/deep/er", "docs"}
    top = folders[""]
    assert isinstance(top, Folder) and top.depth == 0 and top.path == str(root)
    assert [e.name for e in top.entries] == ["a.txt", "build", "docs", "src"]  # .git and .flow skipped
    assert [e.name for e in top.entered] == ["docs", "src"]
    assert folders["src/pkg/deep/er"].depth == 4


def test_max_depth_stops_going_down_and_says_so(tmp_path: Path) -> None:
    root = make(tmp_path, TREE)
    walk = TreeWalk(str(root), max_depth=2, skip_top=(".flow",))
    found = rels(walk)
    assert "src/pkg/n.py" in found and "src/pkg/deep" not in found and walk.truncated
    assert not (w := TreeWalk(str(root), max_depth=4)).truncated and "src/pkg/deep/er/x.py" in rels(w)


def test_max_files_counts_regular_files_breadth_first(tmp_path: Path) -> None:
    root = make(tmp_path, {"a/x.py": "", "a/y.py": "", "b.py": "", "c.py": "", "d/z.py": ""})
    (root / "link").symlink_to("b.py")
    walk = TreeWalk(str(root), max_files=3, breadth_first=True, sort=True)
    assert [e.rel for e in walk] == ["a", "b.py", "c.py", "d", "link", "a/x.py"]  # the link is not a regular file
    assert walk.truncated
    exact = TreeWalk(str(root), max_files=5, breadth_first=True, sort=True)
    assert len([e for e in exact if e.entry.is_file(follow_symlinks=False)]) == 5 and not exact.truncated


def test_symlinks_are_entries_never_followed(tmp_path: Path) -> None:
    root = make(tmp_path, {"real/f.txt": "f"})
    (root / "to-real").symlink_to("real", target_is_directory=True)
    (root / "loop").symlink_to("loop")
    (root / "dangling").symlink_to("nowhere")
    entries = {e.rel: e for e in TreeWalk(str(root), stat=True)}
    assert set(entries) == {"real", "real/f.txt", "to-real", "loop", "dangling"}
    for name in ("to-real", "loop", "dangling"):
        lstat = entries[name].stat
        assert lstat is not None and stat.S_ISLNK(lstat.st_mode)
    assert entries["real"].stat is None  # a folder entered
    f = entries["real/f.txt"].stat
    assert f is not None and f.st_size == 1


def test_bytes_paths_and_a_prefix(tmp_path: Path) -> None:
    root = make(tmp_path, {"sub/a.txt": "a", "sub/in/b.txt": "b"})
    name = os.fsencode("caf\udce9.txt")  # not UTF-8: only bytes paths name it exactly
    if sys.platform == "linux":
        (root / "sub" / os.fsdecode(name)).write_text("c")
    walk = TreeWalk(os.fsencode(root / "sub"), prefix=b"sub")
    expected = {b"sub/a.txt", b"sub/in", b"sub/in/b.txt"} | ({b"sub/" + name} if sys.platform == "linux" else set())
    assert {e.rel for e in walk} == expected


def test_a_vanished_or_unreadable_folder(tmp_path: Path) -> None:
    assert list(TreeWalk(str(tmp_path / "missing"))) == []
    errors: list[tuple[str, str]] = []
    walk = TreeWalk(str(tmp_path / "missing"), onerror=lambda path, exc: errors.append((path, type(exc).__name__)))
    assert list(walk) == [] and errors == [(str(tmp_path / "missing"), "FileNotFoundError")]
    root = make(tmp_path / "t", {"ok/a": "", "shut/b": ""})
    (root / "shut").chmod(0)
    try:
        if os.access(root / "shut", os.R_OK):
            pytest.skip("running as root: permissions do not stop a read")
        with pytest.raises(PermissionError):
            list(TreeWalk(str(root)))
        seen: list[str] = []
        found = rels(TreeWalk(str(root), onerror=lambda path, _exc: seen.append(path)))
        assert found == {"ok", "ok/a", "shut"} and seen == [str(root / "shut")]
    finally:
        (root / "shut").chmod(0o755)


_names = st.sampled_from(["a", "b", "c", "d.txt", "e.py"])
_paths = st.lists(_names, min_size=1, max_size=4).map("/".join)


@given(st.sets(_paths, max_size=12))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_the_walk_finds_what_os_walk_finds(tmp_path_factory: pytest.TempPathFactory, paths: set[str]) -> None:
    root = tmp_path_factory.mktemp("tree")
    for rel in sorted(paths, key=len):
        path = root / rel
        if any(p.is_file() for p in [*path.parents, path] if root in p.parents or p == root):
            continue  # a file where a folder would be: keep the first
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    expected: set[str] = set()
    for top, dirs, files in os.walk(root):
        here = Path(top).relative_to(root).as_posix()
        expected.update(n if here == "." else f"{here}/{n}" for n in dirs + files)
    for breadth_first in (False, True):
        assert rels(TreeWalk(str(root), breadth_first=breadth_first)) == expected


def test_ignored_files_stay_out_of_a_snapshot(tmp_path: Path) -> None:
    from maestro.agents.changes import snapshot

    root = make(tmp_path, {".gitignore": "build/\n*.log\n", "keep.py": "k", "x.log": "l", "build/o.o": "o",
                           "logs/a.log": "a", "logs/keep.txt": "t"})  # fmt: skip
    git_init(root)
    assert set(snapshot(root).entries) == {".gitignore", "keep.py", "logs/keep.txt"}


def test_a_snapshot_sees_the_global_ignore_rules_change_and_a_tracked_file_is_never_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared ignore rules are kept between snapshots only while the files they come from are unchanged."""
    import subprocess

    from maestro.agents.changes import snapshot

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    root = make(tmp_path / "repo", {"a.tmp": "a", "b.bak": "b", "kept.bak": "k", "src/c.py": "c"})
    git_init(root)
    subprocess.run(["git", "-C", str(root), "add", "-f", "kept.bak"], check=True)  # tracked: never ignored
    excludes = home / "my-ignores"
    excludes.write_text("*.tmp\n")
    subprocess.run(
        ["git", "config", "--global", "core.excludesFile", str(excludes)], check=True, env={"HOME": str(home)}
    )
    assert set(snapshot(root).entries) == {"b.bak", "kept.bak", "src/c.py"}
    excludes.write_text("*.bak\n")  # the file the configuration names changed: seen at once
    assert set(snapshot(root).entries) == {"a.tmp", "kept.bak", "src/c.py"}
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("src/\n")
    assert set(snapshot(root).entries) == {"a.tmp", "kept.bak"}
    subprocess.run(["git", "config", "--global", "--unset", "core.excludesFile"], check=True, env={"HOME": str(home)})
    assert set(snapshot(root).entries) == {"a.tmp", "b.bak", "kept.bak"}


def test_the_changes_between_two_commits_are_what_a_snapshot_of_the_same_edit_records(tmp_path: Path) -> None:
    """An attempt's change file comes from its commit: it must hold what the recording agent's snapshots held for
    the same edit (writes, an executable bit, a symlink, deletions, a new folder), in the same order."""
    import shutil
    import subprocess

    from dulwich.repo import Repo

    from maestro.agents.changes import capture_changes, changes_between, snapshot

    root = make(tmp_path / "repo", {"a.txt": "a", "gone.txt": "g", "src/m.py": "m", "src/old/x.py": "x"})
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    before = snapshot(root, by_stat=True)
    (root / "a.txt").write_text("changed")
    (root / "gone.txt").unlink()
    (root / "src" / "m.py").chmod(0o755)
    shutil.rmtree(root / "src" / "old")
    make(root, {"new/deep/n.py": "n"})
    (root / "link").symlink_to("a.txt")
    recorded = capture_changes(root, before)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "edit"], check=True)
    repo = Repo(str(root))
    head = repo[repo.head()]
    parent = repo[head.parents[0]]
    derived = changes_between(repo.object_store, parent.tree, head.tree)
    repo.close()
    assert derived == recorded
    assert [c.op for c in derived] == ["delete", "delete", "write", "symlink", "write", "write"]
