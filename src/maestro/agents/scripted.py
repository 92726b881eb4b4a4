"""The scripted agent: a deterministic agent that does what a YAML script says.

It drives the demo, the tests and the benchmarks: for each task the script
(:mod:`maestro.agents.script`, ``docs/scripted-agent.md``) lists attempts, and
attempt *n* of a task does item *n* (the last item repeats) — writes, appends
and deletes files, runs commands, then succeeds or fails with the failure class
the script names.

The agent itself never raises for what the script makes it do: an unknown
task, a path outside the repository, a command that fails or times out are
each a failed :class:`~maestro.core.records.AgentResult`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maestro.agents.base import (
    PLAN_TASK,
    AgentError,
    AgentRequest,
    PlanOutcome,
    PlanRequest,
    transcript_paths,
    validate_plan,
)
from maestro.agents.changes import (
    ChangeError,
    Snapshot,
    capture_changes,
    changes_path,
    resolve_inside,
    snapshot,
    write_changes,
)
from maestro.agents.process import run_process
from maestro.agents.script import Action, AttemptScript, PlannerScript, Script, load_script, script_from_mapping
from maestro.core.errors import MaestroError
from maestro.core.records import AgentResult
from maestro.core.text import tail
from maestro.plan.prd import read_plan_text

__all__ = ["ScriptedAgent"]

log = logging.getLogger(__name__)

_TAIL = 1000  # characters of a failing command's output kept in the summary


class _Failed(Exception):
    """Ends an attempt early with a failed result."""

    def __init__(self, status: str, failure_class: str, summary: str) -> None:
        super().__init__(summary)
        self.status = status
        self.failure_class = failure_class
        self.summary = summary


class ScriptedAgent:
    """Does what its :class:`Script` says, deterministically.

    Attempt *n* of a task uses item *n* of the task's list (the last repeats),
    chosen from ``request.attempt`` alone: the agent keeps no state, so
    parallel calls on different tasks are safe.  An attempt

    1. sleeps ``delay_s`` (when that reaches ``request.timeout_s`` it sleeps
       the timeout and ends with status ``timeout``, class ``transient``, having done nothing);
    2. checks every path it will touch (an absolute path, ``..``, a symlink out
       of the repository, anything under ``.git/`` or ``.flow/`` fails it with
       class ``critical`` before anything is written);
    3. does the actions in order; a ``run`` is ``sh -c <command>`` in the
       working directory, killed when the attempt's time is up (status
       ``timeout``, class ``transient``); a non-zero exit fails the attempt
       with class ``test_failure`` and the output's tail in the summary;
    4. succeeds with ``summary``, or fails as ``fail`` says.

    ``duration_s`` is ``delay_s`` plus the measured time of ``run`` actions —
    0.0 for an attempt that only edits files — so results are reproducible.
    With ``request.session_dir`` set it writes the transcript
    (``agents/<task>.<attempt>.scripted.out``, with ``.err`` holding the
    commands' stderr) and the change file (``….changes.json``, see
    :mod:`maestro.agents.changes`).
    """

    name = "scripted"

    def __init__(self, script: Script) -> None:
        self.script = script

    @classmethod
    def load(cls, path: str | Path) -> ScriptedAgent:
        """The agent for the script file at ``path`` (:class:`ScriptError` if it is missing or malformed)."""
        return cls(load_script(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base_dir: str | Path = ".") -> ScriptedAgent:
        """The agent for a script given as plain data (tests); planner paths are relative to ``base_dir``."""
        return cls(script_from_mapping(data, base_dir))

    # -- tasks ------------------------------------------------------------------------------------------------------

    def run(self, request: AgentRequest) -> AgentResult:
        """Do attempt ``request.attempt`` of ``request.task`` in ``request.workdir``; never raises for the script."""
        task, attempt = request.task.id, request.attempt
        lines = [f"scripted: task {task}, attempt {attempt}"]
        errs: list[str] = []
        chosen = self.script.attempt(task, attempt)
        if chosen is None:
            known = ", ".join(self.script.tasks) or "none"
            summary = f"the script {self.script.source} has no task {task} (its tasks: {known})"
            lines.append(summary)
            result = self._result(request, "failed", "ambiguous", summary)
            self._save(request, lines, errs)
            return result
        item, index = chosen
        lines[0] += f" (item {index} of {len(self.script.tasks[task])})"
        root = Path(request.workdir).resolve()
        scope: list[str] | None = []
        for a in item.actions:
            if a.kind == "run":
                scope = None
            elif scope is not None:
                with contextlib.suppress(ChangeError):  # refused below, before anything is done
                    scope.append(self._target(root, a).relative_to(root).as_posix())
        before = snapshot(root, scope) if request.session_dir is not None else None
        ran: list[float] = []  # the measured durations of run actions, a killed one included
        try:
            for a in item.actions:
                if a.kind != "run":
                    self._target(root, a)
            started = time.monotonic()
            if 0 < request.timeout_s <= item.delay_s:
                time.sleep(request.timeout_s)
                raise _Failed("timeout", "transient", f"no answer within the timeout of {request.timeout_s:g} s")
            if item.delay_s > 0:
                time.sleep(item.delay_s)
            for a in item.actions:
                if a.kind == "run":
                    assert a.command is not None
                    remaining = request.timeout_s - (time.monotonic() - started)
                    self._run(request, a.command, remaining, lines=lines, errs=errs, ran=ran)
                else:
                    self._edit(root, a, lines)
            if item.fail is not None:
                raise _Failed(item.fail.status, item.fail.kind, item.fail.message)
            summary = item.summary or f"{len(item.actions)} action{'s' if len(item.actions) != 1 else ''} done"
            result = self._result(request, "succeeded", None, summary, item=item, ran_s=sum(ran))
        except ChangeError as exc:
            result = self._result(request, "failed", "critical", f"refused: {exc}", item=item, ran_s=sum(ran))
        except _Failed as exc:
            result = self._result(
                request, exc.status, exc.failure_class, exc.summary, item=item, ran_s=round(sum(ran), 3)
            )
        lines.append(f"result: {result.status}" + (f" ({result.failure_class})" if result.failure_class else ""))
        lines.extend(f"  {s}" for s in result.summary.splitlines())
        self._save(request, lines, errs, before=before)
        log.info("scripted %s attempt %d: %s", task, attempt, result.status)
        return result

    def _target(self, root: Path, action: Action) -> Path:
        assert action.path is not None
        return resolve_inside(root, action.path, follow_last=action.kind != "delete")

    def _edit(self, root: Path, action: Action, lines: list[str]) -> None:
        """Write, append or delete; the path is checked again (a ``run`` may have made a symlink since)."""
        real = self._target(root, action)
        path = action.path
        try:
            if action.kind == "delete":
                if real.is_dir() and not real.is_symlink():
                    shutil.rmtree(real)
                else:
                    real.unlink()
                lines.append(f"delete {path}")
                return
            data = (action.content or "").encode("utf-8")
            real.parent.mkdir(parents=True, exist_ok=True)
            with real.open("ab" if action.kind == "append" else "wb") as f:
                f.write(data)
            if action.executable is not None:
                real.chmod(0o755 if action.executable else 0o644)
            lines.append(f"{action.kind} {path} ({len(data)} bytes)")
        except FileNotFoundError:
            raise _Failed("failed", "implementation", f"{action.kind} {path}: no such file") from None
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise _Failed("failed", "implementation", f"{action.kind} {path}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise _Failed("failed", "critical", f"{action.kind} {path}: {exc.strerror or exc}") from None

    def _run(
        self,
        request: AgentRequest,
        command: str,
        remaining: float,
        *,
        lines: list[str],
        errs: list[str],
        ran: list[float],
    ) -> None:
        """Run one command, adding its duration to ``ran``; a failure raises :class:`_Failed`."""
        lines.append(f"run {command}")
        if remaining <= 0:
            raise _Failed(
                "timeout", "transient", f"run {command!r}: no time left of the {request.timeout_s:g} s timeout"
            )
        env = {**os.environ, **(request.env or {}), "MAESTRO_TASK_ID": request.task.id,
               "MAESTRO_ATTEMPT": str(request.attempt)}  # fmt: skip
        out = run_process(["sh", "-c", command], cwd=Path(request.workdir), timeout_s=remaining, env=env)
        ran.append(round(out.duration_s, 3))
        lines.extend(f"  | {s}" for s in out.stdout.splitlines())
        lines.extend(f"  ! {s}" for s in out.stderr.splitlines())
        if out.stderr:
            errs.append(f"run {command}\n{out.stderr}")
        if out.missing:
            raise _Failed("failed", "critical", f"run {command!r}: {out.error}")
        if out.timed_out:
            lines.append("  killed at the timeout")
            raise _Failed("timeout", "transient", f"run {command!r}: killed at the timeout ({request.timeout_s:g} s)")
        lines.append(f"  exit {out.exit_code}")
        if out.exit_code != 0:
            output = tail(out.stdout + out.stderr, _TAIL)  # the summary is one log line
            summary = f"run {command!r} exited {out.exit_code}" + (f": {output}" if output else "")
            raise _Failed("failed", "test_failure", summary)

    # -- results and files ------------------------------------------------------------------------------------------

    def _result(
        self,
        request: AgentRequest,
        status: str,
        failure_class: str | None,
        summary: str,
        *,
        item: AttemptScript | None = None,
        ran_s: float = 0.0,
    ) -> AgentResult:
        """The result; ``duration_s`` is the timeout for a timed-out attempt, else ``delay_s`` plus ``ran_s``."""
        return _agent_result(
            self.name, request.session_dir, (request.task.id, request.attempt), (status, failure_class, summary),
            item=item,
            duration_s=request.timeout_s if status == "timeout" else round((item.delay_s if item else 0.0) + ran_s, 3),
        )  # fmt: skip

    def _save(
        self,
        request: AgentRequest | PlanRequest,
        lines: list[str],
        errs: list[str],
        *,
        before: Snapshot | None = None,
        task: str | None = None,
        attempt: int = 1,
    ) -> None:
        """Write the transcript and, given the snapshot taken before, the change file."""
        if request.session_dir is None:
            return
        if isinstance(request, AgentRequest):
            task, attempt = request.task.id, request.attempt
        assert task is not None
        paths = transcript_paths(request.session_dir, task, attempt, self.name)
        assert paths is not None
        try:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            paths[0].write_text("\n".join(lines) + "\n", encoding="utf-8")
            paths[1].write_text("".join(e if e.endswith("\n") else e + "\n" for e in errs), encoding="utf-8")
        except OSError as exc:
            raise AgentError(f"{paths[0]}: cannot write the transcript: {exc.strerror or exc}") from exc
        changes = changes_path(request.session_dir, task, attempt, self.name)
        assert changes is not None
        try:
            write_changes(changes, [] if before is None else capture_changes(Path(request.workdir), before))
        except MaestroError as exc:
            raise AgentError(f"{changes}: cannot record the changes: {exc}") from exc

    # -- planning ---------------------------------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """Answer with the planner section's PRD and tasks, validated with :func:`~maestro.agents.validate_plan`.

        No planner section: a failed result, class ``ambiguous``.  A plan that
        does not validate: failed, class ``implementation``, the error as summary.
        A refinement round answers with the ``refinement`` section's item for the
        round: the session's PRD (``request.prd_markdown``) and that item's tasks.
        """
        refining = request.refinement > 0
        planner = self.script.refinement_round(request.refinement) if refining else self.script.planner
        lines = [f"scripted: planning for {request.request.strip().splitlines()[0] if request.request.strip() else ''}"]
        if refining:
            lines[0] = (
                f"scripted: refinement round {request.refinement}, requirements {', '.join(request.requirements)}"
            )

        def done(status: str, failure_class: str | None, summary: str) -> AgentResult:
            result = self._plan_result(request, status, failure_class, summary, planner)
            lines.append(f"result: {status}" + (f" ({failure_class})" if failure_class else ""))
            lines.extend(f"  {s}" for s in summary.splitlines())
            self._save(request, lines, [], task=PLAN_TASK)
            return result

        if planner is None:
            section = "refinement" if refining else "planner"
            return PlanOutcome(done("failed", "ambiguous", f"the script {self.script.source} has no {section} section"))
        if 0 < request.timeout_s <= planner.delay_s:
            time.sleep(request.timeout_s)
            return PlanOutcome(done("timeout", "transient", f"no answer within {request.timeout_s:g} s"))
        if planner.delay_s > 0:
            time.sleep(planner.delay_s)
        if planner.fail is not None:
            return PlanOutcome(done(planner.fail.status, planner.fail.kind, planner.fail.message))
        assert (planner.prd is not None or refining) and planner.tasks is not None
        try:
            answer = {
                "prd_markdown": request.prd_markdown if planner.prd is None else read_plan_text(planner.prd, "a PRD"),
                "tasks_yaml": read_plan_text(planner.tasks, "a tasks file"),
            }
        except MaestroError as exc:
            return PlanOutcome(done("failed", "critical", str(exc)))
        lines.append(f"answer: prd {planner.prd.name if planner.prd else '(the session)'}, tasks {planner.tasks.name}")
        lines.append(json.dumps(answer, ensure_ascii=False))
        try:
            plan = validate_plan(answer, f"{self.script.source} {'refinement' if refining else 'planner'}")
        except MaestroError as exc:
            return PlanOutcome(done("failed", "implementation", str(exc)))
        summary = planner.summary or f"planned {len(plan.graph)} task{'s' if len(plan.graph) != 1 else ''}"
        return PlanOutcome(done("succeeded", None, summary), plan)

    def _plan_result(
        self, request: PlanRequest, status: str, failure_class: str | None, summary: str, planner: PlannerScript | None
    ) -> AgentResult:
        duration = request.timeout_s if status == "timeout" else (planner.delay_s if planner else 0.0)
        return _agent_result(
            self.name,
            request.session_dir,
            (PLAN_TASK, 1),
            (status, failure_class, summary),
            item=planner,
            duration_s=duration,
        )


def _agent_result(
    agent: str,
    session_dir: Path | None,
    key: tuple[str, int],
    outcome: tuple[str, str | None, str],
    *,
    item: AttemptScript | PlannerScript | None,
    duration_s: float,
) -> AgentResult:
    """An :class:`AgentResult` for (task, attempt) with (status, class, summary); the transcript relative to session."""
    task, attempt = key
    status, failure_class, summary = outcome
    paths = transcript_paths(session_dir, task, attempt, agent)
    transcript = None
    if paths is not None and session_dir is not None:
        transcript = paths[0].relative_to(session_dir).as_posix()
    return AgentResult(
        task=task,
        agent=agent,
        attempt=attempt,
        status=status,
        summary=summary,
        failure_class=failure_class,
        cost_usd=item.cost_usd if item is not None else None,
        input_tokens=item.input_tokens if item is not None else None,
        output_tokens=item.output_tokens if item is not None else None,
        duration_s=duration_s,
        transcript=transcript,
    )
