"""Claude Code, headless: ``claude -p <prompt> --output-format stream-json --verbose``.

A prompt over 64 KiB (a long failure output) is given on stdin instead, ``-p``
without a prompt argument: Linux refuses an argument over 128 KiB.

The stream is NDJSON (protocols.md §1.4): ``system/init`` (the session id,
early), ``assistant`` and ``user`` lines, other ``system`` subtypes and
``rate_limit_event`` lines, and last a ``result`` line.  The outcome is read
from the last ``result`` line — ``is_error`` first, then ``subtype``, the exit
code only as a check (the CLI exits 1 on an error *after* printing the result).
Blank lines, lines that are not JSON objects (``[SandboxDebug] …``) and unknown
types are skipped.

Failure classes:

===============================================  ==============
``is_error`` false, no permission denials        succeeded
``is_error`` false, permission denials            critical (the configuration refuses a tool the task needs)
``error_max_turns``                               implementation
``error_max_structured_output_retries``           implementation
``error_max_budget_usd``                          critical
``success``/``error_during_execution`` + is_error  by the API error: authentication or billing → critical;
                                                  rate limit, overloaded, 5xx, network → transient
no ``result`` line (a crash)                      transient, with stderr's tail
no ``result`` line, the command line refused      critical (``error: unknown option …``, ``error: option … is
                                                  invalid``, ``requires --verbose``, root and
                                                  ``--dangerously-skip-permissions``, an ``Error:`` line and
                                                  no JSON on stdout): a configuration problem
timeout (killed with its process group)           transient — unless a ``result`` line came first: then
                                                  that result decides (§9.4), and the summary says the CLI
                                                  was stopped after it; or unless it was retrying a failed
                                                  API call (``system/api_retry``): an authentication
                                                  (401/403) or billing failure is critical (the real CLI
                                                  retries a 401 for minutes before it gives up)
executable missing                                critical
could not be started (no working directory …)     critical
no budget left (≤ $0.0001, or not a number)       critical, without running the CLI
===============================================  ==============

A result with ``is_error`` false counts even when the exit code is not 0 (a
warning is logged).

Planning runs ``--output-format json --json-schema <PLAN_SCHEMA>`` and reads
the result's ``structured_output`` (the single-object form, or the last result
of the array form that ``--verbose`` settings produce).
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs

from maestro.agents._common import Attempt, budget_refusal, classify_text, is_long, request_env, run_attempt, tail
from maestro.agents.base import (
    PLAN_SCHEMA,
    PLAN_TASK,
    AgentRequest,
    PlanOutcome,
    PlanRequest,
    Subagent,
    plan_outcome,
    plan_prompt,
    task_prompt,
)
from maestro.agents.process import ProcessOutcome
from maestro.core.records import AgentResult

__all__ = ["ClaudeAgent", "StreamParser", "StreamSummary", "parse_stream"]

log = logging.getLogger(__name__)

INSTALL = "install Claude Code (npm install -g @anthropic-ai/claude-code) or set agent.executable in config.yaml"
LOGIN_FIX = "claude is not logged in: run `claude` and `/login`, then resume the session"
PERMISSION_MODES = ("default", "manual", "acceptEdits", "plan", "auto", "dontAsk", "bypassPermissions")


@attrs.frozen
class StreamSummary:
    """What a Claude Code stream said: the last result, the session id, the API errors, and what was skipped."""

    result: Mapping[str, Any] | None = None
    session_id: str | None = None
    api_errors: tuple[str, ...] = ()
    assistant_text: str = ""
    skipped: int = 0
    retry: Mapping[str, Any] | None = None
    """The last ``system/api_retry`` line: the CLI retrying a failed API call (``error_status``, ``error``,
    ``attempt``, ``max_retries``)."""


KEEP_ERRORS = 100
"""The API errors of a stream a summary keeps (the last ones)."""
KEEP_TEXT = 64 * 1024
"""The characters of assistant text a summary keeps (the last ones)."""


class StreamParser:
    """Reads Claude Code's stdout a line at a time (``feed`` is ``run_process``'s ``on_line``), in bounded memory.

    It keeps the last result, the session id, the last :data:`KEEP_ERRORS` API errors and
    the last :data:`KEEP_TEXT` characters of assistant text, so that an output of any size
    is judged as a whole without being held.
    """

    def __init__(self) -> None:
        self.result: Mapping[str, Any] | None = None
        self.session_id: str | None = None
        self.errors: deque[str] = deque(maxlen=KEEP_ERRORS)
        self.texts: deque[str] = deque()
        self.text_len = 0
        self.skipped = 0
        self.retry: Mapping[str, Any] | None = None

    def feed(self, raw: str) -> None:
        line = raw.strip()
        if not line:
            return
        if not line.startswith(("{", "[")):
            self.skipped += 1
            return
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            self.skipped += 1
            return
        for msg in data if isinstance(data, list) else [data]:
            if not isinstance(msg, dict):
                self.skipped += 1
                continue
            kind = msg.get("type")
            if kind == "system" and msg.get("subtype") == "init" and isinstance(msg.get("session_id"), str):
                self.session_id = msg["session_id"]
            elif kind == "system" and msg.get("subtype") == "api_retry":
                self.retry = msg
            elif kind == "assistant":
                if isinstance(msg.get("error"), str):
                    self.errors.append(msg["error"])
                message = msg.get("message")
                content = message.get("content") if isinstance(message, dict) else None
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                        self._text(block["text"])
            elif kind == "result":
                self.result = msg
                if isinstance(msg.get("session_id"), str):
                    self.session_id = msg["session_id"]
            # every other type (user, stream_event, rate_limit_event, system/*, unknown ones) is skipped

    def _text(self, text: str) -> None:
        self.texts.append(text[-KEEP_TEXT:])
        self.text_len += len(self.texts[-1]) + 1
        while len(self.texts) > 1 and self.text_len - len(self.texts[0]) - 1 >= KEEP_TEXT:
            self.text_len -= len(self.texts.popleft()) + 1

    def summary(self) -> StreamSummary:
        return StreamSummary(self.result, self.session_id, tuple(self.errors), "\n".join(self.texts), self.skipped,
                             self.retry)  # fmt: skip


def parse_stream(stdout: str) -> StreamSummary:
    """Read Claude Code's stdout (stream-json lines, or one json object or array) into a summary."""
    parser = StreamParser()
    for raw in stdout.splitlines():
        parser.feed(raw)
    return parser.summary()


