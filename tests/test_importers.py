"""The importers: beads issue lists and markdown task lists become task graphs.

Every imported list is also run through ``validate_graph`` (the importers leave
validation to their caller), and the resulting graph's structure is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro.core.errors import PlanError
from maestro.plan.importers import from_beads, from_markdown
from maestro.plan.load import load_tasks
from maestro.plan.tasks import Task, TaskGraph, validate_graph

DATA = Path(__file__).parent / "data" / "importers"


def deps(tasks: list[Task]) -> dict[str, tuple[str, ...]]:
    return {t.id: t.depends_on for t in tasks}


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of ``text`` that contains ``needle``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def issue(tid: str, title: str | None = None, **fields: Any) -> dict[str, Any]:
    """A beads issue in the 1.x list shape (the fields ``bd list --json`` always prints)."""
    out: dict[str, Any] = {"id": tid, "title": title or f"Issue {tid}", "description": "", "status": "open",
                           "priority": 2, "issue_type": "task", "created_at": "2026-03-02T09:00:00Z",
                           "created_by": "planner", "updated_at": "2026-03-02T09:00:00Z", "dependencies": [],
                           "dependency_count": 0, "dependent_count": 0, "comment_count": 0}  # fmt: skip
    out.update(fields)
    return out


def dep(issue_id: str, depends_on_id: str, kind: str = "blocks") -> dict[str, str]:
    return {"issue_id": issue_id, "depends_on_id": depends_on_id, "type": kind, "created_at": "2026-03-02T09:00:00Z",
            "created_by": "planner"}  # fmt: skip


def bd_json(*issues: dict[str, Any]) -> str:
    """What ``bd list --json`` prints: an indented JSON array."""
    return json.dumps(list(issues), indent=2)


def jsonl(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# -- beads: the real shapes ---------------------------------------------------------------------------------------


def test_bd_list_1x_shape_maps_every_field() -> None:
    text = (DATA / "bd-list.json").read_text()
    tasks = from_beads(text, "bd.json")
    # the epic, the closed chore and the tombstone are not tasks; input order is kept
    assert [t.id for t in tasks] == ["calc-7kq.1", "calc-7kq.2", "calc-m2x", "calc-q9z"]
    parse, evaluate, cli, docs = tasks

    assert parse.title == "Parse arithmetic expressions"
    assert parse.category == "backend"
    assert parse.risk == "high"
    assert parse.priority == "P1"
    assert parse.subagent == "python-pro"
    assert parse.skills == ("parsing", "testing")
    # FR ids of the description first, then the epic's
    assert parse.requirements == ("FR-1", "FR-3")
    # only lines that are one backticked command (bullets and checkboxes allowed) are commands
    assert parse.acceptance == ("python -m pytest -q tests/test_parse.py", "python -m mypy src/calc")
    assert parse.description.startswith("Tokenise and parse")
    assert "## Acceptance criteria\n\n- `1 + 2 * 3` parses with precedence" in parse.description
    assert parse.description.endswith("## Notes\n\nKeep the parser hand-written; no parser generators.")
    assert parse.line == line_of(text, '"id": "calc-7kq.1"') - 1  # the line of the object's "{"

    assert evaluate.depends_on == ("calc-7kq.1",)
    assert evaluate.risk == "medium"
    assert evaluate.priority == "P2"
    assert evaluate.subagent is None
    assert evaluate.requirements == ("FR-1",)  # from its epic

    # a dependency on the epic is one on each of its open tasks; the closed blocker is dropped;
    # "related" does not order
    assert cli.depends_on == ("calc-7kq.1", "calc-7kq.2")
    assert cli.priority == "P3"  # 4 = backlog
    assert cli.category == "cli"
    assert cli.risk == "low"
    assert cli.requirements == ("FR-2", "NFR-1")
    assert cli.acceptance == ("python -m pytest -q tests/test_cli.py",)

    assert docs.depends_on == ("calc-m2x",)  # waits-for orders, discovered-from does not
    assert docs.priority == "P3"
    assert docs.description == ""

    graph = validate_graph(tasks, source="bd.json")
    assert graph.topological() == ["calc-7kq.1", "calc-7kq.2", "calc-m2x", "calc-q9z"]
    assert graph.longest_chain() == 4


def test_legacy_jsonl_export_with_embedded_dependencies() -> None:
    text = (DATA / "issues.jsonl").read_text()
    tasks = from_beads(text, ".beads/issues.jsonl")
    assert [t.id for t in tasks] == ["bd-a1b2.1", "bd-a1b2.2", "bd-c3d4"]
    assert deps(tasks) == {"bd-a1b2.1": (), "bd-a1b2.2": ("bd-a1b2.1",), "bd-c3d4": ("bd-a1b2.1", "bd-a1b2.2")}
    # JSONL line numbers, counting the skipped memory record and the blank line
    assert [t.line for t in tasks] == [2, 4, 6]
    assert tasks[0].requirements == ("FR-4",)  # from the epic
    assert tasks[2].acceptance == ("go test ./cmd/...",)
    graph = validate_graph(tasks)
    assert graph.dependents() == {"bd-a1b2.1": ("bd-a1b2.2", "bd-c3d4"), "bd-a1b2.2": ("bd-c3d4",), "bd-c3d4": ()}


def test_the_same_issues_as_jsonl_and_as_an_array_import_the_same() -> None:
    issues = [issue("x-1"), issue("x-2", dependencies=[dep("x-2", "x-1")]), issue("x-3", status="closed")]
    assert from_beads(bd_json(*issues)) == from_beads(jsonl(*issues))
    assert from_beads(json.dumps(issues)) == from_beads(jsonl(*issues))  # one-line array


def test_bd_show_shape_with_references_and_dependents() -> None:
    # bd show --json: dependencies and dependents are the other issues, with dependency_type and status
    text = json.dumps([
        issue("app-1", "Login endpoint", dependencies=[
            {"id": "app-0", "title": "Schema", "status": "closed", "priority": 1, "dependency_type": "blocks"},
            {"id": "app-9", "title": "Epic", "status": "open", "priority": 1, "dependency_type": "parent-child"},
        ], dependents=[
            {"id": "app-2", "title": "Logout", "status": "open", "priority": 2, "dependency_type": "blocks"},
        ]),
        issue("app-2", "Logout endpoint"),
    ], indent=2)  # fmt: skip
    tasks = from_beads(text)
    # app-0 is not in the input, but the reference says it is closed: dropped; app-2 depends on app-1
    assert deps(tasks) == {"app-1": (), "app-2": ("app-1",)}
    validate_graph(tasks)


def test_bd_create_object_is_one_issue() -> None:
    text = json.dumps(issue("new-1", "Created", priority=0), indent=2)
    [task] = from_beads(text)
    assert (task.id, task.priority, task.line) == ("new-1", "P0", 1)


def test_bd_ready_output_ignores_parents_not_in_the_input() -> None:
    # bd ready --parent E lists E's ready children, not E; parent-child never orders
    text = bd_json(issue("e.1", parent="e", dependencies=[dep("e.1", "e", "parent-child")]), issue("e.2", parent="e"))
    tasks = from_beads(text)
    assert deps(tasks) == {"e.1": (), "e.2": ()}
    validate_graph(tasks)


# -- beads: epics --------------------------------------------------------------------------------------------------


def test_epic_children_found_by_parent_field_and_by_dependents() -> None:
    text = bd_json(
        issue("ep", issue_type="epic", dependents=[{"id": "b", "status": "open", "dependency_type": "parent-child"}]),
        issue("a", parent="ep"),
        issue("b"),
        issue("c", dependencies=[dep("c", "ep")]),
    )
    assert deps(from_beads(text)) == {"a": (), "b": (), "c": ("a", "b")}


def test_nested_epics_expand_to_their_open_tasks() -> None:
    text = bd_json(
        issue("top", issue_type="epic"),
        issue("mid", issue_type="epic", parent="top"),
        issue("t1", parent="mid"),
        issue("t2", parent="top"),
        issue("t3", parent="mid", status="closed"),
        issue("after", dependencies=[dep("after", "top")]),
    )
    tasks = from_beads(text)
    assert deps(tasks) == {"t1": (), "t2": (), "after": ("t1", "t2")}
    validate_graph(tasks)


def test_a_blocked_epic_blocks_its_tasks() -> None:
    text = bd_json(
        issue("setup"),
        issue("ep", issue_type="epic", dependencies=[dep("ep", "setup")]),
        issue("ep.1", parent="ep"),
        issue("ep.2", parent="ep", dependencies=[dep("ep.2", "ep.1")]),
    )
    assert deps(from_beads(text)) == {"setup": (), "ep.1": ("setup",), "ep.2": ("ep.1", "setup")}


def test_epic_on_epic_dependency_orders_their_tasks() -> None:
    # the flow "Testing Strategy" epic blocks on the implementation epics
    text = bd_json(
        issue("core", issue_type="epic"),
        issue("core.1", parent="core"),
        issue("core.2", parent="core"),
        issue("test", issue_type="epic", dependencies=[dep("test", "core")]),
        issue("test.1", parent="test"),
    )
    tasks = from_beads(text)
    assert deps(tasks) == {"core.1": (), "core.2": (), "test.1": ("core.1", "core.2")}
    assert validate_graph(tasks).longest_chain() == 2


def test_a_dependency_on_an_epic_with_nothing_open_is_dropped() -> None:
    text = bd_json(issue("ep", issue_type="epic"), issue("ep.1", parent="ep", status="closed"),
                   issue("x", dependencies=[dep("x", "ep")]))  # fmt: skip
    assert deps(from_beads(text)) == {"x": ()}


def test_a_task_blocked_by_its_own_epic_is_not_blocked_by_itself() -> None:
    text = bd_json(issue("ep", issue_type="epic"), issue("ep.1", parent="ep", dependencies=[dep("ep.1", "ep")]),
                   issue("ep.2", parent="ep"))  # fmt: skip
    tasks = from_beads(text)
    assert deps(tasks) == {"ep.1": (), "ep.2": ()}
    validate_graph(tasks)


# -- beads: status, kinds, priorities, labels -----------------------------------------------------------------------


def test_closed_and_tombstone_issues_are_done() -> None:
    text = bd_json(
        issue("a", status="closed"),
        issue("b", status="tombstone"),
        issue("c", status="blocked", dependencies=[dep("c", "a"), dep("c", "b")]),
        issue("d", status="deferred"),
        issue("e", status="in_progress", dependencies=[dep("e", "d")]),
    )
    assert deps(from_beads(text)) == {"c": (), "d": (), "e": ("d",)}


def test_every_issue_done_gives_no_tasks() -> None:
    assert from_beads(bd_json(issue("a", status="closed"), issue("b", issue_type="epic"))) == []


@pytest.mark.parametrize(
    ("kind", "orders"),
    [("blocks", True), ("conditional-blocks", True), ("waits-for", True), ("related", False),
     ("discovered-from", False), ("parent-child", False), ("relates-to", False), ("duplicates", False),
     ("supersedes", False), ("caused-by", False)],
)  # fmt: skip
def test_only_blocking_kinds_order_tasks(kind: str, orders: bool) -> None:
    tasks = from_beads(bd_json(issue("a"), issue("b", dependencies=[dep("b", "a", kind)])))
    assert tasks[1].depends_on == (("a",) if orders else ())


def test_a_dependency_without_a_type_blocks() -> None:
    text = bd_json(issue("a"), issue("b", dependencies=[{"issue_id": "b", "depends_on_id": "a"}, "c"]), issue("c"))
    assert from_beads(text)[1].depends_on == ("a", "c")


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(0, "P0"), (1, "P1"), (2, "P2"), (3, "P3"), (4, "P3"), ("P0", "P0"), ("P4", "P3"), ("p1", "P1"), ("3", "P3")],
)
def test_priorities(priority: object, expected: str) -> None:
    [task] = from_beads(bd_json(issue("a", priority=priority)))
    assert task.priority == expected


def test_a_missing_priority_is_the_beads_default() -> None:
    record = issue("a")
    del record["priority"]
    assert from_beads(jsonl(record))[0].priority == "P2"


@pytest.mark.parametrize("priority", [5, -1, "P5", "high", True, 1.5, [1]])
def test_bad_priorities_name_the_field(priority: object) -> None:
    text = bd_json(issue("a"), issue("b", priority=priority))
    with pytest.raises(PlanError) as info:
        from_beads(text, "bd.json")
    err = info.value
    assert (err.path, err.task, err.field) == ("bd.json", "b", "priority")
    assert err.line == line_of(text, '"id": "b"') - 1


def test_labels_give_category_and_risk() -> None:
    text = bd_json(
        issue("a", labels=["risk:high", "frontend", "auth"]),
        issue("b", labels=["Risk: Low"]),
        issue("c", labels=[]),
        issue("d", labels=["x"], metadata=json.dumps({"subagent_type": "frontend-developer",
                                                       "applicable_skills": ["frontend-design"]})),
    )  # fmt: skip
    a, b, c, d = from_beads(text)
    assert (a.category, a.risk) == ("frontend", "high")
    assert (b.category, b.risk) == ("general", "low")
    assert (c.category, c.risk) == ("general", "medium")
    assert (d.category, d.subagent, d.skills) == ("x", "frontend-developer", ("frontend-design",))


def test_an_unknown_risk_label_is_an_error() -> None:
    with pytest.raises(PlanError, match=r"labels: unknown risk 'extreme'") as info:
        from_beads(bd_json(issue("a", labels=["risk:extreme"])), "bd.json")
    assert info.value.task == "a"


def test_requirement_ids_are_words_not_substrings() -> None:
    [task] = from_beads(bd_json(issue("a", "Do FR-2 (not XFR-9)", description="NFR-10, FR-2, FR-1a, FR-11.",
                                      acceptance_criteria="covers FR-3")))  # fmt: skip
    assert task.requirements == ("FR-2", "NFR-10", "FR-11", "FR-3")


def test_an_unknown_dependency_is_left_for_validate_graph() -> None:
    # bd list leaves closed issues out, so the importer cannot tell a closed one from a missing one
    tasks = from_beads(bd_json(issue("a", dependencies=[dep("a", "gone-1")])), "bd.json")
    assert tasks[0].depends_on == ("gone-1",)
    with pytest.raises(PlanError, match=r"unknown task 'gone-1'") as info:
        validate_graph(tasks, source="bd.json")
    assert info.value.task == "a"


def test_a_duplicate_issue_is_reported_by_validate_graph() -> None:
    tasks = from_beads(jsonl(issue("a"), issue("b"), issue("a", "again")), "x.jsonl")
    with pytest.raises(PlanError) as info:
        validate_graph(tasks, source="x.jsonl")
    assert str(info.value) == "x.jsonl:3: task a: id: duplicate task id (first at line 1)"


def test_a_beads_cycle_is_reported_by_validate_graph() -> None:
    tasks = from_beads(bd_json(issue("a", dependencies=[dep("a", "b")]), issue("b", dependencies=[dep("b", "a")])))
    with pytest.raises(PlanError, match="dependency cycle"):
        validate_graph(tasks)


# -- beads: bad input ----------------------------------------------------------------------------------------------


def test_malformed_json_names_the_line() -> None:
    text = bd_json(issue("a"), issue("b")).replace('"title": "Issue b",', '"title": "Issue b"')
    with pytest.raises(PlanError, match=r"^bd\.json:\d+: JSON syntax: Expecting ',' delimiter") as info:
        from_beads(text, "bd.json")
    assert info.value.line == line_of(text, '"title": "Issue b"') + 1


def test_malformed_jsonl_names_the_record_line() -> None:
    text = jsonl(issue("a"), issue("b")) + '{"id": "c", "title": "C"\n' + jsonl(issue("d"))
    with pytest.raises(PlanError) as info:
        from_beads(text, "issues.jsonl")
    assert info.value.line == 3
    assert str(info.value).startswith("issues.jsonl:3: JSON syntax: ")


def test_a_missing_title_names_issue_line_and_field() -> None:
    text = bd_json(issue("a"), issue("b", title=None))
    del_title = text.replace('"title": "Issue b",\n', "")
    with pytest.raises(PlanError) as info:
        from_beads(del_title, "bd.json")
    line = line_of(del_title, '"id": "b"') - 1
    assert str(info.value) == f"bd.json:{line}: task b: title: issue #2 has no title"


@pytest.mark.parametrize("title", ["", "   ", None])
def test_an_empty_title_is_missing(title: object) -> None:
    with pytest.raises(PlanError, match=r"title: issue #1 has no title"):
        from_beads(jsonl({"id": "a", "title": title}))


def test_a_missing_id_names_the_issue_number() -> None:
    with pytest.raises(PlanError) as info:
        from_beads(jsonl(issue("a"), {"title": "no id"}), "x.jsonl")
    assert str(info.value) == "x.jsonl:2: id: issue #2 has no id"


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [({"id": 7, "title": "t"}, "id", "id must be a string"),
     ({"id": "a", "title": ["t"]}, "title", "expected a string, not an array"),
     ({"id": "a", "title": "t", "description": 3}, "description", "expected a string, not a number"),
     ({"id": "a", "title": "t", "labels": "backend"}, "labels", "expected a list of strings"),
     ({"id": "a", "title": "t", "dependencies": {"b": "blocks"}}, "dependencies", "expected a list"),
     ({"id": "a", "title": "t", "dependencies": [{"type": "blocks"}]}, "dependencies", "entry 1 is not a dependency"),
     ({"id": "a", "title": "t", "dependencies": [3]}, "dependencies", "entry 1 is not a dependency"),
     ({"id": "a", "title": "t", "parent": 3}, "parent", "expected an issue id")],
)  # fmt: skip
def test_malformed_fields(record: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(PlanError, match=message) as info:
        from_beads(jsonl(record), "x.jsonl")
    assert (info.value.field, info.value.line) == (field, 1)


@pytest.mark.parametrize("text", ["", "  \n\n", "[]", "null", '{"_type": "memory", "key": "k", "value": "v"}\n'])
def test_no_issues_is_an_error(text: str) -> None:
    with pytest.raises(PlanError, match="no issues found"):
        from_beads(text, "bd.json")


@pytest.mark.parametrize("text", ['"issues"', "[1, 2]", '[{"id": "a", "title": "A"}, []]', "42"])
def test_non_objects_are_errors(text: str) -> None:
    with pytest.raises(PlanError, match=r"JSON (array|object)"):
        from_beads(text)


def test_a_bd_error_object_is_reported() -> None:
    with pytest.raises(PlanError, match=r"bd reported an error: no beads database found"):
        from_beads('{"error": "no beads database found"}\n', "bd.json")


# -- beads: properties ---------------------------------------------------------------------------------------------


@st.composite
def beads_dags(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, list[str]], set[str]]:
    """Issues with random blocking dependencies on earlier issues (a DAG) and random closed ones."""
    n = draw(st.integers(1, 12))
    ids = [f"p-{i}" for i in range(n)]
    closed = {tid for tid in ids if draw(st.booleans())}
    edges = {tid: draw(st.lists(st.sampled_from(ids[:i]), unique=True)) if i else [] for i, tid in enumerate(ids)}
    issues = [issue(tid, status="closed" if tid in closed else draw(st.sampled_from(["open", "in_progress"])),
                    priority=draw(st.integers(0, 4)), dependencies=[dep(tid, d) for d in edges[tid]])
              for tid in ids]  # fmt: skip
    return issues, edges, closed


@settings(max_examples=60, deadline=None)
@given(beads_dags(), st.booleans())
def test_beads_dags_import_as_the_open_part_of_the_graph(
    dag: tuple[list[dict[str, Any]], dict[str, list[str]], set[str]], as_jsonl: bool
) -> None:
    issues, edges, closed = dag
    text = jsonl(*issues) if as_jsonl else bd_json(*issues)
    tasks = from_beads(text)
    assert [t.id for t in tasks] == [i["id"] for i in issues if i["id"] not in closed]
    for t in tasks:
        assert t.depends_on == tuple(d for d in edges[t.id] if d not in closed)
        assert t.priority == f"P{min(3, next(i['priority'] for i in issues if i['id'] == t.id))}"
    assert isinstance(validate_graph(tasks), TaskGraph)


# -- markdown: the real shapes ---------------------------------------------------------------------------------------


def test_flow_task_list_with_groups_is_sequenced_by_segments() -> None:
    text = (DATA / "flow-tasks.md").read_text()
    tasks = from_markdown(text, "tasks.md")
    # T1 is done; T99 is inside a code fence; the [P:Group-X] line in the notes is a plain bullet
    assert [t.id for t in tasks] == ["T2", "T3", "T4", "T5", "T6", "T7"]
    assert deps(tasks) == {
        "T2": (),
        "T3": (),
        "T4": ("T2", "T3"),
        "T5": ("T4",),
        "T6": ("T4",),
        "T7": ("T5", "T6"),
    }
    by_id = {t.id: t for t in tasks}
    assert [by_id[t].group for t in ("T2", "T3", "T4", "T5", "T6", "T7")] == [
        "Group-A", "Group-A", None, "Group-B", "Group-B", None]  # fmt: skip
    t2, t3, t4, t5 = by_id["T2"], by_id["T3"], by_id["T4"], by_id["T5"]
    assert t2.title == "Parse expressions"
    assert t2.requirements == ("FR-1",)
    assert t2.files == ("src/calc/parse.py", "tests/test_parse.py")
    assert t2.acceptance == ("python -m pytest -q tests/test_parse.py",)
    assert t2.risk == "high"
    assert t2.line == line_of(text, "T2: Parse expressions")
    assert (t3.category, t3.requirements, t3.files) == ("backend", ("FR-3",), ("src/calc/fmt.py",))
    assert (t4.title, t4.requirements, t4.priority) == ("Evaluate expressions", ("FR-1", "FR-2"), "P1")
    assert t4.description == "Division by zero returns an error value.\n\nKeep the evaluator pure."
    assert t5.acceptance == ("python -m pytest -q tests/test_cli.py", "calc --help")
    assert "calc --help` exits 0" in t5.description  # the words around a command are kept, not run
    assert by_id["T6"].category == "docs"

    graph = validate_graph(tasks, source="tasks.md")
    assert graph.groups() == {"Group-A": ("T2", "T3"), "Group-B": ("T5", "T6")}
    assert graph.chain_lengths() == {"T2": 1, "T3": 1, "T4": 2, "T5": 3, "T6": 3, "T7": 4}


def test_ai_dev_tasks_list_with_numbered_ids_and_parents() -> None:
    text = (DATA / "ai-dev-tasks.md").read_text()
    tasks = from_markdown(text, "tasks-prd-auth.md")
    # the parents 1.0 and 2.0 are epics; 1.1 is done; the "Relevant Files" bullets are not tasks
    assert [t.id for t in tasks] == ["1.2", "1.3", "2.1", "2.2"]
    assert deps(tasks) == {"1.2": (), "1.3": ("1.2",), "2.1": ("1.3",), "2.2": ("2.1",)}
    assert [t.title for t in tasks] == ["Add password hashing", "Add the login endpoint", "Store sessions server-side",
                                        "Expire idle sessions"]  # fmt: skip
    assert [t.requirements for t in tasks] == [("FR-1",), ("FR-1",), ("FR-2",), ("FR-2",)]
    assert tasks[0].description == "Part of: Set up authentication"
    assert tasks[1].acceptance == ("python -m pytest -q tests/test_login.py",)
    assert tasks[1].description == "Part of: Set up authentication"
    assert validate_graph(tasks).topological() == ["1.2", "1.3", "2.1", "2.2"]


# -- markdown: sequencing --------------------------------------------------------------------------------------------


def test_unmarked_tasks_run_one_after_another() -> None:
    tasks = from_markdown("- [ ] A\n- [ ] B\n* [ ] C\n1. [ ] D\n")
    assert deps(tasks) == {"T1": (), "T2": ("T1",), "T3": ("T2",), "T4": ("T3",)}
    assert [t.title for t in tasks] == ["A", "B", "C", "D"]


def test_a_group_depends_on_the_whole_previous_segment() -> None:
    text = "- [ ] a [P:G1]\n- [ ] b [P:G1]\n- [ ] c [P:G2]\n- [ ] d [P:G2]\n- [ ] e [P:G2]\n- [ ] f\n- [ ] g [P:G3]\n"
    tasks = from_markdown(text)
    assert deps(tasks) == {
        "T1": (), "T2": (),
        "T3": ("T1", "T2"), "T4": ("T1", "T2"), "T5": ("T1", "T2"),
        "T6": ("T3", "T4", "T5"),
        "T7": ("T6",),
    }  # fmt: skip
    assert validate_graph(tasks).groups() == {"G1": ("T1", "T2"), "G2": ("T3", "T4", "T5"), "G3": ("T7",)}


def test_a_group_split_by_another_task_fails_validation() -> None:
    tasks = from_markdown("- [ ] a [P:G]\n- [ ] b\n- [ ] c [P:G]\n", "t.md")
    with pytest.raises(PlanError, match=r"group 'G' also holds 'T1'") as info:
        validate_graph(tasks, source="t.md")
    assert (info.value.line, info.value.task) == (3, "T3")


def test_done_tasks_are_left_out_before_sequencing() -> None:
    text = "- [ ] a\n- [x] b\n- [ ] c [P:A]\n- [X] d [P:A]\n- [ ] e [P:A]\n- [x] f\n- [ ] g\n"
    tasks = from_markdown(text)
    # c waits for a (b is done, not a reason to start c early), g for c and e
    assert deps(tasks) == {"T1": (), "T3": ("T1",), "T5": ("T1",), "T7": ("T3", "T5")}


def test_any_declared_dependency_makes_the_document_explicit() -> None:
    text = """\
