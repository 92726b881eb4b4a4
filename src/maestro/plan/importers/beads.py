"""Task graphs from beads (``bd list --json``): issues, their epics and their dependencies become tasks.

:func:`from_beads` reads what ``bd list --json``, ``bd ready --json`` and
``bd show --json`` print (a JSON array of issues), ``bd create --json`` (one
object) and ``.beads/issues.jsonl`` exports (one object a line; records whose
``_type`` is not ``"issue"`` are skipped).  Both issue shapes are read: the 1.x
one (``parent`` field, ``dependencies`` as references ``{"id", "status",
"dependency_type"}`` in ``bd show``) and the legacy one (``dependencies`` as
records ``{"issue_id", "depends_on_id", "type"}``); ``dependents`` lists are
read too.  The mapping:

* ``id`` → id, ``title`` → title (both required);
* ``description``, then ``design``, ``acceptance_criteria`` and ``notes`` under
  ``## Design`` / ``## Acceptance criteria`` / ``## Notes`` headings → description;
* ``priority`` 0-4 or ``"P0"``-``"P4"`` → P0-P3 (4, backlog, becomes P3; missing is P2);
* ``labels``: a label ``risk:low|medium|high`` → risk; the first other label →
  category (``general`` without one);
* ``metadata`` (an object, or a JSON string): ``subagent_type`` → subagent,
  ``applicable_skills`` (a list, or a comma-separated string) → skills;
* every ``FR-<n>`` / ``NFR-<n>`` in title, description and acceptance criteria →
  requirements (first-seen order), followed by those of the issue's parents (epics);
* each line of ``acceptance_criteria`` that is one backticked command (optionally
  a list item: ``- `python -m pytest -q` ``) → an acceptance command;
* dependencies of type ``blocks``, ``conditional-blocks`` and ``waits-for`` (also
  a dependency without a type, ``bd dep add``'s default) → depends_on:
  ``issue_id`` depends on ``depends_on_id``.  ``parent-child`` (and the
  ``parent`` field) only say which epic an issue belongs to; ``related``,
  ``discovered-from`` and the other kinds do not order tasks;
* ``closed`` and ``tombstone`` issues are done: left out, and dependencies on
  them dropped (also dependencies on issues absent from the input that a
  ``bd show`` reference reports closed);
* epics (``issue_type: epic``) are not tasks: a dependency on an epic means a
  dependency on each of its open tasks (through nested epics); an epic with no
  open task in the input stands for nothing left to do.  As ``bd ready`` does,
  an issue is also blocked by whatever blocks its parents, so a ``blocks``
  dependency of an epic is one of each of its tasks;
* a dependency on an issue that is not in the input is kept, so that
  ``validate_graph`` reports it as an unknown task: the importer cannot tell a
  closed issue from a missing one.  ``bd list`` leaves closed issues out; import
  ``bd list --all --json`` or an export instead.

Errors name the input, the line (of the JSON syntax error, of the JSONL record,
of the array element) and the field: ``bd.json:14: task bd-7: title: issue #3 has no title``.
JSON nested too deeply to parse is such an error too, never a ``RecursionError``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import PlanError
from maestro.core.records import TASK_ID
from maestro.plan.importers._common import requirements_in, split_lines, unique
from maestro.plan.tasks import RISKS, Task

__all__ = ["from_beads"]

log = logging.getLogger(__name__)

_TOO_DEEP = "JSON syntax: nested too deeply to read"


def _loads(text: str, src: str | None, line: int | None, *, field: str | None = None, task: str | None = None) -> Any:
    """``json.loads``; nesting too deep to parse (RecursionError, MemoryError), or a number of more digits than
    Python converts (:func:`sys.get_int_max_str_digits`), is a :class:`~maestro.PlanError`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # int() refused the digits of a number
        problem = f"JSON: a number of more than {sys.get_int_max_str_digits():,} digits"
        raise PlanError(problem, path=src, line=line, task=task, field=field) from None
    except (RecursionError, MemoryError):
        raise PlanError(_TOO_DEEP, path=src, line=line, task=task, field=field) from None


