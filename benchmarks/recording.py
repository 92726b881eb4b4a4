"""Benchmark: what recording each attempt's changes (for re-drive) costs a session.

    python benchmarks/recording.py [--quick] [--rounds N]

The scheduler benchmark's sessions (``benchmarks/scheduler.py``: random graphs of 200
tasks, 8 workers, 50 ms command tasks; 60 tasks and one graph with ``--quick``) are run
with the runner's recording agent and without it (the baseline: the command agent
alone), in alternate runs so that machine noise hits both.  Reported: for each workload,
the median makespan over the graphs' bound, with and without recording, and their
ratio.  Exit code 0 either way: this is a report.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# transitions package (which maestro imports): move it to the end, still there for scheduler.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import maestro.run.runner as runner_module
import scheduler as sched  # the scheduler benchmark's graphs, sample and analysis
from maestro.config.reader import parse_config
from maestro.plan.ordering import order_tasks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 tasks, one graph, 2 rounds")
    ap.add_argument("--rounds", type=int, default=None, help="rounds after the warm-up (default 3; 2 with --quick)")
    args = ap.parse_args()
    n, seeds = (60, (1,)) if args.quick else (200, (1, 2, 3))
    rounds = args.rounds or (2 if args.quick else 3)
    recording = runner_module._recording
    config = parse_config(sched.CONFIG)
    ratios: dict[tuple[str, bool], list[float]] = {}
    for workload, (command, _accept) in sched.WORKLOADS.items():
        for seed in seeds:
            graph = sched.random_graph(n, seed)
            groups = order_tasks(graph, max_parallel=sched.WORKERS).groups
            bound = sched.bounds(graph).bound_s
            for rnd in range(rounds + 1):  # round 0 warms up
                for on in (True, False) if rnd % 2 == 0 else (False, True):
                    runner_module._recording = recording if on else (lambda agent: agent)
                    base = Path(tempfile.mkdtemp(prefix="maestro-bench-recording-"))
                    try:
                        sched.make_sample(base, graph)
                        wall, events = sched.run_maestro(base, command, config)
                        makespan = sched.analyse(wall, events, groups)["makespan_s"]
                    finally:
                        shutil.rmtree(base, ignore_errors=True)
                        runner_module._recording = recording
                    if rnd:
                        ratios.setdefault((workload, on), []).append(makespan / bound)
    print(f"recording: {n}-task graphs (seeds {', '.join(map(str, seeds))}), {sched.WORKERS} workers, "
          f"{rounds} rounds after a warm-up; makespan / bound, medians")  # fmt: skip
    print(f"{'workload':<12} {'off':>7} {'on':>7} {'on/off':>7}")
    for workload in sched.WORKLOADS:
        without = statistics.median(ratios[(workload, False)])
        with_it = statistics.median(ratios[(workload, True)])
        print(f"{workload:<12} {without:>6.2f}x {with_it:>6.2f}x {with_it / without:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
