"""No test tool at all: the run asks a human once (name a test command, or go on without tests) instead of refining
round after round for a required tests gate that cannot pass (issue 17, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import maestro
from maestro.run import Runner
from maestro.run.pauses import answer
from tests.support.runs import Recorder, config_text, in_process, task, write

SCRIPT = {"a": [{"actions": [write("a.txt", "a\n")]}]}


def _paused(tmp_path: Path) -> tuple[maestro.Store, Runner, Recorder, str]:
    store, runner, agent, plan = in_process(tmp_path, [task("a")], SCRIPT, config_text(tests=None, iterations=3))
    outcome = runner.run("build", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert (outcome.state, outcome.exit_code) == ("paused", 3)
    assert outcome.request_file is not None
    request = json.loads(outcome.request_file.read_text(encoding="utf-8"))
    assert request["question"].startswith("No test command was configured or found in the repository")
    assert request["options"] == ["command", "proceed", "abort"]
    assert request["paused_from"] == "validating"
    state = maestro.rebuild(store.read_events(outcome.session_id))
    assert state.iteration == 0 and not state.gates  # asked before any gate ran: no futile round
    return store, runner, agent, outcome.session_id


def test_a_named_command_becomes_the_tests_gate(tmp_path: Path) -> None:
    store, runner, agent, sid = _paused(tmp_path)
    with pytest.raises(maestro.MaestroError, match=r"'command' needs the command: maestro answer .* --note COMMAND"):
        answer(store, sid, "command")
    answer(store, sid, "command", note="test -f a.txt")
    done = runner.resume(sid)
    assert done.state == "completed"
    state = maestro.rebuild(store.read_events(sid))
    tests = [g for g in state.gates if g.name == "tests"]
    assert [(g.status, g.required) for g in tests] == [("passed", True)]
    assert len(agent.of("a")) == 1  # the task was not run again


def test_proceeding_without_tests_hands_off_at_once(tmp_path: Path) -> None:
    store, runner, agent, sid = _paused(tmp_path)
    answer(store, sid, "proceed")
    done = runner.resume(sid)
    assert done.state == "completed"
    state = maestro.rebuild(store.read_events(sid))
    tests = [g for g in state.gates if g.name == "tests"]
    assert [(g.status, g.required) for g in tests] == [("skipped", False)]
    assert state.iteration == 0 and len(agent.of("a")) == 1  # no refinement round re-ran the task
