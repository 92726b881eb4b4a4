"""The live view (issue 17, item 8): the progress folded from a session's events, its table, and the terminal.

* :class:`maestro.run.progress.Progress` folded from the events the runner's observer hands it while real scripted
  sessions run (a retried task, a paused and resumed session), checked against the log read back and, prefix by
  prefix, against the reducer (the one interpreter of the log); a crash resume's ``rewind`` (a hypothesis
  property over real logs);
* the table (:func:`maestro.cli.live.render`) drawn into a string by a rich console;
* ``maestro demo`` in a real pseudo-terminal (the table, the ``[Maestro]`` lines above it, the cursor given back),
  ``maestro run`` piped (the plain lines, no escape), the ways to turn the view off, and Ctrl-C and SIGTERM in
  the terminal (the view stops, the exit codes and last lines as without it).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import io
import json
import logging
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

import maestro
from maestro.agents.scripted import ScriptedAgent
from maestro.cli.live import LiveView, duration, live_wanted, render, totals
from maestro.config import parse_config
from maestro.core.records import Event, Rewind, converter
from maestro.core.seams import TickingClock
from maestro.run.pauses import answer
from maestro.run.progress import BUCKETS, Progress, ProgressSnapshot, TaskProgress, bucket_of
from maestro.run.runner import Runner
from tests.support.runs import Plan, config_text, make_plan, make_repo, prd_text, task, write

PY = sys.executable
ESC = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Z0-9])")


# -- sessions, run in process with an observer -------------------------------------------------------------------


class Watched:
    """A session run with a live view's observer (the view not started: nothing drawn): the events it was handed,
    the progress after each, and the session's log."""

    def __init__(self, store: maestro.Store) -> None:
        self.store = store
        self.view = LiveView(Console(file=io.StringIO()), clock=TickingClock(step=_dt.timedelta(0)))
        self.seen: list[Event] = []
        self.folders: set[Path] = set()
        self.snaps: list[ProgressSnapshot] = []

    def observe(self, event: Event, folder: Path) -> None:
        self.seen.append(event)
        self.folders.add(folder)
        self.view.observe(event, folder)
        self.snaps.append(self.view.snapshot())

    def log(self, sid: str) -> list[Event]:
        return self.store.read_events(sid)


def plan_files(root: Path, tasks: Sequence[Mapping[str, Any]], script: Mapping[str, Any], config: str) -> Path:
    plan = root / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
    (plan / "script.yaml").write_text(json.dumps({"version": 1, "tasks": dict(script)}), encoding="utf-8")
    (plan / "config.yaml").write_text(config, encoding="utf-8")
    return plan


def runner(store: maestro.Store, plan: Path, watched: Watched | None) -> Runner:
    agent = ScriptedAgent.load(plan / "script.yaml")
    cfg = parse_config((plan / "config.yaml").read_text(encoding="utf-8"), plan / "config.yaml")
    return Runner(store, cfg, agent, clock=maestro.TickingClock(), ids=maestro.SequentialIds(),
                  sleep=lambda s: None, observer=watched.observe if watched else None)  # fmt: skip


RETRIED = {
    "a": [{"fail": {"kind": "transient", "message": "rate limited"}, "cost_usd": 0.001},
          {"actions": [write("a.txt", "a\n")], "summary": "a written", "cost_usd": 0.01}],
    "b": [{"actions": [write("b.txt", "b\n")], "summary": "b written", "cost_usd": 0.02}],
    "c": [{"actions": [write("c.txt", "c\n")], "summary": "c written", "cost_usd": 0.03}],
}  # fmt: skip
RETRIED_TASKS = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"]),
                 task("c", acceptance=["test -f c.txt"])]  # fmt: skip


@pytest.fixture(scope="module")
def retried(tmp_path_factory: pytest.TempPathFactory) -> tuple[Watched, str]:
    """A completed session: a's first attempt is rate limited and retried, b waits for a, c runs beside them."""
    root = tmp_path_factory.mktemp("retried")
    store = maestro.Store(make_repo(root))
    watched = Watched(store)
    plan = plan_files(root, RETRIED_TASKS, RETRIED, config_text())
    outcome = runner(store, plan, watched).run("Build the sample", prd_path=plan / "prd.md",
                                               tasks_path=plan / "tasks.yaml")  # fmt: skip
    assert outcome.state == "completed"
    return watched, outcome.session_id


