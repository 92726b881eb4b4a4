"""What the drawings share: escaping, numbers written the same way every time, label widths, shortened labels.

Labels in the drawings are set in a monospace font, so that their width is known here without a browser:
every character is :data:`CHAR_EM` of the font size (wide East Asian characters twice that).  A label that
does not fit its room is shortened in the middle with ``…`` and the full text goes in the element's
``<title>`` (the tooltip).
"""

from __future__ import annotations

import unicodedata
from html import escape

__all__ = ["CHAR_EM", "FONT", "Box", "columns", "esc", "num", "shorten", "text_width", "title"]

CHAR_EM = 0.62  # the advance of a monospace character, in em (DejaVu Sans Mono 0.602, Liberation Mono 0.600)
FONT = 'ui-monospace,"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace'


def esc(text: str) -> str:
    """Text for HTML or SVG: ``& < > " '`` escaped, and control characters (never valid in XML) dropped."""
    return escape("".join(c for c in text if c in "\t\n" or unicodedata.category(c) != "Cc"), quote=True)


def num(x: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros, never ``-0``."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def columns(text: str) -> int:
    """How many monospace columns ``text`` takes (wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def text_width(text: str, size: float) -> float:
    """The width of ``text`` in the drawings' font at ``size`` pixels."""
    return columns(text) * CHAR_EM * size


def shorten(text: str, room: float, size: float) -> str:
    """``text`` if it fits in ``room`` pixels at ``size``, else its head and tail around ``…``."""
    text = " ".join(text.split())
    if text_width(text, size) <= room:
        return text
    budget = int(room / (CHAR_EM * size)) - 1  # the ellipsis takes one column
    if budget <= 0:
        return "…" if room >= CHAR_EM * size else ""
    head_cols = (budget + 1) // 2 + budget // 4
    tail_cols = budget - head_cols
    head, used = "", 0
    for c in text:
        w = columns(c)
        if used + w > head_cols:
            break
        head, used = head + c, used + w
    tail, used = "", 0
    for c in reversed(text[len(head) :]):
        w = columns(c)
        if used + w > tail_cols:
            break
        tail, used = c + tail, used + w
    return f"{head}…{tail}"


def title(text: str) -> str:
    """A ``<title>`` element: the tooltip of the element it is the first child of."""
    return f"<title>{esc(text)}</title>"


class Box:
    """An axis-aligned rectangle, for placing labels where nothing else is."""

    __slots__ = ("h", "w", "x", "y")

    def __init__(self, x: float, y: float, w: float, h: float) -> None:
        self.x, self.y, self.w, self.h = x, y, w, h

    def overlaps(self, other: Box) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)  # fmt: skip

    def __repr__(self) -> str:
        return f"Box({self.x}, {self.y}, {self.w}, {self.h})"
