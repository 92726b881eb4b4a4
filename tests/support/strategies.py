"""Hypothesis strategies for maestro's records and the triggers of its charts, in one place.

Every record of :mod:`maestro.core.records` has a strategy here that draws only
valid instances (the validators accept them), over the whole range the types
allow: any text where a field is free text, the documented alphabets where it
is an identifier, a timestamp, a commit id or one of a fixed set of words.
"""

from __future__ import annotations

import datetime as _dt
import string
from typing import Any

from hypothesis import strategies as st

from maestro import load_chart
from maestro.core.records import (
    AGENT_STATUSES,
    CHANGES,
    DECIDERS,
    EVIDENCE_KINDS,
    FAILURE_CLASSES,
    GATE_STATUSES,
    PAYLOADS,
    SCHEMA_VERSION,
    AgentResult,
    CheckpointRecord,
    Decision,
    Event,
    Evidence,
    FileChange,
    GateResult,
    Limits,
    Note,
    Option,
    SessionStarted,
    TaskTransition,
    Transition,
    converter,
    format_ts,
)

__all__ = [
    "RECORDS",
    "SESSION_TRIGGERS",
    "TASK_TRIGGERS",
    "UNKNOWN_TRIGGERS",
    "agent_results",
    "any_triggers",
    "checkpoints",
    "commits",
    "decisions",
    "events",
    "file_changes",
    "gate_results",
    "identifiers",
    "json_values",
    "lean_gates",
    "lean_payloads",
    "limits",
    "notes",
    "numbers",
    "options",
    "payload_events",
    "payloads",
    "session_ids",
    "session_started",
    "session_triggers",
    "task_ids",
    "task_transitions",
    "task_triggers",
    "timestamps",
    "transitions",
]

# -- building blocks -------------------------------------------------------------

#: Free text: any unicode (hypothesis leaves out lone surrogates, which JSON text cannot carry).
texts = st.text(max_size=30)
short_texts = st.text(max_size=12)
opt_texts = st.none() | texts

_ID_ALPHABET = string.ascii_letters + string.digits + "._-"


def identifiers(max_size: int = 16) -> st.SearchStrategy[str]:
    """Identifiers as the records define them: ``[A-Za-z0-9._-]+``."""
    return st.text(alphabet=_ID_ALPHABET, min_size=1, max_size=max_size)


def task_ids() -> st.SearchStrategy[str]:
    return identifiers(max_size=8)


def session_ids() -> st.SearchStrategy[str]:
    """Session ids: ``[A-Za-z0-9][A-Za-z0-9._-]*`` (also a directory name: no ``.``, ``..`` or hidden name)."""
    first = st.sampled_from(string.ascii_letters + string.digits)
    return st.tuples(first, st.text(alphabet=_ID_ALPHABET, max_size=15)).map("".join)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
