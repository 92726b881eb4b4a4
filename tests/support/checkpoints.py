"""Checkpoints as git sees them: git run as the binary, files with their modes and symlinks, trees, diffs.

The checkpoint tests and their properties cross-check :class:`maestro.Checkpointer` against git itself
with these: the tree ``git add -A`` would commit (:func:`add_all`), the files of a tree or of the working
tree (:func:`tree_files`, :func:`walk`), what ``git diff`` says changed (:func:`git_changes`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from maestro import FileChange

GIT = shutil.which("git") or "/usr/bin/git"
_CFG = (
    "-c", "user.name=Maestro Tests",
    "-c", "user.email=tests@example.com",
    "-c", "commit.gpgsign=false",
    "-c", "tag.gpgsign=false",
    "-c", "core.quotepath=off",
    "-c", "init.defaultBranch=master",
)  # fmt: skip
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
GITLINK = "160000"  # a submodule's commit in a tree
SID = "demo-1"
BRANCH = f"refs/heads/maestro/{SID}"
BASE = f"refs/maestro/{SID}/base"
IGNORE = "*.log\nbuild/\n"

#: A file as git sees it: its mode ("100644", "100755" or "120000") and its bytes (a symlink's target).
Entry = tuple[str, bytes]


def git_out(cwd: Path, *args: str, env: Mapping[str, str] | None = None, data: bytes | None = None) -> bytes:
    """Run git in ``cwd``; its stdout (an AssertionError with its stderr if it fails)."""
    proc = subprocess.run([GIT, *_CFG, *args], cwd=cwd, capture_output=True, input=data, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    return git_out(cwd, *args, env=env).decode("utf-8", "surrogateescape").strip()


def rev(cwd: Path, ref: str) -> str | None:
    """The object id ``ref`` names, or None if it names nothing."""
    proc = subprocess.run([GIT, "rev-parse", "--verify", "-q", ref], cwd=cwd, capture_output=True)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def put(root: Path, name: str, content: str | bytes, *, exe: bool = False) -> Path:
    """Write a regular file (replacing a file or symlink there), mode 0755 or 0644."""
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.is_file():
        p.unlink()
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    p.chmod(0o755 if exe else 0o644)
    return p


def link(root: Path, name: str, target: str) -> Path:
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.is_file():
        p.unlink()
    os.symlink(target, p)
    return p


def make_repo(path: Path, files: Mapping[str, str | bytes] | None = None, *, commit: bool = True) -> Path:
    """A git repository on branch master with ``files`` committed (or left untracked: ``commit=False``)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "master")
    for name, content in (files or {}).items():
        put(path, name, content)
    if commit:
        git(path, "add", "-A")
        git(path, "commit", "-q", "--allow-empty", "-m", "initial")
    return path


def walk(root: Path) -> dict[str, Entry]:
    """Every regular file and symlink under ``root`` but ``.git`` and ``.flow`` at the top, as git would see it."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        names = [*dirnames, *filenames]
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in (".git", ".flow")]
            names = [n for n in names if n not in (".git", ".flow")]
        for name in names:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("120000", os.fsencode(os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("100755" if st.st_mode & stat.S_IXUSR else "100644", Path(full).read_bytes())
    return out


def ignored(root: Path, paths: Iterable[str]) -> set[str]:
    """The paths git's ignore rules (.gitignore files, info/exclude) exclude, whatever the index says."""
    paths = list(paths)
    if not paths:
        return set()
    data = b"".join(os.fsencode(p) + b"\0" for p in paths)
    proc = subprocess.run(
        [GIT, "check-ignore", "--no-index", "-z", "--stdin"], cwd=root, input=data, capture_output=True
    )
    assert proc.returncode in (0, 1), proc.stderr
    return {os.fsdecode(p) for p in proc.stdout.split(b"\0") if p}


def tracked_view(root: Path) -> dict[str, Entry]:
    """The files of the working tree that are not ignored (``.git`` and ``.flow`` left out)."""
    files = walk(root)
    skip = ignored(root, files)
    return {p: e for p, e in files.items() if p not in skip}


def ignored_view(root: Path) -> dict[str, Entry]:
    """The ignored files of the working tree, and everything under ``.flow``."""
    files = walk(root)
    keep = ignored(root, files)
    out = {p: e for p, e in files.items() if p in keep}
    flow = root / ".flow"
    if flow.is_dir():
        out.update({f".flow/{p}": e for p, e in walk(flow).items()})
    return out


def tree_files(cwd: Path, treeish: str) -> dict[str, Entry]:
    """Every file of a commit or tree: mode and bytes (a symlink's target, a submodule's commit id), read with git."""
    raw = git_out(cwd, "ls-tree", "-r", "-z", "--full-tree", treeish)
    entries: list[tuple[str, str, str]] = []
    for item in raw.split(b"\0"):
        if not item:
            continue
        meta, path = item.split(b"\t", 1)
        mode, _kind, oid = meta.decode().split()
        entries.append((os.fsdecode(path), mode, oid))
    blobs = cat_blobs(cwd, [oid for _p, m, oid in entries if m != GITLINK])
    return {p: (m, oid.encode() if m == GITLINK else blobs[oid]) for p, m, oid in entries}


