"""The ordering decision (FR-4): rules, properties over random graphs, determinism, the task_ordering strategy."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maestro
from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, converter
from maestro.decide.engine import DecisionEngine
from maestro.decide.strategies.ordering import task_ordering
from maestro.plan.ordering import Ordering, order_tasks
from maestro.plan.tasks import PRIORITIES, RISKS, Task, TaskGraph, parse_tasks, validate_graph


def graph(*tasks: Task, source: str | None = None) -> TaskGraph:
    return validate_graph(tasks, source=source)


def T(tid: str, *deps: str, **fields: str) -> Task:  # noqa: N802 - reads like the tables below
    return Task(tid, f"task {tid}", depends_on=deps, **fields)


# -- the rules --------------------------------------------------------------------------------------------------


def test_dependencies_come_first_and_groups_are_as_wide_as_they_allow() -> None:
    g = graph(T("A"), T("B"), T("C", "A"), T("D", "A", "B"), T("E", "C", "D"))
    ordering = order_tasks(g)
    assert ordering.groups == (("A", "B"), ("C", "D"), ("E",))
    assert ordering.max_parallel is None
    assert ordering.dissolved == () and ordering.split == ()
    assert ordering.dependents == {"A": 3, "B": 2, "C": 1, "D": 1, "E": 0}


def test_foundational_tasks_go_first() -> None:
    # B has two dependents (C, and D through C); A has none: B runs first though A is written first
    g = graph(T("A"), T("B"), T("C", "B"), T("D", "C"))
    assert order_tasks(g).groups == (("B", "A"), ("C",), ("D",))
    assert order_tasks(g, max_parallel=1).groups == (("B",), ("C",), ("A",), ("D",))


def test_foundational_counts_transitive_dependents() -> None:
    # A has one direct dependent but three in all; B has two direct dependents
    g = graph(T("B"), T("A"), T("X", "A"), T("Y", "X"), T("Z", "Y"), T("P", "B"), T("Q", "B"))
    assert g.transitive_dependents()["A"] == 3
    assert g.transitive_dependents()["B"] == 2
    assert order_tasks(g, max_parallel=1).groups[0] == ("A",)


def test_high_risk_goes_early() -> None:
    g = graph(T("A", risk="low"), T("B", risk="high"), T("C"))
    assert order_tasks(g).groups == (("B", "C", "A"),)
    assert order_tasks(g, max_parallel=1).groups == (("B",), ("C",), ("A",))


def test_then_priority() -> None:
    g = graph(T("A", priority="P3"), T("B", priority="P0"), T("C", priority="P1"), T("D"))
    assert order_tasks(g, max_parallel=2).groups == (("B", "C"), ("D", "A"))


def test_the_rules_apply_in_order_foundational_risk_priority() -> None:
    g = graph(
        T("low_p0", risk="low", priority="P0"),
        T("high_p3", risk="high", priority="P3"),
        T("high_p1", risk="high", priority="P1"),
        T("base", risk="low", priority="P3"),
        T("top", "base", risk="low", priority="P3"),
    )
    order = [group[0] for group in order_tasks(g, max_parallel=1).groups]
    assert order == ["base", "high_p1", "high_p3", "low_p0", "top"]


def test_file_order_breaks_ties() -> None:
    assert order_tasks(graph(T("c"), T("a"), T("b")), max_parallel=1).groups == (("c",), ("a",), ("b",))
    assert order_tasks(graph(T("b"), T("a"), T("c")), max_parallel=1).groups == (("b",), ("a",), ("c",))
    assert order_tasks(graph(T("c"), T("a"), T("b"))).groups == (("c", "a", "b"),)


def test_the_cap_limits_every_group() -> None:
    g = graph(*(T(f"T{i}") for i in range(5)), T("Z", "T4"))
    ordering = order_tasks(g, max_parallel=2)
    assert ordering.groups == (("T4", "T0"), ("T1", "T2"), ("T3", "Z"))
    assert ordering.max_parallel == 2
    assert order_tasks(g, max_parallel=10).groups == order_tasks(g).groups


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_cap_is_a_decision_error(bad: object) -> None:
    with pytest.raises(DecisionError, match=r"max_parallel must be a positive integer or None, not "):
        order_tasks(graph(T("A")), max_parallel=bad)  # type: ignore[arg-type]


def test_an_explicit_group_runs_together() -> None:
    # C is ready at once but waits for D, its group mate, whose dependency A runs first
    g = graph(T("A"), T("B"), T("C", group="X"), T("D", "A", group="X"))
    ordering = order_tasks(g)
    assert ordering.groups == (("A", "B"), ("C", "D"))
    assert ordering.group_of("C") == ordering.group_of("D") == 1
    assert ordering.dissolved == () and ordering.split == ()


def test_an_explicit_group_that_fits_the_cap_is_not_broken_up() -> None:
    # A ranks first (file order); X (B, C, D) does not fit beside it, so it runs whole in the next group
    g = graph(T("A"), T("B", group="X"), T("C", group="X"), T("D", group="X"), T("E"))
    ordering = order_tasks(g, max_parallel=3)
    assert ordering.groups == (("A", "E"), ("B", "C", "D"))
    assert ordering.split == ()
    # ranked first, X goes first
    g = graph(T("A"), T("B", group="X", risk="high"), T("C", group="X"), T("D", group="X"), T("E"))
    assert order_tasks(g, max_parallel=3).groups == (("B", "C", "D"), ("A", "E"))


def test_two_groups_waiting_for_each_other_are_dissolved_and_reported() -> None:
    # X holds A and C, Y holds B and D; C waits for B (in Y) and D for A (in X)
    g = graph(T("A", group="X"), T("B", group="Y"), T("C", "B", group="X"), T("D", "A", group="Y"))
    ordering = order_tasks(g)
    assert ordering.dissolved == ("X", "Y")
    assert ordering.groups == (("A", "B"), ("C", "D"))
    assert json.loads(ordering.to_json())["dissolved_groups"] == ["X", "Y"]


def test_a_dissolved_cycle_leaves_the_other_groups_alone() -> None:
    g = graph(
        T("A", group="X"),
        T("B", group="Y"),
        T("C", "B", group="X"),
        T("D", "A", group="Y"),
        T("E", "C", group="Z"),
        T("F", "D", group="Z"),
    )
    ordering = order_tasks(g)
    assert ordering.dissolved == ("X", "Y")
    assert ordering.groups == (("A", "B"), ("C", "D"), ("E", "F"))


def test_a_group_larger_than_the_cap_is_split() -> None:
    g = graph(*(T(f"T{i}", group="X") for i in range(5)), T("S", priority="P0"))
    ordering = order_tasks(g, max_parallel=2)
    assert ordering.split == ("X",)
    # X splits into (T0, T1), (T2, T3), (T4); S (P0) ranks first and T4's part fits beside it
    assert ordering.groups == (("S", "T4"), ("T0", "T1"), ("T2", "T3"))
    assert order_tasks(g).split == ()
    assert order_tasks(g).groups == (("S", "T0", "T1", "T2", "T3", "T4"),)


def test_the_ordering_as_json_and_text() -> None:
    g = graph(T("A"), T("B", group="X"), T("C", "A", group="X"))
    ordering = order_tasks(g, max_parallel=3)
    assert ordering.to_dict() == {
        "groups": [["A"], ["B", "C"]],
        "max_parallel": 3,
        "dissolved_groups": [],
        "split_groups": [],
    }
    assert ordering.to_json() == json.dumps(ordering.to_dict(), indent=2) + "\n"
    assert ordering.describe() == "G1: A | G2: B, C"
    assert ordering.group_of("C") == 1
    with pytest.raises(KeyError):
        ordering.group_of("Z")
    assert isinstance(ordering, Ordering)


# -- properties over random graphs ------------------------------------------------------------------------------


def ancestors_of(tasks: list[Task]) -> dict[str, set[str]]:
    """Every task's transitive dependencies, computed here (tasks depend only on earlier tasks)."""
    out: dict[str, set[str]] = {}
    for t in tasks:
        out[t.id] = set(t.depends_on).union(*(out[d] for d in t.depends_on))
    return out


