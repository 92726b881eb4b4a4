"""Crash resume (issues 8 and 14): SIGKILL a real ``maestro run`` anywhere, then ``maestro resume`` it.

A small session (three tasks; two of them run at once, one with a transient failure and a
retry; a third that depends on both; a tests gate) is run once without interruption.  Then,
for every event of its log, a fresh copy is run and killed with SIGKILL right after that
event is written; and again at random moments while agents work, and inside a merge.  Each
is resumed with ``maestro resume`` and must end as the uninterrupted run did:

* the same final tree on the session branch, and the user's checkout untouched;
* the same effective event log (the events a ``rewind`` voided left out), compared per task
  (tasks running at once may interleave differently) and in order for the rest.  Every merge
  is a checkpoint, so a task may be running at the boundary a resume goes back to: its
  attempt is void, and the task is reopened (its attempt count goes back) and started again.
  That ``start`` … ``reopen`` and the ``ready`` after it are the one difference allowed;
* nothing recorded before the kill lost: the log before the kill is a byte prefix of the log after.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dulwich.objects import Commit
from dulwich.repo import Repo

import maestro
from maestro.model.state import effective_events
from tests.support.crash import DRIVER
from tests.support.runs import config_text, make_repo, prd_text, task, write

REQUEST = "Add a, b and c"

TASKS = [
    task("a", files=["a.txt"], acceptance=["test -f a.txt"]),
    task("b", files=["b.txt"], acceptance=["test -f b.txt"]),
    task("c", deps=["a", "b"], files=["c.txt"], acceptance=["test -f a.txt", "test -f c.txt"]),
]
SCRIPT = {
    "version": 1,
    "tasks": {
        "a": [
            {"fail": {"kind": "transient", "message": "rate limited"}},
            {"delay_s": 0.05, "actions": [write("a.txt", "a\n")], "summary": "a written", "cost_usd": 0.01},
        ],
        "b": [{"delay_s": 0.4, "actions": [write("b.txt", "b\n")], "summary": "b written", "cost_usd": 0.01}],
        "c": [{"delay_s": 0.2, "actions": [write("c.txt", "c\n")], "summary": "c written", "cost_usd": 0.01}],
    },
}


def _sample(root: Path) -> tuple[Path, list[str]]:
    """A fresh repository and the ``maestro run`` arguments for the small session."""
    repo = make_repo(root)
    plan = root / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "Write a, b and c", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": TASKS}), encoding="utf-8")
    (plan / "script.yaml").write_text(json.dumps(SCRIPT), encoding="utf-8")
    (plan / "config.yaml").write_text(config_text(backoff=(0.05, 2.0, 1.0)), encoding="utf-8")
    args = ["run", REQUEST, "--script", str(plan / "script.yaml"), "--prd", str(plan / "prd.md"),
            "--tasks", str(plan / "tasks.yaml"), "--config", str(plan / "config.yaml")]  # fmt: skip
    return repo, args


def _maestro(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DRIVER), *args], cwd=repo, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _session(repo: Path) -> tuple[maestro.Store, str]:
    store = maestro.Store(repo)
    (sid,) = store.session_ids()
    return store, sid


def _tree(repo: Path) -> str:
    """The tree of the session branch's head (the last checkpoint)."""
    _, sid = _session(repo)
    r = Repo(str(repo))
    try:
        return r[r.refs[f"refs/heads/maestro/{sid}".encode()]].tree.decode()
    finally:
        r.close()


def _worktree_files(repo: Path) -> dict[str, str]:
    skip = {".git", ".flow"}
    return {
        str(p.relative_to(repo)): p.read_text(encoding="utf-8")
        for p in sorted(repo.rglob("*"))
        if p.is_file() and not (set(p.relative_to(repo).parts) & skip)
    }


_VOLATILE = ("ts", "id", "duration_s", "commit", "tag", "session_id", "base_commit", "transcript", "agent_session")


def _shape(events: list[maestro.Event]) -> tuple[list[str], dict[str, list[str]]]:
    """The effective log without what differs between any two runs (times, ids, commits, notes).

    Returns the events about no task in order, and each task's own events in order.
    """
    common: list[str] = []
    per_task: dict[str, list[str]] = {}
    for e in effective_events(events):
        if e.kind == "note":
            continue
        data = {k: v for k, v in e.data.items() if k not in _VOLATILE}
        if e.kind == "checkpoint":
            data["files"] = [f["path"] for f in data.get("files", [])]
            label = str(data.get("label", ""))
            if label.startswith("task "):  # a task's merge: tasks merge in the order they finish
                data.pop("n", None)
                data["task"] = label[5:].split(":", 1)[0]
        if e.kind == "decision":  # evidence may name timings; the choice, kind and task are the decision
            data = {"kind": data["kind"], "choice": data["choice"], "task": data.get("task")}
        line = f"{e.kind} {json.dumps(data, sort_keys=True)}"
        who = data.get("task")
        if isinstance(who, str):
            per_task.setdefault(who, []).append(line)
        else:
            common.append(line)
    return common, {t: _without_voided_attempts(lines) for t, lines in per_task.items()}


