"""Subagents and skills: discovery in .claude/, choosing per task, the recorded decision, the shipped skills."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import maestro
from maestro.agents.base import Skill, Subagent
from maestro.agents.choosing import DEFAULT_MAPPING, GENERAL, TRIGGERS, choose_skills, choose_subagent
from maestro.agents.registry import Registry, discover, install_skills, overrides_from_config, shipped_skills
from maestro.core.errors import DecisionError
from maestro.decide.engine import DecisionContext, DecisionEngine
from maestro.decide.strategies.subagent import subagent_strategy
from maestro.plan.tasks import Task

MISSING = "is not in .claude/agents/ or ~/.claude/agents/"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def agent(root: Path, rel: str, name: str, description: str = "does things", extra: str = "", body: str = "") -> Path:
    front = f"name: {name}\ndescription: {description}\n{extra}"
    return write(root / ".claude" / "agents" / rel, f"---\n{front}---\n{body}")


def skill(root: Path, name: str, description: str) -> Path:
    return write(
        root / ".claude" / "skills" / name / "SKILL.md", f"---\nname: {name}\ndescription: {description}\n---\n"
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fake home folder (never the real one)."""
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "project"
    p.mkdir()
    return p


def registry_of(*names: str) -> Registry:
    return Registry(tuple(Subagent(n, f"the {n}", path=f"/x/{n}.md") for n in names))


# -- discovery ------------------------------------------------------------------------------------------------------


def test_discovery_reads_project_and_user_agents_recursively_and_sorted(project: Path, home: Path) -> None:
    agent(project, "web/ui/frontend.md", "frontend-developer", "Builds UI.", "tools: Read, Edit\nmodel: sonnet\n",
          "You build user interfaces.\n")  # fmt: skip
    agent(project, "api.md", "backend-architect", "Designs APIs.", "tools: [Read, Grep]\n")
    agent(home, "deep/er/tests.md", "test-automator", "Writes tests.")
    reg = discover(project, home)
    assert reg.subagent_names == ("backend-architect", "frontend-developer", "test-automator")
    assert [a.name for a in reg.subagents] == list(reg.subagent_names)
    fe = reg.subagent("frontend-developer")
    assert fe is not None
    assert (fe.description, fe.prompt, fe.tools, fe.model) == ("Builds UI.", "You build user interfaces.",
                                                                ("Read", "Edit"), "sonnet")  # fmt: skip
    assert fe.path == str(project / ".claude/agents/web/ui/frontend.md")
    assert reg.subagent("backend-architect").tools == ("Read", "Grep")  # type: ignore[union-attr]
    assert reg.agent_origins["frontend-developer"].scope == "project"
    assert reg.agent_origins["frontend-developer"].shown == ".claude/agents/web/ui/frontend.md"
    assert reg.agent_origins["test-automator"].scope == "user"
    assert reg.agent_origins["test-automator"].shown == "~/.claude/agents/deep/er/tests.md"
    assert reg.problems == ()
    assert reg.subagent("nope") is None
    assert discover(project, home) == reg  # deterministic


def test_identity_comes_from_name_not_the_path(project: Path, home: Path) -> None:
    agent(project, "misc/whatever.md", "code-reviewer")
    assert discover(project, home).subagent_names == ("code-reviewer",)


def test_a_project_agent_wins_over_a_user_agent_of_the_same_name(project: Path, home: Path) -> None:
    agent(project, "a.md", "backend-architect", "project one")
    agent(home, "b.md", "backend-architect", "user one")
    reg = discover(project, home)
    assert reg.subagent("backend-architect").description == "project one"  # type: ignore[union-attr]
    assert reg.agent_origins["backend-architect"].scope == "project"
    assert reg.problems == ()  # an override is normal, not a problem


def test_two_definitions_of_one_name_in_one_scope_keep_the_first_in_path_order(project: Path, home: Path) -> None:
    agent(project, "b.md", "backend-architect", "second")
    agent(project, "a.md", "backend-architect", "first")
    reg = discover(project, home)
    assert reg.subagent("backend-architect").description == "first"  # type: ignore[union-attr]
    assert reg.problems == (
        ".claude/agents/b.md:1: subagent skipped: backend-architect is already defined in .claude/agents/a.md",
    )


