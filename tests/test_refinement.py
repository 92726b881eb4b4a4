"""Refinement that plans (issue 17, item 2): what validation found becomes work, and only that.

The end-to-end behaviour (fix tasks, re-running only affected tasks, tasks for uncovered
requirements from the agent or from maestro) is tested with real sessions in
``tests/test_runner.py``; here: a crash in the middle of planning an iteration, the saved
plan, the scripted agent's ``refinement`` section, and the pieces of
:mod:`maestro.run.refinement`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import maestro
from maestro.agents.script import parse_script
from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import parse_config
from maestro.core.errors import ScriptError, StoreError
from maestro.core.records import GateResult
from maestro.plan.prd import parse_prd
from maestro.plan.tasks import Task, validate_graph
from maestro.run import Runner
from maestro.run.refinement import (
    RefinementPlan,
    Refiner,
    findings,
    fix_task,
    gate_output,
    load_plan,
    merge_new_tasks,
    plan_path,
)
from tests.support.runs import Recorder, config_text, make_repo, prd_text, task, write

REQS = [("FR-1", "one", "P0"), ("FR-2", "Export as CSV", "P1"), ("FR-3", "nice to have", "P3")]


def _setup(
    tmp_path: Path, script: dict[str, Any], rounds: list[list[dict[str, Any]]], config: str,
    reqs: list[tuple[str, str, str]] = REQS,
) -> tuple[maestro.Store, Runner, Recorder, Path]:  # fmt: skip
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text(reqs), encoding="utf-8")
    tasks = [task("a", reqs=["FR-1"], acceptance=["test -f a.txt"])]
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    for n, new in enumerate(rounds, 1):
        (plan / f"r{n}.yaml").write_text(json.dumps({"version": 1, "tasks": new}), encoding="utf-8")
    doc = {"version": 1, "tasks": script, "refinement": [{"tasks": f"r{n}.yaml"} for n in range(1, len(rounds) + 1)]}
    agent = Recorder(ScriptedAgent.from_mapping(doc, plan))
    store = maestro.Store(repo)
    cfg = parse_config(config, plan / "config.yaml")
    return store, Runner(store, cfg, agent, sleep=lambda s: None), agent, plan


class Crash(BaseException):
    """A crash of the process, as far as the run can tell (nothing catches it)."""


def test_a_crash_after_the_plan_is_saved_resumes_with_the_same_plan_without_asking_the_agent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = [{"id": "csv", "title": "CSV export", "requirements": ["FR-2"], "acceptance": ["test -f csv.txt"]}]
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "csv": [{"actions": [write("csv.txt", "x\n")]}],
              "fix-tests-1": [{"actions": [write("fixed.txt", "ok\n")]}]}  # fmt: skip
    store, runner, agent, plan = _setup(tmp_path, script, [new], config_text(tests="test -f fixed.txt"))
    real = Refiner.decision

    def crash(self: Refiner, p: RefinementPlan) -> Any:
        raise Crash  # the plan is saved; its decision is not recorded yet

    monkeypatch.setattr(Refiner, "decision", crash)
    with pytest.raises(Crash):
        runner.run("Build it", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    (sid,) = store.session_ids()
    saved = plan_path(store.session_dir(sid), 1)
    assert saved.is_file()
    assert len(agent.plans) == 1
    assert [r.task.id for r in agent.requests] == ["a"]

    monkeypatch.setattr(Refiner, "decision", real)
    out = runner.resume(sid)
    assert out.state == "completed"
    assert len(agent.plans) == 1  # the saved plan was carried out: the agent was not asked (nor paid) again
    state = maestro.rebuild(store.read_events(sid))
    assert {t: ts.state for t, ts in state.tasks.items()} == {"a": "succeeded", "csv": "succeeded",
                                                              "fix-tests-1": "succeeded"}  # fmt: skip
    assert sorted(r.task.id for r in agent.requests) == ["a", "csv", "fix-tests-1"]
    assert [d.kind for d in state.decisions].count("refinement_plan") == 1
    fix = next(r.task for r in agent.requests if r.task.id == "fix-tests-1")
    assert fix.depends_on == ("a", "csv")  # after every other task of the iteration, the new ones too


def test_of_the_agent_s_plan_only_new_tasks_for_the_requirements_are_taken_and_maestro_covers_the_rest(
    tmp_path: Path,
) -> None:
    """The agent restates the done task a (its work stands: not re-run, no copy), adds csv on it for FR-2 and a
    task for nothing asked, and plans nothing for FR-4: csv is taken, depending on the session's a, and FR-4 gets
    maestro's own task."""
    reqs = [*REQS, ("FR-4", "Export as JSON", "P1")]
    new = [
        {"id": "a", "title": "A again", "requirements": ["FR-1"]},
        {"id": "csv", "title": "CSV export", "requirements": ["FR-2"], "depends_on": ["a"]},
        {"id": "extra", "title": "Something nobody asked for"},
    ]
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "csv": [{"actions": [write("csv.txt", "x\n")]}],
              "cover-fr-4-1": [{"actions": [write("json.txt", "j\n")]}],
              "extra": [{"actions": [write("extra.txt", "e\n")]}]}  # fmt: skip
    store, runner, agent, plan = _setup(tmp_path, script, [new], config_text(), reqs)
    out = runner.run("Build it", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert out.state == "completed"
    state = maestro.rebuild(store.read_events(out.session_id))
    assert sorted(state.tasks) == ["a", "cover-fr-4-1", "csv"]
    assert sorted(r.task.id for r in agent.requests) == ["a", "cover-fr-4-1", "csv"]  # a ran once
    csv = next(r.task for r in agent.requests if r.task.id == "csv")
    assert csv.depends_on == ("a",)
    assert "the agent planned nothing for FR-4" in (store.session_dir(out.session_id) / "events.jsonl").read_text()


def test_a_damaged_saved_plan_stops_the_resume_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "refinement-1.json").write_text('{"iteration": 1, "reopen": []}', encoding="utf-8")
    with pytest.raises(StoreError) as err:
        load_plan(tmp_path, 1, None)
    assert str(err.value).startswith(f"{tmp_path / 'refinement-1.json'}: not a refinement plan maestro wrote")
    assert "\n" not in str(err.value)
    assert load_plan(tmp_path, 2, None) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"iteration": True}, "not iteration 1's plan"),
        ({"reopen": {"a": ""}}, "not a map of task ids to reasons"),
        ({"reopen": {"a": 3}}, "not a map of task ids to reasons"),
        ({"planned_by": None}, "'planned_by' is not text"),
        ({"new": "b"}, "'new' is not a list"),
        ({"reopen": {"zz": "why"}}, "its graph lacks tasks zz"),
        ({"new": ["zz"]}, "its graph lacks tasks zz"),
        ({"graph_yaml": "version: 1\ntasks:\n  - {id: b, title: B}\n"}, "its graph lacks tasks a"),
    ],
    ids=[
        "bool-iteration",
        "empty-reason",
        "int-reason",
        "null-by",
        "str-new",
        "reopen-unknown",
        "new-unknown",
        "lost-task",
    ],
)
def test_a_saved_plan_that_does_not_fit_the_session_is_refused_in_one_line(
    tmp_path: Path, change: dict[str, Any], why: str
) -> None:
    graph = validate_graph([Task("a", "A"), Task("b", "B", depends_on=("a",))])
    RefinementPlan(1, {"a": "its acceptance fails"}, (graph["b"],), "agent").save(tmp_path, graph)
    path = tmp_path / "refinement-1.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**doc, **change}), encoding="utf-8")
    with pytest.raises(StoreError) as err:
        load_plan(tmp_path, 1, None, existing=("a",))
    assert str(err.value).startswith(f"{path}: not a refinement plan maestro wrote: ") and why in str(err.value)
    assert "\n" not in str(err.value)


