"""The runner API: start a session (:meth:`Runner.run`) or continue one (:meth:`Runner.resume`).

Every phase is a state of ``statecharts/session.yaml`` and every move a declared
transition, fired through :class:`~maestro.Session` (so it is in the event log
before it happens).  The loop the chart drives is :mod:`maestro.run.loop`; the
groups and the recovery ladder are :mod:`maestro.run.implement`; pausing,
answering and resuming are :mod:`maestro.run.pauses`.

Recovery (FR-5), per task, each rung a ``recovery`` decision of the engine:

* ``transient`` → retry with exponential backoff (``recovery.max_retries``);
* ``implementation`` / ``test_failure`` → roll back to the last checkpoint, then an
  alternative attempt with the failure's output as feedback (``recovery.max_alternatives``);
* a regression (an earlier task's acceptance command now fails) → the same;
* ``critical`` → no retry: the tasks already running finish, then the session
  pauses at once with a decision request naming the cause and the fix;
* ``ambiguous``, or every rung used → pause with a decision request (or, with
  ``recovery.on_exhausted: give_up``, the session gives up: ``failed``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from maestro.agents.base import Agent
from maestro.agents.recording import RecordingAgent
from maestro.agents.replay import ReplayAgent
from maestro.config.model import Config
from maestro.core.errors import MaestroError, Terminated
from maestro.core.records import Event, Rewind
from maestro.core.seams import Clock, IdSource, SystemClock
from maestro.decide.engine import DecisionEngine
from maestro.git.checkpoints import Checkpointer
from maestro.git.housekeeping import clear_stale_locks
from maestro.git.repostate import base_report, refuse_in_progress, save_staged
from maestro.git.tampering import TamperGuard
from maestro.model.chart import load_chart
from maestro.plan.load import load_tasks
from maestro.plan.prd import load_prd
from maestro.run.inputs import RUN_FILE, RunInputs, load_run_inputs
from maestro.run.limits import initial_limits, limits_text, raised_limits
from maestro.run.loop import RunOutcome, SessionRun
from maestro.run.pauses import resume_choice
from maestro.session import Session
from maestro.store.filestore import Store

__all__ = ["Observer", "RunOutcome", "Runner"]

log = logging.getLogger("maestro.run")  # the [Maestro] lines: one logger for every run module

Observer = Callable[[Event, Path], None]
"""What watches a run: called with each event of the session and the session's folder (where its plan files are),
in the coordinating thread, right after the event is recorded (first with those already in the log)."""


class Runner:
    """Runs sessions for one repository with one agent and one configuration.

    ``sleep`` is the backoff's sleep (injected so tests and the demo need not wait);
    ``clock`` and ``ids`` make the session's log reproducible.  :meth:`interrupt`
    (the first Ctrl-C) asks the run to pause after the step it is in.  The timeouts
    come from ``config`` (``agent.timeout_s``, ``acceptance.timeout_s``: 1800 s unless
    it says); ``agent_timeout_s`` and ``acceptance_timeout_s`` override it.  ``observer`` (an :data:`Observer`)
    sees every event of the session as it is recorded (a live view); an exception in it is logged, never raised.
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
        agent_timeout_s: float | None = None,
        acceptance_timeout_s: float | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.agent = _recording(agent)
        self.clock = clock or SystemClock()
        self.ids = ids
        self.sleep = sleep
        self.engine = engine or DecisionEngine(decisions_dir=store.decisions_dir)
        self.agent_timeout_s = config.agent_timeout_s if agent_timeout_s is None else agent_timeout_s
        self.acceptance_timeout_s = (
            config.acceptance_timeout_s if acceptance_timeout_s is None else acceptance_timeout_s
        )
        self.observer = observer
        self.interrupted = threading.Event()
        self.session_id: str | None = None  # the session run or resumed last (for a message after a Ctrl-C)

    def interrupt(self) -> None:
        """Pause after the current step (safe to call from a signal handler or another thread)."""
        self.interrupted.set()

    def run(
        self,
        request: str,
        *,
        prd_path: Path | None = None,
        tasks_path: Path | None = None,
        worktree: bool = False,
        allow_dirty: bool = False,
    ) -> RunOutcome:
        """Run a session for ``request``; bad input raises before anything is written.

        The session never writes to the user's checkout: it starts from the tree as it is (HEAD plus any
        uncommitted work, saved as the session's base) and works in worktrees of its own (``worktree`` and
        ``allow_dirty`` are accepted for compatibility and change nothing).
        """
        repo = self.store.repo
        refuse_in_progress(repo)  # a merge, rebase, cherry-pick, revert or bisect half done: refused, nothing written
        base = base_report(repo)
        prd = load_prd(prd_path) if prd_path is not None else None
        graph = load_tasks(tasks_path, requirement_ids=prd.requirement_ids if prd else None) if tasks_path else None
        # What resuming needs is written with the session, before its log: the inputs and the options.
        files = {RUN_FILE: RunInputs(self.config, True, prd is not None, graph is not None).to_json()}
        if prd is not None:
            files["prd.md"] = prd.text
        if graph is not None:
            files["tasks.yaml"] = graph.to_yaml()
        kwargs: dict[str, Any] = {"clock": self.clock, "guards": self.engine.guards(),
                                  "limits": initial_limits(self.config), "files": files}  # fmt: skip
        if self.ids is not None:
            kwargs["ids"] = self.ids
        session = Session.create(self.store, request, **kwargs)
        self.session_id = session.id
        try:
            self._watch(session)
            checkpointer = Checkpointer(repo, session.id, worktree=True, clock=self.clock)
            run = SessionRun(self, session, checkpointer, prd, graph)
            run.record_checkpoint(checkpointer.start(state=session.current))
            run.say(f"Session {session.id} started on branch maestro/{session.id}", note=True)
            if save_staged(repo, session.id, base, when=self.clock.now()) is not None:
                run.say(f"The index (staged, not committed) is kept at refs/maestro/{session.id}/index", note=True)
            for line in base.notes():
                run.say(line, note=True)
            return run.go()
        except KeyboardInterrupt as stop:
            _stopped(session, stop)
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
        load_run_inputs(self.store, session_id)  # the session's saved inputs, or a one-line error naming the file
        self.session_id = session_id
        session = Session.open(self.store, session_id, clock=self.clock, guards=self.engine.guards())
        try:
            self._watch(session)
            state = session.state
            if load_chart("session").is_final(state.state):
                raise MaestroError(f"session {session_id} is {state.state}: there is nothing to resume")
            cp = Checkpointer(self.store.repo, session.id, worktree=True, clock=self.clock)
            clear_stale_locks(self.store.repo, session_id, state.updated_at)  # the dead run's, or a one-line refusal
            if state.checkpoints:  # tags the dead run made but never recorded: kept aside before the log's are restored
                cp.discard_after(state.checkpoints[-1].n)
            put_back = _restore_refs(session)  # deleted or moved while no run watched: back at what the log says
            new_limits = raised_limits(state.limits, limits or {})
            if state.state == "paused":
                for line in put_back:
                    _note(session, f"Put back from the log: {line}")
                choice = resume_choice(state, new_limits)
                if new_limits != state.limits:
                    session.record(new_limits)
                    _note(session, f"Limits raised: {limits_text(new_limits)}")
                run = SessionRun(self, session, cp, None, None, resumed=True)
                run.record_checkpoint(cp.start(state=session.current))
                return run.answered(choice)
            # The process that held the session is gone: void the step it was in and redo it.
            to = state.boundary
            was = state.state
            last_cp = state.checkpoints[-1].n if state.checkpoints else None
            session.record(Rewind(to, f"resumed after the run stopped in {was}", last_cp))
            for line in put_back:
                _note(session, f"Put back from the log: {line}")
            if new_limits != session.state.limits:  # after the rewind, which would void them
                session.record(new_limits)
            zero = cp.start(state=session.current)  # checkpoint 0, if the run died before recording it
            if not session.state.checkpoints:
                session.record(zero)
            after = session.state
            _note(session, f"Resumed session {session_id} after the run stopped in {was}: events after "
                           f"#{to} are void; redoing from {after.state}")  # fmt: skip
            if after.checkpoints:
                n = after.checkpoints[-1].n
                cp.discard_after(n)
                if not SessionRun.restores_itself(after.state):  # implementing: reconcile() restores it
                    cp.rollback(n)
                    _note(session, f"The tree is back at checkpoint {n} (the tree as it was: refs/maestro/"
                                   f"{session_id}/pre-rollback-*)")  # fmt: skip
            return SessionRun(self, session, cp, None, None, resumed=True).go()
        except KeyboardInterrupt as stop:
            _stopped(session, stop)
            raise
        finally:
            session.close()

    def _watch(self, session: Session) -> None:
        if self.observer is not None:
            observer, folder = self.observer, session.dir
            session.watch(lambda event: observer(event, folder))


