"""The records of a session: events and the payloads they carry.

Every record is a frozen attrs class with validators, and every record is
turned into JSON and back by the one cattrs :data:`converter`.  An
:class:`Event` is one line of ``events.jsonl``; its ``data`` is the unstructured
payload named by its ``kind`` (see :data:`PAYLOADS`).  Unknown kinds are kept as
plain data so that a newer log still replays.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from attrs import validators as av

__all__ = [
    "PAYLOADS",
    "SCHEMA_VERSION",
    "AgentResult",
    "CheckpointRecord",
    "Decision",
    "DecisionRequest",
    "Event",
    "Evidence",
    "FileChange",
    "GateResult",
    "Limits",
    "Note",
    "Option",
    "Rewind",
    "SessionStarted",
    "TaskTransition",
    "Transition",
    "converter",
    "format_ts",
    "payload_kind",
]

SCHEMA_VERSION = 1
# \Z, not $: "$" also matches before a trailing newline.
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z\Z")
TASK_ID = re.compile(r"[A-Za-z0-9._-]+\Z")  # task ids
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")  # also a directory name: no ".", "..", ".hidden"
_KIND = re.compile(r"[a-z][a-z_]*\Z")


def format_ts(when: _dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: the one timestamp format of the log."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    t = when.astimezone(_dt.UTC)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}Z"


def _ts(_inst: Any, attr: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _TS.match(value):
        raise ValueError(f"{attr.name} must be an ISO 8601 UTC timestamp like 2026-01-31T12:00:00Z, not {value!r}")


def _session_id(_inst: Any, attr: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not SESSION_ID.match(value):
        raise ValueError(f"{attr.name} must match [A-Za-z0-9][A-Za-z0-9._-]*, not {value!r}")


def _ident(_inst: Any, attr: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not TASK_ID.match(value):
        raise ValueError(f"{attr.name} must match [A-Za-z0-9._-]+, not {value!r}")


_str = av.instance_of(str)
_opt_str = av.optional(_str)
_nonneg_int = [av.instance_of(int), av.ge(0)]
_opt_nonneg_int = av.optional(av.and_(av.instance_of(int), av.ge(0)))


def _finite(value: Any) -> float:
    """A number as a finite float: JSON has no NaN or Infinity, and ints above 2**53 would not survive."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, not {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"expected a finite number, not {value!r}")
    return f


def _opt_finite(value: Any) -> float | None:
    return None if value is None else _finite(value)


_opt_nonneg = av.optional(av.ge(0))


@attrs.frozen
class Event:
    """One line of ``events.jsonl``.

    ``v`` is the schema version, ``seq`` counts 1, 2, 3 … without gaps, ``ts`` is
    ISO 8601 UTC, ``kind`` names the payload in ``data``.
    """

    v: int
    seq: int
    ts: str
    kind: str
    data: Mapping[str, Any] = attrs.field(hash=False)

    def __attrs_post_init__(self) -> None:
        # One validator for the whole event instead of one per field: events are
        # read by the hundred thousand, and this is the hot path of replay.
        if type(self.v) is not int or self.v < 1:
            raise ValueError(f"v must be a schema version (an integer >= 1), not {self.v!r}")
        if self.v > SCHEMA_VERSION:
            raise ValueError(f"schema version {self.v} is newer than this maestro reads ({SCHEMA_VERSION})")
        if type(self.seq) is not int or self.seq < 1:
            raise ValueError(f"seq must be an integer >= 1, not {self.seq!r}")
        if not isinstance(self.ts, str) or not _TS.match(self.ts):
            raise ValueError(f"ts must be an ISO 8601 UTC timestamp like 2026-01-31T12:00:00Z, not {self.ts!r}")
        if self.kind not in PAYLOADS and (not isinstance(self.kind, str) or not _KIND.match(self.kind)):
            raise ValueError(f"kind must be a lower-case word, not {self.kind!r}")
        if not isinstance(self.data, dict):
            raise ValueError(f"data must be a JSON object, not {type(self.data).__name__}")

    def payload(self) -> Any:
        """``data`` as its typed record, or the plain mapping for an unknown kind."""
        cls = PAYLOADS.get(self.kind)
        if cls is None:
            return self.data
        return converter.structure(self.data, cls)


