"""``maestro init [--claude] [--force] [--dry-run] [--repo PATH]``: the command line's half of setting a repository up.

The parser and what ``maestro init`` prints; the work is
:func:`maestro.config.init.init_project`.  First what was detected, one line each
with its evidence — each gate, the stack of each ecosystem, each entry point::

    gate tests: pytest, `python -m pytest -q --junitxml={junit}` (test/test_api.py: test file with plain test functions)
    gate typecheck: none (no typecheck tool found: looked for mypy, pyright, tsc, go vet, cargo check, sorbet)
    stack python: pyproject.toml; 2 source files; declares wcwidth; imports wcwidth (tabulate/__init__.py:15)
    entry point tabulate: [project.scripts] tabulate:_main (pyproject.toml:32); parses its arguments with getopt (…)

then one line a file (``created .flow/maestro/config.yaml``; with ``--dry-run``,
``would create …`` and nothing is written), then the hints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final, TextIO

from maestro.cli._common import escaped
from maestro.config.init import CREATED, KEPT, OVERWRITTEN, Detection, init_project
from maestro.core.records import Decision, Evidence
from maestro.decide.repofacts import EntryPoint

__all__ = ["HINT", "add_parser", "cmd_init", "detected_lines"]

HINT: Final = 'in Claude Code: /flow:autonomous "your request"'
_DRY: Final = {CREATED: "would create", OVERWRITTEN: "would overwrite", KEPT: "would keep (differs; use --force)"}
_LISTED: Final = 5  # dependencies, imports and evidence named on a line; entry points shown
_ENTRY_POINTS: Final = 10


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``init`` on ``sub`` (what ``ArgumentParser.add_subparsers()`` returned); return its parser."""
    p: argparse.ArgumentParser = sub.add_parser(
        "init",
        help="set a repository up for maestro (config.yaml; with --claude, the /flow:autonomous command)",
        description="Print what maestro detects in the repository (the validation gates, the stack, the entry "
        "points, each with its evidence) and write .flow/maestro/config.yaml with the detected gates; with "
        "--claude also the Claude Code slash command .claude/commands/flow/autonomous.md and maestro's skills "
        "in .claude/skills/. Running it again changes nothing; a file that differs from what init writes is "
        "kept unless --force. --dry-run prints the same and writes nothing.",
    )
    p.add_argument("--claude", action="store_true", help="also install /flow:autonomous and maestro's skills")
    p.add_argument("--force", action="store_true", help="overwrite files that differ from what init writes")
    p.add_argument("--dry-run", action="store_true", help="print what would be detected and written; write nothing")
    p.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    return p


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    """``maestro init``: what was detected, one line a file (``created .flow/maestro/config.yaml``), the hints; 0.

    ``out`` is the command line's stdout (``maestro.cli.main`` passes ``sys.stdout``: the library never
    writes to it on its own).  A :class:`~maestro.MaestroError` is left for the command line to show.
    """
    dry_run = bool(getattr(args, "dry_run", False))
    result = init_project(Path(args.repo), claude=args.claude, force=args.force, dry_run=dry_run)
    for line in detected_lines(result.detection):
        out.write(escaped(line) + "\n")
    for f in result.files:
        out.write(f"{_DRY.get(f.action, f.action) if dry_run else f.action} {f.path}\n")
    if dry_run:
        out.write("dry run: nothing was written\n")
    elif args.claude and any(f.written and f.path.parts[0] == ".claude" for f in result.files):
        out.write("commit .claude/ before a run: `maestro run` refuses uncommitted changes\n")
    if args.claude:
        out.write(HINT + "\n")
    return 0


# -- what was detected ----------------------------------------------------------------------------------------------


def detected_lines(detection: Detection) -> list[str]:
    """One line a gate, a line an ecosystem of the stack, a line an entry point: each with its evidence."""
    lines = [_gate_line(name, decision) for name, decision in detection.gates.items()]
    stacks = detection.stacks
    if not stacks:
        lines.append("stack: none detected (no manifest, no source file)")
    for stack in stacks:
        parts = [", ".join(stack.manifests) or "no manifest", f"{stack.source_files} source file(s)"]
        if stack.declared:
            parts.append(f"declares {_listed(list(stack.declared))}")
        if stack.imports:
            parts.append(f"imports {_listed([f'{i.name} ({i.where})' for i in stack.imports])}")
        lines.append(f"stack {stack.ecosystem}: " + "; ".join(parts))
    entry_points = detection.entry_points
    if not entry_points:
        lines.append("entry points: none (no [project.scripts], console_scripts, package.json bin or __main__)")
    lines += [_entry_line(e) for e in entry_points[:_ENTRY_POINTS]]
    if len(entry_points) > _ENTRY_POINTS:
        lines.append(f"entry points: {len(entry_points) - _ENTRY_POINTS} more")
    return lines


def _gate_line(name: str, decision: Decision) -> str:
    chosen = next((o for o in decision.options if o.name == decision.choice), None)
    evidence = list(chosen.evidence) if chosen is not None else []
    why = _listed([_evidence(e) for e in evidence], sep="; ")
    if decision.choice == "none" or chosen is None or not chosen.notes:
        return f"gate {name}: none" + (f" ({why})" if why else "")
    return f"gate {name}: {decision.choice}, `{chosen.notes}`" + (f" ({why})" if why else "")


def _entry_line(e: EntryPoint) -> str:
    declared = f"[{e.kind}] {e.target} ({e.where})" if e.declared else f"runs as a program ({e.where})"
    parser = f"parses its arguments with {e.parser} ({e.parser_where})" if e.parser else "no argument parser seen"
    return f"entry point {e.name}: {declared}; {parser}"


def _evidence(e: Evidence) -> str:
    """One piece of evidence as a user reads it: ``tox.ini [flake8]``, ``pytest in pyproject.toml [...]``."""
    if not e.detail:
        return e.value
    if e.kind == "dependency":
        return f"{e.value} in {e.detail}"
    if e.kind == "command":
        return f"`{e.value}` ({e.detail})"
    if e.kind == "file" and e.detail.startswith("line "):
        line, _, what = e.detail[5:].partition(": ")
        return f"{e.value}:{line} ({what})" if what else f"{e.value}:{line}"
    if e.kind == "file" and e.detail.startswith("["):
        return f"{e.value} {e.detail}"
    return f"{e.value}: {e.detail}"


def _listed(items: list[str], *, sep: str = ", ") -> str:
    shown = sep.join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")
