"""Injected seams for time and identifiers, so that sessions replay exactly.

Nothing in maestro reads the wall clock or a random source directly: a
:class:`Clock` gives the time, an :class:`IdSource` names new sessions.  Tests
and re-drives pass :class:`TickingClock` and :class:`SequentialIds`.
"""

from __future__ import annotations

import datetime as _dt
import secrets
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Clock", "IdSource", "RandomIds", "SequentialIds", "SystemClock", "TickingClock"]


@runtime_checkable
class Clock(Protocol):
    """Where maestro reads the time: the system's clock, or a deterministic one in tests and re-drives."""

    def now(self) -> _dt.datetime:
        """The current time, timezone-aware."""
        ...


@runtime_checkable
class IdSource(Protocol):
    """Where new sessions get their ids: random ones, or a deterministic sequence in tests and re-drives."""

    def new_session_id(self, now: _dt.datetime) -> str:
        """A fresh session id (``[A-Za-z0-9._-]+``)."""
        ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC)


@attrs.define
class TickingClock:
    """A deterministic clock: starts at ``start`` and moves ``step`` on every reading."""

    start: _dt.datetime = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
    step: _dt.timedelta = _dt.timedelta(seconds=1)
    _n: int = 0

    def now(self) -> _dt.datetime:
        t = self.start + self._n * self.step
        self._n += 1
        return t


class RandomIds:
    """``YYYYMMDD-HHMMSS-xxxxxx``: sortable by start time, unique by six random hex digits."""

    def new_session_id(self, now: _dt.datetime) -> str:
        return now.astimezone(_dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@attrs.define
class SequentialIds:
    """Deterministic ids ``<prefix>-1``, ``<prefix>-2`` …"""

    prefix: str = "session"
    _n: int = 0

    def new_session_id(self, now: _dt.datetime) -> str:
        self._n += 1
        return f"{self.prefix}-{self._n}"
