"""Shared fixtures: real git repositories in temporary folders, deterministic seams (helpers: ``tests.support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import maestro
from maestro.git.places import ENV_ROOT
from tests.support.git import git_init


@pytest.fixture(autouse=True, scope="session")
def _worktrees_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Sessions' worktrees under the test run's temporary folder, not the user's cache (subprocesses inherit it)."""
    mp = pytest.MonkeyPatch()
    mp.setenv(ENV_ROOT, str(tmp_path_factory.mktemp("worktrees")))
    yield
    mp.undo()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh, empty git repository in a temporary folder."""
    return git_init(tmp_path / "repo")


@pytest.fixture
def store(repo: Path) -> maestro.Store:
    return maestro.Store(repo)


@pytest.fixture
def session(store: maestro.Store) -> Iterator[maestro.Session]:
    """A new session with a ticking clock and sequential ids; closed afterwards."""
    s = maestro.Session.create(store, "add a calculator", clock=maestro.TickingClock(), ids=maestro.SequentialIds())
    yield s
    s.close()
