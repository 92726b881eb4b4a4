"""A bad plan from an agent is an agent failure: planning is asked again, with the error as feedback (issue 15.6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import maestro
from maestro.agents.base import AgentRequest, PlanOutcome, PlanRequest, plan_outcome
from maestro.config.reader import parse_config
from maestro.core.records import AgentResult
from maestro.run import Runner
from maestro.run.pauses import answer
from tests.support.runs import config_text, make_repo, prd_text, task, write

PRD = prd_text([("FR-1", "The feature", "P0")])
GOOD = json.dumps({"version": 1, "tasks": [task("a", acceptance=["test -f a.txt"])]})
BAD_PLANS = {
    "a bad date": "version: 1\ncreated: 2024-13-45\ntasks: []\n",
    "a huge integer": "version: 1\ntasks:\n  - id: a\n    priority: " + "9" * 5000 + "\n",
    "an omap with a duplicate key": "version: 1\ntasks: !!omap\n  - a: 1\n  - a: 2\n",
    "not a mapping": "- just\n- a list\n",
}


class Planner:
    """Answers planning with ``answers`` in turn (the last one again after them); runs tasks with ``inner``."""

    name = "planner"

    def __init__(self, answers: list[str], inner: Any) -> None:
        self.answers = answers
        self.inner = inner
        self.requests: list[PlanRequest] = []

    def plan(self, request: PlanRequest) -> PlanOutcome:
        self.requests.append(request)
        tasks_yaml = self.answers[min(len(self.requests), len(self.answers)) - 1]
        result = AgentResult("maestro.plan", self.name, len(self.requests), "succeeded", "planned")
        return plan_outcome(result, {"prd_markdown": PRD, "tasks_yaml": tasks_yaml}, "the planner's answer")

    def run(self, request: AgentRequest) -> AgentResult:
        result: AgentResult = self.inner.run(request)
        return result


def _runner(
    tmp_path: Path, answers: list[str], retries: int = 3, alternatives: int = 2, extra: str = ""
) -> tuple[Runner, Planner]:
    repo = make_repo(tmp_path)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    inner = maestro.ScriptedAgent.from_mapping(
        {"version": 1, "tasks": {"a": [{"actions": [write("a.txt", "a\n")]}]}}, scripts
    )
    planner = Planner(answers, inner)
    config = parse_config(config_text(retries=retries, alternatives=alternatives) + extra, tmp_path / "config.yaml")
    return Runner(maestro.Store(repo), config, planner, sleep=lambda s: None), planner


@pytest.mark.parametrize("bad", sorted(BAD_PLANS))
def test_a_bad_plan_is_asked_again_with_the_error_and_the_session_completes(tmp_path: Path, bad: str) -> None:
    runner, planner = _runner(tmp_path, [BAD_PLANS[bad], GOOD])
    outcome = runner.run("build the feature")
    assert outcome.state == "completed"
    assert len(planner.requests) == 2
    assert planner.requests[0].context == ""
    feedback = planner.requests[1].context
    assert feedback.startswith("The previous plan was refused: the planner's answer: tasks_yaml")
    events = runner.store.read_events(outcome.session_id)
    plans = [e.data for e in events if e.kind == "agent" and e.data["task"] == "maestro.plan"]
    assert [(p["status"], p.get("failure_class")) for p in plans] == [("failed", "implementation"), ("succeeded", None)]
    recoveries = [e.data for e in events if e.kind == "decision" and e.data["kind"] == "recovery"]
    assert [r["choice"] for r in recoveries] == ["alternative"]


def test_a_plan_refused_every_time_pauses_after_the_ladder_with_the_error(tmp_path: Path) -> None:
    runner, planner = _runner(tmp_path, [BAD_PLANS["a bad date"]], alternatives=2)
    outcome = runner.run("build the feature")
    assert outcome.state == "paused" and outcome.exit_code == 3
    assert len(planner.requests) == 3  # the first answer and two alternatives
    request = json.loads(outcome.request_file.read_text(encoding="utf-8")) if outcome.request_file else {}
    assert request["question"].startswith("Planning failed: the planner's answer: tasks_yaml")
    assert request["options"] == ["retry", "abort"]
    assert "\n" not in request["question"]


def test_the_plan_decision_lists_the_commands_the_agents_plan_runs(tmp_path: Path) -> None:
    runner, _planner = _runner(tmp_path, [GOOD])
    outcome = runner.run("build the feature")
    assert outcome.state == "completed"
    events = runner.store.read_events(outcome.session_id)
    (plan,) = [e.data for e in events if e.kind == "decision" and e.data["kind"] == "plan"]
    assert plan["decided_by"] == "agent"
    assert plan["rationale"] == "planner planned 1 tasks; the commands it runs: a: test -f a.txt"
    assert [(e["kind"], e["value"], e["detail"]) for e in plan["options"][0]["evidence"]] == [
        ("command", "test -f a.txt", "task a")
    ]
    first_run = next(i for i, e in enumerate(events) if e.kind == "agent" and e.data["task"] == "a")
    assert events.index(next(e for e in events if e.kind == "decision" and e.data["kind"] == "plan")) < first_run


def test_approve_commands_pauses_until_a_human_approves_them(tmp_path: Path) -> None:
    runner, planner = _runner(tmp_path, [GOOD], extra="planning: {approve_commands: true}\n")
    outcome = runner.run("build the feature")
    assert (outcome.state, outcome.exit_code) == ("paused", 3)
    assert outcome.request_file is not None
    request = json.loads(outcome.request_file.read_text(encoding="utf-8"))
    assert request["question"] == "Approve the 1 commands the agent's plan runs: test -f a.txt"
    assert request["options"] == ["approve", "abort"]
    assert request["context"]["commands"] == ["task a: test -f a.txt"]
    events = runner.store.read_events(outcome.session_id)
    assert not [e for e in events if e.kind == "agent" and e.data["task"] != "maestro.plan"]  # nothing ran
    assert not (runner.store.repo / "a.txt").exists()

    answer(runner.store, outcome.session_id, "approve")
    done = runner.resume(outcome.session_id)
    assert done.state == "completed"
    assert len(planner.requests) == 1  # the approved plan, not a new one
    events = runner.store.read_events(done.session_id)
    assert [e.data["kind"] for e in events if e.kind == "decision"].count("plan") == 1


def test_approve_commands_asks_nothing_for_the_users_own_tasks(tmp_path: Path) -> None:
    runner, _planner = _runner(tmp_path, [GOOD], extra="planning: {approve_commands: true}\n")
    plan = tmp_path / "given"
    plan.mkdir()
    (plan / "prd.md").write_text(PRD, encoding="utf-8")
    (plan / "tasks.yaml").write_text(GOOD, encoding="utf-8")
    outcome = runner.run("build the feature", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert outcome.state == "completed"
