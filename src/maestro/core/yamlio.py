"""The one way maestro reads and writes YAML (ruamel.yaml).

:func:`load` reads a document, safe (plain dicts, lists and scalars) or
round-trip (``rt=True``: ruamel's commented maps and sequences, which know
their lines and keep comments and quoting for a later :func:`dump`).  Every
read has the same guards:

* at most ``max_bytes`` of text (:data:`MAX_BYTES`, the limit of every input
  file, :data:`~maestro.core.text.MAX_INPUT_BYTES`: 10 MiB, by default);
* duplicate keys refused (unless ``allow_duplicates``), in an ``!!omap`` too;
* a value its tag cannot make (a bad date, ``!!float abc``, an integer of more
  digits than Python converts, :func:`sys.get_int_max_str_digits`) refused
  with the line of the value, whatever ruamel raised for it;
* at most ``max_nodes`` nodes once aliases are expanded (:data:`MAX_NODES`):
  the composed document is counted, each alias counting the whole node it
  names, so that a "billion laughs" of nested aliases is refused in a few
  milliseconds, before anything walks or converts its data; an alias inside
  the node it names (a recursive document) is refused too, unless
  ``recursive`` (the caller checks it itself).

Nothing is printed: ruamel's warnings (an anchor defined again, a YAML 1.1 float
without a dot) are not raised, and what a failed load leaves is closed quietly.
Any problem is a :class:`~maestro.core.errors.YamlError`, one line,
``<file>:<line>: <problem>``, whose ``kind`` tells a syntax error (a duplicate
key is one) from a value its tag cannot make, a document nested too deeply,
too large, or whose aliases expand too far.  Readers translate it into their
own error (``PlanError``, ``ConfigError``, ...).

:func:`dump` writes data back (``rt=True`` for what a round-trip load read).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
from collections.abc import Iterator
from itertools import chain
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from maestro.core.errors import YamlError
from maestro.core.text import MAX_INPUT_BYTES, one_line

__all__ = ["MAX_BYTES", "MAX_NODES", "YamlError", "dump", "load"]

MAX_BYTES = MAX_INPUT_BYTES
"""The largest document :func:`load` reads by default, in bytes (UTF-8): the limit of every input file."""

MAX_NODES = 1_000_000
"""The most nodes a document may have by default, each alias counting the nodes of what it names."""

_PROBLEM_CHARS = 400  # a problem quotes values (a duplicate key's): long ones are cut


class _Refused(Exception):
    """The document is refused: ``node`` is where, ``problem`` why, ``kind`` as :class:`YamlError` has it."""

    def __init__(self, node: Any, problem: str, kind: str = "aliases") -> None:
        super().__init__(problem)
        self.node = node
        self.problem = problem
        self.kind = kind


def _children(node: Any) -> Any:
    if isinstance(node, MappingNode):
        return chain.from_iterable(node.value)  # keys and values
    if isinstance(node, SequenceNode):
        return iter(node.value)
    return None


def _check_expansion(root: Any, limit: int, recursive: bool) -> None:
    """Refuse ``root`` if it has more than ``limit`` nodes with its aliases expanded (or, unless ``recursive``,
    holds itself).  Each node is counted once, its size remembered: the cost follows the document's length."""
    sizes: dict[int, int] = {}
    kids = _children(root)
    if kids is None:
        return
    busy = {id(root)}
    stack: list[tuple[Any, Any]] = [(root, kids)]
    totals = [1]
    while stack:
        node, kids = stack[-1]
        for kid in kids:
            size = sizes.get(id(kid))
            if size is None:
                grandkids = _children(kid)
                if grandkids is None:  # a scalar
                    size = 1
                elif id(kid) in busy:
                    if not recursive:
                        raise _Refused(kid, "an alias names a node that holds it (a recursive document)")
                    size = 1
                else:
                    busy.add(id(kid))
                    stack.append((kid, grandkids))
                    totals.append(1)
                    break
            totals[-1] += size
            if totals[-1] > limit:
                raise _Refused(node, f"aliases expand the document to more than {limit:,} nodes")
        else:
            stack.pop()
            busy.discard(id(node))
            sizes[id(node)] = size = totals.pop()
            if totals:
                totals[-1] += size
                if totals[-1] > limit:
                    raise _Refused(stack[-1][0], f"aliases expand the document to more than {limit:,} nodes")


