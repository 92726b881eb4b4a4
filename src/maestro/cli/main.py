"""The ``maestro`` command: the parser, and ``main``: dispatch to a command, then the exit code.

Each command group has its module: :mod:`maestro.cli.inspect` (statechart, replay,
sessions, status, report, stats, agents), :mod:`maestro.cli.plan` (prd, tasks, decide),
:mod:`maestro.cli.run` (run, answer, resume, rollback, demo, Ctrl-C), :mod:`maestro.cli.sessions`
(land, clean) and
:mod:`maestro.cli.init` (init), :mod:`maestro.cli.lessons` (lessons).

Exit codes: 0 success, 2 bad input refused before anything was written (one line
on stderr), 1 a failure once a session was written to (one line too; ``run``,
``resume``), 3 paused for a human, 130 interrupted (143 by SIGTERM, 129 by SIGHUP).  Text arguments (a request, a
note) must be UTF-8: other bytes are refused with one line before anything is read.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from dulwich.file import FileLocked

from maestro.cli import init as init_cli
from maestro.cli import inspect, plan, run, sessions
from maestro.cli import lessons as lessons_cli
from maestro.core.errors import MaestroError
from maestro.core.text import MAX_INPUT_BYTES
from maestro.model.chart import CHART_NAMES

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the problem, not the whole usage block.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog.split()[0]} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    from maestro import __version__  # imported here: read from the installed metadata when the parser is built

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
    rp.add_argument("session", help="the session id (see `maestro sessions`), or 'last'")
    rp.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    rp.add_argument("--json", action="store_true", help="one JSON object a line")
    rp.add_argument("--to", type=_step_number, metavar="N", help="stop after step N (step 0 is the session's creation)")
    rp.add_argument(
        "--redrive",
        action="store_true",
        help="run the session again on a copy of the repository with its recorded agent results, and compare",
    )

    ss = sub.add_parser("sessions", help="list the sessions of a repository", description="List recorded sessions.")
    ss.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    ss.add_argument("--json", action="store_true", help="one JSON object a line")
    _html_flags(ss, "an HTML index of the sessions (and each one's report.html)", ".flow/maestro/sessions.html")

    sx = sub.add_parser(
        "stats",
        help="success metrics over a repository's sessions",
        description="Print the success metrics over the repository's sessions: autonomy rate, recovery rate, "
        "attempts, cost and time per task and per session (docs/stats.md). Writes nothing.",
    )
    sx.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    sx.add_argument("--json", action="store_true", help="print JSON")

    pr = sub.add_parser(
        "prd", help="read a PRD and list its requirements", description="Read a PRD and list its requirements."
    )
    pr.add_argument("path", help="the PRD (markdown with YAML front matter, or a Functional Requirements table)")
    pr.add_argument("--json", action="store_true", help="print JSON")

    tk = sub.add_parser(
        "tasks",
        help="validate a task graph and show the order it runs in",
        description="Validate a task graph (tasks.yaml, beads JSON from `bd list --json`, or a markdown task list "
        "with [P:Group-X] flags) and print the parallel groups it runs in.",
    )
    tk.add_argument("path", help="tasks.yaml, a .json/.jsonl beads export, or a .md task list")
    tk.add_argument("--prd", help="check every task's requirement ids against this PRD")
    tk.add_argument("--max-parallel", type=_positive, metavar="N", help="at most N tasks at once (default: no cap)")
    tk.add_argument("--json", action="store_true", help="print the ordering decision as JSON")
    tk.add_argument("--yaml", action="store_true", help="print the graph as tasks.yaml instead (to convert)")
    tk.add_argument("-o", "--output", metavar="FILE", help="write the graph as tasks.yaml to FILE (atomically)")

    dc = sub.add_parser(
        "decide",
        help="make one decision about a repository and show its evidence",
        description="Ask the decision engine about a repository, without a session (nothing is recorded).",
    )
    dc.add_argument("kind", choices=("tech_stack", "architecture", "gate"), help="the kind of decision")
    dc.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    dc.add_argument("--capability", help="tech_stack: the capability needed (e.g. 'http client')")
    dc.add_argument("--ecosystem", help="tech_stack: python, node, rust, go or ruby (default: the repository's)")
    dc.add_argument("--gate", choices=("tests", "lint", "typecheck", "security"), help="gate: which gate")
    dc.add_argument("--feature", help="architecture: the feature the code is for")
    dc.add_argument("--json", action="store_true", help="print the decision as JSON")

    rn = sub.add_parser(
        "run",
        help="run a session: plan, implement, validate, hand off",
        description="Run an autonomous session for REQUEST on the repository. Prints the session id, then the "
        "[Maestro] log. Exit codes: 0 completed, 1 failed or aborted, 2 bad input (refused before anything is "
        f"written), 3 paused for a human. Input files larger than {MAX_INPUT_BYTES:,} bytes (10 MiB) are refused.",
    )
    rn.add_argument("request", help="the feature request")
    rn.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    rn.add_argument("--prd", metavar="FILE", help="the PRD to implement (default: the agent plans one)")
    rn.add_argument("--tasks", metavar="FILE", help="the task graph: tasks.yaml, beads JSON or a markdown list")
    rn.add_argument("--agent", choices=("claude", "codex", "aider", "command", "scripted"), help="the agent kind")
    rn.add_argument("--script", metavar="FILE", help="the scripted agent's script (implies --agent scripted)")
    rn.add_argument("--config", metavar="FILE", help="config.yaml (default: .flow/maestro/config.yaml)")
    rn.add_argument("--max-iterations", type=_positive, metavar="N", help="refinement iterations at most")
    rn.add_argument("--budget-usd", type=_dollars, metavar="X", help="spend at most X dollars on agents, in all")
    rn.add_argument("--max-minutes", type=_minutes, metavar="M", help="run for at most M minutes (paused time aside)")
    rn.add_argument("--executor", metavar="WHERE",
                    help="where task attempts run: local (threads here) or dask://HOST:PORT, a Dask scheduler's "
                    "workers (docs/distributed.md); overrides executor: in config.yaml")  # fmt: skip
    rn.add_argument("--worktree", action="store_true",
                    help="kept for compatibility: every session works in worktrees of its own")  # fmt: skip
    rn.add_argument("--allow-dirty", action="store_true",
                    help="kept for compatibility: uncommitted work is always part of the session's base")  # fmt: skip
    _live_flag(rn)

    an = sub.add_parser(
        "answer",
        help="answer a paused session's question",
        description="Record a human decision for a paused session (one of the options its decision request lists; "
        "`maestro status SESSION` shows them). `maestro resume SESSION` then acts on it.",
    )
    an.add_argument("session", help="the session id, or 'last'")
    an.add_argument("choice", help="one of the request's options (retry, skip, guidance, raise, handoff, abort ...)")
    an.add_argument("--note", metavar="TEXT", help="why, or the guidance itself (given to the agent on 'guidance')")
    an.add_argument("--repo", default=".", help="the repository (default: the current directory)")

    rs = sub.add_parser(
        "resume",
        help="continue a paused or interrupted session",
        description="Continue a session: a paused one acts on its answer (without one: retry or continue); one "
        "whose process died or was stopped has its interrupted step rolled back to the last checkpoint and redone. "
        "Exit codes as for run, and 130 when interrupted (143 by SIGTERM, 129 by SIGHUP).",
    )
    rs.add_argument("session", help="the session id, or 'last'")
    rs.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    rs.add_argument("--max-iterations", type=_positive, metavar="N", help="raise the iteration limit to N")
    rs.add_argument("--budget-usd", type=_dollars, metavar="X", help="raise the budget to X dollars in all")
    rs.add_argument("--max-minutes", type=_minutes, metavar="M", help="raise the time limit to M minutes in all")
    _live_flag(rs)

    st = sub.add_parser("status", help="where a session stands", description="Show a session's state.")
    st.add_argument("session", help="the session id, or 'last'")
    st.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    st.add_argument("--json", action="store_true", help="print JSON")

    rp2 = sub.add_parser("report", help="print a session's report", description="Print a session's final report.")
    rp2.add_argument("session", help="the session id, or 'last'")
    rp2.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    _html_flags(
        rp2, "the HTML report (timeline, task graph, the path through the chart)", "report.html in the session folder"
    )

    rb = sub.add_parser(
        "rollback",
        help="move the session branch back to a checkpoint",
        description="Move the session's branch (and its worktree, if it has one) back to a checkpoint; "
        "your checkout is not touched.",
    )
    rb.add_argument("session", help="the session id, or 'last'")
    rb.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    rb.add_argument("--to", type=_step_number, metavar="N", help="the checkpoint (default: the last one)")

    la = sub.add_parser(
        "land",
        help="bring a session's branch into your current branch",
        description="Bring branch maestro/SESSION into your current branch: a fast-forward when your branch has "
        "not moved since the session started, else a merge commit; your index and files then follow (only the "
        "files that differ are written). Refused, with nothing written, when your tree has uncommitted changes, "
        "HEAD is detached, the session is running or did not complete (see --force), or the merge conflicts. "
        "Landing a session again does nothing.",
    )
    la.add_argument("session", help="the session id, or 'last'")
    la.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    la.add_argument(
        "--force", action="store_true", help="land a session that did not complete: whatever its branch holds"
    )

    cl = sub.add_parser(
        "clean",
        help="remove the worktrees sessions left",
        description="Remove the worktrees a session left (a session that ends removes its own; a paused or "
        "stopped one keeps them). A paused session may be cleaned: `maestro resume` makes its worktrees again. "
        "A running session is refused (with --all: skipped). Branches, tags and refs/maestro/* stay.",
    )
    cl.add_argument("session", nargs="?", help="the session id, or 'last'")
    cl.add_argument(
        "--all",
        action="store_true",
        help="every session's worktrees, and git's entries of maestro worktrees whose folder has gone",
    )
    cl.add_argument("--repo", default=".", help="the repository (default: the current directory)")

    dm = sub.add_parser(
        "demo",
        help="run a whole session on a sample repository with the scripted agent (or a real agent CLI, offline)",
        description="Create a sample repository (in a temporary folder, or --dir) and run a whole session on it "
        "with the scripted agent: parallel groups, a retried transient failure, a rolled-back regression, "
        "real pytest validation and the final report. With --agent claude, codex or aider, that real CLI does the "
        "work with its own tools, against a scripted model on 127.0.0.1 (no account, no network), with a HOME of "
        "the demo's own.",
    )
    dm.add_argument("--dir", metavar="PATH", help="an empty or new folder for the sample (default: a temporary one)")
    dm.add_argument(
        "--agent",
        choices=("scripted", "claude", "codex", "aider"),
        default="scripted",
        help="the agent: the scripted one (default), or that real CLI, offline, against maestro's scripted model "
        "server (found by $MAESTRO_CLAUDE, $MAESTRO_CODEX or $MAESTRO_AIDER, else on PATH)",
    )
    _live_flag(dm)

    ag = sub.add_parser(
        "agents",
        help="list the subagents and skills maestro can hand tasks to",
        description="List the Claude Code subagents (.claude/agents/) and skills (.claude/skills/) of the repository "
        "and of your home folder, with where each comes from and any file that could not be read.",
    )
    ag.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    ag.add_argument("--json", action="store_true", help="print JSON")
    init_cli.add_parser(sub)
    lessons_cli.add_parser(sub)
    return p


def _int_at_least(minimum: int, what: str, low: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``; ``what`` names it, ``low`` says why a smaller one is wrong."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{low}, not {n}")
        return n

    return parse


_step_number = _int_at_least(0, "a step number", "step numbers start at 0")


def _positive_float(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not x > 0 or x == float("inf"):
            raise argparse.ArgumentTypeError(f"{what} must be above 0, not {text}")
        return x

    return parse


_dollars = _positive_float("an amount of dollars")


_minutes = _positive_float("a number of minutes")


_positive = _int_at_least(1, "a number", "must be at least 1")


_TEXT_ARGS = {"request": "the request", "choice": "the choice", "note": "--note", "feature": "--feature",
              "capability": "--capability", "ecosystem": "--ecosystem"}  # fmt: skip
"""The arguments that are text (recorded, or handed to an agent), not paths: they must be UTF-8."""


def _not_utf8(args: argparse.Namespace) -> str | None:
    """A one-line problem if a text argument holds bytes that are not UTF-8 (Python passes them on as lone
    surrogates, which no log or prompt can hold), else None."""
    for dest, name in _TEXT_ARGS.items():
        value = getattr(args, dest, None)
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            byte = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"character {value[exc.start]!a}"
            return f"{name} is not UTF-8 text ({byte} at character {exc.start + 1})"
    return None


def _cmd_init(args: argparse.Namespace) -> int:
    return init_cli.cmd_init(args, sys.stdout)


def _html_flags(parser: argparse.ArgumentParser, what: str, default: str) -> None:
    """``--html`` (write ``what`` and print its path) and ``-o/--output FILE`` (where; ``default`` otherwise)."""
    parser.add_argument("--html", action="store_true", help=f"write {what} and print its path")
    parser.add_argument("-o", "--output", metavar="FILE", help=f"with --html: where (default: {default})")


def _live_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-live", action="store_true",
                        help="print the [Maestro] lines only, without the live table of the tasks (also: "
                        "MAESTRO_NO_LIVE=1; it is off anyway when stdout is not a terminal)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    problem = _not_utf8(args)
    if problem is not None:
        sys.stderr.write(f"maestro: error: {problem}\n")
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, format="maestro: %(levelname)s: %(message)s")
    handler = {
        "statechart": inspect.cmd_statechart,
        "replay": inspect.cmd_replay,
        "sessions": inspect.cmd_sessions,
        "prd": plan.cmd_prd,
        "tasks": plan.cmd_tasks,
        "decide": plan.cmd_decide,
        "agents": inspect.cmd_agents,
        "run": run.cmd_run,
        "status": inspect.cmd_status,
        "report": inspect.cmd_report,
        "stats": inspect.cmd_stats,
        "lessons": lessons_cli.cmd_lessons,
        "rollback": run.cmd_rollback,
        "demo": run.cmd_demo,
        "answer": run.cmd_answer,
        "init": _cmd_init,
        "resume": run.cmd_resume,
        "land": sessions.cmd_land,
        "clean": sessions.cmd_clean,
    }[args.command]
    try:
        return handler(args)
    except MaestroError as exc:
        sys.stderr.write(f"maestro: error: {exc}\n")
        return 2
    except run.SessionFailed as failed:  # a session was written to: not bad input
        sys.stderr.write(f"maestro: error: {failed}\n")
        return 1
    except run.Stopped as stop:
        how = f": `maestro resume {stop.session_id}` redoes the interrupted step" if stop.session_id else ""
        sys.stderr.write(f"maestro: stopped at once by {stop.how}{how}\n")
        if threading.active_count() > 1:  # an agent still working in a thread would hold the exit until it ends
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(stop.exit_code)
        return stop.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("maestro: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except FileLocked as exc:  # a git lock file where no maestro error words it: a git running, or one that died
        lock = os.fsdecode(exc.lockfilename)
        sys.stderr.write(f"maestro: error: {lock} exists: another git process is running (or one crashed; remove "
                         "the file)\n")  # fmt: skip
        return 1
    except OSError as exc:  # the system refused (a full disk, a read-only folder) where no maestro error words it
        logging.getLogger("maestro").debug("%s failed", args.command, exc_info=True)
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"maestro: error: {exc.strerror or exc}{where}\n")
        return 1
    finally:
        run.hide_log()  # main() called in a process that goes on (a library user, a test): no handler left behind
