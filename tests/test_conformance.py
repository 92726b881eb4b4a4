"""The conformance suites of maestro.testing, run over every agent and the file store — and shown to catch breakage.

The agents: claude, codex and aider through their fakes (tests/fakes/), a real
shell command, the scripted agent, the replay agent over a recording made by
the scripted agent in a real session, and the recording agent wrapping the
scripted agent.  The store: :class:`~maestro.Store`.

Then each check is run against a deliberately broken agent (or store) and must
fail: a suite whose checks cannot fail proves nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import random
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import maestro
from maestro.agents.aider import AiderAgent
from maestro.agents.base import Agent, AgentRequest, PlanOutcome, PlanRequest
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.agents.command import CommandAgent
from maestro.agents.recording import RecordingAgent
from maestro.agents.replay import ReplayAgent
from maestro.agents.scripted import ScriptedAgent
from maestro.core.records import AgentResult
from maestro.store.filestore import Store
from maestro.store.protocol import StoreProtocol
from maestro.testing.agents import AgentCase, AgentConformance, AgentHarness
from maestro.testing.stores import StoreConformance
from tests.support.fakes import FAKES_DIR, fake_env
from tests.support.git import git_init

# -- the harnesses ------------------------------------------------------------------------------------------------


class FakeCliHarness(AgentHarness):
    """claude, codex or aider, running their fake executables (``FAKE_SCENARIO`` picks what happens)."""

    budgets = True

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.scenarios = {"implementation": "max_turns", "critical": "auth", "transient": "rate_limit"}
        if kind == "aider":  # aider has no turns: an attempt that changed nothing is its implementation failure
            self.scenarios["implementation"] = "success"
            self.git_writes = ("info/exclude",)  # documented: .aider* is listed there, not in .gitignore
        self.failure_classes = tuple(self.scenarios)
        self.plans = kind != "aider"

    def _agent(self, case: AgentCase, scenario: str, *, write: bool = False) -> Agent:
        prd, tasks = case.scratch / "prd.md", case.scratch / "tasks.yaml"
        prd.write_text(case.prd_markdown, encoding="utf-8")
        tasks.write_text(case.tasks_yaml, encoding="utf-8")
        env = fake_env(scenario, log=case.scratch / "fake.log", write=case.path if write else None,
                       content=case.content, FAKE_PRD=str(prd), FAKE_TASKS=str(tasks))  # fmt: skip
        make = {"claude": ClaudeAgent, "codex": CodexAgent, "aider": AiderAgent}[self.kind]
        return make(executable=str(FAKES_DIR / self.kind), env=env)  # type: ignore[no-any-return]

    def succeeding(self, case: AgentCase) -> Agent:
        return self._agent(case, "success", write=True)

    def failing(self, case: AgentCase, failure_class: str) -> Agent:
        return self._agent(case, self.scenarios[failure_class])

    def hanging(self, case: AgentCase) -> Agent:
        return self._agent(case, "hang")

    def planning(self, case: AgentCase) -> Agent:
        return self._agent(case, "plan")


class CommandHarness(AgentHarness):
    """A real shell command per attempt: ``cp`` the work into place, ``exit 1``, a command not found, ``sleep``."""

    failure_classes = ("implementation", "critical")
    budgets = True

    def succeeding(self, case: AgentCase) -> Agent:
        source = case.scratch / "work.txt"
        source.write_text(case.content, encoding="utf-8")
        return CommandAgent(f"test {{attempt}} -ge 1 && cp {shlex.quote(str(source))} {shlex.quote(case.path)}")

    def failing(self, case: AgentCase, failure_class: str) -> Agent:
        command = {"implementation": "echo 'tests still fail' >&2; exit 1",
                   "critical": "no-such-agent-for-the-conformance-suite {prompt_file}"}[failure_class]  # fmt: skip
        return CommandAgent(command)

    def hanging(self, case: AgentCase) -> Agent:
        return CommandAgent("sleep 60")


def script_for(case: AgentCase, item: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "tasks": {case.task.id: [item]}}


class ScriptedHarness(AgentHarness):
    """The scripted agent: each scenario is a one-item script."""

    failure_classes = ("transient", "implementation", "test_failure", "critical", "ambiguous")
    plans = True
    deterministic = True

    def script(self, case: AgentCase, item: dict[str, Any]) -> ScriptedAgent:
        return ScriptedAgent.from_mapping(script_for(case, item), case.scratch)

    def succeeding(self, case: AgentCase) -> Agent:
        return self.script(case, {"actions": [{"write": {"path": case.path, "content": case.content}}],
                                  "summary": "wrote calc.py"})  # fmt: skip

    def failing(self, case: AgentCase, failure_class: str) -> Agent:
        if failure_class == "test_failure":  # the way a scripted attempt really gets it: a command that fails
            return self.script(case, {"actions": [{"run": "echo '1 failed' && exit 1"}]})
        if failure_class == "ambiguous":  # a task the script does not know
            return ScriptedAgent.from_mapping({"version": 1, "tasks": {"OTHER": [{}]}}, case.scratch)
        return self.script(case, {"fail": {"kind": failure_class, "message": f"scripted {failure_class}"}})

    def hanging(self, case: AgentCase) -> Agent:
        return self.script(case, {"delay_s": 3600})

    def planning(self, case: AgentCase) -> Agent:
        (case.scratch / "prd.md").write_text(case.prd_markdown, encoding="utf-8")
        (case.scratch / "tasks.yaml").write_text(case.tasks_yaml, encoding="utf-8")
        data = {"version": 1, "planner": {"prd": "prd.md", "tasks": "tasks.yaml"}}
        return ScriptedAgent.from_mapping(data, case.scratch)


class RecordingHarness(ScriptedHarness):
    """The recording agent wrapping the scripted agent (it keeps the inner agent's name)."""

    def succeeding(self, case: AgentCase) -> Agent:
        return RecordingAgent(super().succeeding(case))

    def failing(self, case: AgentCase, failure_class: str) -> Agent:
        return RecordingAgent(super().failing(case, failure_class))

    def hanging(self, case: AgentCase) -> Agent:
        return RecordingAgent(super().hanging(case))

    def planning(self, case: AgentCase) -> Agent:
        return RecordingAgent(super().planning(case))


class ReplayHarness(AgentHarness):
    """The replay agent over a real session: the scripted agent (recorded) did the attempt in another repository,
    and the replay agent answers with that recording."""

    failure_classes = ScriptedHarness.failure_classes
    plans = True
    deterministic = True
    names_its_results = False  # a replayed result is the recorded one: the recorded agent's name

    def __init__(self) -> None:
        self.scripted = ScriptedHarness()

    def record(self, case: AgentCase, inner: Agent, *, plan: bool = False) -> Agent:
        source = git_init(case.scratch / "recorded")
        store = maestro.Store(source)
        session = maestro.Session.create(store, "conformance", clock=maestro.TickingClock(),
                                         ids=maestro.SequentialIds())  # fmt: skip
        with session:
            agent = RecordingAgent(inner)
            if plan:
                outcome = agent.plan(PlanRequest("Add a greeting", source, session_dir=session.dir))
                session.record(outcome.result)
            else:
                request = AgentRequest(case.task, source, attempt=case.attempt, timeout_s=case.timeout_s,
                                       session_dir=session.dir)  # fmt: skip
                session.record(agent.run(request))
        return ReplayAgent.from_session(store, session.id)

    def succeeding(self, case: AgentCase) -> Agent:
        return self.record(case, self.scripted.succeeding(case))

    def failing(self, case: AgentCase, failure_class: str) -> Agent:
        return self.record(case, self.scripted.failing(case, failure_class))

    def hanging(self, case: AgentCase) -> Agent:
        return self.record(case, self.scripted.hanging(case))

    def planning(self, case: AgentCase) -> Agent:
        return self.record(case, self.scripted.planning(case), plan=True)


HARNESSES: dict[str, Callable[[], AgentHarness]] = {
    "claude": lambda: FakeCliHarness("claude"),
    "codex": lambda: FakeCliHarness("codex"),
    "aider": lambda: FakeCliHarness("aider"),
    "command": CommandHarness,
    "scripted": ScriptedHarness,
    "replay": ReplayHarness,
    "recording": RecordingHarness,
}


class TestEveryAgent(AgentConformance):
    """The agent suite over the seven agents."""

    @pytest.fixture(params=sorted(HARNESSES))
    def harness(self, request: pytest.FixtureRequest) -> AgentHarness:
        return HARNESSES[request.param]()


class TestTheFileStore(StoreConformance):
    """The store suite over the file store."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> StoreProtocol:
        return Store(git_init(tmp_path / "repo"))


# -- every check can fail ------------------------------------------------------------------------------------------


@attrs.define
class Mutant:
    """An agent broken on purpose: it wraps a conforming one and spoils what it does."""

    inner: Agent
    name: str
    result: Callable[[AgentRequest, AgentResult], AgentResult] | None = None
    after: Callable[[AgentRequest], None] | None = None
    outcome: Callable[[PlanOutcome], PlanOutcome] | None = None

    def run(self, request: AgentRequest) -> AgentResult:
        result = self.inner.run(request)
        if self.after is not None:
            self.after(request)
        return self.result(request, result) if self.result is not None else result

    def plan(self, request: PlanRequest) -> PlanOutcome:
        outcome = self.inner.plan(request)
        return self.outcome(outcome) if self.outcome is not None else outcome


class MutantHarness(AgentHarness):
    """A conforming harness whose agents are spoilt by ``mutate``; ``flags`` override its capabilities."""

    def __init__(self, base: AgentHarness, mutate: Callable[[Agent], Agent] = lambda a: a, **flags: Any) -> None:
        self.base = base
        self.mutate = mutate
        for name in ("failure_classes", "budgets", "plans", "deterministic", "names_its_results", "git_writes",
                     "timeout_s", "overrun_s"):  # fmt: skip
            setattr(self, name, flags.pop(name, getattr(base, name)))
        self.planning_case: Callable[[AgentCase], AgentCase] = flags.pop("planning_case", lambda c: c)
        assert not flags, flags

    def succeeding(self, case: AgentCase) -> Agent:
        return self.mutate(self.base.succeeding(case))

    def failing(self, case: AgentCase, failure_class: str) -> Agent:
        return self.mutate(self.base.failing(case, failure_class))

    def hanging(self, case: AgentCase) -> Agent:
        return self.mutate(self.base.hanging(case))

    def planning(self, case: AgentCase) -> Agent:
        return self.mutate(self.base.planning(self.planning_case(case)))


def spoil(**how: Any) -> Callable[[Agent], Agent]:
    """A mutation: wrap the agent in a :class:`Mutant` (name kept unless given)."""
    return lambda agent: Mutant(agent, how.pop("name", agent.name) if "name" in how else agent.name, **how)


def evolve(**changes: Any) -> Callable[[AgentRequest, AgentResult], AgentResult]:
    return lambda _request, result: attrs.evolve(result, **changes)


def write(rel: str, under_session: bool = False) -> Callable[[AgentRequest], None]:
    def after(request: AgentRequest) -> None:
        base = request.workdir / ".flow/maestro/sessions/conformance-1" if under_session else request.workdir
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text("spoilt\n", encoding="utf-8")

    return after


def raise_instead(_request: AgentRequest, result: AgentResult) -> AgentResult:
    if result.status != "succeeded":
        raise RuntimeError(result.summary)
    return result


def refuse_any_budget(request: AgentRequest, result: AgentResult) -> AgentResult:
    if request.budget_usd is None:
        return result
    return attrs.evolve(result, status="failed", failure_class="critical", summary="no budget")


def undo_the_work(request: AgentRequest) -> None:
    (request.workdir / "calc.py").write_text("x = 1\n", encoding="utf-8")


def save_without_a_session(request: AgentRequest) -> None:
    if request.session_dir is None:
        write("agents/T1.1.x.out", under_session=True)(request)


def random_duration(_request: AgentRequest, result: AgentResult) -> AgentResult:
    return attrs.evolve(result, duration_s=random.random())


def stray_file(request: AgentRequest) -> None:
    write(f"stray-{os.urandom(4).hex()}")(request)


def claim_success(outcome: PlanOutcome) -> PlanOutcome:
    return PlanOutcome(attrs.evolve(outcome.result, status="succeeded", failure_class=None))


def blame_the_config(outcome: PlanOutcome) -> PlanOutcome:
    return PlanOutcome(attrs.evolve(outcome.result, failure_class="critical"))


def lose_the_plan(outcome: PlanOutcome) -> PlanOutcome:
    return PlanOutcome(outcome.result)


def the_valid_answer(case: AgentCase) -> AgentCase:  # a planner that answers a valid plan whatever it is asked
    return attrs.evolve(case, tasks_yaml=maestro.testing.agents.PLAN_TASKS)


scripted = ScriptedHarness
MUTANTS: dict[str, tuple[str, Callable[[], AgentHarness], dict[str, Any], str]] = {
    # name: (check, broken harness, the check's other arguments, what its failure must say)
    "no name": ("test_the_agent_has_a_name_and_speaks_the_protocol",
                lambda: MutantHarness(scripted(), spoil(name="")), {}, "name ''"),
    "no failure": ("test_the_harness_declares_what_the_agent_can_do",
                   lambda: MutantHarness(scripted(), failure_classes=()), {}, "every agent can fail"),
    "unknown class": ("test_the_harness_declares_what_the_agent_can_do",
                      lambda: MutantHarness(scripted(), failure_classes=("oops",)), {}, "unknown failure classes"),
    "wrong attempt": ("test_a_success_is_the_requests_result_and_its_work_is_in_the_workdir",
                      lambda: MutantHarness(scripted(), spoil(result=evolve(attempt=1))), {},
                      "the request was T1 attempt 2"),
    "wrong task": ("test_a_success_is_the_requests_result_and_its_work_is_in_the_workdir",
                   lambda: MutantHarness(scripted(), spoil(result=evolve(task="T9"))), {}, "the result is for T9"),
    "success with a class": ("test_a_success_is_the_requests_result_and_its_work_is_in_the_workdir",
                             lambda: MutantHarness(scripted(), spoil(result=evolve(failure_class="transient"))), {},
                             "a success with failure class"),
    "another agent's name": ("test_a_success_is_the_requests_result_and_its_work_is_in_the_workdir",
                             lambda: MutantHarness(scripted(), spoil(result=evolve(agent="someone"))), {},
                             "stamped 'someone'"),
    "work lost": ("test_a_success_is_the_requests_result_and_its_work_is_in_the_workdir",
                  lambda: MutantHarness(scripted(), spoil(after=undo_the_work)), {}, "does not hold its work"),
    "failure raised": ("test_a_failure_is_a_result_with_its_class_not_an_exception",
                       lambda: MutantHarness(scripted(), spoil(result=raise_instead)),
                       {"failure_class": "critical"}, "raised RuntimeError"),
    "failure without a class": ("test_a_failure_is_a_result_with_its_class_not_an_exception",
                                lambda: MutantHarness(scripted(), spoil(result=evolve(failure_class=None))),
                                {"failure_class": "critical"}, "without a failure class"),
    "wrong class": ("test_a_failure_is_a_result_with_its_class_not_an_exception",
                    lambda: MutantHarness(FakeCliHarness("claude"), spoil(result=evolve(failure_class="transient"))),
                    {"failure_class": "critical"}, "expected critical"),
    "failure as success": ("test_a_failure_is_a_result_with_its_class_not_an_exception",
                           lambda: MutantHarness(CommandHarness(), spoil(result=evolve(status="succeeded",
                                                                                        failure_class=None))),
                           {"failure_class": "implementation"}, "it succeeded"),
    "commits": ("test_git_and_maestros_files_are_never_written",
                lambda: MutantHarness(scripted(), spoil(after=write(".git/refs/heads/agent"))), {}, ".git/refs/heads"),
    "edits maestro's config": ("test_git_and_maestros_files_are_never_written",
                               lambda: MutantHarness(scripted(), spoil(after=write(".flow/maestro/config.yaml"))), {},
                               "outside the session folder"),
    "writes the session's log": ("test_git_and_maestros_files_are_never_written",
                                 lambda: MutantHarness(scripted(), spoil(after=write("events.jsonl", True))), {},
                                 "only agents/"),
    "undeclared .git write": ("test_git_and_maestros_files_are_never_written",
                              lambda: MutantHarness(FakeCliHarness("aider"), git_writes=()), {}, ".git/info/exclude"),
    "transcript outside": ("test_transcripts_land_in_the_session_folder",
                           lambda: MutantHarness(scripted(), spoil(result=evolve(transcript="../../x.out"))), {},
                           "not a path inside"),
    "transcript missing": ("test_transcripts_land_in_the_session_folder",
                           lambda: MutantHarness(CommandHarness(), spoil(result=evolve(transcript="agents/none.out"))),
                           {}, "is not in"),
    "no transcript": ("test_transcripts_land_in_the_session_folder",
                      lambda: MutantHarness(scripted(), spoil(result=evolve(transcript=None))), {},
                      "names no transcript"),
    "saves without a session": ("test_without_a_session_folder_nothing_is_saved_there",
                                lambda: MutantHarness(scripted(), spoil(after=save_without_a_session)), {},
                                "without a session folder"),
    "timeout as a failure": ("test_an_attempt_past_its_timeout_is_a_timeout",
                             lambda: MutantHarness(FakeCliHarness("codex"), spoil(result=evolve(status="failed"))), {},
                             "got failed (transient)"),
    "returns late": ("test_an_attempt_past_its_timeout_is_a_timeout",
                     lambda: MutantHarness(CommandHarness(), overrun_s=0.0), {}, "returned"),
    "budget refused": ("test_a_budget_left_does_not_stop_the_attempt",
                       lambda: MutantHarness(CommandHarness(), spoil(result=refuse_any_budget)), {}, "with budget 5.0"),
    "budget ignored": ("test_no_budget_left_is_refused_without_running",
                       lambda: MutantHarness(scripted(), budgets=True), {"budget": 0.0}, "got succeeded (None)"),
    "runs anyway": ("test_no_budget_left_is_refused_without_running",
                    lambda: MutantHarness(FakeCliHarness("claude"), spoil(after=write("calc.py"))),
                    {"budget": 0.0}, "ran with no budget left"),
    "not deterministic": ("test_a_deterministic_agent_repeats_itself",
                          lambda: MutantHarness(scripted(), spoil(result=random_duration)), {},
                          "two runs of one success"),
    "nondeterministic tree": ("test_a_deterministic_agent_repeats_itself",
                              lambda: MutantHarness(scripted(), spoil(after=stray_file)), {},
                              "left different files"),
    "plan lost": ("test_planning_gives_a_validated_plan_or_a_failed_result",
                  lambda: MutantHarness(scripted(), spoil(outcome=lose_the_plan)), {}, "with plan None"),
    "claims a plan": ("test_planning_gives_a_validated_plan_or_a_failed_result",
                      lambda: MutantHarness(CommandHarness(), spoil(outcome=claim_success)), {}, "with plan None"),
    "cannot plan, wrong class": ("test_planning_gives_a_validated_plan_or_a_failed_result",
                                 lambda: MutantHarness(CommandHarness(), spoil(outcome=blame_the_config)), {},
                                 "cannot plan, yet"),
    "another plan": ("test_planning_gives_a_validated_plan_or_a_failed_result",
                     lambda: MutantHarness(FakeCliHarness("codex"), planning_case=lambda c: attrs.evolve(
                         c, prd_markdown=c.prd_markdown.replace("Print a greeting", "Print a farewell"))), {},
                     "not the answer given"),
    "accepts an invalid plan": ("test_an_invalid_plan_is_a_failed_result",
                                lambda: MutantHarness(scripted(), planning_case=the_valid_answer), {},
                                "accepted an invalid plan"),
}  # fmt: skip


def failure_of(check: Callable[..., None], **kwargs: Any) -> str:
    """The message with which ``check`` fails (a skip or a pass is a failure of this test)."""
    wanted = inspect.signature(check).parameters
    try:
        check(**{k: v for k, v in kwargs.items() if k in wanted})
    except (Exception, pytest.fail.Exception) as exc:  # noqa: BLE001 - an assertion or an error: the check fails
        return f"{type(exc).__name__}: {exc}"
    except pytest.skip.Exception as exc:
        pytest.fail(f"the check was skipped: {exc}")
    pytest.fail("the check passed a broken agent")


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_each_agent_check_fails_a_broken_agent(mutant: str, tmp_path: Path) -> None:
    check, make, kwargs, says = MUTANTS[mutant]
    message = failure_of(getattr(AgentConformance(), check), harness=make(), tmp_path=tmp_path, **kwargs)
    assert says in message, message


def test_every_agent_check_has_a_broken_agent_that_fails_it() -> None:
    checks = {name for name in dir(AgentConformance) if name.startswith("test_")}
    assert checks == {check for check, *_ in MUTANTS.values()}


# -- every store check can fail ----------------------------------------------------------------------------------


class ListsNewestFirst(Store):
    def session_ids(self) -> list[str]:
        return sorted(super().session_ids(), reverse=True)


class TornIntolerant(Store):
    def read_events(self, session_id: str) -> list[maestro.Event]:
        if not self.events_path(session_id).read_bytes().endswith(b"\n"):
            raise maestro.StoreError("a torn line")
        return super().read_events(session_id)


class LosesTheLastEvent(Store):
    def read_events(self, session_id: str) -> list[maestro.Event]:
        return super().read_events(session_id)[:-1]


class HidesBadLogs(Store):
    def read_events(self, session_id: str) -> list[maestro.Event]:
        try:
            return super().read_events(session_id)
        except maestro.StoreError:
            return []


class SeesNoHolder(Store):
    def holder(self, session_id: str) -> int | None:
        return None


class UnlockedDecisions(Store):
    def decisions_lock(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class WritesWhenRead(Store):
    def session_ids(self) -> list[str]:
        self.init()
        return super().session_ids()


class LaxIds(Store):
    def session_dir(self, session_id: str) -> Path:
        return self.sessions_dir / session_id


class NoInit(Store):
    def init(self) -> None:
        self.sessions_dir.mkdir(parents=True, exist_ok=True)


class LogElsewhere(Store):
    def events_path(self, session_id: str) -> Path:
        return self.root / "logs" / f"{session_id}.jsonl"


class WanderingDecisions(Store):
    moves = 0

    @property
    def decisions_dir(self) -> Path:
        WanderingDecisions.moves += 1
        return self.root / f"decisions-{WanderingDecisions.moves}"


class MissingMembers:
    def __init__(self, repo: Path) -> None:
        self.inner = Store(repo)

    def __getattr__(self, name: str) -> Any:
        if name == "holder":
            raise AttributeError(name)
        return getattr(self.inner, name)


def unsynced_append(self: maestro.store.filestore.EventLog, kind: str, data: Any, ts: str) -> maestro.Event:
    event = maestro.Event(1, self.next_seq, ts, kind, data)
    assert self._fd is not None
    os.write(self._fd, maestro.store.filestore.encode_event(event))
    self.next_seq += 1
    return event


def torn_write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


STORE_MUTANTS: dict[str, tuple[str, type[Any], dict[str, Any], str]] = {
    # name: (check, broken store class, things to patch, what the failure must say)
    "missing members": ("test_the_store_keeps_the_protocol", MissingMembers, {}, "lacks members"),
    "log elsewhere": ("test_the_store_keeps_the_protocol", LogElsewhere, {}, "logs"),
    "writes when read": ("test_a_new_store_is_empty_and_reading_it_writes_nothing", WritesWhenRead, {}, "wrote to it"),
    "no decisions folder": ("test_init_makes_the_decisions_folder_and_can_be_repeated", NoInit, {}, "is_dir"),
    "lax ids": ("test_a_bad_session_id_is_refused", LaxIds, {}, "DID NOT RAISE"),
    "newest first": ("test_a_created_session_has_its_folder_and_is_listed", ListsNewestFirst, {}, "a-1"),
    "loses an event": ("test_events_read_back_as_they_were_appended", LosesTheLastEvent, {}, "assert"),
    "not fsynced": ("test_each_append_is_fsynced_before_it_returns", Store,
                    {"maestro.store.filestore.EventLog.append": unsynced_append}, "before it was fsync'd"),
    "torn intolerant": ("test_a_torn_last_line_is_dropped_and_the_log_goes_on", TornIntolerant, {}, "a torn line"),
    "hides bad logs": ("test_a_bad_line_before_the_last_is_an_error_naming_it", HidesBadLogs, {}, "DID NOT RAISE"),
    "sees no holder": ("test_a_held_session_is_refused_to_a_second_holder", SeesNoHolder, {}, "None"),
    "torn views": ("test_derived_files_are_replaced_whole_or_not_at_all", Store,
                   {"maestro.store.views.atomic_write": torn_write}, "DID NOT RAISE"),
    "wandering decisions": ("test_decisions_reach_the_history_in_the_decisions_folder", WanderingDecisions, {},
                            "No such file"),
    "unlocked decisions": ("test_the_decisions_lock_is_exclusive", UnlockedDecisions, {}, "second in"),
    "replays short": ("test_a_closed_session_replays_to_the_state_it_had", LosesTheLastEvent, {}, "assert"),
}  # fmt: skip


@pytest.mark.parametrize("mutant", sorted(STORE_MUTANTS))
def test_each_store_check_fails_a_broken_store(mutant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check, make, patches, says = STORE_MUTANTS[mutant]
    for target, value in patches.items():
        monkeypatch.setattr(target, value)
    store = make(git_init(tmp_path / "repo"))
    message = failure_of(getattr(StoreConformance(), check), store=store, monkeypatch=monkeypatch, bad="../x")
    assert says in message, message


def test_every_store_check_has_a_broken_store_that_fails_it() -> None:
    checks = {name for name in dir(StoreConformance) if name.startswith("test_")}
    assert checks == {check for check, *_ in STORE_MUTANTS.values()}
