"""Validation gates with real commands in temporary git repositories: JUnit counts, missing tools, traceability."""

from __future__ import annotations

import shlex
import sys
import textwrap
import time
from pathlib import Path

import attrs
import pytest

from maestro import GateResult, MaestroError, parse_prd
from maestro.agents.process import ProcessOutcome
from maestro.core.errors import GateError
from maestro.core.records import Decision, Option
from maestro.decide.engine import DecisionEngine
from maestro.gates.acceptance import AcceptanceResult, CommandCheck, acceptance
from maestro.gates.commands import GateCommand, gate_commands, missing_tool
from maestro.gates.junit import FailedCase, JUnitCounts, parse_junit
from maestro.gates.running import NO_COMMAND, gate_runs, run_gate, run_gates
from maestro.gates.traceability import trace
from maestro.model.guards import failing_gates
from maestro.plan.tasks import Task, TaskGraph
from tests.support.git import git_init

PY = shlex.quote(sys.executable)

# -- JUnit samples of each producer in protocols.md section 8, written by hand -----------------------------------

PYTEST_SAMPLE = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
  <testsuite name="pytest" tests="3" failures="1" errors="0" skipped="1" time="0.052"
             timestamp="2026-01-01T12:00:00.000000+00:00" hostname="host">
    <testcase classname="tests.test_app" name="test_ok" time="0.001"/>
    <testcase classname="tests.test_app" name="test_bad" time="0.002">
      <failure message="assert 1 == 2">def test_bad(): ...</failure>
    </testcase>
    <testcase classname="tests.test_app" name="test_skip" time="0.000">
      <skipped type="pytest.skip" message="not on CI">/path:12: not on CI</skipped>
    </testcase>
  </testsuite>
</testsuites>
"""

JEST_SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="jest tests" tests="5" failures="1" errors="0" time="1.234">
  <testsuite name="calc" errors="0" failures="1" skipped="1" timestamp="2026-01-01T12:00:00" time="0.5" tests="3">
    <testcase classname="calc adds" name="calc adds" time="0.002">
    </testcase>
    <testcase classname="calc subtracts" name="calc subtracts" time="0.003">
      <failure>Error: expect(received).toBe(expected) // Object.is equality

Expected: 4
Received: 3
    at Object.&lt;anonymous&gt; (/repo/calc.test.js:8:24)</failure>
    </testcase>
    <testcase classname="calc later" name="calc later" time="0">
      <skipped/>
    </testcase>
  </testsuite>
  <testsuite name="format" errors="0" failures="0" skipped="0" timestamp="2026-01-01T12:00:01" time="0.1" tests="2">
    <testcase classname="format pads" name="format pads" time="0.001"/>
    <testcase classname="format trims" name="format trims" time="0.001"/>
  </testsuite>
</testsuites>
"""

VITEST_SAMPLE = """<?xml version="1.0" encoding="UTF-8" ?>
<testsuites name="vitest tests" tests="4" failures="1" errors="1" time="0.012">
    <testsuite name="src/calc.test.ts" timestamp="2026-01-01T12:00:00.000Z" hostname="host" tests="4" failures="1"
               errors="1" skipped="0" time="0.005">
        <testcase classname="src/calc.test.ts" name="calc &gt; adds" time="0.001">
        </testcase>
        <testcase classname="src/calc.test.ts" name="calc &gt; subtracts" time="0.002">
            <failure message="expected 3 to be 4 // Object.is equality" type="AssertionError">
AssertionError: expected 3 to be 4 // Object.is equality
 ❯ src/calc.test.ts:8:22
            </failure>
        </testcase>
        <testcase classname="src/calc.test.ts" name="calc &gt; divides" time="0.001">
            <error message="Cannot read properties of undefined (reading 'x')" type="TypeError">TypeError</error>
        </testcase>
        <testcase classname="src/calc.test.ts" name="calc &gt; multiplies" time="0.001">
            <system-out>ok</system-out>
        </testcase>
    </testsuite>
</testsuites>
"""

