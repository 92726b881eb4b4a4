"""The loop the chart drives: one step function per session state, and the phases outside implementing.

The one idea it holds: a session moves only through its chart, one step per state, each step's outcome a trigger.

Each non-final state of ``statecharts/session.yaml`` has one step (:data:`STEPS`). A step
acts (agents, gates, git) and returns the trigger its outcome calls for; the loop checks
that the chart allows that trigger from the state the session is in and fires it, which
puts it in the log before the session moves.  No code here compares state names to decide
what comes next: the session's state picks the step, the step's outcome picks the trigger,
the chart says whether it may happen.

The decisions are the engine's (architecture, tech stack, gates, ordering, subagents,
recovery, refinement); the steps only carry out what was decided.  Implementing, recovering
and rolling back are in :mod:`maestro.run.implement`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from maestro.agents.base import Plan, PlanRequest
from maestro.config.model import Config
from maestro.core.errors import ChartError, MaestroError, TransitionNotAllowed
from maestro.core.records import CheckpointRecord, Decision, DecisionRequest, Evidence, GateResult, Option
from maestro.core.text import counted
from maestro.decide.capabilities import capabilities
from maestro.decide.strategies.environment import worktree_env
from maestro.gates.acceptance import acceptance
from maestro.gates.commands import GateCommand, gate_commands
from maestro.gates.running import run_gate
from maestro.gates.traceability import Traceability, trace
from maestro.git.checkpoints import Checkpointer
from maestro.model.chart import Chart, load_chart
from maestro.model.guards import failing_gates
from maestro.plan.load import load_tasks
from maestro.plan.prd import Prd, load_prd
from maestro.plan.tasks import TaskGraph
from maestro.report import write_html_report
from maestro.run.implement import Implementer
from maestro.run.limits import LIMIT_OPTIONS, limit_reached
from maestro.run.pauses import DECISION_REQUEST, Pause, jsonable, write_request_file
from maestro.run.refinement import Refiner, failed_acceptance
from maestro.session import Session
from maestro.store.filestore import atomic_write
from maestro.store.views import final_report

if TYPE_CHECKING:
    from maestro.run.runner import Runner

__all__ = [
    "BY_HAND_ONLY",
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "HUMAN_MOVES",
    "STEPS",
    "RunOutcome",
    "SessionRun",
    "Step",
    "check_steps",
]

log = logging.getLogger("maestro.run")

EXIT_CODES = {"completed": 0, "failed": 1, "aborted": 1, "paused": 3}
EXIT_INTERRUPTED = 130
TRACEABILITY = "traceability.md"
GATES = ("tests", "lint", "typecheck", "security")


@attrs.frozen
class Step:
    """The step of one session state: what it does (returning a trigger), and whether limits are checked first.

    Limits (and a Ctrl-C) are checked before a step that starts a phase; not inside the
    recovery ladder (recovering, rolling back, and implementing when it comes back from them),
    which finishes what the phase began: the group's own checks (before each attempt) apply.
    """

    run: Callable[[SessionRun], str | tuple[str, str]]  # the trigger, or (the trigger, the reason)
    may: tuple[str, ...]  # the triggers it may return: each declared from its state (checked when STEPS is built)
    check_limits: bool = True
    groups: bool = False  # it runs task groups: a pause in it may leave a group half done


@attrs.frozen
class RunOutcome:
    """How a run ended: the session, its final (or paused) state, and the command line's exit code."""

    session_id: str
    state: str
    exit_code: int
    report: Path | None = None
    request_file: Path | None = None


def _in_groups(state: str | None) -> bool:
    """Whether a pause in ``state`` may have left a task group half done (its work is then redone whole)."""
    step = STEPS.get(state or "")
    return step is not None and step.groups


