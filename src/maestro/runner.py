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
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from maestro._errors import MaestroError, TransitionNotAllowed
from maestro.agents.base import Agent, AgentRequest, PlanRequest, Subagent
from maestro.config import Config
from maestro.decisions import DecisionEngine
from maestro.prd import Prd, load_prd
from maestro.records import AgentResult, Decision, Evidence, Limits, Option
from maestro.seams import Clock, IdSource, SystemClock
from maestro.session import Session
from maestro.store import Store, atomic_write
from maestro.tasks import Task, TaskGraph, load_tasks

if TYPE_CHECKING:
    from maestro.agents.registry import Registry

__all__ = ["EXIT_CODES", "RunOutcome", "Runner", "dirty_paths"]

log = logging.getLogger(__name__)

EXIT_CODES = {"completed": 0, "failed": 1, "aborted": 1, "paused": 3}
DECISION_REQUEST = "decision-request.json"


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
    ``clock`` and ``ids`` make the session's log reproducible.
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
        self.agent = agent
        self.clock = clock or SystemClock()
        self.ids = ids
        self.sleep = sleep
        self.engine = engine or DecisionEngine(decisions_dir=store.decisions_dir)
        self.agent_timeout_s = agent_timeout_s

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
        from maestro.checkpoints import Checkpointer

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
        limits = Limits(
            max_iterations=self.config.limits.max_iterations,
            # every iteration may use every rung again
            max_task_attempts=(1 + rec.max_retries + rec.max_alternatives) * (self.config.limits.max_iterations + 1),
        )
        kwargs: dict[str, Any] = {"clock": self.clock, "guards": self.engine.guards(), "limits": limits}
        if self.ids is not None:
            kwargs["ids"] = self.ids
        session = Session.create(self.store, request, **kwargs)
        try:
            checkpointer = Checkpointer(repo, session, worktree=worktree, clock=self.clock)
            checkpointer.start()  # records checkpoint 0 in the session
            self._log(session, f"Session {session.id} started on branch maestro/{session.id}")
            return _Run(self, session, checkpointer, prd, graph).go()
        finally:
            session.close()

    @staticmethod
    def _log(session: Session, text: str) -> None:
        log.info("[Maestro] %s", text)
        session.note(text)


