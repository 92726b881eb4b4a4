"""Attempts on a Dask cluster (issue 18): the executor seam, a remote attempt with no shared disk, the same session.

The executors pass one conformance suite (:mod:`maestro.testing.executors`): the thread pool and a Dask
``LocalCluster`` of two worker processes (one thread each).  The cluster is made once for the module: its
workers keep their folders (``MAESTRO_WORKER_DIR``) outside every repository of the tests.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maestro.run.executors import DaskExecutor, LocalExecutor
from maestro.testing.executors import ExecutorConformance

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def worker_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dask-workers")


@pytest.fixture(scope="module")
def cluster(worker_root: Path) -> Iterator[Any]:
    env = {"MAESTRO_WORKER_DIR": str(worker_root)}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1",
        env=env, silence_logs=40,
    ) as c:  # fmt: skip
        yield c


class TestLocalExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self) -> Iterator[LocalExecutor]:
        ex = LocalExecutor(2)
        yield ex
        ex.shutdown(cancel=True)


class TestDaskExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self, cluster: Any) -> Iterator[DaskExecutor]:
        ex = DaskExecutor(cluster.scheduler_address)
        yield ex
        ex.shutdown(cancel=True)


def test_the_local_executor_never_imports_distributed() -> None:
    code = (
        "import sys\n"
        "from maestro.run.executors import open_executor\n"
        "from maestro.run.runner import Runner\n"
        "import maestro.cli.main\n"
        "ex = open_executor(None, 2)\n"
        "assert ex.submit(sum, [1, 2]).result() == 3\n"
        "ex.shutdown()\n"
        "assert 'distributed' not in sys.modules, 'distributed was imported'\n"
        "assert 'dask' not in sys.modules, 'dask was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
