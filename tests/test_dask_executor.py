"""Attempts on a Dask cluster (issue 18): the executor seam, a remote attempt with no shared disk, the same session.

The executors pass one conformance suite (:mod:`maestro.testing.executors`): the thread pool and a Dask
``LocalCluster`` of two worker processes (one thread each).  The cluster is made once for the module: its
workers keep their folders (``MAESTRO_WORKER_DIR``) outside every repository of the tests.

End to end, a real ``maestro run --executor dask://…`` (a subprocess) runs a session of four tasks (two at once,
one failing first with a transient error) whose agent checks that it works in a worker's folder; it must end
with the same tree as the same session run by the thread pool.  Then: a worker killed while it runs an attempt
(a transient failure of that attempt, retried elsewhere), the coordinator killed (``maestro resume`` ends with
the same tree), and once with a real ``dask scheduler`` and two ``dask worker`` processes started here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maestro.core.records import AgentResult
from maestro.model.state import rebuild
from maestro.run.executors import DaskExecutor, LocalExecutor
from maestro.testing.executors import ExecutorConformance
from tests.support.runs import Plan, config_text, make_plan, task, write

distributed = pytest.importorskip("distributed")

DASK = Path(sys.executable).with_name("dask")

TASKS = [
    task("a", files=["a.txt"], acceptance=["test -f a.txt"]),
    task("b", files=["b.txt", "src/b.py"], acceptance=["test -f b.txt", "grep -q B src/b.py"]),
    task("c", deps=["a"], files=["c.txt"], acceptance=["test -f a.txt", "test -f c.txt"]),
    task("d", deps=["b", "c"], files=["d.txt"], acceptance=["test -f d.txt"]),
]
CONFIG = config_text(workers=2, backoff=(0.1, 1.0, 0.1))


def script(check: str | None = None, *, slow: float = 0.0) -> dict[str, Any]:
    """Each task writes its files (a fails once, transiently); ``check``: a command every attempt runs first;
    ``slow``: b's first attempt sleeps that long first."""
    pre = [{"run": check}] if check else []

    def attempt(*actions: Any, **more: Any) -> dict[str, Any]:
        return {"actions": [*pre, *actions], **more}

    return {
        "a": [{"fail": {"kind": "transient", "message": "rate limited"}}, attempt(write("a.txt", "a\n"))],
        "b": [
            attempt(write("b.txt", "b\n"), write("src/b.py", "B = 1\n"), delay_s=slow),
            attempt(write("b.txt", "b\n"), write("src/b.py", "B = 1\n")),
        ],
        "c": [attempt(write("c.txt", "c\n"), {"append": {"path": "README.md", "content": "c was here\n"}})],
        "d": [attempt(write("d.txt", "d\n"))],
    }


def inside(root: Path) -> str:
    """A shell command that fails unless it runs in a folder under ``root``."""
    return f'case "$PWD/" in "{root}"/*) ;; *) echo "not in a worker folder: $PWD" >&2; exit 1;; esac'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def results(plan: Plan) -> list[AgentResult]:
    return list(rebuild(plan.events()).agent_results)


