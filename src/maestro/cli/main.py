"""The ``maestro`` command: parse arguments, call the library, print, set the exit code.

Exit codes: 0 success, 2 bad input or a maestro error (one line on stderr),
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs

from maestro.cli import init as init_cli
from maestro.core.errors import MaestroError
from maestro.core.records import converter
from maestro.model.chart import CHART_NAMES, load_chart
from maestro.replay import Step, replay
from maestro.store.filestore import Store

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
        "[Maestro] log. Exit codes: 0 completed, 1 failed or aborted, 2 bad input, 3 paused for a human.",
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
    rn.add_argument("--worktree", action="store_true", help="work in a separate worktree; your checkout stays as is")
    rn.add_argument("--allow-dirty", action="store_true", help="save uncommitted changes as the session's base")

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
        "Exit codes as for run, and 130 when interrupted.",
    )
    rs.add_argument("session", help="the session id, or 'last'")
    rs.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    rs.add_argument("--max-iterations", type=_positive, metavar="N", help="raise the iteration limit to N")
    rs.add_argument("--budget-usd", type=_dollars, metavar="X", help="raise the budget to X dollars in all")
    rs.add_argument("--max-minutes", type=_minutes, metavar="M", help="raise the time limit to M minutes in all")

    st = sub.add_parser("status", help="where a session stands", description="Show a session's state.")
    st.add_argument("session", help="the session id, or 'last'")
    st.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    st.add_argument("--json", action="store_true", help="print JSON")

    rp2 = sub.add_parser("report", help="print a session's report", description="Print a session's final report.")
    rp2.add_argument("session", help="the session id, or 'last'")
    rp2.add_argument("--repo", default=".", help="the repository (default: the current directory)")

    rb = sub.add_parser(
        "rollback", help="restore the tree to a checkpoint", description="Restore the working tree to a checkpoint."
    )
    rb.add_argument("session", help="the session id, or 'last'")
    rb.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    rb.add_argument("--to", type=_step_number, metavar="N", help="the checkpoint (default: the last one)")

    dm = sub.add_parser(
        "demo",
        help="run a whole session on a sample repository with the scripted agent",
        description="Create a sample repository (in a temporary folder, or --dir) and run a whole session on it "
        "with the scripted agent: parallel groups, a retried transient failure, a rolled-back regression, "
        "real pytest validation and the final report.",
    )
    dm.add_argument("--dir", metavar="PATH", help="an empty or new folder for the sample (default: a temporary one)")

    ag = sub.add_parser(
        "agents",
        help="list the subagents and skills maestro can hand tasks to",
        description="List the Claude Code subagents (.claude/agents/) and skills (.claude/skills/) of the repository "
        "and of your home folder, with where each comes from and any file that could not be read.",
    )
    ag.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    ag.add_argument("--json", action="store_true", help="print JSON")
    init_cli.add_parser(sub)
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
    args.session = _session_id(store, args.session)
    if args.redrive:
        return _redrive(store, args.session)
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


def _redrive(store: Store, sid: str) -> int:
    from maestro.run.redrive import cmd_redrive_lines, redrive
    from maestro.run.inputs import load_run_inputs

    report = redrive(store, sid, config=load_run_inputs(store, sid).config)
    sys.stdout.write("".join(line + "\n" for line in cmd_redrive_lines(report)))
    return 0 if report.same else 1


def _cmd_sessions(args: argparse.Namespace) -> int:
    from maestro.model.state import rebuild

    store = Store(args.repo)
    for sid in store.session_ids():
        st = rebuild(store.read_events(sid), where=str(store.events_path(sid)))
        row: dict[str, Any] = {"session": sid, "state": st.state, "updated_at": st.updated_at, "request": st.request}
        sys.stdout.write(
            (json.dumps(row, ensure_ascii=False) if args.json else f"{sid}  {st.state:<16} {_text(st.request)}") + "\n"
        )
    return 0


def _cmd_prd(args: argparse.Namespace) -> int:
    from maestro.plan.prd import load_prd

    prd = load_prd(args.path)
    if args.json:
        rows = [{"id": r.id, "priority": r.priority, "text": r.text, "line": r.line} for r in prd.requirements]
        doc = {"title": prd.title, "status": prd.status, "requirements": rows}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    status = f" ({prd.status})" if prd.status else ""
    sys.stdout.write(f"{_text(prd.title or args.path)}{status}: {len(prd.requirements)} requirements\n")
    width = max(len(r.id) for r in prd.requirements)
    for r in prd.requirements:
        sys.stdout.write(f"  {r.id:<{width}}  {r.priority}  {_text(r.text)}\n")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from maestro.decide.engine import DecisionEngine
    from maestro.decide.strategies.ordering import task_ordering
    from maestro.plan.ordering import order_tasks
    from maestro.plan.prd import load_prd
    from maestro.plan.load import load_tasks
    from maestro.store.filestore import atomic_write

    ids = load_prd(args.prd).requirement_ids if args.prd else None
    graph = load_tasks(args.path, requirement_ids=ids)
    if args.output:
        atomic_write(Path(args.output), graph.to_yaml())
    if args.yaml:
        sys.stdout.write(graph.to_yaml())
        return 0
    engine = DecisionEngine(strategies={"task_ordering": task_ordering})
    decision = engine.decide("task_ordering", graph=graph, max_parallel=args.max_parallel)
    ordering = order_tasks(graph, max_parallel=args.max_parallel)
    if args.json:
        doc = {**ordering.to_dict(), "decision": converter.unstructure(decision)}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    out.write(f"{args.path}: {len(graph)} tasks in {len(ordering.groups)} groups\n")
    for i, group in enumerate(ordering.groups, 1):
        out.write(f"  G{i}:\n")
        for tid in group:
            t = graph[tid]
            deps = f" after {', '.join(t.depends_on)}" if t.depends_on else ""
            out.write(f"    {tid}  {t.priority} {t.risk:<6} {_text(t.title)}{deps}\n")
    out.write(f"rationale: {decision.rationale}\n")
    return 0


def _cmd_decide(args: argparse.Namespace) -> int:
    from maestro.decide.engine import DecisionEngine

    params: dict[str, Any] = {}
    for name in ("capability", "ecosystem", "gate", "feature"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    repo = Path(args.repo)
    if not repo.is_dir():
        raise MaestroError(f"{repo}: no such directory")
    decision = DecisionEngine().decide(args.kind, repo=repo, **params)
    if args.json:
        sys.stdout.write(json.dumps(converter.unstructure(decision), indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    out.write(f"{decision.kind}: {_text(decision.question)}\n")
    out.write(f"  choice: {_text(decision.choice)} (confidence {decision.confidence:.2f}, by {decision.decided_by})\n")
    out.write(f"  rationale: {_text(decision.rationale)}\n")
    for option in decision.options:
        out.write(f"  option {_text(option.name)}  score {option.score:.2f}\n")
        for ev in option.evidence:
            out.write(f"    {_text(str(ev))}\n")
    return 0


def _session_id(store: Store, given: str) -> str:
    if given != "last":
        return given
    ids = store.session_ids()
    if not ids:
        raise MaestroError(f"{store.repo}: no sessions yet")
    return max(ids, key=lambda sid: (_started_at(store, sid), sid))


def _started_at(store: Store, sid: str) -> str:
    """The timestamp of a session's first event ("" if unreadable): ids alone do not order sessions of one second."""
    try:
        with store.events_path(sid).open(encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return ""
    ts = first.get("ts") if isinstance(first, dict) else None
    return ts if isinstance(ts, str) else ""


class _MaestroLines(logging.Handler):
    """Prints the runner's ``[Maestro]`` lines on stdout as they happen."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("[Maestro]"):
            sys.stdout.write(_text(text) + "\n")
            sys.stdout.flush()


def _show_log() -> logging.Handler:
    handler = _MaestroLines(logging.INFO)
    logger = logging.getLogger("maestro.run")  # the [Maestro] lines of every run module
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = logging.getLogger().level <= logging.DEBUG  # with -v the root handler shows them too
    return handler


def _cmd_run(args: argparse.Namespace) -> int:
    from maestro.agents.factory import agent_from_config
    from maestro.config.reader import load_config
    from maestro.run.runner import Runner

    store = Store(args.repo)
    config_path = Path(args.config) if args.config else store.config_path
    config = load_config(config_path, missing_ok=args.config is None)
    config = config.with_overrides(max_iterations=args.max_iterations, budget_usd=args.budget_usd)
    section = dict(config.agent or {})
    base = config_path.parent
    if args.script:
        section = {"kind": "scripted", "script": str(Path(args.script).resolve())}
    elif args.agent and args.agent != section.get("kind"):
        section = {"kind": args.agent}
    agent = agent_from_config(section or None, base_dir=base, where=str(config_path))
    if section:  # the session keeps the agent it ran with: resume builds the same one
        config = config.with_overrides(agent=_absolute_paths(section, base))
    config = config.with_overrides(max_minutes=args.max_minutes)
    _show_log()
    runner = Runner(store, config, agent)
    with _ctrl_c(runner):
        outcome = runner.run(
            args.request,
            prd_path=Path(args.prd) if args.prd else None,
            tasks_path=Path(args.tasks) if args.tasks else None,
            worktree=args.worktree,
            allow_dirty=args.allow_dirty,
        )
    return _outcome(outcome)


def _absolute_paths(section: dict[str, Any], base: Path) -> dict[str, Any]:
    """The agent section with its script path absolute (a resume may run from another folder)."""
    out = dict(section)
    if isinstance(out.get("script"), str):
        out["script"] = str((base / out["script"]).resolve())
    return out


def _outcome(outcome: Any) -> int:
    out = sys.stdout
    out.write(f"session {outcome.session_id}: {outcome.state}\n")
    if outcome.report:
        out.write(f"report: {outcome.report}\n")
    if outcome.request_file:
        out.write(f"decision request: {outcome.request_file}\n")
        out.write(f"answer it: maestro answer {outcome.session_id} CHOICE [--note TEXT]; then: maestro resume "
                  f"{outcome.session_id}\n")  # fmt: skip
    return int(outcome.exit_code)


class _Stopped(Exception):
    def __init__(self, session_id: str | None) -> None:
        super().__init__(session_id)
        self.session_id = session_id


@contextlib.contextmanager
def _ctrl_c(runner: Any) -> Iterator[None]:
    """The first Ctrl-C pauses after the current step; the second kills the agents and stops at once."""
    from maestro.agents.process import kill_all

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

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    except KeyboardInterrupt:
        raise _Stopped(runner.session_id) from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _cmd_init(args: argparse.Namespace) -> int:
    return init_cli.cmd_init(args, sys.stdout)


def _cmd_answer(args: argparse.Namespace) -> int:
    from maestro.run.pauses import answer

    store = Store(args.repo)
    sid = _session_id(store, args.session)
    decision = answer(store, sid, args.choice, note=args.note)
    sys.stdout.write(f"session {sid}: answered {decision.choice} ({decision.id}); continue with: maestro resume "
                     f"{sid}\n")  # fmt: skip
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from maestro.agents.factory import agent_from_config
    from maestro.run import Runner, load_run_inputs

    store = Store(args.repo)
    sid = _session_id(store, args.session)
    inputs = load_run_inputs(store, sid)
    agent = agent_from_config(inputs.config.agent or None, base_dir=store.root, where=f"session {sid} run.json")
    _show_log()
    runner = Runner(store, inputs.config, agent)
    limits = {"max_iterations": args.max_iterations, "budget_usd": args.budget_usd, "max_minutes": args.max_minutes}
    with _ctrl_c(runner):
        outcome = runner.resume(sid, limits=limits)
    return _outcome(outcome)


def _status_doc(store: Store, sid: str) -> dict[str, Any]:
    from maestro.model.state import rebuild
    from maestro.run.pauses import request_doc

    state = rebuild(store.read_events(sid), where=str(store.events_path(sid)))
    req = state.decision_request
    return {
        "session": sid,
        "state": state.state,
        "paused_from": state.paused_from,
        "iteration": state.iteration,
        "request": state.request,
        "tasks": {k: t.state for k, t in sorted(state.tasks.items())},
        "checkpoints": [{"n": c.n, "tag": c.tag, "commit": c.commit, "label": c.label} for c in state.checkpoints],
        "cost_usd": round(state.spent_usd, 6),
        "minutes_run": round(state.active_s / 60, 3),
        "limits": attrs.asdict(state.limits),
        "gates": {g.name: g.status for g in state.gates},
        "decision_request": request_doc(sid, req) if req is not None else None,
        "held_by": store.holder(sid),
    }


def _cmd_status(args: argparse.Namespace) -> int:
    store = Store(args.repo)
    doc = _status_doc(store, _session_id(store, args.session))
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    paused = f" (paused from {doc['paused_from']})" if doc["paused_from"] else ""
    out.write(f"session {doc['session']}: {doc['state']}{paused}, iteration {doc['iteration']}, "
              f"${doc['cost_usd']:.4f}\n")  # fmt: skip
    out.write(f"request: {_text(doc['request'])}\n")
    if doc["held_by"] is not None:
        out.write(f"running: held by pid {doc['held_by']}\n")
    elif doc["state"] not in ("paused", "completed", "failed", "aborted"):
        out.write(f"not running: it stopped in {doc['state']}; `maestro resume {doc['session']}` redoes the "
                  "interrupted step\n")  # fmt: skip
    for tid, state in doc["tasks"].items():
        out.write(f"  task {tid}: {state}\n")
    for c in doc["checkpoints"]:
        out.write(f"  checkpoint {c['n']}: {c['tag']} {c['commit'][:12]} {_text(c['label'])}\n")
    for name, status in doc["gates"].items():
        out.write(f"  gate {name}: {status}\n")
    if doc["decision_request"]:
        req = doc["decision_request"]
        out.write(f"waiting for a decision: {_text(req['question'])} (options: {', '.join(req['options'])})\n")
        out.write(f"answer it: maestro answer {doc['session']} CHOICE [--note TEXT]; then: maestro resume "
                  f"{doc['session']}\n")  # fmt: skip
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from maestro.model.state import rebuild
    from maestro.store.views import final_report

    store = Store(args.repo)
    sid = _session_id(store, args.session)
    path = store.session_dir(sid) / "final-report.md"
    if path.is_file():
        sys.stdout.write(path.read_text(encoding="utf-8"))
    else:  # a session still running or paused: the report as of now
        sys.stdout.write(final_report(rebuild(store.read_events(sid), where=str(store.events_path(sid)))))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from maestro.git.checkpoints import Checkpointer
    from maestro.model.state import rebuild

    store = Store(args.repo)
    sid = _session_id(store, args.session)
    state = rebuild(store.read_events(sid), where=str(store.events_path(sid)))
    if not state.checkpoints:
        raise MaestroError(f"session {sid} has no checkpoint")
    to = args.to if args.to is not None else state.checkpoints[-1].n
    record = Checkpointer(store.repo, sid).rollback(to)
    sys.stdout.write(f"session {sid}: the tree is at checkpoint {record.n} ({record.tag})\n")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from maestro.run.demo import run_demo

    _show_log()
    outcome, folder = run_demo(Path(args.dir) if args.dir else None)
    sys.stdout.write(f"session {outcome.session_id}: {outcome.state}\n")
    sys.stdout.write(f"sample repository and plan: {folder}\n")
    if outcome.report:
        sys.stdout.write(f"report: {outcome.report}\n")
    return outcome.exit_code


def _cmd_agents(args: argparse.Namespace) -> int:
    from maestro.agents.registry import discover

    repo = Path(args.repo)
    if not repo.is_dir():
        raise MaestroError(f"{repo}: no such directory")
    reg = discover(repo)
    if args.json:
        doc = {
            "subagents": [{"name": a.name, "description": a.description, "tools": list(a.tools), "model": a.model,
                           "from": reg.agent_origins[a.name].shown} for a in reg.subagents],
            "skills": [{"name": k.name, "description": k.description, "from": reg.skill_origins[k.name].shown}
                       for k in reg.skills],
            "problems": list(reg.problems),
        }  # fmt: skip
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    out.write(f"subagents ({len(reg.subagents)}):\n")
    for a in reg.subagents:
        out.write(f"  {a.name:<24} {reg.agent_origins[a.name].shown}  {_text(a.description)[:80]}\n")
    out.write(f"skills ({len(reg.skills)}):\n")
    for k in reg.skills:
        out.write(f"  {k.name:<24} {reg.skill_origins[k.name].shown}  {_text(k.description)[:80]}\n")
    for problem in reg.problems:
        out.write(f"skipped: {_text(problem)}\n")
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
    handler = {
        "statechart": _cmd_statechart,
        "replay": _cmd_replay,
        "sessions": _cmd_sessions,
        "prd": _cmd_prd,
        "tasks": _cmd_tasks,
        "decide": _cmd_decide,
        "agents": _cmd_agents,
        "run": _cmd_run,
        "status": _cmd_status,
        "report": _cmd_report,
        "rollback": _cmd_rollback,
        "demo": _cmd_demo,
        "answer": _cmd_answer,
        "init": _cmd_init,
        "resume": _cmd_resume,
    }[args.command]
    try:
        return handler(args)
    except MaestroError as exc:
        sys.stderr.write(f"maestro: error: {exc}\n")
        return 2
    except _Stopped as stop:
        how = f": `maestro resume {stop.session_id}` redoes the interrupted step" if stop.session_id else ""
        sys.stderr.write(f"maestro: stopped at once{how}\n")
        if threading.active_count() > 1:  # an agent still working in a thread would hold the exit until it ends
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("maestro: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
