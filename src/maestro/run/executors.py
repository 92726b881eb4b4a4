"""Where attempts run: the executor seam, the local thread pool, and a Dask cluster.

::

    executor = open_executor(config.executor, workers=4)   # None or "local": threads here; "dask://host:8786"
    fut = executor.submit(fn, *args, where=place)          # a concurrent.futures.Future
    executor.shutdown(cancel=True)                         # a second Ctrl-C: pending work dropped, running stopped

An :class:`Executor` runs units of work and hands back :class:`concurrent.futures.Future` objects, so the scheduler
(:mod:`maestro.run.scheduler`) waits on them with :func:`concurrent.futures.wait` whatever runs them.  Two
implementations: :class:`LocalExecutor`, a thread pool (the default; what maestro always did), and
:class:`DaskExecutor`, the workers of a Dask ``distributed`` scheduler.  A *remote* executor runs the work in
other processes, maybe other machines: what it is given must be picklable, a module-level function and plain
data, and nothing the coordinator's disk holds can be assumed there.  ``where`` names a *place* (a worker's
address, from :meth:`Executor.places`): the caller picks it, because the caller knows what it shipped where
(:mod:`maestro.run.remote`: a worker's git cache).  A place that goes away while its work runs fails that work's
future with :class:`PlaceLost` (for an attempt: a ``transient`` failure, retried).

``distributed`` is an optional dependency (``pip install 'maestro-orchestrator[dask]'``): it is imported only by
:class:`DaskExecutor`, so a run with the local executor never loads it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from maestro.config.model import EXECUTOR_FORM
from maestro.core.errors import ExecutorError, PlaceLost

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "PlaceLost",
    "Work",
    "dask_address",
    "open_executor",
]

log = logging.getLogger("maestro.run.executors")

R = TypeVar("R")

LOCAL = "local"


@attrs.frozen
class Work:
    """A unit of work for an executor: ``fn(*args)``, at the place ``where`` (None: wherever the executor likes)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    where: str | None = None


@runtime_checkable
class Executor(Protocol):
    """Runs units of work; each :meth:`submit` returns a :class:`concurrent.futures.Future` of its result.

    ``name`` says which executor it is in messages (``local``, ``dask://host:port``); ``remote`` whether the work
    runs in other processes (it must then be picklable and need nothing from this machine's disk).
    """

    name: str
    remote: bool

    def places(self) -> dict[str, int]:
        """The places work may go now, each with how many units it runs at once."""
        ...

    def submit(self, fn: Callable[..., R], /, *args: Any, where: str | None = None) -> cf.Future[R]:
        """Run ``fn(*args)`` (at ``where``, a place of :meth:`places`); its future (an error raised is re-raised by
        ``result()``; a place lost meanwhile is :class:`PlaceLost`)."""
        ...

    def cancel(self, future: cf.Future[Any]) -> bool:
        """Stop the work of ``future``: a unit not started never runs; one running is stopped where the executor
        can (a remote attempt's processes are killed).  Whether the future is now done."""
        ...

    def shutdown(self, *, cancel: bool = False) -> None:
        """No more work: wait for what runs (or, with ``cancel``, drop what waits and stop what runs, without
        waiting), then release the executor's resources.  Idempotent."""
        ...


