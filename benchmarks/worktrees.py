"""Benchmark: maestro's pooled worktrees (:mod:`maestro.git.worktrees`) against the git CLI.

    python benchmarks/worktrees.py [--json] [--sizes 10000,50000] [--rounds N] [--dir PATH]

For each size (10,000 and 50,000 files by default) one repository is built with
the git CLI: nested folders of 50 small text files each, one commit, packed
(``git gc``, as a clone has it; ``gc.auto=0``).  Then, from that base commit,
one commit per workload shape, each with at most 20 paths that differ:

============  ===========================================================
shape         the commit, against the base
============  ===========================================================
modified      20 files modified in place
new_folders   20 files added in 4 new nested folders
deleted       20 files deleted
renamed       10 files renamed into another folder (20 paths)
mixed         10 modified, 5 added in a new folder, 3 deleted, 1 renamed
============  ===========================================================

Rounds: moves 9 (10,000 files) or 5 (50,000), creations 3 or 2, first moves
3; ``--rounds N`` sets them all.  Timed, rounds interleaved (their order
rotating) after one warm-up round each (creations aside),
``gc.collect()`` before each run, medians quoted, ratio = maestro / git:

1. ``move[<shape>]`` — a pooled worktree (``WorktreePool.acquire``, made once)
   moved by ``Worktree.move`` to the shape's commit, then (a separate run) back
   to the base, against ``git checkout -q -f --detach <rev>`` doing the same in a
   worktree made by ``git worktree add``.  Each run is one move of the same
   change, both ways.  The pooled worktree is idle between moves (nothing but
   maestro wrote there): on Linux its watch (inotify) says so, and a move writes
   the files that differ without scanning the worktree.  Target: at most 1.2x.
2. ``move_scanning[mixed]`` (information) — the same moves of the same worktree
   opened by a pool made with ``watch=False``: every move scans the worktree
   first (stat data), as every move does where inotify is missing or after
   anything happened there.
3. ``first_move[mixed]`` (information) — a new ``WorktreePool`` (another
   process, say) opening the worktree on disk and moving it: the first move
   reads the index, starts the watch and scans.  Against the same git checkout.
4. ``create`` — ``WorktreePool(repo, <new session>).acquire(base)``, which makes
   worktree ``w1`` (the pool is constructed untimed), against ``git worktree add
   -q --detach <path> <base>``.  After each run, untimed, the worktree is removed
   (``remove_all``; ``git worktree remove --force``) and ``os.sync()`` flushes
   what the creation wrote, so that the next run does not pay for its
   predecessor's write-back.  No warm-up round here (a creation takes seconds
   at 50,000 files, and the pack is in the page cache from the moves).
   Target: at most 1.2x.

After the rounds, the maestro worktree and the git worktree are at the same
commit and must hold the same files; ``git status --porcelain`` in maestro's
must be empty.  Worktrees go under the temporary folder (``$MAESTRO_WORKTREES``
is set to a folder in it), on the same file system as git's.  The temporary
repositories are removed at the end.  The exit code is 0 whether or not a target
is met: this is a report.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import shutil
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
from dulwich.objects import ObjectID

from _bench import GIT, Medians, file_system, fmt_s, interleaved
from maestro.git.places import ENV_ROOT
from maestro.git.worktrees import Worktree, WorktreePool

MOVE_TARGET = 1.2  # maestro median / git CLI median, at most
CREATE_TARGET = 1.2

PER_DIR = 50  # files a folder
DIRS_PER_PACKAGE = 10  # folders a top-level package: src/p<k>/m<j>/f<i>.py
SIZES = (10_000, 50_000)
MOVE_ROUNDS = {10_000: 9, 50_000: 5}
CREATE_ROUNDS = {10_000: 3, 50_000: 2}
FIRST_MOVE_ROUNDS = 3
SHAPES = ("modified", "new_folders", "deleted", "renamed", "mixed")
SESSION = "bench"


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


def git(repo: Path, *args: str) -> str:
    """Run ``git <args>`` in ``repo`` (with an identity); its output; raise if it fails."""
    proc = subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True)
    return proc.stdout.decode().strip()


def module_text(rel: str, k: int) -> str:
    """A small Python module (about 300 bytes, 11 lines)."""
    return (
        f'"""{rel}: generated for the worktree benchmark."""\n\n'
        "from __future__ import annotations\n\n"
        f"VALUE = {k}\n\n\n"
        f"def f{k}(x: int) -> int:\n"
        f'    """Return x plus {k}."""\n'
        "    return x + VALUE\n"
    )


def build(path: Path, files: int) -> tuple[ObjectID, dict[str, ObjectID]]:
    """The repository: ``files`` modules committed and packed; then one commit per shape on the base. Their ids."""
    live: list[str] = []
    for k in range(files):
        d, i = divmod(k, PER_DIR)
        rel = f"src/p{d // DIRS_PER_PACKAGE:03d}/m{d % DIRS_PER_PACKAGE:02d}/f{i:02d}.py"
        if i == 0:
            (path / rel).parent.mkdir(parents=True)
        (path / rel).write_text(module_text(rel, k), encoding="utf-8")
        live.append(rel)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "gc.auto", "0")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"initial: {files} files")
    git(path, "gc", "-q")
    base = ObjectID(git(path, "rev-parse", "HEAD").encode())
    shapes: dict[str, ObjectID] = {}
    for n, shape in enumerate(SHAPES):
        git(path, "checkout", "-q", "--detach", base.decode())
        rng = random.Random(n)
        picks = rng.sample(live, 20)

        def modify(rels: list[str], tag: str = shape) -> None:
            for rel in rels:
                with (path / rel).open("a", encoding="utf-8") as f:
                    f.write(f"CHANGED = {tag!r}\n")

        def add(count: int, folders: int, tag: str = shape) -> None:
            for i in range(count):
                rel = f"src/new_{tag}/d{i % folders}/deep/n{i:02d}.py"
                (path / rel).parent.mkdir(parents=True, exist_ok=True)
                (path / rel).write_text(module_text(rel, 900_000 + i), encoding="utf-8")

        def delete(rels: list[str]) -> None:
            for rel in rels:
                (path / rel).unlink()

        def rename(rels: list[str], tag: str = shape) -> None:
            for j, rel in enumerate(rels):
                dst = path / "src" / f"moved_{tag}" / f"r{j:02d}_{Path(rel).name}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path / rel, dst)

        if shape == "modified":
            modify(picks)
        elif shape == "new_folders":
            add(20, 4)
        elif shape == "deleted":
            delete(picks)
        elif shape == "renamed":
            rename(picks[:10])
        else:
            modify(picks[:10])
            add(5, 1)
            delete(picks[10:13])
            rename(picks[13:14])
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", shape)
        shapes[shape] = ObjectID(git(path, "rev-parse", "HEAD").encode())
        changed = git(path, "diff", "--name-only", "--no-renames", base.decode(), shapes[shape]).splitlines()
        assert 0 < len(changed) <= 20, (shape, len(changed))
    git(path, "checkout", "-q", "main")
    return base, shapes


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` but ``.git``, with the SHA-1 of its content."""
    out: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        if folder == str(root):
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            full = os.path.join(folder, name)
            if folder == str(root) and name == ".git":
                continue
            with open(full, "rb") as fh:
                out[os.path.relpath(full, root)] = hashlib.sha1(fh.read(), usedforsecurity=False).hexdigest()
    return out


