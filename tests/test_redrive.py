"""Re-drive (issue 8, item 4): sessions recorded by real runs of the runner in real git repositories, run again with
the replay agent on a copy of their base, and compared.

The recorded sessions are the demo's: its sample repository, PRD, tasks and script (a parallel group, a transient
failure and a retry, a regression and a rollback).  One test runs the demo exactly; the others use the same sample
with acceptance commands that are shell one-liners instead of test suites (the same verdicts, in a fraction of the
time).  The runner's agent is wrapped in :class:`~maestro.agents.recording.RecordingAgent`, and in most tests the
scripted agent's own change files are undone (``Silent``) so that only the recorder's are there to replay.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from dulwich import porcelain
from dulwich.objects import Commit
from dulwich.refs import Ref
from dulwich.repo import Repo

import maestro
from maestro import MaestroError
from maestro.agents.base import PLAN_TASK, AgentRequest, PlanOutcome, PlanRequest
from maestro.agents.changes import Change, changes_path, read_changes, snapshot, write_changes
from maestro.agents.recording import RecordingAgent
from maestro.agents.scripted import ScriptedAgent
from maestro.cli.inspect import redrive_lines
from maestro.config.model import Config
from maestro.config.reader import load_config
from maestro.core.records import AgentResult, Event
from maestro.git.housekeeping import dirty_paths
from maestro.run.demo import REQUEST, TASKS, make_sample
from maestro.run.redrive import (
    RedriveReport,
    _checkout,
    _compare,
    _copy_decision_history,
    _trace,
    effective_events,
    redrive,
)
from maestro.run.runner import Runner
from maestro.store.filestore import Store
from tests.support.git import git_init

SID = "session-1"
FAST_TASKS = (
    TASKS.replace("{test} core", "grep -q 'return a - b' calc/core.py")
    .replace("{test} ops", "grep -q 'def div' calc/ops.py")
    .replace("{test} cli", "test -f calc/__main__.py")
)


class Silent:
    """The scripted agent without its own change files: after each attempt its file is as it was before."""

    name = "scripted"

    def __init__(self, inner: ScriptedAgent) -> None:
        self.inner = inner

    def run(self, request: AgentRequest) -> AgentResult:
        own = changes_path(request.session_dir, request.task.id, request.attempt, self.name)
        was = own.read_bytes() if own is not None and own.exists() else None
        result = self.inner.run(request)
        if own is not None:
            if was is None:
                own.unlink()
            else:
                own.write_bytes(was)
        return result

    def plan(self, request: PlanRequest) -> PlanOutcome:
        return self.inner.plan(request)


class Sample:
    """The demo's sample (``root/calc``, ``root/plan``) and the session recorded in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "calc"
        self.plan = root / "plan"
        self.store = Store(self.repo)
        self.config: Config = load_config(self.plan / "config.yaml")

    @property
    def dir(self) -> Path:
        return self.store.session_dir(SID)

    def events(self) -> list[Event]:
        return self.store.read_events(SID)

    def triggers(self, events: list[Event] | None = None) -> list[str]:
        return [e.data["trigger"] for e in (events or self.events()) if e.kind == "transition"]

    def attempts(self, task: str) -> list[int]:
        return [e.data["attempt"] for e in self.events() if e.kind == "agent" and e.data["task"] == task]

    def change_file(self, task: str, attempt: int) -> Path:
        path = changes_path(self.dir, task, attempt, "scripted")
        assert path is not None and path.is_file()
        return path

    def branch_tree(self) -> str:
        with Repo(str(self.repo)) as r:
            commit = r[r.refs[Ref(f"refs/heads/maestro/{SID}".encode())]]
            assert isinstance(commit, Commit)
            return str(commit.tree.decode())

    def redrive(self, workdir: Path, **kw: Any) -> RedriveReport:
        return redrive(self.store, SID, config=self.config, workdir=workdir, **kw)


