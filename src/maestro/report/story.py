"""A session's log read as a story in time: the attempts, the phases, the waits, the failures and what fixed them.

:func:`read_story` walks every event of the log once — those a crash resume voided too, which the
timeline shows greyed — and returns a :class:`Story`: plain data the drawings and the page lay out.
Times are seconds from the session's first event, so the same log always gives the same story.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence

import attrs

from maestro.core.errors import StoreError
from maestro.core.records import AgentResult, CheckpointRecord, Decision, Event, TaskTransition, converter
from maestro.model.chart import load_chart
from maestro.model.state import SessionState, effective_events, rebuild
from maestro.store.metrics import SessionMetrics, session_metrics

__all__ = ["Attempt", "Failure", "Gap", "Mark", "Phase", "Story", "TaskInfo", "parse_groups", "read_story"]

# What a failed attempt's class may be: the agent's classes, and the merge queue's two.
FAILURE_CLASSES = ("transient", "implementation", "test_failure", "critical", "ambiguous", "regression", "conflict")
_GROUP = re.compile(r"\s*G([0-9]+):\s*(.*)")


@attrs.frozen
class Attempt:
    """One attempt at a task: from its move to ``running`` to the move out of it (seconds from the start).

    ``agent_end`` is when the agent returned (the rest, to ``end``, is the merge queue); ``outcome`` is
    ``succeeded``, a failure class, ``voided`` (a crash resume threw it away), ``cancelled`` or ``running``.
    """

    task: str
    n: int
    start: float
    end: float
    agent_end: float | None
    outcome: str
    summary: str = ""
    agent: str = ""
    cost_usd: float | None = None
    worker: str = ""  # the Dask worker that ran it ("" on the coordinator's own threads)


@attrs.frozen
class Phase:
    """The session in one state from ``start`` to ``end``."""

    state: str
    start: float
    end: float


@attrs.frozen
class Gap:
    """Time nothing ran: ``human`` (paused, waiting for an answer) or ``down`` (the process died before a resume)."""

    kind: str
    start: float
    end: float


@attrs.frozen
class Mark:
    """A moment on the timeline: a ``checkpoint`` (a merge) on its task's row, or a session ``rollback``."""

    kind: str
    at: float
    task: str | None
    label: str
    voided: bool = False


@attrs.frozen
class Failure:
    """A task's move to ``failed``, its class, and what came of it: ``auto`` (the task succeeded later with no
    human answer between), ``human`` (it succeeded after one), or ``open`` (it never did)."""

    seq: int
    task: str
    failure_class: str
    reason: str
    resolution: str
    recovery: tuple[Decision, ...] = ()


@attrs.frozen
class TaskInfo:
    """What the log and the plan say of one task: its final state and attempts, title, dependencies, group."""

    id: str
    state: str
    attempts: int
    title: str = ""
    depends_on: tuple[str, ...] = ()
    group: int | None = None  # 0-based index of its planned group
    priority: str = ""


@attrs.frozen
class Story:
    """Everything the report draws, read from one session's log."""

    state: SessionState
    first_ts: str
    last_ts: str
    wall_s: float
    attempts: tuple[Attempt, ...]
    phases: tuple[Phase, ...]
    gaps: tuple[Gap, ...]
    marks: tuple[Mark, ...]
    failures: tuple[Failure, ...]
    tasks: tuple[TaskInfo, ...]
    groups: tuple[tuple[str, ...], ...]
    visits: Mapping[str, int]
    moves: Mapping[tuple[str, str, str], int]
    human_answers: int
    agent_calls: int
    voided_events: int
    metrics: SessionMetrics  # the figures `maestro stats` and the report's Metrics give: the same definitions

    @property
    def waiting_s(self) -> float:
        return sum(g.end - g.start for g in self.gaps if g.kind == "human")

    @property
    def down_s(self) -> float:
        return sum(g.end - g.start for g in self.gaps if g.kind == "down")

    @property
    def recovered_alone(self) -> int:
        return sum(1 for f in self.failures if f.resolution == "auto")


def _seconds(ts: str) -> float:
    return _dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def parse_groups(notes: str) -> tuple[tuple[str, ...], ...]:
    """The groups of an ordering's one-line form ``G1: a, b | G2: c`` (task ids hold no comma, bar or space)."""
    groups: list[tuple[str, ...]] = []
    for part in notes.split("|"):
        m = _GROUP.match(part)
        if m is None:
            return ()
        groups.append(tuple(t.strip() for t in m.group(2).split(",") if t.strip()))
    return tuple(groups)


