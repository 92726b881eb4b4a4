"""Lessons a human approves, and the decisions they change (``maestro lessons``; ``docs/lessons.md``).

:func:`propose_lessons` reads every session of a store (their logs, and each one's ``tasks.yaml`` for the tasks'
categories) and returns the lessons the history supports (:func:`maestro.store.lessons.propose`) with the status
a human gave each; :func:`answer_lesson` approves or rejects one (``.flow/maestro/lessons.json``).

The engine hands the approved lessons to its strategies (:attr:`DecisionContext.lessons
<maestro.decide.context.DecisionContext.lessons>`); a strategy that follows one cites it as evidence of kind
``lesson`` (:func:`cite`).  A proposed or rejected lesson is never handed over: it changes nothing.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Sequence
from pathlib import Path

import attrs

from maestro.core.errors import MaestroError, StoreError
from maestro.core.records import Decision, Evidence, format_ts
from maestro.core.seams import Clock, SystemClock
from maestro.core.text import read_input
from maestro.plan.tasks import parse_tasks
from maestro.store.lessons import (
    LESSONS_FILE,
    Lesson,
    merge,
    propose,
    read_lessons,
    read_sessions,
    record_status,
    write_lessons,
)
from maestro.store.protocol import StoreProtocol

__all__ = [
    "Proposals",
    "answer_lesson",
    "approved_lessons",
    "carry_lessons",
    "cite",
    "lessons_for",
    "lessons_path",
    "propose_lessons",
    "task_categories",
]

log = logging.getLogger(__name__)


def lessons_path(root: Path) -> Path:
    """Where the approvals of a store are: ``<root>/lessons.json`` (``root``: ``.flow/maestro``)."""
    return root / LESSONS_FILE


def task_categories(folder: Path) -> dict[str, str]:
    """Task id → category, from the ``tasks.yaml`` a session's folder keeps (empty when it cannot be read)."""
    path = folder / "tasks.yaml"
    try:
        graph = parse_tasks(read_input(path).decode("utf-8"), path)
    except FileNotFoundError:
        return {}
    except (MaestroError, OSError, UnicodeDecodeError) as exc:
        log.warning("%s: no task categories for the lessons: %s", path, exc)
        return {}
    return {t.id: t.category for t in graph}


@attrs.frozen
class Proposals:
    """Every lesson (proposed ones, and those a human answered), and the sessions that could not be read."""

    lessons: tuple[Lesson, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def get(self, lesson_id: str) -> Lesson | None:
        return next((x for x in self.lessons if x.id == lesson_id), None)


def propose_lessons(store: StoreProtocol) -> Proposals:
    """The lessons the sessions of ``store`` support, with the status a human gave each; writes nothing.

    A malformed ``lessons.json`` is a :class:`~maestro.StoreError` naming it.
    """
    recorded = read_lessons(lessons_path(store.root))
    sessions, skipped = read_sessions(store, task_categories)
    return Proposals(tuple(merge(propose(sessions), recorded)), tuple(skipped))


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name, no USER or LOGNAME
        return "human"


def answer_lesson(
    store: StoreProtocol,
    lesson_id: str,
    status: str,
    *,
    note: str = "",
    by: str | None = None,
    clock: Clock | None = None,
) -> Lesson:
    """Approve or reject lesson ``lesson_id`` (``status``: ``approved`` or ``rejected``) and return it as recorded.

    ``by`` is who (default: the login name); the time is ``clock``'s.  An unknown id, or a malformed
    ``lessons.json``, is a :class:`~maestro.StoreError` and nothing is written.
    """
    found = propose_lessons(store)
    lesson = found.get(lesson_id)
    if lesson is None:
        known = ", ".join(x.id for x in found.lessons) or "none yet"
        raise StoreError(f"no lesson {lesson_id!r} in {store.root} (the lessons: {known}; see `maestro lessons`)")
    at = format_ts((clock or SystemClock()).now())
    store.init()
    return record_status(lessons_path(store.root), lesson, status, by=by or _who(), at=at, note=note,
                         lock=store.decisions_lock)  # fmt: skip


def approved_lessons(path: Path | None) -> tuple[Lesson, ...]:
    """The approved lessons of ``lessons.json`` at ``path`` (none without a path or a file)."""
    if path is None:
        return ()
    return tuple(x for x in read_lessons(path).values() if x.status == "approved")


def lessons_for(lessons: Sequence[Lesson], kind: str, topic: str) -> list[Lesson]:
    """The approved lessons of ``kind`` about ``topic``, the best supported first (rate, then cases)."""
    mine = [x for x in lessons if x.status == "approved" and x.kind == kind and x.topic == topic]
    return sorted(mine, key=lambda x: (-x.rate, -x.n, x.id))


def carry_lessons(store: StoreProtocol, decisions: Sequence[Decision], into: StoreProtocol) -> list[str]:
    """For a re-drive into ``into``: the lessons ``decisions`` cite, approved there as the session saw them (a
    lesson rejected since is approved again in the copy), so that its decisions follow them again.  Returns their
    ids; a cited lesson no longer in ``store``'s ``lessons.json`` is left out (the re-drive then shows where)."""
    cited = sorted({e.value for d in decisions for o in d.options for e in o.evidence if e.kind == "lesson"})
    if not cited:
        return []
    try:
        recorded = read_lessons(lessons_path(store.root))
    except StoreError as exc:
        log.warning("re-drive: the lessons the session followed are left out: %s", exc)
        return []
    kept = [attrs.evolve(recorded[i], status="approved") for i in cited if i in recorded]
    for i in cited:
        if i not in recorded:
            log.warning("re-drive: lesson %s, which the session followed, is not in %s", i, lessons_path(store.root))
    into.init()
    write_lessons(lessons_path(into.root), kept)
    return [x.id for x in kept]


def cite(lesson: Lesson) -> Evidence:
    """The evidence a decision that follows ``lesson`` carries: its id, and its claim."""
    when = f" on {lesson.at[:10]}" if lesson.at else ""
    return Evidence("lesson", lesson.id, f"{lesson.claim} (approved by {lesson.by or 'a human'}{when})")
