"""The guards the built-in charts name: pure functions of the recorded state.

A guard registry maps each name a chart declares to a function of a
:class:`~maestro.model.machine.GuardContext`.  Guards decide from what the
event log says and nothing else (no git, no agents, no clock), so a replayed
session takes the same moves.  Pass any mapping to
:meth:`~maestro.Session.create` / :meth:`~maestro.Session.open` to replace them;
:meth:`~maestro.DecisionEngine.guards` returns these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from maestro.core.records import GateResult
from maestro.model.machine import Guard, GuardContext

__all__ = [
    "DEFAULT_GUARDS",
    "attempts_left",
    "failing_gates",
    "has_checkpoint",
    "required_gates_passed",
    "within_iteration_limit",
]


def has_checkpoint(ctx: GuardContext) -> bool:
    """At least one git checkpoint has been recorded."""
    return bool(ctx.session.checkpoints)


def within_iteration_limit(ctx: GuardContext) -> bool:
    """Another refinement iteration fits within ``limits.max_iterations``."""
    return ctx.session.iteration < ctx.session.limits.max_iterations


def failing_gates(results: Iterable[GateResult]) -> tuple[str, ...]:
    """The required gates whose latest result is not ``passed``, sorted (a skipped required gate blocks too).

    A gate run again (after a retry) counts as it last ran.  The one definition: the guard below, the
    refinement decision and the runner's feedback all ask it.
    """
    latest = {g.name: g for g in results}
    return tuple(sorted(n for n, g in latest.items() if g.required and g.status != "passed"))


def required_gates_passed(ctx: GuardContext) -> bool:
    """The current validation round recorded gates, and the latest result of every required one passed."""
    return bool(ctx.session.gates) and not failing_gates(ctx.session.gates)


def attempts_left(ctx: GuardContext) -> bool:
    """The task has started fewer attempts than ``limits.max_task_attempts``."""
    if ctx.task is None:
        return False
    task = ctx.session.tasks.get(ctx.task)
    attempts = task.attempts if task is not None else 0
    return attempts < ctx.session.limits.max_task_attempts


DEFAULT_GUARDS: Mapping[str, Guard] = MappingProxyType(
    {
        "has_checkpoint": has_checkpoint,
        "within_iteration_limit": within_iteration_limit,
        "required_gates_passed": required_gates_passed,
        "attempts_left": attempts_left,
    }
)
