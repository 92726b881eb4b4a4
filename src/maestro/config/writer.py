"""Writing ``config.yaml``: the file ``maestro init`` writes, every key with its default and a comment."""

from __future__ import annotations

from collections.abc import Mapping

from maestro.config.model import DEFAULT_TIMEOUT_S, GATE_NAMES, GateConfig, _checked, _default_gate, _num
from maestro.core.errors import ConfigError

__all__ = ["default_config_yaml"]


def _quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that reads back as the same string."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_HEADER = """\
# maestro's configuration (.flow/maestro/config.yaml).  Every key is optional: a key left out
# takes the default written here.  docs/config.md describes each one.

# The coding agent that works on the tasks; kind is one of claude, codex, aider, command, scripted.
# null: none set here (`maestro run --agent KIND` names one).  For example:
#   agent: {kind: claude, permission_mode: acceptEdits, model: sonnet}
#   agent: {kind: codex, sandbox: workspace-write}
#   agent: {kind: aider, model: sonnet}
#   agent: {kind: command, command: "my-agent --task {task_id} --prompt {prompt_file}"}
#   agent: {kind: scripted, script: path/to/script.yaml}   # a relative path is taken from this folder
# Every kind takes timeout_s: seconds an attempt may run before it is stopped (and retried as a
# transient failure); 1800 when left out.  For example: agent: {kind: claude, timeout_s: 3600}
agent: null

# How many tasks of one parallel group run at the same time.
parallel:
  max_workers: 4

# Where the task attempts run: local (threads of this process), or dask://HOST:PORT, the workers of a
# Dask scheduler (dask+tls://HOST:PORT over TLS; docs/distributed.md).  `maestro run --executor` overrides it.
executor: local

# What maestro does when a task fails.
recovery:
  max_retries: 3        # retries of a transient failure (rate limit, network), each after a backoff delay
  backoff:              # the delay before retry n: min(initial_s * factor ** (n - 1), max_s) seconds
    initial_s: 1.0
    factor: 2.0
    max_s: 60.0
  max_alternatives: 2   # new attempts, given the failure as feedback, after an implementation or test failure
  on_exhausted: pause   # every rung used: pause for a human, or give_up (the session ends failed: unattended runs)

# What a session may spend before it stops.
limits:
  max_iterations: 3     # implement-validate-review rounds; the last one hands off or fails
  max_minutes: 120      # wall-clock minutes for the session; null for no limit
  budget_usd: null      # what the agents may cost, in US dollars; null for no limit

# Planning by an agent (no --tasks): approve_commands pauses once it planned, until you approve
# the commands its plan runs (each task's acceptance commands: an agent wrote them, not you).
planning:
  approve_commands: false

# The validation gates, run after implementation.  command: the shell command; null lets maestro
# decide it from the repository (no evidence: the gate is skipped, and says why).  {junit} is
# replaced by the path where the command writes a JUnit XML report.  required: the gate must pass
# before the work is handed off.  timeout_s: seconds before the command is stopped (and fails).
gates:
"""

_FOOTER = (
    """
# The tasks' acceptance commands (in tasks.yaml), run after each attempt.  timeout_s: seconds
# before a command is stopped (and the attempt fails).
acceptance:
"""
    + f"  timeout_s: {_num(DEFAULT_TIMEOUT_S)}\n"
    + """
# Which subagent works on a task of each category (docs/subagents.md); left out, maestro's own table.
#   subagents:
#     mapping:  {frontend: my-frontend-dev, api: general-purpose}
#     triggers: {my-frontend-dev: [storybook, figma]}
"""
)


def default_config_yaml(detected_gates: Mapping[str, str | None] | None = None) -> str:
    """The ``config.yaml`` that ``maestro init`` writes: every key with its default and a comment.

    ``detected_gates`` maps gate names to the commands the gate decisions found
    (None: nothing found); a gate not in it is written with ``command: null``.
    The text reads back (:func:`load_config`) as ``Config(gates=...)`` with those
    commands.
    """
    detected = dict(detected_gates or {})
    unknown = sorted(map(str, set(detected) - set(GATE_NAMES)))
    if unknown:
        raise ConfigError(f"unknown gate (gates: {', '.join(GATE_NAMES)})", key=f"gates.{unknown[0]}")
    width = max(map(len, GATE_NAMES)) + 1
    lines = []
    for name in GATE_NAMES:
        command = _checked(GateConfig, "command", detected.get(name), f"gates.{name}.command")
        gate = _default_gate(name)
        shown = "null" if command is None else _quoted(command)
        lines.append(f"  {name + ':':<{width}} {{command: {shown}, required: {'true' if gate.required else 'false'}, "
                     f"timeout_s: {_num(gate.timeout_s)}}}")  # fmt: skip
    return _HEADER + "\n".join(lines) + "\n" + _FOOTER
