"""The live view of ``maestro run``, ``resume`` and ``demo`` in a terminal: the tasks and the session's totals.

While a session runs with stdout a terminal, one table (drawn by rich) shows each task — waiting, running, done
or failed — with its attempt, elapsed time and cost, and under it the session's state and totals; the
``[Maestro]`` lines go on printing above it, so nothing is lost.  What it shows is a
:class:`~maestro.run.progress.Progress` folded from the session's events, which the runner hands its observer
(:class:`LiveView.observe`) as they are recorded.

It is not used — the output is the plain lines, exactly — when stdout is not a terminal (a pipe, CI), with
``--no-live`` or ``-v``, when ``MAESTRO_NO_LIVE`` is set (to anything but ``0``), or when ``TERM`` is ``dumb``
(:func:`live_wanted`).  It stops, leaving the last table and a visible cursor, however the command ends: done,
paused, an error, Ctrl-C, SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from maestro.core.errors import MaestroError
from maestro.core.records import Event
from maestro.core.seams import Clock
from maestro.plan.load import load_tasks
from maestro.run.progress import Progress, ProgressSnapshot, TaskProgress

__all__ = ["LiveView", "duration", "live_view", "live_wanted", "render", "totals"]

log = logging.getLogger("maestro")

_STATUS = {"pending": "waiting", "succeeded": "done"}  # the chart's other state names read as they are
_STYLE = {"waiting": "dim", "running": "bold cyan", "done": "green", "failed": "bold red"}


def live_wanted(stream: IO[str], *, verbose: bool = False, no_live: bool = False,
                environ: Mapping[str, str] | None = None) -> bool:  # fmt: skip
    """Whether the live view is for this output: a terminal, not turned off (``--no-live``, ``-v``,
    ``MAESTRO_NO_LIVE``), not ``TERM=dumb``."""
    env = os.environ if environ is None else environ
    if no_live or verbose or env.get("MAESTRO_NO_LIVE", "") not in ("", "0") or env.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


# -- rendering -----------------------------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """``4.2s``, ``37s``, ``2m05s``, ``1h02m`` (``-``: none)."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _shown(tasks: tuple[TaskProgress, ...], max_rows: int | None) -> tuple[list[TaskProgress], int]:
    """The tasks to show in plan order (running and failed ones first to keep, then waiting, then done), and how
    many are left out."""
    if max_rows is None or len(tasks) <= max_rows:
        return list(tasks), 0
    rank = {"running": 0, "failed": 1, "waiting": 2, "done": 3}
    keep = set(sorted(range(len(tasks)), key=lambda i: (rank.get(tasks[i].bucket, 2), i))[: max(1, max_rows - 1)])
    return [t for i, t in enumerate(tasks) if i in keep], len(tasks) - len(keep)


def render(snap: ProgressSnapshot, *, max_rows: int | None = None) -> RenderableType:
    """The table of tasks (status, attempt, elapsed, cost, the last word on each) and the totals line under it."""
    title = f"maestro session {snap.session_id}" if snap.session_id else "maestro"
    if not snap.tasks:  # planning: no task yet
        return Group(Text(title, style="italic"), totals(snap))
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("Task", no_wrap=True)
    titled = any(t.title for t in snap.tasks)
    if titled:
        table.add_column("Title", max_width=32)  # these two give way to a narrow terminal: their texts are cut
    table.add_column("Status", no_wrap=True)
    table.add_column("Attempt", justify="right", no_wrap=True)
    table.add_column("Elapsed", justify="right", no_wrap=True)
    table.add_column("Cost", justify="right", no_wrap=True)
    table.add_column("Last", max_width=60)
    rows, hidden = _shown(snap.tasks, max_rows)
    for t in rows:
        status = Text(_STATUS.get(t.state, t.state), style=_STYLE.get(t.bucket, ""))
        cells: list[Any] = [t.task]
        if titled:
            cells.append(_cut(t.title))
        cells += [status, str(t.attempt) if t.attempt else "-", duration(t.elapsed_s),
                  f"${t.cost_usd:.4f}" if t.calls else "-", _cut(t.last.splitlines()[0] if t.last else "")]  # fmt: skip
        table.add_row(*cells)
    if hidden:
        table.add_row(Text(f"… {hidden} more", style="dim"))
    return Group(table, totals(snap))


def _cut(text: str) -> Text:
    """One line, cut with an ellipsis where its column is narrower (never wrapped, never read as markup)."""
    return Text(text, no_wrap=True, overflow="ellipsis")


