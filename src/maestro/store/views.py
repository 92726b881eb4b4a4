"""The derived files of a session, rendered from its state and events, and the list of a store's sessions.

They are views: ``events.jsonl`` is the truth, and each of these is rewritten
whole and atomically from it.  :func:`list_sessions` reads every session folder
it can and says, in one line, what is wrong with one it cannot (or whose files
are damaged), so that one broken session never hides the others.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import MaestroError, StoreError, error_text
from maestro.core.records import (
    SESSION_ID,
    AgentResult,
    CheckpointRecord,
    Decision,
    Event,
    FileChange,
    GateResult,
    Note,
    SessionStarted,
    TaskTransition,
    Transition,
    converter,
)
from maestro.model.state import SessionState, rebuild
from maestro.store.filestore import EVENTS, Store, atomic_write, check_session_log, read_events

__all__ = [
    "SessionListing",
    "decision_file_name",
    "describe",
    "final_report",
    "list_sessions",
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


@attrs.frozen
class SessionListing:
    """One session of a store: where it stands, as its log says, and ``broken``: what is wrong with it, or None.

    ``state`` and ``request`` are None when the log cannot be read; a session whose
    log reads but whose files are damaged (a torn last line, a missing or unreadable
    ``metadata.json``) has both and ``broken`` too.
    """

    session: str
    state: str | None = None
    request: str | None = None
    updated_at: str | None = None
    broken: str | None = None


def list_sessions(store: Store) -> list[SessionListing]:
    """Every session folder of ``store``, oldest id first, each read as far as it can be (nothing is written).

    A folder is a session's when its name is a session id.  Only a session folder
    that cannot be listed at all is a :class:`StoreError`.
    """
    root = store.sessions_dir
    try:
        names = sorted(p.name for p in root.iterdir() if SESSION_ID.match(p.name) and p.is_dir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"{root}: cannot list the sessions: {exc.strerror or exc}") from exc
    return [_listing(store, sid) for sid in names]


def _listing(store: Store, sid: str) -> SessionListing:
    folder = store.session_dir(sid)

    def short(text: str) -> str:  # the reason names files within the session's folder
        return " ".join(text.replace(f"{folder}{os.sep}", "").split())

    path = folder / EVENTS
    if not path.is_file():
        what = "is not a file" if path.exists() else "is missing"
        return SessionListing(sid, broken=f"{EVENTS} {what}")
    try:
        events, intact = read_events(path)
        check_session_log(path, events)
        state = rebuild(events, where=str(path))
    except MaestroError as exc:
        return SessionListing(sid, broken=short(str(exc)))
    except RecursionError:
        return SessionListing(sid, broken=f"{EVENTS}: nested too deeply to read")
    problem = None
    try:
        size = path.stat().st_size
    except OSError as exc:
        size = intact
        problem = f"{EVENTS}: cannot read: {exc.strerror or exc}"
    if size > intact and store.holder(sid) is None:  # a live session may be appending as we read
        problem = f"{EVENTS} ends in a torn line of {size - intact} bytes (a write cut short)"
    problem = problem or _metadata_problem(folder / "metadata.json")
    return SessionListing(sid, state.state, state.request, state.updated_at, problem and short(problem))


def _metadata_problem(path: Path) -> str | None:
    """What is wrong with ``metadata.json`` (missing, unreadable, not a JSON object), or None."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except OSError as exc:
        return f"{path.name}: cannot read: {exc.strerror or exc}"
    except ValueError as exc:  # not UTF-8, not JSON
        return f"{path.name}: not JSON: {error_text(exc)}"
    if not isinstance(doc, dict):
        return f"{path.name}: not a JSON object"
    return None


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