- [ ] T1: Schema [P:Group-A]
- [ ] T2: Models
  Depends on: T1
- [ ] T3: Views [P:Group-A]
- [ ] T4: Tests
  Blocked by: T2, T3
"""
    tasks = from_markdown(text)
    assert deps(tasks) == {"T1": (), "T2": ("T1",), "T3": (), "T4": ("T2", "T3")}
    validate_graph(tasks)


def test_depends_on_none_is_explicit_too() -> None:
    tasks = from_markdown("- [ ] a\n  Depends on: none\n- [ ] b\n- [ ] c\n")
    assert deps(tasks) == {"T1": (), "T2": (), "T3": ()}


@pytest.mark.parametrize(
    "line",
    ["Depends on: T1, T2", "depends_on: T1 T2", "Depends: `T1`, `T2`", "Blocked by: T1 and T2",
     "**Depends on:** T1, T2", "- Depends on: T1 (schema), T2", "Dependencies: T1; T2", "DEPENDS-ON: T1,T2"],
)  # fmt: skip
def test_dependency_field_spellings(line: str) -> None:
    tasks = from_markdown(f"- [ ] T1: one\n- [ ] T2: two\n- [ ] T3: three\n  {line}\n")
    assert deps(tasks)["T3"] == ("T1", "T2")


def test_dependencies_on_done_tasks_are_dropped() -> None:
    tasks = from_markdown("- [x] T1: done\n- [ ] T2: open\n- [ ] T3: x\n  Depends on: T1, T2\n")
    assert deps(tasks) == {"T2": (), "T3": ("T2",)}


def test_an_unknown_dependency_fails_validation_at_its_line() -> None:
    text = "# Plan\n\n- [ ] T1: a\n- [ ] T2: b\n  Priority: P1\n  Depends on: T1, T9\n"
    tasks = from_markdown(text, "plan.md")
    assert tasks[1].depends_on == ("T1", "T9")
    with pytest.raises(PlanError) as info:
        validate_graph(tasks, source="plan.md")
    assert str(info.value) == "plan.md:6: task T2: depends_on: unknown task 'T9'"


# -- markdown: epics ------------------------------------------------------------------------------------------------


EPICS = """\
## Tasks

