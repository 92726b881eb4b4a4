"""Durable sessions (issue 8) end to end: pause, answer, resume; Ctrl-C once and twice; limits.

Every test builds a real git repository in ``tmp_path`` with a PRD, a task graph, a
config and the scripted agent's script (or a ``command`` agent) beside it, and drives the
``maestro`` command line as a real subprocess: ``run`` until it pauses, ``status --json``,
``answer``, ``resume``.  What the session left behind is read back from its folder (the
event log, ``decisions.json``, ``decision-request.json``, the report) and from git: its
result is the session's branch (``maestro/<session>``), and the user's checkout is checked
to be as it was (a session never writes it, issue 14).

The Ctrl-C tests send a real SIGINT to a real ``maestro run`` while its agent is running
(a ``sleep`` in the agent's process group).  Two tests use the runner in-process, where
the request each agent got must be seen (the budget a parallel agent was given) or where
a subprocess would only be slower.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import maestro
from maestro.run import Runner, answer
from tests.support.runs import (
    REQUEST,
    Plan,
    Recorder,
    assert_completed,
    barrier,
    cli,
    config_text,
    in_process,
    make_plan,
    resume_reasons,
    task,
    write,
)

PY = sys.executable
TASK_OPTIONS = ["retry", "skip", "abort", "guidance"]
LIMIT_OPTIONS = ["raise", "handoff", "abort"]
INTERRUPT_OPTIONS = ["continue", "handoff", "abort"]
AMBIGUOUS = {"fail": {"kind": "ambiguous", "message": "Which database: postgres or sqlite?"}}


def request_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A decision request as ``status --json`` shows it, without the how-to-answer line (checked here)."""
    req = dict(doc)
    how = req.pop("answer")
    sid = req["session"]
    assert how == f"maestro answer {sid} {'|'.join(req['options'])} [--note TEXT]; then maestro resume {sid}"
    return req


def assert_paused(plan: Plan, proc: subprocess.CompletedProcess[str], code: int = 3) -> dict[str, Any]:
    """The run or resume paused: its exit code and last lines, ``status``, and the request file agree."""
    assert proc.returncode == code, proc.stderr
    folder = plan.session_dir
    assert proc.stdout.splitlines()[-4:] == [
        f"session {plan.sid}: paused",
        f"report: {folder / 'final-report.md'}",
        f"decision request: {folder / 'decision-request.json'}",
        f"answer it: maestro answer {plan.sid} CHOICE [--note TEXT]; then: maestro resume {plan.sid}",
    ]
    doc = plan.status()
    assert doc["state"] == "paused"
    assert doc["decision_request"] is not None
    assert plan.request_file() == doc["decision_request"]
    assert doc["paused_from"] == doc["decision_request"]["paused_from"]
    return request_of(doc["decision_request"])


def assert_answered(plan: Plan, out: subprocess.CompletedProcess[str], choice: str, note: str | None = None) -> None:
    """``maestro answer`` recorded a human decision (log and decisions.json) and the session is still paused."""
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    last = plan.answers()[-1]
    assert out.stdout == (f"session {plan.sid}: answered {choice} ({last['id']}); continue with: maestro resume "
                          f"{plan.sid}\n")  # fmt: skip
    assert (last["choice"], last["decided_by"]) == (choice, "human")
    assert last["rationale"] == (note if note is not None else f"{choice}, answered by a human")
    assert [o["name"] for o in last["options"]] == plan.status()["decision_request"]["options"]
    assert plan.saved_answers()[-1] == last
    assert plan.status()["state"] == "paused"  # answering does not resume


