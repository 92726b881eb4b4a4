"""The session store: layout, the append-only log, torn lines, locks, atomic views."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import maestro
from maestro.store.filestore import EventLog, atomic_write, read_events
from tests.support.git import git_init


def test_layout_follows_the_prd(store: maestro.Store, session: maestro.Session) -> None:
    root = store.repo / ".flow" / "maestro"
    assert store.root == root
    sdir = root / "sessions" / session.id
    session.fire("start")
    session.close()
    for name in ("events.jsonl", "metadata.json", "decisions.json", "checkpoints.json", "execution-log.md"):
        assert (sdir / name).is_file(), name
    assert not (sdir / "final-report.md").exists()  # written when the session ends
    assert (root / "decisions").is_dir()
    assert not store.config_path.exists()  # `maestro init` writes it; the store only reads it
    assert store.session_ids() == [session.id]


def test_every_line_is_one_event_with_the_required_fields(store: maestro.Store, session: maestro.Session) -> None:
    session.fire("start")
    session.note("hello")
    session.close()
    lines = (store.events_path(session.id)).read_text().splitlines()
    objs = [json.loads(line) for line in lines]
    assert [o["seq"] for o in objs] == [1, 2, 3]
    for o in objs:
        assert list(o) == ["v", "seq", "ts", "kind", "data"]
        assert o["v"] == 1
        assert o["ts"].endswith("Z")
        assert o["ts"][10] == "T"
    assert [o["kind"] for o in objs] == ["session", "transition", "note"]
    assert objs[1]["data"] == {"trigger": "start", "source": "created", "dest": "planning"}
    assert objs[2]["data"] == {"text": "hello"}


def test_the_event_is_fsynced_before_the_state_changes(
    store: maestro.Store, session: maestro.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, str]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        real_fsync(fd)
        seen.append((os.fstat(fd).st_size, session.current))

    monkeypatch.setattr(os, "fsync", spy)
    session.fire("start")
    size = store.events_path(session.id).stat().st_size
    # the fsync of the full line happened while the session was still in `created`
    assert (size, "created") in seen
    assert session.current == "planning"


def test_a_failed_append_changes_nothing(
    store: maestro.Store, session: maestro.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = store.events_path(session.id).read_bytes()

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(maestro.StoreError, match="cannot append event 2: No space left on device"):
        session.fire("start")
    monkeypatch.undo()
    assert session.current == "created"
    assert store.events_path(session.id).read_bytes() == before  # the partial line was cut off
    assert session.fire("start") == "planning"  # and the log goes on cleanly
    assert [e.seq for e in store.read_events(session.id)] == [1, 2]


def test_a_torn_last_line_is_dropped_with_a_warning(
    store: maestro.Store, session: maestro.Session, caplog: pytest.LogCaptureFixture
) -> None:
    session.fire("start")
    session.close()
    path = store.events_path(session.id)
    intact = path.read_bytes()
    with path.open("ab") as fh:
        fh.write(b'{"v":1,"seq":3,"ts":"2026-01-01T00:00:0')  # the crash came mid-write
    events = store.read_events(session.id)
    assert [e.seq for e in events] == [1, 2]
    assert "dropping a torn last line" in caplog.text
    assert path.read_bytes() != intact  # reading left the file alone: the torn tail is still there
    # opening for writing cuts the torn tail, so the next event starts on a clean line
    with maestro.Session.open(store, session.id, clock=maestro.TickingClock()) as again:
        assert again.current == "planning"
        again.fire("plan_ready")
    assert path.read_bytes().startswith(intact)
    assert [e.seq for e in store.read_events(session.id)] == [1, 2, 3]


def test_a_bad_line_in_the_middle_names_file_and_line(store: maestro.Store, session: maestro.Session) -> None:
    session.fire("start")
    session.fire("plan_ready")
    session.close()
    path = store.events_path(session.id)
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"{not json"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(maestro.StoreError, match=rf"{path}:2: not a valid event"):
        store.read_events(session.id)


def test_a_gap_in_seq_is_an_error(store: maestro.Store, session: maestro.Session) -> None:
    session.fire("start")
    session.fire("plan_ready")
    session.close()
    path = store.events_path(session.id)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(maestro.StoreError, match=r":2: seq is 3, expected 2"):
        store.read_events(session.id)


def test_a_line_missing_a_field_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"v":1,"seq":1,"kind":"note","data":{"text":"x"}}\n')
    with pytest.raises(maestro.StoreError, match=r"events.jsonl:1: not a valid event: event lacks ts"):
        read_events(path)


def test_a_second_opener_is_told_who_holds_the_session(store: maestro.Store, session: maestro.Session) -> None:
    with pytest.raises(maestro.SessionLocked, match=rf"session {session.id} is locked by pid {os.getpid()}"):
        maestro.Session.open(store, session.id)


def test_another_process_cannot_open_a_held_session(store: maestro.Store, session: maestro.Session) -> None:
    code = (
        "import sys, maestro\n"
        "try:\n"
        f"    maestro.Session.open(maestro.Store({str(store.repo)!r}), {session.id!r})\n"
        "except maestro.SessionLocked as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert out.stdout.strip() == f"session {session.id} is locked by pid {os.getpid()}"


def test_a_lock_whose_holder_died_is_taken_over(store: maestro.Store) -> None:
    code = (
        "import os, maestro\n"
        f"s = maestro.Session.create(maestro.Store({str(store.repo)!r}), 'x', ids=maestro.SequentialIds('dead'))\n"
        "s.fire('start')\n"
        "os._exit(9)  # dies holding the lock, without closing\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 9, out.stderr
    with maestro.Session.open(store, "dead-1") as s:
        assert s.current == "planning"
        assert (s.dir / "lock").read_text().strip() == str(os.getpid())


def test_closing_releases_the_lock(store: maestro.Store, session: maestro.Session) -> None:
    session.close()
    with maestro.Session.open(store, session.id) as again:
        assert again.id == session.id


def test_not_a_repository_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(maestro.StoreError, match="not a git repository"):
        maestro.Store(tmp_path)


def test_an_empty_dot_git_above_is_passed_over_as_git_passes_it_over(tmp_path: Path) -> None:
    """Codex's sandbox leaves an empty /tmp/.git behind: a repository under it, or none, reads as git reads it."""
    git_init(tmp_path / "top")
    (tmp_path / "top" / "mid" / ".git").mkdir(parents=True)  # no HEAD: not a git directory
    (tmp_path / "top" / "mid" / "work").mkdir()
    assert maestro.Store(tmp_path / "top" / "mid" / "work").repo == (tmp_path / "top").resolve()
    with pytest.raises(maestro.StoreError, match=r"mid/\.git: not a git directory \(it has no HEAD\)"):
        maestro.Store(tmp_path / "top" / "mid")  # at the folder named: refused, never written into
    (tmp_path / "none" / ".git").mkdir(parents=True)
    (tmp_path / "none" / "sub").mkdir()
    with pytest.raises(maestro.StoreError, match="not a git repository"):
        maestro.Store(tmp_path / "none" / "sub")
    with pytest.raises(maestro.StoreError, match="no such directory"):
        maestro.Store(tmp_path / "missing")


