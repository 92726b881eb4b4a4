"""Lines added and deleted between two versions of a file, as ``git diff --numstat`` counts them.

::

    line_delta(b"a\nb\n", b"a\nc\nd\n")   # (2, 1)

The counts are those of a shortest edit script (Myers' algorithm, git's
default); binary content counts ``(0, 0)``, as in git.  A checkpoint's
:class:`~maestro.core.records.FileChange` carries them: :func:`file_changes`
makes them from a list of changed paths (a tree diff's, or the one
:meth:`~maestro.git.staging.Staging.file_changes` kept of a checkpoint).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable

from dulwich.objects import ObjectID

from maestro.core.records import FileChange

__all__ = ["PathChange", "file_changes", "line_delta"]

#: A changed path, its mode and blob before (``None``: added) and after (``None``: deleted).
PathChange = tuple[bytes, tuple[int, ObjectID] | None, tuple[int, ObjectID] | None]


def file_changes(changes: Iterable[PathChange], blob: Callable[[ObjectID], bytes]) -> tuple[FileChange, ...]:
    """The changes with their line counts, sorted by path; ``blob(sha)`` gives a blob's bytes (empty for what is
    not a blob, such as a submodule's commit)."""
    out: list[FileChange] = []
    for path, old, new in changes:
        if old is None:
            assert new is not None
            out.append(FileChange(os.fsdecode(path), "added", *line_delta(b"", blob(new[1]))))
        elif new is None:
            out.append(FileChange(os.fsdecode(path), "deleted", *line_delta(blob(old[1]), b"")))
        else:
            out.append(FileChange(os.fsdecode(path), "modified", *line_delta(blob(old[1]), blob(new[1]))))
    return tuple(sorted(out, key=lambda f: f.path))


def _lines(data: bytes) -> list[bytes]:
    """Lines as git splits them: at ``\\n`` only, each keeping its end (a last line may lack one)."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def line_delta(old: bytes, new: bytes) -> tuple[int, int]:
    """Lines added and deleted from ``old`` to ``new``, as ``git diff --numstat`` counts them.

    The counts of a shortest edit script (Myers' algorithm, git's default);
    ``(0, 0)`` for binary content, which git does not count either.
    """
    if b"\0" in old[:8000] or b"\0" in new[:8000]:
        return 0, 0
    a, b = _lines(old), _lines(new)
    d = _edit_distance(a, b)
    growth = len(b) - len(a)
    return (d + growth) // 2, (d - growth) // 2


def _edit_distance(a: list[bytes], b: list[bytes]) -> int:
    """The number of lines inserted plus deleted by a shortest edit script from ``a`` to ``b`` (Myers 1986)."""
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    n, m = len(a), len(b)
    if not n or not m:
        return n + m
    if n * m > 25_000_000:  # huge and very different: the cost would be quadratic; count by matching lines
        sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
        return n + m - 2 * sum(block.size for block in sm.get_matching_blocks())
    offset = n + m + 1
    v = [0] * (2 * offset + 1)
    for d in range(n + m + 1):
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[offset + k - 1] < v[offset + k + 1]):
                x = v[offset + k + 1]
            else:
                x = v[offset + k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            v[offset + k] = x
            if x >= n and y >= m:
                return d
    return n + m
