"""The recording agent: the scripted agent wrapped, in real git repositories, its change files read back and replayed.

The scripted agent writes change files of its own; :class:`Silent` removes them after each attempt, so that
every change file these tests read was written by :class:`~maestro.agents.recording.RecordingAgent`.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from maestro.agents.base import PLAN_TASK, Agent, AgentRequest, PlanOutcome, PlanRequest, validate_plan
from maestro.agents.changes import Change, apply_changes, changes_path, read_changes, snapshot
from maestro.agents.recording import RecordingAgent
from maestro.agents.scripted import ScriptedAgent
from maestro.core.records import AgentResult
from maestro.plan.tasks import Task
from tests.support.git import git_init

PRD = (
    "---\nprd:\n  version: v1\n  feature_name: calc\n  status: draft\n"
    "priorities:\n  requirements:\n    - id: FR-1\n      text: Add two numbers\n      priority: P0\n"
    "---\n# Calc\n"
)
TASKS = "version: 1\ntasks:\n  - id: T1\n    title: Add\n    requirements: [FR-1]\n"


def seed(path: Path) -> Path:
    """A git repository with a few files, the same every time."""
    git_init(path)
    (path / "README.md").write_text("readme\n")
    (path / "old.py").write_text("old\n")
    (path / "src").mkdir()
    (path / "src" / "keep.py").write_text("keep\n")
    (path / ".gitignore").write_text("*.pyc\n")
    return path


def write(path: str, content: str) -> dict[str, Any]:
    return {"write": {"path": path, "content": content}}


def attempt(*actions: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"actions": list(actions), **more}


def script(**tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": 1, "tasks": tasks}


def request(workdir: Path, task: str, attempt: int = 1, *, files: tuple[str, ...] = (), **kw: Any) -> AgentRequest:
    return AgentRequest(Task(task, f"title of {task}", files=files), workdir=workdir, attempt=attempt, **kw)


def recorded(session_dir: Path, task: str, attempt: int = 1) -> list[Change]:
    path = changes_path(session_dir, task, attempt, "scripted")
    assert path is not None
    return read_changes(path)


class Silent:
    """The scripted agent without its own change files (it writes them; this undoes that after each call).

    ``before`` / ``after`` run in the agent's thread just before and after the scripted attempt (tests use
    them to make calls overlap in a known way).
    """

    name = "scripted"

    def __init__(
        self,
        data: dict[str, Any],
        *,
        before: Callable[[AgentRequest], object] | None = None,
        after: Callable[[AgentRequest], object] | None = None,
    ) -> None:
        self.inner = ScriptedAgent.from_mapping(data)
        self.before = before
        self.after = after

    def run(self, request: AgentRequest) -> AgentResult:
        if self.before is not None:
            self.before(request)
        own = changes_path(request.session_dir, request.task.id, request.attempt, self.name)
        was = own.read_bytes() if own is not None and own.exists() else None
        result = self.inner.run(request)
        if own is not None:  # as it was before the scripted agent wrote its own
            if was is None:
                own.unlink()
            else:
                own.write_bytes(was)
        if self.after is not None:
            self.after(request)
        return result

    def plan(self, request: PlanRequest) -> PlanOutcome:
        return self.inner.plan(request)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return seed(tmp_path / "work")


@pytest.fixture
def sdir(tmp_path: Path) -> Path:
    path = tmp_path / "session"
    path.mkdir()
    return path


# -- one attempt --------------------------------------------------------------------------------------------------


def test_a_write_a_delete_and_a_symlink_are_recorded_under_the_inner_agents_name(work: Path, sdir: Path) -> None:
    inner = Silent(script(T1=[attempt(
        write("src/calc.py", "def add(a, b):\n    return a + b\n"),
        {"delete": {"path": "old.py"}},
        {"run": "ln -s src/calc.py latest && chmod +x src/calc.py"},
        summary="calc",
    )]))  # fmt: skip
    agent = RecordingAgent(inner)
    assert isinstance(agent, Agent)
    assert agent.name == "scripted"
    result = agent.run(request(work, "T1", session_dir=sdir))
    assert (result.status, result.summary, result.agent) == ("succeeded", "calc", "scripted")
    assert recorded(sdir, "T1") == [
        Change.delete("old.py"),
        Change.symlink("latest", "src/calc.py"),
        Change.write("src/calc.py", b"def add(a, b):\n    return a + b\n", 0o755),
    ]
    assert (sdir / "agents" / "T1.1.scripted.out").is_file()  # the inner agent's transcript is untouched


def test_the_scripted_agents_own_change_file_is_replaced_by_the_recorded_one(work: Path, sdir: Path) -> None:
    """The whole tree is looked at: the scripted agent's own file holds only the paths of its edit actions."""

    def stray(request: AgentRequest) -> None:  # another writer, in the attempt's time, outside its actions
        (request.workdir / "stray.txt").write_text("stray\n")

    class Scripted(ScriptedAgent):
        def run(self, request: AgentRequest) -> AgentResult:
            stray(request)
            return super().run(request)

    data = script(T1=[attempt(write("a.txt", "a\n"))])
    Scripted.from_mapping(data).run(request(seed(work.parent / "alone"), "T1", session_dir=work.parent / "alone-s"))
    assert recorded(work.parent / "alone-s", "T1") == [Change.write("a.txt", b"a\n")]  # the scripted agent's own
    RecordingAgent(Scripted.from_mapping(data)).run(request(work, "T1", session_dir=sdir))
    assert recorded(sdir, "T1") == [Change.write("a.txt", b"a\n"), Change.write("stray.txt", b"stray\n")]


