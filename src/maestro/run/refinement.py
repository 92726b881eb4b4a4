"""Refinement that plans: what the next iteration does, from what the last validation found.

A failed validation round says what is wrong; refinement turns each finding into work, and only
into work that can change it:

* a task that did not succeed (failed, given up, never started) runs again;
* a task whose work validation found broken (its acceptance commands fail on the final head) runs
  again, told which command fails;
* a required gate that failed (not one that was skipped: a missing tool is no agent's work) becomes a
  **fix task** ``fix-<gate>-<iteration>`` that carries the gate's command and its output (ANSI-stripped,
  head and tail) and runs after every other task of the iteration; the next validation round says
  whether it fixed the gate (the gate is not its acceptance command: a test suite would run three
  times an attempt, and the iteration limit would no longer bound the work);
* a P0 or P1 requirement that no task serves (``uncovered``) becomes new tasks: the agent's planner is
  asked for them (a refinement round, :class:`~maestro.agents.PlanRequest` with ``refinement``), else one
  task ``cover-<requirement>-<iteration>`` each, with the requirement's text.

A task whose work is done and unaffected never runs again.  :func:`findings` says what a round found
(empty: no refinement can help, a human decides); :class:`RefinementPlan` is what the iteration does,
saved as ``refinement-<n>.json`` in the session folder before its decision is recorded, so that a
resume carries out the same plan without asking the agent again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from maestro.agents.base import PlanRequest
from maestro.agents.context import head_and_tail, strip_ansi
from maestro.core.errors import MaestroError, StoreError
from maestro.core.records import Decision, Evidence, GateResult, Option
from maestro.core.text import read_input
from maestro.gates.running import last_output
from maestro.plan.prd import Prd
from maestro.plan.tasks import Task, TaskGraph, parse_tasks, validate_graph
from maestro.store.filestore import atomic_write

if TYPE_CHECKING:
    from maestro.run.loop import SessionRun

__all__ = [
    "Findings",
    "RefinementPlan",
    "Refiner",
    "cover_task",
    "failed_acceptance",
    "findings",
    "fix_task",
    "gate_output",
    "load_plan",
    "merge_new_tasks",
    "plan_path",
]

BLOCKING = ("P0", "P1")
OUTPUT_LINES = (20, 40)  # the head and tail of a gate's output a fix task carries
OUTPUT_CHARS = 6000


@attrs.frozen
class Findings:
    """What a failed validation round found that work can change."""

    undone: tuple[str, ...] = ()  # tasks that did not succeed (skipped ones aside)
    broken: Mapping[str, str] = attrs.field(factory=dict)  # succeeded tasks whose acceptance fails now → why
    gates: tuple[GateResult, ...] = ()  # required gates that failed (traceability aside)
    uncovered: tuple[str, ...] = ()  # P0/P1 requirement ids no task serves

    def __bool__(self) -> bool:
        return bool(self.undone or self.broken or self.gates or self.uncovered)

    def describe(self) -> str:
        """One line: what the round found, or why nothing can be refined."""
        parts = []
        if self.undone:
            parts.append(f"tasks not done: {', '.join(self.undone)}")
        if self.broken:
            parts.append(f"tasks whose acceptance fails: {', '.join(self.broken)}")
        if self.gates:
            parts.append(f"failed gates: {', '.join(g.name for g in self.gates)}")
        if self.uncovered:
            parts.append(f"requirements no task serves: {', '.join(self.uncovered)}")
        return "; ".join(parts) or "nothing an agent can change"


def findings(
    graph: TaskGraph,
    prd: Prd | None,
    task_state: Mapping[str, str],
    gates: Sequence[GateResult],
    acceptance_failed: Mapping[str, str],
) -> Findings:
    """What the last validation round found: ``task_state`` maps each task to its state, ``gates`` is the round's
    results, ``acceptance_failed`` the succeeded tasks whose acceptance commands fail on the final head (→ the
    failing output)."""
    undone = tuple(t.id for t in graph if task_state.get(t.id, "pending") not in ("succeeded", "skipped"))
    broken = {tid: why for tid, why in acceptance_failed.items() if task_state.get(tid) == "succeeded"}
    latest = {g.name: g for g in gates}
    failed = tuple(g for g in latest.values() if g.required and g.status == "failed" and g.name != "traceability")
    served = {r for t in graph for r in t.requirements}
    uncovered = tuple(
        r.id for r in (prd.requirements if prd is not None else ()) if r.priority in BLOCKING and r.id not in served
    )
    return Findings(undone, broken, failed, uncovered)


def gate_output(transcripts: Path, name: str) -> str:
    """The last run of gate ``name``'s output (:func:`~maestro.gates.running.last_output`), ANSI-stripped, head and
    tail kept ("" when there is none)."""
    text = last_output(transcripts, name)
    return head_and_tail(strip_ansi(text), head=OUTPUT_LINES[0], tail=OUTPUT_LINES[1], limit=OUTPUT_CHARS).strip()


def fix_task(gate: GateResult, command: str | None, output: str, iteration: int, after: Sequence[str]) -> Task:
    """The task that makes a failed required gate pass: its command and output in the description; it runs after
    the tasks ``after``."""
    lines = [f"The required {gate.name} gate failed in the last validation: {strip_ansi(gate.summary) or gate.status}."]
    if command:
        lines.append(f"Its command: `{command}`")
    if output:
        lines += ["Its output (head and tail):", "", output]
    lines += ["", "Change the code so that the gate passes; do not weaken or skip the gate's checks."]
    return Task(
        f"fix-{_slug(gate.name)}-{iteration}",
        f"Make the {gate.name} gate pass",
        "\n".join(lines),
        category="fix",
        depends_on=tuple(after),
        priority="P1",
    )


def cover_task(requirement: str, text: str, priority: str, iteration: int) -> Task:
    """The task maestro plans itself for a requirement no task serves (when the agent plans none)."""
    short = " ".join(text.split())
    short = short if len(short) <= 80 else short[:79] + "…"
    return Task(
        f"cover-{_slug(requirement)}-{iteration}",
        f"Implement {requirement}: {short}",
        f"Requirement {requirement} of the PRD is not served by any task yet:\n\n{text.strip()}",
        requirements=(requirement,),
        priority=priority,
    )


def merge_new_tasks(graph: TaskGraph, new: Sequence[Task], iteration: int) -> tuple[Task, ...]:
    """``new`` (an agent's tasks) made to fit ``graph``: an id that is taken gets ``-r<iteration>`` (and its
    dependents follow), a dependency on a task of ``graph`` is kept."""
    taken = set(graph.ids)
    ids: list[str] = []  # by position: two new tasks of one id (cover-fr-1-1 from FR-1.1 and FR-1-1) get two ids
    for t in new:
        tid = t.id
        while tid in taken:
            tid = f"{t.id}-r{iteration}" if tid == t.id else f"{tid}-r{iteration}"
        ids.append(tid)
        taken.add(tid)
    renamed = {t.id: tid for t, tid in reversed(list(zip(new, ids, strict=True)))}  # a dependency: the first of an id
    return tuple(
        attrs.evolve(t, id=tid, depends_on=tuple(renamed.get(d, d) for d in t.depends_on), group=None)
        for t, tid in zip(new, ids, strict=True)
    )


@attrs.frozen
class RefinementPlan:
    """What refinement iteration ``iteration`` does: the tasks that run again (→ why), the new tasks, and who
    planned the new requirement tasks (``agent``, ``maestro`` or ``""`` when there are none)."""

    iteration: int
    reopen: Mapping[str, str] = attrs.field(factory=dict)
    tasks: tuple[Task, ...] = ()
    planned_by: str = ""

    @property
    def commands(self) -> list[tuple[str, str]]:
        """(task, command) for every acceptance command of the new tasks."""
        return [(t.id, c) for t in self.tasks for c in t.acceptance]

    def describe(self) -> str:
        parts = []
        if self.reopen:
            parts.append(f"again: {', '.join(self.reopen)}")
        fixes = [t.id for t in self.tasks if t.category == "fix"]
        others = [t.id for t in self.tasks if t.category != "fix"]
        if fixes:
            parts.append(f"fix tasks: {', '.join(fixes)}")
        if others:
            by = f" (planned by {'the agent' if self.planned_by == 'agent' else 'maestro'})" if self.planned_by else ""
            parts.append(f"new tasks{by}: {', '.join(others)}")
        return "; ".join(parts) or "nothing"

    def save(self, session_dir: Path, graph: TaskGraph) -> Path:
        """Write the plan with ``graph``, the task graph it makes (every task, the new ones last)."""
        path = plan_path(session_dir, self.iteration)
        doc = {
            "iteration": self.iteration,
            "reopen": dict(self.reopen),
            "planned_by": self.planned_by,
            "new": [t.id for t in self.tasks],
            "graph_yaml": graph.to_yaml(),
        }
        atomic_write(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return path


def plan_path(session_dir: Path, iteration: int) -> Path:
    """Where refinement iteration ``iteration``'s plan is saved."""
    return session_dir / f"refinement-{iteration}.json"


