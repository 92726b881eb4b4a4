"""The regression probe: after a group, did it break what earlier tasks built?

Two checks: files of the last checkpoint the group deleted outside its tasks' declared
``files`` (only when every task of the group declares them), and every earlier succeeded
task's acceptance commands (each distinct command once, several at a time).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Sequence
from pathlib import Path

from maestro.gates.acceptance import acceptance
from maestro.git.housekeeping import deleted_paths
from maestro.plan.tasks import Task

__all__ = ["deleted_outside", "regression"]

log = logging.getLogger(__name__)


def deleted_outside(workdir: Path, tasks: Sequence[Task]) -> list[str]:
    """Files the tasks deleted outside their declared ``files`` (and folders); [] when a task declares none."""
    if not tasks or any(not t.files for t in tasks):
        return []
    declared = [f.rstrip("/") for t in tasks for f in t.files]
    try:
        deleted = deleted_paths(workdir)
    except (OSError, ValueError, KeyError) as exc:  # a repository dulwich cannot read here: skip, say so
        log.warning("cannot check for deleted files in %s: %s", workdir, exc)
        return []
    return [p for p in deleted if not any(p == d or p.startswith(d + "/") for d in declared)]


def regression(
    workdir: Path, group: Sequence[Task], earlier: Sequence[Task], *, workers: int, timeout_s: float
) -> tuple[str, str] | None:
    """What the group broke, as (a ``[Maestro]`` line, the feedback for its agents); None if nothing.

    ``earlier`` are the tasks that succeeded before the group.
    """
    outside = deleted_outside(workdir, group)
    names = ", ".join(t.id for t in group)
    if outside:
        return (
            f"Regression: group {names} deleted files outside its tasks: {', '.join(outside[:5])}",
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
        results = list(pool.map(lambda p: acceptance(p, workdir, timeout_s=timeout_s), probes))
    for command, acc in zip(owners, results, strict=True):
        if not acc.passed:
            t = owners[command]
            output = "\n".join(f"$ {c}\n{out}" for c, code, out in acc.results if code != 0)
            return (
                f"Regression: task {t.id}'s acceptance now fails after group {names}",
                f"Your change broke task {t.id} ({t.title}): its acceptance command failed:\n{output}",
            )
    return None
