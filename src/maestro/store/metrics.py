"""The success metrics of sessions, read from their logs: each failure and what answered it, autonomy, recovery,
attempts, cost and time (``maestro stats``, and the report's Failures and Metrics).

:func:`session_metrics` walks one session's events (those a crash resume voided left out) and finds every
failure — a failed attempt (the agent's failure, an acceptance command, a regression, a merge conflict) and a
failed gate of a validation round — with the decisions that answered it, in log order, and whether it was
recovered, and by whom.  :func:`summarize` puts the figures of several sessions together; :func:`store_metrics`
reads every session of a store.  The definitions, word for word, are in ``docs/stats.md``:

* a **human answer**: an ``answer`` decision (``maestro answer``), or a pause left without one (``maestro resume``
  alone answers for the human);
* a failed attempt is **recovered** when its task later succeeds, a failed gate when a later validation round
  passes it; **without a human** when no human answer came in between;
* a session is **autonomous** when it completed with no human answer.

Both rates, and the per-task and per-session figures of :class:`Stats`, count the **ended** sessions (completed,
failed, aborted) only: a paused or running session may still change its own.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from maestro.core.errors import MaestroError
from maestro.core.records import AgentResult, Decision, DecisionRequest, GateResult, converter
from maestro.model.state import SessionState, effective_events, rebuild
from maestro.store.protocol import StoreProtocol

__all__ = [
    "ENDED",
    "FAILURE_KINDS",
    "OUTCOMES",
    "Failure",
    "Figure",
    "SessionMetrics",
    "Stats",
    "TaskFigures",
    "failures_of_state",
    "session_metrics",
    "stats_doc",
    "store_metrics",
    "summarize",
]

ENDED = ("completed", "failed", "aborted")
FAILURE_KINDS = ("agent", "acceptance", "regression", "conflict", "gate")
OUTCOMES = ("recovered", "recovered_by_human", "unrecovered", "open")


@attrs.frozen
class Failure:
    """One failure of a session and what became of it.

    ``kind``: ``agent`` (the agent's call failed: ``status`` and ``failure_class`` are its), ``acceptance`` (the
    agent succeeded, a task's acceptance command failed), ``regression`` (merged, an earlier acceptance command
    failed), ``conflict`` (the merge conflicted) — each of a ``task`` and its ``attempt`` — or ``gate`` (``gate``
    failed in validation round ``round``; ``required`` says whether it blocks).  ``answers`` are the decisions
    that answered it, in log order (``recovery``, ``merge``, ``session_recovery``, ``refinement``, a human's
    ``answer``).  ``outcome`` is one of :data:`OUTCOMES` (``open``: not recovered, in a session that has not
    ended); ``resolved`` says how it was recovered.
    """

    seq: int
    kind: str
    summary: str
    task: str | None = None
    attempt: int | None = None
    failure_class: str | None = None
    status: str | None = None
    gate: str | None = None
    round: int | None = None
    required: bool = True
    answers: tuple[Decision, ...] = ()
    outcome: str = "unrecovered"
    resolved: str = ""


@attrs.frozen
class TaskFigures:
    """One task's figures: its ``attempts`` (a crash-voided one aside), its agent calls with their cost and
    seconds (every call, voided ones too: they were paid for), and ``elapsed_s`` from its first start to its
    last move (None when it never started)."""

    task: str
    state: str
    attempts: int
    agent_calls: int
    cost_usd: float
    agent_s: float
    elapsed_s: float | None


@attrs.frozen
class SessionMetrics:
    """One session's figures (see the module docstring for the definitions)."""

    session: str
    request: str
    state: str
    human_answers: int
    failures: tuple[Failure, ...]
    tasks: tuple[TaskFigures, ...]
    cost_usd: float
    active_s: float
    agent_calls: int
    unpaired: tuple[Decision, ...] = ()  # recovery decisions that answer no recorded failure

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def autonomous(self) -> bool:
        """Completed with no human answer."""
        return self.state == "completed" and self.human_answers == 0

    @property
    def counted(self) -> tuple[Failure, ...]:
        """The failures the recovery rate counts: every failed attempt, and the failed gates that are required."""
        return tuple(f for f in self.failures if f.required)

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.counted if f.outcome == outcome)


