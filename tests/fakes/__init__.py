"""Fake executables of the coding-agent CLIs maestro drives: ``claude``, ``codex`` and ``aider``.

Put :data:`FAKES_DIR` first on ``PATH`` and an adapter runs them by name.  They are
stdlib-only Python scripts that parse their command line like the real CLIs (Claude Code
2.1.328, codex-cli 0.169.0, aider 0.86.2) and print what the real ones print, field for
field: the shapes come from /work/shared/protocols.md and the real captures copied into ``captures/`` beside
this file (their README says how each was recorded).  ``tests/test_fakes.py`` pins them to the captures.

Environment:

``FAKE_SCENARIO``  what happens (default ``success``): ``success``, ``max_turns``, ``auth``,
                   ``rate_limit``, ``budget``, ``permission_denied``, ``malformed``, ``crash``,
                   ``hang``, ``plan``, ``stdin_wait`` (codex), ``no_conversation`` (claude with
                   ``--resume``).  A scenario a fake does not model exits 3 with a message.
``FAKE_LOG``       a file; every invocation appends one JSON line ``{"prog", "argv"
                   (without the program), "cwd", "stdin" (text read, or null), "pid",
                   "scenario"}`` once its stdin is read (or when it refuses its arguments), and
                   ``hang`` adds ``{"prog", "event": "grandchild", "grandchild_pid", "pid"}``.
``FAKE_WRITE``     a path relative to the working directory (codex: to ``-C``) that the
                   ``success``/``malformed`` run writes, when the agent's permissions allow it.
``FAKE_CONTENT``   what it writes (default ``"done\\n"``).
``FAKE_PRD``, ``FAKE_TASKS``  files whose texts form the ``plan`` answer
                   ``{"prd_markdown", "tasks_yaml"}`` (default: a small valid plan).

Permissions are modelled, as in the real CLIs: claude writes only with
``--permission-mode acceptEdits|auto|bypassPermissions``, ``--dangerously-skip-permissions`` or
an ``Edit``/``Write`` rule in ``--allowedTools`` (otherwise a ``permission_denials`` entry, exit
0); codex writes only with ``--sandbox workspace-write|danger-full-access`` (its default is
read-only: a failed ``file_change``, exit 0).  Helpers for tests follow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["FAKES_DIR", "fake_env", "grandchild_pids", "invocations", "pid_alive", "read_log"]

FAKES_DIR = Path(__file__).resolve().parent
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
