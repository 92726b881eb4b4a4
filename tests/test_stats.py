"""``maestro stats`` (issue 17, item 6): the success metrics over a repository's sessions, with exact figures.

Four real sessions in one repository (the runner with the scripted agent): one completed on its own after a
transient failure, one paused on a critical failure and completed after a human's answer, one that gave up
(failed), and one still paused.  docs/stats.md defines every figure checked here.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import maestro
from maestro.agents.scripted import ScriptedAgent
from maestro.cli.inspect import cmd_stats
from maestro.config.reader import parse_config
from maestro.run import Runner
from maestro.store.metrics import Figure, session_metrics, stats_doc, store_metrics, summarize
from tests.support.runs import config_text, make_repo, plan_folder, task, write

CRITICAL = {"fail": {"kind": "critical", "message": "Credit balance is too low"}}


class Repo:
    """One repository, several sessions (ids session-1, session-2 …, in the order they start)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = maestro.Store(make_repo(root))
        self.ids = maestro.SequentialIds()
        self.n = 0

    def session(self, tasks: Sequence[Mapping[str, Any]], script: Mapping[str, Any], config: str) -> Runner:
        """Run one session; return its runner (to resume it)."""
        self.n += 1
        plan = plan_folder(self.root, self.n, tasks)
        agent = ScriptedAgent.from_mapping({"version": 1, "tasks": dict(script)}, plan)
        runner = Runner(self.store, parse_config(config, plan / "config.yaml"), agent, clock=maestro.TickingClock(),
                        ids=self.ids, sleep=lambda s: None)  # fmt: skip
        self.outcome = runner.run("Build the sample", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
        return runner


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = Repo(tmp_path_factory.mktemp("stats"))
    # 1: completed, no human: a's rate limit is retried
    repo.session(
        [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"])],
        {"a": [{"fail": {"kind": "transient", "message": "rate limited"}},
               {"actions": [write("a.txt", "a\n")], "cost_usd": 0.02}],
         "b": [{"actions": [write("b.txt", "b\n")], "cost_usd": 0.01}]},
        config_text(workers=1),
    )  # fmt: skip
    assert repo.outcome.state == "completed"
    # 2: paused on a critical failure, answered, resumed, completed
    paid = {"actions": [write("a.txt", "a\n")], "cost_usd": 0.5}
    runner = repo.session([task("a", acceptance=["test -f a.txt"])], {"a": [CRITICAL, paid]}, config_text())
    assert repo.outcome.state == "paused"
    maestro.answer(repo.store, "session-2", "retry")
    assert runner.resume("session-2").state == "completed"
    # 3: every rung used, and told to give up: failed
    fail = {"fail": {"kind": "implementation", "message": "cannot do it"}}
    rungs = "  max_alternatives: 0\n"
    giving_up = config_text(retries=0, alternatives=0).replace(rungs, rungs + "  on_exhausted: give_up\n")
    repo.session([task("a", acceptance=["test -f a.txt"])], {"a": [fail]}, giving_up)
    assert repo.outcome.state == "failed"
    # 4: paused, not answered: not ended, so in no rate
    repo.session([task("a", acceptance=["test -f a.txt"])], {"a": [CRITICAL]}, config_text())
    assert repo.outcome.state == "paused"
    return repo


def states(repo: Repo) -> list[maestro.SessionState]:
    return [maestro.rebuild(repo.store.read_events(sid)) for sid in repo.store.session_ids()]


def test_each_sessions_own_figures(four: Repo) -> None:
    found, skipped = store_metrics(four.store)
    assert skipped == []
    rows = [(m.session, m.state, m.ended, m.autonomous, m.human_answers, [f.outcome for f in m.counted])
            for m in found]  # fmt: skip
    assert rows == [
        ("session-1", "completed", True, True, 0, ["recovered"]),
        ("session-2", "completed", True, False, 1, ["recovered_by_human"]),
        ("session-3", "failed", True, False, 0, ["unrecovered"]),
        ("session-4", "paused", False, False, 0, ["open"]),
    ]
    one = found[0]
    assert [(t.task, t.attempts, t.agent_calls, t.cost_usd) for t in one.tasks] == [("a", 2, 2, 0.02),
                                                                                    ("b", 1, 1, 0.01)]  # fmt: skip
    assert [(f.kind, f.task, f.attempt, f.failure_class, f.resolved) for f in one.failures] == [
        ("agent", "a", 1, "transient", "attempt 2 succeeded")
    ]
    assert [d.choice for d in one.failures[0].answers] == ["retry"]
    # the answer that resumed session 2 answered its failure, after the recovery decision that paused it
    assert [(d.kind, d.choice, d.decided_by) for d in found[1].failures[0].answers] == [
        ("recovery", "pause", "policy"), ("answer", "retry", "human")]  # fmt: skip
    assert [d.kind for d in found[2].failures[0].answers] == ["recovery", "session_recovery"]
    for m, state in zip(found, states(four), strict=True):
        assert (m.cost_usd, m.active_s) == (state.spent_usd, state.active_s)
        assert m == session_metrics(four.store.read_events(m.session))


def test_the_figures_over_the_ended_sessions(four: Repo) -> None:
    found, _ = store_metrics(four.store)
    s = summarize(found)
    assert (s.sessions, dict(s.by_state), s.ended, s.autonomous) == (
        4,
        {"completed": 2, "failed": 1, "paused": 1},
        3,
        1,
    )
    assert s.autonomy_rate == pytest.approx(1 / 3)
    assert (s.failures, s.recovered, s.recovered_by_human, s.unrecovered) == (3, 1, 1, 1)
    assert s.recovery_rate == pytest.approx(1 / 3)
    assert dict(s.failures_by_kind) == {"agent": 3}
    # per task: session 1's a (2 attempts, $0.02) and b (1, $0.01), session 2's a (2, $0.50), session 3's a (1, $0)
    assert s.attempts_per_task == Figure(4, 1.5, 6)
    assert s.cost_per_task.count == 4
    assert s.cost_per_task.median == pytest.approx(0.015)
    assert s.cost_per_task.total == pytest.approx(0.53)
    assert s.cost_per_session.count == 3
    assert s.cost_per_session.median == pytest.approx(0.03)
    assert s.cost_per_session.total == pytest.approx(0.53)
    running = [st.active_s for st in states(four)[:3]]
    assert s.active_s_per_session == Figure(3, statistics.median(running), sum(running))
    assert s.agent_s_per_task.count == s.elapsed_s_per_task.count == 4


def test_stats_json(four: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_stats(argparse.Namespace(repo=str(four.store.repo), json=True)) == 0
    doc = json.loads(capsys.readouterr().out)
    found, skipped = store_metrics(four.store)
    assert doc == json.loads(json.dumps(stats_doc(summarize(found), found, skipped)))
    assert (doc["autonomy_rate"], doc["recovery_rate"]) == (0.3333, 0.3333)
    assert doc["per_task"]["attempts"] == {"count": 4, "median": 1.5, "total": 6}
    assert doc["per_task"]["cost_usd"] == {"count": 4, "median": 0.015, "total": 0.53}
    rows = [(r["session"], r["failures"], r["recovered"], r["open"], r["attempts"]) for r in doc["session_list"]]
    assert rows == [("session-1", 1, 1, 0, 3), ("session-2", 1, 0, 0, 2), ("session-3", 1, 0, 0, 1),
                    ("session-4", 1, 0, 1, 1)]  # fmt: skip


def test_stats_text(four: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_stats(argparse.Namespace(repo=str(four.store.repo), json=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        "sessions: 4 (2 completed, 1 failed, 1 paused); 3 ended",
        "autonomy rate: 33% (1 of 3 ended sessions completed with no human answer)",
        "recovery rate: 33% (1 of 3 failures recovered without a human; 1 after a human answer, 1 not recovered; "
        "3 agent)",
        "attempts per task: median 1.5, total 6 (over 4 tasks)",
        "cost per task: median $0.0150, total $0.5300 (over 4 tasks)",
    ]
    assert lines[-4].startswith("  session-1  completed  autonomous; 1/1 recovered; 3 attempts; $0.0300; ")
    assert lines[-3].startswith("  session-2  completed  1 human answer; 0/1 recovered; 2 attempts; $0.5000; ")
    assert lines[-1].startswith("  session-4  paused     0 human answers; 0/1 recovered; 1 attempt; $0.0000; ")


def test_a_session_that_cannot_be_read_is_skipped_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Repo(tmp_path)
    repo.session([task("a", acceptance=["test -f a.txt"])], {"a": [{"actions": [write("a.txt", "a\n")]}]},
                 config_text())  # fmt: skip
    broken = repo.store.session_dir("session-9")
    broken.mkdir()
    (broken / "events.jsonl").write_text("not json\n", encoding="utf-8")
    found, skipped = store_metrics(repo.store)
    assert [m.session for m in found] == ["session-1"]
    assert [sid for sid, _ in skipped] == ["session-9"]
    assert summarize(found).autonomy_rate == 1.0
    assert summarize(found).recovery_rate is None  # no failure: no rate, not 100%
    assert cmd_stats(argparse.Namespace(repo=str(repo.store.repo), json=False)) == 0
    out = capsys.readouterr().out.splitlines()
    assert "recovery rate: none (no failure in an ended session)" in out
    assert out[-1].startswith("  session-9  skipped: ")


def test_no_sessions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    assert cmd_stats(argparse.Namespace(repo=str(root), json=False)) == 0
    assert capsys.readouterr().out == "no sessions\n"
    assert cmd_stats(argparse.Namespace(repo=str(root), json=True)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["sessions"], doc["autonomy_rate"], doc["recovery_rate"], doc["session_list"]) == (0, None, None, [])
