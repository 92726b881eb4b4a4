"""A Dask worker's cache (``run/remote.WorkerCache``, issue 18) is emptied past its size limit, never under an attempt.

In process, without Dask: shipments made as the coordinator makes them (a pack of what the worker lacks), real git
repositories, the scripted agent.  What is checked: under its limit the cache stays warm (a warm shipment works);
over it, it is emptied once no attempt runs, and the next shipment that counts on it is a :class:`CacheMiss`
(before any agent runs), after which a whole shipment works again; ``$MAESTRO_WORKER_CACHE_MB`` sets the limit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dulwich.objects import ObjectID
from dulwich.repo import Repo

from maestro.agents.base import AgentRequest
from maestro.agents.scripted import ScriptedAgent
from maestro.core.errors import CacheMiss, CheckpointError
from maestro.git.packs import missing_objects, pack_of, tree_of
from maestro.plan.tasks import Task
from maestro.run.remote import DEFAULT_CACHE_MB, WORKER_CACHE_ENV, Shipment, WorkerCache, cache_limit
from tests.support.git import committed
from tests.support.git import git_cli as git


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A repository of 200 files of about 2 KB each (incompressible enough: each is different)."""
    lines = "".join
    return committed(tmp_path / "src", {
        f"f{i}.txt": lines(f"{i}:{j}:{(i * 7919 + j * 104729) % 1000003}\n" for j in range(150)) for i in range(200)
    })  # fmt: skip


def agent(tmp_path: Path, *tasks: str) -> ScriptedAgent:
    data: dict[str, Any] = {"version": 1, "tasks": {t: [{"actions": [
        {"write": {"path": f"{t}.txt", "content": f"{t}\n"}}]}] for t in tasks}}  # fmt: skip
    return ScriptedAgent.from_mapping(data, tmp_path)


def shipment(source: Path, tid: str, agent: ScriptedAgent, *, have: ObjectID | None = None) -> Shipment:
    """What the coordinator ships for task ``tid`` at the source's HEAD: everything, or what ``have`` lacks."""
    repo = Repo(str(source))
    try:
        base = ObjectID(git(source, "rev-parse", "HEAD").encode())
        data, _n = pack_of(repo.object_store, missing_objects(repo.object_store, want=base, have=have))
        have_tree = tree_of(repo.object_store, have) if have is not None else None
    finally:
        repo.close()
    request = AgentRequest(Task(tid, f"task {tid}"), workdir=source)
    return Shipment("s1", request, agent, base, have_tree, data, f"refs/maestro/s1/attempts/{tid}/1".encode(),
                    None, 60.0)  # fmt: skip


@pytest.fixture
def caches() -> Iterator[list[WorkerCache]]:
    """The caches a test opens, closed after it."""
    opened: list[WorkerCache] = []
    yield opened
    for cache in opened:
        cache.close()


def opened(caches: list[WorkerCache], cache: WorkerCache) -> WorkerCache:
    caches.append(cache)
    return cache


def head(source: Path) -> ObjectID:
    return ObjectID(git(source, "rev-parse", "HEAD").encode())


def test_under_its_limit_the_cache_stays_warm(source: Path, tmp_path: Path, caches: list[WorkerCache]) -> None:
    cache = opened(caches, WorkerCache(tmp_path / "slot", limit=100 * 2**20, check_every=1))
    sa = agent(tmp_path, "a", "b")
    back = cache.attempt(shipment(source, "a", sa))
    assert back.result.status == "succeeded"
    assert cache.held([tree_of(cache.repo.object_store, head(source))]) != []
    back = cache.attempt(shipment(source, "b", sa, have=head(source)))  # the commit alone
    assert back.result.status == "succeeded" and cache.emptied == 0
    assert back.received < 1_000


def test_over_its_limit_the_cache_is_emptied_and_a_whole_shipment_works_again(
    source: Path, tmp_path: Path, caches: list[WorkerCache]
) -> None:
    cache = opened(caches, WorkerCache(tmp_path / "slot", limit=64 * 1024, check_every=1))
    sa = agent(tmp_path, "a", "b", "c")
    first = shipment(source, "a", sa)
    assert len(first.pack) > 64 * 1024
    assert cache.attempt(first).result.status == "succeeded"
    assert cache.emptied == 0  # a finished attempt's result never waits for the emptying
    assert cache.size() > 64 * 1024
    with pytest.raises(CacheMiss, match="does not hold tree"):
        cache.attempt(shipment(source, "b", sa, have=head(source)))  # the coordinator still counts on it
    assert cache.emptied == 1  # emptied as b began, before its agent could run
    assert git(tmp_path / "slot" / "cache.git", "count-objects") == "0 objects, 0 kilobytes"
    assert not any((tmp_path / "slot" / "worktrees" / "remote").glob("*"))
    back = cache.attempt(shipment(source, "c", sa))  # what the coordinator sends next: everything
    assert back.result.status == "succeeded" and cache.emptied == 1


