"""OpenAI Codex, non-interactive: ``codex exec --json --sandbox workspace-write <prompt>``.

stdout is JSONL of ``ThreadEvent`` lines (protocols.md §4): ``thread.started``
(the thread id), ``turn.started``, ``item.started/updated/completed`` (agent
messages, commands, file changes …), ``turn.completed`` (token usage),
``turn.failed`` and ``error``.  Codex reports no cost, only tokens.

Codex reads stdin when it is not a terminal, and offline it retries and then
waits for the network forever: the adapter gives it an empty stdin and kills
its process group at the timeout (``transient``).  A prompt over 64 KiB is
given on stdin instead, with ``-`` for the prompt argument (Linux refuses an
argument over 128 KiB).

Failure classes: exit 0 with a completed turn → succeeded, unless a command was
``declined`` by the sandbox or approval policy (``critical``: the configuration
refuses what the task needs); ``turn.failed``/``error`` → by the message:
authentication → ``critical``, rate limits and the network → ``transient``,
otherwise ``implementation``; a non-zero exit after ``error`` events (an
``error`` after ``turn.completed``) → by the last error's message, as above;
no turn at all with a non-zero exit → ``transient`` (``critical`` for an
argument error, exit 2); a timeout → ``transient``; no budget left →
``critical``, without running the CLI (codex has no budget option).

Planning passes ``--output-schema <file>`` (PLAN_SCHEMA) and reads the last
agent message (also written with ``--output-last-message``) as the JSON answer.
"""

from __future__ import annotations

import json
import tempfile
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from maestro.agents._common import Attempt, classify_text, is_long, request_env, run_attempt, tail
from maestro.agents.base import (
    PLAN_SCHEMA,
    PLAN_TASK,
    AgentRequest,
    PlanOutcome,
    PlanRequest,
    plan_outcome,
    plan_prompt,
    task_prompt,
)
from maestro.agents.process import ProcessOutcome
from maestro.core.records import AgentResult

__all__ = ["CodexAgent", "EventParser", "EventSummary", "parse_events"]

INSTALL = "install Codex (npm install -g @openai/codex) or set agent.executable in config.yaml"
SANDBOXES = ("read-only", "workspace-write", "danger-full-access")


