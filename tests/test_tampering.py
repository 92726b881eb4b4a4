"""Tampering (issue 15, item 1): what an agent must not touch is looked at around each attempt.

Real repositories and sessions: a session with its branch, checkpoints 0 and 1 and its integration worktree;
each "attempt" runs a real shell in a pooled attempt worktree (where agents work) between
``TamperGuard.snapshot`` and ``TamperGuard.check``, and is captured at its ref as the runner captures it.
One test per kind of tampering the issue lists, each found with a line naming what changed; maestro's own
appends while an attempt runs are not; ``restore`` puts maestro's refs back as the log says; a real run of the
runner with the guard wired around its attempts finds nothing, and finds a hostile agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dulwich.objects import ObjectID, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maestro
from maestro.core.errors import StoreError
from maestro.core.records import CheckpointRecord
from maestro.git.checkpoints import Checkpointer
from maestro.git.tampering import Allowance, TamperGuard, Tampering
from maestro.git.worktrees import WorktreePool
from maestro.run.implement import Implementer
from maestro.session import Session
from tests.support.runs import config_text, in_process, make_repo, task, write

RUN_JSON = '{"version": 1, "config": {}}\n'


class Lab:
    """A session with checkpoints 0 and 1, a pool of attempt worktrees, and a guard made after them."""

    def __init__(
        self, root: Path, *, allowance: Allowance | None = None, tail: int = 64 * 1024, watch: bool = True
    ) -> None:
        self.repo = make_repo(root)
        self.store = maestro.Store(self.repo)
        self.session = Session.create(self.store, "build it", files={"run.json": RUN_JSON})
        self.sid = self.session.id
        self.cp = Checkpointer(self.repo, self.session, worktree=True)
        self.session.record(self.cp.start())
        (self.cp.workdir / "a.txt").write_text("a\n")
        one = self.cp.checkpoint("one")
        assert one is not None
        self.session.record(one)
        self.pool = WorktreePool(self.repo, self.sid)
        self.guard = TamperGuard(self.session, allowance=allowance, tail=tail, watch=watch)
        self.attempts = 0
        self.user_branch = self.git("symbolic-ref", "HEAD").removeprefix("refs/heads/")

    def git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=cwd or self.repo, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def attempt(self, command: str = "true", *, also: Any = None) -> list[Tampering]:
        """One attempt: snapshot, ``command`` in an attempt worktree (``also()`` meanwhile), capture, check."""
        self.attempts += 1
        ref = f"refs/maestro/{self.sid}/attempts/t/{self.attempts}".encode()
        base = self.cp.head()
        wt = self.pool.acquire(base)
        snap = self.guard.snapshot(attempt_ref=ref)
        zero = self.session.state.checkpoints[0].commit
        env = {**os.environ, "REPO": str(self.repo), "SID": self.sid, "SDIR": str(self.session.dir), "ZERO": zero}
        proc = subprocess.Popen(["sh", "-c", command], cwd=wt.path, env=env)
        if also is not None:
            also()
        assert proc.wait() == 0, command
        commit, _ = wt.capture(base, f"attempt {self.attempts}", ref)
        self.pool.release(wt)
        return self.guard.check(snap, commit=commit)

    def checkpoint(self, name: str) -> CheckpointRecord:
        """What the merge queue does: a new checkpoint on the branch, recorded."""
        (self.cp.workdir / name).write_text(name + "\n")
        rec = self.cp.checkpoint(name)
        assert rec is not None
        self.session.record(rec)
        return rec

    def tag(self, n: int) -> Ref:
        return Ref(f"refs/tags/maestro/{self.sid}/{n}".encode())

    def peel(self, ref: Ref) -> bytes:
        r = Repo(str(self.repo))
        obj = r[r.refs[ref]]
        while isinstance(obj, Tag):
            obj = r[obj.object[1]]
        return obj.id

    def close(self) -> None:
        self.guard.close()
        self.pool.remove_all()
        with contextlib.suppress(StoreError, OSError):
            self.session.close()


@pytest.fixture(params=[True, False], ids=["inotify", "reading"])
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A lab whose guard learns what changed from inotify, or by reading everything at every look."""
    lab = Lab(tmp_path, watch=request.param)
    yield lab
    lab.close()


