"""Hostile agents for tests: a committed repository on ``main``, a command agent running a shell script of the
test's, the real ``maestro`` command line, and what the user's repository looked like before and after.

:func:`hostile_plan` writes the repository and its plan (``tests.support.runs``) with ``agent: {kind: command}``
running ``sh <root>/agent.sh``; the script starts with :data:`PRELUDE`, which finds, from inside the attempt's
worktree (outside the checkout), what an agent could attack::

    $U    the user's checkout (the common git folder's parent: git rev-parse --git-common-dir)
    $G    its .git folder
    $S    the session's folder under $U/.flow/maestro/sessions/ (one session a test)
    $SID  the session's id
    $B    the branch the user's HEAD names (refs/heads/main)

then writes ``<task id>.txt`` (each task changes something) before the test's own lines run (``template=`` gives
``agent.command`` itself instead).  :class:`Hostile` runs ``maestro`` with ``$MAESTRO_WORKTREES`` under the test's
folder (so a test can find the session's worktrees) and reads back what the session left; :func:`user_view` is the
user's side of the repository: refs, HEAD, index bytes, config, hooks, files.  :func:`git_status_loops` runs
``git status`` over and over in the checkout and in the session's worktrees while a block runs (after
:func:`settle_index`, git status itself never writes the index).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from maestro.core.records import Event
from maestro.model.state import rebuild
from maestro.store.filestore import Store
from tests.support.runs import Plan, config_text, make_plan, task

__all__ = [
    "GIT_ENV",
    "PRELUDE",
    "Hostile",
    "StatusLoops",
    "UserView",
    "git",
    "git_status_loops",
    "hostile_plan",
    "quick_config",
    "settle_index",
    "user_view",
]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "u",
    "GIT_AUTHOR_EMAIL": "u@example.com",
    "GIT_COMMITTER_NAME": "u",
    "GIT_COMMITTER_EMAIL": "u@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}

PRELUDE = """\
set -e
U="$(cd "$(git rev-parse --git-common-dir)/.." && pwd)"
G="$U/.git"
S="$(ls -d "$U"/.flow/maestro/sessions/*/ | head -n 1)"
S="${S%/}"
SID="$(basename "$S")"
B="$(git -C "$U" symbolic-ref HEAD)"
printf '%s\\n' "$MAESTRO_TASK_ID" > "$MAESTRO_TASK_ID.txt"
"""


def git(repo: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
    """``git -C repo args``'s stdout (stripped); raises with git's stderr when ``check`` and it fails."""
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         env={**os.environ, **GIT_ENV, **(env or {})})  # fmt: skip
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: exit {out.returncode}: {out.stderr}")
    return out.stdout.strip()


def quick_config(*, workers: int = 1, tests: str | None = "true") -> str:
    """config.yaml for a quick session: no retries, no alternatives, tiny backoffs, the tests gate ``tests``."""
    return config_text(workers=workers, retries=0, alternatives=0, backoff=(0.01, 1.0, 0.01), tests=tests)


@attrs.frozen
class UserView:
    """The user's side of a repository: what no session may change."""

    refs: Mapping[str, str]  # every ref but maestro's: name -> object id
    head: bytes  # .git/HEAD as it is on disk
    index: bytes  # .git/index, byte for byte (b"" when there is none)
    config: bytes
    hooks: Mapping[str, bytes]
    status: str  # git status --porcelain, untracked and ignored included (.flow/ is excluded)


def user_view(repo: Path) -> UserView:
    """The user's side of ``repo`` as it is now (``git status`` run with ``--no-optional-locks``: it writes nothing)."""
    lines = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    refs = {}
    for line in lines:
        name, oid = line.split(" ")
        if not name.startswith(("refs/heads/maestro/", "refs/tags/maestro/", "refs/maestro/")):
            refs[name] = oid
    dot = repo / ".git"
    index = dot / "index"
    hooks = {p.name: p.read_bytes() for p in sorted((dot / "hooks").glob("*")) if p.is_file()}
    status = git(repo, "--no-optional-locks", "status", "--porcelain", "--ignored", "--untracked-files=all")
    status = "\n".join(line for line in status.splitlines() if not line[3:].startswith(".flow/"))
    return UserView(refs, (dot / "HEAD").read_bytes(), index.read_bytes() if index.exists() else b"",
                    (dot / "config").read_bytes(), hooks, status)  # fmt: skip


