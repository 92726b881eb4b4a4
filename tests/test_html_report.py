"""The HTML report (maestro.report): its drawings counted on a real scripted session, nothing overlapping at 200
tasks, the same bytes for the same log, self-contained, and opened in a real headless Chromium with the network
shut off.

The structure tests parse the inline SVGs as XML and place every label with the width the drawings use (a
monospace font: :data:`maestro.report.svg.CHAR_EM` of the font size a character).  The browser tests run
Debian's ``chromium`` (or any Chromium on ``PATH``, or Playwright's) with ``--dump-dom`` and ``--screenshot``;
without one they skip, saying so.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import attrs
import pytest

import maestro
from maestro.core.records import Event, format_ts
from maestro.report import (
    INDEX_FILE,
    html_report,
    render_report,
    report_path,
    sessions_index_html,
    write_html_report,
    write_sessions_index,
)
from maestro.report.story import TaskInfo, read_story
from maestro.report.svg import shorten, text_width
from tests.support.runs import config_text, in_process, make_repo, task, write

SVG = "{http://www.w3.org/2000/svg}"
SMALL_CLASSES = {"ax", "badge", "count", "movelabel", "note", "gaplabel"}


# -- a real session, made once ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> tuple[maestro.Store, str]:
    """A scripted session run for real: a; b and c after a; b rate limited once, then retried."""
    root = tmp_path_factory.mktemp("known")
    tasks = [
        task("a", acceptance=["test -f a.txt"]),
        task("b", deps=["a"], acceptance=["test -f b.txt"]),
        task("c", deps=["a"], acceptance=["test -f c.txt"]),
    ]
    script = {
        "a": [{"actions": [write("a.txt", "a\n")], "summary": "a", "cost_usd": 0.01}],
        "b": [
            {"fail": {"kind": "transient", "message": "API Error: 429 rate limited"}},
            {"actions": [write("b.txt", "b\nb\n")], "summary": "b", "cost_usd": 0.02},
        ],
        "c": [{"actions": [write("c.txt", "c\n")], "summary": "c", "cost_usd": 0.01}],
    }
    store, runner, _agent, plan = in_process(root, tasks, script, config_text(workers=2))
    outcome = runner.run("Build the sample", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert outcome.state == "completed"
    (sid,) = store.session_ids()
    return store, sid


# -- a synthetic log of any size ---------------------------------------------------------------------------------


class Log:
    """Events written by hand, each a given number of seconds after the one before."""

    def __init__(self, sid: str, request: str) -> None:
        self.events: list[Event] = []
        self.t = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
        self.checkpoints = 0
        self.decisions = 0
        self.add("session", {"session_id": sid, "request": request, "charts": {"session": 1, "task": 1},
                             "limits": {"max_task_attempts": 9}}, 0)  # fmt: skip
        self.add("checkpoint", {"n": 0, "commit": "0" * 40, "tag": f"maestro/{sid}/0", "label": "start",
                                "ts": format_ts(self.t)})  # fmt: skip

    def add(self, kind: str, data: dict[str, Any], after: float = 0.2) -> int:
        self.t += dt.timedelta(seconds=after)
        self.events.append(Event(1, len(self.events) + 1, format_ts(self.t), kind, data))
        return len(self.events)

    def move(self, trigger: str, source: str, dest: str, after: float = 0.2) -> int:
        return self.add("transition", {"trigger": trigger, "source": source, "dest": dest}, after)

    def task(self, tid: str, trigger: str, source: str, dest: str, after: float = 0.1, reason: str = "") -> int:
        data = {"task": tid, "trigger": trigger, "source": source, "dest": dest}
        return self.add("task", {**data, "reason": reason} if reason else data, after)

    def agent(self, tid: str, n: int, after: float, failure: str | None = None) -> int:
        data: dict[str, Any] = {"task": tid, "agent": "scripted", "attempt": n, "cost_usd": 0.01}
        data |= {"status": "failed" if failure else "succeeded", "summary": failure or "done"}
        if failure:
            data["failure_class"] = failure.split(":")[0]
        return self.add("agent", data, after)

    def checkpoint(self, tid: str, lines: int) -> int:
        self.checkpoints += 1
        n = self.checkpoints
        files = [{"path": f"src/{tid}.py", "change": "added", "added_lines": lines, "deleted_lines": lines % 3}]
        label = f"task {tid}: Task {tid}"
        data = {"n": n, "commit": f"{n:040x}", "tag": f"maestro/x/{n}", "label": label, "ts": format_ts(self.t)}
        return self.add("checkpoint", {**data, "files": files}, 0.3)

    def decision(self, kind: str, choice: str, after: float = 0.05, **more: Any) -> int:
        self.decisions += 1
        return self.add("decision", {"kind": kind, "question": f"{kind}?", "choice": choice, "rationale": choice,
                                     "id": f"D{self.decisions}", "ts": format_ts(self.t), **more}, after)  # fmt: skip


LONG = "-implement-the-authentication-middleware-for-the-admin-api-and-its-tests"


def synthetic(n: int = 200, *, width: int = 8, seed: int = 7) -> tuple[list[Event], dict[str, TaskInfo]]:
    """A completed session of ``n`` tasks in groups of ``width`` (each depending on up to two tasks of the three
    groups before), some rate limited once, some rejected once as a regression; a pause of three hours for a
    human a quarter of the way through, and a crash resume (20 minutes down) half way, voiding three starts."""
    rnd = random.Random(seed)
    ids = [f"t{i:03d}" + (LONG if i % 23 == 5 else "-model" if i % 3 == 0 else "") for i in range(n)]
    groups = [ids[i : i + width] for i in range(0, n, width)]
    deps: dict[str, tuple[str, ...]] = {}
    for g, members in enumerate(groups):
        earlier = [t for before in groups[max(0, g - 3) : g] for t in before]
        for t in members:
            deps[t] = tuple(sorted(rnd.sample(earlier, min(len(earlier), rnd.randint(0, 2)))))
    plan = {t: TaskInfo(t, "pending", 0, f"Task {t}", deps[t], None, "P1") for t in ids}
    log = Log("20260105-090000-abc123", "Build the big thing\nwith many parts")
    log.move("start", "created", "planning")
    log.move("plan_ready", "planning", "generating_tasks", 2)
    notes = " | ".join(f"G{i + 1}: {', '.join(g)}" for i, g in enumerate(groups))
    log.decision("task_ordering", "foundational_first", options=[{"name": "foundational_first", "notes": notes}])
    log.move("tasks_ready", "generating_tasks", "implementing", 0.5)
    for g, members in enumerate(groups):
        if g == len(groups) // 2:  # the process dies with three attempts under way
            to = len(log.events)
            for t in members[:3]:
                log.task(t, "ready", "pending", "ready")
                log.task(t, "start", "ready", "running")
            log.agent(members[0], 1, 20)
            log.add("rewind", {"to": to, "reason": "the process died", "checkpoint": log.checkpoints}, 1200)
        if g == len(groups) // 4:  # a question for a human, answered three hours later
            log.add("request", {"question": "go on?", "options": ["resume", "abort"], "paused_from": "implementing"})
            log.move("pause", "implementing", "paused")
            log.decision("answer", "resume", after=3 * 3600, decided_by="human")
            log.move("resume", "paused", "implementing", 1)
        for t in members:
            log.task(t, "ready", "pending", "ready", 0.05)
            log.task(t, "start", "ready", "running", 0.05)
        for t in members:
            i = ids.index(t)
            attempt = 1
            if i % 7 == 3:
                log.agent(t, 1, rnd.uniform(2, 10), "transient: API Error: 429 rate limited")
                log.task(t, "fail", "running", "failed", reason="transient: API Error: 429 rate limited")
                log.decision("recovery", "retry", task=t)
                log.task(t, "retry", "failed", "retrying")
                log.task(t, "start", "retrying", "running", 1.5)
                attempt = 2
            if i % 13 == 4:
                log.agent(t, attempt, rnd.uniform(5, 30))
                log.task(t, "fail", "running", "failed", 3, reason="regression: broke task t000-model")
                log.decision("merge", "rerun", task=t)
                log.task(t, "retry", "failed", "retrying")
                log.task(t, "start", "retrying", "running", 0.5)
                attempt += 1
            log.agent(t, attempt, rnd.uniform(3, 40))
            log.task(t, "succeed", "running", "succeeded", rnd.uniform(1, 6))
            log.checkpoint(t, 10 + i)
    log.move("implementation_done", "implementing", "validating")
    log.add("gate", {"name": "tests", "status": "passed", "summary": f"{n} passed", "passed": n, "failed": 0}, 20)
    log.add("gate", {"name": "traceability", "status": "passed", "summary": "1 of 1 requirements met"}, 2)
    log.move("validation_done", "validating", "reviewing")
    log.decision("refinement", "handoff")
    log.move("handoff", "reviewing", "handoff")
    log.move("complete", "handoff", "completed")
    return log.events, plan


# -- reading the drawings ----------------------------------------------------------------------------------------


def svgs(html: str) -> dict[str, ET.Element]:
    """Each inline ``<svg>`` of the page, parsed as XML (which it must be), by its class."""
    out = {}
    for m in re.finditer(r"<svg .*?</svg>", html, re.S):
        el = ET.fromstring(m.group(0))
        out[el.get("class", "")] = el
    return out


def classes(el: ET.Element) -> set[str]:
    return set(el.get("class", "").split())


def find(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if cls in classes(e)]


def child(el: ET.Element, tag: str) -> ET.Element:
    found = el.find(SVG + tag)
    assert found is not None, f"no <{tag}> in {el.get('class')}"
    return found


def label(el: ET.Element) -> str:
    """A text element's own text (its ``<title>`` left out)."""
    return (el.text or "") + "".join(c.tail or "" for c in el)