@attrs.frozen
class Figure:
    """The median and the total of some numbers (``count`` of them; the median is None when there are none)."""

    count: int
    median: float | None
    total: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Figure:
        vs = list(values)
        return cls(len(vs), statistics.median(vs) if vs else None, sum(vs))


@attrs.frozen
class Stats:
    """The figures of several sessions: rates and per-task and per-session figures over the ended ones."""

    sessions: int
    by_state: Mapping[str, int]
    ended: int
    autonomous: int
    failures: int
    recovered: int
    recovered_by_human: int
    unrecovered: int
    failures_by_kind: Mapping[str, int]
    attempts_per_task: Figure
    cost_per_task: Figure
    agent_s_per_task: Figure
    elapsed_s_per_task: Figure
    cost_per_session: Figure
    active_s_per_session: Figure

    @property
    def autonomy_rate(self) -> float | None:
        """Autonomous sessions / ended sessions (None: none ended)."""
        return self.autonomous / self.ended if self.ended else None

    @property
    def recovery_rate(self) -> float | None:
        """Failures recovered without a human / failures, in ended sessions (None: no failure)."""
        return self.recovered / self.failures if self.failures else None


# -- one session -----------------------------------------------------------------------------------------------------


class _Walk:
    """The walk over one session's effective events (mutable while it walks)."""

    def __init__(self) -> None:
        self.failures: list[dict[str, Any]] = []
        self.human: list[int] = []  # the seqs of the human answers
        self.answered = False  # the current pause has an answer
        self.attempts: dict[str, int] = {}
        self.results: dict[tuple[str, int], AgentResult] = {}
        self.open: dict[str, dict[str, Any]] = {}  # task -> its latest failure, while a decision may answer it
        self.merges: dict[str, Decision] = {}  # task -> a merge decision, until the conflict it announces
        self.asked: list[dict[str, Any]] = []  # the failures the pending decision request is about
        self.round = 0
        self.round_gates: dict[tuple[int, str], dict[str, Any]] = {}  # (round, gate) -> its failure
        self.gate_passes: dict[str, list[tuple[int, int]]] = {}  # gate -> (seq, round) of each pass
        self.succeeded: dict[str, list[tuple[int, int]]] = {}  # task -> (seq, attempt) of each success
        self.first_start: dict[str, str] = {}
        self.last_move: dict[str, str] = {}
        self.unpaired: list[Decision] = []

    def failure(self, seq: int, kind: str, summary: str, **fields: Any) -> dict[str, Any]:
        f: dict[str, Any] = {"seq": seq, "kind": kind, "summary": summary, "answers": [], **fields}
        self.failures.append(f)
        return f

    def task_move(self, seq: int, ts: str, data: Mapping[str, Any]) -> None:
        task, trigger, source, dest = data["task"], data["trigger"], data["source"], data["dest"]
        self.last_move[task] = ts
        if dest == "running":
            self.first_start.setdefault(task, ts)
            self.attempts[task] = self.attempts.get(task, 0) + 1
        elif trigger == "reopen" and source == "running":
            self.attempts[task] = self.attempts.get(task, 0) - 1
        if dest == "succeeded":
            self.succeeded.setdefault(task, []).append((seq, self.attempts.get(task, 0)))
        if trigger != "fail":
            return
        attempt = self.attempts.get(task, 0)
        reason = data.get("reason") if isinstance(data.get("reason"), str) else ""
        cls, _, rest = str(reason).partition(": ")
        result = self.results.get((task, attempt))
        if result is not None and result.status != "succeeded":
            f = self.failure(seq, "agent", result.summary or rest, task=task, attempt=attempt,
                             failure_class=result.failure_class, status=result.status)  # fmt: skip
        else:
            kind = {"conflict": "conflict", "regression": "regression"}.get(cls, "acceptance")
            if kind == "acceptance" and cls != "test_failure" and result is None:
                kind = "agent"  # a failure without the agent's result (a hand-driven session)
            f = self.failure(seq, kind, rest if rest else str(reason), task=task, attempt=attempt,
                             failure_class=cls or None)  # fmt: skip
            merge = self.merges.pop(task, None)
            if kind == "conflict" and merge is not None:
                f["answers"].append(merge)
        self.open[task] = f

    def decision(self, seq: int, d: Decision) -> None:
        if d.kind == "answer" and d.decided_by == "human":
            self.human.append(seq)
            self.answered = True
            for f in self.asked:
                f["answers"].append(d)
            self.asked = []
        elif d.kind == "merge" and d.task is not None:
            self.merges[d.task] = d
        elif d.kind == "recovery":
            latest = self.open.get(d.task or "")
            if latest is not None and not any(a.kind == "recovery" for a in latest["answers"]):
                latest["answers"].append(d)
            else:
                self.unpaired.append(d)
        elif d.kind == "session_recovery":
            gave_up = [f for f in self.open.values() if f["answers"] and f["answers"][-1].choice == "give_up"
                       and f["answers"][-1].kind == "recovery"]  # fmt: skip
            for f in gave_up:
                f["answers"].append(d)
            if not gave_up:
                self.unpaired.append(d)
        elif d.kind == "refinement":
            for (r, _gate), f in self.round_gates.items():
                if r == self.round and not any(a.kind == "refinement" for a in f["answers"]):
                    f["answers"].append(d)

    def request(self, req: DecisionRequest) -> None:
        task = req.context.get("task")
        self.asked = []
        if isinstance(task, str) and task in self.open:
            self.asked.append(self.open[task])
        gates = req.context.get("failing_gates")
        if isinstance(gates, list):
            self.asked += [f for (r, g), f in self.round_gates.items() if r == self.round and g in gates]

    def gate(self, seq: int, g: GateResult) -> None:
        key = (self.round, g.name)
        if g.status == "failed":
            f = self.round_gates.get(key)
            if f is None:
                f = self.failure(seq, "gate", g.summary, gate=g.name, round=self.round, required=g.required)
                self.round_gates[key] = f
            else:  # the gate ran again in the same round (a resume): its last result counts
                f.update(seq=seq, summary=g.summary, required=g.required)
        else:
            earlier = self.round_gates.pop(key, None)
            if earlier is not None:  # failed, then passed or skipped in the same round: the last result counts
                self.failures.remove(earlier)
            if g.status == "passed":
                self.gate_passes.setdefault(g.name, []).append((seq, self.round))


