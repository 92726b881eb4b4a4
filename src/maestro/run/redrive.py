"""Re-drive: run a recorded session again, with its recorded agent results, and say whether it went the same way.

::

    report = redrive(store, session_id, config=config)
    print(report.same, report.first_difference)

:func:`redrive` copies the repository as it was when the session started (its
checkpoint 0 commit, without ``.flow/``) into a new folder, runs the
orchestrator there with a :class:`~maestro.agents.replay.ReplayAgent` — each
agent call answered with what the session recorded, its recorded changes
re-applied — and compares the two sessions:

* the session's transitions (trigger, source, dest), in order;
* each task's transitions, in order (tasks that run at once may finish in
  another order: they are compared task by task);
* the decisions (kind, choice): those about a task task by task, the others
  in order;
* the gate results (name, status), in order;
* each task's merges (the checkpoints labelled ``task <id>: …``), task by task:
  what each merge changed (its files and their contents) — tasks merge in the
  order they finish, so a merge's whole tree may differ while its change is
  the same; the other checkpoints (number, label, tree) in order;
* the final tree: the tree of each session's last checkpoint.

Event ids, timestamps, commit ids, durations, reasons and notes are not
compared.  Events voided by a ``rewind`` (a crash resume redid that step) are
left out first (:func:`~maestro.model.state.effective_events`, re-exported here).
If the re-driven session asks the replay agent for an attempt the recording
does not have, the re-drive stops there (a
:class:`~maestro.agents.replay.Divergence`) and the report names the task and
the attempt.  Nothing is printed: progress goes to the ``maestro`` logger, and
``maestro replay SESSION --redrive`` (:func:`maestro.cli.inspect.redrive_lines`) formats
the report.  ``docs/redrive.md`` says more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from dulwich.diff_tree import tree_changes
from dulwich.index import build_index_from_tree
from dulwich.object_store import iter_tree_contents
from dulwich.objects import S_ISGITLINK, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.agents.base import PLAN_TASK
from maestro.agents.replay import ChangeError, Divergence, ReplayAgent
from maestro.config.model import Config
from maestro.core.errors import MaestroError
from maestro.core.records import Event
from maestro.decide.lessons import carry_lessons
from maestro.model.state import effective_events, rebuild
from maestro.run.runner import Runner
from maestro.store.filestore import EVENTS, Store, atomic_write

__all__ = ["RedriveReport", "effective_events", "redrive"]

log = logging.getLogger("maestro")


# -- the report -------------------------------------------------------------------------------------------------------


@attrs.frozen
class RedriveReport:
    """What a re-drive found.

    ``same``: the re-driven session took the same steps and left the same tree.
    ``steps_compared``: the session steps (transitions) found equal, in order,
    before the first difference (all of them when ``same``).
    ``first_difference``: one line naming the first differing step, or None.
    ``recorded_tree`` / ``redriven_tree``: the tree ids of each session's last
    checkpoint (None without one).  ``redriven_session`` is the new session's
    id in the copy of the repository at ``workdir``; ``divergence`` the replay
    agent's message when the re-drive stopped early; ``redriven_state`` the
    state the re-driven session ended in.
    """

    same: bool
    steps_compared: int
    first_difference: str | None
    recorded_tree: str | None
    redriven_tree: str | None
    redriven_session: str
    workdir: Path
    session: str = ""
    divergence: str | None = None
    redriven_state: str | None = None


# -- the re-drive -----------------------------------------------------------------------------------------------------


def redrive(
    store: Store,
    session_id: str,
    *,
    config: Config,
    request: str | None = None,
    prd_path: Path | None = None,
    tasks_path: Path | None = None,
    workdir: Path | None = None,
) -> RedriveReport:
    """Run session ``session_id`` of ``store`` again on a copy of its base, with its recorded agent results.

    ``request`` defaults to the recorded request.  ``prd_path`` and
    ``tasks_path`` default to the plan the session ran (its ``prd.md`` and
    ``tasks.yaml``) — the PRD only when the session did not plan with its agent,
    so that a recorded planning call is replayed as such.  ``workdir`` is
    where the copy goes (it must be empty or new; default: a new temporary
    folder, kept for inspection).  Raises :class:`~maestro.MaestroError` if
    the session has no checkpoint 0 or its commit is missing.
    """
    recorded = store.read_events(session_id)
    state = rebuild(recorded, where=str(store.events_path(session_id)))  # the log checked against the charts
    events = effective_events(recorded)
    zero = next((r for r in state.checkpoints if r.n == 0), None)
    if zero is None:
        raise MaestroError(
            f"session {session_id} has no checkpoint 0 (it stopped before its base was saved): "
            "there is no base to re-drive from"
        )
    session_dir = store.session_dir(session_id)
    planned = any(e.kind == "agent" and e.data.get("task") == PLAN_TASK for e in events)
    if prd_path is None and not planned and (session_dir / "prd.md").is_file():
        prd_path = session_dir / "prd.md"
    if tasks_path is None and (session_dir / "tasks.yaml").is_file():
        tasks_path = session_dir / "tasks.yaml"
    copy = _new_folder(workdir)
    log.info("re-driving session %s from checkpoint 0 (%s) in %s", session_id, zero.commit[:12], copy)
    _checkout(store.repo, zero.commit, copy)
    redriven_store = Store(copy)
    _copy_decision_history(store, session_id, events[0].ts, redriven_store)
    carry_lessons(store, state.decisions, redriven_store)  # the approved lessons its decisions followed
    agent = ReplayAgent.from_session(store, session_id)
    runner = Runner(redriven_store, config, agent, sleep=lambda _s: None)
    stopped: str | None = None
    try:
        runner.run(request if request is not None else state.request,
                   prd_path=prd_path, tasks_path=tasks_path, allow_dirty=True)  # fmt: skip
    except Divergence as exc:
        what = "planning call" if exc.task == PLAN_TASK else f"task {exc.task} attempt"
        stopped = f"{what} {exc.attempt}: {exc}"
        log.info("re-drive of session %s stopped: %s", session_id, stopped)
    except ChangeError as exc:
        stopped = f"recorded changes cannot be re-applied: {exc}"
        log.info("re-drive of session %s stopped: %s", session_id, stopped)
    ids = redriven_store.session_ids()
    if not ids:  # nothing was created: the run refused its input before starting
        raise MaestroError(f"the re-drive of session {session_id} did not start a session in {copy}")
    new_id = ids[-1]
    a = _trace(store.repo, events)
    b = _trace(copy, effective_events(redriven_store.read_events(new_id)))
    first, compared = _compare(a, b, stopped=stopped)
    if first is not None and stopped is None:
        log.info("re-drive of session %s differs: %s", session_id, first)
    return RedriveReport(
        same=first is None,
        steps_compared=compared,
        first_difference=first,
        recorded_tree=a.final_tree,
        redriven_tree=b.final_tree,
        redriven_session=new_id,
        workdir=copy,
        session=session_id,
        divergence=stopped,
        redriven_state=b.state,
    )


def _new_folder(workdir: Path | None) -> Path:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="maestro-redrive-")) / "repo"
    workdir = Path(workdir)
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise MaestroError(f"{workdir}: not an empty folder: the re-drive needs an empty or new one")
    return workdir


def _checkout(source: Path, commit: str, dest: Path) -> None:
    """A new repository at ``dest`` holding ``commit``, checked out, with ``.flow/`` left out.

    Only the commit and the objects of its tree are copied (as loose objects):
    the copy is shallow (``.git/shallow`` names the commit), which is all a
    session needs — it commits on top of its base and never walks its history.
    """
    sha = ObjectID(commit.encode("ascii"))
    dest.mkdir(parents=True, exist_ok=True)
    with Repo(str(source)) as src, Repo.init(str(dest)) as dst:
        try:
            obj = src[sha]
        except (KeyError, ValueError):
            raise MaestroError(f"{source}: the session's base commit {commit} is not in the repository") from None
        if not isinstance(obj, Commit):
            raise MaestroError(f"{source}: {commit} is not a commit")
        store = dst.object_store
        for entry in iter_tree_contents(src.object_store, obj.tree, include_trees=True):
            if entry.sha is not None and entry.mode is not None and not S_ISGITLINK(entry.mode):
                store.add_object(src[entry.sha])  # a submodule's commit is in another repository: left out
        root = src[obj.tree]
        assert isinstance(root, Tree)
        store.add_object(root)
        if b".flow" in root:  # maestro's own folder, committed by someone: kept in the commit, not checked out
            kept = Tree()
            for entry in root.items():
                if entry.path != b".flow":
                    kept.add(entry.path, entry.mode, entry.sha)
            store.add_object(kept)
            root = kept
        store.add_object(obj)
        dst.update_shallow({sha}, None)
        head = dst.refs.follow(Ref(b"HEAD"))[0][-1]
        dst.refs[head] = sha
        build_index_from_tree(str(dest), dst.index_path(), store, root.id)


def _copy_decision_history(store: Store, session_id: str, started: str, into: Store) -> None:
    """The decision history as the session saw it: other sessions' entries, from sessions started before it."""
    source = store.decisions_dir
    if not source.is_dir():
        return
    start_of: dict[str, str | None] = {}

    def before(sid: Any) -> bool:
        if not isinstance(sid, str):
            return True
        if sid not in start_of:
            start_of[sid] = _start_ts(store, sid)
        ts = start_of[sid]
        return ts is None or ts < started

    for path in sorted(source.glob("*.json")):
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.warning("re-drive: %s: cannot read the decision history (left out): %s", path, exc)
            continue
        if not isinstance(entries, list):
            continue
        kept = [e for e in entries if not isinstance(e, Mapping) or (e.get("session") != session_id
                                                                     and before(e.get("session")))]  # fmt: skip
        into.decisions_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(into.decisions_dir / path.name, json.dumps(kept, indent=2, ensure_ascii=False) + "\n")


