"""Run the ``maestro`` command line and SIGKILL it at a chosen moment (tests/test_crash_resume.py).

The moment comes from the environment:

* ``MAESTRO_KILL_AT_SEQ=N``: right after event N is written to the log (fsync'd);
* ``MAESTRO_KILL_IN=STAGE`` with ``MAESTRO_KILL_NTH=K``: inside the K-th group checkpoint, at
  ``commit`` (the commit object is written, the branch not moved), ``tag`` (the branch moved and
  the tag made, the checkpoint not recorded) or ``index`` (half-way through writing the git index:
  ``index.lock`` is left behind).

A real SIGKILL to this process: nothing runs after it (no ``finally``, no atexit).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm() -> None:
    from maestro import session
    from maestro.git.checkpoints import Checkpointer
    from maestro.git.index import GitIndex
    from maestro.store import filestore as store

    at = os.environ.get("MAESTRO_KILL_AT_SEQ")
    if at is not None:
        seq = int(at)
        append = store.EventLog.append

        def append_then_die(self: Any, kind: str, data: Any, ts: str) -> Any:
            event = append(self, kind, data, ts)
            if event.seq == seq:
                _die()
            return event

        store.EventLog.append = append_then_die  # type: ignore[method-assign]
        if seq == 1:  # the first event is written whole, with the log file, by Session.create
            atomic_write = session.atomic_write

            def write_then_die(path: Any, text: str) -> None:
                atomic_write(path, text)
                if path.name == "events.jsonl":
                    _die()

            session.atomic_write = write_then_die  # type: ignore[assignment]

    stage = os.environ.get("MAESTRO_KILL_IN")
    if stage is None:
        return
    nth = int(os.environ.get("MAESTRO_KILL_NTH", "1"))
    calls = {"n": 0, "armed": False}
    checkpoint = Checkpointer.checkpoint

    def counted(self: Any, label: str, **kw: Any) -> Any:
        calls["n"] += 1
        calls["armed"] = calls["n"] == nth
        try:
            return checkpoint(self, label, **kw)
        finally:
            calls["armed"] = False

    Checkpointer.checkpoint = counted  # type: ignore[method-assign]
    if stage == "commit":
        new_commit = Checkpointer._new_commit

        def commit_then_die(self: Any, *a: Any, **kw: Any) -> Any:
            sha = new_commit(self, *a, **kw)
            if calls["armed"]:
                _die()
            return sha

        Checkpointer._new_commit = commit_then_die  # type: ignore[method-assign]
    elif stage == "tag":
        tag = Checkpointer._tag

        def tag_then_die(self: Any, *a: Any, **kw: Any) -> None:
            tag(self, *a, **kw)
            if calls["armed"]:
                _die()

        Checkpointer._tag = tag_then_die  # type: ignore[method-assign]
    elif stage == "index":
        write = GitIndex.write

        def die_mid_write(self: Any) -> None:
            if calls["armed"]:
                with open(self.path + ".lock", "wb") as fh:  # what a write cut short leaves
                    fh.write(b"DIRC")
                _die()
            write(self)

        GitIndex.write = die_mid_write  # type: ignore[method-assign]
    else:
        raise SystemExit(f"crash_driver: unknown MAESTRO_KILL_IN {stage!r}")


if __name__ == "__main__":
    _arm()
    from maestro.cli.main import main

    sys.exit(main(sys.argv[1:]))
