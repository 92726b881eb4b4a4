"""The task graph: ``tasks.yaml`` version 1, read, validated and written.

A graph is the tasks that serve a PRD, each with the tasks it depends on.
Reading checks everything a runner would otherwise trip over later, and every
error names the file, the line, the task and the field::

    tasks.yaml:14: task T3: depends_on: unknown task 'T9'

The format (``docs/formats.md`` has the full description)::

    version: 1
    tasks:
      - id: T1                  # unique, [A-Za-z0-9._-]+
        title: Add calculator core
        description: free text handed to the agent
        category: backend       # free word; the subagent registry maps it
        requirements: [FR-1]    # PRD ids this task serves
        depends_on: []          # task ids
        group: G1               # optional explicit parallel group ([P:Group-X])
        risk: low               # low | medium | high (default medium)
        priority: P1            # P0..P3 (default P2)
        acceptance:             # commands that must exit 0 in the repo after the task
          - python -m pytest -q tests/test_calc.py
        files: [src/calc.py]    # optional: paths the task expects to touch
        subagent: backend-architect   # optional: the subagent to use (default: chosen by category)
        skills: [api-design]          # optional: skills handed to the agent

Graphs are also imported from beads (``bd list --json``) and from markdown task
lists with ``[P:Group-X]`` flags (:mod:`maestro.plan.importers`);
:func:`maestro.plan.load.load_tasks` picks the reader by the file's suffix.
"""

from __future__ import annotations

import difflib
import heapq
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import attrs
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from maestro.core import yamlio
from maestro.core.errors import PlanError, YamlError
from maestro.core.records import TASK_ID
from maestro.core.text import shown

__all__ = [
    "PRIORITIES",
    "RISKS",
    "TASKS_VERSION",
    "Task",
    "TaskGraph",
    "dump_tasks",
    "parse_tasks",
    "validate_graph",
]

TASKS_VERSION = 1
RESERVED_PREFIX = "maestro."  # maestro.plan records planning; no task may take such an id
RISKS = ("low", "medium", "high")
PRIORITIES = ("P0", "P1", "P2", "P3")
_FIELDS = ("id", "title", "description", "category", "requirements", "depends_on", "group", "risk", "priority",
           "acceptance", "files", "subagent", "skills")  # fmt: skip
_LISTS = frozenset({"requirements", "depends_on", "acceptance", "files", "skills"})
_OPTIONAL = frozenset({"group", "subagent"})


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Task:
    """One task of the graph.  ``line`` and ``field_lines`` say where it was read (1-based), for errors only."""

    id: str
    title: str
    description: str = ""
    category: str = "general"
    requirements: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    group: str | None = None
    risk: str = "medium"
    priority: str = "P2"
    acceptance: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    files: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    subagent: str | None = None
    skills: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    line: int | None = attrs.field(default=None, eq=False, repr=False)
    field_lines: Mapping[str, int] = attrs.field(factory=dict, eq=False, repr=False)

    def line_of(self, field: str | None) -> int | None:
        """The line ``field`` was read from, else the task's own line."""
        return self.field_lines.get(field, self.line) if field is not None else self.line

    @property
    def risk_rank(self) -> int:
        """0 for high risk, 1 medium, 2 low: sorts high risk first."""
        return 2 - RISKS.index(self.risk)

    @property
    def priority_rank(self) -> int:
        """0 for P0 … 3 for P3."""
        return PRIORITIES.index(self.priority)

    def to_dict(self) -> dict[str, Any]:
        """The task as it is written in ``tasks.yaml`` (defaults left out, field order fixed)."""
        out: dict[str, Any] = {"id": self.id, "title": self.title}
        defaults = Task("x", "x")
        for name in _FIELDS[2:]:
            value = getattr(self, name)
            if value != getattr(defaults, name):
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


