"""Tampering: what an agent must not touch, looked at around every attempt; maestro's refs put back from the log.

The module holds one idea: a session's repository and store compared, look after look, with what maestro
itself wrote (its log, and what the log says of its refs), so that anything else that changed is named.

::

    guard = TamperGuard(session)                       # the baseline (the log is read whole, once)
    snap = guard.snapshot(attempt_ref=ref)             # before an attempt, on the coordinating thread
    found = guard.check(snap, commit=attempt.commit)   # after it, before its result is recorded: [Tampering, …]
    guard.restore()                                    # maestro's refs as the log says; the user's are reported
    guard.check(full=True)                             # before the session may complete: the whole log re-read

Each *look* (a snapshot or a check) compares with the previous look, so a change is found at the first look
after it, whichever attempt was running.  What is looked at:

* the user's refs (all but maestro's and ``refs/remotes/``, which a fetch moves) and ``HEAD`` (its symbolic
  target, or its commit when detached): reported once, never restored (the user may be working in the
  checkout, and git's reflog keeps a moved branch's old commit; a deleted branch's is in the message).
* the session's refs: its branch, its tags ``maestro/<s>/<n>`` and ``refs/maestro/<s>/…``.  The log is the
  authority: the branch is at the log's last checkpoint (each checkpoint recorded since the last look made on
  the one before, by first parent), each logged checkpoint has its tag peeling to its commit, no other tag
  appears.  The other refs keep the value maestro last saw, except what the :class:`Allowance` lets appear and
  an attempt's capture ref while it runs (any value until its check, then its commit).  Reported at every look
  until :meth:`TamperGuard.restore` puts them back.
* ``.git/config``, ``.git/hooks/*``, ``.git/info/*`` (``exclude`` and ``attributes`` decide what a capture
  stages, ``grafts`` what history is) and ``objects/info/alternates``: content and executable bit.
* the store: ``.flow`` and the session's folder there, its lock the same file (a new one lets a second maestro
  take the session), ``run.json`` (what a resume runs) unchanged, and the log.

The log.  maestro appends to ``events.jsonl`` on the coordinating thread only, and the looks run there, so at
a look the file must be exactly: what it was at the previous look (its last ``tail`` bytes are kept and
compared), then the events the session appended since, encoded again (``session.events[count:]``: the bytes
maestro wrote) — nothing less, nothing more, the same file (device, inode).  Events maestro appended while an
attempt ran are never a finding; a foreign append, a truncation, an edit near the end, a replaced or deleted
file are.  An edit further back is found by ``check(full=True)``: the whole file against the digest of every
byte verified since the guard was made.  The log is repaired when it holds a prefix of what maestro wrote (the
end written back) or all of it and more (the rest cut off, kept in ``events.jsonl.foreign-<k>``), so that it
stays readable; :attr:`TamperGuard.log_damaged` stays set either way: that session must never complete.

Reading costs what changed.  Where Linux's inotify is (one instance a guard, on every folder of ``refs/``, on
``.git``, ``hooks``, ``info`` and ``objects/info``), a look reads only the files it names and compares only
the refs they hold; a queue overflow or a watched folder moved means reading everything again.  Elsewhere
(``watch=False``, past the user's limit of watches) every look reads everything, each file through its stat
data (inode, size, mtime, ctime, mode): read again only when they differ, or when it had changed less than a
second before it was read (coarse file-system clocks: git's racy-clean rule).  What inotify does not report
(writes through ``mmap`` or another hard link, another machine on a network file system) is missed between
two reads of the same file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs
from dulwich.objects import Commit, ObjectID, ShaFile, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError
from maestro.core.records import CheckpointRecord, Event, structure_event
from maestro.git.identity import identity
from maestro.git.inotify import IN_IGNORED, IN_MOVE_SELF, IN_Q_OVERFLOW, Inotify
from maestro.session import Session
from maestro.store.filestore import atomic_write, encode_event

__all__ = ["AREAS", "SESSION_FILES", "Allowance", "Snapshot", "TamperGuard", "Tampering"]

log = logging.getLogger("maestro")

AREAS = ("user_ref", "head", "session_ref", "git_file", "store", "log")
SESSION_FILES = ("run.json",)  # written once when the session is made; a resume runs what it says
TAIL = 64 * 1024  # bytes of the log before the last look's mark that each look compares
RACY_NS = 1_000_000_000  # a file changed this recently before it was read is read again at the next look
WATCHED_DIRS = ("hooks", "info")
WATCHED_FILES = ("config", "objects/info/alternates")
NOT_USERS = (b"refs/heads/maestro/", b"refs/tags/maestro/", b"refs/maestro/", b"refs/remotes/")


@attrs.frozen
class Tampering:
    """One change an agent must not make: its area (:data:`AREAS`), what changed (a ref, a path), one line."""

    area: str
    name: str
    text: str

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class Allowance:
    """What may change between two looks besides the log's checkpoints and the attempts' capture refs.

    ``new_refs``: patterns (``fnmatch``) of refs under ``refs/maestro/<s>/`` that maestro makes while attempts
    run, which may appear (never move or vanish): ``pre-rollback-*``, what the integration worktree held when
    the merge queue showed it another commit.  ``user_commits``: the user's branches may move forward and new
    user branches and tags appear (someone committing in the checkout), and ``HEAD`` may move to a branch not
    maestro's or a commit none of the session's refs holds (someone switching branches); deletions, rewinds,
    sideways moves, and ``HEAD`` on maestro's work are still reported.  Off by default: an agent committing on
    ``main`` looks the same (a run turns it on: the user may keep working in the checkout).
    """

    new_refs: tuple[str, ...] = ("pre-rollback-*",)
    user_commits: bool = False


@attrs.frozen
class Snapshot:
    """A look taken before an attempt; :meth:`TamperGuard.check` takes it back when the attempt is over."""

    attempt_ref: bytes | None


def _short(value: bytes | None) -> str:
    if value is None:
        return "nothing"
    text = value.decode("utf-8", "replace")
    return text[5:] if text.startswith("ref: ") else text[:12]


def _events_after(session: Session, count: int) -> Sequence[Event]:
    """The session's events after its first ``count``: ``Session.events_since`` where there is one (it copies only
    those), else ``Session.events`` (which copies them all: half a millisecond at 40,000 events)."""
    since = getattr(session, "events_since", None)
    if since is not None:
        events: Sequence[Event] = since(count)
        return events
    return session.events[count:]


def _event(line: bytes) -> Event | None:
    try:
        return structure_event(json.loads(line))
    except (ValueError, TypeError, RecursionError):
        return None


class _Reader:
    """Files read through their stat data: read again only when it (or the clock: racy-clean) says so."""

    def __init__(self) -> None:
        self._cache: dict[str | bytes, tuple[tuple[int, ...], bytes]] = {}

    def read(self, path: str | bytes, st: os.stat_result | None = None) -> bytes | None:
        """The file's bytes and its executable bit as one last byte (``x`` or ``-``); None if there is none."""
        try:
            st = st if st is not None else os.stat(path)
            key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
            hit = self._cache.get(path)
            if hit is not None and hit[0] == key:
                return hit[1]
            with open(path, "rb") as fh:
                data = fh.read() + (b"x" if st.st_mode & 0o111 else b"-")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._cache.pop(path, None)
            return None
        if time.time_ns() - st.st_ctime_ns > RACY_NS:
            self._cache[path] = (key, data)
        else:
            self._cache.pop(path, None)
        return data


