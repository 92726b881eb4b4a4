"""The guards the built-in charts name, as the decision engine decides them.

A guard registry maps each name a chart declares to a function of a
:class:`~maestro.machine.GuardContext`.  They are the guard methods of
:class:`~maestro.decisions.DecisionEngine`, which decide from what the event
log says; pass ``engine.guards()`` (or any mapping) to
:meth:`~maestro.Session.create` / :meth:`~maestro.Session.open` to replace them.
"""

from __future__ import annotations

from collections.abc import Mapping

from maestro.decisions import DecisionEngine
from maestro.machine import Guard

__all__ = ["DEFAULT_GUARDS"]

DEFAULT_GUARDS: Mapping[str, Guard] = DecisionEngine(strategies={}).guards()
