"""git/packs (issue 18): a commit's objects shipped between object stores, only what the other side lacks.

Real repositories made by git; the receiving side is a bare dulwich repository, checked by ``git fsck`` and
``git ls-tree`` after the shipment.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from maestro.core.errors import CheckpointError
from maestro.git.packs import LOOSE_LIMIT, missing_objects, pack_of, tree_of, unpack
from tests.support.git import commit_all
from tests.support.git import git_cli as git


@pytest.fixture
def source(tmp_path: Path) -> Path:
    repo = tmp_path / "src"
    repo.mkdir()
    git(repo, "init", "-q")
    for i in range(300):
        path = repo / f"d{i % 12}" / f"f{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"file {i}\n")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("run.sh")
    commit_all(repo, "one")
    return repo


def ship(src: Repo, dst: Repo, want: ObjectID, have: ObjectID | None) -> tuple[int, int]:
    data, n = pack_of(src.object_store, missing_objects(src.object_store, want=want, have=have))
    assert unpack(dst.object_store, data) == n
    return n, len(data)


def test_a_cold_shipment_holds_the_whole_tree_and_a_warm_one_what_changed(source: Path, tmp_path: Path) -> None:
    one = ObjectID(git(source, "rev-parse", "HEAD").encode())
    (source / "d3" / "f3.txt").write_text("changed\n")
    (source / "d3" / "new.txt").write_text("new\n")
    (source / "d5" / "f5.txt").unlink()
    (source / "d7" / "f19.txt").rename(source / "d7" / "moved.txt")  # the same blob, another name: not sent again
    two = commit_all(source, "two")
    src, dst = Repo(str(source)), Repo.init_bare(str(tmp_path / "dst.git"), mkdir=True)
    try:
        cold, _ = ship(src, dst, one, None)
        assert cold == 1 + 1 + 12 + 300 + 2  # the commit, the root tree, 12 folders, 300 files, run.sh and the link
        warm, size = ship(src, dst, two, one)
        # the commit, the root and d3, d5, d7 trees, d3's two new blobs
        assert warm == 1 + 1 + 3 + 2 and size < 4_000, (warm, size)  # three folders' trees of 25 entries
        for c in (one, two):  # the receiving side holds both commits' trees whole
            listed = git(tmp_path / "dst.git", "ls-tree", "-r", c.decode()).splitlines()
            assert len(listed) == len(git(source, "ls-tree", "-r", c.decode()).splitlines())
        dst.refs[Ref(b"refs/heads/two")] = two
        fsck = subprocess.run(["git", "fsck", "--no-dangling", "--connectivity-only", "two"], cwd=tmp_path / "dst.git",
                              capture_output=True, text=True)  # fmt: skip
        assert "missing" not in fsck.stdout + fsck.stderr  # the parent commit is not shipped: only its tree was
        assert tree_of(dst.object_store, two) == tree_of(src.object_store, two)
    finally:
        src.close()
        dst.close()


def test_nothing_changed_ships_the_commit_alone(source: Path) -> None:
    one = ObjectID(git(source, "rev-parse", "HEAD").encode())
    git(source, "commit", "-q", "--allow-empty", "-m", "empty")
    two = ObjectID(git(source, "rev-parse", "HEAD").encode())
    src = Repo(str(source))
    try:
        assert missing_objects(src.object_store, want=two, have=one) == [two]
        assert missing_objects(src.object_store, want=two, have=one, commit=False) == []
    finally:
        src.close()


def test_large_packs_are_kept_as_packs_and_small_ones_loose(source: Path, tmp_path: Path) -> None:
    one = ObjectID(git(source, "rev-parse", "HEAD").encode())
    (source / "d0" / "f0.txt").write_text("again\n")
    two = commit_all(source, "two")
    src, dst = Repo(str(source)), Repo.init_bare(str(tmp_path / "dst.git"), mkdir=True)
    try:
        n, _ = ship(src, dst, one, None)
        assert n > LOOSE_LIMIT
        packs = list((tmp_path / "dst.git" / "objects" / "pack").glob("*.pack"))
        assert len(packs) == 1 and packs[0].with_suffix(".idx").is_file()
        ship(src, dst, two, one)
        assert len(list((tmp_path / "dst.git" / "objects" / "pack").glob("*.pack"))) == 1  # the few: loose
        assert (tmp_path / "dst.git" / "objects" / two.decode()[:2] / two.decode()[2:]).is_file()
    finally:
        src.close()
        dst.close()


@pytest.mark.parametrize("cut", [1, 12, 100])
def test_a_damaged_pack_is_refused_whole(source: Path, tmp_path: Path, cut: int) -> None:
    one = ObjectID(git(source, "rev-parse", "HEAD").encode())
    src, dst = Repo(str(source)), Repo.init_bare(str(tmp_path / "dst.git"), mkdir=True)
    try:
        data, _n = pack_of(src.object_store, missing_objects(src.object_store, want=one, have=None))
        with pytest.raises(CheckpointError, match="cannot be read"):
            unpack(dst.object_store, data[:-cut])
        assert not list((tmp_path / "dst.git" / "objects" / "pack").glob("*.pack"))
    finally:
        src.close()
        dst.close()


def test_a_missing_commit_or_object_is_named(source: Path, tmp_path: Path) -> None:
    src = Repo(str(source))
    try:
        with pytest.raises(CheckpointError, match=r"no commit 0{40}"):
            missing_objects(src.object_store, want=ObjectID(b"0" * 40), have=None)
        tree = tree_of(src.object_store, ObjectID(git(source, "rev-parse", "HEAD").encode()))
        with pytest.raises(CheckpointError, match="is not a commit"):
            tree_of(src.object_store, tree)
        with pytest.raises(CheckpointError, match="not in the object store"):
            pack_of(src.object_store, [ObjectID(b"1" * 40)])
    finally:
        src.close()
