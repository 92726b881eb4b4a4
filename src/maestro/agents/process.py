"""Running an agent's executable: its own process group, a timeout, stdout and stderr saved as they come.

Every adapter runs its CLI through :func:`run_process`.  The child gets its own
session (process group), an empty stdin unless a text is given (Codex reads
stdin when it is not a terminal and would wait forever), and stdout and stderr
are read on two threads, each line handed to ``on_line`` and written through
to the transcript files at once — a killed run still leaves everything it
printed.  A text for stdin is written on a third thread, so a child that never
reads it cannot hold off the timeout.  When the timeout expires the whole group
gets SIGTERM, then SIGKILL after a grace period (sent even if a second Ctrl-C
cuts the grace period short), so grandchildren (a shell, node workers) die too.
A grandchild that left the group (``setsid``) and keeps the output open is not
waited for more than :data:`READ_WAIT_S`.  What keeps the process from starting
(a missing executable, a missing working directory, a command line too long, a
NUL character) is an outcome with ``error`` set, never an exception.
"""

from __future__ import annotations

import contextlib
import errno
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

__all__ = ["ProcessOutcome", "find_executable", "kill_all", "run_process"]

log = logging.getLogger(__name__)

GRACE_S = 2.0


@attrs.frozen
class ProcessOutcome:
    """How a run ended.  ``exit_code`` is negative when killed by a signal, None when nothing ran.

    When nothing ran, ``error`` says why: ``missing`` is true when the executable
    is not there (or cannot be executed); otherwise the process could not be
    started (a missing working directory, a command line too long for the
    system, a NUL character in an argument) and ``error`` is also its ``stderr``,
    for callers that only show what a command printed.
    """

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
    """Run ``argv`` in ``cwd``; kill its process group after ``timeout_s``.  Never raises for the child's failures.

    It returns within about ``timeout_s + grace_s + READ_WAIT_S`` even when something
    the child started outside its process group keeps its output open.
    """
    started = time.monotonic()
    exe = find_executable(argv[0], env)
    if exe is None:
        return ProcessOutcome(None, "", "", 0.0, missing=True, error=f"{argv[0]}: executable not found on PATH")
    if not Path(cwd).is_dir():
        what = "is not a folder" if Path(cwd).exists() else "does not exist"
        return _not_started(started, f"the working directory {cwd} {what}")
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
        except ValueError as exc:  # a NUL character in an argument or in the environment
            return _not_started(
                started, f"{argv[0]}: cannot start: {exc} (a NUL character in an argument or the environment)"
            )
        except OSError as exc:
            return _start_failure(argv, cwd, started, exc)
        out_lines: list[str] = []
        err_lines: list[str] = []
        done = threading.Event()  # set when run_process returns: a reader still going discards what it reads
        copies: list[IO[str] | None] = [*files] if files else [None, None]
        threads = [
            threading.Thread(target=_pump, args=(proc.stdout, out_lines, copies[0], on_line, done)),
            threading.Thread(target=_pump, args=(proc.stderr, err_lines, copies[1], None, done)),
        ]
        if stdin_text is not None:  # on a thread: a child that never reads must not hold off the timeout
            threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin_text)))
        files = []  # from here each reader closes its own transcript file
        for t in threads:
            t.daemon = True
            t.start()
        timed_out = False
        with _LIVE_LOCK:
            _LIVE.add(proc.pid)
        try:
            _wait(proc, timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            log.warning("%s: no exit after %.0f s: killing its process group", argv[0], timeout_s)
            _kill_group(proc, grace_s)
        except BaseException:  # Ctrl-C while waiting: do not leave the agent running
            _kill_group(proc, grace_s)
            raise
        else:
            _reap_group(proc)  # the agent exited: nothing it started may outlive it
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc.pid)
        _finish(argv[0], threads)
        done.set()
        return ProcessOutcome(
            proc.returncode, "".join(list(out_lines)), "".join(list(err_lines)), time.monotonic() - started, timed_out
        )
    finally:
        for f in files:
            with contextlib.suppress(OSError):
                f.close()


_LIVE: set[int] = set()  # process groups of the children running now (each child leads its own)
_LIVE_LOCK = threading.Lock()


