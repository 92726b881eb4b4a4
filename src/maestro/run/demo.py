"""``maestro demo``: a whole session on a sample repository, with the scripted agent, in seconds.

The sample is a tiny Python calculator package with a PRD (four requirements)
and a task graph of four tasks.  The script makes the session meet every part
of the machinery once:

* ``core`` and ``ops`` start at once, each in a worktree of its own; ``ops``
  first hits a rate limit (``transient``) and is retried in place after a backoff;
* ``docs`` starts as soon as ``core`` is merged, ``cli`` once ``core`` and ``ops``
  are; ``cli``'s first attempt "simplifies" ``calc/core.py`` and breaks ``core``'s
  tests — a regression found when its merge is revalidated, so the merge is not
  kept and ``cli`` gets an alternative attempt with the failure as feedback (no
  other task runs again);
* every merge is a checkpoint; validation runs the real test suite with pytest
  (JUnit counts) and traces every requirement to the tasks that serve it;
* the session hands off with ``final-report.md``, and the demo lands the
  session's branch in the sample repository (as ``maestro land`` does) so that
  its files show the result.

Nothing here needs a network, an account or a git binary.

With ``agent="claude"`` (or ``"codex"``, ``"aider"``) the same session is run by
that real CLI, offline: :class:`~maestro.agents.model_server.ModelServer` plays
the model on 127.0.0.1 from a model script that makes the same files through the
CLI's own tools (Claude Code's Write/Edit/Read/Bash, Codex's apply_patch and
exec_command, Aider's edit blocks); ``ops``'s rate limit is a 429 the CLI
retries itself.  The CLI runs with a HOME of the demo's own (``home/`` in its
folder), so the user's settings and credentials are neither used nor touched.
It is found by ``$MAESTRO_CLAUDE`` (``MAESTRO_CODEX``, ``MAESTRO_AIDER``: its
path), else on ``PATH``; when it is not found the demo writes nothing.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dulwich import porcelain

from maestro.agents.base import Agent
from maestro.agents.factory import agent_from_config
from maestro.agents.model_server import ModelServer
from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import load_config
from maestro.core.errors import AgentError, MaestroError
from maestro.run.landing import land
from maestro.run.runner import Observer, Runner, RunOutcome
from maestro.store.filestore import Store, atomic_write

__all__ = ["DEMO_AGENTS", "find_cli", "make_sample", "model_script_for", "run_demo", "sample_repo"]

log = logging.getLogger("maestro.run")

REQUEST = "Add a small calculator package with a command line"

FILES = {
    "README.md": "# calc\n\nA calculator, built by maestro's demo.\n",
    "pyproject.toml": (
        '[project]\nname = "calc"\nversion = "0.1.0"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
    "calc/__init__.py": '"""A small calculator."""\n',
    "tests/__init__.py": "",
}

PRD = """\
---
prd:
  version: v1
  feature_name: calculator
  status: approved
metadata:
  created_at: 2026-01-01T00:00:00Z
  updated_at: 2026-01-01T00:00:00Z
priorities:
  requirements:
    - id: FR-1
      text: "Add and subtract two numbers"
      priority: P0
    - id: FR-2
      text: "Multiply and divide, refusing division by zero"
      priority: P1
    - id: FR-3
      text: "A command line: calc add 1 2"
      priority: P1
    - id: FR-4
      text: "Usage documented in the README"
      priority: P3
---

# Product Requirements Document: Calculator

## Functional Requirements

| ID | Requirement | Priority | Notes |
|----|-------------|----------|-------|
| FR-1 | Add and subtract two numbers | P0 | core |
| FR-2 | Multiply and divide, refusing division by zero | P1 | ops |
| FR-3 | A command line: calc add 1 2 | P1 | cli |
| FR-4 | Usage documented in the README | P3 | docs |
"""

TASKS = """\
version: 1
tasks:
  - id: core
    title: Add and subtract
    description: calc/core.py with add(a, b) and sub(a, b), and their tests.
    category: backend
    requirements: [FR-1]
    risk: low
    priority: P0
    acceptance:
      - {test} core
    files: [calc/core.py, tests/test_core.py]
  - id: ops
    title: Multiply and divide
    description: calc/ops.py with mul(a, b) and div(a, b) (ZeroDivisionError on 0), and their tests.
    category: backend
    requirements: [FR-2]
    priority: P1
    acceptance:
      - {test} ops
    files: [calc/ops.py, tests/test_ops.py]
  - id: cli
    title: Command line
    description: "python -m calc add 1 2 prints 3; every operation of core and ops."
    category: backend
    requirements: [FR-3]
    depends_on: [core, ops]
    risk: high
    priority: P1
    acceptance:
      - {test} cli
    files: [calc/__main__.py, tests/test_cli.py]
  - id: docs
    title: Document the usage
    category: documentation
    requirements: [FR-4]
    depends_on: [core]
    priority: P3
    acceptance:
      - grep -q "python -m calc" README.md
    files: [README.md]
