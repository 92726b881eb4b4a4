"""The ordering decision (FR-4): a task graph into parallel groups that run one after the other.

Rules, in order:

1. every task's dependencies sit in earlier groups;
2. a group is as wide as the dependencies allow, capped by ``max_parallel``;
3. when more tasks are ready than fit, the most *foundational* go first (those
   the most tasks depend on, directly or transitively), then high risk before
   low, then priority (P0 first), then the order they were written in;
4. explicit groups (``group:`` in ``tasks.yaml``, ``[P:Group-X]`` in markdown)
   run together, when that is consistent: two groups that each wait for the
   other are dissolved (and the decision says so); a group larger than the cap
   is split.

This is list scheduling: each round takes every ready task (or the best
``max_parallel`` of them).  With no cap and no explicit groups the number of
groups is the length of the longest dependency chain, which no valid order can
beat.  Everything is decided from sequences, never from set or dict iteration
order, so equal input gives byte-identical output.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from maestro.core.errors import DecisionError
from maestro.plan.tasks import TaskGraph

__all__ = ["Ordering", "order_tasks"]


@attrs.frozen
class Ordering:
    """Groups of task ids, run in order; the tasks of one group run at once."""

    groups: tuple[tuple[str, ...], ...]
    max_parallel: int | None = None
    dependents: Mapping[str, int] = attrs.field(factory=dict)
    dissolved: tuple[str, ...] = ()
    split: tuple[str, ...] = ()

    def group_of(self, task_id: str) -> int:
        """The 0-based index of the group ``task_id`` runs in."""
        for i, g in enumerate(self.groups):
            if task_id in g:
                return i
        raise KeyError(task_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [list(g) for g in self.groups],
            "max_parallel": self.max_parallel,
            "dissolved_groups": list(self.dissolved),
            "split_groups": list(self.split),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def describe(self) -> str:
        """``G1: T1 | G2: T2, T3`` — one line."""
        return " | ".join(f"G{i + 1}: {', '.join(g)}" for i, g in enumerate(self.groups))


def order_tasks(graph: TaskGraph, *, max_parallel: int | None = None) -> Ordering:
    """Order ``graph`` into parallel groups (see the module's rules)."""
    if max_parallel is not None and (type(max_parallel) is not int or max_parallel < 1):
        raise DecisionError(f"max_parallel must be a positive integer or None, not {max_parallel!r}")
    ids = graph.ids  # built once: TaskGraph.ids makes a new tuple at every call
    position = {tid: i for i, tid in enumerate(ids)}
    dependents = graph.transitive_dependents()
    keys = {tid: (-dependents[tid], graph[tid].risk_rank, graph[tid].priority_rank, position[tid]) for tid in ids}
    key = keys.__getitem__

    units, dissolved, split = _units(graph, ids, max_parallel, key)
    unit_keys = [min(key(t) for t in u) for u in units]  # unique: every task is in one unit, keys end in position
    unit_of = {t: i for i, u in enumerate(units) for t in u}
    waiting = [0] * len(units)  # how many tasks outside the unit it still waits for
    waiters: dict[str, list[int]] = {}  # task -> the units waiting for it
    for i, members in enumerate(units):
        for t in members:
            for d in dict.fromkeys(graph[t].depends_on):
                if unit_of[d] != i:
                    waiting[i] += 1
                    waiters.setdefault(d, []).append(i)
    # The ready units in a heap per unit size.  A round takes, again and again, the best ready unit that still
    # fits the cap — the first that fits in a scan of the ready units in key order — so it looks only at the top
    # of each size's heap: a round costs O(sizes · log n), not a scan and a sort of everything ready.
    ready: dict[int, list[tuple[tuple[int, int, int, int], int]]] = {}
    count = 0

    def push(u: int) -> None:
        heapq.heappush(ready.setdefault(len(units[u]), []), (unit_keys[u], u))

    for i in range(len(units)):
        if waiting[i] == 0:
            push(i)
            count += 1
    groups: list[tuple[str, ...]] = []
    while count:
        chosen: list[int] = []
        if max_parallel is None:
            for heap in ready.values():
                chosen.extend(u for _, u in heap)
                heap.clear()
        else:
            room = max_parallel
            while room:
                best = min((h[0] for size, h in ready.items() if h and size <= room), default=None)
                if best is None:
                    break
                u = best[1]
                heapq.heappop(ready[len(units[u])])
                chosen.append(u)
                room -= len(units[u])
        count -= len(chosen)
        group = sorted((t for u in chosen for t in units[u]), key=key)
        groups.append(tuple(group))
        for t in group:
            for w in waiters.get(t, ()):
                waiting[w] -= 1
                if waiting[w] == 0:
                    push(w)
                    count += 1
    if sum(len(g) for g in groups) != len(graph):  # pragma: no cover - _units removed every cycle
        raise DecisionError("the task graph has a cycle between explicit groups")
    return Ordering(tuple(groups), max_parallel, dependents, tuple(dissolved), tuple(split))


def _units(
    graph: TaskGraph, ids: Sequence[str], cap: int | None, key: Any
) -> tuple[list[tuple[str, ...]], list[str], list[str]]:
    """Scheduling units: explicit groups (consistent ones, split to the cap) and single tasks."""
    named = dict(graph.groups())
    dissolved = _groups_on_cycles(graph, ids, named)
    for name in dissolved:
        del named[name]
    units: list[tuple[str, ...]] = []
    split: list[str] = []
    in_group = {t for members in named.values() for t in members}
    for name, members in named.items():
        ordered = sorted(members, key=key)
        if cap is not None and len(ordered) > cap:
            split.append(name)
            units.extend(tuple(ordered[i : i + cap]) for i in range(0, len(ordered), cap))
        else:
            units.append(tuple(ordered))
    units.extend((t,) for t in ids if t not in in_group)
    return units, dissolved, split


def _groups_on_cycles(graph: TaskGraph, ids: Sequence[str], named: Mapping[str, Sequence[str]]) -> list[str]:
    """The explicit groups that wait for one another in a circle, sorted.

    Each group is contracted into one node of the task graph; the graph of
    tasks itself is acyclic, so every strongly connected component of more than
    one node runs through groups that wait for each other.  All groups of such a
    component are dissolved (every one of them is on a cycle).  Linear in the
    size of the graph (Tarjan's algorithm, iterative).
    """
    if not named:  # no explicit group, nothing to dissolve
        return []
    owner = {t: f"group {name}" for name, members in named.items() for t in members}
    node_of = {t: owner.get(t, t) for t in ids}
    edges: dict[str, list[str]] = {n: [] for n in dict.fromkeys(node_of.values())}
    for t in graph:
        for d in t.depends_on:
            a, b = node_of[t.id], node_of[d]
            if a != b:
                edges[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cyclic: list[str] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            nxt = edges[node]
            if i < len(nxt):
                work.append((node, i + 1))
                child = nxt[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cyclic.extend(m for m in component if m.startswith("group "))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(m.removeprefix("group ") for m in cyclic)


# -- the decision strategy --------------------------------------------------------------------------------------
