"""The final report (issue 17, item 4): every failure under its task and attempt, or its validation round, with
the decisions that answered it and what became of it; changes split into created, modified and deleted with each
task's diffstat; the session's own metrics; each line once.

Every report here is a real session's: the runner with the scripted agent on a temporary git repository (real
merges, real acceptance commands and gates), read back from its event log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import maestro
from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import parse_config
from maestro.core.records import CheckpointRecord, Decision, Event, FileChange, GateResult, Note
from maestro.run import Runner, RunOutcome
from maestro.store.views import describe, final_report
from tests.support.runs import config_text, make_repo, prd_text, task, write


class Ran:
    """A session the runner ran (and maybe resumed): its store, log, state and report."""

    def __init__(self, store: maestro.Store, outcome: RunOutcome, runner: Runner) -> None:
        self.store, self.outcome, self.runner = store, outcome, runner
        self.sid = outcome.session_id

    @property
    def events(self) -> list[Event]:
        return self.store.read_events(self.sid)

    @property
    def state(self) -> maestro.SessionState:
        return maestro.rebuild(self.events)

    def decisions(self, kind: str) -> list[Decision]:
        return [d for d in self.state.decisions if d.kind == kind]

    def report(self) -> str:
        """The report drawn from the session's log (what the runner writes, without the net diff and matrix)."""
        events = self.events
        return final_report(maestro.rebuild(events), events=events)

    def written(self) -> str:
        return (self.store.session_dir(self.sid) / "final-report.md").read_text(encoding="utf-8")

    def resume(self) -> Ran:
        self.outcome = self.runner.resume(self.sid)
        return self


