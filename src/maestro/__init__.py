"""maestro: an autonomous software-development orchestrator driven by an explicit state machine.

``import maestro`` is the whole library API; everything else is internal.  By topic:

Running
    :class:`Runner` runs a session end to end (``run``), continues a paused or crashed one
    (``resume``) and can be interrupted; :class:`RunOutcome` is how a run ended;
    :func:`answer` records a human's answer to a paused session's question (a
    :class:`DecisionRequest`); :func:`redrive` runs a recorded session again with its recorded
    agent results and says where it diverged (:class:`RedriveReport`).  The configuration is a
    :class:`Config`: :func:`load_config` reads ``config.yaml``, :func:`parse_config` a text.
    Task attempts run on an :class:`Executor`: the :class:`LocalExecutor` (threads, the default) or a
    :class:`DaskExecutor` (a Dask cluster; ``pip install 'maestro-orchestrator[dask]'``), made from
    an ``executor`` setting by :func:`open_executor`.

Sessions and the store
    :class:`Store` is ``.flow/maestro/`` (the event log, the lock, the derived views);
    :class:`Session` is a live session: every move goes through its chart and into the log
    before it happens.  :func:`rebuild` folds a log into a :class:`SessionState` (with a
    :class:`TaskState` per task); :func:`replay`, :func:`replay_session` and :func:`state_at`
    read a log back step by step (:class:`Step`).  A statechart is a :class:`Chart`
    (:func:`load_chart`, :func:`parse_chart`); its guards see a :class:`GuardContext`, and
    :data:`DEFAULT_GUARDS` are the guards they name.  Time and ids come through seams:
    :class:`Clock` (:class:`SystemClock`, :class:`TickingClock`) and :class:`IdSource`
    (:class:`RandomIds`, :class:`SequentialIds`).

Plans
    The PRD is a :class:`Prd` listing :class:`Requirement` items (:func:`load_prd`,
    :func:`parse_prd`; :func:`update_prd` edits its front matter in place); the task graph is a
    :class:`TaskGraph` of :class:`Task` items (:func:`load_tasks`, :func:`parse_tasks`,
    :func:`validate_graph`), ordered into parallel groups by :func:`order_tasks` (an
    :class:`Ordering`).

Decisions
    :class:`DecisionEngine` asks the strategy registered for a kind of question, which is
    given a :class:`DecisionContext`, and returns the :class:`Decision`; the caller records it
    (``session.record(engine.decide(kind, state=session.state, repo=...))``).

Agents
    The protocol: an :class:`Agent` runs an :class:`AgentRequest` (one attempt at one task)
    into an :class:`AgentResult`, and plans a :class:`PlanRequest` into a :class:`PlanOutcome`
    (holding a :class:`Plan`).  The agents: :class:`ClaudeAgent`, :class:`CodexAgent`,
    :class:`AiderAgent`, :class:`CommandAgent` (any shell command), :class:`ScriptedAgent`
    (deterministic, for demos and tests), :class:`ReplayAgent` (a recorded session's results)
    and :class:`RecordingAgent` (records what another agent changed); :func:`agent_from_config`
    makes the one a configuration's ``agent`` section describes.

Git
    :class:`Checkpointer`: the session's branch, a commit and tag per checkpoint, rollback.

Records
    What the event log holds, frozen attrs classes: :class:`Event`, :class:`Decision` (its
    :class:`Option` and :class:`Evidence` items), :class:`DecisionRequest`, :class:`AgentResult`,
    :class:`GateResult`, :class:`CheckpointRecord` (a :class:`FileChange` per file),
    :class:`Limits` and :class:`Note`; :data:`converter` is the cattrs converter that turns them
    into plain data and back.

Errors
    Every error maestro raises is a :class:`MaestroError`; the tree, with what each means, is
    drawn in :mod:`maestro.core.errors`: :class:`ChartError`, :class:`YamlError`,
    :class:`StoreError` (:class:`SessionLocked`), :class:`CheckpointError`, :class:`PlanError`,
    :class:`DecisionError`, :class:`ConfigError`, :class:`AgentError` (:class:`ScriptError`),
    :class:`ChangeError`, :class:`Divergence`, :class:`GateError`, :class:`ExecutorError`,
    :class:`PlaceLost` (:class:`CacheMiss`), :class:`TransitionNotAllowed`.

``__version__`` is the installed distribution's version.  ``tests/test_api.py`` pins this API:
the module's public names are exactly ``__all__`` (its subpackages aside), and each is
documented here.
"""

