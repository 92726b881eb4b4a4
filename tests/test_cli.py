"""The command line, run as real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import maestro
import maestro.plan.tasks


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maestro", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def recorded(store: maestro.Store) -> str:
    with maestro.Session.create(store, "add a calculator", clock=maestro.TickingClock()) as s:
        s.fire("start")
        s.record(maestro.Decision("tech-stack", "language?", "python", "existing code"))
        s.fire("plan_ready")
        s.fire("tasks_ready")
        s.fire_task("T1", "ready")
        s.fire("pause")
    return s.id


def test_the_console_script_is_installed() -> None:
    script = shutil.which("maestro", path=str(Path(sys.executable).parent)) or shutil.which("maestro")
    assert script is not None
    out = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("maestro ")


@pytest.mark.parametrize("chart", ["session", "task"])
def test_statechart_prints_each_format(chart: str) -> None:
    loaded = maestro.load_chart(chart)
    mermaid = run("statechart", "--chart", chart)
    assert mermaid.returncode == 0
    assert mermaid.stdout == loaded.to_mermaid()
    as_json = run("statechart", "--chart", chart, "--format", "json")
    assert json.loads(as_json.stdout) == loaded.to_dict()
    as_yaml = run("statechart", "--chart", chart, "--format", "yaml")
    assert maestro.parse_chart(as_yaml.stdout) == loaded


def test_statechart_defaults_to_the_session_chart_in_mermaid() -> None:
    assert run("statechart").stdout == maestro.load_chart("session").to_mermaid()


def test_an_unknown_chart_is_one_line_and_exit_2() -> None:
    out = run("statechart", "--chart", "flow")
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'flow'" in out.stderr


def test_replay_prints_one_step_a_line(repo: Path, recorded: str) -> None:
    out = run("replay", recorded, "--repo", str(repo))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "session created: add a calculator" in lines[0]
    assert "start: created -> planning" in lines[1]
    assert "plan_ready: planning -> generating_tasks  [1 decision]" in lines[2]
    assert "pause: implementing -> paused  [1 task move]" in lines[4]
    assert lines[5].startswith("after step 4 (seq 7): paused (paused from implementing)")
    assert "tasks: T1=ready" in lines[5]


def test_replay_runs_from_inside_the_repository(repo: Path, recorded: str) -> None:
    (repo / "sub").mkdir()
    out = run("replay", recorded, cwd=repo / "sub")
    assert out.returncode == 0, out.stderr
    assert "paused" in out.stdout.splitlines()[-1]


def test_replay_json_is_one_object_a_line(repo: Path, recorded: str) -> None:
    out = run("replay", recorded, "--repo", str(repo), "--json")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r.get("step") for r in rows[:-1]] == [0, 1, 2, 3, 4]
    assert rows[2]["decisions"][0]["choice"] == "python"
    assert rows[4]["tasks"] == [{"task": "T1", "trigger": "ready", "source": "pending", "dest": "ready"}]
    final = rows[-1]["final_state"]
    events = maestro.Store(repo).read_events(recorded)
    assert maestro.converter.structure(final, maestro.SessionState) == maestro.rebuild(events)


def test_replay_to_stops_after_that_step(repo: Path, recorded: str) -> None:
    out = run("replay", recorded, "--repo", str(repo), "--to", "2")
    lines = out.stdout.splitlines()
    assert len(lines) == 4
    assert lines[-1].startswith("after step 2 (seq 4): generating_tasks")
    too_far = run("replay", recorded, "--repo", str(repo), "--to", "40")
    assert too_far.returncode == 2
    assert too_far.stdout == ""
    assert too_far.stderr.strip() == f"maestro: error: session {recorded} has steps 0 to 4, not 40"
    assert run("replay", recorded, "--repo", str(repo), "--to", "4").returncode == 0


def test_sessions_lists_them(repo: Path, recorded: str) -> None:
    out = run("sessions", "--repo", str(repo))
    assert out.returncode == 0
    assert out.stdout.split() == [recorded, "paused", "add", "a", "calculator"]
    rows = [json.loads(x) for x in run("sessions", "--repo", str(repo), "--json").stdout.splitlines()]
    assert rows[0]["state"] == "paused"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "nope"], "no session 'nope'"),
        (["replay", "x", "--to", "-1"], "step numbers start at 0"),
        (["replay", "x", "--to", "two"], "not a step number"),
        (["replay", "../../etc"], "bad session id"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(repo: Path, args: list[str], message: str) -> None:
    out = run(*args, "--repo", str(repo))
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (repo / ".flow").exists()


def test_not_a_repository(tmp_path: Path) -> None:
    out = run("replay", "x", "--repo", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"maestro: error: {tmp_path}: not a git repository (no .git here or above)"


def test_a_malformed_log_is_named_with_its_line(repo: Path, recorded: str) -> None:
    path = maestro.Store(repo).events_path(recorded)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "garbage\n"
    path.write_text("".join(lines))
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    out = run("replay", recorded, "--repo", str(repo))
    assert out.returncode == 2
    assert f"{path}:3: not a valid event" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before


def test_an_unreadable_log_is_named(repo: Path, recorded: str) -> None:
    path = maestro.Store(repo).events_path(recorded)
    path.unlink()
    path.mkdir()  # unreadable as a file, even for root
    out = run("replay", recorded, "--repo", str(repo))
    assert out.returncode == 2
    assert f"no session {recorded!r}" in out.stderr


def test_no_command_shows_help_and_exits_2() -> None:
    out = run()
    assert out.returncode == 2
    assert "statechart" in out.stderr


def test_a_request_with_newlines_stays_on_one_line(store: maestro.Store, repo: Path) -> None:
    forged = "x\n   1  #2     start: created -> completed"
    with maestro.Session.create(store, forged, clock=maestro.TickingClock()) as s:
        s.fire("start")
    out = run("replay", s.id, "--repo", str(repo))
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("session created: x\\n   1  #2     start: created -> completed")
    listed = run("sessions", "--repo", str(repo)).stdout
    assert len(listed.splitlines()) == 1


@pytest.mark.parametrize(
    ("line", "data", "message"),
    [
        (2, {"extra": 1}, "malformed transition data: unknown field(s) extra"),
        (2, {"trigger": 7}, "malformed transition data: trigger must be a string"),
        (6, {"task": ""}, "malformed task data: bad task id ''"),
        (3, {"choice": None}, "malformed decision data"),
    ],
)
def test_bad_data_inside_an_event_is_one_line_exit_2(
    repo: Path, recorded: str, line: int, data: dict[str, object], message: str
) -> None:
    path = maestro.Store(repo).events_path(recorded)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[line - 1]["data"].update(data)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run("replay", recorded, "--repo", str(repo))
    assert out.returncode == 2, out
    assert f"event seq {line}: {message}" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    # `maestro sessions` lists the session as broken, with the same reason, and exits 0 (issue 15, item 8)
    listed = run("sessions", "--repo", str(repo))
    assert (listed.returncode, listed.stderr) == (0, ""), listed
    assert listed.stdout.startswith(f"{recorded}  broken: ")
    assert f"event seq {line}: {message}" in listed.stdout and len(listed.stdout.splitlines()) == 1


def test_deeply_nested_json_is_one_line_exit_2(repo: Path, recorded: str) -> None:
    path = maestro.Store(repo).events_path(recorded)
    with path.open("a") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    out = run("replay", recorded, "--repo", str(repo))
    assert out.returncode == 2
    assert "nested too deeply" in out.stderr


def test_an_empty_log_is_one_line_exit_2(repo: Path, store: maestro.Store) -> None:
    store.init()
    (store.sessions_dir / "empty").mkdir()
    (store.sessions_dir / "empty" / "events.jsonl").write_bytes(b"")
    out = run("replay", "empty", "--repo", str(repo))
    assert out.returncode == 2
    assert "not a session log" in out.stderr


SEED = Path(__file__).parent / "data" / "plans" / "prd-maestro-orchestrator-v1.md"


def test_prd_lists_the_requirements() -> None:
    out = run("prd", str(SEED))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Product Requirements Document: Maestro Orchestrator (implementing): 15 requirements"
    assert lines[1].split()[:2] == ["FR-1", "P0"]
    assert lines[15].split()[:2] == ["FR-15", "P3"]
    doc = json.loads(run("prd", str(SEED), "--json").stdout)
    assert [r["id"] for r in doc["requirements"]] == [f"FR-{n}" for n in range(1, 16)]


GRAPH = """\
version: 1
tasks:
  - id: core
    title: Calculator core
    requirements: [FR-1]
  - id: ui
    title: Command line
    depends_on: [core]
    risk: high
  - id: docs
    title: Documentation
    depends_on: [core]
    priority: P3