# Older gotestsum: only tests, failures, time and name on a suite; one suite per package.
GOTESTSUM_SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite tests="3" failures="1" time="0.010" name="example.com/calc">
    <properties><property name="go.version" value="go1.22.0"></property></properties>
    <testcase classname="example.com/calc" name="TestAdd" time="0.000"></testcase>
    <testcase classname="example.com/calc" name="TestSub" time="0.000">
      <failure message="Failed" type="">=== RUN   TestSub&#xA;    calc_test.go:12: got 3, want 4&#xA;--- FAIL</failure>
    </testcase>
    <testcase classname="example.com/calc" name="TestLater" time="0.000">
      <skipped message="=== RUN   TestLater&#xA;    calc_test.go:16: not yet&#xA;--- SKIP"></skipped>
    </testcase>
  </testsuite>
  <testsuite tests="1" failures="1" time="0.000" name="example.com/calc/cmd">
    <testcase classname="example.com/calc/cmd" name="TestMain" time="0.000">
      <failure message="Failed" type="">cmd/main.go:5:2: undefined: Foo</failure>
    </testcase>
  </testsuite>
</testsuites>
"""


def test_pytest_sample() -> None:
    c = parse_junit(PYTEST_SAMPLE)
    assert (c.tests, c.passed, c.failed, c.errors, c.skipped) == (3, 1, 1, 0, 1)
    assert c.failures == (FailedCase("tests.test_app", "test_bad", "assert 1 == 2", detail="def test_bad(): ..."),)
    assert c.summary() == "1 passed, 1 failed, 1 skipped (tests.test_app::test_bad: assert 1 == 2)"


def test_jest_junit_sample_several_suites_and_no_message() -> None:
    c = parse_junit(JEST_SAMPLE)
    assert (c.tests, c.passed, c.failed, c.errors, c.skipped) == (5, 3, 1, 0, 1)  # the root's totals not added again
    (case,) = c.failures
    assert case.message == "Error: expect(received).toBe(expected) // Object.is equality"  # the text's first line
    assert case.label() == "calc subtracts"
    assert c.not_passed == 1


def test_vitest_sample_counts_errors_as_failed() -> None:
    c = parse_junit(VITEST_SAMPLE)
    assert (c.tests, c.passed, c.failed, c.errors, c.skipped) == (4, 2, 1, 1, 0)
    assert [(f.kind, f.label()) for f in c.failures] == [
        ("failure", "src/calc.test.ts::calc > subtracts"),
        ("error", "src/calc.test.ts::calc > divides"),
    ]
    assert c.not_passed == 2
    assert c.summary().startswith("2 passed, 2 failed (src/calc.test.ts::calc > subtracts: expected 3 to be 4")


def test_gotestsum_without_errors_or_skipped_attributes() -> None:
    c = parse_junit(GOTESTSUM_SAMPLE)
    # errors missing: 0; skipped missing: counted from the <skipped> children
    assert (c.tests, c.passed, c.failed, c.errors, c.skipped) == (4, 1, 2, 0, 1)
    assert [f.label() for f in c.failures] == ["example.com/calc::TestSub", "example.com/calc/cmd::TestMain"]


def test_bare_testsuite_without_count_attributes_is_counted_from_its_cases() -> None:
    xml = """<testsuite name="bare">
      <testcase classname="a" name="one"/>
      <testcase classname="a" name="two"><error type="RuntimeError">boom
      more</error></testcase>
      <testcase classname="a" name="three"><skipped/></testcase>
      <testcase classname="a" name="four"><failure type="AssertionError"/></testcase>
    </testsuite>"""
    c = parse_junit(xml)
    assert (c.tests, c.passed, c.failed, c.errors, c.skipped) == (4, 1, 1, 1, 1)
    assert [f.message for f in c.failures] == ["boom", "AssertionError"]  # text's first line, else the type


def test_nested_suites_are_not_counted_twice_and_bad_attributes_fall_back() -> None:
    xml = """<testsuites tests="99">
      <testsuite name="outer" tests="40" failures="7">
        <testsuite name="inner1" tests="2" failures="1" errors="0" skipped="0">
          <testcase name="x"/><testcase name="y"><failure message="no"/></testcase>
        </testsuite>
        <testsuite name="inner2" tests="lots" failures="-1" skipped="1.5">
          <testcase name="z"/><testcase name="w"><skipped/></testcase><testcase name="v"><failure/></testcase>
        </testsuite>
        <testcase name="direct"/>
      </testsuite>
    </testsuites>"""
    c = parse_junit(xml)
    assert (c.tests, c.passed, c.failed, c.errors, c.skipped) == (6, 3, 2, 0, 1)
    assert [f.name for f in c.failures] == ["y", "v"]


def test_attributes_win_over_cases_and_passed_never_goes_negative() -> None:
    c = parse_junit('<testsuite tests="1" failures="1" errors="1"><testcase name="t"><failure/><error/></testcase>'
                    "</testsuite>")  # fmt: skip
    assert (c.tests, c.passed, c.failed, c.errors) == (1, 0, 1, 1)
    c = parse_junit('<testsuite tests="10" failures="0"><testcase name="only"/></testsuite>')
    assert (c.tests, c.passed) == (10, 10)


def test_parse_junit_reads_files_str_paths_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text(PYTEST_SAMPLE, encoding="utf-8")
    expected = parse_junit(PYTEST_SAMPLE)
    assert parse_junit(path) == expected
    assert parse_junit(str(path)) == expected
    assert parse_junit(PYTEST_SAMPLE.encode()) == expected
    assert parse_junit(b"\xef\xbb\xbf" + PYTEST_SAMPLE.encode()) == expected  # a byte order mark
    latin = '<?xml version="1.0" encoding="iso-8859-1"?><testsuite><testcase name="t"><failure message="\xe9"/>'
    latin += "</testcase></testsuite>"
    assert parse_junit(latin.encode("iso-8859-1")).failures[0].message == "é"


def test_failed_case_label_finds_the_pytest_file(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text("")
    case = FailedCase("tests.test_calc.TestCalc", "test_add[1-2]", "assert 3 == 4")
    assert case.label(tmp_path) == "tests/test_calc.py::TestCalc::test_add[1-2]"
    assert case.label() == "tests.test_calc.TestCalc::test_add[1-2]"
    assert FailedCase("pkg.test_m", "test_x", "", file="pkg/test_m.py").label() == "pkg/test_m.py::test_x"
    assert FailedCase("", "lonely", "").label(tmp_path) == "lonely"


def test_summary_names_at_most_three_failures() -> None:
    cases = tuple(FailedCase("m", f"t{i}", f"line {i}\nsecond line") for i in range(5))
    c = JUnitCounts(tests=7, passed=2, failed=5, errors=0, skipped=0, failures=cases)
    assert c.summary() == "2 passed, 5 failed (m::t0: line 0; m::t1: line 1; m::t2: line 2; and 2 more)"


# -- malformed and hostile XML ----------------------------------------------------------------------------------


def test_malformed_xml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text('<testsuites>\n  <testsuite name="x">\n    <testcase name="a">\n  </testsuite>\n</testsuites>\n')
    with pytest.raises(GateError, match=r"broken\.xml:4:\d+: malformed JUnit XML: mismatched tag") as info:
        parse_junit(path)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, MaestroError)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no element found"),
        ("<testsuite><testcase></testsuite>", "mismatched tag"),
        ("<testsuite>&nbsp;</testsuite>", "undefined entity"),
        ("<html><body/></html>", "not a JUnit XML report: the root element is <html>"),
    ],
)
def test_malformed_text(text: str, problem: str) -> None:
    with pytest.raises(GateError, match=problem):
        parse_junit(text)


def test_a_missing_report_is_a_gate_error(tmp_path: Path) -> None:
    with pytest.raises(GateError, match=r"nope\.xml: cannot read the JUnit report"):
        parse_junit(tmp_path / "nope.xml")


@pytest.mark.parametrize(
    "text",
    [
        # billion laughs
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]><testsuite name="&lol3;"/>',
        # an external entity
        '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><testsuite>&xxe;</testsuite>',
        # an external DTD
        '<?xml version="1.0"?><!DOCTYPE testsuite SYSTEM "http://example.invalid/junit.dtd"><testsuite/>',
    ],
)
def test_document_types_and_entities_are_refused(text: str) -> None:
    with pytest.raises(GateError, match="may not declare a document type or entities"):
        parse_junit(text)


# -- running gates: real commands in real repositories ----------------------------------------------------------

CALC = """\
def add(a, b):
    return a + b + (1 if a == 1 and b == 2 else 0)
