"""Properties of maestro, checked by hypothesis against the real charts, store and git repositories.

* every record survives JSON (and an event survives ``events.jsonl``) unchanged;
* a session driven by random trigger sequences moves exactly as an independent
  interpreter of the charts says, never leaves its declared states, writes
  nothing when it refuses a trigger, stays put in a final state, and replays
  from disk to exactly its live state;
* closing and reopening a session midway changes nothing about what follows;
* a pause is a round trip, and so is an error and a retry: back in the state
  left, with the same return stack, refinement iteration and validation round.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import maestro
from maestro import (
    AgentResult,
    CheckpointRecord,
    Decision,
    GateResult,
    Limits,
    Note,
    Option,
    Session,
    SessionState,
    Store,
    StoreError,
    TransitionNotAllowed,
    converter,
    load_chart,
    rebuild,
    replay,
)
from maestro.core.records import Event, SessionStarted, TaskTransition, Transition, payload_kind
from maestro.model.chart import ANY, HISTORY, Chart, TransitionSpec
from maestro.store.filestore import encode_event, read_events
from tests.support.git import git_init
from tests.support.strategies import (
    EXACT,
    RECORDS,
    SESSION_TRIGGERS,
    TASK_TRIGGERS,
    any_triggers,
    checkpoints,
    decisions,
    events,
    gate_results,
    lean_payloads,
    notes,
    payload_events,
    timestamps,
)

SESSION = load_chart("session")
TASK = load_chart("task")
TASK_IDS = ("t1", "t2", "t3")
ALL_TRIGGERS = tuple(dict.fromkeys((*SESSION_TRIGGERS, *TASK_TRIGGERS, "bogus")))


# =====================================================================================
# 1. Round trips
# =====================================================================================


@pytest.mark.parametrize("name", sorted(RECORDS))
@given(data=st.data())
def test_every_record_round_trips_through_json(name: str, data: st.DataObject) -> None:
    record = data.draw(RECORDS[name], label=name)
    text = json.dumps(converter.unstructure(record))
    back = converter.structure(json.loads(text), type(record))
    assert type(back) is type(record)
    assert back == record
    # and writing it again gives the same JSON (as values: a whole number in a float field may come back as 3.0)
    assert json.loads(json.dumps(converter.unstructure(back))) == json.loads(text)


@given(pair=payload_events())
def test_an_event_gives_back_the_payload_it_carries(pair: tuple[Event, Any]) -> None:
    event, payload = pair
    back = converter.structure(json.loads(json.dumps(converter.unstructure(event))), Event)
    assert back == event
    assert back.payload() == payload


_log_events = st.lists(st.one_of(events(), payload_events().map(lambda p: p[0])), min_size=1, max_size=6)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(evs=_log_events, torn=st.integers(min_value=0, max_value=200))
def test_events_round_trip_through_the_event_log(evs: list[Event], torn: int) -> None:
    """``encode_event`` writes one line per event; ``read_events`` gives the events back (a torn tail is dropped)."""
    evs = [attrs.evolve(e, seq=i) for i, e in enumerate(evs, start=1)]
    lines = [encode_event(e) for e in evs]
    for line in lines:
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
    whole = b"".join(lines)
    # a crash in the middle of the next append leaves a prefix of its line, without the newline
    nxt = encode_event(attrs.evolve(evs[0], seq=len(evs) + 1))
    tail = nxt[: min(torn, len(nxt) - 1)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.jsonl"
        path.write_bytes(whole)
        back, intact = read_events(path)
        assert back == evs
        assert intact == len(whole)
        path.write_bytes(whole + tail)
        back, intact = read_events(path)
        assert back == evs
        assert intact == len(whole)


# -- numbers: what a record accepts, the log keeps ------------------------------------


def _refuse(token: str) -> float:
    raise ValueError(f"{token} is not JSON")


def _decision(score: Any) -> Decision:
    return Decision("k", "q", "c", "r", options=(Option("o", score=score),))


def _agent(cost: Any) -> AgentResult:
    return AgentResult("t", "a", 1, "succeeded", cost_usd=cost, duration_s=cost)


@example(make=_decision, value=EXACT + 1)
@example(make=_agent, value=EXACT + 1)
@given(make=st.sampled_from([_decision, _agent]), value=st.integers(min_value=EXACT + 1, max_value=2**70))
def test_whole_numbers_in_number_fields_keep_their_value(make: Callable[[Any], Any], value: int) -> None:
    """Where a record takes ``int | float``, a whole number is refused or comes back from JSON with its value."""
    try:
        record = make(value)
    except ValueError:
        return
    back = converter.structure(json.loads(json.dumps(converter.unstructure(record))), type(record))
    assert back == record


@example(make=_decision, value=math.nan)
@example(make=_decision, value=math.inf)
@example(make=_agent, value=math.inf)
@given(make=st.sampled_from([_decision, _agent]), value=st.floats())
def test_every_accepted_record_is_logged_as_standard_json(make: Callable[[Any], Any], value: float) -> None:
    """``events.jsonl`` is JSON lines: a number a record accepts is written as JSON (which has no NaN or Infinity),
    or the record refuses it."""
    try:
        record = make(value)
    except ValueError:
        return
    line = encode_event(Event(1, 1, "2026-01-01T00:00:00Z", payload_kind(record), converter.unstructure(record)))
    json.loads(line, parse_constant=_refuse)


# -- what the validators accept --------------------------------------------------------

_TASK_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


def _accepted(make: Callable[[], object], *errors: type[BaseException]) -> bool:
    try:
        make()
    except errors:
        return False
    return True


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(git_init(tmp_path_factory.mktemp("ids") / "repo"))


@example(ident="task-1.a_b")
@example(ident="a\n")
@example(ident="a/b")
@example(ident=".a")
@example(ident="..")
@given(ident=st.text(max_size=8) | st.text(alphabet="ab1.-_\n/ ", max_size=6))
def test_identifiers_are_exactly_the_documented_alphabet(shared_store: Store, ident: str) -> None:
    """Task ids match ``[A-Za-z0-9._-]+``, session ids ``[A-Za-z0-9][A-Za-z0-9._-]*`` — the whole id (a trailing
    newline included), wherever an id is checked."""
    task_ok = _TASK_ID_RE.fullmatch(ident) is not None
    session_ok = _SESSION_ID_RE.fullmatch(ident) is not None
    assert _accepted(lambda: TaskTransition(ident, "start", "ready", "running"), ValueError) == task_ok
    assert _accepted(lambda: AgentResult(ident, "agent", 1, "succeeded"), ValueError) == task_ok
    assert _accepted(lambda: SessionStarted(ident, "request"), ValueError) == session_ok
    assert _accepted(lambda: shared_store.session_dir(ident), StoreError) == session_ok


@example(ts="2026-01-31T12:00:00Z")
@example(ts="2026-01-31T12:00:00Z\n")
@example(ts="\u0662\u0660\u0662\u0666-01-31T12:00:00Z")  # Arabic-Indic digits
@given(ts=timestamps() | st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z\n?", fullmatch=True) | st.text())
def test_timestamps_are_exactly_iso_8601_utc(ts: str) -> None:
    ok = _TS_RE.fullmatch(ts) is not None
    assert _accepted(lambda: Event(1, 1, ts, "note", {}), ValueError) == ok


# =====================================================================================
# 2. An independent model of the charts
# =====================================================================================


class ChartModel:
    """The semantics of a chart, read from its transitions as written (not from ``Chart.edges``).

    ``source: "*"`` is every non-final state but the destination; ``dest: $history``
    goes to the top of the return stack; the first transition (in declaration
    order) whose guards pass is taken.
    """

    def __init__(self, chart: Chart) -> None:
        self.chart = chart
        self.names = [s.name for s in chart.states]
        self.final = {s.name for s in chart.states if s.final}
        self.returns = {s.name for s in chart.states if s.returns}

    def sources(self, spec: TransitionSpec) -> list[str]:
        if spec.source == (ANY,):
            return [n for n in self.names if n not in self.final and n != spec.dest]
        return list(spec.source)

    def declared(self, state: str) -> set[str]:
        """Triggers with a transition out of ``state``, guards aside."""
        return {t.trigger for t in self.chart.transitions if state in self.sources(t)}

    def move(self, state: str, trigger: str, stack: list[str], guard: Callable[[str], bool]) -> tuple[str, bool] | None:
        """``(dest, by_history)`` of the move ``trigger`` makes from ``state``, or None if it is not allowed."""
        for spec in self.chart.transitions:
            if spec.trigger != trigger or state not in self.sources(spec):
                continue
            if spec.dest == HISTORY:
                if not stack:
                    continue
                dest, by_history = stack[-1], True
            else:
                dest, by_history = spec.dest, False
            if all(guard(g) for g in spec.conditions) and not any(guard(g) for g in spec.unless):
                return dest, by_history
        return None


SESSION_MODEL = ChartModel(SESSION)
TASK_MODEL = ChartModel(TASK)


@attrs.define
class SessionModel:
    """What a session should be after the moves and records made so far, kept apart from maestro's reducer.

    The return stack: entering a ``returns`` state pushes where it was entered
    from; a ``$history`` move pops and goes there; leaving a ``returns`` state
    any other way, for a state that does not return, drops its frame; entering a
    ``returns`` state from another nests.

    The counters: ``iteration`` counts refinement iterations and the gates are
    those of the current validation round: entering ``refining`` starts an
    iteration and entering ``validating`` a round — but a ``$history`` move
    (a resume, a retry) returns to the phase under way, it does not start one.
    """

    limits: Limits
    state: str = SESSION.initial
    stack: list[str] = attrs.Factory(list)
    iteration: int = 0
    tasks: dict[str, tuple[str, int]] = attrs.Factory(dict)
    decisions: list[Decision] = attrs.Factory(list)
    checkpoints: list[CheckpointRecord] = attrs.Factory(list)
    agent_results: list[AgentResult] = attrs.Factory(list)
    gates: list[GateResult] = attrs.Factory(list)
    notes: int = 0

    def guard(self, name: str, task: str | None = None) -> bool:
        if name == "has_checkpoint":
            return len(self.checkpoints) > 0
        if name == "within_iteration_limit":
            return self.iteration < self.limits.max_iterations
        if name == "required_gates_passed":
            return len(self.gates) > 0 and all(g.status == "passed" for g in self.gates if g.required)
        if name == "attempts_left":
            assert task is not None
            return self.task(task)[1] < self.limits.max_task_attempts
        raise AssertionError(f"the model does not know guard {name!r}")

    def task(self, task: str) -> tuple[str, int]:
        return self.tasks.get(task, (TASK.initial, 0))

    def predict(self, trigger: str) -> tuple[str, bool] | None:
        return SESSION_MODEL.move(self.state, trigger, self.stack, self.guard)

    def predict_task(self, task: str, trigger: str) -> str | None:
        move = TASK_MODEL.move(self.task(task)[0], trigger, [], lambda g: self.guard(g, task))
        return move[0] if move is not None else None

    def fire(self, trigger: str) -> str:
        move = self.predict(trigger)
        assert move is not None
        dest, by_history = move
        source = self.state
        if by_history:
            self.stack.pop()
        else:
            if source in SESSION_MODEL.returns and dest not in SESSION_MODEL.returns:
                assert self.stack, f"in {source!r} with nothing to return to"
                self.stack.pop()
            if dest in SESSION_MODEL.returns:
                self.stack.append(source)
        if dest == "refining" and not by_history:
            self.iteration += 1
        if dest == "validating" and not by_history:
            self.gates.clear()
        self.state = dest
        return dest

    def fire_task(self, task: str, trigger: str) -> str:
        dest = self.predict_task(task, trigger)
        assert dest is not None
        state, attempts = self.task(task)
        if dest == "running":
            attempts += 1
        elif trigger == "reopen" and state == "running":  # an attempt voided (a crash resume) is not counted
            attempts -= 1
        self.tasks[task] = (dest, attempts)
        return dest

    def record(self, payload: Any) -> None:
        if isinstance(payload, Decision):
            self.decisions.append(payload)
        elif isinstance(payload, CheckpointRecord):
            self.checkpoints.append(payload)
        elif isinstance(payload, AgentResult):
            self.agent_results.append(payload)
        elif isinstance(payload, GateResult):
            self.gates.append(payload)
        elif isinstance(payload, Note):
            self.notes += 1
        else:
            raise AssertionError(f"cannot record {payload!r}")


def _attempt(move: Callable[[], str]) -> tuple[str, TransitionNotAllowed | None]:
    """``move()``'s new state, or the refusal it raised."""
    try:
        return move(), None
    except TransitionNotAllowed as exc:
        return "", exc


