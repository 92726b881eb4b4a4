"""Running an agent's executable: its own process group, a timeout, stdout and stderr saved as they come.

Every adapter runs its CLI through :func:`run_process`.  The child gets its own
session (process group), an empty stdin unless a text is given (Codex reads
stdin when it is not a terminal and would wait forever), and stdout and stderr
are read on two threads, each line handed to ``on_line`` and written through
to the transcript files at once — a killed run still leaves everything it
printed.  When the timeout expires the whole group gets SIGTERM, then SIGKILL
after a grace period, so grandchildren (a shell, node workers) die too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

__all__ = ["ProcessOutcome", "find_executable", "run_process"]

log = logging.getLogger(__name__)

GRACE_S = 2.0


@attrs.frozen
class ProcessOutcome:
    """How a run ended.  ``exit_code`` is None when the executable was missing; negative when killed by a signal."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    missing: bool = False
    error: str = ""


def find_executable(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """``name`` resolved on ``PATH`` (of ``env`` if given), or as a path; None if it is not there."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) and Path(name).is_file() else None
    path = (env or os.environ).get("PATH", os.defpath)
    return shutil.which(name, path=path)


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    stdin_text: str | None = None,
    transcript: tuple[Path, Path] | None = None,
    on_line: Callable[[str], None] | None = None,
    grace_s: float = GRACE_S,
) -> ProcessOutcome:
    """Run ``argv`` in ``cwd``; kill its process group after ``timeout_s``.  Never raises for the child's failures."""
    started = time.monotonic()
    exe = find_executable(argv[0], env)
    if exe is None:
        return ProcessOutcome(None, "", "", 0.0, missing=True, error=f"{argv[0]}: executable not found on PATH")
    files: list[IO[str]] = []
    if transcript is not None:
        transcript[0].parent.mkdir(parents=True, exist_ok=True)
        files = [transcript[0].open("w", encoding="utf-8"), transcript[1].open("w", encoding="utf-8")]
    try:
        try:
            proc = subprocess.Popen(  # argv is built by the adapter, never through a shell
                [exe, *argv[1:]],
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            return ProcessOutcome(None, "", "", time.monotonic() - started, missing=True,
                                  error=f"{argv[0]}: cannot start: {exc.strerror or exc}")  # fmt: skip
        out_lines: list[str] = []
        err_lines: list[str] = []
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, out_lines, files[0] if files else None, on_line)),
            threading.Thread(target=_pump, args=(proc.stderr, err_lines, files[1] if files else None, None)),
        ]
        for r in readers:
            r.daemon = True
            r.start()
        if stdin_text is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, OSError):
                proc.stdin.write(stdin_text)
            with contextlib.suppress(BrokenPipeError, OSError):
                proc.stdin.close()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            log.warning("%s: no exit after %.0f s: killing its process group", argv[0], timeout_s)
            _kill_group(proc, grace_s)
        except BaseException:  # Ctrl-C while waiting: do not leave the agent running
            _kill_group(proc, grace_s)
            raise
        else:
            _reap_group(proc)  # the agent exited: nothing it started may outlive it
        for r in readers:
            r.join(timeout=grace_s + 5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return ProcessOutcome(
            proc.returncode, "".join(out_lines), "".join(err_lines), time.monotonic() - started, timed_out
        )
    finally:
        for f in files:
            f.close()


def _pump(stream: IO[str] | None, sink: list[str], copy: IO[str] | None, on_line: Callable[[str], None] | None) -> None:
    if stream is None:
        return
    with contextlib.suppress(ValueError, OSError):  # the stream closed under us when the group was killed
        for line in stream:
            sink.append(line)
            if copy is not None:
                copy.write(line)
                copy.flush()
            if on_line is not None:
                try:
                    on_line(line)
                except Exception:  # a logging callback must not stop the reading
                    log.exception("line handler failed")


def _kill_group(proc: subprocess.Popen[str], grace_s: float) -> None:
    """SIGTERM the group, give it ``grace_s``, then SIGKILL whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    _reap_group(proc)


def _reap_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL anything left in the child's process group (a daemon it started), and wait for the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
