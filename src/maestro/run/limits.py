"""The session's limits (iterations, running minutes, budget): what they start at, raising them, reaching them."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import attrs

from maestro.config.model import Config
from maestro.core.errors import MaestroError
from maestro.core.records import Limits
from maestro.model.state import SessionState

__all__ = ["LIMIT_NAMES", "LIMIT_OPTIONS", "active_s", "initial_limits", "limit_reached", "limits_text",
           "raised_limits", "still_reached"]  # fmt: skip

LIMIT_NAMES = ("max_iterations", "max_minutes", "budget_usd")
LIMIT_OPTIONS = ("raise", "handoff", "abort")


def initial_limits(config: Config) -> Limits:
    """The limits a new session starts with; each iteration may use every rung of the recovery ladder again."""
    rec, lim = config.recovery, config.limits
    return Limits(
        max_iterations=lim.max_iterations,
        max_task_attempts=(1 + rec.max_retries + rec.max_alternatives) * (lim.max_iterations + 1),
        max_minutes=lim.max_minutes,
        budget_usd=lim.budget_usd,
    )


def raised_limits(limits: Limits, new: Mapping[str, Any]) -> Limits:
    """``limits`` with the given ones raised (``maestro resume --budget-usd …``); unknown names are an error."""
    unknown = set(new) - set(LIMIT_NAMES)
    if unknown:
        raise MaestroError(f"unknown limit(s): {', '.join(sorted(unknown))} (limits: {', '.join(LIMIT_NAMES)})")
    given = {k: v for k, v in new.items() if v is not None}
    if "max_iterations" in given and isinstance(given["max_iterations"], int):
        # each iteration may use every rung again: the per-task cap grows with the iterations
        per_iteration = max(1, limits.max_task_attempts // (limits.max_iterations + 1))
        given["max_task_attempts"] = max(limits.max_task_attempts, per_iteration * (given["max_iterations"] + 1))
    try:
        return attrs.evolve(limits, **given) if given else limits
    except (ValueError, TypeError) as exc:
        raise MaestroError(f"bad limit: {exc}") from exc


def limits_text(limits: Limits) -> str:
    parts = [f"{limits.max_iterations} iterations"]
    if limits.max_minutes is not None:
        parts.append(f"{limits.max_minutes:g} minutes")
    if limits.budget_usd is not None:
        parts.append(f"${limits.budget_usd:g}")
    return ", ".join(parts)


def still_reached(context: Mapping[str, Any], limits: Limits, state: SessionState) -> str | None:
    """Why the limit a decision request names is still reached under ``limits`` (None: it no longer is)."""
    name = context.get("limit")
    if name == "budget_usd" and limits.budget_usd is not None and state.spent_usd >= limits.budget_usd:
        return f"budget_usd ${limits.budget_usd:g} is still reached (${state.spent_usd:.4f} spent)"
    if name == "max_minutes" and limits.max_minutes is not None and state.active_s >= limits.max_minutes * 60:
        return f"max_minutes {limits.max_minutes:g} is still reached ({state.active_s / 60:.1f} minutes run)"
    if name == "max_iterations" and state.iteration >= limits.max_iterations:
        return f"max_iterations {limits.max_iterations} is still reached ({state.iteration} iterations run)"
    return None


def active_s(state: SessionState, now: _dt.datetime) -> float:
    """Seconds the session has run: what the log says, plus the time since its last event."""
    since = 0.0
    if state.updated_at:
        since = max(0.0, (now - _dt.datetime.fromisoformat(state.updated_at)).total_seconds())
    return state.active_s + since


def limit_reached(state: SessionState, now: _dt.datetime) -> tuple[str, str] | None:
    """The budget or the running time reached now, as (limit name, text); None if neither is."""
    lim = state.limits
    if lim.budget_usd is not None and state.spent_usd >= lim.budget_usd:
        return "budget_usd", f"budget ${lim.budget_usd:g} (${state.spent_usd:.4f} spent over every agent call)"
    if lim.max_minutes is not None:
        run_s = active_s(state, now)
        if run_s >= lim.max_minutes * 60:
            return "max_minutes", f"time {lim.max_minutes:g} minutes ({run_s / 60:.2f} minutes run)"
    return None
