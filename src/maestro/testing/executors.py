"""The executor conformance suite: the contract every :class:`~maestro.run.executors.Executor` keeps, as pytest tests.

A test module subclasses :class:`ExecutorConformance` with an ``executor`` fixture that yields a fresh executor
(of at least two slots in all, to check that work runs side by side) and shuts it down afterwards::

    import pytest
    from maestro.run.executors import LocalExecutor
    from maestro.testing.executors import ExecutorConformance

    class TestLocal(ExecutorConformance):
        @pytest.fixture
        def executor(self):
            ex = LocalExecutor(2)
            yield ex
            ex.shutdown(cancel=True)

The checks are what the scheduler relies on:

* it is an :class:`Executor`: a ``name``, whether it is ``remote``, and at least one place with at least one slot;
* ``submit`` returns a :class:`concurrent.futures.Future` whose result is the function's; an exception the
  function raises is raised by ``result()`` (same type, same message);
* work given a place runs (at every place it lists);
* :func:`concurrent.futures.wait` with ``FIRST_COMPLETED`` works on its futures: the quick unit first;
* units run side by side up to its slots;
* :meth:`~Executor.cancel` of a unit that waits for a slot: the future is cancelled and the unit never runs (the
  slot goes to the next unit);
* :meth:`~Executor.shutdown` waits for the work running; with ``cancel`` it returns at once, the waiting units
  cancelled; a second shutdown does nothing.

The work submitted is this module's functions (:func:`add`, :func:`fail`, :func:`nap`), picklable by reference:
a remote executor's workers must be able to import ``maestro.testing.executors``.  Needs pytest.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from typing import Any

import pytest

from maestro.run.executors import Executor

__all__ = ["ExecutorConformance", "add", "fail", "nap", "where_am_i"]

SLOW = 20.0  # seconds any check may wait for a result (a cluster's first task imports this module there)


def add(a: int, b: int) -> int:
    """The sum (work whose result is known)."""
    return a + b


def fail(message: str) -> None:
    """Raise ``ValueError(message)`` (work that fails)."""
    raise ValueError(message)


def nap(seconds: float, token: str = "") -> tuple[str, float, float]:
    """Sleep ``seconds``; ``token``, when the sleep started and ended (``time.time()``)."""
    started = time.time()
    time.sleep(seconds)
    return token, started, time.time()


def where_am_i() -> int:
    """The id of the process the work runs in."""
    return os.getpid()


def _capacity(executor: Executor) -> list[str]:
    """One place name per slot (a place of two slots twice)."""
    return [p for p, n in sorted(executor.places().items()) for _ in range(n)]


class ExecutorConformance:
    """The checks; a subclass provides the ``executor`` fixture (a fresh executor, shut down after the test)."""

    @pytest.fixture
    def executor(self) -> Any:  # pragma: no cover - the subclass's
        raise NotImplementedError("a conformance test class provides the executor fixture")

    def test_is_an_executor(self, executor: Executor) -> None:
        assert isinstance(executor, Executor)
        assert isinstance(executor.name, str) and executor.name
        assert isinstance(executor.remote, bool)
        places = executor.places()
        assert places, "an executor with nowhere to run work"
        assert all(isinstance(p, str) and isinstance(n, int) and n >= 1 for p, n in places.items()), places

    def test_result(self, executor: Executor) -> None:
        fut = executor.submit(add, 2, 3)
        assert isinstance(fut, cf.Future)
        assert fut.result(timeout=SLOW) == 5

    def test_error_is_raised_by_result(self, executor: Executor) -> None:
        fut = executor.submit(fail, "boom at 42")
        with pytest.raises(ValueError, match="boom at 42"):
            fut.result(timeout=SLOW)

    def test_every_place_runs_work(self, executor: Executor) -> None:
        futs = {p: executor.submit(add, 1, len(p), where=p) for p in executor.places()}
        assert {p: f.result(timeout=SLOW) for p, f in futs.items()} == {p: 1 + len(p) for p in futs}

    def test_wait_first_completed(self, executor: Executor) -> None:
        slots = _capacity(executor)
        if len(slots) < 2:
            pytest.skip("one slot: two units cannot race")
        slow = executor.submit(nap, 1.0, "slow", where=slots[0])
        quick = executor.submit(nap, 0.05, "quick", where=slots[1])
        done, _pending = cf.wait([slow, quick], timeout=SLOW, return_when=cf.FIRST_COMPLETED)
        assert done == {quick}
        assert slow.result(timeout=SLOW)[0] == "slow"

    def test_units_run_side_by_side(self, executor: Executor) -> None:
        slots = _capacity(executor)[:2]
        if len(slots) < 2:
            pytest.skip("one slot")
        executor.submit(add, 0, 0, where=slots[0]).result(timeout=SLOW)  # warm (a worker's first task imports)
        futs = [executor.submit(nap, 1.0, str(i), where=p) for i, p in enumerate(slots)]
        spans = [f.result(timeout=SLOW)[1:] for f in futs]
        assert max(s for s, _e in spans) < min(e for _s, e in spans), f"the units ran one after the other: {spans}"

    def test_cancel_a_waiting_unit(self, executor: Executor) -> None:
        slots = _capacity(executor)
        place = slots[0]
        busy = [executor.submit(nap, 1.0, f"busy{i}", where=place) for i, p in enumerate(slots) if p == place]
        time.sleep(0.3)  # the busy units have started
        waiting = executor.submit(nap, 0.0, "never", where=place)
        assert executor.cancel(waiting) is True
        assert waiting.cancelled() or waiting.done()
        with pytest.raises((cf.CancelledError, Exception)):
            waiting.result(timeout=SLOW)
        after = executor.submit(nap, 0.0, "after", where=place)  # the slot goes to the next unit
        assert after.result(timeout=SLOW)[0] == "after"
        assert [b.result(timeout=SLOW)[0] for b in busy] == [f"busy{i}" for i in range(len(busy))]

    def test_shutdown_waits_for_running_work(self, executor: Executor) -> None:
        fut = executor.submit(nap, 0.5, "running")
        time.sleep(0.1)
        executor.shutdown()
        assert fut.done() and fut.result()[0] == "running"
        executor.shutdown()  # a second time: nothing

    def test_shutdown_with_cancel_returns_at_once(self, executor: Executor) -> None:
        slots = _capacity(executor)
        running = [executor.submit(nap, 3.0, "running", where=p) for p in slots]
        waiting = executor.submit(nap, 0.0, "waiting", where=slots[0])
        time.sleep(0.3)
        started = time.monotonic()
        executor.shutdown(cancel=True)
        assert time.monotonic() - started < 2.5, "shutdown(cancel=True) waited for the running work"
        assert waiting.cancelled() or (waiting.done() and waiting.exception() is not None)
        del running
        executor.shutdown(cancel=True)
