"""Benchmark: the runner's makespan on random task graphs, against the lower bound max(critical path, work / workers).

    python benchmarks/scheduler.py [--json] [--quick] [--acceptance] [--task-ms 50,200,1000]

Graphs: 200 tasks (60 with ``--quick``), seeded (seeds 1, 2, 3; seed 1 alone with
``--quick``), each task depending on up to 3 earlier ones, with no acceptance
commands (but with ``sleep+accept``); a PRD of three requirements that the tasks serve in turn.  Every round
makes a fresh git repository (dulwich, one commit) and runs a whole session:
``Runner(store, config, CommandAgent(cmd), sleep=lambda s: None).run(...)`` with
``parallel.max_workers: 8`` and every gate's command ``true`` (validation passes
at once).  The workloads (the command agent's template):

Each task sleeps 50 ms (``--task-ms``: other lengths, one run of every workload a length):

* ``sleep`` — ``sleep 0.05``: the issue's workload.  Nothing in the tree changes; since
  issue 14 every task still runs in its own worktree, its attempt is captured as a
  commit and merged, and each merge is a checkpoint (a commit, a tag, an event);
* ``sleep+write`` — ``sleep 0.05 && echo {task_id} > out-{task_id}.txt``: one new file
  a task (for information: what a real change adds to the capture and the merge);
* ``sleep+accept`` (with ``--acceptance``) — ``sleep 0.05``, and every task has the
  acceptance command ``true``: each merge's revalidation runs the acceptance commands of
  the task and of every task merged before it (for information).

Since issue 14 the run follows the dependencies, not the groups: issue 14's target is the
makespan within 1.10x of ``bare_dag`` (the ``/dag`` column); the columns about groups
below (excess, between, dispatch) describe the planned groups the run no longer waits for.

Measured from the session's own ``events.jsonl`` (every event carries the time it was
written, in microseconds; each is fsync'd before the move it records happens):

* the makespan: the first task's ``start`` move to the last task's ``succeed`` move
  (the implementing phase without the first group's dispatch and the last checkpoint);
* the whole run: ``Runner.run`` on the wall clock, and its phases from the session's
  moves (to ``tasks_ready``; ``tasks_ready`` to ``implementation_done``; validating);
  ``outside`` is the run's time before its first event and after its last (the dirty
  check, reading the PRD and ``tasks.yaml``, creating the session; the final report);
* where the time above the bound goes: per task, ``start`` → ``succeed`` (the agent's
  process — its ``duration_s`` — plus the thread hand-off, the prompt file and
  transcripts, and waiting for the main thread to settle it); per group, its first
  ``start`` to its last ``succeed``; between groups, the last ``succeed`` to the next
  group's first ``ready`` (the regression check and the checkpoint; a committing
  checkpoint's own event closes it) and that ``ready`` to the group's first ``start``
  (the ``ready`` moves and the subagent decisions).

Bounds, for the same graph and tasks of exactly 50 ms:

* ``bound`` — the issue's ``max(critical path × 50 ms, tasks × 50 ms / 8)``.  Target:
  makespan within 1.10x of it;
* ``tight`` — what any schedule on 8 workers needs, with or without barriers: the
  tasks with a chain of at least k tasks from them (their height) must all start
  k − 1 task-times before the end, at most 8 at a time, so the makespan is at least
  ``(k − 1 + ⌈|{t: height(t) ≥ k}| / 8⌉) × 50 ms`` for every k (and the same with
  depth from the sources).  For these graphs it is well above ``bound``.

Baselines in the same run, their rounds interleaved with the runner's (order rotating)
after one warm-up round each: ``bare_groups`` runs the runner's own groups
(``order_tasks(graph, max_parallel=8)``) one at a time on a pool of 8 threads, each task
``subprocess.run(["sh", "-c", cmd])`` — the barriers and the processes without the
runner's bookkeeping; ``bare_dag`` runs the same processes on 8 threads, each task as
soon as its dependencies are done (no barriers); ``git_dag`` is ``bare_dag`` with the isolation maestro gives
each attempt done by the git CLI (:class:`GitDag`: a pooled worktree moved to the head, the task's result
committed and kept at a ref, merged onto the head one at a time and tagged), the floor of that bookkeeping with
the reference tool.  CPU per task (user and system time of the run's threads and of the processes they ran) is
reported for maestro, ``bare_dag`` and ``git_dag``.  Medians of the rounds per graph, then
the median over graphs.  This is a report: the exit code is 0.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import math
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# transitions package (which maestro imports): move it to the end, still there for _bench.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import attrs

from _bench import GIT, Medians, file_system, fmt_s, interleaved
from maestro.agents.command import CommandAgent
from maestro.config.model import Config
from maestro.config.reader import parse_config
from maestro.core.records import Event
from maestro.plan.ordering import order_tasks
from maestro.plan.tasks import Task, TaskGraph, validate_graph
from maestro.run.runner import Runner
from maestro.store.filestore import Store

TASK_S = 0.05  # what each task's command sleeps (``--task-ms`` measures others)
WORKERS = 8
TARGET = 1.10  # makespan / max(critical path, work / workers), at most
# workload: (the command agent's template, each task's acceptance commands)
# (``{sleep}``: the task's length in seconds; ``{task_id}``: the command agent's placeholder)
WORKLOADS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sleep": ("sleep {sleep}", ()),
    "sleep+write": ("sleep {sleep} && echo {task_id} > out-{task_id}.txt", ()),
}
ACCEPTANCE_WORKLOAD = {"sleep+accept": ("sleep {sleep}", ("true",))}  # with --acceptance
REQUEST = "Benchmark the scheduler"

PRD = """\
---
prd:
  version: v1
  feature_name: scheduler benchmark
  status: approved