def _without_voided_attempts(lines: list[str]) -> list[str]:
    """A task's events without an attempt a resume voided: its ``start`` (and whatever the dead run recorded of
    it, which the rewind already left out), the ``reopen`` from running, and the ``ready`` that follows."""
    out: list[str] = []
    skip_ready = False
    for line in lines:
        if line.startswith("task ") and '"source": "running"' in line and '"trigger": "reopen"' in line:
            assert out and '"trigger": "start"' in out[-1], line
            out.pop()
            skip_ready = True
            continue
        if skip_ready and '"trigger": "ready"' in line:
            skip_ready = False
            continue
        out.append(line)
    return out


class Baseline:
    def __init__(self, root: Path) -> None:
        self.repo, self.args = _sample(root)
        started = time.monotonic()
        out = _maestro(self.repo, *self.args)
        self.seconds = time.monotonic() - started
        assert out.returncode == 0, out.stderr
        store, sid = _session(self.repo)
        self.events = store.read_events(sid)
        assert maestro.rebuild(self.events).state == "completed"
        self.shape = _shape(self.events)
        self.tree = _tree(self.repo)
        self.files = _worktree_files(self.repo)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    return Baseline(tmp_path_factory.mktemp("baseline"))


def _resume_and_compare(repo: Path, base: Baseline, what: str) -> list[maestro.Event]:
    """Resume the killed session in ``repo``; it must end as the uninterrupted run did.  Returns its events."""
    store, sid = _session(repo)
    before = store.events_path(sid).read_bytes()
    out = _maestro(repo, "resume", sid)
    assert out.returncode == 0, f"{what}: resume exit {out.returncode}: {out.stderr}"
    after = store.events_path(sid).read_bytes()
    assert after.startswith(before), f"{what}: the log before the kill is not kept as it was"
    events = store.read_events(sid)
    state = maestro.rebuild(events)
    assert state.state == "completed", what
    assert _tree(repo) == base.tree, f"{what}: the final tree differs"
    assert _worktree_files(repo) == base.files, f"{what}: the user's checkout differs"
    common, per_task = _shape(events)
    assert per_task == base.shape[1], f"{what}: a task's events differ"
    assert common == base.shape[0], f"{what}: the session's events differ"
    assert state.spent_usd >= maestro.rebuild(base.events).spent_usd  # redone attempts cost again, never less
    return events


def _killed_at(root: Path, seq: int, base: Baseline) -> str:
    repo, args = _sample(root)
    out = _maestro(repo, *args, env={"MAESTRO_KILL_AT_SEQ": str(seq)})
    assert out.returncode == -signal.SIGKILL, f"kill at event {seq}: exit {out.returncode}: {out.stderr}"
    store, sid = _session(repo)
    assert len(store.read_events(sid)) == seq, f"kill at event {seq}: the log has another length"
    if seq == len(base.events):  # killed after the last event: completed, nothing to resume
        again = _maestro(repo, "resume", sid)
        assert again.returncode == 2 and "nothing to resume" in again.stderr
        assert _tree(repo) == base.tree
        return "completed"
    events = _resume_and_compare(repo, base, f"kill after event {seq}")
    rewinds = [e for e in events if e.kind == "rewind"]
    assert len(rewinds) == 1 and rewinds[0].seq == seq + 1, f"kill after event {seq}: one rewind, first thing"
    return str(rewinds[0].data["to"])


def test_the_small_session_is_small_and_exercises_a_retry_and_a_parallel_group(baseline: Baseline) -> None:
    state = maestro.rebuild(baseline.events)
    assert {t: s.attempts for t, s in state.tasks.items()} == {"a": 2, "b": 1, "c": 1}
    assert [c.label for c in state.checkpoints] == ["start", "task a: A", "task b: B", "task c: C"]
    assert 30 <= len(baseline.events) <= 80
    assert baseline.files == {".gitignore": "__pycache__/\n.pytest_cache/\n", "README.md": "# sample\n"}


