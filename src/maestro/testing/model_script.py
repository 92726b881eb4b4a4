"""Model scripts, where the tests and docs name them: :mod:`maestro.agents.model_script` holds them.

They live with the agents so that ``maestro demo --agent claude`` (the run layer) can use them; this module keeps
``from maestro.testing.model_script import ...`` working.
"""

from __future__ import annotations

from maestro.agents.model_script import (
    ACTIONS,
    Action,
    AttemptTurns,
    Failure,
    ModelScript,
    Turn,
    Usage,
    attempt_of,
    load_model_script,
    model_script,
    task_of,
)

__all__ = [
    "ACTIONS",
    "Action",
    "AttemptTurns",
    "Failure",
    "ModelScript",
    "Turn",
    "Usage",
    "attempt_of",
    "load_model_script",
    "model_script",
    "task_of",
]