metadata:
  created_at: 2026-01-01T00:00:00Z
  updated_at: 2026-01-01T00:00:00Z
priorities:
  requirements:
    - {id: FR-1, text: "The first part", priority: P1}
    - {id: FR-2, text: "The second part", priority: P1}
    - {id: FR-3, text: "The third part", priority: P2}
---

# Product Requirements Document: Scheduler benchmark

## Functional Requirements

| ID | Requirement | Priority | Notes |
|----|-------------|----------|-------|
| FR-1 | The first part | P1 | |
| FR-2 | The second part | P1 | |
| FR-3 | The third part | P2 | |
"""

CONFIG = f"""\
parallel: {{max_workers: {WORKERS}}}
limits: {{max_iterations: 1, max_minutes: 60, budget_usd: null}}
gates:
  tests: {{command: "true", required: true}}
  lint: {{command: "true", required: false}}
  typecheck: {{command: "true", required: false}}
  security: {{command: "true", required: false}}
"""


# -- the graph and its bounds ---------------------------------------------------------------------------------------


def random_graph(n: int, seed: int, acceptance: Sequence[str] = ()) -> TaskGraph:
    """``n`` tasks, each depending on up to 3 earlier ones (seeded), serving FR-1..FR-3 in turn."""
    rnd = random.Random(seed)
    return validate_graph(
        [
            Task(
                f"T{i}",
                f"task {i}",
                requirements=[f"FR-{i % 3 + 1}"],
                depends_on=sorted({f"T{rnd.randrange(i)}" for _ in range(min(i, 3))}),
                acceptance=acceptance,
            )
            for i in range(n)
        ]
    )


@attrs.frozen
class Bounds:
    """The graph's critical path (tasks), the issue's bound and the tight bound (seconds)."""

    critical_path: int
    bound_s: float
    tight_s: float


def bounds(graph: TaskGraph, workers: int = WORKERS, task_s: float = TASK_S) -> Bounds:
    deps = {t.id: tuple(t.depends_on) for t in graph}
    order = list(TopologicalSorter(deps).static_order())
    children: dict[str, list[str]] = {tid: [] for tid in order}
    for tid, ds in deps.items():
        for d in ds:
            children[d].append(tid)
    depth: dict[str, int] = {}
    for tid in order:
        depth[tid] = 1 + max((depth[d] for d in deps[tid]), default=0)
    height: dict[str, int] = {}
    for tid in reversed(order):
        height[tid] = 1 + max((height[c] for c in children[tid]), default=0)
    cp = max(depth.values())
    tight = max(
        k - 1 + math.ceil(sum(1 for v in levels.values() if v >= k) / workers)
        for levels in (depth, height)
        for k in range(1, cp + 1)
    )
    return Bounds(cp, max(cp * task_s, len(order) * task_s / workers), tight * task_s)


# -- the runner, and the baselines ----------------------------------------------------------------------------------


def make_sample(base: Path, graph: TaskGraph) -> Path:
    """A committed repository in ``base/repo``, and the PRD and tasks beside it; the repository's path."""
    from dulwich import porcelain

    repo = base / "repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("# bench\n", encoding="utf-8")
    porcelain.init(str(repo))
    porcelain.add(str(repo), paths=[str(repo / "README.md")])
    porcelain.commit(str(repo), message=b"bench", author=b"b <b@example.com>", committer=b"b <b@example.com>")
    (base / "prd.md").write_text(PRD, encoding="utf-8")
    (base / "tasks.yaml").write_text(graph.to_yaml(), encoding="utf-8")
    return repo


