"""Benchmark: capturing an attempt with :class:`maestro.Checkpointer`, shape by shape, against the git CLI.

    python benchmarks/checkpoint.py [--json] [--quick] [--sizes 10000,50000] [--shapes modify,rename]
                                    [--changes 100] [--rounds N] [--profile N] [--proposed] [--dir PATH]

For each size (10,000 and 50,000 files; 10,000 with ``--quick``) one repository
is built — nested folders of 50 small Python modules, a ``.gitignore`` (caches,
logs, ``build/``, ``.venv/``), an ignored ``.venv/`` of 500 files and an ignored
``build/`` already there, one commit made with the git CLI, then packed (``git
gc``, as a clone has it) with ``gc.auto=0`` so that no background ``git gc
--auto`` starts mid-measurement — and copied (``cp -a``, then ``git
update-index --refresh`` in the copy): two identical repositories.  In the
first a ``maestro.Checkpointer`` is started once and reused for every round (one
a session, as maestro uses it); in the second the git CLI does the same work.

Every shape is a change both working trees get, the same (a generator seeded
with the round number chooses the files), then a timed capture:
``cp.checkpoint(label)`` against ``git add -A`` then ``git commit -q -m …`` (two
subprocesses, timed together).  The shapes, ``--changes`` (C, default 100)
files each:

``modify``
    C tracked files rewritten in place (a new first line and one more line).
``add_folders``
    C new files in C/10 new folders, two levels deep under existing packages.
``delete``
    C tracked files deleted.
``rename``
    C tracked files moved to another folder under a new name (``os.rename``:
    same inode and content).
``ignored``
    C ignored files written (``__pycache__/*.pyc`` in tracked folders, ``*.log``
    beside tracked files, files under ``build/``), and 10 tracked files modified
    so that there is something to commit.
``after_rollback``
    untimed: a mixed change (C/2 modified, C/4 added, C/4 deleted), its
    capture, a rollback to the capture before (``cp.rollback(n)``; for git
    ``git reset -q --hard HEAD~1`` and ``git clean -fdq``); then timed: the
    capture of a new mixed change made right after the rollback.
``after_reset``
    the same, but both rollbacks are git's (``git reset -q --hard HEAD~1``,
    ``git clean -fdq``): maestro's index was rewritten by another process,
    so its capture reads the index again, as a ``Checkpointer`` made for one
    capture (or whose worktree another one moved) would.

Target: maestro median / git median at most 1.2x for every shape at every
size (issue 14).  For information, the ratio of CPU times (medians; this
process and the git processes it waited for) is reported too: on a busy
machine it moves less than the wall-clock one.  Rounds of maestro and git alternate (their order rotating),
after one warm-up round each; ``gc.collect()`` runs before each timed run and
the median of the rounds is quoted; ratio = maestro median / git median.
After every round the tree maestro committed must be the tree git committed
(the same object id), and after all the rounds both working trees must hold
the same files.  ``--profile N`` runs every maestro capture under cProfile and
prints the N functions with the most cumulative time, shape by shape.
``--proposed`` measures the change to ``git/checkpoints.py`` proposed in issue
14 (monkeypatched here): a checkpoint's line counts from the paths its staging
changed (``Staging.file_changes``) instead of a diff of two trees read back
from the object store.  The
temporary repositories are removed at the end.  The exit code is 0 whether or
not a target is met: this is a report.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# `transitions` package (which maestro imports): it goes to the end, still there for _bench.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import attrs

import maestro
from _bench import GIT, Medians, file_system, fmt_s, interleaved

TARGET = 1.2  # maestro median / git CLI median, at most, for every shape at every size

PER_DIR = 50  # files a folder
DIRS_PER_PACKAGE = 10  # folders a top-level package: src/p<k>/m<j>/f<i>.py
VENV_FILES = 500  # ignored files already there, under .venv/
EXTRA_MODIFIED = 10  # the tracked files the `ignored` shape also modifies

SHAPES = ("modify", "add_folders", "delete", "rename", "ignored", "after_rollback", "after_reset")
SIZES = (10_000, 50_000)
QUICK_SIZES = (10_000,)
ROUNDS = {10_000: 7, 50_000: 5}
QUICK_ROUNDS = 5

GITIGNORE = "__pycache__/\n*.py[cod]\n*.log\n/build/\n/dist/\n.venv/\n*.egg-info/\n.mypy_cache/\n"

SESSION = "bench"


@attrs.frozen
class Row(Medians):
    """One line of the report: a shape's rounds against the git CLI's, at a size."""

    shape: str
    files: int
    changes: int
    rounds_s: tuple[float, ...]
    baseline_rounds_s: tuple[float, ...]
    cpu_rounds_s: tuple[float, ...] = ()  # CPU time of the same rounds (this process and its children)
    baseline_cpu_rounds_s: tuple[float, ...] = ()
    baseline: str = "git_add_commit"
    max_ratio: float = TARGET

    @property
    def meets_target(self) -> bool:
        return self.ratio <= self.max_ratio

    @property
    def cpu_ratio(self) -> float:
        """Median CPU time of maestro's rounds over git's: steadier than wall time on a busy machine."""
        return statistics.median(self.cpu_rounds_s) / statistics.median(self.baseline_cpu_rounds_s)

    def to_json(self) -> dict[str, Any]:
        keys = ("shape", "files", "changes", "median_s", "baseline", "baseline_median_s", "ratio", "meets_target")
        return {**{k: getattr(self, k) for k in keys}, "target": f"ratio <= {self.max_ratio}"} | {
            "cpu_ratio": self.cpu_ratio,
            "rounds_s": self.rounds_s,
            "baseline_rounds_s": self.baseline_rounds_s,
            "cpu_rounds_s": self.cpu_rounds_s,
            "baseline_cpu_rounds_s": self.baseline_cpu_rounds_s,
        }


def cpu_s() -> float:
    """CPU time used so far by this process and the children it waited for (the git CLI's processes)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``git <args>`` in ``repo`` (with an identity), output captured; raise if it fails."""
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True)


