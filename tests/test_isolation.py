"""Isolation (issue 14): the user's checkout is never written, each attempt has a worktree, merges are checked.

Real sessions (the scripted agent, real git repositories, real acceptance commands): a failing task
never re-runs a sibling; a hostile agent cannot reach the user's files; two sessions in one repository
keep to their own branches; the user may work in the checkout while a session runs; a conflicting
merge re-runs the task with the hunks; a merge that breaks an earlier task is not kept; a task starts
as soon as its dependencies are merged; the worktrees are gone when the session ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import maestro
from maestro.agents.base import AgentRequest, PlanOutcome, PlanRequest
from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import parse_config
from maestro.core.records import AgentResult
from maestro.git.places import worktrees_root
from maestro.run.runner import Runner
from tests.support.runs import REQUEST, Recorder, config_text, make_repo, prd_text, task, write


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def snapshot(repo: Path) -> dict[str, str]:
    """Every file of the user's checkout (ignored and untracked too; ``.flow/`` aside) and its git state."""
    out: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel == ".flow" or rel.startswith((".flow/", ".git/")):
            continue
        if path.is_file() and not path.is_symlink():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    git_dir = repo / ".git"
    out[".git/index"] = hashlib.sha256((git_dir / "index").read_bytes()).hexdigest()
    out[".git/HEAD"] = (git_dir / "HEAD").read_text()
    refs = git(repo, "for-each-ref", "refs/heads/", "--format=%(refname) %(objectname)").splitlines()
    out["branches"] = "\n".join(r for r in refs if not r.startswith("refs/heads/maestro/"))
    return out


def branch_file(repo: Path, sid: str, path: str) -> str | None:
    try:
        return git(repo, "show", f"maestro/{sid}:{path}")
    except subprocess.CalledProcessError:
        return None


