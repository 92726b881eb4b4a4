"""The replay agent: re-drive a persisted session without a real agent.

:class:`ReplayAgent` answers each request with what a recorded session
recorded for it — the same :class:`~maestro.core.records.AgentResult`, after
re-applying that attempt's change file (:mod:`maestro.agents.changes`) — and
raises :class:`Divergence` for a request the recording does not have, instead
of guessing.  A recorded plan is read from ``<session_dir>/plan.json``
(:func:`~maestro.agents.changes.write_plan` saves it).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from maestro.agents.base import PLAN_TASK, AgentRequest, PlanOutcome, PlanRequest, transcript_paths, validate_plan
from maestro.agents.changes import apply_changes, changes_path, plan_file, read_changes, write_plan
from maestro.core.errors import ChangeError, Divergence, StoreError
from maestro.core.records import AgentResult
from maestro.store.filestore import Store

__all__ = ["ChangeError", "Divergence", "ReplayAgent"]

log = logging.getLogger(__name__)


class ReplayAgent:
    """Answers with a recorded session's results, re-applying each attempt's recorded changes.

    Task results are keyed by (task, attempt) — the last one recorded wins if a
    key was recorded twice — so :meth:`run` is stateless and safe to call from
    several threads.  Planning results (task ``plan``) are handed out in the
    order they were recorded: the n-th :meth:`plan` call gets the n-th one.
    """

    name = "replay"

    def __init__(self, session_id: str, session_dir: Path, results: Iterable[AgentResult]) -> None:
        self.session_id = session_id
        self.session_dir = Path(session_dir)
        self._results: dict[tuple[str, int], AgentResult] = {}
        self._plans: list[AgentResult] = []
        for r in results:
            if r.task == PLAN_TASK:
                self._plans.append(r)
            else:
                if (r.task, r.attempt) in self._results:
                    log.debug("session %s records %s attempt %d twice: the last counts", session_id, r.task, r.attempt)
                self._results[(r.task, r.attempt)] = r
        self._plan_calls = 0
        self._plan_lock = threading.Lock()

    @classmethod
    def from_session(cls, store: Store, session_id: str) -> ReplayAgent:
        """The agent results of ``session_id`` in ``store`` (read-only: no lock is taken)."""
        events = store.read_events(session_id)
        results = [e.payload() for e in events if e.kind == "agent"]
        return cls(session_id, store.session_dir(session_id), results)

    def attempts(self, task: str) -> list[int]:
        """The attempts recorded for ``task``, in order."""
        return sorted(a for t, a in self._results if t == task)

    def run(self, request: AgentRequest) -> AgentResult:
        """Re-apply the recorded changes of (task, attempt) to ``request.workdir`` and return the recorded result.

        :class:`Divergence` if the recording has no such attempt or no change
        file for it; :class:`ChangeError` if the change file is malformed or
        refused.  With ``request.session_dir`` set (and another folder than the
        recorded session's), the transcripts and the change file are copied
        there under the same names, so the result's ``transcript`` holds.
        """
        task, attempt = request.task.id, request.attempt
        result = self._results.get((task, attempt))
        if result is None:
            have = self.attempts(task)
            has = f"it has attempts {', '.join(map(str, have))} of {task}" if have else f"it has no attempt of {task}"
            raise Divergence(
                f"{task} attempt {attempt} is not in the recording of session {self.session_id} ({has})",
                session_id=self.session_id, task=task, attempt=attempt)  # fmt: skip
        path = changes_path(self.session_dir, task, attempt, result.agent)
        assert path is not None
        if not path.is_file():
            raise Divergence(
                f"{task} attempt {attempt} of session {self.session_id} has no recorded changes ({path} is missing)",
                session_id=self.session_id, task=task, attempt=attempt)  # fmt: skip
        apply_changes(request.workdir, read_changes(path))
        self._copy_files(result, request.session_dir, path)
        log.info("replayed %s attempt %d of session %s: %s", task, attempt, self.session_id, result.status)
        return result

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """The next recorded planning result, with the plan from ``plan.json`` when it succeeded.

        A recorded change file for the planning attempt is applied if there is
        one (planning is not expected to change the tree; none is required).
        """
        with self._plan_lock:
            self._plan_calls += 1
            call = self._plan_calls
        if call > len(self._plans):
            raise Divergence(
                f"planning call {call} is not in the recording of session {self.session_id} "
                f"(it has {len(self._plans)} planning result{'s' if len(self._plans) != 1 else ''})",
                session_id=self.session_id, task=PLAN_TASK, attempt=call)  # fmt: skip
        result = self._plans[call - 1]
        path = changes_path(self.session_dir, PLAN_TASK, result.attempt, result.agent)
        assert path is not None
        if path.is_file():
            apply_changes(request.workdir, read_changes(path))
        self._copy_files(result, request.session_dir, path)
        if result.status != "succeeded":
            return PlanOutcome(result)
        name = plan_file(request.refinement)
        path = self.session_dir / name
        if not path.is_file():
            raise Divergence(
                f"session {self.session_id} recorded a successful plan but has no {name} ({path})",
                session_id=self.session_id, task=PLAN_TASK, attempt=call)  # fmt: skip
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ChangeError(f"{path}: cannot read: {exc}") from exc
        plan = validate_plan(text, str(path))
        if request.session_dir is not None and not _same_dir(request.session_dir, self.session_dir):
            write_plan(request.session_dir, plan, request.refinement)
        return PlanOutcome(result, plan)

    def _copy_files(self, result: AgentResult, session_dir: Path | None, changes: Path) -> None:
        """Copy the recorded transcripts and change file into ``session_dir`` under the same names."""
        if session_dir is None or _same_dir(session_dir, self.session_dir):
            return
        recorded = transcript_paths(self.session_dir, result.task, result.attempt, result.agent)
        assert recorded is not None
        sources = [*recorded, changes]
        if result.transcript:
            sources.append(self.session_dir / result.transcript)
        for src in dict.fromkeys(sources):
            try:
                rel = src.relative_to(self.session_dir)
            except ValueError:
                continue
            if ".." in rel.parts or not src.is_file():
                continue
            dest = session_dir / rel
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            except OSError as exc:
                raise StoreError(f"{dest}: cannot copy the recorded {src.name}: {exc.strerror or exc}") from exc


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