def test_a_full_cache_waits_for_the_running_attempts_and_new_ones_wait_for_it(
    source: Path, tmp_path: Path, caches: list[WorkerCache]
) -> None:
    cache = opened(caches, WorkerCache(tmp_path / "slot", limit=64 * 1024, check_every=1))
    sa = agent(tmp_path, "a", "b", "c")
    inside, leave = threading.Event(), threading.Event()
    real = cache._attempt
    ran: list[str] = []

    def attempt(sh: Shipment) -> Any:
        ran.append(sh.request.task.id)
        if sh.request.task.id == "b":
            inside.set()
            assert leave.wait(30)
        return real(sh)

    cache._attempt = attempt  # type: ignore[method-assign]
    results: dict[str, Any] = {}

    def run(tid: str) -> None:
        results[tid] = cache.attempt(shipment(source, tid, sa))

    b = threading.Thread(target=run, args=("b",))
    b.start()
    assert inside.wait(30)  # b runs (and holds nothing of the cache yet)
    run("a")  # fills the cache past its limit
    c = threading.Thread(target=run, args=("c",))
    c.start()
    c.join(0.5)
    assert c.is_alive() and ran == ["b", "a"] and cache.emptied == 0  # c waits: b still runs in the cache
    leave.set()
    b.join(30)
    c.join(30)
    assert not b.is_alive() and not c.is_alive()
    assert cache.emptied == 1 and ran == ["b", "a", "c"]  # emptied once b ended, before c began
    assert all(r.result.status == "succeeded" for r in results.values())


def test_a_cache_that_cannot_be_made_again_fails_one_attempt_and_the_next_one_tries_again(
    source: Path, tmp_path: Path, caches: list[WorkerCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = opened(caches, WorkerCache(tmp_path / "slot", limit=64 * 1024, check_every=1))
    sa = agent(tmp_path, "a", "b", "c")
    assert cache.attempt(shipment(source, "a", sa)).result.status == "succeeded"
    real = cache._open_repo
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise CheckpointError(f"{tmp_path / 'slot' / 'cache.git'}: cannot open the worker's cache repository")
        real()

    monkeypatch.setattr(cache, "_open_repo", flaky)
    with pytest.raises(CheckpointError, match="cannot open the worker's cache repository"):
        cache.attempt(shipment(source, "b", sa))
    back = cache.attempt(shipment(source, "c", sa))  # tries again, and works: nothing was left counted
    assert back.result.status == "succeeded" and len(calls) == 2 and cache.emptied == 1
    assert cache.attempt(shipment(source, "a", sa)).result.status == "succeeded"  # not waiting on anything


def test_a_full_cache_is_emptied_when_a_worker_opens_it(
    source: Path, tmp_path: Path, caches: list[WorkerCache]
) -> None:
    first = opened(caches, WorkerCache(tmp_path / "slot", limit=None))
    first.attempt(shipment(source, "a", agent(tmp_path, "a")))
    caches.pop().close()  # the first worker process ends
    assert opened(caches, WorkerCache(tmp_path / "slot", limit=10 * 2**20)).emptied == 0  # under: kept
    caches.pop().close()
    assert opened(caches, WorkerCache(tmp_path / "slot", limit=64 * 1024)).emptied == 1


def test_the_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKER_CACHE_ENV, raising=False)
    assert cache_limit() == DEFAULT_CACHE_MB * 2**20
    monkeypatch.setenv(WORKER_CACHE_ENV, "512")
    assert cache_limit() == 512 * 2**20
    monkeypatch.setenv(WORKER_CACHE_ENV, "0")
    assert cache_limit() is None
    for bad in ("lots", "-1", "1.5"):
        monkeypatch.setenv(WORKER_CACHE_ENV, bad)
        with pytest.raises(CheckpointError, match=r"\$MAESTRO_WORKER_CACHE_MB"):
            cache_limit()
