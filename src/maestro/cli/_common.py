"""What the command modules share: the session a command names (``last`` too), and text kept on one line."""

from __future__ import annotations

import json

from maestro.core.errors import MaestroError
from maestro.store.filestore import Store

__all__ = ["escaped", "session_id"]


def escaped(value: str) -> str:
    """``value`` on one line: control characters (newlines…) escaped, so one step stays one line."""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value)


def session_id(store: Store, given: str) -> str:
    if given != "last":
        return given
    ids = store.session_ids()
    if not ids:
        raise MaestroError(f"{store.repo}: no sessions yet")
    return max(ids, key=lambda sid: (_started_at(store, sid), sid))


def _started_at(store: Store, sid: str) -> str:
    """The timestamp of a session's first event ("" if unreadable): ids alone do not order sessions of one second."""
    try:
        with store.events_path(sid).open(encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return ""
    ts = first.get("ts") if isinstance(first, dict) else None
    return ts if isinstance(ts, str) else ""
