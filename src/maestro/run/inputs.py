"""What a run was started with (``run.json`` in the session folder), so that it can be resumed or re-driven."""

from __future__ import annotations

import json

import attrs
import cattrs

from maestro.config.model import Config
from maestro.core.errors import StoreError
from maestro.store.filestore import Store

__all__ = ["RUN_FILE", "RUN_VERSION", "RunInputs", "load_run_inputs"]

RUN_FILE = "run.json"
RUN_VERSION = 1


@attrs.frozen
class RunInputs:
    """The run's options and its whole configuration (the agent section included)."""

    config: Config
    worktree: bool = False
    prd: bool = False
    tasks: bool = False

    def to_json(self) -> str:
        doc = {"version": RUN_VERSION, "worktree": self.worktree, "prd": self.prd, "tasks": self.tasks,
               "config": cattrs.unstructure(self.config)}  # fmt: skip
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def load_run_inputs(store: Store, session_id: str) -> RunInputs:
    """The inputs of a session's run (``run.json``); a one-line error if they are missing or unreadable."""
    path = store.session_dir(session_id) / RUN_FILE
    if not store.exists(session_id):
        raise StoreError(f"no session {session_id!r} in {store.root}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("version") != RUN_VERSION:
            raise ValueError(f"expected a JSON object with version {RUN_VERSION}")
        config = cattrs.structure(doc["config"], Config)
        return RunInputs(config, bool(doc.get("worktree")), bool(doc.get("prd")), bool(doc.get("tasks")))
    except FileNotFoundError:
        raise StoreError(f"{path}: missing: session {session_id} was not started by `maestro run`") from None
    except (OSError, ValueError, KeyError, TypeError, cattrs.BaseValidationError) as exc:
        raise StoreError(f"{path}: cannot read the session's run inputs: {exc}") from exc
