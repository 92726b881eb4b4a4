"""Implementing, recovering, rolling back: the steps that run the task groups and carry out the recovery ladder.

``implementing`` runs the groups in order, each task's attempts on the scheduler
(:mod:`maestro.run.scheduler`), a checkpoint after each group.  Each failed attempt is a
``recovery`` decision of the engine (retry with backoff, roll back and take another
approach, pause, give up), recorded and then carried out.  A group that needs its tree back
(a task's alternative, or a regression of an earlier task's acceptance) ends the step with
``error``; in ``recovering`` the engine's ``session_recovery`` decision says how (roll back,
go straight back when there is nothing to undo, or give up); ``rolling_back`` restores the
last checkpoint.  Back in ``implementing`` the group runs again.

The same task failing twice in a row with the same error skips its remaining retries
(stuck detection).  A rollback restores the whole tree to the checkpoint before the group,
so the group's other tasks run again too (their earlier results stay in the log).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from maestro.agents.base import AgentRequest, Subagent
from maestro.agents.registry import Registry, discover, overrides_from_config
from maestro.core.errors import MaestroError, TransitionNotAllowed
from maestro.core.records import AgentResult, Decision
from maestro.core.text import first_line
from maestro.gates.acceptance import AcceptanceResult, acceptance
from maestro.model.guards import failing_gates
from maestro.plan.ordering import order_tasks
from maestro.plan.tasks import Task, TaskGraph
from maestro.run.pauses import Pause, guided_tasks
from maestro.run.regression import regression
from maestro.run.scheduler import Batch

if TYPE_CHECKING:
    from maestro.run.loop import SessionRun

__all__ = ["Implementer", "TaskRun"]

_VOLATILE = re.compile(r"0x[0-9a-f]+|\d+(\.\d+)?")

Outcome = tuple[AgentResult, AcceptanceResult | None]


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
    needs_rollback: bool = False
    give_up: bool = False
    chosen: bool = False


class Implementer:
    """The task groups of one session run, and the recovery ladder's steps."""

    def __init__(self, run: SessionRun) -> None:
        self.run = run
        self.runs: dict[str, TaskRun] = {}
        self.groups: tuple[tuple[str, ...], ...] = ()
        self.registry: Registry | None = None
        self.needs: list[str] = []  # the tasks of the group that needs recovering
        self.active: tuple[str, ...] = ()  # the group running (its line is said once)
        self.rolled_back = False

    # -- preparing -----------------------------------------------------------------------------------------------
    def prepare(self, graph: TaskGraph, *, quiet: bool = False) -> None:
        """The groups (the ordering is deterministic: a resume computes the same) and a run for each task."""
        ordering = order_tasks(graph, max_parallel=self.run.config.parallel.max_workers)
        self.groups = ordering.groups
        for t in graph:
            self.runs.setdefault(t.id, TaskRun(t))
        if not quiet:
            self.run.say(f"{len(graph)} tasks in {len(ordering.groups)} groups: {ordering.describe()}")

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
        """Run every group not done yet; ``error`` when one needs recovering, else ``implementation_done``."""
        run, s = self.run, self.run.session
        if run.resumed:
            self.reconcile()
            run.resumed = False
        self.after_recovery()
        todo = {tid for tid in self.runs if s.task_state(tid) not in ("succeeded", "skipped")}
        for i, whole in enumerate(self.groups, 1):
            group = tuple(t for t in whole if t in todo)
            if not group:
                continue
            if not set(group) <= set(self.active):
                self.active = group
                run.say(f"Group {i}: {', '.join(group)}", note=True)
            group = self.active  # back from recovering: the group as it started, its tasks done too
            if self.run_group(list(group)):
                give_up = [t for t in self.needs if self.runs[t].give_up]
                why = (
                    f"tasks {', '.join(give_up)} give up"
                    if give_up
                    else f"tasks {', '.join(self.needs)} need a rollback"
                )
                return "error", why
            self.active = ()
            # a checkpoint even when nothing changed: each group's end is on record (a resume starts after it)
            rec = run.cp.checkpoint(f"group {i}: {', '.join(group)}", allow_empty=True, state=s.current)
            if rec is not None:
                run.record_checkpoint(rec)
                run.say(f"Checkpoint {rec.n}: {rec.tag} ({len(rec.files)} files)")
            run.check_limits()
        return "implementation_done"

    def run_group(self, group: list[str]) -> bool:
        """Run the group's unfinished tasks; True if it needs recovering (a pause raised inside is mid-group)."""
        try:
            return self._run_group(group)
        except Pause as pause:
            pause.context["mid_group"] = True  # its unfinished work is redone on resume
            raise

    def _run_group(self, group: list[str]) -> bool:
        s = self.run.session
        pending = [t for t in group if not self.runs[t].done]
        if not pending:
            return False
        for tid in pending:
            if s.task_state(tid) in ("pending", "blocked"):
                s.fire_task(tid, "ready")
            if not self.runs[tid].chosen:
                self.runs[tid].chosen = True
                self.choose_subagent(tid)
        self.run_attempts(pending)
        self.needs = [t for t in group if self.runs[t].needs_rollback or self.runs[t].give_up]
        if self.needs:
            return True
        graph = self.run.graph
        assert graph is not None
        earlier = [t for t in graph if t.id not in group and s.task_state(t.id) == "succeeded"]
        found = regression(
            self.run.workdir,
            [self.runs[t].task for t in group],
            earlier,
            workers=self.run.config.parallel.max_workers,
            timeout_s=self.run.runner.agent_timeout_s,
        )
        if found is None:
            return False
        line, feedback = found
        self.run.say(line, note=True)
        self.regressed(group, feedback)
        self.needs = list(group)
        return True

    def regressed(self, group: list[str], feedback: str) -> None:
        """The recovery decision for each task of a group that broke earlier work, carried out (or a pause)."""
        decisions = {t: self.ask_recovery(t, "regression", _first(feedback)) for t in group}
        stop = next((d for d in decisions.values() if d.choice == "pause"), None)
        if stop is not None:
            self.run.decide(stop)
            raise Pause(
                f"Group {', '.join(group)} keeps breaking earlier work: {_first(feedback)}",
                ("retry", "skip", "abort", "guidance"),
                {"group": group, "output": feedback[-2000:]},
            )
        for t, d in decisions.items():
            self.run.decide(d)
            tr = self.runs[t]
            if d.choice == "give_up":
                tr.give_up = True
                continue
            tr.feedback = feedback
            tr.approach = "keep every earlier task's acceptance commands passing"
            tr.alternatives += 1

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
            next_delay_s=rec.backoff.delay(tr.retries + 1),
            spent_usd=state.spent_usd,
            budget_usd=state.limits.budget_usd,
            on_exhausted=rec.on_exhausted,
        )

    # -- attempts ------------------------------------------------------------------------------------------------
    def run_attempts(self, tids: list[str]) -> None:
        """Run every task in ``tids`` (concurrently) until each succeeded or needs recovering; pause on critical."""
        run, s = self.run, self.run.session

        def budget_left() -> float | None:
            state = s.state
            return None if state.limits.budget_usd is None else state.limits.budget_usd - state.spent_usd

        def limit() -> Pause | None:
            try:
                run.check_limits(between_steps=False)
            except Pause as p:
                return p
            return None

        batch: Batch[Outcome] = Batch(
            workers=run.config.parallel.max_workers,
            start=self.start,
            settle=self.settle,
            limit=limit,
            budget_left=budget_left,
        )
        batch.run([t for t in tids if s.task_state(t) in ("ready", "retrying")])

    def start(self, tid: str, allowance: float | None) -> Callable[[], Outcome]:
        """Begin an attempt of ``tid`` (its ``start`` move) and return the work for a worker thread."""
        run = self.run
        run.session.fire_task(tid, "start")
        attempt = run.session.state.tasks[tid].attempts
        tr = self.runs[tid]
        req = AgentRequest(
            tr.task,
            run.workdir,
            budget_usd=allowance,
            attempt=attempt,
            subagent=tr.subagent,
            approach=tr.approach,
            feedback=tr.feedback,
            timeout_s=run.runner.agent_timeout_s,
            session_dir=run.session.dir,
        )
        run.say(f"Task {tid}: attempt {attempt}" + (f" ({tr.approach})" if tr.approach else ""))
        return lambda: self.attempt(req)

    def attempt(self, request: AgentRequest) -> Outcome:
        """In a worker thread: the agent's attempt, then the task's acceptance commands."""
        result = self.run.runner.agent.run(request)
        if result.status != "succeeded":
            return result, None
        return result, acceptance(request.task, request.workdir, timeout_s=self.run.runner.agent_timeout_s)

    def settle(self, tid: str, outcome: Outcome) -> bool | Pause:
        """Record an attempt's outcome and carry out the recovery decision; True to run it again now."""
        run, s = self.run, self.run.session
        result, acc = outcome
        s.record(result)
        tr = self.runs[tid]
        cost = f", ${result.cost_usd:.4f}" if result.cost_usd else ""
        if result.status == "succeeded" and acc is not None and acc.passed:
            s.fire_task(tid, "succeed")
            tr.done = True
            run.say(f"Task {tid}: succeeded ({result.summary}{cost})")
            return False
        if result.status == "succeeded":  # the agent finished but an acceptance command failed
            assert acc is not None
            failure_class = "test_failure"
            output = "\n".join(f"$ {c}\n{out}" for c, code, out in acc.results if code != 0)
            summary = f"acceptance failed: {_first(output)}"
        else:
            failure_class = result.failure_class or "transient"
            output = result.summary
            summary = result.summary
        s.fire_task(tid, "fail", reason=f"{failure_class}: {summary}"[:500])
        run.say(f"Task {tid}: failed ({failure_class}): {summary}")
        signature = hashlib.sha256(f"{failure_class}:{_normalise(output)}".encode()).hexdigest()[:12]
        stuck = signature == tr.last_signature
        tr.last_signature = signature
        d = run.decide(self.ask_recovery(tid, failure_class, summary, stuck=stuck))
        if d.choice == "retry":
            tr.retries += 1
            refused = self.retry_task(tid)
            if refused is not None:
                return refused
            run.runner.sleep(run.config.recovery.backoff.delay(tr.retries))
            return True
        if d.choice == "rollback_and_alternative":
            why = "the same error twice in a row" if stuck else failure_class
            tr.alternatives += 1
            tr.needs_rollback = True
            tr.feedback = output
            tr.approach = f"alternative {tr.alternatives}: the previous attempt failed ({why}); take another approach"
            return False
        if d.choice == "give_up":
            tr.give_up = True
            return False
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
        return Pause(
            f"Task {tid} still fails after {tr.retries} retries and {tr.alternatives} alternatives: {summary}",
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
            raise MaestroError(f"session {run.session.id} is recovering, but no group of this run needs it")
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
        """The tree back at the last checkpoint (what was there is kept in a pre-rollback ref)."""
        run = self.run
        run.cp.rollback(run.last_checkpoint)
        run.say(f"Rolled back to checkpoint {run.last_checkpoint}", note=True)
        self.rolled_back = True
        return "rolled_back"

    def after_recovery(self) -> None:
        """Back in implementing after recovering: what a rollback undid runs again, failed tasks retry."""
        if not self.needs:
            return
        s = self.run.session
        group = self.active or tuple(self.needs)
        for tid in group:
            tr = self.runs[tid]
            state = s.task_state(tid)
            # the rollback took its work too, or the group broke earlier work (it needs redoing): it runs again
            if state == "succeeded" and (self.rolled_back or tid in self.needs):
                tr.done = False
                s.fire_task(tid, "reopen")
            elif state == "failed":
                refused = self.retry_task(tid)
                if refused is not None:
                    refused.context["mid_group"] = True
                    raise refused
            tr.needs_rollback = False
        self.needs = []
        self.rolled_back = False

    # -- resuming, skipping, refining --------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """After a resume: the tree at the last checkpoint, and every task whose work is not in it pending again."""
        run, s = self.run, self.run.session
        run.cp.rollback(run.last_checkpoint)
        run.say(f"The tree is back at checkpoint {run.last_checkpoint}", note=True)
        state = s.state
        for tid, tr in self.runs.items():
            st = s.task_state(tid)
            ts = state.tasks.get(tid)
            redone = st == "succeeded" and ts is not None and ts.succeeded_seq > state.checkpoint_seq
            if st in ("ready", "failed", "retrying") or redone:
                s.fire_task(tid, "reopen", reason="redone after the resume (its work is not in a checkpoint)")
                tr.done = False
            tr.retries = tr.alternatives = 0
            tr.last_signature = None
            tr.needs_rollback = tr.give_up = False
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

    def reopen_for_refinement(self) -> None:
        """The tasks of the next iteration: what did not succeed (or all), with what validation found."""
        s, graph = self.run.session, self.run.graph
        assert graph is not None
        redo = [t.id for t in graph if s.task_state(t.id) not in ("succeeded", "skipped")]
        for tid in redo or list(graph.ids):
            if s.task_state(tid) in ("succeeded", "failed"):
                s.fire_task(tid, "reopen")
        self.refinement_feedback()

    def refinement_feedback(self) -> None:
        """Fresh rungs for every task, and for those still to do what the last validation found."""
        s = self.run.session
        latest = {g.name: g for g in s.state.gates}
        failing = failing_gates(s.state.gates)
        feedback = "\n".join(f"{n}: {latest[n].summary}" for n in failing)
        for tid, tr in self.runs.items():
            if s.task_state(tid) == "pending":
                tr.done = False
                tr.feedback = feedback or None
                tr.approach = "fix what validation found"
            tr.retries = tr.alternatives = 0  # a new iteration: every rung may be used again
            tr.last_signature = None
