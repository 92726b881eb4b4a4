"""maestro: an autonomous software-development orchestrator driven by an explicit state machine.

The public API is this module's ``__all__`` (pinned by ``tests/test_api.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from maestro.core.errors import (
    ChartError,
    CheckpointError,
    DecisionError,
    MaestroError,
    PlanError,
    SessionLocked,
    StoreError,
    TransitionNotAllowed,
)
from maestro.core.records import (
    AgentResult,
    CheckpointRecord,
    Decision,
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
from maestro.decide.engine import DecisionContext, DecisionEngine
from maestro.model.chart import Chart, load_chart, parse_chart
from maestro.model.guards import DEFAULT_GUARDS
from maestro.model.machine import GuardContext
from maestro.model.state import SessionState, TaskState, rebuild
from maestro.plan.ordering import Ordering, order_tasks
from maestro.plan.prd import Prd, Requirement, load_prd, parse_prd, update_prd
from maestro.plan.load import load_tasks
from maestro.plan.tasks import Task, TaskGraph, parse_tasks, validate_graph
from maestro.replay import Step, replay, replay_session, state_at
from maestro.session import Session
from maestro.store.filestore import Store

__all__ = [
    "DEFAULT_GUARDS",
    "AgentResult",
    "Chart",
    "ChartError",
    "CheckpointError",
    "CheckpointRecord",
    "Checkpointer",
    "Clock",
    "Decision",
    "DecisionContext",
    "DecisionEngine",
    "DecisionError",
    "Event",
    "Evidence",
    "FileChange",
    "GateResult",
    "GuardContext",
    "IdSource",
    "Limits",
    "MaestroError",
    "Note",
    "Option",
    "Ordering",
    "PlanError",
    "Prd",
    "RandomIds",
    "Requirement",
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
    "__version__",
    "converter",
    "load_chart",
    "load_prd",
    "load_tasks",
    "order_tasks",
    "parse_chart",
    "parse_prd",
    "parse_tasks",
    "rebuild",
    "replay",
    "replay_session",
    "state_at",
    "update_prd",
    "validate_graph",
]


# The library never prints: without a handler configured by the application, Python's last-resort
# handler would write maestro's warnings to stderr.
logging.getLogger("maestro").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from maestro.git.checkpoints import Checkpointer


def __getattr__(name: str) -> Any:
    if name == "Checkpointer":  # imported on first use: dulwich is heavy, and replay does not need it
        from maestro.git.checkpoints import Checkpointer

        return Checkpointer
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("maestro-orchestrator")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0+unknown"
    raise AttributeError(f"module 'maestro' has no attribute {name!r}")
