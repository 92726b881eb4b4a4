"""Lessons from the history: what earlier sessions of a repository suggest, each with its evidence, and the
approvals a human gave them (``.flow/maestro/lessons.json``).

:func:`propose` reads what the sessions' logs say (:mod:`maestro.store.metrics`: each failure with the decisions
that answered it, each task's end) and proposes three kinds of lesson:

* ``recovery_rung`` — failures of class X were resolved by rung R in n of m cases;
* ``subagent`` — subagent S succeeded on n of m tasks of category C;
* ``tech_override`` — humans overrode the policy's tech choice A with B.

A lesson's id is a short hash of its kind, topic (X, C, A) and choice (R, S, B): proposing it again, with more
evidence, keeps its id and whatever a human said of it.  Only a human's answer is written
(:func:`record_status`): the lesson as it was when approved or rejected, with who, when and why.  The decision
engine reads the approved ones (:mod:`maestro.decide.lessons`); a proposed or rejected lesson changes nothing.
The thresholds and what each approved lesson changes are in ``docs/lessons.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import MaestroError, StoreError, error_text
from maestro.core.records import Decision
from maestro.core.text import read_input
from maestro.model.state import rebuild
from maestro.store.filestore import atomic_write
from maestro.store.metrics import Failure, SessionMetrics, session_metrics
from maestro.store.protocol import StoreProtocol

__all__ = [
    "KINDS",
    "LESSONS_FILE",
    "MIN_OVERRIDES",
    "MIN_RATE",
    "MIN_RESOLVED",
    "MIN_SUCCEEDED",
    "STATUSES",
    "Case",
    "Lesson",
    "SessionFacts",
    "lesson_doc",
    "lesson_id",
    "merge",
    "propose",
    "read_lessons",
    "read_sessions",
    "record_status",
    "write_lessons",
]

LESSONS_FILE = "lessons.json"
"""The approvals, in the store's folder: ``.flow/maestro/lessons.json``."""
KINDS = ("recovery_rung", "subagent", "tech_override")
STATUSES = ("proposed", "approved", "rejected")
RUNGS = ("retry", "alternative", "pause", "give_up")  # the ladder's order (ties between rungs go to the earlier)

MIN_RESOLVED = 2
"""``recovery_rung``: the rung resolved at least this many failures of the class …"""
MIN_RATE = 0.5
"""… and at least this share of those it answered (``subagent``: of the tasks it worked on)."""
MIN_SUCCEEDED = 2
"""``subagent``: the subagent's tasks of the category that succeeded, at least."""
MIN_OVERRIDES = 1
"""``tech_override``: a human's override is a human's choice already: one is enough to propose it."""

_RUNG_CLAIM = "{topic} failures in this repository were resolved by {choice} in {n} of {m} cases"
_RUNG_EFFECT = ("recovery: a {topic} failure takes {choice} while that rung is open (retries or alternatives left), "
                "ahead of the ladder's order")  # fmt: skip
_SUBAGENT_CLAIM = "{choice} succeeded on {n} of {m} tasks of category '{topic}'"
_SUBAGENT_EFFECT = ("subagent: a task of category '{topic}' goes to {choice} (unless the task names its subagent or "
                    "config.yaml maps the category)")  # fmt: skip
_VERSION = 1


def lesson_id(kind: str, topic: str, choice: str) -> str:
    """``L-`` and eight hex digits of the SHA-256 of the kind, topic and choice: the same lesson, the same id."""
    return "L-" + hashlib.sha256(f"{kind}\0{topic}\0{choice}".encode()).hexdigest()[:8]


@attrs.frozen
class Case:
    """One observation a lesson rests on: in ``session``, decision ``decision`` (``D7``) about ``task``, and
    what came of it (``result``: ``resolved``, ``attempt 3 failed again``, ``succeeded``, ``gave up`` …)."""

    session: str
    decision: str
    task: str | None
    result: str


@attrs.frozen
class Lesson:
    """A lesson: for ``topic`` (a failure class, a task category, a library), ``choice`` (a rung, a subagent,
    another library), because of ``cases`` (``n`` of ``m`` went that way).

    ``claim`` says it in one sentence, ``effect`` what an approved lesson changes.  ``status`` is ``proposed``
    until a human approves or rejects it (``by``, ``at``, ``note``).  ``supported`` is False for a lesson a
    human answered that the history no longer proposes (its cases are those it had when answered).
    """

    id: str
    kind: str
    topic: str
    choice: str
    claim: str
    effect: str
    n: int
    m: int
    cases: tuple[Case, ...] = ()
    status: str = "proposed"
    by: str = ""
    at: str = ""
    note: str = ""
    supported: bool = True

    @property
    def rate(self) -> float:
        return self.n / self.m if self.m else 0.0


