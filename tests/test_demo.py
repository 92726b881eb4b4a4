"""``maestro demo`` (issue 7, item 7), run once as a subprocess: a whole session on the sample repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dulwich.object_store import tree_lookup_path
from dulwich.repo import Repo

import maestro
from maestro.run import demo

REPORT_SECTIONS = [
    "Summary",
    "Decisions Made",
    "Changes Made",
    "Testing",
    "Quality Gates",
    "Requirements",
    "Recovery",
    "Metrics",
    "Checkpoints",
    "Next Steps",
]


class Demo:
    """The demo's run: its output, its folder, and the session it left in the sample repository."""

    def __init__(self, proc: subprocess.CompletedProcess[str], folder: Path) -> None:
        self.proc = proc
        self.folder = folder
        self.repo = folder / "calc"
        self.store = maestro.Store(self.repo)
        (self.sid,) = self.store.session_ids()
        self.dir = self.store.session_dir(self.sid)
        self.events = self.store.read_events(self.sid)
        self.state = maestro.rebuild(self.events)
        self.lines = proc.stdout.splitlines()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    folder = tmp_path_factory.mktemp("demo") / "here"  # a new folder
    proc = subprocess.run(
        [sys.executable, "-m", "maestro", "demo", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return Demo(proc, folder)


def section(report: str, name: str) -> list[str]:
    lines = report.splitlines()
    start = lines.index(f"## {name}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [line for line in lines[start:end] if line.strip()]


def test_the_demo_completes_and_prints_where_the_report_is(run: Demo) -> None:
    report = run.dir / "final-report.md"
    assert run.proc.returncode == 0
    assert run.proc.stderr == ""
    assert run.lines[0] == f"[Maestro] Session {run.sid} started on branch maestro/{run.sid}"
    assert run.lines[-3:] == [
        f"session {run.sid}: completed",
        f"sample repository and plan: {run.folder}",
        f"report: {report}",
    ]
    assert all(line.startswith("[Maestro] ") for line in run.lines[:-3])
    assert report.is_file()
    assert run.state.state == "completed"
    assert (run.folder / "README.txt").read_text() == (
        f"maestro demo: session {run.sid} (completed)\nrepository: {run.repo}\nreport: {report}\n"
        f"landed: maestro/{run.sid} into master (fast-forward, 7 files)\n"
    )
    assert f"[Maestro] To take the work into your branch: maestro land {run.sid}" in run.lines
    assert run.lines[-4] == f"[Maestro] Landed maestro/{run.sid} into master (fast-forward)"
    assert sorted(p.name for p in (run.folder / "plan").iterdir()) == [
        "config.yaml",
        "prd.md",
        "script.yaml",
        "tasks.yaml",
    ]


def test_the_report_has_every_section(run: Demo) -> None:
    report = (run.dir / "final-report.md").read_text(encoding="utf-8")
    headings = [line[3:] for line in report.splitlines() if line.startswith("## ")]
    assert [h for h in headings if h in REPORT_SECTIONS] == REPORT_SECTIONS
    summary = section(report, "Summary")
    assert f"- Feature: {demo.REQUEST}" in summary
    assert "- Outcome: completed" in summary
    assert "- Tasks completed: 4/4" in summary
    assert "- Tests passed: 5 passed, 0 failed" in summary
    assert "- Checkpoints: 5" in summary
    assert "- Agent calls: 6; cost: $0.0650" in summary  # no task ran again for another's failure
    assert any(line.startswith("- Duration: ") for line in summary)
    assert section(report, "Requirements")[2:] == [
        "| FR-1 | P0 | met | core | task core succeeded and its acceptance passes |",
        "| FR-2 | P1 | met | ops | task ops succeeded and its acceptance passes |",
        "| FR-3 | P1 | met | cli | task cli succeeded and its acceptance passes |",
        "| FR-4 | P3 | met | docs | task docs succeeded and its acceptance passes |",
    ]
    assert "- tests: passed — 5 passed, 0 failed" in section(report, "Quality Gates")
    assert "- traceability: passed — 4 of 4 requirements met" in section(report, "Quality Gates")
    changes = section(report, "Changes Made")
    assert changes[:2] == ["7 files changed (6 created, 1 modified), +67 -0 lines, from checkpoint 0 to checkpoint 4",
                           "### Created (6 files)"]  # fmt: skip
    assert "- calc/core.py (+6 -0)" in changes[2:8]
    assert changes[8:10] == ["### Modified (1 file)", "- README.md (+4 -0)"]
    assert changes[10] == "### By task (each checkpoint's diffstat)"
    assert "- task docs: Document the usage (checkpoint 3): 1 file (1 modified), +4 -0" in changes[11:]
    assert "- task cli: Command line (checkpoint 4): 2 files (2 created), +25 -0" in changes[11:]
    recovery = section(report, "Recovery")  # each failure with the decision that answered it, and what became of it
    retry, alternative = (d for d in run.state.decisions if d.kind == "recovery")
    assert recovery[:3] == [
        "- ops attempt 1: failed (transient), recovered without a human (attempt 2 succeeded) — API Error: 429 "
        "rate_limit_error (try again shortly)",
        f"  - {retry.id} [ops] retry: transient failure: retry 1 of 2 after 0.2 s backoff",
        "- cli attempt 1: regression, recovered without a human (attempt 2 succeeded) — Your change broke task core "
        "(Add and subtract): its acceptance command "
        f"`{sys.executable} -m pytest -q -p no:cacheprovider tests/test_core.py` failed (exit 1):",
    ]
    assert recovery[3].startswith(f"  - {alternative.id} [cli] alternative: regression: Your change broke task core")
    assert len(recovery) == 4
    metrics = section(report, "Metrics")
    assert metrics[:4] == [
        "- Autonomy: autonomous: completed with no human answer",
        "- Recovery: 2 failures (1 agent, 1 regression): 2 recovered without a human (100%), 0 after a human "
        "answer, 0 not recovered",
        "- Attempts per task: median 1.5, total 6 over 4 tasks",
        "- Cost per task: median $0.0100, total $0.0650",
    ]
    checkpoints = [line.split(" — ")[1] for line in section(report, "Checkpoints")]
    assert checkpoints[0] == "start" and checkpoints[4] == "task cli: Command line"
    assert sorted(checkpoints[1:4]) == [
        "task core: Add and subtract",
        "task docs: Document the usage",
        "task ops: Multiply and divide",
    ]
    assert checkpoints.index("task docs: Document the usage") > checkpoints.index("task core: Add and subtract")


def test_the_sample_repository_tests_pass(run: Demo) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=run.repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout
    cli = subprocess.run([sys.executable, "-m", "calc", "add", "1", "2"], cwd=run.repo, capture_output=True, text=True)
    assert cli.stdout == "3.0\n"
    # landed; the regression was never merged: core is as its own task wrote it, not as cli's first attempt left it
    assert (run.repo / "calc" / "core.py").read_text() == demo.CORE
    assert "python -m calc add 1 2" in (run.repo / "README.md").read_text()


def test_each_task_starts_once_its_dependencies_are_merged_and_each_merge_is_a_checkpoint(run: Demo) -> None:
    (ordering,) = [d for d in run.state.decisions if d.kind == "task_ordering"]
    assert "G1: core, ops | G2: cli, docs" in ordering.rationale  # the planned view
    merged = {c.label.split(":")[0].removeprefix("task "): c.n for c in run.state.checkpoints[1:]}
    assert sorted(merged) == ["cli", "core", "docs", "ops"]
    assert merged["docs"] > merged["core"] and merged["cli"] > max(merged["core"], merged["ops"])
    starts = [(e.data["task"], e.seq) for e in run.events if e.kind == "task" and e.data["trigger"] == "start"]
    first_start = dict(reversed(starts))
    cp_seq = {e.data["n"]: e.seq for e in run.events if e.kind == "checkpoint"}
    succeed_seq = {e.data["task"]: e.seq for e in run.events if e.kind == "task" and e.data["trigger"] == "succeed"}
    # docs waited for core's merge alone (its succeed move: the checkpoint follows once docs has started), not ops's
    assert first_start["docs"] > succeed_seq["core"]
    assert first_start["docs"] < cp_seq[merged["ops"]] or merged["ops"] < merged["docs"]
    assert not any(line.startswith("[Maestro] Group ") for line in run.lines)
    assert {k: (t.state, t.attempts) for k, t in run.state.tasks.items()} == {
        "core": ("succeeded", 1),
        "ops": ("succeeded", 2),
        "cli": ("succeeded", 2),
        "docs": ("succeeded", 1),
    }


def test_the_log_shows_the_retry_and_the_regression_that_was_not_merged(run: Demo) -> None:
    recoveries = [(d.task, d.choice) for d in run.state.decisions if d.kind == "recovery"]
    assert recoveries == [("ops", "retry"), ("cli", "alternative")]
    results = [(r.task, r.attempt, r.status, r.failure_class) for r in run.state.agent_results]
    assert ("ops", 1, "failed", "transient") in results
    assert ("ops", 2, "succeeded", None) in results
    assert ("cli", 1, "succeeded", None) in results  # on its own terms; then core's tests failed once merged
    assert ("cli", 2, "succeeded", None) in results
    triggers = [e.data["trigger"] for e in run.events if e.kind == "transition"]
    assert triggers == ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done", "handoff",
                        "complete"]  # fmt: skip
    # on the console
    assert "[Maestro] Task ops: failed (transient): API Error: 429 rate_limit_error (try again shortly)" in run.lines
    assert "[Maestro] Decision (recovery): retry — transient failure: retry 1 of 2 after 0.2 s backoff" in run.lines
    assert "[Maestro] Regression: task core's acceptance now fails after merging cli" in run.lines
    assert not any("Rolled back" in line for line in run.lines)
    # and in the session's execution log
    log = (run.dir / "execution-log.md").read_text(encoding="utf-8")
    assert "Decision (recovery, by policy): retry — transient failure: retry 1 of 2 after 0.2 s backoff" in log
    assert "Decision (recovery, by policy): alternative — regression: Your change broke task core" in log
    # the broken attempt is kept at its attempt ref; the branch never had it
    with Repo(str(run.repo)) as r:
        kept = r[r.refs[f"refs/maestro/{run.sid}/attempts/cli/1".encode()]]
        _mode, sha = tree_lookup_path(r.__getitem__, kept.tree, b"calc/core.py")
        assert r[sha].as_raw_string() == demo.CORE_BROKEN.encode()
        core_n = next(c.n for c in run.state.checkpoints if c.label.startswith("task core"))
        for c in run.state.checkpoints[core_n:]:
            _mode, sha = tree_lookup_path(r.__getitem__, r[c.commit.encode()].tree, b"calc/core.py")
            assert r[sha].as_raw_string() == demo.CORE.encode()
    meta = json.loads((run.dir / "metadata.json").read_text(encoding="utf-8"))
    assert meta["state"] == "completed"


def test_the_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    out = subprocess.run(
        [sys.executable, "-m", "maestro", "demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == f"maestro: error: {tmp_path}: not empty: the demo needs an empty or new folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_the_demo_needs_nothing_but_the_package(tmp_path: Path) -> None:
    """Without pytest installed, the sample's unittest test cases still run: the demo completes."""
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'pytest' else real(name, *a)\n"
        "from pathlib import Path\n"
        "from maestro.run.demo import run_demo\n"
        "outcome, _ = run_demo(Path(sys.argv[1]))\n"
        "print(outcome.state)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "demo")], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "completed"
    config = (tmp_path / "demo" / "plan" / "config.yaml").read_text()
    assert "-m unittest discover" in config and "pytest" not in config
