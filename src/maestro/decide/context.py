"""What a strategy is given, and what a strategy is: the contract between the engine and its strategies."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import DecisionError
from maestro.core.records import Decision
from maestro.decide.repofacts import RepoFacts, scan
from maestro.model.state import SessionState
from maestro.store.lessons import Lesson

__all__ = ["DecisionContext", "Strategy"]


@attrs.frozen
class DecisionContext:
    """What a strategy is given: the kind asked for, the repository, parameters, state and history.

    ``params`` are the keyword arguments of :meth:`DecisionEngine.decide` (a
    capability for ``tech_stack``, a task graph for ``task_ordering`` …);
    ``state`` is the asking session's state, if any; ``history`` holds the
    earlier decisions of this kind across sessions, oldest first, as stored in
    ``decisions/<kind>.json`` (``{"session": id, "decision": {...}}``); ``lessons``
    the lessons a human approved (``lessons.json``, :mod:`maestro.decide.lessons`):
    a strategy that follows one cites it (``Evidence("lesson", id, claim)``).
    Proposed and rejected lessons are never here.
    """

    kind: str
    repo: Path | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    state: SessionState | None = None
    history: Sequence[Mapping[str, Any]] = ()
    lessons: Sequence[Lesson] = ()
    _scan: Callable[[Path], RepoFacts] | None = attrs.field(default=None, alias="scan", repr=False)

    def facts(self) -> RepoFacts:
        """What the repository holds (manifests, dependencies, layout); scanned once per engine."""
        if self.repo is None:
            raise DecisionError(f"{self.kind}: this decision needs a repository and none was given")
        if self._scan is None:
            return scan(self.repo)
        return self._scan(self.repo)


Strategy = Callable[[DecisionContext], Decision]
"""Decides one kind of question; must return a Decision of that kind."""
