"""Regression tests from the review of the runner's rewrite (``run/``: runner, loop, implement, scheduler …).

That rewrite left implementing for ``recovering`` and ``rolling_back`` after a task failure and
came back to finish the task's group.  Each test here pinned a difference the review found that
was not intended; every one failed on the rewrite before its fix.

Issue 14 rewrote the run layer again: no groups at run time (a task starts once its
dependencies are merged), a checkpoint per merged task ("task <id>: <title>"), and a task
failure handled inside implementing (no ``error``, no rollback: the failed attempt stays in
its attempt ref, only that task runs again).  So the tests keep what each one guarded, in the
new terms:

1. a limit reached, or a Ctrl-C pressed, while a task fails: the pause comes before its
   alternative starts and after the attempts running merged; the request says
   ``mid_group: true`` and the resume runs the task again (a group's pause before);
2. a task that changes nothing is still a checkpoint, and its sibling's failure never redoes
   it; a regression the tree cannot show still sends the breaking task alone back (a group
   going "straight back" from recovering before);
3. a subagents section the registry refuses is noted, not fatal;
4. a run killed anywhere while a task fails and is sent back (its ``fail``, the recovery
   decision, its ``retry``, the alternative's ``start``) resumes as the uninterrupted run
   ended (killed in recovering or rolling back before; tests/test_durable_regressions.py
   kills a run in ``recovering``, reached now only when a task gives up).
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
from maestro.git.places import worktree_dir
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


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def show(repo: Path, rev: str, path: str) -> str | None:
    """A file of a commit (``maestro/<session>``, an attempt ref …), or None when it has none."""
    out = git(repo, "show", f"{rev}:{path}")
    return out.stdout if out.returncode == 0 else None


def checkout(repo: Path) -> tuple[str, str, list[str]]:
    """The user's checkout: its branch, its commits' subjects, every change git sees in it (untracked and ignored
    too) outside maestro's .flow/.  make_repo leaves it ("refs/heads/master", "base\\n", [])."""
    status = git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored").stdout.splitlines()
    changed = [line for line in status if not line[3:].startswith(".flow/")]
    return git(repo, "symbolic-ref", "HEAD").stdout.strip(), git(repo, "log", "--format=%s", "HEAD").stdout, changed


UNTOUCHED: tuple[str, str, list[str]] = ("refs/heads/master", "base\n", [])


# -- 1. a pause while a task fails: before its alternative starts, after the running attempts merged ------------------


def recoveries(s: Session) -> list[tuple[str | None, str]]:
    return [(d.task, d.choice) for d in s.state.decisions if d.kind == "recovery"]


def test_a_limit_reached_before_the_alternative_starts_pauses_in_implementing_and_the_resume_redoes_the_task(
    tmp_path: Path,
) -> None:
    """The budget is spent by a failing attempt: the alternative is decided but does not start; the session pauses.

    Before: the rewrite checked the limits again when implementing came back from rolling back, before the
    failed task was put back to retrying (``mid_group: false``, the task left ``failed``).  Now nothing rolls
    back: the pause is inside implementing, with the task ``retrying`` and ``mid_group: true``, and the resume
    runs it again.  Its half-done work stays in its attempt ref, never on the branch or in the checkout.
    """
    script = {"a": [{"actions": [write("half.txt", "x\n")], **fail("implementation"), "cost_usd": 1.5},
                    {"actions": [write("a.txt", "a\n")], "cost_usd": 0.1}]}  # fmt: skip
    config = config_text().replace("budget_usd: null", "budget_usd: 1.0")
    s = Session(tmp_path, [task("a", acceptance=["test -f a.txt"])], script, config)
    out = s.run()
    assert (out.state, out.exit_code) == ("paused", 3)
    req = s.state.decision_request
    assert req is not None and req.paused_from == "implementing"
    assert req.context == {"limit": "budget_usd", "detail": "budget $1 ($1.5000 spent over every agent call)",
                           "mid_group": True}  # fmt: skip
    assert s.triggers() == ["start", "plan_ready", "tasks_ready", "pause"]  # no error, no rollback
    assert recoveries(s) == [("a", "alternative")]  # decided before the limit stopped it
    assert s.state.task_state("a") == "retrying"
    assert [r.attempt for r in s.agent.of("a")] == [1]  # the alternative never started
    assert s.labels() == ["start"]
    sid = out.session_id
    assert show(s.repo, f"refs/maestro/{sid}/attempts/a/1", "half.txt") == "x\n"
    assert show(s.repo, f"maestro/{sid}", "half.txt") is None
    assert worktree_dir(s.repo / ".git", sid, "integration").is_dir()  # a paused session keeps its worktrees

    again = s.new_runner().resume(sid, limits={"budget_usd": 5})
    assert again.state == "completed"
    assert [r.attempt for r in s.agent.of("a")] == [1, 2]
    assert s.state.task_state("a") == "succeeded"
    assert s.labels() == ["start", "task a: A"]
    assert (show(s.repo, f"maestro/{sid}", "a.txt"), show(s.repo, f"maestro/{sid}", "half.txt")) == ("a\n", None)
    assert checkout(s.repo) == UNTOUCHED