def assert_checkout_untouched(repo: Path) -> None:
    """The user's checkout is as make_repo left it: on master at the one "base" commit, nothing changed, added or
    ignored in it but the session folders (.flow/); the session's result is only on its branch."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout

    assert git("symbolic-ref", "HEAD") == "refs/heads/master\n"
    assert git("log", "--format=%s", "HEAD") == "base\n"
    status = git("status", "--porcelain", "--untracked-files=all", "--ignored").splitlines()
    assert [line for line in status if not line[3:].startswith(".flow/")] == []


def git_show(repo: Path, spec: str) -> str | None:
    """``git show REV:PATH`` in ``repo`` (None when there is no such file)."""
    out = subprocess.run(["git", "show", spec], cwd=repo, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def lock_is_free(plan: Plan) -> bool:
    fd = os.open(plan.session_dir / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


# -- 1. pause, answer, resume: each option ------------------------------------------------------------------------


def ambiguous_plan(tmp_path: Path, *, priority: str = "P0") -> Plan:
    """a asks a question on its first attempt (and succeeds on the next); b depends on a."""
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {"a": [AMBIGUOUS, {"actions": [write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    return make_plan(tmp_path, tasks=tasks, script=script, requirements=[("FR-1", "The feature", priority)])


def test_retry_answer_reruns_the_paused_task_and_the_session_completes(tmp_path: Path) -> None:
    plan = ambiguous_plan(tmp_path)
    req = assert_paused(plan, plan.run())
    assert req == {
        "session": plan.sid,
        "question": "Task a needs a decision: Which database: postgres or sqlite?",
        "options": TASK_OPTIONS,
        "context": {"task": "a", "failure_class": "ambiguous", "mid_group": True},
        "paused_from": "implementing",
    }
    shown = cli("status", plan.sid, cwd=plan.repo)
    assert shown.returncode == 0
    assert (
        "waiting for a decision: Task a needs a decision: Which database: postgres or sqlite? "
        "(options: retry, skip, abort, guidance)"
    ) in shown.stdout.splitlines()
    assert plan.answers() == []

    assert_answered(plan, plan.answer("retry", "--note", "try again, sqlite"), "retry", "try again, sqlite")
    assert plan.answers()[0]["task"] == "a"

    done = assert_completed(plan, plan.resume())
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded"}
    assert plan.attempts() == {"a": ("succeeded", 2), "b": ("succeeded", 1)}
    assert resume_reasons(plan) == ["answer: retry"]
    assert (plan.file("a.txt"), plan.file("b.txt")) == ("a\n", "b\n")
    assert_checkout_untouched(plan.repo)
    assert len(plan.answers()) == 1  # resuming records no second answer
    assert lock_is_free(plan)


def test_resume_without_an_answer_retries_a_paused_task(tmp_path: Path) -> None:
    plan = ambiguous_plan(tmp_path)
    assert_paused(plan, plan.run())
    assert_completed(plan, plan.resume())
    assert plan.answers() == []  # nobody answered: no human decision is made up
    assert resume_reasons(plan) == ["answer: retry"]
    assert plan.attempts() == {"a": ("succeeded", 2), "b": ("succeeded", 1)}


def test_wrong_answers_and_resumes_exit_2(tmp_path: Path) -> None:
    plan = ambiguous_plan(tmp_path)
    assert_paused(plan, plan.run())

    wrong = plan.answer("raise")
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr == (
        f"maestro: error: 'raise' is not an answer to session {plan.sid}'s question; the options are: "
        "retry, skip, abort, guidance\n"
    )
    assert plan.answers() == []
    assert plan.status()["state"] == "paused"

    assert_completed(plan, plan.resume())

    again = plan.answer("retry")
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr == (
        f"maestro: error: session {plan.sid} is completed, not paused: there is nothing to answer\n"
    )
    nothing = plan.resume()
    assert (nothing.returncode, nothing.stdout) == (2, "")
    assert nothing.stderr == f"maestro: error: session {plan.sid} is completed: there is nothing to resume\n"
    assert plan.answers() == []
    assert plan.triggers()[-1] == "complete"


def skip_plan(tmp_path: Path, priority: str) -> Plan:
    """a (FR-2) asks a question, b (FR-2) depends on a, c (FR-1, P0) does not: a and c run together."""
    tasks = [task("a", reqs=["FR-2"], acceptance=["test -f a.txt"]),
             task("b", reqs=["FR-2"], deps=["a"], acceptance=["test -f b.txt"]),
             task("c", reqs=["FR-1"], acceptance=["test -f c.txt"])]  # fmt: skip
    script = {"a": [AMBIGUOUS, {"actions": [write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}],
              "c": [{"actions": [write("c.txt", "c\n")]}]}  # fmt: skip
    reqs = [("FR-1", "The core", "P0"), ("FR-2", "The extra", priority)]
    return make_plan(tmp_path, tasks=tasks, script=script, requirements=reqs)


def test_skip_answer_skips_the_task_and_its_dependents_and_the_session_completes(tmp_path: Path) -> None:
    plan = skip_plan(tmp_path, "P2")
    req = assert_paused(plan, plan.run())
    assert req["context"] == {"task": "a", "failure_class": "ambiguous", "mid_group": True}
    assert_answered(plan, plan.answer("skip"), "skip")

    done = assert_completed(plan, plan.resume())
    assert done["tasks"] == {"a": "skipped", "b": "skipped", "c": "succeeded"}
    skips = {e.data["task"]: e.data.get("reason") for e in plan.events()
             if e.kind == "task" and e.data["trigger"] == "skip"}  # fmt: skip
    assert skips == {"a": "skipped by a human", "b": "depends on skipped a"}
    assert "b" not in {r.task for r in plan.state().agent_results}  # b never ran
    assert (plan.file("a.txt"), plan.file("b.txt"), plan.file("c.txt")) == (None, None, "c\n")
    assert_checkout_untouched(plan.repo)
    assert done["gates"]["traceability"] == "passed"  # FR-2 is P2: not met, but it does not block the handoff
    report = plan.report()
    assert "- a: skipped (1 attempt)" in report
    assert "- b: skipped (0 attempts)" in report


def test_skipping_a_task_a_p0_requirement_needs_pauses_on_traceability(tmp_path: Path) -> None:
    plan = skip_plan(tmp_path, "P0")
    assert_paused(plan, plan.run())
    assert_answered(plan, plan.answer("skip"), "skip")
    # the blocking requirement cannot be met any more: no refinement can help (no agent runs again), it asks
    req = assert_paused(plan, plan.resume())
    assert req["options"] == ["handoff", "abort"]
    assert req["paused_from"] == "reviewing"
    assert req["context"] == {"skipped": ["a", "b"], "failing_gates": ["traceability"]}
    assert plan.state().iteration == 0
    state = plan.state()
    assert {k: t.state for k, t in state.tasks.items()} == {"a": "skipped", "b": "skipped", "c": "succeeded"}
    trace = [g for g in state.gates if g.name == "traceability"][-1]
    assert trace.summary.startswith("blocking requirements not met: FR-2 (P0, unmet: tasks a, b did not succeed)")


def test_guidance_answer_reaches_the_agents_next_prompt(tmp_path: Path) -> None:
    agent_sh = tmp_path / "agent.sh"
    agent_sh.write_text(
        '#!/bin/sh\nif [ "$MAESTRO_ATTEMPT" = 1 ]; then echo "which database?" >&2; exit 1; fi\n'
        'echo "$MAESTRO_TASK_ID" > "$MAESTRO_TASK_ID.txt"\n',
        encoding="utf-8",
    )
    plan = make_plan(
        tmp_path, tasks=[task("a", acceptance=["test -f a.txt"])],
        config=config_text(retries=0, alternatives=0), agent_command=f"sh {agent_sh} {{task_id}}",
    )  # fmt: skip
    req = assert_paused(plan, plan.run())
    assert req["options"] == TASK_OPTIONS
    assert req["context"]["task"] == "a"
    note = "Use sqlite: the file is data/app.db"
    assert_answered(plan, plan.answer("guidance", "--note", note), "guidance", note)

    assert_completed(plan, plan.resume())
    agents = plan.session_dir / "agents"
    first = (agents / "a.1.command.prompt.md").read_text(encoding="utf-8")
    second = (agents / "a.2.command.prompt.md").read_text(encoding="utf-8")
    assert note not in first
    assert (
        "This is attempt 2; the previous attempt failed. Take another approach: follow the human's guidance" in second
    )
    assert f"A human's guidance for this task (follow it):\n{note}\n" in second
    assert resume_reasons(plan) == ["answer: guidance"]
    assert plan.file("a.txt") == "a\n"
    assert_checkout_untouched(plan.repo)


def test_abort_answer_aborts_the_session(tmp_path: Path) -> None:
    plan = ambiguous_plan(tmp_path)
    assert_paused(plan, plan.run())
    assert_answered(plan, plan.answer("abort", "--note", "wrong feature"), "abort", "wrong feature")

    out = plan.resume()
    assert out.returncode == 1, out.stderr
    assert out.stdout.splitlines()[-2:] == [f"session {plan.sid}: aborted",
                                            f"report: {plan.session_dir / 'final-report.md'}"]  # fmt: skip
    doc = plan.status()
    assert (doc["state"], doc["decision_request"]) == ("aborted", None)
    assert plan.triggers()[-2:] == ["pause", "abort"]
    assert "b" not in doc["tasks"]
    assert "- Outcome: aborted" in plan.report()
    assert "abort [task a]: wrong feature (by human, confidence 1.00)" in plan.report()
    assert plan.resume().returncode == 2
    assert plan.answer("retry").returncode == 2


def test_handoff_answer_accepts_the_work_as_it_stands(tmp_path: Path) -> None:
    plan = make_plan(
        tmp_path, tasks=[task("a", acceptance=["test -f a.txt"])],
        script={"a": [{"actions": [write("a.txt", "a\n")]}], "fix-tests-1": [{}]},
        config=config_text(tests="echo '1 test failed'; exit 1", iterations=3),
    )  # fmt: skip
    req = assert_paused(plan, plan.run("--max-iterations", "1"))
    assert req["options"] == LIMIT_OPTIONS
    assert req["context"] == {"limit": "max_iterations", "failing_gates": ["tests"]}
    note = "good enough: the failing test is fixed by hand"
    assert_answered(plan, plan.answer("handoff", "--note", note), "handoff", note)

    done = assert_completed(plan, plan.resume())
    assert plan.triggers()[-3:] == ["pause", "accept", "complete"]
    assert "handoff" not in plan.triggers()  # not handed off by review: the gate still fails
    assert done["gates"]["tests"] == "failed"
    report = plan.report()
    assert "- Outcome: completed" in report
    assert f"handoff: {note} (by human" in report
    assert "- tests: failed — exit status 1: 1 test failed" in report
    assert plan.file("a.txt") == "a\n"
    assert_checkout_untouched(plan.repo)


# -- 2. Ctrl-C: a real SIGINT to a real process --------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[str], err: Path, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise AssertionError(f"maestro exited {proc.returncode} before {what}: {err.read_text()}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def task_started(repo: Path, tid: str) -> bool:
    for path in (repo / ".flow" / "maestro" / "sessions").glob("*/events.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            e = json.loads(line) if line.endswith("}") else {}
            if e.get("kind") == "task" and e["data"].get("task") == tid and e["data"].get("trigger") == "start":
                return True
    return False


def group_alive(pgid: int, *, for_s: float = 0.0) -> bool:
    """Whether a process of group ``pgid`` exists (waiting up to ``for_s`` for it to be gone: a killed
    process exists until it is reaped)."""
    end = time.monotonic() + for_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() >= end:
            return True
        time.sleep(0.05)


def interruptible_plan(root: Path, marks: Path) -> Plan:
    """a runs ``sleep $DURABLE_SLEEP`` in its process group, noting the group first; b depends on a."""
    slow = f'echo $$ > "{marks}/a.pgid"; sleep "${{DURABLE_SLEEP:-0}}"'
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {"a": [{"actions": [{"run": slow}, write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    return make_plan(root, tasks=tasks, script=script)


class Interrupted:
    """``maestro run`` started in the background with a sleeping agent; SIGINTs sent while it sleeps."""

    def __init__(self, plan: Plan, marks: Path, sleep_s: float) -> None:
        self.plan = plan
        self.pgid_file = marks / "a.pgid"
        self.out = plan.root / "run.out"
        self.err = plan.root / "run.err"
        env = {**os.environ, "DURABLE_SLEEP": str(sleep_s)}
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen([PY, "-m", "maestro", *plan.run_args()], cwd=plan.repo, stdout=out,
                                         stderr=err, text=True, env=env)  # fmt: skip
        wait_for("task a to start", lambda: task_started(plan.repo, "a"), self.proc, self.err)
        wait_for("a's agent to run", lambda: self.pgid_file.is_file() and self.pgid_file.read_text().endswith("\n"),
                 self.proc, self.err)  # fmt: skip
        self.pgid = int(self.pgid_file.read_text())

    def sigint(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def wait_stderr(self, text: str) -> None:
        wait_for(repr(text), lambda: text in self.err.read_text(), self.proc, self.err)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if group_alive(self.pgid):
            os.killpg(self.pgid, signal.SIGKILL)


def test_ctrl_c_once_pauses_after_the_running_attempt_merges_then_continue_resumes(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    plan = interruptible_plan(tmp_path / "run", marks)
    run = Interrupted(plan, marks, 1.5)
    try:
        assert group_alive(run.pgid)  # the agent is running when the SIGINT lands
        run.sigint()
        run.wait_stderr("maestro: pausing after the current step (Ctrl-C again to stop at once)")
        assert run.proc.wait(timeout=60) == 130
    finally:
        run.cleanup()
    stdout = run.out.read_text()
    assert run.err.read_text() == "maestro: pausing after the current step (Ctrl-C again to stop at once)\n"
    req = assert_paused(plan, subprocess.CompletedProcess([], 130, stdout, ""), code=130)
    assert req == {
        "session": plan.sid,
        "question": "Interrupted (Ctrl-C): continue, hand off as is, or abort?",
        "options": INTERRUPT_OPTIONS,
        "context": {"interrupted": True, "mid_group": True},
        "paused_from": "implementing",
    }
    # the attempt under way finished and was merged, everything is on record: a's result, its checkpoint; b (ready
    # once a merged) never started
    state = plan.state()
    assert [(r.task, r.attempt, r.status) for r in state.agent_results] == [("a", 1, "succeeded")]
    assert [c.label for c in state.checkpoints] == ["start", "task a: A"]
    assert plan.file("a.txt") == "a\n"
    assert {k: t.state for k, t in state.tasks.items()} == {"a": "succeeded"}
    assert lock_is_free(plan)

    assert_answered(plan, plan.answer("continue"), "continue")
    done = assert_completed(plan, plan.resume())
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded"}
    assert plan.attempts() == {"a": ("succeeded", 1), "b": ("succeeded", 1)}  # a was not redone
    assert resume_reasons(plan) == ["answer: continue"]
    assert (plan.file("a.txt"), plan.file("b.txt")) == ("a\n", "b\n")
    assert_checkout_untouched(plan.repo)


@pytest.mark.parametrize(
    ("stop", "code", "how"),
    [("ctrl-c", 130, "a second Ctrl-C"), ("SIGTERM", 143, "SIGTERM"), ("SIGHUP", 129, "SIGHUP")],
)
def test_ctrl_c_twice_or_sigterm_or_sighup_stops_at_once_and_resume_redoes_the_step(
    tmp_path: Path, stop: str, code: int, how: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    reference = interruptible_plan(tmp_path / "reference", marks)
    assert_completed(reference, reference.run())
    (marks / "a.pgid").unlink()

    plan = interruptible_plan(tmp_path / "run", marks)
    run = Interrupted(plan, marks, 30)
    try:
        # while it runs, the session is held: neither answer nor resume may touch it
        held = plan.answer("continue")
        assert (held.returncode, held.stderr) == (2, f"maestro: error: session {plan.sid} is locked by pid "
                                                     f"{run.proc.pid}\n")  # fmt: skip
        assert plan.resume().returncode == 2
        if stop == "ctrl-c":
            run.sigint()
            run.wait_stderr("Ctrl-C again to stop at once")
            run.sigint()
        else:  # a service manager stopping maestro, a terminal closed: at once, as a second Ctrl-C
            run.proc.send_signal(getattr(signal, stop))
        started = time.monotonic()
        exit_code = run.proc.wait(timeout=20)
        took = time.monotonic() - started
    finally:
        run.cleanup()
    assert exit_code == code
    assert took < 5, f"{how} took {took:.1f} s to stop maestro"
    assert not group_alive(run.pgid, for_s=5)  # the agent's process group was killed
    err = run.err.read_text()
    assert err.splitlines()[-1] == (
        f"maestro: stopped at once by {how}: `maestro resume {plan.sid}` redoes the interrupted step"
    )
    # stopped mid-step: not paused, nothing to answer; the lock is released
    doc = plan.status()
    assert (doc["state"], doc["decision_request"]) == ("implementing", None)
    assert doc["tasks"] == {"a": "running"}
    assert not (plan.session_dir / "decision-request.json").exists()
    assert lock_is_free(plan)
    notes = [e.data["text"] for e in plan.events() if e.kind == "note"]
    assert notes[-1].startswith(f"Stopped at once by {how} in implementing")
    refused = plan.answer("continue")
    assert (refused.returncode, refused.stderr) == (
        2, f"maestro: error: session {plan.sid} is implementing, not paused: there is nothing to answer\n"
    )  # fmt: skip

    done = assert_completed(plan, plan.resume())
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded"}
    rewinds = [e for e in plan.events() if e.kind == "rewind"]
    assert len(rewinds) == 1
    assert rewinds[0].data["checkpoint"] == 0
    assert plan.state().rewinds == 1
    assert plan.tree() == reference.tree()
    last = done["checkpoints"][-1]["commit"]
    assert subprocess.run(["git", "rev-parse", f"{last}^{{tree}}"], cwd=plan.repo, capture_output=True, text=True,
                          check=True).stdout.strip() == reference.tree()  # fmt: skip
    assert (plan.file("a.txt"), plan.file("b.txt")) == ("a\n", "b\n")
    assert_checkout_untouched(plan.repo)


def test_ctrl_c_twice_stops_at_once_with_an_in_process_agent(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    tasks = [task("a", acceptance=["test -f a.txt"])]
    script = {"a": [{"actions": [{"run": f'echo $$ > "{marks}/a.pgid"'}, write("a.txt", "a\n")], "delay_s": 3}]}
    plan = make_plan(tmp_path / "run", tasks=tasks, script=script)
    # the delay comes before the actions: wait for the task's start, then give the delay a moment to begin
    out, err = plan.root / "run.out", plan.root / "run.err"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([PY, "-m", "maestro", *plan.run_args()], cwd=plan.repo, stdout=o, stderr=e, text=True)
    try:
        wait_for("task a to start", lambda: task_started(plan.repo, "a"), proc, err)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        wait_for("the first Ctrl-C", lambda: "Ctrl-C again" in err.read_text(), proc, err)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert proc.wait(timeout=20) == 130
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 1.5, f"the second Ctrl-C took {took:.1f} s to stop maestro"


# -- 3. limits --------------------------------------------------------------------------------------------------------


def test_iteration_limit_pauses_and_resume_with_a_higher_limit_runs_another_iteration(tmp_path: Path) -> None:
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "fix-tests-1": [{"summary": "not fixed"}],
              "fix-tests-2": [{"actions": [write("fixed.txt", "ok\n")]}]}  # fmt: skip
    plan = make_plan(tmp_path, tasks=[task("a", acceptance=["test -f a.txt"])], script=script,
                     config=config_text(tests="test -f fixed.txt", iterations=3))  # fmt: skip
    req = assert_paused(plan, plan.run("--max-iterations", "1"))
    assert req == {
        "session": plan.sid,
        "question": "Limit reached: required gates still fail after 1 iterations (max_iterations 1): tests",
        "options": LIMIT_OPTIONS,
        "context": {"limit": "max_iterations", "failing_gates": ["tests"]},
        "paused_from": "reviewing",
    }
    doc = plan.status()
    assert (doc["iteration"], doc["limits"]["max_iterations"]) == (1, 1)  # the flag, not config.yaml's 3

    same = plan.resume("--max-iterations", "1")  # not higher: not raised, and there is no answer
    assert (same.returncode, same.stdout) == (2, "")
    assert same.stderr.startswith(f"maestro: error: session {plan.sid} is waiting for a decision: Limit reached")
    assert "(options: raise, handoff, abort), or raise the limit: " in same.stderr
    assert "--max-iterations" in same.stderr
    assert same.stderr.count("\n") == 1
    assert [e for e in plan.events() if e.kind == "limits"] == []
    assert lock_is_free(plan)

    done = assert_completed(plan, plan.resume("--max-iterations", "2"))
    assert (done["iteration"], done["limits"]["max_iterations"]) == (2, 2)
    assert done["gates"]["tests"] == "passed"
    # one more iteration ran, with a fix task of its own; a's done work never ran again
    assert plan.attempts() == {"a": ("succeeded", 1), "fix-tests-1": ("succeeded", 1), "fix-tests-2": ("succeeded", 1)}
    assert [e.data["max_iterations"] for e in plan.events() if e.kind == "limits"] == [2]
    assert resume_reasons(plan) == ["answer: raise"]
    assert plan.triggers().count("refine") == 2


def test_time_limit_pauses_and_resume_with_more_minutes_completes(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, tasks=[task("a", acceptance=["test -f a.txt"])],
                     script={"a": [{"actions": [write("a.txt", "a\n")], "delay_s": 0.2}]})  # fmt: skip
    started = time.monotonic()
    req = assert_paused(plan, plan.run("--max-minutes", "0.001"))
    running_s = time.monotonic() - started
    assert req["options"] == LIMIT_OPTIONS
    assert req["context"]["limit"] == "max_minutes"
    assert req["context"]["detail"].startswith("time 0.001 minutes (")
    assert req["question"] == f"Limit reached: {req['context']['detail']}"
    doc = plan.status()
    assert doc["limits"]["max_minutes"] == 0.001
    assert doc["minutes_run"] >= 0.001

    assert_answered(plan, plan.answer("raise"), "raise")
    still = plan.resume()  # raise, but to what?
    assert (still.returncode, still.stdout) == (2, "")
    assert still.stderr.startswith(f"maestro: error: session {plan.sid}: max_minutes 0.001 is still reached (")
    assert still.stderr.endswith(f"give a higher limit with `maestro resume {plan.sid} --max-minutes N`\n")

    time.sleep(0.5)
    started = time.monotonic()
    done = assert_completed(plan, plan.resume("--max-minutes", "10"))
    running_s += time.monotonic() - started
    assert done["limits"]["max_minutes"] == 10
    # the time paused (answering, the refused resume, the sleep) is not running time
    assert 0.06 <= plan.state().active_s < running_s
    assert done["tasks"] == {"a": "succeeded"}
    assert resume_reasons(plan) == ["answer: raise"]


def budget_tasks(bar: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """a and b run at once (each waits for the other to have started), each costing $0.60; c after both."""
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"]),
             task("c", deps=["a", "b"], acceptance=["test -f c.txt"])]  # fmt: skip
    script = {
        "a": [{"actions": [barrier(bar, "a", "b"), write("a.txt", "a\n")], "cost_usd": 0.6}],
        "b": [{"actions": [barrier(bar, "b", "a"), write("b.txt", "b\n")], "cost_usd": 0.6}],
        "c": [{"actions": [write("c.txt", "c\n")], "cost_usd": 0.1}],
    }
    return tasks, script


def test_budget_is_summed_over_parallel_agents_and_pauses_until_raised(tmp_path: Path) -> None:
    bar = tmp_path / "barrier"
    bar.mkdir()
    tasks, script = budget_tasks(bar)
    plan = make_plan(tmp_path, tasks=tasks, script=script)
    out = plan.run("--budget-usd", "1.0", "--max-iterations", "2", "--max-minutes", "30")
    req = assert_paused(plan, out)
    first = plan.events()[0]
    assert first.kind == "session"
    assert {k: first.data["limits"][k] for k in ("max_iterations", "budget_usd", "max_minutes")} == {
        "max_iterations": 2, "budget_usd": 1.0, "max_minutes": 30.0,
    }  # fmt: skip
    doc = plan.status()
    assert {k: doc["limits"][k] for k in ("max_iterations", "budget_usd", "max_minutes")} == {
        "max_iterations": 2, "budget_usd": 1.0, "max_minutes": 30.0,
    }  # fmt: skip
    assert req == {
        "session": plan.sid,
        "question": "Limit reached: budget $1 ($1.2000 spent over every agent call)",
        "options": LIMIT_OPTIONS,
        "context": {
            "limit": "budget_usd",
            "detail": "budget $1 ($1.2000 spent over every agent call)",
            "mid_group": True,  # a pause inside implementing: what did not merge is redone on resume
        },
        "paused_from": "implementing",
    }
    assert doc["cost_usd"] == pytest.approx(1.2)
    assert doc["tasks"] == {"a": "succeeded", "b": "succeeded"}  # both ran (together: the barrier); c did not start
    events = plan.events()
    starts = [i for i, e in enumerate(events) if e.kind == "task" and e.data["trigger"] == "start"]
    results = [i for i, e in enumerate(events) if e.kind == "agent"]
    assert len(starts) == 2
    assert max(starts) < min(results)  # both started before either finished

    bare = plan.resume()
    assert (bare.returncode, bare.stdout) == (2, "")
    assert "(options: raise, handoff, abort), or raise the limit: --budget-usd" in bare.stderr
    assert_answered(plan, plan.answer("raise"), "raise")
    still = plan.resume()
    assert (still.returncode, still.stdout) == (2, "")
    assert still.stderr == (
        f"maestro: error: session {plan.sid}: budget_usd $1 is still reached ($1.2000 spent): give a higher limit "
        f"with `maestro resume {plan.sid} --budget-usd N`\n"
    )
    low = plan.resume("--budget-usd", "1.1")
    assert (low.returncode, low.stdout) == (2, "")
    assert "budget_usd $1.1 is still reached ($1.2000 spent)" in low.stderr
    assert [e for e in plan.events() if e.kind == "limits"] == []

    done = assert_completed(plan, plan.resume("--budget-usd", "5"))
    assert done["limits"]["budget_usd"] == 5
    assert [e.data["budget_usd"] for e in plan.events() if e.kind == "limits"] == [5]
    assert done["tasks"] == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert plan.attempts()["c"] == ("succeeded", 1)
    assert done["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in plan.state().agent_results))
    assert resume_reasons(plan) == ["answer: raise"]
    for name in ("a", "b", "c"):
        assert plan.file(f"{name}.txt") == f"{name}\n"
    assert_checkout_untouched(plan.repo)


def test_parallel_agents_share_what_is_left_of_the_budget(tmp_path: Path) -> None:
    bar = tmp_path / "barrier"
    bar.mkdir()
    tasks, script = budget_tasks(bar)
    config = config_text().replace("budget_usd: null", "budget_usd: 1.0")
    store, runner, agent, plan = in_process(tmp_path, tasks, script, config)
    out = runner.run(REQUEST, prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert out.state == "paused"
    # $1 left and two agents starting together: each may spend half
    assert [(r.task.id, r.budget_usd) for r in sorted(agent.requests, key=lambda r: r.task.id)] == [
        ("a", 0.5), ("b", 0.5)
    ]  # fmt: skip
    state = maestro.rebuild(store.read_events(out.session_id))
    assert state.spent_usd == pytest.approx(1.2)
    assert state.decision_request is not None
    assert state.decision_request.context["limit"] == "budget_usd"

    again = Runner(store, runner.config, agent, sleep=lambda s: None).resume(out.session_id, limits={"budget_usd": 5})
    assert again.state == "completed"
    (c,) = agent.of("c")
    spent_before_c = sum(r.cost_usd or 0 for r in maestro.rebuild(store.read_events(out.session_id)).agent_results
                         if r.task != "c")  # fmt: skip
    assert c.budget_usd == pytest.approx(5 - spent_before_c)  # alone: all that is left


def budget_paused(tmp_path: Path) -> tuple[maestro.Store, Runner, Recorder, str]:
    """The two parallel $0.60 tasks under a $1 budget, run in-process until the budget pauses the session."""
    bar = tmp_path / "barrier"
    bar.mkdir()
    tasks, script = budget_tasks(bar)
    config = config_text().replace("budget_usd: null", "budget_usd: 1.0")
    store, runner, agent, plan = in_process(tmp_path, tasks, script, config)
    out = runner.run(REQUEST, prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert out.state == "paused"
    req = maestro.rebuild(store.read_events(out.session_id)).decision_request
    assert req is not None
    assert req.context["limit"] == "budget_usd"
    return store, runner, agent, out.session_id


# A limit reached as the last running agents finish: they are merged (a checkpoint each) before the pause, so
# nothing paid for is redone (these two tests were strict xfails until the runner checked limits only before a
# new attempt starts).


def test_raising_the_budget_does_not_redo_the_work_it_paused_after(tmp_path: Path) -> None:
    store, runner, agent, sid = budget_paused(tmp_path)
    again = Runner(store, runner.config, agent, sleep=lambda s: None).resume(sid, limits={"budget_usd": 5})
    assert again.state == "completed"
    assert [(r.task.id, r.attempt) for r in sorted(agent.requests, key=lambda r: (r.task.id, r.attempt))] == [
        ("a", 1), ("b", 1), ("c", 1)
    ]  # fmt: skip
    assert maestro.rebuild(store.read_events(sid)).spent_usd == pytest.approx(1.3)


def test_handing_off_at_the_budget_keeps_the_work_done(tmp_path: Path) -> None:
    store, runner, agent, sid = budget_paused(tmp_path)
    assert answer(store, sid, "handoff").decided_by == "human"
    done = Runner(store, runner.config, agent, sleep=lambda s: None).resume(sid)
    assert done.state == "completed"
    state = maestro.rebuild(store.read_events(sid))
    assert {k: t.state for k, t in state.tasks.items()} == {"a": "succeeded", "b": "succeeded", "c": "skipped"}
    # the report says a and b succeeded: their files must be in the work handed off (the session's branch)
    labels = [c.label for c in state.checkpoints]
    assert labels[0] == "start"
    assert sorted(labels[1:]) == ["task a: A", "task b: B"]  # one checkpoint a merge, in the order they finished
    branch = f"maestro/{sid}"
    assert (git_show(store.repo, f"{branch}:a.txt"), git_show(store.repo, f"{branch}:b.txt")) == ("a\n", "b\n")
    assert git_show(store.repo, f"{branch}:c.txt") is None
    assert_checkout_untouched(store.repo)


def test_a_raised_iteration_limit_gives_each_iteration_every_rung_again(tmp_path: Path) -> None:
    ok = {"actions": [write("a.txt", "a\n")]}
    transient = {"fail": {"kind": "transient", "message": "rate limited"}}
    fixed = {"actions": [write("a.txt", "a\n"), write("fixed.txt", "ok\n")]}
    # iteration 1's fix task fixes nothing; the fix tasks of 2 and 3 each need their retry, and the last fixes the gate
    script = {"a": [ok], "fix-tests-1": [ok], "fix-tests-2": [transient, ok], "fix-tests-3": [transient, fixed]}
    config = config_text(retries=1, alternatives=0, iterations=1, tests="test -f fixed.txt")
    store, runner, _agent, _plan = in_process(tmp_path, [task("a", acceptance=["test -f a.txt"])], script, config)
    out = runner.run(REQUEST, prd_path=tmp_path / "plan" / "prd.md", tasks_path=tmp_path / "plan" / "tasks.yaml")
    assert out.state == "paused"
    assert maestro.rebuild(store.read_events(out.session_id)).iteration == 1
    again = runner.resume(out.session_id, limits={"max_iterations": 3})
    # a session started with max_iterations 3 completes this script; one raised to 3 should too
    assert again.request_file is None or again.state == "completed", again.request_file.read_text()
    assert again.state == "completed"