def _planned_groups(decisions: Sequence[Decision]) -> tuple[tuple[str, ...], ...]:
    """The groups of the last ``task_ordering`` decision: its chosen option's notes."""
    for d in reversed(decisions):
        if d.kind == "task_ordering":
            for o in d.options:
                if o.name == d.choice:
                    return parse_groups(o.notes)
    return ()


def _class_of(reason: str | None, agent: AgentResult | None) -> str:
    head = (reason or "").split(":", 1)[0].strip()
    if head in FAILURE_CLASSES:
        return head
    if agent is not None and agent.failure_class:
        return agent.failure_class
    return "implementation"


@attrs.define
class _Open:
    """An attempt under way while the log is read."""

    n: int
    start: float
    voided: bool
    agent: AgentResult | None = None
    agent_end: float | None = None


def read_story(events: Sequence[Event], *, plan: Mapping[str, TaskInfo] | None = None) -> Story:
    """The story of a session's ``events`` (checked against the charts by the reducer: a bad log is a
    :class:`~maestro.StoreError`).

    ``plan`` gives the tasks' titles, dependencies and priorities where the plan the session ran is known
    (its ``tasks.yaml``); everything else comes from the log.
    """
    if not events:
        raise StoreError("no events: a session's log starts with its 'session' event")
    state = rebuild(events)
    kept = effective_events(events)
    kept_seqs = {e.seq for e in kept}
    voided = {e.seq for e in events if e.kind != "rewind" and e.seq not in kept_seqs}
    t0 = _seconds(events[0].ts)
    times = [round(_seconds(e.ts) - t0, 6) for e in events]

    attempts: list[Attempt] = []
    open_: dict[str, _Open] = {}
    starts: dict[str, int] = {}
    phases: list[Phase] = []
    gaps: list[Gap] = []
    marks: list[Mark] = []
    initial = load_chart("session").initial
    visits: dict[str, int] = {initial: 1}
    moves: dict[tuple[str, str, str], int] = {}
    current, since = initial, 0.0
    state_after: dict[int, str] = {}
    last_succeed: str | None = None
    agent_calls = 0

    def close(task: str, end: float, outcome: str) -> None:
        o = open_.pop(task)
        a = o.agent
        attempts.append(Attempt(task, o.n, o.start, max(end, o.start), o.agent_end, outcome,
                                a.summary if a else "", a.agent if a else "", a.cost_usd if a else None,
                                (a.worker or "") if a else ""))  # fmt: skip

    for i, e in enumerate(events):
        t = times[i]
        before = times[i - 1] if i else 0.0
        if i and (current == "paused" or e.kind == "rewind") and t > before:
            kind = "human" if current == "paused" else "down"
            if gaps and gaps[-1].kind == kind and gaps[-1].end == before:  # one wait, however many events in it
                gaps[-1] = Gap(kind, gaps[-1].start, t)
            else:
                gaps.append(Gap(kind, before, t))
        if e.kind == "transition":
            trigger, source, dest = str(e.data["trigger"]), str(e.data["source"]), str(e.data["dest"])
            phases.append(Phase(current, since, t))
            current, since = dest, t
            if e.seq not in voided:
                visits[dest] = visits.get(dest, 0) + 1
                moves[(trigger, source, dest)] = moves.get((trigger, source, dest), 0) + 1
            if trigger == "rollback":
                marks.append(Mark("rollback", t, None, f"rollback from {source}", e.seq in voided))
        elif e.kind == "task":
            m = converter.structure(e.data, TaskTransition)
            if m.dest == "running":
                if m.task in open_:  # never closed (a log cut short): void
                    close(m.task, t, "voided")
                starts[m.task] = starts.get(m.task, 0) + 1
                open_[m.task] = _Open(starts[m.task], t, e.seq in voided)
            elif m.source == "running" and m.task in open_:
                o = open_[m.task]
                if o.voided or e.seq in voided or m.trigger == "reopen":
                    outcome = "voided"
                elif m.dest == "succeeded":
                    outcome = "succeeded"
                elif m.dest == "failed":
                    outcome = _class_of(m.reason, o.agent)
                else:
                    outcome = "cancelled"
                close(m.task, t, outcome)
            if m.dest == "succeeded" and e.seq not in voided:
                last_succeed = m.task
        elif e.kind == "agent":
            agent_calls += 1
            r = converter.structure(e.data, AgentResult)
            if r.task in open_:
                open_[r.task].agent = r
                open_[r.task].agent_end = t
            else:  # a call outside a task's attempts (planning): drawn from its duration
                outcome = "voided" if e.seq in voided else (
                    "succeeded" if r.status == "succeeded" else r.failure_class or r.status)  # fmt: skip
                attempts.append(Attempt(r.task, r.attempt, max(0.0, t - r.duration_s), t, t, outcome, r.summary,
                                        r.agent, r.cost_usd, r.worker or ""))  # fmt: skip
        elif e.kind == "checkpoint":
            c = converter.structure(e.data, CheckpointRecord)
            if c.n > 0:
                task = last_succeed
                if c.label.startswith("task ") and ":" in c.label:
                    task = c.label[5:].split(":", 1)[0]
                marks.append(Mark("checkpoint", t, task, f"checkpoint {c.n}: {c.label}", e.seq in voided))
        elif e.kind == "rewind":
            for task in sorted(open_):
                if open_[task].voided:  # started in what this rewind voided: it ended when the process did
                    close(task, before, "voided")
            phases.append(Phase(current, since, t))
            current, since = state_after.get(int(e.data["to"]), current), t
        state_after[e.seq] = current
    end = times[-1]
    phases.append(Phase(current, since, end))
    for task in sorted(open_):
        close(task, end, "running")
    attempts.sort(key=lambda a: (a.start, a.task, a.n))

    human = [e.seq for e in kept if e.kind == "decision" and e.data.get("decided_by") == "human"]
    groups = _planned_groups(state.decisions)
    return Story(
        state=state,
        first_ts=events[0].ts,
        last_ts=events[-1].ts,
        wall_s=end,
        attempts=tuple(attempts),
        phases=tuple(p for p in phases if p.end > p.start),
        gaps=tuple(gaps),
        marks=tuple(marks),
        failures=_failures(kept, human),
        tasks=_tasks(state, groups, plan or {}),
        groups=groups,
        visits=dict(sorted(visits.items())),
        moves=dict(sorted(moves.items())),
        human_answers=len(human),
        agent_calls=agent_calls,
        voided_events=len(voided),
        metrics=session_metrics(events, state=state),
    )


