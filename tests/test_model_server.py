"""The scripted model server (maestro.testing.model_server) and its scripts, through real HTTP on 127.0.0.1.

Each wire format is spoken to with the standard library's HTTP client as the CLIs speak
it: the Anthropic Messages API (JSON and SSE, count_tokens), the OpenAI Responses API
(streaming), OpenAI chat completions (JSON and streaming).  The real CLIs against it are
in tests/test_real_agents.py.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maestro.core import yamlio
from maestro.core.errors import ScriptError
from maestro.testing.model_script import Failure, Turn, attempt_of, load_model_script, model_script, task_of
from maestro.testing.model_server import KEY, ModelServer, codex_config_toml

WRITE_THEN_DONE = {
    "tasks": {
        "T1": [
            {"turns": [{"write": {"path": "a.txt", "content": "A\n"}, "usage": {"input_tokens": 7, "output_tokens": 3}},
                       {"text": "Done."}]},
            {"turns": [{"text": "attempt two"}]},
        ]
    }
}  # fmt: skip
TOOLS = [{"name": "Write", "input_schema": {"type": "object"}}, {"name": "Bash", "input_schema": {"type": "object"}}]


Answer = tuple[int, dict[str, str], bytes]


def post(srv: ModelServer, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def sse(data: bytes) -> list[tuple[str | None, Any]]:
    """The (event, data) pairs of an event stream (``[DONE]`` kept as a string)."""
    out = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        event = None
        payload = ""
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                payload = line[6:]
        out.append((event, payload if payload == "[DONE]" else json.loads(payload)))
    return out


def claude_body(*messages: dict[str, Any], stream: bool = False, tools: Any = TOOLS) -> dict[str, Any]:
    body = {"model": "claude-test", "max_tokens": 100, "messages": list(messages), "stream": stream}
    if tools is not None:
        body["tools"] = tools
    return body


def user(*texts: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": t} for t in texts]}


PROMPT = "Task T1: Write a\n\nWrite a.txt.\n"


# -- the script ---------------------------------------------------------------------------------------------------


def test_a_script_reads_from_a_mapping_yaml_and_json(tmp_path: Path) -> None:
    script = model_script(WRITE_THEN_DONE)
    (first, second) = script.turns("T1", 1) or ()
    assert first.calls[0].kind == "write" and first.calls[0].path == "a.txt" and first.usage.input_tokens == 7
    assert second == Turn(text="Done.")
    assert script.turns("T1", 2) == script.turns("T1", 5)  # the last attempt repeats
    assert script.turns("T9", 1) is None and script.turns(None, 1) is None
    path = tmp_path / "model.yaml"
    path.write_text(
        "version: 1\ndefault: ok\ntasks:\n  T1:\n    - turns:\n        - run: make\n          fail: [{status: 429, "
        "retry_after: 2, times: 2}, {cut: true}]\n        - Done.\n"
    )
    loaded = load_model_script(path)
    turn = (loaded.turns("T1", 1) or ())[0]
    assert loaded.default == "ok"
    assert turn.calls[0].command == "make"
    assert turn.fail == (Failure(status=429, retry_after=2.0, times=2), Failure(cut=True))
    assert [turn.failure_for(n) for n in range(4)] == [turn.fail[0], turn.fail[0], turn.fail[1], None]
    assert model_script(json.dumps(WRITE_THEN_DONE)) == script


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"tasks": {"T1": [{"turns": [{"wrte": {}}]}]}}, "tasks.T1[0].turns[0].wrte", "unknown key 'wrte'"),
        ({"tasks": {"T1": [{"turns": [{"edit": {"path": "a"}}]}]}}, "tasks.T1[0].turns[0].edit.old", "missing"),
        ({"tasks": {"T1": [{"turns": [{"fail": {"status": 200}}]}]}}, "tasks.T1[0].turns[0].fail.status", "400-599"),
        ({"tasks": {"T1": [{"turns": [{"fail": {"retry_after": 1}}]}]}}, "tasks.T1[0].turns[0].fail", "one of them"),
        ({"tasks": {"T1": [{"turns": [{"fail": {"cut": True, "times": 0}}]}]}}, "tasks.T1[0].turns[0].fail.times",
         "count >= 1"),
        ({"tasks": {"T1": [{"turns": [{}]}]}}, "tasks.T1[0].turns[0]", "needs text"),
        ({"tasks": {"T1": []}}, "tasks.T1", "list of attempts"),
        ({"tasks": {"T1": [{"turns": [{"text": "x", "usage": {"input_tokens": -1}}]}]}},
         "tasks.T1[0].turns[0].usage.input_tokens", "count"),
        ({"version": 2}, "version", "unknown version"),
        ({"tasks": {"T1": [{"turns": [{"calls": [{"run": "a", "read": "b"}]}]}]}}, "tasks.T1[0].turns[0].calls[0]",
         "expected one of"),
    ],
)  # fmt: skip
def test_a_malformed_script_is_a_script_error_naming_the_field(data: Any, field: str, problem: str) -> None:
    with pytest.raises(ScriptError) as err:
        model_script(data, where="model.yaml")
    assert err.value.field == field
    assert problem in str(err.value)
    assert str(err.value).startswith("model.yaml")
    assert "\n" not in str(err.value)


def test_a_script_file_that_is_not_yaml_is_a_script_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tasks:\n  T1: [\n")
    with pytest.raises(ScriptError) as err:
        load_model_script(path)
    assert str(err.value).startswith(str(path))


@given(
    tid=st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
    title=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
    attempt=st.integers(1, 99),
    before=st.lists(st.text(max_size=30).filter(lambda t: not t.lstrip().startswith("Task ")), max_size=3),
)
def test_the_task_and_attempt_are_read_from_maestros_prompt(tid: str, title: str, attempt: int,
                                                            before: list[str]) -> None:  # fmt: skip
    again = f"This is attempt {attempt}; the previous attempt failed.\n\n" if attempt > 1 else ""
    prompt = f"Task {tid}: {title}\n\nDescription.\n\n{again}Work only in this repository.\n"
    assert task_of([*before, prompt]) == (tid, attempt)
    assert attempt_of(prompt) == attempt


def test_a_prompt_inside_other_text_is_found_at_a_line_start() -> None:
    assert task_of(["<reminder>x</reminder>\nTask a-1: Title\nmore"]) == ("a-1", 1)
    assert task_of(["no task here", "neither"]) == (None, 1)


# -- Anthropic Messages -------------------------------------------------------------------------------------------


def test_anthropic_json_plays_the_turns_of_the_task_and_records_each_request() -> None:
    with ModelServer(WRITE_THEN_DONE) as srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        status, _, raw = post(srv, "/v1/messages?beta=true", claude_body(user("<system-reminder>x</system-reminder>",
                                                                             PROMPT)), {"x-api-key": KEY})  # fmt: skip
        assert status == 200
        first = json.loads(raw)
        (call,) = first["content"]
        assert (call["type"], call["name"], call["input"]) == (
            "tool_use", "Write", {"file_path": "a.txt", "content": "A\n"}
        )  # fmt: skip
        assert first["stop_reason"] == "tool_use"
        assert (first["usage"]["input_tokens"], first["usage"]["output_tokens"]) == (7, 3)
        tool_result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "ok"}]}
        assistant = {"role": "assistant", "content": first["content"]}
        status, _, raw = post(srv, "/v1/messages", claude_body(user(PROMPT), assistant, tool_result))
        second = json.loads(raw)
        assert (second["content"], second["stop_reason"]) == ([{"type": "text", "text": "Done."}], "end_turn")
        # past the last turn: the default text
        done = {"role": "assistant", "content": second["content"]}
        _, _, raw = post(srv, "/v1/messages", claude_body(user(PROMPT), assistant, tool_result, done, user("more?")))
        assert json.loads(raw)["content"] == [{"type": "text", "text": "Done."}]
        reqs = srv.requests
    assert [(r.api, r.task, r.attempt, r.turn, r.answer) for r in reqs] == [
        ("anthropic", "T1", 1, 0, "turn"), ("anthropic", "T1", 1, 1, "turn"), ("anthropic", "T1", 1, None, "default"),
    ]  # fmt: skip
    assert reqs[0].headers["x-api-key"] == "<redacted>"
    assert reqs[0].path == "/v1/messages?beta=true"
    assert reqs[0].tool_names == ["Write", "Bash"]
    assert PROMPT in reqs[0].texts


def test_anthropic_streams_server_sent_events_whose_deltas_rebuild_the_answer() -> None:
    script = {"tasks": {"T1": [{"turns": [{"text": "Writing.", "calls": [
        {"write": {"path": "a.txt", "content": "A\n"}}, {"run": "cat a.txt"}]}]}]}}  # fmt: skip
    with ModelServer(script) as srv:
        status, headers, raw = post(srv, "/v1/messages", claude_body(user(PROMPT), stream=True))
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = sse(raw)
    assert [e for e, _ in events][:2] == ["message_start", "content_block_start"]
    assert [e for e, _ in events][-2:] == ["message_delta", "message_stop"]
    assert all(e == d["type"] for e, d in events)
    blocks: dict[int, dict[str, Any]] = {}
    for _, d in events:
        if d["type"] == "content_block_start":
            blocks[d["index"]] = {**d["content_block"], "json": ""}
        elif d["type"] == "content_block_delta":
            delta = d["delta"]
            if delta["type"] == "text_delta":
                blocks[d["index"]]["text"] += delta["text"]
            else:
                blocks[d["index"]]["json"] += delta["partial_json"]
    assert blocks[0]["text"] == "Writing."
    assert (blocks[1]["name"], json.loads(blocks[1]["json"])) == ("Write", {"file_path": "a.txt", "content": "A\n"})
    assert (blocks[2]["name"], json.loads(blocks[2]["json"])["command"]) == ("Bash", "cat a.txt")
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_a_request_without_tools_is_answered_with_the_default_text_and_not_counted() -> None:
    with ModelServer(WRITE_THEN_DONE) as srv:
        _, _, raw = post(srv, "/v1/messages", claude_body(user(PROMPT), tools=None))
        assert json.loads(raw)["content"] == [{"type": "text", "text": "Done."}]
        _, _, raw = post(srv, "/v1/messages", claude_body(user(PROMPT)))
        assert json.loads(raw)["content"][0]["name"] == "Write"  # the conversation's first turn is still to come
        status, _, raw = post(srv, "/v1/messages/count_tokens", claude_body(user(PROMPT)))
        assert status == 200 and json.loads(raw)["input_tokens"] > 0
        assert [r.answer for r in srv.requests] == ["default", "turn", "count"]


def test_a_later_attempt_plays_its_own_turns() -> None:
    again = "Task T1: Write a\n\nThis is attempt 3; the previous attempt failed.\n"
    with ModelServer(WRITE_THEN_DONE) as srv:
        _, _, raw = post(srv, "/v1/messages", claude_body(user(again)))
        assert json.loads(raw)["content"] == [{"type": "text", "text": "attempt two"}]  # the last one repeats
        assert [(r.task, r.attempt) for r in srv.requests_of("T1")] == [("T1", 3)]


def test_failures_come_before_the_turn_each_as_often_as_the_script_says() -> None:
    fail = [{"status": 429, "retry_after": 2}, {"status": 529, "times": 2}, {"status": 401, "message": "bad key"}]
    script = {"tasks": {"T1": [{"turns": [{"text": "ok", "fail": fail}]}]}}
    with ModelServer(script) as srv:
        got = [post(srv, "/v1/messages", claude_body(user(PROMPT))) for _ in range(5)]
        answers = [r.answer for r in srv.requests]
    assert [status for status, _, _ in got] == [429, 529, 529, 401, 200]
    assert answers == ["failure 429", "failure 529", "failure 529", "failure 401", "turn"]
    assert got[0][1]["retry-after"] == "2"
    assert json.loads(got[0][2]) == {"type": "error", "error": {"type": "rate_limit_error", "message": (
        "Rate limited: too many requests, try again later")}}  # fmt: skip
    assert json.loads(got[1][2])["error"]["type"] == "overloaded_error"
    assert json.loads(got[3][2])["error"] == {"type": "authentication_error", "message": "bad key"}
    assert "retry-after" not in got[3][1]


def test_a_failure_for_every_request_never_lets_the_turn_play() -> None:
    script = {"tasks": {"T1": [{"turns": [{"text": "ok", "fail": {"status": 500, "times": None}}]}]}}
    with ModelServer(script) as srv:
        assert {post(srv, "/v1/messages", claude_body(user(PROMPT)))[0] for _ in range(4)} == {500}


def test_a_cut_stops_mid_answer_and_closes_the_connection() -> None:
    write = {"write": {"path": "a.txt", "content": "A\n"}}
    script = {"tasks": {"T1": [{"turns": [{**write, "fail": {"cut": True, "times": 2}}]}]}}
    with ModelServer(script) as srv:
        with pytest.raises(http.client.IncompleteRead) as err:
            post(srv, "/v1/messages", claude_body(user(PROMPT), stream=True))
        partial = err.value.partial.decode()
        assert "message_start" in partial and "message_stop" not in partial
        with pytest.raises(http.client.IncompleteRead):  # a JSON answer cut part way
            post(srv, "/v1/messages", claude_body(user(PROMPT)))
        # the CLI's retry of the same request gets the turn
        status, _, raw = post(srv, "/v1/messages", claude_body(user(PROMPT), stream=True))
        assert status == 200 and sse(raw)[-1][0] == "message_stop"
        assert [r.answer for r in srv.requests] == ["cut", "cut", "turn"]


def test_requests_from_many_threads_are_all_answered_and_recorded() -> None:
    script = {"tasks": {f"T{i}": [{"turns": [{"text": f"answer {i}"}]}] for i in range(8)}}
    got: dict[int, str] = {}

    def ask(i: int) -> None:
        _, _, raw = post(srv, "/v1/messages", claude_body(user(f"Task T{i}: x\n")))
        got[i] = json.loads(raw)["content"][0]["text"]

    with ModelServer(script) as srv:
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.task or "" for r in srv.requests) == [f"T{i}" for i in range(8)]
    assert got == {i: f"answer {i}" for i in range(8)}


def test_an_unknown_route_is_a_404_and_recorded() -> None:
    with ModelServer({}) as srv:
        status, _, _ = post(srv, "/v2/other", {})
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/v1/models")
        models = conn.getresponse()
        assert (models.status, json.loads(models.read())["data"]) == (200, [])
        conn.close()
        assert status == 404
        assert [(r.method, r.answer) for r in srv.requests] == [("POST", "not found"), ("GET", "models")]


def test_the_server_stops_and_its_port_is_free_again() -> None:
    with ModelServer({}) as srv:
        port = srv.port
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/")
    with pytest.raises(RuntimeError):
        _ = srv.url


# -- OpenAI Responses (codex) --------------------------------------------------------------------------------------


def responses_body(*items: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": "gpt-5.5", "instructions": "You are codex.", "stream": True, "input": list(items),
            "tools": tools if tools is not None else [{"type": "function", "name": "exec_command"}]}  # fmt: skip


def user_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_responses_stream_shell_calls_apply_patch_and_usage_counting_tool_outputs_as_turns() -> None:
    script = {"tasks": {"T1": [{"turns": [
        {"write": {"path": "a.txt", "content": "A\nB\n"}},
        {"edit": {"path": "a.txt", "old": "B", "new": "C"}, "run": "cat a.txt"},
        {"text": "Done.", "usage": {"input_tokens": 11, "output_tokens": 5}}]}]}}  # fmt: skip
    patch_tools = [{"type": "function", "name": "exec_command"}, {"type": "custom", "name": "apply_patch"}]
    context = user_item("<environment_context>cwd</environment_context>")
    with ModelServer(script) as srv:
        _, _, raw = post(srv, "/v1/responses", responses_body(context, user_item(PROMPT), tools=patch_tools))
        events = sse(raw)
        assert [e for e, _ in events] == ["response.created", "response.output_item.added",
                                          "response.output_item.done", "response.completed"]  # fmt: skip
        (item,) = events[-1][1]["response"]["output"]
        assert (item["type"], item["name"]) == ("custom_tool_call", "apply_patch")
        assert item["input"] == "*** Begin Patch\n*** Add File: a.txt\n+A\n+B\n*** End Patch\n"
        out = {"type": "custom_tool_call_output", "call_id": item["call_id"], "output": "ok"}
        _, _, raw = post(srv, "/v1/responses", responses_body(context, user_item(PROMPT), item, out, tools=patch_tools))
        patch, shell = sse(raw)[-1][1]["response"]["output"]
        assert patch["input"] == "*** Begin Patch\n*** Update File: a.txt\n@@\n-B\n+C\n*** End Patch\n"
        assert (shell["type"], shell["name"], json.loads(shell["arguments"])) == (
            "function_call", "exec_command", {"cmd": "cat a.txt"})  # fmt: skip
        outs = [{"type": "custom_tool_call_output", "call_id": patch["call_id"], "output": "ok"},
                {"type": "function_call_output", "call_id": shell["call_id"], "output": "A\nC\n"}]  # fmt: skip
        _, _, raw = post(srv, "/v1/responses", responses_body(user_item(PROMPT), item, out, patch, shell, *outs))
        events = sse(raw)
        assert events[2] == ("response.output_text.delta", {**events[2][1], "delta": "Done."})
        done = events[-1][1]["response"]
        assert done["output"][0]["content"][0]["text"] == "Done."
        assert (done["usage"]["input_tokens"], done["usage"]["output_tokens"]) == (11, 5)
        assert [r.turn for r in srv.requests_of("T1")] == [0, 1, 2]


def test_responses_without_apply_patch_write_and_edit_through_the_shell(tmp_path: Path) -> None:
    import subprocess  # runs the commands the server wrote, to show they do what the script says

    script = {"tasks": {"T1": [{"turns": [{"calls": [
        {"write": {"path": "a.txt", "content": "it's \"quoted\" $HOME\nno newline"}},
        {"edit": {"path": "a.txt", "old": "$HOME", "new": "`x`"}}]}]}]}}  # fmt: skip
    with ModelServer(script) as srv:
        _, _, raw = post(srv, "/v1/responses", responses_body(user_item(PROMPT)))
    calls = [json.loads(i["arguments"])["cmd"] for i in sse(raw)[-1][1]["response"]["output"]]
    for cmd in calls:
        subprocess.run(["bash", "-c", cmd], cwd=tmp_path, check=True)
    assert (tmp_path / "a.txt").read_text() == 'it\'s "quoted" `x`\nno newline'


def test_responses_failures_have_openais_error_body() -> None:
    script = {"tasks": {"T1": [{"turns": [{"text": "ok", "fail": [{"status": 429, "retry_after": 1},
                                                                   {"status": 401}]}]}]}}  # fmt: skip
    with ModelServer(script) as srv:
        limited = post(srv, "/v1/responses", responses_body(user_item(PROMPT)))
        refused = post(srv, "/v1/responses", responses_body(user_item(PROMPT)))
    assert (limited[0], limited[1]["retry-after"]) == (429, "1")
    assert json.loads(limited[2])["error"]["code"] == "rate_limit_exceeded"
    assert refused[0] == 401
    assert json.loads(refused[2])["error"]["message"].startswith("Incorrect API key provided")


def test_codex_config_names_the_server_as_a_responses_provider(tmp_path: Path) -> None:
    text = codex_config_toml("http://127.0.0.1:9/v1", request_max_retries=1)
    assert 'base_url = "http://127.0.0.1:9/v1"' in text and 'wire_api = "responses"' in text
    assert "request_max_retries = 1\n" in text
    with ModelServer({}) as srv:
        env = srv.codex_env(tmp_path / "codex")
        assert env == {"CODEX_HOME": str(tmp_path / "codex"), "MAESTRO_MODEL_KEY": KEY}
        assert f'base_url = "{srv.url}/v1"' in (tmp_path / "codex" / "config.toml").read_text()


# -- OpenAI chat completions (aider) -------------------------------------------------------------------------------


def chat_body(system: str, *messages: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return {"model": "gpt-test", "stream": stream, "messages": [{"role": "system", "content": system}, *messages]}


def test_chat_answers_whole_file_blocks_or_search_replace_by_aiders_system_prompt() -> None:
    script = {"tasks": {"T1": [{"turns": [{"text": "Here.", "calls": [
        {"write": {"path": "a.txt", "content": "A\n"}}, {"edit": {"path": "b.py", "old": "x = 1", "new": "x = 2"}}]}],
    }]}}  # fmt: skip
    examples = [{"role": "user", "content": "Change x"}, {"role": "assistant", "content": "example answer"}]
    prompt = {"role": "user", "content": PROMPT}
    with ModelServer(script) as srv:
        _, _, raw = post(srv, "/v1/chat/completions", chat_body("Return the whole file listing.", *examples, prompt))
        whole = json.loads(raw)
        _, _, raw = post(srv, "/v1/chat/completions", chat_body("Use SEARCH/REPLACE blocks.", *examples, prompt))
        diff = json.loads(raw)["choices"][0]["message"]["content"]
        assert [r.turn for r in srv.requests] == [0, 0]  # the examples before the prompt are not turns
    assert whole["choices"][0]["message"]["content"].startswith("Here.\n\na.txt\n```\nA\n```\n")
    assert (whole["usage"]["prompt_tokens"], whole["usage"]["completion_tokens"]) == (100, 20)
    assert "a.txt\n```\n<<<<<<< SEARCH\n=======\nA\n>>>>>>> REPLACE\n```" in diff
    assert "b.py\n```\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```" in diff


def test_chat_streams_chunks_then_done() -> None:
    with ModelServer({"tasks": {"T1": [{"turns": ["All done here."]}]}}) as srv:
        _, _, raw = post(srv, "/v1/chat/completions", chat_body("sys", {"role": "user", "content": PROMPT},
                                                                 stream=True))  # fmt: skip
    events = sse(raw)
    assert events[-1] == (None, "[DONE]")
    text = "".join(d["choices"][0]["delta"].get("content", "") for _, d in events[:-1])
    assert text == "All done here.\n"
    assert events[-2][1]["choices"][0]["finish_reason"] == "stop" and events[-2][1]["usage"]["total_tokens"] == 120


def test_the_example_script_of_docs_testing_md_reads() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    script = model_script(yamlio.load(block))
    (fails_then_reads, edit, run, text) = script.turns("b", 2) or ()
    assert [f.status for f in fails_then_reads.fail] == [429, 529]
    assert (edit.calls[0].old, run.calls[0].command, text.text) == ("wrong", "cat b.txt", "Fixed b.txt.")
    assert script.turns("b", 7) == script.turns("b", 2)
