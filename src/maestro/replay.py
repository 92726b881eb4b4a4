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

from maestro.records import (
    AgentResult,
    CheckpointRecord,
    Decision,
    Event,
    GateResult,
    Note,
    TaskTransition,
    converter,
)
from maestro.state import Reducer, SessionState
from maestro.store import Store

__all__ = ["Step", "replay", "replay_session", "state_at"]


@attrs.frozen
class Step:
    """One step of a recorded session and the state after it."""

    index: int
    seq: int
    trigger: str | None
    source: str | None
    dest: str | None
    events: tuple[Event, ...]
    state: SessionState

    def _payloads(self, cls: type[Any]) -> tuple[Any, ...]:
        return tuple(p for p in (e.payload() for e in self.events) if isinstance(p, cls))

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return self._payloads(Decision)

    @property
    def checkpoints(self) -> tuple[CheckpointRecord, ...]:
        return self._payloads(CheckpointRecord)

    @property
    def agent_results(self) -> tuple[AgentResult, ...]:
        return self._payloads(AgentResult)

    @property
    def gates(self) -> tuple[GateResult, ...]:
        return self._payloads(GateResult)

    @property
    def task_moves(self) -> tuple[TaskTransition, ...]:
        return self._payloads(TaskTransition)

    @property
    def notes(self) -> tuple[Note, ...]:
        return self._payloads(Note)

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


def replay(events: Iterable[Event], *, to: int | None = None, where: str = "") -> Iterator[Step]:
    """Yield the steps of a session's events, in order (at most up to step ``to``).

    Events are checked against the charts as they are applied: a log that moves
    the session in a way the chart does not declare raises
    :class:`~maestro.StoreError` naming the event.
    """
    reducer = Reducer(where=where)
    pending: list[Event] = []
    index = 0
    for event in events:
        reducer.apply(event)
        pending.append(event)
        if event.kind in ("transition", "session"):
            data = event.data if event.kind == "transition" else {}
            yield Step(
                index,
                event.seq,
                data.get("trigger"),
                data.get("source"),
                data.get("dest"),
                tuple(pending),
                reducer.snapshot(),
            )
            pending = []
            if to is not None and index >= to:
                return
            index += 1
    if pending:
        yield Step(index, pending[-1].seq, None, None, None, tuple(pending), reducer.snapshot())


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
