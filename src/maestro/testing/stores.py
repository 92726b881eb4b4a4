"""The store conformance suite: what a :class:`~maestro.Session` and replay need of a store, as pytest tests.

A store (:class:`~maestro.store.protocol.StoreProtocol`) names the folders; the
session writes there with the store's primitives.  Subclass
:class:`StoreConformance` with a ``store`` fixture returning a fresh, empty
store of a fresh git repository::

    import pytest
    from maestro.testing.stores import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(git_init(tmp_path / "repo"))

The checks, each through the store and a real session in it:

* the store keeps the protocol; a new store is empty, and reading it writes nothing;
* ``init`` makes the decisions folder and can be repeated; bad session ids are refused;
* a created session has its folder, holds its log inside it, and is listed, oldest first;
* events read back exactly as appended, while the session is held (no lock is
  needed to read) and after; each append is fsync'd before it returns;
* a torn last line (a crash mid-write) is dropped by reading, and cut off by
  the next holder, whose appends continue the sequence; a bad line before the
  last is an error naming the file and the line;
* a held session is refused to a second holder, who is told the holder's pid;
  closing releases it;
* the derived files are replaced whole or not at all;
* decisions reach the history in the decisions folder, whose lock is exclusive;
* a closed session replays to the state it had.

Needs pytest (this is the test toolkit; nothing in maestro imports it).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import cast

import pytest

from maestro.core.errors import SessionLocked, StoreError
from maestro.core.records import Decision
from maestro.core.seams import SequentialIds, TickingClock
from maestro.replay import replay_session
from maestro.session import Session
from maestro.store.filestore import Store
from maestro.store.protocol import StoreProtocol

__all__ = ["StoreConformance"]


def _open_session(store: StoreProtocol, request: str = "add a calculator", prefix: str = "session") -> Session:
    # Session and replay are typed with the file store; what they call on it is StoreProtocol (this suite's subject)
    return Session.create(cast(Store, store), request, clock=TickingClock(), ids=SequentialIds(prefix=prefix))


def _files(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes) and symlink (its target) under ``root``; folders as ``"dir"``."""
    out: dict[str, bytes | str] = {}
    if not root.exists():
        return out
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in names:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            out[rel] = os.readlink(full) if os.path.islink(full) else Path(full).read_bytes()
    return out


