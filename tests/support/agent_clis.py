"""The real coding-agent CLIs, installed into folders of this checkout for the contract tests.

    python tests/agent_clis.py        # install what is missing (.ci/run does this; it runs this module)

``claude`` (``@anthropic-ai/claude-code@2.1.328``) and ``codex``
(``@openai/codex@0.169.0``) come from the npm registry into ``.ci/agents/``;
aider (``aider-chat==0.86.2``) into its own virtual environment ``.ci/aider/``
(about 690 MB, 30–40 s).  Nothing is installed globally.  The contract tests
call the same functions, so ``python -m pytest`` alone installs what is
missing; they are skipped, with the reason, only where npm itself is missing
or aider's environment cannot be made (no network for pip).  The same CLIs
run whole sessions against a scripted model server in tests/test_real_agents.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NPM_DIR = ROOT / ".ci" / "agents"
AIDER_DIR = ROOT / ".ci" / "aider"
NPM_PACKAGES = ("@anthropic-ai/claude-code@2.1.328", "@openai/codex@0.169.0")
AIDER_PACKAGE = "aider-chat==0.86.2"


class Missing(Exception):
    """A CLI cannot be installed here: npm is not on this machine, or aider's virtual environment cannot be made."""


def npm_bin() -> Path:
    """The folder holding the real ``claude`` and ``codex``; installed with npm if missing."""
    bin_dir = NPM_DIR / "node_modules" / ".bin"
    if (bin_dir / "claude").exists() and (bin_dir / "codex").exists():
        return bin_dir
    npm = shutil.which("npm")
    if npm is None:
        raise Missing("npm is not installed, so the real claude and codex CLIs cannot be installed here")
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", "--loglevel=error", *NPM_PACKAGES],
        check=True, timeout=900,
    )  # fmt: skip
    return bin_dir


def aider_exe() -> Path:
    """The real ``aider`` in its own virtual environment; created with pip if missing."""
    exe = AIDER_DIR / "bin" / "aider"
    if exe.exists():
        return exe
    if AIDER_DIR.exists():  # a half-made environment from an interrupted install
        shutil.rmtree(AIDER_DIR)
    try:
        venv.create(AIDER_DIR, with_pip=True)
        pip = AIDER_DIR / "bin" / "pip"
        subprocess.run([str(pip), "install", "--quiet", AIDER_PACKAGE], check=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as exc:  # no network, no ensurepip: the tests say why they skip
        shutil.rmtree(AIDER_DIR, ignore_errors=True)
        raise Missing(f"aider ({AIDER_PACKAGE}) could not be installed into {AIDER_DIR}: {exc}") from None
    return exe


def main() -> int:
    """Install what is missing and say where each CLI is (``python tests/agent_clis.py``)."""
    try:
        print(f"claude, codex: {npm_bin()}")
    except Missing as exc:
        print(f"skipped: {exc}")
    try:
        print(f"aider: {aider_exe()}")
    except Missing as exc:
        print(f"skipped: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
