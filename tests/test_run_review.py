"""Regression tests from the review of the runner's rewrite (``run/``: runner, loop, implement, scheduler …).

The old runner drove the recovery ladder inside the implementing step; the new one leaves
implementing for ``recovering`` and ``rolling_back`` and comes back.  Each test here pins a
difference the review found between the two that was not intended (the intended ones — real
scores, ``session_recovery`` with its ``retry`` and ``give_up``, a recorded ``pause``
decision — are pinned by tests/test_runner.py).  Every test failed on the rewrite before its
fix, except the crash-resume ones, which check that a run killed anywhere in the new
recovery states resumes as the uninterrupted run ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import maestro
from maestro.agents.base import AgentRequest, PlanOutcome, PlanRequest
from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import parse_config
from maestro.core.records import AgentResult
from maestro.run.runner import Runner, RunOutcome
from tests.support.crash import DRIVER
from tests.support.runs import (
    Plan,
    Recorder,
    assert_completed,
    config_text,
    make_plan,
    make_repo,
    prd_text,
    task,
    write,
)

REQUEST = "Build the sample"


class Session:
    """One in-process session: its runner, its agent (every request kept) and what its log says."""

    def __init__(self, root: Path, tasks: Sequence[Mapping[str, Any]], script: Mapping[str, Any], config: str,
                 *, interrupt_on: str | None = None) -> None:  # fmt: skip
        self.repo = make_repo(root)
        plan = root / "plan"
        plan.mkdir()
        (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
        (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
        self.plan = plan
        self.store = maestro.Store(self.repo)
        self.config = parse_config(config, plan / "config.yaml")
        inner = ScriptedAgent.from_mapping({"version": 1, "tasks": dict(script)}, plan)
        self.agent = Recorder(_Interrupting(self, inner, interrupt_on) if interrupt_on else inner)
        self.runner = self.new_runner()

    def new_runner(self) -> Runner:
        return Runner(self.store, self.config, self.agent, sleep=lambda s: None)

    def run(self) -> RunOutcome:
        self.outcome = self.runner.run(REQUEST, prd_path=self.plan / "prd.md", tasks_path=self.plan / "tasks.yaml")
        return self.outcome

    @property
    def state(self) -> maestro.SessionState:
        return maestro.rebuild(self.store.read_events(self.outcome.session_id))

    def triggers(self) -> list[str]:
        events = self.store.read_events(self.outcome.session_id)
        return [e.data["trigger"] for e in events if e.kind == "transition"]

    def notes(self) -> list[str]:
        return [e.data["text"] for e in self.store.read_events(self.outcome.session_id) if e.kind == "note"]

    def labels(self) -> list[str]:
        return [c.label for c in self.state.checkpoints]


class _Interrupting:
    """The scripted agent, whose first attempt of task ``tid`` presses Ctrl-C once (``Runner.interrupt``)."""

    def __init__(self, session: Session, inner: ScriptedAgent, tid: str) -> None:
        self.session, self.inner, self.tid = session, inner, tid
        self.name = inner.name

    def run(self, request: AgentRequest) -> AgentResult:
        if request.task.id == self.tid and request.attempt == 1:
            self.session.runner.interrupt()
        return self.inner.run(request)

    def plan(self, request: PlanRequest) -> PlanOutcome:
        return self.inner.plan(request)


def fail(kind: str, message: str = "it broke", **extra: Any) -> dict[str, Any]:
    return {"fail": {"kind": kind, "message": message}, **extra}


# -- 1. back in implementing after a rollback: the group goes on, it does not start a phase --------------------------


def test_a_limit_reached_before_the_alternative_starts_pauses_inside_the_group(tmp_path: Path) -> None:
    """The budget is spent by a failing attempt: the rollback happens, then the pause, inside the group.

    Rewrite: the loop checked the limits again when implementing came back from rolling back,
    before the failed task was put back to retrying: the request said ``mid_group: false``
    (so a resume would keep the tree as a checkpoint instead of redoing the group) and the
    task was left ``failed``.
    """
    script = {"a": [{"actions": [write("half.txt", "x\n")], **fail("implementation"), "cost_usd": 1.5},
                    {"actions": [write("a.txt", "a\n")], "cost_usd": 0.1}]}  # fmt: skip
    config = config_text().replace("budget_usd: null", "budget_usd: 1.0")
    s = Session(tmp_path, [task("a", acceptance=["test -f a.txt"])], script, config)
    out = s.run()
    assert (out.state, out.exit_code) == ("paused", 3)
    req = s.state.decision_request
    assert req is not None and req.paused_from == "implementing"
    assert req.context["limit"] == "budget_usd"
    assert req.context["mid_group"] is True  # documented: "a limit was reached before a retry could start"
    assert s.triggers()[-4:] == ["error", "rollback", "rolled_back", "pause"]
    assert s.state.task_state("a") == "retrying"  # the rollback's retry is on record before the pause
    assert not (s.repo / "half.txt").exists()

    again = s.new_runner().resume(out.session_id, limits={"budget_usd": 5})
    assert again.state == "completed"
    assert [r.attempt for r in s.agent.of("a")] == [1, 2]


def test_ctrl_c_in_a_group_that_rolls_back_pauses_after_the_groups_checkpoint(tmp_path: Path) -> None:
    """Ctrl-C once: the agents running finish, the group ends with its checkpoint, then the session pauses.

    Rewrite: it paused as soon as implementing came back from rolling back, the group half done.
    """
    script = {"a": [{"actions": [write("half.txt", "x\n")], **fail("implementation")},
                    {"actions": [write("a.txt", "a\n")]}],
              "b": [{"actions": [write("b.txt", "b\n")]}]}  # fmt: skip
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    s = Session(tmp_path, tasks, script, config_text(), interrupt_on="a")
    out = s.run()
    assert (out.state, out.exit_code) == ("paused", 130)
    req = s.state.decision_request
    assert req is not None and req.context == {"interrupted": True, "mid_group": False}
    assert s.labels() == ["start", "group 1: a"]  # group 1 ended (its alternative ran), b did not start
    assert {t: ts.state for t, ts in s.state.tasks.items()} == {"a": "succeeded"}
    assert s.triggers()[3:] == ["error", "rollback", "rolled_back", "pause"]


# -- 2. recovering's `retry` (nothing to undo): the group is the same group --------------------------------------


def test_a_group_that_went_straight_back_is_checkpointed_whole(tmp_path: Path) -> None:
    """a succeeds without changing anything, b's first attempt fails without changing anything: straight back.

    Rewrite: back in implementing the group was recomputed without a (done), so its checkpoint
    was "group 1: b" and the regression probe counted a as earlier work.
    """
    script = {"a": [{"actions": []}], "b": [fail("implementation"), {"actions": [write("b.txt", "b\n")]}]}
    tasks = [task("a"), task("b", acceptance=["test -f b.txt"])]
    s = Session(tmp_path, tasks, script, config_text(workers=2))
    assert s.run().state == "completed"
    assert s.triggers()[3:5] == ["error", "retry"]
    assert s.labels() == ["start", "group 1: a, b"]


def test_a_regression_with_nothing_to_undo_still_redoes_the_group(tmp_path: Path) -> None:
    """b breaks a's acceptance through a file outside the tree: nothing to roll back, but b must run again.

    Rewrite: recovering went straight back (the tree was at the checkpoint) and b, still
    ``succeeded``, was not redone: the recovery decision said "redo the group", nothing did,
    and the group ended with the breakage in it.
    """
    outside = tmp_path / "broken"
    script = {"a": [{"actions": [write("a.txt", "a\n")]}],
              "b": [{"actions": [{"run": f'touch "{outside}"'}]},
                    {"actions": [{"run": f'rm -f "{outside}"'}, write("b.txt", "b\n")]}]}  # fmt: skip
    tasks = [task("a", acceptance=["test -f a.txt", f'test ! -f "{outside}"']), task("b", deps=["a"])]
    s = Session(tmp_path, tasks, script, config_text())
    assert s.run().state == "completed"
    recoveries = [(d.task, d.choice) for d in s.state.decisions if d.kind == "recovery"]
    assert recoveries == [("b", "rollback_and_alternative")]
    assert [d.choice for d in s.state.decisions if d.kind == "session_recovery"] == ["retry"]
    assert [(r.attempt, r.feedback is not None) for r in s.agent.of("b")] == [(1, False), (2, True)]
    assert s.state.iteration == 0  # redone in the group, not found by validation and refined
    assert not outside.exists()


# -- 3. a subagents section the registry refuses: noted, not fatal ---------------------------------------------------


def test_a_subagents_section_the_registry_refuses_is_noted_and_the_run_goes_on(tmp_path: Path) -> None:
    """Rewrite: the subagents overrides were read outside the subagent decision's guard: the run crashed."""
    s = Session(tmp_path, [task("a", acceptance=["test -f a.txt"])], {"a": [{"actions": [write("a.txt", "a\n")]}]},
                config_text())  # fmt: skip
    s.config = attrs.evolve(s.config, subagents={"mapping": ["not", "a", "mapping"]})
    s.runner = s.new_runner()
    assert s.run().state == "completed"
    assert any(n.startswith("subagent for a: no decision: config.yaml: subagents.mapping") for n in s.notes())


