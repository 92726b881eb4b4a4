"""A task's acceptance commands, run in its worktree: each one's exit status and the head and tail of its output
(the head says what broke: a traceback's first lines, the failing test's name; the tail how it ended)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import attrs

from maestro.agents.context import head_and_tail
from maestro.agents.process import run_process
from maestro.plan.tasks import Task

__all__ = ["AcceptanceResult", "CommandCheck", "acceptance"]

log = logging.getLogger(__name__)

_HEAD_LINES = 20  # lines of output kept by an acceptance check: its first ones,
_TAIL_LINES = 40  # and its last ones,
_KEPT_CHARS = 6000  # at most this many characters in all


class CommandCheck(NamedTuple):
    """One acceptance command's run: its exit status (None: timed out or could not start) and the output's tail."""

    command: str
    exit_code: int | None
    output_tail: str


@attrs.frozen
class AcceptanceResult:
    """A task's acceptance commands, run: ``passed`` when every one exited 0 (vacuously so with none)."""

    task: str
    passed: bool
    results: tuple[CommandCheck, ...] = ()

    @property
    def failed(self) -> tuple[CommandCheck, ...]:
        """The commands that did not exit 0."""
        return tuple(r for r in self.results if r.exit_code != 0)


def acceptance(
    task: Task,
    workdir: Path,
    timeout_s: float = 600.0,
    *,
    transcript_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AcceptanceResult:
    """Run each of ``task``'s acceptance commands with ``sh -c`` in ``workdir`` (each with ``timeout_s``).

    Every command runs, even after one fails, so the feedback is complete.
    With ``transcript_dir``, the output is kept as ``accept-<task>.<i>.out``/``.err``.
    """
    checks = []
    for i, command in enumerate(task.acceptance, 1):
        transcript = None
        if transcript_dir is not None:
            stem = f"accept-{re.sub(r'[^A-Za-z0-9._-]', '_', task.id)}.{i}"
            transcript = (transcript_dir / f"{stem}.out", transcript_dir / f"{stem}.err")
        outcome = run_process(["sh", "-c", command], cwd=Path(workdir), timeout_s=timeout_s, env=env,
                              transcript=transcript)  # fmt: skip
        tail = head_and_tail(outcome.stdout + outcome.stderr, head=_HEAD_LINES, tail=_TAIL_LINES, limit=_KEPT_CHARS)
        code: int | None = outcome.exit_code
        if outcome.timed_out:
            code = None
            tail = (tail + "\n" if tail else "") + f"[maestro] timed out after {timeout_s:g} s: killed"
        elif outcome.missing:
            tail = (tail + "\n" if tail else "") + f"[maestro] {outcome.error}"
        checks.append(CommandCheck(command, code, tail))
        log.debug("task %s: acceptance %r: exit %s", task.id, command, code)
    return AcceptanceResult(task.id, all(c.exit_code == 0 for c in checks), tuple(checks))