def _without_clock(state: SessionState) -> SessionState:
    """``state`` with the fields every event moves (sequence, step count, time, the last step boundary) cleared."""
    return attrs.evolve(
        state,
        last_seq=0,
        steps=0,
        updated_at=None,
        run_clock=(0.0, None, None),
        marks=attrs.evolve(state.marks, boundary=0),
    )


# =====================================================================================
# 3. Stateful: random trigger sequences on a real session in a real git repository
# =====================================================================================

_GIVING_UP = ("aborted", "failed")
_gate_names = st.sampled_from(["tests", "lint", "types", "security"])


class SessionMachine(RuleBasedStateMachine):
    """A real session in a real git repository, driven by random triggers and records, next to a :class:`SessionModel`.

    Rules fire any trigger (allowed or not) or one the model allows, move tasks, record gates, checkpoints,
    decisions, agent results and notes, and close and reopen the session.  After every step: the states are
    declared ones, the session is what the model says, the log on disk replays to the live state, and a final
    state refuses every trigger.  Each rule checks that a refused trigger changed nothing, on disk or in memory.
    """

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="maestro-props-")
        self.repo = git_init(Path(self._tmp.name) / "repo")
        self.store = Store(self.repo)
        self.clock = maestro.TickingClock()
        self.session: Session | None = None
        self.model: SessionModel | None = None
        self.reopened_at = 0

    # -- setup and teardown --------------------------------------------------------
    @initialize(lim=st.builds(Limits, max_iterations=st.integers(1, 3), max_task_attempts=st.integers(1, 3)))
    def create(self, lim: Limits) -> None:
        self.session = Session.create(
            self.store, "property test", limits=lim, clock=self.clock, ids=maestro.SequentialIds()
        )
        self.model = SessionModel(lim)

    def teardown(self) -> None:
        try:
            if self.session is not None:
                self.session.close()
        finally:
            self._tmp.cleanup()

    @property
    def s(self) -> Session:
        assert self.session is not None
        return self.session

    @property
    def m(self) -> SessionModel:
        assert self.model is not None
        return self.model

    def _log_bytes(self) -> bytes:
        return self.s.events_path.read_bytes()

    # -- moving the session --------------------------------------------------------
    def _fire(self, trigger: str, reason: str | None = None) -> None:
        before, before_bytes = self.s.state, self._log_bytes()
        expected = self.m.predict(trigger)
        dest, refused = _attempt(lambda: self.s.fire(trigger, reason=reason))
        if refused is not None:
            assert expected is None, (
                f"{trigger!r} from {before.state!r} was refused ({refused.reason}); the chart allows {expected[0]!r}"
            )
            assert (refused.trigger, refused.state, refused.machine) == (trigger, before.state, "session")
            assert self.s.state == before, "a refused trigger changed the session"
            assert self._log_bytes() == before_bytes, "a refused trigger wrote to events.jsonl"
            return
        assert expected is not None, f"{trigger!r} from {before.state!r} moved to {dest!r}; the chart does not allow it"
        assert dest == expected[0], f"{trigger!r} from {before.state!r} went to {dest!r}, not {expected[0]!r}"
        assert self.s.current == dest
        # exactly one event was appended: this move, durably
        after_bytes = self._log_bytes()
        assert after_bytes.startswith(before_bytes)
        assert after_bytes[len(before_bytes) :].count(b"\n") == 1
        last = self.s.events[-1]
        assert (last.kind, last.seq) == ("transition", before.last_seq + 1)
        assert last.payload() == Transition(trigger, before.state, dest, reason)
        # a pause remembers where from; a resume goes back there
        if dest == "paused":
            assert self.s.state.paused_from == before.state
        if trigger == "resume":
            assert before.paused_from is not None
            assert dest == before.paused_from, f"resumed to {dest!r}, paused from {before.paused_from!r}"
        self.m.fire(trigger)

    # Swarm testing switches rules off at random for a whole example, so the rules are few and two of
    # them move the session: moving it is most of what an example does.
    @rule(trigger=any_triggers(), reason=st.none() | st.text(max_size=8))
    def fire_any(self, trigger: str, reason: str | None) -> None:
        """Any trigger of either chart (or of none), allowed now or not."""
        self._fire(trigger, reason)

    @rule(pick=st.integers(min_value=0, max_value=255))
    def fire_allowed(self, pick: int) -> None:
        """A trigger the model allows now; one that gives up (to ``aborted``, ``failed``) only one time in
        sixteen, so that examples reach the deep states.  In a final state, any trigger of the chart."""
        moves = {t: move for t in SESSION_TRIGGERS if (move := self.m.predict(t)) is not None}
        allowed = list(moves)
        if pick % 16:
            allowed = [t for t, (dest, _) in moves.items() if dest not in _GIVING_UP] or allowed
        choices = allowed or list(SESSION_TRIGGERS)
        self._fire(choices[pick // 16 % len(choices)])

    def _fire_task(self, task: str, trigger: str) -> None:
        before, before_bytes = self.s.state, self._log_bytes()
        was = self.m.task(task)[0]
        expected = self.m.predict_task(task, trigger)
        dest, refused = _attempt(lambda: self.s.fire_task(task, trigger))
        if refused is not None:
            assert expected is None, f"task {trigger!r} from {was!r} refused ({refused.reason}); the chart allows it"
            assert (refused.trigger, refused.state, refused.machine) == (trigger, was, f"task {task}")
            assert self.s.state == before
            assert self._log_bytes() == before_bytes
            return
        assert expected is not None, f"task {trigger!r} from {was!r} moved to {dest!r}; the chart does not allow it"
        assert dest == expected
        assert self.s.task_state(task) == dest
        assert self.s.events[-1].payload() == TaskTransition(task, trigger, was, dest)
        assert self.s.current == before.state, "a task move moved the session"
        self.m.fire_task(task, trigger)

    @rule(task=st.sampled_from(TASK_IDS), allowed=st.booleans(), trigger=any_triggers(), pick=st.integers(0, 63))
    def fire_task(self, task: str, allowed: bool, trigger: str, pick: int) -> None:
        """Any trigger at a task, or one its chart allows now."""
        if allowed:
            choices = [t for t in TASK_TRIGGERS if self.m.predict_task(task, t) is not None] or list(TASK_TRIGGERS)
            trigger = choices[pick % len(choices)]
        self._fire_task(task, trigger)

    # -- records -------------------------------------------------------------------
    def _record(self, payload: Any) -> None:
        before = self.s.state
        taken = [int(d.id[1:]) for d in before.decisions]
        if isinstance(payload, Decision) and payload.id and int(payload.id[1:]) in taken:
            before_bytes = self._log_bytes()
            with pytest.raises(StoreError, match=f"decision {payload.id} is already recorded"):
                self.s.record(payload)
            assert self._log_bytes() == before_bytes
            return
        event = self.s.record(payload)
        if isinstance(payload, Decision):  # the session numbers and stamps a decision it is given bare
            assert event.payload() == attrs.evolve(
                payload, id=payload.id or f"D{max(taken, default=0) + 1}", ts=payload.ts or event.ts
            )
            payload = event.payload()
        assert event.payload() == payload
        assert event.seq == before.last_seq + 1
        assert self.s.current == before.state, "a record moved the session"
        self.m.record(payload)

    @rule(
        payload=lean_payloads(),
    )
    def record(self, payload: Any) -> None:
        """A gate (the ``required_gates_passed`` guard), a checkpoint (``has_checkpoint``), a decision,
        an agent result or a note.  Moves cannot be recorded: they are made."""
        self._record(payload)
        before = self._log_bytes()
        for move in (
            Transition("start", self.s.current, "completed"),
            TaskTransition("t1", "start", "ready", "running"),
        ):
            with pytest.raises(TypeError):
                self.s.record(move)
        assert self._log_bytes() == before

    # -- reopening -----------------------------------------------------------------
    @precondition(lambda self: self.session is not None and len(self.session.events) != self.reopened_at)
    @rule()
    def reopen(self) -> None:
        """Close the session and open it again: the same state, the same log, and it goes on (the rules
        that follow check that it moves as the model says).  Once between two events is enough."""
        before, before_bytes, triggers, sid = self.s.state, self._log_bytes(), self.s.triggers(), self.s.id
        self.s.close()
        with pytest.raises(StoreError):
            self.s.fire(triggers[0] if triggers else SESSION_TRIGGERS[0])
        self.session = None
        self.session = Session.open(self.store, sid, clock=self.clock)
        assert self.s.state == before
        assert self.s.triggers() == triggers
        for task in TASK_IDS:
            assert self.s.task_state(task) == before.task_state(task)
        assert self._log_bytes() == before_bytes
        self.reopened_at = len(self.s.events)

    # -- invariants ----------------------------------------------------------------
    @invariant()
    def states_are_declared(self) -> None:
        state = self.s.state
        assert state.state in SESSION.state_names
        for task in state.tasks.values():
            assert task.state in TASK.state_names

    @invariant()
    def session_matches_the_model(self) -> None:
        state, m = self.s.state, self.m
        assert state.state == m.state
        assert list(state.return_stack) == m.stack
        assert state.paused_from == (m.stack[-1] if m.state == "paused" else None)
        assert set(self.s.triggers()) == SESSION_MODEL.declared(m.state)
        assert state.iteration == m.iteration, f"iteration {state.iteration}, the model counts {m.iteration}"
        assert list(state.gates) == m.gates, "the gates of the current validation round differ from the model's"
        assert list(state.checkpoints) == m.checkpoints
        assert list(state.decisions) == m.decisions
        assert list(state.agent_results) == m.agent_results
        assert state.notes == m.notes
        assert {k: (t.state, t.attempts) for k, t in state.tasks.items()} == m.tasks
        for task in TASK_IDS:
            assert self.s.task_state(task) == m.task(task)[0]

    @invariant()
    def replaying_the_log_gives_the_live_state(self) -> None:
        live = self.s.state
        on_disk = Store(self.repo).read_events(self.s.id)
        assert on_disk == list(self.s.events)
        assert rebuild(on_disk) == live
        steps = list(replay(on_disk))
        assert steps[-1].state == live
        assert [s.index for s in steps] == list(range(len(steps)))
        moves = [e for e in on_disk if e.kind == "transition"]
        assert [s.trigger for s in steps if s.trigger is not None] == [e.data["trigger"] for e in moves]

    @invariant()
    def final_states_absorb(self) -> None:
        if not SESSION.is_final(self.s.current):
            return
        before, before_bytes = self.s.state, self._log_bytes()
        for trigger in ALL_TRIGGERS:
            with pytest.raises(TransitionNotAllowed):
                self.s.fire(trigger)
        assert self.s.triggers() == []
        assert self.s.state == before
        assert self._log_bytes() == before_bytes

    @precondition(lambda self: self.session is not None and self.s.current == "paused")
    @invariant()
    def paused_remembers_where_from(self) -> None:
        """Without the model: a paused session knows a state it can have been paused from."""
        paused_from = self.s.state.paused_from
        assert paused_from is not None
        assert "pause" in SESSION_MODEL.declared(paused_from)


# No shrinking: every step of a run does real I/O (an fsync'd log, views, a replay from disk), and
# shrinking a failing run of fifty steps takes minutes.  A failure prints the whole run; the assertion
# message names the trigger, the state and what differs.
SessionMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSessionMachine = SessionMachine.TestCase


# =====================================================================================
# 4. Reopening midway changes nothing
# =====================================================================================

_ops = st.one_of(
    st.tuples(st.just("fire"), st.sampled_from(ALL_TRIGGERS)),
    st.tuples(st.just("declared"), st.integers(min_value=0, max_value=63)),
    st.tuples(st.just("task"), st.sampled_from(TASK_IDS[:2]), st.sampled_from(TASK_TRIGGERS)),
    st.tuples(st.just("task_declared"), st.sampled_from(TASK_IDS[:2]), st.integers(min_value=0, max_value=63)),
    st.tuples(st.just("record"), gate_results(name=_gate_names) | checkpoints() | decisions() | notes()),
)


def _apply(session: Session, op: tuple[Any, ...]) -> str:
    """Do ``op`` to ``session``; what came of it."""
    try:
        if op[0] == "fire":
            return session.fire(op[1])
        if op[0] == "declared":
            triggers = session.triggers() or list(SESSION_TRIGGERS)
            return session.fire(triggers[op[1] % len(triggers)])
        if op[0] == "task":
            return session.fire_task(op[1], op[2])
        if op[0] == "task_declared":
            triggers = sorted(TASK_MODEL.declared(session.task_state(op[1]))) or list(TASK_TRIGGERS)
            return session.fire_task(op[1], triggers[op[2] % len(triggers)])
        return session.record(op[1]).kind
    except TransitionNotAllowed as exc:
        return f"refused: {exc}"
    except StoreError as exc:  # a decision id given twice
        return f"refused: {exc}"


@contextmanager
def _fresh_session(limits: Limits) -> Iterator[tuple[Store, Session, maestro.TickingClock]]:
    with tempfile.TemporaryDirectory(prefix="maestro-props-") as d:
        store = Store(git_init(Path(d) / "repo"))
        clock = maestro.TickingClock()
        session = Session.create(store, "reopen", limits=limits, clock=clock, ids=maestro.SequentialIds())
        try:
            yield store, session, clock
        finally:
            session.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_ops, max_size=30),
    cut=st.floats(min_value=0, max_value=1),
    lim=st.builds(Limits, max_iterations=st.integers(1, 3), max_task_attempts=st.integers(1, 3)),
)
def test_reopening_midway_continues_the_same_session(ops: list[tuple[Any, ...]], cut: float, lim: Limits) -> None:
    """The same operations on a session held throughout and on one closed and reopened after a fraction ``cut``
    of them: the same outcomes, the same state, byte for byte the same log."""
    at = round(cut * len(ops))
    with _fresh_session(lim) as (_, straight, _), _fresh_session(lim) as (store, first, clock):
        outcomes_straight = [_apply(straight, op) for op in ops]
        outcomes_reopened = [_apply(first, op) for op in ops[:at]]
        before = first.state
        first.close()
        second = Session.open(store, before.session_id, clock=clock)
        try:
            assert second.state == before
            outcomes_reopened += [_apply(second, op) for op in ops[at:]]
            assert outcomes_reopened == outcomes_straight
            assert second.state == straight.state
            assert second.events_path.read_bytes() == straight.events_path.read_bytes()
        finally:
            second.close()