def texts(found: list[Tampering]) -> str:
    return " | ".join(map(str, found))


def test_a_quiet_attempt_finds_nothing(lab: Lab) -> None:
    assert lab.attempt("echo work > w.txt") == []
    assert (
        lab.attempt("echo more > m.txt && git add -A && git -c user.name=a -c user.email=a@a commit -qm work") == []
    )  # its own HEAD
    assert lab.guard.check(full=True) == []
    assert not lab.guard.log_damaged


# -- one test per kind of tampering the issue lists ------------------------------------------------------------------


def test_deleting_flow_is_found_and_the_log_is_damaged(lab: Lab) -> None:
    found = lab.attempt('rm -rf "$REPO/.flow"')
    assert [t.area for t in found] == ["store"]
    assert ".flow folder was deleted" in texts(found)
    assert lab.guard.log_damaged
    assert lab.guard.check() == []  # said once


def test_appending_to_the_log_is_found_and_cut_off(lab: Lab) -> None:
    before = lab.session.events_path.read_bytes()
    line = json.dumps({"v": 1, "seq": 5, "ts": "2026-01-01T00:00:00Z", "kind": "note", "data": {"text": "x"}})
    found = lab.attempt(f"echo '{line}' >> \"$SDIR/events.jsonl\"")
    assert [t.area for t in found] == ["log"]
    assert "appended after event 3 by another writer" in texts(found)
    assert lab.session.events_path.read_bytes() == before  # cut off: what maestro wrote, nothing else
    assert (lab.session.dir / "events.jsonl.foreign-1").read_text() == line + "\n"
    assert lab.guard.log_damaged and not lab.guard.log_broken  # repaired, but the session must not complete
    lab.session.note("still writable")
    assert lab.store.read_events(lab.sid) == list(lab.session.events)
    found = lab.attempt('echo more >> "$SDIR/events.jsonl"')  # still looked at: found (and cut off) again
    assert "appended after event 4 by another writer (moved to events.jsonl.foreign-2)" in texts(found)
    assert lab.guard.check(full=True) == []


def test_deleting_the_users_branch_is_found_with_its_commit(lab: Lab) -> None:
    head = lab.git("rev-parse", "HEAD")
    found = lab.attempt(f'git -C "$REPO" update-ref -d refs/heads/{lab.user_branch}')
    assert [(t.area, t.name) for t in found] == [("user_ref", f"refs/heads/{lab.user_branch}")]
    assert f"refs/heads/{lab.user_branch} was deleted (it was at {head[:12]}" in found[0].text
    assert head in found[0].text  # the whole id, to bring it back


def test_moving_the_users_branch_is_found(lab: Lab) -> None:
    head = lab.git("rev-parse", "HEAD")
    other = lab.cp.head().decode()
    found = lab.attempt(f'git -C "$REPO" update-ref refs/heads/{lab.user_branch} {other}')
    assert [t.text for t in found] == [f"refs/heads/{lab.user_branch} moved from {head[:12]} to {other[:12]}"]


def test_pointing_head_elsewhere_is_found(lab: Lab) -> None:
    found = lab.attempt('git -C "$REPO" branch other && git -C "$REPO" symbolic-ref HEAD refs/heads/other')
    assert {t.area for t in found} == {"head", "user_ref"}
    assert f"HEAD now points at refs/heads/other (points at refs/heads/{lab.user_branch} before)" in texts(found)
    found = lab.attempt('git -C "$REPO" checkout -q --detach')
    assert [t.area for t in found] == ["head"] and "HEAD now detached at" in found[0].text


def test_editing_git_config_is_found(lab: Lab) -> None:
    found = lab.attempt("git config core.hooksPath /tmp/elsewhere")  # from its worktree: the shared config
    assert [t.text for t in found] == [".git/config was changed"]