@attrs.frozen
class SessionFacts:
    """What the lessons read of one session: its metrics, its decisions (those a crash resume voided left out)
    and the category of each task (from the session's ``tasks.yaml``; empty when it could not be read)."""

    metrics: SessionMetrics
    decisions: tuple[Decision, ...]
    categories: Mapping[str, str] = attrs.field(factory=dict)


# -- proposing ------------------------------------------------------------------------------------------------------


def read_sessions(
    store: StoreProtocol, categories: Callable[[Path], Mapping[str, str]]
) -> tuple[list[SessionFacts], list[tuple[str, str]]]:
    """What the lessons read of every session of ``store``, oldest first, and the sessions that could not be read
    (id, why), as :func:`~maestro.store.metrics.store_metrics` skips them.  ``categories`` gives the task
    categories of a session's folder (the plan layer reads its ``tasks.yaml``)."""
    read, skipped = [], []
    for sid in store.session_ids():
        try:
            events = store.read_events(sid)
            where = str(store.events_path(sid))
            state = rebuild(events, where=where)
            metrics = session_metrics(events, state=state, where=where)
        except MaestroError as exc:
            skipped.append((sid, str(exc)))
            continue
        except RecursionError:
            skipped.append((sid, "events.jsonl: nested too deeply to read"))
            continue
        read.append(SessionFacts(metrics, tuple(state.decisions), categories(store.session_dir(sid))))
    return read, skipped


def propose(sessions: Sequence[SessionFacts]) -> list[Lesson]:
    """The lessons ``sessions`` (oldest first) support, sorted by kind, topic and choice; every one ``proposed``.

    Recovery and subagent lessons count the ended sessions only (a paused or running session may still change
    what became of its failures and tasks); a human's tech override counts wherever it was recorded.
    """
    ended = [s for s in sessions if s.metrics.ended]
    found = [*_recovery_lessons(ended), *_subagent_lessons(ended), *_override_lessons(sessions)]
    return sorted(found, key=lambda lesson: (KINDS.index(lesson.kind), lesson.topic, lesson.choice))


def _failure_class(f: Failure, d: Decision) -> str:
    """The class the recovery decision was asked about (the first evidence of its first option), else the failure's."""
    if d.options and d.options[0].evidence:
        return d.options[0].evidence[0].value
    return f.failure_class or f.kind


def _best(
    kind: str,
    topic: str,
    counts: Sequence[tuple[str, int, int]],
    cases: Mapping[str, Sequence[Case]],
    *,
    minimum: int,
    claim: str,
    effect: str,
) -> Lesson | None:
    """The lesson of the best choice about ``topic``, if it meets the thresholds.  ``counts`` are (choice, its
    observations m, those that went well n), ties going to the earlier; ``claim`` and ``effect`` are templates
    (``{topic}``, ``{choice}``, ``{n}``, ``{m}``); the other choices' counts are added to the claim."""
    choice, m, n = max(counts, key=lambda t: (t[2] / t[1], t[2], -counts.index(t)))
    if n < minimum or n / m < MIN_RATE:
        return None
    said = claim.format(topic=topic, choice=choice, n=n, m=m)
    others = "; ".join(f"{c}: {k} of {j}" for c, j, k in counts if c != choice)
    said += f" ({others})" if others else ""
    return Lesson(lesson_id(kind, topic, choice), kind, topic, choice, said, effect.format(topic=topic, choice=choice),
                  n, m, tuple(cases[choice]))  # fmt: skip


def _recovery_lessons(sessions: Sequence[SessionFacts]) -> list[Lesson]:
    tally: dict[tuple[str, str], list[Case]] = {}  # (class, rung) -> the failures that rung answered
    resolved: dict[tuple[str, str], int] = {}
    for s in sessions:
        failures = [f for f in s.metrics.failures if f.kind != "gate" and f.task is not None]
        for f in failures:
            d = next((a for a in f.answers if a.kind == "recovery"), None)
            if d is None or d.choice not in RUNGS:
                continue
            key = (_failure_class(f, d), d.choice)
            later = [g for g in failures if g.task == f.task and g.seq > f.seq]
            wanted = "recovered_by_human" if d.choice == "pause" else "recovered"
            if not later and f.outcome == wanted:
                result = f"resolved ({f.resolved})" if f.resolved else "resolved"
                resolved[key] = resolved.get(key, 0) + 1
            elif later:
                result = f"attempt {later[0].attempt} failed again" if later[0].attempt else "failed again"
            else:
                result = {"recovered": "recovered without this rung", "recovered_by_human": "a human recovered it",
                          "unrecovered": "not recovered"}.get(f.outcome, f.outcome)  # fmt: skip
            tally.setdefault(key, []).append(Case(s.metrics.session, d.id, f.task, result))
    out = []
    for cls in sorted({c for c, _ in tally}):
        counts = [(r, len(tally[(cls, r)]), resolved.get((cls, r), 0)) for r in RUNGS if (cls, r) in tally]
        lesson = _best("recovery_rung", cls, counts, {r: tally[(c, r)] for c, r in tally if c == cls},
                       minimum=MIN_RESOLVED, claim=_RUNG_CLAIM, effect=_RUNG_EFFECT)  # fmt: skip
        out += [lesson] if lesson is not None else []
    return out


