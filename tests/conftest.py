"""Shared fixtures: real git repositories in temporary folders, deterministic seams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import maestro


def git_init(path: Path) -> Path:
    """A real, empty git repository at ``path`` (made with dulwich: no git binary needed)."""
    from dulwich.repo import Repo

    path.mkdir(parents=True, exist_ok=True)
    Repo.init(str(path)).close()
    return path


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