def run_maestro(base: Path, command: str, config: Config) -> tuple[float, list[Event]]:
    """One whole session on the sample in ``base``: its wall time and its events."""
    store = Store(base / "repo")
    runner = Runner(store, config, CommandAgent(command), sleep=lambda s: None)
    t0 = time.perf_counter()
    outcome = runner.run(REQUEST, prd_path=base / "prd.md", tasks_path=base / "tasks.yaml")
    wall = time.perf_counter() - t0
    if outcome.state != "completed":
        raise RuntimeError(f"session {outcome.session_id} ended {outcome.state}, not completed")
    return wall, store.read_events(outcome.session_id)


def _shell(command: str, tid: str, cwd: Path) -> None:
    subprocess.run(["sh", "-c", command.format(task_id=shlex.quote(tid))], cwd=cwd, check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip


def bare_groups(groups: Sequence[Sequence[str]], command: str, cwd: Path) -> None:
    with cf.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for group in groups:
            for fut in [pool.submit(_shell, command, tid, cwd) for tid in group]:
                fut.result()


def bare_dag(graph: TaskGraph, command: str, cwd: Path) -> None:
    _run_dag(graph, lambda tid: _shell(command, tid, cwd))


def _run_dag(graph: TaskGraph, run: Callable[[str], None]) -> None:
    """``run(task)`` for every task on 8 threads, each as soon as its dependencies are done."""
    waiting = {t.id: len(t.depends_on) for t in graph}
    children: dict[str, list[str]] = {t.id: [] for t in graph}
    for t in graph:
        for d in t.depends_on:
            children[d].append(t.id)
    with cf.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        running = {pool.submit(run, tid): tid for tid, w in waiting.items() if w == 0}
        while running:
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                fut.result()
                for c in children[running.pop(fut)]:
                    waiting[c] -= 1
                    if waiting[c] == 0:
                        running[pool.submit(run, c)] = c


class GitDag:
    """``bare_dag`` with the isolation maestro gives each attempt, done by the git CLI: the floor of that bookkeeping
    with the reference tool.  Each task, on one of 8 threads as soon as its dependencies are merged: a pooled
    worktree (``git worktree add --detach`` the first time a thread needs one) is moved to the session head
    (``git checkout -f --detach``), the command runs in it, its result is committed (``git add -A``, ``git commit
    --allow-empty``) and kept at an attempt ref (``git update-ref``); then, one merge at a time, ``git merge-tree
    --write-tree`` onto the head, ``git commit-tree``, ``git update-ref`` of the session branch (compare-and-swap) and
    an annotated tag (``git tag -a``): the checkpoint.  No fsync, no event log, no decisions: git's defaults."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.head = self._git(repo, "rev-parse", "HEAD")
        self._git(repo, "update-ref", "refs/heads/session", self.head)
        self.merge_lock = threading.Lock()
        self.free: list[Path] = []
        self.pool_lock = threading.Lock()
        self.made = 0
        self.n = 0

    @staticmethod
    def _git(cwd: Path, *args: str) -> str:
        out = subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL)  # fmt: skip
        return out.stdout.strip()

    def _worktree(self) -> Path:
        with self.pool_lock:  # held while one is made: two `git worktree add` at once can fail on git's locks
            if self.free:
                return self.free.pop()
            self.made += 1
            path = self.repo.parent / "worktrees" / f"w{self.made}"
            self._git(self.repo, "worktree", "add", "-q", "--detach", str(path), self.head)
            return path

    def task(self, command: str, tid: str) -> None:
        wt = self._worktree()
        try:
            with self.merge_lock:
                base = self.head
            self._git(wt, "checkout", "-q", "-f", "--detach", base)
            _shell(command, tid, wt)
            self._git(wt, "add", "-A")
            self._git(wt, "commit", "-q", "--allow-empty", "-m", f"attempt {tid}")
            attempt = self._git(wt, "rev-parse", "HEAD")
            self._git(self.repo, "update-ref", f"refs/attempts/{tid}/1", attempt)
            with self.merge_lock:
                tree = self._git(self.repo, "merge-tree", "--write-tree", self.head, attempt)
                merged = self._git(self.repo, "commit-tree", tree, "-p", self.head, "-m", f"merge {tid}")
                self._git(self.repo, "update-ref", "refs/heads/session", merged, self.head)
                self.n += 1
                self._git(self.repo, "tag", "-a", "-m", f"checkpoint {self.n}", f"cp-{self.n}", merged)
                self.head = merged
        finally:
            with self.pool_lock:
                self.free.append(wt)


def cpu_s() -> float:
    """CPU seconds (user and system) used so far by this process's threads and by its children waited for."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def git_dag(graph: TaskGraph, command: str, repo: Path) -> None:
    """The dependency-order run of :func:`bare_dag`, each task isolated and merged by the git CLI (:class:`GitDag`)."""
    dag = GitDag(repo)
    _run_dag(graph, lambda tid: dag.task(command, tid))


# -- reading a session's events -------------------------------------------------------------------------------------


def _ts(e: Event) -> float:
    return dt.datetime.fromisoformat(e.ts).timestamp()


def analyse(
    wall: float, events: Sequence[Event], groups: Sequence[Sequence[str]], task_s: float = TASK_S
) -> dict[str, float]:
    """The run's figures (seconds, counts) from its events; ``groups`` as the runner ran them."""
    moves: dict[tuple[str, str], float] = {}
    phase: dict[str, float] = {}
    checkpoints: list[float] = []
    process: list[float] = []
    for e in events:
        t = _ts(e)
        if e.kind == "task":
            moves.setdefault((e.data["task"], e.data["trigger"]), t)
        elif e.kind == "transition":
            phase.setdefault(e.data["trigger"], t)
        elif e.kind == "checkpoint" and e.data["n"] > 0:
            checkpoints.append(t)
        elif e.kind == "agent":
            process.append(float(e.data.get("duration_s", 0.0)))
    starts = [[moves[(tid, "start")] for tid in g] for g in groups]
    ends = [[moves[(tid, "succeed")] for tid in g] for g in groups]
    readies = [[moves[(tid, "ready")] for tid in g] for g in groups]
    spans = [max(e) - min(s) for s, e in zip(starts, ends, strict=True)]
    between = [min(readies[i]) - max(ends[i - 1]) for i in range(1, len(groups))]
    dispatch = [min(starts[i]) - min(readies[i]) for i in range(1, len(groups))]
    # a committing checkpoint: its event (written at its end) after its group's last succeed
    cp_times = []
    for t in checkpoints:
        before = [max(e) for e in ends if max(e) <= t]
        if before:
            cp_times.append(t - max(before))
    task_spans = [moves[(tid, "succeed")] - moves[(tid, "start")] for g in groups for tid in g]
    t_ready, t_impl = phase["tasks_ready"], phase["implementation_done"]
    n_tasks = sum(len(g) for g in groups)
    return {
        "run_s": wall,
        "outside_s": wall - (_ts(events[-1]) - _ts(events[0])),
        "planning_s": t_ready - _ts(events[0]),
        "implementing_s": t_impl - t_ready,
        "validating_s": phase["validation_done"] - t_impl,
        "makespan_s": max(map(max, ends)) - min(map(min, starts)),
        "task_span_s": statistics.median(task_spans),
        "process_s": statistics.median(process) if process else math.nan,
        "in_group_excess_s": sum(spans) - len(groups) * task_s,
        "stagger_s": sum(max(s) - min(s) for s in starts),
        "between_s": sum(between),
        "between_median_s": statistics.median(between) if between else 0.0,
        "dispatch_s": sum(dispatch),
        "last_checkpoint_s": t_impl - max(ends[-1]),
        "checkpoints": len(checkpoints),
        "checkpoint_median_s": statistics.median(cp_times) if cp_times else math.nan,
        "events_per_task": sum(1 for e in events if t_ready <= _ts(e) <= t_impl) / n_tasks,
    }


# -- the report -----------------------------------------------------------------------------------------------------


@attrs.frozen
class Row(Medians):
    """One graph and workload: the runner's makespans against the issue's bound (ratio = median / bound)."""

    workload: str
    task_s: float
    seed: int
    tasks: int
    groups: int
    critical_path: int
    bound_s: float
    tight_s: float
    rounds_s: tuple[float, ...]
    baseline_rounds_s: tuple[float, ...]
    bare_groups_s: float
    bare_dag_s: float
    git_dag_s: float
    figures: Mapping[str, float]

    @property
    def tight_ratio(self) -> float:
        return self.median_s / self.tight_s

    def as_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "task_s": self.task_s, "seed": self.seed, "tasks": self.tasks,
                "groups": self.groups,
                "critical_path": self.critical_path, "bound_s": self.bound_s, "tight_s": self.tight_s,
                "makespan_s": self.median_s, "ratio": self.ratio, "tight_ratio": self.tight_ratio,
                "target": TARGET, "met": self.ratio <= TARGET, "bare_groups_s": self.bare_groups_s,
                "bare_dag_s": self.bare_dag_s, "git_dag_s": self.git_dag_s, "rounds": len(self.rounds_s),
                **self.figures}  # fmt: skip