def test_tools_keep_commas_inside_parentheses(project: Path, home: Path) -> None:
    agent(project, "a.md", "lead", extra="tools: Read, Bash(git status:*), Agent(worker, researcher)\n")
    assert discover(project, home).subagent("lead").tools == (  # type: ignore[union-attr]
        "Read", "Bash(git status:*)", "Agent(worker, researcher)")  # fmt: skip


def test_home_equal_to_the_repository_is_scanned_once(project: Path) -> None:
    agent(project, "a.md", "backend-architect")
    reg = discover(project, project)
    assert reg.subagent_names == ("backend-architect",)
    assert reg.problems == ()
    assert reg.agent_origins["backend-architect"].scope == "project"


def test_no_claude_folder_is_an_empty_registry(project: Path, home: Path) -> None:
    reg = discover(project, home)
    assert (reg.subagents, reg.skills, reg.problems) == ((), (), ())


def test_the_registry_is_frozen(project: Path, home: Path) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        discover(project, home).problems = ("x",)  # type: ignore[misc]


BROKEN = {
    "yaml.md": ("---\nname: ok-name\ndescription: [unclosed\n---\n", 4, "YAML syntax"),
    "dup-key.md": ("---\nname: a\nname: b\ndescription: x\n---\n", 3, "YAML syntax"),
    "no-name.md": ("---\ndescription: x\n---\n", 1, "missing 'name'"),
    "no-description.md": ("---\nname: some-agent\n---\n", 1, "missing 'description'"),
    "empty-description.md": ("---\nname: some-agent\ndescription: ''\n---\n", 3, "'description' must be"),
    "bad-name.md": ("---\ndescription: x\nname: Backend_Architect\n---\n", 3, "is not lowercase letters"),
    "bad-tools.md": ("---\nname: some-agent\ndescription: x\ntools: {Read: true}\n---\n", 4, "'tools' must be"),
    "bad-model.md": ("---\nname: some-agent\ndescription: x\nmodel: 4\n---\n", 4, "'model' must be"),
    "unclosed.md": ("---\nname: some-agent\ndescription: x\n", 1, "never closed"),
    "list.md": ("---\n- a\n- b\n---\n", 2, "not a YAML mapping"),
}


