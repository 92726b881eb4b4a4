"""Running sessions: ``run``, ``answer``, ``resume``, ``rollback``, ``demo``, and what Ctrl-C does meanwhile.

The runner's ``[Maestro]`` lines are printed as they happen (in a terminal, above the live view of the tasks:
:mod:`maestro.cli.live`).  The first Ctrl-C pauses after the
current step; the second kills the agents and stops at once (:class:`Stopped`, exit code 130).
A maestro error once the session was written to is :class:`SessionFailed` (exit code 1): exit
code 2 is kept for bad input, refused before anything was written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.agents.factory import agent_from_config
from maestro.agents.process import kill_all
from maestro.cli._common import escaped, session_id
from maestro.config.reader import load_config
from maestro.core.errors import MaestroError, Terminated
from maestro.model.state import rebuild
from maestro.report.files import REPORT_FILE
from maestro.store.filestore import Store

if TYPE_CHECKING:
    from maestro.cli.live import LiveView

__all__ = ["SessionFailed", "Stopped", "cmd_answer", "cmd_demo", "cmd_resume", "cmd_rollback", "cmd_run", "hide_log"]


class _MaestroLines(logging.Handler):
    """Prints the runner's ``[Maestro]`` lines on stdout as they happen (above the live view while there is one)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.view: LiveView | None = None

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if not text.startswith("[Maestro]"):
            return
        view = self.view
        if view is not None:
            view.say(escaped(text))
            return
        sys.stdout.write(escaped(text) + "\n")
        sys.stdout.flush()


_SAVED: list[tuple[int, bool]] = []  # the logger's level and propagate before _show_log, for hide_log


def _show_log() -> _MaestroLines:
    handler = _MaestroLines(logging.INFO)
    logger = logging.getLogger("maestro.run")  # the [Maestro] lines of every run module
    _SAVED.append((logger.level, logger.propagate))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = logging.getLogger().level <= logging.DEBUG  # with -v the root handler shows them too
    return handler


def hide_log() -> None:
    """Take the ``[Maestro]`` lines' handler off again, and the logger back as it was (the command is over)."""
    logger = logging.getLogger("maestro.run")
    for h in [h for h in logger.handlers if isinstance(h, _MaestroLines)]:
        logger.removeHandler(h)
    if _SAVED:
        level, logger.propagate = _SAVED[0]
        logger.setLevel(level)
        _SAVED.clear()


def cmd_run(args: argparse.Namespace) -> int:
    # imported here: start-up of the command line stays light
    from maestro.run.runner import Runner

    store = Store(args.repo)
    config_path = Path(args.config) if args.config else store.config_path
    config = load_config(config_path, missing_ok=args.config is None)
    config = config.with_overrides(max_iterations=args.max_iterations, budget_usd=args.budget_usd)
    section = dict(config.agent or {})
    base = config_path.parent
    timeout = {"timeout_s": section["timeout_s"]} if section.get("timeout_s") is not None else {}
    if args.script:  # another agent, the same timeout (agent.timeout_s is the runner's, whatever the kind)
        section = {"kind": "scripted", "script": str(Path(args.script).resolve()), **timeout}
    elif args.agent and args.agent != section.get("kind"):
        section = {"kind": args.agent, **timeout}
    agent = agent_from_config(section or None, base_dir=base, where=str(config_path))
    if section:  # the session keeps the agent it ran with: resume builds the same one
        config = config.with_overrides(agent=_absolute_paths(section, base))
    config = config.with_overrides(max_minutes=args.max_minutes, executor=getattr(args, "executor", None))
    if config.executor != "local":  # a scheduler that cannot be reached is refused before anything is written
        from maestro.run.executors import open_executor  # (imported here: only a Dask run loads distributed)

        open_executor(config.executor, 1, timeout_s=5).shutdown()
    lines = _show_log()
    runner = Runner(store, config, agent)
    try:
        with _live_view(args, lines) as view, _ctrl_c(runner):
            runner.observer = view.observe if view is not None else None
            outcome = runner.run(
                args.request,
                prd_path=Path(args.prd) if args.prd else None,
                tasks_path=Path(args.tasks) if args.tasks else None,
                worktree=args.worktree,
                allow_dirty=args.allow_dirty,
            )
    except MaestroError as exc:
        if runner.session_id is None:  # refused before the session was created: bad input, nothing written
            raise
        raise SessionFailed(runner.session_id, exc) from exc
    return _outcome(outcome)


