"""``maestro init [--claude] [--force] [--repo PATH]``: the command line's half of setting a repository up.

The parser and what ``maestro init`` prints; the work is
:func:`maestro.config.init.init_project`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final, TextIO

from maestro.config.init import init_project

__all__ = ["HINT", "add_parser", "cmd_init"]

HINT: Final = 'in Claude Code: /flow:autonomous "your request"'


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``init`` on ``sub`` (what ``ArgumentParser.add_subparsers()`` returned); return its parser."""
    p: argparse.ArgumentParser = sub.add_parser(
        "init",
        help="set a repository up for maestro (config.yaml; with --claude, the /flow:autonomous command)",
        description="Write .flow/maestro/config.yaml with the validation gates detected in the repository; with "
        "--claude also the Claude Code slash command .claude/commands/flow/autonomous.md and maestro's skills "
        "in .claude/skills/. Running it again changes nothing; a file that differs from what init writes is "
        "kept unless --force.",
    )
    p.add_argument("--claude", action="store_true", help="also install /flow:autonomous and maestro's skills")
    p.add_argument("--force", action="store_true", help="overwrite files that differ from what init writes")
    p.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    return p


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    """``maestro init``: one line a file on ``out`` (``created .flow/maestro/config.yaml``), then hints; exit code 0.

    ``out`` is the command line's stdout (``maestro.cli.main`` passes ``sys.stdout``: the library never
    writes to it on its own).  A :class:`~maestro.MaestroError` is left for the command line to show.
    """
    result = init_project(Path(args.repo), claude=args.claude, force=args.force)
    for f in result.files:
        out.write(f"{f.action} {f.path}\n")
    if args.claude:
        if any(f.written and f.path.parts[0] == ".claude" for f in result.files):
            out.write("commit .claude/ before a run: `maestro run` refuses uncommitted changes\n")
        out.write(HINT + "\n")
    return 0
