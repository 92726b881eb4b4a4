"""A scripted model server on 127.0.0.1 that the real Claude Code, Codex and Aider CLIs talk to, offline.

It plays the model: each request gets the next turn of its task's attempt, as a
:mod:`model script <maestro.agents.model_script>` says, in the wire format the
CLI asked in — the Anthropic Messages API (``POST /v1/messages``, JSON or
streaming SSE, and ``/v1/messages/count_tokens``) for Claude Code, the OpenAI
Responses API (``POST /v1/responses``, streaming) for Codex, OpenAI chat
completions (``POST /v1/chat/completions``, JSON or streaming) for Aider
through litellm.  The CLI's own tools do the work: the server only says which
tool to call (Claude Code's ``Write``/``Edit``/``Read``/``Bash``; Codex's
``exec_command`` and ``apply_patch``; Aider's edit blocks in the text)::

    with ModelServer(script) as srv:
        env = srv.claude_env()          # ANTHROPIC_BASE_URL=srv.url, a key, no nonessential traffic
        ...run claude...
        srv.requests                    # every request: path, headers (secrets redacted), JSON body, task, turn

Turn-taking is read from the request itself, so a CLI's own retry of a request
gets the same turn: the task and attempt from the prompt (``Task <id>: …``,
``This is attempt <n>``), the turn from how many model answers the
conversation already holds after that prompt (a tool result in the request
means the tool call before it ran).  A request of no scripted task, one past
the last turn, or one without tools (a title, a quota check) is answered with
the script's ``default`` text.  The failures of a turn (429 with
``retry-after``, 529 overloaded, 401, a stream cut mid-answer …) are answered
to the first requests of that turn, counted per task, attempt and turn.

Only the loopback interface is used; nothing leaves the machine.

The module holds one idea: a model, played from a script, in the three wire formats the real CLIs speak
(the formats are long; the turn-taking, the failures and the recording are shared by all three).
"""

from __future__ import annotations

import abc
import gzip
import json
import logging
import shlex
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from maestro.agents.model_script import Action, Failure, ModelScript, Turn, model_script, task_of

__all__ = ["CODEX_MODEL", "KEY", "ModelServer", "RecordedRequest", "codex_config_toml"]

log = logging.getLogger("maestro")

KEY = "maestro-test-key"
"""The API key the helpers give the CLIs (the server accepts any)."""
CODEX_MODEL = "gpt-5.5"
"""The model name the Codex and Aider helpers configure (any name works; an unknown one makes Codex warn)."""
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})
"""Headers whose values are not recorded (``<redacted>`` instead)."""
MAX_BODY = 64 * 1024 * 1024


