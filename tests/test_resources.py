"""Resources stay bounded (issue 15, item 8): an agent's output in memory, and `maestro sessions` beside broken ones.

The ordering's part (linear in the graph) is in tests/test_ordering.py and benchmarks/ordering.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import tracemalloc
from pathlib import Path

import pytest

import maestro
from maestro.agents import AgentRequest
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.agents.process import run_process
from maestro.plan.tasks import Task
from tests.support.runs import REQUEST, assert_completed, cli, make_plan, task, write

# -- an agent's output goes to its transcript, not into memory -------------------------------------------------

MB = 1024 * 1024
TASK = Task("T1", "Add calculator core", description="Write add(a, b).")


@pytest.mark.parametrize("with_on_line", [False, True])
def test_20_mb_of_output_streams_to_the_transcript_in_bounded_memory(tmp_path: Path, with_on_line: bool) -> None:
    """A real child prints 20 MB in lines of 100 bytes: everything is in the transcript, a few MB at most in memory."""
    paths = (tmp_path / "t" / "a.out", tmp_path / "t" / "a.err")
    code = ("import sys\nw = sys.stdout.write\n"
            "for i in range(20 * 10486): w(f'{i:09d} ' + 'x' * 89 + '\\n')\n"
            "sys.stdout.flush(); sys.stderr.write('the end\\n')")  # fmt: skip
    lines = [0]

    def on_line(line: str) -> None:
        lines[0] += 1

    tracemalloc.start()
    try:
        out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=120, transcript=paths,
                          on_line=on_line if with_on_line else None)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.exit_code == 0, out.stderr
    assert paths[0].stat().st_size == 20 * 10486 * 100  # every byte reached the transcript
    with paths[0].open(encoding="utf-8") as f:
        assert f.readline() == "000000000 " + "x" * 89 + "\n"
    assert peak < 8 * MB, f"peak traced memory {peak / MB:.1f} MiB for 20 MB of output"
    assert len(out.stdout) < 2 * MB and out.left_out > 18 * MB
    assert out.stdout.startswith("000000000 ") and out.stdout.endswith(f"{20 * 10486 - 1:09d} " + "x" * 89 + "\n")
    assert (out.stderr, paths[1].read_text()) == ("the end\n", "the end\n")
    assert lines[0] == (20 * 10486 if with_on_line else 0)


def test_the_command_agent_judges_a_huge_output_by_its_last_lines(tmp_path: Path) -> None:
    """An agent printing 20 MB: the result's summary is its last line, the transcript holds all of it."""
    plan = make_plan(
        tmp_path,
        tasks=[task("a", acceptance=["test -f a.txt"])],
        agent_command=("python3 -c \"import sys; w = sys.stdout.write; [w('%09d ' % i + 'y' * 89 + '\\n') "
                       "for i in range(20 * 10486)]; print('all done'); open('a.txt', 'w').write('a')\""),
    )  # fmt: skip
    assert_completed(plan, plan.run())
    result = next(e.data for e in plan.events() if e.kind == "agent")
    assert result["status"] == "succeeded" and result["summary"].endswith("all done")
    transcript = plan.session_dir / result["transcript"]
    assert transcript.stat().st_size == 20 * 10486 * 100 + len("all done\n")


def fake_cli(folder: Path, name: str, middle: dict[str, object], late: list[dict[str, object]]) -> Path:
    """An executable that prints JSON lines as a CLI streams them: 1 MB of filler, ``middle``, 3 MB of filler, then
    ``late`` — ``middle`` is neither among the first nor among the last lines a process outcome keeps."""
    exe = folder / name
    exe.write_text(
        f"#!{sys.executable}\nimport json, sys\nw = sys.stdout.write\n"
        "filler = json.dumps({'type': 'user', 'message': {'content': 'z' * 200}}) + '\\n'\n"
        "for _ in range(1024 * 1024 // len(filler) + 1): w(filler)\n"
        f"w(json.dumps({middle!r}) + '\\n')\n"
        "for _ in range(3 * 1024 * 1024 // len(filler) + 1): w(filler)\n"
        f"for line in {late!r}: w(json.dumps(line) + '\\n')\n",
        encoding="utf-8",
    )
    exe.chmod(0o755)
    return exe


def test_claude_is_judged_by_its_whole_stream_not_only_the_ends_kept(tmp_path: Path) -> None:
    """An authentication error in the middle of a long stream still makes the result critical (a login problem)."""
    exe = fake_cli(tmp_path, "claude", {"type": "assistant", "error": "authentication_failed", "message": {}},
                   [{"type": "result", "subtype": "success", "is_error": True, "result": "stopped"}])  # fmt: skip
    request = AgentRequest(TASK, tmp_path, session_dir=tmp_path / "session", timeout_s=60)
    result = ClaudeAgent(executable=str(exe)).run(request)
    assert (result.status, result.failure_class) == ("failed", "critical")
    assert result.summary.startswith("claude is not logged in")


def test_codex_is_judged_by_its_whole_stream_not_only_the_ends_kept(tmp_path: Path) -> None:
    """A command the sandbox declined in the middle of a long stream still fails the attempt (critical)."""
    declined = {"type": "item.completed", "item": {"type": "command_execution", "status": "declined",
                                                   "command": "rm -rf build"}}  # fmt: skip
    exe = fake_cli(tmp_path, "codex", declined,
                   [{"type": "item.completed", "item": {"type": "agent_message", "text": "done"}},
                    {"type": "turn.completed", "usage": {"input_tokens": 5, "output_tokens": 7}}])  # fmt: skip
    request = AgentRequest(TASK, tmp_path, session_dir=tmp_path / "session", timeout_s=60)
    result = CodexAgent(executable=str(exe)).run(request)
    assert (result.status, result.failure_class) == ("failed", "critical")
    assert "refused 1 command(s) (rm -rf build)" in result.summary
    assert (result.input_tokens, result.output_tokens) == (5, 7)