def record(root: Path, *, fast: bool, wrap: Callable[[ScriptedAgent], Any] = Silent, plan: bool = False) -> Sample:
    """Make the demo's sample in ``root`` and run its session with the scripted agent, recorded."""
    make_sample(root)
    sample = Sample(root)
    if fast:
        (sample.plan / "tasks.yaml").write_text(FAST_TASKS)
        config = (sample.plan / "config.yaml").read_text()
        config = "\n".join(line for line in config.splitlines() if not line.startswith("  tests:"))
        tests = '  tests: {command: "test -f calc/core.py", required: true}'
        (sample.plan / "config.yaml").write_text(f"{config}\n{tests}\n")
        sample.config = load_config(sample.plan / "config.yaml")
    script = json.loads((sample.plan / "script.yaml").read_text())
    if plan:
        script["planner"] = {"prd": "prd.md", "tasks": "tasks.yaml"}
    agent = RecordingAgent(wrap(ScriptedAgent.from_mapping(script, sample.plan)))
    runner = Runner(sample.store, sample.config, agent, sleep=lambda _s: None, ids=maestro.SequentialIds())
    if plan:
        outcome = runner.run(REQUEST)
    else:
        outcome = runner.run(REQUEST, prd_path=sample.plan / "prd.md", tasks_path=sample.plan / "tasks.yaml")
    assert (outcome.session_id, outcome.state) == (SID, "completed")
    return sample


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return record(tmp_path_factory.mktemp("recorded") / "sample", fast=True)


@pytest.fixture
def sample(recorded: Sample, tmp_path: Path) -> Sample:
    """A copy of the recorded sample, for one test to change."""
    shutil.copytree(recorded.root, tmp_path / "sample", symlinks=True)
    return Sample(tmp_path / "sample")


def test_the_recorded_session_is_demo_like(recorded: Sample) -> None:
    triggers = recorded.triggers()
    assert "error" not in triggers and "rollback" not in triggers  # a regression is not merged: nothing to undo
    assert recorded.attempts("ops") == [1, 2]  # the transient failure, retried
    assert recorded.attempts("cli") == [1, 2]  # the alternative after its merge broke core
    assert recorded.attempts("docs") == [1]  # never run again for another task's failure
    log = (recorded.dir / "execution-log.md").read_text()
    assert "Regression: task core's acceptance now fails after merging cli" in log
    # cli's write outside its declared files, what broke core, is recorded with cli's first attempt alone (each
    # attempt works in a worktree of its own)
    broken = Change.write("calc/core.py", b"def add(a, b):\n    return a + b\n\n\nsub = add\n")
    assert broken in read_changes(recorded.change_file("cli", 1))
    assert broken not in read_changes(recorded.change_file("docs", 1))


# -- the same -----------------------------------------------------------------------------------------------------


def test_a_finished_session_redriven_takes_the_same_steps_and_leaves_the_same_tree(
    sample: Sample, tmp_path: Path
) -> None:
    report = sample.redrive(tmp_path / "again")
    assert report.first_difference is None, report.first_difference
    assert report.same
    assert report.steps_compared == len(sample.triggers())
    assert report.recorded_tree == report.redriven_tree == sample.branch_tree()
    assert (report.session, report.workdir, report.redriven_state, report.divergence) == (
        SID, tmp_path / "again", "completed", None)  # fmt: skip
    again = Store(report.workdir)
    assert again.session_ids() == [report.redriven_session]
    events = again.read_events(report.redriven_session)
    assert sample.triggers(events) == sample.triggers()
    assert [e.data["attempt"] for e in events if e.kind == "agent" and e.data["task"] == "cli"] == [1, 2]
    assert snapshot(report.workdir) == snapshot(sample.repo)  # the working trees too
    assert dirty_paths(report.workdir) == []


def test_the_demo_itself_redriven_is_the_same(tmp_path: Path) -> None:
    """The demo exactly (its test suites as acceptance commands and gate), the scripted agent's own files replaced
    by the recorder's."""
    demo = record(tmp_path / "demo", fast=False, wrap=lambda agent: agent)
    report = demo.redrive(tmp_path / "again")
    assert (report.same, report.first_difference) == (True, None)
    assert report.recorded_tree == demo.branch_tree()
    assert redrive_lines(report) == [
        f"Re-drive of session {SID}: same",
        f"  re-driven as session {report.redriven_session} in {tmp_path / 'again'} (completed)",
        f"  steps compared: {len(demo.triggers())}",
        f"  final tree: {report.recorded_tree} in both",
    ]


