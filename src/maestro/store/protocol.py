"""The store protocol: what a :class:`~maestro.Session`, replay, the runner and the command line ask of a store.

:class:`StoreProtocol` lists the members they use (found by reading their
calls) and nothing else.  :class:`~maestro.store.filestore.Store` — the
``.flow/maestro/`` directory of a repository — is the one implementation; a new
one (another layout, another root) passes the conformance suite of
:mod:`maestro.testing.stores`.

A store hands out *paths*: a session's folder, its ``events.jsonl``, the
decision history's folder.  The primitives that write there — the fsync'd
append (:class:`~maestro.store.filestore.EventLog`), the session lock
(:class:`~maestro.store.filestore.Lock`), atomic writes
(:func:`~maestro.store.filestore.atomic_write`) — belong to the session, which
uses them in the folders the store names.  The store itself reads: the events
back (a torn last line dropped), the sessions it holds, who holds one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from maestro.core.records import Event

__all__ = ["StoreProtocol"]


@runtime_checkable
class StoreProtocol(Protocol):
    """The members of a store that maestro calls.

    Reading (``session_ids``, ``exists``, ``read_events``, ``holder``) never
    writes and takes no lock; only :meth:`init` and :meth:`decisions_lock` create
    anything.
    """

    @property
    def repo(self) -> Path:
        """The top of the git repository the store belongs to."""
        ...

    @property
    def root(self) -> Path:
        """The store's folder (``<repo>/.flow/maestro``); messages name it."""
        ...

    @property
    def decisions_dir(self) -> Path:
        """The folder of the decision history across sessions (``decisions/<kind>.json``)."""
        ...

    @property
    def config_path(self) -> Path:
        """Where ``config.yaml`` is (``maestro init`` writes it; the store only reads it)."""
        ...

    def init(self) -> None:
        """Create the store's folders; idempotent (:class:`~maestro.StoreError` if it cannot)."""
        ...

    def session_dir(self, session_id: str) -> Path:
        """The folder of ``session_id`` (which may not exist yet); a bad id is a :class:`~maestro.StoreError`."""
        ...

    def events_path(self, session_id: str) -> Path:
        """The session's ``events.jsonl``, inside :meth:`session_dir`."""
        ...

    def session_ids(self) -> list[str]:
        """Every session in the store (a folder with an event log), oldest id first."""
        ...

    def exists(self, session_id: str) -> bool:
        """Whether the session has an event log."""
        ...

    def read_events(self, session_id: str) -> list[Event]:
        """The session's events, without a lock and writing nothing; a torn last line is dropped.

        A missing session, or a bad line before the last, is a :class:`~maestro.StoreError`.
        """
        ...

    def holder(self, session_id: str) -> int | None:
        """The pid of the live process holding the session's lock, or None."""
        ...

    def decisions_lock(self) -> AbstractContextManager[None]:
        """An exclusive lock on the decision history, waited for, held while it is rewritten."""
        ...


if TYPE_CHECKING:  # mypy checks here that the file store keeps the protocol
    from maestro.store.filestore import Store

    def _the_file_store_is_a_store(store: Store) -> StoreProtocol:
        return store
