"""Aider: ``aider --message <prompt> --yes-always --no-auto-commits --no-gitignore … -- [files]``.

Aider has no machine-readable output and exits 0 whether or not the edit
worked (protocols.md §5; the real 0.86.2 exits 0 on an authentication error).
So the adapter judges by the tree: it notes every file's stat before and after
the run; no change is a failure.  When the task declares ``files``, only those
count (a file changed, or created with content; a declared folder counts for
what is under it): the tasks of a parallel group share one working tree, and
another task's changes must not pass for this one's.  Only a task that
declares no files is judged by the whole tree — and then, in a parallel
group, another task's change can make it look done.  What aider printed is
searched for the lines aider itself prints for a failed API call — the
``litellm.<Name>Error…`` lines and lines starting ``Error:`` — not for any
``XError:`` text (the code of its edits is printed too); an error aider
retried past (a ``Retrying in N seconds...`` line after it) does not count.  The task's files
are passed after ``--``, so none can be read as an option; a prompt over
64 KiB goes in a file (``--message-file``).  It always
passes ``--no-gitignore`` (otherwise aider appends ``.aider*`` to the user's
``.gitignore``) and ``--no-auto-commits`` (maestro checkpoints the work); it
writes aider's history files beside the transcript, and lists ``.aider*`` in
``.git/info/exclude`` (aider's repo-map cache stays out of checkpoints without
touching the user's ``.gitignore``).  In a repository without a git identity
aider writes a placeholder one ("Your Name") into ``.git/config``: the adapter
puts the file back as it was.  A model is always passed (default
``sonnet``): without one and without an API key, aider 0.86 offers a browser
login and waits five minutes.

Turns, tokens and cost are read from the ``Tokens: … sent, … received. Cost: $…
message, $… session.`` line aider prints after each answer of the model (the
cost only for a model whose price litellm knows).

Failure classes: files changed and no error printed (or only errors aider
retried past) → succeeded; an authentication, billing or permission error, or
an API key refused → ``critical``; a rate limit or
network error → ``transient``; nothing changed → ``implementation``; a non-zero
exit (a setup error: bad model, missing file) → ``critical``; a timeout →
``transient``; a missing executable, a process that could not start, or no
budget left → ``critical``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from maestro.agents._common import (
    Attempt,
    classify_text,
    exclude_from_git,
    git_config_file,
    is_long,
    request_env,
    run_attempt,
    tail,
    tree_state,
)
from maestro.agents.base import PLAN_TASK, AgentRequest, PlanOutcome, PlanRequest, task_prompt
from maestro.agents.process import ProcessOutcome
from maestro.core.records import AgentResult

__all__ = ["AiderAgent"]

log = logging.getLogger(__name__)

INSTALL = "install aider (python -m pip install aider-chat) or set agent.executable in config.yaml"
_ERROR_LINE = re.compile(r"^.*\blitellm\.\w*Error\b.*$|^[ \t]*(?:Error|aider: error):.*$", re.MULTILINE)
"""The lines aider prints for an API failure (``litellm.AuthenticationError: …``, ``Error: …``) or a refused
command line (``aider: error: …``); code it prints in its edits (``except ConnectionError:``) is not one."""


@attrs.frozen
class AiderAgent:
    """The Aider adapter.  Fields are the ``agent:`` settings of ``config.yaml``."""

    executable: str = "aider"
    model: str | None = "sonnet"  # without a model and a key, aider waits 5 minutes for a browser login
    extra_args: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    env: Mapping[str, str] = attrs.field(factory=dict)
    name: str = "aider"

    def command(
        self, prompt: str, files: tuple[str, ...] = (), *, history: Path | None = None, message_file: Path | None = None
    ) -> list[str]:
        """The exact command line: one message, no commits, no .gitignore edits, no prompts, no network checks.

        ``history`` is where aider's chat and input history go (``<history>.chat.md``,
        ``<history>.input``) instead of the repository.  With ``message_file`` the
        message is read from that file (``--message-file``) and ``prompt`` is not
        passed.  The files come after ``--``: none is read as an option.
        """
        message = ["--message-file", str(message_file)] if message_file is not None else ["--message", prompt]
        argv = [self.executable, *message, "--yes-always", "--no-auto-commits", "--no-gitignore",
                "--no-check-update", "--no-analytics", "--no-show-release-notes", "--no-pretty",
                "--no-fancy-input", "--no-stream"]  # fmt: skip
        if history is not None:
            argv += ["--chat-history-file", f"{history}.chat.md", "--input-history-file", f"{history}.input"]
        if self.model:
            argv += ["--model", self.model]
        return argv + list(self.extra_args) + (["--", *files] if files else [])

    def prepare_repository(self, repo: Path) -> None:
        """What the adapter writes into the repository once, before any attempt (and before the tamper guard's first
        look): ``.aider*`` in ``info/exclude``."""
        exclude_from_git(repo, ".aider*", "aider's caches (.aider.tags.cache.v4)")

    def run(self, request: AgentRequest) -> AgentResult:
        """One attempt at one task, judged by whether the tree changed and what aider printed."""
        attempt = Attempt(self.name, request.task.id, request.attempt, request.session_dir)
        refused = attempt.budget_failure(request.budget_usd)
        if refused is not None:
            return refused
        exclude_from_git(request.workdir, ".aider*", "aider's caches (.aider.tags.cache.v4)")
        config = git_config_file(request.workdir)
        config_before = config.read_bytes() if config is not None and config.is_file() else None
        before = tree_state(request.workdir)
        with tempfile.TemporaryDirectory(prefix="maestro-aider-") as scratch:
            history = attempt.paths[0].with_suffix("") if attempt.paths is not None else Path(scratch) / "aider"
            history.parent.mkdir(parents=True, exist_ok=True)
            prompt = task_prompt(request)
            message_file = None
            if is_long(prompt):  # too long for an argument
                message_file = Path(scratch) / "message.md"
                message_file.write_text(prompt, encoding="utf-8")
            argv = self.command(prompt, tuple(request.task.files), history=history, message_file=message_file)
            outcome = run_attempt(
                attempt, argv, cwd=request.workdir, timeout_s=request.timeout_s, env=request_env(self.env, request.env)
            )
        if config is not None and config_before is not None and config.read_bytes() != config_before:
            # aider writes a placeholder identity ("Your Name") into a repository that has none: undo it
            log.warning("%s: aider changed the repository's git config; restored", config)
            tmp = config.with_name(f".{config.name}.maestro-tmp")
            tmp.write_bytes(config_before)
            os.replace(tmp, config)
        early = attempt.common_failure(outcome, INSTALL)
        if early is not None:
            return early
        after = tree_state(request.workdir)
        changed = _changed(before, after, request.task.files)
        printed = outcome.stdout + "\n" + outcome.stderr
        errors = _final_errors(outcome.stdout) + _final_errors(outcome.stderr)
        reported = _reported(outcome.stdout)
        cls = _classify(errors)
        if outcome.exit_code != 0:
            why = tail(errors[-1] if errors else printed, 400)
            return attempt.result(outcome, "failed", cls or "critical", f"aider exited {outcome.exit_code}: {why}",
                                  **reported)  # fmt: skip
        if cls is not None:
            prefix = "aider cannot work" if cls == "critical" else "aider hit a passing error"
            return attempt.result(outcome, "failed", cls, f"{prefix}: {tail(errors[-1], 400)}", **reported)
        if not changed:
            why = f" ({tail(errors[-1], 300)})" if errors else ""
            which = f"none of the task's files ({', '.join(request.task.files)})" if request.task.files else "no file"
            return attempt.result(outcome, "failed", "implementation", tail(f"aider changed {which}{why}", 600),
                                  **reported)  # fmt: skip
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        return attempt.result(outcome, "succeeded", None, f"aider changed {shown}", **reported)

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """Aider cannot give structured output: planning needs a PRD and tasks given with --prd/--tasks."""
        attempt = Attempt(self.name, PLAN_TASK, 1, request.session_dir)
        nothing = ProcessOutcome(None, "", "", 0.0)
        why = ("aider cannot write a plan as structured output: give maestro a PRD and tasks "
               "(maestro run --prd FILE --tasks FILE) or plan with claude or codex")  # fmt: skip
        return PlanOutcome(attempt.result(nothing, "failed", "ambiguous", why))


_RETRYING = re.compile(r"^Retrying in [\d.]+ seconds\.*[ \t]*$", re.MULTILINE)
"""The line aider prints when it retries a failed API call (a rate limit, an overloaded or unreachable server)."""
_KEY_WORDS = re.compile(r"\b(?:x-)?api[-_ ]?key\b", re.IGNORECASE)


def _final_errors(printed: str) -> list[str]:
    """The error lines aider did not get past: those after the last "Retrying in N seconds..." it printed.

    The real aider 0.86.2 prints each failed API call (``litellm.InternalServerError: …``)
    and retries it itself; when a retry works, the edit is applied and the error line
    before it says nothing about the outcome.
    """
    ends = [m.end() for m in _RETRYING.finditer(printed)]
    return _ERROR_LINE.findall(printed[ends[-1] :] if ends else printed)


def _classify(errors: list[str]) -> str | None:
    """The class the error lines call for: by their words (``classify_text``), and ``critical`` for an API key
    refused in another error's words (a 401 that litellm reports as ``BadRequestError: … invalid x-api-key``)."""
    if not errors:
        return None
    text = "\n".join(errors)
    return classify_text(text) or ("critical" if _KEY_WORDS.search(text) else None)


