"""What the CLI adapters share: running one attempt, the environment, and the results of failures every CLI has."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from maestro.agents.base import transcript_paths
from maestro.agents.process import ProcessOutcome, run_process
from maestro.records import AgentResult

__all__ = ["Attempt", "classify_text", "exclude_from_git", "git_config_file", "run_attempt", "tail", "tree_state"]

_SUMMARY = 600


def tail(text: str, n: int = _SUMMARY) -> str:
    """The last ``n`` characters of ``text`` on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else "…" + flat[-n:]


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

    def common_failure(self, outcome: ProcessOutcome, install_hint: str) -> AgentResult | None:
        """The result for a missing executable or a timeout, which mean the same for every CLI; else None."""
        if outcome.missing:  # nothing ran, so there is no transcript
            failed = self.result(outcome, "failed", "critical", f"{outcome.error}: {install_hint}")
            return attrs.evolve(failed, transcript=None)
        if outcome.timed_out:
            last = tail(outcome.stderr or outcome.stdout, 300)
            return self.result(
                outcome, "timeout", "transient",
                f"{self.agent} did not finish in time and was stopped" + (f"; last output: {last}" if last else ""),
            )  # fmt: skip
        return None


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


_CRITICAL = re.compile(
    r"not logged in|/login|invalid api key|authentication|unauthori[sz]ed|\b401\b|\b403\b|forbidden|"
    r"credit balance|billing|insufficient[_ ]quota|quota exceeded|payment required|\b402\b|usage limit|"
    r"hit your limit",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"rate.?limit|\b429\b|overloaded|\b529\b|\b50[0234]\b|timed? ?out|temporar|reconnecting|network|connection|"
    r"stream disconnected|try again|econn|eai_again|unavailable",
    re.IGNORECASE,
)


def classify_text(text: str) -> str | None:
    """``critical`` for authentication or billing trouble, ``transient`` for rate limits and the network, else None."""
    if _CRITICAL.search(text):
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