"""

CALC_TESTS = """\
import pytest

from calc import add


def test_zero():
    assert add(0, 0) == 0


def test_negative():
    assert add(-1, 1) == 0


def test_add():
    assert add(1, 2) == 3


@pytest.mark.skip(reason="not today")
def test_later():
    assert add(2, 2) == 4
"""


def pytest_repo(path: Path, calc: str = CALC) -> Path:
    repo = git_init(path)
    (repo / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (repo / "calc.py").write_text(calc)
    (repo / "tests").mkdir()
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "tests" / "test_calc.py").write_text(CALC_TESTS)
    return repo


TESTS_COMMAND = f"{PY} -m pytest -q --junitxml={{junit}}"


def test_a_real_pytest_run_counts_from_its_junit_report(tmp_path: Path) -> None:
    repo = pytest_repo(tmp_path / "repo")
    gates = tmp_path / "gates"
    g = run_gate("tests", TESTS_COMMAND, required=True, workdir=repo, transcript_dir=gates)
    assert g == GateResult(
        "tests", "failed", True, "2 passed, 1 failed, 1 skipped (tests/test_calc.py::test_add: assert 4 == 3)", 2, 1
    )
    assert sorted(p.name for p in gates.iterdir()) == ["gate-tests.1.err", "gate-tests.1.out", "gate-tests.1.xml"]
    assert "1 failed, 2 passed, 1 skipped" in (gates / "gate-tests.1.out").read_text()
    kept = parse_junit(gates / "gate-tests.1.xml")
    assert (kept.tests, kept.passed, kept.failed, kept.errors, kept.skipped) == (4, 2, 1, 0, 1)
    assert not list(repo.glob("*.xml"))  # the report went to a temporary file, not into the repository

    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    g = run_gate("tests", TESTS_COMMAND, required=True, workdir=repo, transcript_dir=gates)
    assert g == GateResult("tests", "passed", True, "3 passed, 0 failed, 1 skipped", 3, 0)
    assert (gates / "gate-tests.2.out").is_file()  # numbered on
    assert gate_runs(gates, "tests") == [
        (1, gates / "gate-tests.1.out", gates / "gate-tests.1.err"),
        (2, gates / "gate-tests.2.out", gates / "gate-tests.2.err"),
    ]  # what refinement reads back: the names run_gate writes


def test_gate_runs_reads_the_names_run_gate_writes_for_any_gate_name(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    for name in ("type check/mypy", "", "lint"):
        run_gate(name, "echo out; echo err >&2", required=False, workdir=repo, transcript_dir=tmp_path / "t")
    (tmp_path / "t" / "gate-type_check_mypy.x.out").write_text("not a run\n")
    runs = gate_runs(tmp_path / "t", "type check/mypy")
    assert [(n, out.name, err.read_text()) for n, out, err in runs] == [(1, "gate-type_check_mypy.1.out", "err\n")]
    assert [n for n, _o, _e in gate_runs(tmp_path / "t", "")] == [1]  # an empty name: "gate-gate"
    assert gate_runs(tmp_path / "t", "tests") == []


def test_an_import_error_inside_the_tests_is_a_failure_not_a_missing_tool(tmp_path: Path) -> None:
    repo = pytest_repo(tmp_path / "repo")
    (repo / "tests" / "test_broken.py").write_text("import no_such_dependency\n\ndef test_x():\n    pass\n")
    g = run_gate("tests", TESTS_COMMAND, required=True, workdir=repo)
    assert g == GateResult("tests", "failed", True, "0 passed, 1 failed (tests/test_broken.py: collection failure)",
                           0, 1)  # fmt: skip
    # the traceback names a missing module, but not the one `-m` runs: the tool ran
    outcome = ProcessOutcome(1, "", "E   ModuleNotFoundError: No module named 'no_such_dependency'\n", 0.1)
    assert missing_tool("python -m pytest", outcome) is None
    assert missing_tool("python -m no_such_dependency", outcome) is not None
    assert missing_tool("python -m pytest -x", ProcessOutcome(1, "", "sh: 1: foo: not found\n", 0.1)) is None


@pytest.mark.parametrize(
    ("command", "tool"),
    [
        ("no-such-linter .", "no-such-linter"),
        (f"{PY} -m no_such_module --check .", "no_such_module"),
        ("no-such-linter . || true", "no-such-linter"),  # exit 0, and still not passed
        ("bash -c 'no-such-linter src'", "no-such-linter"),  # bash's "command not found"
        ("cd . && ./bin/no-such-tool", "no-such-tool"),
    ],
)
def test_a_missing_tool_is_skipped_never_passed(tmp_path: Path, command: str, tool: str) -> None:
    repo = git_init(tmp_path / "repo")
    g = run_gate("lint", command, required=True, workdir=repo)
    assert g.status == "skipped"
    assert g.summary.startswith(f"{tool} is not installed (")
    assert g.required is True and g.passed is None and g.failed is None


def test_exit_127_alone_is_a_missing_tool(tmp_path: Path) -> None:
    g = run_gate("security", "exit 127", required=False, workdir=git_init(tmp_path / "repo"))
    assert (g.status, g.summary) == ("skipped", "exit is not installed (exit status 127: command not found)")


def test_a_missing_junit_tool_is_skipped(tmp_path: Path) -> None:
    g = run_gate("tests", f"{PY} -m no_such_runner --junitxml={{junit}}", required=True,
                 workdir=git_init(tmp_path / "repo"))  # fmt: skip
    assert (g.status, g.summary) == ("skipped", f"no_such_runner is not installed ({sys.executable}: No module named "
                                     "no_such_runner)")  # fmt: skip


def test_no_command_is_skipped(tmp_path: Path) -> None:
    for command in (None, "", "  "):
        g = run_gate("typecheck", command, required=False, workdir=tmp_path)
        assert g == GateResult("typecheck", "skipped", False, NO_COMMAND)


def test_a_timeout_fails_the_gate_with_the_reason(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    started = time.monotonic()
    g = run_gate("tests", "echo working; sleep 60", required=True, workdir=repo, timeout_s=0.5)
    assert time.monotonic() - started < 20
    assert g == GateResult("tests", "failed", True,
                           "timed out after 0.5 s: the command was killed; last output: working")  # fmt: skip


def test_exit_status_decides_without_a_report(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    ok = run_gate("lint", "echo All checks passed!", required=False, workdir=repo)
    assert ok == GateResult("lint", "passed", False, "exit status 0: All checks passed!")
    bad = run_gate("lint", "echo 'x.py:1:1: F401 unused'; echo 'Found 1 error.'; exit 1", required=False,
                   workdir=repo)  # fmt: skip
    assert bad == GateResult("lint", "failed", False, "exit status 1: Found 1 error.")
    crash = run_gate("typecheck", f"{PY} -c 'raise SystemExit(\"config broken\")'", required=False, workdir=repo)
    assert crash == GateResult("typecheck", "failed", False, "exit status 1: config broken")


def write_report(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    return name


def test_a_report_with_failures_fails_even_on_exit_0(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    report = write_report(repo, "r.xml", PYTEST_SAMPLE)
    g = run_gate("tests", f"cp {report} {{junit}}", required=True, workdir=repo)
    assert g.status == "failed" and (g.passed, g.failed) == (1, 1)
    assert g.summary.endswith("; exit status 0, but the report counts failures")


def test_a_non_zero_exit_with_a_clean_report_fails(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    report = write_report(repo, "r.xml", '<testsuite tests="2"><testcase name="a"/><testcase name="b"/></testsuite>')
    g = run_gate("tests", f"cp {report} {{junit}}; echo 'coverage below 90%' >&2; exit 2", required=True,
                 workdir=repo)  # fmt: skip
    assert g == GateResult("tests", "failed", True, "2 passed, 0 failed; exit status 2: coverage below 90%", 2, 0)


def test_an_unreadable_report_is_noted_and_the_exit_status_decides(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    report = write_report(repo, "r.xml", "<testsuite><oops></testsuite>")
    g = run_gate("tests", f"cp {report} {{junit}}", required=True, workdir=repo)
    assert g.status == "passed" and g.passed is None
    assert (
        g.summary == "exit status 0; the JUnit report is unreadable: {junit}:1:20: malformed JUnit XML: mismatched tag"
    )
    g = run_gate("tests", f"cp {report} {{junit}}; exit 1", required=True, workdir=repo)
    assert g.status == "failed"


def test_the_junit_path_is_shell_quoted_and_the_command_runs_in_the_workdir(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "my repo")
    write_report(repo, "r.xml", PYTEST_SAMPLE)
    g = run_gate("tests", "test -f r.xml && printf '%s' {junit} > where.txt && cp r.xml {junit}", required=True,
                 workdir=repo)  # fmt: skip
    assert g.passed == 1
    where = (repo / "where.txt").read_text()
    assert where.endswith("/junit.xml") and not Path(where).exists()  # a temporary file, removed afterwards


def test_commands_are_written_as_in_the_config(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    g = run_gate("lint", "echo '{{x}}' ${MAESTRO_GATE_TEST:-shell}", required=False, workdir=repo)
    assert g == GateResult("lint", "passed", False, "exit status 0: {x} shell")
    g = run_gate("lint", "echo {nope}", required=True, workdir=repo, transcript_dir=tmp_path / "t")
    assert g.status == "failed" and "unknown placeholder {nope}" in g.summary
    assert not (tmp_path / "t").exists()  # nothing ran


def test_a_workdir_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="is not a directory"):
        run_gate("lint", "true", required=False, workdir=tmp_path / "missing")


def test_run_gates_and_failing_gates(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    commands = {
        "tests": GateCommand("true", True, "config"),
        "lint": GateCommand("false", False, "config"),
        "typecheck": GateCommand(None, True, "none"),
        "security": GateCommand("no-such-scanner", False, "config"),
    }
    results = run_gates(commands, workdir=repo)
    assert [(g.name, g.status) for g in results] == [
        ("tests", "passed"), ("lint", "failed"), ("typecheck", "skipped"), ("security", "skipped")
    ]  # fmt: skip
    assert failing_gates(results) == ("typecheck",)  # a skipped required gate blocks; optional ones do not
    assert failing_gates([*results, GateResult("typecheck", "passed", True)]) == ()  # the latest result counts


# -- where commands come from -----------------------------------------------------------------------------------


def test_gate_commands_from_config_then_detection(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "x"\noptional-dependencies = {dev = ["pytest", "ruff", "mypy"]}\n'
        "[tool.pytest.ini_options]\n[tool.ruff]\n[tool.mypy]\n"
    )
    (repo / "tests").mkdir()
    (repo / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    engine = DecisionEngine()
    decisions = [engine.decide("gate", repo=repo, gate=g) for g in ("tests", "lint", "typecheck", "security")]
    config = {
        "tests": {"command": "make test", "required": True},
        "lint": {"command": None, "required": True},  # null: detection
        "typecheck": {"command": "", "required": False},  # empty: turned off
        "docs": {"command": "mkdocs build --strict"},
    }
    assert gate_commands(config, decisions) == {
        "tests": GateCommand("make test", True, "config"),
        "lint": GateCommand("ruff check .", True, "detected: ruff"),
        "typecheck": GateCommand(None, False, "config"),
        "security": GateCommand(None, False, "detected: none"),
        "docs": GateCommand("mkdocs build --strict", False, "config"),
    }
    detected = gate_commands(None, decisions)
    assert detected["tests"] == GateCommand("python -m pytest -q --junitxml={junit}", True, "detected: pytest")
    assert detected["typecheck"].command is not None and detected["typecheck"].source == "detected: mypy"
    assert detected["lint"].required is False
    command, required, source = detected["tests"]  # unpacks as a plain tuple
    assert (command, required, source) == ("python -m pytest -q --junitxml={junit}", True, "detected: pytest")


def test_gate_commands_keyed_decisions_ids_objects_and_strings() -> None:
    d = Decision("gate", "Which tool runs the lint gate?", "ruff", "r", (Option("ruff", 0.8, notes="ruff check ."),),
                 id="D4")  # fmt: skip

    class Entry:
        command = "pytest -x"
        required = False

    out = gate_commands({"tests": Entry(), "security": "pip-audit"}, {"lint": d})
    assert out["tests"] == GateCommand("pytest -x", False, "config")
    assert out["lint"] == GateCommand("ruff check .", False, "detected: ruff (D4)")
    assert out["typecheck"] == GateCommand(None, False, "none")
    assert out["security"] == GateCommand("pip-audit", False, "config")
    assert list(out) == ["tests", "lint", "typecheck", "security"]


def test_gate_commands_refuses_bad_config() -> None:
    with pytest.raises(GateError, match=r"gates\.lint\.command must be a string"):
        gate_commands({"lint": {"command": 3}})
    with pytest.raises(GateError, match=r"gates\.tests\.required must be true or false"):
        gate_commands({"tests": {"command": "x", "required": "yes"}})


# -- acceptance commands ----------------------------------------------------------------------------------------


def test_acceptance_runs_every_command_in_the_repo(tmp_path: Path) -> None:
    repo = pytest_repo(tmp_path / "repo")
    task = Task("T1", "calc", acceptance=(f"{PY} -m pytest -q tests/test_calc.py::test_zero", "test -f calc.py",
                                          f"{PY} -m pytest -q tests/test_calc.py::test_add", "echo after"))  # fmt: skip
    acc = acceptance(task, repo, 120, transcript_dir=tmp_path / "t")
    assert isinstance(acc, AcceptanceResult) and acc.task == "T1" and not acc.passed
    assert [r.exit_code for r in acc.results] == [0, 0, 1, 0]  # the failure does not stop the rest
    assert "assert 4 == 3" in acc.results[2].output_tail
    assert acc.failed == (acc.results[2],)
    assert (tmp_path / "t" / "accept-T1.3.out").is_file()
    for command, code, tail in acc.results:  # plain tuples for callers
        assert isinstance(command, str) and isinstance(code, int) and isinstance(tail, str)

    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    assert acceptance(task, repo, 120).passed


def test_acceptance_without_commands_passes_and_a_timeout_fails(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    assert acceptance(Task("T0", "nothing"), repo, 5) == AcceptanceResult("T0", True, ())
    acc = acceptance(Task("T2", "slow", acceptance=("echo started; sleep 60",)), repo, 0.5)
    assert not acc.passed
    (check,) = acc.results
    assert check == CommandCheck("echo started; sleep 60", None, "started\n[maestro] timed out after 0.5 s: killed")


def test_acceptance_output_keeps_its_head_and_tail_and_is_bounded(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    acc = acceptance(Task("T3", "noisy", acceptance=("seq 1 1000; exit 3",)), repo, 30)
    (check,) = acc.results
    assert check.exit_code == 3
    lines = check.output_tail.splitlines()
    assert lines[:20] == [str(i) for i in range(1, 21)]  # the head says what broke first
    assert lines[20] == "[… 940 lines left out …]"
    assert lines[21:] == [str(i) for i in range(961, 1001)]


# -- traceability -----------------------------------------------------------------------------------------------

PRD = """---
priorities:
  requirements:
    - {id: FR-1, text: Add two numbers, priority: P0}
    - {id: FR-2, text: Subtract, priority: P1}
    - {id: FR-3, text: Divide, priority: P1}
    - {id: FR-4, text: Pretty output, priority: P2}
    - {id: FR-5, text: History, priority: P3}
