"""The scheduler benchmark's baselines do the work they are named for (``benchmarks/scheduler.py``).

A baseline that silently did less would flatter the ratio it is compared with: ``git_dag`` must isolate, commit,
merge and tag every task as maestro does, and ``bare_dag`` must respect the dependencies.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def scheduler() -> ModuleType:
    if not (BENCHMARKS / "scheduler.py").is_file():
        pytest.skip("the benchmarks are not beside the tests (an installed package)")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_scheduler", BENCHMARKS / "scheduler.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_git_dag_isolates_commits_merges_and_tags_every_task(scheduler: ModuleType, tmp_path: Path) -> None:
    graph = scheduler.random_graph(12, seed=1)
    repo = scheduler.make_sample(tmp_path, graph)
    # each task writes its file and records which files of its dependencies it saw: a task run before its
    # dependencies were merged, or not on the merged head, would miss one
    command = "echo {task_id} > out-{task_id}.txt && ls out-*.txt | tr '\\n' ' ' > seen-{task_id}.txt"
    scheduler.git_dag(graph, command, repo)
    files = set(git(repo, "ls-tree", "--name-only", "refs/heads/session").split())
    assert {f"out-T{i}.txt" for i in range(12)} <= files
    for t in graph:
        seen = set(git(repo, "show", f"refs/heads/session:seen-{t.id}.txt").split())
        assert {f"out-{d}.txt" for d in t.depends_on} <= seen, t.id
        assert git(repo, "cat-file", "-t", f"refs/attempts/{t.id}/1") == "commit"
    tags = git(repo, "tag", "--list", "cp-*").split()
    assert len(tags) == 12 and git(repo, "cat-file", "-t", "cp-12") == "tag"  # annotated, one a merge
    assert git(repo, "rev-parse", "cp-12^{commit}") == git(repo, "rev-parse", "refs/heads/session")
    assert git(repo, "status", "--porcelain") == ""  # the checkout itself was never written to


def test_bare_dag_runs_each_task_after_its_dependencies(scheduler: ModuleType, tmp_path: Path) -> None:
    graph = scheduler.random_graph(12, seed=2)
    scheduler.bare_dag(graph, "ls > seen-{task_id}.txt; echo > out-{task_id}.txt", tmp_path)
    for t in graph:
        seen = set((tmp_path / f"seen-{t.id}.txt").read_text().split())
        assert {f"out-{d}.txt" for d in t.depends_on} <= seen, t.id