class SessionRun:
    """One run of one session: the runner's working state, rebuilt from the folder and the log on resume."""

    def __init__(
        self,
        runner: Runner,
        session: Session,
        checkpointer: Checkpointer,
        prd: Prd | None,
        graph: TaskGraph | None,
        *,
        resumed: bool = False,
    ) -> None:
        self.runner = runner
        self.session = session
        self.cp = checkpointer
        self.prd = prd
        self.graph = graph
        self.workdir: Path = Path(checkpointer.workdir)
        self.chart = load_chart("session")
        check_steps(self.chart)  # the loop and the chart agree, or nothing runs
        state = session.state
        self.last_checkpoint = state.checkpoints[-1].n if state.checkpoints else 0
        self.resumed = resumed
        self.traceability: Traceability | None = None
        self.acceptance_failed: dict[str, str] | None = None  # the last validation's failing acceptance (refinement)
        self.refiner = Refiner(self)
        self.gate_decisions: list[Decision | None] = [d for d in state.decisions if d.kind == "gate"]
        self.work = Implementer(self)
        if resumed:
            self.load_saved()

    @property
    def config(self) -> Config:
        return self.runner.config

    def load_saved(self) -> None:
        """The PRD and the task graph as the session saved them (its folder), and the runs of its tasks."""
        prd_file, tasks_file = self.session.dir / "prd.md", self.session.dir / "tasks.yaml"
        if self.prd is None and prd_file.is_file():
            self.prd = load_prd(prd_file)
        if self.graph is None and tasks_file.is_file():
            self.graph = load_tasks(tasks_file, requirement_ids=self.prd.requirement_ids if self.prd else None)
        if self.graph is not None:
            self.work.prepare(self.graph, quiet=True)
            self.work.restore_subagents()
            if self.session.state.iteration > 0:
                self.work.refinement_feedback()

    # -- the log ------------------------------------------------------------------------------------------------
    def say(self, text: str, *, note: bool = False) -> None:
        """A ``[Maestro]`` line for the console; with ``note``, also in the log (events say the rest)."""
        log.info("[Maestro] %s", text)
        if note:
            self.session.note(text)

    def fire(self, trigger: str, reason: str | None = None) -> str:
        before = self.session.current
        after = self.session.fire(trigger, reason=reason)
        self.say(f"{before} → {after} ({trigger})" + (f": {reason}" if reason else ""))
        return after

    def record(self, decision: Decision) -> Decision:
        """Record a decision in the session's log; return it as recorded (with its id and time)."""
        recorded = self.session.record(decision).payload()
        assert isinstance(recorded, Decision)
        return recorded

    def decide(self, decision: Decision) -> Decision:
        """Record a decision and say it."""
        recorded = self.record(decision)
        self.say(f"Decision ({recorded.kind}): {recorded.choice} — {recorded.rationale}")
        return recorded

    def record_checkpoint(self, rec: CheckpointRecord) -> CheckpointRecord:
        """Put a checkpoint the checkpointer made in the log (once: a resume may be handed one already there)."""
        if not any(c.n == rec.n for c in self.session.state.checkpoints):
            self.session.record(rec)
        self.last_checkpoint = max(self.last_checkpoint, rec.n)
        return rec

    @staticmethod
    def restores_itself(state: str) -> bool:
        """Whether the step of ``state`` puts the tree back at the last checkpoint itself when resumed."""
        return _in_groups(state)

    # -- the loop -----------------------------------------------------------------------------------------------
    def go(self) -> RunOutcome:
        """Drive the session from the state it is in to a final state or a pause, one step at a time."""
        try:
            while True:
                state = self.session.current
                if self.chart.is_final(state):
                    return self.ended(state)
                step = STEPS.get(state)
                if step is None:
                    raise MaestroError(
                        f"session {self.session.id} cannot continue from state {state!r}: "
                        "it waits for an answer (`maestro resume`)"
                    )
                if step.check_limits and not self.work.needs:  # back from recovering: the group goes on
                    self.check_limits()
                outcome = step.run(self)
                trigger, reason = outcome if isinstance(outcome, tuple) else (outcome, None)
                if trigger not in step.may:
                    raise MaestroError(f"session {self.session.id}: the {state} step returned {trigger!r}, "
                                       f"not one of its moves ({', '.join(step.may)})")  # fmt: skip
                allowed = self.session.triggers()
                if trigger not in allowed:
                    raise MaestroError(
                        f"session {self.session.id}: the {state} step asked for {trigger!r}, which "
                        f"the session chart does not allow from {state} ({', '.join(allowed)})"
                    )
                self.fire(trigger, reason)
        except Pause as pause:
            return self.pause(pause)

    def check_limits(self, *, between_steps: bool = True) -> None:
        """Pause (a decision request) at a Ctrl-C or when a limit is reached."""
        if between_steps and self.runner.interrupted.is_set():
            raise Pause(
                "Interrupted (Ctrl-C): continue, hand off as is, or abort?",
                ("continue", "handoff", "abort"),
                {"interrupted": True},
            )
        reached = limit_reached(self.session.state, self.runner.clock.now())
        if reached is not None:
            name, text = reached
            raise Pause(f"Limit reached: {text}", LIMIT_OPTIONS, {"limit": name, "detail": text})

    # -- the steps outside implementing ----------------------------------------------------------------------------
    def start(self) -> str:
        return "start"

    def plan(self) -> str:
        """The PRD (given, or the agent's plan) and the decisions about the repository."""
        s = self.session
        if self.prd is None:
            plan = self.plan_with_agent()
            assert plan is not None  # exhausted: a pause
            self.prd = plan.prd
            if self.graph is None:
                self.graph = plan.graph
            self.record_plan(self.graph)  # before the plan is saved: a resume that finds it finds its decision
        assert self.prd is not None
        if not (s.dir / "prd.md").is_file():  # a given PRD was saved with the session
            atomic_write(s.dir / "prd.md", self.prd.text)
        self.save_graph()
        self.approval_of_commands()
        self.say(f"PRD: {self.prd.title or 'untitled'} — {len(self.prd.requirements)} requirements")
        self.decide_repo("architecture", feature=s.state.request)
        for capability in capabilities(s.state.request + " " + " ".join(r.text for r in self.prd.requirements)):
            self.decide_repo("tech_stack", capability=capability)
        self.gate_decisions = [self.decide_repo("gate", gate=g) for g in GATES]
        self.decide_repo("environment", worktree=self.workdir, main=self.runner.store.repo)
        return "plan_ready"

    def record_plan(self, graph: TaskGraph) -> Decision:
        """The ``plan`` decision: the agent's plan taken, with every command it runs (each task's acceptance
        commands, which an agent wrote) as evidence, before any of them runs."""
        commands = [(t.id, c) for t in graph for c in t.acceptance]
        listed = "; ".join(f"{tid}: {c}" for tid, c in commands[:10]) + (" …" if len(commands) > 10 else "")
        evidence = tuple(Evidence("command", c, f"task {tid}") for tid, c in commands)
        runs = f"; the commands it runs: {listed}" if commands else "; it runs no command"
        return self.decide(
            Decision(
                "plan",
                "Which plan does the session follow, and which commands does it run?",
                "the agent's plan",
                f"{self.runner.agent.name} planned {len(graph)} tasks{runs}",
                options=(Option("the agent's plan", 1.0, evidence),),
                decided_by="agent",
            )
        )

    def approval_of_commands(self) -> None:
        """With ``planning.approve_commands``, a pause until a human approves the commands of the agent's plan."""
        if not self.config.planning.approve_commands:
            return
        decisions = list(self.session.state.decisions)
        planned = (i for i, d in enumerate(decisions)
                   if d.kind == "plan" or (d.kind == "refinement_plan" and d.decided_by == "agent"))  # fmt: skip
        at = max(planned, default=None)
        if at is None:
            return  # the user's own tasks.yaml: their commands
        plan = decisions[at]
        if any(d.kind == "answer" and d.choice == "approve" for d in decisions[at + 1 :]):
            return  # approved
        commands = [e.value for o in plan.options for e in o.evidence if e.kind == "command"]
        if not commands:
            return
        shown = "; ".join(commands[:5]) + (f" and {len(commands) - 5} more" if len(commands) > 5 else "")
        raise Pause(
            f"Approve the {len(commands)} commands the agent's plan runs: {shown}",
            ("approve", "abort"),
            {"phase": "planning", "commands": [f"{e.detail}: {e.value}" for o in plan.options for e in o.evidence]},
        )

    def plan_with_agent(
        self, ask: Callable[[str], PlanRequest] | None = None, *, exhausted: Literal["pause"] | None = "pause"
    ) -> Plan | None:
        """The agent's plan, through the recovery ladder: a failed or refused plan (a bad ``tasks_yaml``, say) is
        asked for again with the error as feedback while the engine's ``recovery`` decision says so; else a pause
        (with ``exhausted=None``: None).  ``ask`` makes the request from the feedback (default: the session's
        feature request)."""
        s, rec = self.session, self.config.recovery
        retries = alternatives = 0
        feedback = ""

        def session_request(context: str) -> PlanRequest:
            return PlanRequest(s.state.request, self.workdir, context=context,
                               timeout_s=self.runner.agent_timeout_s, session_dir=s.dir)  # fmt: skip

        ask = ask or session_request
        while True:
            outcome = self.runner.agent.plan(ask(feedback))
            s.record(outcome.result)
            if outcome.plan is not None:
                return outcome.plan
            result = outcome.result
            failure_class = result.failure_class or "implementation"
            d = self.decide(
                self.runner.engine.decide(
                    "recovery", state=s.state, task_id="planning", failure_class=failure_class,
                    summary=result.summary, retries=retries, max_retries=rec.max_retries, alternatives=alternatives,
                    max_alternatives=rec.max_alternatives, stuck=False, last_checkpoint=self.last_checkpoint,
                    next_delay_s=rec.backoff.delay(retries + 1), spent_usd=s.state.spent_usd,
                    budget_usd=s.state.limits.budget_usd, on_exhausted="pause",
                )
            )  # fmt: skip
            if d.choice == "retry":
                retries += 1
                self.runner.sleep(rec.backoff.delay(retries))
            elif d.choice == "alternative":
                alternatives += 1
                feedback = (f"The previous plan was refused: {result.summary}\n"
                            "Answer again with a plan that fixes this.")  # fmt: skip
            elif exhausted is None:
                return None
            else:
                raise Pause(
                    f"Planning failed: {result.summary}",
                    ("retry", "abort"),
                    {"phase": "planning", "failure_class": failure_class},
                )

    def decide_repo(self, kind: str, **params: Any) -> Decision | None:
        """A decision about the repository; one the scan cannot make is noted, not fatal."""
        try:
            d = self.runner.engine.decide(kind, state=self.session.state, repo=self.workdir, **params)
        except MaestroError as exc:  # a repository the scan cannot read, an unknown capability
            self.session.note(f"{kind}: no decision: {exc}")
            return None
        return self.decide(d)

    def environment(self) -> Decision | None:
        """The session's last ``environment`` decision (None: none was made)."""
        return next((d for d in reversed(self.session.state.decisions) if d.kind == "environment"), None)

    def env_for(
        self, worktree: Path, *, whole: bool = False, decision: Decision | Literal["latest"] | None = "latest"
    ) -> dict[str, str] | None:
        """The variables commands in ``worktree`` need to use its code (the ``environment`` decision); with
        ``whole``, the whole environment for a process (None: the process inherits maestro's unchanged).

        A worker thread passes the ``decision`` its coordinator read (:meth:`environment`): the session's state is
        the coordinating thread's to read."""
        d = self.environment() if decision == "latest" else decision
        extra = worktree_env(d, worktree) if d is not None else {}
        if not extra:
            return None
        return {**os.environ, **extra} if whole else extra

    def generate_tasks(self) -> str:
        if self.graph is None:
            raise Pause(
                "There is no task graph: give one with --tasks, or plan with an agent that can plan",
                ("abort",),
                {"phase": "generating_tasks"},
            )
        self.save_graph()
        cap = self.config.parallel.max_workers
        self.decide(self.runner.engine.decide("task_ordering", graph=self.graph, max_parallel=cap))
        self.work.prepare(self.graph)
        return "tasks_ready"

    def save_graph(self) -> None:
        """``tasks.yaml`` in the session folder, unless it is there (a given graph is saved with the session)."""
        path = self.session.dir / "tasks.yaml"
        if self.graph is not None and not path.is_file():  # a resume after planning needs it
            atomic_write(path, self.graph.to_yaml())

    def validate(self) -> str:
        """Every gate, then the requirement traceability matrix."""
        assert self.prd is not None and self.graph is not None
        s = self.session
        for name, (command, required, source) in self.gate_command_map().items():
            gate = self.config.gates.get(name)
            g = run_gate(
                name,
                command,
                required=required,
                workdir=self.workdir,
                env=self.env_for(self.workdir, whole=True),
                transcript_dir=s.dir / "gates",
                timeout_s=gate.timeout_s if gate is not None else 1800.0,
            )
            g = self.unchanged_by(g)
            s.record(g)
            self.say(f"Gate {name} ({source}): {g.status} — {g.summary}")
        succeeded = {t.id for t in self.graph if s.task_state(t.id) == "succeeded"}
        passed = self.check_acceptance()
        matrix = trace(self.prd, self.graph, succeeded, passed)
        self.traceability = matrix
        atomic_write(s.dir / TRACEABILITY, matrix.to_markdown())
        g = matrix.as_gate()
        s.record(g)
        self.say(f"Requirements: {g.summary}")
        return "validation_done"

    def gate_command_map(self) -> dict[str, GateCommand]:
        """Which command each gate runs and whether it is required (a human's answer for a missing test tool)."""
        commands = gate_commands(self.config.gates, [d for d in self.gate_decisions if d is not None])
        return self.without_a_test_tool(commands)

    def check_acceptance(self) -> dict[str, bool]:
        """Every succeeded task's acceptance commands on the final head: task → passed; the failures kept in
        :attr:`acceptance_failed` (for refinement)."""
        assert self.graph is not None
        env = self.env_for(self.workdir, whole=True)
        results = {
            t.id: acceptance(t, self.workdir, timeout_s=self.runner.acceptance_timeout_s, env=env)
            for t in self.graph
            if self.session.task_state(t.id) == "succeeded"
        }
        self.acceptance_failed = {
            tid: failed_acceptance([(c.command, c.exit_code, c.output_tail) for c in r.failed])
            for tid, r in results.items()
            if not r.passed
        }
        return {tid: r.passed for tid, r in results.items()}

    def without_a_test_tool(self, commands: dict[str, GateCommand]) -> dict[str, GateCommand]:
        """A required tests gate with no command (none configured, none detected) cannot pass: rather than refine
        round after round for nothing, ask a human once — name a test command, or go on without tests."""
        tests = commands.get("tests")
        if tests is None or tests.command is not None or not tests.required:
            return commands
        answer = next((d for d in reversed(self.session.state.decisions)
                       if d.kind == "answer" and d.question.startswith(NO_TEST_TOOL)), None)  # fmt: skip
        if answer is None:
            raise Pause(
                f'{NO_TEST_TOOL}: the required tests gate cannot pass. Answer `command --note "<the command>"` '
                "to use one, or `proceed` to go on without tests",
                ("command", "proceed", "abort"),
                {"phase": "validating", "gate": "tests"},
            )
        if answer.choice == "command":
            return {**commands, "tests": GateCommand(answer.rationale.strip(), True, f"a human ({answer.id})")}
        return {**commands, "tests": GateCommand(None, False, f"none: a human said to proceed without ({answer.id})")}

    def unchanged_by(self, gate: GateResult) -> GateResult:
        """A gate may not change the result unseen: what it changed (a fixer, a formatter) is discarded and named,
        and a required gate that changed files fails."""
        changed, kept = self.cp.discard_changes(f"what gate {gate.name} changed")
        if not changed:
            return gate
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        note = f"it changed {len(changed)} files ({shown}): discarded, kept at {kept}"
        status = "failed" if gate.required else gate.status
        return attrs.evolve(gate, status=status, summary=f"{note}; {gate.summary}" if gate.summary else note)

    def review(self) -> str:
        """The refinement decision, carried out: hand off, refine, give up, or ask a human."""
        state = self.session.state
        skipped = sorted(t for t, ts in state.tasks.items() if ts.state == "skipped")
        found = self.refiner.found() if failing_gates(state.gates) else None
        d = self.runner.engine.decide(
            "refinement",
            state=state,
            gates=tuple(state.gates),
            iteration=state.iteration,
            max_iterations=state.limits.max_iterations,
            skipped=tuple(skipped),
            undone=tuple(t for t, ts in state.tasks.items() if ts.state not in ("succeeded", "skipped")),
            on_exhausted=self.config.recovery.on_exhausted,
            actionable=found is None or bool(found),
            more_to_do=found is not None and bool(found.broken or found.uncovered),
        )
        failing = list(failing_gates(state.gates))
        if d.choice == "ask":
            self.record(d)
            question = (f"Requirements are not met because tasks were skipped ({', '.join(skipped)})" if skipped
                        else f"Required gates fail ({', '.join(failing)}) and no refinement can change that: "
                        f"{d.rationale}")  # fmt: skip
            raise Pause(
                f"{question}: hand off as is, or abort?",
                ("handoff", "abort"),
                {"skipped": skipped, "failing_gates": failing},
            )
        self.decide(d)
        if d.choice == "stop":
            raise Pause(
                f"Limit reached: required gates still fail after {state.iteration} iterations "
                f"(max_iterations {state.limits.max_iterations}): {', '.join(failing)}",
                LIMIT_OPTIONS,
                {"limit": "max_iterations", "failing_gates": failing},
            )
        return d.choice  # handoff, refine or give_up

    def refine(self) -> str:
        """The next iteration: what validation found turned into work (:mod:`maestro.run.refinement`)."""
        return self.refiner.refine()

    def hand_off(self) -> str:
        return "complete"  # the report is written when the session has ended (:meth:`ended`)

    # -- ending, pausing, answering ----------------------------------------------------------------------------------
    def ended(self, state: str) -> RunOutcome:
        report = self.write_report()
        self.clean_up()
        if state == "completed":
            self.say(f"Completed on branch maestro/{self.session.id}. Report: {report}")
            self.say(f"To take the work into your branch: maestro land {self.session.id}")
        return RunOutcome(self.session.id, state, EXIT_CODES.get(state, 1), report=report)

    def clean_up(self) -> None:
        """The session has ended: its worktrees go (the branch, its tags and the attempt refs stay)."""
        try:
            removed = self.work.pool.remove_all()
        except (MaestroError, OSError) as exc:
            self.session.note(f"cleanup: the session's worktrees could not all be removed: {exc}")
            return
        if removed:
            self.say(f"Removed the session's {counted(len(removed), 'worktree')} (branch, tags and attempt refs stay)")

    def write_report(self) -> Path:
        """``final-report.md`` with the net changes of the session and the requirement matrix."""
        changes = self.cp.diff(0, self.last_checkpoint) if self.last_checkpoint else ()
        saved = self.session.dir / TRACEABILITY
        requirements = self.traceability.to_markdown() if self.traceability is not None else None
        if requirements is None and saved.is_file():  # validated before a resume
            requirements = saved.read_text(encoding="utf-8")
        path = self.session.dir / "final-report.md"
        state, events = self.session.state, self.session.events
        atomic_write(path, final_report(state, changes=changes, requirements=requirements, events=events))
        try:  # the page is a view: a problem drawing it is said, and the session goes on
            write_html_report(self.runner.store, self.session.id)
        except (MaestroError, OSError, ValueError) as exc:
            log.warning("session %s: the HTML report was not written: %s", self.session.id, exc)
        return path

    def pause(self, pause: Pause) -> RunOutcome:
        s = self.session
        paused_from = s.current
        context = pause.context
        if _in_groups(paused_from):
            context = {**context, "mid_group": bool(context.get("mid_group"))}
        req = DecisionRequest(pause.question[:4000], pause.options, paused_from, jsonable(context))
        s.record(req)  # in the log before the pause: nothing of the question is lost
        self.fire("pause", reason=pause.question[:500])
        path = write_request_file(s.dir, s.id, req)
        self.say(f"Paused: {pause.question} (options: {', '.join(pause.options)}; see {path})")
        self.write_report()
        code = EXIT_INTERRUPTED if pause.context.get("interrupted") else EXIT_CODES["paused"]
        return RunOutcome(s.id, "paused", code, report=s.dir / "final-report.md", request_file=path)

    def answered(self, choice: str) -> RunOutcome:
        """Act on a paused session's answer, then drive it on.

        A pause inside a group puts the tree back at the last checkpoint and the
        group's unfinished tasks back to pending (its work is only ever kept
        whole); a pause between steps keeps what a human changed meanwhile, as a
        checkpoint.  Both happen before the ``resume`` move, so a crash after it
        finds them done.
        """
        s = self.session
        req = s.state.decision_request
        context = dict(req.context) if req is not None else {}
        paused_from = s.state.paused_from
        roots, doomed = self.work.skip_targets(context) if choice == "skip" else ([], [])  # refused before anything
        self.say(f"Resuming session {s.id} with {choice!r} (paused from {paused_from})", note=True)
        if choice == "abort":
            self.fire("abort", reason="a human answered abort")
            (s.dir / DECISION_REQUEST).unlink(missing_ok=True)
            return self.go()
        if _in_groups(paused_from) and context.get("mid_group", True):
            self.work.reconcile()
            self.resumed = False
        else:
            self.keep_changes_made_while_paused()
        if choice == "handoff":
            for t in self.graph or ():
                if s.task_state(t.id) not in ("succeeded", "skipped"):
                    s.fire_task(t.id, "skip", reason="not done: handed off as it stands")
            self.fire("accept", reason="a human accepted the work as it stands")
            (s.dir / DECISION_REQUEST).unlink(missing_ok=True)
            return self.go()
        if doomed:
            self.work.skip(roots, doomed)
        try:
            self.fire("resume", reason=f"answer: {choice}")
        except TransitionNotAllowed as exc:
            raise MaestroError(f"session {s.id} cannot resume: {exc}") from exc
        (s.dir / DECISION_REQUEST).unlink(missing_ok=True)  # answered: no longer a question (the log keeps it)
        return self.go()

    def keep_changes_made_while_paused(self) -> None:
        """What a human changed in the tree during the pause becomes a checkpoint (a pause between steps)."""
        rec = self.cp.checkpoint("changes made while paused", state=self.session.current)
        if rec is not None:
            self.record_checkpoint(rec)
            self.say(f"Checkpoint {rec.n}: the changes made while paused ({len(rec.files)} files)", note=True)


