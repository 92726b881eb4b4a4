"""``maestro demo --agent claude|codex|aider`` (issue 16, item 5): the demo's session done by the REAL CLI, offline.

Each CLI comes from tests/support/agent_clis.py (claude and codex found on ``PATH``, aider by ``MAESTRO_AIDER``,
the two ways the demo looks); the demo runs as a subprocess with a HOME of the test's own, in which the
"user" has settings that would send the CLI elsewhere: the demo completes all the same (its CLI gets a HOME of
the demo's own) and that HOME is not touched.  A test is skipped, with the reason, only where its CLI cannot be
installed here.  Without the CLI the demo prints one line saying how to install it and writes nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from dulwich.object_store import tree_lookup_path
from dulwich.repo import Repo

import maestro
from maestro.agents.model_script import model_script
from maestro.core.errors import AgentError
from maestro.run import demo
from tests.support import agent_clis

BRANCH_FILES = {
    "calc/core.py": demo.CORE,  # cli's "simpler" core was never merged
    "tests/test_core.py": demo.CORE_TESTS,
    "calc/ops.py": demo.OPS,
    "tests/test_ops.py": demo.OPS_TESTS,
    "calc/__main__.py": demo.CLI,
    "tests/test_cli.py": demo.CLI_TESTS,
}
"""What the scripted demo writes, file for file: the real CLI writes the same with its own tools."""


def user_home(root: Path) -> Path:
    """A user's HOME whose settings would send each CLI to a dead port, with a key of their own."""
    home = root / "user-home"
    settings = {
        ".claude/settings.json": '{"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}}\n',
        ".claude.json": '{"primaryApiKey": "sk-ant-users-own"}\n',
        ".codex/config.toml": 'model_provider = "dead"\n\n[model_providers.dead]\nname = "dead"\n'
        'base_url = "http://127.0.0.1:9/v1"\nwire_api = "responses"\n',
        ".aider.conf.yml": "openai-api-base: http://127.0.0.1:9/v1\n",
        ".gitconfig": "[user]\n\tname = The User\n\temail = user@example.com\n",
    }
    for rel, text in settings.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text, encoding="utf-8")
    return home


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()
    }


def base_env(root: Path) -> dict[str, str]:
    """The environment of the user's shell: no MAESTRO_<CLI> variable, the user's HOME, the CLIs' own variables set
    to what the user uses (which the demo must override)."""
    env = {k: v for k, v in os.environ.items() if k not in demo.ENV_VARS.values()}
    home = user_home(root)
    env.update(HOME=str(home), CODEX_HOME=str(home / ".codex"), CLAUDE_CONFIG_DIR=str(home / ".claude"),
               ANTHROPIC_API_KEY="sk-ant-users-own", OPENAI_API_KEY="sk-users-own",
               MAESTRO_WORKTREES=str(root / "worktrees"))  # fmt: skip
    return env


class AgentDemo:
    """One run of ``maestro demo --agent KIND``: its output, its time, the session it left."""

    def __init__(self, kind: str, root: Path, env: Mapping[str, str]) -> None:
        self.kind = kind
        self.folder = root / "demo"
        self.home = Path(env["HOME"])
        before = snapshot(self.home)
        start = time.monotonic()
        argv = [sys.executable, "-m", "maestro", "demo", "--agent", kind, "--dir", str(self.folder)]
        self.proc = subprocess.run(argv, capture_output=True, text=True, env=dict(env), timeout=600)
        self.seconds = time.monotonic() - start
        self.home_changed = snapshot(self.home) != before
        assert self.proc.returncode == 0, self.proc.stdout[-3000:] + self.proc.stderr
        self.lines = self.proc.stdout.splitlines()
        self.repo = self.folder / "calc"
        self.store = maestro.Store(self.repo)
        (self.sid,) = self.store.session_ids()
        self.state = maestro.rebuild(self.store.read_events(self.sid))
        self.report = (self.store.session_dir(self.sid) / "final-report.md").read_text(encoding="utf-8")

    def branch_file(self, rel: str) -> str:
        with Repo(str(self.repo)) as r:
            tree = r[r.refs[f"refs/heads/maestro/{self.sid}".encode()]].tree
            _mode, sha = tree_lookup_path(r.__getitem__, tree, rel.encode())
            return r[sha].as_raw_string().decode()


def _demo(kind: str, find: Callable[[], Path], tmp_path_factory: pytest.TempPathFactory, *, on_path: bool) -> AgentDemo:
    try:
        exe = find()
    except agent_clis.Missing as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp(f"demo-{kind}")
    env = base_env(root)
    if on_path:
        env["PATH"] = f"{exe.parent}{os.pathsep}{env.get('PATH', '')}"
    else:
        env[demo.ENV_VARS[kind]] = str(exe)
    return AgentDemo(kind, root, env)


