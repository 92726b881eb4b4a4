"""The context pack: what each attempt's prompt tells the agent beyond its task (issue 17, item 1).

The sessions run in process with the scripted agent behind a :class:`Recorder`, which keeps every request the
runner hands its agent; the prompt is that request rendered with ``task_prompt``, as every CLI adapter renders it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import maestro
from maestro.agents.base import AgentRequest, Skill, task_prompt
from maestro.agents.context import (
    DECISION_LINES,
    FEEDBACK_CHARS,
    PRD_CHARS,
    ContextPack,
    DecisionNote,
    RequirementText,
    decisions_section,
    failing_commands,
    failing_tests,
    head_and_tail,
    requirements_section,
    strip_ansi,
)
from maestro.agents.scripted import ScriptedAgent
from maestro.config import parse_config
from maestro.core.records import CheckpointRecord, FileChange
from maestro.model.state import SessionState
from maestro.plan.tasks import Task
from maestro.run.context import build_context, dependency_changes, fold_changes
from maestro.run.pauses import answer
from maestro.run.runner import Runner
from tests.support.runs import Recorder, config_text, make_repo, prd_text, task, write

RED, RESET = "\x1b[31m", "\x1b[0m"
REQUIREMENTS = (
    ("FR-1", "Fetch the greeting with an http client", "P0"),
    ("FR-2", "Say goodbye politely to every user", "P1"),
    ("FR-3", "Log each goodbye", "P2"),
)
PYPROJECT = '[project]\nname = "sample"\nversion = "0.1.0"\ndependencies = ["httpx>=0.27"]\n'
SKILL = "---\ndescription: How goodbye messages are worded in this project\n---\nEnd with a full stop.\n"
CHECK_FAILS = f"printf '{RED}FAILED{RESET} tests/test_bye.py::test_polite - assert 1 == 2\\n'; exit 1"


def run_session(
    tmp: Path,
    tasks: Sequence[Mapping[str, Any]],
    script: Mapping[str, Any],
    *,
    files: Mapping[str, str] | None = None,
    config: str | None = None,
    requirements: Sequence[tuple[str, str, str]] = REQUIREMENTS,
    guidance: str | None = None,
) -> tuple[Recorder, SessionState, Any]:
    """One session in process (ticking clock, sequential ids, no real sleep): its recorder, final state, outcome."""
    repo = make_repo(tmp, {"pyproject.toml": PYPROJECT, ".claude/skills/goodbye/SKILL.md": SKILL, **(files or {})})
    plan = tmp / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text(requirements), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
    agent = Recorder(ScriptedAgent.from_mapping({"version": 1, "tasks": dict(script)}, plan))
    cfg = parse_config(config or config_text(workers=1, alternatives=1), plan / "config.yaml")
    store = maestro.Store(repo)
    runner = Runner(store, cfg, agent, clock=maestro.TickingClock(), ids=maestro.SequentialIds(), sleep=lambda s: None)
    outcome = runner.run("Build the sample", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    if guidance is not None:  # the session paused: a human answers with guidance, and the run resumes
        assert outcome.state == "paused", outcome
        answer(store, outcome.session_id, "guidance", note=guidance)
        outcome = runner.resume(outcome.session_id)
    return agent, maestro.rebuild(store.read_events(outcome.session_id)), outcome


TASKS = [
    task("a", reqs=["FR-1"], acceptance=["test -f a.txt"]),
    {**task("b", reqs=["FR-2", "FR-3"], deps=["a"], acceptance=["sh check.sh"]), "description": "the goodbye"},
]
SCRIPT = {
    "a": [{"actions": [write("a.txt", "a\n"), write("src/sample/fetch.py", "import httpx\n"), write("README.md", "")]}],
    "b": [
        {"actions": [write("b.txt", "b\n"), write("check.sh", CHECK_FAILS)]},
        {"actions": [write("b.txt", "bye.\n"), write("check.sh", "exit 0\n")]},
    ],
}


def test_each_attempt_is_told_its_requirements_decisions_skills_dependencies_and_previous_failure(
    tmp_path: Path,
) -> None:
    agent, state, outcome = run_session(tmp_path, TASKS, SCRIPT)
    assert outcome.state == "completed"
    (a1,), (b1, b2) = agent.of("a"), agent.of("b")
    pa, pb1, pb2 = (task_prompt(r) for r in (a1, b1, b2))

    # the PRD text of the task's own requirements, with their priorities; not the others'
    assert "- FR-1 (P0): Fetch the greeting with an http client" in pa
    assert "Say goodbye" not in pa
    assert "- FR-2 (P1): Say goodbye politely to every user\n- FR-3 (P2): Log each goodbye" in pb1

    # the decisions that concern the task, each with its rationale; another task's subagent decision is not one
    kinds = {d.kind for d in state.decisions}
    assert {"architecture", "tech_stack", "environment", "subagent"} <= kinds
    for d in state.decisions:
        line = f"- {d.kind} ({d.id}): {d.choice} — {d.rationale}"
        concerns = d.kind in ("architecture", "tech_stack", "environment") or (d.kind, d.task) == ("subagent", "a")
        assert (line in pa) == concerns, line
    (stack,) = (d for d in state.decisions if d.kind == "tech_stack")
    assert stack.choice == "httpx" and f"- tech_stack ({stack.id}): httpx — prefer_existing" in pa
    (sub_b,) = (d for d in state.decisions if d.kind == "subagent" and d.task == "b")
    assert f"- subagent ({sub_b.id}): " in pb1 and f"- subagent ({sub_b.id}): " not in pa

    # the skills: chosen with choose_skills, on the request and in the prompt with where the agent finds them
    assert [s.name for s in b1.skills] == ["goodbye"] and a1.skills == ()
    assert "- goodbye (.claude/skills/goodbye/SKILL.md): How goodbye messages are worded in this project" in pb1
    assert "Skills that apply" not in pa

    # what the tasks it depends on changed; a has no dependencies, so no such section
    changes = "What the tasks it depends on changed:\n- a (A), checkpoint 1:\n"
    changes += "    modified README.md (+0 -1)\n    added a.txt (+1 -0)\n    added src/sample/fetch.py (+1 -0)\n"
    assert changes in pb1 and changes in pb2
    assert "What the tasks it depends on changed" not in pa

    # the first attempt has no failure to tell; the second names the failing command and test, without ANSI codes
    assert "The previous failure" not in pb1
    assert "\x1b" not in pb2
    (rec,) = (d for d in state.decisions if d.kind == "recovery")
    assert f"- recovery ({rec.id}): alternative — test_failure: alternative 1 of 1" in pb2
    assert "- failing commands: `sh check.sh`\n- failing tests: tests/test_bye.py::test_polite\n" in pb2
    assert "$ sh check.sh\nFAILED tests/test_bye.py::test_polite - assert 1 == 2\n" in pb2
    assert b2.feedback is not None and RED in b2.feedback  # the request keeps the raw output; the prompt cleans it


def test_the_same_session_gives_the_same_prompt_bytes(tmp_path: Path) -> None:
    tasks = [*TASKS, task("c", reqs=["FR-3"], deps=["a"], acceptance=["test -f c.txt"])]
    script = {**SCRIPT, "c": [{"actions": [write("c.txt", "c\n")]}]}
    config = config_text(workers=1, alternatives=1)  # parallel runs may interleave: two runs, two sessions
    prompts = []
    for run in ("one", "two"):
        agent, _state, outcome = run_session(tmp_path / run, tasks, script, config=config)
        assert outcome.state == "completed"
        prompts.append({(r.task.id, r.attempt): task_prompt(r).encode() for r in agent.requests})
    assert prompts[0] == prompts[1]
    assert set(prompts[0]) == {("a", 1), ("b", 1), ("b", 2), ("c", 1)}


def test_a_retry_after_a_transient_failure_is_told_why(tmp_path: Path) -> None:
    script = {"a": [{"fail": {"kind": "transient", "message": f"{RED}rate limited (429){RESET}"}}, {}]}
    agent, state, outcome = run_session(tmp_path, [task("a", reqs=["FR-1"])], script, requirements=REQUIREMENTS[:1])
    assert outcome.state == "completed"
    _first, second = agent.of("a")
    assert second.feedback is None  # a retry in place carries no output: the result and the decision say why
    prompt = task_prompt(second)
    (rec,) = (d for d in state.decisions if d.kind == "recovery")
    assert f"The previous failure:\n- recovery ({rec.id}): retry — transient failure: retry 1 of 2" in prompt
    assert "- attempt 1 (scripted): failed (transient): rate limited (429)\n" in prompt


def test_a_failure_of_ten_thousand_lines_keeps_its_head_and_tail(tmp_path: Path) -> None:
    lines = ["$ python -m pytest -q", f"{RED}E   ImportError: cannot import name 'bye'{RESET}"]
    lines += [f"\x1b[2K\rcollecting … line {i}" for i in range(3, 10_000)]
    lines.append("FAILED tests/test_bye.py::test_polite - ImportError")
    output = "\n".join(lines) + "\n"
    script = {"a": [{"fail": {"kind": "implementation", "message": output}}, {}]}
    agent, _state, outcome = run_session(tmp_path, [task("a", reqs=["FR-1"])], script, requirements=REQUIREMENTS[:1])
    assert outcome.state == "completed"
    second = agent.of("a")[1]
    assert second.feedback == output
    prompt = task_prompt(second)
    assert "\x1b" not in prompt
    assert "- failing commands: `python -m pytest -q`\n- failing tests: tests/test_bye.py::test_polite\n" in prompt
    assert "Its output (10,000 lines, its first 40 and last 80; ANSI codes removed):\n" in prompt
    shown = prompt.split("ANSI codes removed):\n", 1)[1].split("\n\nWork only", 1)[0].split("\n")
    assert shown[:2] == ["$ python -m pytest -q", "E   ImportError: cannot import name 'bye'"]
    assert shown[39] == "collecting … line 40"
    assert shown[40] == "[… 9,880 lines left out …]"
    assert shown[41] == "collecting … line 9921"
    assert shown[-1] == "FAILED tests/test_bye.py::test_polite - ImportError"
    assert len(shown) == 121
    assert len(prompt) < FEEDBACK_CHARS + 4000


def test_a_refinement_is_told_what_validation_found_not_a_failure_it_did_not_have(tmp_path: Path) -> None:
    marker, gate = tmp_path / "validated-once", tmp_path / "gate.sh"
    failing = f"printf '{RED}FAILED{RESET} tests/test_a.py::test_a\\n'"
    gate.write_text(f"test -f {marker} && exit 0\ntouch {marker}\n{failing}\nexit 1\n")
    config = config_text(workers=1, iterations=2, tests=f"sh {gate}")
    agent, _state, outcome = run_session(
        tmp_path, [task("a", reqs=["FR-1"])], {"a": [{}], "fix-tests-1": [{}]}, config=config,
        requirements=REQUIREMENTS[:1],
    )  # fmt: skip
    assert outcome.state == "completed"
    assert len(agent.of("a")) == 1  # its work is done: validation's finding is a fix task's work
    (fix,) = agent.of("fix-tests-1")
    prompt = task_prompt(fix)
    assert "The previous failure" not in prompt and "- recovery (" not in prompt
    assert "\x1b" not in prompt
    assert "The required tests gate failed in the last validation" in prompt
    assert "FAILED tests/test_a.py::test_a" in prompt  # the gate's output, its colours removed


def test_a_human_s_guidance_is_given_as_guidance(tmp_path: Path) -> None:
    script = {"a": [{"fail": {"kind": "ambiguous", "message": "postgres or sqlite?"}}, {}]}
    note = f"Use sqlite: the file is data/app.db {RED}(not postgres){RESET}"
    agent, _state, outcome = run_session(
        tmp_path, [task("a", reqs=["FR-1"])], script, requirements=REQUIREMENTS[:1], guidance=note
    )
    assert outcome.state == "completed"
    first, second = agent.of("a")
    assert note not in task_prompt(first)
    prompt = task_prompt(second)
    assert "Take another approach: follow the human's guidance" in prompt
    assert (
        "A human's guidance for this task (follow it):\nUse sqlite: the file is data/app.db (not postgres)\n" in prompt
    )
    assert "The previous failure" not in prompt and "\x1b" not in prompt


# -- the sections, on their own ---------------------------------------------------------------------------------


def test_a_request_without_a_pack_still_renders_the_task_and_a_clean_failure(tmp_path: Path) -> None:
    t = Task("T1", "Core", requirements=("FR-1",), acceptance=("pytest -q",))
    plain = AgentRequest(t, tmp_path, skills=(Skill("api"),))
    assert task_prompt(plain) == (
        "Task T1: Core\n\nRequirements this task serves: FR-1.\n\n"
        "When you are done, each of these commands must exit 0 in the repository:\n    pytest -q\n\n"
        "Skills that apply: api.\n\nWork only in this repository. Do not commit: maestro checkpoints the work.\n"
    )
    retry = AgentRequest(t, tmp_path, attempt=2, feedback=f"$ pytest -q\n{RED}boom{RESET}\n")
    shown = "The previous failure:\n- failing commands: `pytest -q`\n"
    shown += "Its output (2 lines, all of it; ANSI codes removed):\n$ pytest -q\nboom\n"
    assert shown in task_prompt(retry)


def test_each_section_is_capped() -> None:
    many = [RequirementText(f"FR-{i}", "x" * 300, "P2") for i in range(40)]
    section = requirements_section(many)
    assert len(section) <= PRD_CHARS + 100
    assert section.endswith("more requirements: see the PRD]")
    kept = section.count("\n- FR-")
    assert section.endswith(f"[… {40 - kept} more requirements: see the PRD]")
    assert len(requirements_section([RequirementText("FR-1", "y" * 10_000)])) <= PRD_CHARS + 100
    notes = [DecisionNote(f"D{i}", "tech_stack", "httpx", "because " * 100) for i in range(30)]
    lines = decisions_section(notes).split("\n")
    assert len(lines) == 1 + DECISION_LINES + 1 and lines[-1] == "[… 10 more: see decisions.json]"
    assert all(len(line) < 400 for line in lines)
    huge = "x" * 1_000_000 + "\n" + "y" * 1_000_000
    assert len(head_and_tail(huge)) <= FEEDBACK_CHARS


def test_unknown_requirements_and_a_missing_prd_are_said() -> None:
    t = Task("T1", "Core", requirements=("FR-9",))
    state = SessionState("s", "r", "implementing", 1)
    pack = build_context(t, state=state, prd=None)
    assert pack.requirements == (RequirementText("FR-9"),)
    assert "- FR-9: (not in the PRD)" in task_prompt(AgentRequest(t, Path("."), context=pack))
    assert pack.previous == () and pack.dependencies == () and pack.decisions == ()


def checkpoint(n: int, label: str, *files: FileChange) -> CheckpointRecord:
    return CheckpointRecord(n, f"{n:040x}", f"maestro/s/{n}", label, "2026-01-01T00:00:00.000000Z", files)


def test_a_dependency_merged_but_not_yet_a_checkpoint_reads_the_same() -> None:
    dep = Task("b", "B", depends_on=("a",))
    files = (FileChange("a.py", "added", 3, 0), FileChange("old.py", "deleted", 0, 2))
    recorded = dependency_changes(dep, None, [checkpoint(0, "start"), checkpoint(1, "task a: A: the core", *files)])
    pending = dependency_changes(dep, None, [checkpoint(0, "start")], [("a", 1, files)])
    assert recorded == pending
    assert recorded[0].checkpoints == (1,) and recorded[0].files == (files[0], files[1])
    # a task whose id starts another's is not taken for it
    assert dependency_changes(dep, None, [checkpoint(1, "task ab: AB", *files)])[0].files == ()


def test_changes_over_several_checkpoints_fold_into_one_a_path() -> None:
    steps = [
        [FileChange("x", "added", 2, 0), FileChange("y", "modified", 1, 1), FileChange("z", "deleted", 0, 4)],
        [FileChange("x", "modified", 1, 1), FileChange("y", "deleted", 0, 3), FileChange("z", "added", 5, 0)],
        [FileChange("w", "added", 1, 0)],
        [FileChange("w", "deleted", 0, 1)],
    ]
    assert fold_changes(steps) == (
        FileChange("x", "added", 3, 1),
        FileChange("y", "deleted", 1, 4),
        FileChange("z", "modified", 5, 4),
    )


def test_the_failing_commands_and_tests_are_found_in_the_usual_formats() -> None:
    out = (
        "Your change broke task a (A): its acceptance command `grep -qx A a.txt` failed (exit 1):\n$ grep -qx A a.txt\n"
        "FAILED tests/test_a.py::test_one - assert 0\nERROR tests/test_a.py::test_two\n"
        "FAIL: test_three (tests.test_a.T)\n    --- FAIL: TestFour (0.00s)\ntest five ... FAILED\n"
        "  ● Calc › adds\n"
    )
    assert failing_commands(out) == ("grep -qx A a.txt",)
    assert failing_tests(out) == (
        "tests/test_a.py::test_one",
        "tests/test_a.py::test_two",
        "test_three (tests.test_a.T)",
        "TestFour",
        "five",
        "Calc › adds",
    )


_ESCAPES = st.sampled_from(["\x1b[31m", "\x1b[0m", "\x1b[2K", "\x1b[?25l", "\x1b]8;;http://x\x07", "\x1b(B", "\x9b1m"])


def test_strip_ansi_ends_progress_bars_and_lone_escapes() -> None:
    assert strip_ansi("10%\r50%\r100%\ndone\r\nnext\x1b") == "100%\ndone\nnext"
    assert strip_ansi("\x1b]0;title\x1b\\text") == "text"


@given(st.lists(st.one_of(st.text(alphabet=st.characters(blacklist_characters="\x1b\x9b\r")), _ESCAPES)))
def test_strip_ansi_leaves_the_text_and_no_escape(parts: list[str]) -> None:
    text = "".join(parts)
    out = strip_ansi(text)
    assert "\x1b" not in out and "\x9b" not in out
    assert strip_ansi(out) == out
    assert out == "".join(p for p in parts if not re.fullmatch(r"\x1b.*|\x9b.*", p, re.DOTALL))


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=500), max_size=400))
def test_head_and_tail_is_bounded_and_keeps_both_ends(lines: list[str]) -> None:
    text = "\n".join(lines)
    out = head_and_tail(text)
    assert len(out) <= FEEDBACK_CHARS
    kept = text.split("\n")
    while kept and not kept[-1].strip():
        kept.pop()
    if len(kept) <= 120 and all(len(line) <= 400 for line in kept) and len("\n".join(kept)) <= FEEDBACK_CHARS:
        assert out == "\n".join(kept)
    elif len(kept) > 120 and len(out) < FEEDBACK_CHARS // 2:
        assert f"[… {len(kept) - 120:,} lines left out …]" in out


def test_a_pack_is_plain_data() -> None:
    pack = ContextPack(requirements=[RequirementText("FR-1", "x")], previous=["why"])
    assert pack == ContextPack(requirements=(RequirementText("FR-1", "x"),), previous=("why",))
    assert hash(pack) == hash(ContextPack(requirements=(RequirementText("FR-1", "x"),), previous=("why",)))
