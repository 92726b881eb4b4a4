"""Recorded changes and the replay agent: snapshots and change files in real git repositories, path refusal, and
sessions recorded with the scripted agent, then re-driven into a fresh copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import maestro
from maestro.agents.base import Agent, AgentRequest, PlanRequest, validate_plan
from maestro.agents.changes import (
    Change,
    ChangeError,
    apply_changes,
    capture_changes,
    changes_path,
    read_changes,
    snapshot,
    write_changes,
    write_plan,
)
from maestro.agents.replay import Divergence, ReplayAgent
from maestro.agents.scripted import ScriptedAgent
from maestro.core.records import AgentResult
from maestro.plan.tasks import Task
from tests.support.git import git_init

PRD = (
    "---\nprd:\n  version: v1\n  feature_name: calc\n  status: draft\n"
    "priorities:\n  requirements:\n    - id: FR-1\n      text: Add two numbers\n      priority: P0\n"
    "---\n# Calc\n"
)
TASKS = "version: 1\ntasks:\n  - id: T1\n    title: Add\n    requirements: [FR-1]\n  - id: T2\n    title: Docs\n"


def request(workdir: Path, task: str, attempt: int = 1, **kw: Any) -> AgentRequest:
    return AgentRequest(Task(task, f"title of {task}"), workdir=workdir, attempt=attempt, **kw)


def seed(path: Path) -> Path:
    """A git repository with a few files, the same every time."""
    git_init(path)
    (path / "README.md").write_text("readme\n")
    (path / "old.py").write_text("old\n")
    (path / "src").mkdir()
    (path / "src" / "keep.py").write_text("keep\n")
    (path / "bin").mkdir()
    (path / "bin" / "tool").write_text("#!/bin/sh\n")
    (path / "bin" / "tool").chmod(0o755)
    return path


def seed_repo(repo: Path) -> Path:
    """Seed the ``repo`` fixture (already a git repository) like :func:`seed`."""
    shutil.rmtree(repo / ".git")
    return seed(repo)


# -- snapshots and captured changes -----------------------------------------------------------------------------


def test_capture_then_apply_reproduces_every_kind_of_change(tmp_path: Path) -> None:
    a = seed(tmp_path / "a")
    b = seed(tmp_path / "b")
    before = snapshot(a)
    assert set(before.entries) == {"README.md", "old.py", "src/keep.py", "bin/tool"}
    assert before.entries["bin/tool"].mode == 0o755
    (a / "README.md").write_text("changed\n")  # modified
    (a / "old.py").unlink()  # deleted
    (a / "new" / "deep").mkdir(parents=True)
    (a / "new" / "deep" / "x.bin").write_bytes(bytes(range(256)))  # added, binary
    (a / "bin" / "tool").chmod(0o644)  # mode only
    (a / "latest").symlink_to("src/keep.py")  # a symlink
    shutil.rmtree(a / "src")
    (a / "src").write_text("now a file\n")  # a folder became a file
    changes = capture_changes(a, before)
    assert [(c.op, c.path) for c in changes] == [
        ("delete", "old.py"),
        ("delete", "src/keep.py"),
        ("write", "README.md"),
        ("write", "bin/tool"),
        ("symlink", "latest"),
        ("write", "new/deep/x.bin"),
        ("write", "src"),
    ]
    apply_changes(b, changes)
    assert snapshot(b) == snapshot(a)
    assert os.readlink(b / "latest") == "src/keep.py"
    assert not (b / "bin" / "tool").stat().st_mode & 0o111


def test_a_file_that_becomes_a_folder_is_replayed_too(tmp_path: Path) -> None:
    a, b = seed(tmp_path / "a"), seed(tmp_path / "b")
    before = snapshot(a)
    (a / "old.py").unlink()
    (a / "old.py").mkdir()
    (a / "old.py" / "inner.py").write_text("inner\n")
    changes = capture_changes(a, before)
    assert changes == [Change.delete("old.py"), Change.write("old.py/inner.py", b"inner\n")]
    apply_changes(b, changes)
    assert snapshot(b) == snapshot(a)


def test_nothing_changed_is_no_change(tmp_path: Path) -> None:
    a = seed(tmp_path / "a")
    assert capture_changes(a, snapshot(a)) == []


def test_git_flow_and_ignored_files_are_not_recorded_but_tracked_folders_are_entered(tmp_path: Path) -> None:
    a = seed(tmp_path / "a")
    (a / ".gitignore").write_text("build/\n*.pyc\n")
    before = snapshot(a)
    (a / ".flow" / "maestro").mkdir(parents=True)
    (a / ".flow" / "maestro" / "x").write_text("x")
    (a / ".git" / "new-ref").write_text("x")
    (a / "build").mkdir()
    (a / "build" / "out.o").write_text("x")
    (a / "src" / "m.pyc").write_text("x")
    (a / "vendor" / ".git").mkdir(parents=True)  # a nested repository's own files
    (a / "vendor" / ".git" / "HEAD").write_text("x")
    (a / "src" / "m.py").write_text("m\n")
    assert capture_changes(a, before) == [Change.write("src/m.py", b"m\n")]


def test_an_ignored_file_git_tracks_is_recorded(tmp_path: Path) -> None:
    from dulwich.repo import Repo

    a = seed(tmp_path / "a")
    (a / ".gitignore").write_text("*.log\nlogs/\n")  # logs/ is entered all the same: git tracks a file in it
    (a / "tracked.log").write_text("a\n")
    (a / "logs").mkdir()
    (a / "logs" / "kept.log").write_text("a\n")
    with Repo(str(a)) as r:
        r.get_worktree().stage(["tracked.log", "logs/kept.log"])
    before = snapshot(a)
    assert {"tracked.log", "logs/kept.log"} <= set(before.entries)
    (a / "tracked.log").write_text("b\n")
    (a / "logs" / "kept.log").write_text("b\n")
    (a / "logs" / "new.log").write_text("ignored\n")
    (a / "untracked.log").write_text("ignored\n")
    assert capture_changes(a, before) == [Change.write("logs/kept.log", b"b\n"), Change.write("tracked.log", b"b\n")]


def test_a_scoped_snapshot_looks_only_at_its_paths(tmp_path: Path) -> None:
    a = seed(tmp_path / "a")
    before = snapshot(a, ["src", "README.md", "gone.txt"])
    assert set(before.entries) == {"src/keep.py", "README.md"}
    (a / "old.py").write_text("not looked at\n")
    (a / "src" / "keep.py").write_text("changed\n")
    (a / "gone.txt").write_text("new\n")
    assert capture_changes(a, before) == [
        Change.write("gone.txt", b"new\n"),
        Change.write("src/keep.py", b"changed\n"),
    ]


# -- change files -----------------------------------------------------------------------------------------------


def test_a_change_file_reads_back_as_written(tmp_path: Path) -> None:
    changes = [
        Change.delete("old.py"),
        Change.write("bin/run", b"#!/bin/sh\n\xff\x00", 0o755),
        Change.symlink("latest", "bin/run"),
    ]
    path = tmp_path / "agents" / "T1.1.x.changes.json"
    write_changes(path, changes)
    assert read_changes(path) == changes
    doc = json.loads(path.read_text())
    assert doc == {
        "version": 1,
        "changes": [
            {"op": "delete", "path": "old.py"},
            {"op": "write", "path": "bin/run", "content_b64": "IyEvYmluL3NoCv8A", "mode": 493},
            {"op": "symlink", "path": "latest", "target": "bin/run"},
        ],
    }
    write_changes(path, [])
    assert path.read_text() == '{"version": 1, "changes": []}\n'


def test_the_change_file_sits_beside_the_transcripts(tmp_path: Path) -> None:
    assert changes_path(tmp_path, "T1", 2, "claude") == tmp_path / "agents" / "T1.2.claude.changes.json"
    assert changes_path(None, "T1", 2, "claude") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("[", "not JSON: Expecting value: line 1 column 2 (char 1)", id="not-json"),
        pytest.param("[]", "a change file is an object with version and changes", id="a-list"),
        pytest.param('{"version": 2, "changes": []}', "version: expected 1, not 2", id="version"),
        pytest.param('{"version": 1, "changes": [], "x": 1}', "x: unknown field (known: version, changes)", id="extra"),
        pytest.param('{"version": 1, "changes": {}}', "changes: expected a list", id="changes-not-list"),
        pytest.param(
            '{"version": 1, "changes": [{"op": "move", "path": "a"}]}',
            "changes[0]: op: expected one of write, delete, symlink, not 'move'",
            id="op",
        ),
        pytest.param(
            '{"version": 1, "changes": [{"op": "delete", "path": "a"}, {"op": "write", "path": "b", '
            '"content_b64": "eA==", "mode": 511}]}',
            "changes[1]: mode: expected 420 (0o644) or 493 (0o755), not 511",
            id="mode",
        ),
        pytest.param(
            '{"version": 1, "changes": [{"op": "write", "path": "b", "content_b64": "e", "mode": 420}]}',
            "changes[0]: content_b64: not base64: Invalid base64-encoded string: number of data characters (1) "
            "cannot be 1 more than a multiple of 4",
            id="base64",
        ),
        pytest.param(
            '{"version": 1, "changes": [{"op": "write", "path": "b", "mode": 420}]}',
            "changes[0]: content_b64: missing",
            id="no-content",
        ),
        pytest.param(
            '{"version": 1, "changes": [{"op": "delete", "path": ""}]}',
            "changes[0]: path: expected a non-empty string, not ''",
            id="empty-path",
        ),
        pytest.param(
            '{"version": 1, "changes": [{"op": "delete", "path": "a", "target": "b"}]}',
            "changes[0]: target: unknown field for op delete (known: op, path)",
            id="extra-field",
        ),
    ],
)
def test_a_malformed_change_file_is_an_error_naming_the_file_and_change(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ChangeError) as exc:
        read_changes(path)
    assert str(exc.value) == f"{path}: {problem}"


def test_a_missing_change_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ChangeError, match=r"/nope\.json: no such file$"):
        read_changes(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(Change.write("../evil.txt", b"x"), "../evil.txt: '..' leaves the repository", id="dotdot"),
        pytest.param(
            Change.write("/tmp/evil.txt", b"x"), "/tmp/evil.txt: an absolute path leaves the repository", id="absolute"
        ),
        pytest.param(
            Change.write(".git/hooks/pre-commit", b"x", 0o755),
            ".git/hooks/pre-commit: under .git/, which belongs to git and maestro",
            id="git",
        ),
        pytest.param(
            Change.delete(".flow/maestro/config.yaml"),
            ".flow/maestro/config.yaml: under .flow/, which belongs to git and maestro",
            id="flow",
        ),
        pytest.param(Change.symlink("up", "../.."), "up: a symlink to ../.. leaves the repository", id="symlink-up"),
        pytest.param(
            Change.symlink("etc", "/etc"),
            "etc: a symlink to the absolute path /etc leaves the repository",
            id="symlink-absolute",
        ),
        pytest.param(
            Change.symlink("a/b/up", "../../../x"),
            "a/b/up: a symlink to ../../../x leaves the repository",
            id="symlink-deep",
        ),
    ],
)
def test_a_change_that_leaves_the_repository_is_refused_and_nothing_is_written(
    tmp_path: Path, change: Change, problem: str
) -> None:
    a = seed(tmp_path / "a")
    before = snapshot(a)
    with pytest.raises(ChangeError) as exc:
        apply_changes(a, [Change.write("first.txt", b"x"), Change.delete("old.py"), change])
    assert str(exc.value) == problem
    assert snapshot(a) == before
    assert not (tmp_path / "evil.txt").exists()


def test_a_change_through_a_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    a = seed(tmp_path / "a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (a / "out").symlink_to(outside)
    with pytest.raises(ChangeError, match=r"^out/x: goes through a symlink to .*/outside/x, outside the repository$"):
        apply_changes(a, [Change.write("ok.txt", b"x"), Change.write("out/x", b"evil")])
    assert list(outside.iterdir()) == []
    assert not (a / "ok.txt").exists()


def test_a_symlink_whose_target_goes_through_another_symlink_out_is_refused(tmp_path: Path) -> None:
    """``normpath`` sees x/y/s/.. as x/y; on the real filesystem s -> ../.. is the root, so it is the root's parent."""
    parent = tmp_path / "p"
    repo = parent / "repo"
    repo.mkdir(parents=True)
    (parent / "secret.txt").write_text("outside\n")
    changes = [Change.write("x/y/f", b"a"), Change.symlink("x/y/s", "../.."), Change.symlink("L", "x/y/s/..")]
    with pytest.raises(ChangeError, match=r"^L: a symlink to x/y/s/\.\. leads to .*/p, outside the repository$"):
        apply_changes(repo, changes)
    assert not (repo / "L").is_symlink()
    # the same through a symlink already in the tree: refused before anything is written
    (repo / "up").symlink_to(".")
    with pytest.raises(ChangeError, match=r"^M: a symlink to up/\.\. leads to .*/p, outside the repository$"):
        apply_changes(repo, [Change.write("first.txt", b"x"), Change.symlink("M", "up/..")])
    assert not (repo / "first.txt").exists() and not (repo / "M").is_symlink()