@attrs.frozen
class Limits:
    """What a session may spend before it stops to ask (kind ``limits`` when changed on resume).

    ``max_minutes`` counts the time the session was running (not paused, not
    dead); ``budget_usd`` is summed over every agent call, parallel ones and
    rewound ones included.  None: no limit.
    """

    max_iterations: int = attrs.field(default=3, validator=[av.instance_of(int), av.ge(1)])
    max_task_attempts: int = attrs.field(default=3, validator=[av.instance_of(int), av.ge(1)])
    max_minutes: float | None = attrs.field(default=None, converter=_opt_finite, validator=av.optional(av.gt(0)))
    budget_usd: float | None = attrs.field(default=None, converter=_opt_finite, validator=av.optional(av.gt(0)))


@attrs.frozen
class SessionStarted:
    """The first event of every session (kind ``session``)."""

    session_id: str = attrs.field(validator=_session_id)
    request: str = attrs.field(validator=_str)
    charts: Mapping[str, int] = attrs.field(factory=dict)
    limits: Limits = attrs.field(factory=Limits)
    base_commit: str | None = attrs.field(default=None, validator=_opt_str)


@attrs.frozen
class Transition:
    """A move of the session machine (kind ``transition``)."""

    trigger: str = attrs.field(validator=_str)
    source: str = attrs.field(validator=_str)
    dest: str = attrs.field(validator=_str)
    reason: str | None = attrs.field(default=None, validator=_opt_str)


@attrs.frozen
class TaskTransition:
    """A move of one task's machine (kind ``task``)."""

    task: str = attrs.field(validator=_ident)
    trigger: str = attrs.field(validator=_str)
    source: str = attrs.field(validator=_str)
    dest: str = attrs.field(validator=_str)
    reason: str | None = attrs.field(default=None, validator=_opt_str)


EVIDENCE_KINDS = ("file", "dependency", "command", "fact", "lesson")


@attrs.frozen
class Evidence:
    """One thing a decision rests on: a ``file`` path, a ``dependency`` name, a ``command``, a ``fact``, or an
    approved ``lesson`` (its id; the detail is its claim)."""

    kind: str = attrs.field(validator=av.in_(EVIDENCE_KINDS))
    value: str = attrs.field(validator=_str)
    detail: str = attrs.field(default="", validator=_str)

    def __str__(self) -> str:
        return f"{self.kind} {self.value}" + (f" ({self.detail})" if self.detail else "")


def _evidence(value: Any) -> tuple[Evidence, ...]:
    """Evidence items; a bare string is a ``fact``."""
    if isinstance(value, (str, Evidence)):
        value = (value,)
    return tuple(Evidence("fact", v) if isinstance(v, str) else v for v in value)


