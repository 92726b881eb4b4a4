"""YAML front matter of a markdown file: split from the body, read round trip, values set in place.

::

    head, front, closing, body = split(text)    # their concatenation is text; front None without front matter
    doc = load_front(front, 2, "prd.md")         # a ruamel.yaml round-trip mapping; bad YAML: PlanError
    new = set_values(text, {"prd.status": "done"}, "prd.md")

Setting values (:func:`set_values`) changes the values asked for and nothing
else: the new value is written over the old one's characters, so comments, key
order, quoting and the markdown body stay byte-identical.  Each edit is checked
by reading the result back with ruamel.yaml; only when a value cannot be edited
in place (a flow-style parent, a multi-line scalar) is the front matter written
by a ruamel.yaml round-trip instead.  :mod:`maestro.plan.prd` reads and updates
PRDs with it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from maestro.core import yamlio
from maestro.core.errors import PlanError, YamlError

__all__ = ["load_front", "plain", "set_values", "split"]

log = logging.getLogger(__name__)

_FENCE = re.compile(r"^(?:---|\.\.\.)[ \t]*$")


def _lines(text: str) -> list[str]:
    """``text`` in lines that keep their ends; only ``\\n`` ends a line (U+2028, form feeds are text)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def split(text: str) -> tuple[str, str | None, str, str]:
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


def load_front(front: str, first_line: int, src: str | None) -> CommentedMap:
    """The front matter as a round-trip mapping (empty when blank); not a mapping, or bad YAML: :class:`PlanError`."""
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


def plain(node: Any) -> Any:
    """A round-trip value as plain dicts, lists, strings and datetimes (what a :class:`~maestro.plan.prd.Prd` holds)."""
    if isinstance(node, Mapping):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, _dt.datetime):
        return _dt.datetime(*node.timetuple()[:6], node.microsecond, tzinfo=node.tzinfo)
    if isinstance(node, str):
        return str(node)
    return node


def set_values(text: str, changes: Mapping[str, Any], src: str | None) -> str:
    """``text`` with the front-matter values at the dotted paths of ``changes`` set, and nothing else changed.

    Values are strings, numbers, or timezone-aware datetimes (written as
    ``2026-01-07T12:37:18Z``).  A text without front matter gets one.
    """
    head, front, closing, body = split(text)
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
    doc = load_front(front, 2, src)
    target = load_front(front, 2, src)
    _set(target, path, value)
    expected = plain(target)  # through ruamel, so that what aliases share changes with it
    try:
        edited = _edit_in_place(front, doc, path, value)
        if edited is not None and plain(load_front(edited, 2, src)) == expected:
            return edited
    except (ValueError, IndexError, KeyError, AttributeError, TypeError, PlanError):
        pass
    log.warning("%s: front matter rewritten by ruamel.yaml to set %s (it could not be edited in place)",
                src or "PRD", ".".join(path))  # fmt: skip
    _set(doc, path, value)
    out = _dump(doc, front)
    if plain(load_front(out, 2, src)) != expected:
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
