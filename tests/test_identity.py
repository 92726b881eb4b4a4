"""Who maestro's commits are by: the repository's configuration, re-read when it changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dulwich.repo import Repo

from maestro.git.identity import DEFAULT_IDENTITY, identity


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_identity_follows_the_configuration_as_it_changes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    r = Repo(str(repo))
    assert identity(r) == DEFAULT_IDENTITY
    _git(repo, "config", "user.name", "Ada")
    _git(repo, "config", "user.email", "ada@example.com")
    assert identity(r) == b"Ada <ada@example.com>"
    _git(repo, "config", "user.name", "Grace Hopper")
    assert identity(Repo(str(repo))) == b"Grace Hopper <ada@example.com>"
    (tmp_path / "home").mkdir()
    _git(repo, "config", "--unset", "user.name")
    (tmp_path / "home" / ".gitconfig").write_text("[user]\n\tname = Global\n", encoding="utf-8")
    assert identity(r) == b"Global <ada@example.com>"
