"""The timeline: one row per task, one bar per attempt, the session's phases above them, waits shaded.

Time runs left to right in seconds from the session's first event.  A wait longer than a minute and than
:data:`GAP_SHARE` of the plot (a pause for a human, a dead process before its resume) is drawn at that
width with its real length written over it, so that a night's pause does not squeeze the work into a line.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from maestro.report.story import Attempt, Gap, Story
from maestro.report.svg import Box, esc, num, shorten, text_width, title

__all__ = ["TimeScale", "duration_text", "timeline_svg"]

LABEL_W = 190.0  # the row labels' column
PLOT_W = 860.0
RIGHT = 24.0
AXIS_H = 26.0
PHASE_H = 16.0
ROW_H = 14.0  # a row, when there are more than ROOMY rows (else ROOMY_H)
BAR_H = 10.0
ROOMY = 40
ROOMY_H = 20.0
FONT = 11.0
SMALL = 9.5
GAP_SHARE = 0.08
GAP_MIN_S = 60.0  # a shorter wait is drawn to scale, however much of the plot it takes
_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def duration_text(seconds: float) -> str:
    """``42.1 s``, ``3.5 min``, ``2.4 h``, ``1.2 d``."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@attrs.frozen
class TimeScale:
    """Seconds to x: linear, except that each long wait takes a fixed width (``squeezed``)."""

    x0: float
    width: float
    total: float
    squeezed: tuple[Gap, ...]
    gap_px: float
    px_per_s: float

    @classmethod
    def make(cls, x0: float, width: float, total: float, gaps: Sequence[Gap]) -> TimeScale:
        total = max(total, 1e-3)
        cap = width * GAP_SHARE
        squeezed: list[Gap] = []
        for _ in range(len(gaps) + 1):  # squeezing one gap widens the others: until none more must be
            left = total - sum(g.end - g.start for g in squeezed)
            scale = (width - cap * len(squeezed)) / max(left, 1e-3)
            more = [g for g in gaps if g not in squeezed and (g.end - g.start) * scale > cap
                    and g.end - g.start > GAP_MIN_S]  # fmt: skip
            if not more:
                break
            squeezed = sorted({*squeezed, *more}, key=lambda g: (g.start, g.end))
        left = total - sum(g.end - g.start for g in squeezed)
        scale = (width - cap * len(squeezed)) / max(left, 1e-3)
        return cls(x0, width, total, tuple(squeezed), cap, scale)

    def x(self, t: float) -> float:
        shift = 0.0
        for g in self.squeezed:
            if t >= g.end:
                shift += self.gap_px - (g.end - g.start) * self.px_per_s
            elif t > g.start:
                return self.x0 + (g.start + shift / self.px_per_s) * self.px_per_s + self.gap_px * (
                    (t - g.start) / (g.end - g.start))  # fmt: skip
        return self.x0 + t * self.px_per_s + shift

    def hidden(self, t: float) -> bool:
        """Whether ``t`` falls inside a squeezed wait (where no tick is drawn)."""
        return any(g.start < t < g.end for g in self.squeezed)


def _rows(story: Story) -> list[str]:
    """The rows: tasks by their first attempt's start, then those that never ran (in the plan's order)."""
    first: dict[str, float] = {}
    for a in story.attempts:
        first.setdefault(a.task, a.start)
    ran = sorted(first, key=lambda t: (first[t], t))
    return ran + [t.id for t in story.tasks if t.id not in first]


def _unit(step: float) -> tuple[float, str]:
    """The unit the ticks are labelled in: seconds, minutes or hours, by the step between them."""
    if step < 60:
        return 1.0, "s"
    if step < 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _axis(scale: TimeScale, y: float, taken: list[Box]) -> list[str]:
    """Tick marks and labels along the top (in seconds, minutes or hours), none overlapping another label."""
    out: list[str] = []
    step = next((s for s in _STEPS if s * scale.px_per_s >= 64), _STEPS[-1])
    div, unit = _unit(step)
    n = 0
    while n * step <= scale.total + 1e-9:
        t = n * step
        n += 1
        if scale.hidden(t):
            continue
        x = scale.x(t)
        value = t / div
        text = f"{value:.1f}".rstrip("0").rstrip(".") + (f" {unit}" if n == 1 else "")
        box = Box(x - text_width(text, SMALL) / 2, y, text_width(text, SMALL), SMALL + 2)
        if box.x < scale.x0 - 4:
            box.x = scale.x0
        if any(box.overlaps(b) for b in taken):
            continue
        taken.append(box)
        out.append(f'<line class="tick" x1="{num(x)}" y1="{num(y + SMALL + 3)}" x2="{num(x)}" y2="{num(y + 16)}"/>')
        out.append(f'<text class="ax" x="{num(box.x)}" y="{num(y + SMALL)}">{esc(text)}</text>')
    return out


def _bar(a: Attempt, scale: TimeScale, y: float, bar_h: float) -> list[str]:
    x1, x2 = scale.x(a.start), scale.x(a.end)
    w = max(x2 - x1, 1.5)
    tip = f"{a.task} attempt {a.n}: {a.outcome}, {duration_text(a.end - a.start)}"
    if a.agent:
        tip += f" ({a.agent}" + (f" on {a.worker}" if a.worker else "")
        if a.agent_end is not None:
            tip += f" {duration_text(a.agent_end - a.start)}, then merge queue {duration_text(a.end - a.agent_end)}"
        tip += ")"
    if a.cost_usd:
        tip += f", ${a.cost_usd:.4f}"
    if a.summary:
        tip += f"\n{a.summary}"
    cls = f"bar o-{a.outcome}"
    out = [f'<g class="{cls}">{title(tip)}']
    if a.agent_end is not None and a.start < a.agent_end < a.end:
        xa = scale.x(a.agent_end)
        out.append(f'<rect x="{num(x1)}" y="{num(y)}" width="{num(max(xa - x1, 1.0))}" height="{num(bar_h)}"/>')
        out.append(f'<rect class="queue" x="{num(xa)}" y="{num(y)}" width="{num(max(x2 - xa, 1.0))}" '
                   f'height="{num(bar_h)}"/>')  # fmt: skip
    else:
        out.append(f'<rect x="{num(x1)}" y="{num(y)}" width="{num(w)}" height="{num(bar_h)}"/>')
    out.append("</g>")
    return out