class Hostile:
    """A repository on ``main`` and its plan, whose command agent runs ``agent.sh``; ``maestro`` run against it."""

    def __init__(self, plan: Plan, root: Path, env: Mapping[str, str]) -> None:
        self.plan = plan
        self.root = root
        self.repo = plan.repo
        self.env = dict(env)
        self.worktrees = Path(env["MAESTRO_WORKTREES"])

    # -- maestro --------------------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "maestro", *args], capture_output=True, text=True,
                              cwd=self.repo, env=self.env, timeout=timeout)  # fmt: skip

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli(*self.plan.run_args(*extra))

    def answer(self, choice: str) -> subprocess.CompletedProcess[str]:
        return self.cli("answer", self.sid, choice)

    def resume(self) -> subprocess.CompletedProcess[str]:
        return self.cli("resume", self.sid)

    def status(self) -> dict[str, Any]:
        out = self.cli("status", self.sid, "--json")
        assert (out.returncode, out.stderr) == (0, ""), out.stdout + out.stderr
        doc: dict[str, Any] = json.loads(out.stdout)
        return doc

    # -- what the session left ------------------------------------------------------------------------------------
    def sessions(self) -> list[str]:
        folder = self.repo / ".flow" / "maestro" / "sessions"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    @property
    def sid(self) -> str:
        (sid,) = self.sessions()
        return sid

    @property
    def session_dir(self) -> Path:
        return self.repo / ".flow" / "maestro" / "sessions" / self.sid

    def events(self) -> list[Event]:
        return Store(self.repo).read_events(self.sid)

    def log_text(self) -> str:
        return (self.session_dir / "events.jsonl").read_text(encoding="utf-8")

    def maestro_refs(self) -> dict[str, str]:
        """Every ref of the session: its branch, tags and ``refs/maestro/<s>/…`` (name -> object id)."""
        out = git(self.repo, "for-each-ref", "--format=%(refname) %(objectname)", f"refs/heads/maestro/{self.sid}",
                  f"refs/tags/maestro/{self.sid}/", f"refs/maestro/{self.sid}/")  # fmt: skip
        return dict(line.split(" ") for line in out.splitlines())

    def checkpoints(self) -> list[tuple[int, str]]:
        """(n, commit) of the session's checkpoints, as its log says (a rewind's void ones left out)."""
        return [(c.n, c.commit) for c in rebuild(self.events()).checkpoints]

    def peel(self, ref: str) -> str | None:
        """The commit ``ref`` names (a tag peeled), or None when there is no such ref."""
        return git(self.repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False) or None

    def branch_file(self, path: str) -> str | None:
        out = subprocess.run(["git", "-C", str(self.repo), "show", f"maestro/{self.sid}:{path}"],
                             capture_output=True, text=True)  # fmt: skip
        return out.stdout if out.returncode == 0 else None


def hostile_plan(
    root: Path,
    script: str,
    *,
    tasks: Sequence[Mapping[str, Any]] | None = None,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    template: str | None = None,
) -> Hostile:
    """A repository on ``main`` under ``root`` whose command agent runs :data:`PRELUDE` then ``script`` (or, given
    ``template``, whose ``agent.command`` is that template)."""
    agent = root / "agent.sh"
    root.mkdir(parents=True, exist_ok=True)
    agent.write_text(PRELUDE + script + "\n", encoding="utf-8")
    command = template if template is not None else f"sh {shlex.quote(str(agent))}"
    plan = make_plan(root, tasks=list(tasks or [task("a")]), config=config or quick_config(), agent_command=command)
    git(plan.repo, "branch", "-m", "main")  # dulwich made master
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    every = {**os.environ, **GIT_ENV, "PATH": path, "MAESTRO_WORKTREES": str(root / "wt"), **(env or {})}
    return Hostile(plan, root, every)


def settle_index(repo: Path) -> None:
    """Make ``git status`` in ``repo`` write nothing: its files dated 30 s back and the index refreshed once, so no
    entry is racily clean (then a git status loop takes ``index.lock`` at every run but never writes the index)."""
    old = time.time() - 30
    for path in repo.rglob("*"):
        if ".git" not in path.relative_to(repo).parts:
            os.utime(path, (old, old), follow_symlinks=False)
    git(repo, "status", "--porcelain")


@attrs.define
class StatusLoops:
    """How many ``git status`` runs went through in the user's checkout and in the session's worktrees."""

    checkout: int = 0
    worktrees: int = 0
    seen: set[str] = attrs.field(factory=set)  # the worktrees' folder names
    failures: list[str] = attrs.field(factory=list)


@contextmanager
def git_status_loops(repo: Path, worktrees: Path) -> Iterator[StatusLoops]:
    """Two threads running ``git status`` (which takes ``index.lock``) over and over until the block ends: one in
    ``repo``, one in every session worktree found under ``worktrees`` (they come and go)."""
    stop = threading.Event()
    loops = StatusLoops()
    env = {**os.environ, **GIT_ENV}

    def status(where: Path) -> bool:
        try:
            out = subprocess.run(["git", "status", "--porcelain"], cwd=where, capture_output=True, text=True, env=env)
        except (FileNotFoundError, NotADirectoryError):
            return False  # the worktree was removed meanwhile
        if out.returncode != 0 and where == repo:
            loops.failures.append(out.stderr.strip())
        return out.returncode == 0

    def in_checkout() -> None:
        while not stop.is_set():
            if status(repo):
                loops.checkout += 1

    def in_worktrees() -> None:
        while not stop.is_set():
            for wt in sorted(worktrees.glob("*/*/maestro-*")):
                if status(wt):
                    loops.worktrees += 1
                    loops.seen.add(wt.name)
            time.sleep(0.005)

    threads = [threading.Thread(target=in_checkout), threading.Thread(target=in_worktrees)]
    for t in threads:
        t.start()
    try:
        yield loops
    finally:
        stop.set()
        for t in threads:
            t.join()