def test_a_symlink_a_later_change_sends_outside_is_removed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(ChangeError, match=r"^L: the symlink to d/\.\. leads to .* once the later changes are made"):
        apply_changes(repo, [Change.symlink("L", "d/.."), Change.symlink("d", ".")])
    assert not (repo / "L").is_symlink()


def test_a_symlink_made_by_an_earlier_change_is_checked_again(tmp_path: Path) -> None:
    a = seed(tmp_path / "a")
    (a / "sub").mkdir()
    apply_changes(a, [Change.symlink("s", "sub"), Change.write("s/x.txt", b"inside")])
    assert (a / "sub" / "x.txt").read_text() == "inside"


# -- recorded sessions ------------------------------------------------------------------------------------------

SCRIPT = {
    "version": 1,
    "tasks": {
        "T1": [
            {"fail": {"kind": "transient", "message": "rate limited"}, "cost_usd": 0.01},
            {"actions": [
                {"write": {"path": "src/calc.py", "content": "def add(a, b):\n    return a + b\n"}},
                {"append": {"path": "README.md", "content": "calc\n"}},
                {"delete": {"path": "old.py"}},
            ], "summary": "added calc", "cost_usd": 0.02, "tokens": {"input": 10, "output": 5}},
        ],
        "T2": [{"actions": [{"write": {"path": "docs/calc.md", "content": "# calc\n"}}], "summary": "docs"}],
    },
}  # fmt: skip


