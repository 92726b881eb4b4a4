"""config.yaml: defaults, a full file, every error with its line and key, overrides, backoff, the default text."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from maestro.config.model import (
    GATE_NAMES,
    SECTIONS,
    AcceptanceConfig,
    Backoff,
    Config,
    GateConfig,
    LimitsConfig,
    Parallel,
    Recovery,
    render_command,
)
from maestro.config.reader import load_config, parse_config
from maestro.config.writer import default_config_yaml
from maestro.core.errors import ConfigError, MaestroError

# line numbers are part of the tests: keep them where they are
FULL = """\
agent: {kind: scripted, script: path/to/script.yaml}   # claude | codex | aider | command | scripted
parallel: {max_workers: 8}
recovery:
  max_retries: 5
  backoff: {initial_s: 0.5, factor: 3, max_s: 30.0}
  max_alternatives: 1
limits: {max_iterations: 4, max_minutes: 90.5, budget_usd: 12}
gates:
  tests:     {command: "python -m pytest -q --junitxml={junit}", required: true}
  lint:      {command: "ruff check .", required: false, timeout_s: 60}
  typecheck: {command: null, required: true}
  security:  {command: null, required: false}
subagents:
  mapping:  {frontend: my-frontend-dev, api: general-purpose}
  triggers: {my-frontend-dev: [storybook, figma]}
"""


def dump(config: Config) -> str:
    """The test's own writer: ``to_dict()`` as block-style YAML."""
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.width = 4096
    out = io.StringIO()
    y.dump(config.to_dict(), out)
    return out.getvalue()


