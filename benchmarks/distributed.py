"""Benchmark: what running the attempts on a Dask cluster adds to each attempt, and what it ships.

    python benchmarks/distributed.py [--json] [--quick]

A repository of 1,000 and one of 10,000 files (100 files a folder, about 40 bytes each;
1,000 only with ``--quick``), committed with git.  On each, the same session is run in
process (``Runner(...).run``) with the local thread pool and with a Dask ``LocalCluster``
of two worker processes (one thread each; the workers' folders in a temporary folder), the
rounds interleaved (local, dask, local, dask …), after one warm-up session each: six tasks
in a chain (each depends on the one before, so one attempt runs at a time and each one's base
is the merge of the one before), the scripted agent writing one file a task, no acceptance
commands, every gate ``true``, ``parallel.max_workers: 2``.

Measured from the session's own ``events.jsonl``, per attempt: the task's ``start`` move to its
``succeed`` move — on the local pool, moving a pooled worktree to the base, the agent, the
capture, the merge, the checkpoint; on Dask, the same plus choosing the worker, the pack of
what it lacks, the submission, unpacking there, the result and the tree's pack coming back,
the commit made here (ship, run, return, merge).  The per-attempt overhead is the median of
Dask's attempts minus the median of the local ones (target: at most 100 ms on one machine,
warm).  The bytes shipped per attempt (the pack of the base's objects the worker lacks) are
read from the attempt's ``[Maestro]`` line: the first attempt of the first session on a fresh
cluster (cold: the whole tree) and the others (warm: the base commit and what changed since the
tree the worker holds).  This is a report: the exit code is 0.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# transitions package (which maestro imports): move it to the end, still there for _bench.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

from _bench import file_system, fmt_s
from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import parse_config
from maestro.run.runner import Runner
from maestro.store.filestore import Store

TASKS = 6
SHIPPED = re.compile(r"Task (\w+): attempt (\d+).* on (\S+) \(([\d,]+) bytes shipped\)")
PRD = """\
---
prd:
  version: v1
  feature_name: distributed benchmark
  status: approved
priorities:
  requirements:
    - {id: FR-1, text: "The feature", priority: P1}
---

# Product Requirements Document: Distributed benchmark

## Functional Requirements

| ID | Requirement | Priority | Notes |
|----|-------------|----------|-------|
| FR-1 | The feature | P1 | - |
"""


def config(executor: str) -> str:
    gates = "".join(f"  {g}: {{command: \"true\", required: {'true' if g == 'tests' else 'false'}}}\n"
                    for g in ("tests", "lint", "typecheck", "security"))  # fmt: skip
    return (f"parallel: {{max_workers: 2}}\nexecutor: {executor}\n"
            "limits: {max_iterations: 1, max_minutes: 60, budget_usd: null}\n" + "gates:\n" + gates)  # fmt: skip


def make_repo(root: Path, files: int) -> Path:
    repo = root / f"repo-{files}"
    for i in range(files):
        path = repo / f"d{i // 100:03d}" / f"f{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i} of the benchmark repository\n")
    (repo / ".gitignore").write_text(".flow/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@e"}  # fmt: skip
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    return repo


def plan_files(root: Path) -> tuple[Path, Path, dict[str, Any]]:
    root.mkdir(parents=True, exist_ok=True)
    tasks = [{"id": f"t{k}", "title": f"T{k}", "requirements": ["FR-1"], "files": [f"out/t{k}.txt"]}
             | ({"depends_on": [f"t{k - 1}"]} if k > 1 else {}) for k in range(1, TASKS + 1)]  # fmt: skip
    (root / "prd.md").write_text(PRD)
    (root / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}))
    script = {"version": 1, "tasks": {t["id"]: [{"actions": [{"write": {"path": f"out/{t['id']}.txt",
              "content": f"{t['id']}\n"}}]}] for t in tasks}}  # fmt: skip
    return root / "prd.md", root / "tasks.yaml", script


class Lines(logging.Handler):
    """Keeps the [Maestro] lines of a run."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def one_session(repo: Path, plan: Path, executor: str) -> dict[str, Any]:
    """Run the session; per attempt, start → succeed seconds, and the bytes each remote attempt shipped."""
    prd, tasks, script = plan_files(plan)
    store = Store(repo)
    cfg = parse_config(config(executor), plan / "config.yaml")
    agent = ScriptedAgent.from_mapping(script, plan)
    lines = Lines()
    logger = logging.getLogger("maestro.run")
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        t0 = time.perf_counter()
        outcome = Runner(store, cfg, agent, sleep=lambda s: None).run("bench", prd_path=prd, tasks_path=tasks)
        wall = time.perf_counter() - t0
    finally:
        logger.removeHandler(lines)
    assert outcome.state == "completed", outcome
    began: dict[str, dt.datetime] = {}
    spans: list[float] = []
    for e in store.read_events(outcome.session_id):
        if e.kind != "task":
            continue
        when = dt.datetime.fromisoformat(str(e.ts).replace("Z", "+00:00"))
        trigger, tid = e.data.get("trigger"), str(e.data.get("task"))
        if trigger == "start":
            began[tid] = when
        elif trigger == "succeed" and tid in began:
            spans.append((when - began.pop(tid)).total_seconds())
    shipped = [int(m[4].replace(",", "")) for line in lines.lines if (m := SHIPPED.search(line))]
    return {"spans": spans, "shipped": shipped, "wall_s": wall}