@contextlib.contextmanager
def _live_view(args: argparse.Namespace, lines: _MaestroLines) -> Iterator[LiveView | None]:
    """The live view of the run (a :class:`~maestro.cli.live.LiveView`, the ``[Maestro]`` lines printed above it),
    or None: it is for a terminal, and not with ``--no-live``, ``-v``, ``MAESTRO_NO_LIVE`` or ``TERM=dumb``."""
    from maestro.cli.live import live_view, live_wanted  # imported here: rich only for the commands that run

    verbose, no_live = getattr(args, "verbose", False), getattr(args, "no_live", False)
    with live_view(live_wanted(sys.stdout, verbose=verbose, no_live=no_live)) as view:
        lines.view = view
        try:
            yield view
        finally:
            lines.view = None


def _absolute_paths(section: dict[str, Any], base: Path) -> dict[str, Any]:
    """The agent section with its script path absolute (a resume may run from another folder)."""
    out = dict(section)
    if isinstance(out.get("script"), str):
        out["script"] = str((base / out["script"]).resolve())
    return out


def _outcome(outcome: Any) -> int:
    out = sys.stdout
    if outcome.report and (Path(outcome.report).parent / REPORT_FILE).is_file():
        out.write(f"html report: {Path(outcome.report).parent / REPORT_FILE}\n")
    out.write(f"session {outcome.session_id}: {outcome.state}\n")
    if outcome.report:
        out.write(f"report: {outcome.report}\n")
    if outcome.request_file:
        out.write(f"decision request: {outcome.request_file}\n")
        out.write(f"answer it: maestro answer {outcome.session_id} CHOICE [--note TEXT]; then: maestro resume "
                  f"{outcome.session_id}\n")  # fmt: skip
    return int(outcome.exit_code)


class SessionFailed(Exception):
    """A maestro error after the session was written to: ``main`` prints it on one line and exits 1."""

    def __init__(self, session_id: str, error: BaseException) -> None:
        hint = "" if "changed behind" in str(error) else f" (`maestro status {session_id}` shows where it is)"
        super().__init__(f"session {session_id} stopped: {error}{hint}")
        self.session_id = session_id
        self.error = error


def _log_size(store: Store, sid: str) -> int | None:
    try:
        return store.events_path(sid).stat().st_size
    except (OSError, MaestroError):
        return None


class Stopped(Exception):
    """A run stopped at once (a second Ctrl-C: exit 130; SIGTERM: 143; SIGHUP: 129): ``main`` says how to resume."""

    def __init__(self, session_id: str | None, exit_code: int = 130, how: str = "a second Ctrl-C") -> None:
        super().__init__(session_id)
        self.session_id = session_id
        self.exit_code = exit_code
        self.how = how


_ENDING = ("SIGTERM", "SIGHUP")  # signals that stop at once, as a second Ctrl-C does


@contextlib.contextmanager
def _ctrl_c(runner: Any) -> Iterator[None]:
    """The first Ctrl-C pauses after the current step; the second kills the agents and stops at once.

    SIGTERM and SIGHUP (a service manager stopping maestro, a closed terminal) stop at once as the second Ctrl-C
    does: every agent's process group is killed, the stop is noted in the log, and the exit is 128 + the signal.
    A resume after it is a crash resume.
    """
    count = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal count
        count += 1
        if count == 1:
            runner.interrupt()
            sys.stderr.write("maestro: pausing after the current step (Ctrl-C again to stop at once)\n")
            return
        kill_all()
        raise KeyboardInterrupt

    def ending(signum: int, frame: Any) -> None:
        kill_all()
        raise Terminated(signum, signal.Signals(signum).name)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, handler)}
    for name in _ENDING:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, ending)
    try:
        yield
    except Terminated as stop:
        raise Stopped(runner.session_id, 128 + stop.signum, stop.name) from None
    except KeyboardInterrupt:
        raise Stopped(runner.session_id) from None
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


