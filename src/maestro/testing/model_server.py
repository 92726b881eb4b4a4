"""The scripted model server, where the tests and docs name it: :mod:`maestro.agents.model_server` holds it.

It lives with the agents so that ``maestro demo --agent claude`` (the run layer) can start it; this module keeps
``from maestro.testing.model_server import ModelServer`` working.
"""

from __future__ import annotations

from maestro.agents.model_server import CODEX_MODEL, KEY, ModelServer, RecordedRequest, codex_config_toml

__all__ = ["CODEX_MODEL", "KEY", "ModelServer", "RecordedRequest", "codex_config_toml"]