NO_TEST_TOOL = "No test command was configured or found in the repository"

STEPS: dict[str, Step] = {
    "created": Step(SessionRun.start, ("start",)),
    "planning": Step(SessionRun.plan, ("plan_ready",)),
    "generating_tasks": Step(SessionRun.generate_tasks, ("tasks_ready",)),
    "implementing": Step(lambda run: run.work.implement(), ("implementation_done", "error"), groups=True),
    "recovering": Step(lambda run: run.work.recover(), ("rollback", "retry", "give_up"), check_limits=False),
    "rolling_back": Step(lambda run: run.work.roll_back(), ("rolled_back",), check_limits=False),
    "validating": Step(SessionRun.validate, ("validation_done",)),
    "reviewing": Step(SessionRun.review, ("handoff", "refine", "give_up")),
    "refining": Step(SessionRun.refine, ("tasks_ready",)),
    "handoff": Step(SessionRun.hand_off, ("complete",), check_limits=False),
}
"""Session state → its step.  ``paused`` has none: only an answer (``maestro resume``) moves it.

The moves no step makes are a human's or a limit's: ``pause``, ``resume``, ``accept``, ``abort``
(:data:`HUMAN_MOVES`).  :func:`check_steps` proves the table against the chart.
"""

HUMAN_MOVES = frozenset({"pause", "resume", "accept", "abort"})