def error_of(text: str, source: str = "c.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source)
    return info.value


# -- defaults -----------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    c = Config()
    assert c.agent is None
    assert c.subagents is None
    assert c.source is None
    assert c.base_dir is None
    assert c.parallel == Parallel(max_workers=4)
    assert c.recovery == Recovery(max_retries=3, backoff=Backoff(1.0, 2.0, 60.0), max_alternatives=2)
    assert c.limits == LimitsConfig(max_iterations=3, max_minutes=120.0, budget_usd=None)
    assert list(c.gates) == list(GATE_NAMES)
    assert all(g.command is None and g.timeout_s == 1800.0 for g in c.gates.values())
    assert {n: g.required for n, g in c.gates.items()} == {
        "tests": True,
        "lint": False,
        "typecheck": False,
        "security": False,
    }


def test_gate_names_are_the_gate_decisions() -> None:
    from maestro.decide.strategies.gate import GATES

    assert tuple(GATES) == GATE_NAMES


def test_no_path_missing_file_and_empty_file_give_the_defaults(tmp_path: Path) -> None:
    assert load_config(None) == Config()
    assert load_config(tmp_path / "nope.yaml") == Config()
    for text in ("", "\n\n", "# only a comment\n", "---\n", "null\n"):
        (tmp_path / "c.yaml").write_text(text)
        loaded = load_config(tmp_path / "c.yaml")
        assert loaded == Config()
        assert loaded.source == str(tmp_path / "c.yaml")


def test_a_missing_file_can_be_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file$"):
        load_config(tmp_path / "nope.yaml", missing_ok=False)


def test_null_sections_and_partial_sections_take_the_defaults() -> None:
    text = "agent:\nparallel:\nrecovery: {backoff: null}\nlimits: {max_iterations: 7}\ngates:\nsubagents: null\n"
    c = parse_config(text)
    assert attrs.evolve(c, limits=LimitsConfig()) == Config()
    assert c.limits == LimitsConfig(max_iterations=7)


def test_a_gate_given_in_part_keeps_its_own_defaults() -> None:
    c = parse_config("gates:\n  tests: {command: make test}\n  lint: {required: true}\n  security:\n")
    assert c.gates["tests"] == GateConfig("make test", required=True)
    assert c.gates["lint"] == GateConfig(None, required=True)
    assert c.gates["typecheck"] == GateConfig(None, required=False)
    assert c.gates["security"] == GateConfig(None, required=False)
    assert list(c.gates) == list(GATE_NAMES)  # the order is fixed, whatever the file's


# -- a full file ------------------------------------------------------------------------------------------------


def test_a_full_file(tmp_path: Path) -> None:
    path = tmp_path / ".flow" / "maestro" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(FULL)
    c = load_config(path)
    assert c.agent == {"kind": "scripted", "script": "path/to/script.yaml"}
    assert type(c.agent) is dict
    assert c.parallel.max_workers == 8
    assert c.recovery == Recovery(5, Backoff(0.5, 3.0, 30.0), 1)
    assert c.limits == LimitsConfig(4, 90.5, 12.0)
    assert c.gates == {
        "tests": GateConfig("python -m pytest -q --junitxml={junit}", True),
        "lint": GateConfig("ruff check .", False, 60.0),
        "typecheck": GateConfig(None, True),
        "security": GateConfig(None, False),
    }
    assert c.subagents == {
        "mapping": {"frontend": "my-frontend-dev", "api": "general-purpose"},
        "triggers": {"my-frontend-dev": ["storybook", "figma"]},
    }
    assert c.source == str(path)
    assert c.base_dir == path.parent


def test_ints_are_accepted_for_numbers_and_stored_as_floats() -> None:
    c = parse_config(FULL)
    for value in (c.recovery.backoff.factor, c.limits.budget_usd, c.gates["lint"].timeout_s):
        assert type(value) is float


def test_values_are_plain_python_whatever_the_yaml_spelling() -> None:
    text = (
        "parallel: {max_workers: &w 0x10}\nrecovery: {max_retries: *w, max_alternatives: 1_0}\n"
        "gates:\n  lint: {required: &t true, command: 'ruff  check'}\n  tests: {required: *t}\n"
        "limits: {max_minutes: &m 2.5e1}\n"
    )
    c = parse_config(text)
    assert (c.parallel.max_workers, c.recovery.max_retries, c.recovery.max_alternatives) == (16, 16, 10)
    assert type(c.parallel.max_workers) is int
    assert c.gates["lint"].required is True and c.gates["tests"].required is True
    assert type(c.gates["lint"].command) is str
    assert c.limits.max_minutes == 25.0 and type(c.limits.max_minutes) is float


def test_the_raw_sections_reach_the_agent_factory_and_the_registry(tmp_path: Path) -> None:
    from maestro.agents.command import CommandAgent
    from maestro.agents.factory import agent_from_config
    from maestro.agents.registry import overrides_from_config

    path = tmp_path / "config.yaml"
    path.write_text(FULL.replace("{kind: scripted, script: path/to/script.yaml}", "{kind: command, command: 'true'}"))
    c = load_config(path)
    assert c.base_dir is not None
    agent = agent_from_config(c.agent, base_dir=c.base_dir, where=str(c.source))
    assert isinstance(agent, CommandAgent)
    mapping, triggers = overrides_from_config(c.to_dict())
    assert mapping == {"api": "general-purpose", "frontend": "my-frontend-dev"}
    assert triggers == {"my-frontend-dev": ("storybook", "figma")}


def test_aliases_in_a_raw_section_are_copied_once() -> None:
    text = "agent:\n  kind: claude\n  extra_args: &a [x, y]\n  allowed_tools: *a\n"
    c = parse_config(text)
    assert c.agent == {"kind": "claude", "extra_args": ["x", "y"], "allowed_tools": ["x", "y"]}


def test_merge_keys_are_read() -> None:
    c = parse_config("gates:\n  lint: &g {command: ruff check ., required: true}\n  typecheck:\n    <<: *g\n")
    assert c.gates["typecheck"] == GateConfig("ruff check .", True)


# -- every error, with its line and key -------------------------------------------------------------------------

ERRORS = [
    # YAML itself
    ("parallel: [unclosed\n", "c.yaml:2: YAML syntax: expected ',' or ']', but got '<stream end>'"),
    ("parallel: {max_workers: 2}\nparallel: {max_workers: 3}\n",
     'c.yaml:2: YAML syntax: found duplicate key "parallel"'),
    ("a: b\n---\nc: d\n",
     "c.yaml:2: YAML syntax: expected a single document in the stream, but found another document"),
    ("- parallel\n", "c.yaml:1: the config is a mapping of settings "
     "(agent, parallel, executor, recovery, limits, planning, gates, acceptance, subagents), not a list"),
    ("just words\n", "c.yaml:1: the config is a mapping of settings "
     "(agent, parallel, executor, recovery, limits, planning, gates, acceptance, subagents), not 'just words'"),
    # unknown keys
    ("parallel: {max_workers: 2}\nparalel: {max_workers: 2}\n",
     "c.yaml:2: paralel: unknown key (did you mean 'parallel'?)"),
    ("\n\nzzz: 1\n",
     "c.yaml:3: zzz: unknown key (known: agent, parallel, executor, recovery, limits, planning, gates, acceptance, "
     "subagents)"),
    ("1: 2\n",
     "c.yaml:1: 1: unknown key (known: agent, parallel, executor, recovery, limits, planning, gates, acceptance, "
     "subagents)"),
    ("parallel:\n  workers: 2\n", "c.yaml:2: parallel.workers: unknown key (did you mean 'max_workers'?)"),
    ("recovery:\n  max_retries: 1\n  backoff:\n    factr: 2\n",
     "c.yaml:4: recovery.backoff.factr: unknown key (did you mean 'factor'?)"),
    ("limits:\n  max-minutes: 5\n", "c.yaml:2: limits.max-minutes: unknown key (did you mean 'max_minutes'?)"),
    ("gates:\n  tests:\n    cmd: make test\n",
     "c.yaml:3: gates.tests.cmd: unknown key (did you mean 'command'?)"),
    ("gates:\n  lint: {}\n  test: {}\n", "c.yaml:3: gates.test: unknown gate (did you mean 'tests'?)"),
    ("gates:\n  coverage: {}\n", "c.yaml:2: gates.coverage: unknown gate (gates: tests, lint, typecheck, security)"),
    ("subagents:\n  maping: {}\n", "c.yaml:2: subagents.maping: unknown key (did you mean 'mapping'?)"),
    # sections of the wrong shape
    ("parallel: 4\n", "c.yaml:1: parallel: expected a mapping of max_workers, not 4"),
    ("recovery:\n  backoff: [1, 2]\n",
     "c.yaml:2: recovery.backoff: expected a mapping of initial_s, factor, max_s, not a list"),
    ("gates: [tests]\n", "c.yaml:1: gates: expected a mapping of tests, lint, typecheck, security, not a list"),
    ("gates:\n  tests: pytest\n",
     "c.yaml:2: gates.tests: expected a mapping of command, required, timeout_s, not 'pytest'"),
    ("agent: claude\n", "c.yaml:1: agent: expected a mapping of settings with a kind, not 'claude'"),
    ("subagents: [a]\n", "c.yaml:1: subagents: expected a mapping of mapping, triggers, not a list"),
    # wrong types
    ("parallel: {max_workers: four}\n", "c.yaml:1: parallel.max_workers: expected an integer, not 'four'"),
    ("parallel: {max_workers: 2.0}\n", "c.yaml:1: parallel.max_workers: expected an integer, not 2.0"),
    ("parallel: {max_workers: true}\n", "c.yaml:1: parallel.max_workers: expected an integer, not true"),
    ("parallel: {max_workers: null}\n", "c.yaml:1: parallel.max_workers: expected an integer, not null"),
    ("parallel:\n  max_workers: [4]\n", "c.yaml:2: parallel.max_workers: expected an integer, not a list"),
    ("recovery:\n  backoff:\n    factor: false\n",
     "c.yaml:3: recovery.backoff.factor: expected a number, not false"),
    ("recovery:\n  backoff:\n    max_s: '60'\n", "c.yaml:3: recovery.backoff.max_s: expected a number, not '60'"),
    ("recovery:\n  backoff:\n    max_s: .inf\n",
     "c.yaml:3: recovery.backoff.max_s: expected a finite number, not inf"),
    ("limits:\n  max_minutes: yes\n", "c.yaml:2: limits.max_minutes: expected a number or null, not 'yes'"),
    ("limits:\n  budget_usd: .nan\n", "c.yaml:2: limits.budget_usd: expected a finite number, not nan"),
    ("limits:\n  budget_usd: 1" + "0" * 400 + "\n", "c.yaml:2: limits.budget_usd: too large a number"),
    ("gates:\n  tests:\n    required: yes\n", "c.yaml:3: gates.tests.required: expected true or false, not 'yes'"),
    ("gates:\n  tests:\n    required: 1\n", "c.yaml:3: gates.tests.required: expected true or false, not 1"),
    ("gates:\n  lint:\n    command: [ruff, check]\n",
     "c.yaml:3: gates.lint.command: expected a command (a string) or null, not a list"),
    ("gates:\n  lint:\n    timeout_s: null\n", "c.yaml:3: gates.lint.timeout_s: expected a number, not null"),
    # out of range
    ("parallel: {max_workers: 0}\n", "c.yaml:1: parallel.max_workers: must be at least 1, not 0"),
    ("recovery:\n  max_retries: -1\n", "c.yaml:2: recovery.max_retries: must be at least 0, not -1"),
    ("recovery:\n  max_alternatives: -2\n", "c.yaml:2: recovery.max_alternatives: must be at least 0, not -2"),
    ("recovery:\n  backoff: {factor: 0.5}\n", "c.yaml:2: recovery.backoff.factor: must be at least 1, not 0.5"),
    ("recovery:\n  backoff: {initial_s: 0}\n",
     "c.yaml:2: recovery.backoff.initial_s: must be greater than 0, not 0"),
    ("recovery:\n  backoff: {max_s: -1}\n", "c.yaml:2: recovery.backoff.max_s: must be greater than 0, not -1"),
    ("recovery:\n  backoff:\n    initial_s: 5\n    max_s: 2\n",
     "c.yaml:4: recovery.backoff.max_s: must be at least initial_s (5), not 2"),
    ("recovery:\n  backoff:\n    initial_s: 100\n",
     "c.yaml:3: recovery.backoff.initial_s: must be at most max_s (60, the default), not 100"),
    ("limits:\n  max_iterations: 0\n", "c.yaml:2: limits.max_iterations: must be at least 1, not 0"),
    ("limits:\n  max_minutes: 0\n", "c.yaml:2: limits.max_minutes: must be greater than 0, not 0"),
    ("limits:\n  budget_usd: -5\n", "c.yaml:2: limits.budget_usd: must be greater than 0, not -5"),
    ("gates:\n  tests:\n    timeout_s: 0\n", "c.yaml:3: gates.tests.timeout_s: must be greater than 0, not 0"),
    # commands and their placeholders
    ("gates:\n  tests:\n    command: '  '\n",
     "c.yaml:3: gates.tests.command: empty command (null lets maestro decide the command from the repository)"),
    ("gates:\n  tests:\n    command: pytest --junitxml={report}\n",
     "c.yaml:3: gates.tests.command: unknown placeholder {report} "
     "(the only placeholder is {junit}; write {{ and }} for literal braces)"),
    ("gates:\n  lint:\n    command: \"awk '{print $1}' x\"\n",
     "c.yaml:3: gates.lint.command: unknown placeholder {print $1} "
     "(the only placeholder is {junit}; write {{ and }} for literal braces)"),
    ("gates:\n  lint:\n    command: 'echo {'\n",
     "c.yaml:3: gates.lint.command: unmatched '{' at column 6 (write '{{' for a literal brace)"),
    ("gates:\n  lint:\n    command: 'echo }'\n",
     "c.yaml:3: gates.lint.command: unmatched '}' at column 6 (write '}}' for a literal brace)"),
    # the raw sections
    ("agent: {model: sonnet}\n", "c.yaml:1: agent.kind: missing (one of claude, codex, aider, command, scripted)"),
    ("agent:\n  model: sonnet\n  kind: claud\n",
     "c.yaml:3: agent.kind: 'claud' is not one of claude, codex, aider, command, scripted (did you mean 'claude'?)"),
    ("agent:\n  kind: 3\n", "c.yaml:2: agent.kind: 3 is not one of claude, codex, aider, command, scripted"),
    ("subagents:\n  mapping:\n    frontend: 3\n",
     "c.yaml:3: subagents.mapping.frontend: expected a subagent name, not 3"),
    ("subagents:\n  mapping: [a]\n",
     "c.yaml:2: subagents.mapping: expected a mapping of categories to subagent names, not a list"),
    ("subagents:\n  triggers:\n    my-dev: [a, '']\n",
     "c.yaml:3: subagents.triggers.my-dev: expected a list of words, not a list"),
    ("subagents:\n  triggers:\n    my-dev: {a: b}\n",
     "c.yaml:3: subagents.triggers.my-dev: expected a list of words, not a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m.split(": ", 2)[1] for _, m in ERRORS])
def test_every_error_is_one_line_with_file_line_and_key(text: str, message: str) -> None:
    exc = error_of(text)
    assert str(exc) == message
    assert "\n" not in str(exc)
    assert isinstance(exc, MaestroError)


def test_the_error_carries_its_parts() -> None:
    exc = error_of("limits:\n  max_iterations: 0\n")
    assert (exc.path, exc.line, exc.key) == ("c.yaml", 2, "limits.max_iterations")
    assert exc.problem == "must be at least 1, not 0"


def test_text_without_a_source_is_named_input() -> None:
    with pytest.raises(ConfigError, match=r"^<input>:1: parallel\.max_workers: must be at least 1, not 0$"):
        parse_config("parallel: {max_workers: 0}\n")


def test_deep_nesting_is_one_line() -> None:
    text = "agent: " + "[" * 50_000 + "]" * 50_000 + "\n"
    with pytest.raises(ConfigError, match=r"^c\.yaml: nested too deeply to read$"):
        parse_config(text, "c.yaml")


def test_a_value_yaml_cannot_build_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^c\.yaml:1: YAML: a value cannot be read: month must be in 1\.\.12$"):
        parse_config("agent: {kind: claude, when: 2024-13-45}\n", "c.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agent: !!int\n", "c.yaml:1: YAML: a value cannot be read: an empty value is not a valid !!int"),
        ("!!set\n", "c.yaml:1: YAML: a value cannot be read: an empty value is not a valid !!set"),
        ("agent: !!float fast\n", "c.yaml:1: YAML: a value cannot be read: could not convert string to float: 'fast'"),
        ("agent:\n  when: !!bool maybe\n", "c.yaml:2: YAML: a value cannot be read: 'maybe' is not a valid !!bool"),
        (
            "agent: !!omap [{a: 1}, {a: 2}]\n",
            "c.yaml:1: YAML syntax: found duplicate key 'a' in an !!omap (first at line 1)",
        ),
        (
            "x:\n  y: " + "9" * 4301 + "\n",
            "c.yaml:2: YAML: a value cannot be read: an integer of more than 4,300 digits",
        ),
        ("x: 0b" + "1" * 20000 + "\n", "c.yaml:1: YAML: a value cannot be read: an integer of more than 4,300 digits"),
    ],
)
def test_a_tag_that_does_not_fit_is_one_line(text: str, message: str) -> None:
    assert str(error_of(text)) == message


def test_the_demo_config_reads() -> None:
    demo = pytest.importorskip("maestro.run.demo")
    config = parse_config(demo._with_tests(demo.CONFIG), "demo.yaml")
    assert config.agent == {"kind": "scripted", "script": "script.yaml"}
    assert config.gates["tests"].command is not None


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"parallel:\n  max_workers: 4 # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:2: not UTF-8 text \(byte 32\)$"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r": is a directory, not a configuration file$"):
        load_config(tmp_path)


