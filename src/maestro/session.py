"""A live session: the session machine, its tasks' machines and its event log.

Every move goes the same way: the chart's machine checks that the trigger is
declared from the current state and that its guards pass; the event is then
appended to ``events.jsonl`` and fsync'd; only then does the state change.  A
refused trigger raises :class:`~maestro.TransitionNotAllowed` and writes
nothing.  One process holds a session at a time (``Session.open`` of a held
session raises :class:`~maestro.SessionLocked`).

The derived files (``metadata.json``, ``decisions.json``, ``checkpoints.json``,
``execution-log.md``) are views of the log, rewritten atomically when the
session is created, pauses, ends or closes, and on :meth:`Session.refresh_views`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from maestro.core.errors import StoreError, error_text
from maestro.core.records import (
    SCHEMA_VERSION,
    TASK_ID,
    Decision,
    Event,
    Limits,
    Note,
    SessionStarted,
    TaskTransition,
    Transition,
    converter,
    format_ts,
    payload_kind,
)
from maestro.core.seams import Clock, IdSource, RandomIds, SystemClock
from maestro.model.chart import Chart, Edge, load_chart
from maestro.model.guards import DEFAULT_GUARDS
from maestro.model.machine import Guard, Machine
from maestro.model.state import Reducer, SessionState
from maestro.store.filestore import (
    EventLog,
    Lock,
    Store,
    atomic_write,
    check_session_log,
    encode_event,
    fsync_dir,
    read_events,
)
from maestro.store.views import final_report, log_line, write_decision_history, write_views

__all__ = ["Session"]

log = logging.getLogger("maestro")


LOG_BROKEN = "log-broken"
"""A file in a session's folder that says its log was deleted, replaced or rewritten while it ran (its first line
says how): :meth:`Session.open` refuses such a session."""


class Session:
    """One session, held open for writing.  Use :meth:`create` or :meth:`open`."""

    def __init__(
        self,
        store: Store,
        session_id: str,
        *,
        events: list[Event],
        log_file: EventLog,
        lock: Lock,
        clock: Clock,
        guards: Mapping[str, Guard] | None,
        session_chart: Chart | None = None,
        task_chart: Chart | None = None,
    ) -> None:
        self.store = store
        self.id = session_id
        self.dir = store.session_dir(session_id)
        self.clock = clock
        self._log = log_file
        self._lock = lock
        self._events = events
        self._log_lines: list[str] = []  # execution-log.md, rendered up to here
        chart = session_chart or load_chart("session")
        tchart = task_chart or load_chart("task")
        registry = {**DEFAULT_GUARDS, **(guards or {})}
        self._reducer = Reducer(chart, tchart, where=str(log_file.path))
        for e in events:
            self._reducer.apply(e)
        self._machine = Machine(chart, registry)
        self._machine.add(None, self._reducer.state, lambda: tuple(self._reducer.stack))
        self._tasks = Machine(tchart, registry)
        self._closed = False
        self._observer: Callable[[Event], None] | None = None
        self._observer_failed = False  # said once as a warning, then only in the debug log

    # -- opening ----------------------------------------------------------
    @classmethod
    def create(
        cls,
        store: Store,
        request: str,
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        guards: Mapping[str, Guard] | None = None,
        base_commit: str | None = None,
        files: Mapping[str, str] | None = None,
    ) -> Session:
        """Start a new session in ``store`` and hold it.  Its first event records the request.

        Everything is checked before anything is written; if creating fails
        half-way, the session's directory is removed again.  ``files`` (name →
        text) are written into the session's directory before its log, so a
        session never exists without them.
        """
        clock = clock or SystemClock()
        ids = ids or RandomIds()
        session_id = ids.new_session_id(clock.now())
        sdir = store.session_dir(session_id)
        try:
            started = SessionStarted(
                session_id,
                request,
                charts={"session": load_chart("session").version, "task": load_chart("task").version},
                limits=limits or Limits(),
                base_commit=base_commit,
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(f"cannot create session {session_id}: {error_text(exc)}") from exc
        first = Event(SCHEMA_VERSION, 1, format_ts(clock.now()), "session", converter.unstructure(started))
        store.init()
        try:
            sdir.mkdir()
        except FileExistsError:
            raise StoreError(f"session {session_id} already exists in {store.root}") from None
        except OSError as exc:
            raise StoreError(f"{sdir}: cannot create the session: {exc.strerror or exc}") from exc
        try:
            lock = Lock(sdir / "lock", session_id)
            for name, text in (files or {}).items():
                if "/" in name or name.startswith(".") or name in ("events.jsonl", "lock"):
                    raise StoreError(f"{sdir}: {name!r} is not a file name a session can hold")
                atomic_write(sdir / name, text)
            # The log appears whole, with its first event, or not at all.
            atomic_write(sdir / "events.jsonl", encode_event(first).decode("utf-8"))
            fsync_dir(sdir.parent)
        except BaseException:
            shutil.rmtree(sdir, ignore_errors=True)
            raise
        log_file = EventLog(sdir / "events.jsonl", next_seq=2, size=len(encode_event(first)))
        session = cls(store, session_id, events=[first], log_file=log_file, lock=lock, clock=clock, guards=guards)
        log.info("session %s created in %s", session_id, store.root)
        session.refresh_views()
        return session

    @classmethod
    def open(
        cls,
        store: Store,
        session_id: str,
        *,
        clock: Clock | None = None,
        guards: Mapping[str, Guard] | None = None,
    ) -> Session:
        """Hold an existing session to continue it.  A torn last line is cut off the log."""
        path = store.events_path(session_id)
        if not path.is_file():
            raise StoreError(f"no session {session_id!r} in {store.root}")
        broken = path.parent / LOG_BROKEN
        if broken.is_file():
            why = broken.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            raise StoreError(f"{path}: changed behind maestro's back ({why[0] if why else 'see ' + str(broken)}): "
                             "the session cannot be trusted, resumed or answered")  # fmt: skip
        lock = Lock(path.parent / "lock", session_id)
        try:
            events, intact = read_events(path)
            check_session_log(path, events)
            if intact < os.path.getsize(path):
                with open(path, "r+b") as fh:
                    fh.truncate(intact)
                    os.fsync(fh.fileno())
            log_file = EventLog(path, next_seq=len(events) + 1, size=intact)
            clock = clock or SystemClock()
            return cls(store, session_id, events=events, log_file=log_file, lock=lock, clock=clock, guards=guards)
        except BaseException:
            lock.release()
            raise

    # -- reading ----------------------------------------------------------
    @property
    def state(self) -> SessionState:
        """The session's state now (a frozen snapshot)."""
        return self._reducer.snapshot()

    @property
    def current(self) -> str:
        """The name of the session's current state."""
        return self._reducer.state

    def events_since(self, n: int) -> tuple[Event, ...]:
        """The events after the first ``n`` (only those are copied)."""
        return tuple(self._events[n:])

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events)

    @property
    def events_path(self) -> Path:
        return self._log.path

    def triggers(self) -> list[str]:
        """Triggers declared out of the current state (their guards may still refuse)."""
        return self._machine.triggers_from(self._reducer.state)

    def task_state(self, task: str) -> str:
        """The state of task ``task`` (the task chart's initial state if it never moved)."""
        t = self._reducer.tasks.get(task)
        return t.state if t is not None else self._tasks.chart.initial

    # -- moving -----------------------------------------------------------
    def fire(self, trigger: str, *, reason: str | None = None) -> str:
        """Move the session by ``trigger``; return the new state.

        The event is fsync'd before the state changes; a trigger the chart does
        not allow raises :class:`~maestro.TransitionNotAllowed` and records nothing.
        """
        self._check_open()

        def commit(edge: Edge) -> None:
            self._append(Transition(edge.trigger, edge.source, edge.dest, reason))

        edge = self._machine.fire(None, trigger, self._reducer.snapshot, commit)
        log.info("session %s: %s: %s -> %s", self.id, trigger, edge.source, edge.dest)
        if edge.dest == "paused":
            self.refresh_views()
        elif load_chart("session").is_final(edge.dest):
            self.refresh_views()
            state = self._reducer.snapshot()
            atomic_write(self.dir / "final-report.md", final_report(state, events=tuple(self._events)))
            write_decision_history(self.store.decisions_dir, state, self.store.decisions_lock)
        return edge.dest

    def fire_task(self, task: str, trigger: str, *, reason: str | None = None) -> str:
        """Move task ``task`` by ``trigger`` on the task chart; return its new state."""
        self._check_open()
        if not self._tasks.has(task):
            if not isinstance(task, str) or not TASK_ID.match(task):
                raise StoreError(f"bad task id {task!r}: task ids match [A-Za-z0-9._-]+")
            self._tasks.add(task, self.task_state(task))

        def commit(edge: Edge) -> None:
            self._append(TaskTransition(task, edge.trigger, edge.source, edge.dest, reason))

        edge = self._tasks.fire(task, trigger, self._reducer.snapshot, commit)
        log.info("session %s: task %s: %s: %s -> %s", self.id, task, trigger, edge.source, edge.dest)
        return edge.dest

    def record(self, payload: Any) -> Event:
        """Append a decision, checkpoint, agent result, gate result or note."""
        self._check_open()
        if isinstance(payload, (Transition, TaskTransition, SessionStarted)):
            raise TypeError("transitions are made with fire() and fire_task(), not recorded")
        ts = format_ts(self.clock.now())
        if isinstance(payload, Decision):
            taken = {d.id for d in self._reducer.decisions}
            if payload.id and payload.id in taken:
                raise StoreError(f"session {self.id}: decision {payload.id} is already recorded")
            if not (payload.id and payload.ts):
                n = 1 + self._reducer.last_decision  # rewound decisions keep their ids: never given again
                payload = attrs.evolve(payload, id=payload.id or f"D{n}", ts=payload.ts or ts)
        return self._append(payload, ts)

    def note(self, text: str) -> Event:
        return self.record(Note(text))

    def watch(self, observer: Callable[[Event], None] | None) -> None:
        """Call ``observer`` with each event: at once with those in the log, then each new one right after it is
        recorded (in the thread that records it).  ``None`` stops.  An exception in it is logged, never raised:
        watching cannot break the session."""
        self._observer = observer
        for event in self._events:
            self._tell(event)

    def _tell(self, event: Event) -> None:
        observer = self._observer
        if observer is None:
            return
        try:
            observer(event)
        except Exception as exc:  # a KeyboardInterrupt (a second Ctrl-C) goes on: it is how a run stops at once
            text = f"session {self.id}: the observer failed on event {event.seq}: {error_text(exc)}"
            if self._observer_failed:
                log.debug(text, exc_info=True)
            else:
                self._observer_failed = True
                log.warning(text)

    def _append(self, payload: Any, ts: str | None = None) -> Event:
        kind = payload_kind(payload)
        event = self._log.append(kind, converter.unstructure(payload), ts or format_ts(self.clock.now()))
        self._reducer.apply(event)
        self._events.append(event)
        if kind == "rewind":  # the state went back: so do the machines that check the next moves
            self._machine.reset(None, self._reducer.state)
            for key in self._tasks.models():
                if key is not None:
                    self._tasks.reset(key, self.task_state(key))
        self._tell(event)
        return event

    # -- views and closing ------------------------------------------------
    def refresh_views(self) -> None:
        """Rewrite the derived files from the log (each atomically)."""
        self._log_lines.extend(log_line(e) for e in self._events[len(self._log_lines) :])
        write_views(self.dir, self._reducer.snapshot(), self._log_lines)

    def close(self) -> None:
        """Refresh the views and the decision history, close the log, release the lock.  Idempotent."""
        if self._closed:
            return
        try:
            if self._log.path.is_file():  # a log deleted under it (tampering): no views made again beside nothing
                self.refresh_views()
                write_decision_history(self.store.decisions_dir, self._reducer.snapshot(), self.store.decisions_lock)
        finally:
            self._closed = True
            self._log.close()
            self._lock.release()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"session {self.id} is closed")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Session {self.id} {self._reducer.state}>"
