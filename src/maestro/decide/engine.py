"""The decision engine: one strategy per kind of decision, every decision recorded with its evidence.

A *strategy* is a function of a :class:`DecisionContext` that returns a
:class:`~maestro.core.records.Decision`: the question, the options it weighed (each
with a score and the evidence for it), its choice, rationale and confidence.
The engine looks the strategy up by kind (:mod:`maestro.decide.strategies` are the
shipped ones; :mod:`maestro.decide.context` is their contract), checks what it returns,
links it to a task or checkpoint, and returns it.  It records nothing: the caller
records the decision (``session.record(decision)``), which puts it in the event log, the
session's ``decisions.json`` and, when the session closes, the history under
``.flow/maestro/decisions/<kind>.json``.  Strategies also see the lessons a human approved
(``maestro lessons``, :mod:`maestro.decide.lessons`), and cite those they follow.  A new kind is one
:meth:`DecisionEngine.register` call; the engine itself does not change::

    engine = DecisionEngine()
    engine.register("naming", lambda ctx: Decision("naming", "What name?", "calc", "short", ...))
    session.record(engine.decide("naming", state=session.state))

:meth:`DecisionEngine.guards` returns the guards the statecharts name: the pure
functions of :mod:`maestro.model.guards` (a chart's ``conditions: [has_checkpoint]``
resolves to :func:`maestro.model.guards.has_checkpoint`).  Guards decide from the
recorded state only, so a replayed session takes the same moves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import DecisionError, StoreError, error_text
from maestro.core.records import Decision
from maestro.decide.context import DecisionContext, Strategy
from maestro.decide.lessons import approved_lessons, lessons_path
from maestro.decide.repofacts import RepoFacts, scan
from maestro.decide.strategies import STRATEGIES
from maestro.model.guards import DEFAULT_GUARDS
from maestro.model.machine import Guard
from maestro.model.state import SessionState
from maestro.store.lessons import Lesson
from maestro.store.views import decision_file_name

__all__ = ["DecisionContext", "DecisionEngine", "Strategy", "decision_file_name"]

log = logging.getLogger(__name__)


def default_strategies() -> dict[str, Strategy]:
    """The strategies maestro ships (:data:`maestro.decide.strategies.STRATEGIES`): one per decision kind."""
    return dict(STRATEGIES)


class DecisionEngine:
    """Decisions by registered strategy, and the guards the charts name.

    ``strategies`` maps each kind to its strategy (default: :func:`default_strategies`).
    ``decisions_dir`` is where the history across sessions lives (usually
    ``Store.decisions_dir``); when given, strategies see their kind's history.
    ``lessons_file`` is the approvals of ``maestro lessons`` (default: ``lessons.json``
    beside ``decisions_dir``, i.e. ``.flow/maestro/lessons.json``); strategies see the
    approved lessons (:mod:`maestro.decide.lessons`).
    """

    def __init__(
        self,
        strategies: Mapping[str, Strategy] | None = None,
        *,
        decisions_dir: Path | None = None,
        lessons_file: Path | None = None,
    ) -> None:
        self._strategies: dict[str, Strategy] = default_strategies() if strategies is None else dict(strategies)
        self.decisions_dir = decisions_dir
        if lessons_file is None and decisions_dir is not None:
            lessons_file = lessons_path(Path(decisions_dir).parent)
        self.lessons_file = lessons_file
        self._facts: dict[Path, RepoFacts] = {}

    # -- strategies ---------------------------------------------------------
    def register(self, kind: str, strategy: Strategy, *, replace: bool = False) -> None:
        """Add the strategy for ``kind``; an existing one is only replaced when asked."""
        if not isinstance(kind, str) or not kind.strip():
            raise DecisionError(f"a decision kind is a non-empty string, not {kind!r}")
        if not callable(strategy):
            raise DecisionError(f"{kind}: a strategy is a function of a DecisionContext, not {strategy!r}")
        if kind in self._strategies and not replace:
            raise DecisionError(f"{kind}: a strategy is already registered (pass replace=True to replace it)")
        self._strategies[kind] = strategy

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds this engine can decide, sorted."""
        return tuple(sorted(self._strategies))

    def facts(self, repo: Path) -> RepoFacts:
        """The repository scan the strategies share (cached per engine; a new engine scans again)."""
        try:
            key = Path(repo).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable parent
            raise DecisionError(f"{repo}: cannot read the repository: {error_text(exc)}") from exc
        if key not in self._facts:
            self._facts[key] = scan(key)
        return self._facts[key]

    def history(self, kind: str) -> list[Mapping[str, Any]]:
        """Earlier decisions of ``kind`` across sessions, oldest first ([] without a history)."""
        if self.decisions_dir is None:
            return []
        path = self.decisions_dir / f"{decision_file_name(kind)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise DecisionError(f"{path}: cannot read the decision history: {error_text(exc)}") from exc
        if not isinstance(data, list):
            raise DecisionError(f"{path}: the decision history is a JSON list")
        # one file may hold kinds that share a name (tech_stack, tech-stack): keep this kind's
        return [e for e in data if isinstance(e, dict) and isinstance(e.get("decision"), dict)
                and e["decision"].get("kind") == kind]  # fmt: skip

    def lessons(self) -> tuple[Lesson, ...]:
        """The lessons a human approved (read at every decision: an approval counts from the next one)."""
        try:
            return approved_lessons(self.lessons_file)
        except StoreError as exc:
            raise DecisionError(str(exc)) from exc

    def decide(
        self,
        kind: str,
        *,
        repo: Path | str | None = None,
        state: SessionState | None = None,
        task: str | None = None,
        checkpoint: int | None = None,
        **params: Any,
    ) -> Decision:
        """Ask the strategy for ``kind``; check and link its decision, and return it (the caller records it).

        ``state`` is the asking session's state (strategies may read it);
        ``task`` and ``checkpoint`` link the decision to a task or checkpoint.
        """
        strategy = self._strategies.get(kind)
        if strategy is None:
            known = ", ".join(self.kinds) or "none"
            raise DecisionError(f"no strategy is registered for decision kind {kind!r} (registered: {known})")
        ctx = DecisionContext(
            kind,
            Path(repo) if repo is not None else None,
            params,
            state,
            self.history(kind),
            self.lessons(),
            scan=self.facts,
        )
        decision = self._check(kind, strategy(ctx))
        if task is not None or checkpoint is not None:
            decision = attrs.evolve(
                decision,
                task=task if task is not None else decision.task,
                checkpoint=checkpoint if checkpoint is not None else decision.checkpoint,
            )
        log.info("decision (%s): %s — %s", kind, decision.choice, decision.rationale)
        return decision

    @staticmethod
    def _check(kind: str, decision: Any) -> Decision:
        if not isinstance(decision, Decision):
            raise DecisionError(f"{kind}: the strategy returned {type(decision).__name__}, not a Decision")
        if decision.kind != kind:
            raise DecisionError(f"{kind}: the strategy returned a decision of kind {decision.kind!r}")
        names = [o.name for o in decision.options]
        if len(set(names)) != len(names):
            raise DecisionError(f"{kind}: the decision lists an option twice: {', '.join(names)}")
        if names and decision.choice not in names:
            raise DecisionError(f"{kind}: the choice {decision.choice!r} is not among the options ({', '.join(names)})")
        return decision

    # -- guards the charts name ----------------------------------------------
    def guards(self) -> dict[str, Guard]:
        """Guard name → guard, for :class:`~maestro.Session` and the charts (the pure guards of the model)."""
        return dict(DEFAULT_GUARDS)