def test_malformed_agents_are_skipped_reported_and_logged(
    project: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name, (text, _line, _what) in BROKEN.items():
        write(project / ".claude/agents" / name, text)
    (project / ".claude/agents/latin1.md").write_bytes(b"---\nname: caf\xe9\n---\n")  # not UTF-8
    agent(project, "good.md", "backend-architect")
    with caplog.at_level(logging.WARNING, logger="maestro.agents.registry"):
        reg = discover(project, home)
    assert reg.subagent_names == ("backend-architect",)
    problems = {p.split(":", 1)[0]: p for p in reg.problems}
    for name, (_text, line, what) in BROKEN.items():
        problem = problems[f".claude/agents/{name}"]
        assert problem.startswith(f".claude/agents/{name}:{line}: subagent skipped: "), problem
        assert what in problem
    assert problems[".claude/agents/latin1.md"].startswith(".claude/agents/latin1.md:1: subagent skipped: cannot read")
    assert len(reg.problems) == len(BROKEN) + 1
    assert all("\n" not in p for p in reg.problems)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == list(reg.problems)


def test_a_markdown_file_without_front_matter_is_not_an_agent_and_not_a_problem(project: Path, home: Path) -> None:
    write(home / ".claude/agents/README.md", "# My agents\n\nA collection.\n")
    agent(home, "x.md", "backend-architect")
    reg = discover(project, home)
    assert reg.subagent_names == ("backend-architect",)
    assert reg.problems == ()


def test_skills_are_found_by_directory_project_first(project: Path, home: Path) -> None:
    skill(project, "pdf-tools", "Extract text from PDF files.")
    skill(home, "pdf-tools", "the user's copy")
    skill(home, "api-design", "Design REST APIs.")
    write(project / ".claude/skills/named-by-dir/SKILL.md", "---\nname: other\ndescription: from the front\n---\n")
    write(project / ".claude/skills/no-skill-file/notes.md", "not a skill")
    reg = discover(project, home)
    assert reg.skill_names == ("api-design", "named-by-dir", "pdf-tools")
    assert reg.skill("pdf-tools") == Skill("pdf-tools", "Extract text from PDF files.",
                                           str(project / ".claude/skills/pdf-tools/SKILL.md"))  # fmt: skip
    assert reg.skill("named-by-dir").description == "from the front"  # type: ignore[union-attr]
    assert reg.skill_origins["api-design"].shown == "~/.claude/skills/api-design/SKILL.md"
    assert reg.skill_origins["pdf-tools"].scope == "project"
    assert reg.problems == ()


def test_malformed_skills_are_reported(project: Path, home: Path) -> None:
    write(project / ".claude/skills/no-description/SKILL.md", "---\nname: no-description\n---\n")
    write(project / ".claude/skills/Bad_Dir/SKILL.md", "---\ndescription: x\n---\n")
    write(project / ".claude/skills/bare/SKILL.md", "Just text.\n")
    reg = discover(project, home)
    assert reg.skills == ()
    assert reg.problems == (
        ".claude/skills/Bad_Dir/SKILL.md:1: skill skipped: the skill directory 'Bad_Dir' is not lowercase letters, "
        "digits and hyphens (at most 64)",
        ".claude/skills/bare/SKILL.md:1: skill skipped: no front matter (SKILL.md starts with '---' and a "
        "'description')",
        ".claude/skills/no-description/SKILL.md:1: skill skipped: missing 'description'",
    )


# -- choosing a subagent --------------------------------------------------------------------------------------------


def option(decision: maestro.Decision, name: str) -> maestro.Option:
    return next(o for o in decision.options if o.name == name)


def check(decision: maestro.Decision) -> None:
    """What the engine checks, and that the choice has the top score when it is an installed subagent."""
    names = [o.name for o in decision.options]
    assert len(names) == len(set(names))
    assert decision.choice in names
    assert decision.kind == "subagent"
    assert GENERAL in names


def test_the_defaults_hold_the_prds_mapping() -> None:
    prd = {"frontend": "frontend-developer", "backend": "backend-architect", "database": "database-admin",
           "testing": "test-automator", "documentation": "api-documenter"}  # fmt: skip
    assert prd.items() <= DEFAULT_MAPPING.items()
    assert set(prd.values()) <= set(TRIGGERS)


def test_an_explicit_subagent_that_exists_wins() -> None:
    reg = registry_of("backend-architect", "code-reviewer")
    d = choose_subagent(Task("T1", "Build the login page", category="frontend", subagent="code-reviewer"), reg)
    check(d)
    assert (d.choice, d.task, d.confidence) == ("code-reviewer", "T1", 1.0)
    assert d.rationale == "explicit: task T1 names code-reviewer (/x/code-reviewer.md)"
    o = option(d, "code-reviewer")
    assert o.score == 1.0
    assert maestro.Evidence("file", "/x/code-reviewer.md", "subagent") in o.evidence


def test_an_explicit_subagent_that_is_missing_falls_back_with_evidence() -> None:
    reg = registry_of("frontend-developer")
    d = choose_subagent(Task("T1", "Build the page", category="frontend", subagent="react-wizard"), reg)
    check(d)
    assert d.choice == "frontend-developer"
    assert d.rationale.startswith("default_mapping: task T1 names react-wizard, which " + MISSING)
    assert option(d, "react-wizard").score == 0.0
    assert maestro.Evidence("fact", f"react-wizard {MISSING}") in option(d, "react-wizard").evidence


def test_the_config_mapping_goes_before_the_default_mapping() -> None:
    reg = registry_of("backend-architect", "api-designer")
    task = Task("T1", "Add a users endpoint", category="Backend")
    d = choose_subagent(task, reg, {"backend": "api-designer"})
    check(d)
    assert (d.choice, d.confidence) == ("api-designer", 0.9)
    assert (
        d.rationale
        == "config_mapping: category 'backend' → api-designer (config.yaml subagents.mapping) (/x/api-designer.md)"
    )
    assert option(d, "api-designer").score == 0.9
    assert option(d, "backend-architect").score < 0.9  # weighed by its trigger words, not chosen
    assert choose_subagent(task, reg).choice == "backend-architect"


def test_the_config_can_send_a_category_to_the_general_agent() -> None:
    d = choose_subagent(Task("T1", "Add an endpoint", category="backend"), registry_of("backend-architect"),
                        {"backend": GENERAL})  # fmt: skip
    check(d)
    assert d.choice == GENERAL
    assert option(d, GENERAL).score == 0.9


def test_the_default_mapping_chooses_by_category() -> None:
    reg = registry_of("backend-architect", "database-admin", "frontend-developer", "test-automator", "api-documenter")
    for category, expected in [("frontend", "frontend-developer"), ("backend", "backend-architect"),
                               ("database", "database-admin"), ("testing", "test-automator"),
                               ("documentation", "api-documenter"), ("api", "backend-architect"),
                               ("UI", "frontend-developer"), ("migration", "database-admin")]:  # fmt: skip
        d = choose_subagent(Task("T1", "Do the work", category=category), reg)
        check(d)
        assert (d.choice, d.confidence) == (expected, 0.8), category
        assert d.rationale.startswith(f"default_mapping: category {category.lower()!r} → {expected}")
        assert option(d, expected).score == 0.8
        assert (
            maestro.Evidence("fact", f"category {category.lower()!r} → {expected} (default mapping)")
            in option(d, expected).evidence
        )


def test_a_mapped_subagent_that_is_missing_falls_back_to_the_general_agent() -> None:
    d = choose_subagent(Task("T2", "Add an endpoint", category="backend"), registry_of("frontend-developer"))
    check(d)
    assert d.choice == GENERAL
    assert d.task == "T2"
    evidence = maestro.Evidence("fact", "backend-architect is not in .claude/agents/ or ~/.claude/agents/")
    assert evidence in option(d, GENERAL).evidence
    assert evidence in option(d, "backend-architect").evidence
    assert option(d, "backend-architect").score == 0.0
    assert "backend-architect is not in .claude/agents/ or ~/.claude/agents/" in d.rationale
    assert d.rationale.startswith("default_mapping: ")


def test_trigger_words_choose_when_no_mapping_applies() -> None:
    reg = registry_of("frontend-developer", "backend-architect", "test-automator")
    d = choose_subagent(Task("T3", "Build a React COMPONENT for the settings pages", category="general"), reg)
    check(d)
    assert d.choice == "frontend-developer"
    assert d.rationale == (
        "triggers: frontend-developer matched 3 trigger words (component, react, page) (/x/frontend-developer.md)"
    )
    o = option(d, "frontend-developer")
    assert maestro.Evidence("fact", "trigger words matched: component, react, page") in o.evidence
    assert o.score == max(x.score for x in d.options)
    assert o.notes == "chosen by triggers; 3 trigger words"


def test_trigger_words_match_whole_words_only() -> None:
    reg = registry_of("frontend-developer", "backend-architect")
    d = choose_subagent(Task("T1", "Rebuild the guidance about restful apis", category="misc"), reg)
    # "ui" is inside "rebuild" and "guidance": no match; "restful" is not "rest"; "apis" is a plural of "api"
    assert d.choice == "backend-architect"
    assert "frontend-developer" not in [o.name for o in d.options]
    assert maestro.Evidence("fact", "trigger words matched: api") in option(d, "backend-architect").evidence


def test_trigger_ties_are_broken_by_name() -> None:
    reg = registry_of("test-automator", "frontend-developer")
    d = choose_subagent(Task("T1", "pytest for the react form"), reg)  # 1 test word (pytest) vs react, form
    assert d.choice == "frontend-developer"
    d = choose_subagent(Task("T1", "pytest coverage for the react form"), reg)  # 2 vs 2
    assert d.choice == "frontend-developer"
    d = choose_subagent(Task("T1", "pytest coverage fixtures for the react form"), reg)  # 3 vs 2
    assert d.choice == "test-automator"


def test_triggers_pass_over_a_missing_subagent_to_an_installed_one_and_say_so() -> None:
    reg = registry_of("test-automator")
    d = choose_subagent(Task("T1", "Test the react component layout"), reg)
    check(d)
    assert d.choice == "test-automator"
    assert f"frontend-developer matched more but {MISSING}" in d.rationale
    assert option(d, "frontend-developer").score == 0.0


def test_triggers_to_missing_subagents_fall_back_to_the_general_agent() -> None:
    d = choose_subagent(Task("T1", "Write the README and the openapi docs"), Registry())
    check(d)
    assert d.choice == GENERAL
    assert maestro.Evidence("fact", f"api-documenter {MISSING}") in option(d, GENERAL).evidence
    assert d.rationale.startswith("general: trigger words point to api-documenter")


def test_nothing_applies_so_the_general_agent_works() -> None:
    d = choose_subagent(Task("T1", "Tidy up", description="rename things"), registry_of("frontend-developer"))
    check(d)
    assert [o.name for o in d.options] == [GENERAL]
    assert (d.choice, d.confidence) == (GENERAL, 0.5)
    assert d.rationale == (
        "general: no mapping for category 'general' and no trigger words matched; the general agent works on the task"
    )


def test_extra_trigger_words_reach_custom_subagents() -> None:
    reg = registry_of("storybook-pro")
    task = Task("T1", "Add stories for the design system")
    assert choose_subagent(task, reg).choice == GENERAL
    assert choose_subagent(task, reg, triggers={"storybook-pro": ["story"]}).choice == "storybook-pro"


def test_choosing_is_deterministic() -> None:
    reg = registry_of("frontend-developer", "backend-architect", "test-automator", "database-admin")
    task = Task("T1", "api endpoint with sql query and tests for the react page")
    assert choose_subagent(task, reg) == choose_subagent(task, reg)


def test_options_carry_the_definition_file_as_shown(project: Path, home: Path) -> None:
    agent(home, "be.md", "backend-architect")
    d = choose_subagent(Task("T1", "x", category="backend"), discover(project, home))
    assert (
        maestro.Evidence("file", "~/.claude/agents/be.md", "user subagent") in option(d, "backend-architect").evidence
    )
    assert d.rationale.endswith("(~/.claude/agents/be.md)")


# -- config ---------------------------------------------------------------------------------------------------------


def test_overrides_come_from_the_subagents_section_of_the_config() -> None:
    config = {"subagents": {"mapping": {"Frontend": "ui-pro", "api": "general-purpose"},
                            "triggers": {"ui-pro": ["storybook", "figma"], "x": "one"}}}  # fmt: skip
    assert overrides_from_config(config) == (
        {"api": "general-purpose", "frontend": "ui-pro"},
        {"ui-pro": ("storybook", "figma"), "x": ("one",)},
    )
    assert overrides_from_config({}) == ({}, {})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ([1], "must be a mapping"),
        ({"mappings": {}}, "unknown key"),
        ({"mapping": ["a"]}, "subagents.mapping must map"),
        ({"mapping": {"frontend": 3}}, "subagents.mapping.frontend"),
        ({"triggers": {"a": [1]}}, "subagents.triggers.a"),
    ],
)
def test_a_malformed_config_section_names_the_key(section: object, message: str) -> None:
    with pytest.raises(DecisionError, match=re.escape(message)):
        overrides_from_config({"subagents": section})


