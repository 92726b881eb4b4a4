"""See a session: a self-contained HTML report of one session, and an index of a repository's sessions.

::

    html = html_report(store, session_id)          # the page, as text
    path = write_html_report(store, session_id)    # <session folder>/report.html
    index = sessions_index_html(store)             # every session, with a link to each report
    path = write_sessions_index(store)             # .flow/maestro/sessions.html (and every report.html)

The page is drawn from the session's event log: a timeline of the attempts, the task graph, the path through
the session chart, the decisions, the requirements, the recovery and the changes.  Two things the log does not
hold come from the plan files the session keeps beside it: the tasks' titles and dependencies
(``tasks.yaml``) and the requirement matrix (``traceability.md``); without them the graph is drawn in its
planned groups and the requirements from the traceability gate.  The same files give the same bytes.
"""

from maestro.report.files import (
    INDEX_FILE,
    REPORT_FILE,
    html_report,
    report_path,
    sessions_index_html,
    write_html_report,
    write_sessions_index,
)
from maestro.report.page import render_report

__all__ = [
    "INDEX_FILE",
    "REPORT_FILE",
    "html_report",
    "render_report",
    "report_path",
    "sessions_index_html",
    "write_html_report",
    "write_sessions_index",
]