_BLOCKING = frozenset({"blocks", "conditional-blocks", "waits-for"})
_PARENT_CHILD = "parent-child"
_DONE = frozenset({"closed", "tombstone"})
_COMMAND_LINE = re.compile(r"\s*(?:[-*+]\s+|\d+[.)]\s+)?(?:\[[ xX]\]\s+)?`([^`]+)`\s*")
_RISK_LABEL = re.compile(r"risk\s*[:=]\s*(.*)", re.IGNORECASE)
_BEADS_PRIORITY = re.compile(r"[Pp]?([0-9])")
_TEXT_FIELDS = (("design", "Design"), ("acceptance_criteria", "Acceptance criteria"), ("notes", "Notes"))


@attrs.define
class _Issue:
    id: str
    line: int
    done: bool
    epic: bool
    task: Task


@attrs.frozen
class _Edge:
    issue: str  # depends on …
    target: str
    kind: str


def from_beads(text: str, source: str | Path | None = None) -> list[Task]:
    """The open tasks of a beads issue list (``bd list --json``, ``bd ready``/``show --json``, JSONL), in input order.

    Epics and closed issues are left out and dependencies resolved as the module
    docstring describes; the result is not validated (see :func:`~maestro.plan.tasks.validate_graph`).
    Malformed input raises :class:`~maestro.PlanError` naming ``source``, the line and the field.
    """
    src = None if source is None else str(source)
    issues: list[_Issue] = []
    edges: list[_Edge] = []
    reported_done: set[str] = set()
    for number, (line, obj) in enumerate(_beads_records(text, src), 1):
        if not isinstance(obj, dict):
            raise PlanError(f"issue #{number} is {_json_kind(obj)}, not a JSON object", path=src, line=line)
        kind = obj.get("_type")
        if kind is not None and kind != "issue":
            log.debug("%s:%d: skipping a %r record", src or "<input>", line, kind)
            continue
        if "id" not in obj and "error" in obj:
            raise PlanError(f"bd reported an error: {' '.join(str(obj['error']).split())}", path=src, line=line)
        issue = _beads_issue(obj, number, line, src)
        issues.append(issue)
        edges.extend(_beads_edges(obj, issue, src, reported_done))
    if not issues:
        raise PlanError("no issues found", path=src, line=1)

    by_id: dict[str, _Issue] = {}
    for issue in issues:
        by_id.setdefault(issue.id, issue)
    done = {i.id for i in issues if i.done} | (reported_done - by_id.keys())
    parent: dict[str, str] = {}
    blockers: dict[str, list[str]] = {}
    for edge in edges:
        if edge.kind == _PARENT_CHILD:
            parent.setdefault(edge.issue, edge.target)
        elif edge.kind in _BLOCKING:
            blockers.setdefault(edge.issue, []).append(edge.target)
    children: dict[str, list[str]] = {}
    for tid in by_id:
        if tid in parent:
            children.setdefault(parent[tid], []).append(tid)

    def ancestors(tid: str) -> list[str]:
        out: list[str] = []
        while tid in parent and parent[tid] not in out and parent[tid] != tid:
            tid = parent[tid]
            out.append(tid)
        return out

    def leaves(epic: str, seen: set[str]) -> Iterator[str]:
        """The open tasks under ``epic``, through every level of children, in input order (no recursion)."""
        stack = [iter(children.get(epic, ()))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
            elif child not in seen:
                seen.add(child)
                if child not in done and not by_id[child].epic:
                    yield child
                stack.append(iter(children.get(child, ())))

    out: list[Task] = []
    for issue in issues:
        if issue.done or issue.epic:
            continue
        above = ancestors(issue.id)
        where = f"{src or '<input>'}: {issue.id}"
        deps: list[str] = []
        for holder in [issue.id, *above]:
            for target in blockers.get(holder, ()):
                if target == issue.id or target in above:
                    log.debug("%s: ignoring a dependency on %s, which contains it", where, target)
                elif target in done:
                    log.debug("%s: dropping a dependency on %s, which is done", where, target)
                elif target in by_id and by_id[target].epic:
                    tasks = [t for t in leaves(target, set()) if t != issue.id]
                    if not tasks:
                        log.info("%s: epic %s has no open task; dropping the dependency", where, target)
                    deps.extend(tasks)
                else:
                    deps.append(target)
        inherited = [r for a in above if a in by_id for r in by_id[a].task.requirements]
        requirements = unique([*issue.task.requirements, *inherited])
        out.append(attrs.evolve(issue.task, depends_on=unique(deps), requirements=requirements))
    if not out:
        log.info("%s: every issue is done or an epic; no tasks", src or "<input>")
    return out


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _json_error(exc: json.JSONDecodeError, src: str | None, line: int | None = None) -> PlanError:
    return PlanError(f"JSON syntax: {exc.msg} (column {exc.colno})", path=src,
                     line=exc.lineno if line is None else line)  # fmt: skip


def _beads_records(text: str, src: str | None) -> list[tuple[int, Any]]:
    """The input's top-level objects with the line each starts on: JSONL, a JSON array or one JSON object."""
    text = text.removeprefix("\ufeff")
    lines = split_lines(text)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise PlanError("no issues found (the input is empty)", path=src)
    try:
        head = _loads(lines[first], src, first + 1)
    except ValueError:
        head = None
    if isinstance(head, dict):  # JSONL: every line a record
        out: list[tuple[int, Any]] = []
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    out.append((number, _loads(line, src, number)))
                except json.JSONDecodeError as exc:
                    raise _json_error(exc, src, number) from exc
        return out
    try:
        doc = _loads(text, src, first + 1)
    except json.JSONDecodeError as exc:
        raise _json_error(exc, src) from exc
    if doc is None:
        return []
    if isinstance(doc, dict):
        return [(first + 1, doc)]
    if not isinstance(doc, list):
        raise PlanError(f"expected a JSON array of issues, not {_json_kind(doc)}", path=src, line=first + 1)
    return list(zip(_element_lines(text), doc, strict=True))


def _element_lines(text: str) -> list[int]:
    """The line each element of the (valid) JSON array ``text`` starts on."""
    decoder = json.JSONDecoder()
    lines: list[int] = []
    pos = text.index("[") + 1
    line, counted = 1, 0
    while True:
        pos = _skip_space(text, pos)
        if text[pos] == "]":
            return lines
        line += text.count("\n", counted, pos)
        counted = pos
        lines.append(line)
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, pos)
        if text[pos] == ",":
            pos += 1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _beads_issue(obj: dict[str, Any], number: int, line: int, src: str | None) -> _Issue:
    tid = obj.get("id")
    if not isinstance(tid, str) or not tid.strip():
        problem = f"issue #{number} has no id" if tid is None else f"issue #{number}: id must be a string, not {tid!r}"
        raise PlanError(problem, path=src, line=line, field="id")
    if not TASK_ID.match(tid):  # before any message names the task by it
        raise PlanError(f"issue #{number}: a task id matches [A-Za-z0-9._-]+, not {tid!r}", path=src, line=line,
                        field="id")  # fmt: skip

    def fail(problem: str, field: str) -> PlanError:
        return PlanError(problem, path=src, line=line, task=tid, field=field)

    def text_field(key: str) -> str:
        value = obj.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise fail(f"expected a string, not {_json_kind(value)}", key)
        return value

    title = obj.get("title")
    if title is None or (isinstance(title, str) and not title.strip()):
        raise fail(f"issue #{number} has no title", "title")
    if not isinstance(title, str):
        raise fail(f"expected a string, not {_json_kind(title)}", "title")
    status = text_field("status").strip().lower() or "open"
    issue_type = text_field("issue_type").strip().lower() or "task"
    description = text_field("description")
    acceptance_text = text_field("acceptance_criteria")
    parts = [description.strip()] if description.strip() else []
    for key, heading in _TEXT_FIELDS:
        value = text_field(key).strip()
        if value:
            parts.append(f"## {heading}\n\n{value}")

    priority = _beads_priority(obj.get("priority"))
    if priority is None:
        raise fail(f"expected 0-4 or P0-P4, not {obj.get('priority')!r}", "priority")
    labels = obj.get("labels")
    if labels is None:
        labels = []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise fail("expected a list of strings", "labels")
    risk, category = "medium", "general"
    risk_given = category_given = False
    for label in labels:
        m = _RISK_LABEL.fullmatch(label.strip())
        if m:
            word = m.group(1).strip().lower()
            if word not in RISKS:
                raise fail(f"unknown risk {word!r} in label {label!r} (one of {', '.join(RISKS)})", "labels")
            if not risk_given:
                risk, risk_given = word, True
        elif label.strip() and not category_given:
            category, category_given = label.strip(), True
    metadata = _metadata(obj.get("metadata"), fail)
    agent = metadata.get("subagent_type")
    skills = metadata.get("applicable_skills")
    if isinstance(skills, str):
        skills = skills.split(",")
    if not isinstance(skills, list):
        skills = []
    acceptance = [m.group(1).strip() for ln in split_lines(acceptance_text) if (m := _COMMAND_LINE.fullmatch(ln))]
    task = Task(
        id=tid,
        title=" ".join(title.split()),
        description="\n\n".join(parts),
        category=category,
        requirements=unique(requirements_in([title, description, acceptance_text])),
        risk=risk,
        priority=priority,
        acceptance=unique(c for c in acceptance if c),
        subagent=agent.strip() if isinstance(agent, str) and agent.strip() else None,
        skills=unique(s.strip() for s in skills if isinstance(s, str) and s.strip()),
        line=line,
    )
    return _Issue(tid, line, status in _DONE, issue_type == "epic", task)


