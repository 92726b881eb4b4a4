"""The ``subagent`` strategy (FR-14): which subagent of ``.claude/agents/`` works on a task.

Discovery (:mod:`maestro.agents.registry`) and the choosing rules (:mod:`maestro.agents.choosing`)
live with the agents; this is the decision the engine makes with them.
"""

from __future__ import annotations

from collections.abc import Mapping

from maestro.agents.choosing import choose_subagent
from maestro.agents.registry import Registry, discover
from maestro.core.errors import DecisionError
from maestro.core.records import Decision
from maestro.decide.context import DecisionContext
from maestro.plan.tasks import Task

__all__ = ["subagent_strategy"]


def subagent_strategy(ctx: DecisionContext) -> Decision:
    """The ``subagent`` decision: ``engine.register("subagent", subagent_strategy)``.

    Parameters: ``for_task`` (the :class:`~maestro.plan.tasks.Task`, required; ``task``
    is accepted too when a context is built by hand, but
    :meth:`~maestro.DecisionEngine.decide` keeps its own ``task=`` for the link id),
    ``registry`` (a :class:`Registry`; default: :func:`discover` on the context's
    repository and ``home``), ``mapping`` (category → subagent, e.g. from
    :func:`~maestro.agents.registry.overrides_from_config`) and ``triggers`` (subagent → extra words)::

        engine.decide("subagent", state=session.state, for_task=task, registry=registry, task=task.id)

    The decision is linked to the task's id.
    """
    task = ctx.params.get("for_task", ctx.params.get("task"))
    if not isinstance(task, Task):
        raise DecisionError(f"{ctx.kind}: pass for_task=<a Task>, not {task!r}")
    registry = ctx.params.get("registry")
    if registry is None:
        if ctx.repo is None:
            raise DecisionError(f"{ctx.kind}: pass registry= or a repository to discover subagents in")
        registry = discover(ctx.repo, ctx.params.get("home"))
    elif not isinstance(registry, Registry):
        raise DecisionError(f"{ctx.kind}: registry must be a Registry, not {type(registry).__name__}")
    mapping = ctx.params.get("mapping")
    if mapping is not None and (
        not isinstance(mapping, Mapping) or not all(isinstance(v, str) for v in mapping.values())
    ):
        raise DecisionError(f"{ctx.kind}: mapping must map categories to subagent names, not {mapping!r}")
    triggers = ctx.params.get("triggers")
    if triggers is not None and (
        not isinstance(triggers, Mapping)
        or not all(isinstance(v, (list, tuple)) and all(isinstance(w, str) for w in v) for v in triggers.values())
    ):
        raise DecisionError(f"{ctx.kind}: triggers must map subagent names to lists of words, not {triggers!r}")
    return choose_subagent(task, registry, mapping, triggers=triggers)
