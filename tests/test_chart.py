"""Statecharts: the YAML files, the model, validation errors, exports."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import maestro
from maestro.model.chart import ANY, HISTORY, load_chart, parse_chart
from maestro.model.machine import Machine

ROOT = Path(__file__).resolve().parents[1]

SESSION_STATES = {
    "created", "planning", "generating_tasks", "implementing", "validating", "reviewing", "refining",
    "recovering", "rolling_back", "paused", "handoff", "completed", "failed", "aborted",
}  # fmt: skip
TASK_STATES = {"pending", "ready", "running", "succeeded", "failed", "retrying", "skipped", "blocked"}


def test_session_chart_declares_the_required_states() -> None:
    chart = load_chart("session")
    assert set(chart.state_names) >= SESSION_STATES
    assert set(chart.final_states) == {"completed", "failed", "aborted"}
    assert chart.initial == "created"


def test_task_chart_declares_the_required_states() -> None:
    chart = load_chart("task")
    assert set(chart.state_names) >= TASK_STATES
    assert chart.initial == "pending"


def test_every_non_final_session_state_can_pause_and_abort() -> None:
    chart = load_chart("session")
    edges = {(e.trigger, e.source, e.dest) for e in chart.edges()}
    for s in chart.states:
        if s.final:
            assert not any(src == s.name for _, src, _ in edges), f"{s.name} is final but has a way out"
            continue
        assert ("abort", s.name, "aborted") in edges
        if s.name != "paused":
            assert ("pause", s.name, "paused") in edges


def test_paused_returns_to_every_state_it_can_be_entered_from() -> None:
    chart = load_chart("session")
    entered = set(chart.entered_from("paused"))
    back = {e.dest for e in chart.edges() if e.source == "paused" and e.trigger == "resume"}
    assert back == entered
    assert entered == {s.name for s in chart.states if not s.final and s.name != "paused"}


def test_charts_guards_are_names_not_code() -> None:
    for name in ("session", "task"):
        raw = YAML(typ="safe").load((ROOT / "statecharts" / f"{name}.yaml").read_text())
        for t in raw["transitions"]:
            for g in t.get("conditions", []) + t.get("unless", []):
                assert g.isidentifier()


def test_installed_package_carries_exactly_the_repository_charts() -> None:
    from importlib import resources

    from maestro.model.chart import chart_path

    repo_files = sorted(p.name for p in (ROOT / "statecharts").iterdir())
    assert repo_files == ["session.yaml", "task.yaml"]
    packaged = resources.files("maestro") / "statecharts"
    if packaged.is_dir():  # a regular install: the files inside the package
        names = sorted(p.name for p in packaged.iterdir() if not p.name.startswith("__"))
        assert names == repo_files
    for name in ("session", "task"):
        assert chart_path(name).read_bytes() == (ROOT / "statecharts" / f"{name}.yaml").read_bytes()


# -- validation --------------------------------------------------------------------

GOOD = """
chart: mini
initial: a
guards: [ok]
states:
  - name: a
  - name: b
  - name: p
    returns: true
  - name: done
    final: true
transitions:
  - {trigger: go, source: a, dest: b, conditions: [ok]}
  - {trigger: finish, source: b, dest: done}
  - {trigger: hold, source: "*", dest: p}
  - {trigger: back, source: p, dest: $history}