# -- choosing skills ------------------------------------------------------------------------------------------------


def skills_of(*pairs: tuple[str, str]) -> Registry:
    return Registry(skills=tuple(Skill(n, d) for n, d in pairs))


def test_skills_named_by_the_task_come_first_and_missing_ones_are_left_out() -> None:
    reg = skills_of(("api-design", "Design REST APIs."), ("pdf", "Read PDF files."))
    task = Task("T1", "Tidy up", skills=("pdf", "nope", "pdf"))
    assert [s.name for s in choose_skills(task, reg)] == ["pdf"]


def test_skills_match_by_name_or_two_description_words() -> None:
    reg = skills_of(
        ("api-design", "Design REST APIs."),
        ("frontend-design", "Polished interfaces with good typography and color."),
        ("webapp-testing", "Drive a browser with playwright to check pages."),
        ("pdf", "Extract text from PDF documents."),
    )
    task = Task("T1", "Add the signup form", description="Check it in a browser with playwright.", category="frontend")
    assert [s.name for s in choose_skills(task, reg)] == ["frontend-design", "webapp-testing"]
    one_word = Task("T2", "Open the browser")  # one description word is not enough
    assert choose_skills(one_word, reg) == ()


def test_at_most_three_skills_and_stronger_matches_first() -> None:
    reg = skills_of(*((f"api-{w}", "x") for w in ("a", "b", "c", "d")), ("api-design", "design of the api"))
    task = Task("T1", "API design")
    assert [s.name for s in choose_skills(task, reg)] == ["api-design", "api-a", "api-b"]
    explicit = Task("T1", "API design", skills=("api-d",))
    assert [s.name for s in choose_skills(explicit, reg)] == ["api-d", "api-design", "api-a"]


