"""Looking at sessions and the repository, writing nothing: statechart, replay, sessions, status, report, stats,
agents.

``replay --redrive`` runs a session again on a copy of its repository and compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from maestro.agents.registry import discover
from maestro.cli._common import escaped, session_id
from maestro.core.errors import MaestroError
from maestro.core.records import converter
from maestro.model.chart import load_chart
from maestro.model.state import rebuild
from maestro.replay import Step, replay
from maestro.store.filestore import Store
from maestro.store.metrics import Figure, SessionMetrics, Stats, stats_doc, store_metrics, summarize
from maestro.store.views import counted, final_report, list_sessions

if TYPE_CHECKING:
    from maestro.run.redrive import RedriveReport

__all__ = ["cmd_agents", "cmd_replay", "cmd_report", "cmd_sessions", "cmd_statechart", "cmd_stats", "cmd_status"]


def cmd_statechart(args: argparse.Namespace) -> int:
    chart = load_chart(args.chart)
    out = {"mermaid": chart.to_mermaid, "yaml": chart.to_yaml, "json": chart.to_json}[args.format]()
    sys.stdout.write(out)
    return 0


def _step_line(step: Step) -> str:
    if step.index == 0:
        head = f"{step.index:>4}  #{step.seq:<5} session created: {escaped(step.state.request)}"
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
    extra = ", ".join(counted(n, what) for n, what in counts if n)
    return f"{head}  [{extra}]" if extra else head


def cmd_replay(args: argparse.Namespace) -> int:
    store = Store(args.repo)
    args.session = session_id(store, args.session)
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
            f"{counted(len(state.decisions), 'decision')}, {counted(len(state.checkpoints), 'checkpoint')}, "
            f"{counted(len(state.agent_results), 'agent result')}; tasks: {tasks}\n"
        )
    return 0


def _redrive(store: Store, sid: str) -> int:
    # imported here: start-up of the command line stays light
    from maestro.run.inputs import load_run_inputs
    from maestro.run.redrive import redrive  # as above

    report = redrive(store, sid, config=load_run_inputs(store, sid).config)
    sys.stdout.write("".join(line + "\n" for line in redrive_lines(report)))
    return 0 if report.same else 1


def cmd_sessions(args: argparse.Namespace) -> int:
    """One line a session; one that cannot be read, or whose files are damaged, says ``broken: <why>``."""
    store = Store(args.repo)
    if args.output and not args.html:
        raise MaestroError("-o/--output goes with --html")
    if args.html:
        # imported here: start-up of the command line stays light
        from maestro.report import write_sessions_index

        sys.stdout.write(f"{write_sessions_index(store, Path(args.output) if args.output else None)}\n")
        return 0
    for row in list_sessions(store):
        if args.json:
            line = json.dumps(attrs.asdict(row), ensure_ascii=False)
        elif row.state is None:
            line = f"{row.session}  broken: {escaped(row.broken or '')}"
        else:
            line = f"{row.session}  {row.state:<16} {escaped(row.request or '')}"
            line += f"  [broken: {escaped(row.broken)}]" if row.broken else ""
        sys.stdout.write(line + "\n")
    return 0


def _status_doc(store: Store, sid: str) -> dict[str, Any]:
    # imported here: start-up of the command line stays light
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


def cmd_status(args: argparse.Namespace) -> int:
    store = Store(args.repo)
    doc = _status_doc(store, session_id(store, args.session))
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    paused = f" (paused from {doc['paused_from']})" if doc["paused_from"] else ""
    out.write(f"session {doc['session']}: {doc['state']}{paused}, iteration {doc['iteration']}, "
              f"${doc['cost_usd']:.4f}\n")  # fmt: skip
    out.write(f"request: {escaped(doc['request'])}\n")
    if doc["held_by"] is not None:
        out.write(f"running: held by pid {doc['held_by']}\n")
    elif doc["state"] not in ("paused", "completed", "failed", "aborted"):
        out.write(f"not running: it stopped in {doc['state']}; `maestro resume {doc['session']}` redoes the "
                  "interrupted step\n")  # fmt: skip
    for tid, state in doc["tasks"].items():
        out.write(f"  task {tid}: {state}\n")
    for c in doc["checkpoints"]:
        out.write(f"  checkpoint {c['n']}: {c['tag']} {c['commit'][:12]} {escaped(c['label'])}\n")
    for name, status in doc["gates"].items():
        out.write(f"  gate {name}: {status}\n")
    if doc["decision_request"]:
        req = doc["decision_request"]
        out.write(f"waiting for a decision: {escaped(req['question'])} (options: {', '.join(req['options'])})\n")
        out.write(f"answer it: maestro answer {doc['session']} CHOICE [--note TEXT]; then: maestro resume "
                  f"{doc['session']}\n")  # fmt: skip
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    store = Store(args.repo)
    sid = session_id(store, args.session)
    if args.output and not args.html:
        raise MaestroError("-o/--output goes with --html")
    if args.html:
        # imported here: start-up of the command line stays light
        from maestro.report import write_html_report

        sys.stdout.write(f"{write_html_report(store, sid, Path(args.output) if args.output else None)}\n")
        return 0
    path = store.session_dir(sid) / "final-report.md"
    if path.is_file():
        sys.stdout.write(path.read_text(encoding="utf-8"))
    else:  # a session still running or paused: the report as of now
        events = store.read_events(sid)
        sys.stdout.write(final_report(rebuild(events, where=str(store.events_path(sid))), events=events))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """``maestro stats [--repo PATH] [--json]``: the success metrics over a repository's sessions (docs/stats.md)."""
    store = Store(args.repo)
    found, skipped = store_metrics(store)
    stats = summarize(found)
    if args.json:
        sys.stdout.write(json.dumps(stats_doc(stats, found, skipped), indent=2, ensure_ascii=False) + "\n")
        return 0
    sys.stdout.write("".join(line + "\n" for line in stats_lines(stats, found, skipped)))
    return 0