AMBIGUOUS = {"fail": {"kind": "ambiguous", "message": "Which database: postgres or sqlite?"}}


@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory) -> tuple[Watched, Watched, str]:
    """A session that pauses (a asks a question), answered ``retry`` and resumed to the end: the observers of the
    run and of the resume."""
    root = tmp_path_factory.mktemp("paused")
    store = maestro.Store(make_repo(root))
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {"a": [{**AMBIGUOUS, "cost_usd": 0.005}, {"actions": [write("a.txt", "a\n")], "cost_usd": 0.01}],
              "b": [{"actions": [write("b.txt", "b\n")], "cost_usd": 0.02}]}  # fmt: skip
    plan = plan_files(root, tasks, script, config_text())
    first = Watched(store)
    outcome = runner(store, plan, first).run("Build the sample", prd_path=plan / "prd.md",
                                             tasks_path=plan / "tasks.yaml")  # fmt: skip
    assert outcome.state == "paused"
    answer(store, outcome.session_id, "retry")
    second = Watched(store)
    again = runner(store, plan, second).resume(outcome.session_id)
    assert again.state == "completed"
    return first, second, outcome.session_id


def rows(snap: ProgressSnapshot) -> dict[str, tuple[str, str, int, float, int]]:
    return {t.task: (t.state, t.bucket, t.attempt, round(t.cost_usd, 6), t.calls) for t in snap.tasks}


def test_the_observer_is_handed_every_event_of_the_log_in_order_with_the_session_folder(
    retried: tuple[Watched, str],
) -> None:
    watched, sid = retried
    assert watched.seen == watched.log(sid)
    assert watched.folders == {watched.store.session_dir(sid)}


def test_the_progress_of_a_retried_task_and_the_totals(retried: tuple[Watched, str]) -> None:
    watched, sid = retried
    final = watched.snaps[-1]
    assert (final.session_id, final.request, final.state) == (sid, "Build the sample", "completed")
    assert rows(final) == {
        "a": ("succeeded", "done", 2, 0.011, 2),
        "b": ("succeeded", "done", 1, 0.02, 1),
        "c": ("succeeded", "done", 1, 0.03, 1),
    }
    assert [(t.task, t.title, t.last) for t in final.tasks] == [("a", "A", "a written"), ("b", "B", "b written"),
                                                                ("c", "C", "c written")]  # fmt: skip
    assert dict(final.counts) == {"waiting": 0, "running": 0, "done": 3, "failed": 0}
    assert (final.total, final.attempts, final.ended) == (3, 4, True)
    state = maestro.rebuild(watched.log(sid))
    assert final.cost_usd == pytest.approx(state.spent_usd) == pytest.approx(0.061)
    assert final.elapsed_s == pytest.approx(state.active_s)
    for t in final.tasks:
        assert t.elapsed_s is not None and 0 < t.elapsed_s <= final.elapsed_s
    # on the way: every task waiting once implementing began, then a running on attempt 1, failed, and on 2
    states = [(s.state, rows(s)["a"][:3] if s.tasks else None) for s in watched.snaps]
    first = next(i for i, (st_, _) in enumerate(states) if st_ == "implementing")
    assert rows(watched.snaps[first]) == dict.fromkeys("abc", ("pending", "waiting", 0, 0.0, 0))
    a_path = [a for _, a in states[first:]]
    assert a_path.index(("running", "running", 1)) < a_path.index(("failed", "failed", 1))
    assert a_path.index(("failed", "failed", 1)) < a_path.index(("retrying", "waiting", 1))
    assert a_path.index(("retrying", "waiting", 1)) < a_path.index(("running", "running", 2))
    b_first_start = next(i for i, s in enumerate(watched.snaps) if rows(s).get("b", ("",))[0] == "running")
    assert rows(watched.snaps[b_first_start])["a"][0] == "succeeded"  # b waits for a


