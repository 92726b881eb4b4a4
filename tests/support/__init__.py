"""What the test modules share, by topic; test modules import helpers only from here.

* :mod:`tests.support.git`: empty git repositories (``git_init``);
* :mod:`tests.support.checkpoints`: git run as the binary, files, trees and what git says of them
  (the checkpoint tests and their properties);
* :mod:`tests.support.runs`: repositories with a plan (PRD, tasks, config, script) for end-to-end
  sessions, in process (``Recorder``) or through the ``maestro`` command line (``Plan``, ``cli``);
* :mod:`tests.support.crash`: ``DRIVER``, the script that SIGKILLs ``maestro`` at a chosen moment;
* :mod:`tests.support.repos`: sample repositories of each ecosystem (for repofacts and the strategies);
* :mod:`tests.support.fakes`: running the fake agent CLIs of ``tests/fakes/`` and reading their logs;
* :mod:`tests.support.agent_clis`: the real agent CLIs, installed into the checkout;
* :mod:`tests.support.strategies`: hypothesis strategies for the records and the charts' triggers;
* :mod:`tests.support.hostile`: sessions run through the command line with a hostile command agent, and what
  the user's side of the repository and maestro's refs look like before and after.

Fixtures stay in ``tests/conftest.py``.  ``tests/test_layout.py`` checks that no test module
imports another, or ``conftest``.
"""