def record(
    agent: ScriptedAgent, session: maestro.Session, workdir: Path, runs: list[tuple[str, int]]
) -> list[AgentResult]:
    """Run ``agent`` for each (task, attempt) and record each result in ``session``."""
    results = []
    for task, attempt in runs:
        result = agent.run(request(workdir, task, attempt, session_dir=session.dir))
        session.record(result)
        results.append(result)
    return results


def test_a_recorded_session_replays_into_a_fresh_copy_of_the_repository(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    fresh = seed(tmp_path / "fresh")
    assert snapshot(fresh) == snapshot(repo)
    runs = [("T1", 1), ("T1", 2), ("T2", 1)]
    recorded = record(ScriptedAgent.from_mapping(SCRIPT), session, repo, runs)
    replay = ReplayAgent.from_session(store, session.id)
    assert isinstance(replay, Agent) and replay.name == "replay"
    replayed = [replay.run(request(fresh, task, attempt)) for task, attempt in runs]
    assert replayed == recorded
    assert [(r.status, r.failure_class, r.summary, r.cost_usd) for r in replayed] == [
        ("failed", "transient", "rate limited", 0.01),
        ("succeeded", None, "added calc", 0.02),
        ("succeeded", None, "docs", None),
    ]
    assert snapshot(fresh) == snapshot(repo)
    assert (fresh / "src" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert not (fresh / "old.py").exists()
    assert not (fresh / ".flow").exists()


def test_replay_can_be_read_from_a_closed_session_and_the_results_are_the_logged_ones(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    record(ScriptedAgent.from_mapping(SCRIPT), session, repo, [("T2", 1)])
    session.close()
    replay = ReplayAgent.from_session(store, session.id)
    logged = [e.payload() for e in store.read_events(session.id) if e.kind == "agent"]
    assert replay.run(request(seed(tmp_path / "fresh"), "T2")) == logged[0]
    assert replay.attempts("T2") == [1]


def test_replay_runs_no_command_it_only_re_applies_what_the_commands_changed(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    counter = tmp_path / "counter.txt"
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [
        {"run": f"echo ran >> {counter}; mkdir -p gen; echo generated > gen/out.txt; chmod +x gen/out.txt; rm old.py"},
    ]}]}})  # fmt: skip
    [recorded] = record(agent, session, repo, [("T1", 1)])
    assert recorded.status == "succeeded" and recorded.duration_s > 0
    fresh = seed(tmp_path / "fresh")
    replayed = ReplayAgent.from_session(store, session.id).run(request(fresh, "T1"))
    assert replayed == recorded  # the measured duration too: it is the recorded one
    assert counter.read_text() == "ran\n"
    assert (fresh / "gen" / "out.txt").read_text() == "generated\n"
    assert snapshot(fresh) == snapshot(repo)


