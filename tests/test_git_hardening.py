"""Hardening of maestro's git side (issue 15, items 2, 4 and 9): the repository as a session finds it, the lock
files a killed run leaves, the locks a live git holds, and what of the user's a session's base cannot hold.

Every test works on real repositories made with the git binary, and where it matters beside real git processes
(``git status`` in a loop, ``git merge`` stopped on a conflict) or a real ``maestro`` checkpointer killed with
SIGKILL.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dulwich.file import FileLocked
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro import Checkpointer, CheckpointError
from maestro.core.records import format_ts
from maestro.git.housekeeping import (
    clear_stale_index_locks,
    clear_stale_locks,
    index_locks,
    locked_path,
    session_ref_locks,
    stale_locks,
    with_index_retry,
)
from maestro.git.repostate import (
    BaseReport,
    base_report,
    git_dirs,
    in_progress,
    refuse_in_progress,
    save_staged,
)
from maestro.git.staging import Staging
from maestro.git.worktrees import WorktreePool
from tests.support.checkpoints import GIT, git, git_out, make_repo, put, rev

SID = "s-1"


def _ts(seconds_ago: float = 0.0) -> str:
    return format_ts(_dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=seconds_ago))


def _age(path: Path, seconds: float) -> Path:
    """Make ``path`` look ``seconds`` old."""
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def _touch(path: Path, seconds_old: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return _age(path, seconds_old)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


@pytest.fixture
def user(tmp_path: Path) -> Path:
    """The user's repository: a few files committed on master."""
    return make_repo(tmp_path / "user", {"a.txt": "a\n", "src/b.py": "b = 1\n", "README.md": "# r\n"})


def _session(user: Path, sid: str = SID) -> Checkpointer:
    """A maestro session's git side, as a run makes it: branch, checkpoint 0, the integration worktree."""
    cp = Checkpointer(user, sid, worktree=True)
    cp.start()
    return cp


# =====================================================================================
# where the git folders are: .git a folder or a gitdir file
# =====================================================================================


def _rev_parse(cwd: Path, *args: str) -> Path:
    return Path(git(cwd, "rev-parse", "--path-format=absolute", *args)).resolve()


def test_git_dirs_of_a_plain_repository_a_linked_worktree_and_a_submodule(user: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    git(user, "worktree", "add", "-q", "-b", "side", str(linked))
    lib = make_repo(tmp_path / "lib", {"lib.txt": "lib\n"})
    git(user, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "deps/lib")
    sub = user / "deps" / "lib"
    for where in (user, user / "src", linked, sub):
        dirs = git_dirs(where)
        assert dirs.git_dir == _rev_parse(where, "--git-dir")
        assert dirs.common_dir == _rev_parse(where, "--git-common-dir")
        assert dirs.top == _rev_parse(where, "--show-toplevel")
        # dulwich follows a gitdir file too, and agrees
        repo = Repo(str(dirs.top))
        assert Path(repo.controldir()).resolve() == dirs.git_dir
        assert Path(repo.commondir()).resolve() == dirs.common_dir
        repo.close()
    assert not git_dirs(user).gitfile
    assert git_dirs(linked).gitfile and git_dirs(linked).git_dir != git_dirs(linked).common_dir
    assert git_dirs(sub).gitfile and git_dirs(sub).git_dir == git_dirs(sub).common_dir == user / ".git/modules/deps/lib"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a gitdir file\n", "neither a git folder nor a gitdir file"),
        (b"", "neither a git folder nor a gitdir file"),
        (b"gitdir: \n", "neither a git folder nor a gitdir file"),
        (b"gitdir: /nonexistent/maestro/x\n", "which is not a git folder"),
        (b"gitdir: ../elsewhere\n", "which is not a git folder"),
    ],
)
def test_a_bad_gitdir_file_is_one_line_naming_it(tmp_path: Path, content: bytes, says: str) -> None:
    top = tmp_path / "top"
    (tmp_path / "elsewhere").mkdir()
    top.mkdir()
    (top / ".git").write_bytes(content)
    with pytest.raises(CheckpointError) as exc:
        git_dirs(top)
    text = _one_line(exc)
    assert text.startswith(f"{top / '.git'}") and says in text
    with pytest.raises(CheckpointError):
        refuse_in_progress(top)


