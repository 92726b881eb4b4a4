"""The autonomous session, end to end: plan, order, implement in parallel groups, recover, validate, review, report.

Every phase is a state of ``statecharts/session.yaml`` and every move a declared
transition, fired through :class:`~maestro.Session` (so it is in the event log
before it happens).  The runner acts — agents, acceptance commands, git
checkpoints, gates — and feeds each outcome back as the next trigger; the
decision engine decides (ordering, subagents, recovery, refinement) and every
decision is recorded with its rationale.

Recovery (FR-5), per task, each rung a recorded ``recovery`` decision:

* ``transient`` → retry with exponential backoff (``recovery.max_retries``);
* ``implementation`` / ``test_failure`` → roll back to the last checkpoint, then an
  alternative attempt with the failure's output as feedback (``recovery.max_alternatives``);
* a regression (an earlier task's acceptance command now fails) → the same;
* ``critical`` → no retry: the tasks already running finish, then the session
  pauses at once with a decision request naming the cause and the fix;
* ``ambiguous``, or every rung used → pause with a decision request.

The same task failing twice in a row with the same error skips its remaining
retries (stuck detection).  A rollback inside a parallel group restores the
whole tree to the checkpoint before the group, so the group's other tasks are
run again too (their earlier results stay in the log).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from maestro.agents.base import Agent, AgentRequest, PlanRequest, Subagent
from maestro.config.model import Config
from maestro.core.errors import MaestroError, StoreError, TransitionNotAllowed
from maestro.core.records import AgentResult, Decision, DecisionRequest, Evidence, Limits, Option, Rewind
from maestro.core.seams import Clock, IdSource, SystemClock
from maestro.decide.engine import DecisionEngine
from maestro.model.state import effective_events
from maestro.plan.prd import Prd, load_prd
from maestro.plan.load import load_tasks
from maestro.plan.tasks import Task, TaskGraph
from maestro.session import Session
from maestro.store.filestore import Store, atomic_write

if TYPE_CHECKING:
    from maestro.agents.registry import Registry

__all__ = [
    "BOUNDARY_TRIGGERS",
    "EXIT_CODES",
    "RunInputs",
    "RunOutcome",
    "Runner",
    "answer",
    "boundary",
    "dirty_paths",
    "load_run_inputs",
]

log = logging.getLogger(__name__)

EXIT_CODES = {"completed": 0, "failed": 1, "aborted": 1, "paused": 3}
EXIT_INTERRUPTED = 130
DECISION_REQUEST = "decision-request.json"
RUN_FILE = "run.json"
TRACEABILITY = "traceability.md"
RUN_VERSION = 1
LIMIT_OPTIONS = ("raise", "handoff", "abort")

# The session transitions after which a step is complete: a crash resume goes back to the last of
# these (or to the last checkpoint) and redoes what came after.  The recovery ladder's moves
# (error, rollback, rolled_back, retry) happen inside a step and are not among them.
BOUNDARY_TRIGGERS = frozenset(
    {"start", "plan_ready", "tasks_ready", "implementation_done", "validation_done", "refine", "handoff",
     "complete", "pause", "resume", "accept", "abort", "give_up"}
)  # fmt: skip


def boundary(events: Iterable[Any]) -> int:
    """The seq of the last step boundary among the effective ``events`` (see :data:`BOUNDARY_TRIGGERS`)."""
    last = 1
    for e in events:
        if e.kind in ("session", "checkpoint") or (
            e.kind == "transition" and e.data.get("trigger") in BOUNDARY_TRIGGERS
        ):
            last = e.seq
    return last


@attrs.frozen
class RunInputs:
    """What a run was started with (``run.json`` in the session folder), so that it can be resumed or re-driven."""

    config: Config
    worktree: bool = False
    prd: bool = False
    tasks: bool = False

    def to_json(self) -> str:
        import cattrs

        doc = {"version": RUN_VERSION, "worktree": self.worktree, "prd": self.prd, "tasks": self.tasks,
               "config": cattrs.unstructure(self.config)}  # fmt: skip
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def load_run_inputs(store: Store, session_id: str) -> RunInputs:
    """The inputs of a session's run (``run.json``); a one-line error if they are missing or unreadable."""
    import cattrs

    path = store.session_dir(session_id) / RUN_FILE
    if not store.exists(session_id):
        raise StoreError(f"no session {session_id!r} in {store.root}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("version") != RUN_VERSION:
            raise ValueError(f"expected a JSON object with version {RUN_VERSION}")
        config = cattrs.structure(doc["config"], Config)
        return RunInputs(config, bool(doc.get("worktree")), bool(doc.get("prd")), bool(doc.get("tasks")))
    except FileNotFoundError:
        raise StoreError(f"{path}: missing: session {session_id} was not started by `maestro run`") from None
    except (OSError, ValueError, KeyError, TypeError, cattrs.BaseValidationError) as exc:
        raise StoreError(f"{path}: cannot read the session's run inputs: {exc}") from exc


def answer(
    store: Store, session_id: str, choice: str, *, note: str | None = None, clock: Clock | None = None
) -> Decision:
    """Record a human's answer to a paused session's decision request (``maestro answer``).

    The choice must be one of the request's options (a one-line error lists
    them); the answer is a decision with ``decided_by: human``.  ``resume``
    acts on it.
    """
    session = Session.open(store, session_id, clock=clock)
    try:
        state = session.state
        if state.state != "paused":
            raise MaestroError(f"session {session_id} is {state.state}, not paused: there is nothing to answer")
        req = state.decision_request or DecisionRequest("Continue?", ("retry", "abort"), state.paused_from or "")
        if choice not in req.options:
            raise MaestroError(
                f"{choice!r} is not an answer to session {session_id}'s question; the options are: "
                + ", ".join(req.options)
            )
        if choice == "skip" and not (isinstance(req.context.get("task"), str) or req.context.get("group")):
            raise MaestroError(f"session {session_id}'s question names no task or group to skip: answer another "
                               f"option ({', '.join(o for o in req.options if o != 'skip')})")  # fmt: skip
        if choice == "guidance" and not (note and note.strip()):
            raise MaestroError(f"'guidance' needs the guidance: maestro answer {session_id} guidance --note TEXT")
        task = req.context.get("task") if isinstance(req.context.get("task"), str) else None
        recorded = session.record(
            Decision(
                "answer",
                req.question[:2000],
                choice,
                note or f"{choice}, answered by a human",
                options=tuple(Option(o, 1.0 if o == choice else 0.0) for o in req.options),
                decided_by="human",
                task=task,
            )
        ).payload()
        assert isinstance(recorded, Decision)
        log.info("session %s: answered %s", session_id, choice)
        return recorded
    finally:
        session.close()


@attrs.frozen
class RunOutcome:
    """How a run ended: the session, its final (or paused) state, and the command line's exit code."""

    session_id: str
    state: str
    exit_code: int
    report: Path | None = None
    request_file: Path | None = None


def dirty_paths(repo: Path) -> list[str]:
    """Uncommitted changes in ``repo`` (staged, unstaged, untracked; maestro's own ``.flow/`` aside)."""
    from dulwich import porcelain

    st = porcelain.status(str(repo), untracked_files="normal")
    paths = [*st.staged["add"], *st.staged["delete"], *st.staged["modify"], *st.unstaged, *st.untracked]
    out = sorted({p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in paths})
    return [p for p in out if not (p == ".flow/" or p.startswith(".flow/"))]


class _Pause(Exception):
    """Stop the run and pause the session with this decision request."""

    def __init__(self, question: str, options: Iterable[str], context: Mapping[str, Any]) -> None:
        super().__init__(question)
        self.question = question
        self.options = tuple(options)
        self.context = dict(context)


@attrs.define
class _TaskRun:
    task: Task
    subagent: Subagent | None = None
    retries: int = 0
    alternatives: int = 0
    approach: str | None = None
    feedback: str | None = None
    last_signature: str | None = None
    done: bool = False
    needs_rollback: bool = False
    chosen: bool = False


class Runner:
    """Runs sessions for one repository with one agent and one configuration.

    ``sleep`` is the backoff's sleep (injected so tests and the demo need not wait);
    ``clock`` and ``ids`` make the session's log reproducible.  :meth:`interrupt`
    (the first Ctrl-C) asks the run to pause after the step it is in.
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        agent: Agent,
        *,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        sleep: Callable[[float], None] = time.sleep,
        engine: DecisionEngine | None = None,
        agent_timeout_s: float = 1800.0,
    ) -> None:
        self.store = store
        self.config = config
        self.agent = _recording(agent)
        self.clock = clock or SystemClock()
        self.ids = ids
        self.sleep = sleep
        self.engine = engine or DecisionEngine(decisions_dir=store.decisions_dir)
        self.agent_timeout_s = agent_timeout_s
        self.interrupted = threading.Event()
        self.session_id: str | None = None  # the session run or resumed last (for a message after a Ctrl-C)

    def interrupt(self) -> None:
        """Pause after the current step (safe to call from a signal handler or another thread)."""
        self.interrupted.set()

    # -- the whole run ----------------------------------------------------------------------------------------
    def run(
        self,
        request: str,
        *,
        prd_path: Path | None = None,
        tasks_path: Path | None = None,
        worktree: bool = False,
        allow_dirty: bool = False,
    ) -> RunOutcome:
        """Run a session for ``request``; bad input raises before anything is written."""
        from maestro.git.checkpoints import Checkpointer

        repo = self.store.repo
        if not allow_dirty:
            dirty = dirty_paths(repo)
            if dirty:
                shown = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
                raise MaestroError(
                    f"{repo}: the working tree has uncommitted changes ({shown}): commit or stash "
                    "them, or pass --allow-dirty to have maestro save them as the session's base"
                )
        prd = load_prd(prd_path) if prd_path is not None else None
        graph = load_tasks(tasks_path, requirement_ids=prd.requirement_ids if prd else None) if tasks_path else None
        rec = self.config.recovery
        lim = self.config.limits
        limits = Limits(
            max_iterations=lim.max_iterations,
            # every iteration may use every rung again
            max_task_attempts=(1 + rec.max_retries + rec.max_alternatives) * (lim.max_iterations + 1),
            max_minutes=lim.max_minutes,
            budget_usd=lim.budget_usd,
        )
        # What resuming needs is written with the session, before its log: the inputs and the options.
        files = {RUN_FILE: RunInputs(self.config, worktree, prd is not None, graph is not None).to_json()}
        if prd is not None:
            files["prd.md"] = prd.text
        if graph is not None:
            files["tasks.yaml"] = graph.to_yaml()
        kwargs: dict[str, Any] = {"clock": self.clock, "guards": self.engine.guards(), "limits": limits,
                                  "files": files}  # fmt: skip
        if self.ids is not None:
            kwargs["ids"] = self.ids
        session = Session.create(self.store, request, **kwargs)
        self.session_id = session.id
        try:
            checkpointer = Checkpointer(repo, session, worktree=worktree, clock=self.clock)
            checkpointer.start()  # records checkpoint 0 in the session
            self._log(session, f"Session {session.id} started on branch maestro/{session.id}")
            return _Run(self, session, checkpointer, prd, graph).go()
        except KeyboardInterrupt:
            _stopped(session)
            raise
        finally:
            session.close()

    def resume(self, session_id: str, *, limits: Mapping[str, Any] | None = None) -> RunOutcome:
        """Continue a paused session (acting on its answer), or one whose process died (a crash resume).

        A crash resume voids the interrupted step (a ``rewind`` event), restores
        the tree to the last checkpoint and redoes the step.  ``limits`` (any of
        ``max_iterations``, ``max_minutes``, ``budget_usd``) raise the session's
        limits.  A session held by a live process raises
        :class:`~maestro.SessionLocked` with its pid.
        """
        from maestro.git.checkpoints import Checkpointer

        inputs = load_run_inputs(self.store, session_id)
        self.session_id = session_id
        session = Session.open(self.store, session_id, clock=self.clock, guards=self.engine.guards())
        try:
            state = session.state
            if _final(state.state):
                raise MaestroError(f"session {session_id} is {state.state}: there is nothing to resume")
            cp = Checkpointer(self.store.repo, session, worktree=inputs.worktree, clock=self.clock)
            _clear_stale_index_lock(_index_locks(self.store.repo, session_id, inputs.worktree), state.updated_at)
            new_limits = _raised_limits(state.limits, limits or {})
            if state.state == "paused":
                choice = self._choice(session, new_limits)
                if new_limits != state.limits:
                    session.record(new_limits)
                    self._log(session, f"Limits raised: {_limits_text(new_limits)}")
                cp.start()
                run = _Run(self, session, cp, None, None, resumed=True)
                return run.answered(choice)
            # The process that held the session is gone: void the step it was in and redo it.
            to = boundary(effective_events(session.events))
            was = state.state
            last_cp = state.checkpoints[-1].n if state.checkpoints else None
            session.record(Rewind(to, f"resumed after the run stopped in {was}", last_cp))
            if new_limits != session.state.limits:  # after the rewind, which would void them
                session.record(new_limits)
            cp.start()  # checkpoint 0, if the run died before recording it
            after = session.state
            self._log(session, f"Resumed session {session_id} after the run stopped in {was}: events after "
                               f"#{to} are void; redoing from {after.state}")  # fmt: skip
            if after.checkpoints:
                n = after.checkpoints[-1].n
                cp.discard_after(n)
            if after.checkpoints and after.state != "implementing":  # implementing: reconcile() restores it
                cp.rollback(n)
                self._log(session, f"The tree is back at checkpoint {n} (the tree as it was: refs/maestro/"
                                   f"{session_id}/pre-rollback-*)")  # fmt: skip
            return _Run(self, session, cp, None, None, resumed=True).go()
        except KeyboardInterrupt:
            _stopped(session)
            raise
        finally:
            session.close()

    def _choice(self, session: Session, new_limits: Limits) -> str:
        """The answer a paused session resumes with: the human's, else what resuming alone means."""
        state = session.state
        req = state.decision_request
        options = req.options if req is not None else ("retry", "abort")
        answered = _last_answer(session)
        raised = new_limits != state.limits
        if answered is not None:
            choice = answered.choice
        elif "raise" in options and (raised or (req is not None and not _limit_reached(req.context, new_limits,
                                                                                         state))):  # fmt: skip
            choice = "raise"
        elif "continue" in options:
            choice = "continue"
        elif "retry" in options:
            choice = "retry"
        else:
            hint = ", or raise the limit: --budget-usd, --max-minutes, --max-iterations" if "raise" in options else ""
            raise MaestroError(
                f"session {session.id} is waiting for a decision: {req.question if req else 'continue?'} — answer "
                f"with `maestro answer {session.id} CHOICE` (options: {', '.join(options)}){hint}"
            )
        if choice == "raise" and req is not None:
            still = _limit_reached(req.context, new_limits, state)
            if still:
                raise MaestroError(f"session {session.id}: {still}: give a higher limit with `maestro resume "
                                   f"{session.id} --{still.split()[0].replace('_', '-')} N`")  # fmt: skip
        return choice

    @staticmethod
    def _log(session: Session, text: str) -> None:
        log.info("[Maestro] %s", text)
        session.note(text)


def _final(state: str) -> bool:
    """Whether ``state`` is a final state of the session chart (completed, failed, aborted)."""
    from maestro.model.chart import load_chart

    return load_chart("session").is_final(state)


def _recording(agent: Agent) -> Agent:
    """The agent, wrapped so each attempt's changes are saved for re-drive (unless it replays or records already)."""
    from maestro.agents.recording import RecordingAgent
    from maestro.agents.replay import ReplayAgent

    if isinstance(agent, (RecordingAgent, ReplayAgent)):
        return agent
    return RecordingAgent(agent)


def _stopped(session: Session) -> None:
    """A second Ctrl-C: say so in the log if it can still be written (the step is redone on resume)."""
    with contextlib.suppress(MaestroError, OSError, KeyboardInterrupt):
        session.note(f"Stopped at once by a second Ctrl-C in {session.current}: `maestro resume {session.id}` "
                     "redoes the interrupted step")  # fmt: skip


def _last_answer(session: Session) -> Decision | None:
    """The human's answer to the current decision request (recorded after it), if any."""
    found: Decision | None = None
    for e in reversed(effective_events(session.events)):
        if e.kind == "request":
            break
        if e.kind == "decision" and e.data.get("kind") == "answer" and found is None:
            found = e.payload()
    return found


_LIMIT_NAMES = ("max_iterations", "max_minutes", "budget_usd")


def _raised_limits(limits: Limits, new: Mapping[str, Any]) -> Limits:
    unknown = set(new) - set(_LIMIT_NAMES)
    if unknown:
        raise MaestroError(f"unknown limit(s): {', '.join(sorted(unknown))} (limits: {', '.join(_LIMIT_NAMES)})")
    given = {k: v for k, v in new.items() if v is not None}
    if "max_iterations" in given and isinstance(given["max_iterations"], int):
        # each iteration may use every rung again: the per-task cap grows with the iterations
        per_iteration = max(1, limits.max_task_attempts // (limits.max_iterations + 1))
        given["max_task_attempts"] = max(limits.max_task_attempts, per_iteration * (given["max_iterations"] + 1))
    try:
        return attrs.evolve(limits, **given) if given else limits
    except (ValueError, TypeError) as exc:
        raise MaestroError(f"bad limit: {exc}") from exc


def _limits_text(limits: Limits) -> str:
    parts = [f"{limits.max_iterations} iterations"]
    if limits.max_minutes is not None:
        parts.append(f"{limits.max_minutes:g} minutes")
    if limits.budget_usd is not None:
        parts.append(f"${limits.budget_usd:g}")
    return ", ".join(parts)


def _limit_reached(context: Mapping[str, Any], limits: Limits, state: Any) -> str | None:
    """Why the limit a request names is still reached under ``limits`` (None: it no longer is)."""
    name = context.get("limit")
    if name == "budget_usd" and limits.budget_usd is not None and state.spent_usd >= limits.budget_usd:
        return f"budget_usd ${limits.budget_usd:g} is still reached (${state.spent_usd:.4f} spent)"
    if name == "max_minutes" and limits.max_minutes is not None and state.active_s >= limits.max_minutes * 60:
        return f"max_minutes {limits.max_minutes:g} is still reached ({state.active_s / 60:.1f} minutes run)"
    if name == "max_iterations" and state.iteration >= limits.max_iterations:
        return f"max_iterations {limits.max_iterations} is still reached ({state.iteration} iterations run)"
    return None


def _index_locks(repo: Path, session_id: str, worktree: bool) -> list[Path]:
    """Where a run of the session writes a git index lock: the repository's, and its worktree's."""
    locks = [repo / ".git" / "index.lock"]
    if worktree:
        locks.append(repo / ".git" / "worktrees" / session_id / "index.lock")
    return locks


def _clear_stale_index_lock(locks: Iterable[Path], last_event_ts: str | None) -> None:
    """Remove an ``index.lock`` left by the dead run: made after its last event, and older than a live git's."""
    import datetime as _dt

    try:
        since = _dt.datetime.fromisoformat(last_event_ts).timestamp() - 1.0 if last_event_ts else None
    except ValueError:
        since = None
    for lock in locks:
        try:
            st = lock.stat()
        except OSError:
            continue
        if since is not None and st.st_mtime >= since and time.time() - st.st_mtime > 2.0:
            log.warning("%s: removing the index lock the stopped run left behind", lock)
            lock.unlink(missing_ok=True)


class _Run:
    """One run of one session (the runner's working state, rebuilt from the log on resume)."""

    def __init__(
        self,
        runner: Runner,
        session: Session,
        checkpointer: Any,
        prd: Prd | None,
        graph: TaskGraph | None,
        *,
        resumed: bool = False,
    ) -> None:
        self.r = runner
        self.s = session
        self.cp = checkpointer
        self.prd = prd
        self.graph = graph
        self.workdir: Path = Path(checkpointer.workdir)
        self.runs: dict[str, _TaskRun] = {}
        state = session.state
        self.last_checkpoint = state.checkpoints[-1].n if state.checkpoints else 0
        self.registry: Registry | None = None
        self.resumed = resumed
        self.groups: tuple[tuple[str, ...], ...] = ()
        self.allowances: dict[str, float] = {}  # the budget given to the attempts running now
        self.gate_decisions: list[Decision | None] = [d for d in state.decisions if d.kind == "gate"]
        if resumed:
            self.load_saved()

    def load_saved(self) -> None:
        """The PRD and the task graph as the session saved them (its folder), and the runs of its tasks."""
        prd_file, tasks_file = self.s.dir / "prd.md", self.s.dir / "tasks.yaml"
        if self.prd is None and prd_file.is_file():
            self.prd = load_prd(prd_file)
        if self.graph is None and tasks_file.is_file():
            self.graph = load_tasks(tasks_file, requirement_ids=self.prd.requirement_ids if self.prd else None)
        if self.graph is not None:
            self.prepare()
            chosen = {d.task for d in self.s.state.decisions if d.kind == "subagent" and d.task}
            for tid in chosen & set(self.runs):
                self.runs[tid].chosen = True
                self.choose_subagent(tid, again=True)
            if self.s.state.iteration > 0:
                self.refinement_feedback()

    # -- logging ---------------------------------------------------------------------------------------------
    def say(self, text: str, *, note: bool = False) -> None:
        """A ``[Maestro]`` line for the console; with ``note``, also in the log (events say the rest)."""
        log.info("[Maestro] %s", text)
        if note:
            self.s.note(text)

    def fire(self, trigger: str, reason: str | None = None) -> str:
        before = self.s.current
        after = self.s.fire(trigger, reason=reason)
        self.say(f"{before} → {after} ({trigger})" + (f": {reason}" if reason else ""))
        return after

    def record(self, decision: Decision) -> Decision:
        """Record a decision in the session's log; return it as recorded (with its id and time)."""
        recorded = self.s.record(decision).payload()
        assert isinstance(recorded, Decision)
        return recorded

    def decide(self, decision: Decision) -> Decision:
        recorded = self.record(decision)
        self.say(f"Decision ({recorded.kind}): {recorded.choice} — {recorded.rationale}")
        return recorded

    # -- the phases -------------------------------------------------------------------------------------------
    def go(self) -> RunOutcome:
        """Drive the session from the state it is in to a final state or a pause, one step at a time."""
        try:
            while True:
                state = self.s.current
                if _final(state):
                    return self.ended(state)
                if state == "handoff":
                    return self.finish()
                self.check_limits()
                if state == "created":
                    self.fire("start")
                elif state == "planning":
                    self.plan()
                    self.fire("plan_ready")
                elif state == "generating_tasks":
                    self.generate_tasks()
                    self.fire("tasks_ready")
                elif state == "implementing":
                    self.implement()
                    self.fire("implementation_done")
                elif state == "validating":
                    self.validate()
                    self.fire("validation_done")
                elif state == "reviewing":
                    self.review()
                elif state == "refining":
                    self.refine()
                    self.fire("tasks_ready")
                else:
                    raise MaestroError(f"session {self.s.id} cannot continue from state {state!r}")
        except _Pause as pause:
            return self.pause(pause)

    def check_limits(self, *, between_steps: bool = True) -> None:
        """Pause (a decision request) at a Ctrl-C or when a limit is reached."""
        if between_steps and self.r.interrupted.is_set():
            raise _Pause(
                "Interrupted (Ctrl-C): continue, hand off as is, or abort?",
                ("continue", "handoff", "abort"),
                {"interrupted": True},
            )
        reached = self.limit_reached()
        if reached is not None:
            name, text = reached
            raise _Pause(f"Limit reached: {text}", LIMIT_OPTIONS, {"limit": name, "detail": text})

    def limit_reached(self) -> tuple[str, str] | None:
        state = self.s.state
        lim = state.limits
        if lim.budget_usd is not None and state.spent_usd >= lim.budget_usd:
            return "budget_usd", f"budget ${lim.budget_usd:g} (${state.spent_usd:.4f} spent over every agent call)"
        if lim.max_minutes is not None:
            run_s = self.active_s()
            if run_s >= lim.max_minutes * 60:
                return "max_minutes", f"time {lim.max_minutes:g} minutes ({run_s / 60:.2f} minutes run)"
        return None

    def active_s(self) -> float:
        """Seconds the session has run: what the log says, plus the time since its last event."""
        import datetime as _dt

        state = self.s.state
        since = 0.0
        if state.updated_at:
            last = _dt.datetime.fromisoformat(state.updated_at)
            since = max(0.0, (self.r.clock.now() - last).total_seconds())
        return state.active_s + since

    def answered(self, choice: str) -> RunOutcome:
        """Act on a paused session's answer, then drive it on.

        A pause inside a group puts the tree back at the last checkpoint and the
        group's unfinished tasks back to pending (its work is only ever kept
        whole); a pause between steps keeps what a human changed meanwhile, as a
        checkpoint.  Both happen before the ``resume`` move, so a crash after it
        finds them done.
        """
        req = self.s.state.decision_request
        context = dict(req.context) if req is not None else {}
        paused_from = self.s.state.paused_from
        roots, doomed = self.skip_targets(context) if choice == "skip" else ([], [])  # refused before anything
        self.say(f"Resuming session {self.s.id} with {choice!r} (paused from {paused_from})", note=True)
        if choice == "abort":
            self.fire("abort", reason="a human answered abort")
            (self.s.dir / DECISION_REQUEST).unlink(missing_ok=True)
            return self.ended("aborted")
        if paused_from == "implementing" and context.get("mid_group", True):
            self.reconcile()
            self.resumed = False
        else:
            self.keep_changes_made_while_paused()
        if choice == "handoff":
            for t in self.graph or ():
                if self.s.task_state(t.id) not in ("succeeded", "skipped"):
                    self.s.fire_task(t.id, "skip", reason="not done: handed off as it stands")
            self.fire("accept", reason="a human accepted the work as it stands")
            (self.s.dir / DECISION_REQUEST).unlink(missing_ok=True)
            return self.finish()
        if doomed:
            self.skip(roots, doomed)
        try:
            self.fire("resume", reason=f"answer: {choice}")
        except TransitionNotAllowed as exc:
            raise MaestroError(f"session {self.s.id} cannot resume: {exc}") from exc
        (self.s.dir / DECISION_REQUEST).unlink(missing_ok=True)  # answered: no longer a question (the log keeps it)
        return self.go()

    def skip_targets(self, context: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """The request's task (or group's unfinished tasks) and every task that depends on them."""
        named = context.get("task")
        roots = [named] if isinstance(named, str) else [t for t in context.get("group") or () if isinstance(t, str)]
        if self.graph is None or not roots or any(r not in self.graph.ids for r in roots):
            raise MaestroError(f"session {self.s.id}: 'skip' needs a paused task or group, and this request "
                               "names none: answer another option")  # fmt: skip
        roots = [r for r in roots if self.s.task_state(r) != "succeeded"] or roots
        return roots, [t.id for t in self.graph if t.id in roots or any(r in self.graph.ancestors(t.id) for r in roots)]

    def skip(self, roots: list[str], doomed: list[str]) -> None:
        """Skip these tasks (recorded, before resuming): ``roots`` by a human, the others as their dependents."""
        for t in doomed:
            st = self.s.task_state(t)
            if st in ("succeeded", "skipped"):
                continue
            if st not in ("pending", "ready", "failed", "retrying", "blocked"):
                self.s.fire_task(t, "reopen")
            why = "skipped by a human" if t in roots else f"depends on skipped {', '.join(roots)}"
            self.s.fire_task(t, "skip", reason=why)
        self.say(f"Skipped: {', '.join(doomed)}", note=True)

    def keep_changes_made_while_paused(self) -> None:
        """What a human changed in the tree during the pause becomes a checkpoint (a pause between steps)."""
        rec = self.cp.checkpoint("changes made while paused")
        if rec is not None:
            self.last_checkpoint = rec.n
            self.say(f"Checkpoint {rec.n}: the changes made while paused ({len(rec.files)} files)", note=True)

    def restore_checkpoint(self) -> None:
        """The tree back at the last checkpoint (the half-done group's work is saved in a pre-rollback ref)."""
        self.cp.rollback(self.last_checkpoint)
        self.say(f"The tree is back at checkpoint {self.last_checkpoint}", note=True)

    def ended(self, state: str) -> RunOutcome:
        report = self.write_report()
        return RunOutcome(self.s.id, state, EXIT_CODES.get(state, 1), report=report)

    def plan(self) -> None:
        if self.prd is None:
            outcome = self.r.agent.plan(
                PlanRequest(
                    self.s.state.request, self.workdir, timeout_s=self.r.agent_timeout_s, session_dir=self.s.dir
                )
            )
            self.s.record(outcome.result)
            if outcome.plan is None:
                raise _Pause(
                    f"Planning failed: {outcome.result.summary}",
                    ("retry", "abort"),
                    {"phase": "planning", "failure_class": outcome.result.failure_class},
                )
            self.prd = outcome.plan.prd
            if self.graph is None:
                self.graph = outcome.plan.graph
        assert self.prd is not None
        if not (self.s.dir / "prd.md").is_file():  # a given PRD was saved with the session
            atomic_write(self.s.dir / "prd.md", self.prd.text)
        self.save_graph()
        self.say(f"PRD: {self.prd.title or 'untitled'} — {len(self.prd.requirements)} requirements")
        self.decide_repo("architecture", feature=self.s.state.request)
        for capability in _capabilities(self.s.state.request + " " + " ".join(r.text for r in self.prd.requirements)):
            self.decide_repo("tech_stack", capability=capability)
        self.gate_decisions = [self.decide_repo("gate", gate=g) for g in ("tests", "lint", "typecheck", "security")]

    def decide_repo(self, kind: str, **params: Any) -> Decision | None:
        try:
            d = self.r.engine.decide(kind, state=self.s.state, repo=self.workdir, **params)
        except MaestroError as exc:  # a repository the scan cannot read, an unknown capability: noted, not fatal
            self.s.note(f"{kind}: no decision: {exc}")
            return None
        return self.decide(d)

    def generate_tasks(self) -> None:
        if self.graph is None:
            raise _Pause(
                "There is no task graph: give one with --tasks, or plan with an agent that can plan",
                ("abort",),
                {"phase": "generating_tasks"},
            )
        self.save_graph()
        cap = self.r.config.parallel.max_workers
        self.decide(self.r.engine.decide("task_ordering", graph=self.graph, max_parallel=cap))
        self.prepare()

    def save_graph(self) -> None:
        """``tasks.yaml`` in the session folder, unless it is there (a given graph is saved with the session)."""
        path = self.s.dir / "tasks.yaml"
        if self.graph is not None and not path.is_file():  # a resume after planning needs it
            atomic_write(path, self.graph.to_yaml())

    def prepare(self) -> None:
        """The groups (the ordering is deterministic: a resume computes the same) and a run for each task."""
        from maestro.plan.ordering import order_tasks

        assert self.graph is not None
        ordering = order_tasks(self.graph, max_parallel=self.r.config.parallel.max_workers)
        self.groups = ordering.groups
        for t in self.graph:
            self.runs.setdefault(t.id, _TaskRun(t))
        if not self.resumed:
            self.say(f"{len(self.graph)} tasks in {len(ordering.groups)} groups: {ordering.describe()}")

    # -- implementing -----------------------------------------------------------------------------------------
    def implement(self) -> None:
        if self.resumed:
            self.reconcile()
            self.resumed = False
        todo = {tid for tid in self.runs if self.s.task_state(tid) not in ("succeeded", "skipped")}
        for i, whole in enumerate(self.groups, 1):
            group = tuple(t for t in whole if t in todo)
            if not group:
                continue
            self.say(f"Group {i}: {', '.join(group)}", note=True)
            self.run_group(list(group))
            # a checkpoint even when nothing changed: each group's end is on record (a resume starts after it)
            rec = self.cp.checkpoint(f"group {i}: {', '.join(group)}", allow_empty=True)
            if rec is not None:
                self.last_checkpoint = rec.n
                self.say(f"Checkpoint {rec.n}: {rec.tag} ({len(rec.files)} files)")
            self.check_limits()

    def reconcile(self) -> None:
        """After a resume: the tree at the last checkpoint, and every task whose work is not in it pending again."""
        self.restore_checkpoint()
        events = effective_events(self.s.events)
        cp_seq = max((e.seq for e in events if e.kind == "checkpoint"), default=0)
        succeeded_at = {e.data["task"]: e.seq for e in events if e.kind == "task" and e.data.get("dest") == "succeeded"}
        for tid, tr in self.runs.items():
            st = self.s.task_state(tid)
            if st in ("ready", "failed", "retrying") or (st == "succeeded" and succeeded_at.get(tid, 0) > cp_seq):
                self.s.fire_task(tid, "reopen", reason="redone after the resume (its work is not in a checkpoint)")
                tr.done = False
            tr.retries = tr.alternatives = 0
            tr.last_signature = None
            tr.needs_rollback = False
        guidance = _last_guidance(self.s)
        if guidance is not None:
            for tid in _guided(self.s, guidance, list(self.runs)):
                tr = self.runs[tid]
                tr.approach = "follow the human's guidance"
                tr.feedback = guidance.rationale

    def run_group(self, group: list[str]) -> None:
        try:
            self._run_group(group)
        except _Pause as pause:
            pause.context["mid_group"] = True  # its unfinished work is redone on resume
            raise

    def _run_group(self, group: list[str]) -> None:
        while True:
            pending = [t for t in group if not self.runs[t].done]
            if not pending:
                return
            for tid in pending:
                if self.s.task_state(tid) in ("pending", "blocked"):
                    self.s.fire_task(tid, "ready")
                if not self.runs[tid].chosen:
                    self.runs[tid].chosen = True
                    self.choose_subagent(tid)
            self.run_attempts(pending)
            needs = [t for t in group if self.runs[t].needs_rollback]
            if not needs:
                regression = self.regression(group)
                if regression is None:
                    return
                needs = group
                if any(self.runs[t].alternatives >= self.r.config.recovery.max_alternatives for t in group):
                    raise _Pause(
                        f"Group {', '.join(group)} keeps breaking earlier work: {_first_line(regression)}",
                        ("retry", "skip", "abort", "guidance"),
                        {"group": group, "output": regression[-2000:]},
                    )
                for t in group:
                    self.runs[t].feedback = regression
                    self.runs[t].approach = "keep every earlier task's acceptance commands passing"
                    self.runs[t].alternatives += 1
                    self.recovery(
                        t,
                        "rollback_and_alternative",
                        f"regression: {_first_line(regression)}; roll back to "
                        f"checkpoint {self.last_checkpoint} and redo the group",
                        "regression",
                    )
            self.rollback_and_retry(group, needs)

    def choose_subagent(self, tid: str, *, again: bool = False) -> None:
        """Record the subagent decision for ``tid``; ``again``: take the recorded one (a resume)."""
        from maestro.agents.registry import discover

        if again:
            recorded = [d for d in self.s.state.decisions if d.kind == "subagent" and d.task == tid]
            try:
                if self.registry is None:
                    self.registry = discover(self.workdir)
                self.runs[tid].subagent = self.registry.subagent(recorded[-1].choice)
            except (MaestroError, KeyError, IndexError):
                self.runs[tid].subagent = None
            return

        try:
            if self.registry is None:  # .claude/ is read once a run, not once a task
                self.registry = discover(self.workdir)
            mapping, triggers = _subagent_overrides(self.r.config)
            d = self.r.engine.decide(
                "subagent",
                state=self.s.state,
                repo=self.workdir,
                for_task=self.runs[tid].task,
                registry=self.registry,
                mapping=mapping,
                triggers=triggers,
                task=tid,
            )
        except MaestroError as exc:
            self.s.note(f"subagent for {tid}: no decision: {exc}")
            return
        d = self.record(d)
        self.runs[tid].subagent = self.registry.subagent(d.choice)
        self.say(f"Task {tid}: {self.runs[tid].task.title} → {d.choice}")

    def run_attempts(self, tids: list[str]) -> None:
        """Run every task in ``tids`` (concurrently) until each succeeded or needs a rollback; pause on critical."""
        workers = max(1, self.r.config.parallel.max_workers)
        pause: _Pause | None = None
        pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maestro-task")
        try:
            running: dict[cf.Future[tuple[AgentResult, Any]], str] = {}

            def submit(tid: str, allowance: float | None) -> None:
                self.s.fire_task(tid, "start")
                attempt = self.s.state.tasks[tid].attempts
                tr = self.runs[tid]
                if allowance is not None:
                    self.allowances[tid] = allowance
                req = AgentRequest(
                    tr.task,
                    self.workdir,
                    budget_usd=allowance,
                    attempt=attempt,
                    subagent=tr.subagent,
                    approach=tr.approach,
                    feedback=tr.feedback,
                    timeout_s=self.r.agent_timeout_s,
                    session_dir=self.s.dir,
                )
                self.say(f"Task {tid}: attempt {attempt}" + (f" ({tr.approach})" if tr.approach else ""))
                running[pool.submit(self.attempt, req)] = tid

            def limit() -> _Pause | None:
                try:
                    self.check_limits(between_steps=False)
                except _Pause as p:
                    return p
                return None

            pause = limit()
            batch = [t for t in tids if self.s.task_state(t) in ("ready", "retrying")]
            free = self.budget_free()  # shared among the attempts that start together
            for tid in batch if pause is None else ():
                submit(tid, None if free is None else free / max(1, min(workers, len(batch))))
            while running:
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    tid = running.pop(fut)
                    self.allowances.pop(tid, None)
                    result, acc = fut.result()
                    again = self.settle(tid, result, acc)
                    if isinstance(again, _Pause):
                        pause = pause or again
                    elif again and pause is None:
                        pause = limit()  # a limit reached: the agents running finish, no new attempt starts
                        if pause is None:
                            submit(tid, self.budget_free())
        except BaseException:  # a second Ctrl-C: do not wait for the agents still working
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            self.allowances.clear()
        pool.shutdown()
        if pause is not None:
            raise pause

    def budget_free(self) -> float | None:
        """What is left of the budget (None: no budget): minus every call so far and what the running ones may spend.

        Attempts that start together share it; an attempt started while others
        run gets what their allowances leave: together they cannot overspend.
        """
        state = self.s.state
        budget = state.limits.budget_usd
        if budget is None:
            return None
        return max(0.0, budget - state.spent_usd - sum(self.allowances.values()))

    def attempt(self, request: AgentRequest) -> tuple[AgentResult, Any]:
        """In a worker thread: the agent's attempt, then the task's acceptance commands."""
        from maestro.gates.acceptance import acceptance

        result = self.r.agent.run(request)
        if result.status != "succeeded":
            return result, None
        return result, acceptance(request.task, request.workdir, timeout_s=self.r.agent_timeout_s)

    def settle(self, tid: str, result: AgentResult, acc: Any) -> bool | _Pause:
        """Record an attempt's outcome; True to run the task again now, a _Pause to stop."""
        self.s.record(result)
        tr = self.runs[tid]
        cost = f", ${result.cost_usd:.4f}" if result.cost_usd else ""
        if result.status == "succeeded" and acc is not None and acc.passed:
            self.s.fire_task(tid, "succeed")
            tr.done = True
            self.say(f"Task {tid}: succeeded ({result.summary}{cost})")
            return False
        if result.status == "succeeded":  # the agent finished but an acceptance command failed
            failure_class = "test_failure"
            output = "\n".join(f"$ {c}\n{out}" for c, code, out in acc.results if code != 0)
            summary = f"acceptance failed: {_first_line(output)}"
        else:
            failure_class = result.failure_class or "transient"
            output = result.summary
            summary = result.summary
        self.s.fire_task(tid, "fail", reason=f"{failure_class}: {summary}"[:500])
        self.say(f"Task {tid}: failed ({failure_class}): {summary}")
        signature = hashlib.sha256(f"{failure_class}:{_normalise(output)}".encode()).hexdigest()[:12]
        stuck = signature == tr.last_signature
        tr.last_signature = signature
        rec = self.r.config.recovery
        if failure_class == "critical":
            self.recovery(tid, "pause", f"the agent cannot work: {summary}", failure_class)
            return _Pause(
                f"{self.r.agent.name} cannot work: {summary}",
                ("retry", "abort"),
                {"task": tid, "failure_class": failure_class, "fix": summary},
            )
        if failure_class == "ambiguous":
            self.recovery(tid, "pause", f"a human must decide: {summary}", failure_class)
            return _Pause(
                f"Task {tid} needs a decision: {summary}",
                ("retry", "skip", "abort", "guidance"),
                {"task": tid, "failure_class": failure_class},
            )
        if failure_class == "transient" and tr.retries < rec.max_retries and not stuck:
            tr.retries += 1
            delay = rec.backoff.delay(tr.retries)
            self.recovery(
                tid,
                "retry",
                f"transient failure: retry {tr.retries} of {rec.max_retries} after {delay:g} s backoff",
                failure_class,
            )
            refused = self.retry_task(tid)
            if refused is not None:
                return refused
            self.r.sleep(delay)
            return True
        if tr.alternatives < rec.max_alternatives:
            why = "the same error twice in a row" if stuck else f"{failure_class}"
            tr.alternatives += 1
            tr.needs_rollback = True
            tr.feedback = output
            tr.approach = f"alternative {tr.alternatives}: the previous attempt failed ({why}); take another approach"
            self.recovery(
                tid,
                "rollback_and_alternative",
                f"{why}: roll back to checkpoint {self.last_checkpoint}, then alternative "
                f"{tr.alternatives} of {rec.max_alternatives} with the failure as feedback",
                failure_class,
            )
            return False
        self.recovery(
            tid, "pause", f"every rung used ({tr.retries} retries, {tr.alternatives} alternatives)", failure_class
        )
        return _Pause(
            f"Task {tid} still fails after {tr.retries} retries and {tr.alternatives} alternatives: {summary}",
            ("retry", "skip", "abort", "guidance"),
            {"task": tid, "failure_class": failure_class, "output": output[-2000:]},
        )

    def recovery(self, tid: str, choice: str, rationale: str, failure_class: str) -> None:
        options = ("retry", "rollback_and_alternative", "pause")
        scores = {o: (1.0 if o == choice else 0.0) for o in options}
        self.decide(
            Decision(
                "recovery",
                f"Task {tid} failed ({failure_class}): what next?",
                choice,
                rationale,
                options=tuple(Option(o, scores[o], (Evidence("fact", failure_class),)) for o in options),
                task=tid,
                checkpoint=self.last_checkpoint,
            )
        )

    def regression(self, group: list[str]) -> str | None:
        """The output of an earlier succeeded task's acceptance command that now fails, or None."""
        from maestro.gates.acceptance import acceptance

        assert self.graph is not None
        outside = self.deleted_outside(group)
        if outside:
            self.say(f"Regression: group {', '.join(group)} deleted files outside its tasks: {', '.join(outside[:5])}",
                     note=True)  # fmt: skip
            return (f"Your change deleted files outside the task's files ({', '.join(outside[:10])}): "
                    "keep to the task's files")  # fmt: skip
        earlier = [t for t in self.graph if t.id not in group and self.s.task_state(t.id) == "succeeded"]
        # each distinct command once (tasks often share one), several at a time
        owners: dict[str, Task] = {}
        for t in earlier:
            for command in t.acceptance:
                owners.setdefault(command, t)
        if not owners:
            return None
        probes = [Task(f"check{i}", "regression check", acceptance=(c,)) for i, c in enumerate(owners)]
        workers = max(1, min(self.r.config.parallel.max_workers, len(probes)))
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maestro-check") as pool:
            results = list(pool.map(lambda p: acceptance(p, self.workdir, timeout_s=self.r.agent_timeout_s), probes))
        for command, acc in zip(owners, results, strict=True):
            if not acc.passed:
                t = owners[command]
                output = "\n".join(f"$ {c}\n{out}" for c, code, out in acc.results if code != 0)
                self.say(f"Regression: task {t.id}'s acceptance now fails after group {', '.join(group)}", note=True)
                return f"Your change broke task {t.id} ({t.title}): its acceptance command failed:\n{output}"
        return None

    def deleted_outside(self, group: list[str]) -> list[str]:
        """Files of the last checkpoint the group deleted outside its tasks' declared ``files`` (and folders).

        Only when every task of the group declares its files: without them the
        scope of a task is unknown and nothing is flagged.
        """
        tasks = [self.runs[t].task for t in group]
        if not tasks or any(not t.files for t in tasks):
            return []
        declared = [f.rstrip("/") for t in tasks for f in t.files]
        try:
            from dulwich import porcelain

            status = porcelain.status(str(self.workdir), untracked_files="no")
        except (OSError, ValueError, KeyError) as exc:  # a repository dulwich cannot read here: skip, say so
            log.warning("cannot check for deleted files in %s: %s", self.workdir, exc)
            return []
        changed = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in status.unstaged]
        deleted = sorted(p for p in changed if not (self.workdir / p).exists() and not os.path.islink(self.workdir / p))
        return [p for p in deleted if not any(p == d or p.startswith(d + "/") for d in declared)]

    def retry_task(self, tid: str) -> _Pause | None:
        """Move the task to ``retrying``; a pause if its chart refuses (no attempts left)."""
        try:
            self.s.fire_task(tid, "retry")
        except TransitionNotAllowed as exc:
            return _Pause(f"Task {tid} has used all its attempts ({exc.reason})", ("retry", "skip", "abort"),
                          {"task": tid})  # fmt: skip
        return None

    def rollback_and_retry(self, group: list[str], needs: list[str]) -> None:
        self.fire("error", reason=f"tasks {', '.join(needs)} need a rollback")
        self.fire("rollback")
        self.cp.rollback(self.last_checkpoint)
        self.say(f"Rolled back to checkpoint {self.last_checkpoint}", note=True)
        self.fire("rolled_back")
        for tid in group:
            tr = self.runs[tid]
            state = self.s.task_state(tid)
            if state == "succeeded":  # the rollback took its work too: it runs again
                tr.done = False
                self.s.fire_task(tid, "reopen")
            elif state == "failed":
                refused = self.retry_task(tid)
                if refused is not None:
                    raise refused
            tr.needs_rollback = False

    # -- validating, reviewing, handing off --------------------------------------------------------------------
    def validate(self) -> None:
        from maestro.gates.acceptance import acceptance
        from maestro.gates.commands import gate_commands
        from maestro.gates.running import run_gate
        from maestro.gates.traceability import trace

        assert self.prd is not None and self.graph is not None
        commands = gate_commands(self.r.config.gates, [d for d in self.gate_decisions if d is not None])
        for name, (command, required, source) in commands.items():
            gate = self.r.config.gates.get(name)
            g = run_gate(
                name,
                command,
                required=required,
                workdir=self.workdir,
                transcript_dir=self.s.dir / "gates",
                timeout_s=gate.timeout_s if gate is not None else 1800.0,
            )
            self.s.record(g)
            self.say(f"Gate {name} ({source}): {g.status} — {g.summary}")
        succeeded = {t.id for t in self.graph if self.s.task_state(t.id) == "succeeded"}
        passed = {
            t.id: acceptance(t, self.workdir, timeout_s=self.r.agent_timeout_s).passed
            for t in self.graph
            if t.id in succeeded
        }
        matrix = trace(self.prd, self.graph, succeeded, passed)
        self.traceability = matrix
        atomic_write(self.s.dir / TRACEABILITY, matrix.to_markdown())
        g = matrix.as_gate()
        self.s.record(g)
        self.say(f"Requirements: {g.summary}")

    def review(self) -> None:
        """Hand off when every required gate passed; else refine (within the iteration limit), else pause."""
        state = self.s.state
        latest = {g.name: g for g in state.gates}
        failing = sorted(n for n, g in latest.items() if g.required and g.status != "passed")
        if not failing:
            self.decide(
                Decision(
                    "refinement",
                    "Refine or hand off?",
                    "handoff",
                    "every required gate passed",
                    options=(Option("handoff", 1.0), Option("refine", 0.0)),
                )
            )
            self.fire("handoff")
            return
        skipped = sorted(t for t, ts in state.tasks.items() if ts.state == "skipped")
        undone = [t for t, ts in state.tasks.items() if ts.state not in ("succeeded", "skipped")]
        if skipped and not undone and failing == ["traceability"]:
            raise _Pause(
                f"Requirements are not met because tasks were skipped ({', '.join(skipped)}): hand off as is, "
                "or abort?",
                ("handoff", "abort"),
                {"skipped": skipped, "failing_gates": failing},
            )
        if state.iteration >= state.limits.max_iterations:
            self.decide(
                Decision(
                    "refinement",
                    "Refine or hand off?",
                    "stop",
                    f"required gates still failing ({', '.join(failing)}) after {state.iteration} iterations",
                    options=(Option("stop", 1.0), Option("refine", 0.0)),
                )
            )
            raise _Pause(
                f"Limit reached: required gates still fail after {state.iteration} iterations "
                f"(max_iterations {state.limits.max_iterations}): {', '.join(failing)}",
                LIMIT_OPTIONS,
                {"limit": "max_iterations", "failing_gates": failing},
            )
        self.decide(
            Decision(
                "refinement",
                "Refine or hand off?",
                "refine",
                f"required gates failing: {', '.join(failing)}",
                options=(Option("refine", 1.0), Option("handoff", 0.0)),
            )
        )
        self.fire("refine")

    def refine(self) -> None:
        """The tasks of the next iteration: what did not succeed (or all), with what validation found."""
        assert self.graph is not None
        redo = [t.id for t in self.graph if self.s.task_state(t.id) not in ("succeeded", "skipped")]
        for tid in redo or list(self.graph.ids):
            if self.s.task_state(tid) in ("succeeded", "failed"):
                self.s.fire_task(tid, "reopen")
        self.refinement_feedback()

    def refinement_feedback(self) -> None:
        """Fresh rungs for every task, and for those still to do what the last validation found."""
        latest = {g.name: g for g in self.s.state.gates}
        failing = sorted(n for n, g in latest.items() if g.required and g.status != "passed")
        feedback = "\n".join(f"{n}: {latest[n].summary}" for n in failing)
        for tid, tr in self.runs.items():
            if self.s.task_state(tid) == "pending":
                tr.done = False
                tr.feedback = feedback or None
                tr.approach = "fix what validation found"
            tr.retries = tr.alternatives = 0  # a new iteration: every rung may be used again
            tr.last_signature = None

    def finish(self) -> RunOutcome:
        self.fire("complete")  # the session writes a plain report at its final state; the full one follows
        report = self.write_report()
        self.say(f"Completed. Report: {report}")
        return RunOutcome(self.s.id, "completed", 0, report=report)

    def write_report(self) -> Path:
        """``final-report.md`` with the net changes of the session and the requirement matrix."""
        from maestro.store.views import final_report

        changes = self.cp.diff(0, self.last_checkpoint) if self.last_checkpoint else ()
        matrix = getattr(self, "traceability", None)
        saved = self.s.dir / TRACEABILITY
        requirements = matrix.to_markdown() if matrix is not None else None
        if requirements is None and saved.is_file():  # validated before a resume
            requirements = saved.read_text(encoding="utf-8")
        path = self.s.dir / "final-report.md"
        atomic_write(path, final_report(self.s.state, changes=changes, requirements=requirements))
        return path

    def pause(self, pause: _Pause) -> RunOutcome:
        paused_from = self.s.current
        context = pause.context
        if paused_from == "implementing":
            context = {**context, "mid_group": bool(context.get("mid_group"))}
        req = DecisionRequest(pause.question[:4000], pause.options, paused_from, _jsonable(context))
        self.s.record(req)  # in the log before the pause: nothing of the question is lost
        self.fire("pause", reason=pause.question[:500])
        path = write_request_file(self.s.dir, self.s.id, req)
        self.say(f"Paused: {pause.question} (options: {', '.join(pause.options)}; see {path})")
        self.write_report()
        code = EXIT_INTERRUPTED if pause.context.get("interrupted") else EXIT_CODES["paused"]
        return RunOutcome(self.s.id, "paused", code, report=self.s.dir / "final-report.md", request_file=path)


def request_doc(session_id: str, req: DecisionRequest) -> dict[str, Any]:
    """A decision request as ``decision-request.json`` and ``maestro status --json`` show it."""
    return {
        "session": session_id,
        "question": req.question,
        "options": list(req.options),
        "context": dict(req.context),
        "paused_from": req.paused_from,
        "answer": f"maestro answer {session_id} {'|'.join(req.options)} [--note TEXT]; then maestro resume "
        f"{session_id}",
    }


def write_request_file(session_dir: Path, session_id: str, req: DecisionRequest) -> Path:
    path = session_dir / DECISION_REQUEST
    atomic_write(path, json.dumps(request_doc(session_id, req), indent=2, ensure_ascii=False) + "\n")
    return path


def _jsonable(context: Mapping[str, Any]) -> dict[str, Any]:
    """The context as plain JSON values (tuples as lists; anything else as text)."""
    doc: dict[str, Any] = json.loads(json.dumps(dict(context), default=str))
    return doc


def _guided(session: Session, guidance: Decision, tasks: list[str]) -> list[str]:
    """The tasks a guidance answer is for: its task, else the paused group's, else every task."""
    if guidance.task in tasks:
        return [guidance.task]
    for e in reversed(effective_events(session.events)):
        if e.kind == "request":
            group = e.data.get("context", {}).get("group")
            if isinstance(group, list):
                return [t for t in group if t in tasks]
            break
    return tasks


def _last_guidance(session: Session) -> Decision | None:
    """The human's guidance answer to the last decision request, if that was the answer."""
    for e in reversed(effective_events(session.events)):
        if e.kind == "decision" and e.data.get("kind") == "answer":
            d = e.payload()
            return d if isinstance(d, Decision) and d.choice == "guidance" else None
        if e.kind == "transition" and e.data.get("trigger") in ("tasks_ready", "refine"):
            return None  # guidance is for the step the pause interrupted
    return None


_CAPABILITY_WORDS = {
    "http client": ("http client", "http request", "fetch", "api client"),
    "web framework": ("web app", "web framework", "web server", "http server", "endpoint", "rest api"),
    "orm": ("orm", "database model", "sql database"),
    "cli": ("command line", "cli"),
    "oauth": ("oauth", "login with"),
}


def _capabilities(text: str) -> list[str]:
    """Catalogue capabilities a request mentions (evidence-based; none found: the test runner)."""
    low = text.lower()
    found = [
        cap for cap, words in _CAPABILITY_WORDS.items() if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words)
    ]
    return found or ["test runner"]


def _subagent_overrides(config: Config) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """``subagents.mapping`` and ``subagents.triggers`` from config.yaml (empty without them)."""
    from maestro.agents.registry import overrides_from_config

    return overrides_from_config({"subagents": config.subagents}) if config.subagents else ({}, {})


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip() and not line.startswith("$ "):
            return line.strip()[:200]
    return text.strip()[:200]


_VOLATILE = re.compile(r"0x[0-9a-f]+|\d+(\.\d+)?")


def _normalise(text: str) -> str:
    """Error text without the numbers that change between runs (addresses, timings, line numbers)."""
    return _VOLATILE.sub("#", text)[-2000:]