@attrs.frozen
class EventSummary:
    """What a ``codex exec --json`` stream said."""

    thread_id: str | None = None
    completed: bool = False
    failed: str | None = None
    errors: tuple[str, ...] = ()
    message: str = ""
    declined: tuple[str, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int = 0
    skipped: int = 0
    declined_count: int = 0


KEEP = 100
"""The errors (the last ones) and declined commands (the first ones) a summary keeps; ``declined`` counts them all."""


class EventParser:
    """Reads ``codex exec --json`` stdout a line at a time (``feed`` is ``run_process``'s ``on_line``), in bounded
    memory: lines that are not JSON objects and unknown types are skipped."""

    def __init__(self) -> None:
        self.thread_id: str | None = None
        self.completed = False
        self.failed: str | None = None
        self.errors: deque[str] = deque(maxlen=KEEP)
        self.message = ""
        self.declined: list[str] = []
        self.declined_count = 0
        self.tokens_in = self.tokens_out = 0
        self.usage_seen = False
        self.turns = 0
        self.skipped = 0

    def feed(self, raw: str) -> None:
        line = raw.strip()
        if not line:
            return
        try:
            ev = json.loads(line) if line.startswith("{") else None
        except (ValueError, RecursionError):
            ev = None
        if not isinstance(ev, dict):
            self.skipped += 1
            return
        kind = ev.get("type")
        if kind == "thread.started" and isinstance(ev.get("thread_id"), str):
            self.thread_id = ev["thread_id"]
        elif kind == "turn.completed":
            self.completed = True
            self.turns += 1
            usage = ev.get("usage")
            if isinstance(usage, dict):
                self.usage_seen = True
                self.tokens_in += _count(usage.get("input_tokens"))
                self.tokens_out += _count(usage.get("output_tokens"))
        elif kind == "turn.failed":
            self.turns += 1
            err = ev.get("error")
            self.failed = str(err.get("message")) if isinstance(err, dict) else "turn failed"
        elif kind == "error":
            self.errors.append(str(ev.get("message", "")))
        elif kind == "item.completed" and isinstance(ev.get("item"), dict):
            item = ev["item"]
            itype = item.get("type")
            if itype == "agent_message" and isinstance(item.get("text"), str):
                self.message = item["text"]
            elif itype == "command_execution" and item.get("status") == "declined":
                self.declined_count += 1
                if len(self.declined) < KEEP:
                    self.declined.append(str(item.get("command", "")))
            elif itype == "error" and isinstance(item.get("message"), str):
                self.errors.append(item["message"])
        # item.started/updated, turn.started, item.plan.delta, request_user_input, unknown: skipped

    def summary(self) -> EventSummary:
        return EventSummary(
            self.thread_id, self.completed, self.failed, tuple(self.errors), self.message, tuple(self.declined),
            self.tokens_in if self.usage_seen else None, self.tokens_out if self.usage_seen else None, self.turns,
            self.skipped, self.declined_count,
        )  # fmt: skip


def parse_events(stdout: str) -> EventSummary:
    """Read ``codex exec --json`` stdout; lines that are not JSON objects and unknown types are skipped."""
    parser = EventParser()
    for raw in stdout.splitlines():
        parser.feed(raw)
    return parser.summary()


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@attrs.frozen
class CodexAgent:
    """The Codex adapter.  Fields are the ``agent:`` settings of ``config.yaml``."""

    executable: str = "codex"
    sandbox: str = attrs.field(default="workspace-write", validator=attrs.validators.in_(SANDBOXES))
    model: str | None = None
    skip_git_repo_check: bool = True
    extra_args: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    env: Mapping[str, str] = attrs.field(factory=dict)
    name: str = "codex"

    def command(self, prompt: str, *, schema_file: Path | None = None, last_message: Path | None = None) -> list[str]:
        """The exact command line (the prompt is the last argument and stdin stays empty; a long prompt is
        ``-``, and goes on stdin)."""
        argv = [self.executable, "exec", "--json", "--sandbox", self.sandbox, "--color", "never"]
        if self.skip_git_repo_check:
            argv.append("--skip-git-repo-check")
        if self.model:
            argv += ["-m", self.model]
        if schema_file is not None:
            argv += ["--output-schema", str(schema_file)]
        if last_message is not None:
            argv += ["--output-last-message", str(last_message)]
        # maestro's prompts start with a word, never with "-"
        return [*argv, *self.extra_args, "-" if is_long(prompt) else prompt]

    @staticmethod
    def stdin_text(prompt: str) -> str | None:
        """What codex gets on stdin: the prompt when it is too long for an argument, else nothing (empty)."""
        return prompt if is_long(prompt) else None

    def run(self, request: AgentRequest) -> AgentResult:
        """One attempt at one task."""
        attempt = Attempt(self.name, request.task.id, request.attempt, request.session_dir)
        refused = attempt.budget_failure(request.budget_usd)
        if refused is not None:
            return refused
        prompt = task_prompt(request)
        if request.subagent is not None and request.subagent.prompt:
            prompt += f"\nAct as {request.subagent.name}:\n{request.subagent.prompt.strip()}\n"
        events = EventParser()  # the output is read as it comes: the outcome keeps only its ends
        outcome = run_attempt(attempt, self.command(prompt), cwd=request.workdir, timeout_s=request.timeout_s,
                              env=request_env(self.env, request.env), stdin_text=self.stdin_text(prompt),
                              on_line=events.feed)  # fmt: skip
        return self._judge(attempt, outcome, events.summary())

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """Ask for the plan as JSON matching PLAN_SCHEMA (``--output-schema``); validate it."""
        attempt = Attempt(self.name, PLAN_TASK, 1, request.session_dir)
        refused = attempt.budget_failure(request.budget_usd)
        if refused is not None:
            return PlanOutcome(refused)
        with tempfile.TemporaryDirectory(prefix="maestro-codex-") as tmp:
            schema = Path(tmp) / "plan-schema.json"
            schema.write_text(json.dumps(PLAN_SCHEMA), encoding="utf-8")
            last = Path(tmp) / "last-message.json"
            prompt = plan_prompt(request)
            argv = self.command(prompt, schema_file=schema, last_message=last)
            events = EventParser()
            outcome = run_attempt(attempt, argv, cwd=request.workdir, timeout_s=request.timeout_s, env=self.env,
                                  stdin_text=self.stdin_text(prompt), on_line=events.feed)  # fmt: skip
            summary = events.summary()
            answer = last.read_text(encoding="utf-8") if last.is_file() else summary.message
        result = self._judge(attempt, outcome, summary)
        if result.status != "succeeded":
            return PlanOutcome(result)
        return plan_outcome(result, answer or None, "codex's plan")

    def _judge(self, attempt: Attempt, outcome: ProcessOutcome, ev: EventSummary) -> AgentResult:
        reported: dict[str, Any] = {"agent_session": ev.thread_id, "turns": ev.turns or None}
        if ev.input_tokens is not None:
            reported.update(input_tokens=ev.input_tokens, output_tokens=ev.output_tokens)
        early = attempt.common_failure(outcome, INSTALL)
        if early is not None:
            if outcome.timed_out and ev.errors:  # offline: "Reconnecting... n/5", then waiting forever
                early = attrs.evolve(early, summary=f"{early.summary}; codex reported: {tail(ev.errors[-1], 200)}")
            return attrs.evolve(early, **{k: v for k, v in reported.items() if v is not None})
        if ev.failed is not None or (not ev.completed and ev.errors):
            why = ev.failed or ev.errors[-1]
            cls = classify_text(why) or ("transient" if ev.errors and not ev.failed else "implementation")
            return attempt.result(outcome, "failed", cls, f"codex: {tail(why, 400)}", **reported)
        if outcome.exit_code != 0 and ev.errors:  # e.g. an error after turn.completed: the error says why
            why = ev.errors[-1]
            cls = classify_text(why) or "transient"
            return attempt.result(outcome, "failed", cls, f"codex exited {outcome.exit_code}: {tail(why, 400)}",
                                  **reported)  # fmt: skip
        if outcome.exit_code != 0 or not ev.completed:
            why = tail(outcome.stderr, 400) or f"exit code {outcome.exit_code}"
            cls = "critical" if outcome.exit_code == 2 else (classify_text(outcome.stderr) or "transient")
            return attempt.result(outcome, "failed", cls, f"codex stopped without finishing its turn: {why}",
                                  **reported)  # fmt: skip
        if ev.declined:
            first = tail(ev.declined[0], 120)
            why = f"codex's sandbox refused {ev.declined_count} command(s) ({first}): allow them with agent.sandbox"
            return attempt.result(outcome, "failed", "critical", f"{why} in config.yaml", **reported)
        return attempt.result(outcome, "succeeded", None, tail(ev.message) or "done", **reported)