def test_a_store_is_found_from_a_subdirectory(repo: Path) -> None:
    (repo / "src" / "deep").mkdir(parents=True)
    assert maestro.Store(repo / "src" / "deep").repo == repo.resolve()


def test_reading_writes_nothing(store: maestro.Store) -> None:
    assert store.session_ids() == []
    with pytest.raises(maestro.StoreError, match="no session 'nope'"):
        store.read_events("nope")
    assert not (store.repo / ".flow").exists()


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden"])
def test_session_ids_cannot_leave_the_store(store: maestro.Store, bad: str) -> None:
    with pytest.raises(maestro.StoreError, match="bad session id"):
        store.session_dir(bad)


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metadata.json"
    atomic_write(target, "old\n")

    def boom(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(maestro.StoreError, match="cannot write: Input/output error"):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json"]  # no temp file left


def test_the_event_log_refuses_appends_once_closed(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", next_seq=1, size=0)
    log.append("note", {"text": "a"}, "2026-01-01T00:00:00Z")
    log.close()
    with pytest.raises(maestro.StoreError, match="closed"):
        log.append("note", {"text": "b"}, "2026-01-01T00:00:00Z")


def test_config_yaml_is_read_and_a_malformed_one_is_named(store: maestro.Store) -> None:
    assert store.load_config() == {}
    store.init()
    store.config_path.write_text("parallel:\n  max_workers: 4\n")
    assert store.load_config() == {"parallel": {"max_workers": 4}}
    store.config_path.write_text("parallel: [unclosed\n")
    with pytest.raises(maestro.StoreError, match=r"config.yaml: cannot read config"):
        store.load_config()
    store.config_path.write_text("- a list\n")
    with pytest.raises(maestro.StoreError, match="the config is a mapping"):
        store.load_config()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"v":1,"seq":2,"ts":"2026-01-01T00:00:00Z","kind":"note","data":{"text":"x"}} trailing', "extra data"),
        (b'{"v":1,"seq":2,"ts":"2026-01-01T00:00:00Z","kind":"note","data":{"text":"\xff"}}', "not UTF-8 text"),
        (b'{"v":1,"seq":2,"ts":"yesterday","kind":"note","data":{"text":"x"}}', "ts must be an ISO 8601"),
        (b'{"v":0,"seq":2,"ts":"2026-01-01T00:00:00Z","kind":"note","data":{}}', "v must be a schema version"),
        (b'{"v":1,"seq":2,"ts":"2026-01-01T00:00:00Z","kind":"Bad Kind","data":{}}', "kind must be a lower-case"),
        (b'{"v":1,"seq":2,"ts":"2026-01-01T00:00:00Z","kind":"note","data":[]}', "data must be a JSON object"),
        (b"[1, 2]", "an event is a JSON object"),
    ],
)
def test_each_malformed_event_is_named(tmp_path: Path, line: bytes, message: str) -> None:
    path = tmp_path / "events.jsonl"
    first = b'{"v":1,"seq":1,"ts":"2026-01-01T00:00:00Z","kind":"note","data":{"text":"ok"}}\n'
    path.write_bytes(first + line + b"\n" + first.replace(b'"seq":1', b'"seq":3'))
    with pytest.raises(maestro.StoreError, match=r"events.jsonl:2: ") as info:
        read_events(path)
    assert message in str(info.value)