def session_metrics(events: Sequence[Any], *, state: SessionState | None = None, where: str = "") -> SessionMetrics:
    """The figures of the session whose log is ``events`` (``state``: its state, when the caller has it)."""
    if state is None:
        state = rebuild(events, where=where)
    w = _Walk()
    for e in effective_events(events):
        kind, data = e.kind, e.data
        if kind == "task":
            w.task_move(e.seq, e.ts, data)
        elif kind == "agent":
            r = converter.structure(data, AgentResult)
            w.results[(r.task, r.attempt)] = r
        elif kind == "decision":
            w.decision(e.seq, converter.structure(data, Decision))
        elif kind == "request":
            w.request(converter.structure(data, DecisionRequest))
        elif kind == "gate":
            w.gate(e.seq, converter.structure(data, GateResult))
        elif kind == "transition":
            if data.get("dest") == "paused":
                w.answered = False
            elif data.get("source") == "paused":
                if not w.answered:
                    w.human.append(e.seq)  # resumed without an answer: the human answered by resuming
                w.answered = False
                w.asked = []
            if data.get("trigger") == "implementation_done":
                w.round += 1
    ended = state.state in ENDED
    failures = tuple(_resolve(f, w, ended) for f in w.failures)
    return SessionMetrics(
        session=state.session_id,
        request=state.request,
        state=state.state,
        human_answers=len(w.human),
        failures=failures,
        tasks=_task_figures(state, events, w),
        cost_usd=state.spent_usd,
        active_s=state.active_s,
        agent_calls=sum(1 for e in events if e.kind == "agent"),
        unpaired=tuple(w.unpaired),
    )