def completed(plan: Plan, out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.splitlines()[-2] == f"session {plan.sid}: completed", out.stdout[-2000:]


@pytest.fixture(scope="module")
def worker_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dask-workers")


@pytest.fixture(scope="module")
def cluster(worker_root: Path) -> Iterator[Any]:
    env = {"MAESTRO_WORKER_DIR": str(worker_root)}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1",
        env=env, silence_logs=40,
    ) as c:  # fmt: skip
        yield c


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module")
def local_tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The final tree of the session run by the thread pool (the reference)."""
    plan = make_plan(tmp_path_factory.mktemp("local"), tasks=TASKS, script=script(), config=CONFIG)
    out = plan.run()
    completed(plan, out)
    assert all(r.worker is None for r in results(plan))  # a local attempt names no worker: the log is as before
    assert "ran on (attempt" not in (plan.session_dir / "report.html").read_text(encoding="utf-8")  # nor the report
    return plan.tree()


def dask_url(address: str) -> str:
    return address.replace("tcp://", "dask://")


class TestLocalExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Iterator[LocalExecutor]:
        ex = LocalExecutor(2)
        yield ex
        ex.shutdown(cancel=True)


class TestDaskExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self, cluster: Any) -> Iterator[DaskExecutor]:
        ex = DaskExecutor(cluster.scheduler_address)
        yield ex
        ex.shutdown(cancel=True)


def test_a_local_run_never_imports_distributed(tmp_path: Path) -> None:
    """A whole session with the local executor (the default), in a fresh interpreter: neither dask nor distributed
    is loaded."""
    plan = make_plan(tmp_path, tasks=TASKS, script=script(), config=CONFIG)
    code = (
        "import sys\n"
        "from maestro.cli.main import main\n"
        f"code = main({plan.run_args()!r})\n"
        "assert code == 0, code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "assert not loaded, loaded\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=plan.repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"session {plan.sid}: completed" in out.stdout


def test_a_session_on_a_cluster_ends_with_the_local_tree(
    tmp_path: Path, cluster: Any, client: Any, worker_root: Path, local_tree: str
) -> None:
    plan = make_plan(tmp_path, tasks=TASKS, script=script(inside(worker_root)), config=CONFIG)
    out = plan.run("--executor", dask_url(cluster.scheduler_address))
    completed(plan, out)
    assert plan.tree() == local_tree
    workers = set(client.scheduler_info()["workers"])
    got = results(plan)
    assert {r.worker for r in got} <= workers and len({r.worker for r in got}) == 2, got  # both workers worked
    first = [r for r in got if r.task == "a"]
    assert [(r.status, r.failure_class) for r in first] == [("failed", "transient"), ("succeeded", None)]
    for r in got:  # each attempt's transcript came back into the session's folder
        assert r.transcript is not None and (plan.session_dir / r.transcript).is_file()
    assert "on tcp://127.0.0.1:" in out.stdout
    # the work happened in the workers' folders: their worktrees hold the session's files
    held = list(worker_root.glob("slot-*/worktrees/remote/maestro-remote-w*/d.txt"))
    assert held, sorted(worker_root.rglob("*"))[:50]
    # every attempt is kept at its ref, with the agent's work in it
    for r in got:
        ref = f"refs/maestro/{plan.sid}/attempts/{r.task}/{r.attempt}"
        listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref], cwd=plan.repo, capture_output=True,
                                text=True, check=True).stdout.split()  # fmt: skip
        assert (f"{r.task}.txt" in listed) == (r.status == "succeeded"), (ref, listed)
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=plan.repo, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    # the report shows which worker ran each attempt: the tasks table, the timeline's bars, the execution log
    page = (plan.session_dir / "report.html").read_text(encoding="utf-8")
    assert "<th>ran on (attempt: worker)</th>" in page
    for r in got:
        assert f"{r.attempt}: {r.worker}" in page and f"(scripted on {r.worker}" in page
    log = (plan.session_dir / "execution-log.md").read_text(encoding="utf-8")
    assert f"Task a: scripted attempt 2 on {first[1].worker} succeeded" in log


SHIPPED = re.compile(r"Task (\w+): attempt (\d+).* on (\S+) \(([\d,]+) bytes shipped\)")


def shipped(stdout: str) -> list[tuple[str, int, str, int]]:
    """(task, attempt, worker, bytes) of each remote attempt, from the [Maestro] lines."""
    return [(m[1], int(m[2]), m[3], int(m[4].replace(",", ""))) for m in SHIPPED.finditer(stdout)]


def test_a_warm_worker_is_shipped_only_what_changed(tmp_path: Path, cluster: Any) -> None:
    """The first attempt ships the repository's objects; the next ones on that worker, in this session or the
    next, ship the base commit and the few objects that changed."""
    tasks = [task("a", files=["a.txt"], acceptance=["test -f a.txt"]),
             task("b", deps=["a"], files=["b.txt"], acceptance=["test -f b.txt"])]  # fmt: skip
    plan = make_plan(tmp_path, tasks=tasks, script=script(), config=CONFIG)
    big = plan.repo / "big"
    big.mkdir()
    for i in range(300):
        (big / f"f{i}.txt").write_text(f"{tmp_path.name} {i}\n" * 20)
    subprocess.run("git add -A && git -c user.name=t -c user.email=t@e commit -qm big", shell=True, cwd=plan.repo,
                   check=True)  # fmt: skip
    out = plan.run("--executor", dask_url(cluster.scheduler_address))
    completed(plan, out)
    first = shipped(out.stdout)
    assert [(t, n) for t, n, _w, _b in first] == [("a", 1), ("a", 2), ("b", 1)], first
    cold, *warm = [b for _t, _n, _w, b in first]
    assert cold > 20_000, first  # 300 files
    assert all(b < 2_000 for b in warm), first  # the same worker: the commit and what a merge changed
    assert len({w for _t, _n, w, _b in first}) == 1, first  # sent where the objects are
    # another session on the same repository: its base is a tree the worker holds; nothing but the commit goes
    (plan.dir / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks[:1]}), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "maestro", *plan.run_args("--executor", dask_url(
        cluster.scheduler_address))], cwd=plan.repo, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    again = shipped(out.stdout)
    assert again and all(b < 2_000 for _t, _n, _w, b in again), again


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def events_of(repo: Path) -> list[dict[str, Any]]:
    found = list((repo / ".flow" / "maestro" / "sessions").glob("*/events.jsonl"))
    if not found:
        return []
    out = []
    for line in found[0].read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def started(repo: Path, tid: str) -> bool:
    return any(e["kind"] == "task" and e["data"].get("task") == tid and e["data"].get("trigger") == "start"
               for e in events_of(repo))  # fmt: skip


class Coordinator:
    """``maestro run`` as a subprocess whose stdout (the [Maestro] lines) is read as it comes."""

    def __init__(self, plan: Plan, *extra: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "maestro", *plan.run_args(*extra)], cwd=plan.repo,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.lines: list[str] = []
        self.errors: list[str] = []
        streams = ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors))
        self._readers = [threading.Thread(target=self._read, args=pair, daemon=True) for pair in streams]
        for r in self._readers:
            r.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def line(self, pattern: str) -> re.Match[str]:
        found: re.Match[str] = wait_for(lambda: next((m for x in list(self.lines) if (m := re.search(pattern, x))),
                                                     None), what=pattern)  # fmt: skip
        return found

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for r in self._readers:
            r.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode, "".join(self.lines), "".join(self.errors)


def test_a_worker_killed_mid_attempt_is_survived(
    tmp_path: Path, cluster: Any, client: Any, worker_root: Path, local_tree: str
) -> None:
    plan = make_plan(tmp_path, tasks=TASKS, script=script(inside(worker_root), slow=30.0), config=CONFIG)
    run = Coordinator(plan, "--executor", dask_url(cluster.scheduler_address))
    victim = run.line(r"Task b: attempt 1 on (\S+) ")[1]  # b's first attempt sleeps 30 s: killed meanwhile
    pids = client.run(os.getpid, workers=[victim])
    time.sleep(0.3)
    os.kill(pids[victim], signal.SIGKILL)
    code, stdout, stderr = run.finish()
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert plan.tree() == local_tree
    b = [r for r in results(plan) if r.task == "b"]
    assert (b[0].status, b[0].failure_class, b[0].worker) == ("failed", "transient", victim), b
    assert "lost" in b[0].summary, b[0].summary
    assert [r.status for r in b[1:]] == ["succeeded"] and b[1].worker != victim, b
    assert re.search(r"Task b: failed \(transient\): worker tcp://\S+ was lost", stdout), stdout
    # the lost attempt is kept as nothing done: its ref holds its base's tree, its change file is empty
    ref = f"refs/maestro/{plan.sid}/attempts/b/1"
    trees = subprocess.run(["git", "rev-parse", f"{ref}^{{tree}}", f"{ref}^^{{tree}}"], cwd=plan.repo,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert trees[0] == trees[1]
    assert json.loads((plan.session_dir / "agents" / "b.1.scripted.changes.json").read_text())["changes"] == []
    redrive = subprocess.run([sys.executable, "-m", "maestro", "replay", plan.sid, "--redrive"], cwd=plan.repo,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert redrive.returncode == 0, redrive.stdout[-2000:] + redrive.stderr[-2000:]


def processes_in(root: Path) -> list[int]:
    """The processes whose working folder is under ``root``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/cwd").startswith(str(root) + "/"):
                    out.append(int(entry))
    return out


