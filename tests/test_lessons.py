"""``maestro lessons`` (issue 17, item 7): lessons proposed from real sessions' logs, approved or rejected by a human
through the real command line, and the decisions an approved lesson changes (and a rejected one does not).

Two real sessions (the runner with the scripted agent) in one repository that has a subagent of its own,
``fast-coder``: in each, task ``a`` hits the same rate limit twice (one retry is allowed: the retry fails, the
alternative works) and task ``s`` (category ``scripts``) names ``fast-coder`` and succeeds.  docs/lessons.md says
what is proposed from that and what an approved lesson changes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import maestro
from maestro.agents.registry import discover
from maestro.agents.scripted import ScriptedAgent
from maestro.cli.main import main
from maestro.config.reader import parse_config
from maestro.core.errors import DecisionError, MaestroError
from maestro.core.records import Decision, Evidence
from maestro.decide.engine import DecisionEngine
from maestro.decide.lessons import answer_lesson, propose_lessons
from maestro.plan.tasks import Task
from maestro.run import Runner
from maestro.run.redrive import redrive
from maestro.session import Session
from maestro.store.lessons import lesson_id
from tests.support.runs import cli, config_text, make_repo, plan_folder, task, write

FAST_CODER = "---\nname: fast-coder\ndescription: writes small scripts quickly\n---\nYou write small scripts.\n"
RATE_LIMIT = {"fail": {"kind": "transient", "message": "API Error: 429 rate_limit_error"}}
TRANSIENT = lesson_id("recovery_rung", "transient", "alternative")
SCRIPTS = lesson_id("subagent", "scripts", "fast-coder")
GENERAL = lesson_id("subagent", "general", "general-purpose")


class Repo:
    """One repository, several sessions (ids session-1, session-2 …, in the order they start)."""

    def __init__(self, root: Path, *, existing: Path | None = None) -> None:
        self.root = root
        repo = existing if existing is not None else make_repo(root, {".claude/agents/fast-coder.md": FAST_CODER})
        self.store = maestro.Store(repo)
        self.ids = maestro.SequentialIds()
        self.ids._n = len(self.store.session_ids())
        self.n = 0

    def session(self, tasks: Sequence[Mapping[str, Any]], script: Mapping[str, Any]) -> maestro.SessionState:
        self.n += 1
        plan = plan_folder(self.root, self.n, tasks)
        agent = ScriptedAgent.from_mapping({"version": 1, "tasks": dict(script)}, plan)
        config = self.config = parse_config(config_text(workers=1, retries=1, alternatives=1), plan / "config.yaml")
        runner = Runner(self.store, config, agent, clock=maestro.TickingClock(), ids=self.ids, sleep=lambda s: None)
        outcome = runner.run("Build the sample", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
        assert outcome.state == "completed"
        return maestro.rebuild(self.store.read_events(outcome.session_id))

    def copy(self, dest: Path) -> Repo:
        """Another repository holding the same sessions (so that a test may approve or reject on its own)."""
        shutil.copytree(self.store.repo, dest / "repo", symlinks=True)
        return Repo(dest, existing=dest / "repo")


def scripts_task(tid: str, **extra: Any) -> dict[str, Any]:
    return {**task(tid, acceptance=[f"test -f {tid}.txt"]), "category": "scripts", **extra}


def two_sessions(repo: Repo) -> None:
    for _ in range(2):
        repo.session(
            [task("a", acceptance=["test -f a.txt"]), scripts_task("s", subagent="fast-coder")],
            {"a": [RATE_LIMIT, RATE_LIMIT, {"actions": [write("a.txt", "a\n")]}],
             "s": [{"actions": [write("s.txt", "s\n")]}]},
        )  # fmt: skip


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = Repo(tmp_path_factory.mktemp("lessons"))
    two_sessions(repo)
    return repo


@pytest.fixture
def repo(history: Repo, tmp_path: Path) -> Repo:
    return history.copy(tmp_path)


def decision(state: maestro.SessionState, did: str) -> Decision:
    return next(d for d in state.decisions if d.id == did)


def lesson_evidence(d: Decision) -> list[Evidence]:
    return [e for o in d.options for e in o.evidence if e.kind == "lesson"]


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- what is proposed ----------------------------------------------------------------------------------------------


def test_lessons_proposed_from_the_sessions_logs(history: Repo) -> None:
    found = propose_lessons(history.store)
    assert found.skipped == ()
    got = [(x.id, x.kind, x.topic, x.choice, x.n, x.m, x.status) for x in found.lessons]
    assert got == [
        (TRANSIENT, "recovery_rung", "transient", "alternative", 2, 2, "proposed"),
        (GENERAL, "subagent", "general", "general-purpose", 2, 2, "proposed"),
        (SCRIPTS, "subagent", "scripts", "fast-coder", 2, 2, "proposed"),
    ]
    rung = found.lessons[0]
    assert rung.claim == "transient failures in this repository were resolved by alternative in 2 of 2 cases " \
                         "(retry: 0 of 2)"  # fmt: skip
    # each case names the session and the recovery decision: the alternative, after which attempt 3 succeeded
    assert [(c.session, c.task, c.result) for c in rung.cases] == [
        ("session-1", "a", "resolved (attempt 3 succeeded)"),
        ("session-2", "a", "resolved (attempt 3 succeeded)"),
    ]
    for c in rung.cases:
        d = decision(maestro.rebuild(history.store.read_events(c.session)), c.decision)
        assert (d.kind, d.task, d.choice) == ("recovery", "a", "alternative")
    scripts = found.lessons[2]
    assert scripts.claim == "fast-coder succeeded on 2 of 2 tasks of category 'scripts'"
    for c in scripts.cases:
        d = decision(maestro.rebuild(history.store.read_events(c.session)), c.decision)
        assert (d.kind, d.task, d.choice, c.result) == ("subagent", "s", "fast-coder", "succeeded")
    # listing writes nothing
    assert not (history.store.root / "lessons.json").exists()


def test_one_session_is_below_the_threshold(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.session([task("a", acceptance=["test -f a.txt"])],
                 {"a": [RATE_LIMIT, RATE_LIMIT, {"actions": [write("a.txt", "a\n")]}]})  # fmt: skip
    assert propose_lessons(repo.store).lessons == ()  # one alternative resolved one failure: not a lesson yet


def test_ids_are_stable_and_keep_their_status(repo: Repo, tmp_path: Path) -> None:
    first = [x.id for x in propose_lessons(repo.store).lessons]
    assert first == [x.id for x in propose_lessons(repo.store).lessons]
    assert lesson_id("recovery_rung", "transient", "alternative") == TRANSIENT and TRANSIENT.startswith("L-")
    answer_lesson(repo.store, TRANSIENT, "rejected", note="too few", by="ann", clock=maestro.TickingClock())
    # a third session: more evidence for the same lesson, the same id, its status kept
    repo.session([task("a", acceptance=["test -f a.txt"])],
                 {"a": [RATE_LIMIT, RATE_LIMIT, {"actions": [write("a.txt", "a\n")]}]})  # fmt: skip
    again = {x.id: x for x in propose_lessons(repo.store).lessons}
    assert list(again) == first
    lesson = again[TRANSIENT]
    assert (lesson.n, lesson.m, lesson.status, lesson.by, lesson.note) == (3, 3, "rejected", "ann", "too few")
    assert lesson.at == "2026-01-01T00:00:00.000000Z"  # the injected clock's first reading


# -- approve and reject through the command line -------------------------------------------------------------------


def test_approve_and_reject_through_the_cli(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    where = str(repo.store.repo)
    alt = [next(d.id for d in maestro.rebuild(repo.store.read_events(sid)).decisions if d.choice == "alternative")
           for sid in ("session-1", "session-2")]  # fmt: skip
    code, out, _ = run_cli("lessons", "--repo", where, capsys=capsys)
    assert code == 0
    assert out.splitlines()[:4] == [
        f"{TRANSIENT}  proposed  recovery_rung: transient → alternative",
        "  transient failures in this repository were resolved by alternative in 2 of 2 cases (retry: 0 of 2)",
        "  effect: recovery: a transient failure takes alternative while that rung is open (retries or alternatives "
        "left), ahead of the ladder's order",
        f"  evidence: session-1 {alt[0]} [a] resolved (attempt 3 succeeded); session-2 {alt[1]} [a] resolved "
        "(attempt 3 succeeded)",
    ]
    code, out, _ = run_cli("lessons", "approve", TRANSIENT, "--note", "rate limits here pass on a new attempt",
                           "--repo", where, capsys=capsys)  # fmt: skip
    assert (code, out) == (0, f"lesson {TRANSIENT} approved: transient failures in this repository were resolved "
                              "by alternative in 2 of 2 cases (retry: 0 of 2)\n")  # fmt: skip
    # the real command, in its own process
    done = cli("lessons", "reject", SCRIPTS, "--json", cwd=repo.store.repo)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "rejected"
    done = cli("lessons", "--json", cwd=repo.store.repo)
    doc = json.loads(done.stdout)
    status = {x["id"]: (x["status"], x["note"]) for x in doc["lessons"]}
    assert status == {TRANSIENT: ("approved", "rate limits here pass on a new attempt"), GENERAL: ("proposed", ""),
                      SCRIPTS: ("rejected", "")}  # fmt: skip
    saved = json.loads((repo.store.root / "lessons.json").read_text(encoding="utf-8"))
    assert saved["version"] == 1
    assert [(x["id"], x["status"]) for x in saved["lessons"]] == [(TRANSIENT, "approved"), (SCRIPTS, "rejected")]
    assert all(x["at"].endswith("Z") and x["by"] for x in saved["lessons"])


def test_an_unknown_id_is_one_line_and_writes_nothing(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli("lessons", "approve", "L-00000000", "--repo", str(repo.store.repo), capsys=capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("maestro: error: no lesson 'L-00000000' in ")
    assert TRANSIENT in err
    assert not (repo.store.root / "lessons.json").exists()
    code, _, err = run_cli("lessons", "approve", "--repo", str(repo.store.repo), capsys=capsys)
    assert code == 2 and err == "maestro: error: maestro lessons approve ID: say which lesson (see `maestro lessons`)\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "Expecting property name enclosed in double quotes"),
        ('{"version": 1, "lessons": [{"id": "L-1"}]}', "lesson 1: kind must be a non-empty string"),
        ('{"version": 2, "lessons": []}', 'the file is {"version": 1, "lessons": [...]}'),
    ],
)
def test_a_malformed_lessons_file(repo: Repo, capsys: pytest.CaptureFixture[str], text: str, problem: str) -> None:
    path = repo.store.root / "lessons.json"
    path.write_text(text, encoding="utf-8")
    for args in (("lessons",), ("lessons", "approve", TRANSIENT)):
        code, out, err = run_cli(*args, "--repo", str(repo.store.repo), capsys=capsys)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and err.startswith(f"maestro: error: {path}: cannot read the lessons: ")
        assert problem in err
    assert path.read_text(encoding="utf-8") == text  # nothing written
    with pytest.raises(DecisionError, match=r"lessons\.json: cannot read the lessons"):
        DecisionEngine(decisions_dir=repo.store.decisions_dir).decide("recovery", failure_class="transient")


def test_an_edited_id_is_refused(repo: Repo) -> None:
    answer_lesson(repo.store, TRANSIENT, "approved", by="ann")
    path = repo.store.root / "lessons.json"
    path.write_text(path.read_text(encoding="utf-8").replace(TRANSIENT, "L-12345678"), encoding="utf-8")
    with pytest.raises(MaestroError, match=r"lesson 1: id 'L-12345678' is not the id of its kind, topic and choice"):
        propose_lessons(repo.store)


# -- the decisions a lesson changes --------------------------------------------------------------------------------


def ask_recovery(engine: DecisionEngine) -> Decision:
    return engine.decide("recovery", task="b", task_id="b", failure_class="transient", summary="rate limited",
                         retries=0, max_retries=2, alternatives=0, max_alternatives=1, last_checkpoint=1)  # fmt: skip


def ask_subagent(engine: DecisionEngine, repo: Repo) -> Decision:
    t = Task("t9", "A small script", category="scripts")
    return engine.decide("subagent", for_task=t, registry=discover(repo.store.repo), task="t9")


def test_an_approved_lesson_changes_the_decisions_and_is_cited(repo: Repo) -> None:
    engine = DecisionEngine(decisions_dir=repo.store.decisions_dir)
    before, before_sub = ask_recovery(engine), ask_subagent(engine, repo)
    assert (before.choice, before_sub.choice) == ("retry", "general-purpose")
    assert lesson_evidence(before) == lesson_evidence(before_sub) == []

    answer_lesson(repo.store, TRANSIENT, "approved", by="ann")
    answer_lesson(repo.store, SCRIPTS, "approved", by="ann")
    after = ask_recovery(engine)  # the same engine: an approval counts from the next decision
    assert after.choice == "alternative"
    chosen = next(o for o in after.options if o.name == "alternative")
    claim = "transient failures in this repository were resolved by alternative in 2 of 2 cases (retry: 0 of 2)"
    assert chosen.score == 0.95 and chosen.evidence[-1].kind == "lesson"
    assert (chosen.evidence[-1].value, chosen.evidence[-1].detail.split(" (approved by")[0]) == (TRANSIENT, claim)
    assert f"approved lesson {TRANSIENT}" in after.rationale and "the ladder's rung was retry" in after.rationale
    sub = ask_subagent(engine, repo)
    assert sub.choice == "fast-coder" and sub.rationale.startswith(f"lesson: approved lesson {SCRIPTS}: ")
    assert [e.value for e in lesson_evidence(sub)] == [SCRIPTS]
    # a closed rung stays closed: with no alternative left the lesson cannot be followed, and is not cited
    spent = engine.decide("recovery", task_id="b", failure_class="transient", retries=0, max_retries=2,
                          alternatives=1, max_alternatives=1)  # fmt: skip
    assert spent.choice == "retry" and lesson_evidence(spent) == []
    # the task's own subagent field still comes first
    own = engine.decide("subagent", for_task=Task("t8", "x", category="scripts", subagent="general-purpose"),
                        registry=discover(repo.store.repo))  # fmt: skip
    assert own.choice == "general-purpose" and lesson_evidence(own) == []


def test_a_rejected_lesson_changes_nothing(repo: Repo) -> None:
    engine = DecisionEngine(decisions_dir=repo.store.decisions_dir)
    answer_lesson(repo.store, TRANSIENT, "rejected", by="ann", note="retries are cheap")
    answer_lesson(repo.store, SCRIPTS, "rejected", by="ann")
    rec, sub = ask_recovery(engine), ask_subagent(engine, repo)
    assert (rec.choice, sub.choice) == ("retry", "general-purpose")
    assert lesson_evidence(rec) == lesson_evidence(sub) == []
    assert "lesson" not in rec.rationale and "lesson" not in sub.rationale


@pytest.mark.parametrize("status", ["approved", "rejected"])
def test_a_whole_session_follows_an_approved_lesson_only(repo: Repo, status: str, tmp_path: Path) -> None:
    for lid in (TRANSIENT, SCRIPTS):
        answer_lesson(repo.store, lid, status, by="ann")
    state = repo.session([task("a", acceptance=["test -f a.txt"]), scripts_task("s2")],
                         {"a": [RATE_LIMIT, {"actions": [write("a.txt", "a\n")]}],
                          "s2": [{"actions": [write("s2.txt", "s\n")]}]})  # fmt: skip
    recovery = next(d for d in state.decisions if d.kind == "recovery")
    subagent = next(d for d in state.decisions if d.kind == "subagent" and d.task == "s2")
    if status == "approved":
        assert (recovery.choice, subagent.choice) == ("alternative", "fast-coder")
        assert [e.value for e in lesson_evidence(recovery)] == [TRANSIENT]
        assert [e.value for e in lesson_evidence(subagent)] == [SCRIPTS]
        # a re-drive follows the lessons the session followed, even once they are rejected
        answer_lesson(repo.store, TRANSIENT, "rejected", by="ann")
        report = redrive(repo.store, state.session_id, config=repo.config, workdir=tmp_path / "redrive")
        assert report.same, report.first_difference
    else:
        assert (recovery.choice, subagent.choice) == ("retry", "general-purpose")
        assert all(lesson_evidence(d) == [] for d in state.decisions)


def test_a_human_tech_override(tmp_path: Path) -> None:
    """A policy's tech choice a human overrode becomes a ``tech_override`` lesson; approved, the tech_stack rules'
    choice gives way to the human's where the history holds no precedent for the same question."""
    root = make_repo(tmp_path, {"pyproject.toml": '[project]\nname = "x"\nversion = "0"\n'})
    store = maestro.Store(root)
    engine = DecisionEngine(decisions_dir=store.decisions_dir)
    session = Session.create(store, "Fetch pages", clock=maestro.TickingClock(), ids=maestro.SequentialIds())
    policy = engine.decide("tech_stack", repo=root, capability="http client")
    assert policy.choice == "httpx"
    session.record(policy)
    session.record(Decision("tech_stack", policy.question, "requests", "we use requests everywhere",
                            decided_by="human"))  # fmt: skip
    session.close()
    (override,) = [x for x in propose_lessons(store).lessons if x.kind == "tech_override"]
    assert (override.topic, override.choice, override.n) == ("httpx", "requests", 1)
    assert override.claim == "humans overrode httpx with requests 1 time (Which http client for python?)"
    fresh = DecisionEngine(lessons_file=store.root / "lessons.json")  # no history: no human precedent
    assert fresh.decide("tech_stack", repo=root, capability="http client").choice == "httpx"
    answer_lesson(store, override.id, "approved", by="ann")
    d = fresh.decide("tech_stack", repo=root, capability="http client")
    assert d.choice == "requests" and [e.value for e in lesson_evidence(d)] == [override.id]
    answer_lesson(store, override.id, "rejected", by="ann")
    d = fresh.decide("tech_stack", repo=root, capability="http client")
    assert d.choice == "httpx" and lesson_evidence(d) == []