@attrs.frozen
class TaskGraph:
    """A validated graph: unique ids, known acyclic dependencies, consistent groups.

    Tasks keep the order they were written in; :mod:`maestro.plan.ordering` decides the
    order they run in.
    """

    tasks: tuple[Task, ...]
    source: str | None = attrs.field(default=None, eq=False)
    _index: Mapping[str, Task] = attrs.field(init=False, eq=False, repr=False)
    _ids: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_index", {t.id: t for t in self.tasks})
        object.__setattr__(self, "_ids", tuple(t.id for t in self.tasks))

    def __getitem__(self, task_id: str) -> Task:
        return self._index[task_id]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._index

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def ids(self) -> tuple[str, ...]:
        """The task ids in file order (made once: callers index it in loops)."""
        return self._ids

    def dependents(self) -> dict[str, tuple[str, ...]]:
        """Task id → the ids of the tasks that depend on it directly, in file order."""
        out: dict[str, list[str]] = {t.id: [] for t in self.tasks}
        for t in self.tasks:
            for d in t.depends_on:
                out[d].append(t.id)
        return {k: tuple(v) for k, v in out.items()}

    def ancestors(self, task_id: str) -> frozenset[str]:
        """Every task ``task_id`` depends on, directly or transitively."""
        seen: set[str] = set()
        stack = list(self[task_id].depends_on)
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.add(d)
                stack.extend(self[d].depends_on)
        return frozenset(seen)

    def transitive_dependents(self) -> dict[str, int]:
        """Task id → how many tasks depend on it, directly or transitively (how foundational it is)."""
        # Descendant sets as int bitsets, built dependents-first: O(n^2 / 64) word operations, not set unions.
        position = {tid: i for i, tid in enumerate(self.ids)}
        dependents = self.dependents()
        below: dict[str, int] = {}
        for tid in reversed(self.topological()):
            bits = 0
            for child in dependents[tid]:
                bits |= below[child] | (1 << position[child])
            below[tid] = bits
        return {tid: below[tid].bit_count() for tid in self.ids}

    def chain_lengths(self) -> dict[str, int]:
        """Task id → the number of tasks on the longest dependency chain ending at it (1 for a root)."""
        depth: dict[str, int] = {}
        for tid in self.topological():
            depth[tid] = 1 + max((depth[d] for d in self[tid].depends_on), default=0)
        return depth

    def longest_chain(self) -> int:
        """The number of tasks on the longest dependency chain (0 for an empty graph)."""
        return max(self.chain_lengths().values(), default=0)

    def topological(self) -> list[str]:
        """Ids with every dependency before its dependents; ties keep file order."""
        remaining = {t.id: len(set(t.depends_on)) for t in self.tasks}
        dependents = self.dependents()
        position = {tid: i for i, tid in enumerate(self.ids)}
        ready = sorted((tid for tid, n in remaining.items() if n == 0), key=position.__getitem__)
        out: list[str] = []
        heap = [(position[t], t) for t in ready]
        heapq.heapify(heap)
        while heap:
            _, tid = heapq.heappop(heap)
            out.append(tid)
            for dep in dict.fromkeys(dependents[tid]):
                remaining[dep] -= 1
                if remaining[dep] == 0:
                    heapq.heappush(heap, (position[dep], dep))
        return out

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Explicit group name → its task ids in file order."""
        out: dict[str, list[str]] = {}
        for t in self.tasks:
            if t.group is not None:
                out.setdefault(t.group, []).append(t.id)
        return {k: tuple(v) for k, v in out.items()}

    def to_yaml(self) -> str:
        """The graph as a ``tasks.yaml`` version 1 document."""
        return dump_tasks(self.tasks)


# -- validation -------------------------------------------------------------------------------------------------


def validate_graph(
    tasks: Iterable[Task], *, source: str | Path | None = None, requirement_ids: Collection[str] | None = None
) -> TaskGraph:
    """Check ``tasks`` as a graph and return it; the first problem raises :class:`~maestro.PlanError`.

    Checked: ids, duplicate ids, risk and priority values, ``files`` entries
    (relative paths inside the repository: not absolute, no ``..``, not
    starting with ``-``, which a CLI would read as an option), unknown and
    self dependencies, cycles (every task on the cycle is named), explicit
    groups that hold a task and one of its own dependencies (directly or
    transitively), and — when ``requirement_ids`` is given — requirement ids
    the PRD does not have.
    """
    src = None if source is None else str(source)
    tasks = tuple(tasks)

    def fail(problem: str, task: Task | None = None, field: str | None = None) -> PlanError:
        return PlanError(problem, path=src, line=task.line_of(field) if task else None,
                         task=task.id if task else None, field=field)  # fmt: skip

    seen: dict[str, Task] = {}
    for t in tasks:
        if not isinstance(t.id, str) or not TASK_ID.match(t.id):
            raise PlanError(f"a task id matches [A-Za-z0-9._-]+, not {t.id!r}", path=src, line=t.line, field="id")
        if t.id.startswith(RESERVED_PREFIX):
            raise PlanError(f"task ids starting with {RESERVED_PREFIX!r} are reserved for maestro's own records",
                            path=src, line=t.line, task=t.id, field="id")  # fmt: skip
        if t.id in seen:
            first = seen[t.id]
            at = f" (first at line {first.line})" if first.line is not None else ""
            raise fail(f"duplicate task id{at}", t, "id")
        seen[t.id] = t
        if t.risk not in RISKS:
            raise fail(f"unknown risk {t.risk!r} (one of {', '.join(RISKS)})", t, "risk")
        if t.priority not in PRIORITIES:
            raise fail(f"unknown priority {t.priority!r} (one of {', '.join(PRIORITIES)})", t, "priority")
        for f in t.files:
            problem = _bad_file(f)
            if problem is not None:
                raise fail(f"{f!r}: {problem}", t, "files")
    for t in tasks:
        for d in t.depends_on:
            if d == t.id:
                raise fail("a task cannot depend on itself", t, "depends_on")
            if d not in seen:
                raise fail(f"unknown task {d!r}", t, "depends_on")
        if requirement_ids is not None:
            for r in t.requirements:
                if r not in requirement_ids:
                    raise fail(f"requirement {r!r} is not in the PRD", t, "requirements")
    graph = TaskGraph(tasks, src)
    cycle = _find_cycle(graph)
    if cycle:
        first = graph[cycle[0]]
        raise fail(
            f"dependency cycle: {' -> '.join([*cycle, cycle[0]])} (each depends on the next)", first, "depends_on"
        )
    position = {tid: i for i, tid in enumerate(graph.ids)}
    for name, members in graph.groups().items():
        member_set = set(members)
        for tid in members:
            inside = sorted(graph.ancestors(tid) & member_set, key=position.__getitem__)
            if inside:
                raise fail(f"group {name!r} also holds {inside[0]!r}, which this task depends on; "
                           "a group runs at once, so a task and its dependency cannot share one", graph[tid],
                           "group")  # fmt: skip
    return graph


def _bad_file(path: str) -> str | None:
    """Why ``path`` cannot be a ``files`` entry, or None."""
    if not path.strip():
        return "a file path must not be empty"
    if path.startswith("-"):
        return "a file path cannot start with '-' (an agent's command line would read it as an option)"
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
        return "an absolute path: files are relative to the repository"
    if ".." in PurePosixPath(path.replace("\\", "/")).parts:
        return "'..' leaves the repository: files are relative to the repository"
    return None


def _find_cycle(graph: TaskGraph) -> list[str]:
    """One dependency cycle as the ids on it (the first found in file order), or []."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph.ids, white)
    for root in graph.ids:
        if colour[root] != white:
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root].depends_on))]
        colour[root] = grey
        path.append(root)
        while stack:
            node, deps = stack[-1]
            for d in deps:
                if colour[d] == grey:
                    return path[path.index(d) :]
                if colour[d] == white:
                    colour[d] = grey
                    path.append(d)
                    stack.append((d, iter(graph[d].depends_on)))
                    break
            else:
                colour[node] = black
                path.pop()
                stack.pop()
    return []


