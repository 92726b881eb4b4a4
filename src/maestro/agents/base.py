"""The agent protocol: what maestro hands a coding agent, and what it gets back.

maestro does not write code itself.  For each task it builds an
:class:`AgentRequest` — the task, the chosen subagent and skills, the attempt,
for an alternative attempt an approach hint and the previous failure's output,
the working directory, a timeout, the remaining budget and the attempt's context
pack (:mod:`maestro.agents.context`) — and an
:class:`Agent` returns an :class:`~maestro.core.records.AgentResult`: a status, a
failure class, a summary, cost and tokens where the agent reports them, the
duration, and the path of the raw transcript in the session directory.

Failure classes drive recovery (issue 7's ladder):

``transient``       retry with backoff (rate limit, network, overloaded, timeout)
``implementation``  the agent worked but did not finish (max turns, gave up): try another approach
``test_failure``    the work is there but an acceptance command fails: try another approach
``critical``        the agent cannot work at all (not logged in, no credit, executable missing,
                    a permission the configuration refuses): pause for a human at once
``ambiguous``       the agent needs a decision only a human can make: pause and ask

Planning (:meth:`Agent.plan`) asks for structured output with two string
fields, ``prd_markdown`` and ``tasks_yaml``, and validates both
(:func:`validate_plan`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from maestro.agents.context import (
    ContextPack,
    decisions_section,
    dependencies_section,
    feedback_section,
    requirements_section,
    skills_section,
)
from maestro.core.errors import AgentError, PlanError
from maestro.core.records import AgentResult
from maestro.core.text import MAX_INPUT_BYTES
from maestro.plan.prd import Prd, parse_prd
from maestro.plan.tasks import Task, TaskGraph, parse_tasks

__all__ = [
    "PLAN_SCHEMA",
    "PLAN_TASK",
    "Agent",
    "AgentError",
    "AgentRequest",
    "ContextPack",
    "Plan",
    "PlanOutcome",
    "PlanRequest",
    "Skill",
    "Subagent",
    "plan_outcome",
    "plan_prompt",
    "task_prompt",
    "transcript_paths",
    "validate_plan",
]


PLAN_TASK = "maestro.plan"
"""The task id planning results are recorded under (``maestro.`` ids are reserved: :mod:`maestro.plan.tasks`)."""


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Subagent:
    """A Claude Code subagent (``.claude/agents/*.md``): its body is the system prompt."""

    name: str
    description: str = ""
    prompt: str = ""
    tools: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    model: str | None = None
    path: str | None = None

    def to_agents_json(self) -> dict[str, Any]:
        """The ``--agents`` JSON entry for Claude Code: ``{"description", "prompt", "tools"?, "model"?}``."""
        out: dict[str, Any] = {"description": self.description or self.name, "prompt": self.prompt or self.description}
        if self.tools:
            out["tools"] = list(self.tools)
        if self.model:
            out["model"] = self.model
        return out


@attrs.frozen
class Skill:
    """A skill (``.claude/skills/<name>/SKILL.md``)."""

    name: str
    description: str = ""
    path: str | None = None


def _skills(value: Iterable[Skill]) -> tuple[Skill, ...]:
    return tuple(value)


def _env_ok(_inst: object, _attr: object, value: Mapping[str, str] | None) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise AgentError(f"AgentRequest.env: a mapping of variable names to strings, not {value!r}")


@attrs.frozen
class AgentRequest:
    """One attempt at one task.

    ``approach`` and ``feedback`` are set for an alternative attempt: a hint at
    another way, and the output of the failure before (the prompt keeps its head and tail).
    ``session_dir`` is where transcripts go (``<session_dir>/agents/``); without
    it nothing is saved.  ``budget_usd`` is what is left of the session's budget
    (None: no limit); adapters that can cap spending pass it on.  ``env`` holds
    extra environment variables for the agent's process, laid over the
    adapter's own (for a worktree: :func:`maestro.decide.strategies.environment.worktree_env`).
    ``context`` is the attempt's context pack (:mod:`maestro.agents.context`): what the prompt tells the agent
    beyond the task (None: the task alone, as a request made outside a session).
    """

    task: Task
    workdir: Path = attrs.field(converter=Path)
    attempt: int = 1
    subagent: Subagent | None = None
    skills: tuple[Skill, ...] = attrs.field(default=(), converter=_skills)
    approach: str | None = None
    feedback: str | None = None
    timeout_s: float = 1800.0
    budget_usd: float | None = None
    session_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    env: Mapping[str, str] | None = attrs.field(default=None, validator=_env_ok)
    context: ContextPack | None = None


@attrs.frozen
class PlanRequest:
    """A request to plan: the feature request, with what maestro knows of the repository.

    A refinement round (``refinement`` > 0) asks for the tasks that cover ``requirements`` (PRD ids no task
    serves yet): ``prd_markdown`` is the session's PRD, ``existing`` the ids of the tasks the graph has.  The
    answer has the same two fields; its ``tasks_yaml`` holds the new tasks only.
    """

    request: str
    workdir: Path = attrs.field(converter=Path)
    context: str = ""
    timeout_s: float = 1800.0
    budget_usd: float | None = None
    session_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    refinement: int = 0
    prd_markdown: str = ""
    requirements: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    existing: tuple[str, ...] = attrs.field(default=(), converter=_strs)


@attrs.frozen
class Plan:
    """A validated plan: the PRD and the task graph, with their texts as the agent wrote them."""

    prd_markdown: str
    tasks_yaml: str
    prd: Prd
    graph: TaskGraph


@attrs.frozen
class PlanOutcome:
    """What planning returned: the agent's result, and the plan when it produced a valid one."""

    result: AgentResult
    plan: Plan | None = None


@runtime_checkable
class Agent(Protocol):
    """A coding agent.  ``name`` goes into every result (``claude``, ``codex``, ``scripted`` …)."""

    @property
    def name(self) -> str:
        """The agent's name, as results and transcripts carry it."""
        ...

    def run(self, request: AgentRequest) -> AgentResult:
        """Work on one task in ``request.workdir``; never raise for the agent's own failures."""
        ...

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """Write a PRD and a task graph for ``request.request``."""
        ...


# -- prompts ------------------------------------------------------------------------------------------------------


def task_prompt(request: AgentRequest) -> str:
    """The prompt for one task.  Its first line is ``Task <id>: <title>``; a NUL character is written ``\\0``.

    With a context pack (``request.context``) it carries the PRD text of the task's requirements, the decisions
    that concern it, what the tasks it depends on changed and where the chosen skills are; without one, the
    requirement ids and the skills' names.  A previous failure's output is shown ANSI-stripped, its failing
    commands and tests named, its head and tail kept (:func:`maestro.agents.context.feedback_section`).  The
    template is in ``docs/agents.md`` ("The context pack").
    """
    t = request.task
    pack = request.context
    parts = [f"Task {t.id}: {t.title}"]
    if t.description.strip():
        parts.append(t.description.strip())
    if pack is not None and pack.requirements:
        parts.append(requirements_section(pack.requirements))
    elif t.requirements:
        parts.append(f"Requirements this task serves: {', '.join(t.requirements)}.")
    if t.files:
        parts.append(f"Files you are expected to touch: {', '.join(t.files)}.")
    if t.acceptance:
        lines = "\n".join(f"    {c}" for c in t.acceptance)
        parts.append(f"When you are done, each of these commands must exit 0 in the repository:\n{lines}")
    if pack is not None:
        parts += [decisions_section(pack.decisions), dependencies_section(pack.dependencies)]
    if request.subagent is not None:
        parts.append(f"Use the {request.subagent.name} subagent for this task.")
    if pack is not None and pack.skills:
        parts.append(skills_section(pack.skills))
    elif request.skills:
        names = ", ".join(s.name for s in request.skills)
        parts.append(f"Skills that apply: {names}.")
    if request.attempt > 1:
        retry = f"This is attempt {request.attempt}; the previous attempt failed."
        if request.approach:
            retry += f" Take another approach: {request.approach}"
        parts.append(retry)
    if pack is not None:
        parts.append(
            feedback_section(request.feedback or "", pack.previous, failure=pack.after_failure, guidance=pack.guidance)
        )
    elif request.feedback:
        parts.append(feedback_section(request.feedback, failure=request.attempt > 1))
    parts.append("Work only in this repository. Do not commit: maestro checkpoints the work.")
    return _visible_nul("\n\n".join(p for p in parts if p) + "\n")


PLAN_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "prd_markdown": {"type": "string", "description": "the PRD: markdown with YAML front matter"},
        "tasks_yaml": {"type": "string", "description": "the task graph: a tasks.yaml version 1 document"},
    },
    "required": ["prd_markdown", "tasks_yaml"],
    "additionalProperties": False,
}
"""The JSON schema of the planning answer (``--json-schema`` for Claude Code, ``--output-schema`` for Codex)."""


def plan_prompt(request: PlanRequest) -> str:
    """The planning prompt: the feature request and the two formats the answer must use (a refinement round: the
    requirements to cover, the PRD, the tasks there are)."""
    if request.refinement:
        first = (
            f"Refinement round {request.refinement} of this feature request for the repository in the current "
            f"directory:\n\n{request.request.strip()}\n\nNo task serves these requirements of its PRD yet: "
            f"{', '.join(request.requirements)}. Plan the tasks that implement them, on top of the work done so far "
            f"(the tasks there are: {', '.join(request.existing) or 'none'}). Answer with the PRD unchanged and a "
            "tasks_yaml holding only the new tasks: new ids, each listing the requirements it serves, depending only "
            f"on each other.\n\nThe PRD:\n\n{request.prd_markdown.strip()}"
        )
    else:
        first = f"Plan this feature request for the repository in the current directory:\n\n{request.request.strip()}"
    parts = [
        first,
        "Answer with JSON holding two strings: prd_markdown and tasks_yaml.",
        "prd_markdown is a PRD: markdown with YAML front matter (prd.version, prd.feature_name, prd.status: "
        "draft) whose priorities.requirements list holds each requirement as {id: FR-1, text: ..., priority: "
        "P0..P3}, followed by the document body with a '## Functional Requirements' table "
        "(| ID | Requirement | Priority | Notes |).",
        "tasks_yaml is a task graph: 'version: 1' and a 'tasks' list; each task has id, title, description, "
        "category, requirements (PRD ids it serves), depends_on (task ids), risk (low|medium|high), "
        "priority (P0..P3) and acceptance (shell commands that must exit 0 when the task is done).",
    ]
    if request.context.strip():
        parts.append(f"What maestro found in the repository:\n{request.context.strip()}")
    return _visible_nul("\n\n".join(parts) + "\n")


def _visible_nul(prompt: str) -> str:
    """``prompt`` with each NUL character written ``\\0``: no command-line argument can hold one (a test that
    printed binary data, in the previous failure's output, must not stop the next attempt from starting)."""
    return prompt.replace("\0", "\\0")


def validate_plan(answer: Any, source: str = "the planner's answer") -> Plan:
    """Check a planning answer (a mapping, or its JSON text) and return the parsed plan.

    The PRD must read, the graph must validate, and every requirement a task
    names must be in the PRD.  Errors are :class:`~maestro.PlanError` naming
    which of the two fields is wrong and where.
    """
    if isinstance(answer, str):
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError as exc:
            raise PlanError(f"not JSON: {exc}", path=source) from None
        except ValueError:  # int() refused the digits of a number
            raise PlanError(f"not JSON maestro reads: a number of more than {sys.get_int_max_str_digits():,} digits",
                            path=source) from None  # fmt: skip
        except (RecursionError, MemoryError):
            raise PlanError("not JSON maestro reads: nested too deeply", path=source) from None
    if not isinstance(answer, Mapping):
        raise PlanError("expected an object with prd_markdown and tasks_yaml", path=source)
    for key in ("prd_markdown", "tasks_yaml"):
        if not isinstance(answer.get(key), str) or not answer[key].strip():
            raise PlanError("missing or empty", path=source, field=key)
        if len(answer[key]) > MAX_INPUT_BYTES // 4 and len(answer[key].encode("utf-8", "replace")) > MAX_INPUT_BYTES:
            raise PlanError(f"too large: more than the {MAX_INPUT_BYTES:,} bytes an input may have", path=source,
                            field=key)  # fmt: skip
    prd = parse_prd(answer["prd_markdown"], f"{source}: prd_markdown")
    graph = parse_tasks(answer["tasks_yaml"], f"{source}: tasks_yaml", requirement_ids=prd.requirement_ids)
    return Plan(answer["prd_markdown"], answer["tasks_yaml"], prd, graph)


def plan_outcome(result: AgentResult, answer: Any, source: str) -> PlanOutcome:
    """A planning call whose agent succeeded: its validated plan, or a failure of class ``implementation``."""
    if answer is None:
        return PlanOutcome(attrs.evolve(result, status="failed", failure_class="implementation",
                                        summary=f"{source}: the answer has no structured output"))  # fmt: skip
    try:
        plan = validate_plan(answer, source)
    except PlanError as exc:
        return PlanOutcome(attrs.evolve(result, status="failed", failure_class="implementation", summary=str(exc)))
    return PlanOutcome(result, plan)


def transcript_paths(session_dir: Path | None, task: str, attempt: int, agent: str) -> tuple[Path, Path] | None:
    """Where one attempt's raw stdout and stderr are saved: ``<session>/agents/<task>.<attempt>.<agent>.out|err``."""
    if session_dir is None:
        return None
    folder = session_dir / "agents"
    stem = f"{task}.{attempt}.{agent}"
    return folder / f"{stem}.out", folder / f"{stem}.err"
