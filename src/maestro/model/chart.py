"""Statecharts: ``statecharts/*.yaml`` read into a validated attrs model.

A chart declares states, guard names and transitions; nothing else moves a
session.  Two shorthands keep the YAML readable and stay visible in the model:

* ``source: "*"`` — every non-final state except the destination itself;
* ``dest: $history`` — back to the state the source state was entered from
  (allowed only out of states marked ``returns: true``, e.g. ``paused``).

:func:`load_chart` reads and validates a chart; a malformed chart raises
:class:`~maestro.ChartError` naming the file and the problem.  Compiling a chart
into a running machine is :mod:`maestro.model.machine`'s job.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from maestro.core import yamlio
from maestro.core.errors import ChartError, YamlError

__all__ = [
    "ANY",
    "CHART_NAMES",
    "HISTORY",
    "Chart",
    "GuardSpec",
    "StateSpec",
    "TransitionSpec",
    "chart_path",
    "load_chart",
    "parse_chart",
]

ANY = "*"
HISTORY = "$history"
CHART_NAMES = ("session", "task")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@attrs.frozen
class StateSpec:
    """One declared state."""

    name: str
    description: str = ""
    final: bool = False
    returns: bool = False


@attrs.frozen
class GuardSpec:
    """One declared guard name; its code lives in a guard registry."""

    name: str
    description: str = ""


@attrs.frozen
class TransitionSpec:
    """One declared transition, as written (``*`` and ``$history`` unexpanded)."""

    trigger: str
    source: tuple[str, ...] = attrs.field(converter=_names)
    dest: str
    conditions: tuple[str, ...] = attrs.field(default=(), converter=_names)
    unless: tuple[str, ...] = attrs.field(default=(), converter=_names)

    @property
    def guards(self) -> tuple[str, ...]:
        return self.conditions + self.unless

    def label(self) -> str:
        parts = [self.trigger]
        if self.conditions:
            parts.append("[" + " and ".join(self.conditions) + "]")
        if self.unless:
            parts.append("[not " + " and not ".join(self.unless) + "]")
        return " ".join(parts)


@attrs.frozen
class Edge:
    """One concrete source → dest move of a transition (``*`` expanded).

    For a ``$history`` transition there is one edge for every state that can
    enter the source; ``history`` is then true.
    """

    trigger: str
    source: str
    dest: str
    conditions: tuple[str, ...]
    unless: tuple[str, ...]
    history: bool = False


@attrs.frozen
class Chart:
    """A validated statechart.  Build with :func:`load_chart` or :func:`parse_chart`."""

    name: str
    version: int
    initial: str
    states: tuple[StateSpec, ...]
    transitions: tuple[TransitionSpec, ...]
    guards: tuple[GuardSpec, ...] = ()
    description: str = ""
    source_path: str | None = attrs.field(default=None, eq=False)

    # -- lookups -----------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def final_states(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states if s.final)

    @property
    def guard_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.guards)

    @property
    def triggers(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.transitions:
            seen.setdefault(t.trigger, None)
        return tuple(seen)

    def state(self, name: str) -> StateSpec:
        for s in self.states:
            if s.name == name:
                return s
        raise ChartError(f"{self._where()}: no state {name!r}")

    def is_final(self, name: str) -> bool:
        return self.state(name).final

    def sources(self, t: TransitionSpec) -> tuple[str, ...]:
        """The concrete source states of ``t`` (``*`` expanded, in declaration order)."""
        if t.source == (ANY,):
            return tuple(s.name for s in self.states if not s.final and s.name != t.dest)
        return t.source

    def edges(self) -> Iterator[Edge]:
        """Every concrete move, in declaration order: what a machine is compiled from."""
        for t in self.transitions:
            for src in self.sources(t):
                if t.dest == HISTORY:
                    for back in self.entered_from(src):
                        yield Edge(t.trigger, src, back, t.conditions, t.unless, history=True)
                else:
                    yield Edge(t.trigger, src, t.dest, t.conditions, t.unless)

    def entered_from(self, state: str) -> tuple[str, ...]:
        """The states with a declared transition into ``state``, in declaration order."""
        seen: dict[str, None] = {}
        for t in self.transitions:
            if t.dest == state:
                for src in self.sources(t):
                    seen.setdefault(src, None)
        return tuple(seen)

    def _where(self) -> str:
        return self.source_path or f"chart {self.name!r}"

    # -- exports -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The chart as plain data, in the shape of its YAML file."""
        out: dict[str, Any] = {
            "chart": self.name,
            "version": self.version,
            "description": self.description,
            "initial": self.initial,
            "guards": [{"name": g.name, "description": g.description} for g in self.guards],
            "states": [],
            "transitions": [],
        }
        for s in self.states:
            d: dict[str, Any] = {"name": s.name, "description": s.description}
            if s.final:
                d["final"] = True
            if s.returns:
                d["returns"] = True
            out["states"].append(d)
        for t in self.transitions:
            td: dict[str, Any] = {
                "trigger": t.trigger,
                "source": t.source[0] if len(t.source) == 1 else list(t.source),
                "dest": t.dest,
            }
            if t.conditions:
                td["conditions"] = list(t.conditions)
            if t.unless:
                td["unless"] = list(t.unless)
            out["transitions"].append(td)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_yaml(self) -> str:
        return yamlio.dump(self.to_dict())

    def to_mermaid(self) -> str:
        """A mermaid ``stateDiagram-v2``; ``*`` and ``$history`` moves become notes."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        notes: list[str] = []
        for t in self.transitions:
            if t.source == (ANY,):
                notes.append(f"    note right of {t.dest}: {t.label()} from every non-final state")
                continue
            for src in t.source:
                if t.dest == HISTORY:
                    notes.append(f"    note right of {src}: {t.label()} returns to the state {src} was entered from")
                    continue
                lines.append(f"    {src} --> {t.dest}: {t.label()}")
        lines.extend(notes)
        for s in self.states:
            if s.final:
                lines.append(f"    {s.name} --> [*]")
        return "\n".join(lines) + "\n"


# -- reading -------------------------------------------------------------------


def chart_path(name: str) -> Path:
    """The installed YAML file of the chart called ``name`` (``session`` or ``task``)."""
    if name not in CHART_NAMES:
        raise ChartError(f"unknown chart {name!r}: choose one of {', '.join(CHART_NAMES)}")
    packaged = resources.files("maestro") / "statecharts" / f"{name}.yaml"
    if packaged.is_file():
        return Path(str(packaged))
    # An editable install: the charts live at the top of the source tree.
    here = Path(__file__).resolve().parents[3] / "statecharts" / f"{name}.yaml"
    if here.is_file():
        return here
    raise ChartError(f"chart {name!r} is not installed (looked for {packaged} and {here})")


_CACHE: dict[str, Chart] = {}


def load_chart(name_or_path: str | Path) -> Chart:
    """Read and validate a chart: a name (``session``, ``task``) or a YAML file's path.

    Charts loaded by name are cached: they are immutable.
    """
    if isinstance(name_or_path, str) and name_or_path in CHART_NAMES:
        cached = _CACHE.get(name_or_path)
        if cached is None:
            cached = _CACHE[name_or_path] = load_chart(chart_path(name_or_path))
        return cached
    path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ChartError(f"{path}: no such chart file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChartError(f"{path}: cannot read chart: {exc}") from exc
    return parse_chart(text, source=str(path))


def parse_chart(text: str, *, source: str = "<chart>") -> Chart:
    """Validate the YAML text of a chart and build its model."""
    try:
        raw = yamlio.load(text, path=source)
    except YamlError as exc:
        at = "" if exc.line is None else f"line {exc.line}: "
        raise ChartError(f"{source}: not valid YAML: {at}{exc.problem}") from exc
    return _build(raw, source)


def _build(raw: Any, where: str) -> Chart:
    def fail(msg: str) -> ChartError:
        return ChartError(f"{where}: {msg}")

    if not isinstance(raw, Mapping):
        raise fail("a chart is a mapping with chart, initial, states and transitions")
    known = {"chart", "version", "description", "initial", "guards", "states", "transitions"}
    extra = sorted(set(raw) - known)
    if extra:
        raise fail(f"unknown top-level key(s): {', '.join(map(str, extra))}")
    name = raw.get("chart")
    if not isinstance(name, str) or not name:
        raise fail("missing chart name (key 'chart')")
    if not isinstance(raw.get("description", ""), str):
        raise fail("description is text")
    version = raw.get("version", 1)
    if version != 1:
        raise fail(f"unsupported chart version {version!r} (this maestro reads version 1)")
    if "initial" not in raw or not raw["initial"]:
        raise fail("missing initial state (key 'initial')")
    if not isinstance(raw["initial"], str):
        raise fail(f"initial is one state name, not {raw['initial']!r}")

    states: list[StateSpec] = []
    for i, item in enumerate(_list(raw.get("states"), "states", where)):
        s = {"name": item} if isinstance(item, str) else item
        if not isinstance(s, Mapping):
            raise fail(f"states[{i}]: a state is a name or a mapping with 'name'")
        _only(s, {"name", "description", "final", "returns"}, f"states[{i}]", where)
        sname = s.get("name")
        if not isinstance(sname, str) or not _NAME.match(sname):
            raise fail(f"states[{i}]: bad state name {sname!r} (lower-case letters, digits, _)")
        for flag in ("final", "returns"):
            if not isinstance(s.get(flag, False), bool):
                raise fail(f"state {sname!r}: {flag} must be true or false")
        states.append(
            StateSpec(sname, str(s.get("description", "")), bool(s.get("final", False)), bool(s.get("returns", False)))
        )
    if not states:
        raise fail("a chart declares at least one state")
    _unique([s.name for s in states], "state", where)

    guards: list[GuardSpec] = []
    for i, item in enumerate(_list(raw.get("guards", []), "guards", where)):
        g = {"name": item} if isinstance(item, str) else item
        if not isinstance(g, Mapping):
            raise fail(f"guards[{i}]: a guard is a name or a mapping with 'name'")
        _only(g, {"name", "description"}, f"guards[{i}]", where)
        gname = g.get("name")
        if not isinstance(gname, str) or not _NAME.match(gname):
            raise fail(f"guards[{i}]: bad guard name {gname!r}")
        guards.append(GuardSpec(gname, str(g.get("description", ""))))
    _unique([g.name for g in guards], "guard", where)

    transitions: list[TransitionSpec] = []
    for i, t in enumerate(_list(raw.get("transitions"), "transitions", where)):
        if not isinstance(t, Mapping):
            raise fail(f"transitions[{i}]: a transition is a mapping with trigger, source and dest")
        _only(t, {"trigger", "source", "dest", "conditions", "unless"}, f"transitions[{i}]", where)
        trig = t.get("trigger")
        if not isinstance(trig, str) or not _NAME.match(trig):
            raise fail(f"transitions[{i}]: bad or missing trigger {trig!r}")
        for key in ("source", "dest"):
            if key not in t:
                raise fail(f"transition {trig!r} (transitions[{i}]): missing {key}")
        src, dest = t["source"], t["dest"]
        if not (isinstance(src, str) or (isinstance(src, list) and src and all(isinstance(x, str) for x in src))):
            raise fail(f"transition {trig!r}: source is a state name or a list of them")
        if not isinstance(dest, str):
            raise fail(f"transition {trig!r}: dest is one state name")
        conds = t.get("conditions", [])
        unless = t.get("unless", [])
        for key, val in (("conditions", conds), ("unless", unless)):
            if not (isinstance(val, str) or (isinstance(val, list) and all(isinstance(x, str) for x in val))):
                raise fail(f"transition {trig!r}: {key} is a guard name or a list of them")
        transitions.append(TransitionSpec(trig, src, dest, conds, unless))

    chart = Chart(
        name=name,
        version=1,
        initial=raw["initial"],
        states=tuple(states),
        transitions=tuple(transitions),
        guards=tuple(guards),
        description=str(raw.get("description", "")),
        source_path=where,
    )
    validate(chart)
    return chart


def _list(value: Any, key: str, where: str) -> list[Any]:
    if value is None:
        raise ChartError(f"{where}: missing {key!r}")
    if not isinstance(value, list):
        raise ChartError(f"{where}: {key!r} must be a list")
    return value


def _only(m: Mapping[str, Any], allowed: set[str], what: str, where: str) -> None:
    extra = sorted(set(m) - allowed)
    if extra:
        raise ChartError(f"{where}: {what}: unknown key(s) {', '.join(map(str, extra))}")


def _unique(names: list[str], what: str, where: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ChartError(f"{where}: {what} {n!r} is declared twice")
        seen.add(n)


def validate(chart: Chart) -> None:
    """Raise :class:`ChartError` for the first thing wrong with ``chart``."""
    where = chart._where()
    names = set(chart.state_names)
    guards = set(chart.guard_names)

    def fail(msg: str) -> ChartError:
        return ChartError(f"{where}: {msg}")

    if chart.initial not in names:
        raise fail(f"initial state {chart.initial!r} is not a declared state")
    if chart.state(chart.initial).final:
        raise fail(f"initial state {chart.initial!r} is final")
    for t in chart.transitions:
        what = f"transition {t.trigger!r} ({', '.join(t.source)} -> {t.dest})"
        if t.source != (ANY,):
            if ANY in t.source:
                raise fail(f"{what}: '*' stands alone as a source")
            for s in t.source:
                if s not in names:
                    raise fail(f"{what}: unknown source state {s!r}")
                if chart.state(s).final:
                    raise fail(f"{what}: leaves final state {s!r}")
            _unique(list(t.source), f"{what}: source", where)
        if t.dest == HISTORY:
            if t.source == (ANY,):
                raise fail(f"{what}: '$history' needs named sources")
            for s in t.source:
                if not chart.state(s).returns:
                    raise fail(f"{what}: '$history' leaves {s!r}, which is not marked returns: true")
        elif t.dest not in names:
            raise fail(f"{what}: unknown destination state {t.dest!r}")
        for g in t.guards:
            if g not in guards:
                raise fail(f"{what}: unknown guard {g!r} (declare it under 'guards')")

    # An unguarded transition makes later ones with the same trigger and source dead.
    seen: dict[tuple[str, str], TransitionSpec] = {}
    for t in chart.transitions:
        for src in chart.sources(t):
            first = seen.get((t.trigger, src))
            if first is not None and not first.guards and first.dest != HISTORY:
                raise fail(
                    f"transition {t.trigger!r} from {src!r} to {t.dest!r} can never fire: "
                    f"the unguarded transition to {first.dest!r} comes first"
                )
            seen.setdefault((t.trigger, src), t)

    # Every state reachable from the initial one ($history only goes back to
    # where the machine has been, so it never makes a state reachable).
    nexts: dict[str, set[str]] = {n: set() for n in names}
    forward: dict[str, set[str]] = {n: set() for n in names}
    for e in chart.edges():
        nexts[e.source].add(e.dest)
        if not e.history:
            forward[e.source].add(e.dest)
    reached = {chart.initial}
    todo = deque([chart.initial])
    while todo:
        for n in sorted(forward[todo.popleft()]):
            if n not in reached:
                reached.add(n)
                todo.append(n)
    for st in chart.states:
        if st.name not in reached:
            raise fail(f"state {st.name!r} is unreachable from initial state {chart.initial!r}")
        if not st.final and not nexts[st.name]:
            raise fail(f"state {st.name!r} is not final but no transition leaves it")
        if st.returns and not chart.entered_from(st.name):
            raise fail(f"state {st.name!r} returns to where it was entered from, but nothing enters it")
    unused = guards - {g for t in chart.transitions for g in t.guards}
    if unused:
        raise fail(f"guard(s) declared but never used: {', '.join(sorted(unused))}")
