"""A live session: moves, guards, refusals, tasks, records, views, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import maestro
from maestro.core.records import CheckpointRecord, Decision, Evidence, FileChange, GateResult, Option

HAPPY = ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done"]


def passed_gate(name: str = "tests", required: bool = True) -> GateResult:
    return GateResult(name, "passed", required=required, passed=3, failed=0)


def checkpoint(n: int = 1) -> CheckpointRecord:
    return CheckpointRecord(n, "a" * 40, f"maestro/s/{n}", "group 1", "2026-01-01T00:00:00Z",
                            (FileChange("src/calc.py", "added", 12, 0),))  # fmt: skip


def test_the_main_line_runs_to_completed(session: maestro.Session) -> None:
    for trigger in HAPPY:
        session.fire(trigger)
    session.record(passed_gate())
    assert session.fire("handoff") == "handoff"
    assert session.fire("complete") == "completed"
    assert session.state.steps == 7


def test_a_trigger_not_declared_here_is_refused_and_records_nothing(session: maestro.Session) -> None:
    before = session.events_path.read_bytes()
    with pytest.raises(maestro.TransitionNotAllowed) as info:
        session.fire("complete")
    err = info.value
    assert (err.trigger, err.state) == ("complete", "created")
    assert "allowed: start, pause, abort" in str(err)
    assert session.current == "created"
    assert session.events_path.read_bytes() == before


def test_an_unknown_trigger_is_refused(session: maestro.Session) -> None:
    with pytest.raises(maestro.TransitionNotAllowed, match="'fly' is not allowed in state 'created'"):
        session.fire("fly")


def test_handoff_waits_for_every_required_gate(session: maestro.Session) -> None:
    for trigger in HAPPY:
        session.fire(trigger)
    with pytest.raises(maestro.TransitionNotAllowed, match="refused by guard\\(s\\): required_gates_passed"):
        session.fire("handoff")
    session.record(GateResult("lint", "failed", required=False, summary="3 warnings"))
    session.record(GateResult("tests", "failed", required=True, passed=2, failed=1))
    with pytest.raises(maestro.TransitionNotAllowed):
        session.fire("handoff")
    assert session.current == "reviewing"


def test_a_new_validation_round_forgets_the_old_gates(session: maestro.Session) -> None:
    for trigger in HAPPY:
        session.fire(trigger)
    session.record(passed_gate())
    session.fire("refine")
    session.fire("tasks_ready")
    session.fire("implementation_done")
    assert session.state.gates == ()
    session.fire("validation_done")
    with pytest.raises(maestro.TransitionNotAllowed):
        session.fire("handoff")


def test_refinement_is_bounded_by_the_iteration_limit(store: maestro.Store) -> None:
    s = maestro.Session.create(store, "x", limits=maestro.Limits(max_iterations=2), clock=maestro.TickingClock())
    with s:
        for trigger in HAPPY:
            s.fire(trigger)
        for _ in range(2):
            s.fire("refine")
            s.fire("tasks_ready")
            s.fire("implementation_done")
            s.fire("validation_done")
        assert s.state.iteration == 2
        with pytest.raises(maestro.TransitionNotAllowed, match="within_iteration_limit"):
            s.fire("refine")
        assert s.fire("give_up") == "failed"


def test_rollback_needs_a_checkpoint(session: maestro.Session) -> None:
    for trigger in ["start", "plan_ready", "tasks_ready", "error"]:
        session.fire(trigger)
    with pytest.raises(maestro.TransitionNotAllowed, match="has_checkpoint"):
        session.fire("rollback")
    session.record(checkpoint())
    assert session.fire("rollback") == "rolling_back"
    assert session.fire("rolled_back") == "implementing"


@pytest.mark.parametrize("where", ["created", "planning", "implementing", "reviewing", "recovering", "handoff"])
def test_pause_returns_to_where_it_was_paused_from(session: maestro.Session, where: str) -> None:
    path = {
        "created": [],
        "planning": ["start"],
        "implementing": ["start", "plan_ready", "tasks_ready"],
        "reviewing": HAPPY,
        "recovering": ["start", "plan_ready", "tasks_ready", "error"],
        "handoff": HAPPY,
    }[where]
    for trigger in path:
        session.fire(trigger)
    if where == "handoff":
        session.record(passed_gate())
        session.fire("handoff")
    session.fire("pause", reason="which database?")
    assert session.state.paused_from == where
    assert session.fire("resume") == where


def test_pausing_while_recovering_nests(session: maestro.Session) -> None:
    for trigger in ["start", "plan_ready", "tasks_ready", "implementation_done", "error", "pause"]:
        session.fire(trigger)
    assert session.state.return_stack == ("validating", "recovering")
    assert session.fire("resume") == "recovering"
    assert session.fire("retry") == "validating"
    assert session.state.return_stack == ()


@pytest.mark.parametrize("final", ["completed", "failed", "aborted"])
def test_final_states_absorb(session: maestro.Session, final: str) -> None:
    if final == "aborted":
        session.fire("abort")
    else:
        for trigger in HAPPY:
            session.fire(trigger)
        if final == "failed":
            session.fire("give_up")
        else:
            session.record(passed_gate())
            session.fire("handoff")
            session.fire("complete")
    assert session.current == final
    chart = maestro.load_chart("session")
    for trigger in chart.triggers:
        with pytest.raises(maestro.TransitionNotAllowed, match="none: it is final"):
            session.fire(trigger)


def test_tasks_move_on_their_own_chart(session: maestro.Session) -> None:
    assert session.task_state("T1") == "pending"
    for trigger, dest in [("ready", "ready"), ("start", "running"), ("fail", "failed"), ("retry", "retrying"),
                          ("start", "running"), ("succeed", "succeeded")]:  # fmt: skip
        assert session.fire_task("T1", trigger) == dest
    succeeded_at = session.events[-1].seq  # where its work was last done: a resume compares it with the checkpoints
    assert session.state.tasks["T1"] == maestro.TaskState("succeeded", attempts=2, succeeded_seq=succeeded_at)
    with pytest.raises(maestro.TransitionNotAllowed, match="task T1: trigger 'start' is not allowed"):
        session.fire_task("T1", "start")


def test_a_task_runs_out_of_attempts(store: maestro.Store) -> None:
    with maestro.Session.create(store, "x", limits=maestro.Limits(max_task_attempts=2)) as s:
        s.fire_task("T1", "ready")
        for _ in range(2):
            s.fire_task("T1", "start")
            s.fire_task("T1", "fail")
            if s.state.tasks["T1"].attempts < 2:
                s.fire_task("T1", "retry")
        with pytest.raises(maestro.TransitionNotAllowed, match="attempts_left"):
            s.fire_task("T1", "retry")
        assert s.fire_task("T1", "skip") == "skipped"


def test_a_bad_task_id_is_refused_before_anything_is_written(session: maestro.Session) -> None:
    before = session.events_path.read_bytes()
    with pytest.raises(maestro.StoreError, match="bad task id 'no spaces'"):
        session.fire_task("no spaces", "ready")
    assert session.events_path.read_bytes() == before
    assert session.task_state("no spaces") == "pending"


def test_records_land_in_the_derived_views(session: maestro.Session) -> None:
    decision = Decision(
        "tech-stack", "Which test runner?", "pytest", "already in pyproject.toml",
        options=(Option("pytest", 0.9, (Evidence("file", "pyproject.toml"),)), Option("unittest", 0.4)), confidence=0.9,
    )  # fmt: skip
    session.fire("start")
    session.record(decision)
    session.record(checkpoint())
    session.close()
    decisions = json.loads((session.dir / "decisions.json").read_text())
    assert decisions[0]["choice"] == "pytest"
    assert decisions[0]["options"][0]["evidence"] == [{"kind": "file", "value": "pyproject.toml"}]
    assert (decisions[0]["id"], decisions[0]["ts"]) == ("D1", session.events[-2].ts)
    assert json.loads((session.dir / "checkpoints.json").read_text())[0]["tag"] == "maestro/s/1"
    meta = json.loads((session.dir / "metadata.json").read_text())
    assert meta["state"] == "planning"
    assert meta["request"] == "add a calculator"
    assert meta["last_seq"] == 4
    log = (session.dir / "execution-log.md").read_text()
    assert "[Maestro] created → planning (start)" in log
    assert "[Maestro] Decision (tech-stack, by policy): pytest — already in pyproject.toml" in log
    assert "✓ Checkpoint 1: aaaaaaaaaaaa group 1 (1 file)" in log


def test_views_are_refreshed_when_the_session_pauses(session: maestro.Session) -> None:
    session.fire("start")
    session.fire("pause")
    meta = json.loads((session.dir / "metadata.json").read_text())
    assert (meta["state"], meta["paused_from"]) == ("paused", "planning")


def test_transitions_cannot_be_recorded_by_hand(session: maestro.Session) -> None:
    from maestro.core.records import Transition

    with pytest.raises(TypeError, match="made with fire"):
        session.record(Transition("start", "created", "planning"))
    with pytest.raises(TypeError, match="not an event payload"):
        session.record({"kind": "note"})


def test_a_closed_session_refuses_to_move(session: maestro.Session) -> None:
    session.close()
    session.close()  # idempotent
    with pytest.raises(maestro.StoreError, match="is closed"):
        session.fire("start")


def test_reopening_continues_where_it_stopped(store: maestro.Store, session: maestro.Session) -> None:
    for trigger in ["start", "plan_ready", "tasks_ready", "error", "pause"]:
        session.fire(trigger)
    session.fire_task("T1", "ready")
    live = session.state
    session.close()
    with maestro.Session.open(store, session.id, clock=maestro.TickingClock()) as again:
        assert again.state == live
        assert again.fire("resume") == "recovering"
        assert again.fire("retry") == "implementing"
        assert again.fire_task("T1", "start") == "running"


def test_a_session_that_already_exists_is_not_overwritten(store: maestro.Store, session: maestro.Session) -> None:
    with pytest.raises(maestro.StoreError, match="already exists"):
        maestro.Session.create(store, "again", ids=maestro.SequentialIds())


def test_custom_guards_replace_the_defaults(store: maestro.Store) -> None:
    calls: list[maestro.GuardContext] = []

    def never(ctx: maestro.GuardContext) -> bool:
        calls.append(ctx)
        return False

    with maestro.Session.create(store, "x", guards={"has_checkpoint": never}) as s:
        s.record(checkpoint())
        for trigger in ["start", "plan_ready", "tasks_ready", "error"]:
            s.fire(trigger)
        with pytest.raises(maestro.TransitionNotAllowed):
            s.fire("rollback")
    assert [(c.trigger, c.source, c.dest) for c in calls] == [("rollback", "recovering", "rolling_back")]
    assert calls[0].session.state == "recovering"
    assert len(calls[0].session.checkpoints) == 1


def test_equal_inputs_give_byte_identical_logs(tmp_path: Path) -> None:
    from tests.support.git import git_init

    logs = []
    for name in ("one", "two"):
        store = maestro.Store(git_init(tmp_path / name))
        with maestro.Session.create(store, "same", clock=maestro.TickingClock(), ids=maestro.SequentialIds()) as s:
            for trigger in HAPPY:
                s.fire(trigger)
            s.fire_task("T1", "ready")
            s.record(passed_gate())
        logs.append(s.events_path.read_bytes())
    assert logs[0] == logs[1]


def test_a_gate_run_again_counts_as_it_last_ran(session: maestro.Session) -> None:
    for trigger in ["start", "plan_ready", "tasks_ready", "implementation_done"]:
        session.fire(trigger)
    session.record(GateResult("tests", "failed", passed=1, failed=1))
    session.fire("error")
    session.fire("retry")  # back in the same validation round
    session.record(GateResult("tests", "passed", passed=2, failed=0))
    session.fire("validation_done")
    assert session.fire("handoff") == "handoff"


def test_a_bad_request_creates_nothing(store: maestro.Store) -> None:
    with pytest.raises(maestro.StoreError, match="cannot create session session-1: 'request' must be"):
        maestro.Session.create(store, None, ids=maestro.SequentialIds())  # type: ignore[arg-type]
    assert store.session_ids() == []
    assert not (store.sessions_dir / "session-1").exists()
    with maestro.Session.create(store, "now right", ids=maestro.SequentialIds()) as s:
        assert s.id == "session-1"


def test_a_failed_first_write_leaves_no_session(store: maestro.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(maestro.StoreError, match="No space left on device"):
        maestro.Session.create(store, "x", ids=maestro.SequentialIds())
    monkeypatch.undo()
    assert not (store.sessions_dir / "session-1").exists()


def test_an_empty_log_is_not_a_session(store: maestro.Store) -> None:
    store.init()
    sdir = store.sessions_dir / "empty"
    sdir.mkdir()
    (sdir / "events.jsonl").write_bytes(b"")
    with pytest.raises(maestro.StoreError, match="not a session log"):
        maestro.Session.open(store, "empty")
    with pytest.raises(maestro.StoreError, match="not a session log"):
        store.read_events("empty")
    assert (sdir / "events.jsonl").read_bytes() == b""


def test_a_final_state_writes_the_report(session: maestro.Session) -> None:
    session.fire("start")
    session.record(Decision("tech-stack", "language?", "python", "pyproject.toml is there"))
    for trigger in HAPPY[1:]:
        session.fire(trigger)
    session.fire_task("T1", "ready")
    session.fire_task("T1", "start")
    session.fire_task("T1", "succeed")
    session.record(checkpoint())
    session.record(passed_gate())
    session.fire("handoff")
    assert not (session.dir / "final-report.md").exists()
    session.fire("complete")
    report = (session.dir / "final-report.md").read_text()
    assert report.startswith("# Maestro Implementation Report\n")
    assert "- Outcome: completed" in report
    assert "- Tasks completed: 1/1" in report
    assert "### tech-stack\n- D1 python: pyproject.toml is there (by policy, confidence 1.00)" in report
    assert "### Created (1 file)\n- src/calc.py (+12 -0)\n" in report  # the checkpoints' files, without the net diff
    assert "- tests: passed" in report
    assert "- 1: commit aaaaaaaaaaaa `maestro/s/1` — group 1" in report
    for section in ("Summary", "Decisions Made", "Changes Made", "Testing", "Quality Gates", "Requirements",
                    "Recovery", "Checkpoints", "Next Steps"):  # fmt: skip
        assert f"\n## {section}\n" in report


def test_decisions_join_the_history_across_sessions(store: maestro.Store) -> None:
    ids = maestro.SequentialIds()
    for choice in ("pytest", "unittest"):
        with maestro.Session.create(store, choice, ids=ids, clock=maestro.TickingClock()) as s:
            s.record(Decision("tech-stack", "test runner?", choice, "because"))
            s.record(Decision("task ordering", "order?", "foundational first", "policy"))
    history = json.loads((store.decisions_dir / "tech-stack.json").read_text())
    assert [(e["session"], e["decision"]["choice"]) for e in history] == [
        ("session-1", "pytest"),
        ("session-2", "unittest"),
    ]
    assert (store.decisions_dir / "task-ordering.json").is_file()
    with maestro.Session.open(store, "session-1") as again:  # closing again does not duplicate
        again.note("reopened")
    assert len(json.loads((store.decisions_dir / "tech-stack.json").read_text())) == 2


def test_a_corrupt_decision_history_is_named(store: maestro.Store) -> None:
    s = maestro.Session.create(store, "x", ids=maestro.SequentialIds())
    s.record(Decision("tech-stack", "q", "c", "r"))
    (store.decisions_dir / "tech-stack.json").write_text("{broken")
    with pytest.raises(maestro.StoreError, match=r"tech-stack.json: cannot read the decision history"):
        s.close()
