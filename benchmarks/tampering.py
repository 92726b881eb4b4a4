"""Benchmark: what the tampering looks around an attempt cost (:class:`maestro.git.tampering.TamperGuard`).

    python benchmarks/tampering.py [--json] [--refs 1000] [--log-mb 10] [--rounds N] [--proposed] [--no-watch]
                                   [--dir PATH]

One repository is built with the git CLI: one commit, ``--refs`` branches and as many lightweight tags
(2,000 refs by default), ten sample hooks as ``git init`` leaves them; a session is made there (its branch,
checkpoint 0 and its integration worktree, as ``maestro run`` makes them), and its ``events.jsonl`` is grown
to ``--log-mb`` MB of note events (written straight to the file, then the session opened again, as a resume
opens it).  Two ref layouts are measured, one after the other: ``loose`` (a file a ref) and ``packed`` (``git
pack-refs --all``, as a clone has them).

A round is what the runner does around one attempt: ``guard.snapshot(attempt_ref=…)``; then, untimed, what
maestro does while the agent works (three events appended to the log, the attempt's commit captured at its
ref); then ``guard.check(snap, commit=…)``.  Timed: the snapshot and the check (their sum is the round).  The
baseline, in the same rounds (order alternating, ``gc.collect()`` before each): ``git for-each-ref`` run
twice, before and after the same untimed work — what merely listing the refs with git costs, without the
log, the .git files or the store.  Medians are quoted; ratio = guard / baseline.  Also reported, once each:
making the guard (the log is read whole) and ``check(full=True)`` (the log hashed whole), which a run pays
once, not per attempt.  ``--proposed`` measures the change to ``session.py`` proposed with the guard
(monkeypatched here): ``Session.events_since(n)``, the events after the first ``n`` without copying the others
(``Session.events`` copies them all).  ``--no-watch`` measures the guard without inotify (``watch=False``: every
look reads every ref and watched file through its stat data), as it runs where inotify is missing or past the
user's limit of watches.  Every check must find nothing.  The temporary folder is removed at the
end.  The exit code is 0: this is a report.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path, where benchmarks/transitions.py would shadow the
# `transitions` package (which maestro imports): it goes to the end, still there for _bench.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

import maestro
from _bench import GIT, file_system, fmt_s
from maestro.core.records import Event, Note, converter
from maestro.git.checkpoints import Checkpointer
from maestro.git.tampering import TamperGuard
from maestro.session import Session
from maestro.store.filestore import encode_event

NOTE = "an attempt settled: " + "x" * 160  # about 250 bytes a line


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def build(root: Path, refs: int, log_mb: float) -> tuple[Path, str]:
    """The repository with its refs, and a session whose log holds ``log_mb`` MB; its id."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "gc.auto", "0")
    (repo / "README.md").write_text("# sample\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-qm", "base")
    head = git(repo, "rev-parse", "HEAD").strip()
    lines = "".join(f"create refs/heads/b{i:05d} {head}\ncreate refs/tags/t{i:05d} {head}\n" for i in range(refs))
    subprocess.run([*GIT, "update-ref", "--stdin"], cwd=repo, input=lines, text=True, check=True)
    store = maestro.Store(repo)
    session = Session.create(store, "benchmark")
    session.record(Checkpointer(repo, session, worktree=True).start())
    sid, path = session.id, session.events_path
    next_seq = len(session.events) + 1
    session.close()
    data = converter.unstructure(Note(NOTE))
    with open(path, "ab") as fh:
        size = path.stat().st_size
        while size < log_mb * 1_000_000:
            line = encode_event(Event(1, next_seq, "2026-01-01T00:00:00.000000Z", "note", data))
            fh.write(line)
            size += len(line)
            next_seq += 1
    return repo, sid