@pytest.fixture(scope="module")
def claude_demo(tmp_path_factory: pytest.TempPathFactory) -> AgentDemo:
    return _demo("claude", lambda: agent_clis.npm_bin() / "claude", tmp_path_factory, on_path=True)


@pytest.fixture(scope="module")
def codex_demo(tmp_path_factory: pytest.TempPathFactory) -> AgentDemo:
    return _demo("codex", lambda: agent_clis.npm_bin() / "codex", tmp_path_factory, on_path=True)


@pytest.fixture(scope="module")
def aider_demo(tmp_path_factory: pytest.TempPathFactory) -> AgentDemo:
    return _demo("aider", agent_clis.aider_exe, tmp_path_factory, on_path=False)


@pytest.fixture(params=["claude", "codex", "aider"])
def run(request: pytest.FixtureRequest) -> AgentDemo:
    got: AgentDemo = request.getfixturevalue(f"{request.param}_demo")
    return got


def test_the_real_cli_completes_the_demo_offline_in_its_own_home(run: AgentDemo) -> None:
    assert run.proc.stderr == ""
    assert run.state.state == "completed"
    header = next(line for line in run.lines if line.startswith("[Maestro] Demo: "))
    pattern = rf"\[Maestro\] Demo: the real {run.kind} \((.+)\) against the scripted model server at " \
              r"http://127\.0\.0\.1:\d+, offline"  # fmt: skip
    m = re.fullmatch(pattern, header)
    assert m is not None, header
    assert Path(m.group(1)).name == run.kind
    assert run.lines[-3:] == [
        f"session {run.sid}: completed",
        f"sample repository and plan: {run.folder}",
        f"report: {run.store.session_dir(run.sid) / 'final-report.md'}",
    ]
    assert f"[Maestro] Landed maestro/{run.sid} into master (fast-forward)" in run.lines
    assert f"[Maestro] The model server played {'5' if run.kind == 'aider' else '16'} model turns to {run.kind} " \
           f"(and a rate limit it retried by itself)" in run.lines  # fmt: skip
    # the user's settings were not used (they point at a dead port) and not touched; the CLI had the demo's HOME
    assert not run.home_changed
    assert (run.folder / "home" / ".gitconfig").is_file()
    assert sorted(p.name for p in (run.folder / "plan").iterdir()) == ["config.yaml", "model.yaml", "prd.md",
                                                                        "tasks.yaml"]  # fmt: skip
    print(f"maestro demo --agent {run.kind}: {run.seconds:.1f} s")  # the target is under a minute


def test_the_files_the_demo_expects_are_on_the_session_branch_written_by_the_cli(run: AgentDemo) -> None:
    for rel, text in BRANCH_FILES.items():
        assert run.branch_file(rel) == text, rel
    assert run.branch_file("README.md") == demo.FILES["README.md"] + "\n## Usage\n\n    python -m calc add 1 2\n"
    assert (run.repo / "calc" / "__main__.py").read_text() == demo.CLI  # landed in the sample's own branch
    out = subprocess.run([sys.executable, "-m", "calc", "mul", "3", "4"], cwd=run.repo, capture_output=True, text=True)
    assert out.stdout == "12.0\n"
    transcripts = sorted(p.name for p in (run.store.session_dir(run.sid) / "agents").glob("*.out"))
    assert transcripts == [f"{t}.{run.kind}.out" for t in ("cli.1", "cli.2", "core.1", "docs.1", "ops.1")]


def test_cli_s_first_attempt_broke_core_and_was_redone_as_in_the_scripted_demo(run: AgentDemo) -> None:
    results = {(r.task, r.attempt): r for r in run.state.agent_results}
    assert sorted(results) == [("cli", 1), ("cli", 2), ("core", 1), ("docs", 1), ("ops", 1)]
    assert {r.status for r in results.values()} == {"succeeded"}  # ops's 429 was retried by the CLI itself
    assert {r.agent for r in results.values()} == {run.kind}
    recoveries = [(d.task, d.choice) for d in run.state.decisions if d.kind == "recovery"]
    assert recoveries == [("cli", "alternative")]
    assert "[Maestro] Regression: task core's acceptance now fails after merging cli" in run.lines
    with Repo(str(run.repo)) as r:  # the real CLI's edit of calc/core.py, kept at the attempt's ref only
        kept = r[r.refs[f"refs/maestro/{run.sid}/attempts/cli/1".encode()]]
        _mode, sha = tree_lookup_path(r.__getitem__, kept.tree, b"calc/core.py")
        assert r[sha].as_raw_string() == demo.CORE_BROKEN.encode()


