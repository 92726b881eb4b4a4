"""Running a session: the runner API, the loop the chart drives, the scheduler, pauses and answers, the run inputs.

Also re-drive (:mod:`maestro.run.redrive`) and the demo (:mod:`maestro.run.demo`).
"""

from maestro.run.inputs import RunInputs, load_run_inputs
from maestro.run.loop import RunOutcome
from maestro.run.pauses import answer, request_doc
from maestro.run.runner import Runner

__all__ = ["RunInputs", "RunOutcome", "Runner", "answer", "load_run_inputs", "request_doc"]
