"""Read-only replay: steps, the state after each, and logs that do not follow the chart."""

from __future__ import annotations

import json

import pytest

import maestro
from maestro.core.records import AgentResult, Decision, GateResult


@pytest.fixture
def recorded(store: maestro.Store, session: maestro.Session) -> maestro.Session:
    s = session
    s.fire("start")
    s.record(Decision("tech-stack", "language?", "python", "the repository is python"))
    s.fire("plan_ready")
    s.fire("tasks_ready")
    s.fire_task("T1", "ready")
    s.fire_task("T1", "start")
    s.record(AgentResult("T1", "scripted", 1, "failed", failure_class="transient", cost_usd=0.01))
    s.fire_task("T1", "fail")
    s.fire("error")
    s.fire("retry")
    s.fire_task("T1", "retry")
    s.fire_task("T1", "start")
    s.record(AgentResult("T1", "scripted", 2, "succeeded"))
    s.fire_task("T1", "succeed")
    s.fire("implementation_done")
    s.record(GateResult("tests", "passed", passed=4, failed=0))
    s.fire("validation_done")
    s.fire("pause", reason="looks done?")
    s.close()
    return s


def test_steps_follow_the_transitions(store: maestro.Store, recorded: maestro.Session) -> None:
    steps = list(maestro.replay_session(store, recorded.id))
    assert [(s.index, s.trigger, s.source, s.dest) for s in steps] == [
        (0, None, None, None),
        (1, "start", "created", "planning"),
        (2, "plan_ready", "planning", "generating_tasks"),
        (3, "tasks_ready", "generating_tasks", "implementing"),
        (4, "error", "implementing", "recovering"),
        (5, "retry", "recovering", "implementing"),
        (6, "implementation_done", "implementing", "validating"),
        (7, "validation_done", "validating", "reviewing"),
        (8, "pause", "reviewing", "paused"),
    ]
    assert [s.state.state for s in steps[1:]] == [s.dest for s in steps[1:]]
    assert steps[2].decisions[0].choice == "python"
    assert [a.status for a in steps[4].agent_results] == ["failed"]
    assert [(t.task, t.trigger) for t in steps[4].task_moves] == [("T1", "ready"), ("T1", "start"), ("T1", "fail")]
    assert steps[7].gates[0].passed == 4
    assert steps[8].state.paused_from == "reviewing"
    assert steps[-1].seq == len(store.read_events(recorded.id))


def test_replay_rebuilds_exactly_the_recorded_state(store: maestro.Store, recorded: maestro.Session) -> None:
    live = recorded.state
    events = store.read_events(recorded.id)
    assert maestro.rebuild(events) == live
    assert maestro.state_at(events) == live
    assert list(maestro.replay(events))[-1].state == live


def test_the_state_after_any_step(store: maestro.Store, recorded: maestro.Session) -> None:
    events = store.read_events(recorded.id)
    at4 = maestro.state_at(events, 4)
    assert at4.state == "recovering"
    assert at4.tasks["T1"] == maestro.TaskState("failed", 1)
    assert at4.return_stack == ("implementing",)
    assert len(at4.agent_results) == 1
    assert maestro.state_at(events, 0).state == "created"
    assert [s.index for s in maestro.replay(events, to=3)] == [0, 1, 2, 3]


def test_a_session_stopped_between_moves_ends_with_an_open_step(store: maestro.Store) -> None:
    with maestro.Session.create(store, "x", clock=maestro.TickingClock()) as s:
        s.fire("start")
        s.note("thinking")
    steps = list(maestro.replay_session(store, s.id))
    assert steps[-1].trigger is None
    assert steps[-1].notes[0].text == "thinking"
    assert steps[-1].state.state == "planning"


def test_replay_writes_nothing_and_works_on_a_held_session(store: maestro.Store, session: maestro.Session) -> None:
    session.fire("start")
    sdir = session.dir
    before = {p.name: p.read_bytes() for p in sdir.iterdir()}
    assert [s.dest for s in maestro.replay_session(store, session.id)][-1] == "planning"
    assert {p.name: p.read_bytes() for p in sdir.iterdir()} == before


def _rewrite(path: object, change: dict[int, dict[str, object]]) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for seq, data in change.items():
        lines[seq - 1]["data"].update(data)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_a_move_the_chart_does_not_declare_is_named(store: maestro.Store, recorded: maestro.Session) -> None:
    path = store.events_path(recorded.id)
    _rewrite(path, {2: {"dest": "completed"}})
    with pytest.raises(
        maestro.StoreError, match=r"event seq 2: transition 'start' created -> completed is not declared"
    ):
        list(maestro.replay_session(store, recorded.id))


def test_a_move_from_the_wrong_state_is_named(store: maestro.Store, recorded: maestro.Session) -> None:
    path = store.events_path(recorded.id)
    _rewrite(path, {4: {"source": "created"}})
    with pytest.raises(maestro.StoreError, match=r"event seq 4: transition 'plan_ready' leaves 'created'"):
        maestro.rebuild(store.read_events(recorded.id))


def test_malformed_payload_is_named(store: maestro.Store, recorded: maestro.Session) -> None:
    path = store.events_path(recorded.id)
    _rewrite(path, {3: {"confidence": 7}})
    with pytest.raises(maestro.StoreError, match=r"event seq 3: malformed decision data"):
        maestro.rebuild(store.read_events(recorded.id))


def test_unknown_event_kinds_are_carried_not_refused(store: maestro.Store, recorded: maestro.Session) -> None:
    path = store.events_path(recorded.id)
    n = len(path.read_text().splitlines())
    with path.open("a") as fh:
        fh.write(
            json.dumps({"v": 1, "seq": n + 1, "ts": "2026-01-01T00:00:00Z", "kind": "telemetry", "data": {"x": 1}})
        )
        fh.write("\n")
    last = list(maestro.replay_session(store, recorded.id))[-1]
    assert last.events[-1].kind == "telemetry"
    assert last.events[-1].payload() == {"x": 1}
