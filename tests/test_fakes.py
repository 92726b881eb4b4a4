"""The fake agent CLIs (tests/fakes) against the real captures and the documented formats.

Each fake is run as a subprocess, the way an adapter runs it.  Where a real capture
exists (tests/fakes/captures, recorded with Claude Code 2.1.328, codex-cli 0.169.0 and
aider 0.86.2), the fake's output must have the same shape: the same keys, the same values
where they do not depend on the run, the same messages and exit codes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import maestro
from tests.support.fakes import FAKES_DIR, fake_env, grandchild_pids, invocations, pid_alive

CAPTURES = FAKES_DIR / "captures"
STREAM = ("-p", "Task T1: say hi", "--output-format", "stream-json", "--verbose")
EDITS = ("--permission-mode", "acceptEdits")
CODEX = ("exec", "--json", "--sandbox", "workspace-write")
PLAN_SCHEMA = {
    "type": "object",
    "properties": {"prd_markdown": {"type": "string"}, "tasks_yaml": {"type": "string"}},
    "required": ["prd_markdown", "tasks_yaml"],
    "additionalProperties": False,
}
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")


def run(
    prog: str,
    *args: str,
    cwd: Path,
    scenario: str = "success",
    stdin: str = "",
    log: Path | None = None,
    timeout: float = 30,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run a fake as an adapter would (its own stdin, here a closed pipe holding ``stdin``)."""
    return subprocess.run(
        [str(FAKES_DIR / prog), *args],
        cwd=cwd,
        env=fake_env(scenario, log=log, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def jsonl(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def capture_lines(name: str) -> list[dict[str, Any]]:
    return jsonl((CAPTURES / name).read_text(encoding="utf-8"))


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "fake.log"


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    """No user or system git configuration: aider's identity check behaves as on a fresh machine."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "FAKE_"))}
    return {**env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}


# --- claude: arguments -------------------------------------------------------------------------


def test_claude_version(tmp_path: Path) -> None:
    done = run("claude", "-v", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "2.1.328 (Claude Code)\n")


def test_claude_stream_json_without_verbose_is_refused_like_the_capture(tmp_path: Path) -> None:
    expected = (CAPTURES / "claude-2.1.328-stream-json-without-verbose.txt").read_text().splitlines()[0]
    done = run("claude", "-p", "x", "--output-format", "stream-json", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", expected + "\n")


def test_claude_unknown_option_is_refused_like_the_capture(tmp_path: Path) -> None:
    done = run("claude", *STREAM, "--bogus-flag", cwd=tmp_path)
    expected = (CAPTURES / "claude-2.1.328-unknown-option.txt").read_text()
    assert (done.returncode, done.stdout, done.stderr) == (1, "", expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--output-format", "yaml"),
            "error: option '--output-format <format>' argument 'yaml' is invalid. "
            "Allowed choices are text, json, stream-json.",
        ),
        (
            ("--permission-mode", "bogus"),
            "error: option '--permission-mode <mode>' argument 'bogus' is invalid. "
            "Allowed choices are acceptEdits, auto, bypassPermissions, manual, dontAsk, plan.",
        ),
        (("--max-turns", "abc"), "error: option '--max-turns <turns>' argument 'abc' is invalid. must be a number"),
        (
            ("--max-budget-usd", "x"),
            "error: option '--max-budget-usd <amount>' argument 'x' is invalid. "
            "--max-budget-usd must be a number greater than 0",
        ),
        (("--model",), "error: option '--model <model>' argument missing"),
        (("--session-id", "nope"), "Error: Invalid session ID. Must be a valid UUID."),
        (("--json-schema", "[1]"), "Error: --json-schema must be a JSON object"),
        (
            ("--agents", '{"r": {"description": "d"}}'),
            "Error: Invalid --agents configuration:\nr.prompt: Invalid input: expected string, received undefined",
        ),
    ],
)
def test_claude_refuses_bad_values_with_the_real_messages(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = run("claude", "-p", "hi", *args, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", message + "\n")


def test_claude_accepts_every_flag_of_the_capture_and_prints_one_object(tmp_path: Path) -> None:
    real = json.loads((CAPTURES / "claude-2.1.328-json-schema-not-logged-in.json").read_text())
    agents = '{"reviewer": {"description": "Reviews code", "prompt": "You review code."}}'
    args = ["-p", "plan", "--output-format", "json", "--json-schema", json.dumps(PLAN_SCHEMA), *EDITS]
    args += ["--allowedTools", "Read,Edit,Write,Bash", "--agents", agents, "--max-turns", "5", "--max-budget-usd", "1"]
    done = run("claude", *args, cwd=tmp_path, scenario="auth")
    assert done.returncode == 1
    assert done.stdout.startswith("{") and done.stdout.count("\n") == 1
    result = json.loads(done.stdout)
    assert list(result) == list(real)
    for key in ("type", "subtype", "is_error", "result", "terminal_reason", "api_error_status", "total_cost_usd"):
        assert result[key] == real[key], key


def test_claude_variadic_option_swallows_a_following_prompt(tmp_path: Path) -> None:
    done = run(
        "claude", "-p", "--allowedTools", "Read", "Edit", "do this thing", "--output-format", "json", cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        '"do this thing" was read as a value of --allowedTools, not as a prompt · '
        "put a prompt before --allowedTools or after --",
        "Error: Input must be provided either through stdin or as a prompt argument when using --print",
    ]
    fixed = run(
        "claude", "-p", "--allowedTools", "Read", "Edit", "--output-format", "json", "--", "do it", cwd=tmp_path
    )
    assert fixed.returncode == 0


def test_claude_reads_the_prompt_from_stdin_and_logs_the_command(tmp_path: Path, log: Path) -> None:
    done = run("claude", "-p", "--output-format", "json", cwd=tmp_path, stdin="Task T1: from stdin", log=log)
    assert done.returncode == 0
    [entry] = invocations(log)
    assert entry["prog"] == "claude"
    assert entry["argv"] == ["-p", "--output-format", "json"]
    assert entry["cwd"] == str(tmp_path)
    assert entry["stdin"] == "Task T1: from stdin"
    assert entry["scenario"] == "success"


def test_claude_refuses_bypass_permissions_as_root_unless_sandboxed(tmp_path: Path) -> None:
    done = run("claude", "-p", "hi", "--permission-mode", "bypassPermissions", cwd=tmp_path)
    if os.geteuid() == 0:
        assert done.returncode == 1
        assert "cannot be used with root/sudo privileges" in done.stderr
        assert run("claude", "-p", "hi", "--dangerously-skip-permissions", cwd=tmp_path, IS_SANDBOX="1").returncode == 0
    else:
        assert done.returncode == 0


# --- claude: scenarios -------------------------------------------------------------------------


def test_claude_auth_is_the_capture(tmp_path: Path) -> None:
    real = capture_lines("claude-2.1.328-stream-json-not-logged-in.jsonl")
    done = run("claude", *STREAM, cwd=tmp_path, scenario="auth")
    assert done.returncode == 1
    fake = jsonl(done.stdout)
    assert [line["type"] for line in fake] == [line["type"] for line in real] == ["system", "assistant", "result"]
    for mine, theirs in zip(fake, real, strict=True):
        assert list(mine) == list(theirs)
    assert list(fake[1]["message"]) == list(real[1]["message"])
    assert fake[0]["cwd"] == str(tmp_path)
    for key in ("error", "is_api_error_message"):
        assert fake[1][key] == real[1][key]
    assert fake[1]["message"]["model"] == "<synthetic>"
    assert fake[1]["message"]["content"] == real[1]["message"]["content"]
    for key in ("subtype", "is_error", "result", "terminal_reason", "api_error_status", "total_cost_usd", "num_turns"):
        assert fake[2][key] == real[2][key], key
    assert fake[2]["usage"] == real[2]["usage"]
    assert is_uuid(fake[0]["session_id"])
    assert fake[0]["session_id"] == fake[1]["session_id"] == fake[2]["session_id"]


def test_claude_success_stream(tmp_path: Path) -> None:
    done = run("claude", *STREAM, *EDITS, cwd=tmp_path, FAKE_WRITE="src/app.py", FAKE_CONTENT="x = 1\n")
    assert done.returncode == 0
    lines = jsonl(done.stdout)
    assert [(m["type"], m.get("subtype")) for m in lines] == [
        ("system", "init"),
        ("assistant", None),
        ("user", None),
        ("assistant", None),
        ("user", None),
        ("assistant", None),
        ("result", "success"),
    ]
    init, result = lines[0], lines[-1]
    real_init = capture_lines("claude-2.1.328-stream-json-not-logged-in.jsonl")[0]
    assert list(init) == list(real_init)
    assert init["permissionMode"] == "acceptEdits"
    assert is_uuid(init["session_id"])
    assert {m["session_id"] for m in lines} == {init["session_id"]}
    tool_uses = [
        b for m in lines if m["type"] == "assistant" for b in m["message"]["content"] if b["type"] == "tool_use"
    ]
    assert [b["name"] for b in tool_uses] == ["Bash", "Write"]
    for m in lines[1:-1]:
        assert isinstance(m["message"]["content"], list)
        assert m["parent_tool_use_id"] is None
        if m["type"] == "assistant":
            assert m["message"]["model"] == init["model"]
    assert result["is_error"] is False
    assert result["result"] == lines[-2]["message"]["content"][0]["text"]
    assert result["total_cost_usd"] > 0
    assert result["num_turns"] == 3
    assert result["permission_denials"] == []
    assert {"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"} <= set(
        result["usage"]
    )
    assert (tmp_path / "src/app.py").read_text() == "x = 1\n"


def test_claude_partial_messages(tmp_path: Path) -> None:
    done = run("claude", *STREAM, "--include-partial-messages", cwd=tmp_path)
    kinds = [(m["type"], m.get("subtype")) for m in jsonl(done.stdout)]
    assert kinds[:2] == [("system", "init"), ("system", "status")]
    assert ("stream_event", None) in kinds
    assert kinds[-1] == ("result", "success")


def test_claude_waits_3_seconds_for_an_open_stdin_then_goes_on(tmp_path: Path) -> None:
    with subprocess.Popen(
        [str(FAKES_DIR / "claude"), "-p", "hi", "--output-format", "json"],
        cwd=tmp_path,
        env=fake_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        started = time.monotonic()
        proc.wait(timeout=20)  # stdin stays open: nothing is written to it, it is never closed
        elapsed = time.monotonic() - started
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
    assert 2.5 < elapsed < 15
    assert proc.returncode == 0
    assert json.loads(out)["subtype"] == "success"
    assert err.startswith("Warning: no stdin data received in 3s, proceeding without it.")


@pytest.mark.parametrize(
    ("flags", "written"),
    [
        ((), False),
        (("--permission-mode", "plan"), False),
        (("--allowedTools", "Read,Edit"), True),
        (("--allowed-tools", "Bash(git *) Write"), True),
        (("--permission-mode", "acceptEdits", "--disallowedTools", "Write"), False),
    ],
)
def test_claude_writes_only_with_permission(tmp_path: Path, flags: tuple[str, ...], written: bool) -> None:
    done = run("claude", *STREAM, *flags, "--", "go", cwd=tmp_path, FAKE_WRITE="a.txt")
    assert done.returncode == 0
    result = jsonl(done.stdout)[-1]
    assert (result["subtype"], result["is_error"]) == ("success", False)
    assert (tmp_path / "a.txt").exists() is written
    assert [d["tool_name"] for d in result["permission_denials"]] == ([] if written else ["Write"])


def test_claude_json_and_text_formats(tmp_path: Path) -> None:
    single = run("claude", "-p", "hi", "--output-format", "json", cwd=tmp_path)
    assert json.loads(single.stdout)["type"] == "result"
    array = run("claude", "-p", "hi", "--output-format", "json", "--verbose", cwd=tmp_path)
    messages = json.loads(array.stdout)
    assert array.stdout.startswith("[") and array.stdout.count("\n") == 1
    assert [messages[0]["subtype"], messages[-1]["type"]] == ["init", "result"]
    text = run("claude", "-p", "hi", cwd=tmp_path)
    assert (text.returncode, text.stdout) == (0, "Done.\n")
    failed = run("claude", "-p", "hi", cwd=tmp_path, scenario="auth")
    assert (failed.returncode, failed.stdout) == (1, "Not logged in · Please run /login\n")


@pytest.mark.parametrize(
    ("scenario", "subtype", "terminal_reason"),
    [
        ("max_turns", "error_max_turns", "max_turns"),
        ("budget", "error_max_budget_usd", "budget_exhausted"),
        ("rate_limit", "success", "api_error"),
    ],
)
def test_claude_failures_print_a_result_then_exit_1(
    tmp_path: Path, scenario: str, subtype: str, terminal_reason: str
) -> None:
    done = run("claude", *STREAM, "--max-turns", "2", "--max-budget-usd", "0.5", cwd=tmp_path, scenario=scenario)
    assert done.returncode == 1
    lines = jsonl(done.stdout)
    result = lines[-1]
    assert (result["type"], result["subtype"], result["is_error"]) == ("result", subtype, True)
    assert result["terminal_reason"] == terminal_reason
    assert result["session_id"] == lines[0]["session_id"]
    if scenario == "max_turns":
        assert result["errors"] == ["Reached maximum number of turns (2)"]
        assert "result" not in result
    if scenario == "budget":
        assert result["errors"] == ["Reached maximum budget ($0.5)"]
        assert result["total_cost_usd"] > 0.5
    if scenario == "rate_limit":
        assert result["api_error_status"] == 429
        assert result["result"].startswith("API Error: 429 ")
        assert "rate_limit_error" in result["result"]
        assert lines[-2]["error"] == "rate_limit"
        assert [m["subtype"] for m in lines if m["type"] == "system"] == ["init", "api_retry", "api_retry"]


def test_claude_permission_denied(tmp_path: Path) -> None:
    done = run("claude", *STREAM, *EDITS, cwd=tmp_path, scenario="permission_denied", FAKE_WRITE="src/app.py")
    assert done.returncode == 0
    lines = jsonl(done.stdout)
    result = lines[-1]
    assert (result["subtype"], result["is_error"]) == ("success", False)
    [denial] = result["permission_denials"]
    assert denial["tool_name"] == "Write"
    assert denial["tool_input"]["file_path"] == str(tmp_path / "src/app.py")
    assert denial["tool_use_id"].startswith("toolu_")
    assert not (tmp_path / "src/app.py").exists()


def test_claude_malformed_lines_then_a_normal_result(tmp_path: Path) -> None:
    done = run("claude", *STREAM, *EDITS, cwd=tmp_path, scenario="malformed", FAKE_WRITE="a.txt")
    assert done.returncode == 0
    raw = done.stdout.splitlines()
    assert any(line.startswith("[SandboxDebug]") for line in raw)
    assert "" in raw
    parsed, broken = [], []
    for line in raw:
        if line.startswith("{"):
            try:
                parsed.append(json.loads(line))
            except ValueError:
                broken.append(line)
    assert len(broken) == 1
    assert "fancy_future_event" in [m["type"] for m in parsed]
    assert (parsed[-1]["type"], parsed[-1]["subtype"], parsed[-1]["is_error"]) == ("result", "success", False)
    assert raw[-1].startswith("{")
    assert (tmp_path / "a.txt").exists()


def test_claude_crash_leaves_no_result(tmp_path: Path) -> None:
    done = run("claude", *STREAM, cwd=tmp_path, scenario="crash")
    assert done.returncode == 1
    assert [m["type"] for m in jsonl(done.stdout)] == ["system", "assistant"]
    assert "TypeError" in done.stderr


def test_claude_hang_and_its_grandchild_die_with_the_process_group(tmp_path: Path, log: Path) -> None:
    proc = subprocess.Popen(
        [str(FAKES_DIR / "claude"), *STREAM],
        cwd=tmp_path,
        env=fake_env("hang", log=log),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["subtype"] == "init"
        assert wait_for(lambda: grandchild_pids(log))
        [grandchild] = grandchild_pids(log)
        assert pid_alive(grandchild)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert wait_for(lambda: not pid_alive(grandchild))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def write_plan_files(tmp_path: Path) -> dict[str, str]:
    prd, tasks = tmp_path / "prd.md", tmp_path / "tasks.yaml"
    prd.write_text("---\nprd:\n  version: v1\n---\n# PRD\n", encoding="utf-8")
    tasks.write_text("version: 1\ntasks: []\n", encoding="utf-8")
    return {"FAKE_PRD": str(prd), "FAKE_TASKS": str(tasks)}


@pytest.mark.parametrize("output_format", ["json", "stream-json"])
def test_claude_plan_answers_in_structured_output(tmp_path: Path, output_format: str) -> None:
    files = write_plan_files(tmp_path)
    args = ("-p", "plan", "--output-format", output_format, "--verbose", "--json-schema", json.dumps(PLAN_SCHEMA))
    done = run("claude", *args, cwd=tmp_path, scenario="plan", **files)
    assert done.returncode == 0
    result = json.loads(done.stdout)[-1] if output_format == "json" else jsonl(done.stdout)[-1]
    assert result["structured_output"] == {
        "prd_markdown": Path(files["FAKE_PRD"]).read_text(),
        "tasks_yaml": Path(files["FAKE_TASKS"]).read_text(),
    }
    assert (result["subtype"], result["is_error"]) == ("success", False)


def test_claude_plan_that_cannot_meet_the_schema(tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["prd_markdown", "tasks_yaml", "budget"]}
    args = ("-p", "plan", "--output-format", "json", "--json-schema", json.dumps(schema))
    done = run("claude", *args, cwd=tmp_path, scenario="plan")
    assert done.returncode == 1
    assert json.loads(done.stdout)["subtype"] == "error_max_structured_output_retries"


def test_the_default_plan_is_a_valid_maestro_plan(tmp_path: Path) -> None:
    args = ("-p", "plan", "--output-format", "json", "--json-schema", json.dumps(PLAN_SCHEMA))
    answer = json.loads(run("claude", *args, cwd=tmp_path, scenario="plan").stdout)["structured_output"]
    prd = maestro.parse_prd(answer["prd_markdown"])
    maestro.parse_tasks(answer["tasks_yaml"], requirement_ids=[r.id for r in prd.requirements])


def test_claude_session_ids(tmp_path: Path) -> None:
    sid = "4c7a2bb3-8b3f-42ba-8c3c-29099c14edea"
    for flag in ("--session-id", "--resume"):
        lines = jsonl(run("claude", *STREAM, flag, sid, cwd=tmp_path).stdout)
        assert {m["session_id"] for m in lines} == {sid}
    forked = jsonl(run("claude", *STREAM, "--resume", sid, "--fork-session", cwd=tmp_path).stdout)
    assert forked[0]["session_id"] != sid


def test_claude_resume_failures(tmp_path: Path) -> None:
    sid = "4c7a2bb3-8b3f-42ba-8c3c-29099c14edea"
    gone = run("claude", *STREAM, "--resume", sid, cwd=tmp_path, scenario="no_conversation")
    assert gone.returncode == 1
    assert gone.stderr == f"No conversation found with session ID: {sid}\n"
    [result] = jsonl(gone.stdout)
    assert (result["subtype"], result["is_error"], result["errors"]) == (
        "error_during_execution",
        True,
        [gone.stderr.strip()],
    )
    bad = run("claude", "-p", "hi", "--output-format", "json", "--resume=abc", cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (1, "")
    assert 'Provided value "abc" is not a UUID' in bad.stderr


# --- codex -------------------------------------------------------------------------------------


def test_codex_success(repo: Path, log: Path) -> None:
    last = repo / "last.txt"
    done = run("codex", *CODEX, "-o", str(last), "Task T1: say hi", cwd=repo, log=log, FAKE_WRITE="a.py")
    assert done.returncode == 0
    events = jsonl(done.stdout)
    assert [(e["type"], e.get("item", {}).get("type")) for e in events] == [
        ("thread.started", None),
        ("turn.started", None),
        ("item.completed", "reasoning"),
        ("item.started", "command_execution"),
        ("item.completed", "command_execution"),
        ("item.completed", "file_change"),
        ("item.completed", "agent_message"),
        ("turn.completed", None),
    ]
    assert is_uuid(events[0]["thread_id"])
    assert events[3]["item"]["id"] == events[4]["item"]["id"]
    assert events[3]["item"]["status"] == "in_progress"
    assert (events[4]["item"]["status"], events[4]["item"]["exit_code"]) == ("completed", 0)
    assert events[5]["item"]["changes"] == [{"path": str(repo / "a.py"), "kind": "add"}]
    assert set(events[-1]["usage"]) == {"input_tokens", "cached_input_tokens", "output_tokens"}
    assert (repo / "a.py").read_text() == "done\n"
    assert last.read_text() == events[6]["item"]["text"]
    assert "Reading additional input from stdin..." in done.stderr
    assert invocations(log)[0]["argv"] == [*CODEX, "-o", str(last), "Task T1: say hi"]


def test_codex_event_shapes_match_the_capture(repo: Path) -> None:
    real = capture_lines("codex-0.169.0-exec-json-offline.jsonl")
    fake = jsonl(run("codex", *CODEX, "hi", cwd=repo, scenario="rate_limit").stdout)
    for mine, theirs in zip(fake[:3], real[:3], strict=True):
        assert (mine["type"], list(mine)) == (theirs["type"], list(theirs))
    assert fake[2]["message"].startswith("Reconnecting... 1/5 (")


def test_codex_without_json_prints_the_last_message_only(repo: Path) -> None:
    done = run("codex", "exec", "--sandbox", "workspace-write", "hi", cwd=repo, FAKE_WRITE="a.py")
    assert (done.returncode, done.stdout) == (0, "Wrote a.py.\n")
    assert "OpenAI Codex v0.169.0" in done.stderr


def test_codex_sandbox_is_read_only_by_default(repo: Path) -> None:
    done = run("codex", "exec", "--json", "hi", cwd=repo, FAKE_WRITE="a.py")
    assert done.returncode == 0
    [change] = [e["item"] for e in jsonl(done.stdout) if e.get("item", {}).get("type") == "file_change"]
    assert change["status"] == "failed"
    assert not (repo / "a.py").exists()


def test_codex_refuses_to_run_outside_a_git_repository(tmp_path: Path) -> None:
    done = run("codex", *CODEX, "hi", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "Reading additional input from stdin...",
        "Not inside a trusted directory and --skip-git-repo-check was not specified.",
    ]
    assert run("codex", *CODEX, "--skip-git-repo-check", "hi", cwd=tmp_path).returncode == 0
    assert run("codex", *CODEX, "-C", "/nonexistent/dir", "hi", cwd=tmp_path).returncode == 1


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (("--bogus",), "error: unexpected argument '--bogus' found"),
        (("--full-auto",), "error: unexpected argument '--full-auto' found"),
        (("-a", "never"), "error: unexpected argument '-a' found"),
        (("--sandbox", "bogus"), "error: invalid value 'bogus' for '--sandbox <SANDBOX_MODE>'"),
        (("--color", "blue"), "error: invalid value 'blue' for '--color <COLOR>'"),
        (("--experimental-json",), "error: the argument '--json' cannot be used multiple times"),
        (("-o",), "error: a value is required for '--output-last-message <FILE>' but none was supplied"),
    ],
)
def test_codex_argument_errors_exit_2(repo: Path, args: tuple[str, ...], first_line: str) -> None:
    done = run("codex", "exec", "--json", "--skip-git-repo-check", "hi", *args, cwd=repo)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines()[0] == first_line
    assert done.stderr.endswith("For more information, try '--help'.\n")


def test_codex_needs_the_exec_subcommand(repo: Path) -> None:
    assert run("codex", "--json", "hi", cwd=repo).returncode == 2
    tui = run("codex", "hi", cwd=repo)
    assert tui.returncode == 1
    assert tui.stderr.startswith("Error: stdin is not a terminal\n\nStack backtrace:\n")
    assert run("codex", "--version", cwd=repo).stdout == "codex-cli 0.169.0\n"


def test_codex_prompt_from_stdin(repo: Path, log: Path) -> None:
    done = run("codex", *CODEX, cwd=repo, stdin="Task T1: from stdin", log=log)
    assert done.returncode == 0
    assert done.stderr.startswith("Reading prompt from stdin...")
    assert invocations(log)[0]["stdin"] == "Task T1: from stdin"
    empty = run("codex", *CODEX, "-", cwd=repo)
    assert (empty.returncode, empty.stderr) == (1, "No prompt provided via stdin.\n")


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("auth", "unexpected status 401 Unauthorized"),
        ("rate_limit", "exceeded retry limit, last status: 429"),
        ("max_turns", "Codex ran out of room in the model's context window"),
        ("budget", "You've hit your usage limit"),
    ],
)
def test_codex_failures_end_with_turn_failed(repo: Path, scenario: str, message: str) -> None:
    last = repo / "last.txt"
    done = run("codex", *CODEX, "-o", str(last), "hi", cwd=repo, scenario=scenario)
    assert done.returncode == 1
    events = jsonl(done.stdout)
    assert events[-1]["type"] == "turn.failed"
    assert events[-1]["error"]["message"].startswith(message)
    assert events[-2] == {"type": "error", "message": events[-1]["error"]["message"]}
    assert not last.exists()
    if scenario == "rate_limit":
        retries = [e["message"] for e in events if e["type"] == "error"][:-1]
        assert [m.split(" (")[0] for m in retries] == [f"Reconnecting... {n}/5" for n in range(1, 6)]


def test_codex_permission_denied(repo: Path) -> None:
    done = run("codex", *CODEX, "hi", cwd=repo, scenario="permission_denied", FAKE_WRITE="a.py")
    assert done.returncode == 0
    commands = [e["item"] for e in jsonl(done.stdout) if e.get("item", {}).get("type") == "command_execution"]
    assert [c["status"] for c in commands] == ["declined"]
    assert not (repo / "a.py").exists()


def test_codex_malformed_and_crash(repo: Path) -> None:
    done = run("codex", *CODEX, "hi", cwd=repo, scenario="malformed")
    assert done.returncode == 0
    raw = done.stdout.splitlines()
    assert any(not line.startswith("{") for line in raw)
    assert json.loads(raw[-1])["type"] == "turn.completed"
    crash = run("codex", *CODEX, "hi", cwd=repo, scenario="crash")
    assert crash.returncode == 1
    assert [e["type"] for e in jsonl(crash.stdout)] == ["thread.started", "turn.started"]
    assert "panicked" in crash.stderr


def test_codex_plan_with_output_schema(repo: Path) -> None:
    files = write_plan_files(repo)
    schema, last = repo / "schema.json", repo / "last.json"
    schema.write_text(json.dumps(PLAN_SCHEMA))
    args = (*CODEX, "--output-schema", str(schema), "--output-last-message", str(last), "plan")
    done = run("codex", *args, cwd=repo, scenario="plan", **files)
    assert done.returncode == 0
    message = [e["item"]["text"] for e in jsonl(done.stdout) if e.get("item", {}).get("type") == "agent_message"]
    answer = json.loads(message[-1])
    assert answer == {
        "prd_markdown": Path(files["FAKE_PRD"]).read_text(),
        "tasks_yaml": Path(files["FAKE_TASKS"]).read_text(),
    }
    assert json.loads(last.read_text()) == answer


def test_codex_output_schema_must_be_strict_and_readable(repo: Path) -> None:
    loose = repo / "loose.json"
    loose.write_text(json.dumps({k: v for k, v in PLAN_SCHEMA.items() if k != "additionalProperties"}))
    done = run("codex", *CODEX, "--output-schema", str(loose), "plan", cwd=repo, scenario="plan")
    assert done.returncode == 1
    assert (
        "'additionalProperties' is required to be supplied and to be false"
        in jsonl(done.stdout)[-1]["error"]["message"]
    )
    missing = run("codex", *CODEX, "--output-schema", "nope.json", "plan", cwd=repo, scenario="plan")
    assert missing.returncode == 1
    assert "Failed to read output schema file nope.json: No such file or directory (os error 2)" in missing.stderr


def test_codex_waits_for_stdin_to_close(repo: Path, log: Path) -> None:
    proc = subprocess.Popen(
        [str(FAKES_DIR / "codex"), *CODEX, "hi"],
        cwd=repo,
        env=fake_env("stdin_wait", log=log),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert proc.poll() is None  # an adapter that leaves stdin open hangs here
        out, err = proc.communicate("context\n", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert err.startswith("Reading additional input from stdin...")
    assert jsonl(out)[-1]["type"] == "turn.completed"
    assert invocations(log)[0]["stdin"] == "context\n"


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
def test_codex_hang_is_killed_by_timeout_with_its_grandchild(repo: Path, log: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        ["timeout", "2", str(FAKES_DIR / "codex"), *CODEX, "hi"],
        cwd=repo,
        env=fake_env("hang", log=log),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 124
    assert time.monotonic() - started < 15
    events = jsonl(done.stdout)
    assert [e["type"] for e in events] == ["thread.started", "turn.started", "error"]
    assert events[-1]["message"].startswith("Reconnecting... 1/5")
    [grandchild] = grandchild_pids(log)
    assert wait_for(lambda: not pid_alive(grandchild))


# --- aider -------------------------------------------------------------------------------------

AIDER_CAPTURE_ARGS = (
    "--message",
    "Task T1: add a function",
    "--yes-always",
    "--no-auto-commits",
    "--no-check-update",
    "--no-analytics",
    "--no-show-release-notes",
    "--model",
    "claude-sonnet-4-5",
    "a.py",
)


def aider_repo(tmp_path: Path, env: dict[str, str]) -> Path:
    """A repository holding one committed file a.py, as in the capture ('Git repo: .git with 1 files')."""
    repo = tmp_path / "aider-repo"
    repo.mkdir()
    (repo / "a.py").write_text("")
    ident = ["-c", "user.name=T", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "a.py"], [*ident, "commit", "-q", "-m", "a"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    return repo


def run_aider(repo: Path, env: dict[str, str], *args: str, scenario: str = "success", **fake: str) -> Any:
    return subprocess.run(
        [str(FAKES_DIR / "aider"), *args],
        cwd=repo,
        env=fake_env(scenario, base=env, **fake),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


@needs_git
def test_aider_auth_is_the_capture(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = aider_repo(tmp_path, git_env)
    real = (CAPTURES / "aider-0.86.2-no-key.txt").read_text(encoding="utf-8")
    stdout, _, rest = real.partition("\n\n--- stderr ---\n")
    done = run_aider(repo, git_env, *AIDER_CAPTURE_ARGS, scenario="auth")
    assert done.returncode == 0
    assert done.stdout.rstrip("\n") == stdout.rstrip("\n")
    assert done.stderr == rest.partition("--- exit code")[0]
    assert (repo / ".gitignore").read_text() == ".aider*\n"
    assert (repo / "a.py").read_text() == ""


@needs_git
def test_aider_success_edits_commits_and_ignores(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = aider_repo(tmp_path, git_env)
    args = ("--message", "Task T1: add", "--yes-always", "a.py")
    done = run_aider(repo, git_env, *args, FAKE_WRITE="a.py", FAKE_CONTENT="def f():\n    return 1\n")
    assert done.returncode == 0
    assert "Applied edit to a.py" in done.stdout.splitlines()
    assert (repo / "a.py").read_text() == "def f():\n    return 1\n"
    assert (repo / ".gitignore").read_text() == ".aider*\n"
    assert (repo / ".aider.chat.history.md").exists()
    author = subprocess.run(
        ["git", "log", "-1", "--format=%an|%s"], cwd=repo, env=git_env, capture_output=True, text=True
    )
    assert author.stdout.strip() == "Your Name (aider)|feat: Apply requested change to a.py"
    assert subprocess.run(
        ["git", "config", "user.name"], cwd=repo, env=git_env, capture_output=True, text=True
    ).stdout == ("Your Name\n")


@needs_git
def test_aider_without_gitignore_and_auto_commits(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = aider_repo(tmp_path, git_env)
    args = ("--message", "x", "--yes-always", "--no-auto-commits", "--no-gitignore", "a.py")
    done = run_aider(repo, git_env, *args, FAKE_WRITE="a.py")
    assert done.returncode == 0
    assert not (repo / ".gitignore").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=git_env, capture_output=True, text=True)
    assert sorted(status.stdout.splitlines()) == [" M a.py", "?? .aider.chat.history.md", "?? .aider.input.history"]


@needs_git
def test_aider_rate_limit_and_bad_arguments(tmp_path: Path, git_env: dict[str, str]) -> None:
    repo = aider_repo(tmp_path, git_env)
    limited = run_aider(repo, git_env, "--message", "x", "--yes-always", scenario="rate_limit", FAKE_WRITE="a.py")
    assert limited.returncode == 0
    assert "litellm.RateLimitError" in limited.stdout
    assert "Retrying in 0.2 seconds..." in limited.stdout.splitlines()
    assert (repo / "a.py").read_text() == ""
    bogus = run_aider(repo, git_env, "--message", "x", "--bogus")
    assert bogus.returncode == 2
    assert bogus.stderr.splitlines()[-1] == "aider: error: unrecognized arguments: --bogus"
    missing = run_aider(repo, git_env, "--message-file", "nope.txt")
    assert missing.returncode == 1
    assert missing.stdout.splitlines()[-1] == "Message file not found: nope.txt"


# --- all ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prog", "args"),
    [("claude", STREAM), ("codex", (*CODEX, "--skip-git-repo-check", "hi")), ("aider", ("--message", "x"))],
)
def test_an_unmodelled_scenario_exits_3(tmp_path: Path, prog: str, args: tuple[str, ...]) -> None:
    done = run(prog, *args, cwd=tmp_path, scenario="no_such_scenario")
    assert done.returncode == 3
    assert "is not modelled" in done.stderr