# -- `maestro sessions` lists every session, and says which is broken ------------------------------------------


def damaged(folder: Path) -> dict[str, str]:
    """Copies of the good session ``folder``, each damaged one way; name -> the line `maestro sessions` shows."""
    sessions = folder.parent
    good = folder.name
    made: dict[str, str] = {}

    def copy(name: str) -> Path:
        shutil.copytree(folder, sessions / name, ignore=shutil.ignore_patterns("lock"))
        return sessions / name

    events = (folder / "events.jsonl").read_bytes()
    lines = events.splitlines(keepends=True)

    copy("b-garbage-line")
    (sessions / "b-garbage-line" / "events.jsonl").write_bytes(b"".join([*lines[:2], b"{not json\n", *lines[3:]]))
    made["b-garbage-line"] = "broken: events.jsonl:3: not a valid event: "

    copy("b-not-utf8")
    (sessions / "b-not-utf8" / "events.jsonl").write_bytes(b"".join([*lines[:4], b'{"v": "\xff"}\n']))
    made["b-not-utf8"] = "broken: events.jsonl:5: not UTF-8 text"

    copy("b-empty-log")
    (sessions / "b-empty-log" / "events.jsonl").write_bytes(b"")
    made["b-empty-log"] = "broken: events.jsonl: not a session log: its first event must be of kind 'session'"

    copy("b-no-log")
    (sessions / "b-no-log" / "events.jsonl").unlink()
    made["b-no-log"] = "broken: events.jsonl is missing"

    copy("b-log-is-a-folder")
    (sessions / "b-log-is-a-folder" / "events.jsonl").unlink()
    (sessions / "b-log-is-a-folder" / "events.jsonl").mkdir()
    made["b-log-is-a-folder"] = "broken: events.jsonl is not a file"

    copy("b-wrong-move")  # the log says the session moved where the chart allows no move
    rows = [json.loads(x) for x in lines]
    first_move = next(r for r in rows if r["kind"] == "transition")
    first_move["data"]["dest"] = "completed"
    (sessions / "b-wrong-move" / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    made["b-wrong-move"] = "broken: "

    state_and_request = f"completed        {REQUEST}"
    copy("c-torn")
    with (sessions / "c-torn" / "events.jsonl").open("ab") as f:
        f.write(b'{"v":1,"seq":')
    made["c-torn"] = f"{state_and_request}  [broken: events.jsonl ends in a torn line of 13 bytes (a write cut short)]"

    copy("c-metadata-not-json")
    (sessions / "c-metadata-not-json" / "metadata.json").write_text('{"session_id": ')
    made["c-metadata-not-json"] = f"{state_and_request}  [broken: metadata.json: not JSON: "

    copy("c-metadata-unreadable")
    (sessions / "c-metadata-unreadable" / "metadata.json").unlink()
    (sessions / "c-metadata-unreadable" / "metadata.json").mkdir()
    made["c-metadata-unreadable"] = f"{state_and_request}  [broken: metadata.json: cannot read: Is a directory]"

    copy("c-metadata-missing")
    (sessions / "c-metadata-missing" / "metadata.json").unlink()
    made["c-metadata-missing"] = f"{state_and_request}  [broken: metadata.json is missing]"

    (sessions / ".not-a-session").mkdir()  # not a session id: not listed
    (sessions / "notes.txt").write_text("a file, not a session folder")
    made[good] = state_and_request
    return made


def test_sessions_lists_the_good_one_and_marks_each_broken_one(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, tasks=[task("a")], script={"a": [{"actions": [write("a.txt", "a\n")]}]})
    assert_completed(plan, plan.run())
    good = plan.sid
    expected = damaged(plan.session_dir)

    out = cli("sessions", cwd=plan.repo)
    assert out.returncode == 0, out.stderr
    shown = out.stdout.splitlines()
    assert [line.split("  ", 1)[0] for line in shown] == sorted(expected)  # one line a session, in id order
    for line in shown:
        sid, rest = line.split("  ", 1)
        assert rest.startswith(expected[sid]), (sid, rest)
        assert ("broken: " in rest) == (sid != good)
    assert "\n" not in "".join(shown)
    wrong_move = next(line for line in shown if line.startswith("b-wrong-move  "))
    assert "completed" in wrong_move.split("broken: ", 1)[1]  # the reason names the move the chart refuses

    rows = [json.loads(x) for x in cli("sessions", "--json", cwd=plan.repo).stdout.splitlines()]
    by_id = {r["session"]: r for r in rows}
    assert set(by_id) == set(expected)
    assert by_id[good] == {"session": good, "state": "completed", "request": REQUEST,
                           "updated_at": by_id[good]["updated_at"], "broken": None}  # fmt: skip
    assert by_id["b-no-log"] == {"session": "b-no-log", "state": None, "request": None, "updated_at": None,
                                 "broken": "events.jsonl is missing"}  # fmt: skip
    assert by_id["c-torn"]["state"] == "completed" and by_id["c-torn"]["broken"].startswith("events.jsonl ends in")

    # the good session still works as before beside them
    status = cli("status", good, cwd=plan.repo)
    assert status.returncode == 0 and f"session {good}: completed" in status.stdout


def test_sessions_of_a_repository_without_any_is_empty_and_exit_0(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    plan = make_plan(tmp_path, tasks=[task("a")], script={})
    assert plan.repo == repo
    out = cli("sessions", cwd=repo)
    assert (out.returncode, out.stdout) == (0, "")
    assert maestro.Store(repo).session_ids() == []
