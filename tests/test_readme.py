"""The README's examples run."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import maestro

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_library_example_runs(repo: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has a python example"
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(blocks[0], "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    text = out.getvalue()
    assert "trigger 'complete' is not allowed in state 'generating_tasks'" in text
    assert "2 plan_ready planning -> generating_tasks 1" in text  # the decision led to this move
    assert "1 start created -> planning 0" in text
    (sid,) = maestro.Store(repo).session_ids()
    assert maestro.rebuild(maestro.Store(repo).read_events(sid)).state == "generating_tasks"


def test_the_quickstart_has_two_commands() -> None:
    quick = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, re.S)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] == "python -m pytest"
