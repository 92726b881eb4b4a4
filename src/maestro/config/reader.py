"""Reading ``config.yaml`` into a :class:`~maestro.config.model.Config`: every problem a one-line error.

A missing file, an empty file, or a section written as ``null`` takes the
defaults.  Anything wrong is a one-line :class:`ConfigError` naming the file,
the line and the dotted key::

    .flow/maestro/config.yaml:7: recovery.backoff.factor: must be at least 1, not 0.5

The ``agent`` and ``subagents`` sections are checked for their shape only (and
``subagents`` by the registry, which has the last word on its meaning), and the
agent's ``timeout_s``, which is the runner's.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from maestro.agents.registry import overrides_from_config
from maestro.config.model import (
    _SECTION,
    _SPEC,
    GATE_NAMES,
    SECTIONS,
    AcceptanceConfig,
    Backoff,
    Config,
    GateConfig,
    LimitsConfig,
    Parallel,
    Planning,
    Recovery,
    _agent_kind_problem,
    _agent_timeout_problem,
    _default_gate,
    _default_gates,
    _hint,
    _num,
    _scalar,
    _shown,
)
from maestro.core import yamlio
from maestro.core.errors import ConfigError, DecisionError, YamlError
from maestro.core.text import InputTooLarge, read_input

__all__ = ["load_config", "parse_config"]

log = logging.getLogger(__name__)


class _Reader:
    """Reads one parsed document into a :class:`Config`; every error names the file, line and dotted key."""

    def __init__(self, src: str) -> None:
        self.src = src

    def error(self, line: int | None, key: str | None, problem: str) -> ConfigError:
        return ConfigError(problem, path=self.src, line=line, key=key)

    @staticmethod
    def line_of(node: Any, key: Any, fallback: int | None) -> int | None:
        try:
            return int(node.lc.key(key)[0]) + 1
        except (AttributeError, KeyError, TypeError, IndexError):
            return fallback  # a key merged in with <<: has no line of its own here

    def keys(self, node: Mapping[Any, Any], known: tuple[str, ...], prefix: str, line: int | None) -> None:
        """Refuse a key of ``node`` that is not ``known``, with the closest known key as a hint."""
        for key in node:
            if not isinstance(key, str) or key not in known:
                hint = _hint(key, known) or f" (known: {', '.join(known)})"
                raise self.error(self.line_of(node, key, line), f"{prefix}{key}", f"unknown key{hint}")

    def mapping(self, node: Any, key: str, line: int | None, what: str) -> Mapping[Any, Any] | None:
        if node is None:
            return None
        if not isinstance(node, Mapping):
            raise self.error(line, key, f"expected a mapping of {what}, not {_shown(_scalar(node))}")
        return node

    def config(self, doc: Any) -> Config:
        if doc is None:
            return Config(source=self.src)
        if not isinstance(doc, Mapping):
            raise self.error(1, None, f"the config is a mapping of settings ({', '.join(SECTIONS)}), "
                                      f"not {_shown(_scalar(doc))}")  # fmt: skip
        self.keys(doc, SECTIONS, "", 1)
        values: dict[str, Any] = {}
        for name in SECTIONS:
            if name not in doc:
                continue
            line = self.line_of(doc, name, 1)
            node = doc[name]
            if name == "agent":
                values[name] = self.agent(node, line)
            elif name == "gates":
                values[name] = self.gates(node, line)
            elif name == "subagents":
                values[name] = self.subagents(node, line)
            elif name == "executor":
                converted, problem = attrs.fields_dict(Config)["executor"].metadata[_SPEC].check(node)
                if problem:
                    raise self.error(line, "executor", problem)
                values[name] = converted
            else:
                values[name] = self.section(_SECTIONS[name](), node, name, line)
        return Config(**values, source=self.src)

    def section(self, base: Any, node: Any, prefix: str, line: int | None) -> Any:
        """``base`` (an instance of a section class) with the settings of ``node``."""
        fields = attrs.fields_dict(type(base))
        names = tuple(fields)
        node = self.mapping(node, prefix, line, ", ".join(names))
        if node is None:
            return base
        self.keys(node, names, f"{prefix}.", line)
        values: dict[str, Any] = {}
        for name, value in node.items():
            key, at = f"{prefix}.{name}", self.line_of(node, name, line)
            field = fields[name]
            sub = field.metadata.get(_SECTION)
            if sub is not None:
                values[name] = self.section(sub(), value, key, at)
                continue
            converted, problem = field.metadata[_SPEC].check(value)
            if problem:
                raise self.error(at, key, problem)
            values[name] = converted
        if isinstance(base, Backoff):
            initial = values.get("initial_s", base.initial_s)
            most = values.get("max_s", base.max_s)
            if most < initial:
                if "max_s" in values:
                    raise self.error(self.line_of(node, "max_s", line), f"{prefix}.max_s",
                                     f"must be at least initial_s ({_num(initial)}), not {_num(most)}")  # fmt: skip
                raise self.error(self.line_of(node, "initial_s", line), f"{prefix}.initial_s",
                                 f"must be at most max_s ({_num(most)}, the default), not {_num(initial)}")  # fmt: skip
        return attrs.evolve(base, **values)

    def gates(self, node: Any, line: int | None) -> dict[str, GateConfig]:
        node = self.mapping(node, "gates", line, ", ".join(GATE_NAMES))
        if node is None:
            return _default_gates()
        for name in node:
            if not isinstance(name, str) or name not in GATE_NAMES:
                hint = _hint(name, GATE_NAMES) or f" (gates: {', '.join(GATE_NAMES)})"
                raise self.error(self.line_of(node, name, line), f"gates.{name}", f"unknown gate{hint}")
        return {name: self.section(_default_gate(name), node[name], f"gates.{name}", self.line_of(node, name, line))
                for name in node}  # fmt: skip

    def agent(self, node: Any, line: int | None) -> dict[str, Any] | None:
        node = self.mapping(node, "agent", line, "settings with a kind")
        if node is None:
            return None
        problem = _agent_kind_problem(node)
        if problem:
            at = self.line_of(node, "kind", line)
            raise self.error(at, *problem)
        timeout_problem = _agent_timeout_problem(node)
        if timeout_problem:
            raise self.error(self.line_of(node, "timeout_s", line), "agent.timeout_s", timeout_problem)
        return self.plain(node, "agent", line)

    def subagents(self, node: Any, line: int | None) -> dict[str, Any] | None:
        node = self.mapping(node, "subagents", line, "mapping, triggers")
        if node is None:
            return None
        self.keys(node, ("mapping", "triggers"), "subagents.", line)
        for part, what in (("mapping", "categories to subagent names"), ("triggers", "subagent names to words")):
            at = self.line_of(node, part, line)
            entries = self.mapping(node.get(part), f"subagents.{part}", at, what)
            for name, raw in (entries or {}).items():
                key, where = f"subagents.{part}.{name}", self.line_of(entries, name, at)
                value = _scalar(raw)
                if part == "mapping" and (not isinstance(value, str) or not value.strip()):
                    raise self.error(where, key, f"expected a subagent name, not {_shown(value)}")
                words = [value] if isinstance(value, str) else value
                if part == "triggers" and (
                    not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words)
                ):
                    raise self.error(where, key, f"expected a list of words, not {_shown(value)}")
        plain = self.plain(node, "subagents", line)
        try:  # the registry has the last word on the section's meaning
            overrides_from_config({"subagents": plain})
        except DecisionError as exc:
            raise self.error(line, "subagents", str(exc).removeprefix("config.yaml: ")) from None
        return plain

    def plain(self, node: Any, key: str, line: int | None) -> dict[str, Any]:
        """``node`` as plain dicts, lists and scalars; a node reached through several aliases is converted once."""
        memo: dict[int, Any] = {}
        busy: set[int] = set()

        def conv(value: Any) -> Any:
            if isinstance(value, (Mapping, list)):
                ident = id(value)
                if ident in memo:
                    return memo[ident]
                if ident in busy:
                    raise self.error(line, key, "a value holds itself (a recursive alias)")
                busy.add(ident)
                out: Any
                if isinstance(value, Mapping):
                    out = {conv(k): conv(v) for k, v in value.items()}
                else:
                    out = [conv(v) for v in value]
                busy.discard(ident)
                memo[ident] = out
                return out
            if isinstance(value, tuple):  # a complex key
                return tuple(conv(v) for v in value)
            return _scalar(value)

        result: dict[str, Any] = conv(node)
        return result


_SECTIONS: Final[Mapping[str, Callable[[], Any]]] = {
    "parallel": Parallel,
    "recovery": Recovery,
    "limits": LimitsConfig,
    "planning": Planning,
    "acceptance": AcceptanceConfig,
}


def parse_config(text: str, source: str | os.PathLike[str] | None = None) -> Config:
    """Read the text of a ``config.yaml``; any problem is a one-line :class:`ConfigError`."""
    src = "<input>" if source is None else os.fspath(source)
    try:
        try:
            doc = yamlio.load(text, rt=True, recursive=True)  # a recursive alias: _Reader.plain names its key
        except YamlError as exc:
            if exc.kind == "syntax":
                problem = re.sub(r'^(found duplicate key ".*?") with value ".*', r"\1", exc.problem)  # not the values
                raise ConfigError(f"YAML syntax: {problem}", path=src, line=exc.line) from None
            if exc.kind == "depth":
                raise ConfigError(exc.problem, path=src) from None
            raise ConfigError(f"YAML: {exc.problem}", path=src, line=exc.line) from None
        return _Reader(src).config(doc)
    except RecursionError:
        raise ConfigError("nested too deeply to read", path=src) from None


def load_config(path: str | os.PathLike[str] | None, *, missing_ok: bool = True) -> Config:
    """The configuration in ``path`` (normally ``Store.config_path``).

    ``None``, or a file that does not exist (unless ``missing_ok`` is false), gives
    the defaults; so does an empty file.  Any problem is a one-line :class:`ConfigError`.
    """
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = read_input(p)  # at most MAX_INPUT_BYTES: a larger file is refused before it is read
    except FileNotFoundError:
        if missing_ok:
            log.debug("%s: no configuration file; using the defaults", p)
            return Config()
        raise ConfigError("no such file", path=p) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a configuration file", path=p) from None
    except InputTooLarge as exc:
        raise ConfigError(exc.problem, path=p) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=p) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=p, line=line) from None
    config = parse_config(text, p)
    log.debug("%s: configuration read", p)
    return config
