"""Product requirements documents: read the requirements, update the front matter in place.

A PRD is markdown with YAML front matter, as the flow commands write it
(``docs/formats.md`` describes it; the seed PRD of this project is an
example)::

    ---
    prd: {version: v1, feature_name: calculator, status: draft}  # or block style
    git: {branch: feat-calc, updated_at_commit: b9dc8fd}
    metadata: {created_at: 2026-01-07T10:00:00Z, updated_at: 2026-01-07T12:37:18Z}
    priorities:
      requirements:
        - id: FR-1
          text: "Add two numbers"
          priority: P0
    ---
    # Product Requirements Document: Calculator
    ...

The requirements come from ``priorities.requirements`` in the front matter, or
— a PRD without them — from the table under the "Functional Requirements"
heading of the body (``| ID | Requirement | Priority | Notes |``).

Updating (:func:`update_prd_text`, :func:`update_prd`) changes the values asked
for and nothing else: the new value is written over the old one's characters,
so comments, key order, quoting and the markdown body stay byte-identical.  Each
edit is checked by reading the result back with ruamel.yaml; only when a value
cannot be edited in place (a flow-style parent, a multi-line scalar) is the
front matter written by a ruamel.yaml round-trip instead.  The front matter
itself (splitting it off, reading it, editing it in place) is
:mod:`maestro.plan.frontmatter`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from maestro.core.errors import PlanError
from maestro.core.text import InputTooLarge, read_input
from maestro.plan.frontmatter import load_front, plain, set_values, split
from maestro.store.filestore import atomic_write

__all__ = [
    "PRD_PRIORITIES",
    "Prd",
    "Requirement",
    "load_prd",
    "parse_prd",
    "update_prd",
    "update_prd_text",
]

log = logging.getLogger(__name__)

PRD_PRIORITIES = ("P0", "P1", "P2", "P3", "P4")
REQUIREMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*\Z")
UPDATABLE = ("prd.status", "git.updated_at_commit", "metadata.updated_at")


@attrs.frozen
class Requirement:
    """One requirement: id (``FR-1``), text and priority (``P0`` … ``P4``); ``line`` is where it was read."""

    id: str
    text: str
    priority: str = "P2"
    notes: str = ""
    line: int | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def blocking(self) -> bool:
        """A P0 or P1 requirement: validation fails while it is not met."""
        return self.priority in ("P0", "P1")


@attrs.frozen
class Prd:
    """A parsed PRD.  ``text`` is the file as read; ``front_matter`` its YAML as plain data ({} if none)."""

    text: str
    front_matter: Mapping[str, Any]
    body: str
    requirements: tuple[Requirement, ...]
    source: str | None = None

    @property
    def requirement_ids(self) -> frozenset[str]:
        return frozenset(r.id for r in self.requirements)

    def requirement(self, rid: str) -> Requirement:
        for r in self.requirements:
            if r.id == rid:
                return r
        raise KeyError(rid)

    def get(self, dotted: str, default: Any = None) -> Any:
        """A front-matter value by dotted path (``prd.status``), or ``default``."""
        node: Any = self.front_matter
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def title(self) -> str:
        """The body's first ``#`` heading, else the feature name, else ""."""
        for line in self.body.lstrip("\ufeff").split("\n"):
            if line.startswith("# "):
                return line[2:].strip()
        return str(self.get("prd.feature_name", "") or "")

    @property
    def status(self) -> str | None:
        value = self.get("prd.status")
        return None if value is None else str(value)


# -- reading ----------------------------------------------------------------------------------------------------


def parse_prd(text: str, source: str | Path | None = None) -> Prd:
    """Read a PRD; malformed front matter or requirements raise :class:`~maestro.PlanError` naming the line."""
    src = None if source is None else str(source)
    try:
        _head, front, _closing, body = split(text)
    except PlanError as exc:
        raise PlanError(exc.problem, path=src, line=exc.line) from None
    doc = load_front(front, 2, src) if front is not None else CommentedMap()
    reqs = _front_requirements(doc, 2, src)
    if not reqs:  # absent or empty: the body's table
        reqs = _table_requirements(body, text.count("\n", 0, len(text) - len(body)), src)
    if not reqs:
        raise PlanError("no requirements: expected priorities.requirements in the front matter or a table under a "
                        "'Functional Requirements' heading", path=src)  # fmt: skip
    seen: dict[str, Requirement] = {}
    for r in reqs:
        if r.id in seen:
            raise PlanError(f"duplicate requirement id {r.id!r} (first at line {seen[r.id].line})", path=src,
                            line=r.line, field="id")  # fmt: skip
        seen[r.id] = r
    return Prd(text, plain(doc), body, tuple(reqs), src)


def _front_requirements(doc: CommentedMap, first: int, src: str | None) -> list[Requirement] | None:
    prio = doc.get("priorities")
    if not isinstance(prio, CommentedMap) or "requirements" not in prio:
        return None
    items = prio["requirements"]
    where = "priorities.requirements"
    if not isinstance(items, CommentedSeq):
        raise PlanError("expected a list of requirements", path=src, line=_key_line(prio, "requirements", first, None),
                        field=where)  # fmt: skip
    out = []
    for i, item in enumerate(items):
        line = items.lc.item(i)[0] + first
        if not isinstance(item, CommentedMap):
            raise PlanError(f"requirement #{i + 1} is a mapping with id, text and priority", path=src, line=line,
                            field=where)  # fmt: skip
        values: dict[str, str] = {}
        lines: dict[str, int] = {}
        for key in ("id", "text", "priority"):
            value = item.get(key)
            at = _key_line(item, key, first, line)
            if at is not None:
                lines[key] = at
            if key == "priority" and value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                problem = "missing" if value is None else f"expected a string, not {value!r}"
                raise PlanError(f"requirement #{i + 1}: {problem}", path=src, line=at, field=f"{where}.{key}")
            values[key] = str(value).strip()
        out.append(_requirement(values, line, src, f"{where}.", lines))
    return out