def test_adding_a_hook_is_found(lab: Lab) -> None:
    hook = lab.repo / ".git" / "hooks" / "post-checkout"
    found = lab.attempt(f"printf '#!/bin/sh\\n' > '{hook}' && chmod +x '{hook}'")
    assert [t.text for t in found] == [".git/hooks/post-checkout was added (executable)"]
    assert lab.attempt(f"chmod -x '{hook}'")[0].text == ".git/hooks/post-checkout changed its executable bit"


def test_editing_info_exclude_is_found(lab: Lab) -> None:
    found = lab.attempt('echo "*" >> "$REPO/.git/info/exclude"')  # it would hide the attempt's files from captures
    assert [t.text for t in found] == [".git/info/exclude was changed"]


def test_moving_the_session_branch_is_found_and_restored(lab: Lab) -> None:
    logged = lab.session.state.checkpoints[-1].commit
    base = lab.session.state.checkpoints[0].commit
    found = lab.attempt(f'git -C "$REPO" update-ref refs/heads/maestro/$SID {base}')
    assert [t.text for t in found] == [
        f"refs/heads/maestro/{lab.sid} is at {base[:12]}; the log's last checkpoint is {logged[:12]}"
    ]
    assert lab.guard.check() == found  # maestro's refs are reported until they are put back
    assert lab.guard.restore() == [f"refs/heads/maestro/{lab.sid}: back at {logged[:12]}"]
    assert lab.cp.head().decode() == logged
    assert lab.guard.check() == []


def test_deleting_a_checkpoint_tag_is_found_and_restored(lab: Lab) -> None:
    was = Repo(str(lab.repo)).refs[lab.tag(1)]
    found = lab.attempt('git -C "$REPO" tag -d maestro/$SID/1 >/dev/null')
    assert [(t.name, t.text) for t in found] == [
        (f"maestro/{lab.sid}/1", f"tag maestro/{lab.sid}/1 was deleted (it was at {lab.cp.head().decode()[:12]})")
    ]
    lab.guard.restore()
    assert Repo(str(lab.repo)).refs[lab.tag(1)] == was  # the same tag object
    assert lab.guard.check() == []


def test_a_ref_written_in_place_is_found(lab: Lab) -> None:
    """No lock file, no rename (the folder's time does not move): ``echo … > .git/refs/heads/<branch>``."""
    other = lab.cp.head().decode()
    found = lab.attempt(f'echo {other} > "$REPO/.git/refs/heads/{lab.user_branch}"')
    assert [t.name for t in found] == [f"refs/heads/{lab.user_branch}"]
    found = lab.attempt(f'echo {lab.session.state.checkpoints[0].commit} > "$REPO/.git/refs/heads/maestro/$SID"')
    assert [t.name for t in found] == [f"refs/heads/maestro/{lab.sid}"]


def test_folders_of_refs_coming_and_going_are_found(lab: Lab) -> None:
    found = lab.attempt('git -C "$REPO" branch feature/deep/x && git -C "$REPO" branch feature/y')
    assert sorted(t.name for t in found) == ["refs/heads/feature/deep/x", "refs/heads/feature/y"]
    found = lab.attempt('rm -rf "$REPO/.git/refs/heads/feature"')
    assert sorted(t.text.split(" (")[0] for t in found) == [
        "refs/heads/feature/deep/x was deleted",
        "refs/heads/feature/y was deleted",
    ]
    found = lab.attempt('git -C "$REPO" pack-refs --all')  # the same refs, packed: nothing changed
    assert found == []


def test_a_tag_deleted_before_the_look_that_would_see_it_is_found(lab: Lab) -> None:
    """maestro makes checkpoint 2 while the attempt runs; the agent deletes its tag before the check sees it."""

    def merge_then_tamper() -> None:
        lab.checkpoint("m.txt")
        lab.git("tag", "-d", f"maestro/{lab.sid}/2")

    found = lab.attempt("sleep 0.2", also=merge_then_tamper)
    assert [t.text for t in found] == [f"tag maestro/{lab.sid}/2 of checkpoint 2 is missing"]
    assert [t.text for t in lab.guard.check()] == [f"tag maestro/{lab.sid}/2 of checkpoint 2 is missing"]
    lab.guard.restore()
    assert lab.guard.check() == []
    assert lab.peel(lab.tag(2)).decode() == lab.session.state.checkpoints[-1].commit


