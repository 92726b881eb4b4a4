"""maestro's test toolkit: conformance suites for the seams an extension plugs into.

* :mod:`maestro.testing.agents` — :class:`~maestro.testing.agents.AgentConformance`, the
  contract every coding agent (an :class:`~maestro.agents.base.Agent`) keeps;
* :mod:`maestro.testing.stores` — :class:`~maestro.testing.stores.StoreConformance`, the
  contract every session store (a :class:`~maestro.store.protocol.StoreProtocol`) keeps.

Each suite is a class of ``test_*`` methods that pytest collects when a test
file subclasses it (``class TestMyAgent(AgentConformance)``) and provides its
fixture (``harness`` or ``store``).  These modules import pytest: install it
(``pip install maestro-orchestrator[test]``) to use them.  Nothing in maestro
imports this package, so pytest is not a dependency of maestro itself.
"""

from __future__ import annotations

import pytest

# their plain asserts explain themselves under pytest, as a test file's do (this must come before they are imported)
pytest.register_assert_rewrite("maestro.testing.agents", "maestro.testing.stores")