def test_sigterm_stops_the_remote_attempts(tmp_path: Path, cluster: Any, worker_root: Path) -> None:
    """SIGTERM to the coordinator: the attempts running on the workers are cancelled, their processes killed."""
    tasks = [task("a", files=["a.txt"]), task("b", files=["b.txt"])]
    work = {"a": [{"actions": [{"run": "sleep 60"}]}], "b": [{"actions": [{"run": "sleep 60"}]}]}
    plan = make_plan(tmp_path, tasks=tasks, script=work, config=CONFIG)
    run = Coordinator(plan, "--executor", dask_url(cluster.scheduler_address))
    run.line(r"Task b: attempt 1 on ")
    run.line(r"Task a: attempt 1 on ")
    wait_for(lambda: len(processes_in(worker_root)) >= 2, what="both agents' commands at work on the workers")
    run.proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = run.finish(timeout=60)
    assert code == 143, stdout[-2000:] + stderr[-2000:]
    wait_for(lambda: not processes_in(worker_root), timeout=10, what="the workers' agents killed")
    assert "Stopped at once by SIGTERM in implementing" in (plan.session_dir / "execution-log.md").read_text()


def test_the_coordinator_killed_then_resumed_ends_with_the_same_tree(
    tmp_path: Path, cluster: Any, worker_root: Path, local_tree: str
) -> None:
    plan = make_plan(tmp_path, tasks=TASKS, script=script(inside(worker_root), slow=1.0), config=CONFIG)
    proc = subprocess.Popen([sys.executable, "-m", "maestro", *plan.run_args("--executor",
                            dask_url(cluster.scheduler_address))], cwd=plan.repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: started(plan.repo, "b") and started(plan.repo, "c"), what="tasks b and c at work")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    out = plan.resume()
    completed(plan, out)
    assert plan.tree() == local_tree
    assert {r.worker for r in results(plan)} - {None}, "the resumed run used the cluster too"
    assert "on tcp://" in out.stdout


