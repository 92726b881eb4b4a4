"""``maestro land`` and ``maestro clean`` (issue 14, point 8): a session's branch into yours; its worktrees gone.

Real repositories and real sessions (the scripted agent, in process); the commands run as real subprocesses
(``python -m maestro``), and the git CLI checks what they did.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import maestro
from maestro.core.errors import SessionLocked
from maestro.git import housekeeping
from maestro.git.index import GitIndex
from maestro.git.places import worktrees_root
from maestro.git.worktrees import WorktreePool, session_worktrees
from maestro.run.cleaning import clean, clean_all
from maestro.run.landing import land
from maestro.run.runner import Runner
from maestro.store.filestore import Lock
from tests.support.checkpoints import IndexHeldOnce
from tests.support.runs import REQUEST, cli, config_text, in_process, task, write

ME = "-c", "user.name=u", "-c", "user.email=u@example.com"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *ME, *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def snapshot(repo: Path) -> dict[str, str]:
    """Every file of the checkout (ignored and untracked too; ``.flow/`` aside), its index, HEAD and branches."""
    out: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel in (".flow", ".git") or rel.startswith((".flow/", ".git/")):
            continue
        if path.is_file() and not path.is_symlink():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    out[".git/index"] = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    out[".git/HEAD"] = (repo / ".git" / "HEAD").read_text()
    out["refs"] = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return out


def refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def worktree_list(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


SCRIPT: dict[str, Any] = {
    "a": [{"actions": [write("a.txt", "a\n"), write("README.md", "# sample\n\nBuilt by a.\n"),
                       {"delete": {"path": ".gitignore"}}]}],
    "b": [{"actions": [write("pkg/b.py", "B = 2\n")]}],
}  # fmt: skip


def session(tmp_path: Path, script: Mapping[str, Any] = SCRIPT) -> tuple[maestro.Store, Runner, maestro.RunOutcome]:
    """A session run in process on a new repository ``tmp_path/repo`` (tasks a and b; the script says what)."""
    store, runner, _agent, plan = in_process(tmp_path, [task("a"), task("b")], script, config_text())
    return store, runner, runner.run(REQUEST, prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml")


def completed(tmp_path: Path) -> tuple[Path, str]:
    store, _runner, outcome = session(tmp_path)
    assert outcome.state == "completed"
    return store.repo, outcome.session_id


def paused(tmp_path: Path) -> tuple[maestro.Store, str, Runner]:
    """A session paused by an ambiguous failure of task b (its second attempt, after a resume, succeeds)."""
    script = {
        "a": SCRIPT["a"],
        "b": [{"actions": [write("pkg/b.py", "B = ?\n")], "fail": {"kind": "ambiguous", "message": "which B?"}},
              {"actions": [write("pkg/b.py", "B = 2\n")]}],
    }  # fmt: skip
    store, runner, outcome = session(tmp_path, script)
    assert outcome.state == "paused"
    return store, outcome.session_id, runner


def assert_at_session_head(repo: Path, sid: str) -> None:
    """The user's checkout: HEAD on master, its files and index exactly the session branch's tree, nothing else."""
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/master"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "write-tree") == git(repo, "rev-parse", f"maestro/{sid}^{{tree}}")  # the index
    for rel in git(repo, "ls-tree", "-r", "--name-only", f"maestro/{sid}").splitlines():
        assert (repo / rel).read_bytes() == subprocess.run(
            ["git", "show", f"maestro/{sid}:{rel}"], cwd=repo, capture_output=True, check=True
        ).stdout


# -- land ---------------------------------------------------------------------------------------------------------


def test_land_fast_forwards_the_users_branch_and_checkout(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    before = git(repo, "rev-parse", "master")
    head = git(repo, "rev-parse", f"maestro/{sid}")
    assert git(repo, "merge-base", "--is-ancestor", before, head) == ""
    out = cli("land", sid, cwd=repo)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert out.stdout.splitlines() == [f"fast-forward master to {head[:12]}", "4 files changed"]
    assert git(repo, "rev-parse", "master") == head
    assert git(repo, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"maestro/{sid}^{{tree}}")
    assert_at_session_head(repo, sid)
    assert (repo / "a.txt").read_text() == "a\n"
    assert (repo / "pkg" / "b.py").read_text() == "B = 2\n"
    assert not (repo / ".gitignore").exists()  # the session deleted it: so does the landing
    assert f"maestro land {sid}" in git(repo, "reflog", "-1", "master")


def test_land_waits_for_a_git_status_holding_the_users_index(tmp_path: Path) -> None:
    """An IDE's `git status` holds index.lock a moment, at the start and again at the end (the index written after
    the branch moved and the files were written): land waits for it, and never ends half-written."""
    repo, sid = completed(tmp_path)
    lock = repo / ".git" / "index.lock"
    os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    threading.Timer(0.3, lock.unlink).start()
    assert land(maestro.Store(repo), sid).how == "fast-forward"
    assert not lock.exists()
    assert_at_session_head(repo, sid)


def test_land_waits_for_a_lock_taken_just_before_it_writes_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, sid = completed(tmp_path)
    held = IndexHeldOnce(GitIndex, "path")
    held.install(monkeypatch)
    assert land(maestro.Store(repo), sid).how == "fast-forward"
    assert held.held == [repo / ".git" / "index.lock"] and held.writes >= 2  # met, then written once it went
    assert_at_session_head(repo, sid)


def test_a_lock_held_through_the_index_write_says_what_landed_and_how_to_refresh_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, sid = completed(tmp_path)
    held = IndexHeldOnce(GitIndex, "path", hold=60)
    held.install(monkeypatch)
    monkeypatch.setattr(housekeeping.time, "sleep", lambda s: None)  # the retries' pauses
    with pytest.raises(maestro.MaestroError) as info:
        land(maestro.Store(repo), sid)
    head = git(repo, "rev-parse", f"maestro/{sid}")
    lock = repo / ".git" / "index.lock"
    assert str(info.value) == (
        f"{lock}: another git process held it through every try; master is at {head[:12]} and its files are "
        "written, but the index still lists the old ones: `git reset -q` refreshes it once no other git runs"
    )
    lock.unlink()
    git(repo, "reset", "-q")  # what the message says
    assert_at_session_head(repo, sid)


def test_land_makes_a_merge_commit_when_the_user_committed_meanwhile(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    (repo / "mine.txt").write_text("mine\n")
    git(repo, "add", "mine.txt")
    git(repo, "commit", "-q", "-m", "my own work")
    ours, theirs = git(repo, "rev-parse", "master"), git(repo, "rev-parse", f"maestro/{sid}")
    expected_tree = git(repo, "merge-tree", "--write-tree", ours, theirs)  # git's own merge of the two
    out = cli("land", sid, cwd=repo)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    merged = git(repo, "rev-parse", "master")
    assert out.stdout.splitlines() == [f"merged maestro/{sid} into master as {merged[:12]}", "4 files changed"]
    assert git(repo, "rev-parse", f"{merged}^1", f"{merged}^2").split() == [ours, theirs]
    assert git(repo, "log", "-1", "--format=%B", merged) == f"Merge maestro/{sid}: {REQUEST}"
    assert git(repo, "rev-parse", "HEAD^{tree}") == expected_tree
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "write-tree") == expected_tree
    assert (repo / "mine.txt").read_text() == "mine\n" and (repo / "a.txt").read_text() == "a\n"
    assert git(repo, "rev-parse", f"maestro/{sid}") == theirs  # the session branch stays


def test_land_twice_is_a_no_op(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    assert cli("land", sid, cwd=repo).returncode == 0
    before = snapshot(repo)
    out = cli("land", sid, cwd=repo)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert "already landed" in out.stdout
    assert snapshot(repo) == before
    landed = land(maestro.Store(repo), sid)
    assert (landed.how, landed.files_changed) == ("already landed", 0)


def test_land_refuses_a_dirty_tree_and_writes_nothing(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    (repo / "README.md").write_text("# my edit\n")
    for name in ("u1.txt", "u2.txt", "u3.txt"):
        (repo / name).write_text("untracked\n")
    before = snapshot(repo)
    out = cli("land", sid, cwd=repo)
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert "uncommitted changes (README.md, u1.txt, u2.txt and 1 more)" in line, line
    assert out.stdout == ""
    assert snapshot(repo) == before


def test_land_refuses_a_conflicting_merge_and_writes_nothing(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    (repo / "README.md").write_text("# sample\n\nEdited by me.\n")
    (repo / "a.txt").write_text("mine\n")
    git(repo, "add", "README.md", "a.txt")
    git(repo, "commit", "-q", "-m", "my conflicting work")
    before = snapshot(repo)
    out = cli("land", sid, cwd=repo)
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert f"landing maestro/{sid} into master conflicts in README.md, a.txt" in line, line
    assert snapshot(repo) == before


def test_land_refuses_a_live_session(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    store = maestro.Store(repo)
    before = snapshot(repo)
    lock = Lock(store.session_dir(sid) / "lock", sid)
    try:
        out = cli("land", sid, cwd=repo)
    finally:
        lock.release()
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"maestro: error: session {sid} is locked by pid {os.getpid()}"]
    assert snapshot(repo) == before


def test_land_refuses_a_detached_head_and_a_missing_branch(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    git(repo, "checkout", "-q", "--detach")
    before = snapshot(repo)
    out = cli("land", sid, cwd=repo)
    assert out.returncode == 2 and "HEAD is detached" in out.stderr and len(out.stderr.splitlines()) == 1
    assert snapshot(repo) == before
    git(repo, "checkout", "-q", "master")
    git(repo, "branch", "-D", f"maestro/{sid}")
    before = snapshot(repo)
    out = cli("land", sid, cwd=repo)
    assert out.returncode == 2 and f"has no branch maestro/{sid}" in out.stderr
    assert snapshot(repo) == before


def test_land_wants_force_for_a_session_that_did_not_complete(tmp_path: Path) -> None:
    store, sid, _runner = paused(tmp_path)
    repo = store.repo
    before = snapshot(repo)
    out = cli("land", sid, cwd=repo)
    assert out.returncode == 2
    assert f"session {sid} is paused, not completed" in out.stderr and "--force" in out.stderr
    assert snapshot(repo) == before
    out = cli("land", sid, "--force", cwd=repo)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert git(repo, "rev-parse", "master") == git(repo, "rev-parse", f"maestro/{sid}")
    assert_at_session_head(repo, sid)
    assert not (repo / "pkg" / "b.py").exists()  # b failed: its attempt was never merged


def test_land_leaves_ignored_files_and_refuses_one_in_the_way(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "x.pyc").write_bytes(b"\x00cache")  # ignored by the .gitignore the session deletes
    git(repo, "commit", "-q", "--allow-empty", "-m", "move master")  # a merge, not a fast-forward
    info = repo / ".git" / "info" / "exclude"
    info.write_text(info.read_text() + "a.txt\n")
    (repo / "a.txt").write_text("my ignored a.txt\n")  # ignored, and in the way of the session's a.txt
    before = snapshot(repo)
    out = cli("land", sid, cwd=repo)
    assert out.returncode == 2 and "a.txt: an ignored file is in the way" in out.stderr, out.stderr
    assert snapshot(repo) == before  # found before the branch moved
    (repo / "a.txt").unlink()
    out = cli("land", sid, cwd=repo)
    assert out.returncode == 0, out.stderr
    assert (repo / "__pycache__" / "x.pyc").read_bytes() == b"\x00cache"


# -- clean --------------------------------------------------------------------------------------------------------


def test_clean_removes_a_paused_sessions_worktrees_and_its_resume_makes_them_again(tmp_path: Path) -> None:
    store, sid, runner = paused(tmp_path)
    repo = store.repo
    assert len(worktree_list(repo)) > 1  # a paused session keeps its worktrees
    kept = refs(repo)
    folders = session_worktrees(repo)[sid]
    out = cli("clean", sid, cwd=repo)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert out.stdout == f"session {sid}: removed {len(folders)} worktrees\n"
    assert worktree_list(repo) == [f"worktree {repo}"]  # the user's checkout alone
    assert not any(p.exists() for p in folders)
    assert not (repo / ".git" / "worktrees").exists()
    assert refs(repo) == kept  # branch, tags, refs/maestro/* stay
    assert cli("clean", sid, cwd=repo).stdout == "nothing to clean\n"
    # the resume makes the worktrees again and the session goes on to the end
    outcome = runner.resume(sid)
    assert outcome.state == "completed"
    assert git(repo, "show", f"maestro/{sid}:pkg/b.py") == "B = 2"


def test_clean_refuses_a_live_session(tmp_path: Path) -> None:
    store, sid, _runner = paused(tmp_path)
    repo = store.repo
    listing = worktree_list(repo)
    lock = Lock(store.session_dir(sid) / "lock", sid)
    try:
        out = cli("clean", sid, cwd=repo)
        with pytest.raises(SessionLocked):
            clean(store, sid)
    finally:
        lock.release()
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"maestro: error: session {sid} is locked by pid {os.getpid()}"]
    assert out.stdout == ""
    assert worktree_list(repo) == listing


def fake_session(store: maestro.Store, sid: str, *, workers: int = 1) -> list[Path]:
    """A session folder and worktrees (integration and ``workers`` pooled ones) at the repository's HEAD."""
    store.session_dir(sid).mkdir(parents=True)
    (store.session_dir(sid) / "events.jsonl").write_text("")
    pool = WorktreePool(store.repo, sid)
    head = git(store.repo, "rev-parse", "HEAD").encode()
    made = [pool.integration(head), *(pool.acquire(head) for _ in range(workers))]
    paths = [wt.path for wt in made]
    for wt in made:
        wt.close()
    return paths


