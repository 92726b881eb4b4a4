"""Benchmark: merging a task's commit onto the session head (:mod:`maestro.git.merging`), against the git CLI.

    python benchmarks/merge.py [--json] [--quick] [--sizes 10000,50000] [--shapes modified,same_files]
                               [--rounds N] [--profile N] [--dir PATH]

For each size (10,000 and 50,000 files; 10,000 with ``--quick``) one repository
is built with ``git fast-import`` (one pack, as a clone has it; ``gc.auto=0`` so
that no background ``git gc --auto`` starts mid-measurement): a base commit of
nested folders of 50 small Python modules (``src/p<k>/m<j>/f<i>.py``) and, for
every shape and round, two children of the base: the session head as it has
moved since the task started (``head``) and the task's commit (``task``).  The
repository is then copied: one copy for maestro, one for git, identical.  Every
round merges a pair of commits of its own, so every round writes new objects,
as the merge queue does.

Timed, per round: maestro's ``merge_commits(repo, base, head, task)`` then
``commit_merge(repo, tree, [head, task], …, ref=…, expected=head)`` (one
``dulwich.repo.Repo`` opened once a size and reused, as a session holds one),
against ``git merge-tree --write-tree head task``, ``git commit-tree <tree> -p
head -p task -m …`` and ``git update-ref <ref> <commit> head`` (three
subprocesses, timed together).  Untimed before each round: the ref is set to
``head``.  The shapes (the task touches 10 files in each):

``modified``
    the task modifies 10 files in 10 different packages; the head moved on 10
    other files in other packages (another task merged first).
``new_folder``
    the task adds 10 new files in a new folder; the head moved as above.
``delete_modify``
    the task deletes 5 files and modifies 5; the head moved as above.
``moved_head``
    the task modifies 10 files; the head moved on 200 files since, 10 of them
    beside the task's (same folders), so that the merge descends into them.
``same_files``
    the head and the task both edited the same 10 files, the head their first
    line, the task their last: 10 line merges.
``fast_forward``
    (for information) the head has not moved: maestro answers at once, git still
    runs its merge.

Target: maestro median / git median at most 1.2x (issue 14) on every shape but
``fast_forward``.  Rounds of maestro and git alternate (their order rotating),
after one warm-up round each; ``gc.collect()`` runs before each timed run and
the median of the rounds is quoted; ratio = maestro median / git median.  Every
round's merged tree must be git's (the same object id).  The temporary
repositories are removed at the end.  The exit code is 0 whether or not a
target is met: this is a report.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
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
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from _bench import GIT, Medians, file_system, fmt_s, interleaved
from maestro.git.merging import commit_merge, merge_commits

TARGET = 1.2  # maestro median / git CLI median, at most

PER_DIR = 50  # files a folder
DIRS_PER_PACKAGE = 10  # folders a top-level package: src/p<k>/m<j>/f<i>.py
TOUCHED = 10  # files the task touches
MOVED = 200  # files the head moved on, in the moved_head shape

SHAPES = ("modified", "new_folder", "delete_modify", "moved_head", "same_files", "fast_forward")
INFORMATION_ONLY = ("fast_forward",)
SIZES = (10_000, 50_000)
QUICK_SIZES = (10_000,)
ROUNDS = {10_000: 15, 50_000: 11}
QUICK_ROUNDS = 7

AUTHOR = b"b <b@b>"
REF = b"refs/heads/maestro/bench"
T0 = 1_700_000_000


@attrs.frozen
class Row(Medians):
    """One line of the report: maestro's rounds against git's, for a shape at a size."""

    shape: str
    files: int
    rounds_s: tuple[float, ...]
    baseline_rounds_s: tuple[float, ...]

    @property
    def max_ratio(self) -> float | None:
        return None if self.shape in INFORMATION_ONLY else TARGET

    @property
    def meets_target(self) -> bool | None:
        return None if self.max_ratio is None else self.ratio <= self.max_ratio

    def to_json(self) -> dict[str, Any]:
        keys = ("shape", "files", "median_s", "baseline_median_s", "ratio", "max_ratio", "meets_target")
        return {k: getattr(self, k) for k in (*keys, "rounds_s", "baseline_rounds_s")}


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run ``git <args>`` in ``repo`` (with an identity); its output; raise if it fails."""
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, input=stdin).stdout


def module_text(rel: str, k: int) -> str:
    """A small Python module (about 300 bytes, 11 lines)."""
    return (
        f'"""{rel}: generated for the merge benchmark."""\n\n'
        "from __future__ import annotations\n\n"
        f"VALUE = {k}\n\n\n"
        f"def f{k}(x: int) -> int:\n"
        f'    """Return x plus {k}."""\n'
        "    return x + VALUE\n"
    )


def path_of(k: int) -> str:
    d, i = divmod(k, PER_DIR)
    return f"src/p{d // DIRS_PER_PACKAGE:03d}/m{d % DIRS_PER_PACKAGE:02d}/f{i:02d}.py"