def test_maestros_own_skills_go_only_where_a_task_names_them() -> None:
    reg = skills_of(("maestro-session-inspect", "Inspect maestro sessions."))
    assert choose_skills(Task("T1", "Inspect the maestro session list"), reg) == ()
    named = Task("T1", "x", skills=("maestro-session-inspect",))
    assert [s.name for s in choose_skills(named, reg)] == ["maestro-session-inspect"]


# -- the decision strategy ------------------------------------------------------------------------------------------


def test_the_decision_is_recorded_in_the_session_with_its_task(session: maestro.Session, home: Path) -> None:
    repo = session.store.repo
    agent(repo, "be.md", "backend-architect", "APIs")
    engine = DecisionEngine()  # the shipped strategies include this one
    assert "subagent" in engine.kinds
    task = Task("T2", "Add a users endpoint", category="backend")
    d = session.record(
        engine.decide("subagent", state=session.state, repo=session.store.repo, for_task=task, home=home)
    ).payload()
    assert (d.kind, d.choice, d.task, d.id) == ("subagent", "backend-architect", "T2", "D1")
    assert session.state.decisions == (d,)
    assert session.events[-1].kind == "decision"
    assert session.events[-1].payload() == d
    session.refresh_views()
    recorded = json.loads((session.dir / "decisions.json").read_text(encoding="utf-8"))
    assert [(r["kind"], r["task"], r["choice"]) for r in recorded] == [("subagent", "T2", "backend-architect")]