"""

CORE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
CORE_TESTS = (
    "import unittest\n\nfrom calc.core import add, sub\n\n\nclass CoreTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
    "    def test_sub(self):\n        self.assertEqual(sub(5, 3), 2)\n"
)
OPS = (
    "def mul(a, b):\n    return a * b\n\n\ndef div(a, b):\n    if b == 0:\n"
    '        raise ZeroDivisionError("division by zero")\n    return a / b\n'
)
OPS_TESTS = (
    "import unittest\n\nfrom calc.ops import div, mul\n\n\nclass OpsTest(unittest.TestCase):\n"
    "    def test_mul(self):\n        self.assertEqual(mul(3, 4), 12)\n\n"
    "    def test_div(self):\n        self.assertEqual(div(8, 2), 4)\n"
    "        with self.assertRaises(ZeroDivisionError):\n            div(1, 0)\n"
)
CLI = (
    "import sys\n\nfrom calc.core import add, sub\nfrom calc.ops import div, mul\n\n"
    'OPS = {"add": add, "sub": sub, "mul": mul, "div": div}\n\n\n'
    "def main(argv):\n    op, a, b = argv\n    print(OPS[op](float(a), float(b)))\n    return 0\n\n\n"
    'if __name__ == "__main__":\n    sys.exit(main(sys.argv[1:]))\n'
)
CLI_TESTS = (
    "import subprocess\nimport sys\nimport unittest\n\n\nclass CliTest(unittest.TestCase):\n"
    "    def test_add_from_the_command_line(self):\n"
    '        out = subprocess.run([sys.executable, "-m", "calc", "add", "1", "2"], capture_output=True, text=True)\n'
    '        self.assertEqual(out.stdout.strip(), "3.0")\n'
)
# cli's first attempt "simplifies" core: sub becomes add — core's tests now fail (a regression)
CORE_BROKEN = "def add(a, b):\n    return a + b\n\n\nsub = add\n"

SCRIPT = {
    "version": 1,
    "tasks": {
        "core": [
            {
                "actions": [
                    {"write": {"path": "calc/core.py", "content": CORE}},
                    {"write": {"path": "tests/test_core.py", "content": CORE_TESTS}},
                ],
                "summary": "add and sub, with tests",
                "cost_usd": 0.01,
            }
        ],
        "ops": [
            {
                "fail": {"kind": "transient", "message": "API Error: 429 rate_limit_error (try again shortly)"},
                "cost_usd": 0.0,
            },
            {
                "actions": [
                    {"write": {"path": "calc/ops.py", "content": OPS}},
                    {"write": {"path": "tests/test_ops.py", "content": OPS_TESTS}},
                ],
                "summary": "mul and div, with tests",
                "cost_usd": 0.01,
            },
        ],
        "cli": [
            {
                "actions": [
                    {"write": {"path": "calc/__main__.py", "content": CLI}},
                    {"write": {"path": "tests/test_cli.py", "content": CLI_TESTS}},
                    {"write": {"path": "calc/core.py", "content": CORE_BROKEN}},
                ],
                "summary": "command line (and a 'simpler' core)",
                "cost_usd": 0.02,
            },
            {
                "actions": [
                    {"write": {"path": "calc/__main__.py", "content": CLI}},
                    {"write": {"path": "tests/test_cli.py", "content": CLI_TESTS}},
                ],
                "summary": "command line, core left alone",
                "cost_usd": 0.02,
            },
        ],
        "docs": [
            {
                "actions": [{"append": {"path": "README.md", "content": "\n## Usage\n\n    python -m calc add 1 2\n"}}],
                "summary": "usage in the README",
                "cost_usd": 0.005,
            }
        ],
    },
}

CONFIG = """\
agent: {kind: scripted, script: script.yaml}
parallel: {max_workers: 2}
recovery:
  max_retries: 2
  backoff: {initial_s: 0.2, factor: 2.0, max_s: 1.0}
  max_alternatives: 2