def tooltip(el: ET.Element) -> str:
    t = el.find(SVG + "title")
    return "" if t is None else t.text or ""


Box = tuple[float, float, float, float]


def text_boxes(root: ET.Element) -> Iterator[tuple[Box, str, ET.Element]]:
    """Every label's box, at the size the page's CSS gives it (9.5 px for the small classes, else 11 px)."""
    parent = {c: p for p in root.iter() for c in p}
    for el in root.iter(SVG + "text"):
        size = 11.0
        if classes(el) & SMALL_CLASSES or classes(parent[el]) & {"phase", "group"}:
            size = 9.5
        text = label(el)
        yield (float(el.get("x", 0)), float(el.get("y", 0)) - 0.8 * size, text_width(text, size), size), text, el


def rect_box(el: ET.Element) -> Box:
    return (float(el.get("x", 0)), float(el.get("y", 0)), float(el.get("width", 0)), float(el.get("height", 0)))


def overlapping(boxes: Sequence[tuple[Box, str]]) -> list[tuple[str, str]]:
    """The pairs of boxes that overlap (a sweep along y: fast for thousands)."""
    pairs = []
    ordered = sorted(boxes, key=lambda b: b[0][1])
    for i, (a, na) in enumerate(ordered):
        for b, nb in ordered[i + 1 :]:
            if b[1] >= a[1] + a[3]:
                break
            if a[0] < b[0] + b[2] and b[0] < a[0] + a[2]:
                pairs.append((na, nb))
    return pairs