"""


def test_a_good_mini_chart_loads_and_expands() -> None:
    chart = parse_chart(GOOD)
    hold = next(t for t in chart.transitions if t.trigger == "hold")
    assert hold.source == (ANY,)
    assert chart.sources(hold) == ("a", "b")  # not the final state, not p itself
    backs = sorted((e.source, e.dest) for e in chart.edges() if e.trigger == "back")
    assert backs == [("p", "a"), ("p", "b")]
    assert next(t for t in chart.transitions if t.trigger == "back").dest == HISTORY


def _broken(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_broken("dest: b,", "dest: nowhere,"), "unknown destination state 'nowhere'"),
        (_broken("source: b, dest: done", "source: q, dest: done"), "unknown source state 'q'"),
        (_broken("initial: a\n", ""), "missing initial state"),
        (_broken("initial: a", "initial: zz"), "initial state 'zz' is not a declared state"),
        (_broken("conditions: [ok]", "conditions: [nope]"), "unknown guard 'nope'"),
        (GOOD + "  - {trigger: again, source: done, dest: a}\n", "leaves final state 'done'"),
        (GOOD.replace("  - name: done\n", "  - name: lost\n  - name: done\n"), "state 'lost' is unreachable"),
        (_broken("  - name: b\n", "  - name: b\n  - name: b\n"), "state 'b' is declared twice"),
        (_broken("source: p, dest: $history", "source: b, dest: $history"), "not marked returns: true"),
        (_broken("guards: [ok]", "guards: [ok, spare]"), "never used: spare"),
        (GOOD + "  - {trigger: finish, source: b, dest: a}\n", "can never fire"),
        (_broken("chart: mini", "chart: mini\ncolour: red"), "unknown top-level key(s): colour"),
        (_broken("version", "version") if "version" in GOOD else GOOD + "version: 2\n", "unsupported chart version 2"),
        ("just: [a, list", "not valid YAML"),
        ("- a\n- b\n", "a chart is a mapping"),
    ],
)
def test_a_bad_chart_raises_chart_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(maestro.ChartError) as info:
        parse_chart(text, source="bad.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("bad.yaml: ")


def test_a_dead_end_state_is_refused() -> None:
    text = GOOD.replace(
        "  - {trigger: finish, source: b, dest: done}\n", "  - {trigger: finish, source: a, dest: done}\n"
    )
    with pytest.raises(maestro.ChartError, match="'b' is not final but no transition leaves it"):
        parse_chart(text.replace('source: "*"', "source: [a]"))


def test_load_chart_from_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(maestro.ChartError, match=r"nochart\.yaml: no such chart file"):
        load_chart(tmp_path / "nochart.yaml")


def test_an_unknown_chart_name_is_an_error() -> None:
    from maestro.model.chart import chart_path

    with pytest.raises(maestro.ChartError, match="unknown chart 'flow'"):
        chart_path("flow")


def test_compiling_without_a_registered_guard_is_a_chart_error() -> None:
    with pytest.raises(maestro.ChartError, match="no guard registered for ok"):
        Machine(parse_chart(GOOD), {})


# -- exports ------------------------------------------------------------------------


def test_json_and_yaml_exports_reload_to_the_same_chart() -> None:
    chart = load_chart("session")
    assert parse_chart(chart.to_yaml()) == chart
    assert parse_chart(chart.to_json()) == chart  # JSON is YAML
    assert json.loads(chart.to_json())["initial"] == "created"


def test_mermaid_has_every_declared_move() -> None:
    chart = load_chart("session")
    text = chart.to_mermaid()
    assert text.startswith("stateDiagram-v2\n")
    assert "    [*] --> created" in text
    for t in chart.transitions:
        if t.source == (ANY,) or t.dest == HISTORY:
            assert t.trigger in text
            continue
        for s in t.source:
            assert f"    {s} --> {t.dest}: {t.label()}" in text
    for f in chart.final_states:
        assert f"    {f} --> [*]" in text


def test_docs_statecharts_md_holds_the_current_diagrams() -> None:
    import re

    doc = (ROOT / "docs" / "statecharts.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", doc, re.S)
    current = [load_chart(name).to_mermaid() for name in ("session", "task")]
    assert blocks == current, (
        "docs/statecharts.md is out of date: paste the output of "
        "`maestro statechart --chart session` and `--chart task` into its two mermaid blocks"
    )


def test_transitions_of_a_mini_chart_are_dedented_yaml() -> None:
    # a chart written in block style loads the same as in flow style
    text = textwrap.dedent(
        """
        chart: tiny
        initial: a
        states: [a, {name: z, final: true}]
        transitions:
          - trigger: end
            source: [a]
            dest: z
        """
    )
    chart = parse_chart(text)
    assert [(e.trigger, e.source, e.dest) for e in chart.edges()] == [("end", "a", "z")]
