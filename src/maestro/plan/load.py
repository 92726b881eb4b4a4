"""Reading a task graph from a file of any format: ``tasks.yaml``, beads JSON or a markdown task list.

:func:`load_tasks` picks the reader by the file's suffix: :func:`~maestro.plan.tasks.parse_tasks`
for ``.yaml``/``.yml``, :func:`~maestro.plan.importers.from_beads` for ``.json``/``.jsonl``,
:func:`~maestro.plan.importers.from_markdown` for ``.md``/``.markdown``.  It sits above both
the task model and the importers, so that :mod:`maestro.plan.tasks` never imports an importer.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from maestro.core.errors import PlanError
from maestro.plan import importers
from maestro.plan.prd import read_plan_text
from maestro.plan.tasks import TaskGraph, parse_tasks, validate_graph

__all__ = ["load_tasks"]


def load_tasks(path: str | Path, *, requirement_ids: Collection[str] | None = None) -> TaskGraph:
    """Read a task graph from ``path``: ``tasks.yaml``, beads JSON (``.json``/``.jsonl``) or a markdown list (``.md``).

    ``requirement_ids`` (from the PRD) makes every task's requirements checked against it.
    """
    p = Path(path)
    text = read_plan_text(p, "a tasks file")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return parse_tasks(text, p, requirement_ids=requirement_ids)
    if suffix in (".json", ".jsonl"):
        tasks = importers.from_beads(text, str(p))
    elif suffix in (".md", ".markdown"):
        tasks = importers.from_markdown(text, str(p))
    else:
        raise PlanError(f"unknown kind of tasks file {suffix or '(no suffix)'!r}: expected .yaml, .json or .md", path=p)
    if not tasks:
        raise PlanError("no open tasks: every task in it is done", path=p)
    return validate_graph(tasks, source=p, requirement_ids=requirement_ids)