def test_clean_all_skips_live_sessions_and_prunes_maestros_stale_entries_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "master")
    (repo / "f.txt").write_text("f\n")
    git(repo, "add", "f.txt")
    git(repo, "commit", "-q", "-m", "base")
    store = maestro.Store(repo)
    s1 = fake_session(store, "s1", workers=2)
    s2 = fake_session(store, "s2")
    live = fake_session(store, "live")
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "users-own"))  # the user's: never touched
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "users-gone"))
    subprocess.run(["rm", "-rf", str(tmp_path / "users-gone")], check=True)
    old = tmp_path / "old-root" / "old" / "maestro-old-w1"  # a maestro worktree made under another root, gone
    git(repo, "worktree", "add", "-q", "--detach", str(old))
    subprocess.run(["rm", "-rf", str(old)], check=True)
    kept = refs(repo)
    lock = Lock(store.session_dir("live") / "lock", "live")
    try:
        out = cli("clean", "--all", cwd=repo)
    finally:
        lock.release()
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert out.stdout.splitlines() == [
        "session s1: removed 3 worktrees",
        "session s2: removed 2 worktrees",
        "removed 1 stale worktree entry (their folders had gone)",
        f"session live: running (pid {os.getpid()}), skipped",
    ]
    assert not any(p.exists() for p in s1 + s2)
    assert all(p.exists() for p in live)
    listed = sorted(worktree_list(repo))
    assert listed == sorted(
        [f"worktree {repo}", f"worktree {tmp_path / 'users-own'}", f"worktree {tmp_path / 'users-gone'}"]
        + [f"worktree {p}" for p in live]
    )
    assert refs(repo) == kept
    assert sorted(session_worktrees(repo)) == ["live"]
    again = clean_all(store)
    assert (dict(again.removed), again.stale, dict(again.live)) == ({"live": 2}, 0, {})
    assert cli("clean", "--all", cwd=repo).stdout == "nothing to clean\n"
    assert not (worktrees_root(repo / ".git") / "live").exists()