BY_HAND_ONLY = frozenset({("validating", "error"), ("refining", "error")})
"""Moves the chart declares for sessions driven by hand (``Session.fire`` from the library) that the built-in
loop never makes: its validating and refining steps have nothing to recover (a gate that cannot run is a failed
or skipped gate).  :func:`check_steps` holds this set to exactly the chart's unfired moves."""


def check_steps(chart: Chart) -> None:
    """Every step's triggers are declared from its state, and every move of the chart is a step's or a human's.

    Raises :class:`~maestro.ChartError` naming the first mismatch (a chart edited without the loop, or the
    loop without the chart).
    """
    states = {s.name for s in chart.states if not s.final}
    if set(STEPS) != states - {"paused"}:
        raise ChartError(f"session chart: states without a step: {sorted(states - {'paused'} - set(STEPS))}, "
                         f"steps without a state: {sorted(set(STEPS) - states)}")  # fmt: skip
    moves = {(e.source, e.trigger) for e in chart.edges()}
    fired: set[tuple[str, str]] = set()
    for state, step in STEPS.items():
        declared = {trigger for source, trigger in moves if source == state}
        for trigger in step.may:
            if trigger not in declared:
                raise ChartError(f"session chart: the {state} step may fire {trigger!r}, not declared from {state}")
            fired.add((state, trigger))
    unfired = {(s, tr) for s, tr in moves if s in STEPS and tr not in HUMAN_MOVES and (s, tr) not in fired}
    for state, trigger in sorted(unfired - BY_HAND_ONLY):
        raise ChartError(f"session chart: {trigger!r} from {state} is fired by no step")
    for state, trigger in sorted(BY_HAND_ONLY - unfired):
        raise ChartError(f"session chart: {trigger!r} from {state} is listed as by hand only, but is not")