@attrs.frozen
class RecordedRequest:
    """One request the server got, and what it answered.

    ``api`` is ``anthropic``, ``count_tokens``, ``responses``, ``chat`` or ``other``;
    ``answer`` is ``turn``, ``default`` (the default text), ``failure <status>``, ``cut``
    or what else was sent (``models``, ``not found``).
    """

    api: str
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    task: str | None = None
    attempt: int = 1
    turn: int | None = None
    answer: str = ""

    @property
    def texts(self) -> list[str]:
        """Every text of the request's messages and system prompt, in order (for assertions)."""
        return list(_all_texts(self.body))

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools the request offered the model."""
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        out = []
        for t in tools if isinstance(tools, list) else []:
            if isinstance(t, dict):
                name = t.get("name") or (t.get("function") or {}).get("name")
                if isinstance(name, str):
                    out.append(name)
        return out


class ModelServer:
    """The server: a context manager (``with ModelServer(script) as srv``) or ``start()``/``stop()``.

    ``script`` is a :class:`~maestro.agents.model_script.ModelScript` or its data (a
    mapping, or a JSON text); ``port`` 0 takes a free one.
    """

    def __init__(self, script: ModelScript | Mapping[str, Any] | str, *, port: int = 0) -> None:
        self.script = model_script(script)
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._served: dict[tuple[str, str, int, int], int] = {}
        self._ids = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life ---------------------------------------------------------------------------------------------------------
    def start(self) -> ModelServer:
        handler = type("Handler", (_Handler,), {"model": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="maestro-model-server", daemon=True
        )
        self._thread.start()
        log.debug("model server listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the model server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (Claude Code's ``ANTHROPIC_BASE_URL``; the OpenAI APIs are under ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    # -- what was asked -----------------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in the order they came."""
        with self._lock:
            return list(self._requests)

    def requests_of(self, task: str, attempt: int | None = None) -> list[RecordedRequest]:
        """The requests of one task's conversations (one attempt's, when given) that were answered from its script."""
        return [r for r in self.requests if r.task == task and (attempt is None or r.attempt == attempt)
                and r.turn is not None]  # fmt: skip

    # -- the CLIs' settings -------------------------------------------------------------------------------------------
    def claude_env(self) -> dict[str, str]:
        """The environment that points Claude Code at this server."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }

    def codex_env(self, codex_home: Path, **provider: object) -> dict[str, str]:
        """The environment that points Codex at this server: ``codex_home/config.toml`` is written (see
        :func:`codex_config_toml`; ``provider`` holds more settings of the provider, e.g. ``request_max_retries``)."""
        codex_home.mkdir(parents=True, exist_ok=True)
        (codex_home / "config.toml").write_text(codex_config_toml(f"{self.url}/v1", **provider), encoding="utf-8")
        return {"CODEX_HOME": str(codex_home), "MAESTRO_MODEL_KEY": KEY}

    def aider_env(self) -> dict[str, str]:
        """The environment that points Aider (litellm's ``openai/`` models) at this server: give aider the model
        ``openai/gpt-test``."""
        return {"OPENAI_API_BASE": f"{self.url}/v1", "OPENAI_API_KEY": KEY}

    # -- answering (called from the handler's threads) ----------------------------------------------------------------
    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}_{self._ids:05d}"

    def _serve(self, api: str, task: str | None, attempt: int, turn: int) -> tuple[Turn | None, Failure | None]:
        """The turn to play and the failure to answer instead (counted), for a request of a conversation."""
        turns = self.script.turns(task, attempt)
        if turns is None or task is None or turn >= len(turns):
            return None, None
        key = (api, task, attempt, turn)
        with self._lock:
            served = self._served.get(key, 0)
            self._served[key] = served + 1
        return turns[turn], turns[turn].failure_for(served)


def codex_config_toml(base_url: str, **provider: object) -> str:
    """Codex's ``config.toml`` for a model provider at ``base_url`` (Responses API, key in ``MAESTRO_MODEL_KEY``)."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in provider.items())
    return (
        f'model = "{CODEX_MODEL}"\nmodel_provider = "maestro"\n\n[model_providers.maestro]\nname = "maestro test"\n'
        f'base_url = "{base_url}"\nwire_api = "responses"\nenv_key = "MAESTRO_MODEL_KEY"\n{extra}'
    )


# -- the HTTP side ---------------------------------------------------------------------------------------------------


class _Cut(Exception):
    """The connection is to be closed now, mid-answer."""


class _Handler(BaseHTTPRequestHandler):
    model: ModelServer
    protocol_version = "HTTP/1.1"
    server_version = "maestro-model-server"

    def log_message(self, format: str, *args: Any) -> None:  # the library never prints
        log.debug("model server: " + format, *args)

    # -- plumbing
    def _body(self) -> Any:
        raw = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, MAX_BODY))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _headers(self) -> dict[str, str]:
        return {k.lower(): ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in self.headers.items()}

    def _json(self, status: int, doc: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, chunks: Iterator[bytes]) -> None:
        """A 200 event stream in chunked encoding; a :class:`_Cut` from ``chunks`` closes it mid-way."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
        except _Cut:
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut_json(self) -> None:
        """A 200 whose JSON body stops part way and whose connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "4096")
        self.end_headers()
        self.wfile.write(b'{"id": "msg_cut", "type": "mess')
        self.wfile.flush()
        self.close_connection = True

    # -- routes
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        headers = self._headers()
        if path.rstrip("/").endswith("/models"):
            self.model._record(RecordedRequest("other", "GET", self.path, headers, None, answer="models"))
            self._json(200, {"object": "list", "data": [], "models": []})
            return
        self.model._record(RecordedRequest("other", "GET", self.path, headers, None, answer="not found"))
        self._json(404, {"error": {"type": "not_found_error", "message": f"no route {path}"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        headers = self._headers()
        body = self._body()
        if path.endswith("/messages/count_tokens"):
            self.model._record(RecordedRequest("count_tokens", "POST", self.path, headers, body, answer="count"))
            self._json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
        elif path.endswith("/messages"):
            _Anthropic(self, headers, body).answer()
        elif path.endswith("/responses"):
            _Responses(self, headers, body).answer()
        elif path.endswith("/chat/completions"):
            _Chat(self, headers, body).answer()
        else:
            self.model._record(RecordedRequest("other", "POST", self.path, headers, body, answer="not found"))
            self._json(404, {"error": {"type": "not_found_error", "message": f"no route {path}"}})


def _sse(event: str | None, data: Mapping[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


# -- conversations ---------------------------------------------------------------------------------------------------


class _Api(abc.ABC):
    """One request of one wire format: its conversation read, then answered (each format says how)."""

    api = ""

    def __init__(self, handler: _Handler, headers: dict[str, str], body: Any) -> None:
        self.h = handler
        self.server = handler.model
        self.headers = headers
        self.body = body if isinstance(body, dict) else {}
        self.stream = bool(self.body.get("stream"))
        self.model_name = str(self.body.get("model") or "model")

    @abc.abstractmethod
    def entries(self) -> list[tuple[str, list[str]]]:
        """The conversation as (``user``|``assistant``|``tool``, texts) entries, in order."""
        ...

    def side(self) -> bool:
        """Whether the request is outside the conversation (no tools): answered with the default text."""
        return False

    def answer(self) -> None:
        entries = self.entries()
        task, attempt = task_of([t for role, texts in entries if role == "user" for t in texts])
        turn_no = _turn_number(entries)
        record = RecordedRequest(self.api, "POST", self.h.path, self.headers, self.body, task, attempt)
        turn, failure = (None, None) if self.side() else self.server._serve(self.api, task, attempt, turn_no)
        if turn is None:
            self.server._record(attrs.evolve(record, answer="default"))
            self.play(Turn(text=self.server.script.default))
            return
        record = attrs.evolve(record, turn=turn_no)
        if failure is None:
            self.server._record(attrs.evolve(record, answer="turn"))
            self.play(turn)
        elif failure.cut:
            self.server._record(attrs.evolve(record, answer="cut"))
            if self.stream:
                self.h._stream(self.cut_events(turn))
            else:
                self.h._cut_json()
        else:
            status = int(failure.status or 500)
            self.server._record(attrs.evolve(record, answer=f"failure {status}"))
            extra = {} if failure.retry_after is None else {"retry-after": _seconds(failure.retry_after)}
            self.h._json(status, self.error_body(status, failure.message), {"x-should-retry": "true", **extra}
                         if status in (408, 409, 429) or status >= 500 else extra)  # fmt: skip

    @abc.abstractmethod
    def play(self, turn: Turn) -> None: ...

    @abc.abstractmethod
    def cut_events(self, turn: Turn) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def error_body(self, status: int, message: str | None) -> Any: ...


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _turn_number(entries: Sequence[tuple[str, list[str]]]) -> int:
    """How many model answers follow the task's prompt (the first user entry whose text starts with ``Task``)."""
    start = 0
    for i, (role, texts) in enumerate(entries):
        if role == "user" and any(t.lstrip().startswith("Task ") for t in texts):
            start = i + 1
            break
    count, previous = 0, ""
    for role, _ in entries[start:]:
        if role == "assistant" and previous != "assistant":
            count += 1
        previous = role
    return count


def _all_texts(body: Any) -> Iterator[str]:
    if isinstance(body, str):
        yield body
    elif isinstance(body, list):
        for item in body:
            yield from _all_texts(item)
    elif isinstance(body, dict):
        for key, value in body.items():
            if key in ("text", "content", "system", "instructions", "input", "description", "prompt") and isinstance(
                value, str
            ):
                yield value
            elif isinstance(value, (list, dict)):
                yield from _all_texts(value)


def _texts_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            out.append(block["text"])
    return out


# -- Anthropic Messages (Claude Code) --------------------------------------------------------------------------------

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                     403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                     429: "rate_limit_error", 529: "overloaded_error"}  # fmt: skip


class _Anthropic(_Api):
    api = "anthropic"

    def entries(self) -> list[tuple[str, list[str]]]:
        out: list[tuple[str, list[str]]] = []
        for msg in self.body.get("messages") or []:
            if not isinstance(msg, dict):
                continue
            content = msg.get("content")
            if msg.get("role") == "assistant":
                out.append(("assistant", _texts_of(content)))
                continue
            blocks = content if isinstance(content, list) else []
            if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks):
                out.append(("tool", []))
            out.append(("user", _texts_of(content)))
        return out

    def side(self) -> bool:
        return not self.body.get("tools")

    def blocks(self, turn: Turn) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if turn.text:
            out.append({"type": "text", "text": turn.text})
        for call in turn.calls:
            name, args = _claude_tool(call)
            out.append({"type": "tool_use", "id": self.server._next_id("toolu"), "name": name, "input": args})
        return out

    def message(self, turn: Turn, blocks: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.server._next_id("msg"), "type": "message", "role": "assistant", "model": self.model_name,
                "content": blocks, "stop_reason": "tool_use" if turn.calls else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": turn.usage.input_tokens, "output_tokens": turn.usage.output_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}  # fmt: skip

    def play(self, turn: Turn) -> None:
        blocks = self.blocks(turn)
        message = self.message(turn, blocks)
        if not self.stream:
            self.h._json(200, message)
            return
        self.h._stream(self.events(turn, message, blocks))

    def events(self, turn: Turn, message: dict[str, Any], blocks: list[dict[str, Any]],
               cut: bool = False) -> Iterator[bytes]:  # fmt: skip
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**message["usage"], "output_tokens": 1}}  # fmt: skip
        yield _sse("message_start", {"type": "message_start", "message": start})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                yield _sse("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}})  # fmt: skip
                text = block["text"]
                half = len(text) // 2
                for piece in (text[:half], text[half:]) if half else (text,):
                    yield _sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "text_delta", "text": piece}})  # fmt: skip
                    if cut:
                        raise _Cut
            else:
                yield _sse("content_block_start", {"type": "content_block_start", "index": i,
                           "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                             "input": {}}})  # fmt: skip
                args = json.dumps(block["input"])
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    yield _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": i,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                    if cut:
                        raise _Cut
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": i})
        yield _sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": turn.usage.output_tokens}})  # fmt: skip
        yield _sse("message_stop", {"type": "message_stop"})

    def cut_events(self, turn: Turn) -> Iterator[bytes]:
        blocks = self.blocks(turn) or [{"type": "text", "text": "..."}]
        return self.events(turn, self.message(turn, blocks), blocks, cut=True)

    def error_body(self, status: int, message: str | None) -> Any:
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message or _default_message(status)}}


