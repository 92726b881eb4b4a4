"""The session store: ``<repo>/.flow/maestro/``.

::

    .flow/maestro/
    ├── sessions/<session-id>/
    │   ├── events.jsonl        append-only source of truth, fsync'd, one event a line
    │   ├── metadata.json       derived: session info, state, timestamps
    │   ├── decisions.json      derived: every decision with its rationale
    │   ├── checkpoints.json    derived: commits and tags
    │   ├── execution-log.md    derived: the human-readable [Maestro] log
    │   ├── final-report.md     written at handoff
    │   └── lock                pid of the process holding the session
    ├── decisions/              decision history across sessions
    └── config.yaml

Reading never writes: :meth:`Store.read_events` and replay take no lock and
create nothing.  Writing is done through a :class:`~maestro.Session`, which
holds the session's lock for its lifetime.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from maestro.core import yamlio
from maestro.core.errors import SessionLocked, StoreError, YamlError, error_text
from maestro.core.records import SESSION_ID, Event, converter, structure_event
from maestro.core.text import read_input

__all__ = ["EventLog", "Store", "atomic_write", "find_repo", "fsync_dir"]

log = logging.getLogger("maestro")

EVENTS = "events.jsonl"
_DECODER = json.JSONDecoder()


def find_repo(path: str | os.PathLike[str]) -> Path:
    """The top of the git repository holding ``path``; :class:`StoreError` if there is none.

    A ``.git`` folder with no ``HEAD`` above ``path`` is passed over, as git passes it over (the real CLIs'
    sandboxes leave an empty ``/tmp/.git``); at ``path`` itself it is refused (dulwich would write into it).
    """
    start = Path(path).resolve()
    if not start.exists():
        raise StoreError(f"{path}: no such directory")
    here = start if start.is_dir() else start.parent
    for d in (here, *here.parents):
        dotgit = d / ".git"
        if dotgit.is_dir():
            if not (dotgit / "HEAD").is_file():
                if d == here:
                    raise StoreError(f"{dotgit}: not a git directory (it has no HEAD)")
                continue
            return d
        if dotgit.exists():
            _check_gitdir_file(dotgit)
            return d
    raise StoreError(f"{path}: not a git repository (no .git here or above)")


def _check_gitdir_file(dotgit: Path) -> None:
    """Accept a ``.git`` file (``gitdir: <path>``) that names a repository of its own (``git init
    --separate-git-dir``, a submodule's checkout); refuse, on one line, one whose folder is not a git directory,
    or a linked worktree (``git worktree add``): a session's worktrees and refs belong to the main checkout."""
    try:
        with dotgit.open("rb") as f:
            raw = f.read(4097)
        text = raw.decode("utf-8").strip() if len(raw) <= 4096 else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{dotgit}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.startswith("gitdir:") or "\n" in text:
        raise StoreError(f"{dotgit}: neither a git directory nor a 'gitdir: <path>' file")
    gitdir = (dotgit.parent / text[len("gitdir:") :].strip()).resolve()
    if not (gitdir / "HEAD").is_file():
        raise StoreError(f"{dotgit}: points to {gitdir}, which is not a git directory")
    if (gitdir / "commondir").is_file():
        main = _main_checkout(gitdir)
        raise StoreError(f"{dotgit.parent}: a linked worktree (git worktree add); maestro runs in the main checkout"
                         f"{f' ({main})' if main else ''}")  # fmt: skip


def _main_checkout(gitdir: Path) -> Path | None:
    """The main checkout of the linked worktree whose admin folder is ``gitdir`` (None if it cannot be told)."""
    try:
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except (OSError, UnicodeDecodeError):
        return None
    return common.parent if common.name == ".git" else None


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_event(event: Event) -> bytes:
    """One log line: compact JSON, keys in a fixed order, a newline at the end.

    Text that UTF-8 cannot hold (a lone surrogate: bytes of a command-line argument that were not UTF-8) is a
    :class:`StoreError`, before anything is written.
    """
    obj = converter.unstructure(event)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = f"{text[exc.start : exc.end]!a}"  # '\udcff': the byte 0xff of an argument that was not UTF-8
        raise StoreError(f"cannot record a {event.kind} event: its text holds {bad}, which is not UTF-8") from None


def read_events(path: Path) -> tuple[list[Event], int]:
    """Parse ``events.jsonl``; return the events and the byte length of their intact prefix.

    A torn last line (no newline at the end: a crash mid-write) is dropped with
    a warning; any other bad line raises :class:`StoreError` naming the line.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        log.warning("%s: dropping a torn last line (%d bytes, a write cut short)", path, len(raw) - end)
    try:
        text = raw[:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        where = raw.count(b"\n", 0, exc.start) + 1
        raise StoreError(f"{path}:{where}: not UTF-8 text") from exc
    events: list[Event] = []
    decode = _DECODER.raw_decode
    for lineno, line in enumerate(text.split("\n")[:-1], start=1):
        try:
            obj, stop = decode(line)
            if stop != len(line) and line[stop:].strip():
                raise ValueError(f"extra data after the JSON object, column {stop + 1}")
            event = structure_event(obj)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{path}:{lineno}: not a valid event: {error_text(exc)}") from exc
        except RecursionError:
            raise StoreError(f"{path}:{lineno}: not a valid event: JSON nested too deeply") from None
        if event.seq != lineno:
            raise StoreError(f"{path}:{lineno}: seq is {event.seq}, expected {lineno} (seq runs 1, 2, 3 … no gaps)")
        events.append(event)
    return events, end


def check_session_log(path: Path, events: list[Event]) -> None:
    """A session's log starts with its ``session`` event; anything else is not a session."""
    if not events or events[0].kind != "session":
        raise StoreError(f"{path}: not a session log: its first event must be of kind 'session'")


class EventLog:
    """An open ``events.jsonl``: appends are written, flushed and fsync'd before they return."""

    def __init__(self, path: Path, *, next_seq: int, size: int) -> None:
        self.path = path
        self.next_seq = next_seq
        self._size = size
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open for writing: {exc.strerror or exc}") from exc

    def append(self, kind: str, data: Mapping[str, Any], ts: str) -> Event:
        """Write one event durably and return it.  On failure nothing is left half-written."""
        if self._fd is None:
            raise StoreError(f"{self.path}: the event log is closed")
        event = Event(1, self.next_seq, ts, kind, data)
        line = encode_event(event)
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.EIO, f"short write ({written} of {len(line)} bytes)")
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # leave no torn line for the next append to glue onto
                os.ftruncate(self._fd, self._size)
            raise StoreError(f"{self.path}: cannot append event {event.seq}: {exc.strerror or exc}") from exc
        self._size += len(line)
        self.next_seq += 1
        return event

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Lock:
    """An exclusive ``flock`` on ``<session>/lock``, released by the kernel if the holder dies."""

    def __init__(self, path: Path, session_id: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open lock file: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise SessionLocked(session_id, int(holder) if holder.isdigit() else None) from None
        try:  # the pid, for a message to whoever finds it held (a full disk refuses it: ENOSPC)
            os.ftruncate(fd, 0)
            pid = f"{os.getpid()}\n".encode()
            if os.write(fd, pid) != len(pid):
                raise OSError(errno.EIO, "short write")
        except OSError as exc:
            os.close(fd)  # the flock goes with it
            raise StoreError(f"{path}: cannot write the lock file: {exc.strerror or exc}") from None
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Store:
    """The ``.flow/maestro`` directory of one repository.

    Constructing a store checks that ``repo`` is (inside) a git repository and
    writes nothing.
    """

    def __init__(self, repo: str | os.PathLike[str] = ".") -> None:
        self.repo = find_repo(repo)
        self.root = self.repo / ".flow" / "maestro"

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def decisions_dir(self) -> Path:
        return self.root / "decisions"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @contextlib.contextmanager
    def decisions_lock(self) -> Iterator[None]:
        """Hold ``decisions/.lock`` (an exclusive flock, waited for) while the history is rewritten."""
        self.init()
        fd = os.open(self.decisions_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def session_dir(self, session_id: str) -> Path:
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            raise StoreError(f"bad session id {session_id!r} (letters, digits, '.', '_', '-')")
        return self.sessions_dir / session_id

    def events_path(self, session_id: str) -> Path:
        return self.session_dir(session_id) / EVENTS

    def session_ids(self) -> list[str]:
        """Every session in the store, oldest id first."""
        if not self.sessions_dir.is_dir():
            return []
        return sorted(p.name for p in self.sessions_dir.iterdir() if (p / EVENTS).is_file())

    def exists(self, session_id: str) -> bool:
        return self.events_path(session_id).is_file()

    def read_events(self, session_id: str) -> list[Event]:
        """The session's events, read-only (no lock, nothing written)."""
        path = self.events_path(session_id)
        if not path.is_file():
            raise StoreError(f"no session {session_id!r} in {self.root}")
        events = read_events(path)[0]
        check_session_log(path, events)
        return events

    def holder(self, session_id: str) -> int | None:
        """The pid of the live process holding the session, or None (nobody: it is paused, ended or stopped)."""
        path = self.session_dir(session_id) / "lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                pid = os.read(fd, 32).decode("ascii", "replace").strip()
                return int(pid) if pid.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def init(self) -> None:
        """Create the store's directories (idempotent)."""
        try:
            for d in (self.sessions_dir, self.decisions_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.root}: cannot create the session store: {exc.strerror or exc}") from exc

    def load_config(self) -> dict[str, Any]:
        """``config.yaml`` as a mapping (empty when there is none)."""
        if not self.config_path.is_file():
            return {}
        try:
            data = yamlio.load(read_input(self.config_path).decode("utf-8"), path=self.config_path)
        except YamlError as exc:
            at = "" if exc.line is None else f"line {exc.line}: "
            raise StoreError(f"{self.config_path}: cannot read config: {at}{exc.problem}") from exc
        except OSError as exc:  # a file past MAX_INPUT_BYTES too
            raise StoreError(f"{self.config_path}: cannot read config: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise StoreError(f"{self.config_path}: cannot read config: not UTF-8 text (byte {exc.start})") from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise StoreError(f"{self.config_path}: the config is a mapping of settings")
        return data

    # Sessions are created and opened through maestro.session (Session.create / Session.open).