def timeline_svg(story: Story) -> str:
    """The timeline as an ``<svg>`` element (styled by the page's CSS classes)."""
    rows = _rows(story)
    info = {t.id: t for t in story.tasks}
    scale = TimeScale.make(LABEL_W, PLOT_W, story.wall_s, story.gaps)
    row_h, bar_h = (ROOMY_H, ROOMY_H - 6) if len(rows) <= ROOMY else (ROW_H, BAR_H)
    top = AXIS_H + PHASE_H + 6
    height = top + max(len(rows), 1) * row_h + 8
    width = LABEL_W + PLOT_W + RIGHT
    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{num(width)}" height="{num(height)}" '
           f'viewBox="0 0 {num(width)} {num(height)}" role="img" aria-label="timeline of the session">',
           '<defs><pattern id="tl-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e0e0e0"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#8a8a8a" stroke-width="2.5"/></pattern></defs>']  # fmt: skip
    # stripes behind every other row, and the waits across them all
    for i in range(0, len(rows), 2):
        y = top + i * row_h
        out.append(f'<rect class="stripe" x="0" y="{num(y)}" width="{num(width)}" height="{num(row_h)}"/>')
    taken: list[Box] = []
    for g in story.gaps:
        x1, x2 = scale.x(g.start), scale.x(g.end)
        what = "waiting for a human" if g.kind == "human" else "process down until the resume"
        out.append(
            f'<rect class="gap gap-{g.kind}" x="{num(x1)}" y="{num(AXIS_H)}" width="{num(max(x2 - x1, 1.0))}" '
            f'height="{num(height - AXIS_H)}">{title(f"{what}: {duration_text(g.end - g.start)}")}</rect>'
        )
        if g in scale.squeezed:
            text = ("paused " if g.kind == "human" else "down ") + duration_text(g.end - g.start)
            w = text_width(text, SMALL)
            box = Box((x1 + x2) / 2 - w / 2, 2, w, SMALL + 2)
            if not any(box.overlaps(b) for b in taken):
                taken.append(box)
                out.append(f'<text class="ax gaplabel" x="{num(box.x)}" y="{num(2 + SMALL)}">{esc(text)}</text>')
            for x in (x1, x2):
                out.append(f'<line class="cut" x1="{num(x)}" y1="{num(AXIS_H)}" x2="{num(x)}" y2="{num(height)}"/>')
    out += _axis(scale, 2, taken)
    out.append(f'<line class="axis" x1="{num(LABEL_W)}" y1="{num(AXIS_H - 6)}" x2="{num(LABEL_W + PLOT_W)}" '
               f'y2="{num(AXIS_H - 6)}"/>')  # fmt: skip
    # the session's phases
    py = AXIS_H
    out.append(f'<text class="rowlabel" x="4" y="{num(py + 11)}">session</text>')
    for p in story.phases:
        x1, x2 = scale.x(p.start), scale.x(p.end)
        tip = f"{p.state}: {duration_text(p.end - p.start)}"
        out.append(f'<g class="phase ph-{esc(p.state)}">{title(tip)}<rect x="{num(x1)}" y="{num(py)}" '
                   f'width="{num(max(x2 - x1, 1.0))}" height="{num(PHASE_H - 2)}"/>')  # fmt: skip
        label = shorten(p.state, x2 - x1 - 4, SMALL)
        if label == p.state:
            out.append(f'<text x="{num(x1 + 2)}" y="{num(py + 10.5)}">{esc(label)}</text>')
        out.append("</g>")
    for m in story.marks:
        if m.kind == "rollback":
            x = scale.x(m.at)
            out.append(f'<path class="mark rollback" d="M{num(x)} {num(py + PHASE_H - 2)} l-4 -8 h8 z">'
                       f"{title(m.label)}</path>")  # fmt: skip
    # one row per task
    y_of = {tid: top + i * row_h for i, tid in enumerate(rows)}
    for tid in rows:
        y = y_of[tid]
        t = info.get(tid)
        tip = tid + (f": {t.title}" if t and t.title else "") + (f" ({t.state}, {t.attempts} attempts)" if t else "")
        out.append(f'<text class="rowlabel" x="4" y="{num(y + row_h / 2 + 4)}">{title(tip)}'
                   f"{esc(shorten(tid, LABEL_W - 10, FONT))}</text>")  # fmt: skip
    for a in story.attempts:
        if a.task in y_of:
            out += _bar(a, scale, y_of[a.task] + (row_h - bar_h) / 2, bar_h)
    for m in story.marks:
        if m.kind == "checkpoint" and m.task in y_of:
            x, y = scale.x(m.at), y_of[m.task] + row_h / 2
            cls = "mark checkpoint" + (" voided" if m.voided else "")
            out.append(f'<path class="{cls}" d="M{num(x)} {num(y - 5)} l4 5 l-4 5 l-4 -5 z">{title(m.label)}</path>')
    out.append("</svg>")
    return "\n".join(out)