def test_a_key_merged_in_is_named_at_the_line_of_its_mapping() -> None:
    exc = error_of("gates:\n  lint: &g {timeout_s: 0}\n  typecheck:\n    <<: *g\n    required: true\n")
    assert str(exc) == "c.yaml:2: gates.lint.timeout_s: must be greater than 0, not 0"


# -- the model checks itself too --------------------------------------------------------------------------------


def test_the_model_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match=r"^max_workers: must be at least 1, not 0$"):
        Parallel(max_workers=0)
    with pytest.raises(ValueError, match=r"max_s \(1\) is less than initial_s \(10\)"):
        Backoff(initial_s=10, max_s=1)
    with pytest.raises(ValueError, match=r"^required: expected true or false, not 1$"):
        GateConfig(required=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown gate\(s\) coverage"):
        Config(gates={"coverage": GateConfig()})
    with pytest.raises(TypeError, match=r"gates\.tests: expected a GateConfig"):
        Config(gates={"tests": {"command": "x"}})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"^agent: expected a mapping or None, not str$"):
        Config(agent="claude")
    with pytest.raises(TypeError, match=r"^limits: expected a LimitsConfig, not Parallel$"):
        Config(limits=Parallel())  # type: ignore[arg-type]


def test_the_model_converts_ints_to_floats_and_keeps_its_own_copies() -> None:
    assert type(Backoff(initial_s=2, max_s=10).initial_s) is float
    agent: dict[str, Any] = {"kind": "claude", "extra_args": ["-v"]}
    c = Config(agent=agent)
    agent["extra_args"].append("--bad")
    assert c.agent == {"kind": "claude", "extra_args": ["-v"]}


