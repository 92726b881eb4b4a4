"""The session chart with the path one session took through it: the states it visited (how often) and the moves.

The layout comes from the chart itself: a state's row is its distance from the initial state along the
declared moves, the shortest way from the initial state to the first final state runs down the first
column, and the states entered only from anywhere (``source: "*"``: pausing, aborting) stand in a column of
their own.  The moves from anywhere and the moves back (``$history``) are drawn only where the session took
them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from maestro.model.chart import ANY, HISTORY, Chart
from maestro.report.svg import Box, esc, num, text_width, title

__all__ = ["chart_svg"]

NODE_H = 34.0
COL_W = 210.0
ROW_H = 64.0
LEFT = 70.0  # room for the moves that bow left of the first column
PAD = 12.0
FONT = 11.0
SMALL = 9.5


def _layout(chart: Chart) -> dict[str, tuple[int, int]]:
    """Each state's (column, row)."""
    forward: dict[str, list[str]] = {}
    for t in chart.transitions:
        if t.source == (ANY,) or t.dest == HISTORY:
            continue
        for s in t.source:
            forward.setdefault(s, []).append(t.dest)
    row = {chart.initial: 0}
    parent: dict[str, str] = {}
    queue = [chart.initial]
    for s in queue:  # breadth first: the shortest distances
        for d in forward.get(s, []):
            if d not in row:
                row[d] = row[s] + 1
                parent[d] = s
                queue.append(d)
    main: list[str] = []
    finals = [s for s in chart.final_states if s in row]
    s = finals[0] if finals else chart.initial
    while True:
        main.append(s)
        if s not in parent:
            break
        s = parent[s]
    place = {s: (0, row[s]) for s in main}
    used = set(place.values())
    for st in chart.states:
        if st.name in row and st.name not in place:
            c, r = 1, row[st.name]
            while (c, r) in used:
                c += 1
            place[st.name] = (c, r)
            used.add((c, r))
    rest = [st.name for st in chart.states if st.name not in place]
    if rest:
        col = 1 + max(c for c, _ in place.values())
        rows = 1 + max(r for _, r in place.values())
        for i, name in enumerate(rest):
            place[name] = (col, min(rows - 1, (i + 1) * rows // (len(rest) + 1)))
    return place


def _place(x: float, y: float, w: float, h: float, *, taken: list[Box], width: float, height: float) -> Box | None:
    """A free spot for a ``w`` × ``h`` label near (x, y): beside it, above, below, then further out; or None."""
    spots = [(6.0, -h / 2), (-w - 6, -h / 2), (6.0, -h - 2), (-w - 6, -h - 2), (6.0, 2.0), (-w - 6, 2.0),
             (-w / 2, -h - 4), (-w / 2, 4.0)]  # fmt: skip
    for shift in (0.0, -1.2 * h, 1.2 * h, -2.4 * h, 2.4 * h):
        for dx, dy in spots:
            box = Box(x + dx, y + dy + shift, w, h)
            if (box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height
                    and not any(box.overlaps(b) for b in taken)):  # fmt: skip
                return box
    return None


def _clip(centre: tuple[float, float], w: float, h: float, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the centre of a ``w`` × ``h`` box towards a point leaves the box."""
    (cx, cy), (tx, ty) = centre, toward
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    s = min((w / 2) / abs(dx) if dx else math.inf, (h / 2) / abs(dy) if dy else math.inf)
    return cx + dx * s, cy + dy * s


def chart_svg(chart: Chart, visits: Mapping[str, int], moves: Mapping[tuple[str, str, str], int],
              final: str | None = None) -> str:  # fmt: skip
    """The chart as an ``<svg>`` element; ``visits`` counts entries into each state, ``moves`` each (trigger,
    source, dest) taken, ``final`` is the state the session is in now."""
    place = _layout(chart)
    node_w = max(text_width(s.name, FONT) for s in chart.states) + 18
    centre = {s: (PAD + LEFT + c * COL_W + node_w / 2, PAD + r * ROW_H + NODE_H / 2) for s, (c, r) in place.items()}
    width = PAD * 2 + LEFT + max(c for c, _ in place.values()) * COL_W + node_w + 40
    height = PAD * 2 + max(r for _, r in place.values()) * ROW_H + NODE_H + 22
    boxes = [Box(x - node_w / 2 - 2, y - NODE_H / 2 - 2, node_w + 4, NODE_H + 4) for x, y in centre.values()]
    anywhere = sorted({t.trigger for t in chart.transitions if t.source == (ANY,)})
    back = sorted({t.trigger for t in chart.transitions if t.dest == HISTORY})
    note = "; ".join(
        ([f"{', '.join(anywhere)}: from every state that is not final"] if anywhere else [])
        + ([f"{', '.join(back)}: back where it came from"] if back else [])
    )  # fmt: skip
    if note:
        note += " (drawn where taken)"
        width = max(width, PAD * 2 + text_width(note, SMALL))
        boxes.append(Box(PAD, height - 8 - SMALL, text_width(note, SMALL), SMALL + 3))
    edges: dict[tuple[str, str], list[str]] = {}  # (source, dest) -> triggers
    for e in chart.edges():
        if e.source in centre and e.dest in centre:
            edges.setdefault((e.source, e.dest), [])
            if e.trigger not in edges[(e.source, e.dest)]:  # a $history move: one edge per state it may return to
                edges[(e.source, e.dest)].append(e.trigger)
    wild = {t.trigger for t in chart.transitions if t.source == (ANY,) or t.dest == HISTORY}
    taken: dict[tuple[str, str], dict[str, int]] = {}  # (source, dest) -> trigger -> times
    for (trigger, src, dst), n in moves.items():
        if src in centre and dst in centre:
            taken.setdefault((src, dst), {})[trigger] = n
            edges.setdefault((src, dst), [])
    lines: list[str] = []
    labels: list[str] = []
    for (src, dst), declared in sorted(edges.items(), key=lambda kv: (kv[0] in taken, kv[0])):
        done = taken.get((src, dst), {})
        n = sum(done.values())
        triggers = sorted(done) if n else [t for t in declared if t not in wild]
        if not triggers:
            continue  # a move from anywhere, or back, not taken here
        (x1, y1), (x2, y2) = centre[src], centre[dst]
        # a curve bowing to the right of its direction: the two moves between a pair of states part
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        dist = math.hypot(x2 - x1, y2 - y1) or 1.0
        adjacent = x1 == x2 and 0 < y2 - y1 <= ROW_H + 1
        bow = 0.0 if adjacent and (dst, src) not in edges else min(50.0, 14.0 + dist * 0.1)
        nx, ny = (y1 - y2) / dist, (x2 - x1) / dist
        cx, cy = mx + nx * bow, my + ny * bow
        sx, sy = _clip((x1, y1), node_w, NODE_H, (cx, cy))
        ex, ey = _clip((x2, y2), node_w, NODE_H, (cx, cy))
        cls = "move taken" if n else "move"
        tip = f"{' / '.join(triggers)}: {src} → {dst}" + (f", taken {n}×" if n else ", not taken")
        width_px = f' stroke-width="{num(min(1.5 + n, 5.0))}"' if n else ""
        lines.append(f'<path class="{cls}" d="M{num(sx)} {num(sy)} Q{num(cx)} {num(cy)} {num(ex)} {num(ey)}"'
                     f'{width_px} marker-end="url(#ch-arrow{"-taken" if n else ""})">{title(tip)}</path>')  # fmt: skip
        if n:
            text = f"{'/'.join(triggers)} ×{n}"
            w = text_width(text, SMALL)
            lx, ly = 0.25 * sx + 0.5 * cx + 0.25 * ex, 0.25 * sy + 0.5 * cy + 0.25 * ey
            box = _place(lx, ly, w + 4, SMALL + 4, taken=boxes, width=width, height=height)
            if box is not None:  # else the curve's tooltip tells
                boxes.append(box)
                labels.append(f'<text class="movelabel" x="{num(box.x + 2)}" y="{num(box.y + SMALL + 1)}">'
                              f"{title(tip)}{esc(text)}</text>")  # fmt: skip
    nodes: list[str] = []
    for st in chart.states:
        if st.name not in centre:
            continue
        x, y = centre[st.name]
        v = visits.get(st.name, 0)
        cls = "state" + (" visited" if v else "") + (" final" if st.final else "")
        cls += " now" if st.name == final else ""
        tip = f"{st.name}: {st.description}" + (f"\nentered {v}×" if v else "\nnot visited")
        nodes.append(
            f'<g class="{cls}">{title(tip)}<rect x="{num(x - node_w / 2)}" y="{num(y - NODE_H / 2)}" '
            f'width="{num(node_w)}" height="{num(NODE_H)}" rx="{num(NODE_H / 2 if st.final else 6)}"/>'
            f'<text x="{num(x - text_width(st.name, FONT) / 2)}" y="{num(y - 1)}">{esc(st.name)}</text>'
        )
        count = f"×{v}" if v else "–"
        nodes.append(f'<text class="count" x="{num(x - text_width(count, SMALL) / 2)}" y="{num(y + 11)}">'
                     f"{esc(count)}</text></g>")  # fmt: skip
    if note:
        nodes.append(f'<text class="note" x="{num(PAD)}" y="{num(height - 8)}">{esc(note)}</text>')
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{num(width)}" height="{num(height)}" '
           f'viewBox="0 0 {num(width)} {num(height)}" role="img" aria-label="the session chart and the path taken">',
           '<defs><marker id="ch-arrow" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0 0 L6 3 L0 6 z" class="arrowhead"/></marker>'
           '<marker id="ch-arrow-taken" viewBox="0 0 6 6" refX="5" refY="3" markerWidth="4" markerHeight="4" '
           'orient="auto"><path d="M0 0 L6 3 L0 6 z" class="arrowhead taken"/></marker></defs>',
           *lines, *nodes, *labels, "</svg>"]  # fmt: skip
    return "\n".join(out)
