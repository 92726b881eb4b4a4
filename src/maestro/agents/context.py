"""The context pack: what an agent is told about a task beyond the task itself, and how a failure's output is shown.

A :class:`ContextPack` is plain data, built by the run (:func:`maestro.run.context.build_context`) in the
coordinating thread from the session: the PRD text of the task's requirements, the decisions that concern it
with their rationale, the skills chosen for it and where they are, what the tasks it depends on changed, and —
for another attempt — why the previous attempt failed.  :func:`maestro.agents.base.task_prompt` renders it; the
sections here each render one part within a cap (:data:`PRD_CHARS`, :data:`DECISION_LINES`,
:data:`CHANGE_LINES`, :data:`FEEDBACK_CHARS`), so a prompt stays bounded and the same pack always renders the
same bytes.

A failure's output is shown the way a person would want to read it: ANSI escape codes removed
(:func:`strip_ansi`), the commands that failed and the tests that failed named (:func:`failing_commands`,
:func:`failing_tests`), and the start and the end of a long output kept with a marker between them
(:func:`head_and_tail`): the head says what broke, the tail how it ended.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import attrs

from maestro.core.records import FileChange
from maestro.core.text import MARK, one_line

__all__ = [
    "CHANGE_LINES",
    "DECISION_LINES",
    "FEEDBACK_CHARS",
    "HEAD_LINES",
    "PRD_CHARS",
    "TAIL_LINES",
    "ContextPack",
    "DecisionNote",
    "DependencyChanges",
    "RequirementText",
    "SkillNote",
    "failing_commands",
    "failing_tests",
    "feedback_section",
    "head_and_tail",
    "strip_ansi",
]

PRD_CHARS = 4096
"""At most this many characters of PRD text (the task's requirements) in a prompt."""

DECISION_LINES = 20
"""At most this many decisions in a prompt."""

CHANGE_LINES = 40
"""At most this many changed files of the tasks a task depends on in a prompt."""

FEEDBACK_CHARS = 8192
"""At most this many characters of a failure's output in a prompt."""

HEAD_LINES = 40
"""The first lines of a failure's output kept (what broke)."""

TAIL_LINES = 80
"""The last lines of a failure's output kept (how it ended)."""

_LINE_CHARS = 400  # one line of output longer than this (minified code, a progress bar) is cut
_RATIONALE_CHARS = 300
_NAMED = 10  # failing commands or tests named at most

# -- records ------------------------------------------------------------------------------------------------------


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _files(value: Iterable[FileChange]) -> tuple[FileChange, ...]:
    return tuple(value)


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class RequirementText:
    """A requirement the task serves, as the PRD words it (``text`` None: the PRD has no such requirement)."""

    id: str
    text: str | None = None
    priority: str = ""
    notes: str = ""


@attrs.frozen
class DecisionNote:
    """A decision that concerns the task: its id, kind, choice and one-line rationale."""

    id: str
    kind: str
    choice: str
    rationale: str


@attrs.frozen
class SkillNote:
    """A skill chosen for the task, with where the agent finds it (``.claude/skills/<name>/SKILL.md``)."""

    name: str
    description: str = ""
    where: str = ""


@attrs.frozen
class DependencyChanges:
    """What one task the task depends on changed: the files its checkpoints (or its merge) added, modified, deleted."""

    task: str
    title: str = ""
    checkpoints: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    files: tuple[FileChange, ...] = attrs.field(default=(), converter=_files)


def _requirements(value: Iterable[RequirementText]) -> tuple[RequirementText, ...]:
    return tuple(value)


def _decisions(value: Iterable[DecisionNote]) -> tuple[DecisionNote, ...]:
    return tuple(value)


def _skills(value: Iterable[SkillNote]) -> tuple[SkillNote, ...]:
    return tuple(value)


def _dependencies(value: Iterable[DependencyChanges]) -> tuple[DependencyChanges, ...]:
    return tuple(value)


@attrs.frozen
class ContextPack:
    """Everything an attempt is told beyond its task: built by the run, rendered by ``task_prompt``.

    ``after_failure`` says the attempt follows a failed one (a retry, an alternative), ``previous`` why it
    failed (the recovery decision that answered it, the agent's result); the failure's output itself is the
    request's ``feedback``.  Without ``after_failure`` the feedback is a human's guidance (``guidance``) or about
    earlier work that did not fail (what a validation found).
    """

    requirements: tuple[RequirementText, ...] = attrs.field(default=(), converter=_requirements)
    decisions: tuple[DecisionNote, ...] = attrs.field(default=(), converter=_decisions)
    skills: tuple[SkillNote, ...] = attrs.field(default=(), converter=_skills)
    dependencies: tuple[DependencyChanges, ...] = attrs.field(default=(), converter=_dependencies)
    previous: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    after_failure: bool = False
    guidance: bool = False


# -- text ---------------------------------------------------------------------------------------------------------

_ANSI = re.compile(
    r"""
    (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]        # CSI: colours, cursor moves, erasing (ESC [ or the 8-bit CSI)
    | \x1b\] .*? (?:\x07|\x1b\\|\Z)             # OSC: window titles, hyperlinks (ended by BEL or ST)
    | \x1b [PX^_] .*? (?:\x1b\\|\Z)             # DCS, SOS, PM, APC strings
    | \x1b [ -/]* [0-~]                         # the other escapes (charset selection, keypad modes …)
    | \x1b                                      # a lone ESC left over
    """,
    re.VERBOSE | re.DOTALL,
)


def strip_ansi(text: str) -> str:
    """``text`` as a terminal would leave it to read: ANSI escape sequences removed, ``\\r\\n`` made ``\\n``, and a
    line rewritten with ``\\r`` (a progress bar) kept as last written."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    if "\r" not in text:
        return text
    return "\n".join(_last_written(line) for line in text.split("\n"))


def _last_written(line: str) -> str:
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def head_and_tail(text: str, *, head: int = HEAD_LINES, tail: int = TAIL_LINES, limit: int = FEEDBACK_CHARS) -> str:
    """The first ``head`` and the last ``tail`` lines of ``text``, with ``[… N lines left out …]`` between them
    when there are more; each line at most 400 characters, and the whole at most ``limit`` (the start kept
    for a third, the end for the rest, with a marker naming the characters left out)."""
    lines = [line if len(line) <= _LINE_CHARS else line[: _LINE_CHARS - 1] + MARK for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > head + tail:
        lines = [*lines[:head], f"[{MARK} {len(lines) - head - tail:,} lines left out {MARK}]", *lines[-tail:]]
    out = "\n".join(lines)
    if len(out) <= limit:
        return out
    first = limit // 3
    marker = f"\n[{MARK} {{:,}} characters left out {MARK}]\n"
    last = max(0, limit - first - len(marker.format(len(out))))
    return out[:first] + marker.format(len(out) - first - last) + out[len(out) - last :]


_COMMAND = (
    re.compile(r"^\$ (.+)$", re.MULTILINE),  # an acceptance command as the run echoes it
    re.compile(r"command `([^`\n]+)` failed"),  # a regression's header
)
_TESTS = (
    re.compile(r"^(?:FAILED|ERROR) (\S+::\S+)", re.MULTILINE),  # pytest's short summary
    re.compile(r"^(?:FAIL|ERROR): (\S+ \([\w.]+\))", re.MULTILINE),  # unittest
    re.compile(r"^\s*--- FAIL: (\S+)", re.MULTILINE),  # go test
    re.compile(r"^test (\S+) \.\.\. FAILED$", re.MULTILINE),  # cargo test
    re.compile(r"^\s*● (.+?) › (.+)$", re.MULTILINE),  # jest
)


def _unique(found: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for item in found:
        if item and item not in out:
            out.append(item)
    return tuple(out)


def failing_commands(output: str) -> tuple[str, ...]:
    """The commands a failure's output says failed (``$ command`` lines, a regression's header), first ten."""
    found = (m.group(1).strip() for pattern in _COMMAND for m in pattern.finditer(output))
    return _unique(found)[:_NAMED]


def failing_tests(output: str) -> tuple[str, ...]:
    """The tests a failure's output names as failed (pytest, unittest, go test, cargo, jest), first ten."""
    found = []
    for pattern in _TESTS:
        for m in pattern.finditer(output):
            found.append(" › ".join(g.strip() for g in m.groups()))
    return _unique(found)[:_NAMED]