def test_ctrl_c_while_a_task_fails_pauses_after_the_running_attempts_merged_and_before_its_alternative(
    tmp_path: Path,
) -> None:
    """Ctrl-C once during a's failing attempt, b running beside it: b finishes and is merged, a's alternative and c
    (after a and b) do not start; the session pauses (exit 130) inside implementing, and ``continue`` runs a again.

    Before: the rewrite paused as soon as implementing came back from rolling back, the group half done.
    """
    script = {"a": [{"actions": [write("half.txt", "x\n")], **fail("implementation")},
                    {"actions": [write("a.txt", "a\n")]}],
              "b": [{"delay_s": 0.3, "actions": [write("b.txt", "b\n")]}],
              "c": [{"actions": [write("c.txt", "c\n")]}]}  # fmt: skip
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"]),
             task("c", deps=["a", "b"], acceptance=["test -f c.txt"])]  # fmt: skip
    s = Session(tmp_path, tasks, script, config_text(), interrupt_on="a")
    out = s.run()
    assert (out.state, out.exit_code) == ("paused", 130)
    req = s.state.decision_request
    assert req is not None
    assert (req.paused_from, req.context) == ("implementing", {"interrupted": True, "mid_group": True})
    assert s.labels() == ["start", "task b: B"]  # b, running at the Ctrl-C, finished and was merged
    assert {t: ts.state for t, ts in s.state.tasks.items()} == {"a": "retrying", "b": "succeeded"}
    assert [r.attempt for r in s.agent.of("a")] == [1]  # the alternative decided, not started
    assert s.triggers() == ["start", "plan_ready", "tasks_ready", "pause"]

    maestro.answer(s.store, out.session_id, "continue")
    again = s.new_runner().resume(out.session_id)
    assert again.state == "completed"
    assert [r.attempt for r in s.agent.of("a")] == [1, 2]
    assert [r.attempt for r in s.agent.of("b")] == [1]  # b is never redone
    assert s.labels() == ["start", "task b: B", "task a: A", "task c: C"]
    assert checkout(s.repo) == UNTOUCHED


# -- 2. a task that changes nothing, a regression the tree cannot show -------------------------------------------


def test_a_task_that_changes_nothing_is_a_checkpoint_and_its_siblings_failure_never_redoes_it(tmp_path: Path) -> None:
    """a succeeds without changing anything, b's first attempt fails without changing anything.

    Before: the group went "straight back" from recovering and was recomputed without a, so its checkpoint
    was "group 1: b".  Now every merge is a checkpoint of its own, an empty one too, and b's failure leaves a
    alone: a ran once, b alone runs again, the session never leaves implementing for recovering.
    """
    script = {"a": [{"actions": []}], "b": [fail("implementation"), {"actions": [write("b.txt", "b\n")]}]}
    tasks = [task("a"), task("b", acceptance=["test -f b.txt"])]
    s = Session(tmp_path, tasks, script, config_text(workers=2))
    assert s.run().state == "completed"
    assert s.triggers() == ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done",
                            "handoff", "complete"]  # fmt: skip
    assert recoveries(s) == [("b", "alternative")]
    assert [r.attempt for r in s.agent.of("a")] == [1]
    assert [(r.attempt, r.feedback is not None) for r in s.agent.of("b")] == [(1, False), (2, True)]
    checkpoints = {c.label: [f.path for f in c.files] for c in s.state.checkpoints[1:]}
    assert checkpoints == {"task a: A": [], "task b: B": ["b.txt"]}  # one each, in the order they merged
    assert s.labels()[0] == "start"


def test_a_regression_the_tree_cannot_show_is_not_merged_and_the_task_alone_runs_again(tmp_path: Path) -> None:
    """b breaks a's acceptance through a file outside the tree: b is not merged, and b alone runs again.

    Before: recovering went straight back (the tree was at the checkpoint) and b, still ``succeeded``, was
    not redone.  Now the regression is found after b's merge, in the merged tree, before it is a checkpoint:
    b gets an alternative with the breakage as feedback; a is never redone.
    """
    outside = tmp_path / "broken"
    script = {"a": [{"actions": [write("a.txt", "a\n")]}],
              "b": [{"actions": [{"run": f'touch "{outside}"'}]},
                    {"actions": [{"run": f'rm -f "{outside}"'}, write("b.txt", "b\n")]}]}  # fmt: skip
    tasks = [task("a", acceptance=["test -f a.txt", f'test ! -f "{outside}"']), task("b", deps=["a"])]
    s = Session(tmp_path, tasks, script, config_text())
    assert s.run().state == "completed"
    assert recoveries(s) == [("b", "alternative")]
    assert [d for d in s.state.decisions if d.kind == "session_recovery"] == []
    assert "error" not in s.triggers()
    fails = [e.data["reason"] for e in s.store.read_events(s.outcome.session_id)
             if e.kind == "task" and e.data["trigger"] == "fail"]  # fmt: skip
    assert len(fails) == 1 and fails[0].startswith("regression: Your change broke task a (A)"), fails
    assert [r.attempt for r in s.agent.of("a")] == [1]
    second = s.agent.of("b")[1]
    assert (second.attempt, second.approach) == (2, "keep every earlier task's acceptance commands passing")
    assert second.feedback is not None and f'test ! -f "{outside}"' in second.feedback
    assert s.labels() == ["start", "task a: A", "task b: B"]  # b's first attempt never became a checkpoint
    assert s.state.iteration == 0  # redone in implementing, not found by validation and refined
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


