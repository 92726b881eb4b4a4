"""Properties of checkpoints, checked by hypothesis against real git repositories and git itself.

* random sequences of file operations (create, modify, delete, rename, chmod,
  symlinks, nested and empty folders, unicode names, a rewrite of the same size
  in the same timestamp tick, ignored files, ``.flow/``) interleaved with
  checkpoints and rollbacks: after a rollback to k the files that are not
  ignored are exactly k's (bytes, executable bit, symlink targets, nothing
  more), ignored files and ``.flow/`` are as they were, the work before the
  rollback is at ``pre-rollback-<j>``, the work before the session at
  ``refs/maestro/<s>/base``; a checkpoint commits exactly the model, and
  ``git status`` is clean after it;
* whatever the ignore rules, a checkpoint commits the tree ``git add -A`` stages;
* the line counts of a checkpoint are the ones ``git diff --numstat`` gives.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from maestro import Checkpointer, CheckpointRecord
from tests.support.checkpoints import (
    BASE,
    BRANCH,
    IGNORE,
    SID,
    Entry,
    add_all,
    by_path,
    commit_tree,
    git,
    git_changes,
    make_repo,
    parents,
    put,
    rev,
    tree_files,
    walk,
)

# -- the world the operations draw from ----------------------------------------------

#: Names of files and folders that are never ignored (no "build", nothing ending in ".log").
#: Few of them, so that paths collide: a file where a folder was, a folder (maybe empty) where a file was.
NAMES = ("a", "é", "ü.txt", "日本", "sub dir")
PATHS = st.one_of(*(st.lists(st.sampled_from(NAMES), min_size=n, max_size=n).map("/".join) for n in (1, 2, 3)))
TARGETS = st.sampled_from(("a", "b/é", "nowhere", "../outside", "日本/ü", "x.txt", "sub dir", "."))
#: Ignored files live where no tracked path can collide with them: build/, *.log at the top, and .flow/.
IGNORED = st.sampled_from(("build/out.bin", "build/日本/x", "debug.log", "é.log", ".flow/scratch.txt"))
_LINES = st.lists(st.text(alphabet="abc xyz", max_size=6), max_size=5)
CONTENTS = st.binary(max_size=24) | _LINES.map(lambda ls: "\n".join(ls).encode()) | st.just(b"")
LABELS = st.text(alphabet="abcdefghij é✓-", min_size=1, max_size=12).map(str.strip).filter(bool)

_I = st.integers(min_value=0, max_value=99)  # picks one of the files there are
OPS = st.one_of(
    st.tuples(st.just("write"), PATHS, CONTENTS, st.booleans()),
    st.tuples(st.just("delete"), _I),
    st.tuples(st.just("rename"), _I, PATHS),
    st.tuples(st.just("chmod"), _I),
    st.tuples(st.just("symlink"), PATHS, TARGETS),
    st.tuples(st.just("mkdir"), PATHS),
    st.tuples(st.just("rewrite"), _I),
    st.tuples(st.just("ignored"), IGNORED, CONTENTS),
    st.tuples(st.just("unignore"), _I),
)

FILE, EXE, LINK = "100644", "100755", "120000"


def _kind(path: str) -> str:
    """Where a path of the working tree belongs: "ignored", "flow" or "tracked"."""
    top = path.split("/", 1)[0]
    if top == ".flow":
        return "flow"
    if top == "build" or ("/" not in path and path.endswith(".log")):
        return "ignored"
    return "tracked"


class CheckpointMachine(RuleBasedStateMachine):
    """A working tree, a model of it, and a Checkpointer checked against both after every checkpoint and rollback."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="maestro-prop-"))
        self.root = self.tmp / "repo"
        self.files: dict[str, Entry] = {}  # the files that are not ignored: mode and bytes
        self.ignored: dict[str, bytes] = {}  # ignored files and .flow/, by path
        self.snapshots: dict[int, dict[str, Entry]] = {}
        self.records: dict[int, CheckpointRecord] = {}
        self.tip: dict[str, Entry] = {}  # the files of the commit the session branch is at
        self.rollbacks = 0
        self.next_n = 1
        self.tip_commit = ""  # the commit the session branch is at
        self.head: str | None = None  # the user's commit
        self.base: str | None = None
        self.cp: Checkpointer | None = None

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the file system and the model, together ------------------------------------
    def _make_room(self, path: str) -> None:
        """Clear the way for ``path``: files where its folders go, whatever is at the path itself."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            full = self.root / prefix
            if full.is_symlink() or full.is_file():
                full.unlink()
                self.files.pop(prefix, None)
        full = self.root / path
        if full.is_symlink() or full.is_file():
            full.unlink()
            self.files.pop(path, None)
        elif full.is_dir():
            shutil.rmtree(full)
            for p in [p for p in self.files if p.startswith(path + "/")]:
                del self.files[p]
        full.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, path: str, content: bytes, exe: bool) -> None:
        self._make_room(path)
        put(self.root, path, content, exe=exe)
        self.files[path] = (EXE if exe else FILE, content)

    def _symlink(self, path: str, target: str) -> None:
        self._make_room(path)
        os.symlink(target, self.root / path)
        self.files[path] = (LINK, os.fsencode(target))

    def _delete(self, path: str) -> None:
        (self.root / path).unlink()
        del self.files[path]

    def _write_ignored(self, path: str, content: bytes) -> None:
        put(self.root, path, content)
        self.ignored[path] = content

    def _seen(self) -> tuple[dict[str, Entry], dict[str, bytes]]:
        """The working tree as it is: the files that are not ignored, and the ignored ones (with .flow/)."""
        tracked: dict[str, Entry] = {}
        other: dict[str, bytes] = {}
        found = walk(self.root)
        flow = self.root / ".flow"
        if flow.is_dir():
            found.update({f".flow/{p}": e for p, e in walk(flow).items()})
        for path, entry in found.items():
            if _kind(path) == "tracked":
                tracked[path] = entry
            else:
                assert entry[0] != LINK, path
                other[path] = entry[1]
        return tracked, other

    def _choices(self, *, links: bool = True, empty: bool = True) -> list[str]:
        """The files an operation may pick: never .gitignore (the rules stay put), maybe no symlinks or empty files."""
        return sorted(
            p
            for p, (mode, content) in self.files.items()
            if p != ".gitignore" and (links or mode != LINK) and (empty or content)
        )

    @property
    def checkpointer(self) -> Checkpointer:
        assert self.cp is not None
        return self.cp

    # -- setting up -------------------------------------------------------------------
    @initialize(
        committed=st.lists(st.tuples(PATHS, CONTENTS, st.booleans()), max_size=4),
        before=st.lists(
            st.tuples(st.sampled_from(("write", "delete", "chmod", "ignored")), PATHS, CONTENTS, IGNORED),
            max_size=4,
        ),
    )
    def setup(self, committed: list[tuple[str, bytes, bool]], before: list[tuple[str, str, bytes, str]]) -> None:
        make_repo(self.root, {".gitignore": IGNORE}, commit=False)
        self.files[".gitignore"] = (FILE, IGNORE.encode())
        for path, content, exe in committed:
            self._write(path, content, exe)
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", "the user's work")
        self.head = rev(self.root, "HEAD")
        at_head = dict(self.files)
        # uncommitted work before the session starts (maybe none)
        for op, path, content, ignored_path in before:
            entry = self.files.get(path)
            if op == "write":
                self._write(path, content, exe=False)
            elif op == "delete" and entry is not None:
                self._delete(path)
            elif op == "chmod" and entry is not None and entry[0] != LINK:
                self._write(path, entry[1], exe=entry[0] == FILE)
            elif op == "ignored":
                self._write_ignored(ignored_path, content)
        self.cp = Checkpointer(self.root, SID)
        rec0 = self.cp.start()
        self.base = rev(self.root, BASE)
        if self.files != at_head:
            assert self.base is not None, "a dirty start saves the work at the base ref"
            assert rec0.commit == self.base
            assert parents(self.root, self.base) == [self.head]
            assert tree_files(self.root, self.base) == self.files
        else:
            assert self.base is None
            assert rec0.commit == self.head
        assert self._seen() == (self.files, self.ignored), "start changed the files"
        self.records[0] = rec0
        self.snapshots[0] = dict(self.files)
        self.tip = dict(self.files)
        self.tip_commit = rec0.commit

    # -- file operations --------------------------------------------------------------
    def _pick(self, i: int, **kw: bool) -> str | None:
        choices = self._choices(**kw)
        return choices[i % len(choices)] if choices else None

    def _apply(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "write":
            self._write(op[1], op[2], op[3])
        elif kind == "symlink":
            self._symlink(op[1], op[2])
        elif kind == "mkdir":  # an empty folder (or two): git does not track them
            self._make_room(op[1])
            (self.root / op[1]).mkdir()
        elif kind == "ignored":
            self._write_ignored(op[1], op[2])
        elif kind == "unignore" and self.ignored:
            path = sorted(self.ignored)[op[1] % len(self.ignored)]
            (self.root / path).unlink()
            del self.ignored[path]
        elif kind == "delete" and (path := self._pick(op[1])):
            self._delete(path)
        elif kind == "rename" and (src := self._pick(op[1])):
            dst = op[2]
            if src == dst or dst.startswith(src + "/") or src.startswith(dst + "/"):
                return
            entry = self.files[src]
            self._make_room(dst)
            os.rename(self.root / src, self.root / dst)
            del self.files[src]
            self.files[dst] = entry
        elif kind == "chmod" and (path := self._pick(op[1], links=False)):
            mode, content = self.files[path]
            (self.root / path).chmod(0o644 if mode == EXE else 0o755)
            self.files[path] = (FILE if mode == EXE else EXE, content)
        elif kind == "rewrite" and (path := self._pick(op[1], links=False, empty=False)):
            # new bytes of the same length, with the mtime the file had: as within one tick of a coarse clock
            mode, content = self.files[path]
            full = self.root / path
            st_ = full.stat()
            new = bytes((b + 1) % 256 for b in content)
            full.write_bytes(new)
            os.utime(full, ns=(st_.st_atime_ns, st_.st_mtime_ns))
            self.files[path] = (mode, new)

    @rule(ops=st.lists(OPS, min_size=1, max_size=4))
    def edit(self, ops: list[tuple[Any, ...]]) -> None:
        """Edits left uncommitted (a rollback must save them at pre-rollback-<k>)."""
        for op in ops:
            self._apply(op)

    # -- checkpoints and rollbacks ----------------------------------------------------
    @rule(ops=st.lists(OPS, min_size=1, max_size=4), label=LABELS)
    def work(self, ops: list[tuple[Any, ...]], label: str) -> None:
        """Some edits, then a checkpoint."""
        self.edit(ops)
        self.checkpoint(label)

    @rule(label=LABELS)
    def checkpoint(self, label: str) -> None:
        rec = self.checkpointer.checkpoint(label)
        if self.files == self.tip:
            assert rec is None, "a checkpoint with nothing changed"
            return
        assert rec is not None, "a change was missed"
        assert rec.n == self.next_n
        assert rec.label == label
        self.next_n += 1
        assert tree_files(self.root, rec.commit) == self.files
        assert git(self.root, "status", "--porcelain", "--untracked-files=all") == ""
        assert parents(self.root, rec.commit) == [self.tip_commit]
        assert {(f.path, f.change) for f in rec.files} == {
            (f.path, f.change) for f in git_changes(self.root, self.tip_commit, rec.commit)
        }
        self.records[rec.n] = rec
        self.snapshots[rec.n] = dict(self.files)
        self.tip = dict(self.files)
        self.tip_commit = rec.commit

    @rule(i=st.integers(min_value=0, max_value=99))
    def rollback(self, i: int) -> None:
        numbers = sorted(self.snapshots)
        k = numbers[-1 - i % len(numbers)]  # shrinks towards the latest checkpoint
        before = dict(self.files)
        rec = self.checkpointer.rollback(k)
        self.rollbacks += 1
        assert rec.n == k
        assert rec.commit == self.records[k].commit
        tracked, other = self._seen()
        assert tracked == self.snapshots[k], f"the files after rollback({k}) are not checkpoint {k}'s"
        assert other == self.ignored, "a rollback touched ignored files or .flow/"
        saved = rev(self.root, f"refs/maestro/{SID}/pre-rollback-{self.rollbacks}")
        assert saved is not None
        assert tree_files(self.root, saved) == before, "the work before the rollback is not recoverable"
        assert rev(self.root, BRANCH) == rec.commit
        assert rev(self.root, "refs/heads/master") == self.head
        assert rev(self.root, BASE) == self.base
        if self.base is not None:
            assert commit_tree(self.root, self.base) == commit_tree(self.root, self.records[0].commit)
        assert git(self.root, "status", "--porcelain", "--untracked-files=all") == ""
        self.files = dict(self.snapshots[k])
        self.tip = dict(self.snapshots[k])
        self.tip_commit = rec.commit


#: No "explain" phase: it reruns a failing case many times over, with a git repository each time.
PHASES = tuple(p for p in Phase if p is not Phase.explain)

CheckpointMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCheckpoints = CheckpointMachine.TestCase


# =====================================================================================
# ignore rules: the tree is what `git add -A` stages
# =====================================================================================

#: Ignore rules, in the groups they are written in: a rule, the exceptions to it.
_RULES = (
    ("*.log", "!keep.log"),
    ("build/",),
    ("/top.txt",),
    ("logs/*", "!logs/keep.txt"),
    ("**/tmp",),
    ("a/**/z.txt",),
    ("*.[oa]",),
    ("doc/*.md",),
    ("dir", "!dir/keep"),
    ("sub/",),
    ("x?z",),
    ("\\#hash", "trail\\ "),
    ("*", "!*/", "!*.py"),
    ("# a comment", ""),
)
_FILES = (
    "app.log", "keep.log", "sub/keep.log", "build/o", "a/build/o", "top.txt", "a/top.txt", "logs/a.txt",
    "logs/keep.txt", "tmp/f", "a/tmp/f", "a/z.txt", "a/b/c/z.txt", "m.o", "m.a", "m.c", "doc/x.md", "doc/s/y.md",
    "dir/f", "dir/keep", "a/dir", "sub/f", "xyz", "x/z", "#hash", "trail ", "m.py", "p/q.py", "p/q.txt",
)  # fmt: skip
_RULE_LISTS = st.lists(st.sampled_from(_RULES), max_size=5).map(lambda groups: [p for g in groups for p in g])


@settings(max_examples=30, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=_RULE_LISTS,
    nested=_RULE_LISTS,
    exclude=_RULE_LISTS,
    files=st.lists(st.sampled_from(_FILES), min_size=1, max_size=15, unique=True),
)
def test_a_checkpoint_stages_what_git_add_all_stages(
    top: list[str], nested: list[str], exclude: list[str], files: list[str]
) -> None:
    with tempfile.TemporaryDirectory(prefix="maestro-ignore-") as d:
        repo = make_repo(Path(d) / "repo", {"README": "r\n"})
        cp = Checkpointer(repo, SID)
        cp.start()
        put(repo, ".gitignore", "".join(f"{p}\n" for p in top))
        put(repo, "a/.gitignore", "".join(f"{p}\n" for p in nested))
        with (repo / ".git" / "info" / "exclude").open("a") as f:
            f.write("".join(f"{p}\n" for p in exclude))
        for i, name in enumerate(files):
            if any(other.startswith(name + "/") for other in files[:i]) or any(
                name.startswith(other + "/") for other in files[:i]
            ):
                continue  # a file where a folder already is, or the other way round
            put(repo, name, f"{name}\n")
        expected_tree, expected_files = add_all(repo)
        rec = cp.checkpoint("ignore rules")
        got = tree_files(repo, rec.commit) if rec is not None else tree_files(repo, "HEAD")
        assert got == expected_files
        assert rec is None or commit_tree(repo, rec.commit) == expected_tree


# =====================================================================================
# line counts: as git counts them
# =====================================================================================

_TEXT = st.lists(st.sampled_from(("a", "b", "c", "")), max_size=8).map(
    lambda ls: "".join(f"{x}\n" for x in ls).encode()
) | st.lists(st.sampled_from(("a", "b", "c")), min_size=1, max_size=4).map(lambda ls: "\n".join(ls).encode())


@settings(max_examples=30, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(st.none() | _TEXT, st.none() | _TEXT), min_size=1, max_size=4))
def test_line_counts_are_the_ones_git_gives(pairs: list[tuple[bytes | None, bytes | None]]) -> None:
    with tempfile.TemporaryDirectory(prefix="maestro-lines-") as d:
        before = {f"f{i}.txt": old for i, (old, _new) in enumerate(pairs) if old is not None}
        repo = make_repo(Path(d) / "repo", before)
        cp = Checkpointer(repo, SID)
        rec0 = cp.start()
        for i, (_old, new) in enumerate(pairs):
            path = repo / f"f{i}.txt"
            if new is None:
                path.unlink(missing_ok=True)
            else:
                put(repo, f"f{i}.txt", new)
        rec = cp.checkpoint("lines")
        expected = git_changes(repo, rec0.commit, "HEAD" if rec is None else rec.commit)
        if rec is None:
            assert expected == ()
            return
        assert by_path(rec.files) == expected
        assert cp.diff(0, rec.n) == expected