def stats_lines(stats: Stats, found: list[SessionMetrics], skipped: list[tuple[str, str]]) -> list[str]:
    """``maestro stats`` as lines: the figures over the ended sessions, then one line a session."""
    if not found and not skipped:
        return ["no sessions"]
    states = ", ".join(f"{n} {state}" for state, n in stats.by_state.items())
    lines = [f"sessions: {stats.sessions}" + (f" ({states})" if states else "") + f"; {stats.ended} ended"]
    if stats.autonomy_rate is None:
        lines.append("autonomy rate: none (no session has ended)")
    else:
        lines.append(f"autonomy rate: {stats.autonomy_rate:.0%} ({stats.autonomous} of "
                     f"{counted(stats.ended, 'ended session')} completed with no human answer)")  # fmt: skip
    if stats.recovery_rate is None:
        lines.append("recovery rate: none (no failure in an ended session)")
    else:
        kinds = ", ".join(f"{n} {kind}" for kind, n in stats.failures_by_kind.items())
        lines.append(f"recovery rate: {stats.recovery_rate:.0%} ({stats.recovered} of "
                     f"{counted(stats.failures, 'failure')} recovered without a human; {stats.recovered_by_human} "
                     f"after a human answer, {stats.unrecovered} not recovered; {kinds})")  # fmt: skip

    def fig(name: str, f: Figure, show: Callable[[float], str], of: str) -> str:
        if f.median is None:
            return f"{name}: none"
        return f"{name}: median {show(f.median)}, total {show(f.total)} (over {counted(f.count, of)})"

    money, secs = (lambda x: f"${x:.4f}"), _seconds_text
    lines += [
        fig("attempts per task", stats.attempts_per_task, lambda x: f"{x:g}", "task"),
        fig("cost per task", stats.cost_per_task, money, "task"),
        fig("agent time per task", stats.agent_s_per_task, secs, "task"),
        fig("time per task", stats.elapsed_s_per_task, secs, "task"),
        fig("cost per session", stats.cost_per_session, money, "ended session"),
        fig("running time per session", stats.active_s_per_session, secs, "ended session"),
    ]
    for m in found:
        recovered = f"{m.count('recovered')}/{len(m.counted)} recovered" if m.counted else "no failures"
        who = "autonomous" if m.autonomous else counted(m.human_answers, "human answer")
        lines.append(f"  {m.session}  {m.state:<10} {who}; {recovered}; "
                     f"{counted(sum(t.attempts for t in m.tasks), 'attempt')}; ${m.cost_usd:.4f}; "
                     f"{_seconds_text(m.active_s)}")  # fmt: skip
    lines += [f"  {sid}  skipped: {escaped(why)}" for sid, why in skipped]
    return lines


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def cmd_agents(args: argparse.Namespace) -> int:
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
        out.write(f"  {a.name:<24} {reg.agent_origins[a.name].shown}  {escaped(a.description)[:80]}\n")
    out.write(f"skills ({len(reg.skills)}):\n")
    for k in reg.skills:
        out.write(f"  {k.name:<24} {reg.skill_origins[k.name].shown}  {escaped(k.description)[:80]}\n")
    for problem in reg.problems:
        out.write(f"skipped: {escaped(problem)}\n")
    return 0


def redrive_lines(report: RedriveReport) -> list[str]:
    """The report as console lines (``maestro replay SESSION --redrive``: exit 0 when same, 1 when not)."""
    lines = [f"Re-drive of session {report.session}: " + ("same" if report.same else "DIFFERENT")]
    lines.append(f"  re-driven as session {report.redriven_session} in {report.workdir}"
                 + (f" ({report.redriven_state})" if report.redriven_state else ""))  # fmt: skip
    lines.append(f"  steps compared: {report.steps_compared}")
    if report.same:
        lines.append(f"  final tree: {report.recorded_tree or 'none'} in both")
        return lines
    lines.append(f"  first difference: {report.first_difference}")
    if report.divergence and report.divergence not in (report.first_difference or ""):
        lines.append(f"  the re-drive stopped: {report.divergence}")
    if report.recorded_tree != report.redriven_tree:
        recorded, redriven = report.recorded_tree or "none", report.redriven_tree or "none"
        lines.append(f"  final tree: recorded {recorded}, re-driven {redriven}")
    else:
        lines.append(f"  final tree: {report.recorded_tree or 'none'} in both")
    return lines