class LocalExecutor:
    """Threads of this process: a :class:`~concurrent.futures.ThreadPoolExecutor` of ``workers`` threads."""

    name = LOCAL
    remote = False

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="maestro-task")

    def places(self) -> dict[str, int]:
        return {LOCAL: self.workers}

    def submit(self, fn: Callable[..., R], /, *args: Any, where: str | None = None) -> cf.Future[R]:
        if where not in (None, LOCAL):
            raise ExecutorError(f"the local executor has no place {where!r}")
        return self._pool.submit(fn, *args)

    def cancel(self, future: cf.Future[Any]) -> bool:
        future.cancel()  # a thread cannot be stopped: an agent it runs is killed by its timeout or a second Ctrl-C
        return future.done()

    def shutdown(self, *, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


def dask_address(spec: str) -> str:
    """The scheduler address of an ``executor`` setting: ``dask://HOST:PORT`` → ``tcp://HOST:PORT``,
    ``dask+tls://HOST:PORT`` → ``tls://HOST:PORT`` (an :class:`ExecutorError` for anything else)."""
    m = EXECUTOR_FORM.match(spec)
    if m is None or not 0 < int(m.group(3)) < 65536:
        raise ExecutorError(f"executor: {spec!r} is not 'local', 'dask://HOST:PORT' or 'dask+tls://HOST:PORT'")
    return f"{'tls' if m.group(1) else 'tcp'}://{m.group(2)}:{int(m.group(3))}"


def open_executor(spec: str | None, workers: int, *, timeout_s: float = 10.0) -> Executor:
    """The executor an ``executor`` setting names (None or ``local``: the thread pool of ``workers`` threads;
    ``timeout_s``: how long a Dask scheduler is tried before it is declared unreachable)."""
    if spec in (None, "", LOCAL):
        return LocalExecutor(workers)
    assert spec is not None
    return DaskExecutor(spec, timeout_s=timeout_s)


DaskFuture = Any  # distributed's Future (distributed has no type hints)


@attrs.define(eq=False)
class _Job:
    dask: DaskFuture
    out: cf.Future[Any]
    where: str | None


class DaskExecutor:
    """The workers of a Dask ``distributed`` scheduler (``dask://HOST:PORT``; ``dask+tls://`` for TLS, whose
    certificates come from Dask's own configuration: ``distributed.comm.tls.*``).

    Work given a place is pinned to that worker (Dask never moves it elsewhere, not even by work stealing); when
    the scheduler reports the worker gone (``remove-worker``) the work's future fails with :class:`PlaceLost` and
    the Dask task is cancelled.  :meth:`cancel` (and :meth:`shutdown` with ``cancel``) releases the Dask tasks:
    the worker marks a running one cancelled, and the work is expected to notice and stop (a remote attempt
    kills its agent's processes: :mod:`maestro.run.remote`).  The client is this executor's own: closed by
    :meth:`shutdown`.
    """

    remote = True

    def __init__(self, spec: str, *, timeout_s: float = 10.0, client: Any = None) -> None:
        try:
            from distributed import Client  # an optional dependency: imported only when a Dask executor is asked for
        except ImportError as exc:
            raise ExecutorError(f"executor {spec}: Dask's distributed is not installed "
                                f"(pip install 'maestro-orchestrator[dask]'): {exc}") from None  # fmt: skip

        self.name = spec
        self.address = dask_address(spec) if spec.startswith("dask") else spec
        self._own = client is None
        try:
            self.client: Any = client or Client(self.address, timeout=timeout_s, set_as_default=False)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(f"executor {spec}: cannot reach the Dask scheduler at {self.address}: {exc}") from exc
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._gone: set[str] = set()  # workers the scheduler reported removed
        self._topic = "all"  # the scheduler's own events: a worker added, a worker removed
        self.client.subscribe_topic(self._topic, self._event)
        self._closed = False

    # -- the protocol ------------------------------------------------------------------------------------------
    def places(self) -> dict[str, int]:
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(f"executor {self.name}: the Dask scheduler does not answer: {exc}") from exc
        workers: Mapping[str, Mapping[str, Any]] = info.get("workers", {})
        with self._lock:
            gone = set(self._gone)
        return {
            addr: int(w.get("nthreads", 1) or 1)
            for addr, w in workers.items()
            if addr not in gone and w.get("status", "running") == "running"
        }

    def submit(self, fn: Callable[..., R], /, *args: Any, where: str | None = None) -> cf.Future[R]:
        out: cf.Future[R] = cf.Future()
        key = f"maestro-{getattr(fn, '__name__', 'work')}-{uuid.uuid4().hex}"
        pinned: dict[str, Any] = {"workers": [where], "allow_other_workers": False} if where else {}
        with self._lock:
            if where is not None and where in self._gone:
                out.set_exception(PlaceLost(where, "gone before the work was sent"))
                return out
            dfut = self.client.submit(fn, *args, key=key, pure=False, retries=0, **pinned)
            self._jobs[key] = _Job(dfut, out, where)
        dfut.add_done_callback(self._done)  # on a thread of the client's
        return out

    def cancel(self, future: cf.Future[Any]) -> bool:
        with self._lock:
            jobs = [(k, j) for k, j in self._jobs.items() if j.out is future]
        for key, job in jobs:
            self._drop(key, job)
            with contextlib.suppress(Exception):  # a client already closing: the scheduler forgets the task anyway
                self.client.cancel([job.dask], force=True)
        if not future.done():
            future.cancel()
        return future.done()

    def shutdown(self, *, cancel: bool = False) -> None:
        if self._closed:
            return
        if not cancel:
            with self._lock:
                waiting = [j.out for j in self._jobs.values()]
            cf.wait(waiting)
        with self._lock:
            jobs = list(self._jobs.items())
        for key, job in jobs:
            self._drop(key, job)
        if jobs:
            with contextlib.suppress(Exception):
                self.client.cancel([j.dask for _k, j in jobs], force=True)
        self._closed = True
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self._topic)
        if self._own:
            with contextlib.suppress(Exception):  # a scheduler gone already: nothing to close cleanly
                self.client.close(timeout=2 if cancel else 10)

    # -- callbacks -------------------------------------------------------------------------------------------
    def _drop(self, key: str, job: _Job) -> None:
        with self._lock:
            self._jobs.pop(key, None)
        job.out.cancel()  # a future never marked running: always cancellable, unless settled already

    def _done(self, dfut: DaskFuture) -> None:
        with self._lock:
            job = self._jobs.pop(str(dfut.key), None)
        if job is None or job.out.done():
            return
        try:
            if dfut.status == "finished":
                _settle(job.out, result=dfut.result())
            elif dfut.status == "cancelled":
                _settle(job.out, error=PlaceLost(job.where or "?", "the Dask task was cancelled"))
            else:
                exc = dfut.exception()
                if type(exc).__name__ == "KilledWorker":  # the scheduler gave up on it: the workers running it died
                    exc = PlaceLost(job.where or "?", str(exc))
                _settle(job.out, error=exc)
        except Exception as exc:  # noqa: BLE001 - the future must settle, whatever went wrong fetching it
            _settle(job.out, error=PlaceLost(job.where or "?", f"the result could not be fetched: {exc}"))

    def _event(self, event: tuple[float, Any]) -> None:
        """A scheduler event: a worker removed fails the work pinned to it; one added is a place again."""
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else None
        addr = msg.get("worker") if isinstance(msg, Mapping) else None
        if not isinstance(msg, Mapping) or not isinstance(addr, str):
            return
        if msg.get("action") == "add-worker":  # back at the same address (a fixed port): a place again
            with self._lock:
                self._gone.discard(addr)
            return
        if msg.get("action") != "remove-worker":
            return
        with self._lock:
            self._gone.add(addr)
            lost = [(k, j) for k, j in self._jobs.items() if j.where == addr]
            for key, _job in lost:
                self._jobs.pop(key, None)
        for _key, job in lost:
            log.warning("Dask worker %s left while it ran %s", addr, job.dask.key)
            _settle(job.out, error=PlaceLost(addr, "the worker left the cluster"))
        if lost:  # not here: this runs on the client's event loop, which a blocking cancel would wait for
            threading.Thread(target=self._forget, args=([j.dask for _k, j in lost],), daemon=True).start()

    def _forget(self, futures: list[DaskFuture]) -> None:
        with contextlib.suppress(Exception):
            self.client.cancel(futures, force=True)


def _settle(out: cf.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    """Give ``out`` its result or error, unless it is settled already (cancelled, or failed by a lost place)."""
    with contextlib.suppress(cf.InvalidStateError):
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(result)