def inside(inner: Box, outer: Box) -> bool:
    return (outer[0] <= inner[0] and inner[0] + inner[2] <= outer[0] + outer[2]
            and outer[1] <= inner[1] and inner[1] + inner[3] <= outer[1] + outer[3])  # fmt: skip


# -- the drawings of a known session -----------------------------------------------------------------------------


def test_a_real_session_draws_one_bar_per_attempt_one_node_per_task_one_edge_per_dependency(
    known: tuple[maestro.Store, str],
) -> None:
    store, sid = known
    html = html_report(store, sid)
    drawn = svgs(html)
    assert set(drawn) == {"timeline", "taskgraph", "chart"}
    timeline, graph, chart = drawn["timeline"], drawn["taskgraph"], drawn["chart"]

    bars = find(timeline, "g", "bar")
    outcomes = sorted((tooltip(b).split(":")[0], sorted(classes(b) - {"bar"})[0]) for b in bars)
    assert outcomes == [
        ("a attempt 1", "o-succeeded"),
        ("b attempt 1", "o-transient"),
        ("b attempt 2", "o-succeeded"),
        ("c attempt 1", "o-succeeded"),
    ]
    rows = [label(t) for t in find(timeline, "text", "rowlabel")]
    assert rows[0] == "session" and sorted(rows[1:]) == ["a", "b", "c"]
    assert len(find(timeline, "path", "checkpoint")) == 3  # one merge per task
    assert find(timeline, "rect", "gap") == []  # no pause, no crash

    nodes = find(graph, "g", "node")
    assert sorted(label(child(n, "text")) for n in nodes) == ["a", "b", "c"]
    assert all(classes(n) == {"node", "n-succeeded"} for n in nodes)
    assert sorted(tooltip(e) for e in find(graph, "path", "edge")) == ["b depends on a", "c depends on a"]
    badges = [label(t) for t in find(graph, "text", "badge")]
    assert badges == ["×2"]  # b took two attempts
    assert sorted(tooltip(g).split(":")[0] for g in find(graph, "g", "group")) == ["planned group G1",
                                                                                  "planned group G2"]  # fmt: skip

    visited = {label(child(g, "text")) for g in find(chart, "g", "visited")}
    path = ["created", "planning", "generating_tasks", "implementing", "validating", "reviewing", "handoff",
            "completed"]  # fmt: skip
    assert visited == set(path)
    assert len(find(chart, "g", "state")) == len(maestro.load_chart("session").states)
    taken = sorted(tooltip(p).split(":")[0] for p in find(chart, "path", "move") if "taken" in classes(p))
    assert taken == sorted(["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done",
                            "handoff", "complete"])  # fmt: skip
    untaken = {tooltip(e).split(":")[0] for e in find(chart, "path", "move") if "taken" not in classes(e)}
    assert untaken & {"pause", "abort", "resume", "retry"} == set()  # moves from anywhere, or back: where taken
    assert {"accept", "error", "refine", "give_up", "rollback", "rolled_back"} <= untaken

    # the header's figures, and the sections under the drawings
    assert "ran on its own" in html and "1 of 1" in html  # no human answer; the one failure recovered alone
    assert ">4</dd>" in html.split("attempts</dt>")[1][:30]
    assert "rate limited" in html.split('id="recovery"')[1]
    changes = html.split('id="changes"')[1]
    assert all(f"<code>{f}.txt</code>" in changes for f in "abc") and "+2 −0" in changes
    assert "<td>FR-1</td>" in html.split('id="requirements"')[1]  # from the session's traceability.md