@attrs.frozen
class ClaudeAgent:
    """The Claude Code adapter.  Fields are the ``agent:`` settings of ``config.yaml``.

    ``subagent_via``: ``agents`` passes the chosen subagent's definition with
    ``--agents`` (and names it in the prompt); ``prompt`` only names it (for a
    subagent Claude Code already finds in ``.claude/agents/``).
    """

    executable: str = "claude"
    permission_mode: str = attrs.field(default="acceptEdits", validator=attrs.validators.in_(PERMISSION_MODES))
    allowed_tools: tuple[str, ...] = attrs.field(
        default=("Read", "Edit", "Write", "Glob", "Grep", "Bash"), converter=tuple
    )
    model: str | None = None
    max_turns: int | None = None
    extra_args: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    env: Mapping[str, str] = attrs.field(factory=dict)
    subagent_via: str = attrs.field(default="agents", validator=attrs.validators.in_(("agents", "prompt")))
    name: str = "claude"

    # -- command lines ------------------------------------------------------------------------------------------
    def command(self, prompt: str, *, subagent: Subagent | None = None, budget_usd: float | None = None) -> list[str]:
        """The exact command line for one task (without the prompt when it is long: it goes on stdin)."""
        argv = [self.executable, "-p", *self._prompt_arg(prompt), "--output-format", "stream-json", "--verbose"]
        return argv + self._options(subagent, budget_usd)

    def plan_command(self, prompt: str, *, budget_usd: float | None = None) -> list[str]:
        """The exact command line for planning (one JSON object out, checked against PLAN_SCHEMA)."""
        argv = [self.executable, "-p", *self._prompt_arg(prompt), "--output-format", "json", "--json-schema",
                json.dumps(PLAN_SCHEMA)]  # fmt: skip
        return argv + self._options(None, budget_usd)

    @staticmethod
    def _prompt_arg(prompt: str) -> list[str]:
        return [] if is_long(prompt) else [prompt]

    @staticmethod
    def stdin_text(prompt: str) -> str | None:
        """What the CLI gets on stdin: the prompt when it is too long for an argument, else nothing."""
        return prompt if is_long(prompt) else None

    def _options(self, subagent: Subagent | None, budget_usd: float | None) -> list[str]:
        argv = ["--permission-mode", self.permission_mode]
        if self.allowed_tools:
            argv += ["--allowedTools", ",".join(self.allowed_tools)]
        if self.model:
            argv += ["--model", self.model]
        if self.max_turns is not None:
            argv += ["--max-turns", str(self.max_turns)]
        if budget_usd is not None and budget_usd != float("inf"):
            if budget_refusal(budget_usd) is not None:  # run() and plan() do not get here
                raise ValueError(f"--max-budget-usd must be more than 0, not {budget_usd!r}")
            argv += ["--max-budget-usd", f"{budget_usd:.4f}"]
        if subagent is not None and self.subagent_via == "agents":
            argv += ["--agents", json.dumps({subagent.name: subagent.to_agents_json()}, sort_keys=True)]
        return argv + list(self.extra_args)

    # -- the protocol -------------------------------------------------------------------------------------------
    def run(self, request: AgentRequest) -> AgentResult:
        """One attempt at one task (see the module's table for the failure classes)."""
        attempt = Attempt(self.name, request.task.id, request.attempt, request.session_dir)
        refused = attempt.budget_failure(request.budget_usd)
        if refused is not None:
            return refused
        prompt = task_prompt(request)
        argv = self.command(prompt, subagent=request.subagent, budget_usd=request.budget_usd)
        stream = StreamParser()  # the output is read as it comes: the outcome keeps only its ends
        outcome = run_attempt(attempt, argv, cwd=request.workdir, timeout_s=request.timeout_s,
                              env=request_env(self.env, request.env), stdin_text=self.stdin_text(prompt),
                              on_line=stream.feed)  # fmt: skip
        return self._judge(attempt, outcome, stream.summary())

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """Ask for a PRD and a task graph as structured output; validate both."""
        attempt = Attempt(self.name, PLAN_TASK, 1, request.session_dir)
        refused = attempt.budget_failure(request.budget_usd)
        if refused is not None:
            return PlanOutcome(refused)
        prompt = plan_prompt(request)
        argv = self.plan_command(prompt, budget_usd=request.budget_usd)
        stream = StreamParser()
        outcome = run_attempt(attempt, argv, cwd=request.workdir, timeout_s=request.timeout_s, env=self.env,
                              stdin_text=self.stdin_text(prompt), on_line=stream.feed)  # fmt: skip
        summary = stream.summary()
        result = self._judge(attempt, outcome, summary)
        if result.status != "succeeded":
            return PlanOutcome(result)
        answer = summary.result.get("structured_output") if summary.result else None
        return plan_outcome(result, answer, "claude's plan")

    # -- judging ----------------------------------------------------------------------------------------------
    def _judge(self, attempt: Attempt, outcome: ProcessOutcome, summary: StreamSummary) -> AgentResult:
        if outcome.timed_out and summary.result is not None:  # stopped after its result (§9.4: the result decides)
            judged = self._judge_result(attempt, outcome, summary.result, summary)
            note = "claude was stopped at the timeout after printing its result"
            return attrs.evolve(judged, summary=f"{judged.summary} ({note})")
        early = attempt.common_failure(outcome, INSTALL)
        if early is not None:
            if outcome.timed_out and summary.retry is not None:  # stopped while it retried a failing API call
                return attempt.result(outcome, "timeout", *_retrying(summary.retry), agent_session=summary.session_id)
            return attrs.evolve(early, agent_session=summary.session_id)
        res = summary.result
        if res is None:
            if outcome.exit_code == 0:
                return attempt.result(outcome, "failed", "transient", "claude exited without a result line",
                                      agent_session=summary.session_id)  # fmt: skip
            refusal = _refusal(outcome)
            if refusal is not None:  # the command line itself is refused: a configuration problem
                return attempt.result(outcome, "failed", "critical", f"claude refused its command line: {refusal}",
                                      agent_session=summary.session_id)  # fmt: skip
            why = tail(outcome.stderr or outcome.stdout, 400) or f"exit code {outcome.exit_code}"
            cls = classify_text(outcome.stderr) or "transient"
            return attempt.result(outcome, "failed", cls, f"claude stopped without a result: {why}",
                                  agent_session=summary.session_id)  # fmt: skip
        return self._judge_result(attempt, outcome, res, summary)

    def _judge_result(self, attempt: Attempt, outcome: ProcessOutcome, res: Mapping[str, Any],
                      summary: StreamSummary) -> AgentResult:  # fmt: skip
        reported = _reported(res, summary)
        raw_text = res.get("result")
        text = raw_text if isinstance(raw_text, str) else ""
        if res.get("is_error") is not True:
            denials = res.get("permission_denials") or []
            if denials:
                tools = sorted({str(d.get("tool_name")) for d in denials if isinstance(d, dict)})
                return attempt.result(outcome, "failed", "critical",
                                      f"claude was refused {', '.join(tools)} by its permission settings: allow it "
                                      "with agent.allowed_tools or agent.permission_mode in config.yaml"
                                      + (f" ({tail(text, 200)})" if text else ""), **reported)  # fmt: skip
            if outcome.exit_code != 0 and not outcome.timed_out:
                log.warning("claude reported success (is_error false) but exited %s: the result counts",
                            outcome.exit_code)  # fmt: skip
            return attempt.result(outcome, "succeeded", None, tail(text) or "done", **reported)
        subtype = res.get("subtype")
        raw_errors = res.get("errors")
        errors: list[Any] = raw_errors if isinstance(raw_errors, list) else []
        detail = tail(text or "; ".join(str(e) for e in errors) or str(subtype), 400)
        if subtype in ("error_max_turns", "error_max_structured_output_retries"):
            return attempt.result(outcome, "failed", "implementation", f"claude: {subtype}: {detail}", **reported)
        if subtype == "error_max_budget_usd":
            return attempt.result(outcome, "failed", "critical",
                                  f"claude reached its budget (--max-budget-usd): {detail}", **reported)  # fmt: skip
        return attempt.result(outcome, "failed", *_api_failure(res, summary, detail), **reported)


