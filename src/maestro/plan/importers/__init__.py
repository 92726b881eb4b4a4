"""Task graphs from other planners: beads issues (:mod:`.beads`) and markdown task lists (:mod:`.markdown`).

Both importers return the tasks in input order as an *unvalidated* list of
:class:`~maestro.plan.tasks.Task`; the caller runs :func:`~maestro.plan.tasks.validate_graph`
(as :func:`~maestro.plan.load.load_tasks` does), which reports duplicate ids, unknown
dependencies, cycles and group conflicts with the file, line, task and field.
What the importers check themselves (malformed input, bad field values) raises
:class:`~maestro.PlanError` the same way.  No tasks at all is an error ("no tasks
found" / "no issues found"); tasks that are all done give an empty list.
"""

from __future__ import annotations

from maestro.plan.importers.beads import from_beads
from maestro.plan.importers.markdown import from_markdown

__all__ = ["from_beads", "from_markdown"]