def test_a_session_that_planned_with_its_agent_replays_the_plan(tmp_path: Path) -> None:
    planned = record(tmp_path / "planned", fast=True, plan=True)
    assert (planned.dir / "plan.json").is_file()
    assert planned.attempts(PLAN_TASK) == [1]
    report = planned.redrive(tmp_path / "again")
    assert (report.same, report.first_difference) == (True, None)
    events = Store(report.workdir).read_events(report.redriven_session)
    assert next(e.data["task"] for e in events if e.kind == "agent") == PLAN_TASK


def test_events_a_rewind_voided_are_not_compared(sample: Sample, tmp_path: Path) -> None:
    events = sample.events()
    decision = next(e for e in events if e.kind == "decision")
    last = events[-1].seq

    def line(seq: int, kind: str, data: dict[str, Any]) -> str:
        return json.dumps({"v": 1, "seq": seq, "ts": events[-1].ts, "kind": kind, "data": data}) + "\n"

    log = sample.store.events_path(SID)
    original = log.read_text()
    log.write_text(original + line(last + 1, "decision", dict(decision.data)))  # a step a crash interrupted
    unrewound = sample.redrive(tmp_path / "a")
    assert not unrewound.same
    assert unrewound.first_difference is not None
    assert unrewound.first_difference.startswith("decision ")
    assert unrewound.first_difference.endswith(f"recorded {decision.data['kind']} decision "
                                               f"{decision.data['choice']!r}, re-driven no such decision")  # fmt: skip
    rewind = {"to": last, "reason": "resumed after a crash", "checkpoint": 3}
    log.write_text(original + line(last + 1, "decision", dict(decision.data)) + line(last + 2, "rewind", rewind))
    assert sample.redrive(tmp_path / "b").same


# -- different ----------------------------------------------------------------------------------------------------


def test_a_recorded_change_with_other_content_is_a_different_tree(sample: Sample, tmp_path: Path) -> None:
    last = sample.attempts("docs")[-1]
    path = sample.change_file("docs", last)
    changes = read_changes(path)
    (readme,) = [c for c in changes if c.path == "README.md"]
    assert readme.content is not None
    write_changes(path, [Change.write("README.md", readme.content + b"\ntampered\n")])
    report = sample.redrive(tmp_path / "again")
    assert not report.same
    assert report.recorded_tree == sample.branch_tree()
    assert report.redriven_tree is not None and report.redriven_tree != report.recorded_tree
    label = "task docs: Document the usage"
    assert report.first_difference is not None
    assert report.first_difference.startswith("task docs checkpoint: recorded changes ")  # what docs' merge changed
    assert report.first_difference.endswith(f", 1 files ({label})")
    assert "re-driven changes " in report.first_difference
    assert 0 < report.steps_compared < len(sample.triggers())
    assert report.divergence is None
    lines = redrive_lines(report)
    assert lines[0] == f"Re-drive of session {SID}: DIFFERENT"
    assert lines[3:] == [
        f"  first difference: {report.first_difference}",
        f"  final tree: recorded {report.recorded_tree}, re-driven {report.redriven_tree}",
    ]


def test_a_recorded_change_that_breaks_a_task_is_the_step_where_the_task_went_another_way(
    sample: Sample, tmp_path: Path
) -> None:
    path = sample.change_file("core", 1)
    write_changes(path, [Change.write(c.path, c.content.replace(b"a - b", b"a + b")) if c.content else c
                         for c in read_changes(path)])  # fmt: skip
    report = sample.redrive(tmp_path / "again")
    assert not report.same
    assert report.first_difference == (
        "task core step 3: recorded succeed running→succeeded, re-driven fail running→failed"
    )
    # core then wants an alternative attempt the recording does not have: the re-drive stopped there
    assert report.divergence is not None
    assert report.divergence.startswith("task core attempt 2: core attempt 2 is not in the recording of session")
    assert f"  the re-drive stopped: {report.divergence}" in redrive_lines(report)