# -- reading and writing ----------------------------------------------------------------------------------------


def parse_tasks(
    text: str, source: str | Path | None = None, *, requirement_ids: Collection[str] | None = None
) -> TaskGraph:
    """Read a ``tasks.yaml`` version 1 document and validate it as a graph (see :func:`validate_graph`)."""
    src = None if source is None else str(source)
    try:
        doc = yamlio.load(text, rt=True)
    except YamlError as exc:
        problem = f"YAML syntax: {exc.problem}" if exc.kind == "syntax" else exc.problem
        raise PlanError(problem, path=src, line=exc.line) from exc
    if not isinstance(doc, CommentedMap):
        raise PlanError("a tasks file is a mapping with 'version: 1' and 'tasks:'", path=src, line=1)
    unknown = [k for k in doc if k not in ("version", "tasks")]
    if unknown:
        raise PlanError(f"unknown top-level key {unknown[0]!r} (known: version, tasks)", path=src,
                        line=_key_line(doc, unknown[0]))  # fmt: skip
    if "version" not in doc:
        raise PlanError("missing 'version: 1'", path=src, line=1, field="version")
    version = doc["version"]
    if type(version) is not int or version != TASKS_VERSION:
        raise PlanError(f"unknown version {version!r} (this maestro reads version {TASKS_VERSION})", path=src,
                        line=_key_line(doc, "version"), field="version")  # fmt: skip
    items = doc.get("tasks")
    if not isinstance(items, CommentedSeq):
        raise PlanError("'tasks' is a list of tasks", path=src, line=_key_line(doc, "tasks") or 1, field="tasks")
    if not items:
        raise PlanError("the graph has no tasks", path=src, line=_key_line(doc, "tasks"), field="tasks")
    tasks = [_task(items, i, src) for i in range(len(items))]
    return validate_graph(tasks, source=src, requirement_ids=requirement_ids)


