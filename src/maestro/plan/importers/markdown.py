"""Task graphs from markdown task lists: checkbox items, with ``[P:Group-X]`` flags and ``Key: value`` fields.

:func:`from_markdown` reads a task list in the style of the "flow" commands
(``[P:Group-X]`` parallel flags) and of ai-dev-tasks (``- [ ] 1.1 Sub-task``)::

    ## Tasks

    - [ ] 1.0 Calculator core (FR-1)
      - [ ] 1.1 Parse expressions [P:Group-A]
        Files: `src/calc/parse.py`
        Acceptance: `python -m pytest -q tests/test_parse.py`
      - [ ] 1.2 Format results [P:Group-A]
        Risk: low
    - [ ] T3: Command line interface
      Depends on: 1.0
      Priority: P1
      Acceptance:
        - `python -m pytest -q tests/test_cli.py`
    - [x] T4: Project skeleton

*Items.*  A task is a checkbox list item: ``-``, ``*``, ``+`` or ``1.`` followed by
``[ ]`` (open) or ``[x]``/``[X]`` (done).  Its first line holds, in order, an
optional id and the title:

* ``T1: Title`` — a word that contains a digit, made of ``[A-Za-z0-9._-]``, followed
  by ``:`` and a space (``**T1**:``, ``**T1:**`` and ```` `T1`: ```` also work).  A word
  without a digit (``Docs: …``) is part of the title, and so is ``T1 Title``;
* ``1.1 Title`` — a dotted number (``1.0``, ``2.3.1``, an optional trailing dot);
* otherwise the id is ``T<n>``, ``n`` the item's position among all checkbox
  items of the document (open, done and epics), counted from 1.

Anywhere on the first line, ``[P:Group-X]`` (also ``[P: Group-X]``, ``[P:X]``)
puts the task in group ``Group-X`` (case kept, ``[A-Za-z0-9._-]+``) and is removed
from the title; ``FR-<n>``/``NFR-<n>`` ids on the line are requirements, and a
parenthesised or bracketed list holding only such ids (``(FR-1, FR-2)``) is
removed from the title.

*Fields.*  Lines below an item indented deeper than its marker (and not
checkbox items themselves) belong to it.  A line ``Key: value`` (optionally a
bullet ``- Key: value``, the key optionally in ``**bold**``) with one of these
keys, case-insensitive (``_``, ``-`` and spaces alike), is a field:

* ``Depends on`` / ``Depends`` / ``Dependencies`` / ``Blocked by`` / ``depends_on``: task
  or epic ids separated by commas or spaces (``none`` for none; text in
  parentheses is a comment);
* ``Requirements`` / ``Requirement`` / ``FR``: requirement ids (a bare number under
  ``FR`` means ``FR-<n>``);
* ``Acceptance`` / ``Acceptance criteria``: commands in backticks, any number; text
  outside backticks is kept in the description, never run;
* ``Files``: paths in backticks, or separated by commas or spaces;
* ``Skills`` / ``Skill``: skill names, in backticks or separated by commas or spaces;
* ``Category``, ``Risk`` (low | medium | high), ``Priority`` (P0-P3), ``Group`` (the same
  as a ``[P:…]`` flag; not both), ``Subagent`` / ``Subagent type`` / ``Agent``: one value each;
* ``Description``: text put first in the description.

A list field with nothing after the colon takes the bullet items that follow it
(``- `pytest -q` `` under ``Acceptance:``).  Every other line joins the description
(dedented, blank lines kept).  A bad value (an unknown risk, a priority outside
P0-P3, an id with other characters, a field given twice) raises ``PlanError``
with the line, task and field; each task's ``field_lines`` holds the line of each
field given, so that ``validate_graph`` points at the ``Depends on:`` line of an
unknown dependency.

*Epics.*  An item with checkbox items nested under it is an epic, not a task:
its nested items are its tasks, and each gets ``Part of: <epic title>`` (``Part of:
Outer > Inner`` for nested epics) at the end of its description, followed by the
epics' own description text.  An epic's category, risk, priority and subagent are
the defaults of its tasks, its requirements and skills are added to theirs, and
its dependencies are theirs too; a dependency on an epic is one on each of its
open tasks.  An epic's own checkbox and group flag are ignored; acceptance
commands on an epic are an error (put them on one of its tasks), and so is an
epic that depends on one of its own tasks or a task on its own epic.

*Done.*  ``[x]`` tasks are done: left out, and dependencies on them dropped (their
fields are still checked).

*Sequencing.*  Explicit when any item of the document has a dependency field
(even ``Depends on: none``): then only the declared dependencies hold.
Otherwise the flow convention holds — tasks marked ``[P:Group-X]`` run in parallel
within their group, unmarked tasks run one after another: walk the open tasks
in document order, cutting them into segments (a run of consecutive tasks with
the same group is one segment, an unmarked task is a segment of its own), and
make every task depend on all the tasks of the previous segment.  A group's tasks
must therefore be consecutive; a group split by other tasks would depend on
itself, which ``validate_graph`` reports.

*Ignored.*  Everything outside checkbox items (headings, prose, plain bullets and
tables; a checkbox item nested in a plain bullet is still a task), everything
inside fenced code blocks (```` ``` ```` or ``~~~``) and inside HTML comments that
start a line.  Tabs count as four columns.  Lines end at ``\n`` only (a ``\r``
before it is dropped); other characters Python counts as line breaks (``\x0c``,
U+0085, U+2028) stay inside their line.  Each task's ``line`` is the 1-based line
of its checkbox.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from maestro.core.errors import PlanError
from maestro.core.records import TASK_ID
from maestro.plan.importers._common import REQUIREMENT, split_lines, unique
from maestro.plan.tasks import PRIORITIES, RISKS, Task

__all__ = ["from_markdown"]

log = logging.getLogger(__name__)

_CHECKBOX = re.compile(r"(?P<indent> *)(?:[-*+]|\d+[.)])[ \t]+\[(?P<mark>[ xX])\](?:[ \t]+(?P<rest>.*))?")
_BULLET = re.compile(r"(?:[-*+]|\d+[.)])[ \t]+(?P<rest>.*)")
_FENCE = re.compile(r"(?P<indent> *)(?P<fence>`{3,}|~{3,})")
_GROUP_FLAG = re.compile(r"\[\s*[Pp]\s*:\s*(?P<name>[^\]]*)\]")
_REQUIREMENT_LIST = re.compile(r"[(\[]\s*N?FR-\d+(?:\s*[,;/]?\s*(?:and\s+)?N?FR-\d+)*\s*[)\]]")
_WRAPPED_ID = re.compile(r"(\*\*|__|`)(?P<id>[A-Za-z0-9._-]+?)(?P<c1>:?)\1(?P<c2>:?)")
_COLON_ID = re.compile(r"(?P<id>[A-Za-z0-9._-]*[0-9][A-Za-z0-9._-]*):(?:\s+(?P<title>.*))?")
_NUMBERED_ID = re.compile(r"(?P<id>\d+(?:\.\d+)+)\.?(?:\s+(?P<title>.*))?")
_FIELD_PLAIN = re.compile(r"(?P<key>[A-Za-z][A-Za-z _-]{0,29}?)\s*:\s*(?P<value>.*)")
_FIELD_BOLD = re.compile(
    r"(?:\*\*|__)(?P<key>[A-Za-z][A-Za-z _-]{0,29}?)\s*(?::\s*(?:\*\*|__)|(?:\*\*|__)\s*:)\s*(?P<value>.*)"
)
_BACKTICKED = re.compile(r"`([^`]+)`")
_GROUP_NAME = re.compile(r"[A-Za-z0-9._-]+")
_NONE_WORDS = frozenset({"none", "-", "—", "–", "n/a", "na", "nothing", "()"})
_KEYS = {
    "depends on": "depends_on",
    "depends": "depends_on",
    "dependencies": "depends_on",
    "blocked by": "depends_on",
    "requirements": "requirements",
    "requirement": "requirements",
    "fr": "requirements",
    "acceptance": "acceptance",
    "acceptance criteria": "acceptance",
    "files": "files",
    "category": "category",
    "risk": "risk",
    "priority": "priority",
    "group": "group",
    "subagent": "subagent",
    "subagent type": "subagent",
    "agent": "subagent",
    "skills": "skills",
    "skill": "skills",
    "description": "description",
}
_LIST_FIELDS = frozenset({"depends_on", "requirements", "acceptance", "files", "skills"})


@attrs.define(eq=False)
class _Item:
    line: int
    indent: int
    checked: bool
    id: str
    title: str
    group: str | None
    requirements: list[str]
    parent: _Item | None = None
    children: list[_Item] = attrs.Factory(list)
    depends_on: list[str] | None = None
    acceptance: list[str] = attrs.Factory(list)
    files: list[str] = attrs.Factory(list)
    single: dict[str, str] = attrs.Factory(dict)  # category, risk, priority, subagent
    skills: list[str] = attrs.Factory(list)
    lines: dict[str, int] = attrs.Factory(dict)  # field → the line it was first given on
    lead: list[str] = attrs.Factory(list)  # Description: values
    text: list[str] = attrs.Factory(list)  # other continuation lines, as written
    open_list: str | None = None  # the list field whose bullet items follow
    list_pad: str = ""  # the indentation of that field's line
    prose_acceptance: bool = False

    @property
    def epic(self) -> bool:
        return bool(self.children)

    def ancestors(self) -> list[_Item]:
        """Enclosing items, nearest first."""
        out: list[_Item] = []
        at = self.parent
        while at is not None:
            out.append(at)
            at = at.parent
        return out

    def leaves(self) -> Iterator[_Item]:
        """The tasks under this epic, in document order (itself if it is a task; no recursion)."""
        stack: list[_Item] = [self]
        while stack:
            item = stack.pop()
            if not item.children:
                yield item
            stack.extend(reversed(item.children))


def from_markdown(text: str, source: str | Path | None = None) -> list[Task]:
    """The open tasks of a markdown task list, in document order (the format is in the module docstring).

    Epics and done (``[x]``) tasks are left out; without any declared dependency the
    ``[P:Group-X]`` sequencing rule adds them.  The result is not validated (see
    :func:`~maestro.plan.tasks.validate_graph`); malformed items raise :class:`~maestro.PlanError`.
    """
    src = None if source is None else str(source)
    items = _markdown_items(text, src)
    if not items:
        raise PlanError("no tasks found (a task is a checkbox item: '- [ ] Title')", path=src)
    first_at: dict[str, _Item] = {}
    for item in items:
        if item.id in first_at:
            raise PlanError(f"duplicate task id (first at line {first_at[item.id].line})", path=src, line=item.line,
                            task=item.id, field="id")  # fmt: skip
        first_at[item.id] = item
    for item in items:
        if item.epic and item.acceptance:
            raise PlanError("an epic (an item with tasks under it) is not run itself; put its acceptance commands "
                            "on one of its tasks", path=src, line=item.lines["acceptance"], task=item.id,
                            field="acceptance")  # fmt: skip
        if item.epic and item.group is not None:
            log.debug("%s:%d: epic %s: the group flag is ignored", src or "<input>", item.line, item.id)

    tasks = [item for item in items if not item.epic]
    open_tasks = [item for item in tasks if not item.checked]
    deps: dict[_Item, list[str]] = {}
    if any(item.depends_on is not None for item in items):
        for task in open_tasks:
            deps[task] = _explicit_deps(task, first_at, src)
    else:
        previous: list[_Item] = []
        current: list[_Item] = []
        for task in open_tasks:
            if not (current and task.group is not None and task.group == current[-1].group):
                previous, current = current, []
            current.append(task)
            deps[task] = [p.id for p in previous]
    out = [_markdown_task(task, deps[task]) for task in open_tasks]
    if not out:
        log.info("%s: every task is done; no tasks", src or "<input>")
    return out


def _explicit_deps(task: _Item, index: dict[str, _Item], src: str | None) -> list[str]:
    """The declared dependencies of ``task`` and of its epics, epics expanded and done tasks dropped."""
    out: list[str] = []
    for holder in [task, *task.ancestors()]:
        for target in holder.depends_on or ():
            other = index.get(target)
            problem = None
            if other is None:
                out.append(target)  # validate_graph names it as an unknown task
            elif other is holder:
                problem = "itself"
            elif holder in other.ancestors():
                problem = "one of its own tasks"
            elif other in holder.ancestors():
                problem = "the epic it belongs to"
            elif other.epic:
                out.extend(leaf.id for leaf in other.leaves() if not leaf.checked)
            elif not other.checked:
                out.append(target)
            if problem is not None:
                raise PlanError(f"{target!r} is {problem}", path=src, line=holder.lines["depends_on"], task=holder.id,
                                field="depends_on")  # fmt: skip
    return out


def _markdown_task(item: _Item, deps: Sequence[str]) -> Task:
    chain = item.ancestors()
    inherited: dict[str, str] = {}
    for holder in [item, *chain]:
        for key in ("category", "risk", "priority", "subagent"):
            if key in holder.single:
                inherited.setdefault(key, holder.single[key])
    body = "\n".join(item.lead)
    rest = textwrap.dedent("\n".join(item.text)).strip("\n")
    description = "\n\n".join(p for p in (body.strip(), rest) if p)
    if chain:
        part_of = "Part of: " + " > ".join(e.title for e in reversed(chain))
        context = [textwrap.dedent("\n".join(e.text)).strip("\n") for e in reversed(chain)]
        description = "\n\n".join(p for p in (description, part_of, *context) if p)
    return Task(
        id=item.id,
        title=item.title,
        description=description,
        category=inherited.get("category", "general"),
        requirements=unique([*item.requirements, *(r for e in chain for r in e.requirements)]),
        depends_on=unique(deps),
        group=item.group,
        risk=inherited.get("risk", "medium"),
        priority=inherited.get("priority", "P2"),
        acceptance=unique(item.acceptance),
        files=unique(item.files),
        subagent=inherited.get("subagent"),
        skills=unique([*item.skills, *(k for e in chain for k in e.skills)]),
        line=item.line,
        field_lines=dict(item.lines),
    )


def _markdown_items(text: str, src: str | None) -> list[_Item]:
    """Every checkbox item of the document, in order, with its fields, parents and children."""
    items: list[_Item] = []
    stack: list[_Item] = []
    fence: str | None = None
    in_comment = False
    for number, raw in enumerate(split_lines(text.removeprefix("\ufeff")), 1):
        line = raw.expandtabs(4).rstrip()
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if fence is not None:
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                fence = None
            continue
        if in_comment:
            in_comment = "-->" not in line
            continue
        if not stripped:
            if stack:
                stack[-1].text.append("")
            continue
        while stack and stack[-1].indent >= indent:
            stack.pop()
        m = _FENCE.match(line)
        if m:
            fence = m.group("fence")
            continue
        if stripped.startswith("<!--"):
            in_comment = "-->" not in stripped[4:]
            continue
        box = _CHECKBOX.fullmatch(line)
        if box:
            item = _new_item(box, number, len(items) + 1, src)
            if stack:
                item.parent = stack[-1]
                stack[-1].children.append(item)
                stack[-1].open_list = None
            stack.append(item)
            items.append(item)
        elif stack:
            _continuation(stack[-1], line, number, src)
    return items


def _new_item(box: re.Match[str], number: int, position: int, src: str | None) -> _Item:
    rest = box.group("rest") or ""
    flags = _GROUP_FLAG.findall(rest)
    group: str | None = None
    if flags:
        group = flags[0].strip()
        if len(flags) > 1:
            raise PlanError(f"more than one group flag ({', '.join(f'[P:{f.strip()}]' for f in flags)})", path=src,
                            line=number, field="group")  # fmt: skip
        if not _GROUP_NAME.fullmatch(group):
            raise PlanError(f"a group name matches [A-Za-z0-9._-]+, not {group!r}", path=src, line=number,
                            field="group")  # fmt: skip
        rest = _GROUP_FLAG.sub(" ", rest)
    requirements = REQUIREMENT.findall(rest)
    rest = _REQUIREMENT_LIST.sub(" ", rest).strip()
    wrapped = _WRAPPED_ID.match(rest)
    if wrapped and (wrapped["c1"] or wrapped["c2"]):
        rest = f"{wrapped['id']}:{rest[wrapped.end() :]}"
    tid: str | None = None
    m = _COLON_ID.fullmatch(rest) or _NUMBERED_ID.fullmatch(rest)
    if m:
        tid, rest = m.group("id"), m.group("title") or ""
    title = " ".join(rest.split()).strip(" -–—:")
    if len(title) > 4 and title.startswith(("**", "__")) and title.endswith(title[:2]):
        title = title[2:-2].strip()
    ident = tid or f"T{position}"
    if not title:
        raise PlanError("a task needs a title after its checkbox", path=src, line=number, task=ident, field="title")
    return _Item(number, len(box.group("indent")), box.group("mark") != " ", ident, title, group,
                 list(dict.fromkeys(requirements)))  # fmt: skip


def _continuation(item: _Item, line: str, number: int, src: str | None) -> None:
    content = line.strip()
    pad = line[: len(line) - len(line.lstrip(" "))]
    bullet = _BULLET.fullmatch(content)
    inner = bullet.group("rest") if bullet else content
    field = _parse_field(inner)
    if field is not None:
        key, value = field
        item.open_list = key if key in _LIST_FIELDS and not value else None
        item.list_pad = pad
        _set_field(item, key, value, number, src, pad=pad)
        return
    if item.open_list is not None and bullet:
        _set_field(item, item.open_list, inner, number, src, pad=item.list_pad)
        return
    item.open_list = None
    item.text.append(line)


def _parse_field(text: str) -> tuple[str, str] | None:
    m = _FIELD_BOLD.fullmatch(text) or _FIELD_PLAIN.fullmatch(text)
    if not m:
        return None
    key = " ".join(re.split(r"[\s_-]+", m.group("key").strip().lower()))
    known = _KEYS.get(key)
    return None if known is None else (known, m.group("value").strip())


def _tokens(value: str) -> list[str]:
    value = re.sub(r"\([^)]*\)", " ", value.replace("`", " ").replace("**", " "))
    words = [w.strip("[]{}\"'") for w in re.split(r"[,;\s]+", value)]
    words = [w for w in words if w and w.lower() not in ("and", "&")]
    return [] if len(words) == 1 and words[0].lower() in _NONE_WORDS else words


def _set_field(item: _Item, key: str, value: str, number: int, src: str | None, *, pad: str = "") -> None:
    def fail(problem: str) -> PlanError:
        return PlanError(problem, path=src, line=number, task=item.id, field=key)

    if key != "description":
        item.lines.setdefault(key, number)
    if key == "depends_on":
        if item.depends_on is None:
            item.depends_on = []
        for word in _tokens(value):
            if not TASK_ID.match(word):
                raise fail(f"a task id matches [A-Za-z0-9._-]+, not {word!r}")
            item.depends_on.append(word)
    elif key == "requirements":
        for word in _tokens(value):
            item.requirements.append(f"FR-{word}" if word.isdigit() else word)
        item.requirements[:] = list(dict.fromkeys(item.requirements))
    elif key == "acceptance":
        commands = [c.strip() for c in _BACKTICKED.findall(value) if c.strip()]
        item.acceptance.extend(commands)
        leftover = _BACKTICKED.sub(" ", value)
        if re.sub(r"(?i)[\s,;]|\band\b", "", leftover):
            if not item.prose_acceptance:
                item.text.append(f"{pad}Acceptance criteria:")
                item.prose_acceptance = True
            item.text.append(f"{pad}- {value}")
    elif key in ("files", "skills"):
        spans = [s.strip() for s in _BACKTICKED.findall(value) if s.strip()]
        (item.files if key == "files" else item.skills).extend(spans or _tokens(value))
    elif key == "description":
        item.lead.append(value)
    elif key == "group":
        word = value.strip().strip("`*_ ")
        if not _GROUP_NAME.fullmatch(word):
            raise fail(f"a group name matches [A-Za-z0-9._-]+, not {word!r}")
        if item.group is not None:
            raise fail(f"the item already has group {item.group!r}")
        item.group = word
    else:
        if key in item.single:
            raise fail(f"given twice (first {item.single[key]!r})")
        word = value.strip().strip("`*_ ")
        if not word:
            raise fail("empty value")
        if key == "risk":
            word = word.lower()
            if word not in RISKS:
                raise fail(f"unknown risk {word!r} (one of {', '.join(RISKS)})")
        elif key == "priority":
            m = re.fullmatch(r"[Pp]?([0-9]+)", word)
            if not m or f"P{m.group(1)}" not in PRIORITIES:
                raise fail(f"unknown priority {word!r} (one of {', '.join(PRIORITIES)})")
            word = f"P{m.group(1)}"
        item.single[key] = word