def timed_moves(wt: Worktree, git_wt: Path, base: ObjectID, target: ObjectID, rounds: int) -> dict[str, Any]:
    """Rounds of moves between ``base`` and ``target``, each way a run; both worktrees end at ``base``."""
    there = {"maestro": False, "git": False}

    def flip(name: str) -> ObjectID:
        there[name] = not there[name]
        return target if there[name] else base

    def maestro_move() -> None:
        wt.move(flip("maestro"))

    def git_move() -> None:
        git(git_wt, "checkout", "-q", "-f", "--detach", flip("git").decode())

    t = interleaved({"maestro": maestro_move, "git": git_move}, rounds)
    for name, back in (("maestro", maestro_move), ("git", git_move)):
        if there[name]:
            back()
    return t


def alternated(
    subjects: dict[str, Callable[[], object]],
    rounds: int,
    before: Callable[[str], object],
    after: Callable[[str], object],
) -> dict[str, tuple[float, ...]]:
    """``_bench.interleaved`` without its warm-up round: a creation is long, and the pack is in the page cache."""
    names = list(subjects)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            before(name)
            gc.collect()
            t0 = time.perf_counter()
            subjects[name]()
            times[name].append(time.perf_counter() - t0)
            after(name)
    return {name: tuple(t) for name, t in times.items()}


