"""Which command each gate runs, and whether it is required: from ``config.yaml``, else from the gate detection.

::

    commands = gate_commands(config.gates, gate_decisions)    # name -> GateCommand(command, required, source)

Also here: :func:`missing_tool` (a command whose tool is not installed: its gate is
skipped, never reported as passed).  The required gates that block are
:func:`maestro.model.guards.failing_gates`.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from maestro.agents.process import ProcessOutcome
from maestro.core.errors import GateError
from maestro.core.records import Decision
from maestro.core.text import one_line
from maestro.decide.strategies.gate import GATES, gate_command

__all__ = ["REQUIRED_BY_DEFAULT", "GateCommand", "gate_commands", "missing_tool"]

log = logging.getLogger(__name__)

REQUIRED_BY_DEFAULT = frozenset({"tests"})
"""Gates that are required when the configuration does not say."""

_SUMMARY_CHARS = 200  # one failure message or output line in a summary


class GateCommand(NamedTuple):
    """A gate's command (None: no gate to run), whether it is required, and where the command came from.

    ``source`` is ``config`` (``config.yaml``), ``detected: <tool> (<decision id>)``,
    ``detected: none (<decision id>)`` (the detection found no tool), or ``none``.
    """

    command: str | None
    required: bool
    source: str


def gate_commands(
    config_gates: Mapping[str, Any] | None, decisions: Mapping[str, Decision] | Iterable[Decision] = ()
) -> dict[str, GateCommand]:
    """Each gate's command: from ``config_gates`` where set, else from its ``gate`` detection decision.

    ``config_gates`` maps a gate name to its settings — a mapping or an object
    with ``command`` and ``required``, or just the command string.  A ``command``
    of null falls back to the detection; an empty command turns the gate off.
    ``required`` defaults to True for ``tests`` (:data:`REQUIRED_BY_DEFAULT`) and
    False otherwise.  ``decisions`` maps gate names to decisions, or is a list of
    ``gate`` decisions (the gate is read from the question).  The gates come in
    the order tests, lint, typecheck, security, then other configured ones.
    """
    config = dict(config_gates or {})
    by_gate = _decisions_by_gate(decisions)
    names = [
        *GATES,
        *(n for n in config if n not in GATES),
        *(n for n in by_gate if n not in GATES and n not in config),
    ]
    out: dict[str, GateCommand] = {}
    for name in names:
        command, required = _configured(name, config.get(name))
        if command is not None:
            out[name] = GateCommand(command.strip() or None, required, "config")
            continue
        decision = by_gate.get(name)
        if decision is None:
            out[name] = GateCommand(None, required, "none")
            continue
        ident = f" ({decision.id})" if decision.id else ""
        detected = gate_command(decision)
        out[name] = GateCommand(detected, required, f"detected: {decision.choice if detected else 'none'}{ident}")
    return out


def _configured(name: str, entry: Any) -> tuple[str | None, bool]:
    """(command or None, required) of one configuration entry."""
    default = name in REQUIRED_BY_DEFAULT
    if entry is None:
        return None, default
    if isinstance(entry, str):
        return entry, default
    if isinstance(entry, Mapping):
        command, required = entry.get("command"), entry.get("required", default)
    else:
        command, required = getattr(entry, "command", None), getattr(entry, "required", default)
    if command is not None and not isinstance(command, str):
        raise GateError(f"gates.{name}.command must be a string or null, not {command!r}")
    if required is None:
        required = default
    if not isinstance(required, bool):
        raise GateError(f"gates.{name}.required must be true or false, not {required!r}")
    return command, required


_GATE_QUESTION = re.compile(r"\bthe (?P<gate>[\w-]+) gate\b")


def _decisions_by_gate(decisions: Mapping[str, Decision] | Iterable[Decision]) -> dict[str, Decision]:
    if isinstance(decisions, Mapping):
        return {str(k): v for k, v in decisions.items() if v is not None}
    out: dict[str, Decision] = {}
    for d in decisions:
        if d is None or d.kind != "gate":
            continue
        m = _GATE_QUESTION.search(d.question)
        if m is None:
            log.warning("gate decision %s does not name its gate (%r): ignored", d.id or "?", d.question)
            continue
        out[m["gate"]] = d  # a later decision for the same gate wins
    return out


_NOT_FOUND = re.compile(r"^(?:[^:\n]*: )?(?:(?:line )?\d+: )?(?P<name>[^\s:]+): (?:command )?not found\s*$", re.M)
_ZSH_NOT_FOUND = re.compile(r"command not found: (?P<name>\S+)")
_NO_MODULE = re.compile(r"No module named '?(?P<mod>[A-Za-z_][\w.]*?)'?(?:\.__main__)?(?:[;\s]|$)")
_RUN_MODULE = re.compile(r"(?:^|[\s;&|(])-m\s*(?P<mod>[A-Za-z_][\w.]*)")
_WORDS = re.compile(r"[^\s;&|()<>'\"`]+")


def missing_tool(command: str, outcome: ProcessOutcome) -> str | None:
    """Why ``command`` could not run its tool — ``"ruff is not installed (sh: 1: ruff: not found)"`` — or None.

    The signs: the shell's "not found" for a word of the command, Python's
    ``No module named X`` for a ``-m X`` of the command, or exit status 127
    (the shell's "command not found").
    """
    if outcome.missing:
        return outcome.error or "the shell could not be started"
    stderr = outcome.stderr
    words = set(_WORDS.findall(command))
    for m in [*_NOT_FOUND.finditer(stderr), *_ZSH_NOT_FOUND.finditer(stderr)]:
        name = m["name"]
        if name in words:
            return f"{os.path.basename(name) or name} is not installed ({one_line(m.group(0), _SUMMARY_CHARS)})"
    modules = {m["mod"] for m in _RUN_MODULE.finditer(command)}
    for m in _NO_MODULE.finditer(stderr):
        missing = m["mod"]
        if any(mod == missing or mod.startswith(missing + ".") for mod in modules):
            line = next((ln for ln in stderr.splitlines() if "No module named" in ln), m.group(0))
            return f"{missing} is not installed ({one_line(line.strip(), _SUMMARY_CHARS)})"
    if outcome.exit_code == 127:
        found = _NOT_FOUND.search(stderr) or _ZSH_NOT_FOUND.search(stderr)
        if found is not None:
            said = one_line(found.group(0), _SUMMARY_CHARS)
            return f"{os.path.basename(found['name']) or found['name']} is not installed ({said})"
        return f"{_first_word(command)} is not installed (exit status 127: command not found)"
    return None


def _first_word(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes
        words = command.split()
    return os.path.basename(words[0]) if words else command
