"""The derived files of a session, rendered from its state and events.

They are views: ``events.jsonl`` is the truth, and each of these is rewritten
whole and atomically from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maestro.records import (
    AgentResult,
    CheckpointRecord,
    Decision,
    Event,
    GateResult,
    Note,
    SessionStarted,
    TaskTransition,
    Transition,
    converter,
)
from maestro.state import SessionState
from maestro.store import atomic_write

__all__ = ["describe", "log_line", "metadata", "write_views"]


def metadata(state: SessionState) -> dict[str, Any]:
    """``metadata.json``: who the session is and where it stands."""
    return {
        "session_id": state.session_id,
        "request": state.request,
        "state": state.state,
        "paused_from": state.paused_from,
        "started_at": state.started_at,
        "updated_at": state.updated_at,
        "last_seq": state.last_seq,
        "steps": state.steps,
        "iteration": state.iteration,
        "base_commit": state.base_commit,
        "limits": converter.unstructure(state.limits),
        "tasks": {k: {"state": t.state, "attempts": t.attempts} for k, t in sorted(state.tasks.items())},
    }


def describe(event: Event) -> str:
    """One human line for an event, as in the ``[Maestro]`` log."""
    p = event.payload()
    if isinstance(p, Transition):
        text = f"{p.source} → {p.dest} ({p.trigger})"
    elif isinstance(p, TaskTransition):
        text = f"task {p.task}: {p.source} → {p.dest} ({p.trigger})"
    elif isinstance(p, SessionStarted):
        return f"Session {p.session_id} started: {p.request}"
    elif isinstance(p, Decision):
        text = f"Decision ({p.kind}, by {p.decided_by}): {p.choice} — {p.rationale}"
    elif isinstance(p, CheckpointRecord):
        text = f"✓ Checkpoint {p.n}: {p.commit[:12]} {p.label} ({len(p.files)} files)"
    elif isinstance(p, AgentResult):
        extra = f", {p.failure_class}" if p.failure_class else ""
        text = f"Task {p.task}: {p.agent} attempt {p.attempt} {p.status}{extra}"
        if p.summary:
            text += f": {p.summary}"
    elif isinstance(p, GateResult):
        mark = {"passed": "✓", "failed": "✗", "skipped": "–"}[p.status]
        text = f"{mark} Gate {p.name}: {p.status}" + (f" ({p.summary})" if p.summary else "")
    elif isinstance(p, Note):
        text = p.text
    else:
        text = f"{event.kind}: {json.dumps(event.data, sort_keys=True)}"
    if isinstance(p, (Transition, TaskTransition)) and p.reason:
        text += f": {p.reason}"
    return text


def log_line(event: Event) -> str:
    """One line of ``execution-log.md``."""
    return f"- `{event.ts}` #{event.seq} [Maestro] {describe(event)}"


def write_views(directory: Path, state: SessionState, log_lines: Sequence[str]) -> None:
    """Rewrite ``metadata.json``, ``decisions.json``, ``checkpoints.json`` and ``execution-log.md``.

    ``log_lines`` are the :func:`log_line` of every event so far (the caller keeps
    them, so that a refresh renders only the events that are new).
    """

    def dump(obj: Any) -> str:
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"

    atomic_write(directory / "metadata.json", dump(metadata(state)))
    atomic_write(directory / "decisions.json", dump([converter.unstructure(d) for d in state.decisions]))
    atomic_write(directory / "checkpoints.json", dump([converter.unstructure(c) for c in state.checkpoints]))
    head = f"# Execution log: session {state.session_id}\n\n"
    atomic_write(directory / "execution-log.md", head + "\n".join(log_lines) + "\n")