def branch_files(repo: Path, sid: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", f"maestro/{sid}").splitlines())


class Run:
    """One in-process session over a repository made in ``root`` (or given)."""

    def __init__(self, root: Path, tasks: Sequence[Mapping[str, Any]], script: Mapping[str, Any], *,
                 config: str | None = None, repo: Path | None = None, agent: Any = None) -> None:  # fmt: skip
        self.repo = repo if repo is not None else make_repo(root)
        plan = root / f"plan-{len(list(root.glob('plan-*')))}"
        plan.mkdir()
        (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
        (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
        self.plan = plan
        self.store = maestro.Store(self.repo)
        self.config = parse_config(config or config_text(), plan / "config.yaml")
        inner = agent or ScriptedAgent.from_mapping({"version": 1, "tasks": dict(script)}, plan)
        self.agent = Recorder(inner)
        self.runner = Runner(self.store, self.config, self.agent, sleep=lambda s: None)

    def go(self) -> maestro.RunOutcome:
        self.outcome = self.runner.run(REQUEST, prd_path=self.plan / "prd.md", tasks_path=self.plan / "tasks.yaml")
        return self.outcome

    @property
    def sid(self) -> str:
        return self.outcome.session_id

    @property
    def state(self) -> maestro.SessionState:
        return maestro.rebuild(self.store.read_events(self.sid))

    def attempts(self) -> dict[str, int]:
        return {t: ts.attempts for t, ts in self.state.tasks.items()}

    def decisions(self, kind: str) -> list[maestro.Decision]:
        return [d for d in self.state.decisions if d.kind == kind]


def fail(kind: str, message: str = "it broke") -> dict[str, Any]:
    return {"fail": {"kind": kind, "message": message}}


# -- a failure is the failing task's alone ---------------------------------------------------------------------------


def test_a_failing_task_never_reruns_a_sibling_that_succeeded(tmp_path: Path) -> None:
    tasks = [task("a"), task("b"), task("c")]
    script = {
        "a": [{"actions": [write("a.txt", "a\n")]}],
        "b": [{"actions": [write("b-half.txt", "half\n")], **fail("implementation")},
              {"actions": [write("b.txt", "b\n")]}],
        "c": [{"actions": [write("c.txt", "c\n")]}],
    }  # fmt: skip
    run = Run(tmp_path, tasks, script)
    assert run.go().state == "completed"
    assert run.attempts() == {"a": 1, "b": 2, "c": 1}
    for req in run.agent.of("a") + run.agent.of("c"):
        assert req.feedback is None and req.approach is None  # nobody told them they failed
    files = branch_files(run.repo, run.sid)
    assert {"a.txt", "b.txt", "c.txt"} <= files
    assert "b-half.txt" not in files  # the failed attempt's work stays at its attempt ref, not on the branch
    half = git(run.repo, "show", f"refs/maestro/{run.sid}/attempts/b/1:b-half.txt")
    assert half == "half"
    assert [d.choice for d in run.decisions("recovery")] == ["alternative"]


def test_an_attempt_starts_from_the_head_that_holds_its_dependencies(tmp_path: Path) -> None:
    tasks = [task("a"), task("b", deps=["a"], acceptance=["test -f a.txt"])]
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    run = Run(tmp_path, tasks, script)
    assert run.go().state == "completed"
    (b,) = run.agent.of("b")
    assert not b.workdir.resolve().is_relative_to(run.repo.resolve())  # a worktree outside the checkout
    assert branch_files(run.repo, run.sid) >= {"a.txt", "b.txt"}


# -- the user's checkout is sacred -------------------------------------------------------------------------------------


def test_a_hostile_failing_agent_cannot_touch_the_users_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"src/app.py": "x = 1\n"})
    (repo / "secret.env").write_text("TOKEN=1\n")  # untracked
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\nvenv/\nlocal.env\n")  # uncommitted change
    (repo / "venv").mkdir()
    (repo / "venv" / "lib.py").write_text("ignored\n")
    (repo / "local.env").write_text("ignored too\n")
    before = snapshot(repo)
    hostile = [{"actions": [write(".gitignore", "*\n"), {"delete": {"path": "src/app.py"}},
                            {"run": "rm -rf venv local.env secret.env; echo pwned > README.md"}],
                **fail("implementation")}]  # fmt: skip
    run = Run(tmp_path, [task("a")], {"a": hostile}, repo=repo, config=config_text(alternatives=1))
    outcome = run.go()
    assert outcome.state in ("paused", "failed")
    assert snapshot(repo) == before
    # and the session's branch started from the user's tree as it was, uncommitted work included
    assert branch_file(repo, run.sid, ".gitignore") == "__pycache__/\n.pytest_cache/\nvenv/\nlocal.env".strip()
    assert branch_file(repo, run.sid, "secret.env") == "TOKEN=1"


def test_the_user_works_in_the_checkout_while_a_session_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    go = threading.Event()
    done = threading.Event()

    class Meanwhile:
        """The agent of task a waits while the user edits, commits and switches branches in the checkout."""

        name = "meanwhile"

        def __init__(self, inner: ScriptedAgent) -> None:
            self.inner = inner

        def run(self, request: AgentRequest) -> AgentResult:
            if request.task.id == "a":
                go.set()
                assert done.wait(30)
            return self.inner.run(request)

        def plan(self, request: PlanRequest) -> PlanOutcome:
            return self.inner.plan(request)

    plan_dir = tmp_path / "scripted"
    plan_dir.mkdir()
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    inner = ScriptedAgent.from_mapping({"version": 1, "tasks": script}, plan_dir)
    run = Run(tmp_path, [task("a"), task("b", deps=["a"])], {}, repo=repo, agent=Meanwhile(inner))
    result: list[maestro.RunOutcome] = []
    t = threading.Thread(target=lambda: result.append(run.go()))
    t.start()
    assert go.wait(30)
    (repo / "mine.txt").write_text("the user's\n")
    git(repo, "add", "mine.txt")
    git(repo, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "mine")
    git(repo, "checkout", "-qb", "feature")
    (repo / "README.md").write_text("edited by the user\n")
    mine = snapshot(repo)
    done.set()
    t.join(60)
    assert result and result[0].state == "completed"
    assert snapshot(repo) == mine  # nothing of the user's changed
    files = branch_files(repo, run.sid)
    assert {"a.txt", "b.txt"} <= files and "mine.txt" not in files
    assert branch_file(repo, run.sid, "README.md") == "# sample"


def test_two_sessions_at_once_keep_to_their_own_branches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    one = Run(tmp_path, [task("a"), task("b")], {"a": [{"actions": [write("one-a.txt", "1\n"), {"run": "sleep 0.3"}]}],
                                               "b": [{"actions": [write("one-b.txt", "1\n")]}]}, repo=repo)  # fmt: skip
    two = Run(tmp_path, [task("a"), task("b")], {"a": [{"actions": [write("two-a.txt", "2\n"), {"run": "sleep 0.3"}]}],
                                               "b": [{"actions": [write("two-b.txt", "2\n")]}]}, repo=repo)  # fmt: skip
    before = snapshot(repo)
    threads = [threading.Thread(target=r.go) for r in (one, two)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert one.outcome.state == two.outcome.state == "completed"
    assert one.sid != two.sid
    assert {"one-a.txt", "one-b.txt"} <= branch_files(repo, one.sid)
    assert not {"two-a.txt", "two-b.txt"} & branch_files(repo, one.sid)
    assert {"two-a.txt", "two-b.txt"} <= branch_files(repo, two.sid)
    assert not {"one-a.txt", "one-b.txt"} & branch_files(repo, two.sid)
    assert snapshot(repo) == before


# -- the merge queue ---------------------------------------------------------------------------------------------------


def test_a_conflicting_merge_reruns_the_task_with_the_hunks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"shared.txt": "one\ntwo\nthree\n"})
    # b's first attempt waits until a is merged (checkpoint 1 tagged), then edits the same line
    wait = f"for i in $(seq 400); do ls {repo}/.git/refs/tags/maestro/*/1 >/dev/null 2>&1 && exit 0; sleep 0.05; done"
    slow = {"actions": [{"run": wait}, write("shared.txt", "one\nTWO by b\nthree\n")]}
    script = {
        "a": [{"actions": [write("shared.txt", "one\nTWO by a\nthree\n")]}],
        "b": [slow, {"actions": [write("shared.txt", "one\nTWO by a\nthree\nb was here\n")]}],
    }
    run = Run(tmp_path, [task("a"), task("b")], script, repo=repo)
    assert run.go().state == "completed"
    assert run.attempts() == {"a": 1, "b": 2}
    (merge,) = run.decisions("merge")
    assert (merge.task, merge.choice) == ("b", "rerun")
    second = run.agent.of("b")[1]
    assert second.feedback is not None and "shared.txt" in second.feedback and "<<<<<<<" in second.feedback
    assert branch_file(repo, run.sid, "shared.txt") == "one\nTWO by a\nthree\nb was here"


