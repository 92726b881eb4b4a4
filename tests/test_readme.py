"""The README's examples run."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import maestro

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_library_examples_run(repo: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) == 4, "the README has its four python examples"
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(repo)
    namespace: dict[str, object] = {}
    try:
        with contextlib.redirect_stdout(out):
            # in order, sharing names, as a reader would run them
            exec(compile(blocks[0], "README.md", "exec"), namespace)  # a whole session, with a command agent
            ran = out.getvalue()
            (repo / "notes.txt").write_text("the user's uncommitted work\n")
            for block in blocks[1:]:
                exec(compile(block, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
        plan = namespace.get("plan")
        if isinstance(plan, Path):
            shutil.rmtree(plan, ignore_errors=True)

    # the whole session: completed, the agent's file committed on the session's branch, the report written
    outcome = namespace["outcome"]
    assert isinstance(outcome, maestro.RunOutcome)
    assert (outcome.state, outcome.exit_code) == ("completed", 0)
    assert outcome.report is not None and outcome.report.is_file()
    assert ran == f"completed {outcome.report}\n"
    run = maestro.rebuild(maestro.Store(repo).read_events(outcome.session_id))
    assert run.state == "completed"
    assert {t: s.state for t, s in run.tasks.items()} == {"hello": "succeeded"}
    assert [g.name for g in run.gates if g.status == "passed"] == ["traceability"]
    assert _committed(repo, f"maestro/{outcome.session_id}", "hello.txt") == b"hello from hello\n"

    text = out.getvalue()
    assert "trigger 'complete' is not allowed in state 'generating_tasks'" in text
    assert "2 plan_ready planning -> generating_tasks 1" in text  # the decision led to this move
    assert "1 start created -> planning 0" in text
    session = namespace["session"]
    assert isinstance(session, maestro.Session)
    sid = session.id
    assert sorted(maestro.Store(repo).session_ids()) == sorted([outcome.session_id, sid])
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


def _committed(repo: Path, branch: str, path: str) -> bytes:
    """The content of ``path`` in the last commit of ``branch``."""
    from dulwich.object_store import tree_lookup_path
    from dulwich.repo import Repo

    with Repo(str(repo)) as r:
        tree = r[r.refs[f"refs/heads/{branch}".encode()]].tree
        _, sha = tree_lookup_path(r.__getitem__, tree, path.encode())
        return r[sha].data


def test_the_quickstart_has_two_commands() -> None:
    quick = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, re.S)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[1] == "python -m pytest"
