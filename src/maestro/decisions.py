"""The decision engine: one strategy per kind of decision, every decision recorded with its evidence.

A *strategy* is a function of a :class:`DecisionContext` that returns a
:class:`~maestro.records.Decision`: the question, the options it weighed (each
with a score and the evidence for it), its choice, rationale and confidence.
The engine looks the strategy up by kind, checks what it returns, links it to a
task or checkpoint, and — given a session — records it, which puts it in the
event log, the session's ``decisions.json`` and, when the session closes, the
history under ``.flow/maestro/decisions/<kind>.json``.  A new kind is one
:meth:`DecisionEngine.register` call; the engine itself does not change::

    engine = DecisionEngine()
    engine.register("naming", lambda ctx: Decision("naming", "What name?", "calc", "short", ...))
    engine.decide("naming", session=session)

The engine also owns the guards the statecharts name (:meth:`DecisionEngine.guards`):
a chart's ``conditions: [has_checkpoint]`` resolves to
:meth:`DecisionEngine.has_checkpoint`.  Guards decide from the recorded state
only, so a replayed session takes the same moves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from maestro._errors import DecisionError, error_text
from maestro.machine import Guard, GuardContext
from maestro.records import Decision
from maestro.state import SessionState
from maestro.views import decision_file_name

if TYPE_CHECKING:
    from maestro.repofacts import RepoFacts
    from maestro.session import Session

__all__ = ["DecisionContext", "DecisionEngine", "Strategy", "decision_file_name"]

log = logging.getLogger(__name__)


@attrs.frozen
class DecisionContext:
    """What a strategy is given: the kind asked for, the repository, parameters, state and history.

    ``params`` are the keyword arguments of :meth:`DecisionEngine.decide` (a
    capability for ``tech_stack``, a task graph for ``task_ordering`` …);
    ``session`` is the asking session's state, if any; ``history`` holds the
    earlier decisions of this kind across sessions, oldest first, as stored in
    ``decisions/<kind>.json`` (``{"session": id, "decision": {...}}``).
    """

    kind: str
    repo: Path | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    session: SessionState | None = None
    history: Sequence[Mapping[str, Any]] = ()
    _scan: Callable[[Path], RepoFacts] | None = attrs.field(default=None, alias="scan", repr=False)

    def facts(self) -> RepoFacts:
        """What the repository holds (manifests, dependencies, layout); scanned once per engine."""
        if self.repo is None:
            raise DecisionError(f"{self.kind}: this decision needs a repository and none was given")
        if self._scan is None:
            from maestro.repofacts import scan

            return scan(self.repo)
        return self._scan(self.repo)


Strategy = Callable[[DecisionContext], Decision]
"""Decides one kind of question; must return a Decision of that kind."""


def default_strategies() -> dict[str, Strategy]:
    """The strategies maestro ships: tech stack, architecture, gates (validation tooling), task ordering."""
    from maestro.strategies import STRATEGIES

    return dict(STRATEGIES)


class DecisionEngine:
    """Decisions by registered strategy, and the guards the charts name.

    ``strategies`` maps each kind to its strategy (default: :func:`default_strategies`).
    ``decisions_dir`` is where the history across sessions lives (usually
    ``Store.decisions_dir``); when given, strategies see their kind's history.
    """

    def __init__(self, strategies: Mapping[str, Strategy] | None = None, *, decisions_dir: Path | None = None) -> None:
        self._strategies: dict[str, Strategy] = default_strategies() if strategies is None else dict(strategies)
        self.decisions_dir = decisions_dir
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
            from maestro.repofacts import scan

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

    def decide(
        self,
        kind: str,
        *,
        repo: Path | str | None = None,
        session: Session | None = None,
        task: str | None = None,
        checkpoint: int | None = None,
        **params: Any,
    ) -> Decision:
        """Ask the strategy for ``kind``; check, link and (given a session) record its decision.

        ``repo`` defaults to the session's repository.  The returned decision is
        the recorded one (with its ``id`` and ``ts``) when a session is given.
        """
        strategy = self._strategies.get(kind)
        if strategy is None:
            known = ", ".join(self.kinds) or "none"
            raise DecisionError(f"no strategy is registered for decision kind {kind!r} (registered: {known})")
        if repo is None and session is not None:
            repo = session.store.repo
        ctx = DecisionContext(
            kind,
            Path(repo) if repo is not None else None,
            params,
            session.state if session is not None else None,
            self.history(kind),
            scan=self.facts,
        )
        decision = strategy(ctx)
        decision = self._check(kind, decision)
        if task is not None or checkpoint is not None:
            decision = attrs.evolve(
                decision,
                task=task if task is not None else decision.task,
                checkpoint=checkpoint if checkpoint is not None else decision.checkpoint,
            )
        if session is not None:
            decision = session.record(decision).payload()
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
        """Guard name → this engine's method, for :class:`~maestro.Session` and the charts."""
        return {
            "has_checkpoint": self.has_checkpoint,
            "within_iteration_limit": self.within_iteration_limit,
            "required_gates_passed": self.required_gates_passed,
            "attempts_left": self.attempts_left,
        }

    @staticmethod
    def has_checkpoint(ctx: GuardContext) -> bool:
        """At least one git checkpoint has been recorded."""
        return bool(ctx.session.checkpoints)

    @staticmethod
    def within_iteration_limit(ctx: GuardContext) -> bool:
        """Another refinement iteration fits within ``limits.max_iterations``."""
        return ctx.session.iteration < ctx.session.limits.max_iterations

    @staticmethod
    def required_gates_passed(ctx: GuardContext) -> bool:
        """The current validation round recorded gates, and the latest result of every required one passed."""
        latest = {g.name: g for g in ctx.session.gates}  # a gate run again (after a retry) counts as it last ran
        return bool(latest) and all(g.status == "passed" for g in latest.values() if g.required)

    @staticmethod
    def attempts_left(ctx: GuardContext) -> bool:
        """The task has started fewer attempts than ``limits.max_task_attempts``."""
        if ctx.task is None:
            return False
        task = ctx.session.tasks.get(ctx.task)
        attempts = task.attempts if task is not None else 0
        return attempts < ctx.session.limits.max_task_attempts
