"""A model script: what a scripted model server plays to a real coding-agent CLI, per task and attempt.

The server (:mod:`maestro.agents.model_server`) recognises a task by the line
``Task <id>: <title>`` that starts maestro's prompt, and the attempt by the line
``This is attempt <n>`` of a later attempt's prompt.  A script says, for each
task, what each attempt's model turns are (attempt *n* plays item *n*; the last
item repeats, as in the scripted agent's script)::

    version: 1
    default: "Done."                 # the answer to a request of no scripted task, or past the last turn
    tasks:
      T1:
        - turns:                     # attempt 1
            - write: {path: calc.py, content: "def add(a, b):\\n    return a + b\\n"}
            - text: "Wrote calc.py."
        - turns:                     # attempt 2 (and any later one)
            - fail: {status: 529}    # the first request of this turn is answered 529 overloaded
              read: calc.py
            - edit: {path: calc.py, old: "return a + b", new: "return int(a) + int(b)"}
            - run: "python -c 'import calc'"
              usage: {input_tokens: 900, output_tokens: 60}
            - text: "Done."

A turn holds what the model says in one answer: ``text``, and tool calls in a
portable vocabulary that each CLI's own tools carry out — ``write`` (a whole
file), ``edit`` (``old`` replaced by ``new``), ``read``, ``run`` (a shell
command) — or ``tool`` (a raw call by name, for the tools of one CLI, e.g.
Claude Code's ``Agent``), or ``calls`` (several of these in one answer).  A
turn with a tool call ends with the CLI running it and asking again; a turn of
text only ends the conversation.  ``usage`` is the token usage the answer
reports.  ``fail`` is one failure or a list of them answered *before* the turn
is played: ``status`` (429 with ``retry_after``, 529, 401, 500 …, with the
API's error body), or ``cut: true`` (a 200 whose stream stops mid-answer and
the connection closes); each is repeated ``times`` times (default 1, ``null``:
every request, so the turn is never played).

A malformed script is a :class:`~maestro.core.errors.ScriptError` naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from maestro.core import yamlio
from maestro.core.errors import ScriptError, YamlError

__all__ = [
    "ACTIONS",
    "Action",
    "AttemptTurns",
    "Failure",
    "ModelScript",
    "Turn",
    "Usage",
    "attempt_of",
    "load_model_script",
    "model_script",
    "task_of",
]

ACTIONS = ("write", "edit", "read", "run", "tool")
_TOP = ("version", "default", "tasks")
_ATTEMPT = ("turns",)
_TURN = ("text", "calls", "usage", "fail", *ACTIONS)
_FIELDS: Mapping[str, tuple[str, ...]] = {
    "write": ("path", "content"),
    "edit": ("path", "old", "new"),
    "read": ("path",),
    "run": ("command",),
    "tool": ("name", "input"),
}
_FAIL = ("status", "cut", "retry_after", "times", "message")
_USAGE = ("input_tokens", "output_tokens")

_TASK_LINE = re.compile(r"^Task (\S+?): ", re.MULTILINE)
_ATTEMPT_LINE = re.compile(r"^This is attempt (\d+);", re.MULTILINE)


@attrs.frozen
class Action:
    """One tool call: ``write`` ``content`` to ``path``, ``edit`` ``old`` to ``new`` in ``path``, ``read`` ``path``,
    ``run`` ``command``, or a raw ``tool`` call ``name`` with ``input``."""

    kind: str
    path: str | None = None
    content: str | None = None
    old: str | None = None
    new: str | None = None
    command: str | None = None
    name: str | None = None
    input: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Usage:
    """The token usage an answer reports."""

    input_tokens: int = 100
    output_tokens: int = 20


@attrs.frozen
class Failure:
    """An HTTP failure answered instead of a turn: ``status`` (with ``retry_after`` seconds for a 429), or ``cut``
    (the stream starts and the connection closes mid-answer); ``times`` requests in a row (None: every one)."""

    status: int | None = None
    cut: bool = False
    retry_after: float | None = None
    times: int | None = 1
    message: str | None = None


@attrs.frozen
class Turn:
    """One answer of the model: text, tool calls, the usage it reports, and the failures answered before it."""

    text: str | None = None
    calls: tuple[Action, ...] = ()
    usage: Usage = Usage()
    fail: tuple[Failure, ...] = ()

    def failure_for(self, served: int) -> Failure | None:
        """The failure answered to the request number ``served`` (from 0) of this turn, or None: play the turn."""
        n = served
        for failure in self.fail:
            if failure.times is None or n < failure.times:
                return failure
            n -= failure.times
        return None


@attrs.frozen
class AttemptTurns:
    """The turns of one attempt."""

    turns: tuple[Turn, ...]


@attrs.frozen
class ModelScript:
    """A model script: per task, per attempt, the turns (see the module's docstring)."""

    tasks: Mapping[str, tuple[AttemptTurns, ...]] = attrs.field(factory=dict)
    default: str = "Done."

    def turns(self, task: str | None, attempt: int) -> tuple[Turn, ...] | None:
        """The turns of ``attempt`` of ``task`` (the last attempt's repeat), or None when the task is not scripted."""
        if task is None or task not in self.tasks:
            return None
        attempts = self.tasks[task]
        return attempts[min(attempt, len(attempts)) - 1].turns


def task_of(texts: Sequence[str]) -> tuple[str | None, int]:
    """The task id and attempt of a conversation, from its user texts in order: the first text that starts with
    ``Task <id>: `` (else the first such line anywhere); the attempt from ``This is attempt <n>;`` in it, else 1."""
    for text in texts:
        stripped = text.lstrip()
        m = _TASK_LINE.match(stripped)
        if m:
            return m.group(1), attempt_of(stripped)
    for text in texts:
        m = _TASK_LINE.search(text)
        if m:
            return m.group(1), attempt_of(text[m.start() :])
    return None, 1


def attempt_of(prompt: str) -> int:
    """The attempt a task prompt is for: ``This is attempt <n>;`` (maestro's later attempts), else 1."""
    m = _ATTEMPT_LINE.search(prompt)
    return int(m.group(1)) if m else 1


# -- reading ----------------------------------------------------------------------------------------------------------


def load_model_script(path: str | Path) -> ModelScript:
    """A model script from a YAML or JSON file (JSON is YAML)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"cannot read the model script: {exc}", path=where) from None
    try:
        data = yamlio.load(text, path=where)
    except YamlError as exc:
        raise ScriptError(exc.problem, path=where, line=exc.line) from None
    return model_script(data, where=where)


def model_script(data: Any, *, where: str = "<model script>") -> ModelScript:
    """A model script from its data (a mapping as in the module's docstring; a :class:`ModelScript` as it is)."""
    if isinstance(data, ModelScript):
        return data
    if isinstance(data, str):  # a JSON text
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ScriptError(f"not JSON: {exc}", path=where) from None
    top = _mapping(data, where, "", _TOP)
    version = top.get("version", 1)
    if version != 1:
        raise ScriptError(f"unknown version {version!r} (1 is the only one)", path=where, field="version")
    default = top.get("default", "Done.")
    if not isinstance(default, str):
        raise ScriptError(f"expected a string, not {default!r}", path=where, field="default")
    tasks_raw = top.get("tasks") or {}
    tasks = _mapping(tasks_raw, where, "tasks", None)
    out: dict[str, tuple[AttemptTurns, ...]] = {}
    for tid, attempts in tasks.items():
        field = f"tasks.{tid}"
        if not isinstance(attempts, list) or not attempts:
            raise ScriptError("expected a list of attempts ({turns: [...]})", path=where, field=field)
        out[str(tid)] = tuple(_attempt(a, where, f"{field}[{i}]") for i, a in enumerate(attempts))
    return ModelScript(out, default)


def _mapping(data: Any, where: str, field: str, keys: tuple[str, ...] | None) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ScriptError(f"expected a mapping, not {data!r}", path=where, field=field or None)
    if keys is not None:
        for key in data:
            if key not in keys:
                raise ScriptError(f"unknown key {key!r} (one of {', '.join(keys)})", path=where,
                                  field=f"{field}.{key}" if field else str(key))  # fmt: skip
    return data


def _attempt(data: Any, where: str, field: str) -> AttemptTurns:
    m = _mapping(data, where, field, _ATTEMPT)
    turns = m.get("turns")
    if not isinstance(turns, list):
        raise ScriptError("expected a list of turns", path=where, field=f"{field}.turns")
    return AttemptTurns(tuple(_turn(t, where, f"{field}.turns[{i}]") for i, t in enumerate(turns)))


def _turn(data: Any, where: str, field: str) -> Turn:
    if isinstance(data, str):
        return Turn(text=data)
    m = _mapping(data, where, field, _TURN)
    text = m.get("text")
    if text is not None and not isinstance(text, str):
        raise ScriptError(f"expected a string, not {text!r}", path=where, field=f"{field}.text")
    calls = [_action(k, m[k], where, f"{field}.{k}") for k in ACTIONS if k in m]
    raw_calls = m.get("calls", [])
    if not isinstance(raw_calls, list):
        raise ScriptError("expected a list of tool calls", path=where, field=f"{field}.calls")
    for i, call in enumerate(raw_calls):
        one = _mapping(call, where, f"{field}.calls[{i}]", ACTIONS)
        if len(one) != 1:
            raise ScriptError(f"expected one of {', '.join(ACTIONS)}", path=where, field=f"{field}.calls[{i}]")
        ((kind, value),) = one.items()
        calls.append(_action(kind, value, where, f"{field}.calls[{i}].{kind}"))
    usage = _usage(m.get("usage"), where, f"{field}.usage")
    raw_fail = m.get("fail", [])
    fails = raw_fail if isinstance(raw_fail, list) else [raw_fail]
    fail = tuple(_failure(f, where, f"{field}.fail") for f in fails)
    if text is None and not calls and not fail:
        raise ScriptError("a turn needs text, a tool call or a failure", path=where, field=field)
    return Turn(text, tuple(calls), usage, fail)


def _action(kind: str, value: Any, where: str, field: str) -> Action:
    if kind == "run" and isinstance(value, str):
        value = {"command": value}
    if kind == "read" and isinstance(value, str):
        value = {"path": value}
    m = _mapping(value, where, field, _FIELDS[kind])
    required = {"tool": ("name",), "edit": ("path", "old", "new")}.get(kind, _FIELDS[kind])
    for key in required:
        if key not in m:
            raise ScriptError("missing", path=where, field=f"{field}.{key}")
    for key, v in m.items():
        if key == "input":
            if not isinstance(v, Mapping):
                raise ScriptError(f"expected a mapping, not {v!r}", path=where, field=f"{field}.{key}")
        elif not isinstance(v, str):
            raise ScriptError(f"expected a string, not {v!r}", path=where, field=f"{field}.{key}")
    fields: dict[str, Any] = {k: (dict(v) if k == "input" else v) for k, v in m.items()}
    return Action(kind, **fields)


def _usage(data: Any, where: str, field: str) -> Usage:
    if data is None:
        return Usage()
    m = _mapping(data, where, field, _USAGE)
    for key, v in m.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ScriptError(f"expected a count (an integer >= 0), not {v!r}", path=where, field=f"{field}.{key}")
    return Usage(**m)


def _failure(data: Any, where: str, field: str) -> Failure:
    m = _mapping(data, where, field, _FAIL)
    status, cut = m.get("status"), m.get("cut", False)
    if not isinstance(cut, bool):
        raise ScriptError(f"expected true or false, not {cut!r}", path=where, field=f"{field}.cut")
    if cut == (status is not None):
        raise ScriptError("give a status or cut: true (one of them)", path=where, field=field)
    if status is not None and (not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599):
        raise ScriptError(f"expected an HTTP error status (400-599), not {status!r}", path=where,
                          field=f"{field}.status")  # fmt: skip
    retry = m.get("retry_after")
    if retry is not None and (not isinstance(retry, (int, float)) or isinstance(retry, bool) or retry < 0):
        raise ScriptError(f"expected seconds (>= 0), not {retry!r}", path=where, field=f"{field}.retry_after")
    times = m.get("times", 1)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ScriptError(f"expected a count >= 1 or null (always), not {times!r}", path=where,
                          field=f"{field}.times")  # fmt: skip
    message = m.get("message")
    if message is not None and not isinstance(message, str):
        raise ScriptError(f"expected a string, not {message!r}", path=where, field=f"{field}.message")
    return Failure(status, cut, None if retry is None else float(retry), times, message)