def test_two_new_tasks_of_one_id_get_two_ids() -> None:
    """Cover tasks of FR-1.1 and FR-1-1 are both cover-fr-1-1-1: the merge must not give them one id."""
    graph = validate_graph([Task("cover-fr-1-1-1", "taken")])
    new = [
        Task("cover-fr-1-1-1", "FR-1.1"),
        Task("cover-fr-1-1-1", "FR-1-1"),
        Task("z", "Z", depends_on=("cover-fr-1-1-1",)),
    ]
    merged = merge_new_tasks(graph, new, 1)
    assert [t.id for t in merged] == ["cover-fr-1-1-1-r1", "cover-fr-1-1-1-r1-r1", "z"]
    assert merged[2].depends_on == ("cover-fr-1-1-1-r1",)  # the first of that id
    validate_graph([*graph.tasks, *merged])


def test_a_saved_plan_reads_back_as_it_was_written(tmp_path: Path) -> None:
    graph = validate_graph([Task("a", "A", requirements=("FR-1",)), Task("b", "B", depends_on=("a",))])
    plan = RefinementPlan(2, {"a": "its acceptance fails"}, (graph["b"],), "agent")
    plan.save(tmp_path, graph)
    back = load_plan(tmp_path, 2, ("FR-1",))
    assert back is not None
    assert back[0] == plan
    assert back[1] == graph