# -- overrides ----------------------------------------------------------------------------------------------------


def test_overrides() -> None:
    base = parse_config(FULL, "c.yaml")
    c = base.with_overrides(max_iterations=9, budget_usd=2, max_minutes=30, max_workers=1, agent="claude")
    assert c.limits == LimitsConfig(9, 30.0, 2.0)
    assert type(c.limits.budget_usd) is float
    assert c.parallel.max_workers == 1
    assert c.agent == {"kind": "claude"}
    assert c.source == "c.yaml"
    assert (c.recovery, c.gates, c.subagents) == (base.recovery, base.gates, base.subagents)
    assert base.limits == LimitsConfig(4, 90.5, 12.0)  # the original is unchanged
    assert base.with_overrides() == base
    section = {"kind": "scripted", "script": "/abs/script.yaml"}
    assert base.with_overrides(agent=section).agent == section


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"max_iterations": 0}, "limits.max_iterations: must be at least 1, not 0"),
        ({"max_iterations": True}, "limits.max_iterations: expected an integer, not true"),
        ({"budget_usd": -1}, "limits.budget_usd: must be greater than 0, not -1"),
        ({"budget_usd": math.inf}, "limits.budget_usd: expected a finite number, not inf"),
        ({"max_minutes": "5"}, "limits.max_minutes: expected a number or null, not '5'"),
        ({"max_workers": 0}, "parallel.max_workers: must be at least 1, not 0"),
        ({"max_workers": 2.5}, "parallel.max_workers: expected an integer, not 2.5"),
        ({"agent": "gpt"}, "agent.kind: 'gpt' is not one of claude, codex, aider, command, scripted"),
        ({"agent": {"model": "x"}}, "agent.kind: missing (one of claude, codex, aider, command, scripted)"),
        ({"agent": 3}, "agent: expected a mapping with a kind, or a kind, not 3"),
    ],
)
def test_bad_overrides_are_config_errors_naming_the_key(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config().with_overrides(**flags)
    assert str(info.value) == message


# -- backoff ------------------------------------------------------------------------------------------------------


def test_backoff_delays() -> None:
    b = Backoff()
    assert [b.delay(n) for n in range(1, 10)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert [Backoff(0.5, 3, 10).delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 10.0]
    assert Backoff(2.0, 1.0, 60.0).delay(50) == 2.0
    assert Backoff(3.0, 2.0, 3.0).delay(1) == 3.0
    assert b.delay(10_000) == 60.0  # no overflow


@pytest.mark.parametrize("n", [0, -1, True, 1.0])
def test_backoff_counts_retries_from_one(n: Any) -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        Backoff().delay(n)


@given(
    st.floats(0.001, 100),
    st.floats(1, 10),
    st.floats(0.001, 1000),
    st.integers(1, 2000),
)
def test_backoff_is_capped_and_never_shrinks(initial: float, factor: float, extra: float, n: int) -> None:
    b = Backoff(initial, factor, initial + extra)
    assert initial <= b.delay(n) <= b.max_s
    assert b.delay(n) <= b.delay(n + 1)


# -- render_command -----------------------------------------------------------------------------------------------


def test_render_command() -> None:
    assert render_command("pytest -q --junitxml={junit}", junit="out/j.xml") == "pytest -q --junitxml=out/j.xml"
    assert render_command("pytest --junitxml={junit}", junit=Path("a b/j.xml")) == "pytest --junitxml='a b/j.xml'"
    assert render_command("echo ${HOME} {{a}} }}", junit="j") == "echo ${HOME} {a} }"
    assert render_command("echo {{junit}}", junit="j") == "echo {junit}"
    assert GateConfig("ruff check .").render("j") == "ruff check ."
    assert GateConfig(None).render("j") is None
    with pytest.raises(ConfigError, match=r"^command: unknown placeholder \{x\}"):
        render_command("a {x}", junit="j")


# -- the default text ---------------------------------------------------------------------------------------------


def test_the_default_text_reads_back_as_the_defaults(tmp_path: Path) -> None:
    text = default_config_yaml()
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == Config()
    keys = (*SECTIONS[:-1], "max_workers", "max_retries", "initial_s", "factor", "max_s", "max_alternatives",
            "max_iterations", "max_minutes", "budget_usd", *GATE_NAMES, "command", "required", "timeout_s")  # fmt: skip
    for key in keys:
        assert f"{key}:" in text
    assert "# Which subagent" in text  # subagents is explained, left out
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) > 15
    assert default_config_yaml() == text  # deterministic


def test_the_default_text_holds_the_detected_gates(tmp_path: Path) -> None:
    detected = {"tests": "python -m pytest -q --junitxml={junit}", "lint": "ruff check .", "typecheck": None}
    text = default_config_yaml(detected)
    assert '  tests:     {command: "python -m pytest -q --junitxml={junit}", required: true, timeout_s: 1800}' in text
    assert "  security:  {command: null, required: false, timeout_s: 1800}" in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    expected = Config(
        gates={
            "tests": GateConfig("python -m pytest -q --junitxml={junit}", True),
            "lint": GateConfig("ruff check .", False),
        }
    )
    assert load_config(path) == expected


def test_the_default_text_quotes_any_command() -> None:
    command = 'say "hi" \\ it\'s {{x}} ${Y} café 😀 \t tab \x7f\x85\u2028 # not a comment'
    assert parse_config(default_config_yaml({"lint": command})).gates["lint"].command == command


def test_the_default_text_refuses_what_would_not_read_back() -> None:
    with pytest.raises(ConfigError, match=r"^gates\.coverage: unknown gate"):
        default_config_yaml({"coverage": "x"})
    with pytest.raises(ConfigError, match=r"^gates\.lint\.command: unknown placeholder \{x\}"):
        default_config_yaml({"lint": "a {x}"})
    with pytest.raises(ConfigError, match=r"^gates\.lint\.command: empty command"):
        default_config_yaml({"lint": ""})


# -- to_dict --------------------------------------------------------------------------------------------------------


def test_to_dict_is_plain_data_in_the_files_order() -> None:
    c = parse_config(FULL, "c.yaml")
    d = c.to_dict()
    assert list(d) == list(SECTIONS)
    assert list(d["gates"]) == list(GATE_NAMES)
    assert d["recovery"] == {"max_retries": 5, "backoff": {"initial_s": 0.5, "factor": 3.0, "max_s": 30.0},
                             "max_alternatives": 1, "on_exhausted": "pause"}  # fmt: skip
    assert d["gates"]["lint"] == {"command": "ruff check .", "required": False, "timeout_s": 60.0}
    assert json.loads(json.dumps(d)) == d
    d["agent"]["kind"] = "codex"  # a copy: the config is unchanged
    assert c.agent is not None and c.agent["kind"] == "scripted"
    assert parse_config(dump(c)) == c


# -- properties -----------------------------------------------------------------------------------------------------

# ruamel's emitter mangles a plain scalar holding a control or line-separator character (NEL, LS): the test's
# dump helper gets text without them; default_config_yaml, which quotes for itself, gets any text
_PRINTABLE: list[Any] = ["Cc", "Cs", "Zl", "Zp"]
_words = st.text(st.characters(exclude_categories=_PRINTABLE), min_size=1, max_size=12).filter(
    lambda s: s.strip() != ""
)


def _command_strategy(excluded: list[Any]) -> st.SearchStrategy[str]:
    text = st.text(st.characters(exclude_characters="{}", exclude_categories=excluded), max_size=12)
    pieces = st.one_of(text, st.sampled_from(["{junit}", "{{", "}}", "${HOME}", " --junitxml={junit} "]))
    return st.lists(pieces, min_size=1, max_size=6).map("".join).filter(lambda s: s.strip() != "")


_commands = _command_strategy(_PRINTABLE)
_any_commands = _command_strategy(["Cs"])
_positive = st.one_of(st.integers(1, 10**6), st.floats(min_value=1e-9, max_value=1e9, allow_nan=False))


@st.composite
def _backoffs(draw: st.DrawFn) -> Backoff:
    initial = draw(_positive)
    return Backoff(initial, draw(st.floats(1, 100)), initial + draw(st.floats(0, 1e6)))


def _gate(name: str) -> st.SearchStrategy[GateConfig]:
    return st.builds(GateConfig, st.none() | _commands, st.booleans(), _positive)


_agents = st.none() | st.fixed_dictionaries(
    {"kind": st.sampled_from(["claude", "codex", "aider", "command", "scripted"])},
    optional={"model": _words, "extra_args": st.lists(_words, max_size=3), "env": st.dictionaries(_words, _words)},
)
_subagents = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "mapping": st.dictionaries(_words, _words, max_size=3),
        "triggers": st.dictionaries(_words, st.lists(_words, max_size=3), max_size=3),
    },
)
configs = st.builds(
    Config,
    agent=_agents,
    parallel=st.builds(Parallel, st.integers(1, 10**9)),
    recovery=st.builds(Recovery, st.integers(0, 10**9), _backoffs(), st.integers(0, 10**9)),
    limits=st.builds(LimitsConfig, st.integers(1, 10**9), st.none() | _positive, st.none() | _positive),
    gates=st.fixed_dictionaries({}, optional={name: _gate(name) for name in GATE_NAMES}),
    subagents=_subagents,
)


