"""Agents from the ``agent:`` section of config.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.agents import Agent, AgentError
from maestro.agents.aider import AiderAgent
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.agents.command import CommandAgent
from maestro.agents.factory import agent_from_config
from maestro.agents.scripted import ScriptedAgent


def test_each_kind_with_its_settings(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("version: 1\ntasks:\n  T1:\n    - summary: ok\n")
    made = [
        agent_from_config({"kind": "claude", "model": "sonnet", "allowed_tools": ["Read"], "max_turns": 4},
                          base_dir=tmp_path),
        agent_from_config({"kind": "codex", "sandbox": "read-only"}, base_dir=tmp_path),
        agent_from_config({"kind": "aider", "model": "gpt-4o", "env": {"A": "b"}}, base_dir=tmp_path),
        agent_from_config({"kind": "command", "command": "run {task_id}"}, base_dir=tmp_path),
        agent_from_config({"kind": "scripted", "script": "s.yaml"}, base_dir=tmp_path),
    ]  # fmt: skip
    assert [type(a) for a in made] == [ClaudeAgent, CodexAgent, AiderAgent, CommandAgent, ScriptedAgent]
    assert all(isinstance(a, Agent) for a in made)
    claude, codex, aider, command, _ = made
    assert isinstance(claude, ClaudeAgent) and (claude.model, claude.allowed_tools, claude.max_turns) == (
        "sonnet", ("Read",), 4)  # fmt: skip
    assert isinstance(codex, CodexAgent) and codex.sandbox == "read-only"
    assert isinstance(aider, AiderAgent) and aider.env == {"A": "b"}
    assert isinstance(command, CommandAgent) and command.template == "run {task_id}"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (None, "config.yaml: agent: missing"),
        ("claude", "config.yaml: agent: expected a mapping"),
        ({"kind": "gpt"}, "config.yaml: agent.kind: 'gpt' is not one of claude, codex, aider, command, scripted"),
        ({"kind": "claude", "modle": "x"}, "config.yaml: agent.modle: not a setting of a claude agent"),
        ({"kind": "claude", "max_turns": "5"}, "config.yaml: agent.max_turns: expected a int, not '5'"),
        ({"kind": "claude", "max_turns": True}, "config.yaml: agent.max_turns: expected a int, not True"),
        ({"kind": "claude", "allowed_tools": ["Read", 3]}, "agent.allowed_tools: expected a list of strings"),
        ({"kind": "claude", "max_turns": 0}, "config.yaml: agent.max_turns: expected a whole number of at least 1"),
        ({"kind": "claude", "max_turns": -3}, "config.yaml: agent.max_turns: expected a whole number of at least 1"),
        ({"kind": "claude", "executable": ""}, "config.yaml: agent.executable: must not be empty"),
        ({"kind": "aider", "executable": "  "}, "config.yaml: agent.executable: must not be empty"),
        ({"kind": "aider", "model": ""}, "config.yaml: agent.model: must not be empty"),
        (
            {"kind": "claude", "allowed_tools": ["Read", ""]},
            "config.yaml: agent.allowed_tools: a tool name must not be",
        ),
        ({"kind": "command", "command": "x {task_id!r}"}, "agent.command: {task_id!r} in 'x {task_id!r}'"),
        (
            {"kind": "command", "command": "x {attempt:d}"},
            "agent.command: {attempt:d} in 'x {attempt:d}': a placeholder",
        ),
        ({"kind": "claude", "permission_mode": "yolo"}, "config.yaml: agent: 'permission_mode' must be in"),
        ({"kind": "codex", "env": {"A": 1}}, "agent.env: expected strings mapped to strings"),
        ({"kind": "command"}, "config.yaml: agent.command: a command agent needs its shell command template"),
        ({"kind": "command", "command": "x {oops}"}, "config.yaml: agent.command: unknown placeholder {oops}"),
        ({"kind": "scripted"}, "config.yaml: agent.script: a scripted agent needs the path of its script"),
        ({"kind": "scripted", "script": "nope.yaml"}, "nope.yaml: no such file"),
    ],
)
def test_a_bad_section_is_one_line_naming_the_key(tmp_path: Path, section: object, message: str) -> None:
    with pytest.raises(AgentError) as info:
        agent_from_config(section, base_dir=tmp_path)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_script_whose_name_starts_with_agent_is_named_by_its_own_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative script path, as a config beside it gives one
    (tmp_path / "agent.yaml").write_text("version: 1\ntasks:\n  a: 3\n", encoding="utf-8")
    with pytest.raises(AgentError) as exc:
        agent_from_config({"kind": "scripted", "script": "agent.yaml"}, base_dir=Path("."))
    assert str(exc.value) == "agent.yaml:3: tasks.a: expected a list of attempts, not 3"  # not "config.yaml: ..."