nonneg_floats = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
nonneg_ints = st.integers(min_value=0, max_value=2**63)
#: The largest whole number a float holds exactly: where a record takes ``int | float``, whole numbers are drawn
#: up to it (beyond it a float field cannot keep an int's value; ``test_properties`` checks what happens there).
EXACT = 2**53
#: A number where the records accept ``int | float`` (JSON has no NaN or infinity).
numbers = finite_floats | st.integers(min_value=-EXACT, max_value=EXACT)
nonneg_numbers = nonneg_floats | st.integers(min_value=0, max_value=EXACT)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """ISO 8601 UTC timestamps: as :func:`format_ts` writes them, or with 0 to 6 digits of fraction."""
    when = draw(
        st.datetimes(
            min_value=_dt.datetime(1970, 1, 1), max_value=_dt.datetime(9999, 12, 31), timezones=st.just(_dt.UTC)
        )
    )
    digits = draw(st.none() | st.integers(min_value=0, max_value=6))
    if digits is None:
        return format_ts(when)
    base = when.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{when.microsecond:06d}"[:digits]
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def commits() -> st.SearchStrategy[str]:
    """A git commit id: 40 hex digits (sha1) or 64 (sha256)."""
    hexd = "0123456789abcdef"
    return st.text(alphabet=hexd, min_size=40, max_size=40) | st.text(alphabet=hexd, min_size=64, max_size=64)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (finite floats: JSON has no NaN or infinity)."""
    leaves = st.none() | st.booleans() | st.integers() | finite_floats | texts
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_texts, inner, max_size=4),
        max_leaves=max_leaves,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(short_texts, json_values(), max_size=5)


# -- records ---------------------------------------------------------------------


def limits() -> st.SearchStrategy[Limits]:
    return st.builds(Limits, max_iterations=st.integers(1, 1000), max_task_attempts=st.integers(1, 1000))


def evidence() -> st.SearchStrategy[Evidence]:
    return st.builds(Evidence, kind=st.sampled_from(EVIDENCE_KINDS), value=short_texts, detail=texts)


def options() -> st.SearchStrategy[Option]:
    return st.builds(
        Option,
        name=texts,
        score=numbers,
        evidence=st.lists(evidence(), max_size=3).map(tuple),
        notes=texts,
    )


def decisions() -> st.SearchStrategy[Decision]:
    return st.builds(
        Decision,
        kind=short_texts,
        question=texts,
        choice=texts,
        rationale=texts,
        options=st.lists(options(), max_size=3).map(tuple),
        confidence=st.floats(min_value=0, max_value=1) | st.sampled_from([0, 1]),
        decided_by=st.sampled_from(DECIDERS),
        id=st.just("") | st.integers(1, 8).map(lambda n: f"D{n}"),  # small: ids given twice happen
        ts=st.just("") | timestamps(),
        task=st.none() | task_ids(),
        checkpoint=st.none() | st.integers(0, 10**6),
    )


def file_changes() -> st.SearchStrategy[FileChange]:
    return st.builds(
        FileChange,
        path=texts,
        change=st.sampled_from(CHANGES),
        added_lines=nonneg_ints,
        deleted_lines=nonneg_ints,
    )


def checkpoints() -> st.SearchStrategy[CheckpointRecord]:
    return st.builds(
        CheckpointRecord,
        n=nonneg_ints,
        commit=commits(),
        tag=short_texts,
        label=texts,
        ts=timestamps(),
        files=st.lists(file_changes(), max_size=3).map(tuple),
    )


def agent_results() -> st.SearchStrategy[AgentResult]:
    return st.builds(
        AgentResult,
        task=task_ids(),
        agent=short_texts,
        attempt=st.integers(min_value=1, max_value=2**31),
        status=st.sampled_from(AGENT_STATUSES),
        summary=texts,
        failure_class=st.none() | st.sampled_from(FAILURE_CLASSES),
        cost_usd=st.none() | nonneg_numbers,
        input_tokens=st.none() | nonneg_ints,
        output_tokens=st.none() | nonneg_ints,
        duration_s=nonneg_numbers,
        transcript=opt_texts,
    )


def gate_results(
    name: st.SearchStrategy[str] | None = None, status: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[GateResult]:
    return st.builds(
        GateResult,
        name=name if name is not None else short_texts,
        status=status if status is not None else st.sampled_from(GATE_STATUSES),
        required=st.booleans(),
        summary=texts,
        passed=st.none() | nonneg_ints,
        failed=st.none() | nonneg_ints,
    )


def notes() -> st.SearchStrategy[Note]:
    return st.builds(Note, text=texts)


def session_started() -> st.SearchStrategy[SessionStarted]:
    return st.builds(
        SessionStarted,
        session_id=session_ids(),
        request=texts,
        charts=st.dictionaries(short_texts, st.integers(), max_size=3),
        limits=limits(),
        base_commit=st.none() | commits(),
    )


def transitions() -> st.SearchStrategy[Transition]:
    return st.builds(Transition, trigger=short_texts, source=short_texts, dest=short_texts, reason=opt_texts)


def task_transitions() -> st.SearchStrategy[TaskTransition]:
    return st.builds(
        TaskTransition, task=task_ids(), trigger=short_texts, source=short_texts, dest=short_texts, reason=opt_texts
    )


def events(data: st.SearchStrategy[dict[str, Any]] | None = None) -> st.SearchStrategy[Event]:
    """Events of any kind (``[a-z][a-z_]*``) with any JSON object as data."""
    return st.builds(
        Event,
        v=st.just(SCHEMA_VERSION),
        seq=st.integers(min_value=1, max_value=2**31),
        ts=timestamps(),
        kind=st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True),
        data=data if data is not None else json_objects(),
    )


def payloads() -> st.SearchStrategy[Any]:
    """Any record an event carries."""
    return st.one_of(
        session_started(),
        transitions(),
        task_transitions(),
        decisions(),
        checkpoints(),
        agent_results(),
        gate_results(),
        notes(),
    )


@st.composite
def payload_events(draw: st.DrawFn) -> tuple[Event, Any]:
    """An event whose ``data`` is an unstructured payload of the kind it names, with that payload."""
    payload = draw(payloads())
    kind = next(k for k, cls in PAYLOADS.items() if type(payload) is cls)
    ev = Event(
        SCHEMA_VERSION,
        draw(st.integers(min_value=1, max_value=2**31)),
        draw(timestamps()),
        kind,
        converter.unstructure(payload),
    )
    return ev, payload


def lean_gates(status: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[GateResult]:
    """Gates of a few names, with no free text: cheap enough to draw at every step of a long stateful run."""
    return st.builds(
        GateResult,
        name=st.sampled_from(["tests", "lint", "types", "security"]),
        status=status if status is not None else st.sampled_from(GATE_STATUSES),
        required=st.booleans(),
    )


def lean_payloads() -> st.SearchStrategy[Any]:
    """Small records a session records between moves, with short text (hypothesis ends a stateful run early
    once it has drawn much data): three in five are gates (mostly passing ones, so that the
    ``required_gates_passed`` guard passes now and then), one a checkpoint, one a decision, agent result or note."""
    tiny = st.text(max_size=3)
    passing = lean_gates(status=st.just("passed"))
    return st.one_of(
        lean_gates(),
        passing,
        passing,
        st.builds(
            CheckpointRecord,
            n=st.integers(0, 9),
            commit=commits(),
            tag=tiny,
            label=tiny,
            ts=st.just(format_ts(_dt.datetime(2026, 1, 1, tzinfo=_dt.UTC))),
        ),
        st.one_of(
            st.builds(Decision, kind=tiny, question=tiny, choice=tiny, rationale=tiny),
            st.builds(
                AgentResult,
                task=task_ids(),
                agent=tiny,
                attempt=st.integers(1, 3),
                status=st.sampled_from(AGENT_STATUSES),
            ),
            st.builds(Note, text=tiny),
        ),
    )


#: One strategy for every record type, by name (what the round-trip property runs over).
RECORDS: dict[str, st.SearchStrategy[Any]] = {
    "Event": events(),
    "Option": options(),
    "Decision": decisions(),
    "FileChange": file_changes(),
    "CheckpointRecord": checkpoints(),
    "AgentResult": agent_results(),
    "GateResult": gate_results(),
    "Note": notes(),
    "Limits": limits(),
    "SessionStarted": session_started(),
    "Transition": transitions(),
    "TaskTransition": task_transitions(),
}

# -- triggers --------------------------------------------------------------------

SESSION_TRIGGERS: tuple[str, ...] = load_chart("session").triggers
TASK_TRIGGERS: tuple[str, ...] = load_chart("task").triggers
#: Names no chart declares (they must be refused like any trigger not allowed).
UNKNOWN_TRIGGERS: tuple[str, ...] = ("bogus", "trigger", "state")


def session_triggers() -> st.SearchStrategy[str]:
    """A trigger the session chart declares."""
    return st.sampled_from(SESSION_TRIGGERS)


def task_triggers() -> st.SearchStrategy[str]:
    """A trigger the task chart declares."""
    return st.sampled_from(TASK_TRIGGERS)


def any_triggers() -> st.SearchStrategy[str]:
    """A trigger of either chart, or of none: what a confused caller might fire at a machine."""
    names = dict.fromkeys((*SESSION_TRIGGERS, *TASK_TRIGGERS, *UNKNOWN_TRIGGERS))
    return st.sampled_from(tuple(names))
