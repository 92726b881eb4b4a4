"""The scripted agent's script: the YAML format (version 1), its typed model, and reading it with one-line errors.

A script says, for each task, what each attempt does: attempt *n* of a task
does item *n* (the last item repeats) — writes, appends and deletes files, runs
commands, then succeeds or fails with the failure class the script names.
``docs/scripted-agent.md`` describes the format::

    version: 1
    planner:                # optional: what it returns when asked to plan
      prd: prd.md           # paths relative to this script file
      tasks: tasks.yaml
    refinement:             # optional: the new tasks of refinement round n (item n; the last repeats)
      - tasks: more-tasks.yaml
    tasks:
      T1:
        - actions:
            - write:  {path: src/calc.py, content: "def add(a, b):\\n    return a + b\\n"}
            - append: {path: README.md, content: "more\\n"}
            - delete: {path: old.py}
            - run: "python tools/gen.py"
          summary: added calc
          cost_usd: 0.02
        - fail: {kind: transient, message: "rate limited"}

A malformed script is a :class:`ScriptError` when it is loaded, naming the
file, the line and the field::

    demo.yaml:9: tasks.T1[1].fail.kind: unknown failure class 'oops' (one of transient, …)

:class:`~maestro.agents.scripted.ScriptedAgent` does what a script says.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from maestro.core import yamlio
from maestro.core.errors import ScriptError, YamlError
from maestro.core.records import AGENT_STATUSES, FAILURE_CLASSES, TASK_ID
from maestro.core.text import InputTooLarge, read_input, shown

__all__ = [
    "ACTIONS",
    "SCRIPT_VERSION",
    "Action",
    "AttemptScript",
    "Failure",
    "PlannerScript",
    "Script",
    "load_script",
    "parse_script",
    "script_from_mapping",
]

SCRIPT_VERSION = 1
ACTIONS = ("write", "append", "delete", "run")
_TOP = ("version", "planner", "refinement", "tasks")
_ROUND = ("tasks", "summary", "fail", "cost_usd", "delay_s", "tokens")
_ATTEMPT = ("actions", "summary", "fail", "cost_usd", "delay_s", "tokens")
_PLANNER = ("prd", "tasks", "summary", "fail", "cost_usd", "delay_s", "tokens")
_ACTION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "write": ("path", "content", "executable"),
    "append": ("path", "content"),
    "delete": ("path",),
}
_FAIL = ("kind", "message", "status")


# -- the script -----------------------------------------------------------------------------------------------------


@attrs.frozen
class Action:
    """One step: ``write``/``append`` ``content`` to ``path``, ``delete`` ``path``, or ``run`` ``command``."""

    kind: str
    path: str | None = None
    content: str | None = None
    executable: bool | None = None
    command: str | None = None
    line: int | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Failure:
    """How a scripted attempt fails: its failure class, the summary, and the status (``failed`` by default)."""

    kind: str
    message: str
    status: str = "failed"


@attrs.frozen
class AttemptScript:
    """One item of a task's list: the actions, then success with ``summary`` or the ``fail`` given."""

    actions: tuple[Action, ...] = ()
    summary: str = ""
    fail: Failure | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    delay_s: float = 0.0
    line: int | None = attrs.field(default=None, eq=False)


@attrs.frozen
class PlannerScript:
    """The ``planner`` section: the PRD and task files to answer with (joined to the script's folder), or a failure."""

    prd: Path | None = None
    tasks: Path | None = None
    summary: str = ""
    fail: Failure | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    delay_s: float = 0.0


