"""Who maestro's commits and tags are by: the repository's ``user.name`` and ``user.email``, else maestro itself."""

from __future__ import annotations

from dulwich.repo import Repo

__all__ = ["DEFAULT_IDENTITY", "identity"]

DEFAULT_IDENTITY = b"maestro <maestro@localhost>"


def identity(repo: Repo) -> bytes:
    """``Name <email>`` from the repository's configuration (its own, the user's, the system's), or the default."""
    config = repo.get_config_stack()
    try:
        name = config.get((b"user",), b"name")
        email = config.get((b"user",), b"email")
    except KeyError:
        return DEFAULT_IDENTITY
    return bytes(name + b" <" + email + b">")
