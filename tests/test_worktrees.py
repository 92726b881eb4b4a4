"""maestro's own worktrees (:mod:`maestro.git.worktrees`), checked against git itself.

Every test builds a real repository with the git binary and asks git what it sees: ``git worktree
list``, ``git -C <worktree> status --porcelain``, ``git ls-tree`` of a commit against the files on
disk (mode, bytes, symlink targets), ``git diff``.  The user's checkout (files, index, HEAD, branches)
must be byte-identical through everything the pool does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.diff_tree import tree_changes
from dulwich.objects import ObjectID
from dulwich.repo import Repo
from dulwich.worktree import add_worktree
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from maestro import CheckpointError, TickingClock
from maestro.git import inotify
from maestro.git.index import GitIndex
from maestro.git.places import worktrees_root
from maestro.git.staging import Staging
from maestro.git.worktrees import Worktree, WorktreePool, _PackReader, _tree_diff, session_worktrees
from tests.support.checkpoints import (
    GITLINK,
    IndexHeldOnce,
    add_all_tree_in_place,
    commit_tree,
    git,
    link,
    make_repo,
    parents,
    put,
    rev,
    snapshot,
    tree_files,
    walk,
)

SID = "s1"
IGNORE = "*.log\nbuild/\n"


def oid(cwd: Path, ref: str) -> ObjectID:
    found = rev(cwd, ref)
    assert found is not None, ref
    return ObjectID(found.encode())


def commit_all(repo: Path, message: str) -> ObjectID:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return oid(repo, "HEAD")


def status(wt: Path) -> str:
    return git(wt, "status", "--porcelain", "--untracked-files=all")


def worktree_list(repo: Path) -> list[tuple[str, str]]:
    """``git worktree list --porcelain``: (path, HEAD commit or branch) of each worktree."""
    out: list[tuple[str, str]] = []
    for block in git(repo, "worktree", "list", "--porcelain").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        out.append((fields["worktree"], fields["HEAD"] if "detached" in fields else fields.get("branch", "")))
    return out


def tracked(root: Path) -> dict[str, tuple[str, bytes]]:
    """The files of a worktree git does not ignore (as ``walk`` sees them)."""
    files = walk(root)
    if not files:
        return {}
    data = b"".join(os.fsencode(p) + b"\0" for p in files)
    proc = subprocess.run(["git", "check-ignore", "-z", "--stdin"], cwd=root, input=data, capture_output=True)
    assert proc.returncode in (0, 1), proc.stderr
    skip = {os.fsdecode(p) for p in proc.stdout.split(b"\0") if p}
    return {p: e for p, e in files.items() if p not in skip}


def user_state(repo: Path) -> dict[str, object]:
    """What of the user's checkout must never change: every file but .git/, the index, HEAD, the branches."""
    files = {p: v for p, v in snapshot(repo).items() if p != ".git" and not p.startswith(".git/")}
    heads = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")
    return {
        "files": files,
        "index": (repo / ".git" / "index").read_bytes() if (repo / ".git" / "index").exists() else None,
        "HEAD": (repo / ".git" / "HEAD").read_bytes(),
        "heads": heads,
    }


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A repository with a few files (a folder, an executable, a symlink, an ignore file) committed."""
    repo = make_repo(
        tmp_path / "repo",
        {".gitignore": IGNORE, "README.md": "readme\n", "src/app.py": "print('app')\n", "src/lib/util.py": "u = 1\n"},
    )
    put(repo, "run.sh", "#!/bin/sh\necho run\n", exe=True)
    link(repo, "docs", "src/lib")
    commit_all(repo, "more")
    return repo


@pytest.fixture
def pool(base: Path) -> Iterator[WorktreePool]:
    p = WorktreePool(base, SID, clock=TickingClock())
    yield p
    p.remove_all()


# =====================================================================================
# creating
# =====================================================================================


def test_a_new_worktree_is_the_commit_with_a_clean_status_and_a_detached_head(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    integration = pool.integration(head)
    w1 = pool.acquire(head)
    assert (integration.name, w1.name) == ("integration", "w1")
    assert integration.path.name == f"maestro-{SID}-integration" and w1.path.name == f"maestro-{SID}-w1"
    for wt in (integration, w1):
        assert wt.session == SID and wt.head() == head
        assert tracked(wt.path) == tree_files(base, "HEAD")  # modes, bytes, the symlink's target
        assert status(wt.path) == ""
        assert git(wt.path, "rev-parse", "HEAD") == head.decode()
        proc = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=wt.path, capture_output=True)
        assert proc.returncode == 1  # detached
        # outside the user's working tree and outside .git/, where git/places puts them
        assert base not in wt.path.parents and wt.path.parent == worktrees_root(base / ".git") / SID
        assert (base / ".git" / "worktrees" / wt.path.name / "gitdir").read_text().strip() == str(wt.path / ".git")
    assert worktree_list(base) == [
        (str(base), "refs/heads/master"),
        (str(integration.path), head.decode()),
        (str(w1.path), head.decode()),
    ]
    assert git(base, "fsck", "--no-dangling", "--no-progress") == ""


def test_a_git_status_holding_a_new_worktrees_index_is_waited_for(
    base: Path, pool: WorktreePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = IndexHeldOnce(GitIndex, "path")
    held.install(monkeypatch)
    head = oid(base, "HEAD")
    w1 = pool.acquire(head)
    assert held.held and held.held[0].parent.name == w1.path.name and held.writes >= 2
    assert status(w1.path) == "" and tracked(w1.path) == tree_files(base, "HEAD")


def test_a_new_worktree_of_many_files_is_written_on_threads_and_is_exact(tmp_path: Path) -> None:
    files = {f"pkg{i // 100:02d}/m{i % 100:02d}.py": f"v = {i}\n" for i in range(2_600)}  # past _THREADED_FROM
    repo = make_repo(tmp_path / "big", files)
    put(repo, "pkg00/tool", "#!/bin/sh\n", exe=True)
    link(repo, "pkg01/alias", "m00.py")
    head = commit_all(repo, "tools")
    git(repo, "gc", "-q")  # packed, as a clone is: the worktree's files come through the pack reader
    pool = WorktreePool(repo, SID)
    wt = pool.acquire(head)
    assert walk(wt.path) == tree_files(repo, "HEAD")
    assert git(wt.path, "diff-files", "--name-only") == ""  # before any refresh: the index has the files' stat data
    assert status(wt.path) == ""
    assert git(wt.path, "diff", "--stat") == ""
    pool.remove_all()


def _history(repo: Path) -> None:
    """Versions of similar files, so that packing makes delta chains (some deep), and a binary file."""
    for version in range(12):  # each version one step from the last: chains of up to 5 deltas
        for i in range(40):
            lines = (f"line {k} of {i}{' v' + str(version) if k < version * 5 else ''}\n" for k in range(60 + version))
            put(repo, f"d{i % 4}/f{i}.txt", "".join(lines))
        put(repo, "blob.bin", bytes(range(256)) * (version + 1))
        commit_all(repo, f"v{version}")


class _NoFallback:
    """A store the reader must not need: every object is in a pack it reads itself."""

    def get_raw(self, sha: ObjectID) -> tuple[int, bytes]:
        raise AssertionError(f"fell back to dulwich for {sha!r}")


@pytest.mark.parametrize(
    ("repack", "fallback"),
    [
        (("-c", "pack.depth=250", "repack", "-a", "-d", "-f", "--window=50"), False),  # deep offset-delta chains
        (("-c", "repack.useDeltaBaseOffset=false", "repack", "-a", "-d", "-f"), True),  # reference deltas
    ],
)
def test_the_pack_reader_reads_every_object_as_dulwich_does(
    tmp_path: Path, repack: tuple[str, ...], fallback: bool
) -> None:
    repo = make_repo(tmp_path / "packed", {"README": "r\n"})
    _history(repo)
    git(repo, *repack)
    put(repo, "d0/f0.txt", "a loose object after the pack\n")
    commit_all(repo, "loose")
    everything = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
    main = Repo(str(repo))
    store = main.object_store
    packed = {ObjectID(o.encode()) for o in git_out_lines(repo, "verify-pack")}
    with _PackReader(repo / ".git" / "objects", store) as reader:
        for hexsha in everything:
            assert reader.get(ObjectID(hexsha.encode())) == store.get_raw(ObjectID(hexsha.encode()))
    if not fallback:
        with _PackReader(repo / ".git" / "objects", _NoFallback()) as reader:  # type: ignore[arg-type]
            for sha in packed:
                assert reader.get(sha) == store.get_raw(sha)
    main.close()


def git_out_lines(repo: Path, what: str) -> list[str]:
    """The object ids of every pack of ``repo`` (``git verify-pack -v``)."""
    out: list[str] = []
    for idx in (repo / ".git" / "objects" / "pack").glob("*.idx"):
        for line in git(repo, "verify-pack", "-v", str(idx)).splitlines():
            first = line.split(" ", 1)[0]
            if len(first) == 40 and all(c in "0123456789abcdef" for c in first):
                out.append(first)
    assert out, what
    return out


def test_a_new_worktree_is_exact_from_packs_with_delta_chains(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "deltas", {"README": "r\n"})
    _history(repo)
    git(repo, "-c", "pack.depth=250", "repack", "-a", "-d", "-f")
    pool = WorktreePool(repo, SID)
    wt = pool.acquire(oid(repo, "HEAD~3"))
    assert walk(wt.path) == tree_files(repo, "HEAD~3") and status(wt.path) == ""
    pool.remove_all()


def test_a_submodule_is_an_empty_folder_and_stays_as_recorded(base: Path, pool: WorktreePool) -> None:
    sub = "1234567890123456789012345678901234567890"
    git(base, "update-index", "--add", "--cacheinfo", f"{GITLINK},{sub},vendor/sub")
    git(base, "commit", "-q", "-m", "a submodule")
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    assert (wt.path / "vendor" / "sub").is_dir() and not os.listdir(wt.path / "vendor" / "sub")
    assert status(wt.path) == ""
    commit, changed = wt.capture(head, "nothing", b"refs/maestro/s1/attempts/t/1")
    assert not changed and tree_files(base, commit.decode())["vendor/sub"] == (GITLINK, sub.encode())


def test_integration_needs_a_commit_the_first_time(base: Path, pool: WorktreePool) -> None:
    with pytest.raises(CheckpointError, match=r"integration: no integration worktree yet"):
        pool.integration()
    head = oid(base, "HEAD")
    made = pool.integration(head)
    assert pool.integration() is made  # opened, not made again
    put(base, "later.txt", "x\n")
    later = commit_all(base, "later")
    assert pool.integration(later) is made and made.head() == head  # where it is: the caller moves it


def test_bad_session_ids_and_paths_are_refused(base: Path, tmp_path: Path) -> None:
    for bad in ("", "../x", "a/b", ".hidden", "s.lock"):
        with pytest.raises(CheckpointError, match="bad session id"):
            WorktreePool(base, bad)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(CheckpointError, match="plain: not a git repository"):
        WorktreePool(plain, SID)
    with pytest.raises(CheckpointError, match="no such directory"):
        WorktreePool(tmp_path / "missing", SID)


def test_a_worktree_at_an_unknown_commit_is_refused_naming_the_path(base: Path, pool: WorktreePool) -> None:
    with pytest.raises(CheckpointError, match=r"maestro-s1-integration: no commit 0{40}"):
        pool.integration(ObjectID(b"0" * 40))
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    tree = ObjectID(commit_tree(base, head.decode()).encode())
    with pytest.raises(CheckpointError, match=f"maestro-s1-w1: {tree.decode()} is not a commit"):
        wt.move(tree)


@pytest.mark.parametrize("name", ["..", ".git", ".GIT"])
def test_a_tree_with_a_path_git_refuses_is_refused(base: Path, pool: WorktreePool, name: str) -> None:
    blob = git_write_blob(base, b"escaped\n")
    entry = b"100644 " + name.encode() + b"\0" + bytes.fromhex(blob)
    inner = git_hash(base, "tree", entry)
    top = git_hash(base, "tree", b"40000 sub\0" + bytes.fromhex(inner))
    bad = ObjectID(git(base, "commit-tree", top, "-m", "bad").encode())
    with pytest.raises(CheckpointError, match=f"sub/{re.escape(name)}: a path git refuses to check out"):
        pool.integration(bad)
    wt = pool.acquire(oid(base, "HEAD"))
    with pytest.raises(CheckpointError, match=f"sub/{re.escape(name)}: a path git refuses to check out"):
        wt.move(bad)
    assert not (base / "escaped").exists() and status(wt.path) == ""


def git_write_blob(repo: Path, data: bytes) -> str:
    proc = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, capture_output=True, check=True
    )
    return proc.stdout.decode().strip()


def git_hash(repo: Path, kind: str, data: bytes) -> str:
    """Write an object git's own commands would refuse to make (``--literally``)."""
    proc = subprocess.run(
        ["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"],
        cwd=repo,
        input=data,
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode().strip()


# =====================================================================================
# moving
# =====================================================================================


def _stat_keys(root: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for p in walk(root):
        st = os.lstat(root / p)
        out[p] = (st.st_ino, st.st_mtime_ns)
    return out


def test_a_move_writes_only_the_files_that_differ(base: Path, pool: WorktreePool) -> None:
    for i in range(30):
        put(base, f"src/many/f{i:02d}.py", f"n = {i}\n")
    a = commit_all(base, "many")
    put(base, "src/many/f01.py", "n = 'changed'\n")
    put(base, "run.sh", "#!/bin/sh\necho changed\n", exe=True)
    put(base, "new/deep/folder/n.py", "new\n")
    (base / "src" / "many" / "f02.py").unlink()
    os.rename(base / "src" / "many" / "f03.py", base / "src" / "moved.py")
    link(base, "docs", "README.md")  # a symlink's target changes
    b = commit_all(base, "b")
    wt = pool.acquire(a)
    before = _stat_keys(wt.path)
    written = wt.move(b)
    assert written == 7  # f01, run.sh, n.py, f02 removed, f03 removed, moved.py, docs
    assert tracked(wt.path) == tree_files(base, b.decode())
    assert status(wt.path) == "" and git(wt.path, "diff", "HEAD") == ""
    assert wt.head() == b == oid(wt.path, "HEAD")
    after = _stat_keys(wt.path)
    differ = {"src/many/f01.py", "run.sh", "new/deep/folder/n.py", "src/moved.py", "docs"}
    untouched = set(before) - differ - {"src/many/f02.py", "src/many/f03.py"}
    assert len(untouched) > 30
    assert {p: after[p] for p in untouched} == {p: before[p] for p in untouched}  # same inode, same mtime
    # and back: the deleted files return, the new folder goes
    assert wt.move(a) == 7
    assert tracked(wt.path) == tree_files(base, a.decode()) and status(wt.path) == ""
    assert not (wt.path / "new").exists()


def test_a_move_undoes_every_uncommitted_change_and_keeps_ignored_files(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    (base / ".git" / "info").mkdir(exist_ok=True)
    (base / ".git" / "info" / "exclude").write_text("secret.env\n")
    wt = pool.acquire(head)
    put(wt.path, "src/app.py", "print('modified')\n")
    put(wt.path, "run.sh", "#!/bin/sh\necho run\n", exe=False)  # the executable bit dropped
    (wt.path / "README.md").unlink()
    shutil.rmtree(wt.path / "src" / "lib")
    put(wt.path, "untracked/deep/x.py", "x\n")
    put(wt.path, "stray.txt", "s\n")
    link(wt.path, "src/link", "../README.md")
    ignored = {"debug.log": b"log\n", "build/out/a.bin": b"\0\1", "secret.env": b"KEY=1\n", "src/x.log": b"l\n"}
    for name, data in ignored.items():
        put(wt.path, name, data)
    assert wt.has_changes()
    assert wt.move(head) > 0
    assert tracked(wt.path) == tree_files(base, "HEAD")
    assert status(wt.path) == ""
    assert {name: (wt.path / name).read_bytes() for name in ignored} == ignored
    assert not (wt.path / "untracked").exists()
    assert not wt.has_changes()


def test_a_move_to_content_already_there_leaves_the_file_and_fixes_the_index(base: Path, pool: WorktreePool) -> None:
    a = oid(base, "HEAD")
    put(base, "src/app.py", "print('b')\n")
    b = commit_all(base, "b")
    wt = pool.acquire(b)
    put(wt.path, "src/app.py", "print('app')\n")  # by hand, what a holds: nothing to write, the index to update
    before = os.lstat(wt.path / "src" / "app.py")
    assert wt.move(a) == 0
    assert os.lstat(wt.path / "src" / "app.py").st_ino == before.st_ino
    assert status(wt.path) == "" and git(wt.path, "diff", "--cached") == ""


def test_a_move_undoes_what_a_killed_process_left(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    script = (
        "import os, pathlib, sys, time\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "(p / 'half').mkdir()\n"
        "(p / 'half' / 'written.py').write_text('x = 1\\n')\n"
        "(p / 'src' / 'app.py').write_text('half-edited')\n"
        "os.remove(p / 'README.md')\n"
        "f = open(p / 'half' / 'partial.bin', 'wb'); f.write(b'\\0' * 4096); f.flush()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(wt.path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert status(wt.path) != ""
    wt.move(head)
    assert tracked(wt.path) == tree_files(base, "HEAD") and status(wt.path) == ""


def test_an_ignored_file_in_the_way_of_a_file_of_the_commit_goes(
    base: Path, pool: WorktreePool, tmp_path: Path
) -> None:
    head = oid(base, "HEAD")
    outside = tmp_path / "outside"
    outside.mkdir()
    put(base, "build/keep/x.txt", "tracked under an ignored folder\n")
    git(base, "add", "-f", "build/keep/x.txt")
    put(base, "logs.log/inner.txt", "a folder whose name is ignored\n")
    git(base, "add", "-f", "logs.log/inner.txt")
    target = commit_all(base, "tracked where ignored things are")
    wt = pool.acquire(head)
    link(wt.path, "build", str(outside))  # an ignored symlink to a folder outside: never written through
    put(wt.path, "logs.log", "an ignored file where the commit has a folder\n")
    wt.move(target)
    assert list(outside.iterdir()) == []
    assert tracked(wt.path) == tree_files(base, target.decode())
    assert (wt.path / "build" / "keep" / "x.txt").read_text() == "tracked under an ignored folder\n"
    assert status(wt.path) == ""


def test_a_move_waits_for_git_holding_the_index_and_is_refused_when_it_keeps_it(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    put(wt.path, "README.md", "mine\n")
    lock = Path(git(wt.path, "rev-parse", "--path-format=absolute", "--git-path", "index.lock"))
    lock.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"index\.lock: held by another git process through 10 tries"):
        wt.move(head)
    assert (wt.path / "README.md").read_text() == "mine\n"  # nothing written
    # held briefly (an IDE's git status): the move waits for it
    threading.Timer(0.3, lock.unlink).start()
    wt.move(head)
    assert not lock.exists()
    assert status(wt.path) == ""


def test_a_tracked_file_in_an_ignored_folder_is_kept_by_a_new_worktree(base: Path, pool: WorktreePool) -> None:
    put(base, "build/vendored.py", "v = 1\n")
    git(base, "add", "-f", "build/vendored.py")
    head = commit_all(base, "vendored")
    wt = pool.acquire(head)  # its index is handed to the staging as written, with the folders it tracks
    assert not wt.has_changes()
    commit, changed = wt.capture(head, "nothing", b"refs/maestro/s1/attempts/t/1")
    assert not changed and "build/vendored.py" in tree_files(base, commit.decode())


# =====================================================================================
# the watch: an idle worktree is not scanned, and every change is still seen
# =====================================================================================

needs_inotify = pytest.mark.skipif(not inotify.AVAILABLE, reason="inotify (Linux) only")


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The worktrees Staging.scan walked, in order."""
    walked: list[Path] = []
    real = Staging.scan

    def counting(self: Staging) -> object:
        assert self.repo is not None
        walked.append(Path(self.repo.path))
        return real(self)

    monkeypatch.setattr(Staging, "scan", counting)
    return walked


def pool_path(repo: Path, name: str) -> Path:
    return worktrees_root(repo / ".git") / SID / f"maestro-{SID}-{name}"


def foreign(script: str, cwd: Path) -> None:
    """Run a Python snippet in another process, in ``cwd``: what an agent or a command does."""
    subprocess.run([sys.executable, "-c", script], cwd=cwd, check=True)


@needs_inotify
def test_an_idle_worktree_is_moved_and_captured_without_a_scan(
    base: Path, pool: WorktreePool, scans: list[Path]
) -> None:
    a = oid(base, "HEAD")
    put(base, "src/app.py", "print('b')\n")
    b = commit_all(base, "b")
    wt = pool.acquire(a)
    wt.move(b)
    wt.move(a)
    _, changed = wt.capture(a, "nothing", b"refs/maestro/s1/attempts/t/1")
    assert not changed and not wt.has_changes()
    wt.move(b)
    assert scans == []  # nothing happened there but maestro's own writes
    foreign("open('src/app.py', 'a').write('# edited\\n')", wt.path)
    wt.move(b)
    assert scans == [wt.path] and status(wt.path) == "" and tracked(wt.path) == tree_files(base, b.decode())


@pytest.mark.parametrize("watch", [True, False])
@pytest.mark.parametrize(
    "change",
    [
        "open('src/lib/util.py', 'w').write('edited in place')",
        "import os; os.makedirs('n1/n2/n3'); open('n1/n2/n3/deep.py', 'w').write('new')",
        "import os; os.chmod('README.md', 0o755)",
        "import os; os.remove('src/lib/util.py')",
        "import os; os.rename('src', 'moved')",
        "import os; os.rename('src/lib', 'lib2'); open('lib2/x.py', 'w').write('x')",
        "import os; os.symlink('README.md', 'src/lib/alias')",
        "import os; os.utime('README.md', (1, 1))",
    ],
)
def test_a_change_made_while_the_worktree_is_idle_is_undone(base: Path, change: str, watch: bool) -> None:
    pool = WorktreePool(base, SID, watch=watch)
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    wt.move(head)  # idle after a move of maestro's own
    foreign(change, wt.path)
    wt.move(head)
    assert status(wt.path) == "" and tracked(wt.path) == tree_files(base, "HEAD")
    pool.remove_all()


@pytest.mark.parametrize("watch", [True, False])
def test_a_folder_an_attempt_made_is_watched_once_captured(base: Path, watch: bool) -> None:
    pool = WorktreePool(base, SID, watch=watch)
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    foreign("import os; os.makedirs('new/deep'); open('new/deep/x.py', 'w').write('x = 1')", wt.path)
    commit, _ = wt.capture(head, "attempt", b"refs/maestro/s1/attempts/t/1")
    foreign("open('new/deep/x.py', 'w').write('x = 2')", wt.path)  # after the capture, in the attempt's folder
    foreign("import os; os.makedirs('new/deep/deeper'); open('new/deep/deeper/y.py', 'w').write('y')", wt.path)
    assert wt.has_changes()
    wt.move(commit)
    assert status(wt.path) == "" and tracked(wt.path) == tree_files(base, commit.decode())
    pool.remove_all()


@pytest.mark.parametrize("watch", [True, False])
def test_a_folder_a_gitignore_stops_ignoring_is_watched(base: Path, watch: bool) -> None:
    head = oid(base, "HEAD")
    WorktreePool(base, SID, watch=watch).acquire(head)
    put(pool_path(base, "w1"), "build/a.bin", "ignored\n")
    pool = WorktreePool(base, SID, watch=watch)  # another process: its watch starts with build/ ignored, unwatched
    wt = pool.acquire(head)
    assert wt.path == pool_path(base, "w1")
    put(wt.path, ".gitignore", "")  # build/ is not ignored any more
    commit, _ = wt.capture(head, "unignore", b"refs/maestro/s1/attempts/t/1")
    assert "build/a.bin" in tree_files(base, commit.decode())
    foreign("open('build/later.bin', 'w').write('later')", wt.path)  # in a folder that was ignored
    wt.move(commit)
    assert not (wt.path / "build" / "later.bin").exists()
    assert status(wt.path) == "" and tracked(wt.path) == tree_files(base, commit.decode())
    pool.remove_all()


@pytest.mark.parametrize("watch", [True, False])
def test_a_change_to_info_exclude_is_seen(base: Path, watch: bool) -> None:
    pool = WorktreePool(base, SID, watch=watch)
    head = oid(base, "HEAD")
    (base / ".git" / "info").mkdir(exist_ok=True)
    (base / ".git" / "info" / "exclude").write_text("cache/\n")
    wt = pool.acquire(head)
    put(wt.path, "cache/c.bin", "ignored\n")
    wt.move(head)
    assert (wt.path / "cache" / "c.bin").exists()
    (base / ".git" / "info" / "exclude").write_text("")  # the user's rule goes: cache/ is untracked now
    wt.move(head)
    assert not (wt.path / "cache").exists() and status(wt.path) == ""
    pool.remove_all()


@pytest.mark.parametrize("watch", [True, False])
def test_a_change_made_during_an_operation_is_seen_by_the_next(
    base: Path, watch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = WorktreePool(base, SID, watch=watch)
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    put(wt.path, "dirty.txt", "so that the capture scans\n")
    real = Staging.scan

    def scan_then_someone_writes(self: Staging) -> object:
        found = real(self)
        foreign("open('src/app.py', 'w').write('written after the scan passed')", wt.path)
        return found

    monkeypatch.setattr(Staging, "scan", scan_then_someone_writes)
    commit, _ = wt.capture(head, "attempt", b"refs/maestro/s1/attempts/t/1")
    monkeypatch.undo()
    wt.move(commit)
    assert status(wt.path) == "" and tracked(wt.path) == tree_files(base, commit.decode())
    pool.remove_all()


@needs_inotify
def test_the_watch_gives_up_for_a_scan_when_the_kernel_refuses(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> int:
        ctypes.set_errno(errno.ENOSPC)
        return -1

    pool = WorktreePool(base, SID)
    head = oid(base, "HEAD")
    monkeypatch.setattr(inotify._LIBC, "inotify_add_watch", refuse)
    wt = pool.acquire(head)  # the user's limit of watches reached: scans from now on
    monkeypatch.undo()
    foreign("open('README.md', 'w').write('edited')", wt.path)
    wt.move(head)
    assert status(wt.path) == ""
    pool.remove_all()


# =====================================================================================
# capturing
# =====================================================================================


def test_a_capture_commits_what_git_add_all_would_at_a_ref(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    (base / ".git" / "info").mkdir(exist_ok=True)
    (base / ".git" / "info" / "exclude").write_text("/.flow/\n")  # as Checkpointer.start() lists it, for git
    wt = pool.acquire(head)
    put(wt.path, "a/b/c/new.py", "new\n")  # new folders
    put(wt.path, "src/app.py", "print('edited')\n")
    (wt.path / "src" / "lib" / "util.py").unlink()
    (wt.path / "doc").mkdir()
    os.rename(wt.path / "README.md", wt.path / "doc" / "README.md")  # a rename into a new folder
    link(wt.path, "docs", "doc")  # a symlink retargeted
    link(wt.path, "a/up", "../run.sh")
    (wt.path / "run.sh").chmod(0o644)  # the executable bit dropped
    put(wt.path, "tool", "#!/bin/sh\n", exe=True)
    put(wt.path, "trace.log", "ignored\n")
    put(wt.path, ".flow/maestro/state.json", "{}\n")
    expected = add_all_tree_in_place(wt.path)
    ref = b"refs/maestro/s1/attempts/t1/1"
    commit, changed = wt.capture(head, "t1: attempt 1", ref)
    assert changed
    assert commit_tree(base, commit.decode()) == expected
    assert rev(base, ref.decode()) == commit.decode()
    assert parents(base, commit.decode()) == [head.decode()]
    assert git(base, "log", "-1", "--format=%s", commit.decode()) == "t1: attempt 1"
    assert wt.head() == commit and status(wt.path) == ""
    names = git(base, "diff", "--name-status", "--no-renames", head.decode(), commit.decode()).splitlines()
    assert sorted(names) == sorted(
        [
            "D\tREADME.md",
            "A\ta/b/c/new.py",
            "A\ta/up",
            "A\tdoc/README.md",
            "M\tdocs",
            "M\trun.sh",
            "M\tsrc/app.py",
            "D\tsrc/lib/util.py",
            "A\ttool",
        ]
    )
    assert ".flow/maestro/state.json" not in tree_files(base, commit.decode())
    assert "trace.log" not in tree_files(base, commit.decode())


def test_a_capture_without_a_change_still_makes_a_commit(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    put(wt.path, "only.log", "ignored\n")
    commit, changed = wt.capture(head, "nothing done", b"refs/maestro/s1/attempts/t2/1")
    assert not changed and commit != head
    assert commit_tree(base, commit.decode()) == commit_tree(base, head.decode())
    assert parents(base, commit.decode()) == [head.decode()]
    assert rev(base, "refs/maestro/s1/attempts/t2/1") == commit.decode()
    again, changed_again = wt.capture(commit, "again", b"refs/maestro/s1/attempts/t2/2")
    assert not changed_again and parents(base, again.decode()) == [commit.decode()]


def test_a_capture_uses_the_clock_given(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    clock = TickingClock()
    commit, _ = wt.capture(head, "timed", b"refs/maestro/s1/attempts/t3/1", clock=clock)
    assert git(base, "log", "-1", "--format=%at", commit.decode()) == str(int(TickingClock().now().timestamp()))


def test_a_capture_refuses_a_name_outside_refs(base: Path, pool: WorktreePool) -> None:
    wt = pool.acquire(oid(base, "HEAD"))
    with pytest.raises(CheckpointError, match="maestro-s1-w1: cannot capture at b'HEAD'"):
        wt.capture(oid(base, "HEAD"), "x", b"HEAD")


# =====================================================================================
# the pool
# =====================================================================================


def test_the_pool_reuses_released_worktrees(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    w1, w2 = pool.acquire(head), pool.acquire(head)
    assert (w1.name, w2.name) == ("w1", "w2")
    put(w1.path, "leftover.py", "from an attempt\n")
    put(w1.path, "src/app.py", "edited\n")
    put(base, "next.txt", "next\n")
    nxt = commit_all(base, "next")
    pool.release(w1)
    again = pool.acquire(nxt)
    assert again is w1 and again.head() == nxt
    assert tracked(w1.path) == tree_files(base, nxt.decode()) and status(w1.path) == ""
    assert pool.acquire(nxt).name == "w3"
    with pytest.raises(CheckpointError, match="not a pooled worktree"):
        pool.release(pool.integration(head))
    assert [wt.name for wt in pool.existing()] == ["integration", "w1", "w2", "w3"]


def test_a_new_pool_finds_the_worktrees_left_on_disk(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    pool.integration(head)
    pool.acquire(head)
    pool.acquire(head)
    again = WorktreePool(base / "src", SID)  # another process, opened from a folder inside the checkout
    assert [wt.name for wt in again.existing()] == ["integration", "w1", "w2"]
    put(base, "n.txt", "n\n")
    nxt = commit_all(base, "n")
    reused = again.acquire(nxt)
    assert reused.name == "w1" and reused.head() == nxt and status(reused.path) == ""
    assert again.integration().head() == head
    assert [p.name for p in worktree_dir_names(base)] == [f"maestro-{SID}-{n}" for n in ("integration", "w1", "w2")]


def worktree_dir_names(repo: Path) -> list[Path]:
    return sorted(Path(p) for p, _ in worktree_list(repo)[1:])


def test_a_worktree_made_elsewhere_is_opened_with_the_repositorys_excludes(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    (base / ".git" / "info").mkdir(exist_ok=True)
    (base / ".git" / "info" / "exclude").write_text("secret.env\n")
    path = pool_path(base, "integration")
    path.parent.mkdir(parents=True, exist_ok=True)
    main = Repo(str(base))
    add_worktree(main, str(path), commit=head).close()  # as Checkpointer(worktree=True) makes it
    main.close()
    integration = pool.integration()
    assert integration.path == path
    put(path, "secret.env", "KEY=1\n")  # ignored by the repository's info/exclude, as git reads it
    put(path, "stray.txt", "not ignored\n")
    integration.move(head)
    assert (path / "secret.env").read_text() == "KEY=1\n" and not (path / "stray.txt").exists()
    assert status(path) == ""


def test_an_unfinished_worktree_is_made_again(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    wt = pool.acquire(head)
    (base / ".git" / "worktrees" / wt.path.name / "index").unlink()  # a crash before the index was written
    fresh = WorktreePool(base, SID)
    again = fresh.acquire(head)
    assert again.name == "w1" and status(again.path) == "" and tracked(again.path) == tree_files(base, "HEAD")


def test_remove_all_leaves_only_the_main_checkout_and_keeps_the_refs(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    integration = pool.integration(head)
    w1, w2 = pool.acquire(head), pool.acquire(head)
    put(w1.path, "x.py", "x\n")
    commit, _ = w1.capture(head, "x", b"refs/maestro/s1/attempts/t/1")
    git(base, "branch", "maestro/s1", commit.decode())
    other = WorktreePool(base, "s2")
    kept = other.acquire(head)
    shutil.rmtree(w2.path)  # a folder wiped by hand: its admin folder goes too
    assert set(session_worktrees(base)) == {"s1", "s2"}
    removed = pool.remove_all()
    assert removed == sorted([integration.path, w1.path, w2.path])
    assert not any(p.exists() for p in removed) and not pool.root.exists()
    assert worktree_list(base) == [(str(base), "refs/heads/master"), (str(kept.path), head.decode())]
    assert session_worktrees(base) == {"s2": [kept.path]}
    assert rev(base, "refs/maestro/s1/attempts/t/1") == commit.decode()
    assert rev(base, "refs/heads/maestro/s1") == commit.decode()
    assert other.remove_all() == [kept.path]
    assert worktree_list(base) == [(str(base), "refs/heads/master")]
    assert session_worktrees(base) == {}
    assert git(base, "worktree", "prune", "--dry-run", "-v") == ""


def test_a_stale_admin_folder_is_listed_and_removed(base: Path, pool: WorktreePool) -> None:
    wt = pool.acquire(oid(base, "HEAD"))
    shutil.rmtree(pool.root)  # the cache wiped: only git's admin folder is left
    assert session_worktrees(base) == {SID: [wt.path]}
    assert WorktreePool(base, SID).remove_all() == [wt.path]
    assert not (base / ".git" / "worktrees").exists()


def test_the_users_checkout_is_byte_identical_through_everything(base: Path, pool: WorktreePool) -> None:
    put(base, "src/app.py", "print('uncommitted work')\n")
    put(base, "untracked.txt", "mine\n")
    put(base, "secret.log", "KEY=1\n")
    put(base, "build/venv/x", "ignored folder\n")
    git(base, "add", "untracked.txt")  # something staged, too
    before = user_state(base)
    head = oid(base, "HEAD")
    integration = pool.integration(head)
    wt = pool.acquire(head)
    put(wt.path, ".gitignore", "")  # an attempt that unignores everything
    (wt.path / "README.md").unlink()
    put(wt.path, "secret.log", "not the user's\n")
    commit, _ = wt.capture(head, "attempt", b"refs/maestro/s1/attempts/t/1")
    integration.move(commit)
    wt.move(head)
    pool.release(wt)
    pool.acquire(commit)
    pool.remove_all()
    assert user_state(base) == before


def test_moves_and_captures_run_on_threads_at_once(base: Path, pool: WorktreePool) -> None:
    head = oid(base, "HEAD")
    wts = [pool.acquire(head) for _ in range(3)]
    results: dict[str, tuple[ObjectID, bool]] = {}
    errors: list[BaseException] = []

    def work(wt: Worktree, k: int) -> None:
        try:
            for round_ in range(4):
                for i in range(20):
                    put(wt.path, f"w{k}/r{round_}/f{i}.txt", f"{k} {round_} {i}\n")
                commit, changed = wt.capture(
                    wt.head(), f"w{k} r{round_}", f"refs/maestro/s1/attempts/w{k}/{round_}".encode()
                )
                assert changed
                wt.move(head)
                wt.move(commit)
            results[wt.name] = (wt.head(), True)
        except BaseException as exc:  # noqa: BLE001 - reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(wt, k)) for k, wt in enumerate(wts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, wt in enumerate(wts):
        files = tree_files(base, results[wt.name][0].decode())
        assert {p for p in files if p.startswith(f"w{k}/")} == {
            f"w{k}/r{r}/f{i}.txt" for r in range(4) for i in range(20)
        }
        assert not any(p.startswith(("w0/", "w1/", "w2/")) and not p.startswith(f"w{k}/") for p in files)
        assert status(wt.path) == "" and tracked(wt.path) == files


# =====================================================================================
# a property: random work, captures and moves back
# =====================================================================================

NAMES = ("a", "b", "é", "sub dir")
PATHS = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
CONTENT = st.binary(max_size=16) | st.sampled_from((b"", b"same\n"))
IGNORED = st.sampled_from(("build/x.bin", "build/日本/y", "trace.log", "b.log"))
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), PATHS, CONTENT, st.booleans()),
        st.tuples(st.just("symlink"), PATHS, st.sampled_from(("a", "../b", "nowhere"))),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("ignored"), IGNORED, CONTENT),
        st.tuples(st.just("capture")),
        st.tuples(st.just("move"), st.integers(0, 50)),
    ),
    min_size=1,
    max_size=14,
)
PHASES = tuple(p for p in Phase if p is not Phase.explain)


def _clear(root: Path, rel: str) -> None:
    """Make room for a file at ``rel``: no file where a folder of it must be, no folder where it must be."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        p = root.joinpath(*parts[:i])
        if p.is_symlink() or p.is_file():
            p.unlink()
    p = root / rel
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)


@pytest.mark.parametrize("watch", [True, False])
@settings(max_examples=40, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_after_any_work_a_move_gives_exactly_the_commit(watch: bool, ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory(prefix="maestro-worktrees-") as d:
        repo = make_repo(Path(d) / "repo", {".gitignore": IGNORE, "a": "a\n"})
        pool = WorktreePool(repo, SID, clock=TickingClock(), watch=watch)
        main = Repo(str(repo))
        store = main.object_store
        try:
            head = oid(repo, "HEAD")
            wt = pool.acquire(head)
            captured = [head]
            ignored: dict[str, bytes] = {}
            for op in ops:
                kind = op[0]
                if kind == "write":
                    _, rel, data, exe = op
                    assert isinstance(rel, str) and isinstance(data, bytes) and isinstance(exe, bool)
                    _clear(wt.path, rel)
                    put(wt.path, rel, data, exe=exe)
                elif kind == "symlink":
                    _, rel, target = op
                    assert isinstance(rel, str) and isinstance(target, str)
                    _clear(wt.path, rel)
                    link(wt.path, rel, target)
                elif kind == "delete":
                    files = sorted(p for p in tracked(wt.path) if p != ".gitignore")  # the ignored files stay ignored
                    if files:
                        assert isinstance(op[1], int)
                        (wt.path / files[op[1] % len(files)]).unlink()
                elif kind == "ignored":
                    _, rel, data = op
                    assert isinstance(rel, str) and isinstance(data, bytes)
                    put(wt.path, rel, data)
                    ignored[rel] = data
                elif kind == "capture":
                    expected = tracked(wt.path)
                    parent = wt.head()
                    ref = f"refs/maestro/{SID}/attempts/p/{len(captured)}".encode()
                    commit, changed = wt.capture(parent, "step", ref)
                    assert tree_files(repo, commit.decode()) == expected
                    assert changed == (commit_tree(repo, commit.decode()) != commit_tree(repo, parent.decode()))
                    assert status(wt.path) == ""
                    captured.append(commit)
                else:
                    assert isinstance(op[1], int)
                    target = captured[op[1] % len(captured)]
                    trees = [ObjectID(commit_tree(repo, c.decode()).encode()) for c in (wt.head(), target)]
                    ours, dulwichs = _tree_diff(store, trees[0], trees[1]), tree_changes(store, trees[0], trees[1])
                    assert set(ours) == set(dulwichs)  # the lean diff is dulwich's
                    wt.move(target)
                    assert status(wt.path) == ""
                    assert tracked(wt.path) == tree_files(repo, target.decode())
                    assert wt.head() == target
                    assert {rel: (wt.path / rel).read_bytes() for rel in ignored} == ignored
        finally:
            main.close()
            pool.remove_all()
