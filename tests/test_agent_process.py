"""The process runner, the prompt, the parsers on real captures, and the command agent — with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maestro.agents import AgentError, AgentRequest, PlanRequest, Skill, Subagent, task_prompt, validate_plan
from maestro.agents._common import classify_text
from maestro.agents.base import plan_prompt
from maestro.agents.claude import parse_stream
from maestro.agents.codex import parse_events
from maestro.agents.command import CommandAgent
from maestro.agents.process import _kill_group, run_process
from maestro.plan.tasks import Task
from tests.support.git import git_init

CAPTURES = Path(__file__).parent / "fakes" / "captures"
SEED = Path(__file__).parent / "data" / "plans" / "prd-maestro-orchestrator-v1.md"
TASK = Task("T1", "Add calculator core", description="Write add(a, b).", requirements=("FR-1",),
            acceptance=("python -m pytest -q tests/test_calc.py",), files=("src/calc.py",))  # fmt: skip


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- the runner -------------------------------------------------------------------------------------------------


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pidfile}; echo started; sleep 300"
    started = time.monotonic()
    out = run_process(["sh", "-c", script], cwd=tmp_path, timeout_s=1.0, grace_s=0.5)
    assert out.timed_out
    assert out.stdout == "started\n"
    assert time.monotonic() - started < 30
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), "the grandchild outlived the timeout"


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up'); time.sleep(300)"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=1.0, grace_s=0.3)
    assert out.timed_out
    assert out.exit_code == -signal.SIGKILL


def test_stdin_is_empty_so_a_reader_does_not_wait(tmp_path: Path) -> None:
    out = run_process([sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"], cwd=tmp_path, timeout_s=30)
    assert (out.exit_code, out.stdout, out.timed_out) == (0, "''\n", False)


def test_transcripts_are_written_as_lines_arrive(tmp_path: Path) -> None:
    paths = (tmp_path / "t" / "a.out", tmp_path / "t" / "a.err")
    seen: list[str] = []
    code = "import sys; print('one'); print('oops', file=sys.stderr); print('two')"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, transcript=paths, on_line=seen.append)
    assert out.exit_code == 0
    assert paths[0].read_text() == "one\ntwo\n" == out.stdout
    assert paths[1].read_text() == "oops\n"
    assert seen == ["one\n", "two\n"]


def test_a_killed_run_keeps_what_it_printed(tmp_path: Path) -> None:
    paths = (tmp_path / "a.out", tmp_path / "a.err")
    code = "import time; print('partial', flush=True); time.sleep(300)"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=1.0, transcript=paths, grace_s=0.3)
    assert out.timed_out
    assert paths[0].read_text() == "partial\n"


def test_a_missing_executable_is_reported_not_raised(tmp_path: Path) -> None:
    out = run_process(["no-such-agent-cli", "-p", "x"], cwd=tmp_path, timeout_s=5)
    assert out.missing and out.exit_code is None
    assert out.error == "no-such-agent-cli: executable not found on PATH"


# -- prompts and plans ----------------------------------------------------------------------------------------------


def test_the_prompt_starts_with_the_task_line_and_carries_everything(tmp_path: Path) -> None:
    req = AgentRequest(TASK, tmp_path, attempt=2, subagent=Subagent("backend-architect"),
                       skills=(Skill("api-design"),), approach="write the tests first",
                       feedback="E   assert add(1, 2) == 3\n" * 1000)  # fmt: skip
    prompt = task_prompt(req)
    assert prompt.split("\n", 1)[0] == "Task T1: Add calculator core"
    for expected in ("Write add(a, b).", "FR-1", "src/calc.py", "    python -m pytest -q tests/test_calc.py",
                     "backend-architect", "api-design", "attempt 2", "write the tests first"):  # fmt: skip
        assert expected in prompt, expected
    assert len(prompt) < 6000  # only the tail of a long failure output


def test_a_valid_plan_is_parsed_and_checked_against_its_prd() -> None:
    tasks = "version: 1\ntasks:\n  - id: T1\n    title: Core\n    requirements: [FR-1]\n"
    plan = validate_plan(json.dumps({"prd_markdown": SEED.read_text(), "tasks_yaml": tasks}))
    assert len(plan.prd.requirements) == 15 and plan.graph.ids == ("T1",)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("not json", "the planner's answer: not JSON"),
        ({"prd_markdown": "x"}, "tasks_yaml: missing or empty"),
        ({"prd_markdown": "# no requirements\n", "tasks_yaml": "version: 1\n"}, "prd_markdown: no requirements"),
        ({"prd_markdown": SEED.read_text(), "tasks_yaml": "version: 1\ntasks:\n  - id: T1\n    title: x\n"
          "    requirements: [FR-99]\n"}, "tasks_yaml:5: task T1: requirements: requirement 'FR-99' is not in the PRD"),
    ],
)  # fmt: skip
def test_an_invalid_plan_names_the_field(answer: object, message: str) -> None:
    from maestro import PlanError

    with pytest.raises(PlanError, match=re_escape(message)):
        validate_plan(answer)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_plan_request_and_agent_request_take_strings_as_paths(tmp_path: Path) -> None:
    assert PlanRequest("x", str(tmp_path)).workdir == tmp_path
    assert AgentRequest(TASK, str(tmp_path), session_dir=str(tmp_path)).session_dir == tmp_path


# -- the parsers on the real captures -------------------------------------------------------------------------------


def test_claude_parser_on_the_real_not_logged_in_stream() -> None:
    summary = parse_stream((CAPTURES / "claude-2.1.328-stream-json-not-logged-in.jsonl").read_text())
    assert summary.result is not None
    assert (summary.result["subtype"], summary.result["is_error"]) == ("success", True)
    assert summary.api_errors == ("authentication_failed",)
    assert summary.session_id == summary.result["session_id"]
    assert summary.skipped == 0


def test_claude_parser_on_the_real_json_form() -> None:
    summary = parse_stream((CAPTURES / "claude-2.1.328-json-schema-not-logged-in.json").read_text())
    assert summary.result is not None and summary.result["is_error"] is True


def test_claude_parser_takes_the_last_result_of_the_array_form() -> None:
    array = json.dumps([{"type": "system", "subtype": "init", "session_id": "s"},
                        {"type": "result", "subtype": "success", "is_error": False, "result": "first"},
                        {"type": "result", "subtype": "success", "is_error": False, "result": "last",
                         "session_id": "s"}])  # fmt: skip
    summary = parse_stream(array)
    assert summary.result is not None and summary.result["result"] == "last"


def test_codex_parser_on_the_real_offline_stream() -> None:
    ev = parse_events((CAPTURES / "codex-0.169.0-exec-json-offline.jsonl").read_text())
    assert ev.thread_id == "01a215e4-c79f-7803-a1ea-fb5ad52960c2"
    assert not ev.completed and ev.failed is None
    assert ev.errors and ev.errors[0].startswith("Reconnecting... 2/5")


# -- the command agent ----------------------------------------------------------------------------------------------


def test_the_command_agent_fills_in_and_quotes_the_template(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "my repo")
    agent = CommandAgent("printf '%s|%s|%s|%s\\n' {task_id} {attempt} {title} \"$(head -1 {prompt_file})\" > out.txt")
    result = agent.run(AgentRequest(Task("T-1", "it's a title; rm -rf /"), repo, attempt=3, session_dir=tmp_path / "s"))
    assert (result.status, result.failure_class) == ("succeeded", None), result
    assert (repo / "out.txt").read_text() == "T-1|3|it's a title; rm -rf /|Task T-1: it's a title; rm -rf /\n"
    assert (tmp_path / "s" / "agents" / "T-1.3.command.prompt.md").exists()


@pytest.mark.parametrize(
    ("template", "status", "cls"),
    [("exit 3", "failed", "implementation"), ("no-such-command-xyz", "failed", "critical"),
     ("sleep 30", "timeout", "transient")],
)  # fmt: skip
def test_the_command_agent_classes(tmp_path: Path, template: str, status: str, cls: str) -> None:
    result = CommandAgent(template).run(AgentRequest(TASK, tmp_path, timeout_s=1.0))
    assert (result.status, result.failure_class) == (status, cls), result


@pytest.mark.parametrize(
    ("template", "message"),
    [("run {task}", "unknown placeholder {task}"), ("run {", "Single '{' encountered"), ("  ", "template is needed")],
)
def test_a_bad_template_is_refused_when_the_agent_is_made(template: str, message: str) -> None:
    with pytest.raises(AgentError, match=re_escape(message)):
        CommandAgent(template)


# -- what the review found (round 6) --------------------------------------------------------------------------------


def test_a_nul_character_in_an_argument_is_an_error_outcome_not_an_exception(tmp_path: Path) -> None:
    out = run_process(["sh", "-c", "echo hi", "a\0b"], cwd=tmp_path, timeout_s=5)
    assert (out.exit_code, out.missing, out.timed_out) == (None, False, False)
    assert "embedded null byte" in out.error and out.stderr == out.error


def test_the_prompts_write_a_nul_character_visibly(tmp_path: Path) -> None:
    req = AgentRequest(Task("T1", "a\0b", description="x\0y"), tmp_path, attempt=2, feedback="b'\x00\x01'")
    prompt = task_prompt(req)
    assert "\0" not in prompt
    assert prompt.startswith("Task T1: a\\0b\n") and "x\\0y" in prompt and "b'\\0\x01'" in prompt
    assert "\0" not in plan_prompt(PlanRequest("add\0 a calculator", tmp_path, context="ctx\0"))


def test_a_command_line_too_long_is_not_a_missing_executable(tmp_path: Path) -> None:
    out = run_process(["sh", "-c", "true", "x" * 200_000], cwd=tmp_path, timeout_s=5)
    assert (out.exit_code, out.missing) == (None, False)
    assert "Argument list too long" in out.error and "longest argument 200000" in out.error


def test_a_missing_working_directory_says_so(tmp_path: Path) -> None:
    out = run_process(["sh", "-c", "true"], cwd=tmp_path / "gone", timeout_s=5)
    assert (out.exit_code, out.missing) == (None, False)
    assert out.error == f"the working directory {tmp_path / 'gone'} does not exist"


def test_a_grandchild_that_left_the_group_does_not_hold_the_return(tmp_path: Path) -> None:
    """A grandchild in its own session keeps stdout open: the run still returns soon after the child exits."""
    pidfile = tmp_path / "pid"
    code = (f"import subprocess; p = subprocess.Popen(['sleep', '60'], start_new_session=True); "
            f"open({str(pidfile)!r}, 'w').write(str(p.pid)); print('parent-done', flush=True)")  # fmt: skip
    started = time.monotonic()
    try:
        out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=3, grace_s=0.5)
        took = time.monotonic() - started
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert (out.exit_code, out.stdout) == (0, "parent-done\n")
    assert took < 3 + 0.5 + 5, took


def test_stdin_is_written_as_the_pipe_takes_it_so_the_timeout_holds(tmp_path: Path) -> None:
    started = time.monotonic()
    out = run_process(["sleep", "30"], cwd=tmp_path, timeout_s=1.0, grace_s=0.3, stdin_text="x" * 1_000_000)
    assert out.timed_out
    assert time.monotonic() - started < 10


def test_a_long_stdin_reaches_a_child_that_reads_it(tmp_path: Path) -> None:
    code = "import sys; print(len(sys.stdin.read()))"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, stdin_text="é" * 300_000)
    assert (out.exit_code, out.stdout) == (0, "300000\n")


def test_a_second_ctrl_c_during_the_grace_period_still_sends_sigkill(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"

        class Interrupted:  # the first wait (the grace period) is cut short by a second Ctrl-C
            pid = proc.pid
            calls = 0

            def wait(self, timeout: float | None = None) -> int:
                self.calls += 1
                if self.calls == 1:
                    raise KeyboardInterrupt
                return proc.wait(timeout)

        with pytest.raises(KeyboardInterrupt):
            _kill_group(Interrupted(), 30.0)  # type: ignore[arg-type]
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("litellm.RateLimitError: OpenAIException - Rate limit reached for gpt-4o in organization org-x on tokens "
         "per min (TPM): Limit 30000, Used 29950, Requested 401. Please try again in 802ms.", "transient"),
        ("Requested 403 tokens, 402 left", None),
        ("exceeded retry limit, last status: 429 Too Many Requests", "transient"),
        ("API Error: 529 overloaded", "transient"),
        ("unexpected status 401 Unauthorized: token expired", "critical"),
        ("HTTP 403", "critical"),
        ('{"status": 401}', "critical"),
        ("api_error_status: 402", "critical"),
        ("Error code: 429 - You exceeded your current quota, please check your plan and billing details", "critical"),
        ("Not logged in · Please run /login", "critical"),
        ("HTTP 502 Bad Gateway", "transient"),
        ("failed at line 500 of the test", None),
    ],
)  # fmt: skip
def test_classify_text_reads_statuses_as_statuses_not_any_number(text: str, cls: str | None) -> None:
    assert classify_text(text) == cls


@pytest.mark.parametrize(
    ("template", "message"),
    [("run {task_id!r}", "{task_id!r} in 'run {task_id!r}': a placeholder takes no conversion or format spec"),
     ("run {attempt:d}", "{attempt:d} in 'run {attempt:d}': a placeholder takes no conversion"),
     ("run {title:>99999999999999999999}", "a placeholder takes no conversion or format spec")],
)  # fmt: skip
def test_a_template_with_a_conversion_or_a_format_spec_is_refused(template: str, message: str) -> None:
    with pytest.raises(AgentError, match=re_escape(message)) as info:
        CommandAgent(template)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("budget", [0.0, -1.0, 0.00004, float("nan")])
def test_the_command_agent_does_not_run_without_budget(tmp_path: Path, budget: float) -> None:
    result = CommandAgent("touch ran").run(AgentRequest(TASK, tmp_path, budget_usd=budget))
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert "no budget left" in result.summary and not (tmp_path / "ran").exists()


def test_the_command_agent_in_a_missing_folder_is_critical_and_says_so(tmp_path: Path) -> None:
    result = CommandAgent("true").run(AgentRequest(TASK, tmp_path / "gone"))
    assert (result.status, result.failure_class, result.transcript) == ("failed", "critical", None)
    assert "working directory" in result.summary and "does not exist" in result.summary
    assert "PATH" not in result.summary


# -- long output: the outcome keeps its ends, the transcript everything -----------------------------------------


def test_a_long_output_keeps_its_first_and_last_lines_and_says_what_was_left_out(tmp_path: Path) -> None:
    paths = (tmp_path / "a.out", tmp_path / "a.err")
    seen: list[str] = []
    code = "for i in range(1000): print(f'line {i}')"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, transcript=paths,
                      on_line=seen.append, keep=(30, 40))  # fmt: skip
    whole = "".join(f"line {i}\n" for i in range(1000))
    assert paths[0].read_text() == whole
    assert seen == whole.splitlines(keepends=True)
    head, gap, tail = out.stdout.partition("[maestro: ")
    assert head == "line 0\nline 1\nline 2\nline 3\n"  # the whole lines of the first 30 characters
    assert tail.endswith("]\nline 996\nline 997\nline 998\nline 999\n")  # those of the last 40
    left_out = len(whole) - len(head) - len("line 996\nline 997\nline 998\nline 999\n")
    assert gap + tail.split("]\n")[0] == f"[maestro: {left_out} characters (992 lines) of output left out here; " \
                                         "the transcript has them all"  # fmt: skip
    assert out.left_out == left_out


def test_an_output_that_fits_is_kept_whole_and_nothing_is_left_out(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 69 + '\\n'); sys.stderr.write('e' * 70)"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, keep=(30, 40))
    assert (out.stdout, out.stderr, out.left_out) == ("x" * 69 + "\n", "e" * 70, 0)


def test_one_long_line_keeps_a_piece_of_each_end(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('a' * 500 + '\\n' + 'b' * 500)"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, keep=(30, 40))
    assert out.stdout == "a" * 30 + "\n[maestro: 931 characters (1 line) of output left out here]\n" + "b" * 40
    assert out.left_out == 931


def test_stderr_is_kept_the_same_way(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(500): print(f'err {i}', file=sys.stderr)"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, keep=(20, 20))
    assert out.stderr.startswith("err 0\nerr 1\nerr 2\n[maestro: ")
    assert out.stderr.endswith(" of output left out here]\nerr 498\nerr 499\n")
    assert out.left_out > 0 and out.stdout == ""


def test_lines_are_read_as_before_crlf_and_cr_are_line_ends_and_bad_bytes_are_replaced(tmp_path: Path) -> None:
    paths = (tmp_path / "a.out", tmp_path / "a.err")
    seen: list[str] = []
    code = ("import sys, time; w = sys.stdout.buffer.write; w(b'a\\r'); sys.stdout.flush(); time.sleep(0.2); "
            "w(b'\\nb\\rc\\xff\\xc3'); sys.stdout.flush(); time.sleep(0.2); w(b'\\xa9\\nlast')")  # fmt: skip
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, transcript=paths, on_line=seen.append)
    # "\r" then "\n" in the next read is one line end; a character split across two reads is decoded whole
    assert seen == ["a\n", "b\n", "c\ufffdé\n", "last"]
    assert out.stdout == paths[0].read_text() == "a\nb\nc\ufffdé\nlast"


def test_a_line_longer_than_line_max_is_cut_for_on_line_but_whole_in_the_transcript(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("maestro.agents.process.LINE_MAX", 1000)
    paths = (tmp_path / "a.out", tmp_path / "a.err")
    seen: list[str] = []
    code = "import sys; sys.stdout.write('{' + 'x' * 300000 + '}\\nafter\\n' + 'y' * 5000)"
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=30, transcript=paths, on_line=seen.append)
    assert out.exit_code == 0
    assert seen == ["{" + "x" * 999 + "\n", "after\n", "y" * 1000 + "\n"]
    assert paths[0].read_text() == "{" + "x" * 300000 + "}\nafter\n" + "y" * 5000


def test_a_huge_output_is_in_the_transcript_byte_for_byte(tmp_path: Path) -> None:
    paths = (tmp_path / "a.out", tmp_path / "a.err")
    count = [0]

    def on_line(line: str) -> None:
        count[0] += 1

    code = ("import sys\nw = sys.stdout.write\n"
            "for i in range(200000): w(f'{i:08d} ' + 'z' * (i % 97) + '\\n')")  # fmt: skip
    out = run_process([sys.executable, "-c", code], cwd=tmp_path, timeout_s=120, transcript=paths, on_line=on_line)
    expected = "".join(f"{i:08d} " + "z" * (i % 97) + "\n" for i in range(200000))
    assert paths[0].read_text() == expected
    assert count[0] == 200000
    assert out.stdout.startswith("00000000 \n00000001 z\n")
    assert out.stdout.endswith(expected[-1000:])
    kept = len(out.stdout) - len(out.stdout.split("[maestro: ")[1].split("]\n")[0]) - len("[maestro: ]\n")
    assert out.left_out == len(expected) - kept