def test_a_merge_that_breaks_an_earlier_task_is_not_kept(tmp_path: Path) -> None:
    tasks = [task("a", acceptance=["grep -q alive a.txt"]), task("b", deps=["a"])]
    script = {
        "a": [{"actions": [write("a.txt", "alive\n")]}],
        "b": [{"actions": [write("a.txt", "dead\n"), write("b.txt", "b\n")]},
              {"actions": [write("b.txt", "b\n")]}],
    }  # fmt: skip
    run = Run(tmp_path, tasks, script)
    assert run.go().state == "completed"
    assert run.attempts() == {"a": 1, "b": 2}
    labels = [c.label for c in run.state.checkpoints]
    assert labels[1:] == ["task a: A", "task b: B"]  # the broken merge is no checkpoint
    assert branch_file(run.repo, run.sid, "a.txt") == "alive"
    second = run.agent.of("b")[1]
    assert second.feedback is not None and "grep -q alive a.txt" in second.feedback


def test_every_merge_is_a_checkpoint_and_the_worktrees_go_at_the_end(tmp_path: Path) -> None:
    tasks = [task("a"), task("b"), task("c", deps=["a", "b"])]
    script = {t: [{"actions": [write(f"{t}.txt", f"{t}\n")]}] for t in "abc"}
    run = Run(tmp_path, tasks, script)
    assert run.go().state == "completed"
    cps = run.state.checkpoints
    assert [c.n for c in cps] == [0, 1, 2, 3]
    assert sorted(c.label for c in cps[1:]) == ["task a: A", "task b: B", "task c: C"]
    assert cps[-1].label == "task c: C"
    assert git(run.repo, "rev-parse", f"maestro/{run.sid}") == cps[-1].commit
    listing = git(run.repo, "worktree", "list", "--porcelain")
    assert listing.count("worktree ") == 1  # the user's checkout alone
    assert not (worktrees_root(run.repo / ".git") / run.sid).exists() or not any(
        (worktrees_root(run.repo / ".git") / run.sid).iterdir()
    )
    refs = git(run.repo, "for-each-ref", f"refs/maestro/{run.sid}/attempts/", "--format=%(refname)").splitlines()
    assert sorted(refs) == [f"refs/maestro/{run.sid}/attempts/{t}/1" for t in "abc"]
    assert os.environ.get("MAESTRO_WORKTREES")  # the tests keep worktrees out of the user's cache
