"""The exceptions maestro raises.

Every error maestro raises is a :class:`MaestroError`; errors of the libraries
underneath (ruamel.yaml, transitions, the file system) are translated where they
enter, so callers never see a raw ``KeyError`` or ``YAMLError``::

    MaestroError
    ├── ChartError              a statechart is malformed
    ├── StoreError              the session store is missing, malformed or unwritable
    │   └── SessionLocked       another live process holds the session
    ├── CheckpointError         a git checkpoint or rollback cannot be done
    ├── PlanError               a PRD or task graph is malformed (names file, line, task, field)
    ├── DecisionError           a decision cannot be made or a strategy misbehaved
    └── TransitionNotAllowed    a trigger the chart does not allow in this state
"""

from __future__ import annotations


def error_text(exc: BaseException) -> str:
    """A one-line message for an error of a library underneath (attrs, cattrs, json)."""
    subs = getattr(exc, "exceptions", None)  # cattrs groups the real errors
    if subs:
        return error_text(subs[0])
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return " ".join(first.split()) or type(exc).__name__


class MaestroError(Exception):
    """Root of every error maestro raises."""


class ChartError(MaestroError):
    """A statechart file or model is invalid; the message names the problem."""


class StoreError(MaestroError):
    """The session store cannot be read or written as asked."""


class SessionLocked(StoreError):
    """The session is held by another live process."""

    def __init__(self, session_id: str, pid: int | None) -> None:
        self.session_id = session_id
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"session {session_id} is locked by {holder}")


class CheckpointError(MaestroError):
    """A git checkpoint, rollback or diff cannot be done; the message names the path or ref."""


class PlanError(MaestroError):
    """A PRD or task graph is malformed.

    The message is one line: ``<file>:<line>: task <id>: <field>: <problem>``,
    each part present when known; the parts are also attributes.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: object = None,
        line: int | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.task = task
        self.field = field
        where = self.path or "<input>"
        if line is not None:
            where += f":{line}"
        parts = [where]
        if task is not None:
            parts.append(f"task {task}")
        if field is not None:
            parts.append(field)
        super().__init__(": ".join([*parts, problem]))


class DecisionError(MaestroError):
    """A decision cannot be made: no strategy for the kind, or a strategy returned something invalid."""


class TransitionNotAllowed(MaestroError):
    """A trigger that no declared transition allows from the current state.

    ``reason`` says why: no transition for that trigger leaves ``state``, or the
    transitions that do were refused by their guards.
    """

    def __init__(self, trigger: str, state: str, reason: str, *, machine: str = "session") -> None:
        self.trigger = trigger
        self.state = state
        self.reason = reason
        self.machine = machine
        super().__init__(f"{machine}: trigger {trigger!r} is not allowed in state {state!r}: {reason}")