---
# Calculator
"""

GRAPH = TaskGraph((
    Task("T1", "add", requirements=("FR-1",), acceptance=("pytest tests/test_add.py",)),
    Task("T2", "sub", requirements=("FR-2",), acceptance=("pytest tests/test_sub.py",)),
    Task("T3", "sub ui", requirements=("FR-2", "FR-4"), depends_on=("T2",)),
    Task("T4", "divide", requirements=("FR-3",), acceptance=("pytest tests/test_div.py",)),
))  # fmt: skip


def test_trace_met_unmet_uncovered() -> None:
    prd = parse_prd(PRD)
    matrix = trace(prd, GRAPH, {"T1", "T2", "T3", "T4"}, {"T1": True, "T2": True, "T4": False})
    verdicts = {r.requirement: (r.verdict, r.tasks) for r in matrix.rows}
    assert verdicts == {
        "FR-1": ("met", ("T1",)),
        "FR-2": ("met", ("T2", "T3")),  # T3 has no acceptance commands: nothing to fail
        "FR-3": ("unmet", ("T4",)),  # succeeded, but its acceptance fails in the final validation
        "FR-4": ("met", ("T3",)),
        "FR-5": ("uncovered", ()),
    }
    assert matrix.rows[2].reason == "the acceptance commands of task T4 fail"
    assert matrix.rows[4].reason == "no task serves it"
    assert [r.priority for r in matrix.rows] == ["P0", "P1", "P1", "P2", "P3"]
    assert not matrix.ok  # FR-3 is P1
    assert [r.requirement for r in matrix.blocking] == ["FR-3"]


def test_trace_unmet_when_a_serving_task_did_not_succeed() -> None:
    matrix = trace(parse_prd(PRD), GRAPH, {"T1", "T2", "T4"}, {"T1": True, "T2": True, "T4": True})
    fr2 = matrix.rows[1]
    assert (fr2.verdict, fr2.reason) == ("unmet", "task T3 did not succeed")
    assert matrix.rows[3].verdict == "unmet"  # FR-4 too: only T3 serves it
    assert not matrix.ok


def test_trace_acceptance_not_rerun_is_not_met() -> None:
    matrix = trace(parse_prd(PRD), GRAPH, {"T1", "T2", "T3", "T4"}, {"T2": True, "T4": True})
    assert (matrix.rows[0].verdict, matrix.rows[0].reason) == ("unmet", "the acceptance commands of task T1 fail")


def test_trace_ok_when_only_low_priority_requirements_are_not_met() -> None:
    matrix = trace(parse_prd(PRD), GRAPH, {"T1", "T2", "T4"}, {"T1": True, "T2": True, "T4": True})
    assert [r.verdict for r in matrix.rows] == ["met", "unmet", "met", "unmet", "uncovered"]
    assert not matrix.ok  # FR-2 (P1) has T3 not succeeded
    graph = TaskGraph(tuple(t for t in GRAPH if t.id != "T3"))
    matrix = trace(parse_prd(PRD), graph, {"T1", "T2", "T4"}, {"T1": True, "T2": True, "T4": True})
    assert [r.verdict for r in matrix.rows] == ["met", "met", "met", "uncovered", "uncovered"]
    assert matrix.ok
    assert matrix.as_gate() == GateResult("traceability", "passed", True,
                                          "3 of 5 requirements met; not blocking: FR-4 (P2, uncovered), "
                                          "FR-5 (P3, uncovered)", 3, 2)  # fmt: skip


def test_an_uncovered_p0_fails_validation() -> None:
    graph = TaskGraph((Task("T2", "sub", requirements=("FR-2",)), Task("T4", "div", requirements=("FR-3",))))
    matrix = trace(parse_prd(PRD), graph, {"T2", "T4"}, {})
    assert matrix.rows[0].verdict == "uncovered" and not matrix.ok


def test_as_gate_names_the_blocking_requirements() -> None:
    matrix = trace(parse_prd(PRD), GRAPH, {"T1", "T2"}, {"T1": False, "T2": True})
    g = matrix.as_gate()
    assert g == GateResult(
        "traceability", "failed", True,
        "blocking requirements not met: FR-1 (P0, unmet: the acceptance commands of task T1 fail), "
        "FR-2 (P1, unmet: task T3 did not succeed), FR-3 (P1, unmet: task T4 did not succeed); "
        "0 of 5 requirements met", 0, 5,
    )  # fmt: skip
    assert matrix.count("met") == 0 and matrix.count("unmet") == 4 and matrix.count("uncovered") == 1


def test_all_met_and_no_requirements() -> None:
    prd = parse_prd("---\npriorities:\n  requirements:\n    - {id: FR-1, text: Add, priority: P0}\n---\n# X\n")
    graph = TaskGraph((Task("T1", "a", requirements=("FR-1",), acceptance=("true",)),))
    matrix = trace(prd, graph, {"T1"}, {"T1": True})
    assert matrix.ok and matrix.as_gate() == GateResult("traceability", "passed", True, "1 of 1 requirements met", 1, 0)
    assert matrix.rows[0].reason == "task T1 succeeded and its acceptance passes"
    empty = trace(attrs.evolve(prd, requirements=()), graph, {"T1"}, {})  # a PRD always has some; a Prd may not
    assert empty.ok and empty.as_gate().summary == "no requirements to trace"


def test_to_markdown() -> None:
    matrix = trace(parse_prd(PRD), GRAPH, {"T1", "T2", "T3", "T4"}, {"T1": True, "T2": True, "T4": False})
    assert matrix.to_markdown() == textwrap.dedent("""\
        | Requirement | Priority | Verdict | Tasks | Reason |
        |---|---|---|---|---|
        | FR-1 | P0 | met | T1 | task T1 succeeded and its acceptance passes |
        | FR-2 | P1 | met | T2, T3 | tasks T2, T3 succeeded and their acceptance passes |
        | FR-3 | P1 | unmet | T4 | the acceptance commands of task T4 fail |
        | FR-4 | P2 | met | T3 | task T3 succeeded and its acceptance passes |
        | FR-5 | P3 | uncovered | — | no task serves it |
        """)