def run(tmp_path: Path, tasks: Sequence[Mapping[str, Any]], script: Mapping[str, Any], config: str) -> Ran:
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": dict(script)}, plan)
    store = maestro.Store(repo)
    runner = Runner(store, parse_config(config, plan / "config.yaml"), agent, clock=maestro.TickingClock(),
                    ids=maestro.SequentialIds(), sleep=lambda s: None)  # fmt: skip
    outcome = runner.run("Build the sample", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    return Ran(store, outcome, runner)


def section(report: str, name: str) -> list[str]:
    lines = report.splitlines()
    start = lines.index(f"## {name}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [line for line in lines[start:end] if line.strip()]


def giving_up(config: str) -> str:
    return config.replace("  max_alternatives: 0\n", "  max_alternatives: 0\n  on_exhausted: give_up\n")


# -- every kind of failure, each under its task and attempt -------------------------------------------------------


def test_agent_acceptance_and_regression_failures_each_with_its_decision_and_outcome(tmp_path: Path) -> None:
    tasks = [
        task("t", acceptance=["grep -qx T t.txt"]),
        task("acc", acceptance=["test -f acc.txt"]),
        task("reg", deps=["t"], acceptance=["test -f reg.txt"]),
    ]
    script = {
        "t": [{"fail": {"kind": "transient", "message": "rate limited"}}, {"actions": [write("t.txt", "T\n")]}],
        "acc": [{"summary": "wrote nothing"}, {"actions": [write("acc.txt", "acc\n")]}],
        "reg": [{"actions": [write("reg.txt", "r\n"), write("t.txt", "simpler\n")]},
                {"actions": [write("reg.txt", "r\n")]}],
    }  # fmt: skip
    ran = run(tmp_path, tasks, script, config_text(workers=1, retries=1, alternatives=1))
    assert ran.outcome.state == "completed"
    retry, acc_alt, reg_alt = ran.decisions("recovery")
    assert [(d.task, d.choice) for d in (retry, acc_alt, reg_alt)] == [("t", "retry"), ("acc", "alternative"),
                                                                       ("reg", "alternative")]  # fmt: skip
    recovery = section(ran.report(), "Recovery")
    assert recovery == [
        "- t attempt 1: failed (transient), recovered without a human (attempt 2 succeeded) — rate limited",
        f"  - {retry.id} [t] retry: {retry.rationale}",
        "- acc attempt 1: acceptance failed, recovered without a human (attempt 2 succeeded) — $ test -f acc.txt",
        f"  - {acc_alt.id} [acc] alternative: {acc_alt.rationale}",
        "- reg attempt 1: regression, recovered without a human (attempt 2 succeeded) — Your change broke task t (T): "
        "its acceptance command `grep -qx T t.txt` failed (exit 1):",
        f"  - {reg_alt.id} [reg] alternative: {reg_alt.rationale}",
    ]
    # the order of the log: each decision after its failure, none under another task's
    assert acc_alt.rationale.startswith("test_failure: alternative 1 of 1")
    assert reg_alt.rationale.startswith("regression: Your change broke task t (T)")
    metrics = section(ran.report(), "Metrics")
    assert metrics[:3] == [
        "- Autonomy: autonomous: completed with no human answer",
        "- Recovery: 3 failures (1 agent, 1 acceptance, 1 regression): 3 recovered without a human (100%), 0 after a "
        "human answer, 0 not recovered",
        "- Attempts per task: median 2, total 6 over 3 tasks",
    ]


def test_a_merge_conflict_shows_the_merge_decision_and_the_recovery_under_it(tmp_path: Path) -> None:
    shared = "".join(f"s{i}\n" for i in range(1, 9))
    repo_files = {"shared.txt": shared}
    repo = tmp_path / "repo"
    branch_has_x = (f"b=$(git -C '{repo}' for-each-ref --format='%(refname)' refs/heads/maestro/); "
                    f"[ -n \"$b\" ] && git -C '{repo}' cat-file -e \"$b:x.txt\" 2>/dev/null")  # fmt: skip
    wait = {"run": f"n=0; until {branch_has_x}; do n=$((n+1)); [ $n -gt 500 ] && exit 1; sleep 0.02; done"}
    script = {
        "x": [{"actions": [write("x.txt", "x\n"), {"run": "sed -i 's/^s1$/x took s1/' shared.txt"}]}],
        "y": [
            {"actions": [wait, write("y.txt", "y\n"), {"run": "sed -i 's/^s1$/y took s1/' shared.txt"}]},
            {"actions": [write("y.txt", "y\n"), {"append": {"path": "shared.txt", "content": "y rebased\n"}}]},
        ],
    }
    tasks = [task("x", acceptance=["test -f x.txt"]), task("y", acceptance=["test -f y.txt"])]
    make_repo(tmp_path, repo_files)
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": script}, plan)
    store = maestro.Store(repo)
    runner = Runner(store, parse_config(config_text(workers=2, alternatives=1), plan / "config.yaml"), agent,
                    clock=maestro.TickingClock(), ids=maestro.SequentialIds(), sleep=lambda s: None)  # fmt: skip
    ran = Ran(store, runner.run("Build", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml"), runner)
    assert ran.outcome.state == "completed"
    (merge,) = ran.decisions("merge")
    (rerun,) = ran.decisions("recovery")
    assert (merge.task, merge.choice, rerun.task, rerun.choice) == ("y", "rerun", "y", "alternative")
    assert section(ran.report(), "Recovery") == [
        "- y attempt 1: merge conflict, recovered without a human (attempt 2 succeeded) — merge conflict in shared.txt",
        f"  - {merge.id} [y] rerun: {merge.rationale}",
        f"  - {rerun.id} [y] alternative: {rerun.rationale}",
    ]
    assert "- Recovery: 1 failure (1 conflict): 1 recovered without a human (100%), 0 after a human answer, 0 not " \
           "recovered" in section(ran.report(), "Metrics")  # fmt: skip


def test_gate_failures_by_validation_round_with_the_refinement_that_answered_them(tmp_path: Path) -> None:
    script = {"a": [{"actions": [write("v.txt", "1\n")]}], "fix-tests-1": [{"actions": [write("v.txt", "2\n")]}]}
    config = config_text(tests="grep -qx 2 v.txt", lint="echo 'style: 3 problems'; exit 1", iterations=2)
    ran = run(tmp_path, [task("a", acceptance=["test -f v.txt"])], script, config)
    assert ran.outcome.state == "completed"
    refine, handoff = ran.decisions("refinement")
    assert (refine.choice, handoff.choice) == ("refine", "handoff")
    assert section(ran.report(), "Recovery") == [
        "- validation round 1: gate tests: failed, recovered without a human (passed in validation round 2) — "
        "exit status 1",
        "- validation round 1: gate lint: failed (not required) — exit status 1: style: 3 problems",
        f"  - {refine.id} refine: required gates failing: tests",
        "- validation round 2: gate lint: failed (not required) — exit status 1: style: 3 problems",
        f"  - {handoff.id} handoff: every required gate passed",
    ]
    # a gate that is not required calls for no recovery: the rate counts the tests gate alone
    assert "- Recovery: 1 failure (1 gate): 1 recovered without a human (100%), 0 after a human answer, " \
           "0 not recovered" in section(ran.report(), "Metrics")  # fmt: skip


def test_a_failure_a_human_answered_is_recovered_after_a_human_answer(tmp_path: Path) -> None:
    script = {"a": [{"fail": {"kind": "critical", "message": "Credit balance is too low"}},
                    {"actions": [write("a.txt", "a\n")], "cost_usd": 0.5}]}  # fmt: skip
    ran = run(tmp_path, [task("a", acceptance=["test -f a.txt"])], script, config_text())
    assert ran.outcome.state == "paused"
    (pause,) = ran.decisions("recovery")
    before = section(ran.report(), "Recovery")
    assert before == [
        "- a attempt 1: failed (critical), not recovered yet — Credit balance is too low",
        f"  - {pause.id} [a] pause: the agent cannot work: Credit balance is too low",
    ]
    maestro.answer(ran.store, ran.sid, "retry", note="topped up the credit")
    assert ran.resume().outcome.state == "completed"
    (answer,) = ran.decisions("answer")
    assert section(ran.report(), "Recovery") == [
        "- a attempt 1: failed (critical), recovered after a human answer (attempt 2 succeeded) — Credit balance is "
        "too low",
        f"  - {pause.id} [a] pause: the agent cannot work: Credit balance is too low",
        f"  - {answer.id} [a] retry (by human): topped up the credit",
    ]
    metrics = section(ran.report(), "Metrics")
    assert metrics[:2] == [
        "- Autonomy: not autonomous: completed, 1 human answer",
        "- Recovery: 1 failure (1 agent): 0 recovered without a human (0%), 1 after a human answer, 0 not recovered",
    ]
    assert metrics[3] == "- Cost per task: median $0.5000, total $0.5000"


def test_a_humans_answer_goes_to_the_failure_it_was_asked_about_not_to_the_last_one(tmp_path: Path) -> None:
    """a's critical failure pauses the run once b, running meanwhile, has finished — failing too; the answer to the
    question about a is a's, though b's failure is the last one before it."""
    script = {
        "a": [{"fail": {"kind": "critical", "message": "Credit balance is too low"}},
              {"actions": [write("a.txt", "a\n")]}],
        "b": [{"delay_s": 0.3, "fail": {"kind": "transient", "message": "rate limited"}},
              {"actions": [write("b.txt", "b\n")]}],
    }  # fmt: skip
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"])]
    ran = run(tmp_path, tasks, script, config_text(workers=2))
    assert ran.outcome.state == "paused"
    pause, retry = ran.decisions("recovery")
    assert [(pause.task, pause.choice), (retry.task, retry.choice)] == [("a", "pause"), ("b", "retry")]
    maestro.answer(ran.store, ran.sid, "retry")
    assert ran.resume().outcome.state == "completed"
    (answer,) = ran.decisions("answer")
    assert section(ran.report(), "Recovery") == [
        "- a attempt 1: failed (critical), recovered after a human answer (attempt 2 succeeded) — Credit balance is "
        "too low",
        f"  - {pause.id} [a] pause: the agent cannot work: Credit balance is too low",
        f"  - {answer.id} [a] retry (by human): retry, answered by a human",
        "- b attempt 1: failed (transient), recovered after a human answer (attempt 2 succeeded) — rate limited",
        f"  - {retry.id} [b] retry: {retry.rationale}",
    ]


def test_a_task_that_gave_up_is_not_recovered_and_the_session_recovery_is_under_it(tmp_path: Path) -> None:
    fail = {"fail": {"kind": "implementation", "message": "cannot do it"}}
    ran = run(tmp_path, [task("a", acceptance=["test -f a.txt"])], {"a": [fail]},
              giving_up(config_text(retries=0, alternatives=0)))  # fmt: skip
    assert ran.outcome.state == "failed"
    (give_up,) = ran.decisions("recovery")
    (session_give_up,) = ran.decisions("session_recovery")
    report = ran.report()
    assert section(report, "Recovery") == [
        "- a attempt 1: failed (implementation), not recovered — cannot do it",
        f"  - {give_up.id} [a] give_up: {give_up.rationale}",
        f"  - {session_give_up.id} give_up: {session_give_up.rationale}",
    ]
    assert section(report, "Metrics")[:2] == [
        "- Autonomy: not autonomous: failed",
        "- Recovery: 1 failure (1 agent): 0 recovered without a human (0%), 0 after a human answer, 1 not recovered",
    ]


# -- the written report, each line once -----------------------------------------------------------------------------


def test_no_line_of_the_recovery_section_repeats_and_every_decision_is_shown_once(tmp_path: Path) -> None:
    same = {"fail": {"kind": "transient", "message": "rate limited"}}
    script = {
        "a": [same, same, {"actions": [write("a.txt", "a\n")]}],
        "b": [same, {"actions": [write("b.txt", "b\n")]}],
    }
    ran = run(tmp_path, [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"])], script,
              config_text(workers=2, retries=3))  # fmt: skip
    recovery = section(ran.report(), "Recovery")
    assert len(recovery) == len(set(recovery)) == 6
    shown = [line.split()[1] for line in recovery if line.startswith("  - ")]
    assert sorted(shown) == sorted(d.id for d in ran.decisions("recovery"))
    heads = [line.split(":")[0] for line in recovery if line.startswith("- ")]
    assert sorted(heads) == ["- a attempt 1", "- a attempt 2", "- b attempt 1"]
    assert heads.index("- a attempt 1") + 1 == heads.index("- a attempt 2")  # a task's failures together


def test_the_written_report_is_the_one_drawn_from_the_log(tmp_path: Path) -> None:
    """The runner's final-report.md has the Recovery and Metrics sections of its log (the runner passes it)."""
    script = {"a": [{"fail": {"kind": "transient", "message": "rate limited"}}, {"actions": [write("a.txt", "a\n")]}]}
    ran = run(tmp_path, [task("a", acceptance=["test -f a.txt"])], script, config_text())
    written, drawn = ran.written(), ran.report()
    for name in ("Recovery", "Metrics", "Tasks", "Checkpoints"):
        assert section(written, name) == section(drawn, name)
    assert section(written, "Changes Made") == [
        "1 file changed (1 created), +1 -0 lines, from checkpoint 0 to checkpoint 1",
        "### Created (1 file)",
        "- a.txt (+1 -0)",
        "### By task (each checkpoint's diffstat)",
        "- task a: A (checkpoint 1): 1 file (1 created), +1 -0",
        "  - a.txt: created (+1 -0)",
    ]
    assert "- a: succeeded (2 attempts)" in section(written, "Tasks")


def test_without_the_log_the_report_pairs_each_agent_failure_with_its_tasks_recovery_decision(tmp_path: Path) -> None:
    """``final_report(state)`` alone: the agents' failures, each with the recovery decision of its task and class;
    a recovery decision for a failure the state does not hold (a regression) is shown on its own."""
    tasks = [task("t", acceptance=["grep -qx T t.txt"]), task("reg", deps=["t"], acceptance=["test -f reg.txt"])]
    script = {
        "t": [{"fail": {"kind": "transient", "message": "rate limited"}}, {"actions": [write("t.txt", "T\n")]}],
        "reg": [{"actions": [write("reg.txt", "r\n"), write("t.txt", "no\n")]}, {"actions": [write("reg.txt", "r\n")]}],
    }  # fmt: skip
    ran = run(tmp_path, tasks, script, config_text(workers=1, retries=1, alternatives=1))
    retry, alternative = ran.decisions("recovery")
    report = final_report(ran.state)
    assert section(report, "Recovery") == [
        "- t attempt 1: failed (transient) — rate limited",
        f"  - {retry.id} [t] retry: {retry.rationale}",
        f"- {alternative.id} [reg] recovery alternative, answering no recorded failure: {alternative.rationale}",
    ]
    assert "## Metrics" not in report


# -- changes: created, modified, deleted ----------------------------------------------------------------------------


def _checkpoint(n: int, label: str, *files: FileChange) -> CheckpointRecord:
    return CheckpointRecord(n, f"{n:x}" * 40 if n < 16 else "a" * 40, f"maestro/s/{n}", label,
                            "2026-01-01T00:00:00Z", files)  # fmt: skip


def test_changes_are_split_into_created_modified_and_deleted_with_each_tasks_diffstat(tmp_path: Path) -> None:
    """A real session that creates, modifies and deletes files: the net diff split by kind, each task's diffstat."""
    repo_files = {"old.py": "x = 1\ny = 2\n", "keep.py": "a = 1\n"}
    script = {
        "a": [{"actions": [write("new.py", "n = 1\nm = 2\n"), {"delete": {"path": "old.py"}}]}],
        "b": [{"actions": [{"append": {"path": "keep.py", "content": "b = 2\n"}}]}],
    }
    make_repo(tmp_path, repo_files)
    plan = tmp_path / "plan"
    plan.mkdir()
    tasks = [task("a", acceptance=["test -f new.py"], files=["new.py", "old.py"]),
             task("b", deps=["a"], acceptance=["grep -q b keep.py"])]  # fmt: skip
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    store = maestro.Store(tmp_path / "repo")
    runner = Runner(store, parse_config(config_text(), plan / "config.yaml"),
                    ScriptedAgent.from_mapping({"version": 1, "tasks": script}, plan), clock=maestro.TickingClock(),
                    ids=maestro.SequentialIds(), sleep=lambda s: None)  # fmt: skip
    ran = Ran(store, runner.run("Build", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml"), runner)
    assert ran.outcome.state == "completed"
    assert section(ran.written(), "Changes Made") == [
        "3 files changed (1 created, 1 modified, 1 deleted), +3 -2 lines, from checkpoint 0 to checkpoint 2",
        "### Created (1 file)",
        "- new.py (+2 -0)",
        "### Modified (1 file)",
        "- keep.py (+1 -0)",
        "### Deleted (1 file)",
        "- old.py (+0 -2)",
        "### By task (each checkpoint's diffstat)",
        "- task a: A (checkpoint 1): 2 files (1 created, 1 deleted), +2 -2",
        "  - new.py: created (+2 -0)",
        "  - old.py: deleted (+0 -2)",
        "- task b: B (checkpoint 2): 1 file (1 modified), +1 -0",
        "  - keep.py: modified (+1 -0)",
    ]
    # without the runner's net diff, the checkpoints' diffstats are put together (a file created then deleted is
    # gone; created then modified stays created)
    state = ran.state
    extra = _checkpoint(3, "task c: C", FileChange("new.py", "modified", 1, 1), FileChange("tmp.py", "added", 4, 0))
    gone = _checkpoint(4, "task d: D", FileChange("tmp.py", "deleted", 0, 4))
    more = attrs.evolve(state, checkpoints=(*state.checkpoints, extra, gone))
    assert section(final_report(more), "Changes Made")[:7] == [
        "3 files changed (1 created, 1 modified, 1 deleted), +4 -3 lines, the checkpoints' diffstats put together",
        "### Created (1 file)",
        "- new.py (+3 -1)",
        "### Modified (1 file)",
        "- keep.py (+1 -0)",
        "### Deleted (1 file)",
        "- old.py (+0 -2)",
    ]


def test_counts_are_singular_or_plural() -> None:
    one = Event(1, 2, "2026-01-01T00:00:00Z", "checkpoint", {"n": 1, "commit": "a" * 40, "tag": "t", "label": "l",
                "ts": "2026-01-01T00:00:00Z", "files": [{"path": "a", "change": "added"}]})  # fmt: skip
    assert describe(one).endswith("(1 file)")
    files = [{"path": "a", "change": "added"}, {"path": "b", "change": "deleted"}]
    two = Event(1, 2, "2026-01-01T00:00:00Z", "checkpoint", {**one.data, "files": files})
    assert describe(two).endswith("(2 files)")
    assert describe(Event(1, 3, "2026-01-01T00:00:00Z", "note", {"text": "hi"})) == Note("hi").text


def test_coverage_is_shown_when_the_test_gate_states_it(tmp_path: Path) -> None:
    """A real session whose tests gate prints the coverage total last (as ``coverage report`` does) shows it."""
    ran = run(tmp_path, [task("a", acceptance=["test -f a.txt"])], {"a": [{"actions": [write("a.txt", "a\n")]}]},
              config_text(tests="echo 'TOTAL 120 12 90%'"))  # fmt: skip
    assert section(ran.report(), "Testing") == ["- tests: passed — exit status 0: TOTAL 120 12 90%", "- coverage: 90%"]


@pytest.mark.parametrize(
    ("summary", "shown"),
    [("5 passed, 0 failed; coverage: 87.5%", ["- coverage: 87.5%"]), ("5 passed, 0 failed", []),
     ("exit status 0: 100% done", [])],
)  # fmt: skip
def test_coverage_is_read_from_the_test_gates_summary(summary: str, shown: list[str]) -> None:
    state = maestro.rebuild([Event(1, 1, "2026-01-01T00:00:00Z", "session", {"session_id": "s", "request": "r"})])
    gate = GateResult("tests", "passed", summary=summary, passed=5, failed=0)
    assert section(final_report(attrs.evolve(state, gates=(gate,))), "Testing") == [f"- tests: passed — {summary}",
                                                                                    *shown]  # fmt: skip
