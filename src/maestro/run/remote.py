"""An attempt on another machine: what the coordinator ships to a worker, what the worker does, what comes back.

The one idea: a remote attempt needs no disk shared with the coordinator.  The coordinator (:class:`Remote`, on
its own thread) picks a place (a Dask worker), and sends it a :class:`Shipment`: the agent request (the task, the
context pack, the approach and feedback), the agent itself (its configuration, pickled), the environment decision,
the repository's ignore and attribute rules, and a git pack of the base commit's objects the worker does not hold
yet.  What a worker holds is remembered per place: the trees it holds whole; the first time a place is met in a
run it is asked (:func:`held`) which of the coordinator's recent commits it has, so a worker that outlived the
last session starts warm.  The pack is then the base's tree walked beside the newest tree the place holds
(:func:`maestro.git.packs.missing_objects`): a warm attempt ships what changed.

On the worker (:func:`run_remote`) a :class:`WorkerCache` — a folder of its own (``$MAESTRO_WORKER_DIR``, one
``slot-<k>`` per worker process, held with a lock) with a bare cache repository and a pool of worktrees, reused by
every attempt — unpacks the objects, moves a worktree to the base, runs the agent there (wrapped in the recording
agent, its session folder a scratch folder), then the task's acceptance commands, captures the result and sends
back a :class:`Returned`: the agent's result (with ``worker``), the acceptance results, the attempt's tree and a
pack of its objects the base lacks, and the files the attempt wrote in its session folder (transcripts, change
files).  The coordinator (:meth:`Remote.intake`) unpacks them, makes the attempt's commit on the base (its
identity and clock, as a local capture does) at the attempt's ref, and the attempt settles as a local one does:
recorded by the coordinator, merged through the merge queue.  A cache past its size limit
(``$MAESTRO_WORKER_CACHE_MB``) is emptied when no attempt runs in it; the coordinator learns it from a
:class:`CacheMiss` and ships everything again.

While it runs, a remote attempt watches its Dask task: when the task is cancelled (the coordinator's Ctrl-C or
SIGTERM, or the coordinator gone), the processes the attempt started in its worktree (the agent's process group,
an acceptance command's) are killed (Linux: found through ``/proc``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import shutil
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
from dulwich.objects import Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.agents.base import Agent, AgentRequest
from maestro.agents.changes import write_changes
from maestro.agents.recording import RecordingAgent
from maestro.core.errors import CacheMiss, CheckpointError, MaestroError
from maestro.core.records import AgentResult, Decision
from maestro.core.seams import Clock, SystemClock
from maestro.decide.strategies.environment import worktree_env
from maestro.gates.acceptance import AcceptanceResult, acceptance
from maestro.git.identity import identity
from maestro.git.packs import missing_objects, pack_of, tree_of, unpack
from maestro.git.worktrees import WorktreePool
from maestro.run.executors import Executor, ExecutorError, Work

__all__ = [
    "WORKER_CACHE_ENV",
    "WORKER_DIR_ENV",
    "CacheMiss",
    "Remote",
    "Returned",
    "Shipment",
    "WorkerCache",
    "held",
    "run_remote",
]

log = logging.getLogger("maestro.run.remote")

WORKER_DIR_ENV = "MAESTRO_WORKER_DIR"
WORKER_CACHE_ENV = "MAESTRO_WORKER_CACHE_MB"
"""The most a worker's cache repository may hold (MiB) before it is emptied; ``0``: never emptied."""
DEFAULT_CACHE_MB = 8192
"""The folder a worker keeps its caches in (one ``slot-<k>`` per worker process); default
``${XDG_CACHE_HOME:-~/.cache}/maestro/worker``."""