def test_sigkill_after_every_event_then_resume_ends_as_the_uninterrupted_run(
    baseline: Baseline, tmp_path: Path
) -> None:
    seqs = range(1, len(baseline.events) + 1)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two kills at a time: each in its own repository
        results = list(pool.map(lambda n: _killed_at(tmp_path / f"k{n}", n, baseline), seqs))
    # the rewinds went back to boundaries only: never past a checkpoint, and more than one distinct boundary
    boundaries = {r for r in results if r != "completed"}
    assert len(boundaries) >= 8
    assert results[-1] == "completed"


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_sigkill_at_a_random_moment_then_resume_ends_as_the_uninterrupted_run(
    baseline: Baseline, tmp_path: Path, seed: int
) -> None:
    repo, args = _sample(tmp_path)
    delay = random.Random(seed).uniform(0.3, baseline.seconds * 0.9)
    proc = subprocess.Popen([sys.executable, str(DRIVER), *args], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        code = proc.wait(timeout=60)
    if not maestro.Store(repo).session_ids():  # killed before the session's log existed: nothing to resume
        assert code == -signal.SIGKILL
        return
    store, sid = _session(repo)
    if maestro.rebuild(store.read_events(sid)).state == "completed":  # it got there first: nothing to redo
        assert code in (0, -signal.SIGKILL)
        assert _tree(repo) == baseline.tree
        return
    assert code == -signal.SIGKILL
    _resume_and_compare(repo, baseline, f"random kill after {delay:.2f} s")


def test_sigkill_while_an_agent_works_then_resume(baseline: Baseline, tmp_path: Path) -> None:
    """Killed while b's agent sleeps, a merged: a's merge is kept (a checkpoint), b's attempt is void and redone."""
    repo, args = _sample(tmp_path)
    proc = subprocess.Popen([sys.executable, str(DRIVER), *args], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a has succeeded; b is still in its 0.4 s delay
            try:
                store, sid = _session(repo)
                state = maestro.rebuild(store.read_events(sid))
            except (ValueError, maestro.MaestroError):
                continue
            if len(state.checkpoints) == 2 and state.task_state("b") == "running":
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        assert proc.wait(timeout=60) == -signal.SIGKILL
    events = _resume_and_compare(repo, baseline, "kill while b's agent works")
    rewind = next(e for e in events if e.kind == "rewind")
    state_at = maestro.rebuild([e for e in events if e.seq <= rewind.data["to"]])
    assert state_at.task_state("a") == "succeeded"  # a's merge is the boundary: kept, not redone
    assert state_at.task_state("b") == "running"  # b's attempt was in flight: void
    assert rewind.data["checkpoint"] == 1
    state = maestro.rebuild(events)
    assert {t: s.attempts for t, s in state.tasks.items()} == {"a": 2, "b": 1, "c": 1}  # the void attempt not counted


@pytest.mark.parametrize("stage", ["commit", "tag", "index"])
@pytest.mark.parametrize("nth", [1, 3])
def test_sigkill_inside_a_checkpoint_then_resume(baseline: Baseline, tmp_path: Path, stage: str, nth: int) -> None:
    repo, args = _sample(tmp_path)
    out = _maestro(repo, *args, env={"MAESTRO_KILL_IN": stage, "MAESTRO_KILL_NTH": str(nth)})
    assert out.returncode == -signal.SIGKILL, out.stderr
    store, sid = _session(repo)
    recorded = [c.n for c in maestro.rebuild(store.read_events(sid)).checkpoints]
    assert recorded == list(range(nth)), "the checkpoint being made was not recorded"
    lock = repo / ".git" / "worktrees" / f"maestro-{sid}-integration" / "index.lock"
    if stage == "index":
        assert lock.exists()
        time.sleep(2.1)  # resume takes over a lock made after the log's last event and older than a live git's
    events = _resume_and_compare(repo, baseline, f"kill in checkpoint {nth} at {stage}")
    assert not lock.exists()
    r = Repo(str(repo))
    try:
        refs = r.refs.as_dict()
    finally:
        r.close()
    interrupted = [k for k in refs if k.startswith(f"refs/maestro/{sid}/interrupted-".encode())]
    if stage == "tag":  # the tag was made but never recorded: untagged, its commit kept aside
        assert interrupted == [f"refs/maestro/{sid}/interrupted-{nth}".encode()]
    else:
        assert interrupted == []
    assert [e.data["n"] for e in effective_events(events) if e.kind == "checkpoint"] == [0, 1, 2, 3]
    assert not (repo / ".git" / "index.lock").exists()  # the user's index was never locked


def test_resume_refuses_a_session_whose_holder_is_alive(baseline: Baseline, tmp_path: Path) -> None:
    repo, args = _sample(tmp_path)
    slow = json.loads(json.dumps(SCRIPT))
    slow["tasks"]["b"][0]["delay_s"] = 20
    script = Path(args[args.index("--script") + 1])
    script.write_text(json.dumps(slow), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(DRIVER), *args], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                store, sid = _session(repo)
                if maestro.rebuild(store.read_events(sid)).task_state("b") == "running":
                    break
            except (ValueError, maestro.MaestroError):
                pass
            time.sleep(0.01)
        out = _maestro(repo, "resume", sid)
        assert out.returncode == 2
        assert f"pid {proc.pid}" in out.stderr and out.stderr.count("\n") == 1
        assert f"running: held by pid {proc.pid}\n" in _maestro(repo, "status", sid).stdout
    finally:
        proc.kill()
        proc.wait(timeout=30)
    status = _maestro(repo, "status", sid)
    stopped = f"not running: it stopped in implementing; `maestro resume {sid}` redoes the interrupted step"
    assert stopped in status.stdout
    assert json.loads(_maestro(repo, "status", sid, "--json").stdout)["held_by"] is None
    # the holder is gone now (SIGKILL): its lock is taken over, and the session finishes
    script.write_text(json.dumps(SCRIPT), encoding="utf-8")  # (without the slow attempt: resume reads the script)
    out = _maestro(repo, "resume", sid)
    assert out.returncode == 0, out.stderr
    assert maestro.rebuild(store.read_events(sid)).state == "completed"


def test_sigkill_during_a_revalidation_then_resume(tmp_path: Path) -> None:
    """Killed while a merge is being revalidated (an acceptance command runs in the integration worktree): the
    merge was never a checkpoint, the resume redoes the task, and the session ends with every task's work."""
    marker = tmp_path / "revalidating"
    slow = f'case "$PWD" in *-integration) touch {marker}; sleep 2;; esac; test -f a.txt'
    repo, args = _sample(tmp_path)
    tasks = json.loads(json.dumps(TASKS))
    tasks[0]["acceptance"] = [slow]
    (tmp_path / "plan" / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(DRIVER), *args], cwd=repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), "the revalidation never ran"
        proc.send_signal(signal.SIGKILL)
    finally:
        assert proc.wait(timeout=60) == -signal.SIGKILL
    store, sid = _session(repo)
    killed = maestro.rebuild(store.read_events(sid))
    assert [c.label for c in killed.checkpoints] == ["start"]  # a's merge was being revalidated: not a checkpoint
    marker.unlink()
    out = _maestro(repo, "resume", sid)
    assert out.returncode == 0, out.stderr
    state = maestro.rebuild(store.read_events(sid))
    assert state.state == "completed"
    assert sorted(c.label for c in state.checkpoints[1:]) == ["task a: A", "task b: B", "task c: C"]
    r = Repo(str(repo))
    try:
        head = r[r.refs[f"refs/heads/maestro/{sid}".encode()]]
        assert isinstance(head, Commit)
        names = {e.path for e in r.object_store.iter_tree_contents(head.tree)}
    finally:
        r.close()
    assert {b"a.txt", b"b.txt", b"c.txt"} <= names
    assert _worktree_files(repo) == {".gitignore": "__pycache__/\n.pytest_cache/\n", "README.md": "# sample\n"}


def test_ref_locks_a_killed_run_left_do_not_wedge_the_resume(baseline: Baseline, tmp_path: Path) -> None:
    """dulwich writes a ref through ``<ref>.lock``: a run killed in the middle leaves it, and every resume would fail
    with FileExistsError. The session's own refs are written by nothing but a run of the session, and a resume
    holds its lock: the locks made after the last event go (a ref outside the session's is left alone)."""
    repo, args = _sample(tmp_path)
    seq = len(baseline.events) // 2
    out = _maestro(repo, *args, env={"MAESTRO_KILL_AT_SEQ": str(seq)})
    assert out.returncode == -signal.SIGKILL
    _store, sid = _session(repo)
    refs = repo / ".git" / "refs"
    mine = [refs / "maestro" / sid / "attempts" / "a" / "1.lock", refs / "heads" / "maestro" / f"{sid}.lock",
            refs / "tags" / "maestro" / sid / "9.lock"]  # fmt: skip
    theirs = refs / "heads" / "master.lock"
    for lock in [*mine, theirs]:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_bytes(b"0" * 40 + b"\n")
    events = _resume_and_compare(repo, baseline, f"kill after event {seq} with ref locks left")
    assert events
    assert not any(lock.exists() for lock in mine)
    assert theirs.exists()  # not the session's: a git of the user's may be writing it
