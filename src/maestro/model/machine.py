"""A chart compiled into a ``transitions`` machine, with guards from a registry.

Guards are looked up by the names the chart declares; a registry that lacks
one raises :class:`~maestro.ChartError` when the machine is compiled, not when
the guard is first needed.  A guard is a function of a :class:`GuardContext`
that returns a bool; it decides, it never acts (no git, no agents, no I/O).

The machine is only asked two things: which triggers a state declares
(:meth:`Machine.triggers_from`) and to make a move (:meth:`Machine.fire`), which
calls ``commit`` — the durable append — after the guards pass and before the
state changes.  If ``commit`` raises, the state does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from transitions import Machine as _TMachine

from maestro.core.errors import ChartError, TransitionNotAllowed
from maestro.model.chart import Chart, Edge
from maestro.model.state import SessionState

__all__ = ["Guard", "GuardContext", "Machine"]


@attrs.frozen
class GuardContext:
    """What a guard may look at: the move asked for and the session's state before it."""

    trigger: str
    source: str
    dest: str
    session: SessionState
    task: str | None = None


Guard = Callable[[GuardContext], bool]


class _Model:
    """One thing a machine moves: the session, or one task."""

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.state: str = ""


class Machine:
    """``chart`` compiled with ``guards``; moves any number of models (the session, or tasks)."""

    def __init__(self, chart: Chart, guards: Mapping[str, Guard]) -> None:
        missing = [g for g in chart.guard_names if g not in guards]
        if missing:
            raise ChartError(f"{chart.source_path or chart.name}: no guard registered for {', '.join(missing)}")
        self.chart = chart
        self._guards = guards
        self._ctx: Callable[[], SessionState] | None = None
        self._refused: list[str] = []
        self._commit: Callable[[Edge], None] | None = None
        self._edges: dict[tuple[str, str], list[Edge]] = {}
        specs: list[dict[str, Any]] = []
        for edge in chart.edges():
            self._edges.setdefault((edge.trigger, edge.source), []).append(edge)
            conditions: list[Callable[[Any], bool]] = [self._guard(g, edge, True) for g in edge.conditions]
            if edge.history:
                conditions.insert(0, self._history(edge.dest))
            unless = [self._guard(g, edge, False) for g in edge.unless]
            specs.append(
                {
                    "trigger": edge.trigger,
                    "source": edge.source,
                    "dest": edge.dest,
                    "conditions": conditions,
                    "unless": unless,
                    "before": self._before(edge),
                }
            )
        self._m = _TMachine(
            model=None,
            states=list(chart.state_names),
            transitions=specs,
            initial=chart.initial,
            auto_transitions=False,
            send_event=True,
            name=f"{chart.name}: ",
        )
        self._stacks: dict[str | None, Callable[[], tuple[str, ...]]] = {}
        self._models: dict[str | None, _Model] = {}

    # -- wiring -----------------------------------------------------------
    def _guard(self, name: str, edge: Edge, want: bool) -> Callable[[Any], bool]:
        guard = self._guards[name]

        def check(ev: Any) -> bool:
            assert self._ctx is not None
            ok = bool(guard(GuardContext(edge.trigger, edge.source, edge.dest, self._ctx(), ev.model.key)))
            if ok is not want:
                self._refused.append(name if want else f"not {name}")
            return ok

        return check

    def _history(self, dest: str) -> Callable[[Any], bool]:
        def check(ev: Any) -> bool:
            stack = self._stacks[ev.model.key]()
            return bool(stack) and stack[-1] == dest

        return check

    def _before(self, edge: Edge) -> Callable[[Any], None]:
        def commit(_ev: Any) -> None:
            assert self._commit is not None
            self._commit(edge)

        return commit

    def add(self, key: str | None, state: str, stack: Callable[[], tuple[str, ...]] = lambda: ()) -> None:
        """Start moving the model ``key`` (``None`` for the session), now in ``state``."""
        model = _Model(key)
        self._m.add_model(model, initial=state)
        self._models[key] = model
        self._stacks[key] = stack

    def reset(self, key: str | None, state: str) -> None:
        """Put model ``key`` in ``state`` without a move (a rewind took the session back); no-op if unknown."""
        model = self._models.get(key)
        if model is not None:
            self._m.set_state(state, model=model)

    def models(self) -> list[str | None]:
        return list(self._models)

    def has(self, key: str | None) -> bool:
        return key in self._models

    def state_of(self, key: str | None) -> str:
        return self._models[key].state

    # -- moving -----------------------------------------------------------
    def triggers_from(self, state: str) -> list[str]:
        """The triggers declared out of ``state`` (guards not evaluated), in chart order."""
        seen: dict[str, None] = {}
        for trig, src in self._edges:
            if src == state:
                seen.setdefault(trig, None)
        return list(seen)

    def fire(
        self,
        key: str | None,
        trigger: str,
        session: Callable[[], SessionState],
        commit: Callable[[Edge], None],
    ) -> Edge:
        """Move model ``key`` by ``trigger``: guards, then ``commit(edge)``, then the state change.

        Raises :class:`TransitionNotAllowed` (state unchanged, nothing committed) if
        no declared transition allows it.
        """
        model = self._models[key]
        state = model.state
        label = self.chart.name if key is None else f"task {key}"
        if (trigger, state) not in self._edges:
            allowed = ", ".join(self.triggers_from(state)) or "none: it is final"
            raise TransitionNotAllowed(trigger, state, f"no such transition (allowed: {allowed})", machine=label)
        chosen: list[Edge] = []

        def record(edge: Edge) -> None:
            commit(edge)
            chosen.append(edge)

        self._ctx, self._commit, self._refused = session, record, []
        try:
            moved = model.trigger(trigger)  # type: ignore[attr-defined]  # added by transitions
        finally:
            self._ctx = self._commit = None
        if not moved or not chosen:
            refused = ", ".join(dict.fromkeys(self._refused)) or "no return point"
            raise TransitionNotAllowed(trigger, state, f"refused by guard(s): {refused}", machine=label)
        return chosen[0]