def test_the_report_and_the_console_show_the_agent_s_cost_and_turns(run: AgentDemo) -> None:
    results = run.state.agent_results
    total = sum(r.cost_usd or 0 for r in results)
    assert f"- Agent calls: 5; cost: ${total:.4f}" in run.report
    assert "- Tasks completed: 4/4" in run.report
    assert "- Tests passed: 5 passed, 0 failed" in run.report
    if run.kind == "codex":  # codex reports tokens, never a cost
        assert total == 0 and all(r.cost_usd is None for r in results)
    else:
        assert total > 0 and all(r.cost_usd is not None and r.cost_usd > 0 for r in results)
    for r in results:
        assert r.turns is not None and r.turns >= 1
        assert r.input_tokens is not None and r.input_tokens >= 2400
        cost = "no cost reported" if r.cost_usd is None else f"${r.cost_usd:.4f}"
        line = (f"{run.kind} {r.task} attempt {r.attempt}: succeeded, {r.turns} turn{'' if r.turns == 1 else 's'}, "
                f"{r.input_tokens} tokens in, {r.output_tokens} out, {cost}, {r.duration_s:.1f} s")  # fmt: skip
        assert line in run.lines
    if run.kind == "claude":  # read, write, run the tests, answer: each a turn of claude's
        assert next(r.turns for r in results if r.task == "core") == 4


# -- without the CLI ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", demo.DEMO_AGENTS)
@pytest.mark.parametrize("with_dir", [True, False])
def test_without_the_cli_the_demo_says_how_to_install_it_in_one_line_and_writes_nothing(
    tmp_path: Path, kind: str, with_dir: bool
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in demo.ENV_VARS.values()}
    env.update(PATH=str(empty), TMPDIR=str(tmp_path / "tmp"))
    target = tmp_path / "demo"
    argv = [sys.executable, "-m", "maestro", "demo", "--agent", kind, *(["--dir", str(target)] if with_dir else [])]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert (out.returncode, out.stdout) == (2, "")
    var, install = demo.ENV_VARS[kind], demo.INSTALL[kind]
    assert out.stderr == (f"maestro: error: {kind} is not installed (not on PATH, and {var} is not set): "
                          f"install it with `{install}`, or set {var} to its path\n")  # fmt: skip
    assert not target.exists()
    assert os.listdir(tmp_path / "tmp") == []


def test_a_maestro_variable_that_names_no_executable_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "MAESTRO_CLAUDE": str(tmp_path / "nope"), "TMPDIR": str(tmp_path / "tmp")}
    out = subprocess.run([sys.executable, "-m", "maestro", "demo", "--agent", "claude"], capture_output=True,
                         text=True, env=env, timeout=60)  # fmt: skip
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (f"maestro: error: MAESTRO_CLAUDE={tmp_path / 'nope'}: not an executable file "
                          "(unset it to find claude on PATH)\n")  # fmt: skip
    assert os.listdir(tmp_path / "tmp") == []


def test_the_variable_wins_over_path_and_path_is_searched_without_it(tmp_path: Path) -> None:
    for name in ("on-path", "named"):
        (tmp_path / name).mkdir()
        exe = tmp_path / name / "codex"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    assert demo.find_cli("codex", {"PATH": str(tmp_path / "on-path")}) == tmp_path / "on-path" / "codex"
    named = {"PATH": str(tmp_path / "on-path"), "MAESTRO_CODEX": str(tmp_path / "named" / "codex")}
    assert demo.find_cli("codex", named) == tmp_path / "named" / "codex"
    (tmp_path / "on-path" / "codex").chmod(0o644)  # not executable: not a find
    with pytest.raises(AgentError, match="codex is not installed"):
        demo.find_cli("codex", {"PATH": str(tmp_path / "on-path")})


@pytest.mark.parametrize("kind", demo.DEMO_AGENTS)
def test_each_cli_s_model_script_is_valid_and_makes_the_demo_s_files(kind: str) -> None:
    script = model_script(demo.model_script_for(kind))
    assert sorted(script.tasks) == ["cli", "core", "docs", "ops"]
    assert len(script.tasks["cli"]) == 2  # the regression, then the attempt that leaves core alone
    written = {c.path: c.content for a in script.tasks.values() for t in a for turn in t.turns for c in turn.calls
               if c.kind == "write"}  # fmt: skip
    assert written == BRANCH_FILES | {"calc/core.py": demo.CORE}
    first_ops = script.tasks["ops"][0].turns[0]
    assert [(f.status, f.retry_after) for f in first_ops.fail] == [(429, 1.0)]
    if kind == "aider":  # aider asks once per message: everything in its one answer
        assert {len(a.turns) for attempts in script.tasks.values() for a in attempts} == {1}
