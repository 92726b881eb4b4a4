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
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from dulwich import porcelain

from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import load_config
from maestro.core.errors import MaestroError
from maestro.run.landing import land
from maestro.run.runner import Runner, RunOutcome
from maestro.store.filestore import Store, atomic_write

__all__ = ["make_sample", "run_demo"]

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


def make_sample(target: Path) -> Path:
    """Write the sample repository (committed) and the demo's plan, script and config beside it."""
    repo = target / "calc"
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
    (plan / "script.yaml").write_text(json.dumps(SCRIPT, indent=2), encoding="utf-8")  # JSON is YAML
    (plan / "config.yaml").write_text(_with_tests(CONFIG), encoding="utf-8")
    return repo


def run_demo(target: Path | None = None, *, keep: bool = True) -> tuple[RunOutcome, Path]:
    """Make the sample in ``target`` (a new temporary folder by default) and run the session; return both."""
    base = Path(tempfile.mkdtemp(prefix="maestro-demo-")) if target is None else target
    if target is not None:
        if target.exists() and any(target.iterdir()):
            raise MaestroError(f"{target}: not empty: the demo needs an empty or new folder")
        target.mkdir(parents=True, exist_ok=True)
    try:
        repo = make_sample(base)
        plan = base / "plan"
        script = (plan / "script.yaml").resolve()
        # the agent in the config too: the session's run.json then says how to resume or re-drive it
        config = load_config(plan / "config.yaml").with_overrides(agent={"kind": "scripted", "script": str(script)})
        agent = ScriptedAgent.load(script)
        store = Store(repo)
        outcome = Runner(store, config, agent).run(REQUEST, prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
        landed = ""
        if outcome.state == "completed":  # the sample's own branch takes the result, as `maestro land` would
            done = land(store, outcome.session_id)
            landed = (
                f"landed: maestro/{outcome.session_id} into {done.branch} ({done.how}, {done.files_changed} files)\n"
            )
            log.info("[Maestro] Landed maestro/%s into %s (%s)", outcome.session_id, done.branch, done.how)
        atomic_write(
            base / "README.txt",
            f"maestro demo: session {outcome.session_id} ({outcome.state})\n"
            f"repository: {repo}\nreport: {outcome.report}\n{landed}",
        )
    except BaseException:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        raise
    return outcome, base