def test_the_log_read_back_gives_the_same_progress_as_the_run_watched_live(retried: tuple[Watched, str]) -> None:
    watched, sid = retried
    again = Progress(titles={"a": "A", "b": "B", "c": "C"})
    for e in watched.log(sid):
        again.add(e)
    assert again.snapshot() == watched.snaps[-1]


def test_a_paused_session_then_its_resume_handed_the_whole_log_first(paused: tuple[Watched, Watched, str]) -> None:
    first, second, sid = paused
    at_pause = first.snaps[-1]
    assert at_pause.state == "paused" and not at_pause.ended
    assert rows(at_pause) == {"a": ("failed", "failed", 1, 0.005, 1), "b": ("pending", "waiting", 0, 0.0, 0)}
    assert at_pause.tasks[0].last == "ambiguous: Which database: postgres or sqlite?"
    # the resume's observer gets the log as it was (the same progress as at the pause), then the new events
    n = len(first.seen)
    assert second.seen[:n] == first.seen
    assert second.snaps[n - 1] == at_pause
    final = second.snaps[-1]
    assert final.state == "completed"
    assert rows(final) == {"a": ("succeeded", "done", 2, 0.015, 2), "b": ("succeeded", "done", 1, 0.02, 1)}
    assert final.elapsed_s == pytest.approx(maestro.rebuild(second.log(sid)).active_s)  # the pause left out


def test_every_prefix_of_real_logs_agrees_with_the_reducer(
    retried: tuple[Watched, str], paused: tuple[Watched, Watched, str]
) -> None:
    """Prefix by prefix: each task's state and attempts as the reducer has them, the buckets add up to the tasks,
    the cost is every agent call's, and the active time never goes back."""
    for log in (retried[0].log(retried[1]), paused[1].log(paused[2])):
        progress = Progress(clock=TickingClock(step=_dt.timedelta(0)))
        elapsed = 0.0
        for i, e in enumerate(log):
            progress.add(e)
            snap = progress.snapshot()
            state = maestro.rebuild(log[: i + 1])
            assert {t.task: (t.state, t.attempt) for t in snap.tasks if t.task in state.tasks} == {
                k: (v.state, v.attempts) for k, v in state.tasks.items()
            }
            assert all(t.state == "pending" for t in snap.tasks if t.task not in state.tasks)
            assert sum(snap.counts.values()) == snap.total == len(snap.tasks)
            assert snap.state == state.state
            assert snap.cost_usd == pytest.approx(state.spent_usd)
            assert snap.elapsed_s >= elapsed
            elapsed = snap.elapsed_s


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_rewind_folds_the_statuses_again_without_the_voided_events(
    retried: tuple[Watched, str], data: st.DataObject
) -> None:
    """A crash resume's rewind at any point of a real log: the tasks as the reducer has them after it, the cost
    still every call's (a voided one was paid for)."""
    log = retried[0].log(retried[1])
    cut = data.draw(st.integers(min_value=2, max_value=len(log)), label="events before the rewind")
    to = data.draw(st.integers(min_value=1, max_value=cut - 1), label="rewound to")
    rewind = Event(1, cut + 1, log[cut - 1].ts, "rewind",
                   converter.unstructure(Rewind(to, "resumed after the run stopped")))  # fmt: skip
    events = [*log[:cut], rewind]
    progress = Progress()
    for e in events:
        progress.add(e)
    snap = progress.snapshot()
    state = maestro.rebuild(events)
    assert snap.state == state.state
    assert {t.task: (t.state, t.attempt) for t in snap.tasks if t.task in state.tasks} == {
        k: (v.state, v.attempts) for k, v in state.tasks.items()
    }
    assert sum(snap.counts.values()) == snap.total
    assert snap.cost_usd == pytest.approx(sum(e.data.get("cost_usd") or 0.0 for e in log[:cut] if e.kind == "agent"))