def failures_of_state(state: SessionState) -> tuple[list[Failure], list[Decision]]:
    """Without the log, what the state says: the agents' failures (``outcome`` empty: unknown), each with the
    recovery decision of its task and failure class that came next, in order; and the recovery decisions no agent
    failure takes (another kind of failure answered them)."""
    failures = [
        Failure(0, "agent", r.summary, r.task, r.attempt, r.failure_class, r.status, outcome="")
        for r in state.agent_results
        if r.status != "succeeded"
    ]
    answers: list[tuple[Decision, ...]] = [()] * len(failures)
    unpaired = []
    for d in state.decisions:
        if d.kind != "recovery":
            continue
        i = next((i for i, f in enumerate(failures) if not answers[i] and f.task == d.task
                  and f"({f.failure_class})" in d.question), None)  # fmt: skip
        if i is None:
            unpaired.append(d)
        else:
            answers[i] = (d,)
    return [attrs.evolve(f, seq=i, answers=answers[i]) for i, f in enumerate(failures)], unpaired


def _resolve(f: Mapping[str, Any], w: _Walk, ended: bool) -> Failure:
    """The failure, with what became of it."""
    seq = f["seq"]
    fixed: tuple[int, str] | None = None
    if f["kind"] == "gate":
        later = [(s, r) for s, r in w.gate_passes.get(f["gate"], []) if s > seq and r > f["round"]]
        if later:
            fixed = (later[0][0], f"passed in validation round {later[0][1]}")
    else:
        later_ok = [(s, n) for s, n in w.succeeded.get(f["task"], []) if s > seq]
        if later_ok:
            fixed = (later_ok[0][0], f"attempt {later_ok[0][1]} succeeded")
    if fixed is None:
        outcome, resolved = ("unrecovered" if ended else "open"), ""
    else:
        human = any(seq < h < fixed[0] for h in w.human)
        outcome, resolved = ("recovered_by_human" if human else "recovered"), fixed[1]
    fields = {k: v for k, v in f.items() if k != "answers"}
    return Failure(**fields, answers=tuple(f["answers"]), outcome=outcome, resolved=resolved)


def _task_figures(state: SessionState, events: Sequence[Any], w: _Walk) -> tuple[TaskFigures, ...]:
    calls: dict[str, list[AgentResult]] = {}
    for e in events:  # every call, those a crash resume voided too: they were paid for
        if e.kind == "agent":
            r = converter.structure(e.data, AgentResult)
            calls.setdefault(r.task, []).append(r)
    out = []
    for tid, t in sorted(state.tasks.items()):
        mine = calls.get(tid, [])
        start, last = w.first_start.get(tid), w.last_move.get(tid)
        elapsed = max(0.0, _seconds(last) - _seconds(start)) if start and last else None
        out.append(TaskFigures(tid, t.state, t.attempts, len(mine), sum(r.cost_usd or 0.0 for r in mine),
                               sum(r.duration_s for r in mine), elapsed))  # fmt: skip
    return tuple(out)


def _seconds(ts: str) -> float:
    return _dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# -- several sessions ------------------------------------------------------------------------------------------------


