"""The ``subagent`` strategy (FR-14): which subagent of ``.claude/agents/`` works on a task.

Discovery (:mod:`maestro.agents.registry`) and the choosing rules (:mod:`maestro.agents.choosing`)
live with the agents; this is the decision the engine makes with them.  An approved ``subagent`` lesson about
the task's category (``maestro lessons``) comes after the task's own field and ``config.yaml``'s mapping and
before the default mapping and the trigger words; the decision cites it (evidence of kind ``lesson``).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from maestro.agents.choosing import GENERAL, choose_subagent
from maestro.agents.registry import Registry, discover
from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, Option
from maestro.decide.context import DecisionContext
from maestro.decide.lessons import cite, lessons_for
from maestro.plan.tasks import Task

__all__ = ["LESSON_SCORE", "subagent_strategy"]

LESSON_SCORE = 0.85
"""The subagent an approved lesson names for the task's category scores this: below the task's own field (1.0)
and config.yaml's mapping (0.9), above the default mapping (0.8) and the trigger words."""
_HUMAN_RULES = ("explicit", "config_mapping")


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
    return _follow_lesson(ctx, task, registry, choose_subagent(task, registry, mapping, triggers=triggers))


def _follow_lesson(ctx: DecisionContext, task: Task, registry: Registry, decision: Decision) -> Decision:
    """The decision again, following the best approved ``subagent`` lesson about the task's category: its subagent
    (installed, or the general agent) scores :data:`LESSON_SCORE`, is chosen and cites the lesson.  The task's own
    ``subagent`` field and ``config.yaml``'s mapping (the first two rules) come first: a human said so there."""
    rule = decision.rationale.partition(":")[0]
    if rule in _HUMAN_RULES:
        return decision
    for lesson in lessons_for(ctx.lessons, "subagent", task.category.strip().lower()):
        name = lesson.choice
        sub = registry.subagent(name)
        if name != GENERAL and sub is None:
            continue  # not installed (any more): the lesson cannot be followed
        where = registry.shown_path(sub) if sub is not None else None
        found = next((o for o in decision.options if o.name == name), None)
        if found is None:
            base = (Evidence("file", where, "subagent"),) if where else ()
            found = Option(name, 0.0, base)
        lifted = attrs.evolve(found, score=max(found.score, LESSON_SCORE), evidence=(*found.evidence, cite(lesson)),
                              notes="; ".join(n for n in ("chosen by lesson", found.notes) if n))  # fmt: skip
        options = [lifted if o.name == name else o for o in decision.options]
        if found not in decision.options:
            options.insert(0, lifted)
        at = f" ({where})" if where else ""
        if name == decision.choice:
            rationale = f"{decision.rationale} (as approved lesson {lesson.id} says: {lesson.claim})"
        else:
            rationale = (f"lesson: approved lesson {lesson.id}: {lesson.claim}{at}; "
                         f"without it: {decision.choice} ({decision.rationale})")  # fmt: skip
        return attrs.evolve(decision, choice=name, rationale=rationale, options=tuple(options),
                            confidence=max(decision.confidence, LESSON_SCORE))  # fmt: skip
    return decision