def kill_all() -> int:
    """SIGKILL the process group of every child :func:`run_process` is waiting for; return how many.

    For a second Ctrl-C: the threads waiting for those children then return at once.
    """
    with _LIVE_LOCK:
        groups = list(_LIVE)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    if groups:
        log.warning("killed %d running agent process group(s)", len(groups))
    return len(groups)


READ_WAIT_S = 3.0
"""How long, after the child is gone, the output is still read (what a grandchild outside the group still holds)."""


def _finish(name: str, threads: list[threading.Thread]) -> None:
    """Wait a little for the readers (and the stdin writer), each of which closes its own pipe when done.

    A thread still alive is blocked in the pipe, holding the stream's lock (closing
    the stream would block as long): a grandchild that left the process group keeps
    the pipe open.  It is left to its daemon thread, which closes it at the end, and logged.
    """
    deadline = time.monotonic() + READ_WAIT_S
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [what for t, what in zip(threads, ("output", "error output", "stdin"), strict=False) if t.is_alive()]
    if stuck:
        log.warning("%s: a process that left its process group still holds its %s open: no longer waited for",
                    name, " and ".join(stuck))  # fmt: skip


def _not_started(started: float, error: str) -> ProcessOutcome:
    return ProcessOutcome(None, "", error, time.monotonic() - started, error=error)


def _start_failure(argv: Sequence[str], cwd: Path, started: float, exc: OSError) -> ProcessOutcome:
    """The outcome of a Popen that raised: ``missing`` only when the executable itself cannot be run."""
    why = exc.strerror or str(exc)
    filename = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else None
    if filename is not None and filename == os.fsdecode(os.fspath(cwd)):
        return _not_started(started, f"the working directory {cwd} cannot be entered: {why}")
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return ProcessOutcome(None, "", "", time.monotonic() - started, missing=True,
                              error=f"{argv[0]}: cannot start: {why}")  # fmt: skip
    if exc.errno == errno.E2BIG:
        sizes = [len(os.fsencode(a)) for a in argv]
        why = (f"{why}: the command line is {sum(sizes) + len(sizes)} bytes, its longest argument {max(sizes)} "
               "(Linux takes at most 128 KiB in one argument)")  # fmt: skip
    return _not_started(started, f"{argv[0]}: cannot start: {why}")


def _pump(
    stream: IO[str] | None,
    sink: list[str],
    copy: IO[str] | None,
    on_line: Callable[[str], None] | None,
    done: threading.Event,
) -> None:
    try:
        if stream is None:
            return
        with contextlib.suppress(ValueError, OSError):  # the stream closed under us
            for line in stream:
                if done.is_set():  # run_process has returned: drain, so the writer does not block, and drop
                    if copy is not None:
                        copy.close()
                        copy = None
                    continue
                sink.append(line)
                if copy is not None:
                    copy.write(line)
                    copy.flush()
                if on_line is not None:
                    try:
                        on_line(line)
                    except Exception:  # a logging callback must not stop the reading
                        log.exception("line handler failed")
    finally:
        for f in (copy, stream):
            if f is not None:
                with contextlib.suppress(OSError, ValueError):
                    f.close()


def _feed(stream: IO[str] | None, text: str) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):  # the child exited without reading it all
        stream.write(text)
    with contextlib.suppress(OSError, ValueError):
        stream.close()


def _wait(proc: subprocess.Popen[str], timeout_s: float) -> None:
    """``proc.wait(timeout)`` without its polling: ``Popen.wait`` with a timeout sleeps 1, 2, 4 … 50 ms between
    looks, so a 50 ms agent is seen to end about 12 ms late.  A thread does the blocking wait instead."""
    exited = threading.Event()

    def waiter() -> None:
        with contextlib.suppress(Exception):
            proc.wait()
        exited.set()

    threading.Thread(target=waiter, name="maestro-wait", daemon=True).start()
    if not exited.wait(timeout_s):
        raise subprocess.TimeoutExpired(proc.args, timeout_s)


def _kill_group(proc: subprocess.Popen[str], grace_s: float) -> None:
    """SIGTERM the group, give it ``grace_s``, then SIGKILL whatever of the group is left.

    The SIGKILL is sent even when the wait is interrupted (a second Ctrl-C).
    """
    try:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    finally:
        _reap_group(proc)


def _reap_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL anything left in the child's process group (a daemon it started), and wait for the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