def _failures(kept: Sequence[Event], human: Sequence[int]) -> tuple[Failure, ...]:
    """Each task's move to ``failed`` in the effective log, the recovery decisions about it (up to the task's next
    failure) and how it ended."""
    out: list[Failure] = []
    for i, e in enumerate(kept):
        if e.kind != "task" or e.data.get("dest") != "failed":
            continue
        m = converter.structure(e.data, TaskTransition)
        recovery: list[Decision] = []
        resolution = "open"
        failed_again = False
        for later in kept[i + 1 :]:
            if later.kind == "task" and later.data.get("task") == m.task:
                if later.data.get("dest") == "failed":
                    failed_again = True
                elif later.data.get("dest") == "succeeded":
                    resolution = "human" if any(e.seq < h < later.seq for h in human) else "auto"
                    break
            elif (not failed_again and later.kind == "decision" and later.data.get("task") == m.task
                  and later.data.get("kind") in ("recovery", "merge")):  # fmt: skip
                recovery.append(converter.structure(later.data, Decision))
        reason = m.reason or ""
        klass = _class_of(reason, None)
        detail = reason.split(":", 1)[1].strip() if reason.startswith(f"{klass}:") else reason
        out.append(Failure(e.seq, m.task, klass, detail, resolution, tuple(recovery)))
    return tuple(out)


def _tasks(state: SessionState, groups: Sequence[Sequence[str]], plan: Mapping[str, TaskInfo]) -> tuple[TaskInfo, ...]:
    """Every task the plan or the log names: the plan's order first, then the log's new ones by id."""
    group_of = {t: i for i, g in enumerate(groups) for t in g}
    ids = list(plan) + sorted(set(state.tasks) - set(plan))
    out = []
    for tid in ids:
        known = plan.get(tid)
        ts = state.tasks.get(tid)
        out.append(TaskInfo(
            tid, ts.state if ts else load_chart("task").initial, ts.attempts if ts else 0,
            known.title if known else "", tuple(d for d in known.depends_on if d in plan) if known else (),
            group_of.get(tid), known.priority if known else "",
        ))  # fmt: skip
    return tuple(out)