@given(configs)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_any_valid_config_dumps_and_reads_back_equal(config: Config) -> None:
    assert parse_config(dump(config), "c.yaml") == config


@given(st.fixed_dictionaries({}, optional={name: st.none() | _any_commands for name in GATE_NAMES}))
def test_the_default_text_reads_back_with_any_detected_commands(detected: Mapping[str, str | None]) -> None:
    config = parse_config(default_config_yaml(detected))
    assert {n: g.command for n, g in config.gates.items()} == {n: detected.get(n) for n in GATE_NAMES}
    assert attrs.evolve(config, gates={}) == Config()


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_any_text_is_a_config_or_one_line_error(text: str) -> None:
    try:
        parse_config(text, "c.yaml")
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert "\n" not in message and message.startswith("c.yaml")


_any_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_names = st.sampled_from([*SECTIONS, *GATE_NAMES, "max_workers", "max_retries", "backoff", "initial_s", "factor",
                          "max_s", "max_alternatives", "max_iterations", "max_minutes", "budget_usd", "command",
                          "required", "timeout_s", "kind", "mapping", "triggers", "x"])  # fmt: skip
_shaped = st.recursive(_any_value, lambda inner: st.dictionaries(_names, inner, max_size=4), max_leaves=20)


@given(st.dictionaries(_names, _shaped, max_size=6))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_yaml_shaped_like_a_config_is_a_config_or_one_line_error(doc: dict[str, Any]) -> None:
    y = YAML(typ="safe", pure=True)
    out = io.StringIO()
    y.dump(doc, out)
    try:
        parse_config(out.getvalue(), "c.yaml")
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert "\n" not in message and message.startswith("c.yaml:")


