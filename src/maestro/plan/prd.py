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
front matter written by a ruamel.yaml round-trip instead.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from maestro.core import yamlio
from maestro.core.errors import PlanError, YamlError
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

_FENCE = re.compile(r"^(?:---|\.\.\.)[ \t]*$")


def _lines(text: str) -> list[str]:
    """``text`` in lines that keep their ends; only ``\\n`` ends a line (U+2028, form feeds are text)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _split(text: str) -> tuple[str, str | None, str, str]:
    """(opening line, front matter or None, closing line, body): their concatenation is ``text``."""
    lines = _lines(text)
    if not lines or lines[0].lstrip("\ufeff").rstrip() != "---":
        return "", None, "", text
    for i in range(1, len(lines)):
        if _FENCE.match(lines[i].rstrip("\r\n")):
            return lines[0], "".join(lines[1:i]), lines[i], "".join(lines[i + 1 :])
    raise PlanError("the front matter opened by '---' on line 1 is never closed by a '---' line", line=1)


def _load(text: str, first_line: int = 1) -> Any:
    """Front matter (or a value) read round trip, quotes kept; problems are :class:`YamlError`."""
    return yamlio.load(text, rt=True, preserve_quotes=True, first_line=first_line)


def _load_front(front: str, first_line: int, src: str | None) -> CommentedMap:
    try:
        doc = _load(front, first_line)
    except YamlError as exc:
        problem = f"YAML syntax: {exc.problem}" if exc.kind == "syntax" else exc.problem
        raise PlanError(f"front matter: {problem}", path=src, line=exc.line) from exc
    if doc is None:
        return CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise PlanError("the front matter is a YAML mapping", path=src, line=first_line)
    return doc


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, _dt.datetime):
        return _dt.datetime(*node.timetuple()[:6], node.microsecond, tzinfo=node.tzinfo)
    if isinstance(node, str):
        return str(node)
    return node


def parse_prd(text: str, source: str | Path | None = None) -> Prd:
    """Read a PRD; malformed front matter or requirements raise :class:`~maestro.PlanError` naming the line."""
    src = None if source is None else str(source)
    try:
        _head, front, _closing, body = _split(text)
    except PlanError as exc:
        raise PlanError(exc.problem, path=src, line=exc.line) from None
    doc = _load_front(front, 2, src) if front is not None else CommentedMap()
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
    return Prd(text, _plain(doc), body, tuple(reqs), src)


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
    """The UTF-8 text of a plan file (line endings as written); any failure is a one-line PlanError."""
    try:
        with p.open(encoding="utf-8", newline="") as f:  # keep \r\n as written
            return f.read()
    except FileNotFoundError:
        raise PlanError("no such file", path=p) from None
    except IsADirectoryError:
        raise PlanError(f"is a directory, not {what}", path=p) from None
    except UnicodeDecodeError as exc:
        raise PlanError(f"not UTF-8 text (byte {exc.start})", path=p) from exc
    except OSError as exc:
        raise PlanError(f"cannot read: {exc.strerror or exc}", path=p) from exc


# -- updating ---------------------------------------------------------------------------------------------------


def update_prd_text(text: str, changes: Mapping[str, Any], source: str | Path | None = None) -> str:
    """``text`` with the front-matter values at the dotted paths of ``changes`` set, and nothing else changed.

    Paths are ``prd.status``, ``git.updated_at_commit``, ``metadata.updated_at``
    (any ``section.key`` works).  Values are strings, or datetimes (written as
    ``2026-01-07T12:37:18Z``).  A PRD without front matter gets one.
    """
    src = None if source is None else str(source)
    parse_prd(text, src)  # refuse to edit what does not read
    head, front, closing, body = _split(text)
    if front is None:
        doc = CommentedMap()
        for dotted, value in changes.items():
            _set(doc, _path(dotted), _value(value))
        nl = "\r\n" if "\r\n" in text else "\n"
        bom = "\ufeff" if text.startswith("\ufeff") else ""  # a byte-order mark stays the first character
        return bom + nl.join(f"---\n{_dump(doc, None)}---\n".split("\n")) + text[len(bom) :]
    for dotted, value in changes.items():
        front = _edit(front, _path(dotted), _value(value), src)
    return head + front + closing + body


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


def _path(dotted: str) -> list[str]:
    parts = dotted.split(".")
    if not all(parts):
        raise PlanError(f"bad front-matter path {dotted!r}")
    return parts


def _value(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise PlanError("a timestamp for the front matter must be timezone-aware")
        t = value.astimezone(_dt.UTC).replace(microsecond=0)
        return _Stamp(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PlanError(f"a front-matter value is a string, number or datetime, not {value!r}")
    return value


class _Stamp(str):
    """A timestamp to write plain (it reads back as a timestamp)."""


def _set(doc: CommentedMap, path: list[str], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        if part not in node or node[part] is None:
            node[part] = CommentedMap()
        node = node[part]
        if not isinstance(node, CommentedMap):
            raise PlanError(f"front matter: {'.'.join(path[:-1])} is not a mapping")
    node[path[-1]] = _parsed(value)


def _parsed(value: Any) -> Any:
    if isinstance(value, _Stamp):
        return _load(f"v: {value}")["v"]
    return value


def _dump(doc: CommentedMap, like: str | None) -> str:
    best = None
    for indent in ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4)):
        if like is None or yamlio.dump(_load(like), rt=True, indent=indent) == like:
            best = indent
            break
    return yamlio.dump(doc, rt=True, indent=best or (2, 4, 2))


def _scalar_text(value: Any, quote: str) -> str:
    """``value`` as a YAML scalar token, in the old token's quoting (``'``, ``"`` or plain)."""
    if isinstance(value, _Stamp):
        text = str(value)
        if quote == '"':
            return json.dumps(text)
        return f"'{text}'" if quote == "'" else text
    if isinstance(value, str):
        if quote == '"':
            return json.dumps(value, ensure_ascii=False)
        if quote == "'":
            return "'" + value.replace("'", "''") + "'"
    token = yamlio.dump({"v": value}, rt=True)[3:].rstrip("\n")
    if "\n" in token:
        raise ValueError("multi-line")
    return token


