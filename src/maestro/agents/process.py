"""Running an agent's executable: its own process group, a timeout, stdout and stderr saved as they come.

Every adapter runs its CLI through :func:`run_process`.  The child gets its own
session (process group), an empty stdin unless a text is given (Codex reads
stdin when it is not a terminal and would wait forever), and stdout and stderr
are read by the calling thread itself, with the child's exit, through one
``selectors`` loop (no thread is started: three thread starts a run cost more
than a 50 ms agent's spawn), whatever the pipe holds at a time (up to 64 KiB),
written through to the transcript files at once — a killed run still leaves
everything it printed — and each stdout line handed to ``on_line``.  Memory
does not grow with the output: the outcome keeps the first
:data:`KEEP_HEAD` and the last :data:`KEEP_TAIL` characters of each stream
(whole lines, with a line saying what was left out between them), the
transcript everything; a line is put together for ``on_line`` up to
:data:`LINE_MAX` characters.  A text for stdin is written as the pipe takes it, in the same loop,
so a child that never reads it cannot hold off the timeout.  The child's exit is seen through a
pidfd (Linux 5.3 and later; elsewhere a waiting thread wakes the loop).  When the timeout expires the whole group
gets SIGTERM, then SIGKILL after a grace period (sent even if a second Ctrl-C
cuts the grace period short), so grandchildren (a shell, node workers) die too.
A grandchild that left the group (``setsid``) and keeps the output open is not
waited for more than :data:`READ_WAIT_S`.  What keeps the process from starting
(a missing executable, a missing working directory, a command line too long, a
NUL character) is an outcome with ``error`` set, never an exception.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import logging
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

__all__ = ["ProcessOutcome", "find_executable", "kill_all", "run_process"]

log = logging.getLogger(__name__)

GRACE_S = 2.0
KEEP_HEAD = 64 * 1024
"""Characters of the start of each stream the outcome keeps (a session id, the first error come early)."""
KEEP_TAIL = 1024 * 1024
"""Characters of the end of each stream the outcome keeps (a result line, the last error come last)."""
LINE_MAX = 4 * 1024 * 1024
"""The longest line handed whole to ``on_line``; a longer one is cut (the transcript has it whole)."""
READ_SIZE = 64 * 1024


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
    left_out: int = 0
    """Characters of output (stdout and stderr together) not kept in ``stdout`` and ``stderr``: the middle of a
    long output, which the transcript files have."""


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
    keep: tuple[int, int] = (KEEP_HEAD, KEEP_TAIL),
) -> ProcessOutcome:
    """Run ``argv`` in ``cwd``; kill its process group after ``timeout_s``.  Never raises for the child's failures.

    It returns within about ``timeout_s + grace_s + READ_WAIT_S`` even when something
    the child started outside its process group keeps its output open.  The outcome's
    ``stdout`` and ``stderr`` are whole up to ``keep[0] + keep[1]`` characters; past that,
    the first ``keep[0]`` and the last ``keep[1]`` (cut at line ends), the lines between
    counted in ``left_out`` and in a line of their own: ``[maestro: M characters (N lines)
    of output left out here …]``.
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
                start_new_session=True,
            )
        except ValueError as exc:  # a NUL character in an argument or in the environment
            return _not_started(
                started, f"{argv[0]}: cannot start: {exc} (a NUL character in an argument or the environment)"
            )
        except OSError as exc:
            return _start_failure(argv, cwd, started, exc)
        note = "; the transcript has them all" if transcript is not None else ""
        out_kept, err_kept = _Kept(*keep, note), _Kept(*keep, note)
        lines = _Lines(on_line, argv[0]) if on_line is not None else None
        copies: list[IO[str] | None] = [*files] if files else [None, None]
        files = []  # from here the loop closes the transcript files
        streams = _Streams(proc, [(proc.stdout, out_kept, copies[0], lines), (proc.stderr, err_kept, copies[1], None)],
                           stdin_text)  # fmt: skip
        timed_out = False
        with _LIVE_LOCK:
            _LIVE.add(proc.pid)
        try:
            try:
                streams.until_exit(time.monotonic() + timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                log.warning("%s: no exit after %.0f s: killing its process group", argv[0], timeout_s)
                try:  # SIGTERM, and the output still read while it winds down (a full pipe would hold it up)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        streams.until_exit(time.monotonic() + grace_s)
                finally:
                    _reap_group(proc)
            except BaseException:  # Ctrl-C while waiting: do not leave the agent running
                _kill_group(proc, grace_s)
                raise
            else:
                _reap_group(proc)  # the agent exited: nothing it started may outlive it
            finally:
                with _LIVE_LOCK:
                    _LIVE.discard(proc.pid)
            streams.drain(argv[0], time.monotonic() + READ_WAIT_S)
        finally:
            streams.close()
        (stdout, out_left), (stderr, err_left) = out_kept.text(), err_kept.text()
        return ProcessOutcome(proc.returncode, stdout, stderr, time.monotonic() - started, timed_out,
                              left_out=out_left + err_left)  # fmt: skip
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


class _Kept:
    """What the outcome keeps of one stream: its first ``head`` characters and its last ``tail``, in pieces as read.

    Everything between is counted and dropped as it goes, so memory stays at about
    ``head + tail + READ_SIZE`` whatever the output's size.  The reader adds and
    :func:`run_process` reads under a lock: a reader a grandchild holds up may still add.
    """

    def __init__(self, head: int, tail: int, note: str) -> None:
        self.head_max, self.tail_max, self.note = head, tail, note
        self.head: list[str] = []
        self.head_len = 0
        self.tail: deque[str] = deque()
        self.tail_len = 0
        self.dropped = 0  # characters
        self.dropped_lines = 0  # line ends among them
        self.before_tail = ""  # the last character dropped: the one before the tail
        self.lock = threading.Lock()

    def add(self, text: str) -> None:
        with self.lock:
            if self.head_len < self.head_max:
                first = text[: self.head_max - self.head_len]
                self.head.append(first)
                self.head_len += len(first)
                text = text[len(first) :]
                if not text:
                    return
            self.tail.append(text)
            self.tail_len += len(text)
            while self.tail_len - len(self.tail[0]) >= self.tail_max:
                gone = self.tail.popleft()
                self.tail_len -= len(gone)
                self.dropped += len(gone)
                self.dropped_lines += gone.count("\n")
                self.before_tail = gone[-1]

    def text(self) -> tuple[str, int]:
        """The kept text and how many characters were left out (0: the text is the whole stream)."""
        with self.lock:
            head, tail = "".join(self.head), "".join(self.tail)
            dropped, lines, before = self.dropped, self.dropped_lines, self.before_tail
        if len(tail) > self.tail_max:
            cut = len(tail) - self.tail_max
            dropped += cut
            lines += tail.count("\n", 0, cut)
            before = tail[cut - 1]
            tail = tail[cut:]
        if not dropped:
            return head + tail, 0
        end = head.rfind("\n") + 1  # whole lines on both sides of the gap (a piece of one long line otherwise)
        if 0 < end < len(head):
            dropped += len(head) - end
            head = head[:end]
        if before != "\n":
            start = tail.find("\n") + 1
            if 0 < start < len(tail):
                dropped += start
                lines += 1
                tail = tail[start:]
        what = f"{dropped} characters ({lines} line{'' if lines == 1 else 's'})"
        gap = f"[maestro: {what} of output left out here{self.note}]\n"
        return head + ("" if head.endswith("\n") or not head else "\n") + gap + tail, dropped


class _Lines:
    """Puts the pieces read back into lines for ``on_line`` (each with its ``\\n``; the last one may have none)."""

    def __init__(self, on_line: Callable[[str], None], name: str) -> None:
        self.on_line = on_line
        self.name = name
        self.parts: list[str] = []
        self.size = 0  # of the line being put together, cut or not
        self.cut = 0  # lines cut so far (the first is logged)

    def feed(self, text: str) -> None:
        start = 0
        while (end := text.find("\n", start)) >= 0:
            piece = text[start : end + 1]
            start = end + 1
            if self.parts:
                self._add(piece)
                self._line("".join(self.parts))
            elif len(piece) <= LINE_MAX:
                self._line(piece)
            else:
                self.size = len(piece)
                self._line(piece[:LINE_MAX])
        if start < len(text):
            self._add(text[start:])

    def close(self) -> None:
        if self.parts:
            self._line("".join(self.parts))

    def _add(self, piece: str) -> None:
        room = LINE_MAX - min(self.size, LINE_MAX)
        if room:
            self.parts.append(piece[:room])
        self.size += len(piece)

    def _line(self, line: str) -> None:
        if self.size > LINE_MAX:
            self.cut += 1
            if self.cut == 1:
                log.warning("%s: a line of %d characters was cut to its first %d for reading (the transcript has "
                            "it whole)", self.name, self.size, LINE_MAX)  # fmt: skip
            line = line if line.endswith("\n") else line + "\n"
        self.parts = []
        self.size = 0
        try:
            self.on_line(line)
        except Exception:  # a logging callback must not stop the reading
            log.exception("line handler failed")


class _Streams:
    """The child's output pipes, its stdin text and its exit, watched by one ``selectors`` loop in the caller.

    Each piece read (what the pipe holds, up to :data:`READ_SIZE`) is decoded (UTF-8, bad bytes replaced,
    universal newlines), kept, written to its transcript and flushed, and put into lines.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        outputs: Sequence[tuple[IO[bytes] | None, _Kept, IO[str] | None, _Lines | None]],
        stdin_text: str | None,
    ) -> None:
        self.proc = proc
        self.sel = selectors.DefaultSelector()
        self.copies: list[IO[str]] = []
        self.exit_fd: int | None = None
        self._wake: tuple[int, int] | None = None
        for stream, kept, copy, lines in outputs:
            if copy is not None:
                self.copies.append(copy)
            if stream is None:
                continue
            decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")(errors="replace"),
                                                   translate=True)  # fmt: skip
            self.sel.register(stream.fileno(), selectors.EVENT_READ, ("out", stream, kept, copy, lines, decoder))
        self.pending = b""
        if stdin_text is not None and proc.stdin is not None:
            self.pending = stdin_text.encode("utf-8", "replace")
            os.set_blocking(proc.stdin.fileno(), False)
            self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, ("in", proc.stdin))
            if not self.pending:
                self._close_stdin()
        self._watch_exit()

    def _watch_exit(self) -> None:
        """A pidfd readable when the child exits; without one (not Linux, an old kernel) a thread that waits and
        then writes to a pipe the loop watches."""
        try:
            self.exit_fd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            r, w = os.pipe()
            self._wake = (r, w)
            self.exit_fd = r

            def waiter() -> None:
                with contextlib.suppress(Exception):
                    self.proc.wait()
                with contextlib.suppress(OSError):
                    os.write(w, b"x")

            threading.Thread(target=waiter, name="maestro-wait", daemon=True).start()
        self.sel.register(self.exit_fd, selectors.EVENT_READ, ("exit",))

    def until_exit(self, deadline: float) -> None:
        """Read and write until the child exits (reaped); :class:`subprocess.TimeoutExpired` at ``deadline``."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.proc.args, 0)
            for key, _ in self.sel.select(left):
                if key.data[0] == "exit":
                    self.sel.unregister(key.fd)
                    self.proc.wait()
                    return
                self._serve(key)

    def drain(self, name: str, deadline: float) -> None:
        """The child is gone: read what its pipes still hold, until they close or ``deadline`` (a process that
        left the group may hold them open: it is not waited for longer)."""
        self._close_stdin()
        while any(k.data[0] == "out" for k in self.sel.get_map().values()):
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("%s: a process that left its process group still holds its output open: no longer "
                            "waited for", name)  # fmt: skip
                return
            for key, _ in self.sel.select(left):
                if key.data[0] == "exit":
                    self.sel.unregister(key.fd)
                else:
                    self._serve(key)

    def _serve(self, key: selectors.SelectorKey) -> None:
        if key.data[0] == "in":
            try:
                n = os.write(key.fd, self.pending[:READ_SIZE])
            except BlockingIOError:
                return
            except OSError:  # the child exited, or closed its stdin, without reading it all
                self._close_stdin()
                return
            self.pending = self.pending[n:]
            if not self.pending:
                self._close_stdin()
            return
        _, stream, kept, copy, lines, decoder = key.data
        try:
            data = os.read(key.fd, READ_SIZE)  # what the pipe holds, up to READ_SIZE: no waiting for more
        except OSError:
            data = b""
        text = decoder.decode(data, final=not data)
        if text:
            kept.add(text)
            if copy is not None:
                copy.write(text)
                copy.flush()
            if lines is not None:
                lines.feed(text)
        if not data:
            if lines is not None:
                lines.close()
            self.sel.unregister(key.fd)
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def _close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(stdin.fileno())
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def close(self) -> None:
        """Close what is left: the pipes (a grandchild's is dropped), the transcripts, the exit watch."""
        self._close_stdin()
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fd)
            if key.data[0] == "out":
                with contextlib.suppress(OSError, ValueError):
                    key.data[1].close()
        self.sel.close()
        for copy in self.copies:
            with contextlib.suppress(OSError, ValueError):
                copy.close()
        fds = [self.exit_fd] if self._wake is None else list(self._wake)
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
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


def _reap_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL anything left in the child's process group (a daemon it started), and wait for the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
