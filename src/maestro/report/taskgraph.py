"""The task graph: tasks as nodes in dependency layers, coloured by their final state, the planned groups outlined.

Layer ``k`` holds the tasks whose longest chain of dependencies is ``k`` long, left to right, so every edge
points right.  A layer taller than :data:`MAX_PER_COLUMN` nodes wraps into several columns.  Within a
column the tasks are sorted by planned group, then by where their dependencies sit (fewer crossings), then
by id; each group's run of nodes is outlined under its name (``G1``, ``G2`` …).  Without dependencies (the
plan is not known) the planned groups are the layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from maestro.report.story import TaskInfo
from maestro.report.svg import esc, num, shorten, text_width, title

__all__ = ["layers", "task_graph_svg"]

NODE_W = 170.0
NODE_H = 20.0
V_GAP = 6.0
RUN_GAP = 10.0
LABEL_H = 14.0
LAYER_GAP = 64.0
WRAP_GAP = 20.0
MAX_PER_COLUMN = 25
PAD = 10.0
FONT = 11.0
SMALL = 9.5


def layers(tasks: Sequence[TaskInfo]) -> dict[str, int]:
    """Each task's layer: the length of its longest chain of dependencies (the planned group without any)."""
    by_id = {t.id: t for t in tasks}
    if not any(t.depends_on for t in tasks):
        return {t.id: t.group or 0 for t in tasks}
    depth: dict[str, int] = {}
    visiting: set[str] = set()  # a cycle (never in a checked plan) is cut where it closes
    for t in tasks:  # iterative depth-first: graphs of thousands of tasks do not reach the recursion limit
        stack = [(t.id, False)]
        while stack:
            tid, done = stack.pop()
            if tid in depth:
                continue
            deps = [d for d in by_id[tid].depends_on if d in by_id]
            if done:
                visiting.discard(tid)
                depth[tid] = 1 + max((depth.get(d, 0) for d in deps if d in depth), default=-1)
                continue
            if tid in visiting:
                continue
            visiting.add(tid)
            stack.append((tid, True))
            stack += [(d, False) for d in deps if d not in depth and d not in visiting]
    return depth


def task_graph_svg(tasks: Sequence[TaskInfo], groups: Sequence[Sequence[str]] = ()) -> str:
    """The graph as an ``<svg>`` element (styled by the page's CSS classes)."""
    layer = layers(tasks)
    by_layer: dict[int, list[TaskInfo]] = {}
    for t in tasks:
        by_layer.setdefault(layer[t.id], []).append(t)
    order = {t.id: i for i, t in enumerate(tasks)}
    pos: dict[str, tuple[float, float]] = {}  # top-left of each node
    rank: dict[str, float] = {}  # vertical order of the placed nodes, for the next layer's sorting
    parts_outline: list[str] = []
    parts_node: list[str] = []
    x = PAD
    height = 0.0
    for k in sorted(by_layer):

        def key(t: TaskInfo) -> tuple[int, float, int, str]:
            deps = [rank[d] for d in t.depends_on if d in rank]
            bary = sum(deps) / len(deps) if deps else float(order[t.id])
            return (t.group if t.group is not None else 1 << 30, bary, order[t.id], t.id)

        members = sorted(by_layer[k], key=key)
        for c in range(0, len(members), MAX_PER_COLUMN):
            column = members[c : c + MAX_PER_COLUMN]
            y = PAD
            run_start = 0
            while run_start < len(column):
                g = column[run_start].group
                run_end = run_start
                while run_end + 1 < len(column) and column[run_end + 1].group == g:
                    run_end += 1
                top = y
                if g is not None:
                    y += LABEL_H
                for t in column[run_start : run_end + 1]:
                    pos[t.id] = (x, y)
                    rank[t.id] = len(rank)
                    y += NODE_H + V_GAP
                if g is not None:
                    name = f"G{g + 1}"
                    members_text = ", ".join(groups[g]) if g < len(groups) else ""
                    parts_outline.append(
                        f'<g class="group">{title(f"planned group {name}: {members_text}")}'
                        f'<rect x="{num(x - 5)}" y="{num(top)}" width="{num(NODE_W + 10)}" '
                        f'height="{num(y - V_GAP - top + 4)}" rx="5"/>'
                        f'<text x="{num(x - 1)}" y="{num(top + 10.5)}">{esc(name)}</text></g>'
                    )
                    y += 4
                y += RUN_GAP
                run_start = run_end + 1
            height = max(height, y)
            x += NODE_W + WRAP_GAP
        x += LAYER_GAP - WRAP_GAP
    width = max(x - LAYER_GAP + PAD + 10, 200.0)
    for t in tasks:
        nx, ny = pos[t.id]
        badge = f"×{t.attempts}" if t.attempts > 1 else ""
        room = NODE_W - 10 - (text_width(badge, SMALL) + 6 if badge else 0)
        tip = f"{t.id}" + (f": {t.title}" if t.title else "") + f"\n{t.state}, {t.attempts} attempt"
        tip += "s" if t.attempts != 1 else ""
        if t.group is not None:
            tip += f", group G{t.group + 1}"
        if t.priority:
            tip += f", {t.priority}"
        if t.depends_on:
            tip += "\ndepends on " + ", ".join(t.depends_on)
        node = [f'<g class="node n-{esc(t.state)}">{title(tip)}',
                f'<rect x="{num(nx)}" y="{num(ny)}" width="{num(NODE_W)}" height="{num(NODE_H)}" rx="3"/>',
                f'<text x="{num(nx + 5)}" y="{num(ny + 14)}">{esc(shorten(t.id, room, FONT))}</text>']  # fmt: skip
        if badge:
            node.append(f'<text class="badge" x="{num(nx + NODE_W - 4 - text_width(badge, SMALL))}" '
                        f'y="{num(ny + 14)}">{esc(badge)}</text>')  # fmt: skip
        node.append("</g>")
        parts_node += node
    edges = _edges(tasks, pos)
    out = [f'<svg class="taskgraph" xmlns="http://www.w3.org/2000/svg" width="{num(width)}" '
           f'height="{num(max(height, 40.0))}" viewBox="0 0 {num(width)} {num(max(height, 40.0))}" role="img" '
           'aria-label="task graph">', '<defs><marker id="tg-arrow" viewBox="0 0 6 6" refX="6" refY="3" '
           'markerWidth="6" markerHeight="6" orient="auto"><path d="M0 0 L6 3 L0 6 z" class="arrowhead"/>'
           "</marker></defs>", *parts_outline, *edges, *parts_node, "</svg>"]  # fmt: skip
    return "\n".join(out)


def _edges(tasks: Sequence[TaskInfo], pos: Mapping[str, tuple[float, float]]) -> list[str]:
    out = []
    for t in tasks:
        x2, y2 = pos[t.id][0], pos[t.id][1] + NODE_H / 2
        for d in t.depends_on:
            if d not in pos:
                continue
            x1, y1 = pos[d][0] + NODE_W, pos[d][1] + NODE_H / 2
            dx = max((x2 - x1) / 2, 10.0)
            out.append(f'<path class="edge" d="M{num(x1)} {num(y1)} C{num(x1 + dx)} {num(y1)} {num(x2 - dx)} '
                       f'{num(y2)} {num(x2)} {num(y2)}" marker-end="url(#tg-arrow)">{title(f"{t.id} depends on {d}")}'
                       "</path>")  # fmt: skip
    return out
