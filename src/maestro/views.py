"""The derived files of a session, rendered from its state and events.

They are views: ``events.jsonl`` is the truth, and each of these is rewritten
whole and atomically from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from maestro._errors import StoreError, error_text
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

__all__ = [
    "decision_file_name",
    "describe",
    "final_report",
    "log_line",
    "metadata",
    "write_decision_history",
    "write_views",
]


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


def final_report(state: SessionState) -> str:
    """``final-report.md``: what the session did, in the PRD's report shape (§9)."""
    done = sum(1 for t in state.tasks.values() if t.state == "succeeded")
    lines = [
        "# Maestro Implementation Report",
        "",
        "## Summary",
        f"- Request: {state.request}",
        f"- Session: {state.session_id}",
        f"- Outcome: {state.state}",
        f"- Started: {state.started_at}",
        f"- Finished: {state.updated_at}",
        f"- Steps: {state.steps}; refinement iterations: {state.iteration}",
        f"- Tasks Completed: {done}/{len(state.tasks)}",
        f"- Checkpoints: {len(state.checkpoints)}",
        "",
        "## Decisions Made",
    ]
    lines += [f"- {d.kind}: {d.choice} ({d.rationale}; by {d.decided_by})" for d in state.decisions] or ["- none"]
    lines += ["", "## Changes Made"]
    changes: dict[str, list[int]] = {}
    for c in state.checkpoints:
        for f in c.files:
            total = changes.setdefault(f.path, [0, 0])
            total[0] += f.added_lines
            total[1] += f.deleted_lines
    lines += [f"- {path} (+{a} -{d})" for path, (a, d) in sorted(changes.items())] or ["- none"]
    lines += ["", "## Quality Gates"]
    lines += [
        f"- {g.name}: {g.status}" + ("" if g.required else " (not required)") + (f" — {g.summary}" if g.summary else "")
        for g in state.gates
    ] or ["- none recorded"]
    lines += ["", "## Checkpoints"]
    lines += [f"- {c.n}: commit {c.commit[:7]}: {c.label} ({c.tag})" for c in state.checkpoints] or ["- none"]
    lines += ["", "## Tasks"]
    lines += [f"- {k}: {t.state} ({t.attempts} attempts)" for k, t in sorted(state.tasks.items())] or ["- none"]
    return "\n".join(lines) + "\n"


def write_decision_history(
    decisions_dir: Path, state: SessionState, lock: Callable[[], AbstractContextManager[Any]]
) -> None:
    """Merge this session's decisions into ``decisions/<kind>.json``, the history across sessions.

    Each file is a JSON list of ``{"session": id, "decision": {...}}``, oldest
    session first; this session's entries are replaced, others kept.  ``lock``
    serialises writers (several sessions may end at once).
    """
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in state.decisions:
        by_kind.setdefault(d.kind, []).append({"session": state.session_id, "decision": converter.unstructure(d)})
    if not by_kind:
        return
    with lock():
        for kind, mine in sorted(by_kind.items()):
            path = decisions_dir / f"{decision_file_name(kind)}.json"
            try:
                old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
            except (OSError, ValueError) as exc:
                raise StoreError(f"{path}: cannot read the decision history: {error_text(exc)}") from exc
            if not isinstance(old, list):
                raise StoreError(f"{path}: the decision history is a JSON list")
            kept = [e for e in old if not (isinstance(e, dict) and e.get("session") == state.session_id)]
            atomic_write(path, json.dumps(kept + mine, indent=2, ensure_ascii=False) + "\n")


def decision_file_name(kind: str) -> str:
    """The history file of a decision kind, without ``.json``: ``tech_stack`` → ``tech-stack``."""
    name = kind.strip().lower().replace(" ", "-").replace("_", "-")
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name).strip(".") or "other"
