"""What a repository holds: its ecosystems, dependencies, tool configuration and layout.

:func:`scan` reads the manifests of a repository — ``pyproject.toml``,
``requirements*.txt``, ``setup.cfg``, ``package.json``, ``Cargo.toml``,
``go.mod``, ``Gemfile`` — and the configuration files of the usual tools, and
walks the tree (bounded: hidden folders, ``node_modules``, virtual environments,
build output and ``vendor`` are pruned, the depth and the number of files are
capped); :mod:`maestro.decide.manifests` reads each manifest.  The decision
strategies (:mod:`maestro.decide.strategies`) decide from what it returns, a
:class:`RepoFacts`; every path in it is relative to the repository, POSIX
style, and every collection is sorted, so two scans of the same tree are equal.

Manifests are read at the root and in the *members* of a monorepo: the folders
named by ``package.json`` ``workspaces``, ``pnpm-workspace.yaml``,
``Cargo.toml`` ``[workspace] members`` and ``go.work``, and the folders
``packages/*``, ``apps/*``, ``libs/*``, ``crates/*``, ``services/*`` that hold a
manifest.  Manifests elsewhere (test fixtures, examples) are not read.

A malformed manifest raises :class:`~maestro.PlanError` naming the file, the
line when known and the field::

    /work/app/pyproject.toml:7: not valid TOML: Expected '=' after a key in a key/value pair

So does a manifest nested too deeply to parse (``[[[[…]]]]``), a file that is not
UTF-8 (the byte is named) and a repository path that is not a folder (missing, a
file, a symlink loop) — the path is checked before anything resolves it.

``markers`` also record the built-in test runners a repository visibly uses
without declaring them: ``python:unittest`` (test files import it),
``go:test`` (``*_test.go`` files), ``rust:test`` (``#[test]``), ``node:test``
(test files import ``node:test``) and ``ruby:minitest`` (test files require it).
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import PlanError, error_text
from maestro.decide.manifests import MANIFESTS, ManifestReader, Script, normalise_name
from maestro.git.tree import TreeWalk

__all__ = ["ECOSYSTEMS", "MAX_DEPTH", "MAX_FILES", "Dependency", "RepoFacts", "Script", "normalise_name", "scan"]

log = logging.getLogger(__name__)

ECOSYSTEMS = ("python", "node", "rust", "go", "ruby")
"""The ecosystems a scan recognises."""

MAX_DEPTH = 4
"""Folders deeper than this many levels below the root are not walked."""

MAX_FILES = 5000
"""The walk stops listing files after this many (:attr:`RepoFacts.truncated` says so)."""

_PRUNE = frozenset({"node_modules", "venv", "__pycache__", "build", "dist", "target", "vendor", "site-packages"})
_MEMBER_DIRS = ("packages", "apps", "libs", "crates", "services")
_SOURCE_EXTS = {
    ".py": "python", ".js": "node", ".jsx": "node", ".ts": "node", ".tsx": "node", ".mjs": "node",
    ".cjs": "node", ".rs": "rust", ".go": "go", ".rb": "ruby",
}  # fmt: skip
_JS_TEST = re.compile(r".+\.(test|spec)\.[cm]?[jt]sx?\Z")
_SNIFF_BYTES = 32_768
_SNIFF_FILES = 200
_PY_IMPORT = re.compile(r"^\s*(?:import|from)\s+(pytest|unittest)\b", re.MULTILINE)
_RS_TEST = re.compile(r"#\[(?:cfg\(test\)|test|tokio::test)\]")
_JS_NODE_TEST = re.compile(r"""(?:\bfrom|\brequire\s*\(|\bimport)\s*["']node:test["']""")
_RB_MINITEST = re.compile(r"""^\s*require\s*\(?\s*["']minitest(?:/autorun)?["']""", re.MULTILINE)


@attrs.frozen
class Dependency:
    """A declared dependency: its ecosystem, normalised name, and where it is declared (``file [section]``)."""

    ecosystem: str
    name: str
    declared: tuple[str, ...]


@attrs.frozen(eq=True, hash=False)
class RepoFacts:
    """What :func:`scan` found.  Paths are relative to ``root``, POSIX style; every tuple is sorted.

    ``ecosystems`` is ordered by prominence (the primary one first); ``configs``
    holds configuration files (``pytest.ini``, ``web/vitest.config.ts``) and
    sections of shared files (``pyproject.toml [tool.ruff]``, ``setup.cfg [flake8]``,
    ``package.json [jest]``), whose contents are in ``settings``; ``markers`` maps
    what a test or source file was seen to use (``python:pytest``,
    ``python:unittest``, ``rust:test``) to those files.
    """

    root: Path
    ecosystems: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    configs: tuple[str, ...] = ()
    settings: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    scripts: tuple[Script, ...] = ()
    names: Mapping[str, str] = attrs.field(factory=dict)
    members: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    markers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    source_counts: Mapping[str, int] = attrs.field(factory=dict)
    truncated: bool = False

    @property
    def primary(self) -> str | None:
        """The main ecosystem (root manifest first, then the most source files), or None."""
        return self.ecosystems[0] if self.ecosystems else None

    @property
    def is_empty(self) -> bool:
        """Nothing but hidden files: a new repository."""
        return not any(not f.startswith(".") for f in self.files)

    def dependency(self, ecosystem: str, name: str) -> Dependency | None:
        """The declared dependency ``name`` of ``ecosystem`` (compared normalised), or None."""
        key = normalise_name(ecosystem, name)
        return next((d for d in self.dependencies if d.ecosystem == ecosystem and d.name == key), None)

    def dependencies_of(self, ecosystem: str) -> tuple[Dependency, ...]:
        """The declared dependencies of ``ecosystem``, by name."""
        return tuple(d for d in self.dependencies if d.ecosystem == ecosystem)

    def config_files(self, *patterns: str) -> tuple[str, ...]:
        """The configuration files whose name matches one of the glob ``patterns`` (``.eslintrc*``)."""
        return tuple(
            c
            for c in self.configs
            if " [" not in c and any(fnmatch.fnmatchcase(c.rsplit("/", 1)[-1], p) for p in patterns)
        )

    def sections(self, *names: str) -> tuple[str, ...]:
        """The configuration sections called one of ``names`` (``tool.ruff``, ``flake8``) in any file."""
        return tuple(c for c in self.configs if " [" in c and c.split(" [", 1)[1][:-1] in names)


# -- the walk -------------------------------------------------------------------
def _walk(root: Path) -> tuple[list[str], list[str], bool]:
    """Folders and files under ``root``, breadth first, sorted, pruned and capped."""
    walk = TreeWalk(
        str(root),
        prune=_pruned,
        skip=(),
        max_depth=MAX_DEPTH,
        max_files=MAX_FILES,
        breadth_first=True,
        sort=True,
        onerror=lambda path, exc: log.debug("skipping %s: %s", path, exc),
    )
    dirs: list[str] = []
    files: list[str] = []
    for rel, entry, _stat in walk:
        if entry.is_dir(follow_symlinks=False):
            dirs.append(rel)
        elif entry.is_file(follow_symlinks=False):
            files.append(rel)
    return sorted(dirs), sorted(files), walk.truncated


def _pruned(_rel: str, entry: os.DirEntry[str]) -> bool:
    name = entry.name
    return name.startswith(".") or name in _PRUNE or name.endswith(".egg-info")


def _glob_dirs(pattern: str, dirs: Iterable[str]) -> list[str]:
    """The folders a workspace glob (``packages/*``, ``./tools/cli``, ``crates/**``) names."""
    pattern = pattern.strip().removeprefix("./").rstrip("/")
    if "**" in pattern:
        return [d for d in dirs if fnmatch.fnmatchcase(d, pattern)]
    parts = pattern.split("/")
    return [
        d
        for d in dirs
        if len(d.split("/")) == len(parts)
        and all(fnmatch.fnmatchcase(a, b) for a, b in zip(d.split("/"), parts, strict=True))
    ]


def _sniff(root: Path, files: Iterable[str], pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """Which of ``files`` (at most a few hundred, their first 32 KB) match ``pattern``, by the match."""
    found: dict[str, list[str]] = {}
    for rel in list(files)[:_SNIFF_FILES]:
        try:
            with open(root / rel, encoding="utf-8", errors="replace") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError:
            continue
        for match in sorted({m.group(1) if m.groups() else m.group(0) for m in pattern.finditer(head)}):
            found.setdefault(match, []).append(rel)
    return found


def _is_test_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    parts = rel.split("/")
    if name.endswith(".py"):
        return name.startswith("test_") or name.endswith("_test.py")
    if _JS_TEST.match(name) or ("__tests__" in parts[:-1] and re.search(r"\.[cm]?[jt]sx?\Z", name)):
        return True
    if name.endswith(".rb"):
        return name.endswith(("_spec.rb", "_test.rb")) or name.startswith("test_")
    return name.endswith("_test.go") or (name.endswith(".rs") and "tests" in parts[:-1])


# -- scan -----------------------------------------------------------------------
def _check_folder(root: Path) -> None:
    """Raise :class:`~maestro.PlanError` unless ``root`` is a folder (no resolving: a symlink loop is named)."""
    try:
        mode = os.stat(root).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            problem = "a symlink loop, not a repository folder"
        elif exc.errno == errno.ENOENT:
            problem = "a broken symlink, not a repository folder" if root.is_symlink() else "no such repository folder"
        elif exc.errno == errno.ENOTDIR:
            problem = "no such repository folder (a parent is not a folder)"
        else:
            problem = f"cannot read the repository folder: {error_text(exc)}"
        raise PlanError(problem, path=root) from None
    except ValueError as exc:  # an embedded NUL
        raise PlanError(f"not a path: {error_text(exc)}", path=repr(str(root))) from None
    if not stat.S_ISDIR(mode):
        raise PlanError("not a folder", path=root)


def scan(repo: Path | str) -> RepoFacts:
    """Read ``repo``'s manifests and tool configuration and walk its tree; see the module docstring.

    Raises :class:`~maestro.PlanError` for a missing folder or a malformed manifest.
    """
    root = Path(repo)
    _check_folder(root)
    dirs, files, truncated = _walk(root)
    file_set = set(files)
    reader = ManifestReader(root, files)

    reader.read_folder("", is_root=True)
    members = {d for p in reader.workspace_patterns for d in _glob_dirs(p, dirs)}
    members |= {d for d in dirs if d.split("/")[0] in _MEMBER_DIRS and d.count("/") == 1}
    members = {d for d in members if any(f"{d}/{m}" in file_set for m in MANIFESTS)}
    for member in sorted(members):
        reader.read_folder(member, is_root=False)

    counts: dict[str, int] = {}
    for rel in files:
        ecosystem = _SOURCE_EXTS.get(os.path.splitext(rel)[1])
        if ecosystem is not None:
            counts[ecosystem] = counts.get(ecosystem, 0) + 1
    present = reader.ecosystems | set(counts)
    ranked = sorted(
        present,
        key=lambda e: (
            e not in reader.root_ecosystems,
            e not in reader.ecosystems,
            -counts.get(e, 0),
            ECOSYSTEMS.index(e),
        ),
    )

    test_files = [f for f in files if _is_test_file(f)]
    markers: dict[str, list[str]] = {}
    for name, found in _sniff(root, [f for f in test_files if f.endswith(".py")], _PY_IMPORT).items():
        markers[f"python:{name}"] = found
    rust_tests = _sniff(root, [f for f in files if f.endswith(".rs")], _RS_TEST)
    if rust_tests:
        markers["rust:test"] = sorted({f for found in rust_tests.values() for f in found})
    go_tests = [f for f in test_files if f.endswith("_test.go")]
    if go_tests:
        markers["go:test"] = go_tests
    for name, ecosystem, pattern in (("node:test", "node", _JS_NODE_TEST), ("ruby:minitest", "ruby", _RB_MINITEST)):
        sniffed = _sniff(
            root, [f for f in test_files if _SOURCE_EXTS.get(os.path.splitext(f)[1]) == ecosystem], pattern
        )
        if sniffed:
            markers[name] = sorted({f for found in sniffed.values() for f in found})

    bases = ["", *(f"{m}/" for m in sorted(members))]
    packages = sorted(
        d
        for d in dirs
        if f"{d}/__init__.py" in file_set
        and any(d.startswith(b) and d[len(b) :].removeprefix("src/").count("/") == 0 for b in bases)
        and d.rsplit("/", 1)[-1] not in ("tests", "test", "docs")
    )
    deps = tuple(Dependency(e, n, tuple(sorted(w))) for (e, n), w in sorted(reader.deps.items()))
    log.debug("scanned %s: %d files, ecosystems %s", root, len(files), ranked)
    return RepoFacts(
        root=root,
        ecosystems=tuple(ranked),
        manifests=tuple(sorted(reader.manifests)),
        dependencies=deps,
        configs=tuple(sorted(reader.configs)),
        settings=dict(sorted(reader.settings.items())),
        scripts=tuple(sorted(reader.scripts, key=lambda s: (s.manifest, s.name))),
        names=dict(sorted(reader.names.items())),
        members=tuple(sorted(members)),
        dirs=tuple(dirs),
        files=tuple(files),
        test_files=tuple(test_files),
        packages=tuple(packages),
        markers={k: tuple(sorted(v)) for k, v in sorted(markers.items())},
        source_counts=dict(sorted(counts.items())),
        truncated=truncated,
    )