def bench_size(where: Path, files: int, move_rounds: int, create_rounds: int) -> list[Row]:
    repo = where / "repo"
    repo.mkdir(parents=True)
    base, shapes = build(repo, files)
    git_wt = where / "git-wt"
    git(repo, "worktree", "add", "-q", "--detach", str(git_wt), base.decode())
    pool = WorktreePool(repo, SESSION)
    wt = pool.acquire(base)
    rows: list[Row] = []

    # 1. Moves: to the shape's commit and back, one timed run each way.
    for shape in SHAPES:
        t = timed_moves(wt, git_wt, base, shapes[shape], move_rounds)
        rows.append(Row(f"move[{shape}]", files, "git_checkout_f_detach", t["maestro"], t["git"], MOVE_TARGET))

    # 2. The same with the watch off: every move scans the worktree (information).
    swt = WorktreePool(repo, SESSION, watch=False).existing()[0]  # the same worktree, opened without a watch
    t = timed_moves(swt, git_wt, base, shapes["mixed"], move_rounds)  # (its first move, the index read: warm-up)
    rows.append(Row("move_scanning[mixed]", files, "git_checkout_f_detach", t["maestro"], t["git"]))
    swt.close()

    # 3. The first move of a worktree another pool opens (information).
    reopened: dict[str, WorktreePool] = {}
    at_shape = {"maestro": False, "git": False}

    def open_pool(name: str) -> None:
        if name == "maestro":
            reopened["pool"] = WorktreePool(repo, SESSION)

    def first_move() -> None:
        found = reopened["pool"].existing()
        at_shape["maestro"] = not at_shape["maestro"]
        found[0].move(shapes["mixed"] if at_shape["maestro"] else base)

    def git_first_move() -> None:
        at_shape["git"] = not at_shape["git"]
        git(git_wt, "checkout", "-q", "-f", "--detach", (shapes["mixed"] if at_shape["git"] else base).decode())

    t = interleaved({"maestro": first_move, "git": git_first_move}, FIRST_MOVE_ROUNDS, before=open_pool)
    rows.append(Row("first_move[mixed]", files, "git_checkout_f_detach", t["maestro"], t["git"]))
    if at_shape["maestro"]:
        WorktreePool(repo, SESSION).existing()[0].move(base)
    if at_shape["git"]:
        git(git_wt, "checkout", "-q", "-f", "--detach", base.decode())

    # Both did the same work: the same files at the base, and git sees maestro's worktree clean.
    mine, theirs = tree_digest(wt.path), tree_digest(git_wt)
    differ = sorted(set(mine.items()) ^ set(theirs.items()))
    assert not differ, f"the worktrees differ ({len(differ)} entries): {differ[:5]}"
    assert git(wt.path, "status", "--porcelain") == "", "maestro's worktree is not clean"

    # 4. Creating one.
    pools: list[WorktreePool] = []
    made = where / "git-made"

    def before_create(name: str) -> None:
        if name == "maestro":
            pools.append(WorktreePool(repo, f"create{len(pools)}"))

    def after_create(name: str) -> None:
        if name == "maestro":
            pools[-1].remove_all()
        else:
            git(repo, "worktree", "remove", "--force", str(made))
        os.sync()
        gc.collect()

    def maestro_create() -> None:
        pools[-1].acquire(base)

    def git_create() -> None:
        git(repo, "worktree", "add", "-q", "--detach", str(made), base.decode())

    t = alternated({"maestro": maestro_create, "git": git_create}, create_rounds, before_create, after_create)
    rows.append(Row("create", files, "git_worktree_add_detach", t["maestro"], t["git"], CREATE_TARGET))
    pool.remove_all()
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
    parser = argparse.ArgumentParser(description="maestro benchmark: pooled worktrees against the git CLI")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="file counts, comma-separated")
    parser.add_argument("--rounds", type=int, help="timed rounds of every row (default: by size)")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to make the temporary repositories")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    git_version = subprocess.run(["git", "--version"], check=True, capture_output=True, text=True).stdout.strip()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        os.environ[ENV_ROOT] = str(base / "worktrees")  # maestro's worktrees on the file system git's are on
        fs = file_system(base)
        for files in sizes:
            where = base / str(files)
            move_rounds = args.rounds or MOVE_ROUNDS.get(files, 7)
            create_rounds = args.rounds or CREATE_ROUNDS.get(files, 3)
            try:
                rows += bench_size(where, files, move_rounds, create_rounds)
            finally:
                shutil.rmtree(where, ignore_errors=True)
                shutil.rmtree(base / "worktrees", ignore_errors=True)
    if args.json:
        for r in rows:
            print(json.dumps({**r.to_json(), "git": git_version, "file_system": fs}))
    else:
        header = (
            f"maestro worktree benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
            f"{git_version}, in {base} on {fs}"
        )
        print_table(rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
