"""The decision engine: strategies by kind, checked decisions, links, history, and the chart guards."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

import maestro
from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, Option
from maestro.decide.engine import DecisionContext, DecisionEngine


def naming(ctx: DecisionContext) -> Decision:
    """A strategy for a kind the engine has never heard of."""
    style = ctx.params.get("style", "short")
    return Decision(
        "naming",
        "What should the module be called?",
        "calc" if style == "short" else "calculator",
        f"the {style} name matches the repository",
        options=(
            Option("calc", 0.9 if style == "short" else 0.4, (Evidence("file", "src/calc.py", "exists"),)),
            Option("calculator", 0.4 if style == "short" else 0.9),
        ),
        confidence=0.8,
    )


def test_a_new_kind_is_one_registration(session: maestro.Session) -> None:
    engine = DecisionEngine(strategies={})
    engine.register("naming", naming)
    assert engine.kinds == ("naming",)
    d = session.record(
        engine.decide("naming", state=session.state, repo=session.store.repo, style="long", task="T1", checkpoint=2)
    ).payload()
    assert (d.choice, d.id, d.task, d.checkpoint) == ("calculator", "D1", "T1", 2)
    assert d.ts == session.events[-1].ts
    assert session.state.decisions == (d,)
    assert session.events[-1].payload() == d


def test_the_default_engine_knows_the_shipped_kinds() -> None:
    assert {"tech_stack", "architecture", "gate", "task_ordering"} <= set(DecisionEngine().kinds)


def test_registering_a_kind_twice_needs_replace() -> None:
    engine = DecisionEngine(strategies={"naming": naming})
    with pytest.raises(DecisionError, match="already registered"):
        engine.register("naming", naming)
    engine.register("naming", lambda ctx: attrs.evolve(naming(ctx), choice="calc"), replace=True)
    assert engine.decide("naming", style="long").choice == "calc"


@pytest.mark.parametrize("kind", ["", "  ", 3])
def test_a_kind_is_a_word(kind: object) -> None:
    with pytest.raises(DecisionError, match="non-empty string"):
        DecisionEngine(strategies={}).register(kind, naming)  # type: ignore[arg-type]


def test_an_unknown_kind_names_the_registered_ones() -> None:
    engine = DecisionEngine(strategies={"naming": naming})
    with pytest.raises(
        DecisionError, match=r"no strategy is registered for decision kind 'layout' \(registered: naming\)"
    ):
        engine.decide("layout")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda ctx: "calc", "returned str, not a Decision"),
        (lambda ctx: attrs.evolve(naming(ctx), kind="other"), "a decision of kind 'other'"),
        (lambda ctx: attrs.evolve(naming(ctx), choice="calculus"), "'calculus' is not among the options"),
        (
            lambda ctx: attrs.evolve(naming(ctx), options=(Option("calc"), Option("calc"))),
            "lists an option twice",
        ),
    ],
)
def test_a_misbehaving_strategy_is_refused_and_nothing_is_recorded(
    session: maestro.Session, bad: object, message: str
) -> None:
    engine = DecisionEngine(strategies={"naming": bad})  # type: ignore[dict-item]
    before = session.events_path.read_bytes()
    with pytest.raises(DecisionError, match=message):
        session.record(engine.decide("naming", state=session.state, repo=session.store.repo)).payload()
    assert session.events_path.read_bytes() == before


def test_the_strategy_sees_params_state_and_repository(session: maestro.Session) -> None:
    seen: list[DecisionContext] = []

    def spy(ctx: DecisionContext) -> Decision:
        seen.append(ctx)
        return naming(ctx)

    session.fire("start")
    session.record(
        DecisionEngine(strategies={"naming": spy}).decide(
            "naming", state=session.state, repo=session.store.repo, style="short"
        )
    ).payload()
    (ctx,) = seen
    assert ctx.params == {"style": "short"}
    assert ctx.state is not None and ctx.state.state == "planning"
    assert ctx.repo == session.store.repo


def test_facts_without_a_repository_is_an_error() -> None:
    with pytest.raises(DecisionError, match="needs a repository"):
        DecisionContext("tech_stack").facts()


def test_history_across_sessions_reaches_the_strategy(store: maestro.Store) -> None:
    engine = DecisionEngine(strategies={"naming": naming}, decisions_dir=store.decisions_dir)
    for style in ("long", "short"):
        with maestro.Session.create(store, f"name it {style}", clock=maestro.TickingClock()) as s:
            s.record(engine.decide("naming", state=s.state, repo=s.store.repo, style=style)).payload()
    history_file = store.decisions_dir / "naming.json"
    entries = json.loads(history_file.read_text())
    assert [e["decision"]["choice"] for e in entries] == ["calculator", "calc"]
    seen: list[DecisionContext] = []
    DecisionEngine(strategies={"naming": lambda ctx: seen.append(ctx) or naming(ctx)},
                   decisions_dir=store.decisions_dir).decide("naming")  # fmt: skip
    assert [h["decision"]["choice"] for h in seen[0].history] == ["calculator", "calc"]


def test_a_broken_history_file_is_named(store: maestro.Store) -> None:
    store.decisions_dir.mkdir(parents=True, exist_ok=True)
    (store.decisions_dir / "naming.json").write_text("{not json")
    engine = DecisionEngine(strategies={"naming": naming}, decisions_dir=store.decisions_dir)
    with pytest.raises(DecisionError, match=r"naming\.json: cannot read the decision history"):
        engine.decide("naming")


@pytest.mark.parametrize(
    ("kind", "file"),
    [("tech_stack", "tech-stack"), ("task_ordering", "task-ordering"), ("architecture", "architecture"),
     ("gate", "gate"), ("task ordering", "task-ordering")],
)  # fmt: skip
def test_each_kind_has_its_history_file(store: maestro.Store, kind: str, file: str) -> None:
    with maestro.Session.create(store, "r", clock=maestro.TickingClock()) as s:
        s.record(Decision(kind, "q?", "c", "r"))
    assert json.loads((store.decisions_dir / f"{file}.json").read_text())[0]["decision"]["kind"] == kind


def test_the_charts_guards_are_the_engines_and_can_be_replaced(store: maestro.Store) -> None:
    """The engine's guards are the charts' (pure functions of the state); a replaced guard refuses the rollback."""
    engine = DecisionEngine(strategies={})
    assert set(engine.guards()) == set(maestro.load_chart("session").guard_names) | set(
        maestro.load_chart("task").guard_names
    )
    strict = {**engine.guards(), "has_checkpoint": lambda ctx: False}
    with maestro.Session.create(store, "r", clock=maestro.TickingClock(), guards=strict) as s:
        for trigger in ("start", "plan_ready", "tasks_ready", "error"):
            s.fire(trigger)
        s.record(maestro.CheckpointRecord(1, "0" * 40, "maestro/x/1", "group 1", s.events[-1].ts))
        with pytest.raises(maestro.TransitionNotAllowed):
            s.fire("rollback")
    with maestro.Session.create(
        store, "r2", clock=maestro.TickingClock(), guards=DecisionEngine(strategies={}).guards()
    ) as s:
        for trigger in ("start", "plan_ready", "tasks_ready", "error"):
            s.fire(trigger)
        s.record(maestro.CheckpointRecord(1, "0" * 40, "maestro/x/1", "group 1", s.events[-1].ts))
        assert s.fire("rollback") == "rolling_back"


def test_recorded_decisions_number_on_after_reopening(store: maestro.Store) -> None:
    s = maestro.Session.create(store, "r", clock=maestro.TickingClock())
    s.record(Decision("k", "q", "c", "r"))
    s.close()
    with maestro.Session.open(store, s.id, clock=maestro.TickingClock()) as again:
        event = again.record(Decision("k", "q", "c", "r"))
        assert event.payload().id == "D2"
        given = again.record(Decision("k", "q", "c", "r", id="D7", ts="2026-01-01T00:00:00Z"))
        assert (given.payload().id, given.payload().ts) == ("D7", "2026-01-01T00:00:00Z")


def test_evidence_accepts_bare_strings_as_facts() -> None:
    option = Option("pytest", 1.0, ("pytest is configured", Evidence("file", "pyproject.toml")))
    assert option.evidence == (Evidence("fact", "pytest is configured"), Evidence("file", "pyproject.toml"))
    assert str(Evidence("dependency", "httpx", "pyproject.toml")) == "dependency httpx (pyproject.toml)"
    with pytest.raises(ValueError, match="kind"):
        Evidence("rumour", "x")


@pytest.mark.parametrize("bad", ["D0", "d1", "X1", "D1 "])
def test_decision_ids_are_d_numbers(bad: str) -> None:
    with pytest.raises(ValueError, match="D1, D2"):
        Decision("k", "q", "c", "r", id=bad)


def test_cli_decide_runs_a_repository_strategy(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["httpx>=0.27"]\n')
    out = subprocess.run(
        [sys.executable, "-m", "maestro", "decide", "tech_stack", "--repo", str(tmp_path), "--capability",
         "http client", "--json"], capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert decision["choice"] == "httpx"
    assert any(e["value"] == "httpx" for o in decision["options"] for e in o["evidence"])
    missing = subprocess.run(
        [sys.executable, "-m", "maestro", "decide", "gate", "--repo", str(tmp_path / "nope"), "--gate", "tests"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "nope" in missing.stderr


def test_a_decision_id_given_twice_is_refused_and_numbering_goes_on(session: maestro.Session) -> None:
    session.record(Decision("k", "q", "c", "r", id="D2"))
    before = session.events_path.read_bytes()
    with pytest.raises(maestro.StoreError, match="decision D2 is already recorded"):
        session.record(Decision("k", "q", "c", "r", id="D2"))
    assert session.events_path.read_bytes() == before
    assert session.record(Decision("k", "q", "c", "r")).payload().id == "D3"


def test_a_symlink_loop_is_a_decision_error(tmp_path: Path) -> None:
    loop = tmp_path / "L"
    loop.symlink_to(loop)
    with pytest.raises(maestro.MaestroError, match="L"):
        DecisionEngine().decide("gate", repo=loop, gate="tests")


def test_history_holds_only_the_kind_asked_for(store: maestro.Store) -> None:
    with maestro.Session.create(store, "r", clock=maestro.TickingClock()) as s:
        s.record(Decision("tech-stack", "q?", "old-style", "r"))
        s.record(Decision("tech_stack", "q?", "new-style", "r"))
    engine = DecisionEngine(strategies={}, decisions_dir=store.decisions_dir)
    assert [h["decision"]["choice"] for h in engine.history("tech_stack")] == ["new-style"]
