"""Benchmarks: the cost of one durable transition, and replay speed.

    python benchmarks/transitions.py [--json] [--quick] [--dir PATH]

1. Durable transitions: a real :class:`maestro.Session` in a fresh ``git init``
   repository fires a trigger cycle the session chart allows: ``error``/``retry``
   out of ``implementing`` (a move and its event, nothing else) and
   ``pause``/``resume`` out of ``planning`` (pausing also rewrites the derived
   views).  Baselines, in the same run and on the same file system: an fsync'd
   ``O_APPEND`` write of exactly the lines the session wrote (the target: at
   most 1.5x), and a bare ``transitions.Machine`` with the same states and
   transitions (for information).
2. Replay: a valid ``events.jsonl`` of 100,000 events (10,000 with ``--quick``)
   read and replayed with :func:`maestro.replay` and :func:`maestro.rebuild`
   (the target: at least 100,000 events/s); the baseline is ``json.loads`` of
   every line.

Rounds of subject and baselines are interleaved (their order rotates) so that
machine noise hits all of them; the median of the rounds is quoted.  The exit
code is 0 whether or not a target is met: this is a report.  See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# `transitions` package (which maestro imports): it goes to the end, still there for _bench.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import attrs
import transitions

import maestro
from _bench import Medians, file_system, fmt_s, interleaved

TRANSITION_TARGET = 1.5  # durable median / fsync-append median, at most
REPLAY_TARGET = 100_000.0  # events per second, at least

TARGETED = {"error_retry": TRANSITION_TARGET}

# name: (triggers that reach the cycle, the cycle fired over and over)
CYCLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "error_retry": (("start", "plan_ready", "tasks_ready"), ("error", "retry")),
    "pause_resume": (("start",), ("pause", "resume")),
}


@attrs.frozen
class Row(Medians):
    """One line of the report: a subject's rounds against a baseline's rounds, and the target if there is one."""

    name: str
    baseline: str
    rounds_s: tuple[float, ...]
    baseline_rounds_s: tuple[float, ...]
    per: str  # what one round time is the time of: "transition" or "<n> events"
    events: int | None = None  # events per round (replay rows)
    max_ratio: float | None = None
    min_events_per_s: float | None = None

    @property
    def events_per_s(self) -> float | None:
        return self.events / self.median_s if self.events else None

    @property
    def target(self) -> str | None:
        if self.max_ratio is not None:
            return f"ratio <= {self.max_ratio}"
        if self.min_events_per_s is not None:
            return f"events_per_s >= {self.min_events_per_s:,.0f}"
        return None

    @property
    def meets_target(self) -> bool | None:
        if self.max_ratio is not None:
            return self.ratio <= self.max_ratio
        if self.min_events_per_s is not None:
            return (self.events_per_s or 0.0) >= self.min_events_per_s
        return None

    def to_json(self) -> dict[str, Any]:
        keys = ("name", "median_s", "baseline", "baseline_median_s", "ratio", "per", "events", "events_per_s")
        return {k: getattr(self, k) for k in (*keys, "target", "meets_target", "rounds_s", "baseline_rounds_s")}


def git_repo(path: Path) -> Path:
    from dulwich.repo import Repo

    path.mkdir(parents=True, exist_ok=True)
    Repo.init(str(path)).close()
    return path


def bare_machine(chart: maestro.Chart) -> transitions.Machine:
    """The chart's states and moves in a plain ``transitions.Machine``: no guards, no persistence.

    ``$history`` moves are kept as the chart expands them, each conditioned on
    where the ``returns`` state was entered from, as maestro's machine does.
    """
    returns = {s.name for s in chart.states if s.returns}
    back: list[str] = []
    specs: list[dict[str, Any]] = []
    for e in chart.edges():
        spec: dict[str, Any] = {"trigger": e.trigger, "source": e.source, "dest": e.dest}
        if e.history:
            spec["conditions"] = lambda d=e.dest: bool(back) and back[-1] == d
            spec["after"] = back.pop
        elif e.dest in returns:
            spec["before"] = lambda s=e.source: back.append(s)
        specs.append(spec)
    return transitions.Machine(
        states=list(chart.state_names), transitions=specs, initial=chart.initial, auto_transitions=False
    )


def bench_transitions(base: Path, cycle: str, n: int, rounds: int) -> list[Row]:
    """Per-transition medians of a durable session, an fsync'd append of its lines and a bare machine."""
    setup, loop = CYCLES[cycle]
    assert n % len(loop) == 0, "whole cycles, so that every round starts in the same state"
    repo = git_repo(base / cycle)
    session = maestro.Session.create(
        maestro.Store(repo), "bench", clock=maestro.TickingClock(), ids=maestro.SequentialIds()
    )
    machine = bare_machine(maestro.load_chart("session"))
    for trigger in setup:
        session.fire(trigger)
        machine.trigger(trigger)
    triggers = [loop[i % len(loop)] for i in range(n)]
    log_path = session.events_path
    offset = log_path.stat().st_size
    lines: list[bytes] = []
    fd = os.open(repo / "fsync-append.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def durable() -> None:
        for trigger in triggers:
            session.fire(trigger)

    def read_back(name: str) -> None:  # the exact bytes the last durable round wrote, for the append baseline
        nonlocal offset
        if name == "durable":
            with log_path.open("rb") as fh:
                fh.seek(offset)
                lines[:] = fh.read().splitlines(keepends=True)
                offset = fh.tell()

    def append() -> None:
        for line in lines:
            os.write(fd, line)
            os.fsync(fd)

    def bare() -> None:
        for trigger in triggers:
            machine.trigger(trigger)

    try:  # durable first: its warm-up round gives the append baseline its lines
        times = interleaved({"durable": durable, "append": append, "bare": bare}, rounds, read_back)
        assert machine.state == session.current, "the bare machine made the same moves"
    finally:
        os.close(fd)
        session.close()
    per = {k: tuple(t / n for t in v) for k, v in times.items()}
    name = f"durable_transition[{cycle}]"
    return [
        # The target is for a move and its event; a pause also rewrites four views (for information).
        Row(name, "fsync_append", per["durable"], per["append"], "transition", max_ratio=TARGETED.get(cycle)),
        Row(name, "bare_machine", per["durable"], per["bare"], "transition"),
    ]


def write_log(path: Path, session_id: str, n: int) -> None:
    """A valid ``events.jsonl`` of ``n`` events: pause/resume and error/retry cycles, decisions and notes."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first: list[tuple[str, dict[str, Any]]] = [
        ("session", {"session_id": session_id, "request": "bench", "charts": {"session": 1, "task": 1}}),
        *(
            ("transition", {"trigger": t, "source": s, "dest": d})
            for t, s, d in (
                ("start", "created", "planning"),
                ("plan_ready", "planning", "generating_tasks"),
                ("tasks_ready", "generating_tasks", "implementing"),
            )
        ),
    ]
    decision = maestro.converter.unstructure(
        maestro.Decision("library", "Which HTTP client?", "httpx", "async support and type hints")
    )
    cycle: list[tuple[str, dict[str, Any]]] = [
        ("transition", {"trigger": "pause", "source": "implementing", "dest": "paused"}),
        ("transition", {"trigger": "resume", "source": "paused", "dest": "implementing"}),
        ("decision", decision),
        ("transition", {"trigger": "error", "source": "implementing", "dest": "recovering"}),
        ("transition", {"trigger": "retry", "source": "recovering", "dest": "implementing"}),
        ("note", maestro.converter.unstructure(maestro.Note("checkpoint taken after group 2"))),
    ]
    with path.open("w", encoding="utf-8") as fh:
        for seq in range(1, n + 1):
            kind, data = first[seq - 1] if seq <= len(first) else cycle[(seq - len(first) - 1) % len(cycle)]
            ts = (start + dt.timedelta(seconds=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            event = {"v": 1, "seq": seq, "ts": ts, "kind": kind, "data": data}
            fh.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")


def bench_replay(base: Path, n: int, rounds: int) -> list[Row]:
    """Whole-log medians of reading, replaying and rebuilding ``n`` events, against ``json.loads`` of each line."""
    store = maestro.Store(git_repo(base / "replay"))
    store.init()
    sid = "replay-bench"
    path = store.events_path(sid)
    path.parent.mkdir()
    write_log(path, sid, n)

    def loads() -> None:
        for line in path.read_bytes().splitlines():
            json.loads(line)

    def replay() -> int:
        # What `maestro replay` reads of every step: its records and the state after it.
        seen = 0
        for step in maestro.replay(store.read_events(sid)):
            seen += len(step.decisions) + len(step.checkpoints) + len(step.agent_results) + len(step.gates)
            seen += len(step.task_moves) + len(step.notes) + len(step.state.decisions)
        return seen

    subjects: dict[str, Callable[[], object]] = {
        "json_loads": loads,
        "read_events": lambda: store.read_events(sid),
        "replay": replay,
        "rebuild": lambda: maestro.rebuild(store.read_events(sid)),
    }
    times = interleaved(subjects, rounds)
    base_s = times["json_loads"]
    return [
        Row("read_events", "json_loads", times["read_events"], base_s, f"{n} events", events=n),
        *(
            Row(name, "json_loads", times[name], base_s, f"{n} events", events=n, min_events_per_s=REPLAY_TARGET)
            for name in ("replay", "rebuild")
        ),
    ]


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    cols = ("benchmark", "per", "median", "baseline", "baseline median", "ratio", "events/s", "target", "met")
    table = [cols]
    for r in rows:
        met = "" if r.meets_target is None else "yes" if r.meets_target else "NO"
        eps = f"{r.events_per_s:,.0f}" if r.events_per_s else ""
        median, base = fmt_s(r.median_s), fmt_s(r.baseline_median_s)
        table.append((r.name, r.per, median, r.baseline, base, f"{r.ratio:.2f}x", eps, r.target or "(info)", met))
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    for r in rows:
        if r.meets_target is not None:
            print(f"{'MET   ' if r.meets_target else 'MISSED'}  {r.name}: {r.target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="maestro benchmarks: durable transitions and replay")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--quick", action="store_true", help="small sizes: a few seconds in all")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to make the temporary repositories")
    args = parser.parse_args(argv)
    # transitions a round, rounds; events in the replayed log, rounds
    n, rounds, events, replay_rounds = (20, 15, 10_000, 5) if args.quick else (100, 21, 100_000, 5)
    with tempfile.TemporaryDirectory(prefix="maestro-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        fs = file_system(base)
        rows = [row for cycle in CYCLES for row in bench_transitions(base, cycle, n, rounds)]
        rows += bench_replay(base, events, replay_rounds)
    if args.json:
        for r in rows:
            print(json.dumps({**r.to_json(), "file_system": fs}))
    else:
        header = f"maestro benchmarks: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, in {base} on {fs}"
        print_table(rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