@attrs.frozen
class Script:
    """A parsed script: task id → its attempts, the planner, its refinement rounds, and where it was read from."""

    tasks: Mapping[str, tuple[AttemptScript, ...]]
    planner: PlannerScript | None
    source: str
    base_dir: Path
    refinement: tuple[PlannerScript, ...] = ()

    def refinement_round(self, n: int) -> PlannerScript | None:
        """What refinement round ``n`` (1-based) answers with (the last item repeats), or None without a section."""
        if not self.refinement:
            return None
        return self.refinement[min(max(n, 1), len(self.refinement)) - 1]

    def attempt(self, task: str, attempt: int) -> tuple[AttemptScript, int] | None:
        """The item attempt ``attempt`` of ``task`` uses (the last repeats) and its 1-based index, or None."""
        items = self.tasks.get(task)
        if not items:
            return None
        index = min(max(attempt, 1), len(items))
        return items[index - 1], index


# -- reading --------------------------------------------------------------------------------------------------------


def load_script(path: str | Path) -> Script:
    """Read a script file; paths in it are relative to its folder."""
    p = Path(path)
    try:
        raw = read_input(p)  # at most MAX_INPUT_BYTES: a larger file is refused before it is read
    except FileNotFoundError:
        raise ScriptError("no such file", path=str(p)) from None
    except IsADirectoryError:
        raise ScriptError("is a directory, not a script", path=str(p)) from None
    except InputTooLarge as exc:
        raise ScriptError(exc.problem, path=str(p)) from None
    except OSError as exc:
        raise ScriptError(f"cannot read: {exc.strerror or exc}", path=str(p)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ScriptError(f"not UTF-8 text (byte {exc.start})", path=str(p), line=line) from None
    return parse_script(text, p)


def parse_script(text: str, source: str | Path = "<script>", *, base_dir: str | Path | None = None) -> Script:
    """Read a script's text.  ``base_dir`` (default: the folder of ``source``) anchors the planner's paths."""
    src = str(source)
    try:
        doc = yamlio.load(text, rt=True)
    except YamlError as exc:
        problem = f"YAML syntax: {exc.problem}" if exc.kind == "syntax" else exc.problem
        raise ScriptError(problem, path=src, line=exc.line) from exc
    base = Path(base_dir) if base_dir is not None else Path(src).parent
    return _Reader(src, base).script(doc)


def script_from_mapping(data: Mapping[str, Any], base_dir: str | Path, source: str = "<mapping>") -> Script:
    """A script from plain data (as YAML would load it); errors name ``source`` and the field, without lines."""
    return _Reader(source, Path(base_dir)).script(data)


def _line(node: Any, key: Any) -> int | None:
    """The 1-based line of ``key`` in a ruamel mapping, or of item ``key`` in a ruamel list (None for plain data)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        pos = lc.item(key) if isinstance(node, list) else lc.key(key)
        return int(pos[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


class _Reader:
    """Builds a :class:`Script`, each error naming the source, the line and the field path."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def error(self, problem: str, line: int | None, field: str | None) -> ScriptError:
        return ScriptError(problem, path=self.source, line=line, field=field)

    def mapping(self, value: Any, known: Sequence[str], line: int | None, field: str | None) -> Mapping[Any, Any]:
        if not isinstance(value, Mapping):
            raise self.error(f"expected a mapping, not {shown(value)}", line, field)
        for key in value:
            if key not in known:
                match = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {match[0]!r}?" if match else f"known: {', '.join(known)}"
                sub = f"{field}.{key}" if field else str(key)
                raise self.error(f"unknown field ({hint})", _line(value, key) or line, sub)
        return value

    def string(self, node: Mapping[Any, Any], key: str, line: int | None, field: str, *, empty: bool = True) -> str:
        value = node[key]
        if not isinstance(value, str) or (not empty and not value.strip()):
            kind = "a string" if empty else "a non-empty string"
            raise self.error(f"expected {kind}, not {shown(value)}", _line(node, key) or line, field)
        return str(value)

    def number(self, node: Mapping[Any, Any], key: str, line: int | None, field: str) -> float:
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise self.error(f"expected a number >= 0, not {shown(value)}", _line(node, key) or line, field)
        return float(value)

    def count(self, node: Mapping[Any, Any], key: str, line: int | None, field: str) -> int:
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(f"expected an integer >= 0, not {shown(value)}", _line(node, key) or line, field)
        return int(value)

    # -- sections ---------------------------------------------------------------------------------------------------

    def script(self, doc: Any) -> Script:
        if not isinstance(doc, Mapping):
            raise self.error("a script is a mapping with 'version: 1' and 'tasks:'", 1 if doc is None else None, None)
        self.mapping(doc, _TOP, 1, None)
        if "version" not in doc:
            raise self.error(f"missing 'version: {SCRIPT_VERSION}'", 1, "version")
        version = doc["version"]
        if type(version) is not int or version != SCRIPT_VERSION:
            raise self.error(f"unknown version {shown(version)} (this maestro reads version {SCRIPT_VERSION})",
                             _line(doc, "version"), "version")  # fmt: skip
        tasks: dict[str, tuple[AttemptScript, ...]] = {}
        raw = doc.get("tasks")
        if raw is not None:
            at = _line(doc, "tasks")
            self.mapping(raw, [str(k) for k in raw] if isinstance(raw, Mapping) else (), at, "tasks")
            for tid in raw:
                tasks[str(tid)] = self.task(raw, tid, _line(raw, tid) or at)
        planner = None
        if doc.get("planner") is not None:
            planner = self.planner(doc["planner"], _line(doc, "planner"))
        rounds: tuple[PlannerScript, ...] = ()
        if doc.get("refinement") is not None:
            raw, at = doc["refinement"], _line(doc, "refinement")
            if not isinstance(raw, list) or not raw:
                raise self.error(f"expected a list of rounds, not {shown(raw)}", at, "refinement")
            rounds = tuple(self.round(raw[i], _line(raw, i) or at, f"refinement[{i}]") for i in range(len(raw)))
        return Script(tasks, planner, self.source, self.base_dir, rounds)

    def task(self, node: Mapping[Any, Any], tid: Any, line: int | None) -> tuple[AttemptScript, ...]:
        field = f"tasks.{tid}"
        if not isinstance(tid, str) or not TASK_ID.match(tid):
            raise self.error(f"a task id matches [A-Za-z0-9._-]+, not {tid!r}", line, field)
        items = node[tid]
        if not isinstance(items, list) or not items:
            raise self.error(f"expected a list of attempts, not {shown(items)}", line, field)
        return tuple(self.attempt(items[i], _line(items, i) or line, f"{field}[{i}]") for i in range(len(items)))

    def attempt(self, item: Any, line: int | None, field: str) -> AttemptScript:
        if item is None:
            return AttemptScript(line=line)
        node = self.mapping(item, _ATTEMPT, line, field)
        values: dict[str, Any] = self.common(node, line, field)
        if "actions" in node:
            actions = node["actions"]
            at = _line(node, "actions") or line
            if not isinstance(actions, list):
                raise self.error(f"expected a list of actions, not {shown(actions)}", at, f"{field}.actions")
            values["actions"] = tuple(
                self.action(actions[i], _line(actions, i) or at, f"{field}.actions[{i}]") for i in range(len(actions))
            )
        return AttemptScript(**values, line=line)

    def common(self, node: Mapping[Any, Any], line: int | None, field: str) -> dict[str, Any]:
        """The fields attempts and the planner share: summary, fail, cost_usd, delay_s, tokens."""
        values: dict[str, Any] = {}
        if "summary" in node:
            values["summary"] = self.string(node, "summary", line, f"{field}.summary")
        if "cost_usd" in node:
            values["cost_usd"] = self.number(node, "cost_usd", line, f"{field}.cost_usd")
        if "delay_s" in node:
            values["delay_s"] = self.number(node, "delay_s", line, f"{field}.delay_s")
        if "tokens" in node:
            at = _line(node, "tokens") or line
            tokens = self.mapping(node["tokens"], ("input", "output"), at, f"{field}.tokens")
            if "input" in tokens:
                values["input_tokens"] = self.count(tokens, "input", at, f"{field}.tokens.input")
            if "output" in tokens:
                values["output_tokens"] = self.count(tokens, "output", at, f"{field}.tokens.output")
        if "fail" in node:
            values["fail"] = self.failure(node["fail"], _line(node, "fail") or line, f"{field}.fail")
        return values

    def failure(self, value: Any, line: int | None, field: str) -> Failure:
        node = self.mapping(value, _FAIL, line, field)
        if "kind" not in node:
            raise self.error(f"missing (one of {', '.join(FAILURE_CLASSES)})", line, f"{field}.kind")
        kind = node["kind"]
        if kind not in FAILURE_CLASSES:
            raise self.error(f"unknown failure class {shown(kind)} (one of {', '.join(FAILURE_CLASSES)})",
                             _line(node, "kind") or line, f"{field}.kind")  # fmt: skip
        message = self.string(node, "message", line, f"{field}.message") if "message" in node else ""
        status = "failed"
        if "status" in node:
            status = node["status"]
            allowed = [s for s in AGENT_STATUSES if s != "succeeded"]
            if status not in allowed:
                raise self.error(f"unknown status {shown(status)} (one of {', '.join(allowed)})",
                                 _line(node, "status") or line, f"{field}.status")  # fmt: skip
        return Failure(str(kind), message or f"scripted {kind} failure", str(status))

    def action(self, item: Any, line: int | None, field: str) -> Action:
        if not isinstance(item, Mapping) or len(item) != 1 or next(iter(item)) not in ACTIONS:
            raise self.error(f"an action is one of {', '.join(ACTIONS)}: a mapping with one of these keys", line,
                             field)  # fmt: skip
        kind = str(next(iter(item)))
        sub = f"{field}.{kind}"
        if kind == "run":
            command = self.string(item, "run", line, sub, empty=False)
            return Action("run", command=command, line=line)
        node = self.mapping(item[kind], _ACTION_FIELDS[kind], line, sub)
        for required in _ACTION_FIELDS[kind][:2]:
            if required not in node:
                raise self.error("missing", line, f"{sub}.{required}")
        path = self.string(node, "path", line, f"{sub}.path", empty=False)
        content = self.string(node, "content", line, f"{sub}.content") if "content" in node else None
        executable = None
        if "executable" in node:
            executable = node["executable"]
            if not isinstance(executable, bool):
                raise self.error(f"expected true or false, not {shown(executable)}",
                                 _line(node, "executable") or line, f"{sub}.executable")  # fmt: skip
        return Action(kind, path=path, content=content, executable=executable, line=line)

    def round(self, value: Any, line: int | None, field: str) -> PlannerScript:
        """A refinement round: the file of its new tasks (relative to the script), or a failure."""
        node = self.mapping(value, _ROUND, line, field)
        values = self.common(node, line, field)
        if "tasks" in node:
            at = _line(node, "tasks") or line
            path = self.base_dir / self.string(node, "tasks", at, f"{field}.tasks", empty=False)
            if not path.is_file():
                raise self.error(f"no such file: {path}", at, f"{field}.tasks")
            values["tasks"] = path
        elif "fail" not in values:
            raise self.error("missing (or give a fail)", line, f"{field}.tasks")
        return PlannerScript(**values)

    def planner(self, value: Any, line: int | None) -> PlannerScript:
        node = self.mapping(value, _PLANNER, line, "planner")
        values = self.common(node, line, "planner")
        for key in ("prd", "tasks"):
            if key in node:
                at = _line(node, key) or line
                rel = self.string(node, key, at, f"planner.{key}", empty=False)
                path = self.base_dir / rel
                if not path.is_file():
                    raise self.error(f"no such file: {path}", at, f"planner.{key}")
                values[key] = path
            elif "fail" not in values:
                raise self.error("missing (or give planner.fail)", line, f"planner.{key}")
        return PlannerScript(**values)
