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
import re
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
from maestro.core.text import counted, one_line
from maestro.model.state import SessionState, rebuild
from maestro.store.filestore import EVENTS, Store, atomic_write, check_session_log, read_events
from maestro.store.metrics import FAILURE_KINDS, Failure, Figure, SessionMetrics, failures_of_state, session_metrics

__all__ = [
    "SessionListing",
    "counted",
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
        text = f"✓ Checkpoint {p.n}: {p.commit[:12]} {p.label} ({counted(len(p.files), 'file')})"
    elif isinstance(p, AgentResult):
        extra = f", {p.failure_class}" if p.failure_class else ""
        where = f" on {p.worker}" if p.worker else ""
        text = f"Task {p.task}: {p.agent} attempt {p.attempt}{where} {p.status}{extra}"
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


def _turns(state: SessionState) -> str:
    """``; 17 turns`` when the agents said how many model turns their calls took (the CLIs do), else nothing."""
    known = [r.turns for r in state.agent_results if r.turns is not None]
    return f"; {counted(sum(known), 'turn')}" if known else ""


def final_report(
    state: SessionState,
    *,
    changes: Sequence[FileChange] | None = None,
    requirements: str | None = None,
    next_steps: Sequence[str] = (),
    events: Sequence[Event] | None = None,
) -> str:
    """``final-report.md``: what the session did, in the PRD's report shape (§9).

    ``changes`` is the net diff of the session (the runner passes the diff from
    checkpoint 0 to the last one; without it, the checkpoints' diffstats are put
    together); ``requirements`` the traceability matrix as markdown; ``events``
    the session's log, from which the Recovery section (every failure under its
    task and attempt, or its validation round, with the decisions that answered
    it) and the Metrics section are drawn — without it, Recovery shows what the
    state holds (the agents' failures and the recovery decisions) and Metrics is
    left out.
    """
    done = sum(1 for t in state.tasks.values() if t.state == "succeeded")
    cost = state.spent_usd  # every call, those a crash resume redid too: what was really spent
    tests = [g for g in state.gates if g.name == "tests"]
    latest_tests = tests[-1] if tests else None
    checkpoints = _checkpoints(state)
    lines = [
        "# Maestro Implementation Report",
        "",
        "## Summary",
        f"- Feature: {state.request}",
        f"- Session: {state.session_id}",
        "- HTML report: [report.html](report.html) (timeline, task graph, the path through the chart)",
        f"- Outcome: {state.state}" + (f" (paused from {state.paused_from})" if state.paused_from else ""),
        f"- Duration: {_duration(state.started_at or '', state.updated_at or '')}"
        f" ({state.started_at} to {state.updated_at})",
        f"- Tasks completed: {done}/{len(state.tasks)}",
        "- Tests passed: " + _tests_line(latest_tests),
        f"- Checkpoints: {len(checkpoints)}",
        f"- Agent calls: {len(state.agent_results)}; cost: ${cost:.4f}" + _turns(state),
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
    lines += ["", "## Changes Made", *_changes_lines(checkpoints, changes)]
    lines += ["", "## Testing"]
    lines += [f"- {g.name}: {g.status} — {g.summary}" for g in tests] or ["- no test gate ran"]
    coverage = _coverage(latest_tests)
    if coverage is not None:
        lines.append(f"- coverage: {coverage}")
    lines += ["", "## Quality Gates"]
    latest = {g.name: g for g in state.gates}
    lines += [
        f"- {g.name}: {g.status}" + ("" if g.required else " (not required)") + (f" — {g.summary}" if g.summary else "")
        for g in latest.values()
    ] or ["- none recorded"]
    lines += ["", "## Requirements", requirements.rstrip() if requirements else "- no traceability recorded"]
    found = session_metrics(events, state=state) if events is not None else None
    lines += ["", "## Recovery"]
    if found is not None:
        lines += _recovery_lines(found.failures, found.unpaired)
    else:
        lines += _recovery_lines(*failures_of_state(state))
    if found is not None:
        lines += ["", "## Metrics", *_metrics_lines(found)]
    lines += ["", "## Checkpoints"]
    lines += [f"- {c.n}: commit {c.commit[:12]} `{c.tag}` — {c.label}" for c in checkpoints] or ["- none"]
    lines += ["", "## Tasks"]
    lines += [f"- {k}: {t.state} ({counted(t.attempts, 'attempt')})" for k, t in sorted(state.tasks.items())] or [
        "- none"
    ]
    lines += ["", "## Next Steps"]
    steps = list(next_steps) or _next_steps(state)
    lines += [f"- {step}" for step in steps]
    return "\n".join(lines) + "\n"


def _checkpoints(state: SessionState) -> list[CheckpointRecord]:
    """The session's checkpoints, each number once (the last record of it), in order."""
    by_n: dict[int, CheckpointRecord] = {}
    for c in state.checkpoints:
        by_n[c.n] = c
    return [by_n[n] for n in sorted(by_n)]


_CREATED, _MODIFIED, _DELETED = "added", "modified", "deleted"
_SHOWN_CHANGE = {_CREATED: "created", _MODIFIED: "modified", _DELETED: "deleted"}


def _stat(files: Sequence[FileChange], changed: str = "") -> str:
    """``3 files (2 created, 1 modified), +20 -4`` (``changed``: a word after ``files``)."""
    kinds = [f"{sum(1 for f in files if f.change == c)} {_SHOWN_CHANGE[c]}" for c in (_CREATED, _MODIFIED, _DELETED)]
    split = ", ".join(k for k in kinds if not k.startswith("0 "))
    added, deleted = sum(f.added_lines for f in files), sum(f.deleted_lines for f in files)
    return f"{counted(len(files), 'file')}{' ' + changed if changed else ''} ({split}), +{added} -{deleted}"


def _composed(checkpoints: Sequence[CheckpointRecord]) -> list[FileChange]:
    """The checkpoints' changes after checkpoint 0 put together, path by path (line counts summed)."""
    net: dict[str, FileChange] = {}
    for c in checkpoints:
        if c.n == 0:
            continue
        for f in c.files:
            old = net.get(f.path)
            if old is None:
                net[f.path] = f
                continue
            change = {
                (_CREATED, _DELETED): None,
                (_CREATED, _MODIFIED): _CREATED,
                (_DELETED, _CREATED): _MODIFIED,
            }.get((old.change, f.change), f.change)
            if change is None:
                del net[f.path]
            else:
                net[f.path] = FileChange(f.path, change, old.added_lines + f.added_lines,
                                         old.deleted_lines + f.deleted_lines)  # fmt: skip
    return [net[p] for p in sorted(net)]


def _changes_lines(checkpoints: Sequence[CheckpointRecord], changes: Sequence[FileChange] | None) -> list[str]:
    """The net changes split into created, modified and deleted files, then each checkpoint's diffstat (a task's)."""
    last = checkpoints[-1].n if checkpoints else 0
    if changes is not None:
        files, where = sorted(changes, key=lambda f: f.path), f"from checkpoint 0 to checkpoint {last}"
    else:
        files, where = _composed(checkpoints), "the checkpoints' diffstats put together"
    if not files:
        return ["- none"]
    lines = [f"{_stat(files, 'changed')} lines, {where}"]
    for change in (_CREATED, _MODIFIED, _DELETED):
        mine = [f for f in files if f.change == change]
        if mine:
            lines += ["", f"### {_SHOWN_CHANGE[change].capitalize()} ({counted(len(mine), 'file')})"]
            lines += [f"- {f.path} (+{f.added_lines} -{f.deleted_lines})" for f in mine]
    by_checkpoint = [c for c in checkpoints if c.n > 0 and c.files]
    if by_checkpoint:
        lines += ["", "### By task (each checkpoint's diffstat)"]
        for c in by_checkpoint:
            lines.append(f"- {c.label} (checkpoint {c.n}): {_stat(c.files)}")
            lines += [f"  - {f.path}: {_SHOWN_CHANGE[f.change]} (+{f.added_lines} -{f.deleted_lines})" for f in c.files]
    return lines


def _coverage(gate: GateResult | None) -> str | None:
    """The coverage a test gate's summary states (``coverage 87%``, ``TOTAL … 87%``), or None."""
    if gate is None:
        return None
    m = _COVERAGE.search(gate.summary)
    return f"{m.group(1) or m.group(2)}%" if m else None


_COVERAGE = re.compile(r"coverage[:= ]+([0-9]+(?:\.[0-9]+)?)\s*%|\bTOTAL\b.*?([0-9]+(?:\.[0-9]+)?)%", re.IGNORECASE)

_OUTCOME_WORDS = {
    "recovered": "recovered without a human",
    "recovered_by_human": "recovered after a human answer",
    "unrecovered": "not recovered",
    "open": "not recovered yet",
}


def _failure_head(f: Failure) -> str:
    """A failure's line: where, what, what became of it, and the summary."""
    if f.kind == "gate":
        where = f"validation round {f.round}: gate {f.gate}"
        what = "failed" if f.required else "failed (not required)"
    else:
        where = f"{f.task} attempt {f.attempt}"
        what = {
            "agent": f"{f.status or 'failed'} ({f.failure_class or 'unclassified'})",
            "acceptance": "acceptance failed",
            "regression": "regression",
            "conflict": "merge conflict",
        }[f.kind]
    summary = f.summary
    if f.kind == "acceptance" and summary.startswith("acceptance failed: "):
        summary = summary[len("acceptance failed: ") :]
    outcome = ""
    if f.outcome and f.required:
        outcome = ", " + _OUTCOME_WORDS[f.outcome] + (f" ({f.resolved})" if f.resolved else "")
    return f"- {where}: {what}{outcome}" + (f" — {one_line(summary, 500)}" if summary.strip() else "")


def _decision_line(d: Decision) -> str:
    task = f" [{d.task}]" if d.task else ""
    by = "" if d.decided_by == "policy" else f" (by {d.decided_by})"
    return f"  - {d.id}{task} {d.choice}{by}: {one_line(d.rationale, 500)}"


def _recovery_lines(failures: Sequence[Failure], unpaired: Sequence[Decision]) -> list[str]:
    """Each failure under its task and attempt (tasks in the order they first failed), then the validation rounds;
    under each, the decisions that answered it, in log order.  A decision that answered several failures is shown
    once, under the last of them."""
    order: list[str] = []
    for f in failures:
        if f.task is not None and f.kind != "gate" and f.task not in order:
            order.append(f.task)
    shown = sorted(
        failures,
        key=lambda f: (order.index(f.task), 0, f.seq) if f.kind != "gate" and f.task in order
        else (len(order), f.round or 0, f.seq),
    )  # fmt: skip
    last_of: dict[str, int] = {}
    for i, f in enumerate(shown):
        for d in f.answers:
            last_of[d.id] = i
    lines = []
    for i, f in enumerate(shown):
        lines.append(_failure_head(f))
        lines += [_decision_line(d) for d in f.answers if last_of.get(d.id) == i]
    for d in unpaired:
        lines.append(f"- {d.id}{f' [{d.task}]' if d.task else ''} {d.kind} {d.choice}, answering no recorded failure: "
                     f"{one_line(d.rationale, 500)}")  # fmt: skip
    return lines or ["- no failures"]


def _metrics_lines(m: SessionMetrics) -> list[str]:
    """The session's own success metrics (docs/stats.md defines them)."""
    if m.autonomous:
        autonomy = "autonomous: completed with no human answer"
    elif m.ended:
        autonomy = f"not autonomous: {m.state}" + (f", {counted(m.human_answers, 'human answer')}" if m.human_answers
                                                    else "")  # fmt: skip
    else:
        autonomy = f"not ended ({m.state}) yet, {counted(m.human_answers, 'human answer')} so far"
    failures = m.counted
    if failures:
        kinds = ", ".join(f"{n} {k}" for k in FAILURE_KINDS if (n := sum(1 for f in failures if f.kind == k)))
        rate = m.count("recovered") / len(failures)
        recovery = (
            f"{counted(len(failures), 'failure')} ({kinds}): {m.count('recovered')} recovered without a human "
            f"({rate:.0%}), {m.count('recovered_by_human')} after a human answer, "
            f"{m.count('unrecovered') + m.count('open')} not recovered"
        )
    else:
        recovery = "no failures"
    started = [t for t in m.tasks if t.attempts > 0]
    lines = [f"- Autonomy: {autonomy}", f"- Recovery: {recovery}"]
    if started:
        attempts = Figure.of(t.attempts for t in started)
        cost = Figure.of(t.cost_usd for t in started)
        agent = Figure.of(t.agent_s for t in started)
        elapsed = Figure.of(t.elapsed_s for t in started if t.elapsed_s is not None)
        lines += [
            f"- Attempts per task: median {attempts.median:g}, total {attempts.total:g} over "
            f"{counted(len(started), 'task')}",
            f"- Cost per task: median ${cost.median:.4f}, total ${cost.total:.4f}",
            f"- Agent time per task: median {_secs(agent.median)}, total {_secs(agent.total)}",
            f"- Time per task (first start to last move): median {_secs(elapsed.median)}, total {_secs(elapsed.total)}",
        ]
    lines.append(f"- Session: cost ${m.cost_usd:.4f}, running time {_secs(m.active_s)}, "
                 f"{counted(m.agent_calls, 'agent call')}")  # fmt: skip
    return lines


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


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