- [ ] E1: Core (FR-1) [P:Group-Z]
  The core library.
  Priority: P1
  Category: backend
  - [ ] T1: Tokenizer [P:Group-A]
  - [ ] T2: Parser [P:Group-A]
    Priority: P0
    Requirements: FR-5
- [ ] E2: Interface
  Depends on: E1
  - [ ] T3: CLI
    Risk: low
  - [ ] T4: HTTP API
    Depends on: T3
- [ ] T5: Release
  Depends on: E2, T1
"""


def test_epics_are_not_tasks_and_give_their_tasks_context() -> None:
    tasks = from_markdown(EPICS, "tasks.md")
    assert [t.id for t in tasks] == ["T1", "T2", "T3", "T4", "T5"]
    by_id = {t.id: t for t in tasks}
    # an epic's dependencies are its tasks'; a dependency on an epic is one on each of its tasks
    assert deps(tasks) == {"T1": (), "T2": (), "T3": ("T1", "T2"), "T4": ("T3", "T1", "T2"), "T5": ("T3", "T4", "T1")}
    # the epic's flag does not propagate; its tasks' own flags hold
    assert [by_id[t].group for t in ("T1", "T2", "T3")] == ["Group-A", "Group-A", None]
    # category and priority are defaults from the epic, requirements are added
    assert (by_id["T1"].priority, by_id["T1"].category, by_id["T1"].requirements) == ("P1", "backend", ("FR-1",))
    assert (by_id["T2"].priority, by_id["T2"].requirements) == ("P0", ("FR-5", "FR-1"))
    assert (by_id["T3"].priority, by_id["T3"].risk, by_id["T3"].category) == ("P2", "low", "general")
    assert by_id["T1"].description == "Part of: Core\n\nThe core library."
    assert by_id["T3"].description == "Part of: Interface"
    assert by_id["T5"].description == ""
    graph = validate_graph(tasks)
    assert graph.topological() == ["T1", "T2", "T3", "T4", "T5"]


def test_implicit_sequencing_sees_through_epics() -> None:
    text = "- [ ] Setup\n  - [ ] a [P:A]\n  - [ ] b [P:A]\n- [ ] Build\n  - [ ] c\n  - [x] d\n  - [ ] e\n"
    tasks = from_markdown(text)
    assert [t.id for t in tasks] == ["T2", "T3", "T5", "T7"]  # numbering counts epics and done items
    assert deps(tasks) == {"T2": (), "T3": (), "T5": ("T2", "T3"), "T7": ("T5",)}
    assert tasks[2].description == "Part of: Build"


def test_nested_epics() -> None:
    text = "- [ ] Outer\n  - [ ] Inner\n    - [ ] leaf\n  - [ ] sibling\n- [ ] after\n  Depends on: T1\n"
    tasks = from_markdown(text)
    assert deps(tasks) == {"T3": (), "T4": (), "T5": ("T3", "T4")}
    assert tasks[0].description == "Part of: Outer > Inner"


def test_a_checked_epic_with_open_tasks_keeps_them() -> None:
    tasks = from_markdown("- [x] 1.0 Parent\n  - [x] 1.1 done\n  - [ ] 1.2 still open\n")
    assert [t.id for t in tasks] == ["1.2"]


def test_acceptance_on_an_epic_is_an_error() -> None:
    text = "- [ ] E1: Epic\n  Acceptance: `pytest -q`\n  - [ ] T1: task\n"
    with pytest.raises(PlanError, match=r"an epic .* is not run itself") as info:
        from_markdown(text, "t.md")
    assert (info.value.line, info.value.task, info.value.field) == (2, "E1", "acceptance")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("- [ ] E1: e\n  Depends on: T1\n  - [ ] T1: t\n", "'T1' is one of its own tasks"),
     ("- [ ] E1: e\n  - [ ] T1: t\n    Depends on: E1\n", "'E1' is the epic it belongs to"),
     ("- [ ] T1: t\n  Depends on: T1\n", "'T1' is itself")],
)  # fmt: skip
def test_dependencies_inside_an_epic_are_errors(text: str, problem: str) -> None:
    with pytest.raises(PlanError, match=problem) as info:
        from_markdown(text)
    assert info.value.field == "depends_on"


# -- markdown: items and fields ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tid", "title"),
    [("- [ ] T1: Title", "T1", "Title"),
     ("- [ ] T1 Title", "T1", "T1 Title"),
     ("- [ ] auth-3: Login form", "auth-3", "Login form"),
     ("- [ ] Docs: update the README", "T1", "Docs: update the README"),
     ("- [ ] 1.1 Sub-task", "1.1", "Sub-task"),
     ("- [ ] 2.3.1. Deep sub-task", "2.3.1", "Deep sub-task"),
     ("- [ ] 1.0: Parent", "1.0", "Parent"),
     ("- [ ] **T7:** Bold id", "T7", "Bold id"),
     ("- [ ] **T7**: Bold id", "T7", "Bold id"),
     ("- [ ] `T7`: Code id", "T7", "Code id"),
     ("- [ ] [P:Group-A] T2: Flag first", "T2", "Flag first"),
     ("- [ ] T2: Flag last [P: Group-A]", "T2", "Flag last"),
     ("- [ ] Step 3: not an id", "T1", "Step 3: not an id"),
     ("- [ ] **Bold title**", "T1", "Bold title"),
     ("- [ ] Meet at 10:30 sharp", "T1", "Meet at 10:30 sharp"),
     ("  - [ ] T1: indented list", "T1", "indented list"),
     ("\t- [ ] T1: tab-indented", "T1", "tab-indented")],
)  # fmt: skip
def test_first_line_ids_and_titles(line: str, tid: str, title: str) -> None:
    [task] = from_markdown(line + "\n")
    assert (task.id, task.title) == (tid, title)


@pytest.mark.parametrize(("flag", "group"), [("[P:Group-X]", "Group-X"), ("[P: Group-b]", "Group-b"), ("[P:X]", "X"),
                                             ("[p:x2]", "x2"), ("[ P : G.1 ]", "G.1")])  # fmt: skip
def test_group_flags(flag: str, group: str) -> None:
    [task] = from_markdown(f"- [ ] T1: Title {flag} more\n")
    assert (task.group, task.title) == (group, "Title more")


def test_requirements_on_the_first_line() -> None:
    [a, b, c] = from_markdown("- [ ] Login (FR-1, FR-2)\n- [ ] Logout [FR-3] for FR-4\n- [ ] Speed (NFR-1 and FR-7)\n")
    assert (a.title, a.requirements) == ("Login", ("FR-1", "FR-2"))
    assert (b.title, b.requirements) == ("Logout for FR-4", ("FR-3", "FR-4"))
    assert (c.title, c.requirements) == ("Speed", ("NFR-1", "FR-7"))


def test_every_field() -> None:
    text = """\