# -- 4. a run killed anywhere while a task fails and is sent back resumes as the uninterrupted run ended ----------

KILLED = -signal.SIGKILL
FAST = config_text(backoff=(0.01, 1.0, 0.01))


def recovery_plan(root: Path) -> Plan:
    """a and b at once, c after both; a's first attempt half-writes and fails: a alone runs again (an alternative)
    while b, slower, still works."""
    tasks = [task("a", files=["a.txt"], acceptance=["test -f a.txt"]),
             task("b", files=["b.txt"], acceptance=["test -f b.txt"]),
             task("c", deps=["a", "b"], files=["c.txt"], acceptance=["test -f c.txt"])]  # fmt: skip
    script = {
        "a": [{"actions": [write("a.txt", "bad\n")], **fail("implementation")},
              {"actions": [write("a.txt", "a\n")], "cost_usd": 0.01}],
        "b": [{"delay_s": 0.5, "actions": [write("b.txt", "b\n")], "cost_usd": 0.01}],
        "c": [{"actions": [write("c.txt", "c\n")], "cost_usd": 0.01}],
    }  # fmt: skip
    return make_plan(root, tasks=tasks, script=script, config=FAST)


def drive(plan: Plan, *args: str, kill_at: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"MAESTRO_KILL_AT_SEQ": str(kill_at)} if kill_at is not None else {})}
    return subprocess.run([sys.executable, str(DRIVER), *args], cwd=plan.repo, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def files(plan: Plan) -> dict[str, str | None]:
    """a.txt, b.txt and c.txt on the session's branch."""
    return {n: show(plan.repo, f"maestro/{plan.sid}", n) for n in ("a.txt", "b.txt", "c.txt")}


def task_move(e: maestro.Event, trigger: str, tid: str) -> bool:
    return e.kind == "task" and e.data["trigger"] == trigger and e.data["task"] == tid


@pytest.fixture(scope="module")
def recovery_span(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str]]:
    """The uninterrupted run's events from a's ``fail`` to the start of its alternative (b still working)."""
    plan = recovery_plan(tmp_path_factory.mktemp("baseline"))
    assert_completed(plan, drive(plan, *plan.run_args()))
    assert files(plan) == {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"}
    events = plan.events()
    assert "error" not in [e.data["trigger"] for e in events if e.kind == "transition"]
    failed = next(e.seq for e in events if task_move(e, "fail", "a"))
    again = [e.seq for e in events if task_move(e, "start", "a")][1]
    span = [(e.seq, f"{e.kind} {e.data.get('trigger') or e.data.get('kind')} {e.data.get('task')}") for e in events
            if failed <= e.seq <= again]  # fmt: skip
    assert [k for _, k in span] == ["task fail a", "decision recovery a", "task retry a", "task start a"]
    assert next(e.seq for e in events if e.kind == "agent" and e.data["task"] == "b") > again  # b still worked
    return span


@pytest.mark.parametrize("nth", range(4))
def test_a_run_killed_while_a_task_fails_and_is_sent_back_resumes_to_the_same_end(
    tmp_path: Path, recovery_span: list[tuple[int, str]], nth: int
) -> None:
    seq, what = recovery_span[nth]
    plan = recovery_plan(tmp_path)
    assert drive(plan, *plan.run_args(), kill_at=seq).returncode == KILLED, what
    assert plan.state().state == "implementing", what  # a task's failure never leaves implementing
    done = assert_completed(plan, drive(plan, "resume", plan.sid))
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}, what
    assert files(plan) == {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"}, what
    state = plan.state()
    assert state.rewinds == 1, what
    labels = [c.label for c in state.checkpoints]
    assert (labels[0], sorted(labels[1:3]), labels[3:]) == ("start", ["task a: A", "task b: B"], ["task c: C"]), what
    # a's half-written first attempt (redone after the resume: its void attempt not counted) stays in its ref only
    assert show(plan.repo, f"refs/maestro/{plan.sid}/attempts/a/1", "a.txt") == "bad\n", what
    assert checkout(plan.repo) == UNTOUCHED, what