def final_report(
    state: SessionState,
    *,
    changes: Sequence[FileChange] | None = None,
    requirements: str | None = None,
    next_steps: Sequence[str] = (),
) -> str:
    """``final-report.md``: what the session did, in the PRD's report shape (§9).

    ``changes`` is the net diff of the session (the runner passes the diff from
    checkpoint 0 to the last one; without it, the files of the last checkpoint
    are shown); ``requirements`` the traceability matrix as markdown.
    """
    done = sum(1 for t in state.tasks.values() if t.state == "succeeded")
    cost = state.spent_usd  # every call, those a crash resume redid too: what was really spent
    tests = [g for g in state.gates if g.name == "tests"]
    latest_tests = tests[-1] if tests else None
    lines = [
        "# Maestro Implementation Report",
        "",
        "## Summary",
        f"- Feature: {state.request}",
        f"- Session: {state.session_id}",
        f"- Outcome: {state.state}" + (f" (paused from {state.paused_from})" if state.paused_from else ""),
        f"- Duration: {_duration(state.started_at or '', state.updated_at or '')}"
        f" ({state.started_at} to {state.updated_at})",
        f"- Tasks completed: {done}/{len(state.tasks)}",
        "- Tests passed: " + _tests_line(latest_tests),
        f"- Checkpoints: {len({c.n for c in state.checkpoints})}",
        f"- Agent calls: {len(state.agent_results)}; cost: ${cost:.4f}",
        f"- Refinement iterations: {state.iteration}",
        "",
        "## Decisions Made",
    ]
    by_kind: dict[str, list[Decision]] = {}
    for d in state.decisions:
        by_kind.setdefault(d.kind, []).append(d)
    for kind in sorted(by_kind):
        lines.append(f"### {kind}")
        for d in by_kind[kind]:
            link = f" [task {d.task}]" if d.task else ""
            lines.append(f"- {d.id} {d.choice}{link}: {d.rationale} (by {d.decided_by}, confidence {d.confidence:.2f})")
    if not by_kind:
        lines.append("- none")
    lines += ["", "## Changes Made"]
    shown = changes if changes is not None else (state.checkpoints[-1].files if state.checkpoints else ())
    lines += [f"- {f.path}: {f.change} (+{f.added_lines} -{f.deleted_lines})" for f in shown] or ["- none"]
    lines += ["", "## Testing"]
    lines += [f"- {g.name}: {g.status} — {g.summary}" for g in tests] or ["- no test gate ran"]
    lines += ["", "## Quality Gates"]
    latest = {g.name: g for g in state.gates}
    lines += [
        f"- {g.name}: {g.status}" + ("" if g.required else " (not required)") + (f" — {g.summary}" if g.summary else "")
        for g in latest.values()
    ] or ["- none recorded"]
    lines += ["", "## Requirements", requirements.rstrip() if requirements else "- no traceability recorded"]
    lines += ["", "## Recovery"]
    failures = [r for r in state.agent_results if r.status != "succeeded"]
    recoveries = [d for d in state.decisions if d.kind == "recovery"]
    for r in failures:
        lines.append(f"- {r.task} attempt {r.attempt}: {r.status} ({r.failure_class}) — {r.summary}")
    for d in recoveries:
        lines.append(f"  - {d.id} [{d.task}] {d.choice}: {d.rationale}")
    if not failures and not recoveries:
        lines.append("- no failures")
    lines += ["", "## Checkpoints"]
    seen: set[int] = set()
    for c in state.checkpoints:
        if c.n not in seen:
            seen.add(c.n)
            lines.append(f"- {c.n}: commit {c.commit[:12]} `{c.tag}` — {c.label}")
    if not seen:
        lines.append("- none")
    lines += ["", "## Tasks"]
    lines += [
        f"- {k}: {t.state} ({t.attempts} attempt{'s' if t.attempts != 1 else ''})"
        for k, t in sorted(state.tasks.items())
    ] or ["- none"]
    lines += ["", "## Next Steps"]
    steps = list(next_steps) or _next_steps(state)
    lines += [f"- {step}" for step in steps]
    return "\n".join(lines) + "\n"


def _tests_line(gate: GateResult | None) -> str:
    if gate is None:
        return "no test gate ran"
    if gate.passed is None and gate.failed is None:
        return f"{gate.status} (no counts: the test command wrote no JUnit XML)"
    return f"{gate.passed or 0} passed, {gate.failed or 0} failed"


def _next_steps(state: SessionState) -> list[str]:
    if state.state == "completed":
        return [
            f"Review the work on branch maestro/{state.session_id} (`git log maestro/{state.session_id}`).",
            "Merge it when it looks right; `maestro rollback <session> --to N` restores any checkpoint.",
        ]
    if state.state == "paused":
        return [f"Answer the decision request in the session folder, then `maestro resume {state.session_id}`."]
    return ["Read the recovery section above; the tree can be restored with `maestro rollback`."]


def _duration(start: str, end: str) -> str:
    try:
        a = _dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = _dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return "unknown"
    seconds = max(0.0, (b - a).total_seconds())
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


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