# -- timeouts: agent.timeout_s and acceptance.timeout_s ----------------------------------------------------------


def test_the_timeouts_default_to_1800_s() -> None:
    for c in (Config(), parse_config("agent: {kind: claude}\nacceptance: null\n"),
              parse_config("agent: {kind: claude, timeout_s: null}\nacceptance: {}\n")):  # fmt: skip
        assert (c.agent_timeout_s, c.acceptance_timeout_s) == (1800.0, 1800.0)
        assert c.acceptance == AcceptanceConfig()


def test_the_timeouts_are_read_from_the_file() -> None:
    c = parse_config("agent:\n  kind: command\n  command: my-agent\n  timeout_s: 600\nacceptance: {timeout_s: 2.5}\n")
    assert (c.agent_timeout_s, c.acceptance_timeout_s) == (600.0, 2.5)
    assert c.agent == {"kind": "command", "command": "my-agent", "timeout_s": 600}  # the section as written
    assert c.to_dict()["acceptance"] == {"timeout_s": 2.5}
    assert parse_config(dump(c)) == c


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agent: {kind: claude, timeout_s: 0}\n", "c.yaml:1: agent.timeout_s: must be greater than 0, not 0"),
        ("agent:\n  kind: codex\n  timeout_s: -3\n", "c.yaml:3: agent.timeout_s: must be greater than 0, not -3"),
        ("agent:\n  kind: codex\n  timeout_s: '60'\n",
         "c.yaml:3: agent.timeout_s: expected a number or null, not '60'"),
        ("agent: {kind: aider, timeout_s: true}\n", "c.yaml:1: agent.timeout_s: expected a number or null, not true"),
        ("agent: {kind: aider, timeout_s: .inf}\n",
         "c.yaml:1: agent.timeout_s: expected a finite number, not inf"),
        ("acceptance: {timeout_s: 0}\n", "c.yaml:1: acceptance.timeout_s: must be greater than 0, not 0"),
        ("acceptance:\n  timeout_s: null\n", "c.yaml:2: acceptance.timeout_s: expected a number, not null"),
        ("acceptance:\n  timeout: 5\n", "c.yaml:2: acceptance.timeout: unknown key (did you mean 'timeout_s'?)"),
        ("acceptance: 5\n", "c.yaml:1: acceptance: expected a mapping of timeout_s, not 5"),
        ("aceptance: {timeout_s: 5}\n", "c.yaml:1: aceptance: unknown key (did you mean 'acceptance'?)"),
    ],
)  # fmt: skip
def test_a_bad_timeout_is_one_line_with_its_line_and_key(text: str, message: str) -> None:
    assert str(error_of(text)) == message


def test_a_timeout_is_checked_when_the_config_is_built_or_overridden() -> None:
    with pytest.raises(ValueError, match=r"^agent\.timeout_s: must be greater than 0, not -1$"):
        Config(agent={"kind": "claude", "timeout_s": -1})
    with pytest.raises(ValueError, match="timeout_s: must be greater than 0"):
        AcceptanceConfig(0)
    with pytest.raises(ConfigError, match=r"^agent\.timeout_s: expected a number or null, not 'x'$"):
        Config().with_overrides(agent={"kind": "claude", "timeout_s": "x"})
    assert Config().with_overrides(agent={"kind": "claude", "timeout_s": 5}).agent_timeout_s == 5.0
    assert AcceptanceConfig(3).timeout_s == 3.0


def test_the_default_text_says_both_timeouts() -> None:
    text = default_config_yaml()
    assert "acceptance:\n  timeout_s: 1800\n" in text
    assert "# Every kind takes timeout_s" in text
    assert parse_config(text).acceptance == AcceptanceConfig()
