"""The decision strategies maestro ships, by decision kind.

``tech_stack`` (FR-2, :mod:`~maestro.decide.strategies.tech_stack`): which library serves a capability.
``architecture`` (FR-3, :mod:`~maestro.decide.strategies.architecture`): which layout new code follows.
``gate`` (:mod:`~maestro.decide.strategies.gate`): which tool runs each validation gate.
``task_ordering`` (FR-4, :mod:`~maestro.decide.strategies.ordering`): the order and parallel groups of a task graph.
``recovery``, ``session_recovery``, ``merge`` (FR-5, :mod:`~maestro.decide.strategies.recovery`): the ladder's rung.
``refinement`` (FR-12, :mod:`~maestro.decide.strategies.refinement`): hand off, refine, ask or stop after validation.
``subagent`` (FR-14, :mod:`~maestro.decide.strategies.subagent`): which subagent works on a task.
``environment`` (:mod:`~maestro.decide.strategies.environment`): what commands in a worktree need to use its code.

Each is a :data:`~maestro.decide.engine.Strategy`; :class:`~maestro.decide.engine.DecisionEngine`
uses :data:`STRATEGIES` by default.
"""

from __future__ import annotations

from maestro.decide.context import Strategy
from maestro.decide.strategies.architecture import architecture
from maestro.decide.strategies.environment import environment
from maestro.decide.strategies.gate import GATES, gate, gate_command
from maestro.decide.strategies.ordering import task_ordering
from maestro.decide.strategies.recovery import merge, recovery, session_recovery
from maestro.decide.strategies.refinement import refinement
from maestro.decide.strategies.subagent import subagent_strategy
from maestro.decide.strategies.tech_stack import load_catalogue, tech_stack

__all__ = [
    "GATES",
    "STRATEGIES",
    "architecture",
    "gate",
    "gate_command",
    "load_catalogue",
    "merge",
    "recovery",
    "refinement",
    "session_recovery",
    "subagent_strategy",
    "task_ordering",
    "tech_stack",
]

STRATEGIES: dict[str, Strategy] = {
    "tech_stack": tech_stack,
    "architecture": architecture,
    "gate": gate,
    "task_ordering": task_ordering,
    "subagent": subagent_strategy,
    "recovery": recovery,
    "session_recovery": session_recovery,
    "merge": merge,
    "refinement": refinement,
    "environment": environment,
}
"""Decision kind → the strategy that decides it."""
