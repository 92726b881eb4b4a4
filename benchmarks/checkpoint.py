"""Benchmark: git checkpoints and rollbacks by :class:`maestro.Checkpointer`, against the git CLI.

    python benchmarks/checkpoint.py [--json] [--quick] [--dir PATH]

For each size (1,000, 10,000 and 50,000 files; 1,000 and 10,000 with ``--quick``)
two identical repositories are built: nested folders of 50 small text files
each, one initial commit made with the git CLI, then packed (``git gc``, as a
clone or a maintained repository has it) with ``gc.auto=0`` in both, so that no
background ``git gc --auto`` starts mid-measurement.  In the first, one
``maestro.Checkpointer`` is started and reused for every round (one per session,
as maestro uses it); in the second, the git CLI does the same work, one
subprocess a command, on branch ``maestro/bench`` (what ``start()`` checks out).
Every round gives both repositories the same change: 10 files modified (new
content each round), 5 added, 2 deleted, chosen by a generator seeded with the
round number.  Timed:

1. ``checkpoint`` — ``cp.checkpoint(label)`` after the change, against
   ``git add -A``, ``git commit -q -m …``, ``git tag -a -m … maestro/bench/<n>``.
   Target: at most 1.2x.
2. ``no_change`` — ``cp.checkpoint(label)`` returning ``None``, against
   ``git add -A`` then ``git diff --cached --quiet``: what git needs to find there
   is nothing to commit, the first half of the checkpoint above.  Target: at most
   1.2x.  ``git status --porcelain`` (which also lists untracked files) is
   reported against the same subject for information.
3. ``rollback`` — after the change and a checkpoint (untimed), ``cp.rollback(n)``
   to the previous checkpoint, against ``git reset -q --hard <commit>`` then
   ``git clean -fdq``.  Target: at most 1.5x.

Rounds of subject and baselines are interleaved (their order rotates) after
one warm-up round each, so that machine noise and a cold page cache hit all of
them; ``gc.collect()`` runs before each timed run and the median of the rounds
is quoted; ratio = maestro median / git median.  After the rounds, both
working trees are compared file by file (they must be identical).  The
temporary repositories are removed at the end.  The exit code is 0 whether or
not a target is met: this is a report.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# `transitions` package (which maestro imports): it goes to the end, still there for _bench.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import attrs

import maestro
from _bench import Medians, file_system, fmt_s, interleaved

CHECKPOINT_TARGET = 1.2  # maestro median / git CLI median, at most: checkpoint, and no change
ROLLBACK_TARGET = 1.5  # the same, rollback

PER_DIR = 50  # files a folder
DIRS_PER_PACKAGE = 10  # folders a top-level package: src/p<k>/m<j>/f<i>.py
MODIFIED, ADDED, DELETED = 10, 5, 2  # the change every round makes

SIZES = (1_000, 10_000, 50_000)
QUICK_SIZES = (1_000, 10_000)
ROUNDS = {1_000: 21, 10_000: 15, 50_000: 9}
QUICK_ROUNDS = {1_000: 9, 10_000: 7}

SESSION = "bench"
GIT = ("git", "-c", "user.name=b", "-c", "user.email=b@b")


@attrs.frozen
class Row(Medians):
    """One line of the report: a subject's rounds against a baseline's rounds, at a size, and the target if any."""

    name: str
    files: int
    baseline: str
    rounds_s: tuple[float, ...]
    baseline_rounds_s: tuple[float, ...]
    max_ratio: float | None = None

    @property
    def target(self) -> str | None:
        return f"ratio <= {self.max_ratio}" if self.max_ratio is not None else None

    @property
    def meets_target(self) -> bool | None:
        return self.ratio <= self.max_ratio if self.max_ratio is not None else None

    def to_json(self) -> dict[str, Any]:
        keys = ("name", "files", "median_s", "baseline", "baseline_median_s", "ratio", "target", "meets_target")
        return {k: getattr(self, k) for k in (*keys, "rounds_s", "baseline_rounds_s")}


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
    """A working tree the benchmark changes, and the tracked files it has (in creation order)."""

    root: Path
    live: list[str]
    added: int = 0  # files added so far: names the next one
    rounds: int = 0  # changes made so far: seeds the next one

    def change(self) -> list[str]:
        """Modify 10 files, add 5, delete 2, the same for every tree at the same round; ``live`` before it."""
        before = list(self.live)
        rng = random.Random(self.rounds)
        picks = rng.sample(range(len(self.live)), MODIFIED + DELETED)
        for i in picks[:MODIFIED]:
            path = self.root / self.live[i]
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            lines[0] = f'"""{self.live[i]}: changed in round {self.rounds}."""\n'
            lines.append(f"ROUND_{self.rounds} = {self.rounds}\n")
            path.write_text("".join(lines), encoding="utf-8")
        gone = {self.live[i] for i in picks[MODIFIED:]}
        for rel in gone:
            (self.root / rel).unlink()
        self.live = [rel for rel in self.live if rel not in gone]
        for _ in range(ADDED):
            folder = self.live[rng.randrange(len(self.live))].rpartition("/")[0]
            rel = f"{folder}/new{self.added:05d}.py"
            (self.root / rel).write_text(module_text(rel, 100_000 + self.added), encoding="utf-8")
            self.live.append(rel)
            self.added += 1
        self.rounds += 1
        return before


def build(path: Path, files: int) -> Tree:
    """A repository of ``files`` small modules in folders of 50, committed once with the git CLI, then packed."""
    live: list[str] = []
    for k in range(files):
        d, i = divmod(k, PER_DIR)
        folder = path / "src" / f"p{d // DIRS_PER_PACKAGE:03d}" / f"m{d % DIRS_PER_PACKAGE:02d}"
        if i == 0:
            folder.mkdir(parents=True)
        rel = f"src/p{d // DIRS_PER_PACKAGE:03d}/m{d % DIRS_PER_PACKAGE:02d}/f{i:02d}.py"
        (path / rel).write_text(module_text(rel, k), encoding="utf-8")
        live.append(rel)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "gc.auto", "0")  # no background `git gc --auto` after a baseline commit
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"initial: {files} files")
    git(path, "gc", "-q")
    return Tree(path, live)


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


class GitCli:
    """The git CLI doing what a Checkpointer does, one subprocess a command."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.n = 0
        git(repo, "checkout", "-q", "-b", f"maestro/{SESSION}")
        git(repo, "tag", "-a", "-m", "maestro checkpoint 0: start", f"maestro/{SESSION}/0")

    def checkpoint(self, label: str) -> None:
        self.n += 1
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"maestro({SESSION}): {label}")
        git(self.repo, "tag", "-a", "-m", f"maestro checkpoint {self.n}: {label}", f"maestro/{SESSION}/{self.n}")

    def no_change(self) -> None:
        git(self.repo, "add", "-A")
        git(self.repo, "diff", "--cached", "--quiet")  # exit 1 (an error here) if there were something to commit

    def status(self) -> None:
        out = git(self.repo, "status", "--porcelain").stdout
        assert not out, f"git status: {out[:200]!r}"

    def rollback(self, commit: str) -> None:
        git(self.repo, "reset", "-q", "--hard", commit)
        git(self.repo, "clean", "-fdq")

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD").stdout.decode().strip()


