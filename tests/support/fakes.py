"""Running the fake agent CLIs of ``tests/fakes/`` (``claude``, ``codex``, ``aider``) and reading what they log.

What the fakes do, and the ``FAKE_*`` variables they read, is described in ``tests/fakes/__init__.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["FAKES_DIR", "fake_env", "grandchild_pids", "invocations", "pid_alive", "read_log"]

FAKES_DIR = Path(__file__).resolve().parents[1] / "fakes"
"""The folder holding the ``claude``, ``codex`` and ``aider`` fakes."""


def fake_env(
    scenario: str = "success",
    *,
    log: Path | None = None,
    write: str | None = None,
    content: str | None = None,
    base: dict[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """An environment running the fakes: ``FAKES_DIR`` first on ``PATH`` and the ``FAKE_*`` variables given."""
    env = dict(os.environ if base is None else base)
    for key in [k for k in env if k.startswith("FAKE_")]:
        del env[key]
    env["PATH"] = os.pathsep.join([str(FAKES_DIR), env.get("PATH", os.defpath)])
    env["FAKE_SCENARIO"] = scenario
    for key, value in (("FAKE_LOG", log), ("FAKE_WRITE", write), ("FAKE_CONTENT", content)):
        if value is not None:
            env[key] = str(value)
    env.update(extra)
    return env


def read_log(path: Path) -> list[dict[str, object]]:
    """Every record of a ``FAKE_LOG`` file, in order (none if the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def invocations(path: Path, prog: str | None = None) -> list[dict[str, object]]:
    """The invocation records of a ``FAKE_LOG`` file (not the events), optionally of one program."""
    return [r for r in read_log(path) if "event" not in r and (prog is None or r["prog"] == prog)]


def grandchild_pids(path: Path) -> list[int]:
    """The pids of the ``sleep 3600`` grandchildren that ``hang`` runs started."""
    return [int(str(r["grandchild_pid"])) for r in read_log(path) if r.get("event") == "grandchild"]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return not Path("/proc/self").exists()
    return state != "Z"