class Stream:
    """A ``git fast-import`` stream being written."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.marks = 0

    def data(self, payload: bytes) -> None:
        self.out.write(b"data %d\n" % len(payload) + payload + b"\n")

    def commit(self, ref: str, parent: int | None, message: str, changes: dict[str, bytes | None]) -> int:
        """A commit on ``ref`` (child of mark ``parent``) writing (or, for ``None``, deleting) ``changes``."""
        self.marks += 1
        self.out.write(f"commit {ref}\nmark :{self.marks}\ncommitter b <b@b> {T0} +0000\n".encode())
        self.data(message.encode())
        if parent is not None:
            self.out.write(f"from :{parent}\n".encode())
        for path, content in changes.items():
            if content is None:
                self.out.write(f"D {path}\n".encode())
            else:
                self.out.write(f"M 100644 inline {path}\n".encode())
                self.data(content)
        return self.marks


@attrs.frozen
class Pair:
    """One round of a shape: the head and the task commits, children of the base (refs, to look up)."""

    head: str
    task: str


def plan_shape(stream: Stream, base: int, files: int, shape: str, rounds: int) -> list[Pair]:
    """Write the head and task commits of every round of ``shape`` to ``stream``."""
    texts: dict[int, bytes] = {}
    packages = files // (PER_DIR * DIRS_PER_PACKAGE)
    pairs = []
    for r in range(rounds):
        rng = random.Random(f"{shape} {r}")

        def text(k: int) -> bytes:
            if k not in texts:
                texts[k] = module_text(path_of(k), k).encode()
            return texts[k]

        def in_package(p: int, rng: random.Random = rng) -> int:
            return (p * DIRS_PER_PACKAGE + rng.randrange(DIRS_PER_PACKAGE)) * PER_DIR + rng.randrange(PER_DIR)

        # the task's files in TOUCHED packages, the head's in TOUCHED others
        chosen = rng.sample(range(packages), 2 * TOUCHED)
        task_files = [in_package(p) for p in chosen[:TOUCHED]]
        head_files = [in_package(p) for p in chosen[TOUCHED:]]
        task: dict[str, bytes | None] = {}
        head: dict[str, bytes | None] = {}
        mark = f"# round {r} of {shape}\n".encode()
        if shape in ("modified", "moved_head", "fast_forward"):
            task = {path_of(k): text(k) + b"task " + mark for k in task_files}
        elif shape == "new_folder":
            folder = f"src/p{chosen[0]:03d}/new_{shape}_{r}"
            task = {f"{folder}/n{i:02d}.py": b"new " + mark + b"%d\n" % i for i in range(TOUCHED)}
        elif shape == "delete_modify":
            task = {path_of(k): None for k in task_files[: TOUCHED // 2]}
            task |= {path_of(k): text(k) + b"task " + mark for k in task_files[TOUCHED // 2 :]}
        elif shape == "same_files":
            task = {path_of(k): text(k) + b"task " + mark for k in task_files}
            head = {path_of(k): b"head " + mark + text(k) for k in task_files}
        if shape in ("modified", "new_folder", "delete_modify"):
            head = {path_of(k): text(k) + b"head " + mark for k in head_files}
        elif shape == "moved_head":
            beside = [(k // PER_DIR) * PER_DIR + (k % PER_DIR + 1) % PER_DIR for k in task_files]
            others = rng.sample(range(files), MOVED)
            moved = [k for k in dict.fromkeys(beside + others) if k not in task_files][:MOVED]
            head = {path_of(k): text(k) + b"head " + mark for k in moved}
        head_ref, task_ref = f"refs/heads/head/{shape}/{r}", f"refs/heads/task/{shape}/{r}"
        if head:
            stream.commit(head_ref, base, f"head {shape} {r}", head)
        else:
            stream.out.write(f"reset {head_ref}\nfrom :{base}\n\n".encode())
        stream.commit(task_ref, base, f"task {shape} {r}", task)
        pairs.append(Pair(head_ref, task_ref))
    return pairs


def build(path: Path, files: int, shapes: list[str], rounds: int) -> dict[str, list[Pair]]:
    """The repository: its base commit on ``main`` and, per shape, ``rounds`` pairs of children."""
    stream = Stream()
    base_files: dict[str, bytes | None] = {path_of(k): module_text(path_of(k), k).encode() for k in range(files)}
    base = stream.commit("refs/heads/main", None, f"initial: {files} files", base_files)
    plans = {shape: plan_shape(stream, base, files, shape, rounds) for shape in shapes}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, capture_output=True)
    git(path, "config", "gc.auto", "0")
    git(path, "fast-import", "--quiet", stdin=stream.out.getvalue())
    # fast-import chains each blob to the one before it (50 deep); packed afresh, as `git gc` packs loose objects
    git(path, "repack", "-a", "-d", "-f", "-q")
    return plans


def rev(repo: Path, refs: list[str]) -> list[str]:
    return git(repo, "rev-parse", *refs).decode().split()


def bench_shape(
    mine: Repo, theirs: Path, base: ObjectID, shape: str, *, files: int, pairs: list[Pair], profile: int
) -> Row:
    ids = rev(theirs, [x for p in pairs for x in (p.head, p.task)])
    rounds = [(ObjectID(ids[2 * i].encode()), ObjectID(ids[2 * i + 1].encode())) for i in range(len(pairs))]
    nxt = {"maestro": iter(rounds), "git": iter(rounds)}
    current: dict[str, tuple[ObjectID, ObjectID]] = {}
    trees: dict[str, list[bytes]] = {"maestro": [], "git": []}
    prof = cProfile.Profile() if profile else None

    def before(name: str) -> None:
        current[name] = head, _ = next(nxt[name])
        if name == "maestro":
            mine.refs[Ref(REF)] = head
        else:
            git(theirs, "update-ref", REF.decode(), head.decode())

    def run_maestro() -> None:
        head, task = current["maestro"]
        result = merge_commits(mine, base, head, task)
        assert result.tree is not None, f"{shape}: maestro found conflicts: {result.feedback()}"
        if result.fast_forward:
            assert mine.refs.set_if_equals(Ref(REF), head, task)
        else:
            commit_merge(mine, result.tree, [head, task], f"merge {shape}", ref=REF, expected=head, author=AUTHOR,
                         when=T0)  # fmt: skip
        trees["maestro"].append(result.tree)

    def run_git() -> None:
        head, task = current["git"]
        tree = git(theirs, "merge-tree", "--write-tree", head.decode(), task.decode()).split(b"\n")[0]
        commit = git(theirs, "commit-tree", tree.decode(), "-p", head.decode(), "-p", task.decode(), "-m", "merge")
        git(theirs, "update-ref", REF.decode(), commit.decode().strip(), head.decode())
        trees["git"].append(tree)

    maestro_run = (lambda: prof.runcall(run_maestro)) if prof else run_maestro
    t = interleaved({"maestro": maestro_run, "git": run_git}, len(pairs) - 1, before)
    assert trees["maestro"] == trees["git"], f"{shape}, {files} files: maestro merged other trees than git"
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(profile)
        print(f"--- profile: {shape}, {files:,} files, {len(pairs)} merges", file=sys.stderr)
        print(out.getvalue(), file=sys.stderr)
    return Row(shape, files, t["maestro"], t["git"])


def bench_size(where: Path, files: int, shapes: list[str], rounds: int, profile: int) -> list[Row]:
    """The rows of one size, one a shape, on a pair of identical repositories."""
    plans = build(where / "maestro", files, shapes, rounds + 1)  # + the warm-up round
    shutil.copytree(where / "maestro", where / "git", symlinks=True)
    base = ObjectID(rev(where / "git", ["refs/heads/main"])[0].encode())
    mine = Repo(str(where / "maestro"))
    try:
        return [bench_shape(mine, where / "git", base, s, files=files, pairs=plans[s], profile=profile) for s in shapes]
    finally:
        mine.close()


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    cols = ("shape", "files", "maestro", "git merge-tree+commit-tree+update-ref", "ratio", "target", "met")
    table = [cols]
    for r in rows:
        target = f"<= {r.max_ratio}x" if r.max_ratio else "(information)"
        met = "" if r.meets_target is None else "yes" if r.meets_target else "NO"
        row = (r.shape, f"{r.files:,}", fmt_s(r.median_s), fmt_s(r.baseline_median_s), f"{r.ratio:.2f}x", target, met)
        table.append(row)
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="maestro benchmark: merging a task commit, by shape, against git")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--quick", action="store_true", help="10,000 files only, fewer rounds")
    parser.add_argument("--sizes", help="comma-separated numbers of files (default 10000,50000)")
    parser.add_argument("--shapes", help=f"comma-separated shapes (default all: {','.join(SHAPES)})")
    parser.add_argument("--rounds", type=int, help="timed rounds a shape (default 15 at 10k files, 11 at 50k)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print maestro's top N functions")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to make the temporary repositories")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    shapes = args.shapes.split(",") if args.shapes else list(SHAPES)
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}: choose among {', '.join(SHAPES)}")
    if min(sizes) < 2 * TOUCHED * PER_DIR * DIRS_PER_PACKAGE or min(sizes) < 2 * MOVED:
        parser.error(f"--sizes: at least {2 * TOUCHED * PER_DIR * DIRS_PER_PACKAGE} files (20 packages of 500)")
    git_version = subprocess.run(["git", "--version"], check=True, capture_output=True, text=True).stdout.strip()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        fs = file_system(base)
        for files in sizes:
            rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS.get(files, 9))
            where = base / str(files)
            where.mkdir()
            try:
                rows += bench_size(where, files, shapes, rounds, args.profile)
            finally:
                shutil.rmtree(where, ignore_errors=True)
    if args.json:
        for r in rows:
            print(json.dumps({**r.to_json(), "git": git_version, "file_system": fs}))
    else:
        header = (
            f"maestro merge benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {git_version}, "
            f"in {base} on {fs}"
        )
        print_table(rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