def test_the_same_log_gives_the_same_bytes_wherever_it_is(known: tuple[maestro.Store, str], tmp_path: Path) -> None:
    store, sid = known
    first = html_report(store, sid)
    assert html_report(store, sid) == first
    # the session's records copied into another repository: the same page (a replayed session looks the same)
    other = maestro.Store(make_repo(tmp_path))
    folder = other.session_dir(sid)
    folder.mkdir(parents=True)
    for name in ("events.jsonl", "tasks.yaml", "traceability.md"):
        shutil.copy(store.session_dir(sid) / name, folder / name)
    assert html_report(other, sid) == first
    events, plan = synthetic(40)
    assert render_report(events, plan=plan) == render_report(list(events), plan=dict(plan))


def test_the_page_loads_nothing_and_runs_nothing(known: tuple[maestro.Store, str]) -> None:
    store, sid = known
    html = html_report(store, sid)
    assert "<script" not in html.lower()
    assert re.findall(r"""(?:src|href)\s*=\s*(?!["']?#)""", html) == []  # only links within the page
    assert re.findall(r"url\((?!#)", html) == []  # no font or image from anywhere
    assert "@import" not in html
    assert """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; """ in html
    # what the log says is text, never markup
    events, plan = synthetic(8)
    hostile = '<script>alert(1)</script><img src="http://example.com/x.png">'
    first = attrs.evolve(events[0], data={**events[0].data, "request": hostile})
    page = render_report([first, *events[1:]], plan=plan)
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_log_with_no_event_is_refused() -> None:
    with pytest.raises(maestro.StoreError, match="no events"):
        render_report([])


