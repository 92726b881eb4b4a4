"""Contract tests: each adapter's exact command line through the REAL claude, codex and aider.

No account and no network: ``claude`` answers "Not logged in" in half a second
with its real stream (and refuses any flag it does not know), ``codex`` reports
errors and then waits for the network forever, ``aider`` prints an
authentication error and exits 0.  So these tests show that every flag an
adapter passes is accepted by the real parser, that the adapter reads the real
output, and that it classifies what it reads: ``critical`` for claude and
aider, ``transient`` (killed at its timeout) for codex.  The CLIs are installed
into folders of the checkout (tests/agent_clis.py); HOME is a temporary folder
so nothing touches the user's own configuration.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from maestro.agents.aider import AiderAgent
from maestro.agents.base import AgentRequest, PlanRequest, Subagent
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.plan.tasks import Task
from tests.support import agent_clis
from tests.support.git import git_init

TASK = Task("T1", "Add calculator core", description="Write add(a, b) in calc.py.", acceptance=("true",),
            files=("calc.py",))  # fmt: skip
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@pytest.fixture(scope="module")
def npm_bin() -> Path:
    try:
        return agent_clis.npm_bin()
    except agent_clis.Missing as exc:
        pytest.skip(str(exc))


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """Only what the CLIs need: no API keys from the developer's shell, a HOME of our own."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    repo = git_init(tmp_path / "repo")
    (repo / "calc.py").write_text("x = 1\n")
    return repo


def request(workdir: Path, tmp_path: Path, **kw: object) -> AgentRequest:
    return AgentRequest(TASK, workdir, session_dir=tmp_path / "session", **kw)  # type: ignore[arg-type]


def test_the_installed_versions_are_the_pinned_ones(npm_bin: Path) -> None:
    claude = subprocess.run([str(npm_bin / "claude"), "-v"], capture_output=True, text=True, timeout=60)
    assert claude.stdout.startswith("2.1.328"), claude.stdout + claude.stderr
    codex = subprocess.run([str(npm_bin / "codex"), "--version"], capture_output=True, text=True, timeout=60)
    assert codex.stdout.strip().endswith("0.169.0"), codex.stdout + codex.stderr


def test_claude_run_gets_as_far_as_the_login_and_is_critical(
    npm_bin: Path, workdir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    agent = ClaudeAgent(executable=str(npm_bin / "claude"), env=clean_env, max_turns=5, model="sonnet")
    sub = Subagent("backend-architect", "Designs backends", "You design backends.", ("Read", "Edit"), "sonnet")
    result = agent.run(request(workdir, tmp_path, subagent=sub, budget_usd=1.5, timeout_s=120))
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert "not logged in" in result.summary.lower()
    assert "/login" in result.summary
    assert result.agent_session is not None and UUID.match(result.agent_session)
    assert result.exit_code == 1
    assert result.cost_usd == 0.0
    # the transcript is the real stream: init first, the result last, one session id
    lines = [json.loads(x) for x in (tmp_path / "session" / str(result.transcript)).read_text().splitlines() if x]
    assert (lines[0]["type"], lines[0]["subtype"]) == ("system", "init")
    assert lines[-1]["type"] == "result" and lines[-1]["is_error"] is True
    assert {x["session_id"] for x in lines} == {result.agent_session}


def test_claude_plan_command_is_accepted(
    npm_bin: Path, workdir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    agent = ClaudeAgent(executable=str(npm_bin / "claude"), env=clean_env)
    outcome = agent.plan(PlanRequest("add a calculator", workdir, timeout_s=120, budget_usd=2.0,
                                     session_dir=tmp_path / "session"))  # fmt: skip
    assert outcome.plan is None
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "critical"), outcome.result
    assert "not logged in" in outcome.result.summary.lower()


def test_claude_refuses_a_flag_it_does_not_know_and_the_adapter_says_so(
    npm_bin: Path, workdir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    agent = ClaudeAgent(executable=str(npm_bin / "claude"), env=clean_env, extra_args=("--bogus-flag",))
    result = agent.run(request(workdir, tmp_path, timeout_s=120))
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert "unknown option '--bogus-flag'" in result.summary


def test_codex_waits_for_the_network_and_is_killed_as_transient(
    npm_bin: Path, workdir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    agent = CodexAgent(executable=str(npm_bin / "codex"), env=clean_env, model="gpt-5")
    result = agent.run(request(workdir, tmp_path, timeout_s=8))
    assert (result.status, result.failure_class) == ("timeout", "transient"), result
    assert result.agent_session is not None and UUID.match(result.agent_session)  # thread.started came first
    out = (tmp_path / "session" / str(result.transcript)).read_text()
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert events[0]["type"] == "thread.started"
    assert any(e["type"] == "error" for e in events)


def test_codex_plan_command_is_accepted(
    npm_bin: Path, workdir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    """An unknown flag would make codex exit 2 at once; being killed at the timeout means every flag parsed."""
    agent = CodexAgent(executable=str(npm_bin / "codex"), env=clean_env)
    outcome = agent.plan(PlanRequest("add a calculator", workdir, timeout_s=8, session_dir=tmp_path / "session"))
    assert (outcome.result.status, outcome.result.failure_class) == ("timeout", "transient"), outcome.result


def test_codex_with_a_flag_it_does_not_know_is_critical(
    npm_bin: Path, workdir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    agent = CodexAgent(executable=str(npm_bin / "codex"), env=clean_env, extra_args=("--bogus-flag",))
    result = agent.run(request(workdir, tmp_path, timeout_s=30))
    assert (result.status, result.failure_class, result.exit_code) == ("failed", "critical", 2), result
    assert "--bogus-flag" in result.summary


@pytest.fixture(scope="module")
def aider() -> Path:
    try:
        return agent_clis.aider_exe()
    except agent_clis.Missing as exc:  # aider's venv could not be made here: the contract cannot be checked
        pytest.skip(str(exc))


def test_aider_exits_0_on_an_auth_error_and_the_adapter_still_says_critical(
    aider: Path, workdir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    (workdir / ".gitignore").write_text("*.log\n")
    config = (workdir / ".git" / "config").read_bytes()
    agent = AiderAgent(executable=str(aider), env=clean_env)
    result = agent.run(request(workdir, tmp_path, timeout_s=180))
    assert (workdir / ".git" / "config").read_bytes() == config  # the real aider writes "Your Name" there: undone
    assert result.exit_code == 0
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert "AuthenticationError" in result.summary
    assert (workdir / ".gitignore").read_text() == "*.log\n"  # --no-gitignore: the user's file is untouched
    assert "calc.py" in (workdir / "calc.py").name and (workdir / "calc.py").read_text() == "x = 1\n"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=workdir, capture_output=True, text=True)
    assert ".aider" not in status.stdout  # its cache is in .git/info/exclude


def test_aider_without_no_gitignore_edits_the_users_gitignore(
    aider: Path, workdir: Path, clean_env: dict[str, str]
) -> None:
    """Why the adapter passes --no-gitignore: the real aider appends .aider* to .gitignore."""
    (workdir / ".gitignore").write_text("*.log\n")
    argv = [a for a in AiderAgent(executable=str(aider)).command("Task T1: x", ("calc.py",)) if a != "--no-gitignore"]
    out = subprocess.run(argv, cwd=workdir, env=clean_env, capture_output=True, text=True, timeout=180,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 0
    assert ".aider*" in (workdir / ".gitignore").read_text()