def test_the_clock_runs_to_now_only_while_the_session_runs_and_is_being_recorded() -> None:
    start = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
    clock = TickingClock(start=start, step=_dt.timedelta(seconds=10))  # made at +0 s; each reading 10 s later
    p = Progress(clock=clock)

    def ev(seq: int, s: float, kind: str, **data: Any) -> Event:
        ts = (start + _dt.timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
        return Event(1, seq, ts, kind, data)

    p.add(ev(1, 1, "session", session_id="s-1", request="r"))
    p.add(ev(2, 2, "transition", trigger="start", source="created", dest="planning"))
    assert p.snapshot().elapsed_s == pytest.approx(9)  # now is +10 s (the next reading); the run began at +1 s
    p.add(ev(3, 3, "transition", trigger="pause", source="planning", dest="paused"))
    assert p.snapshot().elapsed_s == pytest.approx(2)  # paused: the clock stands at the last event
    p.add(ev(4, 40, "transition", trigger="resume", source="paused", dest="planning"))
    p.add(ev(5, 41, "transition", trigger="error", source="planning", dest="failed"))
    assert p.snapshot().elapsed_s == pytest.approx(3)  # ended: +1..+3, then +40..+41
    old = Progress(clock=TickingClock(start=start + _dt.timedelta(days=1)))
    for e in (ev(1, 1, "session", session_id="s-1", request="r"),
              ev(2, 2, "transition", trigger="start", source="created", dest="planning")):  # fmt: skip
        old.add(e)
    assert old.snapshot().elapsed_s == pytest.approx(1)  # a log read back (a day later) does not tick


def test_buckets() -> None:
    assert [bucket_of(s) for s in ("pending", "ready", "blocked", "retrying", "running", "succeeded", "failed",
                                   "skipped")] == ["waiting"] * 4 + ["running", "done", "failed", "failed"]  # fmt: skip
    assert BUCKETS == ("waiting", "running", "done", "failed")


def test_a_failing_observer_is_logged_once_and_never_breaks_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = maestro.Store(make_repo(tmp_path))
    plan = plan_files(tmp_path, RETRIED_TASKS, RETRIED, config_text())
    calls: list[int] = []

    def boom(event: Event, folder: Path) -> None:
        calls.append(event.seq)
        raise RuntimeError("the view fell over")

    r = runner(store, plan, None)
    r.observer = boom
    with caplog.at_level(logging.DEBUG, logger="maestro"):
        outcome = r.run("Build the sample", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert outcome.state == "completed"
    assert calls == [e.seq for e in store.read_events(outcome.session_id)]  # called for every event all the same
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "observer" in r.getMessage()]
    assert warnings == [f"session {outcome.session_id}: the observer failed on event 1: the view fell over"]


# -- the table -----------------------------------------------------------------------------------------------------


def drawn(thing: Any, width: int = 110) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None, record=True)
    console.print(thing)
    return console.export_text()


def snap_of(*tasks: TaskProgress, state: str = "implementing", cost: float = 0.0, elapsed: float = 75.0) -> Any:
    return ProgressSnapshot("s-1", "Build it", state, tasks, cost, elapsed, sum(t.attempt for t in tasks))


def test_the_table_draws_each_task_and_the_totals(retried: tuple[Watched, str]) -> None:
    watched, sid = retried
    final = watched.snaps[-1]
    text = drawn(render(final))
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[0] == f"maestro session {sid}"
    assert lines[1].split() == ["Task", "Title", "Status", "Attempt", "Elapsed", "Cost", "Last"]
    a, b, c = (t.elapsed_s for t in final.tasks)
    assert re.fullmatch(rf"a\s+A\s+done\s+2\s+{re.escape(duration(a))}\s+\$0\.0110\s+a written", lines[2])
    assert re.fullmatch(rf"b\s+B\s+done\s+1\s+{re.escape(duration(b))}\s+\$0\.0200\s+b written", lines[3])
    assert re.fullmatch(rf"c\s+C\s+done\s+1\s+{re.escape(duration(c))}\s+\$0\.0300\s+c written", lines[4])
    assert lines[5] == f"completed · 3/3 tasks done · 4 attempts · $0.0610 · {duration(final.elapsed_s)}"