def _key_line(node: Any, key: Any) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _item_line(items: CommentedSeq, index: int) -> int | None:
    """The line of item ``index``, or None where the loader kept none (a sequence a tag such as ``!!python/tuple``
    made)."""
    try:
        return int(items.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _task(items: CommentedSeq, index: int, src: str | None) -> Task:
    item = items[index]
    line = _item_line(items, index)
    if not isinstance(item, CommentedMap):
        raise PlanError(f"task #{index + 1} is a mapping with at least id and title", path=src, line=line)
    tid = item.get("id")
    label = tid if isinstance(tid, str) else None
    for key in item:
        if key not in _FIELDS:
            hint = _close(str(key), _FIELDS)
            raise PlanError(f"unknown field{hint}", path=src, line=_key_line(item, key), task=label, field=str(key))
    for required in ("id", "title"):
        if required not in item:
            raise PlanError(f"task #{index + 1} has no {required}", path=src, line=line, task=label, field=required)
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key, value in item.items():
        at = _key_line(item, key)
        if at is not None:
            lines[key] = at
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                problem = f"expected a list of strings, not {shown(value, list_items=True)}"
                raise PlanError(problem, path=src, line=at, task=label, field=key)
            values[key] = tuple(str(v) for v in value)
        elif value is None and key in _OPTIONAL:
            values[key] = None
        elif not isinstance(value, str) or (key != "description" and not value.strip()):
            problem = f"expected a string, not {shown(value, list_items=True)}"
            raise PlanError(problem, path=src, line=at, task=label, field=key)
        else:
            values[key] = str(value)
    return Task(**values, line=line, field_lines=lines)


def _close(word: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(word.replace("-", "_"), known, n=1)
    return f" (did you mean {match[0]!r}?)" if match else f" (known: {', '.join(known)})"


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*\Z")  # safe unquoted in a flow list: ids, paths


def _scalar(value: Any) -> Any:
    """A string in the YAML style that reads back as the same string."""
    if not isinstance(value, str):
        return value
    if all(c.isprintable() or c == "\n" for c in value) and not _PLAIN_WORD.match(value):
        if "\n" in value.rstrip("\n") and value == value.strip(" ") and "\n " not in value:
            return LiteralScalarString(value)  # a multi-line description reads best as a block
        return value
    if not all(c.isprintable() for c in value):  # NEL, LS, PS, controls: only double quotes keep them
        return DoubleQuotedScalarString(value)
    return value


def dump_tasks(tasks: Iterable[Task]) -> str:
    """``tasks`` as a ``tasks.yaml`` version 1 document (lists of ids in flow style, defaults left out)."""
    seq = CommentedSeq()
    for t in tasks:
        m = CommentedMap()
        for key, value in t.to_dict().items():
            if isinstance(value, list):
                items = CommentedSeq(_scalar(v) for v in value)
                if key != "acceptance" and all(_PLAIN_WORD.match(v) for v in value):
                    items.fa.set_flow_style()
                m[key] = items
            else:
                m[key] = _scalar(value)
        seq.append(m)
    doc = CommentedMap([("version", TASKS_VERSION), ("tasks", seq)])
    return yamlio.dump(doc, rt=True, indent=(2, 4, 2))
