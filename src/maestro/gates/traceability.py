"""Requirement traceability: each PRD requirement's verdict (``met``, ``unmet``, ``uncovered``) from its tasks.

:func:`trace` builds the matrix; :meth:`Traceability.as_gate` turns it into the
required ``traceability`` gate, which fails while a P0 or P1 requirement is not met.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from maestro.core.records import GateResult
from maestro.plan.prd import Prd
from maestro.plan.tasks import Task, TaskGraph

__all__ = ["VERDICTS", "TraceRow", "Traceability", "trace"]

VERDICTS = ("met", "unmet", "uncovered")


@attrs.frozen
class TraceRow:
    """One requirement's verdict: ``met``, ``unmet`` or ``uncovered``, the tasks serving it, and why."""

    requirement: str
    priority: str
    verdict: str = attrs.field(validator=attrs.validators.in_(VERDICTS))
    tasks: tuple[str, ...]
    reason: str
    text: str = ""

    @property
    def blocking(self) -> bool:
        """A P0 or P1 requirement that is not met: it fails validation."""
        return self.priority in ("P0", "P1") and self.verdict != "met"


@attrs.frozen
class Traceability:
    """The requirement traceability matrix; ``ok`` is False while a P0 or P1 requirement is not met."""

    rows: tuple[TraceRow, ...]
    ok: bool

    def count(self, verdict: str) -> int:
        """How many requirements have ``verdict``."""
        return sum(1 for r in self.rows if r.verdict == verdict)

    @property
    def blocking(self) -> tuple[TraceRow, ...]:
        """The P0 and P1 requirements that are not met."""
        return tuple(r for r in self.rows if r.blocking)

    def as_gate(self) -> GateResult:
        """The ``traceability`` gate (required): passed/failed counts are the requirements met / not met."""
        met = self.count("met")
        total = len(self.rows)
        if not self.rows:
            summary = "no requirements to trace"
        elif self.ok:
            others = [r for r in self.rows if r.verdict != "met"]
            summary = f"{met} of {total} requirements met"
            if others:
                summary += "; not blocking: " + ", ".join(
                    f"{r.requirement} ({r.priority}, {r.verdict})" for r in others
                )
        else:
            shown = ", ".join(f"{r.requirement} ({r.priority}, {r.verdict}: {r.reason})" for r in self.blocking)
            summary = f"blocking requirements not met: {shown}; {met} of {total} requirements met"
        return GateResult("traceability", "passed" if self.ok else "failed", True, summary, met, total - met)

    def to_markdown(self) -> str:
        """The matrix as a markdown table (requirement, priority, verdict, tasks, reason)."""
        lines = ["| Requirement | Priority | Verdict | Tasks | Reason |", "|---|---|---|---|---|"]
        for r in self.rows:
            cells = [r.requirement, r.priority, r.verdict, ", ".join(r.tasks) or "—", r.reason]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        return "\n".join(lines) + "\n"


def trace(
    prd: Prd, graph: TaskGraph | Iterable[Task], succeeded: Iterable[str], acceptance_passed: Mapping[str, bool]
) -> Traceability:
    """Each PRD requirement's verdict, in the PRD's order.

    ``met``: at least one task serves it (lists it in ``requirements``), every
    such task succeeded, and each one's acceptance commands pass in the final
    validation (``acceptance_passed[task_id]``; a task missing there passes
    only if it has no acceptance commands).  ``unmet``: a task serving it did
    not succeed or its acceptance fails.  ``uncovered``: no task serves it.
    """
    done = set(succeeded)
    tasks = list(graph)
    rows = []
    for req in prd.requirements:
        serving = [t for t in tasks if req.id in t.requirements]
        ids = tuple(t.id for t in serving)
        if not serving:
            rows.append(TraceRow(req.id, req.priority, "uncovered", ids, "no task serves it", req.text))
            continue
        not_done = [t.id for t in serving if t.id not in done]
        failing = [t.id for t in serving if t.id in done and not _accepted(t, acceptance_passed)]
        problems = []
        if not_done:
            problems.append(f"{_names(not_done)} did not succeed")
        if failing:
            problems.append(f"the acceptance commands of {_names(failing)} fail")
        if problems:
            rows.append(TraceRow(req.id, req.priority, "unmet", ids, "; ".join(problems), req.text))
        else:
            reason = f"{_names(list(ids))} succeeded and {'its' if len(ids) == 1 else 'their'} acceptance passes"
            rows.append(TraceRow(req.id, req.priority, "met", ids, reason, req.text))
    result = tuple(rows)
    return Traceability(result, not any(r.blocking for r in result))


def _accepted(task: Task, acceptance_passed: Mapping[str, bool]) -> bool:
    value = acceptance_passed.get(task.id)
    return not task.acceptance if value is None else bool(value)


def _names(ids: Sequence[str]) -> str:
    return ("task " if len(ids) == 1 else "tasks ") + ", ".join(ids)