def test_without_the_plan_files_the_log_alone_draws_the_page(known: tuple[maestro.Store, str], tmp_path: Path) -> None:
    store, sid = known
    other = maestro.Store(make_repo(tmp_path))
    (other.session_dir(sid)).mkdir(parents=True)
    shutil.copy(store.events_path(sid), other.events_path(sid))
    html = html_report(other, sid)
    graph = svgs(html)["taskgraph"]
    assert len(find(graph, "g", "node")) == 3 and find(graph, "path", "edge") == []  # no dependencies known
    x = {label(child(n, "text")): float(child(n, "rect").get("x")) for n in find(graph, "g", "node")}
    assert x["a"] < x["b"] == x["c"]  # the planned groups are the layers
    assert "traceability: " not in html and "1 of 1 requirements met" in html  # the gate's summary


# -- 200 tasks ---------------------------------------------------------------------------------------------------


def test_two_hundred_tasks_nothing_overlaps_and_long_names_are_shortened_with_a_tooltip() -> None:
    events, plan = synthetic(200)
    started = time.perf_counter()
    html = render_report(events, plan=plan)
    took = time.perf_counter() - started
    assert took < 5, f"{took:.2f} s for 200 tasks"
    drawn = svgs(html)
    for name, svg in drawn.items():
        labels = [(box, text) for box, text, _ in text_boxes(svg)]
        assert overlapping(labels) == [], name
        width, height = float(svg.get("width", 0)), float(svg.get("height", 0))
        assert all(inside(box, (0, 0, width, height)) for box, _ in labels), name

    graph = drawn["taskgraph"]
    nodes = find(graph, "g", "node")
    assert len(nodes) == 200
    assert len(find(graph, "path", "edge")) == sum(len(t.depends_on) for t in plan.values())
    boxes = [(rect_box(child(n, "rect")), tooltip(n)) for n in nodes]
    assert overlapping(boxes) == []
    for n in nodes:  # each node's label inside its node, and its full name in the tooltip
        rect = rect_box(child(n, "rect"))
        for box, text, _ in text_boxes(n):
            assert inside(box, rect), text
        name = label(child(n, "text"))
        full = tooltip(n).split(":")[0]
        assert name == full or (
            "…" in name and full.startswith(name.split("…")[0]) and full.endswith(name.split("…")[1])
        )
    shortened = [n for n in nodes if "…" in label(child(n, "text"))]
    assert len(shortened) == sum(1 for t in plan if LONG in t)
    groups = find(graph, "g", "group")
    outlines = [(rect_box(child(g, "rect")), tooltip(g)) for g in groups]
    assert overlapping(outlines) == []
    assert {tooltip(g).split(":")[0] for g in groups} == {f"planned group G{i + 1}" for i in range(25)}

    timeline = drawn["timeline"]
    rows = find(timeline, "text", "rowlabel")
    assert len(rows) == 201  # the session, and every task
    assert all(text_width(label(r), 11) <= 190 - 4 for r in rows)
    assert {tooltip(r).split(":")[0] for r in rows[1:]} == set(plan)
    bars = find(timeline, "g", "bar")
    story = read_story(events, plan=plan)
    retried = sum(1 for i in range(200) if i % 7 == 3) + sum(1 for i in range(200) if i % 13 == 4)
    assert len(bars) == len(story.attempts) == 200 + retried + 3  # and the three a crash voided


