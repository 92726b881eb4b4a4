"""A session's progress, folded from its events as they are recorded: what a live view shows.

:class:`Progress` takes the events of one session in log order (:meth:`Progress.add`; a runner's observer feeds it
those already in the log, then each new one) and gives a :class:`ProgressSnapshot` at any time: each task with its
status, attempt, elapsed time and cost, and the session's state and totals.  It is pure — no I/O, the time from
an injected :class:`~maestro.core.seams.Clock` — and never raises on an event it does not know.

* A task's **status** is its state on the task chart; its **bucket** one of :data:`BUCKETS`: ``waiting``
  (pending, ready, blocked, retrying), ``running``, ``done`` (succeeded) or ``failed`` (failed, skipped).  The
  tasks are those the plan names (:meth:`Progress.plan`) and those the log names (a move, a decision about one).
* **Time** is the session's active time, as ``maestro stats`` counts it: the spans of its runs, a pause and what
  came before a crash resume left out.  A task's elapsed time is that clock from its first start to its end
  (succeeded, failed, skipped) or to now.  The clock runs on to *now* only while the session is active (not
  paused, not ended) and has recorded an event since the progress was made: a log read back does not tick.
* **Cost** is every agent call's, those a crash resume voided too (they were paid for).
* A ``rewind`` (a crash resume) voids the events after its mark: the statuses are folded again without them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from maestro.core.records import Event
from maestro.core.seams import Clock, SystemClock
from maestro.model.state import effective_events
from maestro.store.metrics import ENDED

__all__ = ["BUCKETS", "Progress", "ProgressSnapshot", "TaskProgress", "bucket_of"]

BUCKETS = ("waiting", "running", "done", "failed")

_BUCKET = {"running": "running", "succeeded": "done", "failed": "failed", "skipped": "failed"}
_ENDS = ("succeeded", "failed", "skipped")  # a task's clock stops in these


def bucket_of(state: str) -> str:
    """The bucket of a task chart state (any other state waits)."""
    return _BUCKET.get(state, "waiting")


@attrs.frozen
class TaskProgress:
    """One task: its chart ``state`` and ``bucket``, the ``attempt`` it is on (0: never started), ``elapsed_s``
    (None: never started), ``cost_usd`` and ``calls`` (its agent calls), and ``last``: the last thing said of it
    (its agent's summary, or why it failed)."""

    task: str
    title: str
    state: str
    bucket: str
    attempt: int
    elapsed_s: float | None
    cost_usd: float
    calls: int
    last: str


@attrs.frozen
class ProgressSnapshot:
    """The session at one moment: its ``state``, ``tasks`` (plan order, then in the order the log names them),
    ``cost_usd`` (every agent call), ``elapsed_s`` (active time) and ``iteration`` (refinement rounds)."""

    session_id: str
    request: str
    state: str
    tasks: tuple[TaskProgress, ...]
    cost_usd: float
    elapsed_s: float
    attempts: int
    iteration: int = 0

    @property
    def total(self) -> int:
        return len(self.tasks)

    def count(self, bucket: str) -> int:
        """How many tasks are in ``bucket`` (one of :data:`BUCKETS`)."""
        return sum(1 for t in self.tasks if t.bucket == bucket)

    @property
    def counts(self) -> Mapping[str, int]:
        return {b: self.count(b) for b in BUCKETS}

    @property
    def ended(self) -> bool:
        return self.state in ENDED


class _Task:
    """One task while the events are folded (mutable)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.state = "pending"
        self.attempt = 0
        self.start: float | None = None  # the session's active clock at its first start
        self.end: float | None = None  # ... when it last stopped (None: it has not, or it started again)
        self.last = ""


class Progress:
    """The progress of one session, folded from its events (:meth:`add`), read with :meth:`snapshot`.

    Not thread-safe: a reader in another thread (a live view's refresh) holds its own lock around both.
    """

    def __init__(self, *, clock: Clock | None = None, titles: Mapping[str, str] | None = None) -> None:
        self.clock = clock or SystemClock()
        self._made = _seconds_of(self.clock.now())
        self._events: list[Event] = []
        self._active: dict[int, float] = {}  # seq -> the session's active clock at that event
        self._closed = 0.0  # seconds of the runs that ended
        self._run_start: float | None = None
        self._last: float | None = None
        self._cost: dict[str, float] = {}
        self._calls: dict[str, int] = {}
        self._order: list[str] = []  # the tasks in the order they were named
        self._titles: dict[str, str] = {}
        self._tasks: dict[str, _Task] = {}
        self._reset()
        self.plan(titles or {})

    def _reset(self) -> None:
        self.session_id = ""
        self.request = ""
        self.state = "created"
        self.iteration = 0
        self._tasks = {t: _Task(t) for t in self._order}

    # -- feeding -------------------------------------------------------------------------------------------------
    def plan(self, titles: Mapping[str, str] | Iterable[str]) -> None:
        """The tasks of the plan (ids, or ids to titles), known before any of them moves."""
        items = titles.items() if isinstance(titles, Mapping) else ((t, "") for t in titles)
        for task, title in items:
            if title:
                self._titles[task] = title
            self._name(task)

    def add(self, event: Event) -> None:
        """Fold in the next event of the log."""
        self._events.append(event)
        self._tick(event)
        if event.kind == "rewind":
            self._reset()
            for e in effective_events(self._events):
                self._apply(e)
        else:
            self._apply(event)
        if event.kind == "agent":  # every call counts, a voided one too
            task, cost = event.data.get("task"), event.data.get("cost_usd")
            if isinstance(task, str):
                self._name(task)
                self._calls[task] = self._calls.get(task, 0) + 1
                if isinstance(cost, (int, float)) and not isinstance(cost, bool):
                    self._cost[task] = self._cost.get(task, 0.0) + float(cost)

    def _name(self, task: str) -> None:
        if task not in self._order:
            self._order.append(task)
        if task not in self._tasks:
            self._tasks[task] = _Task(task)

    def _tick(self, event: Event) -> None:
        """The session's active clock at ``event`` (a span ends at a pause and at a rewind)."""
        ts = _ts(event.ts)
        if ts is None:
            ts = self._last if self._last is not None else 0.0
        if self.state == "paused" or event.kind == "rewind" or self._run_start is None:
            if self._run_start is not None and self._last is not None:
                self._closed += self._last - self._run_start
            self._run_start = ts
        self._last = ts  # as the reducer counts it (SessionState.active_s), clocks that go back included
        self._active[event.seq] = self._closed + max(0.0, self._last - self._run_start)

    def _apply(self, event: Event) -> None:
        data: Mapping[str, Any] = event.data
        at = self._active.get(event.seq, 0.0)
        if event.kind == "session":
            self.session_id = str(data.get("session_id", ""))
            self.request = str(data.get("request", ""))
        elif event.kind == "transition":
            dest = data.get("dest")
            if isinstance(dest, str):
                self.state = dest
                if dest == "refining":
                    self.iteration += 1
        elif event.kind == "task":
            task, dest = data.get("task"), data.get("dest")
            if not isinstance(task, str) or not isinstance(dest, str):
                return
            self._name(task)
            t = self._tasks[task]
            if dest == "running":
                t.attempt += 1
                if t.start is None:
                    t.start = at
            elif data.get("trigger") == "reopen" and t.state == "running":  # voided mid-attempt: redone
                t.attempt = max(0, t.attempt - 1)
            t.end = at if dest in _ENDS and t.start is not None else None
            if dest == "failed" and isinstance(data.get("reason"), str):
                t.last = data["reason"]
            elif dest == "skipped":
                t.last = data["reason"] if isinstance(data.get("reason"), str) else "skipped"
            t.state = dest
        elif event.kind == "agent":
            task = data.get("task")
            if isinstance(task, str):
                self._name(task)
                if data.get("status") == "succeeded" and isinstance(data.get("summary"), str):
                    self._tasks[task].last = data["summary"]
        elif event.kind == "decision":
            task = data.get("task")
            if isinstance(task, str):
                self._name(task)

    # -- reading -------------------------------------------------------------------------------------------------
    @property
    def events(self) -> int:
        """How many events were folded in."""
        return len(self._events)

    def snapshot(self) -> ProgressSnapshot:
        """The session now."""
        now = self._active_now()
        tasks = []
        for tid in self._order:
            t = self._tasks.get(tid) or _Task(tid)
            elapsed = None if t.start is None else max(0.0, (t.end if t.end is not None else now) - t.start)
            tasks.append(TaskProgress(tid, self._titles.get(tid, ""), t.state, bucket_of(t.state), t.attempt,
                                      elapsed, self._cost.get(tid, 0.0), self._calls.get(tid, 0), t.last))  # fmt: skip
        return ProgressSnapshot(
            session_id=self.session_id,
            request=self.request,
            state=self.state,
            tasks=tuple(tasks),
            cost_usd=sum(self._cost.values()),
            elapsed_s=now,
            attempts=sum(t.attempt for t in tasks),
            iteration=self.iteration,
        )

    def _active_now(self) -> float:
        """The active clock now: at the last event, or on to now while the session runs and is being recorded."""
        if self._run_start is None or self._last is None:
            return 0.0
        end = self._last
        if self.state != "paused" and self.state not in ENDED and self._last >= self._made:
            end = max(end, _seconds_of(self.clock.now()))
        return self._closed + max(0.0, end - self._run_start)


def _seconds_of(when: _dt.datetime) -> float:
    return when.timestamp()


def _ts(text: str) -> float | None:
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