def test_a_gitdir_file_pointing_nowhere_is_accepted_by_dulwich_until_it_is_read(tmp_path: Path) -> None:
    """Why git_dirs checks: dulwich takes a gitdir file that points nowhere and fails later with a KeyError."""
    top = tmp_path / "top"
    top.mkdir()
    (top / ".git").write_bytes(b"gitdir: /nonexistent/maestro/x\n")
    repo = Repo.discover(str(top))
    with pytest.raises(KeyError):
        repo.refs[Ref(b"HEAD")]


def test_no_repository_at_all(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match="not a git repository"):
        git_dirs(tmp_path / "plain")
    with pytest.raises(CheckpointError, match="no such directory"):
        git_dirs(tmp_path / "missing")


# =====================================================================================
# an operation under way: refused, naming it and its file
# =====================================================================================


def _conflicting(user: Path) -> None:
    """Branch ``other`` changes a.txt one way, master another (two commits on other, for a revert)."""
    git(user, "checkout", "-q", "-b", "other")
    put(user, "o.txt", "o\n")
    git(user, "add", "o.txt")
    git(user, "commit", "-q", "-m", "o")
    put(user, "a.txt", "other\n")
    git(user, "commit", "-q", "-am", "other")
    git(user, "checkout", "-q", "master")
    put(user, "a.txt", "master\n")
    git(user, "commit", "-q", "-am", "master")


