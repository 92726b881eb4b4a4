"""Implementing, recovering, rolling back: the scheduler, the task attempts, the merge queue and the recovery ladder.

The one idea it holds: a task's attempts, from its start in a worktree of its own to its merge or its rung on the
recovery ladder, watched for tampering.

``implementing`` starts each task as soon as all its dependencies are merged, up to
``parallel.max_workers`` at once, the ready tasks in the ordering decision's priority
(:mod:`maestro.run.scheduler`).  Each attempt runs in a pooled worktree of its own at the
integration head (the session branch), and its changes become a commit kept at
``refs/maestro/<session>/attempts/<task>/<n>``, failed or not.  A failed attempt changes
nothing else: the engine's ``recovery`` decision retries it in place (transient failures, with
backoff), starts an alternative from the current head with the failure as feedback, gives up,
or pauses.

A succeeded attempt enters the merge queue (:mod:`maestro.run.merge_queue`; in completion
order, in the coordinating thread): a three-way merge onto the session branch; a conflict is a
``merge`` decision and the task runs again on the new head with the conflicting hunks as
feedback.  The merged tree is shown in the session's integration worktree and revalidated
(the task's acceptance commands and those of the tasks merged before it, each once, several
at a time); a regression leaves the branch where it was and sends the task back onto the
ladder; otherwise the merge becomes the next checkpoint.  So no task's failure re-runs
another's work.  A task that gives up ends the step with ``error``; in ``recovering`` the
engine's ``session_recovery`` decision gives up (or, when the integration tree holds something
no checkpoint has, rolls it back first).  The same failure twice in a row (not a transient
one) skips the remaining retries (stuck detection).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from dulwich.objects import ObjectID

from maestro.agents.base import AgentRequest, Subagent
from maestro.agents.changes import changes_between, changes_path, write_changes
from maestro.agents.choosing import choose_skills
from maestro.agents.recording import RecordingAgent
from maestro.agents.registry import Registry, discover, overrides_from_config
from maestro.agents.replay import ReplayAgent
from maestro.core.errors import CheckpointError, MaestroError, StoreError, TransitionNotAllowed
from maestro.core.records import AgentResult, Decision
from maestro.core.text import counted, first_line
from maestro.gates.acceptance import AcceptanceResult, acceptance
from maestro.git.tampering import Allowance, Snapshot, TamperGuard, Tampering
from maestro.git.worktrees import Worktree, WorktreePool
from maestro.plan.ordering import order_tasks
from maestro.plan.tasks import Task, TaskGraph
from maestro.run.context import build_context
from maestro.run.executors import Executor, PlaceLost, Work, open_executor
from maestro.run.merge_queue import MergeQueue, Rejected
from maestro.run.pauses import Pause, guided_tasks
from maestro.run.refinement import load_plan
from maestro.run.remote import Remote, Returned
from maestro.run.scheduler import Batch
from maestro.session import LOG_BROKEN
from maestro.store.filestore import atomic_write

if TYPE_CHECKING:
    from maestro.run.loop import SessionRun

__all__ = ["Attempt", "Implementer", "TaskRun"]

_VOLATILE = re.compile(r"0x[0-9a-f]+|\d+(\.\d+)?")

log = logging.getLogger("maestro.run")


@attrs.frozen
class Attempt:
    """What one attempt left: the agent's result, its acceptance, and its commit on top of the base it started from
    (``worktree``: the pooled worktree it ran in, None for an attempt a Dask worker ran)."""

    result: AgentResult
    acceptance: AcceptanceResult | None
    base: ObjectID
    commit: ObjectID
    worktree: Worktree | None


def _first(text: str) -> str:
    """The first line that says something (an echoed ``$ command`` aside), at most 200 characters."""
    return first_line(text, skip="$ ", limit=200) or text.strip()[:200]


def _normalise(text: str) -> str:
    """Error text without the numbers that change between runs (addresses, timings, line numbers)."""
    return _VOLATILE.sub("#", text)[-2000:]


@attrs.define
class TaskRun:
    """What the run keeps of one task between its attempts (rebuilt from the log on resume)."""

    task: Task
    subagent: Subagent | None = None
    retries: int = 0
    alternatives: int = 0
    approach: str | None = None
    feedback: str | None = None
    last_signature: str | None = None
    done: bool = False
    give_up: bool = False
    chosen: bool = False


class Implementer:
    """The scheduler, the attempts and the merge queue of one session run, and the recovery ladder's steps."""

    def __init__(self, run: SessionRun) -> None:
        self.run = run
        self.runs: dict[str, TaskRun] = {}
        self.groups: tuple[tuple[str, ...], ...] = ()  # the planned view (the ordering decision's groups)
        self.priority: dict[str, int] = {}
        self.registry: Registry | None = None
        self.needs: list[str] = []  # the tasks that gave up (the step ends with ``error``)
        self._pool: WorktreePool | None = None
        self.queue = MergeQueue(run)
        self.guard: TamperGuard | None = None  # while attempts run: what an agent must not touch, looked at
        self._snaps: dict[str, Snapshot] = {}
        self.executor: Executor | None = None  # while attempts run: where (config's ``executor``)
        self._remote: Remote | None = None  # remote attempts: what each worker holds, kept across the run's batches
        self._sent: dict[str, tuple[ObjectID, bytes]] = {}  # task → the base and ref of its remote attempt

    def remote(self) -> Remote:
        """The coordinator's side of remote attempts (made on first use)."""
        if self._remote is None:
            self._remote = Remote(Path(self.run.cp.repo.path), self.run.session.id, clock=self.run.runner.clock)
        return self._remote

    @property
    def pool(self) -> WorktreePool:
        """The session's pool of attempt worktrees (made on first use)."""
        if self._pool is None:
            self._pool = WorktreePool(self.run.cp.repo.path, self.run.session.id, clock=self.run.runner.clock)
        return self._pool

    # -- preparing -----------------------------------------------------------------------------------------------
    def prepare(self, graph: TaskGraph, *, quiet: bool = False) -> None:
        """The planned groups and the priorities (the ordering is deterministic: a resume computes the same)."""
        ordering = order_tasks(graph, max_parallel=self.run.config.parallel.max_workers)
        self.groups = ordering.groups
        self.priority = {tid: i for i, tid in enumerate(t for g in ordering.groups for t in g)}
        for t in graph:
            self.runs.setdefault(t.id, TaskRun(t))
        if not quiet:
            self.run.say(
                f"{counted(len(graph), 'task')} in {counted(len(ordering.groups), 'group')}: {ordering.describe()}"
            )

    def restore_subagents(self) -> None:
        """The subagents the log says were chosen (a resume)."""
        state = self.run.session.state
        chosen = {d.task: d.choice for d in state.decisions if d.kind == "subagent" and d.task}
        for tid in chosen.keys() & self.runs.keys():
            self.runs[tid].chosen = True
            try:
                self.runs[tid].subagent = self._registry().subagent(chosen[tid])
            except (MaestroError, KeyError):
                self.runs[tid].subagent = None

    def _registry(self) -> Registry:
        if self.registry is None:  # .claude/ is read once a run, not once a task
            self.registry = discover(self.run.workdir)
        return self.registry

    def choose_subagent(self, tid: str) -> None:
        """The engine's subagent decision for ``tid``, recorded."""
        run = self.run
        config = run.config
        try:
            mapping, triggers = overrides_from_config({"subagents": config.subagents}) if config.subagents else ({}, {})
            d = run.runner.engine.decide(
                "subagent",
                state=run.session.state,
                repo=run.workdir,
                for_task=self.runs[tid].task,
                registry=self._registry(),
                mapping=mapping,
                triggers=triggers,
                task=tid,
            )
        except MaestroError as exc:
            run.session.note(f"subagent for {tid}: no decision: {exc}")
            return
        d = run.record(d)
        self.runs[tid].subagent = self._registry().subagent(d.choice)
        run.say(f"Task {tid}: {self.runs[tid].task.title} → {d.choice}")

    # -- implementing --------------------------------------------------------------------------------------------
    def implement(self) -> str | tuple[str, str]:
        """Run every task not done yet; ``error`` when one gave up, else ``implementation_done``."""
        run = self.run
        if run.resumed:
            self.reconcile()
            run.resumed = False
        self.after_recovery()
        try:
            self.run_attempts()
        except Pause as pause:
            pause.context["mid_group"] = True  # its unfinished work is redone on resume
            raise
        self.needs = sorted((t for t, tr in self.runs.items() if tr.give_up), key=self._rank)
        if self.needs:
            return "error", f"tasks {', '.join(self.needs)} give up"
        return "implementation_done"

    def _rank(self, tid: str) -> int:
        return self.priority.get(tid, len(self.priority))

    def ready(self) -> list[str]:
        """The tasks that may start now, best first: not done, not given up, every dependency merged."""
        s, graph = self.run.session, self.run.graph
        assert graph is not None
        out = []
        for t in graph:
            tr = self.runs[t.id]
            if tr.give_up or s.task_state(t.id) not in ("pending", "ready", "retrying", "blocked"):
                continue
            if all(s.task_state(d) == "succeeded" for d in t.depends_on):
                out.append(t.id)
        return sorted(out, key=self._rank)

    def ask_recovery(self, tid: str, failure_class: str, summary: str, *, stuck: bool = False) -> Decision:
        """The engine's ``recovery`` decision for a failure of ``tid`` (not recorded yet)."""
        tr = self.runs[tid]
        rec = self.run.config.recovery
        state = self.run.session.state
        return self.run.runner.engine.decide(
            "recovery",
            state=state,
            task=tid,
            checkpoint=self.run.last_checkpoint,
            last_checkpoint=self.run.last_checkpoint,
            task_id=tid,
            failure_class=failure_class,
            summary=summary,
            retries=tr.retries,
            max_retries=rec.max_retries,
            alternatives=tr.alternatives,
            max_alternatives=rec.max_alternatives,
            stuck=stuck,
            next_delay_s=max(rec.backoff.delay(tr.retries + 1), self._retry_after(tid)),
            spent_usd=state.spent_usd,
            budget_usd=state.limits.budget_usd,
            on_exhausted=rec.on_exhausted,
        )

    def _retry_after(self, tid: str) -> float:
        """What the last failed attempt of ``tid`` asked to wait before a retry (a rate limit's retry-after), or 0."""
        last = [r for r in self.run.session.state.agent_results if r.task == tid][-1:]
        return float(last[0].retry_after_s or 0.0) if last else 0.0

    # -- attempts ------------------------------------------------------------------------------------------------
    def run_attempts(self) -> None:
        """Run the ready tasks (concurrently) until none is ready or running; pause on critical."""
        run, s = self.run, self.run.session

        def budget_left() -> float | None:
            state = s.state
            return None if state.limits.budget_usd is None else state.limits.budget_usd - state.spent_usd

        def limit() -> Pause | None:
            try:
                run.check_limits()  # a Ctrl-C too: no new attempt starts, the running ones merge, then the pause
            except Pause as p:
                return p
            return None

        assert self.pool is not None  # made here: workers acquire from it on their own threads, and must share one
        for tid in sorted(self.runs, key=self._rank):  # decided before any agent runs: no task waits for them
            if not self.runs[tid].chosen and s.task_state(tid) not in ("succeeded", "skipped"):
                self.runs[tid].chosen = True
                self.choose_subagent(tid)
        # a re-drive replays the changes recorded in this machine's session folder: on this machine
        where = "local" if isinstance(run.runner.agent, ReplayAgent) else run.config.executor
        self.executor = open_executor(where, run.config.parallel.max_workers)
        batch: Batch[Attempt | Returned] = Batch(
            workers=run.config.parallel.max_workers,
            start=self.start,
            settle=self.settle,
            limit=limit,
            budget_left=budget_left,
            after=self.queue.advance,
            executor=self.executor,  # shut down by the batch when it ends
            lost=self.lost,
        )
        prepare = getattr(run.runner.agent, "prepare_repository", None)
        if callable(prepare):  # what an adapter writes into .git once (aider: info/exclude), before the first look
            prepare(Path(run.cp.repo.path))
        self.guard = TamperGuard(s, allowance=Allowance(user_commits=True))  # the user may commit meanwhile
        try:
            try:
                batch.run(self.ready)
            except Pause:
                self.queue.show(run.cp.head())  # a human looking at the session's tree during the pause sees its head
                raise
            found = self.guard.check(full=True)  # the whole log, once: an edit far back in it too
            if found:
                raise self.tampered(None, found) or Pause(
                    f"Something changed what agents must not touch: {found[0]}", ("retry", "abort"),
                    {"failure_class": "critical", "tampering": [str(f) for f in found]},
                )  # fmt: skip
        finally:
            self.guard.close()
            self.guard = None
            self._snaps.clear()
            self.executor.shutdown(cancel=True)  # done already, unless the batch never ran
            self.executor = None
            if self._remote is not None:
                self._remote.close()  # what each worker holds is kept for the next batch
        self.queue.show(run.cp.head())  # validation sees the session's tree at its head

    def start(self, tid: str, allowance: float | None) -> Callable[[], Attempt] | Work:
        """Begin an attempt of ``tid`` (its ``start`` move) in a worktree at the head; the work for a worker thread
        (or, on a remote executor, the shipment for a worker: :mod:`maestro.run.remote`)."""
        run, s = self.run, self.run.session
        after_failure = s.task_state(tid) == "retrying"  # a retry or an alternative (not a refinement's reopening)
        if s.task_state(tid) in ("pending", "blocked"):
            s.fire_task(tid, "ready")
        if not self.runs[tid].chosen:
            self.runs[tid].chosen = True
            self.choose_subagent(tid)
        s.fire_task(tid, "start")
        attempt = s.state.tasks[tid].attempts
        tr = self.runs[tid]
        base = self.queue.tip()  # the last merge: a checkpoint, or one as soon as this attempt has started
        guidance = s.state.guidance
        registry = self._registry()
        skills = choose_skills(tr.task, registry)
        pack = build_context(  # here, in the coordinating thread: the session's state is not the worker's to read
            tr.task,
            state=s.state,
            prd=run.prd,
            graph=run.graph,
            after_failure=after_failure,
            guidance=guidance is not None and tr.feedback == guidance.rationale,  # reconcile handed it on
            pending=[(m.task, m.n, m.files) for m in self.queue.pending],  # merged, not yet checkpoints
            skills=skills,
            skill_places={name: origin.shown for name, origin in registry.skill_origins.items()},
        )
        req = AgentRequest(
            tr.task,
            run.workdir,  # the worker's worktree, once it has one (attempt)
            budget_usd=allowance,
            attempt=attempt,
            subagent=tr.subagent,
            skills=skills,
            approach=tr.approach,
            feedback=tr.feedback,
            timeout_s=run.runner.agent_timeout_s,
            session_dir=s.dir,
            context=pack,
        )
        ref = f"refs/maestro/{s.id}/attempts/{tid}/{attempt}".encode()
        env = run.environment()
        work: Work | None = None
        if self.executor is not None and self.executor.remote:
            work = self.remote().work(self.executor, req, run.runner.agent, base=base, ref=ref, environment=env,
                                      acceptance_timeout_s=run.runner.acceptance_timeout_s)  # fmt: skip
            self._sent[tid] = (base, ref)
        where = f" on {work.where} ({self.remote().shipped[-1]:,} bytes shipped)" if work is not None else ""
        run.say(f"Task {tid}: attempt {attempt}" + (f" ({tr.approach})" if tr.approach else "") + where)
        if self.guard is not None:
            self._snaps[tid] = self.guard.snapshot(attempt_ref=ref)
        return work if work is not None else lambda: self.attempt(req, base, ref, env)

    def attempt(self, request: AgentRequest, base: ObjectID, ref: bytes, env: Decision | None = None) -> Attempt:
        """In a worker thread: a pooled worktree at ``base``, the agent's attempt in it, the task's acceptance
        commands, then the attempt's commit (the worktree is moved here, not on the coordinating thread, which
        meanwhile settles other attempts)."""
        wt = self.pool.acquire(base)
        request = attrs.evolve(request, workdir=wt.path, env=self.run.env_for(wt.path, decision=env))
        agent = self.run.runner.agent
        # A recording agent would snapshot the whole worktree before and after the agent; in a worktree of its own
        # the attempt's commit says exactly what it changed: the change file is written from it (below).
        inner = agent.inner if isinstance(agent, RecordingAgent) and request.session_dir is not None else None
        result = (inner or agent).run(request)
        acc = None
        if result.status == "succeeded":
            whole = self.run.env_for(request.workdir, whole=True, decision=env)
            acc = acceptance(request.task, request.workdir, timeout_s=self.run.runner.acceptance_timeout_s, env=whole)
        label = f"task {request.task.id} attempt {request.attempt}: {result.status}"
        commit, _ = wt.capture(base, label, ref)
        if inner is not None:
            self._record_changes(request, result, wt, base, commit)
        return Attempt(result, acc, base, commit, wt)

    def _record_changes(
        self, request: AgentRequest, result: AgentResult, wt: Worktree, base: ObjectID, commit: ObjectID
    ) -> None:
        """The attempt's change file (for a re-drive): what its commit changed on ``base``, agent and acceptance
        commands together, as merged.  Never fails the attempt: a change file that cannot be written is logged, and
        a re-drive stops at that attempt."""
        path = changes_path(
            request.session_dir, request.task.id, request.attempt, result.agent or self.run.runner.agent.name
        )
        assert path is not None
        try:
            write_changes(path, changes_between(wt.object_store, wt.tree_of(base), wt.tree_of(commit)))
        except Exception as exc:  # noqa: BLE001 - recording must never stop the work
            log.warning("task %s attempt %d: cannot record its changes at %s: %s (a re-drive stops there)",
                        request.task.id, request.attempt, path, exc)  # fmt: skip
            with contextlib.suppress(OSError):
                path.unlink()

    def intake(self, tid: str, back: Returned) -> Attempt:
        """A remote attempt come back: its objects and its commit (made here) at its ref, its files in the session."""
        base, ref = self._sent.pop(tid)
        label = f"task {tid} attempt {back.result.attempt}: {back.result.status}"
        commit = self.remote().intake(back, base=base, ref=ref, label=label, session_dir=self.run.session.dir)
        return Attempt(back.result, back.acceptance, base, commit, None)

    def lost(self, tid: str, gone: PlaceLost) -> Pause | None:
        """A remote attempt whose worker went away (or did not hold what it was taken to): a ``transient`` failure of
        the attempt, recorded with the worker, and carried out as any (a retry, after the backoff).  The attempt is
        kept as nothing done (its ref at the base's tree, an empty change file)."""
        s = self.run.session
        base, ref = self._sent.pop(tid)
        attempt = s.state.tasks[tid].attempts
        agent = self.run.runner.agent.name
        commit, where = self.remote().lost(ref, gone.place, base=base, label=f"task {tid} attempt {attempt}: lost",
                                           changes=changes_path(s.dir, tid, attempt, agent))  # fmt: skip
        summary = str(gone)[:2000]
        result = AgentResult(tid, agent, attempt, "failed", summary=summary, failure_class="transient", worker=where)
        if self.guard is not None:
            found = self.guard.check(self._snaps.pop(tid, None), commit=commit)
            if found:
                summary = "tampering: " + "; ".join(map(str, found))
                s.record(attrs.evolve(result, failure_class="critical", summary=summary[:2000]))
                return self.tampered(tid, found)
        s.record(result)
        return self.failed(tid, "transient", summary, summary)

    def settle(self, tid: str, attempt: Attempt | Returned) -> Pause | None:
        """Record an attempt's outcome: merge a success, or carry out the recovery decision for a failure."""
        s = self.run.session
        if isinstance(attempt, Returned):
            attempt = self.intake(tid, attempt)
        if attempt.worktree is not None:
            self.pool.release(attempt.worktree)
        result, acc = attempt.result, attempt.acceptance
        if self.guard is not None:
            found = self.guard.check(self._snaps.pop(tid, None), commit=attempt.commit)
            if found:
                summary = "tampering: " + "; ".join(map(str, found))
                s.record(attrs.evolve(result, status="failed", failure_class="critical", summary=summary[:2000]))
                return self.tampered(tid, found)
        s.record(result)
        cost = f", ${result.cost_usd:.4f}" if result.cost_usd else ""
        if result.status == "succeeded" and acc is not None and acc.passed:
            merged = self.queue.merge(self.runs[tid].task, attempt.base, attempt.commit)
            if isinstance(merged, Rejected):
                return self.failed(tid, merged.failure_class, merged.summary, merged.feedback)
            self.runs[tid].done = True
            self.run.say(f"Task {tid}: succeeded ({result.summary}{cost}); merged as checkpoint {merged.n} "
                         f"({counted(len(merged.files), 'file')})")  # fmt: skip
            return None
        if result.status == "succeeded":  # the agent finished but an acceptance command failed
            assert acc is not None
            output = "\n".join(f"$ {c}\n{out}" for c, code, out in acc.results if code != 0)
            return self.failed(tid, "test_failure", f"acceptance failed: {_first(output)}", output)
        return self.failed(tid, result.failure_class or "transient", result.summary, result.summary)

    def tampered(self, tid: str | None, found: list[Tampering]) -> Pause | None:
        """Something an agent must not touch changed: maestro's refs are put back from the log, and the run pauses.

        The user's refs are not put back (the message says how).  A damaged log pauses with ``abort`` as the only
        answer: such a session never completes.  A log gone or replaced stops the run (nothing more can be written).
        """
        run, s = self.run, self.run.session
        guard = self.guard
        assert guard is not None
        if guard.log_broken:  # marked, so that no resume or answer trusts what is there now
            with contextlib.suppress(OSError):
                atomic_write(s.dir / LOG_BROKEN, f"{guard.log_damage[0] if guard.log_damage else found[0]}\n")
            why = guard.log_damage[0] if guard.log_damage else found[0]
            raise StoreError(f"{s.dir / 'events.jsonl'}: the session's log was changed behind its back: {why}")
        lines = [str(f) for f in found]
        try:
            lines += [f"put back: {r}" for r in guard.restore()]
        except CheckpointError as exc:
            lines.append(f"not put back: {exc}")
        self.queue.forget()
        for line in lines:
            run.say(f"Tampering: {line}", note=True)
        if guard.log_damaged:
            if tid is not None:
                s.fire_task(tid, "fail", reason="critical: the session's log was changed by something else")
            return Pause(
                f"The session's log was changed by something other than maestro: {guard.log_damage[0]}; "
                "it cannot be trusted to complete",
                ("abort",),
                {"failure_class": "critical", "tampering": lines},
            )
        if tid is None:
            return None
        return self.failed(tid, "critical", "tampering: " + "; ".join(map(str, found)), "\n".join(lines))

    def failed(self, tid: str, failure_class: str, summary: str, output: str) -> Pause | None:
        """A failed attempt (or merge): the recovery decision, recorded and carried out; a pause when it says so."""
        run, s = self.run, self.run.session
        tr = self.runs[tid]
        s.fire_task(tid, "fail", reason=f"{failure_class}: {summary}"[:500])
        run.say(f"Task {tid}: failed ({failure_class}): {summary}")
        signature = hashlib.sha256(f"{failure_class}:{_normalise(output)}".encode()).hexdigest()[:12]
        stuck = failure_class != "transient" and signature == tr.last_signature  # a transient error may repeat
        tr.last_signature = signature
        d = run.decide(self.ask_recovery(tid, failure_class, summary, stuck=stuck))
        if d.choice == "retry":
            tr.retries += 1
            refused = self.retry_task(tid)
            if refused is None:
                # the backoff, or the retry-after of the failed attempt's result when longer
                run.runner.sleep(max(run.config.recovery.backoff.delay(tr.retries), self._retry_after(tid)))
            return refused
        if d.choice == "alternative":
            why = "the same error twice in a row" if stuck else failure_class
            tr.alternatives += 1
            tr.feedback = output
            tr.approach = f"alternative {tr.alternatives}: the previous attempt failed ({why}); take another approach"
            if failure_class == "regression":
                tr.approach = "keep every earlier task's acceptance commands passing"
            elif failure_class == "conflict":
                tr.approach = "redo the task on the current code: other tasks changed the same lines"
            return self.retry_task(tid)
        if d.choice == "give_up":
            tr.give_up = True
            return None
        if failure_class == "critical":
            return Pause(
                f"{run.runner.agent.name} cannot work: {summary}",
                ("retry", "abort"),
                {"task": tid, "failure_class": failure_class, "fix": summary},
            )
        if failure_class == "ambiguous":
            return Pause(
                f"Task {tid} needs a decision: {summary}",
                ("retry", "skip", "abort", "guidance"),
                {"task": tid, "failure_class": failure_class},
            )
        if failure_class == "regression":
            question = f"Task {tid} keeps breaking earlier work ({tr.alternatives} alternatives): {summary}"
        else:
            question = (
                f"Task {tid} still fails after {tr.retries} retries and {tr.alternatives} alternatives: {summary}"
            )
        return Pause(
            question,
            ("retry", "skip", "abort", "guidance"),
            {"task": tid, "failure_class": failure_class, "output": output[-2000:]},
        )

    def retry_task(self, tid: str) -> Pause | None:
        """Move the task to ``retrying``; a pause if its chart refuses (no attempts left)."""
        try:
            self.run.session.fire_task(tid, "retry")
        except TransitionNotAllowed as exc:
            return Pause(
                f"Task {tid} has used all its attempts ({exc.reason})", ("retry", "skip", "abort"), {"task": tid}
            )
        return None

    # -- recovering, rolling back -----------------------------------------------------------------------------------
    def recover(self) -> str:
        """The engine's ``session_recovery`` decision, carried out: ``rollback``, ``retry`` or ``give_up``."""
        run = self.run
        if not self.needs:
            raise MaestroError(f"session {run.session.id} is recovering, but no task of this run needs it")
        give_up = any(self.runs[t].give_up for t in self.needs)
        changed = give_up or run.cp.has_changes()
        d = run.decide(
            run.runner.engine.decide(
                "session_recovery",
                state=run.session.state,
                changed=changed,
                give_up=give_up,
                last_checkpoint=run.last_checkpoint,
                tasks=tuple(self.needs),
            )
        )
        return d.choice

    def roll_back(self) -> str:
        """The session's tree back at the last checkpoint (what was there is kept in a pre-rollback ref)."""
        run = self.run
        run.cp.rollback(run.last_checkpoint)
        self.queue.forget()
        run.say(f"Rolled back to checkpoint {run.last_checkpoint}", note=True)
        return "rolled_back"

    def after_recovery(self) -> None:
        """Back in implementing after recovering: the failed tasks retry."""
        if not self.needs:
            return
        for tid in self.needs:
            tr = self.runs[tid]
            if self.run.session.task_state(tid) == "failed":
                refused = self.retry_task(tid)
                if refused is not None:
                    refused.context["mid_group"] = True
                    raise refused
            tr.give_up = False
        self.needs = []

    # -- resuming, skipping, refining --------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """After a resume: the session's tree at the last checkpoint, every task whose work is not in it pending again.

        An attempt in flight at a crash is void: its task starts again from a clean worktree (a pooled worktree is
        moved to the head before each attempt, whatever the dead run left in it).
        """
        run, s = self.run, self.run.session
        run.cp.rollback(run.last_checkpoint)
        self.queue.forget()
        run.say(f"The tree is back at checkpoint {run.last_checkpoint}", note=True)
        state = s.state
        for tid, tr in self.runs.items():
            st = s.task_state(tid)
            ts = state.tasks.get(tid)
            redone = st == "succeeded" and ts is not None and ts.succeeded_seq > state.checkpoint_seq
            if st in ("ready", "running", "failed", "retrying") or redone:
                s.fire_task(tid, "reopen", reason="redone after the resume (its work is not in a checkpoint)")
                tr.done = False
            tr.retries = tr.alternatives = 0
            tr.last_signature = None
            tr.give_up = False
        self.needs = []
        state = s.state
        if state.guidance is not None:
            for tid in guided_tasks(state, list(self.runs)):
                tr = self.runs[tid]
                tr.approach = "follow the human's guidance"
                tr.feedback = state.guidance.rationale

    def skip_targets(self, context: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """The request's task (or group's unfinished tasks) and every task that depends on them."""
        s, graph = self.run.session, self.run.graph
        named = context.get("task")
        roots = [named] if isinstance(named, str) else [t for t in context.get("group") or () if isinstance(t, str)]
        if graph is None or not roots or any(r not in graph.ids for r in roots):
            raise MaestroError(
                f"session {s.id}: 'skip' needs a paused task or group, and this request "
                "names none: answer another option"
            )
        roots = [r for r in roots if s.task_state(r) != "succeeded"] or roots
        return roots, [t.id for t in graph if t.id in roots or any(r in graph.ancestors(t.id) for r in roots)]

    def skip(self, roots: list[str], doomed: list[str]) -> None:
        """Skip these tasks (recorded, before resuming): ``roots`` by a human, the others as their dependents."""
        s = self.run.session
        for t in doomed:
            st = s.task_state(t)
            if st in ("succeeded", "skipped"):
                continue
            if st not in ("pending", "ready", "failed", "retrying", "blocked"):
                s.fire_task(t, "reopen")
            why = "skipped by a human" if t in roots else f"depends on skipped {', '.join(roots)}"
            s.fire_task(t, "skip", reason=why)
        self.run.say(f"Skipped: {', '.join(doomed)}", note=True)

    def reopen_for_refinement(self, reopen: Mapping[str, str]) -> None:
        """The tasks of the next iteration: those in ``reopen`` (→ why each runs again) run again, told why; the new
        tasks are pending; every other task's work is done and unaffected, and stays merged."""
        s = self.run.session
        for tid in reopen:
            if s.task_state(tid) in ("succeeded", "failed"):
                s.fire_task(tid, "reopen")
        self.refinement_feedback(reopen)

    def refinement_feedback(self, reopen: Mapping[str, str] | None = None) -> None:
        """Fresh rungs for every task, and for those that run again why (the plan saved for the iteration, on a
        resume)."""
        s = self.run.session
        if reopen is None:
            graph = self.run.graph.ids if self.run.graph is not None else ()
            saved = load_plan(s.dir, s.state.iteration, self.run.prd.requirement_ids if self.run.prd else None, graph)
            reopen = saved[0].reopen if saved is not None else {}
        for tid, tr in self.runs.items():
            if s.task_state(tid) == "pending" and tid in reopen:
                tr.done = False
                tr.feedback = reopen[tid] or None
                tr.approach = "fix what validation found"
            tr.retries = tr.alternatives = 0  # a new iteration: every rung may be used again
            tr.last_signature = None