def _start_ts(store: Store, session_id: str) -> str | None:
    """When a session started (its first event's ``ts``), read from the first line only; None if unknown."""
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError, AttributeError):
        with (store.session_dir(session_id) / EVENTS).open(encoding="utf-8") as f:
            ts = json.loads(f.readline()).get("ts")
        return ts if isinstance(ts, str) else None
    return None


# -- the comparison ---------------------------------------------------------------------------------------------------


@attrs.frozen
class _Item:
    """One comparable record: what is compared (``key``), how it reads, and where it was in its log."""

    key: tuple[Any, ...]
    text: str
    seq: int


@attrs.frozen
class _Trace:
    """What of one session is compared, grouped in sequences: name → items in order."""

    sequences: dict[str, list[_Item]]
    final_tree: str | None
    state: str
    transitions: int


_CATEGORY_ORDER = ("step", "task", "decision", "gate", "checkpoint")


def _trace(repo: Path, events: Sequence[Event]) -> _Trace:
    seqs: dict[str, list[_Item]] = {"step": [], "decision": [], "gate": []}
    state = "created"
    transitions = 0
    trees: dict[str, str] = {}
    with Repo(str(repo)) as r:

        def tree_of(commit: str) -> str:
            if commit not in trees:
                try:
                    obj = r[ObjectID(commit.encode("ascii"))]
                except KeyError:
                    raise MaestroError(f"{repo}: checkpoint commit {commit} is not in the repository") from None
                trees[commit] = obj.tree.decode("ascii") if isinstance(obj, Commit) else commit
            return trees[commit]

        def change_of(commit: str) -> tuple[tuple[bytes, bytes | None], ...]:
            """What a checkpoint's commit changed from its first parent: (path, new blob or None) pairs."""
            obj = r[ObjectID(commit.encode("ascii"))]
            assert isinstance(obj, Commit)
            parent = r[obj.parents[0]] if obj.parents else None
            before = parent.tree if isinstance(parent, Commit) else None
            out = []
            for ch in tree_changes(r.object_store, before, obj.tree):
                new = ch.new if ch.new is not None and ch.new.path is not None else None
                path = new.path if new is not None else (ch.old.path if ch.old is not None else None)
                assert path is not None
                out.append((path, new.sha if new is not None else None))
            return tuple(sorted(out))

        final: str | None = None
        for e in events:
            d = e.data
            key: tuple[Any, ...]
            if e.kind == "transition":
                transitions += 1
                state = str(d.get("dest"))
                key = (d.get("trigger"), d.get("source"), d.get("dest"))
                seqs["step"].append(_Item(key, f"transition {key[0]} {key[1]}→{key[2]}", e.seq))
            elif e.kind == "task":
                key = (d.get("trigger"), d.get("source"), d.get("dest"))
                seqs.setdefault(f"task:{d.get('task')}", []).append(_Item(key, f"{key[0]} {key[1]}→{key[2]}", e.seq))
            elif e.kind == "decision":
                key = (d.get("kind"), d.get("choice"))
                name = f"decision:{d['task']}" if d.get("task") else "decision"
                seqs.setdefault(name, []).append(_Item(key, f"{key[0]} decision {key[1]!r}", e.seq))
            elif e.kind == "gate":
                key = (d.get("name"), d.get("status"))
                seqs["gate"].append(_Item(key, f"gate {key[0]} {key[1]}", e.seq))
            elif e.kind == "checkpoint":
                rec = e.payload()
                final = tree_of(rec.commit)
                merged = _MERGED.match(rec.label)
                if merged:  # a task's merge: tasks merge in the order they finish, so what it changed is compared
                    change = change_of(rec.commit)
                    key = (rec.label, change)
                    text = f"changes {_digest(change)} ({rec.label})"
                    seqs.setdefault(f"checkpoint:{merged.group(1)}", []).append(_Item(key, text, e.seq))
                    continue
                key = (rec.n, final) if rec.n == 0 else (rec.n, rec.label, final)
                seqs.setdefault("checkpoint", []).append(_Item(key, f"tree {final} ({rec.label})", e.seq))
    return _Trace(seqs, final, state, transitions)


