"""``maestro lessons``: the lessons the history proposes, with their evidence; ``approve ID`` / ``reject ID``.

The library is :mod:`maestro.decide.lessons`; what is proposed and what an approved lesson changes is in
``docs/lessons.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from maestro.cli._common import escaped
from maestro.core.errors import MaestroError
from maestro.decide.lessons import answer_lesson, propose_lessons
from maestro.store.filestore import Store
from maestro.store.lessons import Lesson, lesson_doc

__all__ = ["add_parser", "cmd_lessons"]

_SHOWN_CASES = 6  # cases named on a lesson's evidence line (--json has them all)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """``maestro lessons [approve|reject ID] [--note TEXT] [--repo PATH] [--json]``."""
    lx = sub.add_parser(
        "lessons",
        help="lessons from the history of the repository's sessions; approve or reject them",
        description="List the lessons the repository's sessions suggest (which recovery rung resolved which failure "
        "class, which subagent succeeded on which category, which tech choices humans overrode), each with its "
        "evidence and status; `maestro lessons approve ID` makes later decisions follow one, `reject ID` records "
        "that it must not. Listing writes nothing (docs/lessons.md).",
    )
    lx.add_argument("action", nargs="?", choices=("approve", "reject"), help="approve or reject a lesson")
    lx.add_argument("id", nargs="?", help="the lesson's id (L-…, as listed)")
    lx.add_argument("--note", metavar="TEXT", help="with approve or reject: why")
    lx.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    lx.add_argument("--json", action="store_true", help="print JSON")


def _lines(lesson: Lesson) -> list[str]:
    mark = "" if lesson.supported else "  (the history no longer proposes it)"
    out = [f"{lesson.id}  {lesson.status:<8}  {lesson.kind}: {lesson.topic} → {lesson.choice}{mark}",
           f"  {escaped(lesson.claim)}", f"  effect: {lesson.effect}"]  # fmt: skip
    cases = [f"{c.session} {c.decision or '-'}" + (f" [{c.task}]" if c.task else "") + f" {c.result}"
             for c in lesson.cases[:_SHOWN_CASES]]  # fmt: skip
    more = len(lesson.cases) - _SHOWN_CASES
    out.append("  evidence: " + escaped("; ".join(cases) + (f"; {more} more" if more > 0 else "")))
    if lesson.status != "proposed":
        note = f": {escaped(lesson.note)}" if lesson.note else ""
        out.append(f"  {lesson.status} by {escaped(lesson.by)} at {lesson.at}{note}")
    return out


def cmd_lessons(args: argparse.Namespace) -> int:
    """List the lessons, or approve or reject one (an unknown id: one line, exit 2, nothing written)."""
    if args.action is None and (args.id is not None or args.note is not None):
        raise MaestroError("maestro lessons approve ID or reject ID: say which (an id or --note alone does nothing)")
    if args.action is not None and not args.id:
        raise MaestroError(f"maestro lessons {args.action} ID: say which lesson (see `maestro lessons`)")
    store = Store(args.repo)
    if args.action is not None:
        status = "approved" if args.action == "approve" else "rejected"
        lesson = answer_lesson(store, args.id, status, note=args.note or "")
        if args.json:
            sys.stdout.write(json.dumps(lesson_doc(lesson), indent=2, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(f"lesson {lesson.id} {status}: {escaped(lesson.claim)}\n")
        return 0
    found = propose_lessons(store)
    if args.json:
        doc = {"lessons": [lesson_doc(x) for x in found.lessons],
               "skipped": [{"session": sid, "reason": why} for sid, why in found.skipped]}  # fmt: skip
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    lines = [line for x in found.lessons for line in _lines(x)]
    if not found.lessons:
        lines.append("no lessons yet: the history supports none (docs/lessons.md has the thresholds)")
    lines += [f"{sid}  skipped: {escaped(why)}" for sid, why in found.skipped]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