def bench_size(base: Path, files: int, rounds: int) -> list[Row]:
    """The three rows of one size, and their information rows."""
    trees = {"maestro": build(base / "maestro", files), "git": build(base / "git", files)}
    cp = maestro.Checkpointer(trees["maestro"].root, SESSION, clock=maestro.TickingClock())
    cp.start()
    cli = GitCli(trees["git"].root)
    labels = iter(f"round {i}" for i in range(1_000_000))
    last: list[int] = []  # the numbers of maestro's checkpoints

    def checkpoint() -> None:
        record = cp.checkpoint(next(labels))
        assert record is not None, "maestro found no change to checkpoint"
        last.append(record.n)

    def change(name: str) -> None:
        trees[name].change()

    # 1. A checkpoint of a change.
    t = interleaved({"maestro": checkpoint, "git": lambda: cli.checkpoint(next(labels))}, rounds, before=change)
    rows = [Row("checkpoint", files, "git_add_commit_tag", t["maestro"], t["git"], CHECKPOINT_TARGET)]

    # 2. A checkpoint with nothing to commit.
    def nothing() -> None:
        assert cp.checkpoint(next(labels)) is None, "maestro checkpointed an unchanged tree"

    t = interleaved({"maestro": nothing, "git": cli.no_change, "git_status": cli.status}, rounds)
    rows += [
        Row("no_change", files, "git_add_diff_cached", t["maestro"], t["git"], CHECKPOINT_TARGET),
        Row("no_change", files, "git_status_porcelain", t["maestro"], t["git_status"]),
    ]

    # 3. A rollback to the previous checkpoint, after a change and its checkpoint (untimed).
    to_n, to_commit = last[-1], cli.head()
    saved: dict[str, list[str]] = {}

    def change_and_checkpoint(name: str) -> None:
        saved[name] = trees[name].change()
        if name == "maestro":
            checkpoint()
        else:
            cli.checkpoint(next(labels))

    def restore(name: str) -> None:  # the tree is back at the previous checkpoint
        trees[name].live = saved[name]

    t = interleaved(
        {"maestro": lambda: cp.rollback(to_n), "git": lambda: cli.rollback(to_commit)},
        rounds,
        before=change_and_checkpoint,
        after=restore,
    )
    rows.append(Row("rollback", files, "git_reset_hard_clean", t["maestro"], t["git"], ROLLBACK_TARGET))

    # Both did the same work: the same files, with the same content.
    mine, theirs = tree_digest(trees["maestro"].root), tree_digest(trees["git"].root)
    differ = sorted(set(mine.items()) ^ set(theirs.items()))
    assert not differ, f"the working trees differ after the rounds ({len(differ)} entries): {differ[:5]}"
    assert len(mine) == len(trees["git"].live), "the trees hold the files the benchmark tracked"
    return rows


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    cols = ("benchmark", "files", "median", "baseline", "baseline median", "ratio", "target", "met")
    table = [cols]
    for r in rows:
        met = "" if r.meets_target is None else "yes" if r.meets_target else "NO"
        median, base = fmt_s(r.median_s), fmt_s(r.baseline_median_s)
        table.append((r.name, f"{r.files:,}", median, r.baseline, base, f"{r.ratio:.2f}x", r.target or "(info)", met))
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    for r in rows:
        if r.meets_target is not None:
            print(f"{'MET   ' if r.meets_target else 'MISSED'}  {r.name} [{r.files:,} files]: {r.target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="maestro benchmark: checkpoints and rollbacks against the git CLI")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 files only, fewer rounds")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to make the temporary repositories")
    args = parser.parse_args(argv)
    sizes, rounds = (QUICK_SIZES, QUICK_ROUNDS) if args.quick else (SIZES, ROUNDS)
    git_version = subprocess.run(["git", "--version"], check=True, capture_output=True, text=True).stdout.strip()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        fs = file_system(base)
        for files in sizes:
            where = base / str(files)
            try:
                rows += bench_size(where, files, rounds[files])
            finally:
                shutil.rmtree(where, ignore_errors=True)
    if args.json:
        for r in rows:
            print(json.dumps({**r.to_json(), "git": git_version, "file_system": fs}))
    else:
        header = (
            f"maestro checkpoint benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
            f"{git_version}, in {base} on {fs}"
        )
        print_table(rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
