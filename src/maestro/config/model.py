"""The typed model of ``.flow/maestro/config.yaml``: its sections as frozen attrs classes, checked and defaulted.

::

    agent: {kind: scripted, script: path/to/script.yaml, timeout_s: 1800}  # claude | codex | aider | command | scripted
    parallel: {max_workers: 4}
    executor: local                          # or dask://HOST:PORT (dask+tls://HOST:PORT): attempts on a Dask cluster
    recovery:
      max_retries: 3
      backoff: {initial_s: 1.0, factor: 2.0, max_s: 60.0}
      max_alternatives: 2
    limits: {max_iterations: 3, max_minutes: 120, budget_usd: null}
    planning: {approve_commands: false}
    gates:
      tests:     {command: "python -m pytest -q --junitxml={junit}", required: true}
      lint:      {command: "ruff check .", required: false}
      typecheck: {command: null, required: false}
      security:  {command: null, required: false}
    acceptance: {timeout_s: 1800}
    subagents: {mapping: {frontend: my-frontend-dev}, triggers: {my-frontend-dev: [storybook]}}

Every key is optional: a missing section or key takes the defaults (``Config()``
is the defaults).  A gate whose ``command`` is null is decided from the
repository (the ``gate`` decisions of :mod:`maestro.decide.strategies.gate`).
The ``agent`` and ``subagents`` sections are kept as written (plain dicts) for
:func:`maestro.agents.factory.agent_from_config` and
:func:`maestro.agents.registry.overrides_from_config`; the agent's ``timeout_s``
(every kind's) is checked here too and read as :attr:`Config.agent_timeout_s`.

Each setting carries its :class:`_Spec` (the attrs metadata key ``_SPEC``): the
reader (:mod:`maestro.config.reader`) checks a file's values with it, the writer
(:mod:`maestro.config.writer`) the detected gate commands.  The underscored
helpers they share (``_shown``, ``_scalar``, ``_num``, ``_hint``, ``_checked``,
``_default_gate``...) are this package's own.  ``docs/config.md`` describes every key.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from ruamel.yaml.scalarbool import ScalarBoolean

from maestro.agents.factory import AGENT_KINDS
from maestro.core.errors import ConfigError
from maestro.core.text import shown

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "EXECUTOR_FORM",
    "GATE_NAMES",
    "SECTIONS",
    "AcceptanceConfig",
    "Backoff",
    "Config",
    "GateConfig",
    "LimitsConfig",
    "Parallel",
    "Planning",
    "Recovery",
    "render_command",
]

GATE_NAMES: Final = ("tests", "lint", "typecheck", "security")
"""The validation gates, in the order they run and are written (the same as ``strategies.tooling.GATES``)."""

SECTIONS: Final = (
    "agent", "parallel", "executor", "recovery", "limits", "planning", "gates", "acceptance", "subagents",
)  # fmt: skip
"""The top-level keys of ``config.yaml``, in the order they are written."""

DEFAULT_TIMEOUT_S: Final = 1800.0
"""Seconds an agent's attempt, a gate's command or an acceptance command may run when the file does not say."""

EXECUTOR_FORM: Final = re.compile(r"dask(\+tls)?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})\Z")
"""An ``executor`` other than ``local``: a Dask scheduler's host and port (``dask+tls``: over TLS)."""

_SPEC = "maestro.config.spec"
_SECTION = "maestro.config.section"
_REQUIRED_BY_DEFAULT: Final = frozenset({"tests"})


# -- values ---------------------------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value as an error message shows it: YAML words for null and booleans, repr for the rest."""
    return shown(value, yaml_words=True)