def test_a_missing_change_file_stops_the_redrive_naming_the_task_and_attempt(sample: Sample, tmp_path: Path) -> None:
    path = sample.change_file("ops", 2)
    path.unlink()
    report = sample.redrive(tmp_path / "again")
    assert not report.same
    assert report.divergence == (
        f"task ops attempt 2: ops attempt 2 of session {SID} has no recorded changes ({path} is missing)"
    )
    assert report.first_difference == f"step 3 (implementing): {report.divergence}"
    assert report.steps_compared == 3
    assert report.redriven_state == "implementing"


def move(seq: int, trigger: str, source: str, dest: str, task: str | None = None) -> Event:
    data = {"trigger": trigger, "source": source, "dest": dest}
    return Event(1, seq, f"2026-01-01T00:00:{seq:02d}Z", "task" if task else "transition",
                 {"task": task, **data} if task else data)  # fmt: skip


def decision(seq: int, kind: str, choice: str, task: str | None = None) -> Event:
    data = {"kind": kind, "question": "?", "choice": choice, "rationale": "r", **({"task": task} if task else {})}
    return Event(1, seq, f"2026-01-01T00:00:{seq:02d}Z", "decision", data)


def compare(a: list[Event], b: list[Event], repo: Path, stopped: str | None = None) -> tuple[str | None, int]:
    return _compare(_trace(repo, a), _trace(repo, b), stopped=stopped)


PARALLEL = [
    move(1, "start", "created", "planning"),
    move(2, "plan_ready", "planning", "generating_tasks"),
    move(3, "tasks_ready", "generating_tasks", "implementing"),
    move(4, "start", "ready", "running", task="a"),
    move(5, "start", "ready", "running", task="b"),
    move(6, "succeed", "running", "succeeded", task="a"),
    move(7, "fail", "running", "failed", task="b"),
    decision(8, "recovery", "retry", task="b"),
    move(9, "implementation_done", "implementing", "validating"),
]


def test_tasks_of_a_group_that_finish_in_another_order_are_the_same(repo: Path) -> None:
    other = [*PARALLEL[:3], PARALLEL[4], PARALLEL[6], PARALLEL[7], PARALLEL[3], PARALLEL[5], PARALLEL[8]]
    other = [attrs.evolve(e, seq=i + 1) for i, e in enumerate(other)]
    assert [e.data.get("task") for e in other if e.kind == "task"] == ["b", "b", "a", "a"]
    assert compare(PARALLEL, other, repo) == (None, 4)


def test_a_different_session_step_is_named_with_its_number(repo: Path) -> None:
    other = [*PARALLEL[:8], move(9, "error", "implementing", "recovering")]
    assert compare(PARALLEL, other, repo) == (
        "step 4: recorded transition implementation_done implementing→validating, "
        "re-driven transition error implementing→recovering",
        3,
    )
    assert compare(PARALLEL, PARALLEL[:8], repo) == ("step 4: recorded transition implementation_done "
                                                     "implementing→validating, re-driven no such step "
                                                     "(the session ended)", 3)  # fmt: skip


def test_the_earliest_difference_is_the_one_named(repo: Path) -> None:
    """b failed in the recording and succeeded in the re-drive: its task step comes first, then the decision
    the recording has and the re-drive not, then the session's steps."""
    other = [*PARALLEL[:6], move(7, "succeed", "running", "succeeded", task="b"),
             move(8, "implementation_done", "implementing", "validating")]  # fmt: skip
    assert compare(PARALLEL, other, repo) == (
        "task b step 2: recorded fail running→failed, re-driven succeed running→succeeded", 3)  # fmt: skip
    other = [*PARALLEL[:7], decision(8, "recovery", "pause", task="b"), PARALLEL[8]]
    assert compare(PARALLEL, other, repo) == (
        "task b decision 1: recorded recovery decision 'retry', re-driven recovery decision 'pause'", 3)  # fmt: skip