# -- what is not tampering ---------------------------------------------------------------------------------------


def test_maestro_appending_and_merging_while_an_attempt_runs_is_not_tampering(lab: Lab) -> None:
    def coordinator() -> None:  # what the coordinating thread does while an agent works: settle others, merge
        for i in range(20):
            lab.session.note(f"another attempt settled {i}")
        lab.checkpoint("merged.txt")
        lab.cp.show(
            ObjectID(lab.session.state.checkpoints[0].commit.encode())
        )  # the merge queue showing another commit
        (lab.cp.workdir / "gate-output").write_text("x\n")  # a revalidation left a file: kept in pre-rollback-<k>
        lab.cp.show(lab.cp.head())

    assert lab.attempt("sleep 0.3; echo work > w.txt", also=coordinator) == []
    assert any(r.startswith(f"refs/maestro/{lab.sid}/pre-rollback-".encode()) for r in Repo(str(lab.repo)).get_refs())
    assert lab.guard.check(full=True) == []


def test_overlapping_attempts_each_see_their_own_ref(lab: Lab) -> None:
    """A's capture lands while B's snapshot is open, and the other way round: neither is a finding."""
    g, sid = lab.guard, lab.sid
    base = lab.cp.head()
    a, b = lab.pool.acquire(base), lab.pool.acquire(base)
    ra, rb = f"refs/maestro/{sid}/attempts/a/1".encode(), f"refs/maestro/{sid}/attempts/b/1".encode()
    sa = g.snapshot(attempt_ref=ra)
    sb = g.snapshot(attempt_ref=rb)
    (a.path / "a.py").write_text("a\n")
    ca, _ = a.capture(base, "a", ra)
    (b.path / "b.py").write_text("b\n")
    cb, _ = b.capture(base, "b", rb)
    assert g.check(sb, commit=cb) == []
    assert g.check(sa, commit=ca) == []
    Repo(str(lab.repo)).refs[Ref(ra)] = cb  # later, someone moves a settled attempt's ref
    assert [t.text for t in g.check()] == [f"{ra.decode()} moved from {ca.decode()[:12]} to {cb.decode()[:12]}"]


def test_an_attempt_ref_not_maestros_is_found(lab: Lab) -> None:
    found = lab.attempt('git -C "$REPO" update-ref refs/maestro/$SID/attempts/t/9 HEAD')
    assert [t.text for t in found] == [
        f"refs/maestro/{lab.sid}/attempts/t/9 was created at {lab.git('rev-parse', 'HEAD')[:12]}"
    ]
    lab.guard.restore()  # maestro's refs are reported until put back
    own = f"refs/maestro/{lab.sid}/attempts/t/{lab.attempts + 1}"
    found = lab.attempt(f"sh -c 'sleep 0; true'; git -C \"$REPO\" update-ref {own} HEAD")  # overwritten by the capture
    assert found == []


def test_the_users_commits_may_be_allowed(tmp_path: Path) -> None:
    lab = Lab(tmp_path, allowance=Allowance(user_commits=True))
    try:
        b = lab.user_branch
        (lab.repo / "mine.txt").write_text("the user's work\n")
        lab.git("add", "mine.txt")
        found = lab.attempt('git -C "$REPO" -c user.name=u -c user.email=u@u commit -qm mine && git -C "$REPO" tag v1')
        assert found == []  # a commit on the user's branch and a new tag: the user working
        found = lab.attempt(f'git -C "$REPO" update-ref refs/heads/{b} HEAD~1')  # a rewind is not
        assert [t.name for t in found] == [f"refs/heads/{b}"]
    finally:
        lab.close()