class _Inotify:
    """Which paths in some folders changed since the last drain (:mod:`.inotify`)."""

    def __init__(self) -> None:
        self._inotify = Inotify()
        self.close = self._inotify.close
        self._folders: dict[int, bytes] = {}

    def add(self, folder: bytes) -> bool:
        """Watch ``folder`` (False: it is not there); OSError past the user's limit of watches."""
        wd = self._inotify.add(folder)
        if wd is None:
            return False
        self._folders[wd] = folder
        return True

    def drain(self) -> set[bytes] | None:
        """The paths with events since the last drain; None when unknown (the queue overflowed, a folder moved)."""
        paths: set[bytes] = set()
        unknown = False
        for wd, mask, name in self._inotify.events():
            if mask & (IN_Q_OVERFLOW | IN_MOVE_SELF):
                unknown = True
            elif mask & IN_IGNORED:
                self._folders.pop(wd, None)
            elif (folder := self._folders.get(wd)) is not None:
                paths.add(folder + b"/" + name if name else folder)
        return None if unknown else paths


class _GitDir:
    """A repository's refs, ``HEAD`` and watched files: read whole once, then only where inotify saw a change.

    Without inotify (not Linux, past the user's limit of watches) everything is read at every look, through the
    stat data (:class:`_Reader`).
    """

    def __init__(self, common: Path, control: Path, files: _Reader, *, watch: bool) -> None:
        self.common, self.control = os.fsencode(common), os.fsencode(control)
        self.root = self.common + b"/refs"
        self.files = files
        self.loose: dict[bytes, bytes] = {}
        self.packed: dict[bytes, bytes] = {}
        self.refs: dict[bytes, bytes] = {}  # every ref (loose over packed) and HEAD: name → a sha or "ref: <name>"
        self.git_files: dict[str, bytes] = {}
        self.changes: set[bytes] | None = None  # the refs that may have changed since taken (None: any)
        self.watch: _Inotify | None = None
        if watch:
            try:
                self.watch = _Inotify()
                self._read_all()
                return
            except OSError as exc:
                log.info("%s: tampering is looked for by reading everything at every look (%s)", common, exc)
                if self.watch is not None:
                    self.watch.close()
                self.watch = None
        self._read_all()

    def take(self) -> set[bytes] | None:
        """The refs that may have changed since the last take (None: any of them)."""
        changes, self.changes = self.changes, set()
        return changes

    def refresh(self) -> None:
        """Read what changed since the last refresh (everything, without inotify)."""
        if self.watch is None:
            before, kept, changes = dict(self.refs), self.git_files, self.changes
            self._read_all()
            if changes is not None:
                self.changes = changes | {
                    r for r in before.keys() | self.refs.keys() if before.get(r) != self.refs.get(r)
                }
            if self.git_files == kept:
                self.git_files = kept  # the same object: nothing to compare
            return
        paths = self.watch.drain()
        if paths is None:
            self._read_all()
            return
        dirty = False
        for p in paths:
            if p == self.common + b"/packed-refs":
                self._read_packed()
            elif p == self.control + b"/HEAD":
                self._read_head()
            elif p == self.root or p.startswith(self.root + b"/"):
                self._ref_changed(p)
            else:
                rel = p[len(self.common) + 1 :].decode("utf-8", "surrogateescape")
                dirty = dirty or rel in WATCHED_FILES or rel.startswith(tuple(f"{d}/" for d in WATCHED_DIRS))
        if dirty:
            self.git_files = self._read_git_files()

    def _read_all(self) -> None:
        if self.watch is not None:
            for folder in {self.common, self.control, *(self.common + b"/" + os.fsencode(d) for d in WATCHED_DIRS)}:
                self.watch.add(folder)
            self.watch.add(self.common + b"/objects/info")
        self.loose = {}
        self._walk(self.root)
        self._read_packed()
        self.refs = {**self.packed, **self.loose}
        self._read_head()
        self.git_files = self._read_git_files()
        self.changes = None

    def _set(self, name: bytes) -> None:
        """``refs[name]`` from the loose and packed refs, noted as changed."""
        value = self.loose.get(name) or self.packed.get(name)
        if value is None:
            self.refs.pop(name, None)
        else:
            self.refs[name] = value
        if self.changes is not None:
            self.changes.add(name)

    def _walk(self, top: bytes) -> None:
        """Every ref file under ``top`` read into :attr:`loose`, every folder watched first."""
        cut = len(self.common) + 1
        stack = [top]
        while stack:
            folder = stack.pop()
            if self.watch is not None and not self.watch.add(folder):
                continue
            try:
                it = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif not e.name.endswith(b".lock"):
                        data = self.files.read(e.path, e.stat(follow_symlinks=False))
                        if data is not None:
                            self.loose[e.path[cut:]] = data[:-1].strip()
                            self._set(e.path[cut:])

    def _ref_changed(self, path: bytes) -> None:
        name = path[len(self.common) + 1 :]
        if name.endswith(b".lock"):
            return
        try:
            st: os.stat_result | None = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        folder = st is not None and stat.S_ISDIR(st.st_mode)
        if folder or (st is None and name not in self.loose):  # a folder came or went: what was under it
            for ref in [r for r in self.loose if r.startswith(name + b"/")]:
                del self.loose[ref]
                self._set(ref)
        if folder:
            self._walk(path)
            return
        data = None if st is None else self.files.read(path, st)
        if data is None:
            self.loose.pop(name, None)
        else:
            self.loose[name] = data[:-1].strip()
        self._set(name)

    def _read_packed(self) -> None:
        old, self.packed = self.packed, {}
        data = self.files.read(self.common + b"/packed-refs")
        for line in (data or b"-")[:-1].splitlines():
            if line and line[:1] not in (b"#", b"^"):
                sha, _, name = line.partition(b" ")
                self.packed[name.strip()] = sha
        if self.packed != old:
            for name in [r for r in old.keys() | self.packed.keys() if old.get(r) != self.packed.get(r)]:
                self._set(name)

    def _read_head(self) -> None:
        head = self.files.read(self.control + b"/HEAD")  # kept with the loose refs: a file of its own
        if head is None:
            self.loose.pop(b"HEAD", None)
        else:
            self.loose[b"HEAD"] = head[:-1].strip()
        self._set(b"HEAD")

    def _read_git_files(self) -> dict[str, bytes]:
        out = {}
        for rel in WATCHED_FILES:
            data = self.files.read(self.common + b"/" + rel.encode())
            if data is not None:
                out[rel] = data
        for folder in WATCHED_DIRS:
            try:
                entries = list(os.scandir(self.common + b"/" + folder.encode()))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in entries:
                data = None if e.is_dir() else self.files.read(e.path, e.stat())
                if data is not None:
                    out[f"{folder}/{os.fsdecode(e.name)}"] = data
        return out


