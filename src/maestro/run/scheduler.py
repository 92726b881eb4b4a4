"""The scheduler: task attempts on an executor, each task starting as soon as it is ready.

It knows nothing of agents, git or the log: ``ready`` lists the tasks that may start now
(their dependencies merged), best first; ``start`` begins a task's attempt (and returns the
work to do: a callable for a worker thread, or a :class:`~maestro.run.executors.Work` for the
executor, a remote one included); ``lost`` says what an attempt whose place went away (a Dask
worker gone: :class:`~maestro.run.executors.PlaceLost`) means; ``settle`` records how it went
(in the coordinating thread,
one outcome at a time: this is where the merge queue runs) and may ask the run to pause;
``limit`` says whether a limit stops new attempts, and ``budget_left`` what is left of the
budget; ``after`` is called once the attempts that settled attempts made ready have started (the
bookkeeping that need not keep them waiting: the merge queue's checkpoints).  Attempts that start
together share the budget that the running attempts' allowances leave free, so together they
cannot overspend.  After a pause is asked for, no attempt
starts; those running finish and settle.  The attempts run on ``executor`` (the local thread pool unless
given: :mod:`maestro.run.executors`), which the batch shuts down when it ends: at a second Ctrl-C or a SIGTERM
without waiting, the attempts waiting dropped and those running stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Generic, TypeVar

from maestro.run.executors import Executor, LocalExecutor, PlaceLost, Work
from maestro.run.pauses import Pause

__all__ = ["Batch"]

R = TypeVar("R")


class Batch(Generic[R]):
    """One run of the scheduler; :attr:`allowances` holds the budget given to the attempts running now."""

    def __init__(
        self,
        *,
        workers: int,
        start: Callable[[str, float | None], Callable[[], R] | Work],
        settle: Callable[[str, R], Pause | None],
        limit: Callable[[], Pause | None],
        budget_left: Callable[[], float | None],
        after: Callable[[], object] = lambda: None,
        executor: Executor | None = None,
        lost: Callable[[str, PlaceLost], Pause | None] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self._start = start
        self._settle = settle
        self._executor = executor
        self._lost = lost
        self._limit = limit
        self._budget_left = budget_left
        self._after = after
        self.allowances: dict[str, float] = {}
        self.started: list[str] = []  # every attempt started, in order (a task once per attempt)

    def budget_free(self) -> float | None:
        """What is left of the budget once the running attempts' allowances are set aside (None: no budget)."""
        left = self._budget_left()
        return None if left is None else max(0.0, left - sum(self.allowances.values()))

    def run(self, ready: Callable[[], list[str]]) -> None:
        """Start ready tasks up to ``workers`` at a time until none is ready or running; raise the first pause.

        ``ready`` is asked again after every settled attempt: a merge may make new tasks ready, and a
        task that runs again (a retry, an alternative) is ready again.
        """
        pause: Pause | None = None
        pool = self._executor if self._executor is not None else LocalExecutor(self.workers)
        running: dict[cf.Future[R], str] = {}

        def fill() -> Pause | None:
            busy = set(running.values())
            candidates = [t for t in ready() if t not in busy]
            slots = self.workers - len(running)
            if not candidates or slots <= 0:
                return None
            stop = self._limit()  # a limit reached: the agents running finish, no new attempt starts
            if stop is not None:
                return stop
            chosen = candidates[:slots]
            free = self.budget_free()
            share = None if free is None else free / len(chosen)
            for tid in chosen:
                if share is not None:
                    self.allowances[tid] = share
                self.started.append(tid)
                work = self._start(tid, share)
                if isinstance(work, Work):
                    running[pool.submit(work.fn, *work.args, where=work.where)] = tid
                else:
                    running[pool.submit(work)] = tid
            return None

        try:
            pause = fill()
            while running:
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    tid = running.pop(fut)
                    self.allowances.pop(tid, None)
                    try:
                        value = fut.result()
                    except PlaceLost as gone:
                        if self._lost is None:
                            raise
                        outcome = self._lost(tid, gone)
                    else:
                        outcome = self._settle(tid, value)
                    if isinstance(outcome, Pause):
                        pause = pause or outcome
                if pause is None:
                    pause = fill()
                self._after()
        except BaseException:  # a second Ctrl-C: do not wait for the agents still working
            pool.shutdown(cancel=True)
            raise
        finally:
            self.allowances.clear()
        pool.shutdown()
        if pause is not None:
            raise pause