# -- the log -------------------------------------------------------------------------------------------------------


def test_a_truncated_log_is_found_and_written_back(lab: Lab) -> None:
    lab.session.note("one more")
    before = lab.session.events_path.read_bytes()
    found = lab.attempt(f'truncate -s {len(before) - 30} "$SDIR/events.jsonl"')
    assert [t.area for t in found] == ["log"] and "was cut to" in found[0].text
    assert lab.session.events_path.read_bytes() == before
    assert lab.guard.log_damaged and not lab.guard.log_broken
    found = lab.attempt('truncate -s 0 "$SDIR/events.jsonl"')  # the whole log is within the bytes it keeps
    assert "was cut to 0 bytes" in texts(found) and lab.session.events_path.read_bytes() == before


def test_a_log_cut_further_back_than_the_tail_cannot_be_repaired(tmp_path: Path) -> None:
    lab = Lab(tmp_path, tail=64)
    try:
        found = lab.attempt('truncate -s 10 "$SDIR/events.jsonl"')
        assert [t.area for t in found] == ["log"] and "maestro cannot repair it" in found[0].text
        assert lab.guard.log_broken
    finally:
        lab.close()


def test_a_replaced_log_is_found(lab: Lab) -> None:
    found = lab.attempt(
        'cp "$SDIR/events.jsonl" /tmp/.x-$$ && rm "$SDIR/events.jsonl" && mv /tmp/.x-$$ "$SDIR/events.jsonl"'
    )
    assert [t.area for t in found] == ["log"] and "was replaced by another file" in found[0].text
    assert lab.guard.log_broken


def test_an_edit_far_back_is_found_by_the_full_check(tmp_path: Path) -> None:
    lab = Lab(tmp_path, tail=64)
    try:
        for i in range(5):
            lab.session.note(f"note {i}")
        data = bytearray(lab.session.events_path.read_bytes())
        at = data.index(b"build it")
        found = lab.attempt(f"printf 'B' | dd of=\"$SDIR/events.jsonl\" bs=1 seek={at} conv=notrunc status=none")
        assert found == []  # older than the tail each look compares
        found = lab.guard.check(full=True)
        assert [t.area for t in found] == ["log"] and "was rewritten before byte" in found[0].text
        assert lab.guard.log_damaged
    finally:
        lab.close()


def test_an_edit_near_the_end_is_found_at_once(lab: Lab) -> None:
    at = lab.session.events_path.stat().st_size - 20
    found = lab.attempt(f"printf 'X' | dd of=\"$SDIR/events.jsonl\" bs=1 seek={at} conv=notrunc status=none")
    assert [t.area for t in found] == ["log"] and "maestro cannot repair it" in found[0].text


def test_run_json_and_the_lock_are_watched(lab: Lab) -> None:
    found = lab.attempt('echo \'{"version": 1, "config": {"gates": {}}}\' > "$SDIR/run.json"; rm "$SDIR/lock"')
    assert sorted(t.name for t in found) == ["lock", "run.json"]
    assert "another maestro could take the session" in texts(found)
    assert f"run.json of session {lab.sid}: written back" in lab.guard.restore()
    assert (lab.session.dir / "run.json").read_text() == RUN_JSON


# -- restoring -----------------------------------------------------------------------------------------------------