def load_plan(
    session_dir: Path, iteration: int, requirement_ids: Collection[str] | None, existing: Collection[str] = ()
) -> tuple[RefinementPlan, TaskGraph] | None:
    """The plan saved for ``iteration`` and the graph it makes (None: none was saved); a damaged file, or one that
    does not fit the session (a task of ``existing`` missing from its graph, a new or reopened task that is not in
    it) is a :class:`StoreError`."""
    path = plan_path(session_dir, iteration)
    try:
        raw = read_input(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the refinement plan: {exc.strerror or exc}") from exc
    try:
        doc: Any = json.loads(raw)
        reopen, new, by, text = doc["reopen"], doc["new"], doc["planned_by"], doc["graph_yaml"]
        if type(doc["iteration"]) is not int or doc["iteration"] != iteration:
            raise ValueError(f"it is not iteration {iteration}'s plan")
        if not isinstance(reopen, dict) or not all(type(k) is str and type(v) is str and v for k, v in reopen.items()):
            raise ValueError("'reopen' is not a map of task ids to reasons")
        if not isinstance(new, list) or not all(type(t) is str for t in new) or type(by) is not str:
            raise ValueError("'new' is not a list of task ids, or 'planned_by' is not text")
        if type(text) is not str:
            raise ValueError("'graph_yaml' is not text")
        graph = parse_tasks(text, str(path), requirement_ids=requirement_ids)
        missing = sorted(set(existing) - set(graph.ids))
        unknown = sorted(t for t in [*reopen, *new] if t not in graph.ids)
        if missing or unknown:
            raise ValueError(f"its graph lacks tasks {', '.join(missing or unknown)}")
        tasks = tuple(graph[tid] for tid in new)
        return RefinementPlan(iteration, dict(reopen), tasks, by), graph
    except (ValueError, KeyError, TypeError, MaestroError) as exc:
        raise StoreError(f"{path}: not a refinement plan maestro wrote: {exc}") from None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def failed_acceptance(checks: Sequence[tuple[str, int | None, str]]) -> str:
    """Why a task's acceptance fails, from its failed checks (command, exit code, output tail)."""
    return "\n".join(
        f"its acceptance command `{command}` fails on the final head "
        f"({'timed out' if code is None else f'exit status {code}'}):\n{strip_ansi(tail).strip()}".rstrip()
        for command, code, tail in checks
    )


class Refiner:
    """Refinement for one run: what a validation round found, the plan of the next iteration, carried out."""

    def __init__(self, run: SessionRun) -> None:
        self.run = run

    def found(self) -> Findings:
        """What the last validation round found (its acceptance checks run again after a resume)."""
        run = self.run
        s = run.session
        assert run.graph is not None
        if run.acceptance_failed is None:
            run.check_acceptance()
        assert run.acceptance_failed is not None
        states = {t.id: s.task_state(t.id) for t in run.graph}
        return findings(run.graph, run.prd, states, s.state.gates, run.acceptance_failed)

    def refine(self) -> str:
        """Plan the iteration (or take the plan a crashed run saved), record it, then carry it out."""
        run, s = self.run, self.run.session
        assert run.graph is not None
        n = s.state.iteration
        saved = load_plan(s.dir, n, run.prd.requirement_ids if run.prd else None, existing=run.graph.ids)
        if saved is None:
            plan, graph = self.make_plan(n)
            plan.save(s.dir, graph)  # before its decision: a resume carries out this plan, no agent is asked again
        else:
            plan, graph = saved
        if not any(d.kind == "refinement_plan" and d.rationale.startswith(f"iteration {n}:")
                   for d in s.state.decisions):  # fmt: skip
            run.decide(self.decision(plan))
        if plan.planned_by == "agent" and plan.commands:
            run.approval_of_commands()
        if graph is not run.graph:
            run.graph = graph
            atomic_write(s.dir / "tasks.yaml", graph.to_yaml())
            run.work.prepare(graph, quiet=True)
        run.work.reopen_for_refinement(plan.reopen)
        run.acceptance_failed = None
        run.say(f"Refinement {n}: {plan.describe()}")
        return "tasks_ready"

    def make_plan(self, n: int) -> tuple[RefinementPlan, TaskGraph]:
        """What iteration ``n`` does, from what the last validation found."""
        run = self.run
        graph = run.graph
        assert graph is not None
        found = self.found()
        reopen = dict.fromkeys(found.undone, "the task did not succeed in the last iteration")
        reopen.update(found.broken)
        new: list[Task] = []
        planned_by = ""
        if found.uncovered:
            planned, planned_by = self.plan_requirements(found.uncovered, n)
            new.extend(merge_new_tasks(graph, planned, n))
        commands = run.gate_command_map()
        skipped = {t.id for t in graph if run.session.task_state(t.id) == "skipped"}
        after = [t.id for t in graph if t.id not in skipped] + [t.id for t in new]
        for g in found.gates:
            command = commands[g.name].command if g.name in commands else None
            fix = fix_task(g, command, gate_output(run.session.dir / "gates", g.name), n, after)
            new.append(merge_new_tasks(TaskGraph((*graph.tasks, *new)), [fix], n)[0])
        if new:
            graph = validate_graph((*graph.tasks, *new), source=graph.source,
                                   requirement_ids=run.prd.requirement_ids if run.prd else None)  # fmt: skip
        return RefinementPlan(n, reopen, tuple(new), planned_by), graph

    def plan_requirements(self, requirements: Sequence[str], n: int) -> tuple[list[Task], str]:
        """The tasks for requirements no task serves: the agent's planner asked (a refinement round), else one
        task each that maestro writes."""
        run = self.run
        assert run.prd is not None and run.graph is not None
        texts = {r.id: r for r in run.prd.requirements}
        request = PlanRequest(
            run.session.state.request,
            run.workdir,
            timeout_s=run.runner.agent_timeout_s,
            session_dir=run.session.dir,
            refinement=n,
            prd_markdown=run.prd.text,
            requirements=tuple(requirements),
            existing=run.graph.ids,
        )
        plan = run.plan_with_agent(lambda feedback: attrs.evolve(request, context=feedback), exhausted=None)
        if plan is not None:
            tasks = self._wanted(plan.graph, requirements)
            if tasks:
                served = {r for t in tasks for r in t.requirements}
                left = [r for r in requirements if r not in served]
                if left:
                    run.session.note(f"refinement {n}: the agent planned nothing for {', '.join(left)}: maestro's "
                                     "own task each")  # fmt: skip
                return [*tasks, *(cover_task(r, texts[r].text, texts[r].priority, n) for r in left)], "agent"
            run.session.note(f"refinement {n}: the agent's plan serves none of {', '.join(requirements)}")
        return [cover_task(r, texts[r].text, texts[r].priority, n) for r in requirements], "maestro"

    def _wanted(self, planned: TaskGraph, requirements: Sequence[str]) -> list[Task]:
        """Of the agent's plan, the new tasks that serve ``requirements`` and the new tasks they depend on.  A task
        of an id the session has, serving nothing that task does not, is the agent restating it: left out (its work
        stands, and a dependency on it is a dependency on the session's own).  One serving more is a new task whose
        id is taken (renamed by :func:`merge_new_tasks`)."""
        run = self.run
        assert run.graph is not None and run.prd is not None
        known = {r.id for r in run.prd.requirements}
        have = {t.id: set(t.requirements) for t in run.graph}
        fresh = {t.id: t for t in planned if t.id not in have or set(t.requirements) - have[t.id]}
        wanted = set(requirements)
        keep: set[str] = set()
        stack = [tid for tid, t in fresh.items() if set(t.requirements) & wanted]
        while stack:
            tid = stack.pop()
            if tid not in keep:
                keep.add(tid)
                stack.extend(d for d in fresh[tid].depends_on if d in fresh)
        return [attrs.evolve(t, requirements=tuple(r for r in t.requirements if r in known))
                for t in planned if t.id in keep]  # fmt: skip

    def decision(self, plan: RefinementPlan) -> Decision:
        """The ``refinement_plan`` decision: what runs again and why, the new tasks and the commands they run."""
        evidence = [Evidence("fact", f"again: {tid}", (why.splitlines() or [""])[0][:200])
                    for tid, why in plan.reopen.items()]  # fmt: skip
        evidence += [Evidence("fact", f"new: {t.id}", t.title[:200]) for t in plan.tasks]
        evidence += [Evidence("command", c, f"task {tid}") for tid, c in plan.commands]
        return Decision(
            "refinement_plan",
            "What does this refinement iteration do?",
            plan.describe(),
            f"iteration {plan.iteration}: {plan.describe()}; a task whose work is done and unaffected does not run",
            options=(Option(plan.describe(), 1.0, tuple(evidence)),),
            decided_by="agent" if plan.planned_by == "agent" else "policy",
        )