def _beads_priority(value: object) -> str | None:
    if value is None:
        return "P2"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and (m := _BEADS_PRIORITY.fullmatch(value.strip())):
        n = int(m.group(1))
    else:
        return None
    return f"P{min(n, 3)}" if 0 <= n <= 4 else None


def _metadata(value: object, fail: Callable[[str, str], PlanError]) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
        except (RecursionError, MemoryError):
            raise fail(_TOO_DEEP, "metadata") from None
    return value if isinstance(value, dict) else {}


def _beads_edges(obj: dict[str, Any], issue: _Issue, src: str | None, reported_done: set[str]) -> list[_Edge]:
    """The dependency edges an issue record states: its dependencies, its dependents and its parent."""

    def fail(problem: str, field: str) -> PlanError:
        return PlanError(problem, path=src, line=issue.line, task=issue.id, field=field)

    edges: list[_Edge] = []
    for field, outgoing in (("dependencies", True), ("dependents", False)):
        entries = obj.get(field)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise fail(f"expected a list, not {_json_kind(entries)}", field)
        for n, entry in enumerate(entries, 1):
            stated = _dependency(entry, issue.id, outgoing=outgoing)
            if stated is None:
                raise fail(f"entry {n} is not a dependency (an object with depends_on_id, or id, and a type)", field)
            edge, closed = stated
            edges.append(edge)
            if closed is not None:
                reported_done.add(closed)
    parent = obj.get("parent")
    if isinstance(parent, str) and parent.strip():
        edges.append(_Edge(issue.id, parent.strip(), _PARENT_CHILD))
    elif parent is not None and not isinstance(parent, str):
        raise fail(f"expected an issue id, not {_json_kind(parent)}", "parent")
    return edges


def _dependency(entry: object, this: str, *, outgoing: bool) -> tuple[_Edge, str | None] | None:
    """The edge one ``dependencies``/``dependents`` entry of issue ``this`` states, and the id it reports closed."""
    fields: dict[str, Any]
    if isinstance(entry, str):
        fields = {"id": entry}
    elif isinstance(entry, dict):
        fields = entry
    else:
        return None
    kind = fields.get("type") or fields.get("dependency_type") or "blocks"
    closed: str | None = None
    if "depends_on_id" in fields:  # a record: issue_id depends on depends_on_id
        dependent, dependency = fields.get("issue_id") or (this if outgoing else None), fields["depends_on_id"]
    else:  # a reference to the other issue (bd show)
        other = fields.get("id")
        dependent, dependency = (this, other) if outgoing else (other, this)
        status = fields.get("status")
        if isinstance(status, str) and status.strip().lower() in _DONE and isinstance(other, str):
            closed = other.strip()
    if not all(isinstance(v, str) and v.strip() for v in (dependent, dependency, kind)):
        return None
    return _Edge(str(dependent).strip(), str(dependency).strip(), str(kind).strip()), closed