def test_transcripts_and_change_files_are_copied_into_the_new_session(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    [recorded] = record(ScriptedAgent.from_mapping(SCRIPT), session, repo, [("T1", 2)])
    new_dir = tmp_path / "new-session"
    result = ReplayAgent.from_session(store, session.id).run(
        request(seed(tmp_path / "fresh"), "T1", 2, session_dir=new_dir)
    )
    assert result.transcript == recorded.transcript == "agents/T1.2.scripted.out"
    names = ("T1.2.scripted.out", "T1.2.scripted.err", "T1.2.scripted.changes.json")
    for name in names:
        assert (new_dir / "agents" / name).read_bytes() == (session.dir / "agents" / name).read_bytes()
    # the same session directory: nothing to copy
    again = ReplayAgent.from_session(store, session.id).run(
        request(seed(tmp_path / "again"), "T1", 2, session_dir=session.dir)
    )
    assert again == recorded


def test_a_replayed_session_can_itself_be_replayed(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    runs = [("T1", 1), ("T1", 2), ("T2", 1)]
    recorded = record(ScriptedAgent.from_mapping(SCRIPT), session, repo, runs)
    second = maestro.Session.create(
        store, "again", clock=maestro.TickingClock(), ids=maestro.SequentialIds(prefix="second")
    )
    try:
        record(ReplayAgent.from_session(store, session.id), second, seed(tmp_path / "second"), runs)
    finally:
        second.close()
    third = seed(tmp_path / "third")
    results = [ReplayAgent.from_session(store, second.id).run(request(third, t, a)) for t, a in runs]
    assert results == recorded
    assert snapshot(third) == snapshot(repo)


def test_parallel_replays_of_different_tasks(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    tasks = {f"T{i}": [{"actions": [{"write": {"path": f"m{i}.py", "content": f"N = {i}\n"}}]}] for i in range(8)}
    record(ScriptedAgent.from_mapping({"version": 1, "tasks": tasks}), session, repo, [(t, 1) for t in tasks])
    replay = ReplayAgent.from_session(store, session.id)
    fresh = seed(tmp_path / "fresh")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: replay.run(request(fresh, t)), tasks))
    assert [r.task for r in results] == list(tasks)
    assert snapshot(fresh) == snapshot(repo)


# -- divergence -------------------------------------------------------------------------------------------------


def test_an_attempt_the_recording_does_not_have_is_a_divergence(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    record(ScriptedAgent.from_mapping(SCRIPT), session, repo, [("T1", 1), ("T1", 2)])
    replay = ReplayAgent.from_session(store, session.id)
    fresh = seed(tmp_path / "fresh")
    before = snapshot(fresh)
    with pytest.raises(Divergence) as exc:
        replay.run(request(fresh, "T1", 3))
    assert (
        str(exc.value) == f"T1 attempt 3 is not in the recording of session {session.id} (it has attempts 1, 2 of T1)"
    )
    assert (exc.value.session_id, exc.value.task, exc.value.attempt) == (session.id, "T1", 3)
    with pytest.raises(Divergence) as exc:
        replay.run(request(fresh, "T9"))
    assert str(exc.value) == f"T9 attempt 1 is not in the recording of session {session.id} (it has no attempt of T9)"
    assert isinstance(exc.value, maestro.MaestroError)
    assert snapshot(fresh) == before


def test_a_recorded_attempt_without_its_change_file_is_a_divergence(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    record(ScriptedAgent.from_mapping(SCRIPT), session, repo, [("T2", 1)])
    path = session.dir / "agents" / "T2.1.scripted.changes.json"
    path.unlink()
    with pytest.raises(Divergence) as exc:
        ReplayAgent.from_session(store, session.id).run(request(seed(tmp_path / "fresh"), "T2"))
    assert str(exc.value) == f"T2 attempt 1 of session {session.id} has no recorded changes ({path} is missing)"


def test_a_recorded_change_file_that_leaves_the_repository_is_refused(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    seed_repo(repo)
    record(ScriptedAgent.from_mapping(SCRIPT), session, repo, [("T2", 1)])
    path = session.dir / "agents" / "T2.1.scripted.changes.json"
    write_changes(path, [Change.write("docs/calc.md", b"# calc\n"), Change.write("../../escaped.txt", b"evil")])
    fresh = seed(tmp_path / "fresh")
    before = snapshot(fresh)
    with pytest.raises(ChangeError, match=r"^\.\./\.\./escaped\.txt: '\.\.' leaves the repository$"):
        ReplayAgent.from_session(store, session.id).run(request(fresh, "T2"))
    assert snapshot(fresh) == before
    assert not (tmp_path / "escaped.txt").exists()


def test_a_session_that_does_not_exist_is_a_store_error(store: maestro.Store) -> None:
    with pytest.raises(maestro.StoreError, match="no session 'nope'"):
        ReplayAgent.from_session(store, "nope")


# -- planning ---------------------------------------------------------------------------------------------------


def scripted_planner(tmp_path: Path) -> ScriptedAgent:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "prd.md").write_text(PRD)
    (tmp_path / "plans" / "tasks.yaml").write_text(TASKS)
    return ScriptedAgent.from_mapping(
        {"version": 1, "planner": {"prd": "prd.md", "tasks": "tasks.yaml"}}, tmp_path / "plans"
    )


def test_a_recorded_plan_is_replayed_once(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    outcome = scripted_planner(tmp_path).plan(PlanRequest("add a calculator", workdir=repo, session_dir=session.dir))
    assert outcome.plan is not None
    session.record(outcome.result)
    assert write_plan(session.dir, outcome.plan) == session.dir / "plan.json"
    replay = ReplayAgent.from_session(store, session.id)
    new_dir = tmp_path / "new-session"
    again = replay.plan(PlanRequest("add a calculator", workdir=repo, session_dir=new_dir))
    assert again.result == outcome.result
    assert again.plan is not None
    assert (again.plan.prd_markdown, again.plan.tasks_yaml) == (PRD, TASKS)
    assert again.plan.graph == outcome.plan.graph
    assert again.plan.prd.requirement_ids == outcome.plan.prd.requirement_ids
    assert validate_plan((new_dir / "plan.json").read_text()).tasks_yaml == TASKS
    assert (new_dir / "agents" / "maestro.plan.1.scripted.out").is_file()
    with pytest.raises(Divergence) as exc:
        replay.plan(PlanRequest("add a calculator", workdir=repo))
    assert (
        str(exc.value) == f"planning call 2 is not in the recording of session {session.id} (it has 1 planning result)"
    )


def test_recorded_planning_failures_are_replayed_in_order(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    first = AgentResult("maestro.plan", "claude", 1, "failed", "overloaded", failure_class="transient")
    second = AgentResult("maestro.plan", "claude", 2, "failed", "needs a decision", failure_class="ambiguous")
    session.record(first)
    session.record(second)
    replay = ReplayAgent.from_session(store, session.id)
    assert replay.plan(PlanRequest("x", workdir=repo)).result == first
    outcome = replay.plan(PlanRequest("x", workdir=repo))
    assert (outcome.result, outcome.plan) == (second, None)


def test_a_recorded_successful_plan_without_plan_json_is_a_divergence(
    tmp_path: Path, repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    session.record(AgentResult("maestro.plan", "claude", 1, "succeeded", "planned"))
    with pytest.raises(Divergence) as exc:
        ReplayAgent.from_session(store, session.id).plan(PlanRequest("x", workdir=repo))
    assert str(exc.value) == (
        f"session {session.id} recorded a successful plan but has no plan.json ({session.dir / 'plan.json'})"
    )


def test_a_session_without_planning_diverges_at_the_first_plan_call(
    repo: Path, store: maestro.Store, session: maestro.Session
) -> None:
    with pytest.raises(
        Divergence, match=r"planning call 1 is not in the recording of session .* \(it has 0 planning results\)"
    ):
        ReplayAgent.from_session(store, session.id).plan(PlanRequest("x", workdir=repo))