def measure(workload: str, seed: int, n: int, rounds: int, task_s: float = TASK_S) -> Row:
    template, accept = {**WORKLOADS, **ACCEPTANCE_WORKLOAD}[workload]
    command = template.replace("{sleep}", f"{task_s:g}")
    graph = random_graph(n, seed, accept)
    groups = order_tasks(graph, max_parallel=WORKERS).groups
    b = bounds(graph, task_s=task_s)
    config = parse_config(CONFIG)
    where: dict[str, Path] = {}
    runs: list[dict[str, float]] = []

    def before(name: str) -> None:
        where[name] = Path(tempfile.mkdtemp(prefix=f"maestro-bench-{name}-"))
        if name in ("maestro", "git_dag"):
            make_sample(where[name], graph)

    def after(name: str) -> None:
        shutil.rmtree(where.pop(name), ignore_errors=True)

    def maestro() -> None:
        wall, events = run_maestro(where["maestro"], command, config)
        runs.append(analyse(wall, events, groups, task_s))

    cpu: dict[str, list[float]] = {}

    def counted(name: str, run: Callable[[], object]) -> Callable[[], None]:
        def subject() -> None:
            c0 = cpu_s()
            run()
            cpu.setdefault(name, []).append(cpu_s() - c0)

        return subject

    times = interleaved(
        {
            "maestro": counted("maestro", maestro),
            "bare_groups": lambda: bare_groups(groups, command, where["bare_groups"]),
            "bare_dag": counted("bare_dag", lambda: bare_dag(graph, command, where["bare_dag"])),
            "git_dag": counted("git_dag", lambda: git_dag(graph, command, where["git_dag"] / "repo")),
        },
        rounds,
        before,
        after,
    )
    runs = runs[1:]  # the warm-up round
    figures = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    figures |= {f"cpu_{name}_s": statistics.median(c[1:]) for name, c in cpu.items()}  # without the warm-up
    return Row(workload, task_s, seed, n, len(groups), b.critical_path, b.bound_s, b.tight_s,
               tuple(r["makespan_s"] for r in runs), (b.bound_s,) * len(runs),
               statistics.median(times["bare_groups"]), statistics.median(times["bare_dag"]),
               statistics.median(times["git_dag"]), figures)  # fmt: skip


