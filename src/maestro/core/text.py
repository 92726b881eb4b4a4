"""Text helpers: one-line messages (first and last lines, flattening, tails, values as errors show them), and
reading an input file bounded in size.

Each message helper has the parameters its callers need to keep their exact output:
:func:`one_line` cuts the end of a long text and :func:`tail` its start,
:func:`last_lines` keeps lines, and :func:`shown` words a value the way a
message about YAML data names it.

:func:`read_input` reads a file the user hands maestro (a PRD, a task graph,
``config.yaml``, a script) and refuses one larger than :data:`MAX_INPUT_BYTES`
at once: it reads at most one byte past the limit, so ``--tasks /dev/zero``
ends at once too.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MARK",
    "MAX_INPUT_BYTES",
    "SUMMARY_CHARS",
    "InputTooLarge",
    "counted",
    "first_line",
    "last_line",
    "last_lines",
    "one_line",
    "read_input",
    "shown",
    "tail",
]

MAX_INPUT_BYTES = 10 * 1024 * 1024
"""The largest input file maestro reads, in bytes (10 MiB): a PRD, a task graph (tasks.yaml, beads JSON, a
markdown list), ``config.yaml``, a script, a planner's answer.  A YAML document is held to it too
(:data:`maestro.core.yamlio.MAX_BYTES`)."""

MARK = "…"
"""What stands for the characters a helper cut."""

SUMMARY_CHARS = 600
"""What :func:`tail` keeps by default: the end of an output in a one-line summary (an agent's result)."""


def first_line(text: str, *, skip: str | tuple[str, ...] = (), limit: int | None = None) -> str:
    """The first line of ``text`` that is not blank, stripped; ``""`` when there is none.

    Lines starting with ``skip`` (as written, before stripping; e.g. ``"$ "`` for
    an echoed command) are passed over; ``limit`` keeps that many characters of
    the line (no mark).
    """
    for line in text.splitlines():
        if line.strip() and not (skip and line.startswith(skip)):
            return line.strip()[:limit]
    return ""


def last_line(text: str) -> str:
    """The last line of ``text`` that is not blank, stripped; ``""`` when there is none."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line (each run of whitespace one space); longer than ``limit``: its start and ``…``.

    The result has at most ``limit`` characters, the mark included.
    """
    flat = " ".join(text.split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: limit - 1] + MARK


def tail(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The end of ``text`` on one line: all of it up to ``limit`` characters, else ``…`` and its last ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else MARK + flat[-limit:]


def last_lines(text: str, lines: int, limit: int) -> str:
    """The last ``lines`` lines of ``text`` (trailing newlines dropped), at most ``limit`` characters with ``…``."""
    out = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return out if len(out) <= limit else MARK + out[len(out) - limit + 1 :]


class InputTooLarge(OSError):
    """An input file is larger than its limit (an :class:`OSError`, ``EFBIG``, so that a reader's ``except OSError``
    words it); ``size`` is None when the file is not a regular file (a device, a pipe) and was cut off."""

    def __init__(self, path: str | os.PathLike[str], size: int | None, limit: int) -> None:
        self.size = size
        self.limit = limit
        got = f"{size:,} bytes, " if size is not None else ""
        self.problem = f"too large: {got}more than the {limit:,} bytes an input file may have"
        super().__init__(errno.EFBIG, self.problem, os.fspath(path))


def read_input(path: str | os.PathLike[str], *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the input file ``path``: at most ``limit``, else :class:`InputTooLarge`.

    A regular file larger than ``limit`` is refused before it is read; anything
    else (a device, a pipe) is read up to one byte past ``limit``, never more.
    Every other problem is the :class:`OSError` that opening or reading raised.
    """
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        regular = stat.S_ISREG(st.st_mode)
        if regular and st.st_size > limit:
            raise InputTooLarge(path, st.st_size, limit)
        data = f.read(limit + 1)
    if len(data) > limit:  # a device, a pipe, or a file that grew meanwhile
        raise InputTooLarge(path, None, limit)
    return data


def shown(value: Any, *, yaml_words: bool = False, list_items: bool = False) -> str:
    """``value`` as an error message about data shows it: a string quoted, a mapping as ``a mapping``.

    A list is ``a list`` (with ``list_items``: ``the list [...]``), anything else
    its ``repr``.  With ``yaml_words`` null and booleans are YAML's words
    (``null``, ``true``), a tuple (a complex key) is a list too, and values that
    are not numbers show as ``str`` does (a date as ``2026-01-07``).
    """
    if yaml_words:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list) or (yaml_words and isinstance(value, tuple)):
        return f"the list {list(value)!r}" if list_items else "a list"
    if yaml_words and not isinstance(value, (int, float)):
        return str(value)
    try:
        return repr(value)
    except ValueError:  # an int of more digits than Python converts (sys.get_int_max_str_digits)
        return f"an integer of {value.bit_length():,} bits" if isinstance(value, int) else f"a {type(value).__name__}"


def counted(n: int, word: str, plural: str | None = None) -> str:
    """``1 checkpoint``, ``2 checkpoints``: a count and its noun, singular or plural."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"
