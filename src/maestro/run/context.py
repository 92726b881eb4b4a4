"""Building an attempt's context pack from the session: pure data in, a :class:`~maestro.agents.context.ContextPack`
out.

The run calls :func:`build_context` in the coordinating thread when an attempt starts (never in a worker: the
session's state is the coordinating thread's to read).  What goes in, and from where:

* the PRD text of the task's requirements: the session's PRD (``prd.md`` of the session);
* the decisions that concern the task: the session's last ``architecture``, ``tech_stack`` (one per question),
  ``environment`` decisions, and the task's own ``subagent`` decision, each with its one-line rationale;
* the skills chosen for it (:func:`maestro.agents.choosing.choose_skills`), with where each ``SKILL.md`` is;
* what the tasks it depends on changed: the files of their checkpoints (a checkpoint's label is
  ``task <id>: <title>``), and of their merges not yet made checkpoints (``pending``): a task starts as soon
  as its dependencies are merged, which may be before the merge's checkpoint is recorded, and the pack must
  not depend on which came first;
* for an attempt after a failed one (a retry, an alternative), why it failed: the last ``recovery`` (or
  ``merge``) decision about the task and its last agent result when that was not a success.

Everything is read from recorded data in a fixed order, so the same session gives the same pack, and the same
prompt bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from maestro.agents.base import Skill
from maestro.agents.context import ContextPack, DecisionNote, DependencyChanges, RequirementText, SkillNote
from maestro.core.records import CheckpointRecord, Decision, FileChange
from maestro.model.state import SessionState
from maestro.plan.prd import Prd
from maestro.plan.tasks import Task, TaskGraph

__all__ = ["CONCERNING", "build_context", "dependency_changes", "fold_changes"]

CONCERNING = ("architecture", "tech_stack", "environment", "subagent")
"""The kinds of decision an attempt is told about, in the order the prompt lists them."""


def build_context(
    task: Task,
    *,
    state: SessionState,
    prd: Prd | None = None,
    graph: TaskGraph | None = None,
    after_failure: bool = False,
    guidance: bool = False,
    pending: Sequence[tuple[str, int, Sequence[FileChange]]] = (),
    skills: Sequence[Skill] = (),
    skill_places: Mapping[str, str] | None = None,
) -> ContextPack:
    """The context pack of an attempt at ``task`` in a session whose state is ``state``.

    ``after_failure`` says that the attempt follows a failed one (the task was ``retrying``): the pack then says
    why it failed; ``guidance`` that the attempt's feedback is a human's guidance.
    ``pending`` holds the merges not yet checkpoints, as (task id, the checkpoint it will be, files changed);
    ``skill_places`` where each chosen skill's ``SKILL.md`` is, as the agent should read it (a project skill
    relative to the repository).
    """
    places = skill_places or {}
    return ContextPack(
        requirements=_requirements(task, prd),
        decisions=_decisions(task, state.decisions),
        skills=tuple(SkillNote(s.name, s.description, places.get(s.name, "")) for s in skills),
        dependencies=dependency_changes(task, graph, state.checkpoints, pending),
        previous=_previous(task.id, state) if after_failure else (),
        after_failure=after_failure,
        guidance=guidance and not after_failure,
    )


def _requirements(task: Task, prd: Prd | None) -> tuple[RequirementText, ...]:
    known = {r.id: r for r in prd.requirements} if prd is not None else {}
    out = []
    for rid in task.requirements:
        r = known.get(rid)
        out.append(RequirementText(rid) if r is None else RequirementText(rid, r.text, r.priority, r.notes))
    return tuple(out)


def _decisions(task: Task, decisions: Sequence[Decision]) -> tuple[DecisionNote, ...]:
    """The last decision of each (kind, question) that concerns ``task``, by kind in :data:`CONCERNING` order, then
    in the order they were recorded."""
    latest: dict[tuple[str, str], Decision] = {}
    for d in decisions:
        if d.kind not in CONCERNING:
            continue
        if d.kind == "subagent" and d.task != task.id:
            continue
        latest.pop((d.kind, d.question), None)  # a decision made again moves to where it was made last
        latest[(d.kind, d.question)] = d
    ranked = sorted(latest.values(), key=lambda d: CONCERNING.index(d.kind))  # stable: recorded order within a kind
    return tuple(DecisionNote(d.id, d.kind, d.choice, d.rationale) for d in ranked)


def _task_of(label: str, ids: Iterable[str]) -> str | None:
    """The task a checkpoint's label (``task <id>: <title>``) names, among ``ids``; None for any other label."""
    if not label.startswith("task "):
        return None
    head = label[len("task ") :]
    return next((tid for tid in ids if head.startswith(f"{tid}: ") or head == tid), None)