- [ ] T1: Everything
  Description: The lead paragraph.
  Requirements: FR-1, FR-2
  FR: 3
  Files: `src/a.py`, `src/b.py`
  - Files: src/c.py
  Category: backend
  Risk: HIGH
  Priority: p0
  Group: G7
  Subagent: python-pro
  Skills: `testing`, `parsing`
  Acceptance: `ruff check src` and `python -m pytest -q`
  Acceptance criteria:
    - `mypy src`
    - The output is sorted.
  Notes: not a field, just text
  More text.
"""
    [task] = from_markdown(text)
    assert task.requirements == ("FR-1", "FR-2", "FR-3")
    assert task.files == ("src/a.py", "src/b.py", "src/c.py")
    assert (task.category, task.risk, task.priority, task.group, task.subagent) == (
        "backend", "high", "P0", "G7", "python-pro")  # fmt: skip
    assert task.skills == ("testing", "parsing")
    assert task.acceptance == ("ruff check src", "python -m pytest -q", "mypy src")
    assert task.description == "\n".join(["The lead paragraph.", "", "Acceptance criteria:", "- The output is sorted.",
                                           "Notes: not a field, just text", "More text."])  # fmt: skip
    assert task.field_lines["risk"] == 8
    assert task.field_lines["acceptance"] == 13


def test_a_plain_bullet_list_under_an_item_is_description() -> None:
    [task] = from_markdown("- [ ] T1: x\n  Steps:\n  - first\n    - nested\n  - `not a command`\n")
    assert task.acceptance == ()
    assert task.description == "Steps:\n- first\n  - nested\n- `not a command`"


def test_lines_outside_items_are_ignored() -> None:
    text = """\