def measure(repo: Path, sid: str, layout: str, rounds: int, *, watch: bool) -> dict[str, Any]:
    if layout == "packed":
        git(repo, "pack-refs", "--all")
    session = Session.open(maestro.Store(repo), sid)
    try:
        t0 = time.perf_counter()
        guard = TamperGuard(session, watch=watch)
        made_s = time.perf_counter() - t0
        commit = ObjectID(git(repo, "rev-parse", "HEAD").strip().encode())
        refs = Repo(str(repo)).refs
        snaps: list[float] = []
        checks: list[float] = []
        base: list[float] = []
        for r in range(rounds + 1):  # round 0 warms up
            for subject in ("guard", "git") if r % 2 else ("git", "guard"):
                owner = sid if subject == "guard" else "other-session"  # the guard looks only at its session's
                ref = f"refs/maestro/{owner}/attempts/t/{r}".encode()
                gc.collect()
                if subject == "guard":
                    t0 = time.perf_counter()
                    snap = guard.snapshot(attempt_ref=ref)
                    t1 = time.perf_counter()
                else:
                    t0 = time.perf_counter()
                    git(repo, "for-each-ref")
                    t1 = time.perf_counter()
                for i in range(3):  # what maestro does while the agent works: other attempts settle
                    session.note(f"round {r} event {i}")
                refs[Ref(ref)] = commit
                gc.collect()
                if subject == "guard":
                    t2 = time.perf_counter()
                    found = guard.check(snap, commit=commit)
                    t3 = time.perf_counter()
                    assert found == [], found
                    if r:
                        snaps.append(t1 - t0)
                        checks.append(t3 - t2)
                else:
                    t2 = time.perf_counter()
                    git(repo, "for-each-ref")
                    t3 = time.perf_counter()
                    if r:
                        base.append((t1 - t0) + (t3 - t2))
        t0 = time.perf_counter()
        assert guard.check(full=True) == []
        full_s = time.perf_counter() - t0
        pairs = [a + b for a, b in zip(snaps, checks, strict=True)]
        return {
            "layout": layout,
            "refs": len(Repo(str(repo)).get_refs()),
            "log_bytes": session.events_path.stat().st_size,
            "events": len(session.events),
            "snapshot_median_s": statistics.median(snaps),
            "check_median_s": statistics.median(checks),
            "median_s": statistics.median(pairs),
            "baseline": "git for-each-ref, twice",
            "baseline_median_s": statistics.median(base),
            "ratio": statistics.median(pairs) / statistics.median(base),
            "guard_made_s": made_s,
            "full_check_s": full_s,
            "rounds": rounds,
        }
    finally:
        session.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object a row")
    ap.add_argument("--refs", type=int, default=1000, help="branches, and as many tags (default 1000 each)")
    ap.add_argument("--log-mb", type=float, default=10.0, help="the size of the session's log (default 10 MB)")
    ap.add_argument("--rounds", type=int, default=30, help="timed rounds after one warm-up (default 30)")
    ap.add_argument("--proposed", action="store_true", help="with Session.events_since (monkeypatched)")
    ap.add_argument("--no-watch", action="store_true", help="the guard without inotify (reading everything)")
    ap.add_argument("--dir", type=Path, default=None, help="where the temporary repository goes")
    args = ap.parse_args()
    if args.proposed:
        Session.events_since = lambda self, n: tuple(self._events[n:])  # type: ignore[attr-defined]
    root = Path(tempfile.mkdtemp(prefix="maestro-bench-tampering-", dir=args.dir))
    os.environ.setdefault("MAESTRO_WORKTREES", str(root / "worktrees"))
    try:
        repo, sid = build(root, args.refs, args.log_mb)
        rows = [measure(repo, sid, layout, args.rounds, watch=not args.no_watch) for layout in ("loose", "packed")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    proposed = " (with Session.events_since)" if args.proposed else ""
    proposed += " (no inotify: reading everything)" if args.no_watch else ""
    print(f"tampering looks around an attempt{proposed}: {args.refs} branches + {args.refs} tags, a {args.log_mb:g} MB "
          f"log; {args.rounds} rounds, medians; on {file_system(root.parent)}")  # fmt: skip
    print(f"{'layout':<7} {'refs':>5} {'snapshot':>9} {'check':>9} {'both':>9} {'for-each-ref x2':>16} {'ratio':>6}"
          f" {'guard made':>10} {'full check':>10}")  # fmt: skip
    for row in rows:
        print(f"{row['layout']:<7} {row['refs']:>5} {fmt_s(row['snapshot_median_s']):>9} "
              f"{fmt_s(row['check_median_s']):>9} {fmt_s(row['median_s']):>9} {fmt_s(row['baseline_median_s']):>16} "
              f"{row['ratio']:>5.2f}x {fmt_s(row['guard_made_s']):>10} {fmt_s(row['full_check_s']):>10}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
