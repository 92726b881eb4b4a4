"""JUnit XML reports: a gate's passed and failed counts and the failing test cases, parsed without DTDs or entities.

A gate command containing ``{junit}`` writes its report to a temporary file
(:func:`maestro.gates.running.run_gate`); :func:`parse_junit` counts it::

    counts = parse_junit("report.xml")   # JUnitCounts(tests, passed, failed, errors, skipped, failures)
    counts.summary(root)                 # "42 passed, 1 failed (tests/test_calc.py::test_add: assert 3 == 4)"
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.parsers import expat

import attrs

from maestro.core.errors import GateError
from maestro.core.text import first_line, one_line

__all__ = ["FailedCase", "JUnitCounts", "parse_junit", "report_counts"]

_SHOWN_FAILURES = 3  # failing tests named in a summary
_SUMMARY_CHARS = 200  # one failure message or output line in a summary


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
    message = one_line(first_line(case.message), _SUMMARY_CHARS)
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
    return report_counts(*_junit_source(source))


def report_counts(where: str, data: bytes) -> JUnitCounts:
    """The counts of the JUnit XML ``data``; ``where`` names it in error messages (:func:`parse_junit` for a file)."""
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
            message = (child.get("message") or "").strip() or first_line(child.text or "") or child.get("type", "")
            yield FailedCase(tc.get("classname", ""), tc.get("name", ""), message, child.tag, tc.get("file") or None,
                             (child.text or "").strip())  # fmt: skip