def test_a_failed_attempt_and_an_attempt_that_changed_nothing_have_change_files_too(work: Path, sdir: Path) -> None:
    agent = RecordingAgent(Silent(script(T1=[
        attempt(write("half.txt", "half\n"), fail={"kind": "implementation", "message": "gave up"}),
        attempt(),
    ])))  # fmt: skip
    assert agent.run(request(work, "T1", 1, session_dir=sdir)).failure_class == "implementation"
    assert agent.run(request(work, "T1", 2, session_dir=sdir)).status == "succeeded"
    assert recorded(sdir, "T1", 1) == [Change.write("half.txt", b"half\n")]
    assert recorded(sdir, "T1", 2) == []


def test_ignored_files_and_maestros_own_folder_are_not_recorded(work: Path, sdir: Path) -> None:
    agent = RecordingAgent(Silent(script(T1=[attempt(
        write("src/m.pyc", "bytecode"), write("src/m.py", "m\n"), {"run": "mkdir -p .flow/x && touch .flow/x/y"},
    )])))  # fmt: skip
    agent.run(request(work, "T1", session_dir=sdir))
    assert recorded(sdir, "T1") == [Change.write("src/m.py", b"m\n")]


def test_without_a_session_folder_nothing_is_written(work: Path, tmp_path: Path) -> None:
    agent = RecordingAgent(Silent(script(T1=[attempt(write("a.txt", "a\n"))])))
    before = {p for p in tmp_path.rglob("*") if ".git" not in p.parts}
    assert agent.run(request(work, "T1")).status == "succeeded"
    assert {p for p in tmp_path.rglob("*") if ".git" not in p.parts} == before | {work / "a.txt"}


def test_replaying_the_change_file_in_a_fresh_copy_reproduces_the_tree(work: Path, sdir: Path, tmp_path: Path) -> None:
    fresh = seed(tmp_path / "fresh")
    agent = RecordingAgent(Silent(script(T1=[attempt(
        write("src/keep.py", "kept, changed\n"),
        write("new/deep/x.txt", "x\n"),
        {"delete": {"path": "README.md"}},
        {"run": "ln -s ../src/keep.py new/link && printf '\\377\\000' > bin.dat && chmod +x bin.dat"},
    )])))  # fmt: skip
    agent.run(request(work, "T1", session_dir=sdir))
    assert snapshot(fresh) != snapshot(work)
    apply_changes(fresh, recorded(sdir, "T1"))
    assert snapshot(fresh) == snapshot(work)
    assert os.readlink(fresh / "new" / "link") == "../src/keep.py"
    assert (fresh / "bin.dat").read_bytes() == b"\xff\x00"


# -- planning -----------------------------------------------------------------------------------------------------


def planner_script(tmp_path: Path, **planner: Any) -> dict[str, Any]:
    (tmp_path / "prd.md").write_text(PRD)
    (tmp_path / "tasks.yaml").write_text(TASKS)
    return {"version": 1, "planner": {"prd": "prd.md", "tasks": "tasks.yaml", **planner}, "tasks": {}}


def test_a_plan_is_saved_as_plan_json_and_nothing_else_when_planning_changed_nothing(
    work: Path, sdir: Path, tmp_path: Path
) -> None:
    agent = RecordingAgent(ScriptedAgent.from_mapping(planner_script(tmp_path), tmp_path))
    outcome = agent.plan(PlanRequest("add a calculator", work, session_dir=sdir))
    assert outcome.plan is not None
    saved = validate_plan((sdir / "plan.json").read_text())
    assert (saved.prd_markdown, saved.tasks_yaml) == (PRD, TASKS)
    assert not changes_path(sdir, PLAN_TASK, 1, "scripted").exists()  # type: ignore[union-attr]