def _recording(agent: Agent) -> Agent:
    """The agent, wrapped so each attempt's changes are saved for re-drive (unless it replays or records already)."""
    return agent if isinstance(agent, (RecordingAgent, ReplayAgent)) else RecordingAgent(agent)


def _note(session: Session, text: str) -> None:
    log.info("[Maestro] %s", text)
    session.note(text)


def _restore_refs(session: Session) -> list[str]:
    """The session's branch and checkpoint tags back at the commits its log records (they may have been deleted or
    moved while no run was there to see it): what was put back.  A commit no longer in the repository is a one-line
    refusal (:class:`~maestro.CheckpointError`)."""
    if not session.state.checkpoints:
        return []
    guard = TamperGuard(session, watch=False)
    try:
        return guard.restore()
    finally:
        guard.close()


def _stopped(session: Session, stop: KeyboardInterrupt) -> None:
    """A second Ctrl-C, a SIGTERM or a SIGHUP: say so in the log if it can still be written (the step is redone on
    resume)."""
    how = stop.name if isinstance(stop, Terminated) else "a second Ctrl-C"
    with contextlib.suppress(MaestroError, OSError, KeyboardInterrupt):
        session.note(f"Stopped at once by {how} in {session.current}: `maestro resume {session.id}` "
                     "redoes the interrupted step")  # fmt: skip
