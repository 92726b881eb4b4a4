"""The decision strategies maestro ships, by decision kind.

``tech_stack`` (FR-2, :mod:`~maestro.strategies.techstack`): which library serves a capability.
``architecture`` (FR-3, :mod:`~maestro.strategies.architecture`): which layout new code follows.
``gate`` (:mod:`~maestro.strategies.tooling`): which tool runs each validation gate.
``task_ordering`` (FR-4, :mod:`~maestro.ordering`): the order and parallel groups of a task graph.
``subagent`` (FR-14, :mod:`~maestro.agents.registry`): which subagent works on a task.

Each is a :data:`~maestro.decisions.Strategy`; :class:`~maestro.decisions.DecisionEngine`
uses :data:`STRATEGIES` by default.
"""

from __future__ import annotations

from maestro.agents.registry import subagent_strategy
from maestro.decisions import Strategy
from maestro.ordering import task_ordering
from maestro.strategies.architecture import architecture
from maestro.strategies.techstack import load_catalogue, tech_stack
from maestro.strategies.tooling import GATES, gate, gate_command

__all__ = [
    "GATES",
    "STRATEGIES",
    "architecture",
    "gate",
    "gate_command",
    "load_catalogue",
    "task_ordering",
    "tech_stack",
]

STRATEGIES: dict[str, Strategy] = {
    "tech_stack": tech_stack,
    "architecture": architecture,
    "gate": gate,
    "task_ordering": task_ordering,
    "subagent": subagent_strategy,
}
"""Decision kind → the strategy that decides it."""