def test_waits_are_shaded_squeezed_and_labelled_and_voided_attempts_greyed() -> None:
    events, plan = synthetic(64)
    html = render_report(events, plan=plan)
    timeline = svgs(html)["timeline"]
    gaps = find(timeline, "rect", "gap")
    assert sorted(sorted(classes(g) - {"gap"})[0] for g in gaps) == ["gap-down", "gap-human"]
    labels = sorted(label(t) for t in find(timeline, "text", "gaplabel"))
    assert labels == ["down 20.0 min", "paused 3.0 h"]
    for g in gaps:  # a three-hour pause takes no more than its share of the plot
        assert float(g.get("width", 0)) <= 860 * 0.08 + 0.01
    voided = find(timeline, "g", "o-voided")
    assert len(voided) == 3
    story = read_story(events, plan=plan)
    assert (story.human_answers, story.state.rewinds, round(story.waiting_s), round(story.down_s)) == (
        1,
        1,
        3 * 3600 + 1,
        1200,
    )  # fmt: skip (answered after three hours, resumed a second later)
    assert story.failures and story.recovered_alone == len(story.failures)
    assert "1 human answer" in html and f"{len(story.failures)} of {len(story.failures)}" in html


def test_shortening_keeps_the_head_and_the_tail() -> None:
    assert shorten("short", 100, 11) == "short"
    name = "t005" + LONG
    short = shorten(name, 150, 11)
    assert text_width(short, 11) <= 150 and short.startswith("t005-impl") and short.endswith("tests")
    assert text_width(shorten("界" * 40, 100, 11), 11) <= 100  # wide characters count twice


# -- the index of sessions ---------------------------------------------------------------------------------------


def test_the_index_lists_every_session_links_its_report_and_names_a_broken_one(
    known: tuple[maestro.Store, str], tmp_path: Path
) -> None:
    store, sid = known
    other = maestro.Store(make_repo(tmp_path))
    (other.session_dir(sid)).mkdir(parents=True)
    shutil.copy(store.events_path(sid), other.events_path(sid))
    broken = other.session_dir("20990101-000000-ffffff")
    broken.mkdir()
    (broken / "events.jsonl").write_text('{"v": 1, "seq": 1}\n{"bad"\n', encoding="utf-8")
    index = write_sessions_index(other)
    assert index == other.root / INDEX_FILE
    html = index.read_text(encoding="utf-8")
    assert html == sessions_index_html(other)
    assert f'<a href="sessions/{sid}/report.html">{sid}</a>' in html
    assert (index.parent / "sessions" / sid / "report.html").read_text(encoding="utf-8") == html_report(other, sid)
    assert "20990101-000000-ffffff</td><td colspan" in html and "cannot be read: " in html
    assert html.index("20990101-000000-ffffff") < html.index(sid)  # newest first
    assert "1 of 1 <small>ran with no human answer" in html
    # an index written elsewhere links from there
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    assert f'href="../repo/.flow/maestro/sessions/{sid}/report.html"' in sessions_index_html(other, base=elsewhere)
    assert write_html_report(other, sid) == report_path(other, sid)


# -- a real browser ----------------------------------------------------------------------------------------------


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    cached = sorted(Path.home().glob(".cache/ms-playwright/chromium*/chrome-linux*/chrome"))
    return str(cached[-1]) if cached else None