# -- 4. a run killed anywhere in recovering or rolling back resumes as the uninterrupted run ended ----------------

KILLED = -signal.SIGKILL
FAST = config_text(backoff=(0.01, 1.0, 0.01))


def recovery_plan(root: Path) -> Plan:
    """a and b in one group; a's first attempt half-writes and fails: recovering rolls back, the group is redone."""
    tasks = [task("a", files=["a.txt"], acceptance=["test -f a.txt"]),
             task("b", files=["b.txt"], acceptance=["test -f b.txt"]),
             task("c", deps=["a", "b"], files=["c.txt"], acceptance=["test -f c.txt"])]  # fmt: skip
    script = {
        "a": [{"actions": [write("a.txt", "bad\n")], **fail("implementation")},
              {"actions": [write("a.txt", "a\n")], "cost_usd": 0.01}],
        "b": [{"delay_s": 0.1, "actions": [write("b.txt", "b\n")], "cost_usd": 0.01}],
        "c": [{"actions": [write("c.txt", "c\n")], "cost_usd": 0.01}],
    }  # fmt: skip
    return make_plan(root, tasks=tasks, script=script, config=FAST)


def drive(plan: Plan, *args: str, kill_at: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"MAESTRO_KILL_AT_SEQ": str(kill_at)} if kill_at is not None else {})}
    return subprocess.run([sys.executable, str(DRIVER), *args], cwd=plan.repo, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def files(plan: Plan) -> dict[str, str]:
    return {n: (plan.repo / n).read_text(encoding="utf-8") for n in ("a.txt", "b.txt", "c.txt")}


@pytest.fixture(scope="module")
def recovery_span(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str]]:
    """The uninterrupted run's events from its `error` move to its first task move after `rolled_back`."""
    plan = recovery_plan(tmp_path_factory.mktemp("baseline"))
    assert_completed(plan, drive(plan, *plan.run_args()))
    assert files(plan) == {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"}
    events = plan.events()
    error = next(e.seq for e in events if e.kind == "transition" and e.data["trigger"] == "error")
    back = next(e.seq for e in events if e.kind == "transition" and e.data["trigger"] == "rolled_back")
    after = next(e.seq for e in events if e.seq > back and e.kind == "task")
    span = [(e.seq, e.kind + " " + str(e.data.get("trigger") or e.data.get("kind") or "")) for e in events
            if error <= e.seq <= after]  # fmt: skip
    assert [k for _, k in span] == ["transition error", "decision session_recovery", "transition rollback", "note ",
                                    "transition rolled_back", "task retry"]  # fmt: skip
    return span


@pytest.mark.parametrize("nth", range(6))
def test_a_run_killed_in_recovering_or_rolling_back_resumes_to_the_same_end(
    tmp_path: Path, recovery_span: list[tuple[int, str]], nth: int
) -> None:
    seq, what = recovery_span[nth]
    plan = recovery_plan(tmp_path)
    assert drive(plan, *plan.run_args(), kill_at=seq).returncode == KILLED, what
    done = assert_completed(plan, drive(plan, "resume", plan.sid))
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}, what
    assert files(plan) == {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"}, what
    assert plan.state().rewinds == 1
    assert [c.label for c in plan.state().checkpoints] == ["start", "group 1: a, b", "group 2: c"], what
