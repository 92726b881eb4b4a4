"""Benchmark: the ordering decision (:func:`maestro.order_tasks`) against a bare topological sort.

    python benchmarks/ordering.py [--json] [--quick] [--sizes 1000,4000,16000] [--decision]

Graphs (seeded, so every run orders the same ones), at 1,000, 4,000 and 16,000
tasks (1,000 and 4,000 with ``--quick``):

* ``random`` — n tasks, each depending on up to 3 earlier ones (a wide, deep DAG);
* ``chain`` — n tasks, each depending on the one before (n groups of one);
* ``wide`` — one root and n - 1 tasks depending on it (under the cap of 8, the
  case whose rounds used to re-sort every ready task: 16,000 tasks took 2 s);
* ``chain of groups`` — n tasks in a chain, each in its own explicit group (the
  case whose check for groups waiting on each other used to be quadratic);
* ``layers`` — 50 tasks a layer, each depending on 2 tasks of the layer before,
  one explicit group a layer.

For each, ``order_tasks(graph, max_parallel=8)`` is timed against the baseline
``graphlib.TopologicalSorter`` walking the same dependencies in ready batches
(``get_ready``/``done``): the least any ordering must do.  The ordering also
counts transitive dependents, applies the cap and the tie-breaks, and handles
groups, so a ratio of a few times is the expected cost of those rules.  Rounds
of subject and baseline are interleaved after a warm-up; medians are quoted.
``--decision`` also times the whole ``task_ordering`` decision (the ordering and
its evidence) on the random graphs, 3 rounds, against the same baseline.
This is a report: the exit code is 0.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from graphlib import TopologicalSorter
from pathlib import Path

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# transitions package: move it to the end.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import attrs

from _bench import Medians, fmt_s, interleaved
from maestro.decide.context import DecisionContext
from maestro.decide.strategies.ordering import task_ordering
from maestro.plan.ordering import order_tasks
from maestro.plan.tasks import Task, TaskGraph, validate_graph


def random_graph(n: int) -> TaskGraph:
    rnd = random.Random(n)
    return validate_graph(
        [Task(f"T{i}", "t", depends_on=sorted({f"T{rnd.randrange(i)}" for _ in range(min(i, 3))})) for i in range(n)]
    )


def chain(n: int) -> TaskGraph:
    return validate_graph([Task(f"T{i}", "t", depends_on=[f"T{i - 1}"] if i else []) for i in range(n)])


def wide(n: int) -> TaskGraph:
    return validate_graph([Task(f"T{i}", "t", depends_on=["T0"] if i else []) for i in range(n)])


def decision(graph: TaskGraph) -> object:
    return task_ordering(DecisionContext("task_ordering", params={"graph": graph, "max_parallel": 8}))


def chain_of_groups(n: int) -> TaskGraph:
    return validate_graph([Task(f"T{i}", "t", depends_on=[f"T{i - 1}"] if i else [], group=f"G{i}") for i in range(n)])


def layers(n: int) -> TaskGraph:
    rnd = random.Random(n)
    width = 50
    tasks = []
    for i in range(n):
        layer = i // width
        deps = [] if layer == 0 else sorted({f"T{(layer - 1) * width + rnd.randrange(width)}" for _ in range(2)})
        tasks.append(Task(f"T{i}", "t", depends_on=deps, group=f"L{layer}"))
    return validate_graph(tasks)


def baseline(graph: TaskGraph) -> int:
    sorter = TopologicalSorter({t.id: t.depends_on for t in graph})
    sorter.prepare()
    rounds = 0
    while sorter.is_active():
        ready = sorter.get_ready()
        sorter.done(*ready)
        rounds += 1
    return rounds


@attrs.frozen
class Row(Medians):
    graph: str
    tasks: int
    groups: int
    rounds_s: tuple[float, ...]
    baseline_rounds_s: tuple[float, ...]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object a row")
    parser.add_argument("--quick", action="store_true", help="smaller graphs, fewer rounds")
    parser.add_argument("--sizes", help="comma-separated task counts (default 1000,4000,16000)")
    parser.add_argument("--decision", action="store_true", help="also time the task_ordering decision")
    args = parser.parse_args()
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else (1000, 4000) if args.quick else (
        1000, 4000, 16000)  # fmt: skip
    rounds = 5 if args.quick else 9
    shapes = (("random", random_graph), ("chain", chain), ("wide", wide), ("chain of groups", chain_of_groups),
              ("layers", layers))  # fmt: skip
    rows = []
    for n in sizes:
        for name, make in shapes:
            graph = make(n)
            groups = len(order_tasks(graph, max_parallel=8).groups)
            times = interleaved(
                {"maestro": lambda g=graph: order_tasks(g, max_parallel=8), "graphlib": lambda g=graph: baseline(g)},
                rounds,
            )
            rows.append(Row(name, n, groups, times["maestro"], times["graphlib"]))
        if args.decision:
            graph = random_graph(n)
            groups = len(order_tasks(graph, max_parallel=8).groups)
            times = interleaved({"maestro": lambda g=graph: decision(g), "graphlib": lambda g=graph: baseline(g)}, 3)
            rows.append(Row("random, decision", n, groups, times["maestro"], times["graphlib"]))
    for row in rows:
        if args.json:
            print(json.dumps({"graph": row.graph, "tasks": row.tasks, "groups": row.groups,
                              "median_s": row.median_s, "baseline_median_s": row.baseline_median_s,
                              "ratio": row.ratio}))  # fmt: skip
        else:
            print(f"{row.graph:<16} {row.tasks:>6} tasks {row.groups:>6} groups  order_tasks {fmt_s(row.median_s):>9}"
                  f"  graphlib {fmt_s(row.baseline_median_s):>9}  ratio {row.ratio:5.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
