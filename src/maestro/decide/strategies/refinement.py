"""The ``refinement`` strategy (FR-12): after validation, hand off, refine, or stop.

Asked in ``reviewing`` as::

    engine.decide("refinement", gates=latest_round, iteration=1, max_iterations=3,
                  skipped=("a",), undone=())

The options: ``handoff`` (every required gate passed: the chart's ``required_gates_passed``
guard lets nothing else hand off), ``refine`` (another iteration with what validation
found, while iterations are left and an agent can still change the outcome), ``ask``
(requirements are unmet only because a human skipped tasks — unless ``more_to_do=True``: validation also
found a broken acceptance or an uncovered requirement, which refinement takes on — or ``actionable=False``: what
validation found is nothing an agent can change, such as a required gate skipped for want of its
tool; no refinement can help, a human decides whether to hand off as is), ``stop`` (the
iteration limit is reached: a human decides whether to raise it, hand off or abort) and
``give_up`` (instead of ``stop`` where the run was told to: ``on_exhausted="give_up"``).  The
evidence names each failing
required gate with its summary.
"""

from __future__ import annotations

from collections.abc import Sequence

from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, GateResult, Option
from maestro.decide.context import DecisionContext
from maestro.model.guards import failing_gates

__all__ = ["refinement"]


def refinement(ctx: DecisionContext) -> Decision:
    """Hand off, refine, ask, stop or give up (see the module docstring)."""
    p = ctx.params
    gates = p.get("gates", ())
    if not isinstance(gates, Sequence) or not all(isinstance(g, GateResult) for g in gates):
        raise DecisionError(f"{ctx.kind}: pass gates= (the GateResults of the validation round)")
    iteration, max_iterations = int(p.get("iteration", 0)), int(p.get("max_iterations", 0))
    skipped = tuple(p.get("skipped", ()))
    undone = tuple(p.get("undone", ()))
    on_exhausted = p.get("on_exhausted", "pause")
    actionable = bool(p.get("actionable", True))
    # besides the requirements of skipped tasks, validation found work (a broken acceptance, an uncovered requirement)
    more_to_do = bool(p.get("more_to_do", False))
    latest = {g.name: g for g in gates}
    failing = list(failing_gates(gates))
    facts = tuple(Evidence("fact", f"{n}: {latest[n].status}", latest[n].summary[:200]) for n in failing)
    left = max(0, max_iterations - iteration)
    only_skipped = bool(skipped) and not undone and failing == ["traceability"] and not more_to_do
    futile = bool(failing) and not only_skipped and not actionable  # nothing an agent can change: a human decides
    handoff = 1.0 if not failing else 0.0
    refine = (
        0.0
        if not failing or only_skipped or futile or not left
        else round(0.5 + 0.4 * left / max(1, max_iterations), 3)
    )
    ask = 0.8 if failing and (only_skipped or futile) else 0.0
    exhausted = bool(failing) and not only_skipped and not futile and not left
    stop = 0.3 if exhausted and on_exhausted != "give_up" else 0.0
    give_up = 0.3 if exhausted and on_exhausted == "give_up" else 0.0
    iterations = Evidence("fact", f"iteration {iteration} of at most {max_iterations}", f"{left} left")
    options = (
        Option("handoff", handoff, facts or (Evidence("fact", "every required gate passed"),)),
        Option("refine", refine, (*facts, iterations)),
        Option(
            "ask",
            ask,
            (
                Evidence("fact", f"skipped by a human: {', '.join(skipped) or 'none'}"),
                Evidence("fact", f"something to refine: {'yes' if actionable else 'no'}"),
            ),
        ),
        Option("stop", stop, (iterations,)),
        Option("give_up", give_up, (iterations, Evidence("fact", f"on_exhausted: {on_exhausted}"))),
    )
    choice = max(options, key=lambda o: o.score).name
    if choice == "handoff":
        rationale = "every required gate passed"
    elif choice == "refine":
        rationale = f"required gates failing: {', '.join(failing)}"
    elif choice == "ask" and futile:
        rationale = (
            f"required gates failing ({', '.join(failing)}), but nothing an agent can change: no task to "
            "redo, no failed gate to fix (a skipped one needs its tool), no requirement to cover"
        )
    elif choice == "ask":
        rationale = f"requirements are not met because tasks were skipped ({', '.join(skipped)}): a human decides"
    else:
        rationale = f"required gates still failing ({', '.join(failing)}) after {iteration} iterations"
    return Decision("refinement", "Refine or hand off?", choice, rationale, options=options,
                    confidence=max(o.score for o in options))  # fmt: skip