# =====================================================================================
# 5. A pause is a round trip, and so is a retry
# =====================================================================================


def _routes() -> dict[str, list[str]]:
    """The shortest trigger path from the initial state to every state, over non-history moves."""
    routes: dict[str, list[str]] = {SESSION.initial: []}
    todo = deque([SESSION.initial])
    while todo:
        here = todo.popleft()
        for spec in SESSION.transitions:
            if spec.dest != HISTORY and here in SESSION_MODEL.sources(spec) and spec.dest not in routes:
                routes[spec.dest] = [*routes[here], spec.trigger]
                todo.append(spec.dest)
    return routes


ROUTES = _routes()


def _drive(session: Session, route: list[str]) -> None:
    """Follow ``route``, making its guards pass: a checkpoint first, a passing gate after every move."""
    session.record(CheckpointRecord(1, "0" * 40, "maestro/cp-1", "start", "2026-01-01T00:00:00Z"))
    for trigger in route:
        session.fire(trigger)
        session.record(GateResult("tests", "passed"))


_ROUND_TRIPS = [
    ("pause", "resume", where) for where in sorted(s for s in ROUTES if "pause" in SESSION_MODEL.declared(s))
] + [("error", "retry", where) for where in sorted(s for s in ROUTES if "error" in SESSION_MODEL.declared(s))]


@pytest.mark.parametrize(("away", "back", "where"), _ROUND_TRIPS)
@settings(max_examples=5, deadline=None)
@given(records=st.lists(gate_results(name=_gate_names) | checkpoints() | notes(), max_size=3))
def test_a_history_move_gives_back_the_session_as_it_was(away: str, back: str, where: str, records: list[Any]) -> None:
    """``pause`` then ``resume``, or ``error`` then ``retry``, returns to the state left, with everything as it
    was: the return stack, the refinement iteration, the gates of the validation round.  A return to a phase
    is not a new iteration or a new round."""
    with _fresh_session(Limits()) as (_, session, _):
        _drive(session, ROUTES[where])
        for payload in records:
            session.record(payload)
        before = session.state
        went = session.fire(away)
        assert session.state.return_stack == (*before.return_stack, where)
        assert session.fire(back) == where, f"{away} from {where}, then {back}: not back in {where}"
        after = session.state
        assert after.steps == before.steps + 2
        assert _without_clock(after) == _without_clock(before), f"{where} -> {went} -> {where} changed the session"
        refines = sum(1 for e in session.events if e.kind == "transition" and e.data["trigger"] == "refine")
        assert after.iteration == refines