def longest_chain(tasks: list[Task]) -> int:
    depth: dict[str, int] = {}
    for t in tasks:  # dependencies come earlier in the list
        depth[t.id] = 1 + max((depth[d] for d in t.depends_on), default=0)
    return max(depth.values(), default=0)


@st.composite
def dags(draw: st.DrawFn, *, with_groups: bool) -> list[Task]:
    """Tasks T0..Tn-1, each depending only on lower-numbered tasks; explicit groups built consistent."""
    n = draw(st.integers(1, 12))
    # sometimes the first four tasks make two groups that wait for each other:
    # T0 (GA), T1 (GB), T2 (GA) depends on T1, T3 (GB) depends on T0
    crossed = with_groups and n >= 4 and draw(st.booleans())
    tasks: list[Task] = []
    ancestors: dict[str, set[str]] = {}
    members: dict[str, list[str]] = {}
    for i in range(n):
        tid = f"T{i}"
        if crossed and i < 4:
            deps = [[], [], [1], [0]][i]
        else:
            deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        depends_on = tuple(f"T{d}" for d in deps)
        ancestors[tid] = set(depends_on).union(*(ancestors[d] for d in depends_on))
        if crossed and i < 4:
            group: str | None = ["GA", "GB", "GA", "GB"][i]
        else:
            group = draw(st.sampled_from([None, "GA", "GB", "GC"])) if with_groups else None
        # a task joins a group only when no member is its (transitive) dependency; later members depend on
        # earlier ones only through `ancestors`, so this keeps every group free of a task and its dependency
        if group is not None and any(m in ancestors[tid] for m in members.get(group, [])):
            group = None
        if group is not None:
            members.setdefault(group, []).append(tid)
        tasks.append(
            Task(
                tid,
                f"task {i}",
                depends_on=depends_on,
                group=group,
                risk=draw(st.sampled_from(RISKS)),
                priority=draw(st.sampled_from(PRIORITIES)),
            )
        )
    return tasks