def dependency_changes(
    task: Task,
    graph: TaskGraph | None,
    checkpoints: Sequence[CheckpointRecord],
    pending: Sequence[tuple[str, int, Sequence[FileChange]]] = (),
) -> tuple[DependencyChanges, ...]:
    """What each task ``task`` depends on changed (in ``depends_on`` order): its checkpoints' files folded into one
    change a path, and those of its merge not yet a checkpoint (``pending``: task id, checkpoint number, files), so
    that the result is the same whether or not the merge was made a checkpoint before ``task`` started."""
    if not task.depends_on:
        return ()
    deps = tuple(task.depends_on)
    numbers: dict[str, list[int]] = {d: [] for d in deps}
    changes: dict[str, list[Sequence[FileChange]]] = {d: [] for d in deps}
    for cp in sorted(checkpoints, key=lambda c: c.n):
        owner = _task_of(cp.label, deps)
        if owner is not None:
            numbers[owner].append(cp.n)
            changes[owner].append(cp.files)
    for tid, n, files in pending:
        if tid in changes:
            numbers[tid].append(n)
            changes[tid].append(files)
    titles = {t.id: t.title for t in graph} if graph is not None else {}
    return tuple(DependencyChanges(d, titles.get(d, ""), tuple(numbers[d]), fold_changes(changes[d])) for d in deps)


def fold_changes(steps: Iterable[Sequence[FileChange]]) -> tuple[FileChange, ...]:
    """Several checkpoints' changes as one change a path, sorted by path: what was there before the first and after
    the last says which (added then modified is added, added then deleted is nothing, deleted then added is
    modified); the line counts are summed."""
    first: dict[str, FileChange] = {}
    last: dict[str, FileChange] = {}
    lines: dict[str, tuple[int, int]] = {}
    for files in steps:
        for f in files:
            first.setdefault(f.path, f)
            last[f.path] = f
            added, deleted = lines.get(f.path, (0, 0))
            lines[f.path] = (added + f.added_lines, deleted + f.deleted_lines)
    out = []
    for path in sorted(first):
        before, after = first[path].change != "added", last[path].change != "deleted"
        if before or after:
            change = "modified" if before and after else "added" if after else "deleted"
            out.append(FileChange(path, change, *lines[path]))
    return tuple(out)


def _previous(tid: str, state: SessionState) -> tuple[str, ...]:
    """Why the previous attempt of ``tid`` failed: the last decision that answered a failure, the last result that
    was not a success."""
    out = []
    answer = next((d for d in reversed(state.decisions) if d.task == tid and d.kind in ("recovery", "merge")), None)
    if answer is not None:
        out.append(f"{answer.kind} ({answer.id}): {answer.choice} — {answer.rationale}")
    last = next((r for r in reversed(state.agent_results) if r.task == tid), None)
    if last is not None and last.status != "succeeded":  # a success whose acceptance or merge failed: the above says
        cls = f" ({last.failure_class})" if last.failure_class else ""
        out.append(f"attempt {last.attempt} ({last.agent}): {last.status}{cls}: {last.summary}")
    return tuple(out)