def cmd_answer(args: argparse.Namespace) -> int:
    # imported here: start-up of the command line stays light
    from maestro.run.pauses import answer

    store = Store(args.repo)
    sid = session_id(store, args.session)
    decision = answer(store, sid, args.choice, note=args.note)
    sys.stdout.write(f"session {sid}: answered {decision.choice} ({decision.id}); continue with: maestro resume "
                     f"{sid}\n")  # fmt: skip
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    # imported here: start-up of the command line stays light
    from maestro.run import Runner, load_run_inputs

    store = Store(args.repo)
    sid = session_id(store, args.session)
    inputs = load_run_inputs(store, sid)
    agent = agent_from_config(inputs.config.agent or None, base_dir=store.root, where=f"session {sid} run.json")
    lines = _show_log()
    runner = Runner(store, inputs.config, agent)
    limits = {"max_iterations": args.max_iterations, "budget_usd": args.budget_usd, "max_minutes": args.max_minutes}
    before = _log_size(store, sid)
    try:
        with _live_view(args, lines) as view, _ctrl_c(runner):
            runner.observer = view.observe if view is not None else None
            outcome = runner.resume(sid, limits=limits)
    except MaestroError as exc:
        if _log_size(store, sid) == before:  # refused before the session was written to (held, final, unreadable)
            raise
        raise SessionFailed(sid, exc) from exc
    return _outcome(outcome)


def cmd_rollback(args: argparse.Namespace) -> int:
    # imported here: start-up of the command line stays light
    from maestro.git.checkpoints import Checkpointer
    from maestro.store.filestore import Lock  # (the same: only this command takes a lock by itself)

    store = Store(args.repo)
    sid = session_id(store, args.session)
    lock = Lock(store.session_dir(sid) / "lock", sid)  # no run of the session moves its branch meanwhile
    try:
        state = rebuild(store.read_events(sid), where=str(store.events_path(sid)))
        if not state.checkpoints:
            raise MaestroError(f"session {sid} has no checkpoint")
        to = args.to if args.to is not None else state.checkpoints[-1].n
        record = Checkpointer(store.repo, sid, worktree=True).rollback(to)
    finally:
        lock.release()
    sys.stdout.write(f"session {sid}: branch maestro/{sid} is at checkpoint {record.n} ({record.tag})\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    # imported here: start-up of the command line stays light
    from maestro.run.demo import run_demo, sample_repo

    lines = _show_log()
    with _live_view(args, lines) as view:
        outcome, folder = run_demo(Path(args.dir) if args.dir else None, agent=args.agent,
                                   observer=view.observe if view is not None else None)  # fmt: skip
    if args.agent != "scripted":  # what the real CLI's result lines said, attempt by attempt
        state = rebuild(Store(sample_repo(folder)).read_events(outcome.session_id))
        for r in state.agent_results:
            cost = "no cost reported" if r.cost_usd is None else f"${r.cost_usd:.4f}"
            turns = "" if r.turns is None else f", {r.turns} turn{'' if r.turns == 1 else 's'}"
            tokens = "" if r.input_tokens is None else f", {r.input_tokens} tokens in, {r.output_tokens} out"
            sys.stdout.write(f"{r.agent} {r.task} attempt {r.attempt}: {r.status}{turns}{tokens}, {cost}, "
                             f"{r.duration_s:.1f} s\n")  # fmt: skip
    sys.stdout.write(f"session {outcome.session_id}: {outcome.state}\n")
    sys.stdout.write(f"sample repository and plan: {folder}\n")
    if outcome.report:
        sys.stdout.write(f"report: {outcome.report}\n")
    return outcome.exit_code
