"""Run the ``maestro`` command line and SIGKILL it at a chosen moment (tests/test_crash_resume.py).

The moment comes from the environment:

* ``MAESTRO_KILL_AT_SEQ=N``: right after event N is written to the log (fsync'd);
* ``MAESTRO_KILL_IN=STAGE`` with ``MAESTRO_KILL_NTH=K``: inside the K-th merge, at ``commit``
  (the merged commit is written and shown in the integration worktree, the branch not moved),
  ``tag`` (the branch moved and the tag made, the checkpoint not recorded) or ``index`` (half-way
  through writing the integration worktree's index: its ``index.lock`` is left behind).

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
    calls = {"show": 0, "advance": 0}

    if stage in ("commit", "index"):
        show = Checkpointer.show
        write = GitIndex.write

        def die_mid_write(self: Any) -> None:  # what a write cut short leaves: a lock with half an index
            with open(self.path + ".lock", "wb") as fh:
                fh.write(b"DIRC")
            _die()

        def shown(self: Any, commit: Any) -> None:
            calls["show"] += 1
            if stage == "index" and calls["show"] == nth:
                GitIndex.write = die_mid_write  # type: ignore[method-assign]
            show(self, commit)
            GitIndex.write = write  # type: ignore[method-assign]
            if stage == "commit" and calls["show"] == nth:
                _die()  # the merge's commit is written and shown in the integration worktree; the branch not moved

        Checkpointer.show = shown  # type: ignore[method-assign]
    elif stage == "tag":
        advance = Checkpointer.advance

        def advance_then_die(self: Any, *a: Any, **kw: Any) -> Any:
            record = advance(self, *a, **kw)
            calls["advance"] += 1
            if calls["advance"] == nth:
                _die()  # the branch moved and the tag made; the checkpoint not recorded
            return record

        Checkpointer.advance = advance_then_die  # type: ignore[method-assign]
    else:
        raise SystemExit(f"crash_driver: unknown MAESTRO_KILL_IN {stage!r}")


if __name__ == "__main__":
    _arm()
    from maestro.cli.main import main

    sys.exit(main(sys.argv[1:]))