BROWSER = chromium()
needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason="no headless Chromium (chromium, chromium-browser, google-chrome or Playwright's): "
    "`apt-get install -y chromium` (Debian) to run the browser checks",
)


def browse(page: Path, work: Path, *args: str) -> tuple[str, list[str], list[str]]:
    """Open ``page`` in headless Chromium with every name resolving nowhere and a proxy to nowhere; return what
    it printed, its console messages and the URLs the page asked for (the browser's own background requests
    left out)."""
    assert BROWSER is not None
    netlog = work / "net.json"
    quiet = ["--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--disable-extensions"]  # fmt: skip
    offline = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"]
    logs = ["--enable-logging=stderr", "--v=0", f"--log-net-log={netlog}"]
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={work}/profile", *quiet, *offline, *logs, *args, page.as_uri()]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    events = json.loads(netlog.read_text(encoding="utf-8"))["events"] if netlog.exists() else []
    asked = sorted({
        e["params"]["url"] for e in events
        if isinstance(e.get("params"), dict) and "url" in e["params"] and "initiator" in e["params"]
        and e["params"]["initiator"] != "not an origin" and not e["params"]["url"].startswith("file:")
    })  # fmt: skip
    return out.stdout, console, asked


class Counter(HTMLParser):
    """The elements of a DOM dump, by tag, and the ``<g class="bar …">`` ones."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.bars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        cls = dict(attrs).get("class") or ""
        self.bars += tag == "g" and cls.split()[:1] == ["bar"]


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows of an 8-bit RGB or RGBA PNG (as Chromium writes them), unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if channels == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


@needs_browser
def test_chromium_shows_the_report_offline_without_a_console_error(
    known: tuple[maestro.Store, str], tmp_path: Path
) -> None:
    store, sid = known
    page = write_html_report(store, sid, tmp_path / "report.html")
    dom, console, asked = browse(page, tmp_path / "dom", "--dump-dom")
    assert (console, asked) == ([], [])
    counted = Counter()
    counted.feed(dom)
    assert counted.tags.get("svg") == 3 and counted.tags.get("script") is None
    assert counted.bars == 4  # the four attempts, in the browser's DOM
    assert counted.tags.get("title", 0) > 20  # the tooltips

    shot = tmp_path / "report.png"
    _, console, asked = browse(page, tmp_path / "shot", f"--screenshot={shot}", "--window-size=900,1300")
    assert (console, asked) == ([], [])
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (900, 1300)
    colours = {row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
    assert len(colours) > 20, "the screenshot is blank"
    ink = sum(1 for row in rows[::4] for i in range(0, len(row), 12) if row[i : i + 3] != b"\xff\xff\xff")
    assert ink > 0.03 * len(rows[::4]) * (width // 4)
    assert any(b"\x43\xa0\x47" in row for row in rows), "no succeeded bar (#43a047) on the screen"


@needs_browser
def test_the_browser_checks_catch_a_request_and_a_console_error(tmp_path: Path) -> None:
    """The checks above can fail: a page that asks the network for an image and logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><script>console.error("boom")</script><img src="http://example.com/x.png">'
                    "</body></html>", encoding="utf-8")  # fmt: skip
    _, console, asked = browse(page, tmp_path / "dom", "--dump-dom")
    assert any('"boom"' in line for line in console)
    assert asked == ["http://example.com/x.png"]


@needs_browser
def test_chromium_shows_the_index(known: tuple[maestro.Store, str], tmp_path: Path) -> None:
    store, sid = known
    index = tmp_path / "sessions.html"
    index.write_text(sessions_index_html(store, base=tmp_path), encoding="utf-8")
    dom, console, asked = browse(index, tmp_path / "dom", "--dump-dom")
    assert (console, asked) == ([], [])
    assert f">{sid}</a>" in dom and "completed" in dom
