"""Validation gates: tests, lint, typecheck and security commands, JUnit XML counts, and requirement traceability.

A gate is a shell command run in the repository (``sh -c``, through
:func:`~maestro.agents.process.run_process`: its own process group, a
timeout, transcripts written as the output comes)::

    commands = gate_commands(config.gates, gate_decisions)    # name -> GateCommand(command, required, source)
    for name, (command, required, source) in commands.items():
        result = run_gate(name, command, required=required, workdir=repo, transcript_dir=session_dir / "gates")

Its outcome is a :class:`~maestro.core.records.GateResult`:

* ``passed`` — the command exited 0 (and its JUnit report, if any, counts no failure);
* ``failed`` — it exited non-zero, its JUnit report counts failures or errors, or it timed out;
* ``skipped`` — there is no command, or the tool it names is not installed (exit 127,
  ``sh: 1: ruff: not found``, ``No module named mypy`` for ``python -m mypy``).  A
  missing tool is never reported as passed.

A command may contain ``{junit}``: it is replaced by the (shell-quoted) path of a
temporary file, and the JUnit XML the tool writes there gives the gate its
passed and failed counts (:func:`parse_junit`).

:func:`acceptance` runs a task's acceptance commands; :func:`trace` gives each
PRD requirement its verdict (``met``, ``unmet``, ``uncovered``), and
:meth:`Traceability.as_gate` turns the matrix into the ``traceability`` gate.
``docs/gates.md`` describes it all.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from xml.parsers import expat

import attrs

from maestro.agents.process import ProcessOutcome, run_process
from maestro.config.model import render_command
from maestro.core.errors import GateError, MaestroError
from maestro.core.records import Decision, GateResult
from maestro.decide.strategies.gate import GATES, gate_command
from maestro.plan.prd import Prd
from maestro.plan.tasks import Task, TaskGraph

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "NO_COMMAND",
    "REQUIRED_BY_DEFAULT",
    "VERDICTS",
    "AcceptanceResult",
    "CommandCheck",
    "FailedCase",
    "GateCommand",
    "GateError",
    "JUnitCounts",
    "TraceRow",
    "Traceability",
    "acceptance",
    "failing_gates",
    "gate_commands",
    "missing_tool",
    "parse_junit",
    "run_gate",
    "run_gates",
    "trace",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1800.0
NO_COMMAND = "no command configured and none detected"
REQUIRED_BY_DEFAULT = frozenset({"tests"})
"""Gates that are required when the configuration does not say."""
VERDICTS = ("met", "unmet", "uncovered")

_SUMMARY_CHARS = 200  # one failure message or output line in a summary
_SHOWN_FAILURES = 3  # failing tests named in a summary
_TAIL_LINES = 40  # lines of output kept by an acceptance check
_TAIL_CHARS = 4000


# -- JUnit XML --------------------------------------------------------------------------------------------------


@attrs.frozen
class FailedCase:
    """A test case that failed (``kind`` ``failure``: an assertion) or errored (``error``: an exception).

    ``message`` is the ``message`` attribute as written (it may span lines), else
    the first line of the element's text, else its ``type``; ``detail`` is the
    element's text (a traceback, the test's output); ``file`` is the test case's
    ``file`` attribute where the producer writes one.
    """

    classname: str
    name: str
    message: str
    kind: str = "failure"
    file: str | None = None
    detail: str = ""

    def label(self, root: Path | None = None) -> str:
        """The case as a test id: ``tests/test_calc.py::test_add`` if ``root`` holds the file, else ``classname::name``.

        pytest writes ``classname="tests.test_calc.TestCalc"``; the longest dotted
        prefix that is a ``.py`` file under ``root`` (or the ``file`` attribute)
        becomes the path.
        """
        parts = self.classname.split(".") if self.classname else []
        if self.file and self.file.endswith(".py"):
            stem = self.file[: -len(".py")].replace("\\", "/").replace("/", ".")
            if self.classname == stem or self.classname.startswith(stem + "."):
                rest = self.classname[len(stem) :].lstrip(".")
                return "::".join([self.file, *(rest.split(".") if rest else []), self.name])
        if root is not None and parts and all(parts):
            for i in range(len(parts), 0, -1):
                candidate = "/".join(parts[:i]) + ".py"
                if (root / candidate).is_file():
                    return "::".join([candidate, *parts[i:], self.name])
        if root is not None and not self.classname and all(self.name.split(".")):  # pytest: a module's error
            candidate = self.name.replace(".", "/") + ".py"
            if (root / candidate).is_file():
                return candidate
        if not self.classname or self.classname == self.name:  # jest-junit writes the title in both by default
            return self.name
        return f"{self.classname}::{self.name}"


@attrs.frozen
class JUnitCounts:
    """What a JUnit XML report counts.

    ``failed`` counts assertion failures, ``errors`` the tests that raised (or
    broke in setup or teardown); ``failures`` lists both kinds, in document order.
    """

    tests: int
    passed: int
    failed: int
    errors: int
    skipped: int
    failures: tuple[FailedCase, ...] = ()

    @property
    def not_passed(self) -> int:
        """Failures and errors together: a gate's ``failed`` count."""
        return self.failed + self.errors

    def summary(self, root: Path | None = None) -> str:
        """``42 passed, 1 failed (tests/test_calc.py::test_add: assert 3 == 4)``, with skipped tests when there are."""
        text = f"{self.passed} passed, {self.not_passed} failed"
        if self.skipped:
            text += f", {self.skipped} skipped"
        if self.failures:
            shown = [_case_text(c, root) for c in self.failures[:_SHOWN_FAILURES]]
            more = len(self.failures) - len(shown)
            text += f" ({'; '.join(shown)}{f'; and {more} more' if more else ''})"
        return text