def _scalar(value: Any) -> Any:
    """A scalar of ruamel's round-trip types (ScalarFloat, ScalarInt, ScalarBoolean, ScalarString) as plain Python."""
    if isinstance(value, ScalarBoolean):
        return bool(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


_TOKEN = re.compile(r"\$\{[^{}]*\}|\{\{|\}\}|\{[^{}]*\}|[{}]")


def _command_parts(command: str) -> list[tuple[str, str]]:
    """``command`` split into ("text", literal) and ("junit", "") parts; ValueError names a bad placeholder."""
    parts: list[tuple[str, str]] = []
    end = 0
    for m in _TOKEN.finditer(command):
        parts.append(("text", command[end : m.start()]))
        found = m.group()
        end = m.end()
        if found.startswith("$"):  # ${VAR}: the shell's, not ours
            parts.append(("text", found))
        elif found in ("{{", "}}"):
            parts.append(("text", found[0]))
        elif found == "{junit}":
            parts.append(("junit", ""))
        elif found in ("{", "}"):
            raise ValueError(f"unmatched {found!r} at column {m.start() + 1} (write {found * 2!r} for a literal brace)")
        else:
            raise ValueError(f"unknown placeholder {found} (the only placeholder is {{junit}}; "
                             "write {{ and }} for literal braces)")  # fmt: skip
    parts.append(("text", command[end:]))
    return parts


def render_command(command: str, *, junit: str | os.PathLike[str]) -> str:
    """``command`` with ``{junit}`` replaced by the shell-quoted ``junit`` path and ``{{``/``}}`` by braces.

    ``${VAR}`` is left for the shell.  A command that :func:`load_config` accepted
    always renders; any other bad placeholder raises :class:`ConfigError`.
    """
    try:
        parts = _command_parts(command)
    except ValueError as exc:
        raise ConfigError(str(exc), key="command") from None
    quoted = shlex.quote(os.fspath(junit))
    return "".join(quoted if kind == "junit" else text for kind, text in parts)


@attrs.frozen
class _Spec:
    """What one setting accepts: its kind, whether null is allowed, and its range."""

    kind: str  # "int" | "float" | "bool" | "command" | "choice" | "executor"
    nullable: bool = False
    at_least: float | None = None
    above: float | None = None
    choices: tuple[str, ...] = ()

    def expected(self) -> str:
        if self.kind == "choice":
            return " or ".join(self.choices)
        what = {"int": "an integer", "float": "a number", "bool": "true or false", "command": "a command (a string)",
                "executor": "local, dask://HOST:PORT or dask+tls://HOST:PORT"}  # fmt: skip
        return what[self.kind] + (" or null" if self.nullable else "")

    def check(self, value: Any) -> tuple[Any, str | None]:
        """(the value as stored, None) or (value, the problem): ints become floats where a number is wanted."""
        value = original = _scalar(value)
        if value is None:
            return (None, None) if self.nullable else (value, f"expected {self.expected()}, not null")
        if self.kind == "bool":
            return (value, None) if isinstance(value, bool) else (value, f"expected true or false, not {_shown(value)}")
        if self.kind == "choice":
            return (
                (value, None) if value in self.choices else (value, f"expected {self.expected()}, not {_shown(value)}")
            )
        if self.kind == "executor":
            m = EXECUTOR_FORM.match(value) if isinstance(value, str) else None
            if value == "local" or (m is not None and 0 < int(m.group(3)) < 65536):
                return value, None
            return value, f"expected {self.expected()}, not {_shown(value)}"
        if self.kind == "command":
            if not isinstance(value, str):
                return value, f"expected {self.expected()}, not {_shown(value)}"
            if not value.strip():
                return value, "empty command (null lets maestro decide the command from the repository)"
            try:
                _command_parts(value)
            except ValueError as exc:
                return value, str(exc)
            return value, None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, f"expected {self.expected()}, not {_shown(value)}"
        if self.kind == "int" and not isinstance(value, int):
            return value, f"expected an integer, not {_shown(value)}"
        if self.kind == "float":
            try:
                value = float(value)
            except OverflowError:
                return value, "too large a number"
            if not math.isfinite(value):
                return value, f"expected a finite number, not {_shown(value)}"
        if self.at_least is not None and value < self.at_least:
            return value, f"must be at least {_num(self.at_least)}, not {_shown(original)}"
        if self.above is not None and value <= self.above:
            return value, f"must be greater than {_num(self.above)}, not {_shown(original)}"
        return value, None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _setting(default: Any, spec: _Spec) -> Any:
    """An attrs field checked by ``spec`` (ints converted to floats where a number is wanted)."""

    def convert(value: Any) -> Any:
        converted, problem = spec.check(value)
        return value if problem else converted

    def validate(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        problem = spec.check(value)[1]
        if problem:
            raise ValueError(f"{attribute.name}: {problem}")

    return attrs.field(default=default, converter=convert, validator=validate, metadata={_SPEC: spec})


def _instance(cls: type[Any]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def validate(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, cls):
            raise TypeError(f"{attribute.name}: expected a {cls.__name__}, not {type(value).__name__}")

    return validate


def _mapping_or_none(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{attribute.name}: expected a mapping or None, not {type(value).__name__}")


def _agent_section(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _mapping_or_none(inst, attribute, value)
    problem = None if value is None else _agent_timeout_problem(value)
    if problem:
        raise ValueError(f"agent.timeout_s: {problem}")


_INT_1: Final = _Spec("int", at_least=1)
_INT_0: Final = _Spec("int", at_least=0)
_POSITIVE: Final = _Spec("float", above=0)
_POSITIVE_OR_NULL: Final = _Spec("float", nullable=True, above=0)
_EXECUTOR: Final = _Spec("executor")


# -- the model ------------------------------------------------------------------------------------------------------


@attrs.frozen
class Parallel:
    """``parallel``: how many tasks of one group run at the same time."""

    max_workers: int = _setting(4, _INT_1)


def _backoff_problem(initial_s: float, max_s: float) -> str | None:
    if max_s < initial_s:
        return f"max_s ({_num(max_s)}) is less than initial_s ({_num(initial_s)})"
    return None


@attrs.frozen
class Backoff:
    """``recovery.backoff``: the delay before each retry of a transient failure (seconds)."""

    initial_s: float = _setting(1.0, _POSITIVE)
    factor: float = _setting(2.0, _Spec("float", at_least=1))
    max_s: float = _setting(60.0, _POSITIVE)

    def __attrs_post_init__(self) -> None:
        problem = _backoff_problem(self.initial_s, self.max_s)
        if problem:
            raise ValueError(problem)

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first): ``min(initial_s*factor**(n-1), max_s)``."""
        if isinstance(retry_number, bool) or not isinstance(retry_number, int) or retry_number < 1:
            raise ValueError(f"retry_number counts from 1, not {retry_number!r}")
        try:
            value = self.initial_s * self.factor ** (retry_number - 1)
        except OverflowError:
            return self.max_s
        return min(value, self.max_s)


@attrs.frozen
class Recovery:
    """``recovery``: retries of transient failures and alternative attempts after implementation failures."""

    max_retries: int = _setting(3, _INT_0)
    backoff: Backoff = attrs.field(factory=Backoff, validator=_instance(Backoff), metadata={_SECTION: Backoff})
    max_alternatives: int = _setting(2, _INT_0)
    on_exhausted: str = _setting("pause", _Spec("choice", choices=("pause", "give_up")))


@attrs.frozen
class LimitsConfig:
    """``limits``: what a session may spend; ``None`` is no limit."""

    max_iterations: int = _setting(3, _INT_1)
    max_minutes: float | None = _setting(120.0, _POSITIVE_OR_NULL)
    budget_usd: float | None = _setting(None, _POSITIVE_OR_NULL)


@attrs.frozen
class Planning:
    """``planning``: ``approve_commands`` pauses after an agent planned, until a human approves the commands its plan
    runs (each task's acceptance commands: commands an agent wrote, not the user)."""

    approve_commands: bool = _setting(False, _Spec("bool"))


@attrs.frozen
class GateConfig:
    """One validation gate: its command (None: decided from the repository), whether it must pass, its timeout."""

    command: str | None = _setting(None, _Spec("command", nullable=True))
    required: bool = _setting(False, _Spec("bool"))
    timeout_s: float = _setting(DEFAULT_TIMEOUT_S, _POSITIVE)

    def render(self, junit: str | os.PathLike[str]) -> str | None:
        """The command with ``{junit}`` filled in (see :func:`render_command`), or None when it is to be decided."""
        return None if self.command is None else render_command(self.command, junit=junit)


@attrs.frozen
class AcceptanceConfig:
    """``acceptance``: the tasks' acceptance commands; ``timeout_s`` stops each one that runs longer (it fails)."""

    timeout_s: float = _setting(DEFAULT_TIMEOUT_S, _POSITIVE)


def _default_gate(name: str) -> GateConfig:
    return GateConfig(required=name in _REQUIRED_BY_DEFAULT)


def _gates(value: Mapping[str, GateConfig] | None) -> dict[str, GateConfig]:
    """Every gate, in :data:`GATE_NAMES` order; a gate not given takes its defaults."""
    given = dict(value or {})
    unknown = sorted(map(str, set(given) - set(GATE_NAMES)))
    if unknown:
        raise ValueError(f"gates: unknown gate(s) {', '.join(unknown)} (gates: {', '.join(GATE_NAMES)})")
    out: dict[str, GateConfig] = {}
    for name in GATE_NAMES:
        gate = given.get(name, _default_gate(name))
        if not isinstance(gate, GateConfig):
            raise TypeError(f"gates.{name}: expected a GateConfig, not {type(gate).__name__}")
        out[name] = gate
    return out


def _default_gates() -> dict[str, GateConfig]:
    return _gates(None)


def _raw(value: Any) -> Any:
    """A raw section as a private plain copy (anything but a mapping is left for the validator to refuse)."""
    return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value


@attrs.frozen
class Config:
    """The whole configuration.  ``Config()`` is the defaults.

    ``agent`` and ``subagents`` are the raw sections (plain dicts, or None when
    absent): :func:`~maestro.agents.factory.agent_from_config` and
    :func:`~maestro.agents.registry.overrides_from_config` read them.  ``source``
    is the file it was read from (not part of equality).  The timeouts the runner
    uses are :attr:`agent_timeout_s` and :attr:`acceptance_timeout_s`.
    """

    agent: Mapping[str, Any] | None = attrs.field(default=None, converter=_raw, validator=_agent_section)
    parallel: Parallel = attrs.field(factory=Parallel, validator=_instance(Parallel))
    executor: str = _setting("local", _EXECUTOR)
    recovery: Recovery = attrs.field(factory=Recovery, validator=_instance(Recovery))
    limits: LimitsConfig = attrs.field(factory=LimitsConfig, validator=_instance(LimitsConfig))
    planning: Planning = attrs.field(factory=Planning, validator=_instance(Planning))
    gates: Mapping[str, GateConfig] = attrs.field(factory=_default_gates, converter=_gates)
    acceptance: AcceptanceConfig = attrs.field(factory=AcceptanceConfig, validator=_instance(AcceptanceConfig))
    subagents: Mapping[str, Any] | None = attrs.field(default=None, converter=_raw, validator=_mapping_or_none)
    source: str | None = attrs.field(default=None, eq=False)

    @property
    def base_dir(self) -> Path | None:
        """The folder of the file it was read from: relative paths in ``agent`` (a script) are taken from there."""
        return None if self.source is None else Path(self.source).parent

    @property
    def agent_timeout_s(self) -> float:
        """``agent.timeout_s``: seconds an agent's attempt (or its planning) may run before it is stopped."""
        value = None if self.agent is None else _scalar(self.agent.get("timeout_s"))
        return DEFAULT_TIMEOUT_S if value is None else float(value)

    @property
    def acceptance_timeout_s(self) -> float:
        """``acceptance.timeout_s``: seconds each acceptance command of a task may run before it is stopped."""
        return self.acceptance.timeout_s

    def with_overrides(
        self,
        *,
        max_iterations: int | None = None,
        budget_usd: float | None = None,
        max_minutes: float | None = None,
        max_workers: int | None = None,
        agent: Mapping[str, Any] | str | None = None,
        executor: str | None = None,
    ) -> Config:
        """This configuration with the command line's flags applied; None leaves a setting as it is.

        ``agent`` is a whole ``agent`` section, or a kind alone (``"claude"``).
        A bad value raises :class:`ConfigError` naming the key.
        """
        limits: dict[str, Any] = {}
        for name, value in (("max_iterations", max_iterations), ("budget_usd", budget_usd),
                            ("max_minutes", max_minutes)):  # fmt: skip
            if value is not None:
                limits[name] = _checked(LimitsConfig, name, value, f"limits.{name}")
        new = self
        if limits:
            new = attrs.evolve(new, limits=attrs.evolve(new.limits, **limits))
        if max_workers is not None:
            workers = _checked(Parallel, "max_workers", max_workers, "parallel.max_workers")
            new = attrs.evolve(new, parallel=attrs.evolve(new.parallel, max_workers=workers))
        if agent is not None:
            section: Mapping[str, Any] = {"kind": agent} if isinstance(agent, str) else agent
            if not isinstance(section, Mapping):
                raise ConfigError(f"expected a mapping with a kind, or a kind, not {_shown(section)}", key="agent")
            problem = _agent_kind_problem(section)
            if problem:
                raise ConfigError(problem[1], key=problem[0])
            timeout_problem = _agent_timeout_problem(section)
            if timeout_problem:
                raise ConfigError(timeout_problem, key="agent.timeout_s")
            new = attrs.evolve(new, agent=section)
        if executor is not None:
            new = attrs.evolve(new, executor=_checked(Config, "executor", executor, "executor"))
        return new

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain data in the file's layout and key order (``source`` left out).

        Written as YAML, it reads back as an equal :class:`Config`.
        """
        return {
            "agent": _raw(self.agent),
            "parallel": attrs.asdict(self.parallel),
            "executor": self.executor,
            "recovery": attrs.asdict(self.recovery),
            "limits": attrs.asdict(self.limits),
            "planning": attrs.asdict(self.planning),
            "gates": {name: attrs.asdict(gate) for name, gate in self.gates.items()},
            "acceptance": attrs.asdict(self.acceptance),
            "subagents": _raw(self.subagents),
        }


def _checked(cls: type[Any], name: str, value: Any, key: str) -> Any:
    spec: _Spec = attrs.fields_dict(cls)[name].metadata[_SPEC]
    converted, problem = spec.check(value)
    if problem:
        raise ConfigError(problem, key=key)
    return converted


def _agent_kind_problem(section: Mapping[Any, Any]) -> tuple[str, str] | None:
    """(key, problem) when the agent section has no known kind; its other keys are agent_from_config's to check."""
    if "kind" not in section:
        return "agent.kind", f"missing (one of {', '.join(AGENT_KINDS)})"
    kind = _scalar(section["kind"])
    if kind not in AGENT_KINDS:
        return "agent.kind", f"{_shown(kind)} is not one of {', '.join(AGENT_KINDS)}{_hint(kind, AGENT_KINDS)}"
    return None


def _agent_timeout_problem(section: Mapping[Any, Any]) -> str | None:
    """What is wrong with the agent section's ``timeout_s`` (a number > 0, or null for the default), or None."""
    return _POSITIVE_OR_NULL.check(section.get("timeout_s"))[1]


def _hint(word: Any, known: tuple[str, ...]) -> str:
    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word.strip().replace("-", "_").lower(), known, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