_TOKENS = re.compile(
    r"^Tokens:\s+(?P<sent>[\d.]+[kM]?)\s+sent,(?:\s+[\d.]+[kM]?\s+cache\s+write,)?(?:\s+[\d.]+[kM]?\s+cache\s+hit,)?"
    r"\s+(?P<received>[\d.]+[kM]?)\s+received\.(?:\s+Cost:\s+\$(?P<message>[\d.]+)\s+message,\s+"
    r"\$(?P<session>[\d.]+)\s+session\.)?",
    re.MULTILINE,
)
"""The line aider prints after each answer of the model: ``Tokens: 2.4k sent, 96 received. Cost: $0.0086 message,
$0.0086 session.`` (the cost only for a model whose price litellm knows)."""


def _count(text: str) -> int:
    """A token count as aider prints it: ``96``, ``2.4k``, ``12k``, ``1.2M``."""
    scale = {"k": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return round(float(text.rstrip("kM")) * scale)


def _reported(stdout: str) -> dict[str, int | float]:
    """Turns (the model's answers), tokens (summed, as aider rounds them) and cost (the session's, when aider
    printed one) from aider's ``Tokens:`` lines; nothing when it printed none."""
    lines = list(_TOKENS.finditer(stdout))
    if not lines:
        return {}
    out: dict[str, int | float] = {
        "turns": len(lines),
        "input_tokens": sum(_count(m["sent"]) for m in lines),
        "output_tokens": sum(_count(m["received"]) for m in lines),
    }
    costs = [m["session"] for m in lines if m["session"] is not None]
    if costs:
        out["cost_usd"] = float(costs[-1])
    return out


Stat = tuple[int, int, int]


def _changed(before: Mapping[str, Stat], after: Mapping[str, Stat], declared: tuple[str, ...]) -> list[str]:
    """The changed paths (sorted) that are this task's: under one of ``declared``, or any when none is declared.

    A declared file that did not exist before and is empty now is not a change:
    aider creates each file it is given before it asks the model.
    """
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p)
                     and not p.startswith(".aider"))  # fmt: skip
    if not declared:
        return changed
    mine = {posixpath.normpath(f) for f in declared}

    def counts(path: str) -> bool:
        posix = path.replace(os.sep, "/")
        if "." not in mine and not any(posix == d or posix.startswith(f"{d}/") for d in mine):
            return False
        now = after.get(path)
        return not (path not in before and now is not None and now[1] == 0)

    return [p for p in changed if counts(p)]
