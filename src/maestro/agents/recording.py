"""The recording agent: any agent, with what each attempt changed in the working tree saved as a change file.

:class:`RecordingAgent` wraps an agent.  Around every :meth:`~RecordingAgent.run`
it takes a :func:`~maestro.agents.changes.snapshot` of the working tree before
the call and :func:`~maestro.agents.changes.capture_changes` after it, and saves
the changes at ``<session_dir>/agents/<task>.<attempt>.<agent>.changes.json``
(:func:`~maestro.agents.changes.changes_path`); around :meth:`~RecordingAgent.plan`
it saves the plan as ``<session_dir>/plan.json`` (and the planning attempt's
changes, when it made any).  That is what :class:`~maestro.agents.replay.ReplayAgent`
needs to re-drive the session later without the agent.

Recording never turns an agent's answer into a crash: if the tree cannot be
read or the change file cannot be written, a warning goes to the ``maestro``
logger and that attempt has no change file (a re-drive then stops at it with a
:class:`~maestro.agents.replay.Divergence` naming the task and the attempt).

**What one capture holds.**  The whole working tree is compared, not only the
task's declared ``files``: agents write outside the files they were given (the
demo's ``cli`` task "simplifies" ``calc/core.py``), and a re-drive must
reproduce that too.  The tasks of a parallel group share one working tree, so
a capture can see a sibling's work.  Outside this task's own ``files``:

* a change inside the declared ``files`` of another attempt still running is
  that attempt's, and left out;
* a change that an attempt which finished during this one recorded (the same
  change) is that attempt's, and left out;
* anything else is kept.

So each change is recorded once.  What is ambiguous is a change outside every
declared ``files`` (or made beside a task that declares none) while two
attempts ran: the first of them to finish records it, whichever made it (a
debug message names it).  Replaying the group's attempts applies it all the
same; only a task whose own acceptance commands depend on such a change could
then see it later than it did.  Tasks of a parallel group that declare their
``files``, and keep to them, have change files that hold exactly their work.

Thread-safe: the runner calls :meth:`RecordingAgent.run` from several threads
at once, one attempt of one task each.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import attrs

from maestro.agents.base import PLAN_TASK, Agent, AgentRequest, PlanOutcome, PlanRequest
from maestro.agents.changes import Change, Snapshot, capture_changes, changes_path, snapshot, write_changes, write_plan
from maestro.core.records import AgentResult

__all__ = ["RecordingAgent"]

log = logging.getLogger("maestro")


def _scope(files: Iterable[str]) -> tuple[str, ...] | None:
    """A task's declared ``files`` as clean relative POSIX paths (None: it declares none)."""
    out = []
    for f in files:
        pure = PurePosixPath(f.strip())
        if pure.is_absolute() or not pure.parts or ".." in pure.parts:
            continue
        out.append(pure.as_posix())
    return tuple(sorted(set(out))) or None


def _covers(scope: tuple[str, ...] | None, path: str) -> bool:
    """Whether ``path`` is one of ``scope``'s paths or under one of its folders."""
    return scope is not None and any(path == s or path.startswith(s + "/") for s in scope)


def _owns(other: _Call, change: Change) -> bool:
    """Whether ``change`` is taken to be the work of ``other``, an attempt that overlapped the one capturing it.

    Once ``other`` has recorded its changes, those are its own (what changed
    after it finished is not); until then, anything inside its declared
    ``files`` is taken to be its own.
    """
    if other.captured is not None:
        return other.captured.get(change.path) == change
    return _covers(other.scope, change.path)


@attrs.define(eq=False)
class _Call:
    """One attempt in progress (or just finished), as the other attempts running beside it see it."""

    label: str
    scope: tuple[str, ...] | None
    beside: list[_Call] = attrs.field(factory=list)  # every call that overlapped this one in time
    captured: dict[str, Change] | None = None  # what it recorded (path -> change), once saved
    running: bool = True


