"""What both importers share: requirement ids found in text, first-seen order, lines split at ``\\n`` only."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REQUIREMENT", "requirements_in", "split_lines", "unique"]

REQUIREMENT = re.compile(r"\bN?FR-\d+\b")


def requirements_in(texts: Iterable[str]) -> list[str]:
    """The requirement ids (``FR-<n>``, ``NFR-<n>``) found in ``texts``, without repeats, in first-seen order."""
    return list(dict.fromkeys(r for text in texts for r in REQUIREMENT.findall(text)))


def unique(items: Iterable[str]) -> tuple[str, ...]:
    """``items`` without repeats, in first-seen order."""
    return tuple(dict.fromkeys(items))


def split_lines(text: str) -> list[str]:
    """``text`` split at ``\n`` only, a ``\r`` before it dropped (not at U+2028, ``\x0c`` … as ``splitlines`` does)."""
    return [line.removesuffix("\r") for line in text.split("\n")]
