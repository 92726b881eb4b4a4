"""Short text of a command's output for gate summaries: its first or last non-blank line, flattened to one line."""

from __future__ import annotations

_SUMMARY_CHARS = 200  # one failure message or output line in a summary


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped ("" if none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped ("" if none)."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def one_line(text: str, limit: int = _SUMMARY_CHARS) -> str:
    """``text`` with its whitespace runs made single spaces, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