class _Composer(Composer):
    """ruamel's composer, counting each document it composes (see :func:`_check_expansion`).

    An anchor defined again is YAML (an alias names the latest): no warning (the library never prints).
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False

    def compose_document(self) -> Any:
        node = super().compose_document()
        loader = self.loader
        if isinstance(loader, _Yaml) and node is not None:
            _check_expansion(node, loader.max_nodes, loader.recursive)
        return node


_TAGS = "tag:yaml.org,2002:"
_OMAP = _TAGS + "omap"

# What a constructor of ruamel raises for a scalar it cannot make (a ValueError: a bad date, "!!float x", an integer
# past Python's digit limit), or for a tag on a node it does not fit (TypeError, KeyError ... : "!!int" on nothing,
# "!!bool maybe"), or for a duplicate key of an !!omap (an assert).
_VALUE_ERRORS = (ValueError, TypeError, ArithmeticError, LookupError, AttributeError, AssertionError)


def _tag(node: Any) -> str:
    tag = str(getattr(node, "tag", "") or "")
    return "!!" + tag[len(_TAGS) :] if tag.startswith(_TAGS) else tag


def _node_shown(node: Any) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    value = str(getattr(node, "value", ""))
    return one_line(repr(value), 60) if value else "an empty value"


def _max_int_bits() -> int:
    """The most bits an integer may have: one more could have more decimal digits than ``str`` converts."""
    digits = sys.get_int_max_str_digits()
    return sys.maxsize if digits == 0 else math.floor(digits * math.log2(10))


def _value_problem(node: Any, exc: BaseException) -> str:
    if isinstance(exc, AssertionError) and getattr(node, "tag", None) == _OMAP:  # keys equal once made: 1 and 01
        return "found duplicate key in an !!omap"
    if isinstance(exc, ValueError):
        why = _flat(str(exc).split("\n", 1)[0])
        if "integer string conversion" in why:  # Python's limit on the digits of an int (CVE-2020-10735)
            return f"a value cannot be read: an integer of more than {sys.get_int_max_str_digits():,} digits"
        if why:
            return f"a value cannot be read: {one_line(why, _PROBLEM_CHARS)}"
    return f"a value cannot be read: {_node_shown(node)} is not a valid {_tag(node) or 'value'}"


def _omap_duplicate(node: Any, first_line: int) -> None:
    """Refuse an ``!!omap`` that gives a key twice (ruamel only asserts it, and not at all under ``python -O``);
    ``first_line`` is the file line the text starts on."""
    if not isinstance(node, SequenceNode):
        return
    seen: dict[tuple[Any, Any], Any] = {}
    for item in node.value:
        if isinstance(item, MappingNode) and len(item.value) == 1 and isinstance(item.value[0][0], ScalarNode):
            key = item.value[0][0]
            first = seen.setdefault((key.tag, key.value), key)
            if first is not key:
                at = first.start_mark.line + first_line
                raise _Refused(key, f"found duplicate key {_node_shown(key)} in an !!omap (first at line {at})",
                               kind="syntax")  # fmt: skip


def _guarded(generator: Iterator[Any], node: Any) -> Iterator[Any]:
    """A constructor's generator (its data filled in later): what it raises names ``node``."""
    try:
        yield from generator
    except _Refused:
        raise
    except _VALUE_ERRORS as exc:
        raise _Refused(node, _value_problem(node, exc), kind="value") from None


class _Guard:
    """A constructor whose failures name the node they happened at (see :func:`_value_problem`)."""

    state_generators: list[Any]
    started: list[Any]  # every generator left waiting at its first yield, to close it when the load fails

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = []

    def close_started(self) -> None:
        """Close the generators a failed load left waiting: ruamel's ``construct_unknown`` raises when closed, which
        Python would print ("Exception ignored in …") when it collects them."""
        started, self.started, self.state_generators = self.started, [], []
        for generator in started:
            with contextlib.suppress(Exception):
                generator.close()

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        if node.tag == _OMAP:
            _omap_duplicate(node, getattr(self.loader, "first_line", 1))  # type: ignore[attr-defined]
        queued = len(self.state_generators)
        try:
            data = super().construct_non_recursive_object(node, tag)  # type: ignore[misc]
        except _Refused:
            raise
        except _VALUE_ERRORS as exc:
            raise _Refused(node, _value_problem(node, exc), kind="value") from None
        if len(self.state_generators) > queued:  # a generator fills ``data`` later: its failures name this node
            self.started.extend(self.state_generators[queued:])
            self.state_generators[queued:] = [_guarded(g, node) for g in self.state_generators[queued:]]
        if isinstance(data, int) and data.bit_length() > _max_int_bits():  # 0b…, 0x…: no decimal digits to refuse
            digits = sys.get_int_max_str_digits()
            raise _Refused(node, f"a value cannot be read: an integer of more than {digits:,} digits", kind="value")
        return data

    def construct_yaml_float(self, node: Any) -> Any:
        """A YAML 1.1 float whose mantissa has no dot (``1e3``) read as YAML 1.2 reads it: ruamel warns about it
        (``warnings.warn`` prints, and the library never prints)."""
        text = str(node.value).replace("_", "").lower() if isinstance(node, ScalarNode) else ""
        no_dot = "e" in text and ":" not in text and "." not in text.split("e", 1)[0]
        if no_dot and self.resolver.processing_version != (1, 2):  # type: ignore[attr-defined]
            return float(text)  # a ValueError for "1e", as ruamel's own would be
        return super().construct_yaml_float(node)  # type: ignore[misc]