def _subagent_lessons(sessions: Sequence[SessionFacts]) -> list[Lesson]:
    tally: dict[tuple[str, str], list[Case]] = {}  # (category, subagent) -> the tasks it worked on
    for s in sessions:
        ends = {t.task: t.state for t in s.metrics.tasks}
        chosen: dict[str, Decision] = {}
        for d in s.decisions:
            if d.kind == "subagent" and d.task is not None:
                chosen[d.task] = d  # the last one: a resume may decide again
        for task, d in chosen.items():
            category = s.categories.get(task, "").strip().lower()
            if not category or task not in ends:
                continue
            tally.setdefault((category, d.choice), []).append(Case(s.metrics.session, d.id, task, ends[task]))
    out = []
    for cat in sorted({c for c, _ in tally}):
        counts = [(name, len(cases), sum(1 for c in cases if c.result == "succeeded"))
                  for (c, name), cases in sorted(tally.items()) if c == cat]  # fmt: skip
        lesson = _best("subagent", cat, counts, {name: cases for (c, name), cases in tally.items() if c == cat},
                       minimum=MIN_SUCCEEDED, claim=_SUBAGENT_CLAIM, effect=_SUBAGENT_EFFECT)  # fmt: skip
        out += [lesson] if lesson is not None else []
    return out


def _override_lessons(sessions: Sequence[SessionFacts]) -> list[Lesson]:
    policy: dict[str, str] = {}  # question -> the policy's latest choice
    chose: dict[tuple[str, str], int] = {}  # (question, choice) -> how often the policy chose it
    tally: dict[tuple[str, str], list[Case]] = {}  # (overridden, chosen instead) -> the human decisions
    questions: dict[tuple[str, str], set[str]] = {}
    for s in sessions:
        for d in s.decisions:
            if d.kind != "tech_stack":
                continue
            if d.decided_by != "human":
                policy[d.question] = d.choice
                chose[(d.question, d.choice)] = chose.get((d.question, d.choice), 0) + 1
                continue
            was = policy.get(d.question)
            if was is None or was == d.choice:
                continue
            tally.setdefault((was, d.choice), []).append(
                Case(s.metrics.session, d.id, d.task, f"{d.question} {was} → {d.choice}")
            )
            questions.setdefault((was, d.choice), set()).add(d.question)
    out = []
    for (was, now), cases in sorted(tally.items()):
        n = len(cases)
        m = sum(chose.get((q, was), 0) for q in questions[(was, now)])
        if n < MIN_OVERRIDES:
            continue
        asked = "; ".join(sorted(questions[(was, now)]))
        claim = f"humans overrode {was} with {now} {n} time{'s' if n != 1 else ''} ({asked})"
        effect = f"tech_stack: where the rules would choose {was} and {now} is an option, {now} is chosen"
        out.append(Lesson(lesson_id("tech_override", was, now), "tech_override", was, now, claim, effect, n,
                          max(m, n), tuple(cases)))  # fmt: skip
    return out


def merge(proposed: Sequence[Lesson], recorded: Mapping[str, Lesson]) -> list[Lesson]:
    """The proposed lessons with the status a human gave them, then the answered ones the history no longer
    proposes (``supported`` False, with the evidence they had when answered)."""
    out = []
    for lesson in proposed:
        r = recorded.get(lesson.id)
        out.append(lesson if r is None else attrs.evolve(lesson, status=r.status, by=r.by, at=r.at, note=r.note))
    ids = {lesson.id for lesson in proposed}
    out += [attrs.evolve(r, supported=False) for lid, r in recorded.items() if lid not in ids]
    return out


# -- the approvals file ---------------------------------------------------------------------------------------------