_RULES = ("exclude", "attributes")  # the files of .git/info/ that decide what a capture stages
_COMPLETE = "refs/maestro-cache/trees/"  # a ref per tree the cache holds whole (its value: the tree itself)
_MARKS = 512  # at most this many trees are remembered as held whole
_POOL = "remote"  # the name of the worker's one pool of worktrees
_CANDIDATES = 64  # commits offered to a place met for the first time
_ASK_TIMEOUT_S = 60.0
_CHECK_EVERY = 50  # attempts between two looks at the cache's size (a walk of its objects folder)


# -- what travels ---------------------------------------------------------------------------------------------------


@attrs.frozen
class Shipment:
    """What a worker needs for one attempt (picklable; nothing in it names the coordinator's disk but ``request``'s
    paths, which the worker replaces)."""

    session: str
    request: AgentRequest
    agent: Agent
    base: ObjectID
    have_tree: ObjectID | None  # the pack holds base's objects not under this tree, which the worker holds whole
    pack: bytes
    ref: bytes
    environment: Decision | None
    acceptance_timeout_s: float
    rules: Mapping[str, bytes] = attrs.field(factory=dict)


@attrs.frozen
class Returned:
    """What a worker sends back: the attempt's outcome and its tree (the objects the base lacks, as a pack)."""

    worker: str
    result: AgentResult
    acceptance: AcceptanceResult | None
    tree: ObjectID
    pack: bytes
    files: Mapping[str, bytes]
    received: int  # bytes of the shipment's pack
    timings: Mapping[str, float] = attrs.field(factory=dict)  # seconds: unpack, agent, acceptance, capture, pack


# -- the coordinator's side -----------------------------------------------------------------------------------------