def feedback_section(
    feedback: str, previous: Sequence[str] = (), *, failure: bool = True, guidance: bool = False
) -> str:
    """The prompt's section about the feedback an attempt gets: with ``failure``, the previous failure — why
    (``previous``), the failing commands and tests, then the output, ANSI-stripped, head and tail kept
    (:func:`head_and_tail`); with ``guidance``, a human's guidance; else feedback on earlier work that did not
    fail (what a validation found)."""
    text = strip_ansi(feedback)
    body = head_and_tail(text)
    if guidance and not failure:
        return f"A human's guidance for this task (follow it):\n{body}" if body.strip() else ""
    lines = [f"- {one_line(strip_ansi(p), _RATIONALE_CHARS)}" for p in previous]
    commands, tests = failing_commands(text), failing_tests(text)
    if commands:
        lines.append("- failing commands: " + "; ".join(f"`{one_line(c, 200)}`" for c in commands))
    if tests:
        lines.append("- failing tests: " + ", ".join(one_line(t, 200) for t in tests))
    if body.strip():
        total = len(text.rstrip("\n").split("\n"))
        kept = "all of it" if total <= HEAD_LINES + TAIL_LINES else f"its first {HEAD_LINES} and last {TAIL_LINES}"
        what = "Its output" if failure else "The feedback"
        lines.append(f"{what} ({total:,} line{'s' if total != 1 else ''}, {kept}; ANSI codes removed):\n{body}")
    if not lines:
        return ""
    return ("The previous failure:\n" if failure else "Feedback on the earlier work:\n") + "\n".join(lines)


