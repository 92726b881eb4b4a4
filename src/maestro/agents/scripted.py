"""The scripted agent: a deterministic agent that does what a YAML script says.

It drives the demo, the tests and the benchmarks: for each task the script
lists attempts, and attempt *n* of a task does item *n* (the last item
repeats) — writes, appends and deletes files, runs commands, then succeeds or
fails with the failure class the script names.  ``docs/scripted-agent.md``
describes the format::

    version: 1
    planner:                # optional: what it returns when asked to plan
      prd: prd.md           # paths relative to this script file
      tasks: tasks.yaml
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

The agent itself never raises for what the script makes it do: an unknown
task, a path outside the repository, a command that fails or times out are
each a failed :class:`~maestro.core.records.AgentResult`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from maestro.agents.base import AgentError, AgentRequest, PlanOutcome, PlanRequest, transcript_paths, validate_plan
from maestro.agents.process import run_process
from maestro.agents.replay import (
    PLAN_TASK,
    ChangeError,
    Snapshot,
    capture_changes,
    changes_path,
    resolve_inside,
    snapshot,
    write_changes,
)
from maestro.core import yamlio
from maestro.core.errors import MaestroError, ScriptError, YamlError
from maestro.core.records import AGENT_STATUSES, FAILURE_CLASSES, TASK_ID, AgentResult
from maestro.core.text import shown, tail
from maestro.plan.prd import read_plan_text

__all__ = [
    "SCRIPT_VERSION",
    "Action",
    "AttemptScript",
    "Failure",
    "PlannerScript",
    "Script",
    "ScriptError",
    "ScriptedAgent",
    "load_script",
    "parse_script",
    "script_from_mapping",
]

log = logging.getLogger(__name__)

SCRIPT_VERSION = 1
ACTIONS = ("write", "append", "delete", "run")
_TOP = ("version", "planner", "tasks")
_ATTEMPT = ("actions", "summary", "fail", "cost_usd", "delay_s", "tokens")
_PLANNER = ("prd", "tasks", "summary", "fail", "cost_usd", "delay_s", "tokens")
_ACTION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "write": ("path", "content", "executable"),
    "append": ("path", "content"),
    "delete": ("path",),
}
_FAIL = ("kind", "message", "status")
_TAIL = 1000  # characters of a failing command's output kept in the summary


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
    """A parsed script: task id → its attempts, the planner, and where it was read from."""

    tasks: Mapping[str, tuple[AttemptScript, ...]]
    planner: PlannerScript | None
    source: str
    base_dir: Path

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
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScriptError("no such file", path=str(p)) from None
    except IsADirectoryError:
        raise ScriptError("is a directory, not a script", path=str(p)) from None
    except UnicodeDecodeError as exc:
        raise ScriptError(f"not UTF-8 text (byte {exc.start})", path=str(p)) from exc
    except OSError as exc:
        raise ScriptError(f"cannot read: {exc.strerror or exc}", path=str(p)) from exc
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
        return Script(tasks, planner, self.source, self.base_dir)

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


# -- the agent ------------------------------------------------------------------------------------------------------


class _Failed(Exception):
    """Ends an attempt early with a failed result."""

    def __init__(self, status: str, failure_class: str, summary: str) -> None:
        super().__init__(summary)
        self.status = status
        self.failure_class = failure_class
        self.summary = summary


class ScriptedAgent:
    """Does what its :class:`Script` says, deterministically.

    Attempt *n* of a task uses item *n* of the task's list (the last repeats),
    chosen from ``request.attempt`` alone: the agent keeps no state, so
    parallel calls on different tasks are safe.  An attempt

    1. sleeps ``delay_s`` (when that reaches ``request.timeout_s`` it sleeps
       the timeout and ends with status ``timeout``, class ``transient``, having done nothing);
    2. checks every path it will touch (an absolute path, ``..``, a symlink out
       of the repository, anything under ``.git/`` or ``.flow/`` fails it with
       class ``critical`` before anything is written);
    3. does the actions in order; a ``run`` is ``sh -c <command>`` in the
       working directory, killed when the attempt's time is up (status
       ``timeout``, class ``transient``); a non-zero exit fails the attempt
       with class ``test_failure`` and the output's tail in the summary;
    4. succeeds with ``summary``, or fails as ``fail`` says.

    ``duration_s`` is ``delay_s`` plus the measured time of ``run`` actions —
    0.0 for an attempt that only edits files — so results are reproducible.
    With ``request.session_dir`` set it writes the transcript
    (``agents/<task>.<attempt>.scripted.out``, with ``.err`` holding the
    commands' stderr) and the change file (``….changes.json``, see
    :mod:`maestro.agents.replay`).
    """

    name = "scripted"

    def __init__(self, script: Script) -> None:
        self.script = script

    @classmethod
    def load(cls, path: str | Path) -> ScriptedAgent:
        """The agent for the script file at ``path`` (:class:`ScriptError` if it is missing or malformed)."""
        return cls(load_script(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base_dir: str | Path = ".") -> ScriptedAgent:
        """The agent for a script given as plain data (tests); planner paths are relative to ``base_dir``."""
        return cls(script_from_mapping(data, base_dir))

    # -- tasks ------------------------------------------------------------------------------------------------------

    def run(self, request: AgentRequest) -> AgentResult:
        """Do attempt ``request.attempt`` of ``request.task`` in ``request.workdir``; never raises for the script."""
        task, attempt = request.task.id, request.attempt
        lines = [f"scripted: task {task}, attempt {attempt}"]
        errs: list[str] = []
        chosen = self.script.attempt(task, attempt)
        if chosen is None:
            known = ", ".join(self.script.tasks) or "none"
            summary = f"the script {self.script.source} has no task {task} (its tasks: {known})"
            lines.append(summary)
            result = self._result(request, "failed", "ambiguous", summary)
            self._save(request, lines, errs)
            return result
        item, index = chosen
        lines[0] += f" (item {index} of {len(self.script.tasks[task])})"
        root = Path(request.workdir).resolve()
        scope: list[str] | None = []
        for a in item.actions:
            if a.kind == "run":
                scope = None
            elif scope is not None:
                with contextlib.suppress(ChangeError):  # refused below, before anything is done
                    scope.append(self._target(root, a).relative_to(root).as_posix())
        before = snapshot(root, scope) if request.session_dir is not None else None
        ran: list[float] = []  # the measured durations of run actions, a killed one included
        try:
            for a in item.actions:
                if a.kind != "run":
                    self._target(root, a)
            started = time.monotonic()
            if 0 < request.timeout_s <= item.delay_s:
                time.sleep(request.timeout_s)
                raise _Failed("timeout", "transient", f"no answer within the timeout of {request.timeout_s:g} s")
            if item.delay_s > 0:
                time.sleep(item.delay_s)
            for a in item.actions:
                if a.kind == "run":
                    assert a.command is not None
                    remaining = request.timeout_s - (time.monotonic() - started)
                    self._run(request, a.command, remaining, lines=lines, errs=errs, ran=ran)
                else:
                    self._edit(root, a, lines)
            if item.fail is not None:
                raise _Failed(item.fail.status, item.fail.kind, item.fail.message)
            summary = item.summary or f"{len(item.actions)} action{'s' if len(item.actions) != 1 else ''} done"
            result = self._result(request, "succeeded", None, summary, item=item, ran_s=sum(ran))
        except ChangeError as exc:
            result = self._result(request, "failed", "critical", f"refused: {exc}", item=item, ran_s=sum(ran))
        except _Failed as exc:
            result = self._result(
                request, exc.status, exc.failure_class, exc.summary, item=item, ran_s=round(sum(ran), 3)
            )
        lines.append(f"result: {result.status}" + (f" ({result.failure_class})" if result.failure_class else ""))
        lines.extend(f"  {s}" for s in result.summary.splitlines())
        self._save(request, lines, errs, before=before)
        log.info("scripted %s attempt %d: %s", task, attempt, result.status)
        return result

    def _target(self, root: Path, action: Action) -> Path:
        assert action.path is not None
        return resolve_inside(root, action.path, follow_last=action.kind != "delete")

    def _edit(self, root: Path, action: Action, lines: list[str]) -> None:
        """Write, append or delete; the path is checked again (a ``run`` may have made a symlink since)."""
        real = self._target(root, action)
        path = action.path
        try:
            if action.kind == "delete":
                if real.is_dir() and not real.is_symlink():
                    shutil.rmtree(real)
                else:
                    real.unlink()
                lines.append(f"delete {path}")
                return
            data = (action.content or "").encode("utf-8")
            real.parent.mkdir(parents=True, exist_ok=True)
            with real.open("ab" if action.kind == "append" else "wb") as f:
                f.write(data)
            if action.executable is not None:
                real.chmod(0o755 if action.executable else 0o644)
            lines.append(f"{action.kind} {path} ({len(data)} bytes)")
        except FileNotFoundError:
            raise _Failed("failed", "implementation", f"{action.kind} {path}: no such file") from None
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise _Failed("failed", "implementation", f"{action.kind} {path}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise _Failed("failed", "critical", f"{action.kind} {path}: {exc.strerror or exc}") from None

    def _run(
        self,
        request: AgentRequest,
        command: str,
        remaining: float,
        *,
        lines: list[str],
        errs: list[str],
        ran: list[float],
    ) -> None:
        """Run one command, adding its duration to ``ran``; a failure raises :class:`_Failed`."""
        lines.append(f"run {command}")
        if remaining <= 0:
            raise _Failed(
                "timeout", "transient", f"run {command!r}: no time left of the {request.timeout_s:g} s timeout"
            )
        env = {**os.environ, "MAESTRO_TASK_ID": request.task.id, "MAESTRO_ATTEMPT": str(request.attempt)}
        out = run_process(["sh", "-c", command], cwd=Path(request.workdir), timeout_s=remaining, env=env)
        ran.append(round(out.duration_s, 3))
        lines.extend(f"  | {s}" for s in out.stdout.splitlines())
        lines.extend(f"  ! {s}" for s in out.stderr.splitlines())
        if out.stderr:
            errs.append(f"run {command}\n{out.stderr}")
        if out.missing:
            raise _Failed("failed", "critical", f"run {command!r}: {out.error}")
        if out.timed_out:
            lines.append("  killed at the timeout")
            raise _Failed("timeout", "transient", f"run {command!r}: killed at the timeout ({request.timeout_s:g} s)")
        lines.append(f"  exit {out.exit_code}")
        if out.exit_code != 0:
            output = tail(out.stdout + out.stderr, _TAIL)  # the summary is one log line
            summary = f"run {command!r} exited {out.exit_code}" + (f": {output}" if output else "")
            raise _Failed("failed", "test_failure", summary)

    # -- results and files ------------------------------------------------------------------------------------------

    def _result(
        self,
        request: AgentRequest,
        status: str,
        failure_class: str | None,
        summary: str,
        *,
        item: AttemptScript | None = None,
        ran_s: float = 0.0,
    ) -> AgentResult:
        """The result; ``duration_s`` is the timeout for a timed-out attempt, else ``delay_s`` plus ``ran_s``."""
        return _agent_result(
            self.name, request.session_dir, (request.task.id, request.attempt), (status, failure_class, summary),
            item=item,
            duration_s=request.timeout_s if status == "timeout" else round((item.delay_s if item else 0.0) + ran_s, 3),
        )  # fmt: skip

    def _save(
        self,
        request: AgentRequest | PlanRequest,
        lines: list[str],
        errs: list[str],
        *,
        before: Snapshot | None = None,
        task: str | None = None,
        attempt: int = 1,
    ) -> None:
        """Write the transcript and, given the snapshot taken before, the change file."""
        if request.session_dir is None:
            return
        if isinstance(request, AgentRequest):
            task, attempt = request.task.id, request.attempt
        assert task is not None
        paths = transcript_paths(request.session_dir, task, attempt, self.name)
        assert paths is not None
        try:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            paths[0].write_text("\n".join(lines) + "\n", encoding="utf-8")
            paths[1].write_text("".join(e if e.endswith("\n") else e + "\n" for e in errs), encoding="utf-8")
        except OSError as exc:
            raise AgentError(f"{paths[0]}: cannot write the transcript: {exc.strerror or exc}") from exc
        changes = changes_path(request.session_dir, task, attempt, self.name)
        assert changes is not None
        try:
            write_changes(changes, [] if before is None else capture_changes(Path(request.workdir), before))
        except MaestroError as exc:
            raise AgentError(f"{changes}: cannot record the changes: {exc}") from exc

    # -- planning ---------------------------------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """Answer with the planner section's PRD and tasks, validated with :func:`~maestro.agents.validate_plan`.

        No planner section: a failed result, class ``ambiguous``.  A plan that
        does not validate: failed, class ``implementation``, the error as summary.
        """
        planner = self.script.planner
        lines = [f"scripted: planning for {request.request.strip().splitlines()[0] if request.request.strip() else ''}"]

        def done(status: str, failure_class: str | None, summary: str) -> AgentResult:
            result = self._plan_result(request, status, failure_class, summary, planner)
            lines.append(f"result: {status}" + (f" ({failure_class})" if failure_class else ""))
            lines.extend(f"  {s}" for s in summary.splitlines())
            self._save(request, lines, [], task=PLAN_TASK)
            return result

        if planner is None:
            return PlanOutcome(done("failed", "ambiguous", f"the script {self.script.source} has no planner section"))
        if 0 < request.timeout_s <= planner.delay_s:
            time.sleep(request.timeout_s)
            return PlanOutcome(done("timeout", "transient", f"no answer within {request.timeout_s:g} s"))
        if planner.delay_s > 0:
            time.sleep(planner.delay_s)
        if planner.fail is not None:
            return PlanOutcome(done(planner.fail.status, planner.fail.kind, planner.fail.message))
        assert planner.prd is not None and planner.tasks is not None
        try:
            answer = {
                "prd_markdown": read_plan_text(planner.prd, "a PRD"),
                "tasks_yaml": read_plan_text(planner.tasks, "a tasks file"),
            }
        except MaestroError as exc:
            return PlanOutcome(done("failed", "critical", str(exc)))
        lines.append(f"answer: prd {planner.prd.name}, tasks {planner.tasks.name}")
        lines.append(json.dumps(answer, ensure_ascii=False))
        try:
            plan = validate_plan(answer, f"{self.script.source} planner")
        except MaestroError as exc:
            return PlanOutcome(done("failed", "implementation", str(exc)))
        summary = planner.summary or f"planned {len(plan.graph)} task{'s' if len(plan.graph) != 1 else ''}"
        return PlanOutcome(done("succeeded", None, summary), plan)

    def _plan_result(
        self, request: PlanRequest, status: str, failure_class: str | None, summary: str, planner: PlannerScript | None
    ) -> AgentResult:
        duration = request.timeout_s if status == "timeout" else (planner.delay_s if planner else 0.0)
        return _agent_result(
            self.name,
            request.session_dir,
            (PLAN_TASK, 1),
            (status, failure_class, summary),
            item=planner,
            duration_s=duration,
        )


def _agent_result(
    agent: str,
    session_dir: Path | None,
    key: tuple[str, int],
    outcome: tuple[str, str | None, str],
    *,
    item: AttemptScript | PlannerScript | None,
    duration_s: float,
) -> AgentResult:
    """An :class:`AgentResult` for (task, attempt) with (status, class, summary); the transcript relative to session."""
    task, attempt = key
    status, failure_class, summary = outcome
    paths = transcript_paths(session_dir, task, attempt, agent)
    transcript = None
    if paths is not None and session_dir is not None:
        transcript = paths[0].relative_to(session_dir).as_posix()
    return AgentResult(
        task=task,
        agent=agent,
        attempt=attempt,
        status=status,
        summary=summary,
        failure_class=failure_class,
        cost_usd=item.cost_usd if item is not None else None,
        input_tokens=item.input_tokens if item is not None else None,
        output_tokens=item.output_tokens if item is not None else None,
        duration_s=duration_s,
        transcript=transcript,
    )