class Remote:
    """The coordinator's side of remote attempts for one session run: places, what each holds, shipping, intake.

    Used from the coordinating thread only.  ``repo`` is the user's repository (any path in it).
    """

    def __init__(self, repo: Path, session: str, *, clock: Clock | None = None) -> None:
        self._path = repo
        self._repo: Repo | None = None
        self.session = session
        self.clock = clock or SystemClock()
        self.known: dict[str, list[tuple[ObjectID, ObjectID]]] = {}  # place → (commit, tree) held whole, newest last
        self.busy: Counter[str] = Counter()
        self.where: dict[bytes, str] = {}  # attempt ref → the place it was sent to
        self.shipped: list[int] = []  # bytes of each shipment's pack, in order (the benchmark reads them)
        self._sendable: set[int] = set()

    @property
    def repo(self) -> Repo:
        """The user's repository (opened on first use, again after :meth:`close`)."""
        if self._repo is None:
            self._repo = Repo(str(self._path))
        return self._repo

    def close(self) -> None:
        """Release the repository's open files (what each worker holds is kept)."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    # -- shipping --------------------------------------------------------------------------------------------------
    def work(
        self,
        executor: Executor,
        request: AgentRequest,
        agent: Agent,
        *,
        base: ObjectID,
        ref: bytes,
        environment: Decision | None,
        acceptance_timeout_s: float,
    ) -> Work:
        """The unit of work for ``executor``: :func:`run_remote` with the shipment, at the place chosen for it."""
        inner = agent.inner if isinstance(agent, RecordingAgent) else agent  # the worker records on its own
        self._check_sendable(inner)
        place = self.choose(executor)
        have = self.known[place][-1] if self.known[place] else None
        store = self.repo.object_store
        data, _n = pack_of(store, missing_objects(store, want=base, have=have[0] if have else None))
        self.shipped.append(len(data))
        self.busy[place] += 1
        self.where[ref] = place
        shipment = Shipment(
            self.session,
            request,
            inner,
            base,
            have[1] if have else None,
            data,
            ref,
            environment,
            acceptance_timeout_s,
            self._rules(),
        )
        return Work(run_remote, (shipment,), place)

    def choose(self, executor: Executor) -> str:
        """The place with the most free slots, one that holds something first (an :class:`ExecutorError` when the
        cluster has no worker).  The places met for the first time are asked what they hold first."""
        places = executor.places()
        if not places:
            raise ExecutorError(f"executor {executor.name}: the Dask cluster has no worker running")
        self.known.update(self.ask(executor, [p for p in places if p not in self.known]))

        def score(p: str) -> tuple[float, bool, str]:
            free = (places[p] - self.busy[p]) / places[p]
            return (-free, not self.known.get(p), p)

        return min(places, key=score)

    def ask(self, executor: Executor, places: list[str]) -> dict[str, list[tuple[ObjectID, ObjectID]]]:
        """Which of the coordinator's recent commits each of ``places`` holds whole (oldest first), asked all at
        once; none for a place that cannot say."""
        if not places:
            return {}
        candidates = self._candidates()
        trees = [t for _c, t in candidates]
        asked = {p: executor.submit(held, trees, where=p) for p in places} if candidates else {}
        out: dict[str, list[tuple[ObjectID, ObjectID]]] = {}
        for place in places:
            try:
                got = set(asked[place].result(_ASK_TIMEOUT_S)) if place in asked else set()
            except Exception as exc:  # noqa: BLE001 - a place that cannot answer is shipped everything
                log.info("worker %s: cannot tell what it holds (%s): shipping everything", place, exc)
                got = set()
            out[place] = [(c, t) for c, t in candidates if t in got]
        return out

    def _candidates(self) -> list[tuple[ObjectID, ObjectID]]:
        """The session's base and branch, the user's branches, the session's checkpoint tags: (commit, tree)."""
        refs = self.repo.refs
        names = [Ref(f"refs/maestro/{self.session}/base".encode())]
        prefixes = (b"refs/heads/", f"refs/tags/maestro/{self.session}/".encode())
        names += [n for n in refs.allkeys() if n.startswith(prefixes)]
        out: dict[bytes, tuple[ObjectID, ObjectID]] = {}
        for name in names[: _CANDIDATES * 4]:
            with contextlib.suppress(KeyError, CheckpointError, ValueError):
                obj = self.repo[refs[name]]
                while not isinstance(obj, Commit) and hasattr(obj, "object"):  # an annotated tag
                    obj = self.repo[obj.object[1]]
                if isinstance(obj, Commit):
                    out[obj.id] = (obj.id, obj.tree)
        ordered = sorted(out.values(), key=lambda ct: self._time(ct[0]))
        return ordered[-_CANDIDATES:]

    def _time(self, commit: ObjectID) -> int:
        obj = self.repo[commit]
        return obj.commit_time if isinstance(obj, Commit) else 0

    def _rules(self) -> dict[str, bytes]:
        info = Path(self.repo.commondir()) / "info"
        out: dict[str, bytes] = {}
        for name in _RULES:
            with contextlib.suppress(OSError):
                out[name] = (info / name).read_bytes()
        return out

    def _check_sendable(self, agent: Agent) -> None:
        if id(agent) in self._sendable:
            return
        try:
            pickle.dumps(agent)
        except Exception as exc:  # whatever pickling raises, the agent cannot go
            raise ExecutorError(f"the agent {agent!r} cannot be sent to a Dask worker: {exc}") from exc
        self._sendable.add(id(agent))

    # -- coming back -----------------------------------------------------------------------------------------------
    def intake(self, back: Returned, *, base: ObjectID, ref: bytes, label: str, session_dir: Path) -> ObjectID:
        """Store what came back: the objects, the attempt's commit on ``base`` at ``ref`` (made here, with the
        repository's identity and the run's clock), the attempt's files in the session folder.  Its commit."""
        place = self.where.pop(ref, back.worker)
        self.busy[place] -= 1
        spent = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in back.timings.items())
        log.debug("%s came back from %s: %d bytes received, %d sent back; %s", ref.decode(), back.worker,
                  back.received, len(back.pack), spent)  # fmt: skip
        store = self.repo.object_store
        if back.pack:
            unpack(store, back.pack)
        try:
            store[back.tree]
        except KeyError:
            where = f"worker {back.worker}"
            raise CheckpointError(f"{where} sent back tree {back.tree.decode()} without its objects") from None
        commit = self._commit(back.tree, base, label, ref)
        self._write_files(session_dir, back.files)
        held_now = self.known.setdefault(place, [])
        base_tree = tree_of(store, base)
        held_now[:] = [ct for ct in held_now if ct[0] not in (base, commit)] + [(base, base_tree), (commit, back.tree)]
        del held_now[:-_CANDIDATES]
        return commit

    def lost(
        self, ref: bytes, place: str, *, base: ObjectID, label: str, changes: Path | None = None
    ) -> tuple[ObjectID, str]:
        """The attempt at ``ref`` did not come back (its place went away): the place is forgotten, and the attempt is
        kept as nothing done — a commit of ``base``'s tree at ``ref``, an empty change file at ``changes`` (a re-drive
        replays it).  The commit and the place's name."""
        where = self.where.pop(ref, place)
        self.busy[where] -= 1
        self.known.pop(where, None)  # whatever it held, the next attempt there starts by asking again
        commit = self._commit(tree_of(self.repo.object_store, base), base, label, ref)
        if changes is not None:
            try:
                write_changes(changes, [])
            except MaestroError as exc:  # like the recording agent: a change file never stops the run
                log.warning("%s: cannot save the lost attempt's change file: %s", changes, exc)
        return commit, where

    def _commit(self, tree: ObjectID, base: ObjectID, label: str, ref: bytes) -> ObjectID:
        """A commit of ``tree`` on ``base`` at ``ref``: the repository's identity, the run's clock (as a capture)."""
        c = Commit()
        c.tree = tree
        c.parents = [base]
        c.author = c.committer = identity(self.repo)
        c.author_time = c.commit_time = int(self.clock.now().timestamp())
        c.author_timezone = c.commit_timezone = 0
        c.message = label.encode() if label.endswith("\n") else (label + "\n").encode()
        self.repo.object_store.add_object(c)
        self.repo.refs[Ref(ref)] = c.id
        return c.id

    def _write_files(self, session_dir: Path, files: Mapping[str, bytes]) -> None:
        for rel, data in files.items():
            parts = Path(rel).parts
            if len(parts) != 2 or parts[0] != "agents" or parts[1] in ("", ".", ".."):
                log.warning("a worker sent back %r: not a file of the session's agents/ folder; dropped", rel)
                continue
            path = session_dir / "agents" / parts[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


# -- the worker's side ----------------------------------------------------------------------------------------------


def run_remote(shipment: Shipment) -> Returned:
    """On a worker: the attempt of ``shipment`` in this worker's cache (:class:`WorkerCache`)."""
    return worker_cache().attempt(shipment)


def held(trees: Iterable[bytes]) -> list[bytes]:
    """On a worker: which of ``trees`` this worker's cache holds whole."""
    return worker_cache().held(trees)


_CACHES: dict[Path, WorkerCache] = {}  # this process's cache, by the folder it is in
_CACHE_LOCK = threading.Lock()


def worker_cache() -> WorkerCache:
    """This process's cache (made on first use, in a free slot of ``$MAESTRO_WORKER_DIR``)."""
    root = _worker_root()
    with _CACHE_LOCK:
        cache = _CACHES.get(root)
        if cache is None:
            cache = _CACHES[root] = WorkerCache.open(root)
        return cache


def _worker_root() -> Path:
    base = os.environ.get(WORKER_DIR_ENV)
    if base:
        return Path(base)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "maestro" / "worker"


def _worker_name() -> str:
    try:
        from distributed import get_worker  # in a Dask worker (an optional dependency: imported there only)

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def cache_limit() -> int | None:
    """The cache size limit in bytes from ``$MAESTRO_WORKER_CACHE_MB`` (default 8 GiB; ``0``: None, no limit)."""
    raw = os.environ.get(WORKER_CACHE_ENV, "").strip()
    try:
        mb = int(raw) if raw else DEFAULT_CACHE_MB
    except ValueError:
        raise CheckpointError(f"${WORKER_CACHE_ENV}: {raw!r} is not a whole number of MiB") from None
    if mb < 0:
        raise CheckpointError(f"${WORKER_CACHE_ENV}: {raw!r}: a size cannot be negative")
    return mb * 1024 * 1024 if mb else None


class WorkerCache:
    """A worker's folder: a bare cache repository (``cache.git``), a pool of worktrees (``worktrees/``), scratch
    session folders (``scratch/``); held by one process (a lock file) and reused across attempts and sessions.

    The cache grows with every object shipped to it.  Past ``limit`` bytes (``$MAESTRO_WORKER_CACHE_MB``) it is
    emptied: looked at when it is opened, then by every ``check_every``-th attempt as it begins (a walk of the
    objects folder, while other attempts run).  Found over the limit, it is emptied before the next attempt that
    begins once none runs: attempts that begin meanwhile wait, so a busy worker drains, empties it, and goes on.
    No finished attempt's result waits for it.  The coordinator does not know: its next shipment that counts on the
    cache is a :class:`CacheMiss` (a transient failure of that attempt, before any agent runs) and the one after
    ships everything, as to a new worker."""

    def __init__(
        self, folder: Path, lock_fd: int | None = None, *, limit: int | None = None, check_every: int = _CHECK_EVERY
    ) -> None:
        self.folder = folder
        self._lock_fd = lock_fd
        self.limit = limit
        self._check_every = check_every
        self._lock = threading.Lock()
        self._gate = threading.Condition()  # guards the four below
        self._running = 0  # attempts in flight
        self._full = False  # found over the limit: emptied before the next attempt that begins once none runs
        self._emptying = False
        self._since_look = 0
        self.emptied = 0  # how many times this process emptied it
        self._open_repo()
        if self.limit is not None and self.size() > self.limit:
            self._empty()

    def _open_repo(self) -> None:
        git = self.folder / "cache.git"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.repo = Repo(str(git)) if (git / "objects").is_dir() else Repo.init_bare(str(git), mkdir=True)
        except Exception as exc:  # dulwich raises many kinds for a damaged repository
            raise CheckpointError(f"{git}: cannot open the worker's cache repository: {exc}") from exc
        # one pool for every session: a worktree moved to the next base writes only what differs, whoever asks
        self.pool = WorktreePool(git, _POOL, root=self.folder / "worktrees" / _POOL)

    def close(self) -> None:
        """Release its open files and its slot (the folder stays, for the next worker process)."""
        self.pool.close()
        self.repo.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def size(self) -> int:
        """The bytes of the cache repository's objects (loose and packed)."""
        total = 0
        stack = [self.folder / "cache.git" / "objects"]
        while stack:
            with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
                for e in entries:
                    with contextlib.suppress(OSError):
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        else:
                            total += e.stat(follow_symlinks=False).st_size
        return total

    def _empty(self) -> None:
        """Remove the cache repository and its worktrees and make it again, empty (no attempt may be running).

        What cannot be removed is moved aside (``cache.git.old-<id>``, removed by the next emptying), so that the
        new repository never starts on half of the old one; a cache that cannot be made again raises
        :class:`CheckpointError` naming it."""
        size = self.size()
        log.info("%s: the cache holds %.0f MiB, over its %.0f MiB: emptied (the next attempts ship everything)",
                 self.folder, size / 2**20, (self.limit or 0) / 2**20)  # fmt: skip
        with contextlib.suppress(MaestroError, OSError):
            self.pool.remove_all()
        self.pool.close()
        self.repo.close()
        for path in [self.folder / "cache.git", self.folder / "worktrees", *self.folder.glob("cache.git.old-*")]:
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                with contextlib.suppress(OSError):
                    path.rename(self.folder / f"cache.git.old-{uuid.uuid4().hex}")
        self._open_repo()
        self.emptied += 1

    def _look(self) -> None:
        """Every ``check_every``-th attempt: whether the cache is over its limit (read while others run)."""
        with self._gate:
            self._since_look += 1
            if self.limit is None or self._full or self._since_look < self._check_every:
                return
            self._since_look = 0
        if self.size() > self.limit:
            with self._gate:
                self._full = True

    @contextlib.contextmanager
    def _attempting(self) -> Iterator[None]:
        """An attempt in flight.  A full cache is emptied first, once no attempt runs (new ones wait meanwhile)."""
        self._look()
        with self._gate:
            while self._emptying or (self._full and self._running > 0):
                self._gate.wait()
            empty = self._full
            self._full, self._emptying = False, empty
            if not empty:
                self._running += 1
        if empty:
            try:
                self._empty()
            except BaseException:
                with self._gate:  # a cache it cannot make again fails this attempt; the next one tries again
                    self._emptying, self._full = False, True
                    self._gate.notify_all()
                raise
            with self._gate:
                self._emptying = False
                self._running += 1
                self._gate.notify_all()
        try:
            yield
        finally:
            with self._gate:
                self._running -= 1
                if self._running == 0:
                    self._gate.notify_all()

    @classmethod
    def open(cls, root: Path) -> WorkerCache:
        """The first slot of ``root`` no other process holds (``slot-1``, ``slot-2`` …), held until this one ends."""
        root.mkdir(parents=True, exist_ok=True)
        for k in range(1, 1000):
            folder = root / f"slot-{k}"
            folder.mkdir(exist_ok=True)
            fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            try:
                return cls(folder, fd, limit=cache_limit())
            except BaseException:
                os.close(fd)
                raise
        raise CheckpointError(f"{root}: no free worker slot")

    def held(self, trees: Iterable[bytes]) -> list[bytes]:
        with self._gate:
            while self._emptying:
                self._gate.wait()
            refs = self.repo.refs
            return [t for t in trees if Ref(_COMPLETE.encode() + t) in refs]

    def _mark(self, tree: bytes) -> None:
        """``tree`` is held whole (the oldest marks go past :data:`_MARKS`: the objects stay, unnamed)."""
        refs = self.repo.refs
        refs[Ref(_COMPLETE.encode() + tree)] = ObjectID(tree)
        folder = self.folder / "cache.git" / _COMPLETE
        with contextlib.suppress(OSError):
            marks = list(os.scandir(folder))
            if len(marks) > _MARKS:
                for old in sorted(marks, key=lambda e: e.stat().st_mtime)[: len(marks) - _MARKS // 2]:
                    with contextlib.suppress(KeyError, OSError):
                        del refs[Ref(_COMPLETE.encode() + old.name.encode())]

    def _rules(self, rules: Mapping[str, bytes]) -> None:
        info = self.folder / "cache.git" / "info"
        for name in _RULES:
            want = rules.get(name, b"")
            path = info / name
            with contextlib.suppress(OSError):
                if path.read_bytes() == want:
                    continue
            info.mkdir(exist_ok=True)
            tmp = path.with_name(f".{name}.{uuid.uuid4().hex}")
            tmp.write_bytes(want)
            os.replace(tmp, path)

    def attempt(self, sh: Shipment) -> Returned:
        """Unpack, run the agent and the acceptance commands in a worktree at the base, capture, pack the result."""
        with self._attempting():
            return self._attempt(sh)

    def _attempt(self, sh: Shipment) -> Returned:
        name = _worker_name()
        timings: dict[str, float] = {}
        t = time.perf_counter()
        store = self.repo.object_store
        with self._lock:
            if sh.have_tree is not None and not self.held([sh.have_tree]):
                raise CacheMiss(name, f"its cache does not hold tree {sh.have_tree.decode()[:12]}")
            unpack(store, sh.pack)
            base_tree = tree_of(store, sh.base)
            self._mark(base_tree)
            self._rules(sh.rules)
        timings["unpack"] = time.perf_counter() - t
        pool = self.pool
        t = time.perf_counter()
        wt = pool.acquire(sh.base)
        timings["move"] = time.perf_counter() - t
        scratch = self.folder / "scratch" / uuid.uuid4().hex
        try:
            scratch.mkdir(parents=True)
            extra = worktree_env(sh.environment, wt.path) if sh.environment is not None else {}
            request = attrs.evolve(sh.request, workdir=wt.path, env=extra or None, session_dir=scratch)
            with _Stopper(wt.path) as stop:
                t = time.perf_counter()
                result = RecordingAgent(sh.agent).run(request)
                timings["agent"] = time.perf_counter() - t
                acc = None
                if result.status == "succeeded" and not stop.stopped:
                    t = time.perf_counter()
                    whole = {**os.environ, **extra} if extra else None
                    acc = acceptance(request.task, wt.path, timeout_s=sh.acceptance_timeout_s, env=whole)
                    timings["acceptance"] = time.perf_counter() - t
            t = time.perf_counter()
            label = f"task {request.task.id} attempt {request.attempt}: {result.status}"
            commit, _changed = wt.capture(sh.base, label, f"refs/maestro-cache/attempts/{wt.name}".encode())
            with self._lock:
                tree = tree_of(store, commit)
                self._mark(tree)
                data, _n = pack_of(store, missing_objects(store, want=commit, have=sh.base, commit=False))
            timings["capture"] = time.perf_counter() - t
            files = _files(scratch, request.task.id, request.attempt)
        finally:
            pool.release(wt)
            shutil.rmtree(scratch, ignore_errors=True)
        return Returned(name, attrs.evolve(result, worker=name), acc, tree, data, files, len(sh.pack), timings)


def _files(scratch: Path, task: str, attempt: int) -> dict[str, bytes]:
    """The files the attempt wrote in its session folder's ``agents/`` (transcripts, change file)."""
    out: dict[str, bytes] = {}
    folder = scratch / "agents"
    with contextlib.suppress(FileNotFoundError):
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name.startswith(f"{task}.{attempt}."):
                out[f"agents/{path.name}"] = path.read_bytes()
    return out


class _Stopper:
    """While an attempt runs in a Dask worker: when its task is cancelled, kill what it started in its worktree."""

    _GONE = (None, "cancelled", "released", "forgotten", "error")

    def __init__(self, worktree: Path) -> None:
        self.worktree = worktree
        self.stopped = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: Any = None
        self._key: Any = None
        try:
            from distributed import get_worker  # an optional dependency: present in a Dask worker

            self._worker = get_worker()
            self._key = self._worker.get_current_task()
        except (ImportError, ValueError, AttributeError):
            self._worker = None

    def __enter__(self) -> _Stopper:
        if self._worker is not None and self._key is not None:
            self._thread = threading.Thread(target=self._watch, name="maestro-stopper", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            ts = self._worker.state.tasks.get(self._key)
            state = getattr(ts, "state", None)
            if state in self._GONE:
                self.stopped = True
                killed = _kill_children_in(self.worktree)
                log.warning("the attempt in %s was cancelled: %d process group(s) killed", self.worktree, killed)
                return


def _kill_children_in(folder: Path) -> int:
    """SIGKILL the process groups this process started (each leads its own) whose working folder is in ``folder``."""
    me, killed = os.getpid(), 0
    top = os.fsencode(folder)
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                ppid, pgid = int(fields[1]), int(fields[2])
                cwd = os.readlink(f"/proc/{pid}/cwd".encode())
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me and pgid == pid and (cwd == top or cwd.startswith(top + b"/")):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    killed += 1
    return killed