def lesson_doc(lesson: Lesson, *, supported: bool = True) -> dict[str, Any]:
    """One lesson as JSON (``maestro lessons --json``, ``lessons.json``)."""
    doc: dict[str, Any] = {
        "id": lesson.id,
        "kind": lesson.kind,
        "topic": lesson.topic,
        "choice": lesson.choice,
        "claim": lesson.claim,
        "effect": lesson.effect,
        "n": lesson.n,
        "m": lesson.m,
        "cases": [attrs.asdict(c) for c in lesson.cases],
        "status": lesson.status,
        "by": lesson.by,
        "at": lesson.at,
        "note": lesson.note,
    }
    if supported:
        doc["supported"] = lesson.supported
    return doc


def _str(entry: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    value = entry.get(key, "" if empty else None)
    if not isinstance(value, str) or (not empty and not value):
        raise ValueError(f"{where}: {key} must be {'a' if empty else 'a non-empty'} string, not {value!r}")
    return value


def _count(entry: Mapping[str, Any], key: str, where: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: {key} must be a whole number ≥ 0, not {value!r}")
    return value


def _lesson(entry: Any, where: str) -> Lesson:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object")
    kind = _str(entry, "kind", where)
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    topic, choice = _str(entry, "topic", where), _str(entry, "choice", where)
    lid = _str(entry, "id", where)
    if lid != lesson_id(kind, topic, choice):
        raise ValueError(f"{where}: id {lid!r} is not the id of its kind, topic and choice "
                         f"({lesson_id(kind, topic, choice)})")  # fmt: skip
    status = _str(entry, "status", where)
    if status not in ("approved", "rejected"):
        raise ValueError(f"{where}: status must be approved or rejected, not {status!r}")
    cases = entry.get("cases", [])
    if not isinstance(cases, list):
        raise ValueError(f"{where}: cases must be a list")
    parsed = []
    for j, c in enumerate(cases, 1):
        at = f"{where}, case {j}"
        if not isinstance(c, dict):
            raise ValueError(f"{at} is not an object")
        task = c.get("task")
        if task is not None and not isinstance(task, str):
            raise ValueError(f"{at}: task must be a string or null, not {task!r}")
        parsed.append(Case(_str(c, "session", at), _str(c, "decision", at, empty=True), task,
                           _str(c, "result", at, empty=True)))  # fmt: skip
    return Lesson(lid, kind, topic, choice, _str(entry, "claim", where), _str(entry, "effect", where, empty=True),
                  _count(entry, "n", where), _count(entry, "m", where), tuple(parsed), status,
                  _str(entry, "by", where, empty=True), _str(entry, "at", where, empty=True),
                  _str(entry, "note", where, empty=True))  # fmt: skip


def read_lessons(path: Path) -> dict[str, Lesson]:
    """The lessons a human answered, by id (empty when there is no file).

    A file that is not what :func:`record_status` writes is a :class:`~maestro.StoreError` of one line naming it.
    """
    try:
        text = read_input(path).decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:  # too large (InputTooLarge) too
        raise StoreError(f"{path}: cannot read the lessons: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: cannot read the lessons: not UTF-8 text (byte {exc.start})") from exc
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("version") != _VERSION or not isinstance(doc.get("lessons"), list):
            raise ValueError(f'the file is {{"version": {_VERSION}, "lessons": [...]}}')
        out: dict[str, Lesson] = {}
        for i, entry in enumerate(doc["lessons"], 1):
            lesson = _lesson(entry, f"lesson {i}")
            if lesson.id in out:
                raise ValueError(f"lesson {i}: {lesson.id} is listed twice")
            out[lesson.id] = lesson
    except (ValueError, RecursionError) as exc:
        raise StoreError(f"{path}: cannot read the lessons: {error_text(exc)}") from exc
    return out


def record_status(
    path: Path,
    lesson: Lesson,
    status: str,
    *,
    by: str,
    at: str,
    note: str = "",
    lock: Callable[[], AbstractContextManager[Any]],
) -> Lesson:
    """Approve or reject ``lesson``: ``lessons.json`` rewritten atomically (under ``lock``) with the lesson as it
    is now, its status, who (``by``), when (``at``) and why (``note``).  Returns the lesson as recorded."""
    if status not in ("approved", "rejected"):
        raise StoreError(f"a lesson is approved or rejected, not {status!r}")
    answered = attrs.evolve(lesson, status=status, by=by, at=at, note=note, supported=True)
    with lock():
        kept = read_lessons(path)
        kept[lesson.id] = answered
        write_lessons(path, kept.values())
    return answered


def write_lessons(path: Path, lessons: Iterable[Lesson]) -> None:
    """``lessons.json`` holding ``lessons`` (answered ones), written atomically."""
    doc = {"version": _VERSION, "lessons": [lesson_doc(x, supported=False) for x in lessons]}
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