# No ``from __future__ import annotations`` here, and the standard library under private names: a
# module's imports are its attributes, and this module's public attributes are its API alone.
import logging as _logging

from maestro.agents import Agent, AgentRequest, Plan, PlanOutcome, PlanRequest
from maestro.agents.aider import AiderAgent
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.agents.command import CommandAgent
from maestro.agents.factory import agent_from_config
from maestro.agents.recording import RecordingAgent
from maestro.agents.replay import ReplayAgent
from maestro.agents.scripted import ScriptedAgent
from maestro.config import Config, load_config, parse_config
from maestro.core.errors import (
    AgentError,
    CacheMiss,
    ChangeError,
    ChartError,
    CheckpointError,
    ConfigError,
    DecisionError,
    Divergence,
    ExecutorError,
    GateError,
    MaestroError,
    PlaceLost,
    PlanError,
    ScriptError,
    SessionLocked,
    StoreError,
    TransitionNotAllowed,
    YamlError,
)
from maestro.core.records import (
    AgentResult,
    CheckpointRecord,
    Decision,
    DecisionRequest,
    Event,
    Evidence,
    FileChange,
    GateResult,
    Limits,
    Note,
    Option,
    converter,
)
from maestro.core.seams import Clock, IdSource, RandomIds, SequentialIds, SystemClock, TickingClock
from maestro.decide import DecisionContext, DecisionEngine
from maestro.git.checkpoints import Checkpointer
from maestro.model.chart import Chart, load_chart, parse_chart
from maestro.model.guards import DEFAULT_GUARDS
from maestro.model.machine import GuardContext
from maestro.model.state import SessionState, TaskState, rebuild
from maestro.plan.load import load_tasks
from maestro.plan.ordering import Ordering, order_tasks
from maestro.plan.prd import Prd, Requirement, load_prd, parse_prd, update_prd
from maestro.plan.tasks import Task, TaskGraph, parse_tasks, validate_graph
from maestro.replay import Step, replay, replay_session, state_at
from maestro.run import Runner, RunOutcome, answer
from maestro.run.executors import DaskExecutor, Executor, LocalExecutor, open_executor
from maestro.run.redrive import RedriveReport, redrive
from maestro.session import Session
from maestro.store.filestore import Store

__all__ = [
    "DEFAULT_GUARDS",
    "Agent",
    "AgentError",
    "AgentRequest",
    "AgentResult",
    "AiderAgent",
    "CacheMiss",
    "ChangeError",
    "Chart",
    "ChartError",
    "CheckpointError",
    "CheckpointRecord",
    "Checkpointer",
    "ClaudeAgent",
    "Clock",
    "CodexAgent",
    "CommandAgent",
    "Config",
    "ConfigError",
    "DaskExecutor",
    "Decision",
    "DecisionContext",
    "DecisionEngine",
    "DecisionError",
    "DecisionRequest",
    "Divergence",
    "Event",
    "Evidence",
    "Executor",
    "ExecutorError",
    "FileChange",
    "GateError",
    "GateResult",
    "GuardContext",
    "IdSource",
    "Limits",
    "LocalExecutor",
    "MaestroError",
    "Note",
    "Option",
    "Ordering",
    "PlaceLost",
    "Plan",
    "PlanError",
    "PlanOutcome",
    "PlanRequest",
    "Prd",
    "RandomIds",
    "RecordingAgent",
    "RedriveReport",
    "ReplayAgent",
    "Requirement",
    "RunOutcome",
    "Runner",
    "ScriptError",
    "ScriptedAgent",
    "SequentialIds",
    "Session",
    "SessionLocked",
    "SessionState",
    "Step",
    "Store",
    "StoreError",
    "SystemClock",
    "Task",
    "TaskGraph",
    "TaskState",
    "TickingClock",
    "TransitionNotAllowed",
    "YamlError",
    "__version__",
    "agent_from_config",
    "answer",
    "converter",
    "load_chart",
    "load_config",
    "load_prd",
    "load_tasks",
    "open_executor",
    "order_tasks",
    "parse_chart",
    "parse_config",
    "parse_prd",
    "parse_tasks",
    "rebuild",
    "redrive",
    "replay",
    "replay_session",
    "state_at",
    "update_prd",
    "validate_graph",
]

# The library never prints: without a handler configured by the application, Python's last-resort
# handler would write maestro's warnings to stderr.
_logging.getLogger("maestro").addHandler(_logging.NullHandler())


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed distribution's metadata on first use."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # read only when asked for (lazy)

        try:
            return version("maestro-orchestrator")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0+unknown"
    raise AttributeError(f"module 'maestro' has no attribute {name!r}")