# -- sections -----------------------------------------------------------------------------------------------------


def requirements_section(requirements: Sequence[RequirementText]) -> str:
    """The PRD text of the task's requirements, at most :data:`PRD_CHARS` characters."""
    lines = []
    for r in requirements:
        if r.text is None:
            lines.append(f"- {r.id}: (not in the PRD)")
            continue
        head = f"- {r.id}" + (f" ({r.priority})" if r.priority else "")
        lines.append(f"{head}: {r.text.strip()}" + (f" Notes: {r.notes.strip()}" if r.notes.strip() else ""))
    return _capped("Requirements this task serves (from the PRD):", lines, PRD_CHARS, "requirements")


def decisions_section(decisions: Sequence[DecisionNote]) -> str:
    """The decisions that concern the task, one line each, at most :data:`DECISION_LINES`."""
    lines = [f"- {d.kind} ({d.id}): {d.choice} — {one_line(d.rationale, _RATIONALE_CHARS)}" for d in decisions]
    if len(lines) > DECISION_LINES:
        lines = [*lines[:DECISION_LINES], f"[{MARK} {len(lines) - DECISION_LINES} more: see decisions.json]"]
    return "Decisions already made for this work (follow them):\n" + "\n".join(lines) if lines else ""


def dependencies_section(dependencies: Sequence[DependencyChanges]) -> str:
    """What the tasks it depends on changed, at most :data:`CHANGE_LINES` files."""
    lines: list[str] = []
    shown = left = 0
    for dep in dependencies:
        where = ", ".join(str(n) for n in dep.checkpoints)
        head = f"- {dep.task}" + (f" ({dep.title})" if dep.title else "")
        if where:
            head += f", checkpoint{'s' if len(dep.checkpoints) > 1 else ''} {where}"
        if not dep.files:
            lines.append(f"{head}: no files changed")
            continue
        lines.append(f"{head}:")
        for f in dep.files:
            if shown >= CHANGE_LINES:
                left += 1
                continue
            shown += 1
            counts = f" (+{f.added_lines} -{f.deleted_lines})" if f.change != "deleted" or f.deleted_lines else ""
            lines.append(f"    {f.change} {f.path}{counts}")
    if left:
        lines.append(f"[{MARK} {left} more files]")
    return "What the tasks it depends on changed:\n" + "\n".join(lines) if lines else ""


def skills_section(skills: Sequence[SkillNote]) -> str:
    """The skills chosen for the task, with where each is and what it is for."""
    lines = []
    for s in skills:
        line = f"- {s.name}" + (f" ({s.where})" if s.where else "")
        if s.description:
            line += f": {one_line(s.description, 200)}"
        lines.append(line)
    return "Skills that apply (read each SKILL.md and follow it):\n" + "\n".join(lines) if lines else ""


def _capped(title: str, lines: Sequence[str], limit: int, what: str) -> str:
    """``title`` and as many of ``lines`` as fit in ``limit`` characters (the first cut if it alone does not)."""
    if not lines:
        return ""
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > limit:
            break
        out.append(line)
        used += len(line) + 1
    if not out:  # one requirement longer than the cap: its start
        out.append(lines[0][: limit - 1] + MARK)
    if len(out) < len(lines):
        out.append(f"[{MARK} {len(lines) - len(out)} more {what}: see the PRD]")
    return title + "\n" + "\n".join(out)
