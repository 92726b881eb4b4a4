"""A human in the loop: the pause (a decision request), the answer (``maestro answer``), and what resuming means.

A pause records a ``request`` event before the ``pause`` move; ``decision-request.json``
in the session folder is a view of it, removed once answered.  The answer is a decision
of kind ``answer`` with ``decided_by: human``; ``maestro resume`` acts on it (see
:meth:`maestro.run.loop.SessionRun.answered`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from maestro.core.errors import MaestroError
from maestro.core.records import Decision, DecisionRequest, Limits, Option
from maestro.core.seams import Clock
from maestro.model.state import SessionState
from maestro.run.limits import still_reached
from maestro.session import Session
from maestro.store.filestore import Store, atomic_write

__all__ = ["DECISION_REQUEST", "Pause", "answer", "guided_tasks", "jsonable", "request_doc", "resume_choice",
           "write_request_file"]  # fmt: skip

log = logging.getLogger(__name__)

DECISION_REQUEST = "decision-request.json"


class Pause(Exception):  # a signal inside the runner, never raised to a caller
    """Stop the run and pause the session with this decision request."""

    def __init__(self, question: str, options: Iterable[str], context: Mapping[str, Any]) -> None:
        super().__init__(question)
        self.question = question
        self.options = tuple(options)
        self.context = dict(context)


def answer(
    store: Store, session_id: str, choice: str, *, note: str | None = None, clock: Clock | None = None
) -> Decision:
    """Record a human's answer to a paused session's decision request (``maestro answer``).

    The choice must be one of the request's options (a one-line error lists
    them); the answer is a decision with ``decided_by: human``.  ``resume``
    acts on it.
    """
    session = Session.open(store, session_id, clock=clock)
    try:
        state = session.state
        if state.state != "paused":
            raise MaestroError(f"session {session_id} is {state.state}, not paused: there is nothing to answer")
        req = state.decision_request or DecisionRequest("Continue?", ("retry", "abort"), state.paused_from or "")
        if choice not in req.options:
            raise MaestroError(
                f"{choice!r} is not an answer to session {session_id}'s question; the options are: "
                + ", ".join(req.options)
            )
        if choice == "skip" and not (isinstance(req.context.get("task"), str) or req.context.get("group")):
            raise MaestroError(f"session {session_id}'s question names no task or group to skip: answer another "
                               f"option ({', '.join(o for o in req.options if o != 'skip')})")  # fmt: skip
        if choice == "guidance" and not (note and note.strip()):
            raise MaestroError(f"'guidance' needs the guidance: maestro answer {session_id} guidance --note TEXT")
        if choice == "command" and not (note and note.strip()):
            raise MaestroError(f"'command' needs the command: maestro answer {session_id} command --note COMMAND")
        task = req.context.get("task") if isinstance(req.context.get("task"), str) else None
        recorded = session.record(
            Decision(
                "answer",
                req.question[:2000],
                choice,
                note or f"{choice}, answered by a human",
                options=tuple(Option(o, 1.0 if o == choice else 0.0) for o in req.options),
                decided_by="human",
                task=task,
            )
        ).payload()
        assert isinstance(recorded, Decision)
        log.info("session %s: answered %s", session_id, choice)
        return recorded
    finally:
        session.close()


def resume_choice(state: SessionState, new_limits: Limits) -> str:
    """The answer a paused session resumes with: the human's, else what resuming alone means."""
    sid = state.session_id
    req = state.decision_request
    options = req.options if req is not None else ("retry", "abort")
    raised = new_limits != state.limits
    if state.answer is not None:
        choice = state.answer.choice
    elif "raise" in options and (raised or (req is not None and not still_reached(req.context, new_limits, state))):
        choice = "raise"
    elif "continue" in options:
        choice = "continue"
    elif "retry" in options:
        choice = "retry"
    else:
        hint = ", or raise the limit: --budget-usd, --max-minutes, --max-iterations" if "raise" in options else ""
        raise MaestroError(
            f"session {sid} is waiting for a decision: {req.question if req else 'continue?'} — answer "
            f"with `maestro answer {sid} CHOICE` (options: {', '.join(options)}){hint}"
        )
    if choice == "raise" and req is not None:
        still = still_reached(req.context, new_limits, state)
        if still:
            raise MaestroError(f"session {sid}: {still}: give a higher limit with `maestro resume "
                               f"{sid} --{still.split()[0].replace('_', '-')} N`")  # fmt: skip
    return choice


def guided_tasks(state: SessionState, tasks: list[str]) -> list[str]:
    """The tasks a guidance answer is for: its task, else the paused group's, else every task."""
    guidance = state.guidance
    if guidance is not None and guidance.task in tasks:
        return [guidance.task]
    group = state.last_request.context.get("group") if state.last_request is not None else None
    if isinstance(group, list):
        return [t for t in group if t in tasks]
    return tasks


def request_doc(session_id: str, req: DecisionRequest) -> dict[str, Any]:
    """A decision request as ``decision-request.json`` and ``maestro status --json`` show it."""
    return {
        "session": session_id,
        "question": req.question,
        "options": list(req.options),
        "context": dict(req.context),
        "paused_from": req.paused_from,
        "answer": f"maestro answer {session_id} {'|'.join(req.options)} [--note TEXT]; then maestro resume "
        f"{session_id}",
    }


def write_request_file(session_dir: Path, session_id: str, req: DecisionRequest) -> Path:
    path = session_dir / DECISION_REQUEST
    atomic_write(path, json.dumps(request_doc(session_id, req), indent=2, ensure_ascii=False) + "\n")
    return path


def jsonable(context: Mapping[str, Any]) -> dict[str, Any]:
    """The context as plain JSON values (tuples as lists; anything else as text)."""
    doc: dict[str, Any] = json.loads(json.dumps(dict(context), default=str))
    return doc
