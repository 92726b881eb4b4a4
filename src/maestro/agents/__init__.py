"""Coding agents: one protocol, adapters for real CLIs, and deterministic agents for demos and tests.

See :mod:`maestro.agents.base` for the protocol and ``docs/agents.md`` for the
adapters' command lines, configuration and failure classes.
"""

from __future__ import annotations

from maestro.agents.base import (
    PLAN_SCHEMA,
    PLAN_TASK,
    Agent,
    AgentError,
    AgentRequest,
    Plan,
    PlanOutcome,
    PlanRequest,
    Skill,
    Subagent,
    plan_prompt,
    task_prompt,
    transcript_paths,
    validate_plan,
)

__all__ = [
    "PLAN_SCHEMA",
    "PLAN_TASK",
    "Agent",
    "AgentError",
    "AgentRequest",
    "Plan",
    "PlanOutcome",
    "PlanRequest",
    "Skill",
    "Subagent",
    "plan_prompt",
    "task_prompt",
    "transcript_paths",
    "validate_plan",
    # adapters and deterministic agents: import them from their modules
    # (maestro.agents.claude.ClaudeAgent, .codex.CodexAgent, .aider.AiderAgent, .command.CommandAgent,
    #  .scripted.ScriptedAgent, .replay.ReplayAgent, .registry.discover)
]
