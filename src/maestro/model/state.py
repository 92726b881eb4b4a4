"""The state of a session, rebuilt from its events by one reducer.

The live :class:`~maestro.Session` and the read-only replayer apply events
through the same :class:`Reducer`, so a session rebuilt from ``events.jsonl``
is the state it was recorded from, by construction — and the tests check it.
The reducer also checks every transition against the charts: a log that moves
a session in a way its chart does not declare is refused, naming the event.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

import attrs
from cattrs.errors import BaseValidationError

from maestro.core.errors import StoreError, error_text
from maestro.core.records import (
    TASK_ID,
    AgentResult,
    CheckpointRecord,
    Decision,
    DecisionRequest,
    Event,
    GateResult,
    Limits,
    Note,
    Rewind,
    SessionStarted,
    TaskTransition,
    converter,
)
from maestro.model.chart import Chart, load_chart

__all__ = ["BOUNDARY_TRIGGERS", "Prefix", "Reducer", "SessionState", "TaskState", "effective_events", "rebuild"]

T = TypeVar("T")

# The session transitions after which a step is complete: a crash resume goes back to the last of
# these (or to the last checkpoint) and redoes what came after.  The recovery ladder's moves
# (error, rollback, rolled_back, retry) happen inside a step and are not among them.
BOUNDARY_TRIGGERS = frozenset(
    {"start", "plan_ready", "tasks_ready", "implementation_done", "validation_done", "refine", "handoff",
     "complete", "pause", "resume", "accept", "abort", "give_up"}
)  # fmt: skip


class Prefix(Sequence[T], Generic[T]):
    """The first ``n`` items of an append-only list: an immutable view made in O(1).

    Snapshots share the reducer's lists instead of copying them, so replay, which
    takes a snapshot at every step, costs the same per event however long the
    session.  It compares equal to any sequence with the same items.
    """

    __slots__ = ("_items", "_n")

    def __init__(self, items: list[T] | None = None, n: int | None = None) -> None:
        self._items: list[T] = items if items is not None else []
        self._n = len(self._items) if n is None else n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[T]: ...
    def __getitem__(self, i: int | slice) -> T | Sequence[T]:
        if isinstance(i, slice):
            return tuple(self._items[: self._n][i])
        if i < -self._n or i >= self._n:
            raise IndexError("index out of range")
        return self._items[i if i >= 0 else self._n + i]

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[: self._n])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == self._n and all(a == b for a, b in zip(self, other, strict=False))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


@attrs.frozen
class TaskState:
    """Where one task stands: its state and how many attempts it has started (an attempt voided by a crash aside)."""

    state: str
    attempts: int = 0
    succeeded_seq: int = 0  # the seq of its last move to succeeded (0: none)


@attrs.frozen
class Marks:
    """What a resume needs of the log, kept together (:class:`SessionState` shows each as its own property).

    One record, made anew only when one of them changes, so that a snapshot (one per replayed step) costs
    one field for all five.
    """

    answer: Decision | None = None
    guidance: Decision | None = None
    last_request: DecisionRequest | None = None
    boundary: int = 1
    checkpoint_seq: int = 0


@attrs.frozen
class SessionState:
    """Everything the events of a session say, after a given event.

    ``return_stack`` holds, innermost last, the states that ``returns: true``
    states (``paused``, ``recovering``) were entered from: a ``$history`` move
    goes back to its top.  ``gates`` are the gate results of the current
    validation round (cleared on entering ``validating``).

    What a resume needs, so that nobody reads the raw events for it:
    ``answer`` is the human's answer to the latest decision request;
    ``guidance`` a guidance answer until the step it was for is over (the next
    ``tasks_ready`` or ``refine``); ``last_request`` the latest request, kept
    after it was answered; ``boundary`` the seq of the last step boundary
    (:data:`BOUNDARY_TRIGGERS`, a checkpoint), where a crash resume rewinds to;
    ``checkpoint_seq`` the seq of the last checkpoint event.
    """

    session_id: str
    request: str
    state: str
    last_seq: int
    steps: int = 0
    iteration: int = 0
    return_stack: tuple[str, ...] = ()
    limits: Limits = attrs.field(factory=Limits)
    base_commit: str | None = None
    started_at: str | None = None
    updated_at: str | None = None
    tasks: Mapping[str, TaskState] = attrs.field(factory=dict)
    decisions: Sequence[Decision] = ()
    checkpoints: Sequence[CheckpointRecord] = ()
    agent_results: Sequence[AgentResult] = ()
    gates: Sequence[GateResult] = ()
    notes: int = 0
    decision_request: DecisionRequest | None = None
    spent_usd: float = 0.0
    run_clock: tuple[float, str | None, str | None] = (0.0, None, None)  # see active_s
    rewinds: int = 0
    last_decision: int = 0
    marks: Marks = attrs.field(factory=Marks)

    @property
    def answer(self) -> Decision | None:
        return self.marks.answer

    @property
    def guidance(self) -> Decision | None:
        return self.marks.guidance

    @property
    def last_request(self) -> DecisionRequest | None:
        return self.marks.last_request

    @property
    def boundary(self) -> int:
        return self.marks.boundary

    @property
    def checkpoint_seq(self) -> int:
        return self.marks.checkpoint_seq

    @property
    def active_s(self) -> float:
        """Seconds the session ran: its runs' spans, the time paused and before a crash resume left out.

        ``run_clock`` holds the seconds of the runs that ended, and the first and
        last timestamps of the current run (parsed here, when asked, not once an event).
        """
        closed, start, last = self.run_clock
        if start is None or last is None:
            return closed
        return closed + max(0.0, _seconds(last) - _seconds(start))

    @property
    def paused_from(self) -> str | None:
        """The state a paused session returns to on ``resume``."""
        return self.return_stack[-1] if self.state == "paused" and self.return_stack else None

    def task_state(self, task: str) -> str:
        t = self.tasks.get(task)
        return t.state if t is not None else load_chart("task").initial


class Reducer:
    """Applies events one at a time, checking each against the charts.

    Mutable on purpose (replay speed); :meth:`snapshot` gives a frozen
    :class:`SessionState`.
    """

    def __init__(self, session_chart: Chart | None = None, task_chart: Chart | None = None, *, where: str = "") -> None:
        self.chart = session_chart or load_chart("session")
        self.task_chart = task_chart or load_chart("task")
        self.where = where or "events"
        self._edges = {(e.trigger, e.source, e.dest) for e in self.chart.edges()}
        self._task_edges = {(e.trigger, e.source, e.dest) for e in self.task_chart.edges()}
        self._returns = {s.name for s in self.chart.states if s.returns}
        self._history = {(e.trigger, e.source) for e in self.chart.edges() if e.history}
        self.started: SessionStarted | None = None
        self.state = self.chart.initial
        self.last_seq = 0
        self.steps = 0
        self.iteration = 0
        self.stack: list[str] = []
        self.started_at: str | None = None
        self.updated_at: str | None = None
        self.tasks: dict[str, TaskState] = {}
        self._tasks_view: Mapping[str, TaskState] | None = None
        self._views: tuple[Prefix[Any], ...] | None = None  # of the lists below, while none grows
        self.decisions: list[Decision] = []
        self.checkpoints: list[CheckpointRecord] = []
        self.agent_results: list[AgentResult] = []
        self.gates: list[GateResult] = []
        self.notes: list[Note] = []
        self.all_gates: list[GateResult] = []  # every round's, for replay
        self.task_moves: list[TaskTransition] = []
        self.limits: Limits = Limits()
        self.request: DecisionRequest | None = None
        self.last_request: DecisionRequest | None = None  # kept after the answer (guidance names its group)
        self.answer: Decision | None = None  # the human's answer to the last request
        self.guidance: Decision | None = None  # a guidance answer, until the step it was for is over
        self.boundary = 1  # the seq of the last step boundary (BOUNDARY_TRIGGERS, checkpoints)
        self.checkpoint_seq = 0
        self._marks: Marks | None = None  # the record of the five above, while none changes
        # What a rewind does not undo: money spent, time run, decision ids used, the events themselves.
        self.events: list[Event] = []
        self.spent_usd = 0.0
        self.rewinds = 0
        self.last_decision = 0
        # Running time: the runs between a pause or a crash, each from its first event to its last (timestamps
        # are parsed only where a run ends and when the time is asked for, not once an event).
        self._closed_s = 0.0
        self._run_start: str | None = None
        self._last_ts: str | None = None

    def _fail(self, event: Event, msg: str) -> StoreError:
        return StoreError(f"{self.where}: event seq {event.seq}: {msg}")

    def apply(self, event: Event) -> None:
        before = self.state
        if event.seq != self.last_seq + 1:
            raise self._fail(event, f"expected seq {self.last_seq + 1} (seq numbers run 1, 2, 3 … without gaps)")
        kind = event.kind
        data = event.data
        if self.started is None and kind != "session":
            raise self._fail(event, "the first event of a session is of kind 'session'")
        try:
            if kind == "transition":
                self._transition(event, data)
            elif kind == "task":
                self._task(event, data)
            elif kind == "session":
                if self.started is not None:
                    raise self._fail(event, "a second 'session' event")
                self.boundary = event.seq
                self._marks = None
                self.started = converter.structure(data, SessionStarted)
                self.started_at = event.ts
                self.limits = self.started.limits
            elif kind == "decision":
                decision = converter.structure(data, Decision)
                self.decisions.append(decision)
                if decision.kind == "answer":
                    self._marks = None
                    self.answer = decision
                    self.guidance = decision if decision.choice == "guidance" else None
                if decision.id[1:].isdigit():
                    self.last_decision = max(self.last_decision, int(decision.id[1:]))
            elif kind == "checkpoint":
                self.checkpoints.append(converter.structure(data, CheckpointRecord))
                self.boundary = self.checkpoint_seq = event.seq
                self._marks = None
            elif kind == "agent":
                result = converter.structure(data, AgentResult)
                self.agent_results.append(result)
                self.spent_usd += result.cost_usd or 0.0
            elif kind == "request":
                self.request = self.last_request = converter.structure(data, DecisionRequest)
                self.answer = None
                self._marks = None
            elif kind == "limits":
                self.limits = converter.structure(data, Limits)
            elif kind == "rewind":
                rewind = converter.structure(data, Rewind)
                if rewind.to >= event.seq:
                    raise self._fail(event, f"a rewind goes back to an earlier event, not to seq {rewind.to}")
                self._rewind(rewind.to)
            elif kind == "gate":
                gate = converter.structure(data, GateResult)
                self.gates.append(gate)
                self.all_gates.append(gate)
            elif kind == "note":
                self.notes.append(converter.structure(data, Note))
            # other kinds: recorded, carried by replay, no effect on state
        except StoreError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, BaseValidationError) as exc:
            raise self._fail(event, f"malformed {kind} data: {error_text(exc)}") from exc
        if before == "paused" or event.kind == "rewind" or self._run_start is None:  # a gap that is not running
            if self._run_start is not None and self._last_ts is not None:
                self._closed_s += _seconds(self._last_ts) - _seconds(self._run_start)
            self._run_start = event.ts
        self._last_ts = event.ts
        self.events.append(event)
        self.last_seq = event.seq
        self.updated_at = event.ts

    def _rewind(self, to: int) -> None:
        """The state after event ``to``: the events since are kept but void (a crash resume redoes them)."""
        fresh = Reducer(self.chart, self.task_chart, where=self.where)
        for e in self.events[:to]:
            fresh.apply(e)
        keep = {"events", "spent_usd", "rewinds", "last_decision", "_closed_s", "_run_start", "_last_ts"}
        for name, value in vars(fresh).items():
            if name not in keep:
                setattr(self, name, value)
        self._views = None
        self._tasks_view = None
        self.rewinds += 1

    def _fields(self, event: Event, data: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
        """The string fields ``names`` of a move's data (and an optional ``reason``), checked."""
        values = tuple(data.get(n) for n in names)
        for n, v in zip(names, values, strict=True):
            if type(v) is not str:
                raise self._fail(event, f"malformed {event.kind} data: {n} must be a string, not {v!r}")
        if len(data) != len(names):
            extra = sorted(set(data) - {*names, "reason"})
            if extra:
                raise self._fail(event, f"malformed {event.kind} data: unknown field(s) {', '.join(extra)}")
            if not isinstance(data.get("reason"), str):
                raise self._fail(event, f"malformed {event.kind} data: reason must be a string")
        return values  # type: ignore[return-value]  # each checked to be a str above

    def _transition(self, event: Event, data: Mapping[str, Any]) -> None:
        trigger, source, dest = data.get("trigger"), data.get("source"), data.get("dest")
        if type(trigger) is not str or type(source) is not str or type(dest) is not str or len(data) != 3:
            trigger, source, dest = self._fields(event, data, ("trigger", "source", "dest"))  # the full check
        if source != self.state:
            raise self._fail(event, f"transition {trigger!r} leaves {source!r} but the session is in {self.state!r}")
        if (trigger, source, dest) not in self._edges:
            raise self._fail(event, f"transition {trigger!r} {source} -> {dest} is not declared in the session chart")
        # The return stack: entering a `returns` state pushes where it was entered
        # from; a $history move pops it; leaving a `returns` state any other way
        # drops its frame — unless it enters another `returns` state (pausing while
        # recovering), which nests on top.
        if (trigger, source) in self._history:
            back = self.stack.pop() if self.stack else None
            if dest != back:
                raise self._fail(event, f"{trigger!r} returns to {dest!r} but {source!r} was entered from {back!r}")
        else:
            if source in self._returns and dest not in self._returns and self.stack:
                self.stack.pop()
            if dest in self._returns:
                self.stack.append(source)
            # Entering a phase anew (not returning to it from a pause or a retry).
            if dest == "refining":
                self.iteration += 1
            elif dest == "validating":
                self.gates = []  # a new list: snapshots of the old round keep theirs
        if source == "paused":
            self.request = None  # answered (or aborted): no longer waiting
        if trigger in BOUNDARY_TRIGGERS:
            self.boundary = event.seq
            self._marks = None
        if trigger in ("tasks_ready", "refine"):
            self.guidance = None  # guidance is for the step the pause interrupted
            self._marks = None
        self.state = dest
        self.steps += 1

    def _task(self, event: Event, data: Mapping[str, Any]) -> None:
        task, trigger, source, dest = self._fields(event, data, ("task", "trigger", "source", "dest"))
        if not TASK_ID.match(task):
            raise self._fail(event, f"malformed task data: bad task id {task!r}")
        current = self.tasks.get(task)
        now = current.state if current is not None else self.task_chart.initial
        if source != now:
            raise self._fail(event, f"task {task} {trigger!r} leaves {source!r} but the task is in {now!r}")
        if (trigger, source, dest) not in self._task_edges:
            raise self._fail(event, f"task transition {trigger!r} {source} -> {dest} is not declared in the task chart")
        attempts = current.attempts if current is not None else 0
        if dest == "running":
            attempts += 1
        elif trigger == "reopen" and source == "running":  # reopened mid-attempt (a crash resume): void, redone
            attempts -= 1
        done_at = event.seq if dest == "succeeded" else (current.succeeded_seq if current is not None else 0)
        self.tasks[task] = TaskState(dest, attempts, done_at)
        reason = data.get("reason")
        self.task_moves.append(TaskTransition(task, trigger, source, dest, reason if isinstance(reason, str) else None))
        self._tasks_view = None

    def _lists(self) -> tuple[list[Any], ...]:
        return (self.decisions, self.checkpoints, self.agent_results, self.gates)

    def _grown(self, views: tuple[Prefix[Any], ...]) -> bool:
        """Whether a list changed since ``views`` were taken (appended to, or ``gates`` replaced)."""
        # decisions, checkpoints and agent results only grow; gates is also replaced each round
        return (
            len(views[0]) != len(self.decisions)
            or len(views[1]) != len(self.checkpoints)
            or len(views[2]) != len(self.agent_results)
            or views[3]._items is not self.gates
            or len(views[3]) != len(self.gates)
        )

    def snapshot(self) -> SessionState:
        """The state now, frozen; O(1) in the length of the session."""
        started = self.started
        if self._tasks_view is None:
            self._tasks_view = MappingProxyType(dict(self.tasks))
        views = self._views
        if views is None or self._grown(views):
            views = self._views = tuple(Prefix(lst) for lst in self._lists())
        return SessionState(
            session_id=started.session_id if started else "",
            request=started.request if started else "",
            state=self.state,
            last_seq=self.last_seq,
            steps=self.steps,
            iteration=self.iteration,
            return_stack=tuple(self.stack),
            limits=self.limits,
            base_commit=started.base_commit if started else None,
            started_at=self.started_at,
            updated_at=self.updated_at,
            tasks=self._tasks_view,
            decisions=views[0],
            checkpoints=views[1],
            agent_results=views[2],
            gates=views[3],
            notes=len(self.notes),
            decision_request=self.request if self.state == "paused" else None,
            spent_usd=self.spent_usd,
            run_clock=(self._closed_s, self._run_start, self._last_ts),
            rewinds=self.rewinds,
            last_decision=self.last_decision,
            marks=self._snapshot_marks(),
        )

    def _snapshot_marks(self) -> Marks:
        if self._marks is None:
            self._marks = Marks(self.answer, self.guidance, self.last_request, self.boundary, self.checkpoint_seq)
        return self._marks


def rebuild(events: Iterable[Event], *, where: str = "") -> SessionState:
    """The session state after ``events`` (checked against the charts)."""
    r = Reducer(where=where)
    for e in events:
        r.apply(e)
    return r.snapshot()


def _seconds(ts: str) -> float:
    try:
        return _dt.datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return 0.0


def effective_events(events: Iterable[Event]) -> list[Event]:
    """The events that count: those a ``rewind`` voided are left out, and so are the rewinds.

    A session resumed after a crash has, once its interrupted steps are taken
    out, the log of a session that was never interrupted.
    """
    kept: list[Event] = []
    for e in events:
        if e.kind == "rewind":
            to = e.data.get("to") if isinstance(e.data, Mapping) else None
            if isinstance(to, int):
                while kept and kept[-1].seq > to:
                    kept.pop()
            continue
        kept.append(e)
    return kept
