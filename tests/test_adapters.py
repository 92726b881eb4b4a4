"""One suite for every CLI adapter, parametrized over the adapters and their faithful fakes (tests/fakes/).

Each scenario runs the adapter's real command line through the fake of its CLI
(a real subprocess in a real git repository) and checks what the adapter made
of it: the status, the failure class, what it reports, the transcript, the
tree.  Scenarios a CLI does not have (aider has no turns, no permission
prompts) are marked in :data:`EXPECTED` as not applicable.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro.agents import AgentRequest, PlanRequest, Subagent
from maestro.agents.aider import AiderAgent
from maestro.agents.base import Agent
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.core.records import AgentResult
from maestro.plan.tasks import Task
from tests.support.fakes import FAKES_DIR, fake_env, grandchild_pids, invocations, pid_alive
from tests.support.git import git_init

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


# -- what the review found (round 6) ----------------------------------------------------------------------------

LONG = Task("T1", "Add calculator core", description="y" * 200_000, acceptance=("true",), files=("calc.py",))


def script(tmp_path: Path, name: str, body: str) -> str:
    """A stand-in CLI: a shell script (for what the fakes do not model)."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("adapter", ["claude", "codex", "aider"])
def test_a_prompt_too_long_for_an_argument_goes_another_way(adapter: str, repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    agent = ADAPTERS[adapter](fake_env("success", log=log, write="calc.py", content="def add(a, b): ...\n"))
    result = agent.run(AgentRequest(LONG, repo, session_dir=tmp_path / "session", timeout_s=60))
    assert (result.status, result.failure_class) == ("succeeded", None), result
    (call,) = invocations(log, adapter)
    argv = [str(a) for a in call["argv"]]  # type: ignore[union-attr]
    assert all(len(a) < 65536 for a in argv)
    if adapter == "claude":  # -p without a prompt argument: the prompt is read from stdin
        assert argv[:3] == ["-p", "--output-format", "stream-json"]
        assert str(call["stdin"]).startswith("Task T1: Add calculator core\n")
    elif adapter == "codex":  # "-" for the prompt: read from stdin
        assert argv[-1] == "-" and str(call["stdin"]).startswith("Task T1: Add calculator core\n")
    else:
        assert "--message-file" in argv and "--message" not in argv


def test_short_prompts_keep_their_command_lines() -> None:
    assert ClaudeAgent().command("Task T1: x")[:3] == ["claude", "-p", "Task T1: x"]
    assert CodexAgent().command("Task T1: x")[-1] == "Task T1: x"
    assert AiderAgent().command("Task T1: x")[1:3] == ["--message", "Task T1: x"]
    assert ClaudeAgent.stdin_text("Task T1: x") is None and CodexAgent.stdin_text("Task T1: x") is None


@pytest.mark.parametrize("adapter", ["claude", "codex", "aider"])
def test_a_command_line_the_system_refuses_is_critical_without_the_install_hint(
    adapter: str, repo: Path, tmp_path: Path
) -> None:
    env = fake_env("success")
    agent: Agent = {
        "claude": ClaudeAgent(executable=str(FAKES_DIR / "claude"), env=env, extra_args=("--model", "x" * 200_000)),
        "codex": CodexAgent(executable=str(FAKES_DIR / "codex"), env=env, extra_args=("-m", "x" * 200_000)),
        "aider": AiderAgent(executable=str(FAKES_DIR / "aider"), env=env, extra_args=("--model", "x" * 200_000)),
    }[adapter]
    result = agent.run(AgentRequest(TASK, repo, session_dir=tmp_path / "session"))
    assert (result.status, result.failure_class, result.transcript) == ("failed", "critical", None)
    assert "Argument list too long" in result.summary and "install" not in result.summary


@pytest.mark.parametrize("adapter", ["claude", "codex", "aider"])
def test_a_missing_working_directory_is_critical_and_says_so(adapter: str, tmp_path: Path) -> None:
    agent = ADAPTERS[adapter](fake_env("success"))
    result = agent.run(AgentRequest(TASK, tmp_path / "no-such-worktree", session_dir=tmp_path / "session"))
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert f"the working directory {tmp_path / 'no-such-worktree'} does not exist" in result.summary
    assert "install" not in result.summary


@pytest.mark.parametrize("adapter", ["claude", "codex", "aider"])
def test_a_nul_character_in_the_task_does_not_raise(adapter: str, repo: Path, tmp_path: Path) -> None:
    task = Task("T1", "Add calculator core", description="fix this\0 please", files=("calc.py",))
    agent = ADAPTERS[adapter](fake_env("success", write="calc.py"))
    result = agent.run(AgentRequest(task, repo, attempt=2, feedback="FAILED: b'\x00'", session_dir=tmp_path / "s"))
    assert (result.status, result.failure_class) == ("succeeded", None), result


@pytest.mark.parametrize("adapter", ["claude", "codex", "aider"])
@pytest.mark.parametrize("budget", [0.0, -0.5, 0.00004, float("nan")])
def test_no_budget_left_is_critical_and_runs_nothing(adapter: str, budget: float, repo: Path, tmp_path: Path) -> None:
    result, log = run(adapter, "success", repo, tmp_path, budget_usd=budget)
    assert (result.status, result.failure_class, result.transcript) == ("failed", "critical", None), result
    assert "no budget left" in result.summary
    assert invocations(log) == [] and (repo / "calc.py").read_text() == "x = 1\n"


@pytest.mark.parametrize("adapter", ["claude", "codex"])
def test_planning_without_budget_runs_nothing(adapter: str, repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    outcome = ADAPTERS[adapter](fake_env("plan", log=log)).plan(PlanRequest("x", repo, budget_usd=0.0))
    assert (outcome.result.status, outcome.result.failure_class, outcome.plan) == ("failed", "critical", None)
    assert invocations(log) == []


RESULT_LINE = (
    '{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"All done, tests pass.",'
    '"session_id":"s-1","total_cost_usd":0.42,"usage":{"input_tokens":1,"output_tokens":2},"permission_denials":[]}'
)


def test_claude_stopped_at_the_timeout_after_its_result_keeps_the_success_and_the_cost(
    repo: Path, tmp_path: Path
) -> None:
    exe = script(tmp_path, "claude", f"echo '{RESULT_LINE}'\nexec sleep 60\n")
    result = ClaudeAgent(executable=exe).run(AgentRequest(TASK, repo, timeout_s=1.5))
    assert (result.status, result.failure_class, result.cost_usd) == ("succeeded", None, 0.42), result
    assert result.summary.startswith("All done, tests pass.") and "stopped at the timeout" in result.summary


def test_claude_success_with_a_non_zero_exit_counts_and_warns(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exe = script(tmp_path, "claude", f"echo '{RESULT_LINE}'\nexit 1\n")
    result = ClaudeAgent(executable=exe).run(AgentRequest(TASK, repo))
    assert (result.status, result.exit_code, result.cost_usd) == ("succeeded", 1, 0.42)
    assert "exited 1" in caplog.text


@pytest.mark.parametrize(
    ("extra", "env", "words"),
    [(("--max-turns", "lots"), {}, "error: option '--max-turns <turns>' argument 'lots' is invalid"),
     (("--bogus-flag",), {}, "error: unknown option '--bogus-flag'"),
     (("--session-id", "nope"), {}, "Error: Invalid session ID"),
     (("--dangerously-skip-permissions",), {"IS_SANDBOX": "0"}, "cannot be used with root/sudo privileges")],
)  # fmt: skip
def test_claude_refusing_its_command_line_is_critical(
    extra: tuple[str, ...], env: dict[str, str], words: str, repo: Path, tmp_path: Path
) -> None:
    if "root" in words and os.geteuid() != 0:
        pytest.skip("claude refuses --dangerously-skip-permissions only to root")
    agent = ClaudeAgent(executable=str(FAKES_DIR / "claude"), env=fake_env("success") | env, extra_args=extra)
    result = agent.run(AgentRequest(TASK, repo))
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert result.summary.startswith("claude refused its command line: ") and words in result.summary


def test_claude_never_gets_a_budget_of_zero() -> None:
    assert ClaudeAgent().command("x", budget_usd=0.0001)[-2:] == ["--max-budget-usd", "0.0001"]
    assert "--max-budget-usd" not in ClaudeAgent().command("x", budget_usd=float("inf"))
    with pytest.raises(ValueError, match="must be more than 0"):
        ClaudeAgent().command("x", budget_usd=0.0)


def test_codex_error_after_a_completed_turn_is_reported(repo: Path, tmp_path: Path) -> None:
    events = [{"type": "thread.started", "thread_id": "t1"}, {"type": "turn.started"},
              {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 5}},
              {"type": "error", "message": "unexpected status 401 Unauthorized: token expired"}]  # fmt: skip
    lines = "".join(f"echo '{json.dumps(e)}'\n" for e in events)
    result = CodexAgent(executable=script(tmp_path, "codex", lines + "exit 1\n")).run(AgentRequest(TASK, repo))
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert result.summary == "codex exited 1: unexpected status 401 Unauthorized: token expired"


def test_aider_success_is_not_misread_from_the_code_it_prints(repo: Path, tmp_path: Path) -> None:
    code = "def fetch(url):\n    try:\n        return get(url)\n    except ConnectionError:\n        return None\n"
    agent = AiderAgent(executable=str(FAKES_DIR / "aider"), env=fake_env("success", write="calc.py", content=code))
    result = agent.run(AgentRequest(TASK, repo, session_dir=tmp_path / "session"))
    assert (result.status, result.failure_class) == ("succeeded", None), result


def test_aider_is_judged_by_the_task_files_not_by_the_others_changes(repo: Path, tmp_path: Path) -> None:
    """In a parallel group another task changes the shared tree: only the declared files count."""
    agent = AiderAgent(executable=str(FAKES_DIR / "aider"), env=fake_env("success", write="other_task.py"))
    result = agent.run(AgentRequest(TASK, repo, session_dir=tmp_path / "session"))
    assert (result.status, result.failure_class) == ("failed", "implementation"), result
    assert "none of the task's files (calc.py)" in result.summary
    undeclared = Task("T1", "Add calculator core", acceptance=("true",))  # no files: the whole tree counts
    result = agent.run(AgentRequest(undeclared, repo, attempt=2, session_dir=tmp_path / "session"))
    assert result.status == "succeeded" and "other_task.py" in result.summary


def test_aider_creating_an_empty_declared_file_is_not_work(repo: Path, tmp_path: Path) -> None:
    """aider creates each file it is given before it asks the model; that alone is not a change."""
    agent = AiderAgent(executable=str(FAKES_DIR / "aider"), env=fake_env("success"))  # no FAKE_WRITE: no edit
    task = Task("T1", "Add ops", acceptance=("true",), files=("src/ops.py",))
    result = agent.run(AgentRequest(task, repo, session_dir=tmp_path / "session"))
    assert (repo / "src" / "ops.py").exists()
    assert (result.status, result.failure_class) == ("failed", "implementation"), result
    written = AiderAgent(executable=str(FAKES_DIR / "aider"), env=fake_env("success", write="src/ops.py"))
    result = written.run(AgentRequest(task, repo, attempt=2, session_dir=tmp_path / "session"))
    assert result.status == "succeeded" and "src/ops.py" in result.summary


def test_aider_gets_the_files_after_a_double_dash(repo: Path, tmp_path: Path) -> None:
    assert AiderAgent().command("Task T1: x", ("--auto-test", "a.py"))[-3:] == ["--", "--auto-test", "a.py"]
    assert "--" not in AiderAgent().command("Task T1: x")
    log = tmp_path / "fake.log"
    agent = AiderAgent(executable=str(FAKES_DIR / "aider"), env=fake_env("success", log=log, write="calc.py"))
    task = Task("T1", "x", files=("calc.py", "--test-cmd=touch pwned"))
    agent.run(AgentRequest(task, repo, session_dir=tmp_path / "session"))
    (call,) = invocations(log, "aider")
    assert [str(a) for a in call["argv"]][-3:] == ["--", "calc.py", "--test-cmd=touch pwned"]  # type: ignore[union-attr]
    assert (repo / "--test-cmd=touch pwned").exists()  # a file named so, not an option