def _ms(s: float) -> str:
    return "   n/a" if math.isnan(s) else f"{s * 1e3:6.1f}"


def print_rows(rows: Sequence[Row]) -> None:
    print(f"{'workload':<12} {'task':>6} {'seed':>4} {'tasks':>5} {'groups':>6} {'cp':>3} {'bound':>8} {'tight':>8}"
          f" {'makespan':>9} {'ratio':>6} {'/tight':>6} {'met':>4} {'bare_groups':>11} {'bare_dag':>9}"
          f" {'/dag':>6} {'git_dag':>8} {'/git':>6} {'run':>8}")  # fmt: skip
    for r in rows:
        print(f"{r.workload:<12} {r.task_s * 1e3:4.0f}ms {r.seed:>4} {r.tasks:>5} {r.groups:>6} {r.critical_path:>3}"
              f" {fmt_s(r.bound_s):>8} {fmt_s(r.tight_s):>8} {fmt_s(r.median_s):>9} {r.ratio:5.2f}x"
              f" {r.tight_ratio:5.2f}x {'yes' if r.ratio <= TARGET else 'no':>4} {fmt_s(r.bare_groups_s):>11}"
              f" {fmt_s(r.bare_dag_s):>9} {r.median_s / r.bare_dag_s:5.2f}x {fmt_s(r.git_dag_s):>8}"
              f" {r.median_s / r.git_dag_s:5.2f}x {fmt_s(r.figures['run_s']):>8}")  # fmt: skip
    for workload, task_s in dict.fromkeys((r.workload, r.task_s) for r in rows):
        mine = [r for r in rows if (r.workload, r.task_s) == (workload, task_s)]
        print(
            f"{workload:<12} {task_s * 1e3:4.0f}ms median over {len(mine)} graph(s): makespan / bound "
            f"{statistics.median(r.ratio for r in mine):.2f}x (target {TARGET:.2f}x), makespan / tight "
            f"{statistics.median(r.tight_ratio for r in mine):.2f}x, tight / bound "
            f"{statistics.median(r.tight_s / r.bound_s for r in mine):.2f}x; makespan / bare_dag "
            f"{statistics.median(r.median_s / r.bare_dag_s for r in mine):.2f}x (issue 14's target {TARGET:.2f}x); "
            f"makespan / git_dag {statistics.median(r.median_s / r.git_dag_s for r in mine):.2f}x"
        )
    print()
    print("where the time goes (ms; medians of rounds): task = start→succeed per task (process = the agent's")
    print("duration_s); excess = Σ group spans − groups × the task's length; between = Σ last succeed → next")
    print("ready (regression check + checkpoint); dispatch = Σ next ready → first start (ready moves, subagent")
    print("decisions); ckpt = a committing checkpoint's event after its group's last succeed; outside = the run")
    print("before its first event and after its last (reading tasks.yaml, creating the session; the final report)")
    print(f"{'workload':<12} {'len':>6} {'seed':>4} {'task':>6} {'process':>7} {'excess':>7} {'stagger':>7}"
          f" {'between':>7} {'/group':>6} {'dispatch':>8} {'ckpts':>5} {'ckpt':>6} {'ev/task':>7} {'planning':>8}"
          f" {'implementing':>12} {'validating':>10} {'outside':>7}")  # fmt: skip
    for r in rows:
        f = r.figures
        print(f"{r.workload:<12} {r.task_s * 1e3:4.0f}ms {r.seed:>4} {_ms(f['task_span_s'])} {_ms(f['process_s']):>7}"
              f" {_ms(f['in_group_excess_s']):>7} {_ms(f['stagger_s']):>7} {_ms(f['between_s']):>7}"
              f" {_ms(f['between_median_s'])} {_ms(f['dispatch_s']):>8} {f['checkpoints']:>5.0f}"
              f" {_ms(f['checkpoint_median_s'])} {f['events_per_task']:>7.1f} {_ms(f['planning_s']):>8}"
              f" {_ms(f['implementing_s']):>12} {_ms(f['validating_s']):>10} {_ms(f['outside_s']):>7}")  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    print()
    print("CPU per task (ms; user + system of this process's threads and of the processes they ran, whole runs):")
    print(f"budget = the CPU {cores} cores have a task in a makespan of {TARGET:.2f} × bare_dag, packed perfectly")
    print(f"{'workload':<12} {'len':>6} {'seed':>4} {'maestro':>8} {'bare_dag':>8} {'git_dag':>8} {'budget':>8}")
    for r in rows:
        f, k = r.figures, 1e3 / r.tasks
        budget = cores * TARGET * r.bare_dag_s * k
        print(f"{r.workload:<12} {r.task_s * 1e3:4.0f}ms {r.seed:>4} {f['cpu_maestro_s'] * k:8.1f}"
              f" {f['cpu_bare_dag_s'] * k:8.1f} {f['cpu_git_dag_s'] * k:8.1f} {budget:8.1f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object a row")
    parser.add_argument("--quick", action="store_true", help="one graph of 60 tasks, fewer rounds")
    parser.add_argument("--acceptance", action="store_true", help="also sleep+accept (slow: minutes a graph)")
    parser.add_argument(
        "--task-ms",
        default=f"{TASK_S * 1e3:g}",
        metavar="MS[,MS…]",
        help=f"how long each task sleeps, one run of every workload a length (default {TASK_S * 1e3:g})",
    )
    args = parser.parse_args()
    try:
        lengths = [float(ms) / 1e3 for ms in args.task_ms.split(",")]
    except ValueError:
        parser.error(f"--task-ms: {args.task_ms!r} is not a list of milliseconds")
    if not lengths or min(lengths) <= 0:
        parser.error(f"--task-ms: {args.task_ms!r}: every length must be above 0")
    workloads = [*WORKLOADS, *(ACCEPTANCE_WORKLOAD if args.acceptance else ())]
    seeds, n, rounds = ((1,), 60, 3) if args.quick else ((1, 2, 3), 200, 5)
    if not args.json:
        print(f"scheduler: random graphs of {n} tasks (seeds {', '.join(map(str, seeds))}), {WORKERS} workers, "
              f"tasks of {', '.join(f'{t * 1e3:g}' for t in lengths)} ms; {rounds} rounds after a warm-up; "
              "temporary folders on "
              f"{file_system(Path(tempfile.gettempdir()))}\n")  # fmt: skip
    rows = [measure(w, seed, n, rounds, t) for t in lengths for w in workloads for seed in seeds]
    if args.json:
        for row in rows:
            print(json.dumps(row.as_json()))
    else:
        print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