def test_the_table_while_tasks_run_wait_and_fail() -> None:
    tasks = (
        TaskProgress("core", "Core", "succeeded", "done", 1, 12.5, 0.01, 1, "core done"),
        TaskProgress("ops", "Operations", "running", "running", 2, 3.25, 0.0, 1, "transient: 429\nmore"),
        TaskProgress("cli", "", "pending", "waiting", 0, None, 0.0, 0, ""),
        TaskProgress("docs", "", "skipped", "failed", 1, 4.0, 0.005, 1, "skipped by a human"),
    )
    lines = [line.rstrip() for line in drawn(render(snap_of(*tasks, cost=0.015))).splitlines()]
    assert lines[1].split() == ["Task", "Title", "Status", "Attempt", "Elapsed", "Cost", "Last"]
    assert lines[2].split() == ["core", "Core", "done", "1", "12s", "$0.0100", "core", "done"]
    assert lines[3].split() == ["ops", "Operations", "running", "2", "3.2s", "$0.0000", "transient:", "429"]
    assert lines[4].split() == ["cli", "waiting", "-", "-", "-"]
    assert lines[5].split() == ["docs", "skipped", "1", "4.0s", "$0.0050", "skipped", "by", "a", "human"]
    assert lines[6] == "implementing · 1/4 tasks done · 1 running · 1 waiting · 1 failed · 4 attempts · $0.0150 · 1m15s"


def test_in_a_narrow_terminal_the_title_and_the_last_word_are_cut_not_the_figures() -> None:
    long = "regression: Your change broke task core (Add and subtract): its acceptance command failed (exit 1)"
    tasks = (TaskProgress("cli", "Command line with a long title", "retrying", "waiting", 1, 5.1, 0.02, 1, long),)
    for width in (120, 80, 64):
        lines = drawn(render(snap_of(*tasks)), width=width).splitlines()
        assert all(len(line) <= width for line in lines)
        assert lines[1].split() == ["Task", "Title", "Status", "Attempt", "Elapsed", "Cost", "Last"]
        cells = lines[2].split()
        assert cells[0] == "cli" and cells[-1].endswith("…")
        assert lines[2].count("retrying  ") == 1 and "5.1s  $0.0200" in lines[2]


def test_a_long_plan_keeps_the_running_and_failed_tasks_in_view() -> None:
    tasks = [TaskProgress(f"t{i:02d}", "", "succeeded", "done", 1, 1.0, 0.0, 1, "") for i in range(20)]
    tasks[15] = TaskProgress("t15", "", "running", "running", 1, 1.0, 0.0, 0, "")
    tasks[3] = TaskProgress("t03", "", "failed", "failed", 3, 1.0, 0.0, 3, "implementation: no")
    lines = drawn(render(snap_of(*tasks), max_rows=5)).splitlines()
    shown = [line.split()[0] for line in lines[2:-1]]
    assert shown == ["t00", "t01", "t03", "t15", "…"]
    assert "… 16 more" in lines[-2]


def test_before_the_plan_only_the_session_line() -> None:
    assert drawn(render(snap_of(state="planning", elapsed=0.4))).splitlines() == [
        "maestro session s-1",
        "planning · no tasks yet · 0 attempts · $0.0000 · 0.4s",
    ]
    assert totals(snap_of(state="paused")).plain.startswith("paused · ")


def test_durations() -> None:
    assert [duration(s) for s in (None, 0.04, 9.96, 10, 59.9, 60, 125, 3599, 3600, 7384)] == [
        "-", "0.0s", "10.0s", "10s", "59s", "1m00s", "2m05s", "59m59s", "1h00m", "2h03m"
    ]  # fmt: skip


def test_the_view_reads_the_titles_from_the_session_plan_and_draws_above_its_lines(
    retried: tuple[Watched, str],
) -> None:
    watched, sid = retried
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None, height=30)
    with LiveView(console, refresh_per_second=20) as view:
        view.say("[Maestro] a line, printed as it is: [bold]not markup[/bold]")
        for e in watched.log(sid):
            view.observe(e, watched.store.session_dir(sid))
    text = ESC.sub("", out.getvalue())
    assert "[Maestro] a line, printed as it is: [bold]not markup[/bold]" in text
    last = text[text.rindex(f"maestro session {sid}") :].splitlines()
    assert last[1].split() == ["Task", "Title", "Status", "Attempt", "Elapsed", "Cost", "Last"]
    assert last[2].split()[:4] == ["a", "A", "done", "2"]
    assert last[5].startswith("completed · 3/3 tasks done")
    assert out.getvalue().rstrip().endswith("\x1b[?25h")  # the cursor given back