def _evidence_ok(_inst: Any, attr: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for v in value:
        if not isinstance(v, Evidence):
            raise TypeError(f"{attr.name} holds Evidence records, not {v!r}")


@attrs.frozen
class Option:
    """One option a decision weighed, with its score (0–1) and the evidence for it."""

    name: str = attrs.field(validator=_str)
    score: float = attrs.field(default=0.0, converter=_finite)
    evidence: tuple[Evidence, ...] = attrs.field(default=(), converter=_evidence, validator=_evidence_ok)
    notes: str = attrs.field(default="", validator=_str)


def _options(value: Any) -> tuple[Option, ...]:
    return tuple(value)


DECIDERS = ("policy", "agent", "human")
DECISION_ID = re.compile(r"D[1-9][0-9]*\Z")


def _decision_id(_inst: Any, attr: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or (value and not DECISION_ID.match(value)):
        raise ValueError(f"{attr.name} must be D1, D2, D3 … (or empty until recorded), not {value!r}")


def _opt_ts(inst: Any, attr: attrs.Attribute[Any], value: str) -> None:
    if value != "":
        _ts(inst, attr, value)


@attrs.frozen
class Decision:
    """A technical choice with its evidence and rationale (kind ``decision``).

    ``id`` (``D1``, ``D2`` … in the order a session records them) and ``ts`` are
    filled in by :meth:`~maestro.Session.record` when left empty; ``task`` and
    ``checkpoint`` link the decision to what it was about.
    """

    kind: str = attrs.field(validator=_str)
    question: str = attrs.field(validator=_str)
    choice: str = attrs.field(validator=_str)
    rationale: str = attrs.field(validator=_str)
    options: tuple[Option, ...] = attrs.field(default=(), converter=_options)
    confidence: float = attrs.field(default=1.0, converter=_finite, validator=[av.ge(0), av.le(1)])
    decided_by: str = attrs.field(default="policy", validator=av.in_(DECIDERS))
    id: str = attrs.field(default="", validator=_decision_id)
    ts: str = attrs.field(default="", validator=_opt_ts)
    task: str | None = attrs.field(default=None, validator=av.optional(_ident))
    checkpoint: int | None = attrs.field(default=None, validator=_opt_nonneg_int)


CHANGES = ("added", "modified", "deleted")


@attrs.frozen
class FileChange:
    """One file a checkpoint changed, with its added and deleted line counts."""

    path: str = attrs.field(validator=_str)
    change: str = attrs.field(validator=av.in_(CHANGES))
    added_lines: int = attrs.field(default=0, validator=_nonneg_int)
    deleted_lines: int = attrs.field(default=0, validator=_nonneg_int)


@attrs.frozen
class CheckpointRecord:
    """A git checkpoint (kind ``checkpoint``): number, commit, tag, label and what changed."""

    n: int = attrs.field(validator=_nonneg_int)
    commit: str = attrs.field(validator=[_str, av.matches_re(r"^[0-9a-f]{40}([0-9a-f]{24})?$")])
    tag: str = attrs.field(validator=_str)
    label: str = attrs.field(validator=_str)
    ts: str = attrs.field(validator=_ts)
    files: tuple[FileChange, ...] = attrs.field(default=())


AGENT_STATUSES = ("succeeded", "failed", "timeout", "cancelled")
FAILURE_CLASSES = ("transient", "implementation", "test_failure", "critical", "ambiguous")


@attrs.frozen
class AgentResult:
    """What one agent call returned (kind ``agent``).

    ``transcript`` is the raw stdout's path relative to the session directory;
    ``agent_session`` the agent's own session or thread id (to resume it);
    ``turns`` the agent's turn count where it reports one; ``retry_after_s`` how long
    the agent asked to wait before a retry of a ``transient`` failure (a rate limit's
    reset), None when it did not say: the retry waits at least that long.  ``worker`` is the Dask worker that ran
    the attempt (its address), None for an attempt run by the coordinator's own threads.
    """

    task: str = attrs.field(validator=_ident)
    agent: str = attrs.field(validator=_str)
    attempt: int = attrs.field(validator=[av.instance_of(int), av.ge(1)])
    status: str = attrs.field(validator=av.in_(AGENT_STATUSES))
    summary: str = attrs.field(default="", validator=_str)
    failure_class: str | None = attrs.field(default=None, validator=av.optional(av.in_(FAILURE_CLASSES)))
    cost_usd: float | None = attrs.field(default=None, converter=_opt_finite, validator=_opt_nonneg)
    input_tokens: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    output_tokens: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    duration_s: float = attrs.field(default=0.0, converter=_finite, validator=av.ge(0))
    transcript: str | None = attrs.field(default=None, validator=_opt_str)
    turns: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    agent_session: str | None = attrs.field(default=None, validator=_opt_str)
    exit_code: int | None = attrs.field(default=None, validator=av.optional(av.instance_of(int)))
    retry_after_s: float | None = attrs.field(default=None, converter=_opt_finite, validator=_opt_nonneg)
    worker: str | None = attrs.field(default=None, validator=_opt_str)


GATE_STATUSES = ("passed", "failed", "skipped")


@attrs.frozen
class GateResult:
    """One validation gate's outcome (kind ``gate``); a skipped gate says why."""

    name: str = attrs.field(validator=_str)
    status: str = attrs.field(validator=av.in_(GATE_STATUSES))
    required: bool = attrs.field(default=True, validator=av.instance_of(bool))
    summary: str = attrs.field(default="", validator=_str)
    passed: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    failed: int | None = attrs.field(default=None, validator=_opt_nonneg_int)


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise TypeError(f"expected a list of strings, not {value!r}")
    return tuple(value)


@attrs.frozen
class DecisionRequest:
    """What a paused session asks a human (kind ``request``), recorded before it pauses.

    ``options`` are the answers ``maestro answer`` accepts; ``context`` says what
    the question is about (the task, the failing gates, the limit reached);
    ``paused_from`` is the state ``resume`` returns to.
    """

    question: str = attrs.field(validator=_str)
    options: tuple[str, ...] = attrs.field(converter=_str_tuple, validator=av.deep_iterable(_str))
    paused_from: str = attrs.field(validator=_str)
    context: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Rewind:
    """A crash resume voids the interrupted step (kind ``rewind``).

    Every event after ``to`` (the last step boundary) and before this one is
    kept in the log but has no effect on the state any more; the working tree
    was restored to checkpoint ``checkpoint``.  ``reason`` says what happened.
    """

    to: int = attrs.field(validator=[av.instance_of(int), av.ge(1)])
    reason: str = attrs.field(validator=_str)
    checkpoint: int | None = attrs.field(default=None, validator=_opt_nonneg_int)


@attrs.frozen
class Note:
    """Free text for the execution log (kind ``note``)."""

    text: str = attrs.field(validator=_str)


PAYLOADS: dict[str, type[Any]] = {
    "session": SessionStarted,
    "transition": Transition,
    "task": TaskTransition,
    "decision": Decision,
    "checkpoint": CheckpointRecord,
    "agent": AgentResult,
    "gate": GateResult,
    "note": Note,
    "request": DecisionRequest,
    "rewind": Rewind,
    "limits": Limits,
}
_KIND_OF = {cls: kind for kind, cls in PAYLOADS.items()}


def payload_kind(record: Any) -> str:
    """The event kind that carries ``record``."""
    try:
        return _KIND_OF[type(record)]
    except KeyError:
        raise TypeError(f"{type(record).__name__} is not an event payload") from None


def _strict(kind: type[Any], *accepted: type[Any]) -> Any:
    """A structure hook that refuses what is not already of the type (cattrs would call ``str(None)``)."""

    def hook(value: Any, _cls: Any) -> Any:
        if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
            raise TypeError(f"expected {kind.__name__}, not {value!r}")
        return value

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, str))
    conv.register_structure_hook(int, _strict(int, int))
    conv.register_structure_hook(float, _strict(float, int, float))
    conv.register_structure_hook(bool, _strict(bool, bool))
    # Optional fields left at their default are left out of the JSON.
    for cls in (Evidence, Option, FileChange, Limits, *PAYLOADS.values()):  # nested types first
        conv.register_unstructure_hook(
            cls,
            cattrs.gen.make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True),
        )
    conv.register_unstructure_hook(Event, _unstructure_event)
    conv.register_structure_hook(Event, structure_event)
    return conv


_EVENT_KEYS = ("v", "seq", "ts", "kind", "data")


def _unstructure_event(e: Event) -> dict[str, Any]:
    return {"v": e.v, "seq": e.seq, "ts": e.ts, "kind": e.kind, "data": e.data}


def structure_event(obj: Any, _cls: type[Event] = Event) -> Event:
    """An :class:`Event` from its JSON object (the converter's hook, and the fast path of reading)."""
    if not isinstance(obj, dict):
        raise ValueError("an event is a JSON object")
    if len(obj) != 5:
        missing = [k for k in _EVENT_KEYS if k not in obj]
        if missing:
            raise ValueError(f"event lacks {', '.join(missing)}")
        raise ValueError(f"unknown event key(s): {', '.join(sorted(set(obj) - set(_EVENT_KEYS)))}")
    return Event(obj["v"], obj["seq"], obj["ts"], obj["kind"], obj["data"])


converter = _make_converter()
