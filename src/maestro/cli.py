"""The ``maestro`` command: parse arguments, call the library, print, set the exit code.

Exit codes: 0 success, 2 bad input or a maestro error (one line on stderr),
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from maestro._errors import MaestroError
from maestro.chart import CHART_NAMES, load_chart
from maestro.records import converter
from maestro.replay import Step, replay
from maestro.store import Store

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the problem, not the whole usage block.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog.split()[0]} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    from maestro import __version__

    p = _Parser(prog="maestro", description="An autonomous software-development orchestrator.")
    p.add_argument("--version", action="version", version=f"maestro {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log what maestro does on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sc = sub.add_parser("statechart", help="print a statechart", description="Print a statechart.")
    sc.add_argument("--chart", choices=CHART_NAMES, default="session", help="which chart (default: session)")
    sc.add_argument(
        "--format", choices=("mermaid", "yaml", "json"), default="mermaid", help="output format (default: mermaid)"
    )

    rp = sub.add_parser(
        "replay",
        help="step through a recorded session (read-only)",
        description="Print a recorded session step by step, and the state after the last step shown. Writes nothing.",
    )
    rp.add_argument("session", help="the session id (see `maestro sessions`)")
    rp.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    rp.add_argument("--json", action="store_true", help="one JSON object a line")
    rp.add_argument("--to", type=_step_number, metavar="N", help="stop after step N (step 0 is the session's creation)")

    ss = sub.add_parser("sessions", help="list the sessions of a repository", description="List recorded sessions.")
    ss.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    ss.add_argument("--json", action="store_true", help="one JSON object a line")
    return p


def _step_number(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a step number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"step numbers start at 0, not {n}")
    return n


def _cmd_statechart(args: argparse.Namespace) -> int:
    chart = load_chart(args.chart)
    out = {"mermaid": chart.to_mermaid, "yaml": chart.to_yaml, "json": chart.to_json}[args.format]()
    sys.stdout.write(out)
    return 0


def _step_line(step: Step) -> str:
    if step.index == 0:
        head = f"{step.index:>4}  #{step.seq:<5} session created: {_text(step.state.request)}"
    elif step.trigger is None:
        head = f"{step.index:>4}  #{step.seq:<5} (in {step.state.state}, no move yet)"
    else:
        head = f"{step.index:>4}  #{step.seq:<5} {step.trigger}: {step.source} -> {step.dest}"
    counts = [
        (len(step.decisions), "decision"),
        (len(step.checkpoints), "checkpoint"),
        (len(step.agent_results), "agent result"),
        (len(step.gates), "gate"),
        (len(step.task_moves), "task move"),
        (len(step.notes), "note"),
    ]
    extra = ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in counts if n)
    return f"{head}  [{extra}]" if extra else head


def _text(value: str) -> str:
    """``value`` on one line: control characters (newlines…) escaped, so one step stays one line."""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value)


def _cmd_replay(args: argparse.Namespace) -> int:
    store = Store(args.repo)
    events = store.read_events(args.session)
    if args.to is not None:
        # step 0 is the session's creation, then one step a move, and one for events after the last move
        trailing = events[-1].kind not in ("transition", "session")
        last_step = sum(1 for e in events if e.kind == "transition") + trailing
        if args.to > last_step:
            raise MaestroError(f"session {args.session} has steps 0 to {last_step}, not {args.to}")
    out = sys.stdout
    last: Step | None = None
    for last in replay(events, to=args.to, where=str(store.events_path(args.session))):
        out.write((json.dumps(last.to_dict(), ensure_ascii=False) if args.json else _step_line(last)) + "\n")
    assert last is not None  # a session log has its first event (read_events checks)
    state = last.state
    if args.json:
        out.write(json.dumps({"final_state": converter.unstructure(state)}, ensure_ascii=False) + "\n")
    else:
        paused = f" (paused from {state.paused_from})" if state.paused_from else ""
        tasks = ", ".join(f"{k}={t.state}" for k, t in sorted(state.tasks.items())) or "none"
        out.write(
            f"after step {last.index} (seq {state.last_seq}): {state.state}{paused}; iteration {state.iteration}; "
            f"{len(state.decisions)} decisions, {len(state.checkpoints)} checkpoints, "
            f"{len(state.agent_results)} agent results; tasks: {tasks}\n"
        )
    return 0


def _cmd_sessions(args: argparse.Namespace) -> int:
    from maestro.state import rebuild

    store = Store(args.repo)
    for sid in store.session_ids():
        st = rebuild(store.read_events(sid), where=str(store.events_path(sid)))
        row: dict[str, Any] = {"session": sid, "state": st.state, "updated_at": st.updated_at, "request": st.request}
        sys.stdout.write(
            (json.dumps(row, ensure_ascii=False) if args.json else f"{sid}  {st.state:<16} {_text(st.request)}") + "\n"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, format="maestro: %(levelname)s: %(message)s")
    handler = {"statechart": _cmd_statechart, "replay": _cmd_replay, "sessions": _cmd_sessions}[args.command]
    try:
        return handler(args)
    except MaestroError as exc:
        sys.stderr.write(f"maestro: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("maestro: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