def test_the_fallback_is_recorded_too(session: maestro.Session) -> None:
    engine = DecisionEngine(strategies={"subagent": subagent_strategy})
    d = session.record(
        engine.decide(
            "subagent",
            state=session.state,
            repo=session.store.repo,
            for_task=Task("T1", "x", category="database"),
            registry=Registry(),
        )
    ).payload()
    assert (d.choice, d.task) == (GENERAL, "T1")
    assert maestro.Evidence("fact", f"database-admin {MISSING}") in option(d, GENERAL).evidence
    assert session.state.decisions[-1] == d


def test_the_strategy_takes_a_mapping_and_checks_its_parameters(project: Path) -> None:
    reg = registry_of("api-designer")
    task = Task("T1", "x", category="backend")
    ctx = DecisionContext("subagent", params={"task": task, "registry": reg, "mapping": {"backend": "api-designer"}})
    assert subagent_strategy(ctx).choice == "api-designer"
    cases: list[tuple[dict[str, object], str]] = [
        ({}, "pass for_task="),
        ({"for_task": "T1"}, "pass for_task="),
        ({"for_task": task}, "pass registry= or a repository"),
        ({"for_task": task, "registry": {}}, "registry must be a Registry"),
        ({"for_task": task, "registry": reg, "mapping": {"backend": 1}}, "mapping must map"),
        ({"for_task": task, "registry": reg, "triggers": {"a": "word"}}, "triggers must map"),
    ]
    for params, message in cases:
        with pytest.raises(DecisionError, match=re.escape(message)):
            subagent_strategy(DecisionContext("subagent", params=params))


# -- the shipped skills ---------------------------------------------------------------------------------------------


def test_maestro_ships_two_skills() -> None:
    assert [p.parent.name for p in shipped_skills()] == ["maestro-decision-engine", "maestro-session-inspect"]
    assert all(p.name == "SKILL.md" and p.is_file() for p in shipped_skills())