def summarize(sessions: Sequence[SessionMetrics]) -> Stats:
    """The figures of ``sessions`` together: the rates, per task and per session over the ended ones."""
    ended = [m for m in sessions if m.ended]
    by_state: dict[str, int] = {}
    for m in sessions:
        by_state[m.state] = by_state.get(m.state, 0) + 1
    counted = [f for m in ended for f in m.counted]
    by_kind = {k: sum(1 for f in counted if f.kind == k) for k in FAILURE_KINDS}
    tasks = [t for m in ended for t in m.tasks if t.attempts > 0]
    return Stats(
        sessions=len(sessions),
        by_state=dict(sorted(by_state.items())),
        ended=len(ended),
        autonomous=sum(1 for m in ended if m.autonomous),
        failures=len(counted),
        recovered=sum(1 for f in counted if f.outcome == "recovered"),
        recovered_by_human=sum(1 for f in counted if f.outcome == "recovered_by_human"),
        unrecovered=sum(1 for f in counted if f.outcome == "unrecovered"),
        failures_by_kind={k: n for k, n in by_kind.items() if n},
        attempts_per_task=Figure.of(t.attempts for t in tasks),
        cost_per_task=Figure.of(t.cost_usd for t in tasks),
        agent_s_per_task=Figure.of(t.agent_s for t in tasks),
        elapsed_s_per_task=Figure.of(t.elapsed_s for t in tasks if t.elapsed_s is not None),
        cost_per_session=Figure.of(m.cost_usd for m in ended),
        active_s_per_session=Figure.of(m.active_s for m in ended),
    )


def store_metrics(store: StoreProtocol) -> tuple[list[SessionMetrics], list[tuple[str, str]]]:
    """The figures of every session of ``store``, oldest first, and the sessions that could not be read (id, why)."""
    read, skipped = [], []
    for sid in store.session_ids():
        try:
            events = store.read_events(sid)
            read.append(session_metrics(events, where=str(store.events_path(sid))))
        except MaestroError as exc:
            skipped.append((sid, str(exc)))
        except RecursionError:
            skipped.append((sid, "events.jsonl: nested too deeply to read"))
    return read, skipped


def stats_doc(
    stats: Stats, sessions: Sequence[SessionMetrics], skipped: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """``maestro stats --json``: the figures of :func:`summarize`, each session's, and the sessions skipped."""

    def figure(f: Figure, digits: int) -> dict[str, Any]:
        return {"count": f.count, "median": None if f.median is None else round(f.median, digits),
                "total": round(f.total, digits)}  # fmt: skip

    def rate(r: float | None) -> float | None:
        return None if r is None else round(r, 4)

    return {
        "sessions": stats.sessions,
        "by_state": dict(stats.by_state),
        "ended": stats.ended,
        "autonomous": stats.autonomous,
        "autonomy_rate": rate(stats.autonomy_rate),
        "failures": stats.failures,
        "recovered": stats.recovered,
        "recovered_by_human": stats.recovered_by_human,
        "unrecovered": stats.unrecovered,
        "recovery_rate": rate(stats.recovery_rate),
        "failures_by_kind": dict(stats.failures_by_kind),
        "per_task": {
            "attempts": figure(stats.attempts_per_task, 2),
            "cost_usd": figure(stats.cost_per_task, 6),
            "agent_s": figure(stats.agent_s_per_task, 3),
            "elapsed_s": figure(stats.elapsed_s_per_task, 3),
        },
        "per_session": {
            "cost_usd": figure(stats.cost_per_session, 6),
            "active_s": figure(stats.active_s_per_session, 3),
        },
        "session_list": [
            {
                "session": m.session,
                "state": m.state,
                "ended": m.ended,
                "autonomous": m.autonomous,
                "human_answers": m.human_answers,
                "failures": len(m.counted),
                "recovered": m.count("recovered"),
                "recovered_by_human": m.count("recovered_by_human"),
                "unrecovered": m.count("unrecovered"),
                "open": m.count("open"),
                "attempts": sum(t.attempts for t in m.tasks),
                "tasks": len(m.tasks),
                "agent_calls": m.agent_calls,
                "cost_usd": round(m.cost_usd, 6),
                "active_s": round(m.active_s, 3),
            }
            for m in sessions
        ],
        "skipped": [{"session": sid, "reason": why} for sid, why in skipped],
    }