limits: {max_iterations: 2, max_minutes: 10, budget_usd: null}
gates:
  tests: {command: "{suite}", required: true}
"""


DEMO_AGENTS = ("claude", "codex", "aider")
"""The real CLIs ``maestro demo --agent`` runs against the scripted model server."""

ENV_VARS = {"claude": "MAESTRO_CLAUDE", "codex": "MAESTRO_CODEX", "aider": "MAESTRO_AIDER"}
"""The variable that names a CLI's executable for the demo (else it is looked for on ``PATH``)."""

INSTALL = {
    "claude": "npm install -g @anthropic-ai/claude-code",
    "codex": "npm install -g @openai/codex",
    "aider": "python -m pip install aider-install && aider-install",
}

AIDER_MODEL = "openai/gpt-4o"
"""The model aider is told to use: any ``openai/`` name reaches the server; litellm knows this one's price."""

AGENT_TIMEOUT_S = 300
"""How long one attempt of a real CLI may run in the demo (a few seconds is usual)."""

_README_LINE = "A calculator, built by maestro's demo.\n"
_USAGE = "\n## Usage\n\n    python -m calc add 1 2\n"


def _turns(kind: str, text: str, *, reads: tuple[str, ...] = (), writes: Mapping[str, str] | None = None,
           edits: tuple[tuple[str, str, str], ...] = (), check: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One attempt's model turns for ``kind``: read the files it edits, make the changes (one answer), run the check,
    and say ``text``.  Aider asks once per message and has no tools: its one answer is the text with the edit
    blocks (its files are in its chat already, and it runs no command of the model's)."""
    changes: list[dict[str, Any]] = [{"write": {"path": k, "content": v}} for k, v in (writes or {}).items()]
    changes += [{"edit": {"path": path, "old": old, "new": new}} for path, old, new in edits]
    usage = {"input_tokens": 2400, "output_tokens": 350}
    if kind == "aider":
        return {"turns": [{"text": text, "calls": changes, "usage": usage}]}
    turns: list[dict[str, Any]] = []
    if reads:  # Claude Code edits only a file it has read
        turns.append(
            {"calls": [{"read": {"path": r}} for r in reads], "usage": {"input_tokens": 1800, "output_tokens": 60}}
        )
    turns.append({"calls": changes, "usage": usage})
    if check:
        turns.append({"run": check, "usage": {"input_tokens": 2900, "output_tokens": 40}})
    turns.append({"text": text, "usage": {"input_tokens": 3100, "output_tokens": 30}})
    return {"turns": turns}


def model_script_for(kind: str) -> dict[str, Any]:
    """The model script with which ``kind`` (claude, codex or aider) does the demo's session: the files the scripted
    demo writes, the same rate limit (a 429 the CLI retries itself) and the same regression in ``cli``'s first
    attempt."""
    python = shlex.quote(sys.executable)
    core, ops, cli = (
        {"calc/core.py": CORE, "tests/test_core.py": CORE_TESTS},
        {"calc/ops.py": OPS, "tests/test_ops.py": OPS_TESTS},
        {"calc/__main__.py": CLI, "tests/test_cli.py": CLI_TESTS},
    )
    simplify = ("calc/core.py", "def sub(a, b):\n    return a - b\n", "sub = add\n")  # CORE becomes CORE_BROKEN
    ops_first = _turns(kind, "Added mul and div in calc/ops.py, with tests.", writes=ops,
                       check=f"{python} -m unittest -q tests.test_ops")  # fmt: skip
    ops_first["turns"][0] = {**ops_first["turns"][0], "fail": {"status": 429, "retry_after": 1}}
    return {
        "version": 1,
        "default": "Done.",
        "tasks": {
            "core": [
                _turns(
                    kind,
                    "Added add and sub in calc/core.py, with tests.",
                    writes=core,
                    check=f"{python} -m unittest -q tests.test_core",
                )
            ],
            "ops": [ops_first],
            "cli": [
                _turns(
                    kind,
                    "Added the command line, and made calc/core.py simpler.",
                    reads=("calc/core.py",),
                    writes=cli,
                    edits=(simplify,),
                    check=f"{python} -m unittest -q tests.test_cli",
                ),
                _turns(
                    kind,
                    "Added the command line; calc/core.py is left as it was.",
                    writes=cli,
                    check=f"{python} -m unittest -q tests.test_cli tests.test_core",
                ),
            ],
            "docs": [
                _turns(
                    kind,
                    "Documented the usage in README.md.",
                    reads=("README.md",),
                    edits=(("README.md", _README_LINE, _README_LINE + _USAGE),),
                )
            ],
        },
    }


def find_cli(kind: str, environ: Mapping[str, str] | None = None) -> Path:
    """The executable of the real CLI ``kind``: ``$MAESTRO_<KIND>`` when set, else ``kind`` on ``PATH``; an
    :class:`~maestro.core.errors.AgentError` saying how to install it when neither is there."""
    env = os.environ if environ is None else environ
    var = ENV_VARS[kind]
    given = env.get(var)
    if given:
        path = Path(given).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
        raise AgentError(f"{var}={given}: not an executable file (unset it to find {kind} on PATH)")
    found = shutil.which(kind, path=env.get("PATH", os.defpath))
    if found is None:
        raise AgentError(f"{kind} is not installed (not on PATH, and {var} is not set): install it with "
                         f"`{INSTALL[kind]}`, or set {var} to its path")  # fmt: skip
    return Path(found).absolute()


def _cli_env(kind: str, srv: ModelServer, home: Path) -> dict[str, str]:
    """The environment that points ``kind`` at the model server, with ``home`` for its HOME: none of the user's
    settings, credentials or other model endpoints reach it, and it writes nothing of the user's."""
    home.mkdir(parents=True)
    gitconfig = home / ".gitconfig"  # a git identity (without one aider writes one into the repository's config)
    gitconfig.write_text("[user]\n\tname = maestro demo\n\temail = demo@example.com\n", encoding="utf-8")
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if kind == "claude":
        return {**env, **srv.claude_env(), "CLAUDE_CONFIG_DIR": str(home / ".claude"), "ANTHROPIC_AUTH_TOKEN": "",
                "CLAUDE_CODE_USE_BEDROCK": "", "CLAUDE_CODE_USE_VERTEX": ""}  # fmt: skip
    if kind == "codex":
        return {**env, **srv.codex_env(home / ".codex")}
    # aider downloads litellm's price list into this cache when it is missing or empty: offline that is two waits
    # of up to 5 s each; litellm's own copy (LITELLM_LOCAL_MODEL_COST_MAP) has the model's price
    caches = home / ".aider" / "caches"
    caches.mkdir(parents=True)
    (caches / "model_prices_and_context_window.json").write_text('{"maestro-demo": {}}\n', encoding="utf-8")
    return {**env, **srv.aider_env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _with_tests(text: str) -> str:
    """Fill in the test commands: pytest (with JUnit counts) when it is installed, else the standard unittest.

    The sample's tests are ``unittest`` test cases, which both run; ``maestro demo``
    needs nothing but the installed package.
    """
    python = shlex.quote(sys.executable)
    if importlib.util.find_spec("pytest") is not None:
        suite = f"{python} -m pytest -q -p no:cacheprovider --junitxml={{junit}}"
        one = f"{python} -m pytest -q -p no:cacheprovider tests/test_"
        return text.replace("{suite}", suite).replace("{test} core", one + "core.py").replace(
            "{test} ops", one + "ops.py").replace("{test} cli", one + "cli.py")  # fmt: skip
    suite = f"{python} -m unittest discover -s tests -t ."
    one = f"{python} -m unittest -q tests.test_"
    return text.replace("{suite}", suite).replace("{test} core", one + "core").replace(
        "{test} ops", one + "ops").replace("{test} cli", one + "cli")  # fmt: skip


def sample_repo(folder: Path) -> Path:
    """The sample repository in a demo's folder."""
    return folder / "calc"


def make_sample(
    target: Path, *, agent: Mapping[str, Any] | None = None, model: Mapping[str, Any] | None = None
) -> Path:
    """Write the sample repository (committed) and the demo's plan, script and config beside it.

    With ``agent`` (a config's ``agent`` section for a real CLI) and ``model`` (its model script), the plan holds
    ``model.yaml`` and a config naming that agent instead of the scripted agent's ``script.yaml``.
    """
    repo = sample_repo(target)
    repo.mkdir(parents=True)
    for rel, text in FILES.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n", encoding="utf-8")
    porcelain.init(str(repo))
    porcelain.add(str(repo), paths=[str(repo / p) for p in [*FILES, ".gitignore"]])
    porcelain.commit(
        str(repo),
        message=b"calc: an empty package",
        author=b"demo <demo@example.com>",
        committer=b"demo <demo@example.com>",
    )
    plan = target / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(PRD, encoding="utf-8")
    (plan / "tasks.yaml").write_text(_with_tests(TASKS), encoding="utf-8")
    config = _with_tests(CONFIG)
    if agent is None:
        (plan / "script.yaml").write_text(json.dumps(SCRIPT, indent=2), encoding="utf-8")  # JSON is YAML
    else:
        (plan / "model.yaml").write_text(json.dumps(model, indent=2), encoding="utf-8")
        _, rest = config.split("\n", 1)
        config = f"agent: {json.dumps(dict(agent))}\n{rest}"
    (plan / "config.yaml").write_text(config, encoding="utf-8")
    return repo


def run_demo(
    target: Path | None = None, *, keep: bool = True, agent: str = "scripted", observer: Observer | None = None
) -> tuple[RunOutcome, Path]:
    """Make the sample in ``target`` (a new temporary folder by default) and run the session; return both.

    ``agent`` is ``scripted`` (the scripted agent), or ``claude``, ``codex`` or ``aider``: that real CLI against
    the scripted model server (an :class:`AgentError`, with nothing written, when it is not installed).
    ``observer`` watches the session's events (the runner's, for a live view).
    """
    if agent != "scripted" and agent not in DEMO_AGENTS:
        raise AgentError(f"the demo's agent: {agent!r} is not one of scripted, {', '.join(DEMO_AGENTS)}")
    executable = None if agent == "scripted" else find_cli(agent)  # before anything is written
    if target is not None and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise MaestroError(f"{target}: not empty: the demo needs an empty or new folder")
    base = Path(tempfile.mkdtemp(prefix="maestro-demo-")) if target is None else target
    try:
        base.mkdir(parents=True, exist_ok=True)
        if executable is None:
            repo = make_sample(base)
            script = (base / "plan" / "script.yaml").resolve()
            # the agent in the config too: the session's run.json then says how to resume or re-drive it
            config = load_config(base / "plan" / "config.yaml").with_overrides(
                agent={"kind": "scripted", "script": str(script)}
            )
            outcome = _run(repo, base, config, ScriptedAgent.load(script), observer)
        else:
            model = model_script_for(agent)
            with ModelServer(model) as srv:
                env = _cli_env(agent, srv, base / "home")
                section: dict[str, Any] = {"kind": agent, "executable": str(executable), "env": env,
                                           "timeout_s": AGENT_TIMEOUT_S}  # fmt: skip
                if agent == "aider":
                    section["model"] = AIDER_MODEL
                repo = make_sample(base, agent=section, model=model)
                config = load_config(base / "plan" / "config.yaml")
                log.info("[Maestro] Demo: the real %s (%s) against the scripted model server at %s, offline",
                         agent, executable, srv.url)  # fmt: skip
                outcome = _run(repo, base, config, agent_from_config(config.agent, base_dir=base / "plan"), observer)
                asked = [r for r in srv.requests if r.turn is not None]
                retried = sum(r.answer.startswith("failure") for r in asked)
                log.info("[Maestro] The model server played %d model turns to %s (and %s it retried by itself)",
                         sum(r.answer == "turn" for r in asked), agent,
                         "a rate limit" if retried == 1 else f"{retried} failures")  # fmt: skip
    except BaseException:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        raise
    return outcome, base


def _run(repo: Path, base: Path, config: Any, agent: Agent, observer: Observer | None = None) -> RunOutcome:
    """The session on the sample, landed in its branch when it completed, and ``README.txt`` saying where it is."""
    plan = base / "plan"
    store = Store(repo)
    runner = Runner(store, config, agent, observer=observer)
    outcome = runner.run(REQUEST, prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    landed = ""
    if outcome.state == "completed":  # the sample's own branch takes the result, as `maestro land` would
        done = land(store, outcome.session_id)
        landed = f"landed: maestro/{outcome.session_id} into {done.branch} ({done.how}, {done.files_changed} files)\n"
        log.info("[Maestro] Landed maestro/%s into %s (%s)", outcome.session_id, done.branch, done.how)
    atomic_write(
        base / "README.txt",
        f"maestro demo: session {outcome.session_id} ({outcome.state})\n"
        f"repository: {repo}\nreport: {outcome.report}\n{landed}",
    )
    return outcome
