"""Read-only replay: step through a recorded session without running anything.

A *step* is one move of the session machine together with everything recorded
since the previous move — the decisions, checkpoints, agent results, gate
results, task moves and notes that led to it.  Step 0 is the session's
creation; a session that stopped between moves (a crash, a pause in the middle
of a state) ends with a step whose ``trigger`` is ``None``.

::

    for step in replay(store.read_events(session_id)):
        print(step.index, step.trigger, step.source, "->", step.dest, step.state.state)

Each step carries the reconstructed :class:`~maestro.SessionState` after it.
Nothing is written, nothing is locked: replaying a session that is running is
safe and shows what has been recorded so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from maestro.core.records import (
    AgentResult,
    CheckpointRecord,
    Decision,
    Event,
    GateResult,
    Note,
    TaskTransition,
    converter,
)
from maestro.model.state import Reducer, SessionState
from maestro.store.filestore import Store

__all__ = ["Step", "replay", "replay_session", "state_at"]


@attrs.frozen
class Step:
    """One step of a recorded session, what was recorded with it, and the state after it."""

    index: int
    seq: int
    trigger: str | None
    source: str | None
    dest: str | None
    events: tuple[Event, ...]
    state: SessionState
    decisions: tuple[Decision, ...] = ()
    checkpoints: tuple[CheckpointRecord, ...] = ()
    agent_results: tuple[AgentResult, ...] = ()
    gates: tuple[GateResult, ...] = ()
    task_moves: tuple[TaskTransition, ...] = ()
    notes: tuple[Note, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The step as plain data (what ``maestro replay --json`` prints)."""
        un = converter.unstructure
        return {
            "step": self.index,
            "seq": self.seq,
            "trigger": self.trigger,
            "source": self.source,
            "dest": self.dest,
            "state": self.state.state,
            "decisions": [un(d) for d in self.decisions],
            "checkpoints": [un(c) for c in self.checkpoints],
            "agent_results": [un(a) for a in self.agent_results],
            "gates": [un(g) for g in self.gates],
            "tasks": [un(t) for t in self.task_moves],
            "notes": [n.text for n in self.notes],
        }


def _lists(r: Reducer) -> tuple[list[Any], ...]:
    """What a step shows, as the reducer holds it (a rewind replaces these lists)."""
    return (r.decisions, r.checkpoints, r.agent_results, r.all_gates, r.task_moves, r.notes)


def replay(events: Iterable[Event], *, to: int | None = None, where: str = "") -> Iterator[Step]:
    """Yield the steps of a session's events, in order (at most up to step ``to``).

    Events are checked against the charts as they are applied: a log that moves
    the session in a way the chart does not declare raises
    :class:`~maestro.StoreError` naming the event.
    """
    r = Reducer(where=where)
    lists = _lists(r)
    marks = [0] * len(lists)
    pending: list[Event] = []
    index = 0

    def step(seq: int, trigger: str | None, source: str | None, dest: str | None) -> Step:
        recorded: list[tuple[Any, ...]] = []
        for i, lst in enumerate(lists):
            if len(lst) == marks[i]:
                recorded.append(())  # the usual case: a step records one or two things, not six
            else:
                recorded.append(tuple(lst[marks[i] :]))
                marks[i] = len(lst)
        return Step(index, seq, trigger, source, dest, tuple(pending), r.snapshot(), *recorded)

    for event in events:
        r.apply(event)
        pending.append(event)
        if event.kind == "rewind":  # the reducer rebuilt its lists as they were: follow the new ones
            lists = _lists(r)
            # the rebuilt lists are prefixes of the old ones: what was shown stays shown, what was voided goes
            marks = [min(m, len(lst)) for m, lst in zip(marks, lists, strict=True)]
        if event.kind in ("transition", "session"):
            data = event.data if event.kind == "transition" else {}
            yield step(event.seq, data.get("trigger"), data.get("source"), data.get("dest"))
            pending = []
            if to is not None and index >= to:
                return
            index += 1
    if pending:
        yield step(pending[-1].seq, None, None, None)


def replay_session(store: Store, session_id: str, *, to: int | None = None) -> Iterator[Step]:
    """:func:`replay` the session ``session_id`` of ``store`` (read-only)."""
    return replay(store.read_events(session_id), to=to, where=str(store.events_path(session_id)))


def state_at(events: Iterable[Event], step: int | None = None) -> SessionState:
    """The session state after step ``step`` (after the last event when ``None``)."""
    last: Step | None = None
    for s in replay(events, to=step):
        last = s
    if last is None:
        raise ValueError("a session has at least one event")
    return last.state