class _Run:
    """One run of one session (the runner's working state)."""

    def __init__(
        self, runner: Runner, session: Session, checkpointer: Any, prd: Prd | None, graph: TaskGraph | None
    ) -> None:
        self.r = runner
        self.s = session
        self.cp = checkpointer
        self.prd = prd
        self.graph = graph
        self.workdir: Path = Path(checkpointer.workdir)
        self.runs: dict[str, _TaskRun] = {}
        self.last_checkpoint = 0
        self.registry: Registry | None = None

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

    def decide(self, decision: Decision) -> Decision:
        recorded = self.s.record(decision).payload()
        assert isinstance(recorded, Decision)
        self.say(f"Decision ({recorded.kind}): {recorded.choice} — {recorded.rationale}")
        return recorded

    # -- the phases -------------------------------------------------------------------------------------------
    def go(self) -> RunOutcome:
        try:
            self.fire("start")
            self.plan()
            self.fire("plan_ready")
            ordering = self.generate_tasks()
            self.fire("tasks_ready")
            groups: tuple[tuple[str, ...], ...] | None = ordering
            while groups is not None:
                self.implement(groups)
                self.fire("implementation_done")
                self.validate()
                self.fire("validation_done")
                groups = self.review()
                if groups is not None:
                    self.fire("tasks_ready")
            return self.finish()
        except _Pause as pause:
            return self.pause(pause)

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
        atomic_write(self.s.dir / "prd.md", self.prd.text)
        self.say(f"PRD: {self.prd.title or 'untitled'} — {len(self.prd.requirements)} requirements")
        self.decide_repo("architecture", feature=self.s.state.request)
        for capability in _capabilities(self.s.state.request + " " + " ".join(r.text for r in self.prd.requirements)):
            self.decide_repo("tech_stack", capability=capability)
        self.gate_decisions = [self.decide_repo("gate", gate=g) for g in ("tests", "lint", "typecheck", "security")]

    def decide_repo(self, kind: str, **params: Any) -> Decision | None:
        try:
            d = self.r.engine.decide(kind, session=self.s, repo=self.workdir, **params)
        except MaestroError as exc:  # a repository the scan cannot read, an unknown capability: noted, not fatal
            self.s.note(f"{kind}: no decision: {exc}")
            return None
        self.say(f"Decision ({d.kind}): {d.choice} — {d.rationale}")
        return d

    def generate_tasks(self) -> tuple[tuple[str, ...], ...]:
        if self.graph is None:
            raise _Pause(
                "There is no task graph: give one with --tasks, or plan with an agent that can plan",
                ("abort",),
                {"phase": "generating_tasks"},
            )
        atomic_write(self.s.dir / "tasks.yaml", self.graph.to_yaml())
        from maestro.ordering import order_tasks

        cap = self.r.config.parallel.max_workers
        self.decide(self.r.engine.decide("task_ordering", graph=self.graph, max_parallel=cap))
        ordering = order_tasks(self.graph, max_parallel=cap)
        self.groups = ordering.groups
        for t in self.graph:
            self.runs[t.id] = _TaskRun(t)
        self.say(f"{len(self.graph)} tasks in {len(ordering.groups)} groups: {ordering.describe()}")
        return ordering.groups

    # -- implementing -----------------------------------------------------------------------------------------
    def implement(self, groups: Iterable[tuple[str, ...]]) -> None:
        for i, group in enumerate(groups, 1):
            self.say(f"Group {i}: {', '.join(group)}", note=True)
            self.run_group(list(group))
            rec = self.cp.checkpoint(f"group {i}: {', '.join(group)}")  # recorded in the session by the checkpointer
            if rec is not None:
                self.last_checkpoint = rec.n
                self.say(f"Checkpoint {rec.n}: {rec.tag} ({len(rec.files)} files)")

    def run_group(self, group: list[str]) -> None:
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

    def choose_subagent(self, tid: str) -> None:
        from maestro.agents.registry import discover

        try:
            if self.registry is None:  # .claude/ is read once a run, not once a task
                self.registry = discover(self.workdir)
            mapping, triggers = _subagent_overrides(self.r.config)
            d = self.r.engine.decide(
                "subagent",
                session=self.s,
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
        self.runs[tid].subagent = self.registry.subagent(d.choice)
        self.say(f"Task {tid}: {self.runs[tid].task.title} → {d.choice}")

    def run_attempts(self, tids: list[str]) -> None:
        """Run every task in ``tids`` (concurrently) until each succeeded or needs a rollback; pause on critical."""
        workers = max(1, self.r.config.parallel.max_workers)
        pause: _Pause | None = None
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maestro-task") as pool:
            running: dict[cf.Future[tuple[AgentResult, Any]], str] = {}

            def submit(tid: str) -> None:
                self.s.fire_task(tid, "start")
                attempt = self.s.state.tasks[tid].attempts
                tr = self.runs[tid]
                req = AgentRequest(
                    tr.task,
                    self.workdir,
                    budget_usd=self.budget_left(),
                    attempt=attempt,
                    subagent=tr.subagent,
                    approach=tr.approach,
                    feedback=tr.feedback,
                    timeout_s=self.r.agent_timeout_s,
                    session_dir=self.s.dir,
                )
                self.say(f"Task {tid}: attempt {attempt}" + (f" ({tr.approach})" if tr.approach else ""))
                running[pool.submit(self.attempt, req)] = tid

            for tid in tids:
                if self.s.task_state(tid) in ("ready", "retrying"):
                    submit(tid)
            while running:
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    tid = running.pop(fut)
                    result, acc = fut.result()
                    again = self.settle(tid, result, acc)
                    if isinstance(again, _Pause):
                        pause = pause or again
                    elif again and pause is None:
                        submit(tid)
        if pause is not None:
            raise pause

    def budget_left(self) -> float | None:
        """What is left of ``limits.budget_usd`` after every agent call so far (None: no budget)."""
        budget = self.r.config.limits.budget_usd
        if budget is None:
            return None
        spent = sum(r.cost_usd or 0.0 for r in self.s.state.agent_results)
        return budget - spent

    def attempt(self, request: AgentRequest) -> tuple[AgentResult, Any]:
        """In a worker thread: the agent's attempt, then the task's acceptance commands."""
        from maestro.gates import acceptance

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
        from maestro.gates import acceptance

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
        from maestro.gates import acceptance, gate_commands, run_gate, trace

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
        g = matrix.as_gate()
        self.s.record(g)
        self.say(f"Requirements: {g.summary}")

    def review(self) -> tuple[tuple[str, ...], ...] | None:
        """None to hand off; else the groups of a refinement iteration."""
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
            return None
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
                f"Required gates still fail after {state.iteration} iterations: {', '.join(failing)}",
                ("retry", "handoff", "abort"),
                {"failing_gates": failing},
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
        assert self.graph is not None
        feedback = "\n".join(f"{n}: {latest[n].summary}" for n in failing)
        redo = [t.id for t in self.graph if self.s.task_state(t.id) != "succeeded"] or list(self.graph.ids)
        for tid in redo:
            tr = self.runs[tid]
            tr.done = False
            tr.feedback = feedback
            tr.approach = "fix what validation found"
            st = self.s.task_state(tid)
            if st in ("succeeded", "failed"):
                self.s.fire_task(tid, "reopen")
        for tr in self.runs.values():  # a new iteration: every rung may be used again
            tr.retries = tr.alternatives = 0
            tr.last_signature = None
        wanted = set(redo)
        return tuple(g for g in (tuple(t for t in group if t in wanted) for group in self.groups) if g)

    def finish(self) -> RunOutcome:
        self.fire("handoff")
        self.fire("complete")  # the session writes a plain report at its final state; the full one follows
        report = self.write_report()
        self.say(f"Completed. Report: {report}")
        return RunOutcome(self.s.id, "completed", 0, report=report)

    def write_report(self) -> Path:
        """``final-report.md`` with the net changes of the session and the requirement matrix."""
        from maestro.views import final_report

        changes = self.cp.diff(0, self.last_checkpoint) if self.last_checkpoint else ()
        matrix = getattr(self, "traceability", None)
        path = self.s.dir / "final-report.md"
        atomic_write(
            path,
            final_report(
                self.s.state, changes=changes, requirements=matrix.to_markdown() if matrix is not None else None
            ),
        )
        return path

    def pause(self, pause: _Pause) -> RunOutcome:
        paused_from = self.s.current
        self.pause_reason = pause
        self.fire("pause", reason=pause.question[:500])
        request = {
            "session": self.s.id,
            "question": pause.question,
            "options": list(pause.options),
            "context": pause.context,
            "paused_from": paused_from,
        }
        path = self.s.dir / DECISION_REQUEST
        atomic_write(path, json.dumps(request, indent=2, ensure_ascii=False) + "\n")
        self.say(f"Paused: {pause.question} (options: {', '.join(pause.options)}; see {path})")
        self.write_report()
        return RunOutcome(self.s.id, "paused", 3, report=self.s.dir / "final-report.md", request_file=path)


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