def test_a_real_dask_scheduler_and_two_workers(tmp_path: Path, local_tree: str) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]  # fmt: skip
    folders = [tmp_path / "machines" / "one", tmp_path / "machines" / "two"]
    try:
        for folder in folders:
            folder.mkdir(parents=True)
            env = {**os.environ, "MAESTRO_WORKER_DIR": str(folder / "maestro")}
            procs.append(subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--no-dashboard",
                                           "--host", "127.0.0.1", "--local-directory", str(folder / "dask")],
                                          cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))  # fmt: skip
        with distributed.Client(address, timeout=30, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=60)
        plan = make_plan(tmp_path / "p", tasks=TASKS, script=script(inside(tmp_path / "machines")), config=CONFIG)
        out = plan.run("--executor", f"dask://127.0.0.1:{port}")
        completed(plan, out)
        assert plan.tree() == local_tree
        assert len({r.worker for r in results(plan)}) == 2
        for folder in folders:  # each worker kept its own cache in its own folder
            assert (folder / "maestro" / "slot-1" / "cache.git" / "objects").is_dir()
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_an_unreachable_scheduler_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, tasks=TASKS, script=script(), config=CONFIG)
    out = plan.run("--executor", f"dask://127.0.0.1:{free_port()}")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "cannot reach the Dask scheduler" in out.stderr, out.stderr
    assert not (plan.repo / ".flow" / "maestro" / "sessions").exists() or not list(
        (plan.repo / ".flow" / "maestro" / "sessions").iterdir()
    )
    bad = plan.run("--executor", "dask://nowhere")
    assert bad.returncode == 2 and "executor" in bad.stderr, bad.stderr


def test_the_budget_counts_the_remote_attempts(tmp_path: Path, cluster: Any) -> None:
    """Each attempt's reported cost is counted when it comes back: the session pauses at its budget as a local one."""
    tasks = [task("a", files=["a.txt"]), task("b", deps=["a"], files=["b.txt"]), task("c", deps=["b"], files=["c.txt"])]
    costs = {t["id"]: [{"actions": [write(f"{t['id']}.txt", "x\n")], "cost_usd": 0.6}] for t in tasks}
    outcomes = {}
    for name, extra in (("local", ()), ("dask", ("--executor", dask_url(cluster.scheduler_address)))):
        plan = make_plan(tmp_path / name, tasks=tasks, script=costs, config=CONFIG)
        out = plan.run("--budget-usd", "1", *extra)
        assert out.returncode == 3, out.stdout[-2000:] + out.stderr[-2000:]
        state = plan.state()
        outcomes[name] = (state.spent_usd, [(r.task, r.cost_usd) for r in state.agent_results], plan.file("b.txt"))
        assert "Limit reached: budget" in plan.request_file()["question"]
    assert outcomes["dask"] == outcomes["local"] == (1.2, [("a", 0.6), ("b", 0.6)], "x\n")
