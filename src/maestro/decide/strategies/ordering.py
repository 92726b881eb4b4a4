"""The ``task_ordering`` strategy (FR-4): foundational_first > risk_early > parallel, with the groups as evidence.

The ordering itself (list scheduling into parallel groups) is :func:`maestro.plan.ordering.order_tasks`.
"""

from __future__ import annotations

from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, Option
from maestro.core.text import counted
from maestro.decide.context import DecisionContext
from maestro.plan.ordering import order_tasks
from maestro.plan.tasks import TaskGraph

__all__ = ["task_ordering"]


def task_ordering(ctx: DecisionContext) -> Decision:
    """The ``task_ordering`` strategy: params ``graph`` (a TaskGraph) and ``max_parallel`` (int or None)."""
    graph = ctx.params.get("graph")
    if not isinstance(graph, TaskGraph):
        raise DecisionError("task_ordering: pass graph=<TaskGraph> to decide()")
    cap = ctx.params.get("max_parallel")
    ordering = order_tasks(graph, max_parallel=cap)
    n = len(graph)
    chain = graph.longest_chain()
    facts: list[Evidence] = []
    ranked = sorted(graph.ids, key=lambda t: -ordering.dependents[t])  # stable: ties keep file order
    for tid in ranked[:5]:
        if ordering.dependents[tid]:
            facts.append(Evidence("fact", f"{tid} is foundational", _depend_text(ordering.dependents[tid])))
    facts.extend(Evidence("fact", f"{t.id} is high risk", "scheduled early") for t in graph if t.risk == "high")
    facts.append(Evidence("fact", f"longest dependency chain: {chain} tasks", "no order has fewer groups"))
    if cap is not None:
        facts.append(Evidence("fact", f"at most {cap} tasks at once", "parallel.max_workers"))
    facts.extend(Evidence("fact", f"explicit group {g} dissolved", "it and another group wait for each other")
                 for g in ordering.dissolved)  # fmt: skip
    facts.extend(Evidence("fact", f"explicit group {g} split", f"larger than {cap}") for g in ordering.split)
    if graph.source:
        facts.insert(0, Evidence("file", graph.source, f"{n} tasks"))
    chosen = Option("foundational_first", 1.0, tuple(facts), notes=ordering.describe())
    sequential = Option(
        "sequential", round(len(ordering.groups) / n, 3) if n else 0.0,
        (Evidence("fact", f"{n} groups of one task each", "no parallelism"),),
        notes=" | ".join(f"G{i + 1}: {t}" for i, t in enumerate(graph.topological())),
    )  # fmt: skip
    width = max((len(g) for g in ordering.groups), default=0)
    rationale = (
        f"foundational_first > risk_early > parallel: {counted(n, 'task')} in {counted(len(ordering.groups), 'group')} "
        f"(longest chain {chain}, widest group {width}"
        + (f", capped at {cap}" if cap is not None else "")
        + f"): {ordering.describe()}"
    )
    return Decision(
        "task_ordering",
        f"In what order, and how many at once, should the {n} tasks run?",
        "foundational_first",
        rationale,
        options=(chosen, sequential),
        confidence=1.0 if not ordering.dissolved else 0.8,
    )


def _depend_text(n: int) -> str:
    return "1 task depends on it" if n == 1 else f"{n} tasks depend on it"