def _token_end(line: str, col: int, *, flow: bool = False) -> int:
    """Where the scalar token starting at ``col`` ends (plain tokens stop before a comment; in flow style also
    before ``,`` ``}`` ``]``; an alias ``*name`` at the first blank)."""
    if line[col] == '"':
        i = col + 1
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                return i + 1
            i += 1
        raise ValueError("unclosed")
    if line[col] == "'":
        i = col + 1
        while i < len(line):
            if line[i] == "'":
                if i + 1 < len(line) and line[i + 1] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        raise ValueError("unclosed")
    end = len(line.rstrip("\r\n"))
    stops = [" #", "\t#"]
    if flow:
        stops += [",", "}", "]"]
    if line[col] == "*":
        stops += [" ", "\t"]
    for stop in stops:
        at = line.find(stop, col)
        if at != -1:
            end = min(end, at)
    return len(line[:end].rstrip())


def _edit(front: str, path: list[str], value: Any, src: str | None) -> str:
    """``front`` with ``path`` set to ``value``, edited in place where it can be, else round-tripped."""
    doc = _load_front(front, 2, src)
    target = _load_front(front, 2, src)
    _set(target, path, value)
    expected = _plain(target)  # through ruamel, so that what aliases share changes with it
    try:
        edited = _edit_in_place(front, doc, path, value)
        if edited is not None and _plain(_load_front(edited, 2, src)) == expected:
            return edited
    except (ValueError, IndexError, KeyError, AttributeError, TypeError, PlanError):
        pass
    log.warning("%s: front matter rewritten by ruamel.yaml to set %s (it could not be edited in place)",
                src or "PRD", ".".join(path))  # fmt: skip
    _set(doc, path, value)
    out = _dump(doc, front)
    if _plain(_load_front(out, 2, src)) != expected:
        raise PlanError(f"front matter: cannot set {'.'.join(path)} without changing other values", path=src)
    return out


def _edit_in_place(front: str, doc: CommentedMap, path: list[str], value: Any) -> str | None:
    lines = _lines(front)
    parent: Any = doc
    for part in path[:-1]:
        if part not in parent:
            return _insert(lines, doc, path, value)
        parent = parent[part]
        if not isinstance(parent, CommentedMap):
            return None
    key = path[-1]
    flow = parent.fa.flow_style()
    if key not in parent:
        return None if flow else _insert(lines, doc, path, value)
    if isinstance(parent[key], (CommentedMap, CommentedSeq)):
        return None
    if parent[key] is None and not flow:  # "status:" with nothing after it: the value goes after the colon
        line_no, col = parent.lc.key(key)
        line = lines[line_no]
        colon = line.index(":", col)
        rest = line[colon + 1 :]
        newline = rest[len(rest.rstrip("\r\n")) :]
        comment = rest.strip(" \t\r\n")
        if comment and not comment.startswith("#"):
            return None
        lines[line_no] = line[: colon + 1] + " " + _scalar_text(value, "") + (f"  {comment}" if comment else "")
        lines[line_no] += newline
        return "".join(lines)
    line_no, col = parent.lc.value(key)
    key_line, key_col = parent.lc.key(key)
    if not flow and line_no != key_line:  # an alias points at its anchor's node: find "*name" after the colon
        line_no = key_line
        rest = lines[line_no][key_col:]
        colon = rest.find(":")
        col = key_col + colon + 1 + (len(rest[colon + 1 :]) - len(rest[colon + 1 :].lstrip(" \t")))
        if colon == -1 or lines[line_no][col : col + 1] != "*":
            return None
    line = lines[line_no]
    if line[col] in "|>&!":
        return None
    end = _token_end(line, col, flow=flow)
    quote = line[col] if line[col] in "'\"" else ""
    token = _scalar_text(value, quote)
    if flow and quote == "" and any(c in token for c in ",{}[]"):
        token = _scalar_text(value, '"')
    lines[line_no] = line[:col] + token + line[end:]
    return "".join(lines)


def _insert(lines: list[str], doc: CommentedMap, path: list[str], value: Any) -> str:
    """Add a missing key (and its missing parents) as new lines at the end of the nearest existing mapping."""
    node: Any = doc
    depth = 0
    for part in path[:-1]:
        if part not in node:
            break
        node = node[part]
        depth += 1
    if not isinstance(node, CommentedMap) or node.fa.flow_style():
        raise ValueError("flow style")
    missing = path[depth:]
    nl = "\r\n" if any(line.endswith("\r\n") for line in lines) else "\n"
    if node is doc:
        indent = 0
        at = len(lines)
    else:
        keys = list(node)
        if not keys:
            raise ValueError("empty mapping")
        indent = node.lc.key(keys[0])[1]
        at = _block_end(lines, node.lc.key(keys[0])[0], indent)
    new = []
    for k, part in enumerate(missing):
        pad = " " * (indent + 2 * k)
        if k == len(missing) - 1:
            new.append(f"{pad}{part}: {_scalar_text(value, '')}{nl}")
        else:
            new.append(f"{pad}{part}:{nl}")
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += nl
    return "".join(lines[:at] + new + lines[at:])


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The line after the last line of the block whose keys sit at column ``indent``, from ``start``."""
    last = start
    for i in range(start + 1, len(lines)):
        text = lines[i]
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(text) - len(text.lstrip(" ")) < indent:
            break
        last = i
    return last + 1