def cat_blobs(cwd: Path, oids: Iterable[str]) -> dict[str, bytes]:
    oids = list(dict.fromkeys(oids))
    if not oids:
        return {}
    out = git_out(cwd, "cat-file", "--batch", data="".join(f"{o}\n" for o in oids).encode())
    blobs: dict[str, bytes] = {}
    pos = 0
    for oid in oids:
        end = out.index(b"\n", pos)
        _oid, _kind, size = out[pos:end].decode().split()
        start = end + 1
        blobs[oid] = out[start : start + int(size)]
        pos = start + int(size) + 1
    return blobs


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``root`` (``.git`` included): kind, permission bits, content hash or link target."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(Path(full).read_bytes()).hexdigest())
    return out


def add_all(repo: Path) -> tuple[str, dict[str, Entry]]:
    """The tree ``git add -A && git write-tree`` gives, and its files: computed on a copy of the whole repository."""
    with tempfile.TemporaryDirectory(prefix="maestro-copy-") as d:
        dst = Path(d) / "repo"
        shutil.copytree(repo, dst, symlinks=True)
        git(dst, "add", "-A")
        tree = git(dst, "write-tree")
        return tree, tree_files(dst, tree)


def add_all_tree(repo: Path) -> str:
    return add_all(repo)[0]


def add_all_tree_in_place(workdir: Path) -> str:
    """The same for a linked worktree (a copy would still point at the original): on a copy of its index."""
    index = Path(git(workdir, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    with tempfile.TemporaryDirectory(prefix="maestro-index-") as d:
        tmp_index = Path(d) / "index"
        if index.exists():
            shutil.copyfile(index, tmp_index)
        env = {**os.environ, "GIT_INDEX_FILE": str(tmp_index)}
        git(workdir, "add", "-A", env=env)
        return git(workdir, "write-tree", env=env)


def assert_git_clean(workdir: Path) -> None:
    """``git status --porcelain`` is empty and ``git fsck --strict`` finds nothing wrong."""
    status = git(workdir, "status", "--porcelain", "--untracked-files=all")
    assert status == "", f"git status after the checkpoint:\n{status}"
    proc = subprocess.run([GIT, "fsck", "--strict", "--no-dangling", "--no-progress"], cwd=workdir, capture_output=True)
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode == 0, text
    words = ("error", "warning", "missing", "broken")
    bad = [line for line in text.splitlines() if line.split(" ")[0].rstrip(":") in words]
    assert not bad, text


def commit_tree(cwd: Path, commit: str) -> str:
    return git(cwd, "rev-parse", f"{commit}^{{tree}}")


def parents(cwd: Path, commit: str) -> list[str]:
    return git(cwd, "rev-list", "--parents", "-n", "1", commit).split()[1:]


def git_changes(cwd: Path, a: str, b: str) -> tuple[FileChange, ...]:
    """What ``git diff --no-renames`` says changed from ``a`` to ``b``, as FileChanges sorted by path."""
    kinds = {"A": "added", "M": "modified", "D": "deleted", "T": "modified"}
    status = git_out(cwd, "diff", "--no-renames", "--name-status", "-z", a, b).split(b"\0")
    change = {os.fsdecode(status[i + 1]): kinds[status[i].decode()[0]] for i in range(0, len(status) - 1, 2)}
    counts: dict[str, tuple[int, int]] = {}
    for item in git_out(cwd, "diff", "--no-renames", "--numstat", "-z", a, b).split(b"\0"):
        if item:
            plus, minus, path = item.split(b"\t", 2)
            counts[os.fsdecode(path)] = (int(plus.replace(b"-", b"0")), int(minus.replace(b"-", b"0")))  # binary: 0
    return tuple(FileChange(p, change[p], *counts[p]) for p in sorted(change))


def by_path(files: Iterable[FileChange]) -> tuple[FileChange, ...]:
    return tuple(sorted(files, key=lambda f: f.path))


def parse_ts(ts: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


class IndexHeldOnce:
    """The first index write of a class (``write(self)`` with the index's path at ``self.<attr>``) meets an
    ``index.lock`` that another git made a moment before (``O_EXCL``, as git takes it) and removes ``hold`` seconds
    later: what an IDE's ``git status`` does in a worktree the moment its folder appears.  Patch ``cls.write`` with
    :meth:`install`; ``held`` lists the locks it made."""

    def __init__(self, cls: type, attr: str, hold: float = 0.3) -> None:
        self.cls, self.attr, self.hold = cls, attr, hold
        self.original = cls.write  # type: ignore[attr-defined]
        self.held: list[Path] = []
        self.writes = 0

    def install(self, monkeypatch: object) -> None:
        import threading

        held = self

        def write(index: object, *args: object, **kwargs: object) -> object:
            held.writes += 1
            if not held.held:
                lock = Path(os.fsdecode(getattr(index, held.attr))).with_name("index.lock")
                os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                held.held.append(lock)
                timer = threading.Timer(held.hold, lock.unlink, kwargs={"missing_ok": True})
                timer.daemon = True  # a lock held "forever" does not keep the test run alive
                timer.start()
            return held.original(index, *args, **kwargs)

        monkeypatch.setattr(self.cls, "write", write)  # type: ignore[attr-defined]