def _key_line(node: Any, key: str, first: int, default: int | None) -> int | None:
    """The line ``key`` is on in ``node`` (a merged ``<<`` key has none of its own: ``default``)."""
    try:
        return int(node.lc.key(key)[0]) + first
    except (KeyError, TypeError, AttributeError, IndexError):
        return default


def _requirement(
    values: Mapping[str, str], line: int | None, src: str | None, prefix: str, lines: Mapping[str, int] | None = None
) -> Requirement:
    """A checked requirement; ``lines`` says which line each field was on (else ``line``)."""
    at = lines or {}
    rid = values["id"]
    if not REQUIREMENT_ID.match(rid):
        raise PlanError(f"requirement id {rid!r} is not an id like FR-1", path=src, line=at.get("id", line),
                        field=f"{prefix}id")  # fmt: skip
    priority = values.get("priority", "P2").upper()
    if priority not in PRD_PRIORITIES:
        raise PlanError(f"requirement {rid}: unknown priority {values['priority']!r} (one of "
                        f"{', '.join(PRD_PRIORITIES)})", path=src, line=at.get("priority", line),
                        field=f"{prefix}priority")  # fmt: skip
    return Requirement(rid, values["text"], priority, values.get("notes", ""), line)


_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_FR_HEADING = re.compile(r"(?:[0-9]+(?:\.[0-9]+)*\.?\s+)?functional requirements\b", re.IGNORECASE)  # not "Non-…"
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _cells(line: str) -> list[str]:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(row)]


def _table_requirements(body: str, offset: int, src: str | None) -> list[Requirement]:
    lines = [line.rstrip("\r") for line in body.split("\n")]  # not str.splitlines: U+2028 is text in a cell
    in_section = False
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            in_section = bool(_FR_HEADING.match(heading.group(1)))
        elif in_section and line.lstrip().startswith("|") and i + 1 < len(lines) and _RULE.match(lines[i + 1]):
            header = [h.lower().strip("* ") for h in _cells(line)]
            columns = {
                name: header.index(name) for name in ("id", "requirement", "priority", "notes") if name in header
            }
            if "id" not in columns or "requirement" not in columns:
                raise PlanError("the Functional Requirements table needs ID and Requirement columns", path=src,
                                line=offset + i + 1)  # fmt: skip
            out = []
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                cells = _cells(lines[j])
                if len(cells) < len(header):
                    raise PlanError(f"the row has {len(cells)} cells, the header {len(header)}", path=src,
                                    line=offset + j + 1)  # fmt: skip
                values: dict[str, str] = {name: cells[k] for name, k in columns.items()}
                values["text"] = values.pop("requirement")
                if not values.get("priority"):
                    values.pop("priority", None)
                for key in ("id", "text"):
                    if not values[key]:
                        raise PlanError(f"empty {key} cell", path=src, line=offset + j + 1, field=key)
                out.append(_requirement(values, offset + j + 1, src, ""))
                j += 1
            return out
        i += 1
    return []


def load_prd(path: str | Path) -> Prd:
    """Read the PRD at ``path``; a missing or unreadable file is a :class:`~maestro.PlanError`."""
    p = Path(path)
    return parse_prd(read_plan_text(p, "a PRD"), p)


def read_plan_text(p: Path, what: str) -> str:
    """The UTF-8 text of a plan file (line endings as written); any failure is a one-line PlanError.

    A file larger than :data:`~maestro.core.text.MAX_INPUT_BYTES` is refused before it is read (a device or a
    pipe: after one byte more than that).
    """
    try:
        raw = read_input(p)
    except FileNotFoundError:
        raise PlanError("no such file", path=p) from None
    except IsADirectoryError:
        raise PlanError(f"is a directory, not {what}", path=p) from None
    except InputTooLarge as exc:
        raise PlanError(exc.problem, path=p) from None
    except OSError as exc:
        raise PlanError(f"cannot read: {exc.strerror or exc}", path=p) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"not UTF-8 text (byte {exc.start})", path=p, line=raw.count(b"\n", 0, exc.start) + 1) from None


# -- updating ---------------------------------------------------------------------------------------------------


def update_prd_text(text: str, changes: Mapping[str, Any], source: str | Path | None = None) -> str:
    """``text`` with the front-matter values at the dotted paths of ``changes`` set, and nothing else changed.

    Paths are ``prd.status``, ``git.updated_at_commit``, ``metadata.updated_at``
    (any ``section.key`` works).  Values are strings, or datetimes (written as
    ``2026-01-07T12:37:18Z``).  A PRD without front matter gets one.
    """
    src = None if source is None else str(source)
    parse_prd(text, src)  # refuse to edit what does not read
    return set_values(text, changes, src)


def update_prd(path: str | Path, **changes: Any) -> Prd:
    """Update the PRD file at ``path`` in place (atomically) and return it re-read.

    Keyword names are the last part of the dotted path: ``status`` (``prd.status``),
    ``updated_at_commit`` (``git.updated_at_commit``), ``updated_at`` (``metadata.updated_at``).
    """
    by_name = {d.rsplit(".", 1)[1]: d for d in UPDATABLE}
    unknown = [k for k in changes if k not in by_name]
    if unknown:
        raise PlanError(f"cannot update {unknown[0]!r}: one of {', '.join(by_name)}", path=path)
    p = Path(path)
    new = update_prd_text(read_plan_text(p, "a PRD"), {by_name[k]: v for k, v in changes.items()}, p)
    atomic_write(p, new)
    return parse_prd(new, p)
