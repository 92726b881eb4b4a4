"""The scripted agent: script format and load errors (exact file:line), actions in real git repositories, real
subprocesses for ``run``, timeouts, path refusal, transcripts and change files, parallel calls, planning."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from maestro.agents.base import Agent, AgentError, AgentRequest, PlanRequest
from maestro.agents.changes import Change, read_changes
from maestro.agents.script import load_script, parse_script
from maestro.agents.scripted import ScriptedAgent
from maestro.core.errors import ScriptError
from maestro.plan.tasks import Task
from tests.support.git import git_init

PRD = (
    "---\nprd:\n  version: v1\n  feature_name: calc\n  status: draft\n"
    "priorities:\n  requirements:\n    - id: FR-1\n      text: Add two numbers\n      priority: P0\n"
    "---\n# Calc\n"
)
TASKS = "version: 1\ntasks:\n  - id: T1\n    title: Add\n    requirements: [FR-1]\n  - id: T2\n    title: Docs\n"

# line numbers are part of the tests: keep them where they are
DEMO = """\
version: 1
tasks:
  T1:
    - actions:
        - write:  {path: src/calc.py, content: "def add(a, b):\\n    return a + b\\n"}
        - append: {path: README.md, content: "more\\n"}
        - delete: {path: old.py}
      summary: added calc
      cost_usd: 0.02
      tokens: {input: 100, output: 20}
  T2:
    - fail: {kind: transient, message: "rate limited"}
    - actions:
        - write: {path: docs/calc.md, content: "# calc\\n"}
      summary: second try
    - fail: {kind: implementation, message: "gave up"}
