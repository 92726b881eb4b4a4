"""The README's examples run."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import maestro

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_library_examples_run(repo: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 3, "the README has its three python examples"
    (repo / "notes.txt").write_text("the user's uncommitted work\n")
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(repo)
    namespace: dict[str, object] = {}
    try:
        with contextlib.redirect_stdout(out):
            for block in blocks:  # in order, sharing names, as a reader would run them
                exec(compile(block, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    text = out.getvalue()
    assert "trigger 'complete' is not allowed in state 'generating_tasks'" in text
    assert "2 plan_ready planning -> generating_tasks 1" in text  # the decision led to this move
    assert "1 start created -> planning 0" in text
    (sid,) = maestro.Store(repo).session_ids()
    assert maestro.rebuild(maestro.Store(repo).read_events(sid)).state == "generating_tasks"
    record = namespace["record"]
    assert isinstance(record, maestro.CheckpointRecord)
    assert record.n == 1
    assert record.tag == f"maestro/{sid}/1"
    assert [(f.path, f.change, f.added_lines) for f in record.files] == [("calc.py", "added", 2)]
    assert not (repo / "calc.py").exists()  # rolled back to checkpoint 0
    assert (repo / "notes.txt").read_text() == "the user's uncommitted work\n"  # saved in the base, kept
    assert "(('core',), ('cli', 'docs'))" in text
    assert "none - none: no tests tool found (looked for pytest" in text


def test_the_quickstart_has_two_commands() -> None:
    quick = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, re.S)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] == "python -m pytest"