def test_restore_puts_every_ref_of_maestro_back_as_the_log_says(lab: Lab) -> None:
    two = lab.checkpoint("b.txt")
    state = lab.session.state
    zero = state.checkpoints[0].commit
    assert lab.attempt() == []
    attempt_ref = f"refs/maestro/{lab.sid}/attempts/t/1"
    attempt_commit = lab.git("rev-parse", attempt_ref)
    script = "; ".join(
        [
            'g() { git -C "$REPO" "$@"; }',
            f"g update-ref refs/heads/maestro/$SID {zero}",  # the branch moved back
            "g tag -d maestro/$SID/1 >/dev/null",  # a checkpoint's tag deleted
            f"g tag -f -a -m forged maestro/$SID/2 {zero} >/dev/null",  # another moved
            f"g tag maestro/$SID/7 {zero}",  # one the log does not have
            f"g update-ref -d {attempt_ref}",  # a settled attempt's commit dropped
            f"g update-ref refs/maestro/$SID/extra {zero}",
            "g pack-refs --all",  # and everything packed, for good measure
        ]
    )
    found = lab.attempt(script)
    tags = {f"maestro/{lab.sid}/{n}" for n in (1, 2, 7)}
    assert {t.name for t in found} >= {
        f"refs/heads/maestro/{lab.sid}",
        attempt_ref,
        f"refs/maestro/{lab.sid}/extra",
        *tags,
    }
    lab.guard.restore()
    assert lab.cp.head().decode() == two.commit
    for rec in lab.session.state.checkpoints:
        assert lab.peel(lab.tag(rec.n)).decode() == rec.commit
    refs = Repo(str(lab.repo)).get_refs()
    assert lab.tag(7) not in refs and f"refs/maestro/{lab.sid}/extra".encode() not in refs
    assert refs[Ref(attempt_ref.encode())].decode() == attempt_commit
    assert lab.guard.check(full=True) == []


def test_restore_never_takes_gits_word_over_the_logs(lab: Lab) -> None:
    """A branch moved to a commit that then gets a checkpoint recorded on top: the chain shows it."""
    zero = lab.session.state.checkpoints[0].commit
    lab.guard.snapshot()
    lab.git("update-ref", f"refs/heads/maestro/{lab.sid}", zero)  # tampered ...
    lab.cp.show(ObjectID(zero.encode()))
    (lab.cp.workdir / "c.txt").write_text("c\n")
    rec = lab.cp.checkpoint("c")  # ... and maestro builds on it
    assert rec is not None
    lab.session.record(rec)
    found = lab.guard.check()
    assert any("was made on" in t.text and "had been moved" in t.text for t in found), texts(found)


def test_a_symbolic_session_branch_is_replaced_not_followed(lab: Lab) -> None:
    user = lab.git("rev-parse", "HEAD")
    lab.git("symbolic-ref", f"refs/heads/maestro/{lab.sid}", f"refs/heads/{lab.user_branch}")
    assert lab.guard.check()
    lab.guard.restore()
    assert lab.git("rev-parse", "HEAD") == user  # the user's branch was not written through the symbolic ref
    assert lab.cp.head().decode() == lab.session.state.checkpoints[-1].commit


# -- a real run with the guard wired around its attempts -------------------------------------------------------------


def wire(monkeypatch: pytest.MonkeyPatch, found: list[str]) -> None:
    """The wiring proposed for run/implement.py: a guard per implementing step, a look around each attempt."""
    guards: dict[int, TamperGuard] = {}
    snaps: dict[str, Any] = {}
    start, settle, run_attempts = Implementer.start, Implementer.settle, Implementer.run_attempts

    def run_attempts_(self: Implementer) -> None:
        guards[id(self)] = TamperGuard(self.run.session)
        run_attempts(self)
        found.extend(map(str, guards[id(self)].check(full=True)))

    def start_(self: Implementer, tid: str, allowance: float | None) -> Any:
        work = start(self, tid, allowance)
        s = self.run.session
        ref = f"refs/maestro/{s.id}/attempts/{tid}/{s.state.tasks[tid].attempts}".encode()
        snaps[tid] = guards[id(self)].snapshot(attempt_ref=ref)
        return work

    def settle_(self: Implementer, tid: str, attempt: Any) -> Any:
        found.extend(map(str, guards[id(self)].check(snaps.pop(tid), commit=attempt.commit)))
        return settle(self, tid, attempt)

    monkeypatch.setattr(Implementer, "run_attempts", run_attempts_)
    monkeypatch.setattr(Implementer, "start", start_)
    monkeypatch.setattr(Implementer, "settle", settle_)