_MERGED = re.compile(r"task ([^:]+): ")


def _digest(change: tuple[tuple[bytes, bytes | None], ...]) -> str:
    """A short name for a checkpoint's change (its files and their contents)."""
    return hashlib.sha256(repr(change).encode()).hexdigest()[:12] + f", {len(change)} files"


def _where(name: str, i: int, a: Sequence[_Item], b: Sequence[_Item]) -> str:
    """How the i-th item of sequence ``name`` is named in the report."""
    if name.startswith("checkpoint:"):
        return f"task {name[11:]} checkpoint"
    if name == "step":
        return f"step {i + 1}"
    if name.startswith("task:"):
        return f"task {name[5:]} step {i + 1}"
    if name.startswith("decision:"):
        return f"task {name[9:]} decision {i + 1}"
    if name == "decision":
        return f"decision {i + 1}"
    if name == "gate":
        return f"gate result {i + 1}"
    item = a[i] if i < len(a) else b[i]
    return f"checkpoint {item.key[0]}"


def _absent(name: str) -> str:
    """What the report says for an item one of the two sessions does not have."""
    if name == "step":
        return "no such step (the session ended)"
    if name.startswith("task:"):
        return "no such step"
    return "no such gate result" if name == "gate" else f"no such {name.partition(':')[0]}"