def test_nothing_to_clean_after_a_session_that_ended(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    assert worktree_list(repo) == [f"worktree {repo}"]  # the run removed them itself
    for args in (("clean", sid), ("clean", "--all"), ("clean", "last")):
        out = cli(*args, cwd=repo)
        assert (out.returncode, out.stdout, out.stderr) == (0, "nothing to clean\n", "")


def test_clean_needs_a_session_or_all_and_a_known_session(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    for args in (("clean",), ("clean", sid, "--all")):
        out = cli(*args, cwd=repo)
        assert out.returncode == 2 and "name a SESSION or give --all" in out.stderr
    out = cli("clean", "nosuch", cwd=repo)
    assert out.returncode == 2 and "no session nosuch" in out.stderr
    out = cli("land", "nosuch", cwd=repo)
    assert out.returncode == 2 and "no session nosuch" in out.stderr


def test_land_refuses_a_repository_mid_merge_and_a_lock_left_by_another_git(tmp_path: Path) -> None:
    repo, sid = completed(tmp_path)
    store = maestro.Store(repo)
    before = refs(repo)
    merge_head = repo / ".git" / "MERGE_HEAD"
    merge_head.write_text(git(repo, "rev-parse", "HEAD") + "\n", encoding="utf-8")
    with pytest.raises(maestro.MaestroError, match=r"MERGE_HEAD: the repository is in the middle of a merge"):
        land(store, sid)
    merge_head.unlink()
    lock = repo / ".git" / "HEAD.lock"
    lock.write_text("", encoding="utf-8")
    old = lock.stat().st_mtime - 60
    os.utime(lock, (old, old))
    with pytest.raises(maestro.MaestroError, match=r"HEAD\.lock: a lock file left by another git process"):
        land(store, sid)
    assert refs(repo) == before  # nothing moved
    lock.unlink()
    assert land(store, sid).how in ("fast-forward", "merged")