class StoreConformance:
    """The checks every store passes.  Subclass it with a ``store`` fixture returning a :class:`StoreProtocol`.

    Each check takes the fixture ``store`` (and ``monkeypatch`` or a parameter
    where it needs one), so it can also be called directly.
    """

    def test_the_store_keeps_the_protocol(self, store: StoreProtocol) -> None:
        """It has every member of :class:`StoreProtocol`; its repository is a git repository; a session's log is
        directly in the session's folder (the lock goes beside it)."""
        assert isinstance(store, StoreProtocol), f"{type(store).__name__} lacks members of StoreProtocol"
        assert (store.repo / ".git").exists(), f"{store.repo} is not a git repository"
        assert store.events_path("S1").parent == store.session_dir("S1")

    def test_a_new_store_is_empty_and_reading_it_writes_nothing(self, store: StoreProtocol) -> None:
        """No sessions; a missing one does not exist, has no holder, and reading it is a StoreError — and none
        of that writes anything."""
        before = _files(store.repo)
        assert store.session_ids() == []
        assert not store.exists("S1")
        assert store.holder("S1") is None
        with pytest.raises(StoreError):
            store.read_events("S1")
        assert _files(store.repo) == before, "reading a store wrote to it"

    def test_init_makes_the_decisions_folder_and_can_be_repeated(self, store: StoreProtocol) -> None:
        store.init()
        assert store.decisions_dir.is_dir()
        store.init()
        assert store.decisions_dir.is_dir()
        assert store.session_ids() == []

    @pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", ".hidden", "x\0y", "/abs"])
    def test_a_bad_session_id_is_refused(self, store: StoreProtocol, bad: str) -> None:
        """A session id is a folder name of its own: nothing that leaves the store or hides in it."""
        for call in (store.session_dir, store.events_path, store.read_events):
            with pytest.raises(StoreError):
                call(bad)

    def test_a_created_session_has_its_folder_and_is_listed(self, store: StoreProtocol) -> None:
        """A session's folder and log exist once it is created; the sessions are listed oldest first."""
        first = _open_session(store, prefix="a")
        second = _open_session(store, prefix="b")
        try:
            for s in (first, second):
                assert store.exists(s.id)
                assert store.session_dir(s.id).is_dir() and s.dir == store.session_dir(s.id)
                assert store.events_path(s.id).is_file()
            assert store.session_ids() == [first.id, second.id]
        finally:
            first.close()
            second.close()
        assert store.session_ids() == [first.id, second.id]

    def test_events_read_back_as_they_were_appended(self, store: StoreProtocol) -> None:
        """While the session is held (reading takes no lock) and after it is closed."""
        session = _open_session(store)
        try:
            session.fire("start")
            session.note("hello")
            session.record(Decision("tech-stack", "language?", "python", "pyproject.toml is there"))
            held = store.read_events(session.id)
            assert held == list(session.events)
            assert [e.seq for e in held] == list(range(1, len(held) + 1))
            assert [e.kind for e in held] == ["session", "transition", "note", "decision"]
        finally:
            session.close()
        assert store.read_events(session.id) == held

    def test_each_append_is_fsynced_before_it_returns(
        self, store: StoreProtocol, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The log file is fsync'd, at its new length, before ``record`` returns."""
        session = _open_session(store)
        try:
            path = store.events_path(session.id)
            inode = path.stat().st_ino
            synced: list[int] = []
            real = os.fsync

            def spy(fd: int) -> None:
                real(fd)
                st = os.fstat(fd)
                if st.st_ino == inode:
                    synced.append(st.st_size)

            monkeypatch.setattr(os, "fsync", spy)
            session.note("durable")
            monkeypatch.undo()
            assert synced and synced[-1] == path.stat().st_size, "the append returned before it was fsync'd"
            assert store.read_events(session.id)[-1].data == {"text": "durable"}
        finally:
            session.close()

    def test_a_torn_last_line_is_dropped_and_the_log_goes_on(self, store: StoreProtocol) -> None:
        """A line cut short by a crash is not an event: reading drops it, the next holder cuts it off and its
        appends continue the sequence."""
        session = _open_session(store)
        session.note("kept")
        session.close()
        intact = store.read_events(session.id)
        path = store.events_path(session.id)
        with path.open("ab") as f:
            f.write(b'{"v":1,"seq":3,"ts":"2026-01-')
        assert store.read_events(session.id) == intact
        again = Session.open(cast(Store, store), session.id, clock=TickingClock())
        try:
            again.note("after the crash")
        finally:
            again.close()
        events = store.read_events(session.id)
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[-1].data == {"text": "after the crash"}
        assert path.read_bytes().endswith(b"\n") and b'"ts":"2026-01-\n' not in path.read_bytes()

    def test_a_bad_line_before_the_last_is_an_error_naming_it(self, store: StoreProtocol) -> None:
        session = _open_session(store)
        session.note("one")
        session.note("two")
        session.close()
        path = store.events_path(session.id)
        lines = path.read_bytes().splitlines(keepends=True)
        lines[1] = b"not json\n"
        path.write_bytes(b"".join(lines))
        with pytest.raises(StoreError, match=":2:"):
            store.read_events(session.id)

    def test_a_held_session_is_refused_to_a_second_holder(self, store: StoreProtocol) -> None:
        """A second holder gets SessionLocked naming the holder's pid; closing releases the session."""
        session = _open_session(store)
        try:
            assert store.holder(session.id) == os.getpid()
            with pytest.raises(SessionLocked) as refused:
                Session.open(cast(Store, store), session.id)
            assert refused.value.pid == os.getpid()
        finally:
            session.close()
        assert store.holder(session.id) is None
        Session.open(cast(Store, store), session.id).close()

    def test_derived_files_are_replaced_whole_or_not_at_all(
        self, store: StoreProtocol, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the rename that replaces a view fails, the old view is whole and no temporary file is left."""
        session = _open_session(store)
        try:
            folder = store.session_dir(session.id)
            old = _files(folder)
            session.note("more")

            def refuse(src: object, dst: object) -> None:
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(os, "replace", refuse)
            with pytest.raises(StoreError):
                session.refresh_views()
            monkeypatch.undo()
            now = _files(folder)
            views = [n for n in old if n not in ("events.jsonl", "lock")]
            assert views, "a new session has no derived files"
            assert {n: now.get(n) for n in views} == {n: old[n] for n in views}
            assert set(now) == set(old), f"left behind: {sorted(set(now) - set(old))}"
        finally:
            session.close()

    def test_decisions_reach_the_history_in_the_decisions_folder(self, store: StoreProtocol) -> None:
        session = _open_session(store)
        session.record(Decision("tech-stack", "language?", "python", "pyproject.toml is there"))
        session.close()
        found = []
        for path in sorted(store.decisions_dir.glob("*.json")):
            found += [e for e in json.loads(path.read_text(encoding="utf-8")) if e.get("session") == session.id]
        assert [e["decision"]["choice"] for e in found] == ["python"]

    def test_the_decisions_lock_is_exclusive(self, store: StoreProtocol) -> None:
        """A second taker of the decisions lock waits until the first lets go."""
        trying, entered = threading.Event(), threading.Event()
        order: list[str] = []

        def second() -> None:
            trying.set()
            with store.decisions_lock():
                order.append("second in")
            entered.set()

        with store.decisions_lock():
            order.append("first in")
            thread = threading.Thread(target=second, daemon=True)
            thread.start()
            assert trying.wait(10), "the second taker never started"
            time.sleep(0.3)
            order.append("first out")
        assert entered.wait(10), "the second taker never got the lock"
        thread.join(10)
        assert order == ["first in", "first out", "second in"]

    def test_a_closed_session_replays_to_the_state_it_had(self, store: StoreProtocol) -> None:
        session = _open_session(store)
        session.fire("start")
        session.note("planned")
        state = session.state
        session.close()
        steps = list(replay_session(cast(Store, store), session.id))
        assert steps[-1].state == state