def test_the_script_s_refinement_section_is_checked_when_it_is_read(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"refinement: expected a list of rounds"):
        parse_script("version: 1\nrefinement: {tasks: x.yaml}\n", tmp_path / "s.yaml")
    with pytest.raises(ScriptError, match=r":3: refinement\[0\].tasks: no such file"):
        parse_script("version: 1\nrefinement:\n  - tasks: missing.yaml\n", tmp_path / "s.yaml")
    with pytest.raises(ScriptError, match=r"refinement\[0\].tasks: missing \(or give a fail\)"):
        parse_script("version: 1\nrefinement:\n  - summary: nothing\n", tmp_path / "s.yaml")
    (tmp_path / "r.yaml").write_text("version: 1\ntasks: []\n")
    script = parse_script("version: 1\nrefinement:\n  - tasks: r.yaml\n  - fail: {kind: ambiguous}\n",
                          tmp_path / "s.yaml")  # fmt: skip
    assert script.refinement_round(1) is not None and script.refinement_round(1).tasks == tmp_path / "r.yaml"
    last = script.refinement_round(5)
    assert last is not None and last.fail is not None and last.fail.kind == "ambiguous"  # the last repeats


def test_findings_name_only_what_work_can_change() -> None:
    prd = parse_prd(prd_text(REQS), "prd.md")
    graph = validate_graph([Task("a", "A", requirements=("FR-1",)), Task("b", "B"), Task("c", "C")])
    gates = [
        GateResult("tests", "failed", summary="1 failed"),
        GateResult("lint", "skipped", summary="ruff is not installed"),  # a missing tool: no agent's work
        GateResult("typecheck", "failed", required=False),  # not required
        GateResult("traceability", "failed"),  # what it says is in the other findings
    ]
    states = {"a": "succeeded", "b": "failed", "c": "skipped"}
    found = findings(graph, prd, states, gates, {"a": "its acceptance fails", "b": "not done anyway"})
    assert found.undone == ("b",)
    assert dict(found.broken) == {"a": "its acceptance fails"}
    assert [g.name for g in found.gates] == ["tests"]
    assert found.uncovered == ("FR-2",)  # FR-3 is P3: not blocking, no agent is paid for it unasked
    covered = validate_graph([Task("a", "A", requirements=("FR-1", "FR-2"))])
    nothing = findings(covered, prd, {"a": "succeeded"}, [GateResult("lint", "skipped")], {})
    assert not nothing
    assert nothing.describe() == "nothing an agent can change"


ids = st.lists(st.sampled_from(["a", "b", "c", "a-r1", "x"]), min_size=1, max_size=4, unique=True)


@given(existing=ids, planned=ids)
def test_new_tasks_never_take_an_existing_id_and_keep_their_dependencies(
    existing: list[str], planned: list[str]
) -> None:
    graph = validate_graph([Task(t, t) for t in existing])
    new = [Task(t, t, depends_on=tuple(planned[:i])) for i, t in enumerate(planned)]  # each on those before it
    merged = merge_new_tasks(graph, new, 1)
    assert not {t.id for t in merged} & set(existing)
    assert len({t.id for t in merged}) == len(merged)
    rename = {old.id: t.id for old, t in zip(new, merged, strict=True)}
    for old, t in zip(new, merged, strict=True):
        assert t.depends_on == tuple(rename[d] for d in old.depends_on)
    validate_graph([*graph.tasks, *merged])  # the graph they make is valid


def test_a_fix_task_carries_the_gate_s_last_output_ansi_stripped_head_and_tail(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "gate-tests.1.out").write_text("old run\n")
    lines = [f"\x1b[31mline {i}\x1b[0m" for i in range(1, 1001)]
    (gates / "gate-tests.2.out").write_text("\n".join(lines) + "\n")
    (gates / "gate-tests.2.err").write_text("E   the last word\n")
    out = gate_output(gates, "tests")
    assert "old run" not in out and "\x1b" not in out
    assert out.splitlines()[0] == "line 1" and out.splitlines()[-1] == "E   the last word"
    assert "lines left out" in out
    fix = fix_task(GateResult("tests", "failed", summary="\x1b[1m3 failed\x1b[0m"), "pytest -q", out, 2, ["a"])
    assert (fix.id, fix.depends_on, fix.acceptance) == ("fix-tests-2", ("a",), ())
    assert "failed in the last validation: 3 failed." in fix.description
    assert "Its command: `pytest -q`" in fix.description and "line 1000" in fix.description
    assert gate_output(gates, "lint") == ""


def test_a_huge_gate_output_still_gives_its_head_and_tail_and_stderr_starts_its_own_line(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    with (gates / "gate-tests.1.out").open("w") as f:  # 11 MiB: past every input limit
        f.write("FIRST LINE\n")
        for i in range(220_000):
            f.write(f"noise {i:06d} " + "x" * 40 + "\n")
        f.write("last stdout line")  # no newline at the end
    (gates / "gate-tests.1.err").write_text("first stderr line\n")
    assert (gates / "gate-tests.1.out").stat().st_size > 10 * 2**20
    out = gate_output(gates, "tests").splitlines()
    assert out[0] == "FIRST LINE"
    assert out[-2:] == ["last stdout line", "first stderr line"]
    assert any("lines left out" in line for line in out)