def _case_text(case: FailedCase, root: Path | None) -> str:
    label = case.label(root)
    message = _one_line(_first_line(case.message))
    return f"{label}: {message}" if message else label


def parse_junit(source: str | os.PathLike[str] | bytes) -> JUnitCounts:
    """The counts of a JUnit XML report: a file path, or the XML itself (a ``str`` starting with ``<``, or bytes).

    Lenient about the shape: the root may be ``<testsuites>`` or a bare
    ``<testsuite>``, with any number of suites, nested or not.  A suite's
    ``tests``, ``failures``, ``errors`` and ``skipped`` attributes are used where
    present; each missing one is counted from its ``<testcase>`` children (so
    a missing ``errors`` or ``skipped`` without such children is 0).  A document
    type declaration is refused (no entity expansion), as is malformed XML:
    both raise :class:`GateError` naming the file, line and column.
    """
    return _counts(*_junit_source(source))


def _counts(where: str, data: bytes) -> JUnitCounts:
    root = _parse_xml(data, where)
    if root.tag not in ("testsuites", "testsuite"):
        raise GateError(f"{where}: not a JUnit XML report: the root element is <{root.tag}>, not <testsuites>")
    tests = failed = errors = skipped = 0
    for suite, leaf in _suites(root):
        counted = _count_suite(suite, leaf)
        tests += counted[0]
        failed += counted[1]
        errors += counted[2]
        skipped += counted[3]
    passed = max(0, tests - failed - errors - skipped)
    failures = tuple(case for tc in root.iter("testcase") for case in _failed_cases(tc))
    return JUnitCounts(tests, passed, failed, errors, skipped, failures)


def _junit_source(source: str | os.PathLike[str] | bytes) -> tuple[str, bytes]:
    """(name for messages, the XML bytes)."""
    if isinstance(source, bytes):
        return "<junit xml>", source
    if isinstance(source, str) and (not source.strip() or source.lstrip("\ufeff \t\r\n").startswith("<")):
        return "<junit xml>", source.encode("utf-8")
    path = Path(source)
    try:
        return str(path), path.read_bytes()
    except OSError as exc:
        raise GateError(f"{path}: cannot read the JUnit report: {exc.strerror or exc}") from None


