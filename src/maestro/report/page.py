"""The HTML page of one session, and the index of a repository's sessions: one file each, nothing outside it.

The page holds its CSS and its drawings inline, and a Content-Security-Policy that forbids loading anything
(no script, no style sheet, font or image from anywhere): it reads the same with JavaScript off, offline,
and printed.  Everything on it comes from the log (and the plan the session ran, for what the log does not
hold), written in a fixed order, so the same log gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from maestro.core.records import CheckpointRecord, Decision, Event, FileChange, GateResult, converter
from maestro.model.chart import Chart, load_chart
from maestro.model.state import effective_events
from maestro.report.chartpath import chart_svg
from maestro.report.story import Story, TaskInfo, read_story
from maestro.report.svg import esc
from maestro.report.taskgraph import task_graph_svg
from maestro.report.timeline import duration_text, timeline_svg

__all__ = ["IndexRow", "index_page", "render_report"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
OUTCOMES = {
    "succeeded": "succeeded",
    "transient": "failed: transient (rate limit, network, timeout)",
    "implementation": "failed: implementation",
    "test_failure": "failed: acceptance commands",
    "critical": "failed: critical (cannot work)",
    "ambiguous": "failed: ambiguous",
    "regression": "merge rejected: regression",
    "conflict": "merge rejected: conflict",
    "cancelled": "cancelled",
    "voided": "voided by a crash resume",
    "running": "still running when the log ends",
}
TASK_STATES = ("succeeded", "failed", "skipped", "blocked", "running", "retrying", "ready", "pending")

CSS = """
:root{--ok:#2e7d32;--okl:#c8e6c9;--bad:#c62828;--badl:#ffcdd2;--warn:#ef8f00;--ink:#1d232b;--mute:#5f6b77;
--line:#d5dbe1;--bg:#fff;--soft:#f5f7f9;--accent:#1f5fbf}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:34px 0 8px;padding-top:8px;border-top:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
.request{white-space:pre-wrap;font-size:15px;margin:6px 0 14px;padding:10px 12px;background:var(--soft);
border-left:4px solid var(--accent)}
.sid{color:var(--mute);font:12px ui-monospace,"DejaVu Sans Mono",monospace}
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:13px}
.s-completed{background:var(--okl);color:#174d1a}.s-failed,.s-aborted{background:var(--badl);color:#7f1010}
.s-paused{background:#fff0c2;color:#6b4e00}.s-other{background:#e3e8ee}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(172px,1fr));gap:8px;margin:12px 0}
.figures div{background:var(--soft);padding:8px 10px;border-radius:6px}
.figures dt{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--mute)}
.figures dd{margin:2px 0 0;font-size:17px;font-weight:600}
.figures dd small{display:block;font-size:12px;font-weight:400;color:var(--mute)}
nav{font-size:13px;margin:8px 0}nav a{margin-right:12px}
a{color:var(--accent)}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px;padding:6px;background:#fff}
.legend{font-size:12px;color:var(--mute);margin:6px 0}
.legend span{display:inline-block;margin:0 12px 4px 0;white-space:nowrap}
.sw{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:-1px;border:1px solid #0002}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid var(--line)}
th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}td.mono{white-space:nowrap}
code,.mono{font:12px ui-monospace,"DejaVu Sans Mono",monospace}
.muted{color:var(--mute)}
details summary{cursor:pointer;color:var(--mute)}
ul.ev{margin:2px 0 0;padding-left:18px;font-size:12px;color:var(--mute)}
.bars{display:inline-block;height:9px;vertical-align:0}
.bars i{display:inline-block;height:9px}.bars i.a{background:var(--ok)}.bars i.d{background:var(--bad)}
.v-met{color:var(--ok);font-weight:600}.v-unmet{color:var(--bad);font-weight:600}.v-uncovered{color:var(--warn);
font-weight:600}
.g-passed{color:var(--ok);font-weight:600}.g-failed{color:var(--bad);font-weight:600}.g-skipped{color:var(--mute)}
svg text{font-family:ui-monospace,"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;font-size:11px;
fill:var(--ink)}
svg .ax,svg .badge,svg .count,svg .movelabel,svg .note,svg .group text,svg .phase text{font-size:9.5px}
svg .ax{fill:var(--mute)}svg .tick,svg .axis{stroke:#9aa5b1;stroke-width:1}
svg .stripe{fill:#f6f8fa}
svg .gap-human{fill:#ffe9a8;opacity:.55}svg .gap-down{fill:#cfd4da;opacity:.6}
svg .cut{stroke:#8a8a8a;stroke-dasharray:2 2}svg .gaplabel{fill:#6b4e00}
svg .bar rect{stroke:#0003;stroke-width:.5}svg .bar .queue{opacity:.45}
svg .o-succeeded rect{fill:#43a047}svg .o-transient rect{fill:#fbc02d}svg .o-implementation rect{fill:#ef6c00}
svg .o-test_failure rect{fill:#d32f2f}svg .o-critical rect{fill:#6a1b9a}svg .o-ambiguous rect{fill:#8e7cc3}
svg .o-regression rect{fill:#c2185b}svg .o-conflict rect{fill:#f06292}svg .o-cancelled rect{fill:#90a4ae}
svg .o-voided rect{fill:url(#tl-hatch)}svg .o-running rect{fill:#42a5f5}
svg .phase rect{fill:#e3e8ee;stroke:#fff;stroke-width:1}svg .phase text{fill:#37414b}
svg .ph-planning rect,svg .ph-generating_tasks rect{fill:#d7e3fc}svg .ph-implementing rect{fill:#b9d6f7}
svg .ph-validating rect,svg .ph-reviewing rect{fill:#cfe8d5}svg .ph-paused rect{fill:#ffe9a8}
svg .ph-recovering rect,svg .ph-rolling_back rect{fill:#ffd0c2}svg .ph-refining rect{fill:#e6dcf7}
svg .ph-handoff rect,svg .ph-completed rect{fill:#c8e6c9}svg .ph-failed rect,svg .ph-aborted rect{fill:#ffcdd2}
svg .mark.checkpoint{fill:#1d232b;stroke:#fff;stroke-width:.8}svg .mark.voided{fill:#fff;stroke:#777}
svg .mark.rollback{fill:#c62828}
svg .node rect{stroke:#0004;stroke-width:1}svg .n-succeeded rect{fill:#c8e6c9}svg .n-failed rect{fill:#ffcdd2}
svg .n-skipped rect{fill:#eceff1}svg .n-blocked rect{fill:#ffe0b2}svg .n-running rect{fill:#bbdefb}
svg .n-retrying rect,svg .n-ready rect{fill:#e3f2fd}svg .n-pending rect{fill:#fff}
svg .badge{fill:var(--bad)}
svg .group rect{fill:none;stroke:#7b8794;stroke-dasharray:4 3}svg .group text{fill:#52606d}
svg .edge{fill:none;stroke:#8795a1;stroke-width:1;opacity:.75}svg .arrowhead{fill:#8795a1}
svg .arrowhead.taken{fill:var(--accent)}
svg .edge:hover{stroke:var(--accent);opacity:1;stroke-width:2}
svg .state rect{fill:#fff;stroke:#b0bac5;stroke-width:1;stroke-dasharray:3 2}svg .state text{fill:#8a96a3}
svg .state.visited rect{fill:#e8f0fd;stroke:var(--accent);stroke-width:2;stroke-dasharray:none}
svg .state.visited text{fill:var(--ink)}svg .state.now rect{stroke-width:3.5}
svg .state.final.visited rect{fill:#dff0e0}svg .count{fill:var(--mute)}
svg .move{fill:none;stroke:#c5cdd6;stroke-width:1}svg .move.taken{stroke:var(--accent);opacity:.85}
svg .movelabel{fill:var(--accent)}svg .note{fill:var(--mute)}
@media print{*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:none;padding:0}.scroll{overflow:visible;border:none;padding:0}
svg{max-width:100%;height:auto}h2{break-after:avoid}tr,figure{break-inside:avoid}nav{display:none}}
"""


def _state_class(state: str) -> str:
    return f"s-{state}" if state in ("completed", "failed", "aborted", "paused") else "s-other"


def _span(first: str, last: str) -> str:
    """``2026-01-05 09:00:00 → 13:51:45 UTC`` (the date again when it changed)."""
    a, b = first[:19].replace("T", " "), last[:19].replace("T", " ")
    return f"{a} → {b[11:] if a[:10] == b[:10] else b} UTC"


def _money(x: float) -> str:
    return f"${x:.4f}" if x < 10 else f"${x:.2f}"


def _figure(label: str, value: str, small: str = "") -> str:
    extra = f" <small>{esc(small)}</small>" if small else ""
    return f"<div><dt>{esc(label)}</dt><dd>{esc(value)}{extra}</dd></div>"


def _head(title_text: str) -> list[str]:
    return ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">', '<meta name="color-scheme" '
            'content="light">', f"<title>{esc(title_text)}</title>", f"<style>{CSS}</style>", "</head>"]  # fmt: skip


def _legend(items: Sequence[tuple[str, str]]) -> str:
    spans = "".join(f'<span><i class="sw" style="background:{c}"></i>{esc(t)}</span>' for c, t in items)
    return f'<div class="legend">{spans}</div>'


_OUTCOME_COLOURS = {
    "succeeded": "#43a047", "transient": "#fbc02d", "implementation": "#ef6c00", "test_failure": "#d32f2f",
    "critical": "#6a1b9a", "ambiguous": "#8e7cc3", "regression": "#c2185b", "conflict": "#f06292",
    "cancelled": "#90a4ae", "voided": "repeating-linear-gradient(45deg,#8a8a8a 0 2px,#e0e0e0 2px 5px)",
    "running": "#42a5f5",
}  # fmt: skip
_GAP_KEYS = (("human", "#ffe9a8", "waiting for a human"), ("down", "#cfd4da", "process down"))
_STATE_COLOURS = {"succeeded": "#c8e6c9", "failed": "#ffcdd2", "skipped": "#eceff1", "blocked": "#ffe0b2",
                  "running": "#bbdefb", "retrying": "#e3f2fd", "ready": "#e3f2fd", "pending": "#fff"}  # fmt: skip


def _figures(story: Story) -> str:
    s = story.state
    done = sum(1 for t in s.tasks.values() if t.state == "succeeded")
    voided = sum(1 for a in story.attempts if a.outcome == "voided")
    m = story.metrics  # the definitions of docs/stats.md, as `maestro stats` and final-report.md count
    fails = m.counted
    alone = m.count("recovered")
    helped = m.count("recovered_by_human")
    autonomy = ("ran on its own", "no human answer") if not m.human_answers else (
        f"{m.human_answers} human answer{'s' if m.human_answers != 1 else ''}", "")  # fmt: skip
    recovery = f"{alone} of {len(fails)}" if fails else "no failure"
    recovery_note = "recovered without a human" if fails else ""
    if helped:
        recovery_note += f"; {helped} after a human answer"
    items = [
        _figure("duration", duration_text(story.wall_s), f"running {duration_text(s.active_s)}"),
        _figure("waiting for a human", duration_text(story.waiting_s)),
        _figure("cost", _money(s.spent_usd), f"{story.agent_calls} agent calls"),
        _figure("attempts", str(len([a for a in story.attempts if a.task in s.tasks])),
                f"{voided} voided by a crash" if voided else ""),
        _figure("tasks", f"{done} / {len(s.tasks)}", "succeeded"),
        _figure("checkpoints", str(len({c.n for c in s.checkpoints if c.n > 0})), "merges"),
        _figure("autonomy", autonomy[0], autonomy[1]),
        _figure("recovery", recovery, recovery_note),
        _figure("iterations", str(s.iteration), "refinements"),
    ]  # fmt: skip
    if s.rewinds or story.down_s:
        items.append(_figure("crash resumes", str(s.rewinds), f"down {duration_text(story.down_s)}"))
    return '<dl class="figures">' + "".join(items) + "</dl>"


def _decisions(decisions: Sequence[Decision]) -> str:
    if not decisions:
        return '<p class="muted">No decision was recorded.</p>'
    rows = []
    for d in decisions:
        chosen = next((o for o in d.options if o.name == d.choice), None)
        evidence = ""
        if chosen is not None and chosen.evidence:
            evidence = '<ul class="ev">' + "".join(f"<li>{esc(str(ev))}</li>" for ev in chosen.evidence) + "</ul>"
        others = [o for o in d.options if o.name != d.choice]
        if others:
            items = "".join(
                f"<li><b>{esc(o.name)}</b> ({o.score:.2f})" + (f" — {esc(o.notes)}" if o.notes else "")
                + ("<ul>" + "".join(f"<li>{esc(str(ev))}</li>" for ev in o.evidence) + "</ul>" if o.evidence else "")
                + "</li>"
                for o in others
            )  # fmt: skip
            evidence += f'<details><summary>{len(others)} other option{"s" if len(others) != 1 else ""}</summary>' \
                        f'<ul class="ev">{items}</ul></details>'  # fmt: skip
        anchor = f' id="{esc(d.id)}"' if d.id else ""
        rows.append(
            f'<tr{anchor}><td class="mono">{esc(d.id)}</td><td>{esc(d.kind)}</td>'
            f'<td class="mono">{esc(d.task or "")}</td><td><b>{esc(d.choice)}</b></td>'
            f'<td>{esc(d.decided_by)}</td><td class="num">{d.confidence:.2f}</td>'
            f"<td>{esc(d.rationale)}{evidence}</td></tr>"
        )
    return ("<table><thead><tr><th>id</th><th>kind</th><th>task</th><th>choice</th><th>by</th>"
            '<th class="num">confidence</th><th>rationale and evidence</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")  # fmt: skip


def _requirements(rows: Sequence[Sequence[str]] | None, gates: Sequence[GateResult]) -> str:
    if rows:
        body = "".join(
            "<tr>" + "".join(
                f'<td class="v-{esc(c)}">{esc(c)}</td>' if i == 2 else f"<td>{esc(c)}</td>" for i, c in enumerate(r)
            ) + "</tr>"
            for r in rows
        )  # fmt: skip
        return ("<table><thead><tr><th>requirement</th><th>priority</th><th>verdict</th><th>tasks</th>"
                f"<th>reason</th></tr></thead><tbody>{body}</tbody></table>")  # fmt: skip
    trace = [g for g in gates if g.name == "traceability"]
    if trace:
        return f"<p>{esc(trace[-1].status)}: {esc(trace[-1].summary)}</p>"
    return '<p class="muted">The session did not reach validation: no requirement was traced.</p>'


def _gates(gates: Sequence[GateResult]) -> str:
    latest = {g.name: g for g in gates}
    if not latest:
        return '<p class="muted">No gate ran in the last validation round.</p>'
    rows = "".join(
        f'<tr><td>{esc(g.name)}</td><td class="g-{esc(g.status)}">{esc(g.status)}</td>'
        f"<td>{'required' if g.required else 'not required'}</td><td>{esc(g.summary)}</td></tr>"
        for g in latest.values()
    )
    return ("<table><thead><tr><th>gate</th><th>status</th><th></th><th>summary</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")  # fmt: skip


def _recovery(story: Story) -> str:
    if not story.failures:
        return '<p class="muted">No attempt failed.</p>'
    words = {"auto": "recovered without a human", "human": "recovered after a human answer", "open": "not recovered"}
    rows = []
    for f in story.failures:
        steps = "; ".join(f"{d.id} {d.choice}: {d.rationale}" for d in f.recovery) or "—"
        rows.append(f'<tr><td class="mono">{esc(f.task)}</td><td>{esc(f.failure_class)}</td><td>{esc(f.reason)}</td>'
                    f"<td>{esc(steps)}</td><td>{esc(words[f.resolution])}</td></tr>")  # fmt: skip
    return ("<table><thead><tr><th>task</th><th>class</th><th>what failed</th><th>recovery decisions</th>"
            "<th>outcome</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")  # fmt: skip


def _changes(checkpoints: Sequence[CheckpointRecord]) -> str:
    per: list[tuple[str, str, list[FileChange]]] = []  # (task or label, label, files)
    for c in checkpoints:
        if c.n == 0:
            continue
        task = c.label[5:].split(":", 1)[0] if c.label.startswith("task ") and ":" in c.label else ""
        per.append((task, f"checkpoint {c.n}: {c.label}", list(c.files)))
    if not per:
        return '<p class="muted">No checkpoint after the start: nothing was merged.</p>'
    most = max(max((sum(f.added_lines + f.deleted_lines for f in files) for _, _, files in per), default=1), 1)
    rows = []
    for task, label, files in per:
        add = sum(f.added_lines for f in files)
        dele = sum(f.deleted_lines for f in files)
        wa, wd = 160 * add / most, 160 * dele / most
        bar = f'<span class="bars"><i class="a" style="width:{wa:.1f}px"></i><i class="d" style="width:{wd:.1f}px">' \
              "</i></span>"  # fmt: skip
        shown = files[:12]
        names = "".join(
            f"<li><code>{esc(f.path)}</code> {esc(f.change)} +{f.added_lines} −{f.deleted_lines}</li>" for f in shown
        )
        if len(files) > len(shown):
            names += f"<li>and {len(files) - len(shown)} more files</li>"
        rows.append(f'<tr><td class="mono">{esc(task)}</td><td>{esc(label)}<ul class="ev">{names}</ul></td>'
                    f'<td class="num">{len(files)}</td><td class="num">+{add} −{dele}</td>'
                    f"<td>{bar}</td></tr>")  # fmt: skip
    return ("<table><thead><tr><th>task</th><th>merge</th><th class=\"num\">files</th><th class=\"num\">lines</th>"
            "<th>diffstat</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")  # fmt: skip


def _tasks_table(story: Story) -> str:
    """Every task: state, attempts, group, dependencies, time, cost; where attempts ran on Dask workers, which
    worker ran each attempt (``2: tcp://10.0.0.5:40211``; ``here``: the coordinator's own threads)."""
    spent: dict[str, float] = {}
    took: dict[str, float] = {}
    ran_on: dict[str, list[str]] = {}
    for a in story.attempts:
        spent[a.task] = spent.get(a.task, 0.0) + (a.cost_usd or 0.0)
        took[a.task] = took.get(a.task, 0.0) + (a.end - a.start)
        if a.agent:
            ran_on.setdefault(a.task, []).append(f"{a.n}: {a.worker or 'here'}")
    remote = any(a.worker for a in story.attempts)
    rows = "".join(
        f'<tr><td class="mono">{esc(t.id)}</td><td>{esc(t.title)}</td><td>{esc(t.state)}</td>'
        f'<td class="num">{t.attempts}</td><td>{"G" + str(t.group + 1) if t.group is not None else ""}</td>'
        f'<td class="mono">{esc(", ".join(t.depends_on))}</td><td class="num">{duration_text(took.get(t.id, 0.0))}</td>'
        f'<td class="num">{_money(spent.get(t.id, 0.0))}</td>'
        + (f'<td class="mono">{esc("; ".join(ran_on.get(t.id, [])))}</td>' if remote else "")
        + "</tr>"
        for t in story.tasks
    )
    workers = "<th>ran on (attempt: worker)</th>" if remote else ""
    return ('<details><summary>every task</summary><table><thead><tr><th>task</th><th>title</th><th>state</th>'
            '<th class="num">attempts</th><th>group</th><th>depends on</th><th class="num">time</th>'
            f'<th class="num">cost</th>{workers}</tr></thead><tbody>{rows}</tbody></table></details>')  # fmt: skip


def _moves_table(story: Story) -> str:
    rows = "".join(
        f'<tr><td>{esc(t)}</td><td>{esc(s)}</td><td>{esc(d)}</td><td class="num">{n}</td></tr>'
        for (t, s, d), n in sorted(story.moves.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return ('<details><summary>the moves taken</summary><table><thead><tr><th>trigger</th><th>from</th><th>to</th>'
            f'<th class="num">times</th></tr></thead><tbody>{rows}</tbody></table></details>')  # fmt: skip


def render_report(
    events: Sequence[Event],
    *,
    plan: Mapping[str, TaskInfo] | None = None,
    requirements: Sequence[Sequence[str]] | None = None,
    chart: Chart | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The HTML report of a session from its ``events``.

    ``plan`` gives what the log does not hold of the tasks (titles, dependencies: the session's ``tasks.yaml``);
    ``requirements`` the traceability matrix's rows (requirement, priority, verdict, tasks, reason);
    ``notes`` lines to show under the header (what could not be read).
    """
    story = read_story(events, plan=plan)
    s = story.state
    chart = chart or load_chart("session")
    kept = effective_events(events)
    checkpoints = [converter.structure(e.data, CheckpointRecord) for e in kept if e.kind == "checkpoint"]
    outcomes = [k for k in OUTCOMES if any(a.outcome == k for a in story.attempts)]
    states = [k for k in TASK_STATES if any(t.state == k for t in story.tasks)]
    state_line = s.state + (f" (paused from {s.paused_from})" if s.paused_from else "")
    out = _head(f"maestro session {s.session_id}: {s.state}")
    out += [
        "<body><main>",
        f'<h1>Session <span class="sid">{esc(s.session_id)}</span> <span class="state {_state_class(s.state)}">'
        f"{esc(state_line)}</span></h1>",
        f'<p class="muted">{esc(_span(story.first_ts, story.last_ts))} · {len(events)} events'
        + (f", {story.voided_events} voided by crash resumes" if story.voided_events else "") + "</p>",
        f'<p class="request">{esc(s.request)}</p>',
        _figures(story),
        *(f'<p class="muted">{esc(n)}</p>' for n in notes),
        '<nav><a href="#timeline">timeline</a><a href="#graph">task graph</a><a href="#chart">session chart</a>'
        '<a href="#decisions">decisions</a><a href="#requirements">requirements</a><a href="#recovery">recovery</a>'
        '<a href="#changes">changes</a></nav>',
        '<h2 id="timeline">Timeline</h2>',
        '<p class="muted">One row per task, one bar per attempt: the solid part is the agent at work, the pale part '
        "the merge queue (merge, revalidation). ◆ a merge (checkpoint); shaded: waiting for a human or a process "
        "down.</p>",
        _legend([(_OUTCOME_COLOURS[k], OUTCOMES[k]) for k in outcomes]
                + [(c, t) for k, c, t in _GAP_KEYS if any(g.kind == k for g in story.gaps)]),
        f'<div class="scroll">{timeline_svg(story)}</div>',
        '<h2 id="graph">Task graph</h2>',
        '<p class="muted">Tasks in dependency layers, left to right; dashed outlines: the planned groups. '
        "×N: attempts.</p>",
        _legend([(_STATE_COLOURS[k], k) for k in states]),
        f'<div class="scroll">{task_graph_svg(story.tasks, story.groups)}</div>',
        _tasks_table(story),
        '<h2 id="chart">Session chart: the path taken</h2>',
        '<p class="muted">Blue: the states this session entered (×N: how often) and the moves it took; '
        "dashed: not visited.</p>",
        f'<div class="scroll">{chart_svg(chart, story.visits, story.moves, s.state)}</div>',
        _moves_table(story),
        '<h2 id="decisions">Decisions</h2>',
        _decisions(s.decisions),
        '<h2 id="requirements">Requirements</h2>',
        _requirements(requirements, s.gates),
        "<h3>Quality gates</h3>",
        _gates(s.gates),
        '<h2 id="recovery">Recovery</h2>',
        _recovery(story),
        '<h2 id="changes">Changes per task</h2>',
        _changes(checkpoints),
        "</main></body></html>",
    ]  # fmt: skip
    return "\n".join(out) + "\n"


@attrs.frozen
class IndexRow:
    """One session in the index: its story, or why it could not be read; ``href`` its report."""

    session: str
    href: str
    story: Story | None = None
    broken: str | None = None


def index_page(title_text: str, rows: Sequence[IndexRow]) -> str:
    """The index of a repository's sessions, newest first."""
    read = [r.story for r in rows if r.story is not None]
    alone = sum(1 for st in read if not st.metrics.human_answers)
    fails = sum(len(st.metrics.counted) for st in read)
    recovered = sum(st.metrics.count("recovered") for st in read)
    cost = sum(st.state.spent_usd for st in read)
    body = []
    for r in rows:
        st = r.story
        link = f'<a href="{esc(r.href)}">{esc(r.session)}</a>'
        if st is None:
            body.append(f'<tr><td class="mono">{esc(r.session)}</td><td colspan="7" class="muted">'
                        f"cannot be read: {esc(r.broken or '')}</td></tr>")  # fmt: skip
            continue
        s = st.state
        done = sum(1 for t in s.tasks.values() if t.state == "succeeded")
        state_line = s.state + (f" (from {s.paused_from})" if s.paused_from else "")
        request = " ".join(s.request.split())
        body.append(
            f'<tr><td class="mono">{link}</td><td title="{esc(request)}">{esc(request[:120])}'
            f"{'…' if len(request) > 120 else ''}</td>"
            f'<td><span class="state {_state_class(s.state)}">{esc(state_line)}</span></td>'
            f'<td class="mono">{esc(st.first_ts[:19].replace("T", " "))}</td>'
            f'<td class="num">{duration_text(st.wall_s)}</td><td class="num">{_money(s.spent_usd)}</td>'
            f'<td class="num">{done} / {len(s.tasks)}</td><td class="num">{st.human_answers}</td></tr>'
        )
    figures = "".join([
        _figure("sessions", str(len(rows)), f"{len(rows) - len(read)} unreadable" if len(read) < len(rows) else ""),
        _figure("autonomy", f"{alone} of {len(read)}", "ran with no human answer"),
        _figure("recovery", f"{recovered} of {fails}" if fails else "no failure",
                "failures recovered without a human" if fails else ""),
        _figure("cost", _money(cost), "all sessions"),
    ])  # fmt: skip
    out = _head(title_text)
    out += [
        "<body><main>",
        f"<h1>{esc(title_text)}</h1>",
        f'<dl class="figures">{figures}</dl>',
        "<table><thead><tr><th>session</th><th>request</th><th>state</th><th>started (UTC)</th>"
        '<th class="num">duration</th><th class="num">cost</th><th class="num">tasks done</th>'
        '<th class="num">human answers</th></tr></thead><tbody>',
        *body,
        "</tbody></table>",
        "</main></body></html>",
    ]
    return "\n".join(out) + "\n"
