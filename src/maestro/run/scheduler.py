"""The scheduler: a batch of task attempts on a thread pool, a new attempt starting as soon as one settles.

It knows nothing of agents or the log: ``start`` begins a task's attempt (and returns the
work to do in a worker thread), ``settle`` records how it went (and says whether the task
runs again at once, or the run must pause), ``limit`` says whether a limit stops new
attempts, and ``budget_free`` what is left of the budget for the next one.  Attempts that
start together share the budget left; an attempt started while others run gets what their
allowances leave, so together they cannot overspend.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Generic, TypeVar

from maestro.run.pauses import Pause

__all__ = ["Batch"]

R = TypeVar("R")


class Batch(Generic[R]):
    """One batch of attempts; :attr:`allowances` holds the budget given to the attempts running now."""

    def __init__(
        self,
        *,
        workers: int,
        start: Callable[[str, float | None], Callable[[], R]],
        settle: Callable[[str, R], bool | Pause],
        limit: Callable[[], Pause | None],
        budget_left: Callable[[], float | None],
    ) -> None:
        self.workers = max(1, workers)
        self._start = start
        self._settle = settle
        self._limit = limit
        self._budget_left = budget_left
        self.allowances: dict[str, float] = {}

    def budget_free(self) -> float | None:
        """What is left of the budget once the running attempts' allowances are set aside (None: no budget)."""
        left = self._budget_left()
        return None if left is None else max(0.0, left - sum(self.allowances.values()))

    def run(self, tids: list[str]) -> None:
        """Run every task in ``tids`` until each settled for good; raise the first :class:`Pause` asked for."""
        pause: Pause | None = None
        pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="maestro-task")
        running: dict[cf.Future[R], str] = {}

        def submit(tid: str, allowance: float | None) -> None:
            if allowance is not None:
                self.allowances[tid] = allowance
            running[pool.submit(self._start(tid, allowance))] = tid

        try:
            pause = self._limit()
            free = self.budget_free()  # shared among the attempts that start together
            for tid in tids if pause is None else ():
                submit(tid, None if free is None else free / max(1, min(self.workers, len(tids))))
            while running:
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    tid = running.pop(fut)
                    self.allowances.pop(tid, None)
                    again = self._settle(tid, fut.result())
                    if isinstance(again, Pause):
                        pause = pause or again
                    elif again and pause is None:
                        pause = self._limit()  # a limit reached: the agents running finish, no new attempt starts
                        if pause is None:
                            submit(tid, self.budget_free())
        except BaseException:  # a second Ctrl-C: do not wait for the agents still working
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            self.allowances.clear()
        pool.shutdown()
        if pause is not None:
            raise pause