def test_a_redrive_cut_short_names_where_it_stopped_unless_something_differed_before(repo: Path) -> None:
    stopped = "task b attempt 2: not recorded"
    assert compare(PARALLEL, PARALLEL[:5], repo, stopped) == (f"step 3 (implementing): {stopped}", 3)
    other = [*PARALLEL[:4], move(5, "start", "ready", "running", task="c")]
    assert compare(PARALLEL, other, repo, stopped) == (
        "task c step 1: recorded no such step, re-driven start ready→running", 3)  # fmt: skip


# -- what cannot be re-driven -------------------------------------------------------------------------------------


def test_a_session_without_a_checkpoint_cannot_be_redriven(tmp_path: Path) -> None:
    make_sample(tmp_path)
    store = Store(tmp_path / "calc")
    maestro.Session.create(store, "add a calculator", ids=maestro.SequentialIds()).close()
    with pytest.raises(MaestroError, match=f"^session {SID} has no checkpoint 0 .*there is no base to re-drive from$"):
        redrive(store, SID, config=load_config(tmp_path / "plan" / "config.yaml"), workdir=tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_the_copy_goes_into_an_empty_or_new_folder_only(sample: Sample, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(MaestroError, match="busy: not an empty folder"):
        sample.redrive(busy)


def test_an_unknown_session_is_an_error(sample: Sample, tmp_path: Path) -> None:
    with pytest.raises(MaestroError, match="no session 'nope'"):
        redrive(sample.store, "nope", config=sample.config, workdir=tmp_path / "again")


# -- the parts ----------------------------------------------------------------------------------------------------


def ev(seq: int, kind: str = "note", **data: Any) -> Event:
    return Event(1, seq, f"2026-01-01T00:00:{seq:02d}Z", kind, data or {"text": f"n{seq}"})


def seqs(events: list[Event]) -> list[int]:
    return [e.seq for e in events]


def test_effective_events_without_a_rewind_are_the_events() -> None:
    events = [ev(1), ev(2), ev(3)]
    assert effective_events(events) == events
    assert effective_events([]) == []


def test_a_rewind_voids_the_events_after_its_target_and_itself() -> None:
    events = [ev(1), ev(2), ev(3), ev(4), ev(5, "rewind", to=2, reason="crash"), ev(6), ev(7)]
    assert seqs(effective_events(events)) == [1, 2, 6, 7]


def test_rewinds_one_after_another_and_a_rewind_at_the_end() -> None:
    events = [ev(1), ev(2), ev(3), ev(4, "rewind", to=3, reason="r"), ev(5), ev(6), ev(7, "rewind", to=5, reason="r"),
              ev(8), ev(9, "rewind", to=2, reason="r")]  # fmt: skip
    assert seqs(effective_events(events)) == [1, 2]
    assert seqs(effective_events(events[:8])) == [1, 2, 3, 5, 8]
    assert seqs(effective_events([ev(1), ev(2, "rewind", to=1, reason="nothing to void")])) == [1]


def test_effective_events_here_are_the_states_one() -> None:
    """One rule for what a rewind voids: the reducer's, which ``maestro replay`` and ``maestro status`` use too."""
    assert effective_events is maestro.model.state.effective_events


def test_a_malformed_rewind_in_a_recorded_session_is_refused_naming_it(sample: Sample, tmp_path: Path) -> None:
    log = sample.store.events_path(SID)
    last = sample.events()[-1]
    bad = {"v": 1, "seq": last.seq + 1, "ts": last.ts, "kind": "rewind", "data": {"to": "3", "reason": "r"}}
    log.write_text(log.read_text() + json.dumps(bad) + "\n")
    with pytest.raises(MaestroError, match=f"event seq {last.seq + 1}: malformed rewind data"):
        sample.redrive(tmp_path / "again")


def test_the_copy_is_the_commit_with_its_modes_and_symlinks_and_without_flow(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "link").symlink_to("run.sh")
    (src / ".flow").mkdir()
    (src / ".flow" / "committed").write_text("by mistake\n")
    with porcelain.init(str(src)):
        pass
    porcelain.add(str(src), paths=[str(src / p) for p in ("run.sh", "link", ".flow/committed")])
    commit = porcelain.commit(str(src), message=b"base", author=b"t <t@e.x>", committer=b"t <t@e.x>")
    (src / "run.sh").write_text("changed later\n")
    _checkout(src, commit.decode(), tmp_path / "copy")
    copy = tmp_path / "copy"
    assert sorted(p.name for p in copy.iterdir()) == [".git", "link", "run.sh"]
    assert (copy / "run.sh").read_text() == "#!/bin/sh\n"
    assert (copy / "run.sh").stat().st_mode & 0o111
    assert (copy / "link").readlink() == Path("run.sh")
    with Repo(str(copy)) as r:
        assert r.head() == commit
    assert (copy / ".git" / "shallow").read_text().split() == [commit.decode()]  # the commit, not its history
    assert dirty_paths(copy) == []
    with pytest.raises(MaestroError, match=r"the session's base commit 0{40} is not in the repository"):
        _checkout(src, "0" * 40, tmp_path / "copy2")


def test_the_decision_history_is_copied_as_the_session_saw_it(tmp_path: Path) -> None:
    make_sample(tmp_path)
    store = Store(tmp_path / "calc")
    clock, ids = maestro.TickingClock(), maestro.SequentialIds()
    for _ in range(3):
        maestro.Session.create(store, "x", clock=clock, ids=ids).close()
    store.decisions_dir.mkdir(parents=True, exist_ok=True)
    entries = [{"session": s, "decision": {"choice": s}} for s in ("session-1", "session-2", "session-3", "gone")]
    (store.decisions_dir / "tech-stack.json").write_text(json.dumps(entries))
    (store.decisions_dir / "broken.json").write_text("[")
    into = Store(git_init(tmp_path / "into"))
    _copy_decision_history(store, "session-2", store.read_events("session-2")[0].ts, into)
    kept = json.loads((into.decisions_dir / "tech-stack.json").read_text())
    assert [e["session"] for e in kept] == ["session-1", "gone"]  # not itself, not a later session
    assert not (into.decisions_dir / "broken.json").exists()


def test_the_console_lines_of_a_redrive_that_stopped() -> None:
    report = RedriveReport(
        same=False, steps_compared=3, first_difference="step 3 (implementing): task ops attempt 2: gone",
        recorded_tree="a" * 40, redriven_tree="b" * 40, redriven_session="s2", workdir=Path("/tmp/x"),
        session="s1", divergence="task ops attempt 2: gone", redriven_state="implementing",
    )  # fmt: skip
    assert redrive_lines(report) == [
        "Re-drive of session s1: DIFFERENT",
        "  re-driven as session s2 in /tmp/x (implementing)",
        "  steps compared: 3",
        "  first difference: step 3 (implementing): task ops attempt 2: gone",
        f"  final tree: recorded {'a' * 40}, re-driven {'b' * 40}",
    ]


def test_the_cli_redrive_exits_0_when_same_and_1_when_different(sample: Sample) -> None:
    """``maestro replay SESSION --redrive``: the run's own config (run.json), the report lines, the exit code."""

    def cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "maestro", "replay", SID, "--redrive"], cwd=sample.repo,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    same = cli()
    assert same.returncode == 0, same.stderr
    assert same.stdout.splitlines()[0] == f"Re-drive of session {SID}: same"
    assert f"final tree: {sample.branch_tree()} in both" in same.stdout
    path = sample.change_file("docs", sample.attempts("docs")[-1])
    write_changes(path, [Change.write("README.md", b"tampered\n")])
    different = cli()
    assert different.returncode == 1, different.stderr
    assert different.stdout.splitlines()[0] == f"Re-drive of session {SID}: DIFFERENT"
    assert "  first difference: " in different.stdout