def measure(files: int, rounds: int, address: str, root: Path) -> dict[str, Any]:
    repo = make_repo(root, files)
    dask = address.replace("tcp://", "dask://")
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "dask": []}
    first = one_session(repo, root / f"plan-{files}-cold", dask)  # the cluster has never seen this repository
    one_session(repo, root / f"plan-{files}-warm-local", "local")
    for r in range(rounds):
        for name in ["local", "dask"] if r % 2 == 0 else ["dask", "local"]:
            runs[name].append(one_session(repo, root / f"plan-{files}-{name}-{r}", dask if name == "dask" else "local"))
    local = [s for run in runs["local"] for s in run["spans"]]
    remote = [s for run in runs["dask"] for s in run["spans"]]
    warm = [b for run in runs["dask"] for b in run["shipped"]]
    return {
        "files": files,
        "rounds": rounds,
        "attempts": {"local": len(local), "dask": len(remote)},
        "local_attempt_s": statistics.median(local),
        "dask_attempt_s": statistics.median(remote),
        "overhead_s": statistics.median(remote) - statistics.median(local),
        "ratio": statistics.median(remote) / statistics.median(local),
        "cold_bytes": first["shipped"][0],
        "cold_attempt_s": first["spans"][0],
        "first_session_warm_bytes": first["shipped"][1:],
        "warm_bytes_median": statistics.median(warm),
        "warm_bytes_max": max(warm),
        "session_wall_s": {
            "local": statistics.median(r["wall_s"] for r in runs["local"]),
            "dask": statistics.median(r["wall_s"] for r in runs["dask"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1,000 files, 2 rounds")
    args = parser.parse_args(argv)
    import distributed  # the optional dependency this benchmark is about

    sizes, rounds = ((1_000,), 2) if args.quick else ((1_000, 10_000), 5)
    root = Path(tempfile.mkdtemp(prefix="maestro-bench-dist-"))
    os.environ["MAESTRO_WORKTREES"] = str(root / "worktrees")
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      host="127.0.0.1", env={"MAESTRO_WORKER_DIR": str(root / "workers")},
                                      silence_logs=logging.ERROR) as cluster:  # fmt: skip
            results = [measure(n, rounds, cluster.scheduler_address, root) for n in sizes]
        machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "distributed": distributed.__version__,
                   "file_system": file_system(root)}  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"machine": machine, "results": results}, indent=2))
        return 0
    print(f"machine: {machine}")
    print(f"{'files':>7} {'local/attempt':>14} {'dask/attempt':>13} {'overhead':>9} {'ratio':>6} "
          f"{'cold ship':>10} {'cold attempt':>13} {'warm ship':>10} {'warm max':>9}")  # fmt: skip
    for r in results:
        cold, warm = f"{r['cold_bytes']:>10,} {fmt_s(r['cold_attempt_s']):>13}", f"{r['warm_bytes_median']:>10,.0f}"
        print(f"{r['files']:>7,} {fmt_s(r['local_attempt_s']):>14} {fmt_s(r['dask_attempt_s']):>13} "
              f"{fmt_s(r['overhead_s']):>9} {r['ratio']:>5.2f}x {cold} {warm} {r['warm_bytes_max']:>9,}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