def module_text(rel: str, k: int) -> str:
    """A small Python module (about 300 bytes, 11 lines)."""
    return (
        f'"""{rel}: generated for the checkpoint benchmark."""\n\n'
        "from __future__ import annotations\n\n"
        f"VALUE = {k}\n\n\n"
        f"def f{k}(x: int) -> int:\n"
        f'    """Return x plus {k}."""\n'
        "    return x + VALUE\n"
    )


@attrs.define
class Tree:
    """A working tree the benchmark changes, and the tracked files it has."""

    root: Path
    live: list[str]
    made: int = 0  # files and folders made so far: names the next one
    rounds: int = 0  # changes made so far: seeds the next one

    def _rng(self) -> random.Random:
        self.rounds += 1
        return random.Random(self.rounds)

    def _name(self) -> int:
        self.made += 1
        return self.made

    def _write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def _pick(self, rng: random.Random, n: int) -> list[int]:
        return rng.sample(range(len(self.live)), min(n, len(self.live)))

    def modify(self, c: int, rng: random.Random | None = None) -> None:
        rng = rng or self._rng()
        for i in self._pick(rng, c):
            rel = self.live[i]
            path = self.root / rel
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            lines[0] = f'"""{rel}: changed in round {self.rounds}."""\n'
            lines.append(f"ROUND_{self.rounds} = {self.rounds}\n")
            path.write_text("".join(lines), encoding="utf-8")

    def add_folders(self, c: int, rng: random.Random | None = None) -> None:
        rng = rng or self._rng()
        folders = max(1, c // 10)
        for j in range(folders):
            package = self.live[rng.randrange(len(self.live))].split("/")[1]
            folder = f"src/{package}/n{self._name():05d}/sub"
            for i in range(c // folders + (1 if j < c % folders else 0)):
                rel = f"{folder}/a{i:03d}.py"
                self._write(rel, module_text(rel, 200_000 + self.made * 100 + i))
                self.live.append(rel)

    def delete(self, c: int, rng: random.Random | None = None) -> None:
        rng = rng or self._rng()
        gone = {self.live[i] for i in self._pick(rng, c)}
        for rel in gone:
            (self.root / rel).unlink()
        self.live = [rel for rel in self.live if rel not in gone]

    def rename(self, c: int, rng: random.Random | None = None) -> None:
        rng = rng or self._rng()
        picks = self._pick(rng, c)
        for i in picks:
            folder = self.live[rng.randrange(len(self.live))].rpartition("/")[0]
            rel = f"{folder}/r{self._name():05d}.py"
            os.rename(self.root / self.live[i], self.root / rel)
            self.live[i] = rel

    def ignored(self, c: int) -> None:
        rng = self._rng()
        for k in range(c):
            folder = self.live[rng.randrange(len(self.live))].rpartition("/")[0]
            n = self._name()
            if k % 4 in (0, 1):
                rel = f"{folder}/__pycache__/c{n:05d}.cpython-311.pyc"
            elif k % 4 == 2:
                rel = f"{folder}/run{n:05d}.log"
            else:
                rel = f"build/lib/{folder}/b{n:05d}.py"
            self._write(rel, f"ignored {n}\n" * 20)
        self.modify(EXTRA_MODIFIED, rng)

    def mixed(self, c: int) -> None:
        rng = self._rng()
        self.modify(c // 2, rng)
        self.add_folders(max(1, c // 4), rng)
        self.delete(max(1, c // 4), rng)


def build(path: Path, files: int) -> list[str]:
    """A repository of ``files`` small modules in folders of 50, ignored files beside them, committed once, packed."""
    live: list[str] = []
    for k in range(files):
        d, i = divmod(k, PER_DIR)
        folder = path / "src" / f"p{d // DIRS_PER_PACKAGE:03d}" / f"m{d % DIRS_PER_PACKAGE:02d}"
        if i == 0:
            folder.mkdir(parents=True)
        rel = f"src/p{d // DIRS_PER_PACKAGE:03d}/m{d % DIRS_PER_PACKAGE:02d}/f{i:02d}.py"
        (path / rel).write_text(module_text(rel, k), encoding="utf-8")
        live.append(rel)
    (path / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    for k in range(VENV_FILES):
        folder = path / ".venv" / "lib" / f"pkg{k // PER_DIR:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"v{k:03d}.py").write_text(f"V = {k}\n", encoding="utf-8")
    (path / "build").mkdir()
    (path / "build" / "out.txt").write_text("built\n", encoding="utf-8")
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "gc.auto", "0")  # no background `git gc --auto` after a baseline commit
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"initial: {files} files")
    git(path, "gc", "-q")
    return live


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` but ``.git/`` and ``.flow/``, with the SHA-1 of its content."""
    out: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        if folder == str(root):
            dirs[:] = [d for d in dirs if d not in (".git", ".flow")]
        for name in names:
            full = os.path.join(folder, name)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, root)] = hashlib.sha1(fh.read(), usedforsecurity=False).hexdigest()
    return out


class Subject:
    """A side of the benchmark: a working tree, and how it captures, rolls back and names its last tree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.trees: list[str] = []  # the tree of each timed capture, for comparison

    def capture(self, label: str) -> None:
        raise NotImplementedError

    def undo_last(self) -> None:
        raise NotImplementedError

    def reset_last(self) -> None:
        """Undo the last capture with the git CLI: ``git reset --hard HEAD~1``, ``git clean -fd``."""
        git(self.tree.root, "reset", "-q", "--hard", "HEAD~1")
        git(self.tree.root, "clean", "-fdq")

    def head_tree(self) -> str:
        raise NotImplementedError


class Maestro(Subject):
    def __init__(self, tree: Tree, repo: Path) -> None:
        self.cp = maestro.Checkpointer(repo, SESSION, clock=maestro.TickingClock())
        self.cp.start()
        tree.root = Path(getattr(self.cp, "workdir", repo))  # a worktree session works elsewhere
        super().__init__(tree)
        self.repo = repo
        self.numbers: list[int] = [0]
        self.profile: cProfile.Profile | None = None

    def capture(self, label: str) -> None:
        if self.profile is not None:
            record = self.profile.runcall(self.cp.checkpoint, label)
        else:
            record = self.cp.checkpoint(label)
        assert record is not None, "maestro found no change to capture"
        self.numbers.append(record.n)

    def undo_last(self) -> None:
        self.numbers.pop()
        self.cp.rollback(self.numbers[-1])

    def reset_last(self) -> None:
        self.numbers.pop()
        super().reset_last()

    def head_tree(self) -> str:
        return git(self.repo, "rev-parse", f"refs/heads/maestro/{SESSION}^{{tree}}").stdout.decode().strip()


class GitCli(Subject):
    def __init__(self, tree: Tree) -> None:
        super().__init__(tree)
        self.repo = tree.root

    def capture(self, label: str) -> None:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", label)

    def undo_last(self) -> None:
        git(self.repo, "reset", "-q", "--hard", "HEAD~1")
        git(self.repo, "clean", "-fdq")

    def head_tree(self) -> str:
        return git(self.repo, "rev-parse", "HEAD^{tree}").stdout.decode().strip()


def propose() -> None:
    """Patch ``Checkpointer._changes`` as issue 14 proposes: ask the staging first, diff trees only if it cannot say."""
    from maestro.git.checkpoints import Checkpointer  # imported here: only --proposed patches it

    diff_trees = Checkpointer._changes

    def _changes(self: Any, a: Any, b: Any) -> Any:
        known = self._staging.file_changes(a, b) if b is not None else None
        return known if known is not None else diff_trees(self, a, b)

    Checkpointer._changes = _changes  # type: ignore[method-assign]


def change_for(shape: str, c: int) -> Callable[[Tree], None]:
    """What a round of ``shape`` does to a tree before the capture it times."""
    return {
        "modify": lambda t: t.modify(c),
        "add_folders": lambda t: t.add_folders(c),
        "delete": lambda t: t.delete(c),
        "rename": lambda t: t.rename(c),
        "ignored": lambda t: t.ignored(c),
        "after_rollback": lambda t: t.mixed(c),
        "after_reset": lambda t: t.mixed(c),
    }[shape]


def bench_shape(sides: dict[str, Subject], shape: str, files: int, c: int, rounds: int) -> Row:
    change = change_for(shape, c)
    labels = iter(f"{shape} {i}" for i in range(1_000_000))

    def before(name: str) -> None:
        side = sides[name]
        if shape in ("after_rollback", "after_reset"):
            saved = list(side.tree.live)
            change(side.tree)
            side.capture("before the rollback")
            if shape == "after_rollback":
                side.undo_last()
            else:
                side.reset_last()
            side.tree.live = saved
        change(side.tree)

    def after(name: str) -> None:
        side = sides[name]
        side.trees.append(side.head_tree())

    cpu: dict[str, list[float]] = {name: [] for name in sides}

    def capture(name: str) -> Callable[[], object]:
        def run() -> None:
            c0 = cpu_s()
            sides[name].capture(next(labels))
            cpu[name].append(cpu_s() - c0)

        return run

    t = interleaved({name: capture(name) for name in sides}, rounds, before, after)
    mine, theirs = sides["maestro"].trees, sides["git"].trees
    assert mine == theirs, f"{shape}, {files} files: maestro committed other trees than git: {mine} != {theirs}"
    ours, git_cpu = tuple(cpu["maestro"][1:]), tuple(cpu["git"][1:])  # the warm-up round left out
    return Row(shape, files, c, t["maestro"], t["git"], ours, git_cpu)


def bench_size(base: Path, files: int, shapes: list[str], *, c: int, rounds: int, profile: int) -> list[Row]:
    """The rows of one size, one a shape, on one pair of repositories changed alike."""
    live = build(base / "maestro", files)
    shutil.copytree(base / "maestro", base / "git", symlinks=True)
    git(base / "git", "update-index", "-q", "--refresh")
    sides: dict[str, Subject] = {
        "maestro": Maestro(Tree(base / "maestro", list(live)), base / "maestro"),
        "git": GitCli(Tree(base / "git", list(live))),
    }
    ours = sides["maestro"]
    assert isinstance(ours, Maestro)
    rows = []
    for shape in shapes:
        if profile:
            ours.profile = cProfile.Profile()
        rows.append(bench_shape(sides, shape, files, c, rounds))
        if ours.profile is not None:
            out = io.StringIO()
            pstats.Stats(ours.profile, stream=out).sort_stats("cumulative").print_stats(profile)
            print(f"--- profile: {shape}, {files:,} files, {rounds + 1} captures", file=sys.stderr)
            print(out.getvalue(), file=sys.stderr)
            ours.profile = None
    mine, theirs = tree_digest(sides["maestro"].tree.root), tree_digest(sides["git"].tree.root)
    differ = sorted(set(mine.items()) ^ set(theirs.items()))
    assert not differ, f"the working trees differ after the rounds ({len(differ)} entries): {differ[:5]}"
    return rows


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    cols = ("shape", "files", "changes", "maestro", "git add+commit", "ratio", "target", "met", "cpu ratio")
    table = [cols]
    for r in rows:
        median, base = fmt_s(r.median_s), fmt_s(r.baseline_median_s)
        met = "yes" if r.meets_target else "NO"
        ratio, cpu = f"{r.ratio:.2f}x", f"{r.cpu_ratio:.2f}x"
        table.append((r.shape, f"{r.files:,}", str(r.changes), median, base, ratio, f"<= {TARGET}x", met, cpu))
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    for r in rows:
        print(f"{'MET   ' if r.meets_target else 'MISSED'}  {r.shape} [{r.files:,} files]: ratio <= {r.max_ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="maestro benchmark: capturing an attempt, by shape, against git")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--quick", action="store_true", help="10,000 files only, fewer rounds")
    parser.add_argument("--sizes", help="comma-separated numbers of files (default 10000,50000)")
    parser.add_argument("--shapes", help=f"comma-separated shapes (default all: {','.join(SHAPES)})")
    parser.add_argument("--changes", type=int, default=100, help="files each shape changes (default 100)")
    parser.add_argument("--rounds", type=int, help="timed rounds a shape (default 7 at 10k files, 5 at 50k)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print maestro's top N functions")
    parser.add_argument("--proposed", action="store_true", help="with the checkpoints.py change issue 14 proposes")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to make the temporary repositories")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    shapes = args.shapes.split(",") if args.shapes else list(SHAPES)
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}: choose among {', '.join(SHAPES)}")
    if args.changes < 4:
        parser.error("--changes: at least 4")
    if args.proposed:
        propose()
    git_version = subprocess.run(["git", "--version"], check=True, capture_output=True, text=True).stdout.strip()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        fs = file_system(base)
        for files in sizes:
            rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS.get(files, 5))
            where = base / str(files)
            where.mkdir()
            try:
                rows += bench_size(where, files, shapes, c=args.changes, rounds=rounds, profile=args.profile)
            finally:
                shutil.rmtree(where, ignore_errors=True)
    if args.json:
        for r in rows:
            print(json.dumps({**r.to_json(), "proposed": args.proposed, "git": git_version, "file_system": fs}))
    else:
        header = (
            f"maestro capture benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
            f"{git_version}, in {base} on {fs}{', with the proposed checkpoints.py change' if args.proposed else ''}"
        )
        print_table(rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
