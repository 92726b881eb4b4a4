"""The regression probe: once a task's work is merged, does the tree still hold what the tasks built?

Two checks: files the task deleted outside its declared ``files`` (only when it declares
them), and the acceptance commands of the task and of every task merged before it (each
distinct command once, several at a time), run in the merged tree.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from maestro.core.text import one_line
from maestro.gates.acceptance import acceptance
from maestro.git.housekeeping import deleted_paths
from maestro.plan.tasks import Task

__all__ = ["deleted_outside", "regression"]

log = logging.getLogger(__name__)


def deleted_outside(workdir: Path, tasks: Sequence[Task], deleted: Sequence[str] | None = None) -> list[str]:
    """Files the tasks deleted outside their declared ``files`` (and folders); [] when a task declares none.

    ``deleted`` are the files deleted (from a commit's diff); without it, the working tree's deletions.
    """
    if not tasks or any(not t.files for t in tasks):
        return []
    declared = [f.rstrip("/") for t in tasks for f in t.files]
    if deleted is None:
        try:
            deleted = deleted_paths(workdir)
        except (OSError, ValueError, KeyError) as exc:  # a repository dulwich cannot read here: skip, say so
            log.warning("cannot check for deleted files in %s: %s", workdir, exc)
            return []
    return [p for p in deleted if not any(p == d or p.startswith(d + "/") for d in declared)]


def regression(
    workdir: Path,
    group: Sequence[Task],
    earlier: Sequence[Task],
    *,
    workers: int,
    timeout_s: float,
    deleted: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str] | None:
    """What the merged tasks (``group``) broke, as (a ``[Maestro]`` line, the feedback for its agent); None if nothing.

    ``earlier`` are the tasks whose acceptance commands must pass in ``workdir``; ``deleted`` the files the
    group's change deleted; ``env`` the commands' environment (None: maestro's).
    """
    outside = deleted_outside(workdir, group, deleted)
    names = ", ".join(t.id for t in group)
    if outside:
        return (
            f"Regression: {names} deleted files outside its tasks: {', '.join(outside[:5])}",
            f"Your change deleted files outside the task's files ({', '.join(outside[:10])}): keep to the task's files",
        )
    owners: dict[str, Task] = {}
    for t in earlier:
        for command in t.acceptance:
            owners.setdefault(command, t)
    if not owners:
        return None
    probes = [Task(f"check{i}", "regression check", acceptance=(c,)) for i, c in enumerate(owners)]
    with cf.ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(probes))), thread_name_prefix="maestro-check"
    ) as pool:
        results = list(pool.map(lambda p: acceptance(p, workdir, timeout_s=timeout_s, env=env), probes))
    for command, acc in zip(owners, results, strict=True):
        if not acc.passed:
            t = owners[command]
            output = "\n".join(f"$ {c}\n{out}" for c, code, out in acc.results if code != 0)
            code = next((code for _c, code, _out in acc.results if code != 0), 1)
            said = f"`{one_line(command, limit=120)}` failed (exit {code})"
            if t.id in {g.id for g in group}:
                return (
                    f"Regression: task {t.id}'s acceptance fails once merged with the work before it",
                    f"Merged with the work of the tasks before it, your change fails its own acceptance "
                    f"command {said}:\n{output}",
                )
            return (
                f"Regression: task {t.id}'s acceptance now fails after merging {names}",
                f"Your change broke task {t.id} ({t.title}): its acceptance command {said}:\n{output}",
            )
    return None
