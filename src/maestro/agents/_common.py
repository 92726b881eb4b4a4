"""What the CLI adapters share: running one attempt, the environment, and the results of failures every CLI has."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from maestro.agents.base import transcript_paths
from maestro.agents.process import ProcessOutcome, run_process
from maestro.core.records import AgentResult
from maestro.core.text import tail

__all__ = [
    "LONG_PROMPT",
    "Attempt",
    "budget_refusal",
    "classify_text",
    "exclude_from_git",
    "git_config_file",
    "is_long",
    "request_env",
    "run_attempt",
    "tail",
    "tree_state",
]

LONG_PROMPT = 64 * 1024
"""Prompts longer than this (in UTF-8 bytes) go to the CLI another way than as an argument: Linux refuses
an argument over 128 KiB (E2BIG), and a long failure output or description gets there."""


def is_long(prompt: str) -> bool:
    """Whether ``prompt`` is too long to pass as a command-line argument (see :data:`LONG_PROMPT`)."""
    return len(prompt) > LONG_PROMPT // 4 and len(prompt.encode("utf-8", "surrogatepass")) > LONG_PROMPT


def budget_refusal(budget_usd: float | None) -> str | None:
    """Why an attempt with ``budget_usd`` left must not run (nothing left, or not a number); None if it may.

    An infinite budget is no limit.  Anything under $0.0001 is nothing: it is what
    ``--max-budget-usd`` would be given, and a CLI refuses 0.
    """
    if budget_usd is None or budget_usd == math.inf:
        return None
    if math.isnan(budget_usd):
        return "no budget left: the remaining budget is not a number"
    if budget_usd <= 0:
        return "no budget left ($0 of the session's budget remains)"
    if budget_usd < 0.0001:
        return "no budget left (less than $0.0001 of the session's budget remains)"
    return None


class Attempt:
    """One run of a CLI for one task attempt: where its transcript goes and how the result is stamped."""

    def __init__(self, agent: str, task: str, attempt: int, session_dir: Path | None) -> None:
        self.agent = agent
        self.task = task
        self.attempt = attempt
        self.session_dir = session_dir
        self.paths = transcript_paths(session_dir, task, attempt, agent)

    @property
    def transcript(self) -> str | None:
        """The stdout transcript, relative to the session directory (None when nothing is saved)."""
        if self.paths is None or self.session_dir is None:
            return None
        return self.paths[0].relative_to(self.session_dir).as_posix()

    def result(self, outcome: ProcessOutcome, status: str, failure_class: str | None, summary: str,
               **extra: object) -> AgentResult:  # fmt: skip
        """An AgentResult for this attempt (status, class, summary, and any reported cost, tokens, turns)."""
        return AgentResult(
            task=self.task,
            agent=self.agent,
            attempt=self.attempt,
            status=status,
            summary=summary,
            failure_class=failure_class,
            duration_s=round(outcome.duration_s, 3),
            transcript=self.transcript,
            exit_code=outcome.exit_code,
            **extra,  # type: ignore[arg-type]
        )

    def budget_failure(self, budget_usd: float | None) -> AgentResult | None:
        """A ``critical`` failure, with nothing run, when no budget is left (:func:`budget_refusal`); else None."""
        why = budget_refusal(budget_usd)
        if why is None:
            return None
        failed = self.result(
            ProcessOutcome(None, "", "", 0.0), "failed", "critical", f"{self.agent} was not run: {why}"
        )
        return attrs.evolve(failed, transcript=None)

    def common_failure(self, outcome: ProcessOutcome, install_hint: str) -> AgentResult | None:
        """The result for a missing executable, a process that could not start, or a timeout; else None.

        These mean the same for every CLI.  Only a missing executable gets ``install_hint``.
        """
        if outcome.missing:  # nothing ran, so there is no transcript
            failed = self.result(outcome, "failed", "critical", f"{outcome.error}: {install_hint}")
            return attrs.evolve(failed, transcript=None)
        if outcome.exit_code is None and outcome.error and not outcome.timed_out:  # it could not be started
            failed = self.result(outcome, "failed", "critical", f"{self.agent} was not run: {outcome.error}")
            return attrs.evolve(failed, transcript=None)
        if outcome.timed_out:
            last = tail(outcome.stderr or outcome.stdout, 300)
            return self.result(
                outcome, "timeout", "transient",
                f"{self.agent} did not finish in time and was stopped" + (f"; last output: {last}" if last else ""),
            )  # fmt: skip
        return None


def request_env(own: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """An adapter's own variables with a request's ``env`` laid over them (the request's win)."""
    return {**own, **(extra or {})}


def run_attempt(
    attempt: Attempt,
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    env: Mapping[str, str] | None,
    stdin_text: str | None = None,
    on_line: Callable[[str], None] | None = None,
) -> ProcessOutcome:
    """Run ``argv`` for ``attempt``: transcript saved, ``env`` laid over the current environment."""
    full_env = {**os.environ, **env} if env else None
    return run_process(
        argv, cwd=cwd, timeout_s=timeout_s, env=full_env, stdin_text=stdin_text, transcript=attempt.paths,
        on_line=on_line,
    )  # fmt: skip


_STATUS = r"(?:\bstatus(?:[ _]?code)?|\bhttp(?:/[\d.]+)?|\berror[ _]?code|\bapi[ _]error(?:_status)?)[\"']?\s*[:=]?\s*"
"""What comes before an HTTP status: ``status 401``, ``HTTP 403``, ``"status": 401``, ``api_error_status: 401``,
``Error code: 402``, ``API Error: 401`` — so that a bare number (``Requested 401`` tokens) is not read as one."""
_CRITICAL_WORDS = re.compile(
    r"not logged in|/login|invalid[_ ]api[_ ]key|authentication|unauthori[sz]ed|forbidden|"
    r"credit balance|billing|insufficient[_ ]quota|quota exceeded|exceeded your current quota|payment required|"
    r"usage limit|hit your limit",
    re.IGNORECASE,
)
_RATE_LIMIT = re.compile(
    rf"rate.?limit|too many requests|overloaded|{_STATUS}(?:429|529)\b|\b(?:429|529)\s+too many", re.IGNORECASE
)
_CRITICAL_STATUS = re.compile(rf"{_STATUS}40[123]\b|\b40[123]\s+(?:unauthori[sz]ed|forbidden|payment)", re.IGNORECASE)
_TRANSIENT = re.compile(
    rf"{_STATUS}5\d\d\b|\b50[0234]\s+(?:internal|bad gateway|service unavailable|gateway)|"
    r"timed? ?out|temporar|reconnecting|network|connection|stream disconnected|try again|econn|eai_again|unavailable",
    re.IGNORECASE,
)


def classify_text(text: str) -> str | None:
    """``critical`` for authentication or billing trouble, ``transient`` for rate limits and the network, else None.

    The order matters: the words of authentication and billing errors first (an
    exhausted quota comes as a 429), then rate limits, then the HTTP statuses
    401, 402 and 403 — as statuses only (``status 401``, ``401 Unauthorized``), never
    any number (a rate-limit message says how many tokens were ``Requested``) —
    then the network and server errors.
    """
    if _CRITICAL_WORDS.search(text):
        return "critical"
    if _RATE_LIMIT.search(text):
        return "transient"
    if _CRITICAL_STATUS.search(text):
        return "critical"
    if _TRANSIENT.search(text):
        return "transient"
    return None


_SKIP_DIRS = frozenset({".git", ".flow", "node_modules", "__pycache__", ".venv", ".mypy_cache", ".ruff_cache"})


def tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Path → (mode, size, mtime_ns) of every file under ``root`` (not ``.git``, ``.flow``, caches): enough to
    see whether an agent changed anything, which is all an agent without structured output can be judged by."""
    out: dict[str, tuple[int, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in files:
            full = os.path.join(folder, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            out[os.path.relpath(full, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def exclude_from_git(workdir: Path, pattern: str, why: str) -> None:
    """List ``pattern`` in the repository's ``info/exclude`` (the common one of a worktree), once.

    Nothing happens outside a git repository.  Files an agent leaves behind then
    stay out of ``git status`` and of checkpoints, and the user's ``.gitignore``
    is not touched.
    """
    common = _git_common_dir(workdir)
    if common is None:
        return
    exclude = common / "info" / "exclude"
    try:
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if pattern in text.splitlines():
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        sep = "" if not text or text.endswith("\n") else "\n"
        exclude.write_text(f"{text}{sep}# {why}, listed by maestro\n{pattern}\n", encoding="utf-8")
    except OSError:  # a read-only repository: the files show up as untracked, nothing worse
        return


def git_config_file(workdir: Path) -> Path | None:
    """The repository's ``config`` file (the common one of a worktree), or None outside a repository."""
    common = _git_common_dir(workdir)
    return None if common is None else common / "config"


def _git_common_dir(workdir: Path) -> Path | None:
    for folder in (workdir, *workdir.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            return dotgit
        if dotgit.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>", with a commondir file there
            try:
                line = dotgit.read_text(encoding="utf-8").strip()
            except OSError:
                return None
            if not line.startswith("gitdir:"):
                return None
            gitdir = (folder / line.split(":", 1)[1].strip()).resolve()
            common = gitdir / "commondir"
            if common.is_file():
                try:
                    return (gitdir / common.read_text(encoding="utf-8").strip()).resolve()
                except OSError:
                    return gitdir
            return gitdir
    return None
