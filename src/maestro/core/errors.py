"""The exceptions maestro raises.

Every error maestro raises is a :class:`MaestroError`; errors of the libraries
underneath (ruamel.yaml, transitions, the file system) are translated where they
enter, so callers never see a raw ``KeyError`` or ``YAMLError``::

    MaestroError
    ├── ChartError              a statechart is malformed
    ├── YamlError               a YAML document cannot be read (names file, line); callers translate it
    ├── StoreError              the session store is missing, malformed or unwritable
    │   └── SessionLocked       another live process holds the session
    ├── CheckpointError         a git checkpoint or rollback cannot be done
    ├── PlanError               a PRD or task graph is malformed (names file, line, task, field)
    ├── DecisionError           a decision cannot be made or a strategy misbehaved
    ├── ConfigError             config.yaml (or an override) is invalid (names file, line, key)
    ├── AgentError              an agent is misconfigured, found before any task runs
    │   └── ScriptError         a scripted agent's script is malformed (names file, line, field)
    ├── ChangeError             a recorded change file is malformed, or would leave the working tree
    ├── Divergence              a re-driven session asked for what the recording does not have
    ├── GateError               a gate cannot be run or its report cannot be read
    ├── ExecutorError           an executor cannot be used (a bad ``executor``, a scheduler out of reach)
    ├── PlaceLost               the Dask worker an attempt ran on went away before it finished
    │   └── CacheMiss           the worker does not hold what the coordinator took it to hold
    └── TransitionNotAllowed    a trigger the chart does not allow in this state

Not an error: :class:`Terminated` (a ``KeyboardInterrupt``) is a SIGTERM or SIGHUP the command line turned into
a stop at once, as a second Ctrl-C is.
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


class YamlError(MaestroError):
    """A YAML document cannot be read: ``<file>:<line>: <problem>``, each part present when known.

    Raised by :mod:`maestro.core.yamlio`; each reader translates it into its own
    error (``PlanError``, ``ConfigError``, ...).  ``kind`` says what went wrong:
    ``syntax`` (malformed YAML, a duplicate key), ``value`` (a scalar its tag
    cannot make: a bad date, ``!!float x``), ``depth`` (nested too deeply to
    read), ``size`` (more bytes than allowed) or ``aliases`` (aliases that
    expand to more nodes than allowed, or that hold themselves).
    """

    def __init__(self, problem: str, *, path: object = None, line: int | None = None, kind: str = "syntax") -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.kind = kind
        where = (self.path or "<input>") + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")


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


class ConfigError(MaestroError):
    """``config.yaml`` (or a command-line override) is invalid.

    The message is one line: ``<file>:<line>: <dotted.key>: <problem>``, each
    part present when known; the parts are also attributes.
    """

    def __init__(self, problem: str, *, path: object = None, line: int | None = None, key: str | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.key = key
        parts: list[str] = []
        if self.path is not None or line is not None:
            parts.append((self.path or "<input>") + (f":{line}" if line is not None else ""))
        if key is not None:
            parts.append(key)
        super().__init__(": ".join([*parts, problem]))


class AgentError(MaestroError):
    """An agent is misconfigured (bad script, bad command template) — found before any task runs."""


class ScriptError(AgentError):
    """A script cannot be read: ``<file>:<line>: <field>: <problem>``, each part present when known."""

    def __init__(self, problem: str, *, path: str, line: int | None = None, field: str | None = None) -> None:
        self.problem = problem
        self.path = path
        self.line = line
        self.field = field
        where = path if line is None else f"{path}:{line}"
        super().__init__(": ".join([where, *([field] if field else []), problem]))


class ChangeError(MaestroError):
    """A change file is malformed, or a change would leave the working directory; the message names the path."""


class Divergence(MaestroError):
    """A request the recording does not have: the re-driven session has left the recorded one."""

    def __init__(self, message: str, *, session_id: str, task: str, attempt: int | None) -> None:
        self.session_id = session_id
        self.task = task
        self.attempt = attempt
        super().__init__(message)


class GateError(MaestroError):
    """A gate cannot be run or its report cannot be read; the one-line message names the file or gate."""


class ExecutorError(MaestroError):
    """An executor cannot be used: a bad ``executor`` setting, a scheduler that cannot be reached."""


class PlaceLost(MaestroError):
    """The place a unit of work ran at (a Dask worker) went away before the work finished."""

    def __init__(self, place: str, detail: str = "") -> None:
        super().__init__(f"worker {place} was lost while it ran the attempt" + (f" ({detail})" if detail else ""))
        self.place = place
        self.detail = detail

    def __reduce__(self) -> tuple[object, ...]:  # raised on a worker, re-raised here: pickled with its fields
        return (type(self), (self.place, self.detail))


class CacheMiss(PlaceLost):
    """The worker does not hold what the coordinator took it to hold (its cache was removed, or it is another
    worker at the same address): the attempt is a transient failure and the next one ships everything."""


class Terminated(KeyboardInterrupt):
    """The process was told to end (SIGTERM, SIGHUP): stop at once, as a second Ctrl-C does.

    ``signum`` is the signal; a command line exits ``128 + signum`` (143 for SIGTERM, 129 for SIGHUP).
    """

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.name = name
