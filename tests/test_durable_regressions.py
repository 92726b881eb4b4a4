"""Regression tests for the review of the durable sessions (the commit "Review fixes (helper-23's review …)").

Each test pins one bug the review found, as the user meets it: a real git repository in
``tmp_path``, the scripted agent, and the ``maestro`` command line as a real subprocess
(``tests/crash_driver.py`` where the run must be SIGKILLed right after a given event: the
event is looked up in an uninterrupted run's log, never hard-coded).  One test (the
parallel budget) runs the runner in-process, where the budget each agent was given is seen.

Every test here failed on the code before the fix (checked by running this file with the
parent commit's ``src`` first on ``PYTHONPATH``) and passes now.

Since issue 14 (every attempt in a worktree of its own, a checkpoint per merge, no groups at
run time, no rollback after a task failure) the tests pin the same bugs in the new run layer:
a session's result is read from its branch, the user's checkout is checked untouched, a crash
in ``recovering`` is one reached by a task that gives up, and the pauses that were a group's
are a task's.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

import maestro
from maestro.core.records import Event
from maestro.git.places import worktree_dir
from maestro.model.state import effective_events
from maestro.replay import Step, replay
from tests.support.crash import DRIVER
from tests.support.runs import (
    REQUEST,
    Plan,
    assert_completed,
    cli,
    config_text,
    in_process,
    make_plan,
    resume_reasons,
    task,
    write,
)

PY = sys.executable
KILLED = -signal.SIGKILL
FAST = config_text(backoff=(0.01, 1.0, 0.01))  # transient retries without a real wait


# -- helpers ------------------------------------------------------------------------------------------------------


def drive(plan: Plan, *args: str, kill_at: int | None = None,
          env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``maestro ARGS`` through tests/crash_driver.py: SIGKILLed right after event ``kill_at`` if given."""
    extra = dict(env or {})
    if kill_at is not None:
        extra["MAESTRO_KILL_AT_SEQ"] = str(kill_at)
    return subprocess.run([PY, str(DRIVER), *args], cwd=plan.repo, env={**os.environ, **extra},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def seq_of(events: Sequence[Event], what: str, match: Callable[[Event], bool], *, after: int = 0) -> int:
    """The seq of the first event after seq ``after`` that ``match``es (``what`` names it in the failure)."""
    found = [e.seq for e in events if e.seq > after and match(e)]
    assert found, f"the uninterrupted run has no {what}"
    return found[0]


def is_move(trigger: str, tid: str | None = None) -> Callable[[Event], bool]:
    """A session move (``tid`` None) or a task move with this trigger."""
    if tid is None:
        return lambda e: e.kind == "transition" and e.data["trigger"] == trigger
    return lambda e: e.kind == "task" and e.data["trigger"] == trigger and e.data["task"] == tid


def git(plan: Plan, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=plan.repo, capture_output=True, text=True, check=True)
    return out.stdout


def branch_files(plan: Plan) -> dict[str, str]:
    """The files of the session branch's head (the last checkpoint), with their text."""
    ref = f"maestro/{plan.sid}"
    names = git(plan, "ls-tree", "-r", "--name-only", ref).split()
    return {n: git(plan, "show", f"{ref}:{n}") for n in names}


def checkout_status(plan: Plan) -> tuple[str, str, list[str]]:
    """The user's checkout: its branch, its commits' subjects, and every change git sees in it (untracked and
    ignored files too) outside maestro's .flow/; make_repo leaves ("refs/heads/master", "base\\n", [])."""
    status = git(plan, "status", "--porcelain", "--untracked-files=all", "--ignored").splitlines()
    changed = [line for line in status if not line[3:].startswith(".flow/")]
    return git(plan, "symbolic-ref", "HEAD").strip(), git(plan, "log", "--format=%s", "HEAD"), changed


UNTOUCHED: tuple[str, str, list[str]] = ("refs/heads/master", "base\n", [])


def ts(event: Event) -> float:
    return _dt.datetime.fromisoformat(event.ts).timestamp()


def skip_reasons(plan: Plan) -> dict[str, str | None]:
    return {e.data["task"]: e.data.get("reason") for e in plan.events() if e.kind == "task"
            and e.data["trigger"] == "skip"}  # fmt: skip


# -- the sessions -------------------------------------------------------------------------------------------------


def ab_plan(root: Path) -> Plan:
    """a, then b (depends on a): each agent call costs $0.90."""
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {"a": [{"actions": [write("a.txt", "a\n")], "cost_usd": 0.9}],
              "b": [{"actions": [write("b.txt", "b\n")], "cost_usd": 0.9}]}  # fmt: skip
    return make_plan(root, tasks=tasks, script=script, config=FAST)


class Baseline:
    """A session run once, uninterrupted: its log (where the kills go) and its final tree."""

    def __init__(self, plan: Plan, *run_args: str) -> None:
        out = drive(plan, *plan.run_args(*run_args))
        assert out.returncode == 0, out.stderr
        self.plan = plan
        self.events = plan.events()
        self.files = branch_files(plan)


@pytest.fixture(scope="module")
def ab_baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    return Baseline(ab_plan(tmp_path_factory.mktemp("ab")))


@pytest.fixture(scope="module")
def redone(tmp_path_factory: pytest.TempPathFactory, ab_baseline: Baseline) -> Plan:
    """The a-then-b session killed right after a's agent call was recorded, then crash-resumed: a runs twice."""
    agent_a = seq_of(ab_baseline.events, "agent result of a", lambda e: e.kind == "agent" and e.data["task"] == "a")
    plan = ab_plan(tmp_path_factory.mktemp("redone"))
    assert drive(plan, *plan.run_args(), kill_at=agent_a).returncode == KILLED
    assert plan.events()[-1].kind == "agent"
    assert_completed(plan, plan.resume())
    assert [e.seq for e in plan.events() if e.kind == "rewind"] == [agent_a + 1]
    return plan


# -- 1. a crash resume with raised limits ---------------------------------------------------------------------------


def test_crash_resume_with_a_raised_budget_keeps_it_and_does_not_count_the_crash_gap(
    tmp_path: Path, ab_baseline: Baseline
) -> None:
    """Bug 1: the limits were recorded before the rewind (which voided them), after the gap (counted as running)."""
    start_a = seq_of(ab_baseline.events, "start of a", is_move("start", "a"))
    plan = ab_plan(tmp_path)
    killed = drive(plan, *plan.run_args("--budget-usd", "1"), kill_at=start_a)
    assert killed.returncode == KILLED, killed.stderr
    assert plan.events()[-1].data["trigger"] == "start"  # killed while a's agent works
    gap = 1.0
    time.sleep(gap)  # the crash: nobody runs the session meanwhile

    out = plan.resume("--budget-usd", "50")
    events = plan.events()
    (rewind,) = [e for e in events if e.kind == "rewind"]
    # running time: up to the kill, then from the resume on; not the gap between them
    killed_at = events[start_a - 1]
    assert ts(rewind) - ts(killed_at) >= gap
    running = (ts(killed_at) - ts(events[0])) + (ts(events[-1]) - ts(rewind))
    assert plan.state().active_s == pytest.approx(running, abs=0.01)

    done = assert_completed(plan, out)  # the old $1 would pause after a and b ($1.80)
    assert done["limits"]["budget_usd"] == 50
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded"}
    assert rewind.seq == start_a + 1  # the rewind first, then the raised limits: the rewind does not void them
    assert [(e.seq > rewind.seq, e.data["budget_usd"]) for e in events if e.kind == "limits"] == [(True, 50)]
    assert plan.state().limits.budget_usd == 50


# -- 2. a run killed during recovery --------------------------------------------------------------------------------


GIVE_UP = FAST.replace("  max_alternatives: 1\n", "  max_alternatives: 1\n  on_exhausted: give_up\n")


def recovery_plan(root: Path) -> Plan:
    """a and b at once; every attempt of a fails (implementation) and, its rungs used, a gives up (on_exhausted:
    give_up): implementing ends with ``error`` once b is merged, and ``recovering`` gives the session up."""
    tasks = [task("a", files=["a.txt"], acceptance=["test -f a.txt"]),
             task("b", files=["b.txt"], acceptance=["test -f b.txt"]),
             task("c", deps=["a", "b"], files=["c.txt"], acceptance=["test -f c.txt"])]  # fmt: skip
    script = {
        "a": [{"actions": [write("a.txt", "bad\n")], "fail": {"kind": "implementation", "message": "it broke"}}],
        "b": [{"delay_s": 0.1, "actions": [write("b.txt", "b\n")], "cost_usd": 0.01}],
        "c": [{"actions": [write("c.txt", "c\n")], "cost_usd": 0.01}],
    }  # fmt: skip
    return make_plan(root, tasks=tasks, script=script, config=GIVE_UP)


class FailedBaseline:
    """The recovery session run once, uninterrupted: it ends failed (exit 1) in recovering's give_up."""

    def __init__(self, plan: Plan) -> None:
        out = drive(plan, *plan.run_args())
        assert out.returncode == 1, out.stdout + out.stderr
        self.plan = plan
        self.events = plan.events()
        self.files = branch_files(plan)
        self.tasks = plan.status()["tasks"]


@pytest.fixture(scope="module")
def recovery_baseline(tmp_path_factory: pytest.TempPathFactory) -> FailedBaseline:
    base = FailedBaseline(recovery_plan(tmp_path_factory.mktemp("recovery")))
    assert [e.data["trigger"] for e in base.events if e.kind == "transition"][3:] == ["error", "give_up"]
    assert [(d.task, d.choice) for d in base.plan.state().decisions if d.kind == "recovery"] == [
        ("a", "alternative"), ("a", "give_up")
    ]  # fmt: skip
    assert base.tasks == {"a": "failed", "b": "succeeded"}  # c (after a) never started
    assert base.files["b.txt"] == "b\n"
    assert "a.txt" not in base.files
    return base


@pytest.mark.parametrize("what", ["error", "session_recovery"])
def test_a_run_killed_during_recovery_resumes_at_the_first_try(
    tmp_path: Path, recovery_baseline: FailedBaseline, what: str
) -> None:
    """Bug 2: the first resume failed: "trigger 'error' is not allowed in state 'recovering'".

    Killed in ``recovering`` (right after the ``error`` move, or after the ``session_recovery`` decision), the
    resume ends as the uninterrupted run ended: failed, b's merge on the branch, a given up.
    """
    seq = seq_of(recovery_baseline.events, f"'{what}' event",
                 lambda e: is_move(what)(e) or (e.kind == "decision" and e.data["kind"] == what))  # fmt: skip
    plan = recovery_plan(tmp_path)
    assert drive(plan, *plan.run_args(), kill_at=seq).returncode == KILLED
    state = plan.state()
    assert (state.state, state.last_seq) == ("recovering", seq)

    out = drive(plan, "resume", plan.sid)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines()[-2:] == [f"session {plan.sid}: failed",
                                            f"report: {plan.session_dir / 'final-report.md'}"]  # fmt: skip
    doc = plan.status()
    assert (doc["state"], doc["decision_request"]) == ("failed", None)
    assert doc["tasks"] == recovery_baseline.tasks
    assert plan.triggers()[-2:] == ["error", "give_up"]
    assert branch_files(plan) == recovery_baseline.files
    assert plan.state().rewinds == 1
    assert checkout_status(plan) == UNTOUCHED


# -- 3. replay after a rewind, and 11. replay last -----------------------------------------------------------------


def test_replay_shows_what_was_recorded_after_a_rewind(redone: Plan) -> None:
    """Bug 3: the steps after a ``rewind`` showed no decisions, agent results or checkpoints."""
    events = redone.events()
    (rewind,) = [e for e in events if e.kind == "rewind"]
    after = [e for e in events if e.seq > rewind.seq]
    agents = [(e.data["task"], e.data["attempt"], e.data["status"]) for e in after if e.kind == "agent"]
    checkpoints = [e.data["label"] for e in after if e.kind == "checkpoint"]
    decisions = [e.data["id"] for e in after if e.kind == "decision"]
    assert agents == [("a", 1, "succeeded"), ("b", 1, "succeeded")]  # a redone, then b
    assert len(checkpoints) >= 2
    assert decisions

    out = cli("replay", redone.sid, "--json", cwd=redone.repo)
    assert (out.returncode, out.stderr) == (0, "")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    steps = [s for s in lines[:-1] if s["seq"] > rewind.seq]  # the last line is the final state
    assert [(a["task"], a["attempt"], a["status"]) for s in steps for a in s["agent_results"]] == agents
    assert [c["label"] for s in steps for c in s["checkpoints"]] == checkpoints
    assert [d["id"] for s in steps for d in s["decisions"]] == decisions

    in_process = [s for s in replay(events) if s.seq > rewind.seq]  # maestro.replay.replay, the same
    assert [(a.task, a.attempt, a.status) for s in in_process for a in s.agent_results] == agents
    assert [c.label for s in in_process for c in s.checkpoints] == checkpoints
    for s in in_process:  # each step shows what its own events recorded
        assert [a.task for a in s.agent_results] == [e.data["task"] for e in s.events
                                                     if e.kind == "agent" and e.seq > rewind.seq]  # fmt: skip


def test_replay_last_replays_the_latest_session(redone: Plan) -> None:
    """Bug 11: ``maestro replay last`` did not name the latest session."""
    by_id = cli("replay", redone.sid, "--json", cwd=redone.repo)
    last = cli("replay", "last", "--json", cwd=redone.repo)
    assert (last.returncode, last.stderr) == (0, "")
    assert last.stdout == by_id.stdout
    text = cli("replay", "last", "--to", "1", cwd=redone.repo)
    assert (text.returncode, text.stderr) == (0, ""), text.stderr
    assert text.stdout.splitlines()[-1].startswith("after step 1 (seq ")


@pytest.fixture(scope="module")
def redone_b(tmp_path_factory: pytest.TempPathFactory, ab_baseline: Baseline) -> tuple[Plan, str]:
    """The a-then-b session killed right after b's agent call was recorded (a merged: checkpoint 1), resumed.

    Returns the plan and what the resume printed.
    """
    agent_b = seq_of(ab_baseline.events, "agent result of b", lambda e: e.kind == "agent" and e.data["task"] == "b")
    plan = ab_plan(tmp_path_factory.mktemp("redone-b"))
    assert drive(plan, *plan.run_args(), kill_at=agent_b).returncode == KILLED
    out = plan.resume()
    assert_completed(plan, out)
    (rewind,) = [e for e in plan.events() if e.kind == "rewind"]
    assert rewind.data["checkpoint"] == 1  # back to a's merge: a is not redone
    return plan, out.stdout


def test_a_crash_resume_rolls_the_tree_back_once(redone_b: tuple[Plan, str]) -> None:
    """The commit's last fix: a crash resume rolled back twice (two pre-rollback refs, two log lines)."""
    plan, printed = redone_b
    rollbacks = [line for line in printed.splitlines() if "The tree is back at checkpoint" in line]
    assert len(rollbacks) == 1, rollbacks
    assert rollbacks[0].startswith("[Maestro] The tree is back at checkpoint 1")
    prefix = f"refs/maestro/{plan.sid}/"
    refs = git(plan, "for-each-ref", "--format=%(refname)", prefix).split()
    # one pre-rollback ref (the resume's), and each task's attempt; b's void attempt is not counted: its redo is 1
    assert refs == [f"{prefix}attempts/a/1", f"{prefix}attempts/b/1", f"{prefix}pre-rollback-1"]
    # the integration tree held checkpoint 1 when the run died (b worked in a worktree of its own): nothing else
    checkpoint_1 = plan.state().checkpoints[1]
    assert checkpoint_1.label == "task a: A"
    saved = git(plan, "rev-parse", f"{prefix}pre-rollback-1^{{tree}}")
    assert saved == git(plan, "rev-parse", f"{checkpoint_1.commit}^{{tree}}")
    assert checkout_status(plan) == UNTOUCHED


def test_replay_of_a_crash_resumed_session_shows_what_the_rewind_kept(
    redone_b: tuple[Plan, str], ab_baseline: Baseline
) -> None:
    """a's agent result and checkpoint 1 were recorded before the kill and kept by the rewind (it went back to
    checkpoint 1): the replay should show them in a step, as it does for the uninterrupted run."""
    plan, _ = redone_b
    events = plan.events()
    kept = [(e.data["task"], e.data["attempt"]) for e in effective_events(events) if e.kind == "agent"]
    assert kept == [("a", 1), ("b", 1)]

    def shown(steps: list[Step]) -> tuple[list[tuple[str, int]], list[int]]:
        agents = [(a.task, a.attempt) for s in steps for a in s.agent_results]
        return agents, [c.n for s in steps for c in s.checkpoints]

    assert shown(list(replay(ab_baseline.events))) == (kept, [0, 1, 2])
    assert shown(list(replay(events))) == (kept, [0, 1, 2])  # shows ([("b", 1)], [0, 2])


# -- 9. the report's cost ---------------------------------------------------------------------------------------------


def test_the_report_cost_counts_the_calls_a_crash_resume_redid(redone: Plan) -> None:
    """Bug 9: final-report.md left out the voided call (a's first), unlike ``maestro status``."""
    state = redone.state()
    assert [r.task for r in state.agent_results] == ["a", "b"]  # the voided call is not a result any more …
    assert state.spent_usd == pytest.approx(2.7)  # … but it was paid for
    assert redone.status()["cost_usd"] == pytest.approx(2.7)
    assert "- Agent calls: 2; cost: $2.7000" in redone.report().splitlines()


# -- 4. skip on a task's keeps-breaking pause (a group's before), and a skip with nothing to skip --------------------


def test_skip_answered_to_a_task_that_keeps_breaking_earlier_work_skips_it(tmp_path: Path) -> None:
    """Bug 4: 'skip' on "Group … keeps breaking earlier work" (no task in the request) could never be done.

    Without groups the question is the task's ("Task b keeps breaking earlier work …", naming b), and skipping it
    keeps none of b's breaking attempts: they are in b's attempt refs, never on the branch."""
    tasks = [task("a", acceptance=["grep -qx A a.txt"]),
             task("b", reqs=["FR-2"], deps=["a"], acceptance=["test -f b.txt"])]  # fmt: skip
    script = {"a": [{"actions": [write("a.txt", "A\n")]}],  # b breaks a, on every attempt
              "b": [{"actions": [write("b.txt", "b\n"), write("a.txt", "simplified\n")]}]}  # fmt: skip
    reqs = [("FR-1", "The core", "P0"), ("FR-2", "The extra", "P2")]
    plan = make_plan(tmp_path, tasks=tasks, script=script, requirements=reqs, config=FAST)
    paused = plan.run()
    assert paused.returncode == 3, paused.stderr
    req = plan.status()["decision_request"]
    assert req["question"].startswith("Task b keeps breaking earlier work (1 alternatives): Your change broke task a "
                                      "(A): its acceptance command `")  # fmt: skip
    assert req["options"] == ["retry", "skip", "abort", "guidance"]
    assert (req["paused_from"], req["context"]["task"], req["context"]["failure_class"]) == (
        "implementing", "b", "regression"
    )  # fmt: skip
    assert req["context"]["mid_group"] is True
    assert "group" not in req["context"]
    answered = plan.answer("skip")
    assert answered.returncode == 0, answered.stderr

    done = assert_completed(plan, plan.resume())
    assert done["tasks"] == {"a": "succeeded", "b": "skipped"}
    assert skip_reasons(plan) == {"b": "skipped by a human"}
    assert resume_reasons(plan) == ["answer: skip"]
    files = branch_files(plan)
    assert files["a.txt"] == "A\n"  # b's breaking change is not kept …
    assert "b.txt" not in files
    for n in (1, 2):  # … though each of b's attempts is
        assert git(plan, "show", f"refs/maestro/{plan.sid}/attempts/b/{n}:a.txt") == "simplified\n"
    assert [c.label for c in plan.state().checkpoints] == ["start", "task a: A"]
    assert "- b: skipped" in plan.report()
    assert checkout_status(plan) == UNTOUCHED


def test_skip_is_refused_at_answer_time_when_the_request_names_no_task_or_group(tmp_path: Path) -> None:
    """Bug 4: 'skip' to a request naming no task or group was accepted, then every resume failed on it."""
    tasks = [task("a", acceptance=["test -f a.txt"])]
    script = {"a": [{"fail": {"kind": "ambiguous", "message": "Which one?"}}, {"actions": [write("a.txt", "a\n")]}]}
    plan = make_plan(tmp_path, tasks=tasks, script=script, config=FAST)
    assert plan.run().returncode == 3
    # a request as an older recording (or another tool) may hold it: 'skip' offered, no task named
    log = maestro.Store(plan.repo).events_path(plan.sid)
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    (i,) = [n for n, line in enumerate(lines) if json.loads(line)["kind"] == "request"]
    doc = json.loads(lines[i])
    del doc["data"]["context"]["task"]
    lines[i] = json.dumps(doc, separators=(",", ":")) + "\n"
    log.write_text("".join(lines), encoding="utf-8")
    req = plan.status()["decision_request"]
    assert "skip" in req["options"]
    assert "task" not in req["context"]

    refused = plan.answer("skip")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (f"maestro: error: session {plan.sid}'s question names no task or group to skip: "
                              "answer another option (retry, abort, guidance)\n")  # fmt: skip
    assert plan.answers() == []
    assert plan.status()["state"] == "paused"
    assert plan.answer("retry").returncode == 0  # another answer still works
    assert_completed(plan, plan.resume())


# -- 5. edits made while paused, and a resume killed right after its resume move -------------------------------------


def iteration_plan(root: Path) -> Plan:
    """The tests gate needs fixed.txt, which no agent writes: the session pauses at max_iterations 1, and the human
    writes fixed.txt in the session's tree (its integration worktree, kept while it is paused)."""
    config = config_text(backoff=(0.01, 1.0, 0.01), iterations=1, tests="test -f fixed.txt")
    plan = make_plan(root, tasks=[task("a", acceptance=["test -f a.txt"])],
                     script={"a": [{"actions": [write("a.txt", "a\n")]}], "fix-tests-1": [{}], "fix-tests-2": [{}]},
                     config=config)  # fmt: skip
    out = plan.run()
    assert out.returncode == 3, out.stderr
    assert plan.status()["decision_request"]["context"]["limit"] == "max_iterations"
    integration = worktree_dir(plan.repo / ".git", plan.sid, "integration")
    assert integration.is_dir()  # a paused session keeps its worktrees
    (integration / "fixed.txt").write_text("by hand\n", encoding="utf-8")  # the human fixes it while paused
    return plan


def test_edits_made_while_paused_survive_a_resume_killed_after_its_resume_move(tmp_path: Path) -> None:
    """Bug 5: the human's fixed.txt was lost: the crash resume rolled back to the checkpoint before it."""
    reference = iteration_plan(tmp_path / "reference")
    paused_at = reference.state().last_seq
    assert_completed(reference, reference.resume("--max-iterations", "2"))
    resume_move = seq_of(reference.events(), "'resume' move", is_move("resume"), after=paused_at)

    plan = iteration_plan(tmp_path / "killed")
    killed = drive(plan, "resume", plan.sid, "--max-iterations", "2", kill_at=resume_move)
    assert killed.returncode == KILLED, killed.stderr
    assert plan.events()[-1].data["trigger"] == "resume"

    done = assert_completed(plan, plan.resume())
    assert done["gates"]["tests"] == "passed"
    assert branch_files(plan)["fixed.txt"] == "by hand\n"
    assert "changes made while paused" in [c.label for c in plan.state().checkpoints]
    assert checkout_status(plan) == UNTOUCHED  # the edit was the session's tree's, never the checkout's


# -- 6. a --worktree session killed while writing the index -----------------------------------------------------------


def test_a_worktree_session_killed_mid_index_write_can_be_resumed(tmp_path: Path) -> None:
    """Bug 6: its index.lock (now in .git/worktrees/maestro-<sid>-integration/) was never cleared: "index.lock
    exists"."""
    tasks = [task("a", files=["a.txt"], acceptance=["test -f a.txt"]),
             task("b", deps=["a"], files=["b.txt"], acceptance=["test -f b.txt"])]  # fmt: skip
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    plan = make_plan(tmp_path, tasks=tasks, script=script, config=FAST)
    killed = drive(plan, *plan.run_args("--worktree"), env={"MAESTRO_KILL_IN": "index", "MAESTRO_KILL_NTH": "1"})
    assert killed.returncode == KILLED, killed.stderr
    lock = plan.repo / ".git" / "worktrees" / f"maestro-{plan.sid}-integration" / "index.lock"
    assert lock.exists()
    assert not (plan.repo / ".git" / "index.lock").exists()
    time.sleep(2.1)  # older than a live git's lock: the stopped run's

    out = plan.resume()
    assert out.returncode == 0, out.stderr
    assert plan.status()["state"] == "completed"
    assert not lock.exists()
    files = branch_files(plan)
    assert (files["a.txt"], files["b.txt"]) == ("a\n", "b\n")
    assert not (plan.repo / ".git" / "index.lock").exists()  # the user's index was never locked
    assert checkout_status(plan) == UNTOUCHED


# -- 7. handoff from a pause inside implementing (inside a group before) --------------------------------------------


def test_handoff_from_a_pause_inside_implementing_keeps_what_merged_and_reports_every_task_as_it_is(
    tmp_path: Path,
) -> None:
    """Bug 7: b was reported succeeded, though its work (in an unfinished group) was rolled back; c was missing.

    Now b's merge is a checkpoint of its own: handed off, b stays succeeded and its work is on the branch; a (its
    retry never started) and c (never started) are skipped, and the report says so."""
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"]),
             task("c", deps=["a", "b"], acceptance=["test -f c.txt"])]  # fmt: skip
    script = {"a": [{"fail": {"kind": "transient", "message": "rate limited"}, "cost_usd": 1.0},
                    {"actions": [write("a.txt", "a\n")]}],
              "b": [{"delay_s": 0.5, "actions": [write("b.txt", "b\n")]}],
              "c": [{"actions": [write("c.txt", "c\n")]}]}  # fmt: skip
    plan = make_plan(tmp_path, tasks=tasks, script=script, config=FAST)
    paused = plan.run("--budget-usd", "1")
    assert paused.returncode == 3, paused.stderr
    doc = plan.status()
    assert doc["decision_request"]["context"]["limit"] == "budget_usd"
    assert doc["decision_request"]["context"]["mid_group"] is True
    # b finished (and merged) after a's failure reached the budget; a's retry never started
    assert doc["tasks"] == {"a": "retrying", "b": "succeeded"}
    assert [c.label for c in plan.state().checkpoints] == ["start", "task b: B"]
    assert plan.answer("handoff").returncode == 0

    done = assert_completed(plan, plan.resume())
    assert done["tasks"] == {"a": "skipped", "b": "succeeded", "c": "skipped"}
    assert skip_reasons(plan) == dict.fromkeys("ac", "not done: handed off as it stands")
    files = branch_files(plan)
    assert files["b.txt"] == "b\n"  # b's merge is kept …
    assert "a.txt" not in files and "c.txt" not in files
    report = plan.report()
    assert "- Tasks completed: 1/3" in report  # … and reported done; a and c are reported as they are
    for line in ("- a: skipped (1 attempt)", "- b: succeeded (1 attempt)", "- c: skipped (0 attempts)"):
        assert line in report.splitlines()
    assert checkout_status(plan) == UNTOUCHED