class RecordingAgent:
    """Wraps ``inner`` (any :class:`~maestro.agents.base.Agent`) and records what each of its attempts changed.

    ``name`` is the inner agent's, so transcripts, change files and results keep
    its name.  Nothing is saved for a request without ``session_dir``.
    """

    def __init__(self, inner: Agent) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._tokens = itertools.count(1)

    @property
    def name(self) -> str:
        """The inner agent's name."""
        return self.inner.name

    def __repr__(self) -> str:
        return f"RecordingAgent({self.inner!r})"

    def prepare_repository(self, repo: Path) -> None:
        """The inner agent's ``prepare_repository``, where it has one (what it writes into ``.git`` once)."""
        prepare = getattr(self.inner, "prepare_repository", None)
        if callable(prepare):
            prepare(repo)

    # -- the calls ------------------------------------------------------------------------------------------------
    def run(self, request: AgentRequest) -> AgentResult:
        """The inner agent's attempt; its changes to ``request.workdir`` saved as the attempt's change file."""
        if request.session_dir is None:
            return self.inner.run(request)
        label = f"{request.task.id} attempt {request.attempt}"
        token, call = self._enter(label, _scope(request.task.files))
        try:
            before = self._snapshot(request.workdir, label)
            try:
                result = self.inner.run(request)
            except BaseException:
                self._discard(changes_path(request.session_dir, request.task.id, request.attempt, self.name))
                raise
            path = changes_path(request.session_dir, request.task.id, request.attempt, result.agent or self.name)
            assert path is not None
            self._record(call, before, request.workdir, path, label, keep_empty=True)
            return result
        finally:
            self._leave(token, call)

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """The inner agent's plan, saved as ``plan.json`` when there is one (and planning's changes, if any)."""
        if request.session_dir is None:
            return self.inner.plan(request)
        token, call = self._enter("planning", None)
        try:
            before = self._snapshot(request.workdir, "planning")
            outcome = self.inner.plan(request)
            if outcome.plan is not None:
                try:
                    write_plan(request.session_dir, outcome.plan, request.refinement)
                except Exception as exc:  # noqa: BLE001 - recording must never fail the agent's answer
                    log.warning("cannot save the plan in %s: %s (a re-drive cannot replay it)",
                                request.session_dir, exc)  # fmt: skip
            result = outcome.result
            path = changes_path(request.session_dir, PLAN_TASK, result.attempt, result.agent or self.name)
            assert path is not None
            self._record(call, before, request.workdir, path, "planning", keep_empty=False)
            return outcome
        finally:
            self._leave(token, call)

    # -- bookkeeping ----------------------------------------------------------------------------------------------
    def _enter(self, label: str, scope: tuple[str, ...] | None) -> tuple[int, _Call]:
        call = _Call(label, scope)
        with self._lock:
            token = next(self._tokens)
            for other in self._calls.values():
                other.beside.append(call)
                call.beside.append(other)
            self._calls[token] = call
        return token, call

    def _leave(self, token: int, call: _Call) -> None:
        with self._lock:
            call.running = False
            self._calls.pop(token, None)
            # drop the references that can no longer matter, so finished calls are not kept alive by each other
            for other in call.beside:
                if not other.running:
                    with contextlib.suppress(ValueError):
                        other.beside.remove(call)

    def _snapshot(self, workdir: Path, label: str) -> Snapshot | None:
        try:
            return snapshot(workdir, by_stat=True)  # contents read only where stat data cannot vouch for them
        except Exception as exc:  # noqa: BLE001 - recording must never stop the agent from working
            log.warning("%s: cannot take a snapshot of %s: %s (its changes will not be recorded)", label, workdir, exc)
            return None

    def _record(
        self, call: _Call, before: Snapshot | None, workdir: Path, path: Path, label: str, *, keep_empty: bool
    ) -> None:
        """Capture the changes since ``before``, keep this call's own, and save them at ``path``."""
        if before is None:
            self._discard(path)
            return
        try:
            changes = capture_changes(workdir, before)
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: cannot capture the changes in %s: %s (no change file)", label, workdir, exc)
            self._discard(path)
            return
        with self._lock:  # attributed and published at once: a sibling sees each change as someone's, once
            mine = self._attribute(call, changes)
            call.captured = {c.path: c for c in mine}
            # Outside its own files, while an attempt whose work is not known yet still runs, a change may be
            # that attempt's: it is kept here (the first to finish takes it; the other will leave it out).
            unknown = [o.label for o in call.beside if o.captured is None]
        unsure = sorted(c.path for c in mine if unknown and not _covers(call.scope, c.path))
        if unsure:
            log.debug("%s: %s may be the work of %s (recorded here)", label, ", ".join(unsure),
                      ", ".join(unknown))  # fmt: skip
        if not mine and not keep_empty:
            self._discard(path)
        else:
            try:
                write_changes(path, mine)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: cannot save its changes at %s: %s (no change file)", label, path, exc)
                self._discard(path)  # (a re-drive stops at this attempt, so what it left out of others is moot)

    @staticmethod
    def _attribute(call: _Call, changes: list[Change]) -> list[Change]:
        """The changes taken to be this call's: a running sibling's declared files and a finished one's record are
        not (outside this call's own files)."""
        mine = []
        for c in changes:
            if not _covers(call.scope, c.path):
                owner = next((o for o in call.beside if _owns(o, c)), None)
                if owner is not None:
                    log.debug("%s: %s %s is %s's", call.label, c.op, c.path, owner.label)
                    continue
            mine.append(c)
        return mine

    @staticmethod
    def _discard(path: Path | None) -> None:
        """Remove a change file left at ``path`` by an earlier attempt with this number (a rewound one)."""
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