def test_a_real_run_with_parallel_attempts_and_merges_finds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found: list[str] = []
    wire(monkeypatch, found)
    tasks = [task("a", acceptance=["test -f a.py"]), task("b", acceptance=["test -f b.py"]),
             task("c", deps=["a", "b"], acceptance=["test -f c.py", "test -f a.py"])]  # fmt: skip
    script = {
        "a": [{"actions": [write("a.py", "A = 1\n"), {"run": "sleep 0.2"}]}],
        "b": [{"actions": [write("b.py", "B = 1\n"), {"run": "sleep 0.1"}]}, {"actions": [write("b.py", "B = 2\n")]}],
        "c": [{"actions": [write("c.py", "C = 1\n")]}],
    }
    _store, runner, _agent, plan = in_process(tmp_path, tasks, script, config_text(workers=2))
    outcome = runner.run("build", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert outcome.state == "completed"
    assert found == []


def test_a_hostile_agent_in_a_real_run_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found: list[str] = []
    wire(monkeypatch, found)
    tasks = [task("a", acceptance=["test -f a.py"]), task("b", acceptance=["test -f b.py"])]
    hostile = (
        'git update-ref -d "refs/heads/$(git -C "$(git rev-parse --git-common-dir)/.." symbolic-ref --short HEAD)"'
    )
    script = {
        "a": [{"actions": [write("a.py", "A = 1\n"), {"run": hostile}]}],
        "b": [{"actions": [write("b.py", "B = 1\n"), {"run": "sleep 0.2"}]}],
    }
    _store, runner, _agent, plan = in_process(tmp_path, tasks, script, config_text(workers=2))
    runner.run("build", prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")
    assert len(found) == 1 and found[0].startswith("refs/heads/") and "was deleted (it was at" in found[0]


# -- random sequences ------------------------------------------------------------------------------------------------

LEGIT = ("note", "checkpoint", "attempt", "show")
HOSTILE = {
    "user_branch": ("user_ref", 'git -C "$REPO" update-ref refs/heads/x{i} "$ZERO"'),
    "head": ("head", 'git -C "$REPO" symbolic-ref HEAD refs/heads/h{i}'),
    "config": ("git_file", "git config x.y{i} 1"),
    "hook": ("git_file", 'touch "$REPO/.git/hooks/h{i}"'),
    "exclude": ("git_file", 'echo "p{i}" >> "$REPO/.git/info/exclude"'),
    "branch": ("session_ref", 'git -C "$REPO" update-ref refs/heads/maestro/$SID "$ZERO"'),
    "tag": (
        "session_ref",
        'git -C "$REPO" tag -d maestro/$SID/1 >/dev/null 2>&1 || git -C "$REPO" tag maestro/$SID/99',
    ),
    "own_ref": ("session_ref", 'git -C "$REPO" update-ref refs/maestro/$SID/x{i} "$ZERO"'),
    "log": ("log", 'echo junk >> "$SDIR/events.jsonl"'),
}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.sampled_from(LEGIT), st.sampled_from(sorted(HOSTILE))), min_size=1, max_size=8), st.booleans()
)
def test_random_sequences_find_exactly_the_hostile_steps(steps: list[str], watch: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(Path(tmp), watch=watch)
        try:
            for i, step in enumerate(steps):
                if step == "note":
                    assert lab.attempt(also=lambda i=i: lab.session.note(f"n{i}")) == []
                elif step == "checkpoint":
                    assert lab.attempt(also=lambda i=i: lab.checkpoint(f"f{i}.txt")) == [], step
                elif step == "attempt":
                    assert lab.attempt(f"echo {i} > w{i}.txt") == []
                elif step == "show":
                    assert lab.attempt(also=lambda: lab.cp.show(lab.cp.head())) == []
                else:
                    area, command = HOSTILE[step]
                    found = lab.attempt(command.format(i=i))
                    assert area in {t.area for t in found}, (step, texts(found))
                    lab.guard.restore()
                    assert [t for t in lab.guard.check() if t.area == "session_ref"] == []
        finally:
            lab.close()