def _reported(res: Mapping[str, Any], summary: StreamSummary) -> dict[str, Any]:
    """Cost, tokens, turns and session id as the result line reports them (absent ones left out)."""
    out: dict[str, Any] = {"agent_session": summary.session_id}
    cost = res.get("total_cost_usd")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0:
        out["cost_usd"] = float(cost)
    usage = res.get("usage")
    if isinstance(usage, dict):
        for key, field in (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens")):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                out[field] = value
    turns = res.get("num_turns")
    if isinstance(turns, int) and not isinstance(turns, bool) and turns >= 0:
        out["turns"] = turns
    return out


_REFUSALS = re.compile(
    r"error: option '[^']*' argument '[^']*' is invalid|error: unknown option|error: missing required argument|"
    r"cannot be used with root/sudo privileges|requires --verbose",
    re.IGNORECASE,
)
_ERROR_LINE = re.compile(r"^\s*(?:error|Error):.*$", re.MULTILINE)


def _refusal(outcome: ProcessOutcome) -> str | None:
    """The line in which the CLI refused its command line (commander's errors, a refused combination), or None.

    Any ``error:``/``Error:`` line counts when stdout has no JSON at all (the CLI
    stopped before it began), unless it reads as a network or rate-limit error.
    """
    lines = [line.strip() for line in outcome.stderr.splitlines() if line.strip()]
    for line in lines:
        if _REFUSALS.search(line):
            return tail(line, 300)
    has_json = any(line.lstrip().startswith(("{", "[")) for line in outcome.stdout.splitlines())
    if not has_json:
        for m in _ERROR_LINE.finditer(outcome.stderr):
            if classify_text(m.group(0)) != "transient":
                return tail(m.group(0), 300)
    return None


_API_CRITICAL = {"authentication_failed", "billing_error", "permission_error"}
_API_TRANSIENT = {"rate_limit", "server_error", "overloaded", "overloaded_error", "api_error"}


def _retrying(retry: Mapping[str, Any]) -> tuple[str, str]:
    """(failure class, summary) of a CLI stopped at its timeout while it was retrying a failed API call.

    The real claude 2.1.328 retries even a 401 (up to 10 times, about three minutes of
    backoff) before it prints a result: what it was retrying decides, not the timeout.
    """
    status, error = retry.get("error_status"), retry.get("error")
    named = error if isinstance(error, str) and error not in ("", "unknown") else "an API error"
    what = named + (f" (HTTP {status})" if isinstance(status, int) else "")
    count = f"retry {retry.get('attempt')} of {retry.get('max_retries')}"
    doing = f"claude was still retrying {what} ({count}) when it was stopped at the timeout"
    if error == "authentication_failed" or status in (401, 403):
        return "critical", f"{LOGIN_FIX} ({doing})"
    if error in _API_CRITICAL or status == 402:
        return "critical", f"claude cannot work: {doing}"
    return "transient", doing


def _api_failure(res: Mapping[str, Any], summary: StreamSummary, detail: str) -> tuple[str, str]:
    """(failure class, summary) of an ``is_error`` result that is not one of the limit subtypes."""
    status = res.get("api_error_status")
    kinds = set(summary.api_errors)
    if kinds & {"authentication_failed"} or status in (401, 403) or "/login" in detail.lower():
        return "critical", f"{LOGIN_FIX} ({detail})"
    if kinds & _API_CRITICAL or status == 402:
        return "critical", f"claude cannot work: {detail}"
    if kinds & _API_TRANSIENT or status in (429, 500, 502, 503, 504, 529):
        return "transient", f"claude: API error, worth retrying: {detail}"
    by_text = classify_text(detail)
    if by_text == "critical":
        return "critical", f"claude cannot work: {detail}"
    return "transient", f"claude failed: {detail}"
