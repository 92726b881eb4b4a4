"""The recovery and refinement strategies: real options, scores and evidence; the ladder's order is the scores'."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from maestro.core.records import Decision, GateResult
from maestro.decide.engine import DecisionEngine

CLASSES = ("transient", "implementation", "test_failure", "critical", "ambiguous", "regression")


def recover(**params: Any) -> Decision:
    base: dict[str, Any] = {"task_id": "T1", "failure_class": "transient", "summary": "boom", "retries": 0,
                            "max_retries": 3, "alternatives": 0, "max_alternatives": 2, "last_checkpoint": 1,
                            "next_delay_s": 1.5}  # fmt: skip
    return DecisionEngine().decide("recovery", **{**base, **params})


def scores(d: Decision) -> dict[str, float]:
    return {o.name: o.score for o in d.options}


@given(
    failure_class=st.sampled_from(CLASSES),
    retries=st.integers(0, 4),
    max_retries=st.integers(0, 4),
    alternatives=st.integers(0, 3),
    max_alternatives=st.integers(0, 3),
    stuck=st.booleans(),
    on_exhausted=st.sampled_from(("pause", "give_up")),
)
def test_the_recovery_ladder_in_order(
    failure_class: str, retries: int, max_retries: int, alternatives: int, max_alternatives: int, stuck: bool,
    on_exhausted: str,
) -> None:  # fmt: skip
    d = recover(failure_class=failure_class, retries=retries, max_retries=max_retries, alternatives=alternatives,
                max_alternatives=max_alternatives, stuck=stuck, on_exhausted=on_exhausted)  # fmt: skip
    s = scores(d)
    assert s[d.choice] == max(s.values())  # the choice is the best-scored option
    human = failure_class in ("critical", "ambiguous")
    if failure_class == "transient" and retries < max_retries and not stuck:
        expected = "retry"
    elif not human and alternatives < max_alternatives:
        expected = "alternative"
    elif not human and on_exhausted == "give_up":
        expected = "give_up"
    else:
        expected = "pause"
    assert d.choice == expected
    assert d.options[0].evidence[0].value == failure_class  # the history reads the class there


def test_scores_say_what_is_left_of_each_rung() -> None:
    fresh, used = recover(retries=0), recover(retries=2)
    assert scores(fresh)["retry"] > scores(used)["retry"] > scores(used)["alternative"]
    assert fresh.rationale == "transient failure: retry 1 of 3 after 1.5 s backoff"
    stuck = recover(stuck=True)
    assert (stuck.choice, scores(stuck)["retry"]) == ("alternative", 0.0)
    assert stuck.rationale.startswith("the same error twice in a row: alternative 1 of 2 from checkpoint 1")
    critical = recover(failure_class="critical", summary="Not logged in")
    assert (critical.choice, critical.rationale) == ("pause", "the agent cannot work: Not logged in")


def test_history_across_sessions_is_evidence(tmp_path: Any) -> None:
    import json

    option = {"name": "retry", "evidence": [{"kind": "fact", "value": "transient"}]}
    entry = {"session": "s1", "decision": {"kind": "recovery", "choice": "retry", "options": [option]}}
    tmp_path.joinpath("recovery.json").write_text(json.dumps([entry]))
    d = DecisionEngine(decisions_dir=tmp_path).decide(
        "recovery", task_id="T1", failure_class="transient", max_retries=2, max_alternatives=1
    )
    assert any("earlier sessions, transient failures: retry 1x" in e.value for e in d.options[0].evidence)


def gate(name: str, status: str, required: bool = True) -> GateResult:
    return GateResult(name, status, required=required, summary=f"{name} {status}")


def refine(**params: Any) -> Decision:
    return DecisionEngine().decide("refinement", **{"iteration": 0, "max_iterations": 3, **params})


def test_refinement_hands_off_refines_asks_or_stops() -> None:
    assert refine(gates=(gate("tests", "passed"), gate("lint", "failed", required=False))).choice == "handoff"
    d = refine(gates=(gate("tests", "failed"),))
    assert (d.choice, d.rationale) == ("refine", "required gates failing: tests")
    assert any(e.value == "tests: failed" and e.detail == "tests failed" for e in d.options[1].evidence)
    assert refine(gates=(gate("tests", "failed"),), iteration=3).choice == "stop"
    assert refine(gates=(gate("tests", "failed"),), iteration=3, on_exhausted="give_up").choice == "give_up"
    skipped = refine(gates=(gate("traceability", "failed"),), skipped=("a",), undone=())
    assert skipped.choice == "ask"  # no agent runs again: refining cannot meet what skipped tasks were for
    more = refine(gates=(gate("traceability", "failed"),), skipped=("a",), undone=(), more_to_do=True)
    assert more.choice == "refine"  # an uncovered requirement or a broken acceptance besides: an agent's work
    fewer = [scores(refine(gates=(gate("tests", "failed"),), iteration=i))["refine"] for i in range(3)]
    assert fewer == sorted(fewer, reverse=True)  # fewer iterations left, a lower score


def test_the_latest_result_of_a_gate_counts() -> None:
    d = refine(gates=(gate("tests", "failed"), gate("tests", "passed")))
    assert d.choice == "handoff"
