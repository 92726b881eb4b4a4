"""The ``recovery`` strategies (FR-5): which rung of the recovery ladder a failure takes.

Two questions, two kinds:

``recovery`` — a task attempt failed (or its merge conflicted, or the merged tree broke an
acceptance command): retry it in place, take an alternative approach, pause for a human, or
give up?  A failed attempt never touched the session's branch (it ran in a worktree of its
own), so no rung rolls anything back.  Asked as::

    engine.decide("recovery", task="b", failure_class="transient", summary="rate limited",
                  retries=0, max_retries=3, alternatives=0, max_alternatives=2, stuck=False,
                  last_checkpoint=1, next_delay_s=1.5)

The rungs, in order: ``retry`` (only a ``transient`` failure, while retries are left and
the error is not the same twice in a row), ``alternative`` (a new attempt from the
session's head with the failure as feedback, while alternatives are left), then ``pause``
(or ``give_up`` when ``on_exhausted="give_up"``: an unattended run that must end rather
than wait).  ``critical`` (the agent cannot work)
and ``ambiguous`` (a human must decide) go to ``pause`` at once.  Each option's score is
what is left of its rung (a retry scores between 0.7 and 0.9, an alternative between
0.4 and 0.6, a pause 0.3), so the ladder's order is the scores' order, and the evidence
says why each rung is open or closed: the failure class, the rungs used, the same error
twice, the money spent, and what earlier sessions chose for the same failure class.  An approved
``recovery_rung`` lesson about the failure class (``maestro lessons``) lifts its rung to
:data:`LESSON_SCORE` when that rung is open, and the option cites it (evidence of kind ``lesson``).

``session_recovery`` — the session is in ``recovering`` (a task gave up, or a session driven
by hand asked for it): roll the session's tree back to the last checkpoint, go straight back
(``retry``: there is nothing to undo, the tree is already at the checkpoint), or give up.
Params: ``changed`` (the tree differs from the checkpoint), ``give_up`` (a task's recovery
decided so), ``last_checkpoint``, ``tasks`` (the tasks that need recovering).

``merge`` — a succeeded attempt does not merge onto the session branch (other tasks changed
the same lines since it started): re-run it on the new head with the conflicting hunks as
feedback (the recovery ladder then counts it as an alternative), or ask a human when the
conflict is not in text.  Params: ``task_id``, ``conflicts`` (the paths).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, Option
from maestro.decide.context import DecisionContext
from maestro.decide.lessons import cite, lessons_for
from maestro.store.lessons import Lesson

__all__ = ["LESSON_SCORE", "RUNGS", "merge", "recovery", "session_recovery"]

RUNGS = ("retry", "alternative", "pause", "give_up")
HUMAN = frozenset({"critical", "ambiguous"})
_PAUSE_SCORE = 0.3
_GIVE_UP_SCORE = 0.35  # above a pause: chosen over it only where the run was told to give up
LESSON_SCORE = 0.95
"""An open rung an approved lesson recommends for the failure class scores this (above every rung of the ladder
but a human's pause for a critical or ambiguous failure, where no other rung is open)."""


def _int(ctx: DecisionContext, name: str, default: int = 0) -> int:
    value = ctx.params.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecisionError(f"{ctx.kind}: {name} must be a whole number ≥ 0, not {value!r}")
    return value


def _history(history: Sequence[Mapping[str, Any]], failure_class: str) -> Evidence | None:
    """What earlier sessions chose for this failure class (the history across sessions)."""
    counts: dict[str, int] = {}
    for entry in history:
        d = entry.get("decision", {})
        options = d.get("options") or []
        evidence = options[0].get("evidence", []) if options and isinstance(options[0], dict) else []
        if any(isinstance(e, dict) and e.get("value") == failure_class for e in evidence):
            choice = d.get("choice")
            if isinstance(choice, str):
                counts[choice] = counts.get(choice, 0) + 1
    if not counts:
        return None
    said = ", ".join(f"{c} {n}x" for c, n in sorted(counts.items()))
    return Evidence("fact", f"earlier sessions, {failure_class} failures: {said}", "decisions/recovery.json")


def _follow_lesson(
    ctx: DecisionContext, failure_class: str, options: tuple[Option, ...]
) -> tuple[tuple[Option, ...], Lesson | None]:
    """The options with the rung of the best approved ``recovery_rung`` lesson about ``failure_class`` lifted to
    :data:`LESSON_SCORE` and citing it, when that rung is open (a closed rung stays closed: no lesson opens it)."""
    for lesson in lessons_for(ctx.lessons, "recovery_rung", failure_class):
        rung = next((o for o in options if o.name == lesson.choice), None)
        if rung is None or rung.score <= 0:
            continue
        lifted = attrs.evolve(rung, score=max(rung.score, LESSON_SCORE), evidence=(*rung.evidence, cite(lesson)))
        return tuple(lifted if o is rung else o for o in options), lesson
    return options, None


def recovery(ctx: DecisionContext) -> Decision:
    """The rung for a failed attempt (see the module docstring)."""
    p = ctx.params
    failure_class = p.get("failure_class")
    if not isinstance(failure_class, str) or not failure_class:
        raise DecisionError(f"{ctx.kind}: pass failure_class= (transient, implementation, test_failure, critical, "
                            "ambiguous, regression or conflict)")  # fmt: skip
    task = p.get("task_id", "?")
    summary = str(p.get("summary", ""))
    retries, max_retries = _int(ctx, "retries"), _int(ctx, "max_retries")
    alternatives, max_alternatives = _int(ctx, "alternatives"), _int(ctx, "max_alternatives")
    checkpoint = _int(ctx, "last_checkpoint")
    stuck = bool(p.get("stuck", False))
    delay = float(p.get("next_delay_s", 0.0))
    on_exhausted = p.get("on_exhausted", "pause")
    if on_exhausted not in ("pause", "give_up"):
        raise DecisionError(f"{ctx.kind}: on_exhausted is pause or give_up, not {on_exhausted!r}")

    cls = Evidence("fact", failure_class)  # first: the failure class (the history reads it there)
    facts = [cls]
    spent, budget = p.get("spent_usd"), p.get("budget_usd")
    if isinstance(spent, (int, float)) and spent:
        facts.append(Evidence("fact", f"${spent:.4f} spent", f"of ${budget:g}" if budget is not None else "no budget"))
    past = _history(ctx.history, failure_class)
    if past is not None:
        facts.append(past)

    # retry in place
    if failure_class != "transient":
        retry_score, retry_why = 0.0, f"a {failure_class} failure does not go away by itself"
    elif stuck:
        retry_score, retry_why = 0.0, "the same error twice in a row"
    elif retries >= max_retries:
        retry_score, retry_why = 0.0, f"all {max_retries} retries used"
    else:
        retry_score = round(0.9 - 0.2 * retries / max(1, max_retries), 3)
        retry_why = f"{max_retries - retries} of {max_retries} retries left"
    # another approach, from the session's head
    if failure_class in HUMAN:
        alt_score, alt_why = 0.0, f"a {failure_class} failure needs a human, not another approach"
    elif alternatives >= max_alternatives:
        alt_score, alt_why = 0.0, f"all {max_alternatives} alternatives used"
    else:
        alt_score = round(0.6 - 0.2 * alternatives / max(1, max_alternatives), 3)
        alt_why = f"{max_alternatives - alternatives} of {max_alternatives} alternatives left"
    human = failure_class in HUMAN
    pause_why = "a human decides" + (": the agent cannot work" if failure_class == "critical" else "")
    pause_score = 1.0 if human else _PAUSE_SCORE
    give_up_score = _GIVE_UP_SCORE if on_exhausted == "give_up" and not human else 0.0
    options: tuple[Option, ...] = (
        Option("retry", retry_score, (*facts, Evidence("fact", retry_why))),
        Option("alternative", alt_score, (cls, Evidence("fact", alt_why))),
        Option("pause", pause_score, (cls, Evidence("fact", pause_why))),
        Option("give_up", give_up_score, (cls, Evidence("fact", f"on_exhausted: {on_exhausted}"))),
    )
    ladder = max(options, key=lambda o: o.score).name  # ties: the earlier rung (max keeps the first)
    options, lesson = _follow_lesson(ctx, failure_class, options)
    choice = lesson.choice if lesson is not None else ladder

    if choice == "retry":
        rationale = f"transient failure: retry {retries + 1} of {max_retries} after {delay:g} s backoff"
    elif choice == "alternative":
        nth = f"alternative {alternatives + 1} of {max_alternatives}"
        if failure_class == "regression":
            rationale = f"regression: {summary}; the merge is not kept: {nth} from checkpoint {checkpoint}"
        elif failure_class == "conflict":
            rationale = f"{summary}: {nth} on checkpoint {checkpoint} with the conflicting hunks as feedback"
        else:
            why = "the same error twice in a row" if stuck else failure_class
            rationale = f"{why}: {nth} from checkpoint {checkpoint} with the failure as feedback (nothing to roll back)"
    elif failure_class == "critical":
        rationale = f"the agent cannot work: {summary}"
    elif failure_class == "ambiguous":
        rationale = f"a human must decide: {summary}"
    elif failure_class == "regression":
        rationale = f"the task keeps breaking earlier work ({alternatives} alternatives): {summary}"
    else:
        rationale = f"every rung used ({retries} retries, {alternatives} alternatives)"
        if choice == "give_up":
            rationale += ": giving up (on_exhausted: give_up)"
    if lesson is not None and choice != ladder:
        if choice == "pause":
            rationale = f"a human decides: {summary}" if summary else "a human decides"
        elif choice == "give_up":
            rationale = "giving up"
        rationale += f" (approved lesson {lesson.id}: {lesson.claim}; the ladder's rung was {ladder})"
    elif lesson is not None:
        rationale += f" (as approved lesson {lesson.id} says: {lesson.claim})"
    return Decision(
        "recovery",
        f"Task {task} failed ({failure_class}): what next?",
        choice,
        rationale,
        options=options,
        confidence=max(o.score for o in options),
    )


def session_recovery(ctx: DecisionContext) -> Decision:
    """What the session does in ``recovering``: roll back, go straight back, or give up."""
    changed = bool(ctx.params.get("changed", True))
    give_up = bool(ctx.params.get("give_up", False))
    checkpoint = _int(ctx, "last_checkpoint")
    tasks = ", ".join(str(t) for t in ctx.params.get("tasks", ()))
    gave = "a task's recovery gave up" if give_up else "no task gave up"
    dirty = Evidence("fact", "the tree differs from the checkpoint" if changed else "the tree is at the checkpoint")
    options = (
        Option("rollback", 0.0 if give_up or not changed else 1.0, (dirty,)),
        Option("retry", 0.0 if give_up or changed else 1.0, (dirty,)),
        Option("give_up", 1.0 if give_up else 0.0, (Evidence("fact", gave),)),
    )
    choice = max(options, key=lambda o: o.score).name
    if choice == "rollback":
        rationale = f"tasks {tasks} need the tree back at checkpoint {checkpoint}"
    elif choice == "retry":
        rationale = f"tasks {tasks} left the tree at checkpoint {checkpoint}: nothing to undo, straight back"
    else:
        rationale = f"tasks {tasks}: every rung used, and the run gives up rather than wait for a human"
    return Decision("session_recovery", "The group needs recovering: how?", choice, rationale, options=options,
                    checkpoint=checkpoint)  # fmt: skip


def merge(ctx: DecisionContext) -> Decision:
    """What a conflicting merge leads to (see the module docstring)."""
    task = ctx.params.get("task_id", "?")
    paths = [str(c) for c in ctx.params.get("conflicts", ())]
    if not paths:
        raise DecisionError(f"{ctx.kind}: pass conflicts= (the conflicting paths)")
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    where = Evidence("fact", f"conflicts in {shown}")
    options = (
        Option("rerun", 0.8, (where, Evidence("fact", "the task's agent sees the new code and the conflicting hunks"))),
        Option("pause", 0.3, (where, Evidence("fact", "a human merges by hand"))),
    )
    return Decision(
        "merge",
        f"Task {task}'s work conflicts with what was merged since it started: what next?",
        "rerun",
        f"re-run task {task} on the session's head with the conflicting hunks of {shown} as feedback "
        "(the recovery ladder counts it as an alternative)",
        options=options,
        confidence=0.8,
    )