"""


def test_tasks_prints_the_groups_and_the_rationale(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(GRAPH)
    out = run("tasks", str(path), "--prd", str(SEED))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:6] == [
        f"{path}: 3 tasks in 2 groups",
        "  G1:",
        "    core  P2 medium Calculator core",
        "  G2:",
        "    ui  P2 high   Command line after core",
        "    docs  P3 medium Documentation after core",
    ]
    capped = json.loads(run("tasks", str(path), "--max-parallel", "1", "--json").stdout)
    assert capped["groups"] == [["core"], ["ui"], ["docs"]]
    assert capped["decision"]["kind"] == "task_ordering"


def test_tasks_converts_to_yaml_atomically(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(GRAPH)
    target = tmp_path / "out.yaml"
    out = run("tasks", str(path), "--yaml", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert target.read_text() == out.stdout
    assert maestro.plan.tasks.parse_tasks(out.stdout) == maestro.plan.tasks.parse_tasks(GRAPH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.yaml", "tasks.yaml"]


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (GRAPH.replace("depends_on: [core]\n    risk", "depends_on: [cor]\n    risk"), [],
         "tasks.yaml:8: task ui: depends_on: unknown task 'cor'"),
        (GRAPH.replace("[FR-1]", "[FR-99]"), ["--prd", str(SEED)],
         "tasks.yaml:5: task core: requirements: requirement 'FR-99' is not in the PRD"),
        (GRAPH, ["--max-parallel", "0"], "must be at least 1, not 0"),
        (GRAPH, ["--prd", "missing.md"], "missing.md: no such file"),
        ("version: 1\ntasks: [", [], "tasks.yaml:2: YAML syntax"),
    ],
)  # fmt: skip
def test_tasks_bad_input_is_one_line_exit_2(tmp_path: Path, text: str, args: list[str], message: str) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(text)
    out = run("tasks", str(path), *args, "-o", str(tmp_path / "out.yaml"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_agents_lists_subagents_skills_and_skipped_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".claude" / "agents").mkdir(parents=True)
    (repo / ".claude" / "skills" / "api-design").mkdir(parents=True)
    (repo / ".claude" / "agents" / "be.md").write_text(
        "---\nname: backend-architect\ndescription: Designs backends\ntools: Read, Edit\n---\nYou design.\n"
    )
    (repo / ".claude" / "agents" / "bad.md").write_text("---\nname: Bad Name\n---\nx\n")
    (repo / ".claude" / "skills" / "api-design" / "SKILL.md").write_text(
        "---\nname: api-design\ndescription: REST API design rules\n---\nbody\n"
    )
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "maestro", "agents", "--repo", str(repo), "--json"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [(a["name"], a["tools"], a["from"]) for a in doc["subagents"]] == [
        ("backend-architect", ["Read", "Edit"], ".claude/agents/be.md")
    ]
    assert [k["name"] for k in doc["skills"]] == ["api-design"]
    assert len(doc["problems"]) == 1 and doc["problems"][0].startswith(".claude/agents/bad.md:2:")
    missing = run("agents", "--repo", str(tmp_path / "nope"))
    assert (missing.returncode, missing.stderr.count("\n")) == (2, 1)