def test_install_skills_is_idempotent_and_keeps_a_changed_file_unless_forced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "target"
    written = install_skills(target)
    expected = [target / ".claude/skills" / p.parent.name / "SKILL.md" for p in shipped_skills()]
    assert written == expected
    for src, dest in zip(shipped_skills(), expected, strict=True):
        assert dest.read_text(encoding="utf-8") == src.read_text(encoding="utf-8")
    assert install_skills(target) == []

    edited = expected[0]
    edited.write_text("my own version\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="maestro.agents.registry"):
        assert install_skills(target) == []
    assert edited.read_text(encoding="utf-8") == "my own version\n"
    assert any(str(edited) in r.getMessage() and "kept" in r.getMessage() for r in caplog.records)

    assert install_skills(target, force=True) == [edited]
    assert edited.read_text(encoding="utf-8") == shipped_skills()[0].read_text(encoding="utf-8")
    assert install_skills(target, force=True) == []


def test_installed_skills_are_discovered_without_problems(tmp_path: Path, home: Path) -> None:
    target = tmp_path / "target"
    install_skills(target)
    reg = discover(target, home)
    assert reg.problems == ()
    assert reg.skill_names == ("maestro-decision-engine", "maestro-session-inspect")
    for s in reg.skills:
        assert 20 < len(s.description) <= 1024  # the Agent Skills limit
    install_skills(home)
    assert discover(tmp_path / "elsewhere", home).skill_origins["maestro-session-inspect"].scope == "user"


def test_the_shipped_front_matter_names_its_directory() -> None:
    for path in shipped_skills():
        text = path.read_text(encoding="utf-8")
        front = text.split("---\n")[1]
        assert re.search(rf"^name: {re.escape(path.parent.name)}$", front, re.MULTILINE)
        assert set(re.findall(r"^(\w[\w-]*):", front, re.MULTILINE)) == {"name", "description"}


def _help(*command: str) -> str:
    out = subprocess.run([sys.executable, "-m", "maestro", *command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, (command, out.stderr)
    return out.stdout


def _code(text: str) -> list[str]:
    """The command lines of a markdown text: lines of fenced blocks, and inline `code` spans."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            out.append(line.split("#", 1)[0])
        else:
            out.extend(re.findall(r"`([^`]+)`", line))
    return out


def test_the_commands_the_shipped_skills_mention_exist() -> None:
    mentioned: dict[str, set[str]] = {}
    for path in shipped_skills():
        for code in _code(path.read_text(encoding="utf-8")):
            m = re.match(r"\s*maestro ([a-z_]+)", code)
            if m:
                mentioned.setdefault(m[1], set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", code))
    assert set(mentioned) == {"decide", "sessions", "replay"}
    assert {"--capability", "--ecosystem", "--feature", "--gate", "--json"} <= mentioned["decide"]
    assert {"--json", "--to"} <= mentioned["replay"]
    top = _help()
    helps = []
    for cmd, flags in sorted(mentioned.items()):
        assert re.search(rf"^\s+{cmd}\s", top, re.MULTILINE), cmd
        text = _help(cmd)
        helps.append(text)
        for flag in sorted(flags):
            assert re.search(rf"{flag}\b", text), (cmd, flag)
    # flags written alone (`--repo PATH`, `--to N`) belong to those commands too
    alone = {c.split()[0] for p in shipped_skills() for c in _code(p.read_text("utf-8")) if c.startswith("--")}
    assert "--repo" in alone
    assert all(any(re.search(rf"{f}\b", h) for h in helps) for f in alone), alone
    decide = _help("decide")
    for kind in ("tech_stack", "architecture", "gate"):
        assert kind in decide
    for gate in ("tests", "lint", "typecheck", "security"):
        assert gate in decide


def test_the_docs_table_matches_the_mapping_and_the_triggers() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "subagents.md").read_text(encoding="utf-8")
    rows = {m[1]: (m[2], m[3]) for m in re.finditer(r"^\| `([a-z-]+)` \| (`[^|]*`) \| ([^|]+) \|$", doc, re.M)}
    for name in sorted(set(TRIGGERS) | set(DEFAULT_MAPPING.values())):
        categories, words = rows[name]
        assert re.findall(r"`([a-z0-9-]+)`", categories) == [c for c, n in DEFAULT_MAPPING.items() if n == name]
        assert tuple(w.strip() for w in words.split(",")) == TRIGGERS[name]


def test_a_definition_larger_than_any_input_may_be_is_refused_without_being_read(project: Path, home: Path) -> None:
    agent(project, "fine.md", "fine")
    huge = project / ".claude" / "agents" / "huge.md"
    with huge.open("wb") as f:  # sparse: 11 MiB that were never written
        f.truncate(11 * 1024 * 1024)
    (project / ".claude" / "agents" / "zero.md").symlink_to("/dev/zero")  # not a file: not a definition
    reg = discover(project, home)
    assert [s.name for s in reg.subagents] == ["fine"]
    problems = {p.split(":", 1)[0]: p for p in reg.problems}
    assert "too large: 11,534,336 bytes, more than the 10,485,760 bytes" in problems[".claude/agents/huge.md"]
    assert ".claude/agents/zero.md" not in problems