# Heading
- [ ] T1: first
  belongs to T1
not indented: ends the item
    - [ ] looks nested but the list was closed
- plain bullet
  - [ ] T3: nested under a plain bullet is still a task
"""
    tasks = from_markdown(text)
    assert [(t.id, t.description) for t in tasks] == [("T1", "belongs to T1"), ("T2", ""), ("T3", "")]


def test_code_fences_and_comments_are_skipped() -> None:
    text = """\
- [ ] T1: real
  ```python
  - [ ] T8: in an indented fence
  Depends on: T9
  ```
  after the fence
~~~~
- [ ] T9: in a tilde fence
~~~
- [ ] T9: still in it (a shorter fence does not close)
~~~~
<!--
- [ ] T7: in a comment
-->
- [ ] T2: real too
"""
    tasks = from_markdown(text)
    assert [t.id for t in tasks] == ["T1", "T2"]
    assert deps(tasks) == {"T1": (), "T2": ("T1",)}  # the Depends on in the fence does not count
    assert tasks[0].description == "after the fence"


@pytest.mark.parametrize(
    ("body", "line", "field", "problem"),
    [("  Risk: extreme\n", 2, "risk", "unknown risk 'extreme' (one of low, medium, high)"),
     ("  Priority: P4\n", 2, "priority", "unknown priority 'P4' (one of P0, P1, P2, P3)"),
     ("  Priority: urgent\n", 2, "priority", "unknown priority 'urgent'"),
     ("  Risk: low\n  Risk: high\n", 3, "risk", "given twice (first 'low')"),
     ("  Category:\n", 2, "category", "empty value"),
     ("  Depends on: T/1\n", 2, "depends_on", "a task id matches [A-Za-z0-9._-]+, not 'T/1'"),
     ("  Group: G 1\n", 2, "group", "a group name matches"),
     ("  Group: G2\n", 2, "group", "the item already has group 'G1'")],
)  # fmt: skip
def test_bad_field_values(body: str, line: int, field: str, problem: str | None) -> None:
    text = "- [ ] T2: task [P:G1]\n" + body
    with pytest.raises(PlanError) as info:
        from_markdown(text, "tasks.md")
    err = info.value
    assert (err.path, err.line, err.task, err.field) == ("tasks.md", line, "T2", field)
    if problem is not None:
        assert problem in err.problem


def test_a_bad_field_error_is_one_line() -> None:
    with pytest.raises(PlanError) as info:
        from_markdown("# Plan\n\n- [ ] T1: a\n  Risk: extreme\n", "tasks.md")
    assert str(info.value) == "tasks.md:4: task T1: risk: unknown risk 'extreme' (one of low, medium, high)"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [("- [ ] T1: a [P:A] [P:B]\n", "group", "more than one group flag"),
     ("- [ ] T1: a [P:Group A]\n", "group", "a group name matches"),
     ("- [ ] T1: a [P:]\n", "group", "a group name matches"),
     ("- [ ]\n", "title", "a task needs a title"),
     ("- [ ] T4:\n", "title", "a task needs a title"),
     ("- [ ] [P:A]\n", "title", "a task needs a title")],
)  # fmt: skip
def test_bad_first_lines(text: str, field: str, problem: str) -> None:
    with pytest.raises(PlanError, match=problem) as info:
        from_markdown(text, "t.md")
    assert (info.value.line, info.value.field) == (1, field)


def test_duplicate_ids_are_an_error() -> None:
    with pytest.raises(PlanError) as info:
        from_markdown("- [ ] T2: a\n- [ ] b\n- [ ] T2: c\n", "t.md")
    # the second item's generated id is T2 as well: the first duplicate is on line 2
    assert str(info.value) == "t.md:2: task T2: id: duplicate task id (first at line 1)"


@pytest.mark.parametrize("text", ["", "# Tasks\n\nNothing yet.\n", "- plain\n- bullets\n", "```\n- [ ] T1: x\n```\n"])
def test_no_tasks_is_an_error(text: str) -> None:
    with pytest.raises(PlanError, match="no tasks found"):
        from_markdown(text, "t.md")


def test_every_task_done_gives_no_tasks() -> None:
    assert from_markdown("- [x] T1: a\n- [X] T2: b\n") == []


# -- load_tasks picks the importer by suffix ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "first"), [("bd-list.json", "calc-7kq.1"), ("issues.jsonl", "bd-a1b2.1"), ("flow-tasks.md", "T2")]
)
def test_load_tasks_reads_imported_formats(tmp_path: Path, name: str, first: str) -> None:
    path = tmp_path / name
    path.write_text((DATA / name).read_text())
    graph = load_tasks(path)
    assert graph.ids[0] == first
    assert graph.source == str(path)


# -- markdown: properties ---------------------------------------------------------------------------------------------


@st.composite
def flow_documents(draw: st.DrawFn) -> tuple[str, list[tuple[str, str | None, bool]]]:
    """A markdown list of tasks in runs that share a group (each group one run), some done, with noise around."""
    runs = draw(st.lists(st.tuples(st.booleans(), st.integers(1, 4)), min_size=1, max_size=6))
    rows: list[tuple[str, str | None, bool]] = []  # id, group, done
    lines = ["# Tasks", ""]
    for r, (grouped, size) in enumerate(runs):
        for _ in range(size if grouped else 1):
            n = len(rows) + 1
            group = f"Group-{r}" if grouped else None
            done = draw(st.booleans()) and draw(st.booleans())
            explicit_id = draw(st.booleans())
            flag = f" [P:{group}]" if group else ""
            head = f"T{n}: " if explicit_id else ""
            lines.append(f"{draw(st.sampled_from(['-', '*']))} [{'x' if done else ' '}] {head}Task {n}{flag}")
            if draw(st.booleans()):
                lines.append(f"  Risk: {draw(st.sampled_from(['low', 'medium', 'high']))}")
            if draw(st.booleans()):
                lines.append("")
            rows.append((f"T{n}", group, done))
    return "\n".join(lines) + "\n", rows


@settings(max_examples=80, deadline=None)
@given(flow_documents())
def test_implicit_dependencies_follow_the_segment_rule(doc: tuple[str, list[tuple[str, str | None, bool]]]) -> None:
    text, rows = doc
    tasks = from_markdown(text)
    open_rows = [(tid, group) for tid, group, done in rows if not done]
    assert [t.id for t in tasks] == [tid for tid, _ in open_rows]
    # the rule, computed independently: segment index of each open task
    segment: list[int] = []
    for i, (_, group) in enumerate(open_rows):
        same = i > 0 and group is not None and group == open_rows[i - 1][1]
        segment.append(segment[-1] if same else (segment[-1] + 1 if segment else 0))
    for i, t in enumerate(tasks):
        expected = tuple(tid for j, (tid, _) in enumerate(open_rows) if segment[j] == segment[i] - 1)
        assert t.depends_on == expected
        assert t.group == open_rows[i][1]
    graph = validate_graph(tasks)
    assert len(graph.topological()) == len(tasks)  # acyclic
    assert graph.longest_chain() == (max(segment) + 1 if segment else 0)


# -- regressions --------------------------------------------------------------------------------------------------
DEEP = 100_000


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[" * DEEP + "]" * DEEP, 1),  # an array
        ("\n" + json.dumps(issue("a")) + "\n" + '{"x": ' + "[" * DEEP + "]" * DEEP + "}\n", 3),  # a JSONL record
    ],
)
def test_json_nested_too_deeply_is_a_plan_error(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        load_tasks(path)
    assert str(info.value) == f"{path}:{line}: JSON syntax: nested too deeply to read"


def test_metadata_nested_too_deeply_is_a_plan_error() -> None:
    text = bd_json(issue("a", metadata="[" * DEEP + "]" * DEEP))
    with pytest.raises(PlanError, match=r"^bd\.json:2: task a: metadata: JSON syntax: nested too deeply to read$"):
        from_beads(text, "bd.json")


def test_an_object_where_a_list_belongs_is_called_an_object() -> None:
    with pytest.raises(PlanError, match=r"^bd\.json:1: task a: dependencies: expected a list, not an object$"):
        from_beads('{"dependencies": {}, "id": "a", "title": "x"}', "bd.json")


@pytest.mark.parametrize("odd", ["\u2028", "\x0c", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\r"])
def test_a_markdown_line_ends_at_a_newline_only(odd: str) -> None:
    text = f"- [ ] T1: first{odd}half\r\n  Depends on: none\r\n- [ ] T2: second\n  Depends on: T1\n"
    tasks = from_markdown(text)
    assert [(t.id, t.line) for t in tasks] == [("T1", 1), ("T2", 3)]
    assert tasks[0].title == "first half" and tasks[1].depends_on == ("T1",)


def test_a_jsonl_record_ends_at_a_newline_only() -> None:
    text = json.dumps(issue("a", "a\u2028b"), ensure_ascii=False) + "\n" + json.dumps(issue("b")) + "\n"
    assert [(t.id, t.line) for t in from_beads(text)] == [("a", 1), ("b", 2)]


def test_epics_nested_thousands_deep_need_no_recursion() -> None:
    depth = 3000
    md = [" " * (2 * i) + f"- [ ] E{i}: epic {i}" for i in range(depth)] + ["- [ ] Z1: last", "  Depends on: E0"]
    tasks = from_markdown("\n".join(md))
    assert [(t.id, t.depends_on) for t in tasks] == [(f"E{depth - 1}", ()), ("Z1", (f"E{depth - 1}",))]
    issues = [issue(f"e{i}", issue_type="epic", parent=f"e{i - 1}" if i else None) for i in range(depth)]
    issues += [issue("leaf", parent=f"e{depth - 1}"), issue("z", dependencies=[dep("z", "e0")])]
    assert deps(from_beads(bd_json(*issues))) == {"leaf": (), "z": ("leaf",)}
