"""One suite for every CLI adapter, parametrized over the adapters and their faithful fakes (tests/fakes/).

Each scenario runs the adapter's real command line through the fake of its CLI
(a real subprocess in a real git repository) and checks what the adapter made
of it: the status, the failure class, what it reports, the transcript, the
tree.  Scenarios a CLI does not have (aider has no turns, no permission
prompts) are marked in :data:`EXPECTED` as not applicable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.agents import AgentRequest, PlanRequest, Subagent
from maestro.agents.aider import AiderAgent
from maestro.agents.base import Agent
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.records import AgentResult
from maestro.tasks import Task
from tests.conftest import git_init
from tests.fakes import FAKES_DIR, fake_env, grandchild_pids, invocations, pid_alive

TASK = Task("T1", "Add calculator core", description="Write add(a, b).", acceptance=("true",), files=("calc.py",))

Make = Callable[[dict[str, str]], Agent]
ADAPTERS: dict[str, Make] = {
    "claude": lambda env: ClaudeAgent(executable=str(FAKES_DIR / "claude"), env=env),
    "codex": lambda env: CodexAgent(executable=str(FAKES_DIR / "codex"), env=env),
    "aider": lambda env: AiderAgent(executable=str(FAKES_DIR / "aider"), env=env),
}

# scenario -> adapter -> (status, failure class, does the file get written); None: the CLI has no such case
EXPECTED: dict[str, dict[str, tuple[str, str | None, bool] | None]] = {
    "success": {"claude": ("succeeded", None, True), "codex": ("succeeded", None, True),
                "aider": ("succeeded", None, True)},
    "max_turns": {"claude": ("failed", "implementation", False), "codex": ("failed", "implementation", False),
                  "aider": None},
    "auth": {"claude": ("failed", "critical", False), "codex": ("failed", "critical", False),
             "aider": ("failed", "critical", False)},
    "rate_limit": {"claude": ("failed", "transient", False), "codex": ("failed", "transient", False),
                   "aider": ("failed", "transient", False)},
    "budget": {"claude": ("failed", "critical", False), "codex": ("failed", "critical", False), "aider": None},
    "permission_denied": {"claude": ("failed", "critical", False), "codex": ("failed", "critical", False),
                          "aider": None},
    "malformed": {"claude": ("succeeded", None, True), "codex": ("succeeded", None, True), "aider": None},
    "crash": {"claude": ("failed", "transient", False), "codex": ("failed", "transient", False),
              "aider": ("failed", "critical", False)},
}  # fmt: skip
CASES = [(s, a) for s, by in EXPECTED.items() for a, want in by.items() if want is not None]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = git_init(tmp_path / "repo")
    (r / "calc.py").write_text("x = 1\n")
    return r


def run(adapter: str, scenario: str, repo: Path, tmp_path: Path, **kw: object) -> tuple[AgentResult, Path]:
    log = tmp_path / "fake.log"
    env = fake_env(scenario, log=log, write="calc.py", content="def add(a, b):\n    return a + b\n")
    agent = ADAPTERS[adapter](env)
    request = AgentRequest(TASK, repo, session_dir=tmp_path / "session", timeout_s=kw.pop("timeout_s", 60), **kw)  # type: ignore[arg-type]
    return agent.run(request), log


@pytest.mark.parametrize(("scenario", "adapter"), CASES)
def test_each_scenario_is_classified(scenario: str, adapter: str, repo: Path, tmp_path: Path) -> None:
    result, log = run(adapter, scenario, repo, tmp_path)
    want = EXPECTED[scenario][adapter]
    assert want is not None
    status, cls, written = want
    assert (result.status, result.failure_class) == (status, cls), result
    assert ((repo / "calc.py").read_text() != "x = 1\n") == written
    assert (result.task, result.attempt, result.agent) == ("T1", 1, adapter)
    assert result.summary and "\n" not in result.summary
    # the adapter ran the CLI once, with the prompt whose first line names the task
    (call,) = invocations(log, adapter)
    argv = [str(a) for a in call["argv"]]  # type: ignore[union-attr]
    assert any(a.startswith("Task T1: Add calculator core\n") for a in argv), argv
    # the raw stdout is saved in the session directory, under the path the result gives
    assert result.transcript == f"agents/T1.1.{adapter}.out"
    assert (tmp_path / "session" / result.transcript).exists()


@pytest.mark.parametrize("adapter", ["claude", "codex", "aider"])
def test_a_hang_is_killed_with_its_process_group(adapter: str, repo: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result, log = run(adapter, "hang", repo, tmp_path, timeout_s=2.0)
    assert (result.status, result.failure_class) == ("timeout", "transient"), result
    assert time.monotonic() - started < 30
    (grandchild,) = grandchild_pids(log)
    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild), "the CLI's grandchild outlived the timeout"
    assert "did not finish in time" in result.summary


@pytest.mark.parametrize("adapter", ["claude", "codex", "aider"])
def test_a_missing_executable_is_critical_and_says_how_to_install(adapter: str, repo: Path, tmp_path: Path) -> None:
    agent: Agent = {
        "claude": ClaudeAgent(executable="no-such-claude"),
        "codex": CodexAgent(executable="no-such-codex"),
        "aider": AiderAgent(executable="no-such-aider"),
    }[adapter]
    result = agent.run(AgentRequest(TASK, repo, session_dir=tmp_path / "session"))
    assert (result.status, result.failure_class, result.transcript) == ("failed", "critical", None)
    assert "executable not found on PATH" in result.summary and "install" in result.summary


def test_claude_reports_cost_turns_tokens_and_session(repo: Path, tmp_path: Path) -> None:
    result, _ = run("claude", "success", repo, tmp_path)
    assert result.cost_usd == pytest.approx(0.0061)
    assert result.turns is not None and result.turns >= 2
    assert result.input_tokens is not None and result.output_tokens is not None
    lines = [json.loads(x) for x in (tmp_path / "session" / str(result.transcript)).read_text().splitlines()]
    assert result.agent_session == lines[0]["session_id"] == lines[-1]["session_id"]
    assert result.exit_code == 0


def test_codex_reports_tokens_and_thread_but_no_cost(repo: Path, tmp_path: Path) -> None:
    result, _ = run("codex", "success", repo, tmp_path)
    assert result.cost_usd is None
    assert result.input_tokens is not None and result.input_tokens > 0
    assert result.agent_session is not None


@pytest.mark.parametrize(
    ("scenario", "words"),
    [("auth", "not logged in: run `claude` and `/login`"), ("budget", "budget"),
     ("permission_denied", "refused Write"), ("max_turns", "error_max_turns")],
)  # fmt: skip
def test_claude_summaries_name_the_cause_and_the_fix(scenario: str, words: str, repo: Path, tmp_path: Path) -> None:
    result, _ = run("claude", scenario, repo, tmp_path)
    assert words in result.summary


def test_claude_passes_the_subagent_and_the_budget(repo: Path, tmp_path: Path) -> None:
    sub = Subagent("backend-architect", "Designs backends", "You design backends.", ("Read",), "sonnet")
    _, log = run("claude", "success", repo, tmp_path, subagent=sub, budget_usd=0.5)
    (call,) = invocations(log, "claude")
    argv = [str(a) for a in call["argv"]]  # type: ignore[union-attr]
    agents = json.loads(argv[argv.index("--agents") + 1])
    assert agents == {"backend-architect": {"description": "Designs backends", "prompt": "You design backends.",
                                            "tools": ["Read"], "model": "sonnet"}}  # fmt: skip
    assert argv[argv.index("--max-budget-usd") + 1] == "0.5000"
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv


def test_codex_gets_an_empty_stdin_and_the_workspace_sandbox(repo: Path, tmp_path: Path) -> None:
    _, log = run("codex", "success", repo, tmp_path)
    (call,) = invocations(log, "codex")
    assert call["stdin"] == ""
    argv = [str(a) for a in call["argv"]]  # type: ignore[union-attr]
    assert argv[:2] == ["exec", "--json"] and argv[argv.index("--sandbox") + 1] == "workspace-write"


def test_aider_is_judged_by_the_tree_and_leaves_no_trace(repo: Path, tmp_path: Path) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    config = (repo / ".git" / "config").read_bytes()
    result, log = run("aider", "success", repo, tmp_path)
    assert result.status == "succeeded" and "calc.py" in result.summary
    assert (repo / ".gitignore").read_text() == "*.log\n"  # --no-gitignore
    assert not list(repo.glob(".aider*"))  # history files went to the session directory
    assert (repo / ".git" / "config").read_bytes() == config  # no "Your Name" identity left behind
    (call,) = invocations(log, "aider")
    argv = [str(a) for a in call["argv"]]  # type: ignore[union-attr]
    assert "--no-auto-commits" in argv and argv[-1] == "calc.py"


def test_aider_that_changes_nothing_failed(repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    agent = AiderAgent(executable=str(FAKES_DIR / "aider"), env=fake_env("success", log=log))  # no FAKE_WRITE
    result = agent.run(AgentRequest(TASK, repo, session_dir=tmp_path / "session"))
    assert (result.status, result.failure_class) == ("failed", "implementation"), result


# -- planning ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["claude", "codex"])
def test_planning_returns_a_validated_plan(adapter: str, repo: Path, tmp_path: Path) -> None:
    agent = ADAPTERS[adapter](fake_env("plan", log=tmp_path / "fake.log"))
    outcome = agent.plan(PlanRequest("add a calculator", repo, session_dir=tmp_path / "session"))
    assert outcome.result.status == "succeeded", outcome.result
    assert outcome.plan is not None
    assert outcome.plan.prd.requirements and len(outcome.plan.graph) >= 1
    assert outcome.result.task == "maestro.plan"


@pytest.mark.parametrize("adapter", ["claude", "codex"])
def test_an_invalid_plan_is_an_implementation_failure(adapter: str, repo: Path, tmp_path: Path) -> None:
    prd = tmp_path / "prd.md"
    prd.write_text("# no requirements here\n")
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("version: 1\ntasks:\n  - id: T1\n    title: x\n")
    agent = ADAPTERS[adapter](fake_env("plan", FAKE_PRD=str(prd), FAKE_TASKS=str(tasks)))
    outcome = agent.plan(PlanRequest("add a calculator", repo, session_dir=tmp_path / "session"))
    assert outcome.plan is None
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "implementation")
    assert "prd_markdown: no requirements" in outcome.result.summary


def test_aider_cannot_plan_and_says_what_to_do(repo: Path) -> None:
    outcome = ADAPTERS["aider"]({}).plan(PlanRequest("add a calculator", repo))
    assert (outcome.result.status, outcome.result.failure_class, outcome.plan) == ("failed", "ambiguous", None)
    assert "--prd" in outcome.result.summary
