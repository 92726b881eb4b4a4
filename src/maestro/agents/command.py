"""Any command as an agent: a shell command template run once per task attempt.

The template's placeholders are filled in and shell-quoted:

``{task_id}``      the task's id
``{prompt_file}``  a file holding the prompt (its first line is ``Task <id>: <title>``)
``{workdir}``      the repository (also the command's working directory)
``{attempt}``      the attempt number, from 1
``{title}``        the task's title

For example ``my-agent --task {task_id} --prompt {prompt_file}``.  The command
runs with ``sh -c`` in the working directory, in its own process group, killed
at the timeout.  Exit 0 is success, any other exit a failure of class
``implementation`` (``critical`` for 126 and 127: the shell could not run it);
a timeout is ``transient``.  The environment is maestro's with the agent's
``env`` and the request's ``env`` laid over it, and also carries ``MAESTRO_TASK_ID``,
``MAESTRO_ATTEMPT`` and ``MAESTRO_PROMPT_FILE``.  A template with an unknown
placeholder, a conversion (``{task_id!r}``) or a format spec (``{attempt:d}``)
is refused when the agent is made (:class:`~maestro.agents.AgentError`): the
values are shell-quoted strings, nothing else.  With no budget left the command
is not run (``critical``).
"""

from __future__ import annotations

import shlex
import string
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from maestro.agents._common import Attempt, request_env, run_attempt, tail
from maestro.agents.base import PLAN_TASK, AgentError, AgentRequest, PlanOutcome, PlanRequest, task_prompt
from maestro.agents.process import ProcessOutcome
from maestro.core.records import AgentResult

__all__ = ["PLACEHOLDERS", "CommandAgent"]

PLACEHOLDERS = ("task_id", "prompt_file", "workdir", "attempt", "title")


def _check_template(_inst: object, _attr: object, template: str) -> None:
    if not isinstance(template, str) or not template.strip():
        raise AgentError("agent.command: a shell command template is needed, e.g. 'my-agent {prompt_file}'")
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise AgentError(f"agent.command: {exc} in {template!r} (write {{{{ and }}}} for literal braces)") from None
    for f, spec, conv in fields:
        if f not in PLACEHOLDERS:
            raise AgentError(f"agent.command: unknown placeholder {{{f}}} in {template!r}; the placeholders are "
                             + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))  # fmt: skip
        if conv is not None or spec:
            written = f"{{{f}{'!' + conv if conv is not None else ''}{':' + spec if spec else ''}}}"
            raise AgentError(f"agent.command: {written} in {template!r}: a placeholder takes no conversion or "
                             f"format spec (write {{{f}}}; the value is filled in shell-quoted)")  # fmt: skip


@attrs.frozen
class CommandAgent:
    """A shell command template per task attempt (see the module for the placeholders)."""

    template: str = attrs.field(validator=_check_template)
    env: Mapping[str, str] = attrs.field(factory=dict)
    name: str = "command"

    def command(self, request: AgentRequest, prompt_file: Path) -> list[str]:
        """``sh -c <the filled-in template>``."""
        values = {
            "task_id": request.task.id,
            "prompt_file": str(prompt_file),
            "workdir": str(request.workdir),
            "attempt": str(request.attempt),
            "title": request.task.title,
        }
        # no argument can hold a NUL character: a title with one gets it written \0
        quoted = {k: shlex.quote(v.replace("\0", "\\0")) for k, v in values.items()}
        return ["sh", "-c", self.template.format(**quoted)]

    def run(self, request: AgentRequest) -> AgentResult:
        """Write the prompt to a file, run the command, judge by its exit code."""
        attempt = Attempt(self.name, request.task.id, request.attempt, request.session_dir)
        refused = attempt.budget_failure(request.budget_usd)
        if refused is not None:
            return refused
        with tempfile.TemporaryDirectory(prefix="maestro-prompt-") as tmp:
            if attempt.paths is not None:
                prompt_file = attempt.paths[0].with_suffix(".prompt.md")
                prompt_file.parent.mkdir(parents=True, exist_ok=True)
            else:
                prompt_file = Path(tmp) / f"{request.task.id}.prompt.md"
            prompt_file.write_text(task_prompt(request), encoding="utf-8")
            env = {**request_env(self.env, request.env), "MAESTRO_TASK_ID": request.task.id,
                   "MAESTRO_ATTEMPT": str(request.attempt), "MAESTRO_PROMPT_FILE": str(prompt_file)}  # fmt: skip
            outcome = run_attempt(attempt, self.command(request, prompt_file), cwd=request.workdir,
                                  timeout_s=request.timeout_s, env=env)  # fmt: skip
        return self._judge(attempt, outcome)

    def _judge(self, attempt: Attempt, outcome: ProcessOutcome) -> AgentResult:
        early = attempt.common_failure(outcome, "the command's shell (sh) is not on PATH")
        if early is not None:
            return early
        last = tail(outcome.stdout.strip() or outcome.stderr.strip(), 400)
        if outcome.exit_code == 0:
            return attempt.result(outcome, "succeeded", None, last or "done")
        cls = "critical" if outcome.exit_code in (126, 127) else "implementation"
        why = tail(outcome.stderr.strip() or outcome.stdout.strip(), 400) or "no output"
        return attempt.result(outcome, "failed", cls, f"the command exited {outcome.exit_code}: {why}")

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """A command cannot plan: give maestro a PRD and tasks."""
        attempt = Attempt(self.name, PLAN_TASK, 1, request.session_dir)
        nothing = ProcessOutcome(None, "", "", 0.0)
        return PlanOutcome(attempt.result(nothing, "failed", "ambiguous",
                                          "a command agent cannot write a plan: give maestro a PRD and tasks "
                                          "(maestro run --prd FILE --tasks FILE)"))  # fmt: skip