def test_a_failed_plan_saves_no_plan_and_planning_changes_are_recorded(work: Path, sdir: Path, tmp_path: Path) -> None:
    class Planner(ScriptedAgent):
        def plan(self, request: PlanRequest) -> PlanOutcome:
            (request.workdir / "notes.md").write_text("thinking\n")
            return super().plan(request)

    data = planner_script(tmp_path, fail={"kind": "transient", "message": "overloaded"})
    outcome = RecordingAgent(Planner.from_mapping(data, tmp_path)).plan(PlanRequest("x", work, session_dir=sdir))
    assert outcome.plan is None and outcome.result.failure_class == "transient"
    assert not (sdir / "plan.json").exists()
    path = changes_path(sdir, PLAN_TASK, 1, "scripted")
    assert path is not None
    assert read_changes(path) == [Change.write("notes.md", b"thinking\n")]


# -- never a crash ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["snapshot", "capture_changes", "write_changes"])
def test_recording_that_fails_is_a_warning_and_no_change_file(
    work: Path, sdir: Path, where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import maestro.agents.recording as recording

    def broken(*_args: Any, **_kw: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    path = changes_path(sdir, "T1", 1, "scripted")
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "changes": []}\n')  # left by a voided (rewound) attempt with this number
    monkeypatch.setattr(recording, where, broken)
    agent = RecordingAgent(Silent(script(T1=[attempt(write("a.txt", "a\n"), summary="done")])))
    with caplog.at_level(logging.WARNING, logger="maestro"):
        result = agent.run(request(work, "T1", session_dir=sdir))
    assert (result.status, result.summary) == ("succeeded", "done")
    assert (work / "a.txt").read_text() == "a\n"
    assert not path.exists()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("T1 attempt 1: cannot ")
    assert "Permission denied" in warning.getMessage()


def test_an_agent_that_raises_still_raises_and_leaves_no_stale_change_file(work: Path, sdir: Path) -> None:
    def boom(_request: AgentRequest) -> None:
        raise RuntimeError("the adapter broke")

    path = changes_path(sdir, "T1", 1, "scripted")
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "changes": []}\n')
    agent = RecordingAgent(Silent(script(T1=[attempt()]), before=boom))
    with pytest.raises(RuntimeError, match="the adapter broke"):
        agent.run(request(work, "T1", session_dir=sdir))
    assert not path.exists()


# -- attempts at the same time ------------------------------------------------------------------------------------


def wait_for(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def overlapping(first_to_finish: str, sdir: Path) -> Callable[[AgentRequest], None]:
    """``after`` for two calls, A and B: both wait until both have edited, then one finishes (is recorded) first."""
    both_edited = threading.Barrier(2, timeout=10)
    last = "B" if first_to_finish == "A" else "A"

    def after(request: AgentRequest) -> None:
        both_edited.wait()
        if request.task.id == last:
            path = changes_path(sdir, first_to_finish, 1, "scripted")
            assert path is not None
            wait_for(path)

    return after


SIBLINGS = script(
    A=[attempt(write("a.txt", "a\n"))],
    B=[attempt(write("b.txt", "b\n"), write("src/keep.py", "B was here too\n"))],  # keep.py: outside B's files
)


@pytest.mark.parametrize("first", ["A", "B"])
def test_a_siblings_declared_files_and_recorded_work_are_not_recorded_with_an_attempt(
    work: Path, sdir: Path, tmp_path: Path, first: str
) -> None:
    """A and B edit at the same time; ``first`` is recorded first, while the other still runs.  B's file is left out
    of A's record (B's declared file while B runs, B's record once it has finished), and A's out of B's.  B's write
    outside its files could be either's: the first to finish records it, the other leaves it out."""
    started = threading.Barrier(2, timeout=10)
    agent = RecordingAgent(Silent(SIBLINGS, before=lambda _r: started.wait(), after=overlapping(first, sdir)))
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(agent.run, request(work, "A", files=("a.txt",), session_dir=sdir)),
            pool.submit(agent.run, request(work, "B", files=("b.txt",), session_dir=sdir)),
        ]
        assert [f.result().status for f in futures] == ["succeeded", "succeeded"]
    a, b = recorded(sdir, "A"), recorded(sdir, "B")
    stray = Change.write("src/keep.py", b"B was here too\n")
    if first == "B":
        assert a == [Change.write("a.txt", b"a\n")]
        assert b == [Change.write("b.txt", b"b\n"), stray]
    else:
        assert a == [Change.write("a.txt", b"a\n"), stray]
        assert b == [Change.write("b.txt", b"b\n")]
    for order in (a + b, b + a):  # the two replayed, in either order, give the tree
        fresh = seed(tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}")
        apply_changes(fresh, order)
        assert snapshot(fresh) == snapshot(work)