# -- 8. the parallel budget --------------------------------------------------------------------------------------------


def test_an_attempt_started_while_others_run_gets_what_their_allowances_leave(tmp_path: Path) -> None:
    """Bug 8: a's retry was given (budget - spent) / 2 = $0.35 while b ran with $0.50: $0.85 > the $0.70 left."""
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"])]
    script = {"a": [{"fail": {"kind": "transient", "message": "rate limited"}, "cost_usd": 0.3},
                    {"actions": [write("a.txt", "a\n")], "cost_usd": 0.3}],
              "b": [{"delay_s": 0.8, "actions": [write("b.txt", "b\n")], "cost_usd": 0.45}]}  # fmt: skip
    config = FAST.replace("budget_usd: null", "budget_usd: 1.0")
    store, runner, agent, plan = in_process(tmp_path, tasks, script, config)
    out = runner.run(REQUEST, prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert out.state == "paused"  # $1.05 spent
    events = store.read_events(out.session_id)
    second_a = [e.seq for e in events if is_move("start", "a")(e)][1]
    b_done = next(e.seq for e in events if e.kind == "agent" and e.data["task"] == "b")
    assert second_a < b_done  # a's retry started while b still ran
    given = {(r.task.id, r.attempt): r.budget_usd for r in agent.requests}
    assert given[("a", 1)] == given[("b", 1)] == pytest.approx(0.5)  # $1 shared by the two starting together
    # when a's retry starts: $0.30 spent, and b may still spend its $0.50: $0.20 is left
    assert given[("a", 2)] == pytest.approx(0.2)
    assert sum(b or 0.0 for b in (given[("a", 2)], given[("b", 1)])) <= 1.0 - 0.3 + 1e-9


# -- 10. raised limits recorded before the resume was killed ---------------------------------------------------------


def budget_paused(root: Path) -> Plan:
    """The a-then-b session under a $0.50 budget: it pauses after a ($0.90)."""
    plan = ab_plan(root)
    out = plan.run("--budget-usd", "0.5")
    assert out.returncode == 3, out.stderr
    doc = plan.status()
    assert doc["decision_request"]["context"]["limit"] == "budget_usd"
    assert doc["tasks"] == {"a": "succeeded"}
    return plan


def test_a_plain_resume_raises_limits_recorded_before_the_resume_was_killed(tmp_path: Path) -> None:
    """Bug 10: the raised budget was in the log, yet ``maestro resume S`` said the session waits for a decision."""
    reference = budget_paused(tmp_path / "reference")
    paused_at = reference.state().last_seq
    assert_completed(reference, reference.resume("--budget-usd", "5"))
    limits = seq_of(reference.events(), "'limits' event", lambda e: e.kind == "limits", after=paused_at)

    plan = budget_paused(tmp_path / "killed")
    killed = drive(plan, "resume", plan.sid, "--budget-usd", "5", kill_at=limits)
    assert killed.returncode == KILLED, killed.stderr
    doc = plan.status()
    assert (doc["state"], doc["limits"]["budget_usd"]) == ("paused", 5)  # raised, not yet resumed
    assert plan.answers() == []

    done = assert_completed(plan, plan.resume())  # no flag, no answer
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded"}
    assert resume_reasons(plan) == ["answer: raise"]
    assert [e.data["budget_usd"] for e in plan.events() if e.kind == "limits"] == [5]
    assert plan.state().spent_usd == pytest.approx(1.8)
    assert branch_files(plan)["b.txt"] == "b\n"
