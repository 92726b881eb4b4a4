"""A command agent that says "transient" (exit 75, or a last line ``maestro: transient[ retry-after=S]: why``), and
the timeouts config.yaml sets (``agent.timeout_s``, ``acceptance.timeout_s``): real ``sh`` scripts as the agent,
real sessions (the library's Runner, with its sleeps recorded, and ``maestro run`` as a subprocess) in tmp repos."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import maestro
from maestro.agents.base import AgentError, AgentRequest
from maestro.agents.command import (
    EX_TEMPFAIL,
    MAX_RETRY_AFTER_S,
    CommandAgent,
    Transient,
    read_transient,
    transient_line,
)
from maestro.agents.factory import agent_from_config
from maestro.config import Config, parse_config
from maestro.core.records import AgentResult, Event, converter
from maestro.plan.tasks import Task
from maestro.run.inputs import RunInputs
from maestro.run.runner import Runner
from tests.support.runs import Plan, Recorder, cli, config_text, make_repo, prd_text, task

# -- the line: written, read back, only when last ----------------------------------------------------------------------


def test_the_line_and_what_is_read_from_it() -> None:
    assert transient_line("rate limited (429)") == "maestro: transient: rate limited (429)"
    assert transient_line("rate limited", 30) == "maestro: transient retry-after=30: rate limited"
    assert transient_line("x", 2.5) == "maestro: transient retry-after=2.5: x"
    assert read_transient("working\nmaestro: transient retry-after=12.5: rate limited\n") == Transient(
        "rate limited", 12.5
    )
    assert read_transient("", "maestro: transient: network down\r\n\n") == Transient("network down")
    assert read_transient("maestro: transient") == Transient("")
    assert read_transient("maestro: transient retry-after=0: now") == Transient("now", 0.0)
    assert read_transient("maestro: transient: a: b") == Transient("a: b")
    # a retry-after that is not seconds is ignored, one too long is cut, each with a note
    assert read_transient("maestro: transient retry-after=soon: x") == Transient(
        "x", None, "retry-after 'soon' is not a number of seconds: ignored"
    )
    assert read_transient("maestro: transient retry-after=1e3: x").retry_after_s is None  # type: ignore[union-attr]
    assert read_transient("maestro: transient retry-after=99999: x") == Transient(
        "x", MAX_RETRY_AFTER_S, "retry-after 99999 s is over the 3600 s maestro waits at most"
    )
    # not the line: other words, not the last line, an earlier mention (a log, an echoed prompt)
    for stdout, stderr in [
        ("maestro: transientx", ""),
        ("maestro: transient retry-after=5 soon", ""),
        ("Maestro: transient: x", ""),
        ("maestro: transient: x\nthen it went on", ""),
        ("said: maestro: transient: x", "a traceback"),
        ("", ""),
    ]:
        assert read_transient(stdout, stderr) is None, (stdout, stderr)
    # stdout's last line first, then stderr's
    assert read_transient("maestro: transient: out", "maestro: transient: err") == Transient("out")
    assert read_transient("plain", "maestro: transient retry-after=3: err") == Transient("err", 3.0)
    with pytest.raises(ValueError, match="retry_after_s"):
        transient_line("x", -1)
    with pytest.raises(ValueError, match="retry_after_s"):
        transient_line("x", math.nan)


_reasons = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(_reasons, st.one_of(st.none(), st.floats(0, MAX_RETRY_AFTER_S)), st.text(max_size=60))
def test_a_line_reads_back_as_written_after_any_output(reason: str, after: float | None, before: str) -> None:
    line = transient_line(reason, after)
    assert "\n" not in line
    expected = Transient(" ".join(reason.split()), None if after is None else float(f"{after:.3f}"))
    assert read_transient(f"{before}\n{line}\n") == expected
    assert read_transient("", f"{before}\n{line}") == expected


@given(st.text(max_size=200), st.text(max_size=200))
def test_any_output_reads_without_error(stdout: str, stderr: str) -> None:
    found = read_transient(stdout, stderr)
    if found is not None:
        assert found.retry_after_s is None or 0 <= found.retry_after_s <= MAX_RETRY_AFTER_S
        last = [t for t in (stdout, stderr) if t.strip()]
        assert any(t.rstrip().splitlines()[-1].strip().startswith("maestro: transient") for t in last)


# -- one attempt of a real command ------------------------------------------------------------------------------------


def _attempt(tmp_path: Path, script: str) -> AgentResult:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (tmp_path / "agent.sh").write_text(script, encoding="utf-8")
    agent = CommandAgent(f"sh {tmp_path / 'agent.sh'}")
    return agent.run(AgentRequest(Task("a", "A"), work, timeout_s=30, session_dir=tmp_path / "session"))


@pytest.mark.parametrize(
    ("script", "status", "failure_class", "retry_after", "summary"),
    [
        ("echo busy >&2; exit 75", "failed", "transient", None,
         "the command exited 75 (EX_TEMPFAIL: a transient failure): busy"),
        ("echo 'maestro: transient retry-after=12.5: rate limited (429)'; exit 1", "failed", "transient", 12.5,
         "the command reported a transient failure (exit 1): rate limited (429); it asks to retry after 12.5 s"),
        ("echo log; echo 'maestro: transient: network down' >&2; exit 75", "failed", "transient", None,
         "the command reported a transient failure (exit 75): network down"),
        ("echo 'maestro: transient retry-after=later: x'; exit 2", "failed", "transient", None,
         "the command reported a transient failure (exit 2): x "
         "(retry-after 'later' is not a number of seconds: ignored)"),
        ("echo 'maestro: transient retry-after=7200'; exit 75", "failed", "transient", 3600.0,
         "the command reported a transient failure (exit 75): maestro: transient retry-after=7200; it asks to retry "
         "after 3600 s (retry-after 7200 s is over the 3600 s maestro waits at most)"),
        # exit 1 is implementation, as before, even with the words earlier in its output
        ("echo 'maestro: transient: x'; echo 'it broke' >&2; echo more; exit 1", "failed", "implementation", None,
         "the command exited 1: it broke"),
        ("echo nope; exit 127", "failed", "critical", None, "the command exited 127: nope"),
        # exit 0 is success, whatever was printed last
        ("echo 'maestro: transient: x'", "succeeded", None, None, "maestro: transient: x"),
    ],
)  # fmt: skip
def test_a_command_says_transient(tmp_path: Path, script: str, status: str, failure_class: str | None,
                                  retry_after: float | None, summary: str) -> None:  # fmt: skip
    result = _attempt(tmp_path, script)
    assert (result.status, result.failure_class, result.retry_after_s) == (status, failure_class, retry_after)
    assert result.summary == summary
    assert result.exit_code == (0 if status == "succeeded" else result.exit_code)


def test_ex_tempfail_is_sysexits_75() -> None:
    assert EX_TEMPFAIL == 75


# -- the record: an optional field, old logs still read -----------------------------------------------------------


def test_retry_after_round_trips_and_old_results_still_read() -> None:
    r = AgentResult("a", "command", 1, "failed", "x", "transient", retry_after_s=30)
    assert r.retry_after_s == 30.0
    data = converter.unstructure(r)
    assert data["retry_after_s"] == 30.0
    assert converter.structure(data, AgentResult) == r
    plain = AgentResult("a", "command", 1, "failed", "x", "transient")
    assert "retry_after_s" not in converter.unstructure(plain)  # an old reader sees the same line as before
    line = {"v": 1, "seq": 1, "ts": "2026-01-31T12:00:00Z", "kind": "agent",
            "data": {"task": "a", "agent": "command", "attempt": 1, "status": "failed"}}  # fmt: skip
    old = converter.structure(line, Event).payload()
    assert isinstance(old, AgentResult) and old.retry_after_s is None
    for bad in (-1, math.inf, math.nan):
        with pytest.raises((ValueError, TypeError)):
            AgentResult("a", "command", 1, "failed", retry_after_s=bad)


# -- real sessions: the library's Runner, its sleeps recorded ---------------------------------------------------------


class Ran:
    def __init__(self, outcome: Any, store: maestro.Store, recorder: Recorder, sleeps: list[float], took: float):
        self.outcome = outcome
        self.recorder = recorder
        self.sleeps = sleeps
        self.took = took
        self.state = maestro.rebuild(store.read_events(outcome.session_id))

    def results(self) -> list[tuple[int, str, str | None, float | None]]:
        return [(r.attempt, r.status, r.failure_class, r.retry_after_s) for r in self.state.agent_results]

    def recoveries(self) -> list[tuple[str | None, str]]:
        return [(d.task, d.choice) for d in self.state.decisions if d.kind == "recovery"]


def run_command_session(tmp_path: Path, script: str, *, acceptance: Sequence[str] = ("test -f out.txt",),
                        extra: str = "", agent: Mapping[str, Any] | None = None) -> Ran:  # fmt: skip
    """One session over one task ``a`` whose agent is ``sh agent.sh`` (``script``), built from config.yaml."""
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "agent.sh").write_text(script, encoding="utf-8")
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    tasks = [task("a", acceptance=acceptance)]
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    section = {"kind": "command", "command": f"sh {plan / 'agent.sh'}", **(agent or {})}
    text = config_text() + f"agent: {json.dumps(section)}\n" + extra
    cfg = parse_config(text, plan / "config.yaml")
    assert cfg.base_dir is not None
    recorder = Recorder(agent_from_config(cfg.agent, base_dir=cfg.base_dir))
    store = maestro.Store(repo)
    sleeps: list[float] = []
    runner = Runner(store, cfg, recorder, clock=maestro.TickingClock(), ids=maestro.SequentialIds(),
                    sleep=sleeps.append)  # fmt: skip
    started = time.monotonic()
    outcome = runner.run("Build the sample", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    return Ran(outcome, store, recorder, sleeps, time.monotonic() - started)


def _first_then_works(first: str) -> str:
    """Attempt 1 runs ``first``; every later attempt writes out.txt and succeeds."""
    return f'if [ "$MAESTRO_ATTEMPT" = 1 ]; then\n{first}\nfi\necho done > out.txt\necho "wrote out.txt"\n'


@pytest.mark.parametrize(
    ("first", "retry_after", "slept"),
    [
        # the backoff of config_text is 1.5 s for the first retry: a longer retry-after wins, a shorter one does not
        ("echo 'calling the model'; echo 'maestro: transient retry-after=7: rate limited (429)'; exit 75", 7.0, 7.0),
        ("echo 'maestro: transient retry-after=0.5: overloaded' >&2; exit 1", 0.5, 1.5),
        ("echo 'maestro: transient: connection reset'; exit 3", None, 1.5),
        ("echo 'the API said 503' >&2; exit 75", None, 1.5),
        ("echo 'maestro: transient retry-after=86400: come back tomorrow'; exit 75", 3600.0, 3600.0),
    ],
)
def test_a_transient_failure_is_retried_after_its_retry_after(
    tmp_path: Path, first: str, retry_after: float | None, slept: float
) -> None:
    ran = run_command_session(tmp_path, _first_then_works(first))
    assert ran.outcome.state == "completed"
    assert ran.results() == [(1, "failed", "transient", retry_after), (2, "succeeded", None, None)]
    assert ran.recoveries() == [("a", "retry")]
    assert ran.sleeps == [slept]
    assert ran.recorder.of("a")[1].feedback is None  # a retry is the same attempt again, not another approach


def test_exit_1_is_an_implementation_failure_as_before(tmp_path: Path) -> None:
    ran = run_command_session(tmp_path, _first_then_works("echo 'I could not finish' >&2; exit 1"))
    assert ran.outcome.state == "completed"
    assert ran.results() == [(1, "failed", "implementation", None), (2, "succeeded", None, None)]
    assert ran.recoveries() == [("a", "alternative")]
    assert ran.sleeps == []  # an alternative does not wait
    second = ran.recorder.of("a")[1]
    assert second.feedback is not None and "I could not finish" in second.feedback


def test_a_command_past_agent_timeout_s_is_killed_and_retried(tmp_path: Path) -> None:
    ran = run_command_session(tmp_path, _first_then_works("sleep 30"), agent={"timeout_s": 1})
    assert ran.outcome.state == "completed"
    assert [r.timeout_s for r in ran.recorder.of("a")] == [1.0, 1.0]
    first = ran.state.agent_results[0]
    assert (first.status, first.failure_class, first.retry_after_s) == ("timeout", "transient", None)
    assert "did not finish in time and was stopped" in first.summary
    assert first.duration_s < 10
    assert ran.recoveries() == [("a", "retry")]
    assert ran.sleeps == [1.5]
    assert ran.took < 25


def test_the_agent_timeout_defaults_to_1800_s(tmp_path: Path) -> None:
    ran = run_command_session(tmp_path, _first_then_works("true"))
    assert [r.timeout_s for r in ran.recorder.of("a")] == [1800.0]


def test_an_acceptance_command_past_acceptance_timeout_s_fails(tmp_path: Path) -> None:
    # attempt 1 leaves a marker that makes the acceptance command slow; attempt 2 (after the rollback) does not
    script = _first_then_works("echo done > out.txt; touch slow; exit 0")
    ran = run_command_session(tmp_path, script, acceptance=("if [ -f slow ]; then sleep 5; fi; test -f out.txt",),
                              extra="acceptance: {timeout_s: 1}\n", agent={"timeout_s": 60})  # fmt: skip
    assert ran.outcome.state == "completed"
    assert ran.results() == [(1, "succeeded", None, None), (2, "succeeded", None, None)]
    assert ran.recoveries() == [("a", "alternative")]
    second = ran.recorder.of("a")[1]
    assert second.feedback is not None and "timed out after 1 s" in second.feedback


def test_runner_takes_its_timeouts_from_the_config_unless_told(tmp_path: Path) -> None:
    store = maestro.Store(make_repo(tmp_path))
    cfg = parse_config('agent: {kind: command, command: "true", timeout_s: 90}\nacceptance: {timeout_s: 45}\n')
    agent = agent_from_config(cfg.agent, base_dir=tmp_path)
    runner = Runner(store, cfg, agent)
    assert (runner.agent_timeout_s, runner.acceptance_timeout_s) == (90.0, 45.0)
    told = Runner(store, cfg, agent, agent_timeout_s=5, acceptance_timeout_s=3)
    assert (told.agent_timeout_s, told.acceptance_timeout_s) == (5, 3)
    default = Runner(store, Config(), agent)
    assert (default.agent_timeout_s, default.acceptance_timeout_s) == (1800.0, 1800.0)


# -- through the command line: `maestro run` reads the timeout from config.yaml -------------------------------------


def _cli_plan(tmp_path: Path, config: str, *, script: Mapping[str, Any] | None = None) -> Plan:
    make_repo(tmp_path)
    plan = Plan(tmp_path, script=script is not None)
    plan.dir.mkdir()
    (plan.dir / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    tasks = [task("a", acceptance=["test -f out.txt"])]
    (plan.dir / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    (plan.dir / "config.yaml").write_text(config, encoding="utf-8")
    if script is not None:
        (plan.dir / "script.yaml").write_text(json.dumps({"version": 1, "tasks": dict(script)}), encoding="utf-8")
    return plan


def test_maestro_run_stops_a_command_at_agent_timeout_s_and_retries_it(tmp_path: Path) -> None:
    agent_sh = tmp_path / "agent.sh"
    agent_sh.write_text(_first_then_works("sleep 30"), encoding="utf-8")
    section = {"kind": "command", "command": f"sh {agent_sh}", "timeout_s": 1}
    plan = _cli_plan(tmp_path, config_text(backoff=(0.1, 2.0, 1.0)) + f"agent: {json.dumps(section)}\n")
    started = time.monotonic()
    out = plan.run()
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - started < 60
    results = plan.state().agent_results
    assert [(r.attempt, r.status, r.failure_class) for r in results] == [(1, "timeout", "transient"),
                                                                         (2, "succeeded", None)]  # fmt: skip
    assert results[0].duration_s < 10
    assert plan.file("out.txt") == "done\n"
    resumed = json.loads((plan.session_dir / "run.json").read_text(encoding="utf-8"))
    assert resumed["config"]["agent"]["timeout_s"] == 1  # a resume runs with the same timeout


def test_maestro_run_keeps_the_files_agent_timeout_when_script_replaces_the_agent(tmp_path: Path) -> None:
    config = config_text(backoff=(0.1, 2.0, 1.0)) + 'agent: {kind: command, command: "false", timeout_s: 1}\n'
    plan = _cli_plan(tmp_path, config, script={"a": [{"delay_s": 30}, {"actions": [{"write": {
        "path": "out.txt", "content": "done\n"}}]}]})  # fmt: skip
    out = plan.run()
    assert out.returncode == 0, out.stdout + out.stderr
    results = plan.state().agent_results
    assert [(r.agent, r.status, r.failure_class) for r in results] == [("scripted", "timeout", "transient"),
                                                                       ("scripted", "succeeded", None)]  # fmt: skip
    assert "no answer within the timeout of 1 s" in results[0].summary


def test_maestro_run_refuses_a_bad_agent_timeout(tmp_path: Path) -> None:
    plan = _cli_plan(tmp_path, 'agent:\n  kind: command\n  command: "true"\n  timeout_s: 0\n')
    out = cli(*plan.run_args(), cwd=plan.repo)
    assert out.returncode == 2
    assert out.stderr.strip().endswith("config.yaml:4: agent.timeout_s: must be greater than 0, not 0")


# -- the factory: timeout_s is every kind's, checked there and not handed to the agent -----------------------------


@pytest.mark.parametrize("kind", ["claude", "codex", "aider", "command", "scripted"])
def test_every_kind_takes_timeout_s(tmp_path: Path, kind: str) -> None:
    (tmp_path / "s.yaml").write_text("version: 1\n", encoding="utf-8")
    extra = {"command": {"command": "true"}, "scripted": {"script": "s.yaml"}}.get(kind, {})
    plain = agent_from_config({"kind": kind, **extra}, base_dir=tmp_path)
    timed = agent_from_config({"kind": kind, **extra, "timeout_s": 60}, base_dir=tmp_path)
    assert type(timed) is type(plain) and timed.name == plain.name
    if kind != "scripted":  # attrs agents: the same agent, timeout_s not among its settings
        assert timed == plain


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "expected a number of seconds greater than 0, not 0"),
        (-5.5, "expected a number of seconds greater than 0, not -5.5"),
        (math.inf, "expected a number of seconds greater than 0, not inf"),
        (math.nan, "expected a number of seconds greater than 0, not nan"),
        (True, "expected a int/float, not True"),
        ("60", "expected a int/float, not '60'"),
    ],
)
def test_a_bad_timeout_s_is_refused_naming_the_key(tmp_path: Path, value: Any, problem: str) -> None:
    with pytest.raises(AgentError) as exc:
        agent_from_config({"kind": "command", "command": "true", "timeout_s": value}, base_dir=tmp_path)
    assert str(exc.value) == f"config.yaml: agent.timeout_s: {problem}"


def test_an_old_run_json_without_the_acceptance_section_still_reads() -> None:
    doc = cattrs.unstructure(Config())
    del doc["acceptance"]
    assert cattrs.structure(doc, Config) == Config()
    again = RunInputs(parse_config("acceptance: {timeout_s: 5}\nagent: {kind: claude, timeout_s: 9}\n"))
    back = cattrs.structure(json.loads(again.to_json())["config"], Config)
    assert (back.acceptance_timeout_s, back.agent_timeout_s) == (5.0, 9.0)