"""


def request(workdir: Path, task: str, attempt: int = 1, **kw: Any) -> AgentRequest:
    return AgentRequest(Task(task, f"title of {task}"), workdir=workdir, attempt=attempt, **kw)


def agent_of(tmp_path: Path, text: str, name: str = "script.yaml") -> ScriptedAgent:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return ScriptedAgent.load(path)


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` but .git and .flow, with its text."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] in (".git", ".flow") or p.is_dir():
            continue
        out[rel.as_posix()] = "->" + os.readlink(p) if p.is_symlink() else p.read_text()
    return out


def alive(pid: int, wait_s: float = 3.0) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper counts as dead)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return False
        if state == "Z":
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


@pytest.fixture
def work(repo: Path) -> Path:
    (repo / "README.md").write_text("readme\n")
    (repo / "old.py").write_text("old\n")
    return repo


# -- doing the actions ------------------------------------------------------------------------------------------


def test_an_attempt_writes_appends_and_deletes_and_reports_the_scripted_result(tmp_path: Path, work: Path) -> None:
    agent = agent_of(tmp_path, DEMO)
    result = agent.run(request(work, "T1"))
    assert tree(work) == {"README.md": "readme\nmore\n", "src/calc.py": "def add(a, b):\n    return a + b\n"}
    assert result.task == "T1" and result.agent == "scripted" and result.attempt == 1
    assert result.status == "succeeded" and result.failure_class is None
    assert result.summary == "added calc"
    assert result.cost_usd == 0.02
    assert (result.input_tokens, result.output_tokens) == (100, 20)
    assert result.duration_s == 0.0  # no run action: nothing measured
    assert result.transcript is None  # no session_dir: nothing saved


def test_the_agent_follows_the_protocol() -> None:
    agent = ScriptedAgent.from_mapping({"version": 1})
    assert isinstance(agent, Agent)
    assert agent.name == "scripted"


def test_attempt_n_uses_item_n_and_the_last_item_repeats(tmp_path: Path, work: Path) -> None:
    agent = agent_of(tmp_path, DEMO)
    first = agent.run(request(work, "T2", 1))
    assert (first.status, first.failure_class, first.summary) == ("failed", "transient", "rate limited")
    assert not (work / "docs").exists()
    second = agent.run(request(work, "T2", 2))
    assert (second.status, second.summary) == ("succeeded", "second try")
    assert (work / "docs" / "calc.md").read_text() == "# calc\n"
    for attempt in (3, 4, 9):
        later = agent.run(request(work, "T2", attempt))
        assert (later.status, later.failure_class, later.summary) == ("failed", "implementation", "gave up")
        assert later.attempt == attempt


def test_a_task_the_script_does_not_know_fails_as_ambiguous_naming_it(tmp_path: Path, work: Path) -> None:
    agent = agent_of(tmp_path, DEMO)
    result = agent.run(request(work, "T9"))
    assert result.status == "failed" and result.failure_class == "ambiguous"
    assert result.summary == f"the script {tmp_path / 'script.yaml'} has no task T9 (its tasks: T1, T2)"
    assert tree(work) == {"README.md": "readme\n", "old.py": "old\n"}


def test_actions_happen_before_a_scripted_failure(work: Path) -> None:
    agent = ScriptedAgent.from_mapping(
        {"version": 1, "tasks": {"T1": [{"actions": [{"write": {"path": "half.py", "content": "x"}}],
                                         "fail": {"kind": "implementation", "message": "max turns"}}]}}
    )  # fmt: skip
    result = agent.run(request(work, "T1"))
    assert (result.status, result.failure_class, result.summary) == ("failed", "implementation", "max turns")
    assert (work / "half.py").read_text() == "x"


def test_a_scripted_failure_can_carry_another_status(work: Path) -> None:
    agent = ScriptedAgent.from_mapping(
        {"version": 1, "tasks": {"T1": [{"fail": {"kind": "transient", "status": "timeout"}}]}}
    )
    result = agent.run(request(work, "T1", timeout_s=7))
    assert (result.status, result.failure_class, result.summary) == (
        "timeout",
        "transient",
        "scripted transient failure",
    )
    assert result.duration_s == 7


def test_deleting_a_missing_file_fails_the_attempt_as_implementation(work: Path) -> None:
    agent = ScriptedAgent.from_mapping(
        {"version": 1, "tasks": {"T1": [{"actions": [{"delete": {"path": "nope.py"}}]}]}}
    )
    result = agent.run(request(work, "T1"))
    assert (result.status, result.failure_class, result.summary) == (
        "failed",
        "implementation",
        "delete nope.py: no such file",
    )


def test_executable_files_and_default_summaries(work: Path) -> None:
    agent = ScriptedAgent.from_mapping(
        {"version": 1, "tasks": {"T1": [{"actions": [
            {"write": {"path": "tools/gen.sh", "content": "#!/bin/sh\necho made > made.txt\n", "executable": True}},
            {"run": "tools/gen.sh"},
        ]}]}}
    )  # fmt: skip
    result = agent.run(request(work, "T1"))
    assert result.status == "succeeded", result.summary
    assert result.summary == "2 actions done"
    assert (work / "tools" / "gen.sh").stat().st_mode & 0o111
    assert (work / "made.txt").read_text() == "made\n"


# -- refusing paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "why"),
    [
        pytest.param("../outside.txt", "'..' leaves the repository", id="dotdot"),
        pytest.param("src/../../outside.txt", "'..' leaves the repository", id="inner-dotdot"),
        pytest.param("/tmp/x.txt", "an absolute path leaves the repository", id="absolute"),
        pytest.param(".git/config", "under .git/, which belongs to git and maestro", id="git"),
        pytest.param(".flow/maestro/x", "under .flow/, which belongs to git and maestro", id="flow"),
        pytest.param(".GIT/hooks/pre-commit", "under .GIT/, which belongs to git and maestro", id="git-case"),
        pytest.param("vendor/lib/.git/config", "inside a .git folder", id="nested-git"),
    ],
)
def test_a_path_outside_the_repository_is_refused_and_nothing_is_written(
    work: Path, path: str, why: str, tmp_path: Path
) -> None:
    agent = ScriptedAgent.from_mapping(
        {"version": 1, "tasks": {"T1": [{"actions": [
            {"write": {"path": "first.txt", "content": "x"}},
            {"append": {"path": "README.md", "content": "y"}},
            {"write": {"path": path, "content": "evil"}},
        ]}]}}
    )  # fmt: skip
    before = tree(work)
    result = agent.run(request(work, "T1", session_dir=tmp_path / "s"))
    assert (result.status, result.failure_class) == ("failed", "critical")
    assert result.summary == f"refused: {path}: {why}"
    assert tree(work) == before
    assert not (tmp_path / "outside.txt").exists()
    assert read_changes(tmp_path / "s" / "agents" / "T1.1.scripted.changes.json") == []


def test_a_path_through_a_symlink_out_of_the_repository_is_refused(work: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "link").symlink_to(outside)
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [
        {"write": {"path": "link/x.txt", "content": "evil"}}]}]}})  # fmt: skip
    result = agent.run(request(work, "T1"))
    assert (result.status, result.failure_class) == ("failed", "critical")
    assert (
        result.summary
        == f"refused: link/x.txt: goes through a symlink to {outside.resolve()}/x.txt, outside the repository"
    )
    assert list(outside.iterdir()) == []


def test_a_symlink_made_by_a_run_action_is_checked_again_before_the_write(work: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [
        {"run": f"ln -s {outside} sneaky"},
        {"write": {"path": "sneaky/x.txt", "content": "evil"}},
    ]}]}})  # fmt: skip
    result = agent.run(request(work, "T1"))
    assert (result.status, result.failure_class) == ("failed", "critical")
    assert "sneaky/x.txt: goes through a symlink" in result.summary
    assert list(outside.iterdir()) == []


def test_deleting_a_symlink_that_points_outside_removes_the_link_only(work: Path, tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("keep")
    (work / "link").symlink_to(target)
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [{"delete": {"path": "link"}}]}]}})
    assert agent.run(request(work, "T1")).status == "succeeded"
    assert not (work / "link").is_symlink()
    assert target.read_text() == "keep"


# -- run actions ------------------------------------------------------------------------------------------------


def test_a_failing_command_fails_the_attempt_with_its_output_tail(work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [
        {"write": {"path": "a.txt", "content": "a"}},
        {"run": "echo 'FAILED test_calc.py::test_add'; echo 'assert 3 == 4' >&2; exit 3"},
        {"write": {"path": "never.txt", "content": "b"}},
    ]}]}})  # fmt: skip
    result = agent.run(request(work, "T1"))
    assert (result.status, result.failure_class) == ("failed", "test_failure")
    assert result.summary == (
        "run \"echo 'FAILED test_calc.py::test_add'; echo 'assert 3 == 4' >&2; exit 3\" exited 3: "
        "FAILED test_calc.py::test_add assert 3 == 4"
    )
    assert (work / "a.txt").exists()
    assert not (work / "never.txt").exists()
    assert result.duration_s > 0


def test_a_long_output_is_cut_to_its_tail(work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [
        {"run": "for i in $(seq 1 2000); do echo line$i; done; exit 1"}]}]}})  # fmt: skip
    summary = agent.run(request(work, "T1")).summary
    assert summary.endswith("line1999 line2000")
    assert "line1 " not in summary
    assert len(summary) < 1100
    assert "\n" not in summary


def test_commands_run_in_the_repository_and_see_the_task_and_attempt(work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T7": [{"actions": [
        {"run": 'pwd > where.txt; echo "$MAESTRO_TASK_ID $MAESTRO_ATTEMPT" > who.txt'}]}]}})  # fmt: skip
    assert agent.run(request(work, "T7", 2)).status == "succeeded"
    assert Path((work / "where.txt").read_text().strip()).resolve() == work.resolve()
    assert (work / "who.txt").read_text() == "T7 2\n"


def test_a_command_is_killed_at_the_timeout_with_what_it_started(work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [
        {"run": "sleep 60 & echo $! > child.pid; wait"},
        {"write": {"path": "never.txt", "content": "x"}},
    ]}]}})  # fmt: skip
    started = time.monotonic()
    result = agent.run(request(work, "T1", timeout_s=1.0))
    elapsed = time.monotonic() - started
    assert (result.status, result.failure_class) == ("timeout", "transient")
    assert result.summary == "run 'sleep 60 & echo $! > child.pid; wait': killed at the timeout (1 s)"
    assert result.duration_s == 1.0
    assert elapsed < 15
    assert not (work / "never.txt").exists()
    pid = int((work / "child.pid").read_text())
    assert not alive(pid), "the command's child outlived the timeout"


def test_a_delay_as_long_as_the_timeout_ends_in_a_timeout_having_done_nothing(work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"delay_s": 30, "actions": [
        {"write": {"path": "never.txt", "content": "x"}}]}]}})  # fmt: skip
    started = time.monotonic()
    result = agent.run(request(work, "T1", timeout_s=0.2))
    assert time.monotonic() - started < 5
    assert (result.status, result.failure_class, result.duration_s) == ("timeout", "transient", 0.2)
    assert not (work / "never.txt").exists()


def test_the_duration_is_the_scripted_delay_when_nothing_runs(work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"delay_s": 0.05}]}})
    assert agent.run(request(work, "T1")).duration_s == 0.05


# -- transcripts and change files -------------------------------------------------------------------------------


def test_each_attempt_writes_its_transcript_and_change_file(tmp_path: Path, work: Path) -> None:
    agent = agent_of(tmp_path, DEMO)
    sdir = tmp_path / "session"
    result = agent.run(request(work, "T1", session_dir=sdir))
    assert result.transcript == "agents/T1.1.scripted.out"
    assert (sdir / result.transcript).read_text() == (
        "scripted: task T1, attempt 1 (item 1 of 1)\n"
        "write src/calc.py (32 bytes)\n"
        "append README.md (5 bytes)\n"
        "delete old.py\n"
        "result: succeeded\n"
        "  added calc\n"
    )
    assert (sdir / "agents" / "T1.1.scripted.err").read_text() == ""
    assert read_changes(sdir / "agents" / "T1.1.scripted.changes.json") == [
        Change.delete("old.py"),
        Change.write("README.md", b"readme\nmore\n"),
        Change.write("src/calc.py", b"def add(a, b):\n    return a + b\n"),
    ]
    failed = agent.run(request(work, "T2", 1, session_dir=sdir))
    assert failed.transcript == "agents/T2.1.scripted.out"
    assert (sdir / "agents" / "T2.1.scripted.out").read_text().endswith("result: failed (transient)\n  rate limited\n")


def test_a_run_action_records_every_change_in_the_tree_and_its_output(tmp_path: Path, work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {"T1": [{"actions": [
        {"run": "mkdir -p gen && echo one > gen/a.txt && chmod +x gen/a.txt && ln -s gen/a.txt latest && rm old.py"},
        {"run": "echo to-stderr >&2"},
    ]}]}})  # fmt: skip
    sdir = tmp_path / "session"
    assert agent.run(request(work, "T1", session_dir=sdir)).status == "succeeded"
    assert read_changes(sdir / "agents" / "T1.1.scripted.changes.json") == [
        Change.delete("old.py"),
        Change.write("gen/a.txt", b"one\n", 0o755),
        Change.symlink("latest", "gen/a.txt"),
    ]
    out = (sdir / "agents" / "T1.1.scripted.out").read_text()
    assert "run echo to-stderr >&2\n  ! to-stderr\n  exit 0\n" in out
    assert (sdir / "agents" / "T1.1.scripted.err").read_text() == "run echo to-stderr >&2\nto-stderr\n"


def test_an_unknown_task_still_leaves_a_transcript(tmp_path: Path, work: Path) -> None:
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": {}}, base_dir=tmp_path)
    result = agent.run(request(work, "T3", 2, session_dir=tmp_path / "s"))
    assert result.transcript == "agents/T3.2.scripted.out"
    assert (tmp_path / "s" / result.transcript).read_text() == (
        "scripted: task T3, attempt 2\nthe script <mapping> has no task T3 (its tasks: none)\n"
    )


def test_the_same_script_gives_the_same_results_and_files_every_time(tmp_path: Path) -> None:
    outputs = []
    for n in range(2):
        work = git_init(tmp_path / f"repo{n}")
        (work / "README.md").write_text("readme\n")
        (work / "old.py").write_text("old\n")
        agent = agent_of(tmp_path, DEMO)
        sdir = tmp_path / f"session{n}"
        results = [agent.run(request(work, t, a, session_dir=sdir)) for t, a in (("T1", 1), ("T2", 1), ("T2", 2))]
        files = {p.name: p.read_bytes() for p in sorted((sdir / "agents").iterdir())}
        outputs.append((results, files, tree(work)))
    assert outputs[0] == outputs[1]
    assert len(outputs[0][1]) == 9


# -- parallel calls ---------------------------------------------------------------------------------------------


def test_parallel_attempts_on_different_tasks_are_independent(tmp_path: Path, work: Path) -> None:
    tasks = {
        f"T{i}": [{"delay_s": 0.4, "actions": [
            {"write": {"path": f"src/m{i}.py", "content": f"N = {i}\n"}},
            {"append": {"path": f"notes/{i}.txt", "content": "a\n"}},
        ], "summary": f"did {i}", "cost_usd": i / 100}]
        for i in range(8)
    }  # fmt: skip
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": tasks})
    sdir = tmp_path / "session"
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: agent.run(request(work, t, session_dir=sdir)), tasks))
    elapsed = time.monotonic() - started
    assert elapsed < 8 * 0.4 * 0.6, f"the attempts did not overlap ({elapsed:.2f} s)"
    assert [(r.task, r.status, r.summary, r.cost_usd) for r in results] == [
        (f"T{i}", "succeeded", f"did {i}", i / 100) for i in range(8)
    ]
    for i in range(8):
        assert (work / "src" / f"m{i}.py").read_text() == f"N = {i}\n"
        # no run action: each change file holds its own task's files, not its neighbours'
        assert read_changes(sdir / "agents" / f"T{i}.1.scripted.changes.json") == [
            Change.write(f"notes/{i}.txt", b"a\n"),
            Change.write(f"src/m{i}.py", f"N = {i}\n".encode()),
        ]


def test_parallel_run_actions_each_see_their_own_task(work: Path) -> None:
    tasks = {f"T{i}": [{"actions": [{"run": 'sleep 0.3; echo "$MAESTRO_TASK_ID" > "out-$MAESTRO_TASK_ID.txt"'}]}]
             for i in range(6)}  # fmt: skip
    agent = ScriptedAgent.from_mapping({"version": 1, "tasks": tasks})
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda t: agent.run(request(work, t)), tasks))
    assert time.monotonic() - started < 6 * 0.3 * 0.75
    assert all(r.status == "succeeded" for r in results), [r.summary for r in results]
    assert all((work / f"out-T{i}.txt").read_text() == f"T{i}\n" for i in range(6))


# -- load errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "version: 1\ntasks: {T1: [\n",
            "script.yaml:3: YAML syntax: expected the node content, but found '<stream end>'",
            id="yaml-syntax",
        ),
        pytest.param("- a\n", "script.yaml: a script is a mapping with 'version: 1' and 'tasks:'", id="not-a-mapping"),
        pytest.param("", "script.yaml:1: a script is a mapping with 'version: 1' and 'tasks:'", id="empty"),
        pytest.param("tasks: {}\n", "script.yaml:1: version: missing 'version: 1'", id="no-version"),
        pytest.param(
            "version: 2\n", "script.yaml:1: version: unknown version 2 (this maestro reads version 1)", id="version-2"
        ),
        pytest.param(
            "version: 1\ntaks: {}\n", "script.yaml:2: taks: unknown field (did you mean 'tasks'?)", id="unknown-top"
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1: []\n",
            "script.yaml:3: tasks.T1: expected a list of attempts, not a list",
            id="no-attempts",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T 1:\n    - {}\n",
            "script.yaml:3: tasks.T 1: a task id matches [A-Za-z0-9._-]+, not 'T 1'",
            id="bad-id",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - {}\n    - fail: {kind: oops}\n",
            "script.yaml:5: tasks.T1[1].fail.kind: unknown failure class 'oops' (one of transient, "
            "implementation, test_failure, critical, ambiguous)",
            id="fail-kind",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - fail:\n        message: no kind\n",
            "script.yaml:4: tasks.T1[0].fail.kind: missing (one of transient, implementation, test_failure, "
            "critical, ambiguous)",
            id="fail-no-kind",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - fail: {kind: transient, status: succeeded}\n",
            "script.yaml:4: tasks.T1[0].fail.status: unknown status 'succeeded' (one of failed, timeout, cancelled)",
            id="fail-status",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - summary: ok\n      cost_usd: -1\n",
            "script.yaml:5: tasks.T1[0].cost_usd: expected a number >= 0, not -1",
            id="cost",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - tokens:\n        input: 1.5\n",
            "script.yaml:5: tasks.T1[0].tokens.input: expected an integer >= 0, not 1.5",
            id="tokens",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - summery: ok\n",
            "script.yaml:4: tasks.T1[0].summery: unknown field (did you mean 'summary'?)",
            id="typo",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - actions:\n        - write: {path: a}\n",
            "script.yaml:5: tasks.T1[0].actions[0].write.content: missing",
            id="write-no-content",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - actions:\n        - run: ls\n        - move: {path: a}\n",
            "script.yaml:6: tasks.T1[0].actions[1]: an action is one of write, append, delete, run: a "
            "mapping with one of these keys",
            id="unknown-action",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - actions:\n        - run: ''\n",
            "script.yaml:5: tasks.T1[0].actions[0].run: expected a non-empty string, not ''",
            id="empty-run",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - actions:\n        - delete: {path: a, content: b}\n",
            "script.yaml:5: tasks.T1[0].actions[0].delete.content: unknown field (known: path)",
            id="delete-content",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - actions:\n        - write:\n            path: a\n"
            "            content: b\n            executable: yes please\n",
            "script.yaml:8: tasks.T1[0].actions[0].write.executable: expected true or false, not 'yes please'",
            id="executable",
        ),
        pytest.param(
            "version: 1\ntasks:\n  T1:\n    - {summary: a, summary: b}\n",
            'script.yaml:4: YAML syntax: found duplicate key "summary" with value "b" (original value: "a")',
            id="duplicate-key",
        ),
        pytest.param(
            "version: 1\nplanner:\n  prd: missing.md\n  tasks: tasks.yaml\n",
            "script.yaml:3: planner.prd: no such file: {dir}/missing.md",
            id="planner-missing-file",
        ),
        pytest.param(
            "version: 1\nplanner:\n  summary: x\n",
            "script.yaml:2: planner.prd: missing (or give planner.fail)",
            id="planner-no-prd",
        ),
    ],
)
def test_a_malformed_script_is_an_error_naming_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "tasks.yaml").write_text(TASKS)
    path = tmp_path / "script.yaml"
    path.write_text(text)
    with pytest.raises(ScriptError) as exc:
        load_script(path)
    expected = f"{tmp_path}/" + message.replace("{dir}", str(tmp_path))
    assert str(exc.value) == expected
    assert "\n" not in str(exc.value)
    assert isinstance(exc.value, AgentError)


def test_a_script_error_carries_its_parts(tmp_path: Path) -> None:
    with pytest.raises(ScriptError) as exc:
        parse_script("version: 1\ntasks:\n  T1:\n    - fail: {kind: oops}\n", "demo.yaml")
    assert (exc.value.path, exc.value.line, exc.value.field) == ("demo.yaml", 4, "tasks.T1[0].fail.kind")
    assert exc.value.problem.startswith("unknown failure class 'oops'")


def test_a_missing_script_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"^.*/nope\.yaml: no such file$"):
        ScriptedAgent.load(tmp_path / "nope.yaml")
    with pytest.raises(ScriptError, match=r": is a directory, not a script$"):
        ScriptedAgent.load(tmp_path)


def test_errors_in_plain_data_name_the_field_without_a_line() -> None:
    with pytest.raises(ScriptError) as exc:
        ScriptedAgent.from_mapping(
            {"version": 1, "tasks": {"T1": [{"actions": [{"write": {"path": 3, "content": ""}}]}]}}
        )
    assert str(exc.value) == "<mapping>: tasks.T1[0].actions[0].write.path: expected a non-empty string, not 3"


def test_an_empty_attempt_and_a_string_with_a_literal_block_load(tmp_path: Path, work: Path) -> None:
    text = (
        "version: 1\ntasks:\n  T1:\n    -\n    - actions:\n        - write:\n"
        "            path: a.py\n            content: |\n              x = 1\n              y = 2\n"
    )
    agent = agent_of(tmp_path, text)
    assert agent.run(request(work, "T1")).summary == "0 actions done"
    assert agent.run(request(work, "T1", 2)).status == "succeeded"
    assert (work / "a.py").read_text() == "x = 1\ny = 2\n"


# -- planning ---------------------------------------------------------------------------------------------------


def planner_agent(tmp_path: Path, tasks: str = TASKS, extra: str = "") -> ScriptedAgent:
    (tmp_path / "plans").mkdir(exist_ok=True)
    (tmp_path / "plans" / "prd.md").write_text(PRD)
    (tmp_path / "plans" / "tasks.yaml").write_text(tasks)
    return agent_of(tmp_path, f"version: 1\nplanner:\n  prd: plans/prd.md\n  tasks: plans/tasks.yaml\n{extra}")


def test_planning_answers_with_the_scripts_prd_and_tasks(tmp_path: Path, work: Path) -> None:
    agent = planner_agent(tmp_path, extra="  cost_usd: 0.5\n")
    outcome = agent.plan(PlanRequest("add a calculator", workdir=work, session_dir=tmp_path / "s"))
    assert outcome.plan is not None
    assert outcome.plan.prd_markdown == PRD and outcome.plan.tasks_yaml == TASKS
    assert outcome.plan.graph.ids == ("T1", "T2")
    assert outcome.plan.prd.requirement_ids == frozenset({"FR-1"})
    r = outcome.result
    assert (r.task, r.agent, r.attempt, r.status, r.summary, r.cost_usd) == (
        "maestro.plan", "scripted", 1, "succeeded", "planned 2 tasks", 0.5)  # fmt: skip
    assert r.transcript == "agents/maestro.plan.1.scripted.out"
    assert (
        (tmp_path / "s" / r.transcript)
        .read_text()
        .startswith("scripted: planning for add a calculator\nanswer: prd prd.md, tasks tasks.yaml\n")
    )


def test_planning_without_a_planner_section_fails_as_ambiguous(tmp_path: Path, work: Path) -> None:
    agent = agent_of(tmp_path, DEMO)
    outcome = agent.plan(PlanRequest("x", workdir=work))
    assert outcome.plan is None
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "ambiguous")
    assert outcome.result.summary == f"the script {tmp_path / 'script.yaml'} has no planner section"


def test_a_plan_that_does_not_validate_fails_as_implementation(tmp_path: Path, work: Path) -> None:
    agent = planner_agent(tmp_path, tasks="version: 1\ntasks:\n  - id: T1\n    title: A\n    requirements: [FR-9]\n")
    outcome = agent.plan(PlanRequest("x", workdir=work))
    assert outcome.plan is None
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "implementation")
    assert outcome.result.summary == (
        f"{tmp_path / 'script.yaml'} planner: tasks_yaml:5: task T1: requirements: requirement 'FR-9' is not in the PRD"
    )


def test_a_planner_can_fail_as_scripted(tmp_path: Path, work: Path) -> None:
    agent = agent_of(tmp_path, "version: 1\nplanner:\n  fail: {kind: critical, message: not logged in}\n")
    outcome = agent.plan(PlanRequest("x", workdir=work))
    assert outcome.plan is None
    assert (outcome.result.status, outcome.result.failure_class, outcome.result.summary) == (
        "failed", "critical", "not logged in")  # fmt: skip


def test_a_planner_file_removed_after_loading_fails_the_planning(tmp_path: Path, work: Path) -> None:
    agent = planner_agent(tmp_path)
    (tmp_path / "plans" / "prd.md").unlink()
    outcome = agent.plan(PlanRequest("x", workdir=work))
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "critical")
    assert outcome.result.summary == f"{tmp_path}/plans/prd.md: no such file"