class Terminal(io.StringIO):
    """A terminal that can go away (a closed window: every write fails)."""

    gone = False

    def write(self, text: str) -> int:
        if self.gone:
            raise OSError(5, "Input/output error")
        return super().write(text)


def test_a_view_that_cannot_draw_or_whose_terminal_went_away_never_ends_the_command() -> None:
    out = Terminal()
    view = LiveView(Console(file=out, width=80, force_terminal=True, color_system=None), refresh_per_second=20)
    with view:

        def broken() -> ProgressSnapshot:
            raise ValueError("a bug in the view")

        view.progress.snapshot = broken  # type: ignore[method-assign]
        drawn_now = view.renderable()
        assert isinstance(drawn_now, Text)
        assert drawn_now.plain == "(the live view cannot draw: a bug in the view)"
        out.gone = True
    assert sys.stdout is not None and not hasattr(sys.stdout, "rich_proxied_file")  # stdout given back


def test_when_the_view_is_wanted(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as tty:
            assert live_wanted(tty, environ={"TERM": "xterm"})
            assert live_wanted(tty, environ={"MAESTRO_NO_LIVE": "0"})
            assert not live_wanted(tty, environ={"MAESTRO_NO_LIVE": "1"})
            assert not live_wanted(tty, environ={"TERM": "dumb"})
            assert not live_wanted(tty, no_live=True, environ={})
            assert not live_wanted(tty, verbose=True, environ={})
        assert not live_wanted(io.StringIO(), environ={})
        with (tmp_path / "out").open("w") as f:
            assert not live_wanted(f, environ={})
    finally:
        os.close(master)
        os.close(slave)


# -- in a terminal ---------------------------------------------------------------------------------------------------


class Pty:
    """A command in a real pseudo-terminal (40 × 120): everything it wrote, and its exit code."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in ("MAESTRO_NO_LIVE", "COLUMNS", "LINES")}
        environ.update({"TERM": "xterm-256color", **(env or {})})
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal and stdin, stdout, stderr
            try:
                os.chdir(cwd)
                os.execve(PY, [PY, "-m", "maestro", *argv], environ)
            finally:
                os._exit(127)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.pid, self.fd = pid, fd
        self.out = b""
        self.code: int | None = None

    def read_until(self, done: Callable[[bytes], bool], timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while not done(self.out):
            if time.monotonic() > end:
                raise AssertionError(f"timed out; the terminal shows: {self.text()[-2000:]}")
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # EIO: the child is gone
                    data = b""
                if not data:
                    raise AssertionError(f"ended early; the terminal shows: {self.text()[-2000:]}")
                self.out += data

    def finish(self, timeout: float = 120) -> int:
        end = time.monotonic() + timeout
        while True:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            data = b""
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                self.out += data
            if r and not data:
                break
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGKILL)
                raise AssertionError(f"timed out; the terminal shows: {self.text()[-2000:]}")
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def text(self) -> str:
        """What it wrote, escapes taken out, lines as they were (the terminal's CR LF as LF)."""
        return ESC.sub("", self.out.decode("utf-8", "replace")).replace("\r\n", "\n")

    def cursor_given_back(self) -> bool:
        hidden, shown = self.out.rfind(b"\x1b[?25l"), self.out.rfind(b"\x1b[?25h")
        return hidden >= 0 and shown > hidden


@pytest.fixture(scope="module")
def demo_in_a_terminal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pty, Path]:
    folder = tmp_path_factory.mktemp("demo") / "here"
    term = Pty(["demo", "--dir", str(folder)], cwd=folder.parent)
    assert term.finish() == 0, term.text()[-3000:]
    return term, folder


def test_the_demo_in_a_terminal_shows_the_live_table(demo_in_a_terminal: tuple[Pty, Path]) -> None:
    term, folder = demo_in_a_terminal
    store = maestro.Store(folder / "calc")
    (sid,) = store.session_ids()
    text = term.text()
    lines = text.splitlines()
    # the table as it was left at the end: every task done, with its attempts and cost, and the totals
    top = max(i for i, line in enumerate(lines) if line.startswith(f"maestro session {sid}"))
    final = [line.rstrip() for line in lines[top:]]
    assert final[1].split() == ["Task", "Title", "Status", "Attempt", "Elapsed", "Cost", "Last"]
    row = r"\s+done\s+{n}\s+[0-9.]+s\s+\${cost}\s+"
    assert re.match(r"core\s+Add and subtract" + row.format(n=1, cost=r"0\.0100") + "add and sub, with tests", final[2])
    assert re.match(r"ops\s+Multiply and divide" + row.format(n=2, cost=r"0\.0100") + "mul and div", final[3])
    assert re.match(r"cli\s+Command line" + row.format(n=2, cost=r"0\.0400") + "command line, core left alone",
                    final[4])  # fmt: skip
    assert re.match(r"docs\s+Document the usage" + row.format(n=1, cost=r"0\.0050") + "usage in the README", final[5])
    assert re.fullmatch(r"completed · 4/4 tasks done · 6 attempts · \$0\.0650 · \S+", final[6])
    assert final[7:] == [
        f"session {sid}: completed",
        f"sample repository and plan: {folder}",
        f"report: {store.session_dir(sid) / 'final-report.md'}",
    ]
    # on the way: tasks running, and the [Maestro] lines printed above the table, none lost
    assert re.search(r"^(core|ops|cli|docs)\s+\S.*\s+running\s+[12]\s", text, re.M)
    log_lines = [line for line in lines if line.startswith("[Maestro] ")]
    assert log_lines[0] == f"[Maestro] Session {sid} started on branch maestro/{sid}"
    assert "[Maestro] handoff → completed (complete)" in log_lines
    assert log_lines[-1] == f"[Maestro] Landed maestro/{sid} into master (fast-forward)"
    assert len(log_lines) >= 30
    assert term.cursor_given_back()


@pytest.fixture
def small(tmp_path: Path) -> Plan:
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {"a": [{"actions": [write("a.txt", "a\n")], "cost_usd": 0.01}],
              "b": [{"actions": [write("b.txt", "b\n")], "cost_usd": 0.02}]}  # fmt: skip
    return make_plan(tmp_path, tasks=tasks, script=script)


def plain_lines(plan: Plan, stdout: str) -> None:
    """The output as it always was: the [Maestro] lines, then the summary; no escape, no table."""
    assert "\x1b" not in stdout
    lines = stdout.splitlines()
    assert lines[0] == f"[Maestro] Session {plan.sid} started on branch maestro/{plan.sid}"
    assert lines[-2:] == [f"session {plan.sid}: completed", f"report: {plan.session_dir / 'final-report.md'}"]
    assert all(line.startswith("[Maestro] ") for line in lines[:-3])
    assert "Task" not in "".join(line.split()[0] for line in lines if line.split())


def test_piped_the_output_is_the_plain_lines(small: Plan) -> None:
    out = small.run()
    assert (out.returncode, out.stderr) == (0, "")
    plain_lines(small, out.stdout)


@pytest.mark.parametrize(
    ("extra", "env"),
    [(("--no-live",), {}), ((), {"MAESTRO_NO_LIVE": "1"}), ((), {"TERM": "dumb"})],
    ids=["--no-live", "MAESTRO_NO_LIVE", "TERM=dumb"],
)
def test_in_a_terminal_the_view_can_be_turned_off(small: Plan, extra: tuple[str, ...], env: dict[str, str]) -> None:
    term = Pty(small.run_args(*extra), cwd=small.repo, env=env)
    assert term.finish() == 0, term.text()
    assert b"\x1b[?25l" not in term.out  # no live region was drawn
    plain_lines(small, term.out.decode().replace("\r\n", "\n"))


def test_with_verbose_the_view_is_off(small: Plan) -> None:
    term = Pty(["-v", *small.run_args()], cwd=small.repo)
    assert term.finish() == 0
    assert b"\x1b[?25l" not in term.out
    assert f"session {small.sid}: completed" in term.text()


def test_in_a_terminal_maestro_run_shows_the_table_then_the_same_last_lines(small: Plan) -> None:
    term = Pty(small.run_args(), cwd=small.repo)
    assert term.finish() == 0
    lines = term.text().splitlines()
    folder = small.session_dir
    assert lines[-3:] == [f"html report: {folder / 'report.html'}", f"session {small.sid}: completed",
                          f"report: {folder / 'final-report.md'}"]  # fmt: skip
    assert re.fullmatch(r"completed · 2/2 tasks done · 2 attempts · \$0\.0300 · \S+", lines[-4].rstrip())
    assert lines[-6].split()[:4] == ["a", "A", "done", "1"]
    assert lines[-5].split()[:4] == ["b", "B", "done", "1"]
    assert term.cursor_given_back()


def sleepy(root: Path, marks: Path) -> Plan:
    """a notes its process group, then sleeps (DURABLE_SLEEP seconds); b depends on a."""
    slow = f'echo $$ > "{marks}/a.pgid"; sleep "${{DURABLE_SLEEP:-0}}"'
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {"a": [{"actions": [{"run": slow}, write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    return make_plan(root, tasks=tasks, script=script)


def running_a(out: bytes) -> bool:
    return re.search(r"\na\s+A\s+running\s+1\s", ESC.sub("", out.decode("utf-8", "replace"))) is not None


def kill_group(marks: Path) -> None:
    with_pgid = marks / "a.pgid"
    if with_pgid.is_file() and with_pgid.read_text().strip():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(with_pgid.read_text()), signal.SIGKILL)


@pytest.fixture
def marks(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "marks"
    folder.mkdir()
    yield folder
    kill_group(folder)


def test_ctrl_c_in_the_terminal_pauses_and_the_view_stops_with_the_terminal_sane(tmp_path: Path, marks: Path) -> None:
    plan = sleepy(tmp_path / "run", marks)
    term = Pty(plan.run_args(), cwd=plan.repo, env={"DURABLE_SLEEP": "2"})
    term.read_until(running_a)
    os.write(term.fd, b"\x03")  # Ctrl-C, as the terminal sends it: SIGINT to the foreground group
    code = term.finish()
    text = term.text()
    assert code == 130, text
    assert "maestro: pausing after the current step (Ctrl-C again to stop at once)" in text
    lines = [line.rstrip() for line in text.splitlines()]
    folder = plan.session_dir
    assert lines[-4:] == [
        f"session {plan.sid}: paused",
        f"report: {folder / 'final-report.md'}",
        f"decision request: {folder / 'decision-request.json'}",
        f"answer it: maestro answer {plan.sid} CHOICE [--note TEXT]; then: maestro resume {plan.sid}",
    ]
    assert lines[-5] == f"html report: {folder / 'report.html'}"
    assert lines[-6].startswith("paused · 1/2 tasks done · 1 waiting")
    assert term.cursor_given_back()
    assert plan.status()["state"] == "paused"


def test_sigterm_in_the_terminal_stops_at_once_and_the_view_stops_with_the_terminal_sane(
    tmp_path: Path, marks: Path
) -> None:
    plan = sleepy(tmp_path / "run", marks)
    term = Pty(plan.run_args(), cwd=plan.repo, env={"DURABLE_SLEEP": "30"})
    term.read_until(running_a)
    os.kill(term.pid, signal.SIGTERM)
    code = term.finish(timeout=60)
    text = term.text()
    assert code == 143, text
    assert text.rstrip().endswith(f"maestro: stopped at once by SIGTERM: `maestro resume {plan.sid}` redoes the "
                                  "interrupted step")  # fmt: skip
    assert term.cursor_given_back()
    assert "\x1b[?25l" not in term.out.decode()[term.out.decode().rfind("\x1b[?25h") :]