caps = st.none() | st.integers(1, 5)


def check_ordering(tasks: list[Task], ordering: Ordering, cap: int | None) -> None:
    ancestors = ancestors_of(tasks)
    placed = [t for g in ordering.groups for t in g]
    assert sorted(placed) == sorted(t.id for t in tasks)  # every task exactly once
    assert len(placed) == len(set(placed))
    index = {t: i for i, g in enumerate(ordering.groups) for t in g}
    for t in tasks:
        for d in t.depends_on:
            assert index[d] < index[t.id], f"{t.id} runs with or before its dependency {d}"
    for g in ordering.groups:
        assert g, "an empty group"
        for t in g:
            assert not (ancestors[t] & set(g)), f"group {g} holds {t} and one of its dependencies"
        if cap is not None:
            assert len(g) <= cap


@settings(max_examples=300, deadline=None)
@given(dags(with_groups=False), caps)
def test_any_dag_is_ordered_soundly(tasks: list[Task], cap: int | None) -> None:
    g = validate_graph(tasks)
    ordering = order_tasks(g, max_parallel=cap)
    check_ordering(tasks, ordering, cap)
    if cap is None:
        assert len(ordering.groups) == longest_chain(tasks)
    else:
        assert len(ordering.groups) >= max(longest_chain(tasks), -(-len(tasks) // cap))
    assert order_tasks(g, max_parallel=cap).to_json() == ordering.to_json()


@settings(max_examples=300, deadline=None)
@given(dags(with_groups=False), caps)
def test_each_group_takes_the_best_ready_tasks_and_is_full_when_others_wait(tasks: list[Task], cap: int | None) -> None:
    ordering = order_tasks(validate_graph(tasks), max_parallel=cap)
    ancestors = ancestors_of(tasks)
    dependents = {t.id: sum(t.id in a for a in ancestors.values()) for t in tasks}
    position = {t.id: i for i, t in enumerate(tasks)}
    by_id = {t.id: t for t in tasks}

    def key(tid: str) -> tuple[int, int, int, int]:
        t = by_id[tid]
        return (-dependents[tid], RISKS[::-1].index(t.risk), PRIORITIES.index(t.priority), position[tid])

    done: set[str] = set()
    for g in ordering.groups:
        ready = [t.id for t in tasks if t.id not in done and set(t.depends_on) <= done]
        assert set(g) <= set(ready)
        left_out = [t for t in ready if t not in g]
        if left_out:
            assert cap is not None and len(g) == cap
            assert max(key(t) for t in g) < min(key(t) for t in left_out)
        assert list(g) == sorted(g, key=key)
        done.update(g)


@settings(max_examples=300, deadline=None)
@given(dags(with_groups=True), caps)
def test_any_dag_with_explicit_groups_is_ordered_soundly(tasks: list[Task], cap: int | None) -> None:
    g = validate_graph(tasks)  # the groups were built consistent
    ordering = order_tasks(g, max_parallel=cap)
    check_ordering(tasks, ordering, cap)
    assert len(ordering.groups) >= longest_chain(tasks)
    # a group waits for another when one of its tasks depends, transitively, on one of the other's
    ancestors = ancestors_of(tasks)
    named = g.groups()
    waits = {x: {y for y in named if y != x and any(ancestors[m] & set(named[y]) for m in named[x])} for x in named}

    def reaches(start: str, goal: str, allowed: set[str]) -> bool:
        seen, stack = set(), [start]
        while stack:
            for nxt in waits[stack.pop()] & allowed:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    kept = set(named) - set(ordering.dissolved)
    assert list(ordering.dissolved) == sorted(set(ordering.dissolved))
    for name in ordering.dissolved:
        assert reaches(name, name, set(named)), f"{name} was dissolved but waits for no group that waits for it"
    for name in kept:
        assert not reaches(name, name, kept), f"{name} and another kept group wait for each other"
    if (
        [t.group for t in tasks[:4]] == ["GA", "GB", "GA", "GB"]
        and tasks[2].depends_on == ("T1",)
        and tasks[3].depends_on == ("T0",)
    ):
        assert {"GA", "GB"} <= set(ordering.dissolved)
    for name, members in named.items():
        if name in ordering.dissolved:
            continue
        if cap is not None and len(members) > cap:
            assert name in ordering.split
            continue
        assert name not in ordering.split
        assert len({ordering.group_of(m) for m in members}) == 1, f"group {name} was broken up"
    assert order_tasks(g, max_parallel=cap).to_json() == ordering.to_json()
    # the same graph read back from its YAML orders the same
    again = parse_tasks(g.to_yaml())
    assert order_tasks(again, max_parallel=cap).to_json() == ordering.to_json()


def reference_groups(tasks: list[Task], cap: int | None, dissolved: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The module's rules, applied the slow, obvious way: every round looks at every unit that is not done.

    Units are the kept explicit groups (members best first, cut into pieces of ``cap``) and every other task
    alone; a unit is ready when every dependency of its members is done or inside it; a round walks the
    ready units best first (a unit is as good as its best member) and takes each one that still fits the cap.
    """
    ancestors = ancestors_of(tasks)
    dependents = {t.id: sum(t.id in a for a in ancestors.values()) for t in tasks}
    position = {t.id: i for i, t in enumerate(tasks)}
    by_id = {t.id: t for t in tasks}

    def key(tid: str) -> tuple[int, int, int, int]:
        t = by_id[tid]
        return (-dependents[tid], RISKS[::-1].index(t.risk), PRIORITIES.index(t.priority), position[tid])

    named: dict[str, list[str]] = {}
    for t in tasks:
        if t.group is not None and t.group not in dissolved:
            named.setdefault(t.group, []).append(t.id)
    units: list[list[str]] = []
    for members in named.values():
        ordered = sorted(members, key=key)
        step = cap or len(ordered)
        units.extend(ordered[i : i + step] for i in range(0, len(ordered), step))
    grouped = {m for members in named.values() for m in members}
    units.extend([t.id] for t in tasks if t.id not in grouped)
    done: set[str] = set()
    out: list[tuple[str, ...]] = []
    while len(done) < len(tasks):
        ready = [u for u in units if u[0] not in done and all(set(by_id[m].depends_on) <= done | set(u) for m in u)]
        ready.sort(key=lambda u: min(key(m) for m in u))
        taken: list[str] = []
        for u in ready:
            if cap is None or len(taken) + len(u) <= cap:
                taken.extend(u)
        assert taken, "no unit is ready: the reference is stuck"
        out.append(tuple(sorted(taken, key=key)))
        done.update(taken)
    return out


@settings(max_examples=300, deadline=None)
@given(dags(with_groups=True), caps)
def test_the_groups_are_those_of_the_rules_applied_the_slow_way(tasks: list[Task], cap: int | None) -> None:
    ordering = order_tasks(validate_graph(tasks), max_parallel=cap)
    assert list(ordering.groups) == reference_groups(tasks, cap, ordering.dissolved)


@pytest.mark.parametrize("seed", range(6))
def test_large_random_graphs_with_groups_of_every_size_follow_the_rules(seed: int) -> None:
    """300 tasks, explicit groups of 1 to 7 members under caps of 1 to 9: units of many sizes wait at once."""
    rnd = random.Random(seed)
    tasks: list[Task] = []
    ancestors: dict[str, set[str]] = {}
    members: dict[str, list[str]] = {}
    for i in range(300):
        tid = f"T{i}"
        deps = tuple(sorted({f"T{rnd.randrange(i)}" for _ in range(rnd.randrange(min(i, 3) + 1))})) if i else ()
        ancestors[tid] = set(deps).union(*(ancestors[d] for d in deps))
        group: str | None = f"G{rnd.randrange(60)}" if rnd.random() < 0.6 else None
        if group is not None and (
            len(members.get(group, [])) >= 7 or any(m in ancestors[tid] for m in members.get(group, []))
        ):
            group = None
        if group is not None:
            members.setdefault(group, []).append(tid)
        tasks.append(
            Task(tid, "t", depends_on=deps, group=group, risk=rnd.choice(RISKS), priority=rnd.choice(PRIORITIES))
        )
    cap = [None, *range(1, 10)][seed + 3]
    ordering = order_tasks(validate_graph(tasks), max_parallel=cap)
    check_ordering(tasks, ordering, cap)
    assert list(ordering.groups) == reference_groups(tasks, cap, ordering.dissolved)


# -- determinism across processes -------------------------------------------------------------------------------

DETERMINISM_TASKS = """\
version: 1
tasks:
  - {id: setup, title: Setup}
  - {id: zeta, title: Z, depends_on: [setup], group: Group-B}
  - {id: alpha, title: A, depends_on: [setup], group: Group-B}
  - {id: mid, title: M, depends_on: [setup], risk: high}
  - {id: x1, title: X1, group: Group-A}
  - {id: x2, title: X2, group: Group-A}
  - {id: x3, title: X3, group: Group-A}
  - {id: p, title: P, depends_on: [x1], group: Group-C, priority: P0}
  - {id: q, title: Q, depends_on: [zeta], group: Group-D}
  - {id: r, title: R, depends_on: [p], group: Group-D}
  - {id: s, title: S, depends_on: [q], group: Group-C}
  - {id: tail, title: T, depends_on: [mid, alpha, r, s]}
  - {id: lone1, title: L1}
  - {id: lone2, title: L2}
"""

SCRIPT = """\
import json, sys
from maestro.decide.engine import DecisionEngine
from maestro.decide.strategies.ordering import task_ordering
from maestro.plan.ordering import order_tasks
from maestro.core.records import converter
from maestro.plan.load import load_tasks
graph = load_tasks(sys.argv[1])
for cap in (None, 2, 3):
    print(order_tasks(graph, max_parallel=cap).to_json())
    engine = DecisionEngine(strategies={"task_ordering": task_ordering})
    decision = engine.decide("task_ordering", graph=graph, max_parallel=cap)
    print(json.dumps(converter.unstructure(decision)))
"""


def test_the_order_is_byte_identical_whatever_the_hash_seed(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(DETERMINISM_TASKS, encoding="utf-8")
    outputs = []
    for seed in ("0", "1", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(path)], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[1:] == outputs[:1] * 3
    graph = parse_tasks(DETERMINISM_TASKS, path)
    expected = order_tasks(graph)
    assert outputs[0].startswith(expected.to_json())
    assert expected.dissolved == ("Group-C", "Group-D")  # C waits for D (s on q) and D for C (r on p)
    assert expected.groups == (
        ("setup", "x1", "x2", "x3", "lone1", "lone2"),
        ("zeta", "p", "mid", "alpha"),  # 3 and 2 dependents, then high risk before medium
        ("q", "r"),
        ("s",),
        ("tail",),
    )


# -- the task_ordering strategy ---------------------------------------------------------------------------------

STRATEGY_GRAPH = (
    T("A"),
    T("B", risk="high"),
    T("C", "B"),
    T("D", "A", "C"),
)


def engine() -> DecisionEngine:
    return DecisionEngine(strategies={"task_ordering": task_ordering})


def test_the_task_ordering_decision() -> None:
    g = graph(*STRATEGY_GRAPH, source="tasks.yaml")
    decision = engine().decide("task_ordering", graph=g)
    assert isinstance(decision, Decision)
    assert decision.kind == "task_ordering"
    assert decision.question == "In what order, and how many at once, should the 4 tasks run?"
    assert decision.choice == "foundational_first"
    assert decision.rationale == (
        "foundational_first > risk_early > parallel: 4 tasks in 3 groups (longest chain 3, widest group 2): "
        "G1: B, A | G2: C | G3: D"
    )
    assert decision.confidence == 1.0
    assert [o.name for o in decision.options] == ["foundational_first", "sequential"]
    chosen, sequential = decision.options
    assert chosen.score == 1.0
    assert chosen.notes == "G1: B, A | G2: C | G3: D"
    assert chosen.evidence == (
        Evidence("file", "tasks.yaml", "4 tasks"),
        Evidence("fact", "B is foundational", "2 tasks depend on it"),
        Evidence("fact", "A is foundational", "1 task depends on it"),
        Evidence("fact", "C is foundational", "1 task depends on it"),
        Evidence("fact", "B is high risk", "scheduled early"),
        Evidence("fact", "longest dependency chain: 3 tasks", "no order has fewer groups"),
    )
    assert sequential.score == 0.75
    assert sequential.notes == "G1: A | G2: B | G3: C | G4: D"


def test_the_task_ordering_decision_with_a_cap_and_dissolved_and_split_groups() -> None:
    g = graph(
        T("A", group="X"),
        T("B", group="Y"),
        T("C", "B", group="X"),
        T("D", "A", group="Y"),
        T("E", group="W"),
        T("F", group="W"),
        T("G", group="W"),
    )
    decision = engine().decide("task_ordering", graph=g, max_parallel=2)
    ordering = order_tasks(g, max_parallel=2)
    assert ordering.dissolved == ("X", "Y") and ordering.split == ("W",)
    assert decision.rationale.endswith(f", capped at 2): {ordering.describe()}")
    for name in ("G1", "G2", "G3", "G4"):
        assert f"{name}: " in decision.rationale
    assert decision.confidence == 0.8
    evidence = decision.options[0].evidence
    assert Evidence("fact", "at most 2 tasks at once", "parallel.max_workers") in evidence
    assert Evidence("fact", "explicit group X dissolved", "it and another group wait for each other") in evidence
    assert Evidence("fact", "explicit group Y dissolved", "it and another group wait for each other") in evidence
    assert Evidence("fact", "explicit group W split", "larger than 2") in evidence
    assert Evidence("fact", "A is foundational", "1 task depends on it") in evidence
    assert not any(e.kind == "file" for e in evidence)  # the graph has no source


def test_the_strategy_needs_a_graph() -> None:
    with pytest.raises(DecisionError, match=r"task_ordering: pass graph=<TaskGraph> to decide\(\)"):
        engine().decide("task_ordering")
    with pytest.raises(DecisionError, match="max_parallel must be a positive integer"):
        engine().decide("task_ordering", graph=graph(T("A")), max_parallel=0)


def test_the_decision_is_recorded_in_the_session(session: maestro.Session) -> None:
    g = graph(*STRATEGY_GRAPH, source="tasks.yaml")
    decision = session.record(
        engine().decide("task_ordering", state=session.state, repo=session.store.repo, graph=g, max_parallel=None)
    ).payload()
    assert decision.id == "D1"
    assert decision.ts != ""
    assert decision.choice == "foundational_first"
    assert list(session.state.decisions) == [decision]
    session.refresh_views()
    recorded = json.loads((session.dir / "decisions.json").read_text(encoding="utf-8"))
    assert recorded == [converter.unstructure(decision)]
    assert recorded[0]["id"] == "D1"
    assert recorded[0]["kind"] == "task_ordering"
    assert "G1: B, A | G2: C | G3: D" in recorded[0]["rationale"]
    second = session.record(
        engine().decide("task_ordering", state=session.state, repo=session.store.repo, graph=g, max_parallel=1)
    ).payload()
    assert second.id == "D2"


def test_a_long_chain_of_explicit_groups() -> None:
    """3,000 one-task groups in a chain: none waits for another (benchmarks/ordering.py times it)."""
    graph = validate_graph(
        [Task(f"T{i}", "x", depends_on=[f"T{i - 1}"] if i else [], group=f"G{i}") for i in range(3000)]
    )
    ordering = order_tasks(graph)
    assert ordering.groups == tuple((f"T{i}",) for i in range(3000))
    assert ordering.dissolved == ()