def _compare(a: _Trace, b: _Trace, *, stopped: str | None) -> tuple[str | None, int]:
    """The first difference between the recorded trace ``a`` and the re-driven ``b`` (None: the same), and how
    many session steps were found equal before it."""
    # The first difference of each sequence, placed by where it happened (the earlier of the two logs' seqs).
    found: list[tuple[float, int, str]] = []
    for name in sorted(set(a.sequences) | set(b.sequences), key=lambda n: (_CATEGORY_ORDER.index(_category(n)), n)):
        xs, ys = a.sequences.get(name, []), b.sequences.get(name, [])
        for i in range(max(len(xs), len(ys))):
            x = xs[i] if i < len(xs) else None
            y = ys[i] if i < len(ys) else None
            if x is not None and y is not None and x.key == y.key:
                continue
            if y is None and stopped is not None:
                break  # the re-drive was cut short: what it did not reach is not a difference
            pos = min(x.seq if x else math.inf, y.seq if y else math.inf)
            rec = x.text if x else _absent(name)
            red = y.text if y else _absent(name)
            found.append((pos, _CATEGORY_ORDER.index(_category(name)), f"{_where(name, i, xs, ys)}: recorded {rec}, "
                                                                        f"re-driven {red}"))  # fmt: skip
            break
    first: str | None = None
    limit = math.inf
    if found:
        limit, _, first = min(found)
    elif stopped is not None:
        first = f"step {b.transitions} ({b.state}): {stopped}"
    elif a.final_tree != b.final_tree:
        first = f"final tree: recorded {a.final_tree or 'none'}, re-driven {b.final_tree or 'none'}"
    compared = 0
    for x, y in zip(a.sequences["step"], b.sequences["step"], strict=False):
        if x.key != y.key or x.seq >= limit:
            break
        compared += 1
    return first, compared


def _category(name: str) -> str:
    return name.partition(":")[0]
