"""The report's files: a session's ``report.html`` and the store's ``sessions.html``, read from the store.

Besides the log, a session's folder keeps the plan it ran: ``tasks.yaml`` gives the tasks' titles and
dependencies, ``traceability.md`` the requirement matrix (the log holds neither).  A file that is missing or
cannot be read leaves its part of the page drawn from the log alone.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from maestro.core.errors import MaestroError
from maestro.core.text import read_input
from maestro.plan.tasks import parse_tasks
from maestro.report.page import IndexRow, index_page, render_report
from maestro.report.story import Story, TaskInfo, read_story
from maestro.store.filestore import atomic_write
from maestro.store.protocol import StoreProtocol

__all__ = [
    "INDEX_FILE",
    "REPORT_FILE",
    "html_report",
    "report_path",
    "sessions_index_html",
    "write_html_report",
    "write_sessions_index",
]

REPORT_FILE = "report.html"
INDEX_FILE = "sessions.html"
_log = logging.getLogger("maestro")
_CELL = re.compile(r"(?<!\\) \| ")  # a cell's own bars are escaped: \|


def report_path(store: StoreProtocol, session_id: str) -> Path:
    """Where a session's HTML report goes by default: ``report.html`` in its folder."""
    return store.session_dir(session_id) / REPORT_FILE


def _plan(folder: Path, notes: list[str]) -> dict[str, TaskInfo] | None:
    path = folder / "tasks.yaml"
    if not path.is_file():
        return None
    try:
        graph = parse_tasks(read_input(path).decode("utf-8"), path)
    except (MaestroError, OSError, UnicodeDecodeError) as exc:
        _log.warning("%s: not used for the HTML report: %s", path, exc)
        notes.append(f"tasks.yaml could not be read ({exc}): the task graph has no dependencies")
        return None
    return {t.id: TaskInfo(t.id, "pending", 0, t.title, t.depends_on, None, t.priority) for t in graph}


def _requirements(folder: Path) -> list[list[str]] | None:
    """The rows of ``traceability.md`` (requirement, priority, verdict, tasks, reason), or None."""
    try:
        text = read_input(folder / "traceability.md").decode("utf-8")
    except (OSError, MaestroError, UnicodeDecodeError):
        return None
    rows = []
    for line in text.splitlines()[2:]:  # after the header and its rule
        if line.startswith("| ") and line.endswith(" |"):
            cells = [c.replace("\\|", "|") for c in _CELL.split(line[2:-2])]
            if len(cells) == 5:
                rows.append(cells)
    return rows or None


def html_report(store: StoreProtocol, session_id: str) -> str:
    """The HTML report of ``session_id`` (nothing is written; a session that cannot be read is a
    :class:`~maestro.StoreError`)."""
    events = store.read_events(session_id)
    folder = store.session_dir(session_id)
    notes: list[str] = []
    plan = _plan(folder, notes)
    return render_report(events, plan=plan, requirements=_requirements(folder), notes=notes)


def write_html_report(store: StoreProtocol, session_id: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the HTML report of ``session_id`` (atomically) to ``path``, by default ``report.html`` in the
    session's folder; return where."""
    target = Path(path) if path is not None else report_path(store, session_id)
    atomic_write(target, html_report(store, session_id))
    return target


def _rows(store: StoreProtocol, base: Path) -> list[IndexRow]:
    rows = []
    for sid in reversed(store.session_ids()):  # newest first: ids start with the start time
        href = Path(os.path.relpath(report_path(store, sid), base)).as_posix()
        try:
            story: Story | None = read_story(store.read_events(sid))
        except MaestroError as exc:
            rows.append(IndexRow(sid, href, None, str(exc)))
            continue
        rows.append(IndexRow(sid, href, story))
    return rows


def sessions_index_html(store: StoreProtocol, *, base: str | os.PathLike[str] | None = None) -> str:
    """The index of the store's sessions: state, start, duration, cost, tasks, human answers, and a link to each
    one's ``report.html``, relative to the folder ``base`` the index will be in (the store's folder by default)."""
    folder = Path(base) if base is not None else store.root
    return index_page(f"maestro sessions: {store.repo.name}", _rows(store, folder))


def write_sessions_index(store: StoreProtocol, path: str | os.PathLike[str] | None = None, *,
                         reports: bool = True) -> Path:  # fmt: skip
    """Write the index to ``path`` (by default ``sessions.html`` in the store's folder) and, with ``reports``, the
    report of every readable session beside its log, so that each link leads somewhere; return the index's path."""
    target = Path(path) if path is not None else store.root / INDEX_FILE
    if reports:
        for sid in store.session_ids():
            try:
                write_html_report(store, sid)
            except MaestroError as exc:  # the index says what is wrong with it
                _log.warning("session %s: no HTML report: %s", sid, exc)
    atomic_write(target, sessions_index_html(store, base=target.parent))
    return target