def totals(snap: ProgressSnapshot) -> Text:
    """The session's line: state, tasks done of all, running, waiting, failed, attempts, cost, active time."""
    c = snap.counts
    parts = [f"{c['done']}/{snap.total} tasks done" if snap.total else "no tasks yet"]
    parts += [f"{c[b]} {b}" for b in ("running", "waiting", "failed") if c[b]]
    parts += [f"{snap.attempts} attempt{'' if snap.attempts == 1 else 's'}", f"${snap.cost_usd:.4f}",
              duration(snap.elapsed_s)]  # fmt: skip
    if snap.iteration:
        parts.append(f"refinement {snap.iteration}")
    style = "bold green" if snap.state == "completed" else "bold red" if snap.ended else "bold"
    return Text.assemble((snap.state, style), " · " + " · ".join(parts))


# -- the view ------------------------------------------------------------------------------------------------------


class LiveView:
    """The live table of one command's session.  Use it as a context manager around the run; give the runner
    :meth:`observe` as its observer.  ``console`` draws it (stdout's, by default)."""

    def __init__(self, console: Console | None = None, *, clock: Clock | None = None,
                 refresh_per_second: float = 4) -> None:  # fmt: skip
        self.console = console or Console(file=sys.stdout)
        self.progress = Progress(clock=clock)
        self._lock = threading.Lock()  # the runner's thread folds, rich's refresh thread reads
        self._planned = False
        self._drawn = 0.0  # time.monotonic() of the last drawing an event asked for
        self._live = Live(console=self.console, get_renderable=self.renderable, refresh_per_second=refresh_per_second,
                          transient=False, redirect_stdout=True, redirect_stderr=True)  # fmt: skip
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    def observe(self, event: Event, folder: Path) -> None:
        """The runner's observer: fold in ``event`` (of the session in ``folder``); the table is drawn again at once
        (at most 20 times a second: a resume hands in the whole log first)."""
        with self._lock:
            self.progress.add(event)
            if not self._planned and event.kind in ("transition", "task"):
                self._plan(folder / "tasks.yaml")
        now = time.monotonic()
        if self._live.is_started and now - self._drawn >= 0.05:
            self._drawn = now
            self._live.refresh()

    def say(self, line: str) -> None:
        """Print ``line`` above the table, as it is (no markup; long lines wrapped by the terminal, not cut)."""
        self.console.print(Text(line), soft_wrap=True)

    def _plan(self, path: Path) -> None:
        """The tasks and their titles from the session's plan, once it has one."""
        if not path.is_file():
            return
        self._planned = True
        try:
            graph = load_tasks(path)
        except (MaestroError, OSError) as exc:  # the view goes on with the tasks the log names
            log.debug("the live view cannot read %s: %s", path, exc)
            return
        self.progress.plan({t.id: t.title for t in graph})

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return self.progress.snapshot()

    def renderable(self) -> RenderableType:
        """What the view draws now (rich's refresh thread asks; a failure here must not end the command)."""
        try:
            return render(self.snapshot(), max_rows=max(3, self.console.size.height - 6))
        except Exception as exc:  # a bug in the view: say so in its place, the run goes on
            log.debug("the live view cannot draw", exc_info=True)
            return Text(f"(the live view cannot draw: {exc})", style="dim")

    # -- starting and stopping -------------------------------------------------------------------------------------
    def __enter__(self) -> LiveView:
        before = sys.stderr
        self._live.start(refresh=True)
        # maestro's warnings (the root logger's handler holds stderr as it was): above the table, as the lines go
        for h in logging.getLogger().handlers:
            if type(h) is logging.StreamHandler and h.stream is before and sys.stderr is not before:
                self._streams.append((h, h.setStream(sys.stderr)))
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Draw the table a last time and give the terminal back (the cursor shown, stdout and stderr as they were).
        Idempotent; a second Ctrl-C meanwhile still leaves the terminal sane."""
        try:
            self._live.stop()  # draws a last time (rich undoes its redirections whatever happens)
        except Exception:  # the terminal gone (SIGHUP): the command's own ending matters, not the view's
            log.debug("the live view could not stop cleanly", exc_info=True)
        finally:
            for h, stream in self._streams:
                h.setStream(stream)
            self._streams.clear()
            with contextlib.suppress(Exception):
                self.console.show_cursor(True)


@contextlib.contextmanager
def live_view(wanted: bool) -> Iterator[LiveView | None]:
    """A started :class:`LiveView` when ``wanted``, else None; stopped however the block ends."""
    if not wanted:
        yield None
        return
    with LiveView() as view:
        yield view