def _claude_tool(call: Action) -> tuple[str, dict[str, Any]]:
    if call.kind == "write":
        return "Write", {"file_path": call.path, "content": call.content}
    if call.kind == "edit":
        return "Edit", {"file_path": call.path, "old_string": call.old, "new_string": call.new}
    if call.kind == "read":
        return "Read", {"file_path": call.path}
    if call.kind == "run":
        return "Bash", {"command": call.command, "description": "Run a command"}
    return str(call.name), dict(call.input)


def _default_message(status: int) -> str:
    if status == 429:
        return "Rate limited: too many requests, try again later"
    if status == 529:
        return "Overloaded"
    if status == 401:
        return "invalid x-api-key"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"error {status}"


# -- OpenAI Responses (Codex) ----------------------------------------------------------------------------------------

_ASSISTANT_ITEMS = frozenset({"function_call", "custom_tool_call", "local_shell_call", "reasoning", "web_search_call"})
_TOOL_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output", "local_shell_call_output"})


def _openai_error(status: int, message: str | None) -> Any:
    kind = {401: "invalid_request_error", 403: "invalid_request_error", 429: "rate_limit_exceeded"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded", 402: "insufficient_quota"}.get(status)
    if message is None and status == 401:  # OpenAI's own words: litellm reads them as an AuthenticationError
        message = f"Incorrect API key provided: {KEY[:8]}****. You can find your API key at https://platform.openai.com/account/api-keys."
    return {"error": {"message": message or _default_message(status), "type": kind, "param": None, "code": code}}


class _Responses(_Api):
    api = "responses"

    def entries(self) -> list[tuple[str, list[str]]]:
        out: list[tuple[str, list[str]]] = []
        raw = self.body.get("input")
        for item in raw if isinstance(raw, list) else [{"role": "user", "content": raw}]:
            if not isinstance(item, dict):
                continue
            kind = item.get("type", "message")
            if kind == "message":
                role = item.get("role")
                out.append(("assistant" if role == "assistant" else "user", _texts_of(item.get("content"))))
            elif kind in _ASSISTANT_ITEMS:
                out.append(("assistant", []))
            elif kind in _TOOL_OUTPUTS:
                out.append(("tool", []))
        return out

    def tools(self) -> dict[str, str]:
        """The request's tools: name → type (``function``, ``custom`` …)."""
        out = {}
        for t in self.body.get("tools") or []:
            if isinstance(t, dict) and isinstance(t.get("name"), str):
                out[t["name"]] = str(t.get("type", "function"))
        return out

    def items(self, turn: Turn) -> list[dict[str, Any]]:
        tools = self.tools()
        out: list[dict[str, Any]] = []
        if turn.text:
            out.append({"type": "message", "id": self.server._next_id("msg"), "role": "assistant",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": turn.text, "annotations": []}]})  # fmt: skip
        for call in turn.calls:
            name, args, custom = _codex_tool(call, tools)
            call_id = self.server._next_id("call")
            if custom:
                out.append({"type": "custom_tool_call", "id": self.server._next_id("ctc"), "status": "completed",
                            "call_id": call_id, "name": name, "input": args})  # fmt: skip
            else:
                out.append({"type": "function_call", "id": self.server._next_id("fc"), "status": "completed",
                            "call_id": call_id, "name": name, "arguments": args})  # fmt: skip
        return out

    def response(self, turn: Turn, items: list[dict[str, Any]], status: str) -> dict[str, Any]:
        u = turn.usage
        return {"id": self.server._next_id("resp"), "object": "response", "created_at": int(time.time()),
                "status": status, "model": self.model_name, "output": items if status == "completed" else [],
                "usage": {"input_tokens": u.input_tokens, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": u.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": u.input_tokens + u.output_tokens}}  # fmt: skip

    def events(self, turn: Turn, cut: bool = False) -> Iterator[bytes]:
        items = self.items(turn)
        resp = self.response(turn, items, "in_progress")
        yield _sse("response.created", {"type": "response.created", "response": resp})
        for i, item in enumerate(items):
            yield _sse("response.output_item.added", {"type": "response.output_item.added", "output_index": i,
                                                      "item": {**item, "status": "in_progress"}})  # fmt: skip
            if cut:
                raise _Cut
            if item["type"] == "message":
                text = item["content"][0]["text"]
                yield _sse("response.output_text.delta", {"type": "response.output_text.delta",
                                                          "item_id": item["id"], "output_index": i,
                                                          "content_index": 0, "delta": text})  # fmt: skip
            yield _sse("response.output_item.done", {"type": "response.output_item.done", "output_index": i,
                                                     "item": item})  # fmt: skip
        if cut:
            raise _Cut
        done = {**resp, "status": "completed", "output": items}
        yield _sse("response.completed", {"type": "response.completed", "response": done})

    def play(self, turn: Turn) -> None:
        if not self.stream:
            self.h._json(200, self.response(turn, self.items(turn), "completed"))
            return
        self.h._stream(self.events(turn))

    def cut_events(self, turn: Turn) -> Iterator[bytes]:
        return self.events(turn if turn.text or turn.calls else Turn(text="..."), cut=True)

    def error_body(self, status: int, message: str | None) -> Any:
        return _openai_error(status, message)


def _codex_tool(call: Action, tools: Mapping[str, str]) -> tuple[str, str, bool]:
    """(tool name, arguments or input, whether it is a custom (free-form) tool) for one call, by the tools offered."""
    if call.kind == "tool":
        name = str(call.name)
        custom = tools.get(name) == "custom"
        raw = call.input.get("input") if custom else None
        return name, str(raw) if isinstance(raw, str) else json.dumps(dict(call.input)), custom
    if call.kind in ("write", "edit") and "apply_patch" in tools:
        patch = _patch(call)
        if tools["apply_patch"] == "custom":
            return "apply_patch", patch, True
        return "apply_patch", json.dumps({"input": patch}), False
    command = _shell_command(call)
    if "exec_command" in tools or not tools:
        return "exec_command", json.dumps({"cmd": command}), False
    if "shell_command" in tools:
        return "shell_command", json.dumps({"command": command}), False
    return "shell", json.dumps({"command": ["bash", "-lc", command]}), False


def _shell_command(call: Action) -> str:
    if call.kind == "run":
        return str(call.command)
    if call.kind == "read":
        return f"cat {shlex.quote(str(call.path))}"
    if call.kind == "write":
        return f"printf '%s' {shlex.quote(str(call.content))} > {shlex.quote(str(call.path))}"
    path = shlex.quote(str(call.path))  # edit, without apply_patch: python replaces the text
    code = ("import sys,pathlib;p=pathlib.Path(sys.argv[1]);t=p.read_text();"
            "assert sys.argv[2] in t;p.write_text(t.replace(sys.argv[2],sys.argv[3],1))")  # fmt: skip
    return f"python3 -c {shlex.quote(code)} {path} {shlex.quote(str(call.old))} {shlex.quote(str(call.new))}"


def _patch(call: Action) -> str:
    """An ``apply_patch`` patch: a whole file added (``write``), or ``old`` lines replaced by ``new`` (``edit``)."""
    if call.kind == "write":
        lines = str(call.content).splitlines()
        body = "".join(f"+{line}\n" for line in lines)
        return f"*** Begin Patch\n*** Add File: {call.path}\n{body}*** End Patch\n"
    old = "".join(f"-{line}\n" for line in str(call.old).splitlines())
    new = "".join(f"+{line}\n" for line in str(call.new).splitlines())
    return f"*** Begin Patch\n*** Update File: {call.path}\n@@\n{old}{new}*** End Patch\n"


# -- OpenAI chat completions (Aider, through litellm) ----------------------------------------------------------------


class _Chat(_Api):
    api = "chat"

    def entries(self) -> list[tuple[str, list[str]]]:
        out: list[tuple[str, list[str]]] = []
        for msg in self.body.get("messages") or []:
            if not isinstance(msg, dict):
                continue
            role = msg.get("role")
            if role == "assistant":
                out.append(("assistant", _texts_of(msg.get("content"))))
            elif role == "tool":
                out.append(("tool", []))
            elif role == "user":
                out.append(("user", _texts_of(msg.get("content"))))
        return out

    def edit_format(self) -> str:
        """``diff`` when aider's system prompt asks for SEARCH/REPLACE blocks, else ``whole``."""
        for msg in self.body.get("messages") or []:
            system = isinstance(msg, dict) and msg.get("role") == "system"
            if system and any("SEARCH/REPLACE" in t for t in _texts_of(msg.get("content"))):
                return "diff"
        return "whole"

    def content(self, turn: Turn) -> str:
        parts = [turn.text] if turn.text else []
        fmt = self.edit_format()
        for call in turn.calls:
            block = _aider_block(call, fmt)
            if block:
                parts.append(block)
        return "\n\n".join(parts) + "\n"

    def completion(self, turn: Turn, text: str) -> dict[str, Any]:
        u = turn.usage
        return {"id": self.server._next_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                          "total_tokens": u.input_tokens + u.output_tokens}}  # fmt: skip

    def chunks(self, turn: Turn, text: str, cut: bool = False) -> Iterator[bytes]:
        cid, created = self.server._next_id("chatcmpl"), int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
            return _sse(None, {"id": cid, "object": "chat.completion.chunk", "created": created,
                               "model": self.model_name,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more})  # fmt: skip

        yield chunk({"role": "assistant", "content": ""})
        half = len(text) // 2
        yield chunk({"content": text[:half]})
        if cut:
            raise _Cut
        yield chunk({"content": text[half:]})
        u = turn.usage
        yield chunk({}, "stop", usage={"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                                       "total_tokens": u.input_tokens + u.output_tokens})  # fmt: skip
        yield _sse(None, "[DONE]")

    def play(self, turn: Turn) -> None:
        text = self.content(turn)
        if not self.stream:
            self.h._json(200, self.completion(turn, text))
            return
        self.h._stream(self.chunks(turn, text))

    def cut_events(self, turn: Turn) -> Iterator[bytes]:
        return self.chunks(turn, self.content(turn) or "...", cut=True)

    def error_body(self, status: int, message: str | None) -> Any:
        return _openai_error(status, message)


def _aider_block(call: Action, fmt: str) -> str | None:
    """An aider edit block: the whole file (``whole``), or a SEARCH/REPLACE block (``diff``; a ``write`` is one with
    an empty SEARCH, which aider applies to a new file).  ``read`` and ``run`` have no block: aider's files are in its
    chat already and it runs no commands of the model's here."""
    fence = "````" if "```" in str(call.content or "") + str(call.new or "") else "```"
    if call.kind == "write" and fmt == "whole":
        content = str(call.content)
        return f"{call.path}\n{fence}\n{content}{'' if content.endswith(chr(10)) else chr(10)}{fence}"
    if call.kind == "write":
        content = str(call.content).rstrip("\n")
        return f"{call.path}\n{fence}\n<<<<<<< SEARCH\n=======\n{content}\n>>>>>>> REPLACE\n{fence}"
    if call.kind == "edit":
        return (f"{call.path}\n{fence}\n<<<<<<< SEARCH\n{str(call.old).rstrip(chr(10))}\n=======\n"
                f"{str(call.new).rstrip(chr(10))}\n>>>>>>> REPLACE\n{fence}")  # fmt: skip
    return None