def test_what_siblings_without_files_did_at_the_same_time_is_recorded_by_the_first_to_finish(
    work: Path, sdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Barrier(2, timeout=10)
    agent = RecordingAgent(Silent(SIBLINGS, before=lambda _r: started.wait(), after=overlapping("A", sdir)))
    with caplog.at_level(logging.DEBUG, logger="maestro"), ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(agent.run, request(work, t, session_dir=sdir)) for t in ("A", "B")]
        for f in futures:
            f.result()
    assert recorded(sdir, "A") == [
        Change.write("a.txt", b"a\n"), Change.write("b.txt", b"b\n"), Change.write("src/keep.py", b"B was here too\n"),
    ]  # fmt: skip
    assert recorded(sdir, "B") == []
    mine = [r for r in caplog.records if r.name == "maestro"]
    assert [r.getMessage() for r in mine if r.levelno >= logging.INFO] == []  # no noise on the console
    assert [r.getMessage() for r in mine] == [
        "A attempt 1: a.txt, b.txt, src/keep.py may be the work of B attempt 1 (recorded here)",
        "B attempt 1: write a.txt is A attempt 1's",
        "B attempt 1: write b.txt is A attempt 1's",
        "B attempt 1: write src/keep.py is A attempt 1's",
    ]
    fresh = seed(tmp_path / "fresh")
    apply_changes(fresh, recorded(sdir, "A"))
    assert snapshot(fresh) == snapshot(work)


def test_many_attempts_at_once_each_record_their_own_files(work: Path, sdir: Path, tmp_path: Path) -> None:
    n = 8
    tasks = {f"T{i}": [attempt(write(f"out/{i}.txt", f"{i}\n" * 1000), {"delete": {"path": "old.py"}} if i == 0
                               else {"run": "true"})] for i in range(n)}  # fmt: skip
    started = threading.Barrier(n, timeout=10)
    agent = RecordingAgent(Silent(script(**tasks), before=lambda _r: started.wait()))
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(agent.run, [
            request(work, f"T{i}", files=(f"out/{i}.txt", "old.py") if i == 0 else (f"out/{i}.txt",), session_dir=sdir)
            for i in range(n)
        ]))  # fmt: skip
    assert [r.status for r in results] == ["succeeded"] * n
    for i in range(n):
        expected = [Change.write(f"out/{i}.txt", f"{i}\n".encode() * 1000)]
        assert recorded(sdir, f"T{i}") == ([Change.delete("old.py"), *expected] if i == 0 else expected)
    assert agent._calls == {}  # every call left its bookkeeping
    fresh = seed(tmp_path / "fresh")
    apply_changes(fresh, [c for i in range(n) for c in recorded(sdir, f"T{i}")])
    assert snapshot(fresh) == snapshot(work)


def test_the_recorded_session_folder_can_be_copied_elsewhere(work: Path, sdir: Path, tmp_path: Path) -> None:
    """Change files hold relative paths only: a copied session replays the same."""
    agent = RecordingAgent(Silent(script(T1=[attempt(write("src/x.py", "x\n"))])))
    agent.run(request(work, "T1", session_dir=sdir))
    moved = shutil.copytree(sdir, tmp_path / "moved")
    fresh = seed(tmp_path / "fresh")
    apply_changes(fresh, recorded(moved, "T1"))
    assert (fresh / "src" / "x.py").read_text() == "x\n"


def test_a_stat_snapshot_reads_no_file_its_stat_data_vouch_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """by_stat: files last written before the snapshot are not read, then or at capture; a changed one is."""
    import maestro.agents.changes as changes

    work = tmp_path / "w"
    work.mkdir()
    for i in range(20):
        (work / f"f{i}.txt").write_text(f"{i}\n")
        old = time.time() - 60
        os.utime(work / f"f{i}.txt", (old, old))
    reads: list[str] = []
    real = changes._read

    def counted(path: str) -> bytes | None:
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(changes, "_read", counted)
    before = changes.snapshot(work, by_stat=True)
    assert reads == []
    (work / "f3.txt").write_text("three\n")
    assert changes.capture_changes(work, before) == [Change.write("f3.txt", b"three\n")]
    assert reads == ["f3.txt"]


def test_a_racy_file_is_read_at_the_snapshot_and_a_same_size_same_mtime_change_is_still_seen(tmp_path: Path) -> None:
    """A file written in the snapshot's clock tick (here: dated in the future) has its content hashed."""
    from maestro.agents.changes import capture_changes, snapshot

    work = tmp_path / "w"
    work.mkdir()
    racy = work / "racy.txt"
    racy.write_text("aaaa\n")
    future = time.time() + 3600
    os.utime(racy, (future, future))
    before = snapshot(work, by_stat=True)
    assert before.entries["racy.txt"].digest  # read: its stat data cannot vouch for it
    racy.write_text("bbbb\n")  # same size
    os.utime(racy, (future, future))  # and the same mtime
    assert capture_changes(work, before) == [Change.write("racy.txt", b"bbbb\n")]