class _SafeConstructor(_Guard, SafeConstructor):
    pass


class _RoundTripConstructor(_Guard, RoundTripConstructor):
    pass


_SafeConstructor.add_constructor(_TAGS + "float", _SafeConstructor.construct_yaml_float)
_RoundTripConstructor.add_constructor(_TAGS + "float", _RoundTripConstructor.construct_yaml_float)


class _Yaml(YAML):
    """A reader with maestro's limits."""

    max_nodes: int = MAX_NODES
    recursive: bool = False
    first_line: int = 1


def _flat(text: object) -> str:
    return " ".join(str(text).split())


def load(
    text: str,
    *,
    path: str | os.PathLike[str] | None = None,
    rt: bool = False,
    allow_duplicates: bool = False,
    preserve_quotes: bool = False,
    first_line: int = 1,
    max_bytes: int = MAX_BYTES,
    max_nodes: int = MAX_NODES,
    recursive: bool = False,
) -> Any:
    """The data of the YAML document ``text`` (None for an empty one); any problem is a :class:`YamlError`.

    ``path`` names the document in errors; ``first_line`` is the file line the
    text starts on (2 for front matter after its ``---``), so that errors name
    lines of the file.  ``rt`` reads round-trip (with ``preserve_quotes``, quoted
    strings stay quoted when dumped again).
    """
    src = None if path is None else os.fspath(path)
    size = len(text) if len(text) * 4 <= max_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise YamlError(f"too large to read: {size:,} bytes, more than {max_bytes:,}", path=src, kind="size")
    yaml = _Yaml(typ="rt" if rt else "safe", pure=True)
    yaml.Composer = _Composer
    yaml.Constructor = _RoundTripConstructor if rt else _SafeConstructor
    yaml.allow_duplicate_keys = allow_duplicates
    if preserve_quotes:
        yaml.preserve_quotes = True
    yaml.max_nodes = max_nodes
    yaml.recursive = recursive
    yaml.first_line = first_line
    try:
        try:
            return yaml.load(text)
        finally:
            constructor = getattr(yaml, "_constructor", None)
            if isinstance(constructor, _Guard):
                constructor.close_started()
    except _Refused as exc:
        mark = getattr(exc.node, "start_mark", None)
        line = None if mark is None else mark.line + first_line
        raise YamlError(exc.problem, path=src, line=line, kind=exc.kind) from None
    except ConstructorError as exc:  # a tag its node does not fit, or no constructor for it: a value, at its line
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + first_line
        problem = _flat(exc.problem or exc.context or "malformed value")
        raise YamlError(one_line(f"a value cannot be read: {problem}", _PROBLEM_CHARS), path=src, line=line,
                        kind="value") from None  # fmt: skip
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + first_line
        problem = _flat(exc.problem or exc.context or "malformed YAML")
        if exc.problem and exc.context and problem.startswith("but "):  # "expected a single document …, but found …"
            problem = f"{_flat(exc.context)}, {problem}"
        raise YamlError(one_line(problem, _PROBLEM_CHARS), path=src, line=line) from None
    except ReaderError as exc:  # a character YAML does not allow: at a position, not a mark
        line = text.count("\n", 0, exc.position) + first_line if isinstance(exc.position, int) else None
        problem = _flat(str(exc).split("\n", 1)[0])
        raise YamlError(one_line(problem, _PROBLEM_CHARS), path=src, line=line) from None
    except YAMLError as exc:
        raise YamlError(one_line(_flat(exc), _PROBLEM_CHARS), path=src) from None
    except (RecursionError, MemoryError):
        raise YamlError("nested too deeply to read", path=src, kind="depth") from None
    except _VALUE_ERRORS as exc:  # outside any node's constructor (the guard names the node of every other)
        raise YamlError(_value_problem(None, exc), path=src, kind="value") from None


def dump(data: Any, *, rt: bool = False, width: int = 4096, indent: tuple[int, int, int] | None = None) -> str:
    """``data`` as a YAML document, in block style.

    Safe (plain data; mappings keep their order) or, with ``rt``, round-trip
    (ruamel's commented types keep comments, quoting and flow style).
    ``indent`` is (mapping, sequence, offset) as ruamel counts them.
    """
    yaml = YAML(typ="rt" if rt else "safe", pure=True)
    yaml.width = width
    if not rt:
        yaml.default_flow_style = False
        yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    if indent is not None:
        yaml.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