class _LogWatch:
    """The session's log as last verified: its events, bytes, last ``tail`` bytes, file, and a digest of it all."""

    def __init__(self, session: Session, tail: int) -> None:
        self.session = session
        self.path = session.events_path
        self.name = f"{self.path.name} of session {session.id}"
        self.tail = tail
        self.digest = hashlib.sha256()
        self.damage: list[Tampering] = []
        self.broken = False  # damaged beyond repair: not looked at any more
        events = session.events
        self.count, self.size, self.last, self.ident = len(events), 0, b"", (0, 0)
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
                st = os.fstat(fh.fileno())
        except FileNotFoundError:
            self._damaged(f"{self.name} is missing", broken=True)
            return
        self.digest.update(data)
        self.size, self.last, self.ident = len(data), data[-tail:], (st.st_dev, st.st_ino)
        lines = data.count(b"\n")
        last_line = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
        if lines != len(events) or not data.endswith(b"\n") or (events and _event(last_line) != events[-1]):
            self._damaged(f"{self.name} holds {lines} lines, the session {len(events)} events", broken=True)

    def _damaged(self, text: str, *, broken: bool) -> list[Tampering]:
        t = Tampering("log", self.path.name, text)
        self.damage.append(t)
        self.broken = self.broken or broken
        return [t]

    def look(self) -> list[Tampering]:
        """What happened to the log since the last look (nothing: the mark moves on to its end)."""
        if self.broken:
            return []  # found once; the guard says it is damaged from then on
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return self._damaged(f"{self.name} was deleted", broken=True)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.ident:
                text = f"{self.name} was replaced by another file (maestro appends to the one it opened)"
                return self._damaged(text, broken=True)
            new: Sequence[Event] = ()
            if self.session.state.last_seq > self.count:  # the state's seq is O(1); the events are copied
                new = _events_after(self.session, self.count)
            fresh = b"".join(encode_event(e) for e in new)
            known = self.last + fresh
            start = self.size - len(self.last)
            end = start + len(known)
            got = os.pread(fd, max(0, min(st.st_size, end + 1) - start), start)
        finally:
            os.close(fd)
        found = [] if got == known and st.st_size == end else self._repair(got, known, start, st.st_size, len(new))
        if not self.broken:  # the file holds what maestro wrote (again)
            self.digest.update(fresh)
            self.count, self.size, self.last = self.count + len(new), end, known[-self.tail :]
        return found

    def _repair(self, got: bytes, known: bytes, start: int, size: int, new: int) -> list[Tampering]:
        """What happened; repaired when the file holds a prefix of what maestro wrote, or all of it and more."""
        end, seq = start + len(known), self.count + new
        if size < start:
            text = f"{self.name} was cut to {size} bytes, before the last {len(self.last)} bytes maestro keeps"
            return self._damaged(text + ": maestro cannot repair it", broken=True)
        if size < end and known.startswith(got):  # cut short: the end written back
            lost = known[len(got) :]
            with open(self.path, "r+b") as fh:
                fh.seek(size)
                fh.write(lost)
                fh.flush()
                os.fsync(fh.fileno())
            text = f"{self.name} was cut to {size} bytes, event {seq} or before ({len(lost)} bytes written back)"
            return self._damaged(text, broken=False)
        if size > end and got[: len(known)] == known:  # more after maestro's last event: cut off, kept aside
            k = 1 + sum(1 for _ in self.path.parent.glob(f"{self.path.name}.foreign-*"))
            aside = self.path.with_name(f"{self.path.name}.foreign-{k}")
            with open(self.path, "r+b") as fh:
                fh.seek(end)
                extra = fh.read()
                aside.write_bytes(extra)
                fh.truncate(end)
                os.fsync(fh.fileno())
            text = f"{self.name}: {len(extra)} bytes appended after event {seq} by another writer"
            return self._damaged(text + f" (moved to {aside.name})", broken=False)
        if got[: len(self.last)] != self.last:
            text = f"{self.name} was rewritten before byte {self.size} (event {self.count})"
        else:
            text = f"{self.name} does not hold the events maestro wrote after event {self.count}"
        return self._damaged(text + ": maestro cannot repair it", broken=True)

    def full(self) -> list[Tampering]:
        """The whole file against the digest of every byte verified since the guard was made."""
        if self.broken:
            return []
        h = hashlib.sha256()
        try:
            with open(self.path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        except FileNotFoundError:
            return self._damaged(f"{self.name} was deleted", broken=True)
        if h.digest() == self.digest.digest():
            return []
        return self._damaged(
            f"{self.name} was rewritten before byte {self.size}: maestro cannot repair it", broken=True
        )


class TamperGuard:
    """Looks at what an agent must not touch in one session's repository and store (see the module)."""

    def __init__(
        self,
        session: Session,
        *,
        repo: str | os.PathLike[str] | None = None,
        allowance: Allowance | None = None,
        session_files: Iterable[str] = SESSION_FILES,
        tail: int = TAIL,
        watch: bool = True,
    ) -> None:
        self.session = session
        self.sid = session.id
        self.allowance = allowance or Allowance()
        self._repo = Repo.discover(str(repo if repo is not None else session.store.repo))
        self._common = Path(self._repo.commondir())
        self._control = Path(self._repo.controldir())
        self._flow = Path(self._repo.path) / ".flow"
        self._files = _Reader()
        self._branch = f"refs/heads/maestro/{self.sid}".encode()
        self._tags = f"refs/tags/maestro/{self.sid}/".encode()
        self._own = f"refs/maestro/{self.sid}/".encode()
        self._inflight: set[bytes] = set()
        self._git = _GitDir(self._common, self._control, self._files, watch=watch)
        self._git.take()
        refs = self._git.refs
        self._user = {r: v for r, v in refs.items() if not r.startswith(NOT_USERS)}
        self._mine = {r: v for r, v in refs.items() if self._is_mine(r)}
        self._differs: set[bytes] = set()  # the session's refs found changed at the last look
        self._unseen: set[CheckpointRecord] = set()  # checkpoints recorded whose tag was not there at the last look
        self._git_files = self._git.git_files
        self._saved = {n: self._files.read(str(session.dir / n)) for n in session_files}
        self._lock = self._ident(session.dir / "lock")
        checkpoints = session.state.checkpoints
        self._checkpoints = len(checkpoints)
        self._pending = [*self._against_log(refs, checkpoints)]
        self._log = _LogWatch(session, max(1, tail))
        self._pending += self._log.damage

    def close(self) -> None:
        """Stop watching (the inotify instance is closed; also done when the guard is collected)."""
        if self._git.watch is not None:
            self._git.watch.close()
            self._git.watch = None

    # -- the looks ----------------------------------------------------------------------------------------------
    @property
    def log_damaged(self) -> bool:
        """Whether the log was ever found damaged (it stays so: such a session must never complete)."""
        return bool(self._log.damage)

    @property
    def log_broken(self) -> bool:
        """Whether the log is damaged beyond what the guard repairs (deleted, replaced, rewritten): stop the run."""
        return self._log.broken

    @property
    def log_damage(self) -> tuple[Tampering, ...]:
        """What was found wrong with the log (or the store's folders), first first."""
        return tuple(self._log.damage)

    def snapshot(self, *, attempt_ref: bytes | None = None) -> Snapshot:
        """A look before an attempt; ``attempt_ref`` (its capture ref) may appear, any value, until its check.

        What this look finds is returned by the next :meth:`check`.
        """
        if attempt_ref is not None:
            if not attempt_ref.startswith(self._own):
                raise CheckpointError(f"{attempt_ref.decode()}: an attempt's ref is under {self._own.decode()}")
            self._inflight.add(attempt_ref)
        self._pending += self._look({})
        return Snapshot(attempt_ref)

    def check(
        self,
        snap: Snapshot | None = None,
        *,
        commit: ObjectID | None = None,
        wrote: Mapping[bytes, bytes | None] | None = None,
        full: bool = False,
    ) -> list[Tampering]:
        """Everything that changed since the last look, and what earlier snapshots found; one line each.

        With ``snap`` its attempt is over: its capture ref must now be ``commit`` (None: no ref).  ``wrote``
        names other refs maestro set since the last look (None: deleted).  ``full`` also reads the whole log
        again (before a session completes).  Call it on the thread that appends to the session's log, before
        recording anything of the attempt.
        """
        found, self._pending = self._pending, []
        expected = dict(wrote or {})
        if snap is not None and snap.attempt_ref is not None:
            self._inflight.discard(snap.attempt_ref)
            expected[snap.attempt_ref] = commit
        found += self._look(expected)
        if full:
            found += self._log.full()
        return found

    def _look(self, wrote: Mapping[bytes, bytes | None]) -> list[Tampering]:
        self._git.refresh()
        changes = self._git.take()
        refs = self._git.refs
        found = self._look_user(refs, changes) + self._look_git_files()
        found += self._look_mine(refs, changes, wrote) + self._look_store()
        for t in found:
            log.warning("session %s: tampering: %s", self.sid, t.text)
        return found

    # -- refs ---------------------------------------------------------------------------------------------------
    def _is_mine(self, ref: bytes) -> bool:
        return ref == self._branch or ref.startswith((self._tags, self._own))

    def _look_user(self, refs: Mapping[bytes, bytes], changes: set[bytes] | None) -> list[Tampering]:
        """The user's refs and HEAD that changed (all of them compared when ``changes`` is None)."""
        user = self._user
        names = user.keys() | refs.keys() if changes is None else changes
        found: list[Tampering] = []
        for ref in sorted(r for r in names if user.get(r) != refs.get(r) and not r.startswith(NOT_USERS)):
            old, new = user.get(ref), refs.get(ref)
            if new is None:
                del user[ref]
            else:
                user[ref] = new
            if ref == b"HEAD":
                if not (self.allowance.user_commits and self._users_head(new)):
                    found.append(Tampering("head", "HEAD", f"HEAD now {_head(new)} ({_head(old)} before)"))
                continue
            if self.allowance.user_commits and new is not None and (old is None or self._descends(new, old)):
                continue
            what = ref.decode("utf-8", "replace")
            if new is None:
                back = (old or b"").decode("utf-8", "replace")
                text = f"{what} was deleted (it was at {_short(old)}: `git update-ref {what} {back}` brings it back)"
            elif old is None:
                text = f"{what} was created at {_short(new)}"
            else:
                text = f"{what} moved from {_short(old)} to {_short(new)}"
            found.append(Tampering("user_ref", what, text))
        return found

    def _users_head(self, head: bytes | None) -> bool:
        """Whether ``HEAD`` could be the user's own doing: on a branch not maestro's, or detached at a commit none of
        the session's refs or checkpoints holds (an agent checking out maestro's work in the user's checkout)."""
        if head is None:
            return False
        if head.startswith(b"ref: "):
            return not head[5:].strip().startswith(b"refs/heads/maestro/")
        ours = set(self._mine.values()) | {c.commit.encode() for c in self.session.state.checkpoints}
        return head.strip() not in ours

    def _descends(self, new: bytes, old: bytes, limit: int = 10_000) -> bool:
        """Whether commit ``old`` is ``new`` or one of its ancestors (at most ``limit`` commits walked)."""
        seen: set[bytes] = set()
        todo = [new]
        while todo and len(seen) < limit:
            sha = todo.pop()
            if sha == old:
                return True
            if sha not in seen:
                seen.add(sha)
                obj = self._object(sha)
                if isinstance(obj, Commit):
                    todo.extend(obj.parents)
        return False

    def _look_mine(
        self, refs: Mapping[bytes, bytes], changes: set[bytes] | None, wrote: Mapping[bytes, bytes | None]
    ) -> list[Tampering]:
        """The session's refs against the log (branch, tags) and against what maestro wrote (the others)."""
        mine = self._mine
        names = refs.keys() | mine.keys() if changes is None else changes
        candidates = {r for r in names if self._is_mine(r)} | self._differs | wrote.keys()
        checkpoints = self.session.state.checkpoints
        self._checkpoints = min(self._checkpoints, len(checkpoints))  # a rewind: nothing new to chain
        new_cps = checkpoints[self._checkpoints :]
        self._checkpoints = len(checkpoints)
        found: list[Tampering] = []
        branch = self._branch.decode()
        last = self._mine.get(self._branch)
        for rec in new_cps:  # each made on the one before: a merge onto a branch someone moved shows here
            parent = self._parent(rec.commit.encode())
            if last is not None and parent is not None and parent != last:
                text = f"checkpoint {rec.n} ({rec.commit[:12]}) was made on {_short(parent)}, not on the one before "
                found.append(Tampering("session_ref", branch, text + f"({_short(last)}): {branch} had been moved"))
            last = rec.commit.encode()
            self._unseen.add(rec)
        for rec in sorted(self._unseen, key=lambda c: c.n):  # a checkpoint's tag, until it is there
            if f"refs/tags/{rec.tag}".encode() in refs:
                self._unseen.discard(rec)
            else:
                found.append(Tampering("session_ref", rec.tag, f"tag {rec.tag} of checkpoint {rec.n} is missing"))
        logged = checkpoints[-1].commit.encode() if checkpoints else self._mine.get(self._branch)
        if refs.get(self._branch) != logged:
            text = f"{branch} is at {_short(refs.get(self._branch))}; the log's last checkpoint is {_short(logged)}"
            found.append(Tampering("session_ref", branch, text))
        if logged is not None:
            self._mine[self._branch] = logged
        changed = sorted(r for r in candidates if refs.get(r) != mine.get(r) or r in wrote)
        tagged = any(r.startswith(self._tags) for r in changed)
        by_tag = {f"refs/tags/{c.tag}".encode(): c for c in checkpoints} if tagged else {}
        self._differs = set()
        for ref in changed:
            if ref in self._inflight or ref == self._branch:
                continue
            t = self._one_of_mine(ref, mine.get(ref), refs.get(ref), wrote, by_tag)
            if t is not None:
                found.append(t)
                self._differs.add(ref)
        return found

    def _one_of_mine(
        self,
        ref: bytes,
        old: bytes | None,
        new: bytes | None,
        wrote: Mapping[bytes, bytes | None],
        by_tag: Mapping[bytes, CheckpointRecord],
    ) -> Tampering | None:
        """One of the session's refs (not its branch) that changed: accepted (None), or what happened to it."""
        name = ref.decode("utf-8", "replace")
        accepted = False
        if ref in wrote:
            accepted = new == wrote[ref]
            if not accepted:
                return Tampering("session_ref", name, f"{name} is {_short(new)}; maestro wrote {_short(wrote[ref])}")
        elif ref.startswith(self._tags):
            rec = by_tag.get(ref)
            tag = name[len("refs/tags/") :]
            if old is None and rec is not None and new is not None and self._peel(new) == rec.commit.encode():
                accepted = True
            elif new is None:
                return Tampering("session_ref", tag, f"tag {tag} was deleted (it was at {_short(self._peel(old))})")
            elif rec is None:
                return Tampering("session_ref", tag, f"tag {tag} appeared; the log has no such checkpoint")
            else:
                text = f"tag {tag} now points at {_short(self._peel(new))}; checkpoint {rec.n} is {rec.commit[:12]}"
                return Tampering("session_ref", tag, text)
        else:
            rest = name[len(self._own) :]
            accepted = (
                old is None and new is not None and any(fnmatch.fnmatchcase(rest, p) for p in self.allowance.new_refs)
            )
            if not accepted:
                verb = "was deleted" if new is None else f"was created at {_short(new)}" if old is None else ""
                verb = verb or f"moved from {_short(old)} to {_short(new)}"
                return Tampering("session_ref", name, f"{name} {verb}")
        if accepted:
            if new is None:
                self._mine.pop(ref, None)
            else:
                self._mine[ref] = new
        return None

    def _against_log(self, refs: Mapping[bytes, bytes], checkpoints: Sequence[CheckpointRecord]) -> list[Tampering]:
        """When the guard is made: the branch at the log's last checkpoint, every logged checkpoint's tag at it."""
        found = []
        if checkpoints and refs.get(self._branch) != checkpoints[-1].commit.encode():
            text = f"{self._branch.decode()} is at {_short(refs.get(self._branch))}; the log's last checkpoint is "
            found.append(Tampering("session_ref", self._branch.decode(), text + checkpoints[-1].commit[:12]))
        for rec in checkpoints:
            at = self._peel(refs.get(f"refs/tags/{rec.tag}".encode()))
            if at != rec.commit.encode():
                text = f"tag {rec.tag} is at {_short(at)}; checkpoint {rec.n} is {rec.commit[:12]}"
                found.append(Tampering("session_ref", rec.tag, text))
        return found

    def _object(self, sha: bytes | None) -> ShaFile | None:
        if sha is None or len(sha) not in (40, 64):
            return None
        try:
            return self._repo.object_store[ObjectID(sha)]
        except (KeyError, ValueError):
            return None

    def _peel(self, sha: bytes | None) -> bytes | None:
        obj = self._object(sha)
        while isinstance(obj, Tag):
            obj = self._object(obj.object[1])
        return obj.id if isinstance(obj, Commit) else None

    def _parent(self, sha: bytes) -> bytes | None:
        obj = self._object(sha)
        return obj.parents[0] if isinstance(obj, Commit) and obj.parents else None

    # -- .git files and the store ---------------------------------------------------------------------------------
    def _look_git_files(self) -> list[Tampering]:
        now = self._git.git_files
        if now is self._git_files:  # read again only when something there changed
            return []
        before, self._git_files = self._git_files, now
        found = []
        for rel in sorted(r for r in before.keys() | now.keys() if before.get(r) != now.get(r)):
            old, new = before.get(rel), now.get(rel)
            if old is None:
                verb = "was added" + (" (executable)" if new is not None and new.endswith(b"x") else "")
            elif new is None:
                verb = "was deleted"
            else:
                verb = "was changed" if old[:-1] != new[:-1] else "changed its executable bit"
            found.append(Tampering("git_file", f".git/{rel}", f".git/{rel} {verb}"))
        return found

    @staticmethod
    def _ident(path: Path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _look_store(self) -> list[Tampering]:
        sdir = self.session.dir
        if not self._flow.is_dir() or not sdir.is_dir():
            gone = "the .flow folder" if not self._flow.is_dir() else f"the folder of session {self.sid}"
            if self._log.broken:
                return []
            t = Tampering("store", str(sdir), f"{gone} was deleted (the session's log with it)")
            self._log.damage.append(t)
            self._log.broken = True
            return [t]
        found = []
        lock = self._ident(sdir / "lock")
        if lock != self._lock:
            verb = "was deleted" if lock is None else "was replaced"
            text = f"the lock file of session {self.sid} {verb}: another maestro could take the session"
            found.append(Tampering("store", "lock", text))
            self._lock = lock
        for name, saved in self._saved.items():
            if self._files.read(str(sdir / name)) != saved:
                found.append(Tampering("store", name, f"{name} of session {self.sid} was changed or deleted"))
        return found + self._log.look()

    # -- restoring ------------------------------------------------------------------------------------------------
    def restore(self) -> list[str]:
        """Maestro's refs back where the log (branch, tags) and maestro (the others) say; ``run.json`` back.

        The user's refs are left as they are.  Returns one line per thing put back; a :class:`CheckpointError`
        names what could not be (a commit no longer in the repository), once the rest is back.
        """
        self._git.refresh()
        now = {r: v for r, v in self._git.refs.items() if self._is_mine(r)}
        checkpoints = self.session.state.checkpoints
        want: dict[bytes, bytes | None] = {r: v for r, v in self._mine.items() if not r.startswith(self._tags)}
        want.update(dict.fromkeys(now.keys() - want.keys()))
        missing: list[str] = []
        if checkpoints:
            want[self._branch] = checkpoints[-1].commit.encode()
        for rec in checkpoints:
            ref = f"refs/tags/{rec.tag}".encode()
            kept = self._mine.get(ref) or now.get(ref)
            tag = kept if self._peel(kept) == rec.commit.encode() else self._new_tag(rec)
            if tag is None:
                missing.append(
                    f"tag {rec.tag}: commit {rec.commit[:12]} of checkpoint {rec.n} is not in the repository"
                )
                want.pop(ref, None)
            else:
                want[ref] = tag
        done: list[str] = []
        for ref, value in sorted(want.items()):
            name = ref.decode("utf-8", "replace")
            if ref in self._inflight or now.get(ref) == value:
                continue
            if value is not None and self._object(value) is None:
                missing.append(f"{name}: {_short(value)} is not in the repository")
                continue
            if value is None or now.get(ref, b"").startswith(b"ref: "):  # a symbolic ref is removed, not followed
                self._repo.refs.remove_if_equals(Ref(ref), None)
            if value is None:
                self._mine.pop(ref, None)
            else:
                self._repo.refs[Ref(ref)] = ObjectID(value)
                self._mine[ref] = value
            done.append(f"{name}: {'deleted' if value is None else f'back at {_short(value)}'}")
        for fname, saved in self._saved.items():
            path = self.session.dir / fname
            if saved is not None and path.parent.is_dir() and self._files.read(str(path)) != saved:
                atomic_write(path, saved[:-1].decode("utf-8", "surrogateescape"))
                done.append(f"{fname} of session {self.sid}: written back")
        for line in done:
            log.warning("session %s: restored %s", self.sid, line)
        if missing:
            raise CheckpointError(f"session {self.sid}: cannot restore {missing[0]}")
        return done

    def _new_tag(self, rec: CheckpointRecord) -> bytes | None:
        """A new annotated tag for a checkpoint whose tag object is gone, worded as the checkpointer words them."""
        c = self._object(rec.commit.encode())
        if not isinstance(c, Commit):
            return None
        t = Tag()
        t.object = (Commit, c.id)
        t.name = rec.tag.encode()
        t.tagger = identity(self._repo)
        t.tag_time = c.commit_time
        t.tag_timezone = 0
        t.message = f"maestro checkpoint {rec.n} of session {self.sid}: {rec.label} (restored)\n".encode()
        self._repo.object_store.add_object(t)
        return t.id


def _head(value: bytes | None) -> str:
    if value is None:
        return "missing"
    if value.startswith(b"ref: "):
        return f"points at {value[5:].decode('utf-8', 'replace')}"
    return f"detached at {_short(value)}"