def _fails(user: Path, *args: str) -> None:
    proc = subprocess.run([GIT, "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=user, capture_output=True)
    assert proc.returncode != 0, proc.stdout


def _merge(user: Path) -> None:
    _fails(user, "merge", "other")


def _rebase(user: Path) -> None:
    _fails(user, "rebase", "other")


def _rebase_apply(user: Path) -> None:
    _fails(user, "rebase", "--apply", "other")


def _am(user: Path) -> None:
    patch = git(user, "format-patch", "-1", "other", "-o", str(user.parent / "patches"))
    _fails(user, "am", patch)


def _cherry_pick(user: Path) -> None:
    _fails(user, "cherry-pick", "other")


def _revert(user: Path) -> None:
    put(user, "a.txt", "master again\n")
    git(user, "commit", "-q", "-am", "again")
    _fails(user, "revert", "--no-edit", "HEAD~1")


def _cherry_pick_several(user: Path) -> None:
    git(user, "checkout", "-q", "other")
    put(user, "p.txt", "p\n")
    git(user, "add", "p.txt")
    git(user, "commit", "-q", "-m", "p")
    git(user, "checkout", "-q", "master")
    _fails(user, "cherry-pick", "master..other")  # o goes in, other stops on the conflict, p waits
    git(user, "checkout", "-q", "--theirs", "a.txt")
    git(user, "add", "a.txt")
    git(user, "commit", "-q", "--no-edit")  # CHERRY_PICK_HEAD goes; the sequence is still under way


def _bisect(user: Path) -> None:
    git(user, "bisect", "start")


@pytest.mark.parametrize(
    ("make", "operation", "file"),
    [
        (_merge, "a merge", "MERGE_HEAD"),
        (_rebase, "a rebase", "rebase-merge"),
        (_rebase_apply, "a rebase", "rebase-apply"),
        (_am, "a git am", "rebase-apply"),
        (_cherry_pick, "a cherry-pick", "CHERRY_PICK_HEAD"),
        (_revert, "a revert", "REVERT_HEAD"),
        (_cherry_pick_several, "a cherry-pick or revert of several commits", "sequencer/todo"),
        (_bisect, "a bisect", "BISECT_LOG"),
    ],
)
def test_an_operation_under_way_is_refused_naming_it_and_its_file(
    user: Path, make: Callable[[Path], None], operation: str, file: str
) -> None:
    _conflicting(user)
    refuse_in_progress(user)  # nothing under way yet
    make(user)
    found = in_progress(user / "src")
    assert found is not None and found.operation == operation and found.path == user / ".git" / file
    with pytest.raises(CheckpointError) as exc:
        refuse_in_progress(user)
    text = _one_line(exc)
    assert text.startswith(str(user / ".git" / file)) and f"in the middle of {operation}" in text


def test_an_operation_under_way_in_a_linked_worktree_is_its_own(user: Path, tmp_path: Path) -> None:
    _conflicting(user)
    linked = tmp_path / "linked"
    git(user, "worktree", "add", "-q", "--detach", str(linked), "master")
    _fails(linked, "merge", "other")
    with pytest.raises(CheckpointError, match="in the middle of a merge") as exc:
        refuse_in_progress(linked)
    assert str(git_dirs(linked).git_dir / "MERGE_HEAD") in str(exc.value)
    refuse_in_progress(user)  # the main worktree is not merging
    git(linked, "merge", "--abort")
    refuse_in_progress(linked)


# =====================================================================================
# the lock files a killed run left
# =====================================================================================


def test_a_dulwich_ref_lock_makes_every_later_write_fail_with_filelocked(user: Path) -> None:
    """What wedged a session: a killed run's ``refs/heads/maestro/<s>.lock`` fails the next write of the branch,
    a raw dulwich ``FileLocked`` from the checkpointer, every time; clear_stale_locks removes it first."""
    cp = _session(user)
    branch = Ref(f"refs/heads/maestro/{SID}".encode())
    lock = _touch(user / ".git" / "refs" / "heads" / "maestro" / f"{SID}.lock")
    repo = Repo(str(user))
    head = repo.refs[branch]
    with pytest.raises(FileLocked):
        repo.refs.set_if_equals(branch, head, head)
    put(cp.workdir, "new.txt", "new\n")
    # not a passing problem: the checkpointer waits for it (a few seconds), then says which lock in one line
    with pytest.raises(CheckpointError, match=r"s-1\.lock: held by another git process through 10 tries"):
        Checkpointer(user, SID, worktree=True).checkpoint("after the crash")
    assert clear_stale_locks(user, SID, _ts(60)) == [lock]
    assert not lock.exists()
    record = Checkpointer(user, SID, worktree=True).checkpoint("after the crash")
    assert record is not None and rev(user, f"refs/heads/maestro/{SID}") == record.commit


def test_each_kind_of_lock_is_sorted(user: Path) -> None:
    """The dead run's own locks are removable; the user's and unattributable ones block; young ones wait."""
    cp = _session(user)
    pool = WorktreePool(user, SID)
    head = cp.head()
    w1 = pool.acquire(head)
    _session(user, "other-1")
    _session(user, f"{SID}-2")  # a session whose id starts with this one's
    git_dir = user / ".git"
    admin_int = git_dir / "worktrees" / f"maestro-{SID}-integration"
    admin_w1 = git_dir / "worktrees" / f"maestro-{SID}-w1"
    assert admin_int.is_dir() and admin_w1.is_dir() and w1.path.is_dir()
    obj = git_dir / "objects" / "ab"
    last_event = _ts(30)  # the dead run's last event, 30 s ago; it died after it
    removable = [
        _touch(git_dir / "refs" / "heads" / "maestro" / f"{SID}.lock"),  # even this young: no one else writes it
        _touch(git_dir / "refs" / "tags" / "maestro" / SID / "3.lock", 5),
        _touch(git_dir / "refs" / "maestro" / SID / "attempts" / "t1" / "1.lock", 5),
        _touch(git_dir / "refs" / "maestro" / SID / "pre-rollback-2.lock", 3600),  # older than the last event too
        _touch(admin_int / "index.lock", 5),
        _touch(admin_int / "HEAD.lock", 5),
        _touch(admin_w1 / "index.lock", 3600),
        _touch(obj / ("c" * 38 + ".lock"), 10),  # a loose object dulwich was writing when the run died
    ]
    blocking = [
        _touch(obj / ("d" * 38 + ".lock"), 3600),  # from before the run's last event: not provably its
        _touch(git_dir / "packed-refs.lock", 5),
    ]
    users = [  # in the way of a land, not of a resume
        _touch(git_dir / "HEAD.lock", 5),
        _touch(git_dir / "index.lock", 5),
        _touch(git_dir / "refs" / "heads" / "master.lock", 5),  # the user's current branch
    ]
    young = [
        _touch(admin_w1 / "HEAD.lock", 0.2),  # maybe a git an agent left running there
        _touch(obj / ("e" * 38 + ".lock"), 0.2),  # maybe another session writing that object now
    ]
    left_alone = [
        _touch(git_dir / "refs" / "heads" / "maestro" / "other-1.lock", 5),  # another session's
        _touch(git_dir / "worktrees" / "maestro-other-1-integration" / "index.lock", 5),
        _touch(git_dir / "worktrees" / f"maestro-{SID}-2-integration" / "index.lock", 5),
        _touch(git_dir / "refs" / "maestro" / f"{SID}-2" / "base.lock", 5),
        _touch(git_dir / "refs" / "heads" / "feature.lock", 5),  # a branch the user is not on
        _touch(obj / "tmp_obj_abc123", 3600),  # git's own temporary object: not a lock
    ]
    found = stale_locks(user, SID, last_event)
    assert found.removable == sorted(removable)
    assert found.blocking == sorted(blocking)
    removable_now, blocking_now = found  # a plain pair
    assert not {*young, *users, *left_alone} & {*removable_now, *blocking_now}
    assert stale_locks(user, SID, last_event, with_user_locks=True) == (sorted(removable), sorted(blocking + users))
    # a git process's lock just made (git status beside maestro) is no one's leftover yet
    for lock in [*blocking[1:], *users]:
        _age(lock, 0.1)
    assert stale_locks(user, SID, last_event, with_user_locks=True).blocking == [blocking[0]]
    # nothing of the log at all: a loose object's lock is not provably the run's
    assert removable[-1] in stale_locks(user, SID, None).blocking


def test_blocking_locks_stop_the_clearing_before_anything_is_removed(user: Path) -> None:
    _session(user)
    own = _touch(user / ".git" / "refs" / "heads" / "maestro" / f"{SID}.lock")
    theirs = _touch(user / ".git" / "HEAD.lock", 10)
    assert clear_stale_locks(user, SID, _ts(60), with_user_locks=False) == [own]  # a resume: HEAD is not its
    own = _touch(own)
    with pytest.raises(CheckpointError) as exc:
        clear_stale_locks(user, SID, _ts(60), with_user_locks=True)
    assert _one_line(exc) == (
        f"{theirs}: a lock file left by another git process; remove it if no git command is running"
    )
    assert own.exists() and theirs.exists()
    theirs.unlink()
    assert clear_stale_locks(user, SID, _ts(60), with_user_locks=True) == [own]


@pytest.fixture
def holder(user: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process holding the session's lock, as a running ``maestro run`` does."""
    folder = user / ".flow" / "maestro" / "sessions" / SID
    folder.mkdir(parents=True)
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder / "lock")], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


def test_a_live_run_of_the_session_owns_its_locks(user: Path, holder: subprocess.Popen[bytes]) -> None:
    _session(user)
    branch = _touch(user / ".git" / "refs" / "heads" / "maestro" / f"{SID}.lock", 10)
    index = _touch(user / ".git" / "worktrees" / f"maestro-{SID}-integration" / "index.lock", 10)
    found = stale_locks(user, SID, _ts(60))
    assert found.removable == [] and found.blocking == sorted([branch, index])
    with pytest.raises(CheckpointError, match="a lock file left by another git process"):
        clear_stale_locks(user, SID, _ts(60))
    holder.kill()
    holder.wait()
    assert stale_locks(user, SID, _ts(60)).removable == sorted([branch, index])


def test_a_lock_a_failed_resume_left_behind_is_still_removed(user: Path) -> None:
    """The wedge: a lock older than the log's last event (a resume that wrote events, then failed on the lock
    because it was under two seconds old) was never removed by the old rule, so every resume failed."""
    _session(user)
    lock = _touch(user / ".git" / "worktrees" / f"maestro-{SID}-integration" / "index.lock", 1.0)
    last_event = _ts(0)  # the failed resume's rewind event, after the lock was made
    time.sleep(1.1)  # the lock is two seconds old now
    clear_stale_index_locks(index_locks(user, SID), last_event)  # the rule the runner has today
    assert lock.exists()
    assert stale_locks(user, SID, last_event).removable == [lock]
    assert clear_stale_locks(user, SID, last_event) == [lock]


def test_a_young_lock_is_waited_for_then_removed(user: Path) -> None:
    _session(user)
    lock = _touch(user / ".git" / "worktrees" / f"maestro-{SID}-integration" / "index.lock")
    assert stale_locks(user, SID, _ts(60), min_age_s=0.5) == ([], [])
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    assert clear_stale_locks(user, SID, _ts(60), min_age_s=0.5, sleep=sleep) == [lock]
    assert len(slept) == 1 and 0.3 < slept[0] <= 0.6


def test_a_lock_a_live_git_keeps_making_is_not_removed(user: Path) -> None:
    """A git an agent left running in the session's worktree: its index.lock is made again and again."""
    _session(user)
    lock = user / ".git" / "worktrees" / f"maestro-{SID}-integration" / "index.lock"
    stop = threading.Event()

    def git_like() -> None:
        while not stop.is_set():
            with open(lock, "wb"):
                pass
            time.sleep(0.02)
            lock.unlink(missing_ok=True)

    t = threading.Thread(target=git_like)
    t.start()
    try:
        while not lock.exists():
            time.sleep(0.001)
        with pytest.raises(CheckpointError, match="held by a running git process"):
            clear_stale_locks(user, SID, _ts(60), min_age_s=0.3)
    finally:
        stop.set()
        t.join()


def test_another_session_writing_objects_meanwhile_is_no_obstacle(user: Path) -> None:
    """Another live session writes loose objects through dulwich all the time: some object lock is always young."""
    _session(user)
    own = _touch(user / ".git" / "refs" / "maestro" / SID / "base.lock")
    dead = _touch(user / ".git" / "objects" / "aa" / ("a" * 38 + ".lock"))  # the dead run's, just made
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            lock = _touch(user / ".git" / "objects" / "bb" / (f"{k:038x}" + ".lock"))
            time.sleep(0.05)
            lock.unlink()

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert clear_stale_locks(user, SID, _ts(60), min_age_s=0.3) == [own, dead]
    finally:
        stop.set()
        t.join()


def test_the_session_lock_helpers_follow_a_gitdir_file(user: Path, tmp_path: Path) -> None:
    """A session started in a linked worktree: its refs and worktrees' admin folders are in the common dir."""
    linked = tmp_path / "linked"
    git(user, "worktree", "add", "-q", "-b", "side", str(linked))
    repo = Repo(str(linked))
    WorktreePool(linked, SID).integration(repo.head())
    repo.close()
    common = user / ".git"
    branch = _touch(common / "refs" / "heads" / "maestro" / f"{SID}.lock", 5)
    index = _touch(common / "worktrees" / f"maestro-{SID}-integration" / "index.lock", 5)
    assert session_ref_locks(linked, SID) == [branch]
    assert index_locks(linked, SID) == [index]
    theirs = _touch(common / "worktrees" / "linked" / "HEAD.lock", 5)  # the user's linked worktree's HEAD
    assert stale_locks(linked, SID, _ts(60)) == (sorted([branch, index]), [])
    assert stale_locks(linked, SID, _ts(60), with_user_locks=True) == (sorted([branch, index]), [theirs])


_CHILD = """
import sys
from pathlib import Path
from maestro.git.checkpoints import Checkpointer
from maestro.store.filestore import Lock

repo, sid = sys.argv[1], sys.argv[2]
folder = Path(repo) / ".flow" / "maestro" / "sessions" / sid
folder.mkdir(parents=True, exist_ok=True)
lock = Lock(folder / "lock", sid)  # what a run holds
cp = Checkpointer(repo, sid, worktree=True)
cp.start()
print("ready", flush=True)
i = 0
while True:
    i += 1
    for k in range(5):
        (cp.workdir / f"f{(i + k) % 9}.txt").write_text(f"{i}\\n" * (50 + k))
    cp.checkpoint(f"c{i}")
    cp.rollback(0)
"""


def test_a_checkpointer_killed_at_random_moments_never_leaves_a_wedged_session(user: Path, tmp_path: Path) -> None:
    """SIGKILL a process checkpointing and rolling back in a loop, again and again; after each kill the locks it
    left are cleared and the session's git side works (checkpoint, rollback) at once."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    rng = random.Random(15)
    for _ in range(8):
        last_event = _ts(0.5)
        proc = subprocess.Popen([sys.executable, str(script), str(user), SID], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        clear_stale_locks(user, SID, last_event, min_age_s=0.2)
        cp = Checkpointer(user, SID, worktree=True)
        cp.start()
        put(cp.workdir, "after.txt", f"{time.time()}\n")
        assert cp.checkpoint("after the kill") is not None
        cp.rollback(0)
        assert not (cp.workdir / "after.txt").exists()
    assert git_out(user, "fsck", "--no-dangling", "--no-progress") == b""


# =====================================================================================
# a lock a live git holds: wait and try again
# =====================================================================================


def _hold(lock: Path, seconds: float) -> threading.Thread:
    """Hold ``lock`` as a git would: made now, removed after ``seconds``."""
    _touch(lock)

    def release() -> None:
        time.sleep(seconds)
        lock.unlink()

    t = threading.Thread(target=release)
    t.start()
    return t


def test_a_capture_waits_for_a_git_holding_the_worktree_index(user: Path) -> None:
    head = _session(user).head()
    wt = WorktreePool(user, "wt-1").acquire(head)
    put(wt.path, "x.txt", "x\n")
    lock = git_dirs(wt.path).git_dir / "index.lock"
    t = _hold(lock, 0.3)
    with pytest.raises(CheckpointError) as exc:
        wt._capture(head, "attempt", b"refs/maestro/wt-1/attempts/t/1", None)  # one try: refused, naming the lock
    assert locked_path(exc.value) == str(lock)
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    commit, changed = with_index_retry(
        lambda: wt._capture(head, "attempt", b"refs/maestro/wt-1/attempts/t/1", None), sleep=sleep
    )
    t.join()
    assert changed and slept and slept == [0.05 * 2**k for k in range(len(slept))]
    assert rev(user, "refs/maestro/wt-1/attempts/t/1") == commit.decode()
    assert git(wt.path, "status", "--porcelain") == ""


def test_a_ref_write_waits_for_a_dulwich_lock(user: Path) -> None:
    repo = Repo(str(user))
    ref = Ref(b"refs/heads/maestro/x")
    head = repo.refs[Ref(b"HEAD")]
    t = _hold(user / ".git" / "refs" / "heads" / "maestro" / "x.lock", 0.2)
    assert with_index_retry(lambda: repo.refs.set_if_equals(ref, None, head))
    t.join()
    assert repo.refs[ref] == head


def test_the_retry_gives_up_with_one_line_naming_the_lock(user: Path) -> None:
    lock = _touch(user / ".git" / "refs" / "heads" / "maestro" / "x.lock")
    repo = Repo(str(user))
    head = repo.refs[Ref(b"HEAD")]
    calls: list[int] = []

    def write() -> bool:
        calls.append(1)
        return repo.refs.set_if_equals(Ref(b"refs/heads/maestro/x"), None, head)

    with pytest.raises(CheckpointError) as exc:
        with_index_retry(write, attempts=4, sleep=lambda s: None)
    assert _one_line(exc).startswith(f"{lock}: held by another git process through 4 tries (0.4 s)")
    assert len(calls) == 4


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def fails() -> None:
        calls.append(1)
        raise CheckpointError("/x: not a git repository")

    with pytest.raises(CheckpointError, match="not a git repository"):
        with_index_retry(fails, sleep=lambda s: None)
    assert calls == [1]
    with pytest.raises(ValueError, match="attempts"):
        with_index_retry(lambda: None, attempts=0)


class _GitStatusLoop:
    """``git status`` run again and again in ``where`` (an IDE, a shell prompt), while a sampler notes whether its
    ``index.lock`` was ever seen."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.lock = git_dirs(where).git_dir / "index.lock"
        self.stop = threading.Event()
        self.runs = 0
        self.lock_seen = False
        self.threads = [threading.Thread(target=self._loop), threading.Thread(target=self._sample)]

    def _loop(self) -> None:
        while not self.stop.is_set():
            subprocess.run([GIT, "status", "--porcelain"], cwd=self.where, capture_output=True, check=False)
            self.runs += 1

    def _sample(self) -> None:
        while not self.stop.is_set() and not self.lock_seen:
            self.lock_seen = self.lock.exists()
            time.sleep(0.0005)

    def __enter__(self) -> _GitStatusLoop:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def _index_state(user: Path) -> tuple[bytes, int, int]:
    index = user / ".git" / "index"
    st = index.stat()
    return index.read_bytes(), st.st_mtime_ns, st.st_ino


def test_staging_the_users_dirty_tree_beside_git_status_never_writes_their_index(user: Path) -> None:
    for i in range(150):
        put(user, f"many/f{i}.txt", f"{i}\n")
    git(user, "add", "-A")
    git(user, "commit", "-q", "-m", "many")
    for i in range(0, 150, 7):
        put(user, f"many/f{i}.txt", f"changed {i}\n")
    put(user, "untracked.txt", "u\n")
    put(user, "staged.txt", "s\n")
    git(user, "add", "staged.txt")
    time.sleep(1.1)  # out of git's racy window: the next git status settles the index once and for all
    git(user, "status", "--porcelain")
    before = _index_state(user)
    with _GitStatusLoop(user) as loop:
        repo = Repo(str(user))
        for _ in range(15):
            staging = Staging(repo)
            staging.load(repo)
            scan = staging.scan()
            assert b"many/f7.txt" in scan.changed and b"untracked.txt" in scan.changed
            staging.apply(scan, write_index=False)
        report = base_report(user)
        cp = Checkpointer(user, SID, worktree=True)
        cp.start()
        deadline = time.time() + 10
        while (loop.runs < 20 or not loop.lock_seen) and time.time() < deadline:
            time.sleep(0.05)
    assert loop.runs >= 20 and loop.lock_seen  # git status did take the user's index.lock meanwhile
    assert _index_state(user) == before
    assert report.staged == ("staged.txt",)
    assert (cp.workdir / "untracked.txt").read_text() == "u\n"
    assert (cp.workdir / "many" / "f7.txt").read_text() == "changed 7\n"


def test_captures_in_a_worktree_beside_a_git_status_loop_there_all_go_through(user: Path) -> None:
    head = _session(user).head()
    wt = WorktreePool(user, "wt-2").acquire(head)
    retries: list[float] = []

    def sleep(s: float) -> None:
        retries.append(s)
        time.sleep(s)

    with _GitStatusLoop(wt.path) as loop:
        parent = head
        for i in range(25):
            put(wt.path, f"f{i % 4}.txt", f"{i}\n")
            ref = f"refs/maestro/wt-2/attempts/t/{i}".encode()
            # a failed index write leaves the in-memory index ahead of the file: read it again before retrying
            parent, changed = with_index_retry(
                functools.partial(wt.capture, parent, f"attempt {i}", ref), sleep=sleep, before_retry=wt._staging.forget
            )
            assert changed
            time.sleep(0.01)
    assert loop.runs >= 10 and loop.lock_seen
    assert git(wt.path, "status", "--porcelain") == ""
    assert git(wt.path, "rev-parse", "HEAD") == parent.decode()
    assert git_out(user, "fsck", "--no-dangling", "--no-progress") == b""


def test_checkpoints_beside_a_git_status_loop_in_the_integration_worktree_all_go_through(user: Path) -> None:
    cp = _session(user)
    with _GitStatusLoop(cp.workdir) as loop:
        for i in range(20):
            put(cp.workdir, f"f{i % 3}.txt", f"{i}\n")
            record = with_index_retry(functools.partial(cp.checkpoint, f"c{i}"), before_retry=cp._staging.forget)
            assert record is not None and record.n == i + 1
            time.sleep(0.01)
    assert loop.runs >= 10 and loop.lock_seen
    assert git(cp.workdir, "status", "--porcelain") == ""
    assert record is not None and rev(user, f"refs/heads/maestro/{SID}") == record.commit


# =====================================================================================
# what of the user's the base snapshot cannot hold
# =====================================================================================


def _write_tree(user: Path) -> str:
    """The tree ``git write-tree`` makes of the user's index, on a copy (write-tree rewrites the index)."""
    with tempfile.TemporaryDirectory(prefix="maestro-copy-") as d:
        copy = Path(d) / "repo"
        shutil.copytree(user, copy, symlinks=True)
        return git(copy, "write-tree")


def test_a_clean_repository_has_nothing_outside_the_base(user: Path) -> None:
    report = base_report(user)
    assert report == BaseReport(rev(user, "HEAD"), None, (), (), ())
    assert report.notes() == []
    assert save_staged(user, SID, report, when=_dt.datetime.now(_dt.UTC)) is None
    assert rev(user, f"refs/maestro/{SID}/index") is None


def test_staged_content_is_kept_as_a_commit_of_the_index(user: Path) -> None:
    put(user, "a.txt", "staged\n")
    put(user, "new.txt", "new, staged\n")
    git(user, "add", "a.txt", "new.txt")
    git(user, "rm", "-q", "--cached", "README.md")
    put(user, "intent.txt", "i\n")
    git(user, "add", "-N", "intent.txt")  # intent to add: git write-tree leaves it out
    put(user, "a.txt", "edited after staging\n")  # the base has this; the index has "staged"
    before = _index_state(user)
    report = base_report(user)
    assert _index_state(user) == before
    assert report.index_tree == _write_tree(user)
    assert report.staged == ("README.md", "a.txt", "new.txt")
    assert report.notes()[0].startswith("Staged, not committed: README.md, a.txt, new.txt")
    commit = save_staged(user, SID, report, when=_dt.datetime(2026, 1, 2, tzinfo=_dt.UTC))
    assert commit is not None and rev(user, f"refs/maestro/{SID}/index") == commit
    assert git(user, "rev-parse", f"{commit}^{{tree}}") == report.index_tree
    assert git(user, "rev-parse", f"{commit}^") == rev(user, "HEAD")
    assert git(user, "show", f"{commit}:a.txt") == "staged"
    # a resumed start keeps the ref as it is
    assert save_staged(user, SID, report, when=_dt.datetime.now(_dt.UTC)) == commit
    cp = Checkpointer(user, SID, worktree=True)
    cp.start()
    assert (cp.workdir / "a.txt").read_text() == "edited after staging\n"
    assert git_out(user, "fsck", "--strict", "--no-dangling", "--no-progress") == b""


def test_staged_files_in_a_repository_without_commits(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "fresh", commit=False)
    put(user, "first.txt", "1\n")
    git(user, "add", "first.txt")
    report = base_report(user)
    assert report.head is None and report.staged == ("first.txt",) and report.index_tree == _write_tree(user)
    commit = save_staged(user, SID, report, when=_dt.datetime.now(_dt.UTC))
    assert commit is not None and git(user, "rev-list", "--parents", "-n", "1", commit) == commit


def test_an_index_with_unmerged_paths_is_refused(user: Path) -> None:
    _conflicting(user)
    _fails(user, "merge", "other")
    (user / ".git" / "MERGE_HEAD").unlink()  # a conflict left without its merge (a stash pop, say)
    assert in_progress(user) is None
    with pytest.raises(CheckpointError, match="unmerged paths"):
        base_report(user)


def test_empty_folders_are_noted(user: Path) -> None:
    for d in ("empty", "deep/er/est", "holds/nothing/but", "build/out", "src/gone"):
        (user / d).mkdir(parents=True)
    put(user, "holds/a-file.txt", "x\n")
    put(user, ".gitignore", "build/\n")
    (user / ".flow" / "maestro").mkdir(parents=True)  # maestro's own
    nested = make_repo(user / "nested", commit=False)  # someone else's repository: left alone
    (nested / "inner-empty").mkdir()
    report = base_report(user)
    assert report.empty_folders == ("deep", "empty", "holds/nothing", "src/gone")
    assert report.notes() == [
        "Empty folders are not in the session (git stores no folders): deep, empty, holds/nothing and 1 more"
    ]
    cp = Checkpointer(user, SID, worktree=True)
    cp.start()
    assert not any((cp.workdir / d).exists() for d in report.empty_folders)  # the reason for the note


def test_submodules_with_uncommitted_work_are_reported_as_not_captured(user: Path, tmp_path: Path) -> None:
    for name in ("clean", "edited", "untracked", "moved", "gone"):
        lib = make_repo(tmp_path / f"lib-{name}", {"lib.txt": "lib\n", "other.txt": "o\n"})
        git(user, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), f"deps/{name}")
    git(user, "commit", "-q", "-m", "submodules")
    put(user, "deps/edited/lib.txt", "edited\n")
    put(user, "deps/untracked/new.txt", "new\n")
    put(user, "deps/moved/lib.txt", "committed in the submodule\n")
    git(user / "deps" / "moved", "commit", "-q", "-am", "inside")
    git(user / "deps" / "moved", "rm", "-q", "--cached", "other.txt")  # staged in the submodule
    git(user, "submodule", "deinit", "-q", "-f", "deps/gone")  # not checked out: nothing there to lose
    report = base_report(user)
    got = {s.path: s.changes for s in report.submodules}
    assert got == {
        "deps/edited": ("modified content",),
        "deps/untracked": ("untracked content",),
        "deps/moved": ("new commits", "modified content", "untracked content"),
    }
    moved = next(s for s in report.submodules if s.path == "deps/moved")
    assert moved.head == git(user / "deps" / "moved", "rev-parse", "HEAD") != moved.recorded
    assert moved.recorded == git(user, "rev-parse", "HEAD:deps/moved")
    # what git itself says of them
    status = git(user, "status", "--porcelain=v2")
    for path in got:
        assert f" {path}" in status
    assert (
        "Submodule deps/moved has new commits, modified content, untracked content: not captured (only its commit is)"
        in report.notes()
    )