def _parse_xml(data: bytes, where: str) -> ET.Element:
    """The document's root element, parsed by expat into an ElementTree with every DTD feature refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(*_args: Any) -> int:
        raise GateError(
            f"{where}:{parser.CurrentLineNumber}:{parser.CurrentColumnNumber + 1}: "
            "a JUnit report may not declare a document type or entities"
        )

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except expat.ExpatError as exc:
        problem = expat.ErrorString(exc.code) if exc.code is not None else str(exc)
        raise GateError(f"{where}:{exc.lineno}:{exc.offset + 1}: malformed JUnit XML: {problem}") from None
    except AssertionError:  # TreeBuilder.close on an empty document
        raise GateError(f"{where}: malformed JUnit XML: no element found") from None


def _suites(root: ET.Element) -> Iterable[tuple[ET.Element, bool]]:
    """Every element that holds test cases, with whether it is a leaf suite (its attributes count)."""
    for el in root.iter():
        if el.tag not in ("testsuites", "testsuite"):
            continue
        nested = any(child.tag == "testsuite" for child in el)
        yield el, not nested and (el.tag == "testsuite" or el is root)


def _count_suite(suite: ET.Element, leaf: bool) -> tuple[int, int, int, int]:
    """(tests, failures, errors, skipped) of ``suite``: attributes of a leaf, else its direct test cases only."""
    cases = [c for c in suite if c.tag == "testcase"]
    derived = (
        len(cases),
        sum(1 for c in cases if c.find("failure") is not None),
        sum(1 for c in cases if c.find("error") is not None),
        sum(1 for c in cases if c.find("skipped") is not None),
    )
    if not leaf:
        return derived
    names = ("tests", "failures", "errors", "skipped")
    counted = tuple(_int_attr(suite, name, fallback) for name, fallback in zip(names, derived, strict=True))
    return counted[0], counted[1], counted[2], counted[3]


def _int_attr(el: ET.Element, name: str, fallback: int) -> int:
    value = el.get(name)
    if value is None:
        return fallback
    try:
        number = float(value.strip())
    except ValueError:
        return fallback
    if not math.isfinite(number) or number < 0 or number != int(number):
        return fallback
    return int(number)


def _failed_cases(tc: ET.Element) -> Iterable[FailedCase]:
    for child in tc:
        if child.tag in ("failure", "error"):
            message = (child.get("message") or "").strip() or _first_line(child.text or "") or child.get("type", "")
            yield FailedCase(tc.get("classname", ""), tc.get("name", ""), message, child.tag, tc.get("file") or None,
                             (child.text or "").strip())  # fmt: skip


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def _one_line(text: str, limit: int = _SUMMARY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- running a gate ---------------------------------------------------------------------------------------------

_NOT_FOUND = re.compile(r"^(?:[^:\n]*: )?(?:(?:line )?\d+: )?(?P<name>[^\s:]+): (?:command )?not found\s*$", re.M)
_ZSH_NOT_FOUND = re.compile(r"command not found: (?P<name>\S+)")
_NO_MODULE = re.compile(r"No module named '?(?P<mod>[A-Za-z_][\w.]*?)'?(?:\.__main__)?(?:[;\s]|$)")
_RUN_MODULE = re.compile(r"(?:^|[\s;&|(])-m\s*(?P<mod>[A-Za-z_][\w.]*)")
_WORDS = re.compile(r"[^\s;&|()<>'\"`]+")


def missing_tool(command: str, outcome: ProcessOutcome) -> str | None:
    """Why ``command`` could not run its tool — ``"ruff is not installed (sh: 1: ruff: not found)"`` — or None.

    The signs: the shell's "not found" for a word of the command, Python's
    ``No module named X`` for a ``-m X`` of the command, or exit status 127
    (the shell's "command not found").
    """
    if outcome.missing:
        return outcome.error or "the shell could not be started"
    stderr = outcome.stderr
    words = set(_WORDS.findall(command))
    for m in [*_NOT_FOUND.finditer(stderr), *_ZSH_NOT_FOUND.finditer(stderr)]:
        name = m["name"]
        if name in words:
            return f"{os.path.basename(name) or name} is not installed ({_one_line(m.group(0))})"
    modules = {m["mod"] for m in _RUN_MODULE.finditer(command)}
    for m in _NO_MODULE.finditer(stderr):
        missing = m["mod"]
        if any(mod == missing or mod.startswith(missing + ".") for mod in modules):
            line = next((ln for ln in stderr.splitlines() if "No module named" in ln), m.group(0))
            return f"{missing} is not installed ({_one_line(line.strip())})"
    if outcome.exit_code == 127:
        found = _NOT_FOUND.search(stderr) or _ZSH_NOT_FOUND.search(stderr)
        if found is not None:
            return f"{os.path.basename(found['name']) or found['name']} is not installed ({_one_line(found.group(0))})"
        return f"{_first_word(command)} is not installed (exit status 127: command not found)"
    return None


def _first_word(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes
        words = command.split()
    return os.path.basename(words[0]) if words else command


def _transcripts(transcript_dir: Path | None, name: str) -> tuple[Path, Path] | None:
    """``gate-<name>.<n>.out`` and ``.err`` in ``transcript_dir``, ``n`` one more than the highest there."""
    if transcript_dir is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "gate"
    pattern = re.compile(rf"gate-{re.escape(safe)}\.([0-9]+)\.(?:out|err|xml)\Z")
    taken = [int(m[1]) for p in transcript_dir.glob(f"gate-{safe}.*") if (m := pattern.match(p.name))]
    n = max(taken, default=0) + 1
    return transcript_dir / f"gate-{safe}.{n}.out", transcript_dir / f"gate-{safe}.{n}.err"


def run_gate(
    name: str,
    command: str | None,
    *,
    required: bool,
    workdir: Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transcript_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> GateResult:
    """Run one gate's ``command`` with ``sh -c`` in ``workdir`` and say how it went.

    The command is written as in ``config.yaml`` (:func:`maestro.config.model.render_command`):
    ``{junit}`` becomes a temporary file's shell-quoted path, ``{{`` and ``}}``
    literal braces, ``${VAR}`` is the shell's.  The JUnit XML written to
    ``{junit}`` gives the passed and failed counts (a copy is kept beside the
    transcripts as ``gate-<name>.<n>.xml``).  Never raises for the command's
    failures; raises :class:`GateError` only when ``workdir`` is not a directory.
    """
    if command is None or not command.strip():
        return GateResult(name, "skipped", required, NO_COMMAND)
    if not Path(workdir).is_dir():
        raise GateError(f"gate {name}: the working directory {workdir} is not a directory")
    wants_report = "{junit}" in command
    tmp = Path(tempfile.mkdtemp(prefix="maestro-junit-")) if wants_report else None
    try:
        junit = tmp / "junit.xml" if tmp is not None else None
        try:
            shell_command = render_command(command, junit=junit or os.devnull)
        except MaestroError as exc:  # a bad placeholder: load_config refuses it, a caller's command may have it
            return GateResult(name, "failed", required, f"the command cannot be run: {exc}")
        transcript = _transcripts(transcript_dir, name)
        log.debug("gate %s: running %s in %s", name, shell_command, workdir)
        outcome = run_process(["sh", "-c", shell_command], cwd=Path(workdir), timeout_s=timeout_s, env=env,
                              transcript=transcript)  # fmt: skip
        counts, report_problem = None, ""
        if junit is not None and junit.is_file():
            where = "{junit}"
            if transcript is not None:
                kept = transcript[0].with_suffix(".xml")
                shutil.copyfile(junit, kept)
                where = str(kept)
            try:
                counts = _counts(where, junit.read_bytes())
            except (GateError, OSError) as exc:
                report_problem = f"the JUnit report is unreadable: {exc}"
                log.warning("gate %s: %s", name, report_problem)
        result = _judge(name, command=command, required=required, outcome=outcome, counts=counts,
                        report_problem=report_problem, root=Path(workdir), timeout_s=timeout_s)  # fmt: skip
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("gate %s: %s: %s", name, result.status, result.summary)
    return result


def _judge(
    name: str,
    *,
    command: str,
    required: bool,
    outcome: ProcessOutcome,
    counts: JUnitCounts | None,
    report_problem: str,
    root: Path,
    timeout_s: float,
) -> GateResult:
    if outcome.timed_out:
        text = f"timed out after {timeout_s:g} s: the command was killed"
        tail = _last_line(outcome.stdout) or _last_line(outcome.stderr)
        return GateResult(name, "failed", required, text + (f"; last output: {_one_line(tail)}" if tail else ""))
    if counts is None:  # a report proves the tool ran
        reason = missing_tool(command, outcome)
        if reason is not None:
            return GateResult(name, "skipped", required, reason)
    code = outcome.exit_code
    if counts is not None:
        summary = counts.summary(root)
        failed = code != 0 or counts.not_passed > 0
        if code != 0 and counts.not_passed == 0:
            summary += f"; exit status {code}" + _tail_note(outcome)
        elif code == 0 and counts.not_passed > 0:
            summary += "; exit status 0, but the report counts failures"
        return GateResult(name, "failed" if failed else "passed", required, summary, counts.passed, counts.not_passed)
    summary = "exit status 0" if code == 0 else f"exit status {code}{_tail_note(outcome)}"
    if code == 0:
        tail = _last_line(outcome.stdout)
        summary += f": {_one_line(tail)}" if tail else ""
    if report_problem:
        summary += f"; {report_problem}"
    return GateResult(name, "passed" if code == 0 else "failed", required, summary)


def _tail_note(outcome: ProcessOutcome) -> str:
    tail = _last_line(outcome.stdout) or _last_line(outcome.stderr)
    return f": {_one_line(tail)}" if tail else ""


class GateCommand(NamedTuple):
    """A gate's command (None: no gate to run), whether it is required, and where the command came from.

    ``source`` is ``config`` (``config.yaml``), ``detected: <tool> (<decision id>)``,
    ``detected: none (<decision id>)`` (the detection found no tool), or ``none``.
    """

    command: str | None
    required: bool
    source: str


def gate_commands(
    config_gates: Mapping[str, Any] | None, decisions: Mapping[str, Decision] | Iterable[Decision] = ()
) -> dict[str, GateCommand]:
    """Each gate's command: from ``config_gates`` where set, else from its ``gate`` detection decision.

    ``config_gates`` maps a gate name to its settings — a mapping or an object
    with ``command`` and ``required``, or just the command string.  A ``command``
    of null falls back to the detection; an empty command turns the gate off.
    ``required`` defaults to True for ``tests`` (:data:`REQUIRED_BY_DEFAULT`) and
    False otherwise.  ``decisions`` maps gate names to decisions, or is a list of
    ``gate`` decisions (the gate is read from the question).  The gates come in
    the order tests, lint, typecheck, security, then other configured ones.
    """
    config = dict(config_gates or {})
    by_gate = _decisions_by_gate(decisions)
    names = [
        *GATES,
        *(n for n in config if n not in GATES),
        *(n for n in by_gate if n not in GATES and n not in config),
    ]
    out: dict[str, GateCommand] = {}
    for name in names:
        command, required = _configured(name, config.get(name))
        if command is not None:
            out[name] = GateCommand(command.strip() or None, required, "config")
            continue
        decision = by_gate.get(name)
        if decision is None:
            out[name] = GateCommand(None, required, "none")
            continue
        ident = f" ({decision.id})" if decision.id else ""
        detected = gate_command(decision)
        out[name] = GateCommand(detected, required, f"detected: {decision.choice if detected else 'none'}{ident}")
    return out


def _configured(name: str, entry: Any) -> tuple[str | None, bool]:
    """(command or None, required) of one configuration entry."""
    default = name in REQUIRED_BY_DEFAULT
    if entry is None:
        return None, default
    if isinstance(entry, str):
        return entry, default
    if isinstance(entry, Mapping):
        command, required = entry.get("command"), entry.get("required", default)
    else:
        command, required = getattr(entry, "command", None), getattr(entry, "required", default)
    if command is not None and not isinstance(command, str):
        raise GateError(f"gates.{name}.command must be a string or null, not {command!r}")
    if required is None:
        required = default
    if not isinstance(required, bool):
        raise GateError(f"gates.{name}.required must be true or false, not {required!r}")
    return command, required


_GATE_QUESTION = re.compile(r"\bthe (?P<gate>[\w-]+) gate\b")


def _decisions_by_gate(decisions: Mapping[str, Decision] | Iterable[Decision]) -> dict[str, Decision]:
    if isinstance(decisions, Mapping):
        return {str(k): v for k, v in decisions.items() if v is not None}
    out: dict[str, Decision] = {}
    for d in decisions:
        if d is None or d.kind != "gate":
            continue
        m = _GATE_QUESTION.search(d.question)
        if m is None:
            log.warning("gate decision %s does not name its gate (%r): ignored", d.id or "?", d.question)
            continue
        out[m["gate"]] = d  # a later decision for the same gate wins
    return out


def run_gates(
    commands: Mapping[str, GateCommand | tuple[str | None, bool, str]],
    *,
    workdir: Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transcript_dir: Path | None = None,
) -> tuple[GateResult, ...]:
    """Run every gate of :func:`gate_commands`, in order."""
    return tuple(
        run_gate(name, command, required=required, workdir=workdir, timeout_s=timeout_s, transcript_dir=transcript_dir)
        for name, (command, required, _source) in commands.items()
    )


def failing_gates(results: Iterable[GateResult]) -> tuple[str, ...]:
    """The required gates whose latest result is not ``passed`` (a skipped required gate blocks too)."""
    latest = {g.name: g for g in results}
    return tuple(n for n, g in latest.items() if g.required and g.status != "passed")


# -- acceptance commands ----------------------------------------------------------------------------------------


class CommandCheck(NamedTuple):
    """One acceptance command's run: its exit status (None: timed out or could not start) and the output's tail."""

    command: str
    exit_code: int | None
    output_tail: str


@attrs.frozen
class AcceptanceResult:
    """A task's acceptance commands, run: ``passed`` when every one exited 0 (vacuously so with none)."""

    task: str
    passed: bool
    results: tuple[CommandCheck, ...] = ()

    @property
    def failed(self) -> tuple[CommandCheck, ...]:
        """The commands that did not exit 0."""
        return tuple(r for r in self.results if r.exit_code != 0)


def acceptance(
    task: Task,
    workdir: Path,
    timeout_s: float = 600.0,
    *,
    transcript_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AcceptanceResult:
    """Run each of ``task``'s acceptance commands with ``sh -c`` in ``workdir`` (each with ``timeout_s``).

    Every command runs, even after one fails, so the feedback is complete.
    With ``transcript_dir``, the output is kept as ``accept-<task>.<i>.out``/``.err``.
    """
    checks = []
    for i, command in enumerate(task.acceptance, 1):
        transcript = None
        if transcript_dir is not None:
            stem = f"accept-{re.sub(r'[^A-Za-z0-9._-]', '_', task.id)}.{i}"
            transcript = (transcript_dir / f"{stem}.out", transcript_dir / f"{stem}.err")
        outcome = run_process(["sh", "-c", command], cwd=Path(workdir), timeout_s=timeout_s, env=env,
                              transcript=transcript)  # fmt: skip
        tail = _tail(outcome.stdout + outcome.stderr)
        code: int | None = outcome.exit_code
        if outcome.timed_out:
            code = None
            tail = (tail + "\n" if tail else "") + f"[maestro] timed out after {timeout_s:g} s: killed"
        elif outcome.missing:
            tail = (tail + "\n" if tail else "") + f"[maestro] {outcome.error}"
        checks.append(CommandCheck(command, code, tail))
        log.debug("task %s: acceptance %r: exit %s", task.id, command, code)
    return AcceptanceResult(task.id, all(c.exit_code == 0 for c in checks), tuple(checks))


def _tail(text: str) -> str:
    lines = text.rstrip("\n").splitlines()[-_TAIL_LINES:]
    out = "\n".join(lines)
    return out if len(out) <= _TAIL_CHARS else "…" + out[-(_TAIL_CHARS - 1) :]


# -- requirement traceability -----------------------------------------------------------------------------------


@attrs.frozen
class TraceRow:
    """One requirement's verdict: ``met``, ``unmet`` or ``uncovered``, the tasks serving it, and why."""

    requirement: str
    priority: str
    verdict: str = attrs.field(validator=attrs.validators.in_(VERDICTS))
    tasks: tuple[str, ...]
    reason: str
    text: str = ""

    @property
    def blocking(self) -> bool:
        """A P0 or P1 requirement that is not met: it fails validation."""
        return self.priority in ("P0", "P1") and self.verdict != "met"


@attrs.frozen
class Traceability:
    """The requirement traceability matrix; ``ok`` is False while a P0 or P1 requirement is not met."""

    rows: tuple[TraceRow, ...]
    ok: bool

    def count(self, verdict: str) -> int:
        """How many requirements have ``verdict``."""
        return sum(1 for r in self.rows if r.verdict == verdict)

    @property
    def blocking(self) -> tuple[TraceRow, ...]:
        """The P0 and P1 requirements that are not met."""
        return tuple(r for r in self.rows if r.blocking)

    def as_gate(self) -> GateResult:
        """The ``traceability`` gate (required): passed/failed counts are the requirements met / not met."""
        met = self.count("met")
        total = len(self.rows)
        if not self.rows:
            summary = "no requirements to trace"
        elif self.ok:
            others = [r for r in self.rows if r.verdict != "met"]
            summary = f"{met} of {total} requirements met"
            if others:
                summary += "; not blocking: " + ", ".join(
                    f"{r.requirement} ({r.priority}, {r.verdict})" for r in others
                )
        else:
            shown = ", ".join(f"{r.requirement} ({r.priority}, {r.verdict}: {r.reason})" for r in self.blocking)
            summary = f"blocking requirements not met: {shown}; {met} of {total} requirements met"
        return GateResult("traceability", "passed" if self.ok else "failed", True, summary, met, total - met)

    def to_markdown(self) -> str:
        """The matrix as a markdown table (requirement, priority, verdict, tasks, reason)."""
        lines = ["| Requirement | Priority | Verdict | Tasks | Reason |", "|---|---|---|---|---|"]
        for r in self.rows:
            cells = [r.requirement, r.priority, r.verdict, ", ".join(r.tasks) or "—", r.reason]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        return "\n".join(lines) + "\n"


def trace(
    prd: Prd, graph: TaskGraph | Iterable[Task], succeeded: Iterable[str], acceptance_passed: Mapping[str, bool]
) -> Traceability:
    """Each PRD requirement's verdict, in the PRD's order.

    ``met``: at least one task serves it (lists it in ``requirements``), every
    such task succeeded, and each one's acceptance commands pass in the final
    validation (``acceptance_passed[task_id]``; a task missing there passes
    only if it has no acceptance commands).  ``unmet``: a task serving it did
    not succeed or its acceptance fails.  ``uncovered``: no task serves it.
    """
    done = set(succeeded)
    tasks = list(graph)
    rows = []
    for req in prd.requirements:
        serving = [t for t in tasks if req.id in t.requirements]
        ids = tuple(t.id for t in serving)
        if not serving:
            rows.append(TraceRow(req.id, req.priority, "uncovered", ids, "no task serves it", req.text))
            continue
        not_done = [t.id for t in serving if t.id not in done]
        failing = [t.id for t in serving if t.id in done and not _accepted(t, acceptance_passed)]
        problems = []
        if not_done:
            problems.append(f"{_names(not_done)} did not succeed")
        if failing:
            problems.append(f"the acceptance commands of {_names(failing)} fail")
        if problems:
            rows.append(TraceRow(req.id, req.priority, "unmet", ids, "; ".join(problems), req.text))
        else:
            reason = f"{_names(list(ids))} succeeded and {'its' if len(ids) == 1 else 'their'} acceptance passes"
            rows.append(TraceRow(req.id, req.priority, "met", ids, reason, req.text))
    result = tuple(rows)
    return Traceability(result, not any(r.blocking for r in result))


def _accepted(task: Task, acceptance_passed: Mapping[str, bool]) -> bool:
    value = acceptance_passed.get(task.id)
    return not task.acceptance if value is None else bool(value)


def _names(ids: Sequence[str]) -> str:
    return ("task " if len(ids) == 1 else "tasks ") + ", ".join(ids)
