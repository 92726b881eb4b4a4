"""An agent from the ``agent:`` section of ``config.yaml``.

::

    agent: {kind: claude, permission_mode: acceptEdits, allowed_tools: [Read, Edit, Write, Bash], model: sonnet}
    agent: {kind: codex, sandbox: workspace-write}
    agent: {kind: aider, model: sonnet}
    agent: {kind: command, command: "my-agent --task {task_id} --prompt {prompt_file}"}
    agent: {kind: scripted, script: path/to/script.yaml}   # relative to the config file

Every kind takes ``executable`` (not ``command`` or ``scripted``), ``extra_args``
and ``env`` where it runs a CLI, and every kind takes ``timeout_s``: the seconds an
attempt may run before it is stopped (the runner's, not the agent's: it is checked
here and read by :attr:`maestro.config.Config.agent_timeout_s`).  An unknown kind or
key, a value of the wrong type, an empty ``executable`` or ``model``, an empty entry
of ``allowed_tools``, a ``max_turns`` under 1 or a ``timeout_s`` that is not a number
greater than 0 is an :class:`~maestro.agents.AgentError` naming ``agent.<key>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from maestro.agents.aider import AiderAgent
from maestro.agents.base import Agent, AgentError
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.agents.command import CommandAgent
from maestro.agents.scripted import ScriptedAgent
from maestro.core.errors import ScriptError, error_text

__all__ = ["AGENT_KINDS", "agent_from_config"]

AGENT_KINDS = ("claude", "codex", "aider", "command", "scripted")

_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "claude": {"executable": str, "permission_mode": str, "allowed_tools": list, "model": str, "max_turns": int,
               "extra_args": list, "env": dict, "subagent_via": str},
    "codex": {"executable": str, "sandbox": str, "model": str, "skip_git_repo_check": bool, "extra_args": list,
              "env": dict},
    "aider": {"executable": str, "model": str, "extra_args": list, "env": dict},
    "command": {"command": str, "env": dict},
    "scripted": {"script": str},
}  # fmt: skip
_RUNNER_KEYS: dict[str, type | tuple[type, ...]] = {"timeout_s": (int, float)}
"""Settings of every kind that are the runner's, not the agent's: checked here, not passed to the agent."""


def agent_from_config(section: Mapping[str, Any] | None, *, base_dir: Path, where: str = "config.yaml") -> Agent:
    """The agent ``section`` describes; relative paths (a script) are taken from ``base_dir``."""
    if section is None:
        raise AgentError(f"{where}: agent: missing (kind: one of {', '.join(AGENT_KINDS)})")
    if not isinstance(section, Mapping):
        raise AgentError(f"{where}: agent: expected a mapping with a kind, not {section!r}")
    kind = section.get("kind")
    if kind not in _KEYS:
        raise AgentError(f"{where}: agent.kind: {kind!r} is not one of {', '.join(AGENT_KINDS)}")
    allowed = {**_KEYS[kind], **_RUNNER_KEYS}
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise AgentError(f"{where}: agent.{key}: not a setting of a {kind} agent "
                             f"(settings: {', '.join(sorted(allowed))})")  # fmt: skip
        if value is None:
            continue
        want = allowed[key]
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            name = want.__name__ if isinstance(want, type) else "/".join(t.__name__ for t in want)
            raise AgentError(f"{where}: agent.{key}: expected a {name}, not {value!r}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise AgentError(f"{where}: agent.{key}: expected a list of strings, not {value!r}")
        if isinstance(value, dict) and not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise AgentError(f"{where}: agent.{key}: expected strings mapped to strings")
        problem = _bad_value(key, value)
        if problem is not None:
            raise AgentError(f"{where}: agent.{key}: {problem}")
        if key not in _RUNNER_KEYS:
            values[key] = tuple(value) if isinstance(value, list) else value
    try:
        return _MAKERS[kind](values, base_dir)
    except ScriptError:
        raise  # it names its script file (whose name may start with "agent.")
    except AgentError as exc:
        if str(exc).startswith("agent."):  # name the file; a script's own errors already name theirs
            raise AgentError(f"{where}: {exc}") from exc
        raise
    except (TypeError, ValueError) as exc:  # an attrs validator: a permission mode, a sandbox …
        raise AgentError(f"{where}: agent: {error_text(exc)}") from exc


def _bad_value(key: str, value: Any) -> str | None:
    """What is wrong with a value of the right type (an empty executable, max_turns 0 …), or None."""
    if key in ("executable", "model") and not value.strip():
        return f"must not be empty (leave {key} out for the default)"
    if key == "max_turns" and value < 1:
        return f"expected a whole number of at least 1, not {value!r}"
    if key == "timeout_s" and not 0 < value < math.inf:  # NaN too
        return f"expected a number of seconds greater than 0, not {value!r}"
    if key == "allowed_tools" and not all(v.strip() for v in value):
        return f"a tool name must not be empty, not {value!r}"
    return None


def _claude(values: dict[str, Any], _base: Path) -> Agent:
    return ClaudeAgent(**values)


def _codex(values: dict[str, Any], _base: Path) -> Agent:
    return CodexAgent(**values)


def _aider(values: dict[str, Any], _base: Path) -> Agent:
    return AiderAgent(**values)


def _command(values: dict[str, Any], _base: Path) -> Agent:
    if "command" not in values:
        raise AgentError("agent.command: a command agent needs its shell command template")
    return CommandAgent(values["command"], env=values.get("env", {}))


def _scripted(values: dict[str, Any], base: Path) -> Agent:
    if "script" not in values:
        raise AgentError("agent.script: a scripted agent needs the path of its script")
    return ScriptedAgent.load(base / values["script"])


_MAKERS: dict[str, Callable[[dict[str, Any], Path], Agent]] = {
    "claude": _claude,
    "codex": _codex,
    "aider": _aider,
    "command": _command,
    "scripted": _scripted,
}
