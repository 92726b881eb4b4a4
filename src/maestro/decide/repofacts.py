"""What a repository holds: its ecosystems, dependencies, tool configuration and layout.

:func:`scan` reads the manifests of a repository — ``pyproject.toml``,
``requirements*.txt``, ``setup.cfg``, ``package.json``, ``Cargo.toml``,
``go.mod``, ``Gemfile`` — and the configuration files of the usual tools, and
walks the tree (bounded: hidden folders, ``node_modules``, virtual environments,
build output and ``vendor`` are pruned, the depth and the number of files are
capped).  The decision strategies (:mod:`maestro.decide.strategies`) decide from what
it returns, a :class:`RepoFacts`; every path in it is relative to the
repository, POSIX style, and every collection is sorted, so two scans of the
same tree are equal.

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

import configparser
import errno
import fnmatch
import json
import logging
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from maestro.core import yamlio
from maestro.core.errors import PlanError, YamlError, error_text
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
_MANIFESTS = {
    "pyproject.toml": "python",
    "setup.cfg": "python",
    "setup.py": "python",
    "package.json": "node",
    "Cargo.toml": "rust",
    "go.mod": "go",
    "Gemfile": "ruby",
}
_CONFIG_FILES = (
    "pytest.ini", "tox.ini", "conftest.py", "ruff.toml", ".ruff.toml", ".flake8", "mypy.ini", ".mypy.ini",
    "pyrightconfig.json", ".bandit", ".pylintrc", "tsconfig.json", ".eslintrc", ".eslintrc.*", "eslint.config.*",
    "vitest.config.*", "vitest.workspace.*", "jest.config.*", ".mocharc.*", "biome.json", "package-lock.json",
    "yarn.lock", "pnpm-lock.yaml", "pnpm-workspace.yaml", "go.work", "go.sum", ".golangci.*", "Cargo.lock",
    "clippy.toml", ".clippy.toml", "Gemfile.lock", ".rubocop.yml", ".rspec", "Rakefile", "poetry.lock", "uv.lock",
)  # fmt: skip
_INI_CONFIGS = ("setup.cfg", "tox.ini", "pytest.ini", ".flake8", "mypy.ini", ".mypy.ini")
_PACKAGE_JSON_TOOLS = ("jest", "eslintConfig", "prettier", "stylelint", "babel")
_SOURCE_EXTS = {
    ".py": "python", ".js": "node", ".jsx": "node", ".ts": "node", ".tsx": "node", ".mjs": "node",
    ".cjs": "node", ".rs": "rust", ".go": "go", ".rb": "ruby",
}  # fmt: skip
_JS_TEST = re.compile(r".+\.(test|spec)\.[cm]?[jt]sx?\Z")
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?=[\[<>=!~;@(,\s]|\Z)")
_TOML_AT = re.compile(r"\s*\(at line (\d+), column \d+\)\s*\Z")
_SNIFF_BYTES = 32_768
_SNIFF_FILES = 200
_PY_IMPORT = re.compile(r"^\s*(?:import|from)\s+(pytest|unittest)\b", re.MULTILINE)
_RS_TEST = re.compile(r"#\[(?:cfg\(test\)|test|tokio::test)\]")
_JS_NODE_TEST = re.compile(r"""(?:\bfrom|\brequire\s*\(|\bimport)\s*["']node:test["']""")
_RB_MINITEST = re.compile(r"""^\s*require\s*\(?\s*["']minitest(?:/autorun)?["']""", re.MULTILINE)
_TOO_DEEP = "nested too deeply to read"


def normalise_name(ecosystem: str, name: str) -> str:
    """A dependency name as compared: PEP 503 for Python, ``_`` as ``-`` for Rust, lower case but for Go."""
    name = name.strip()
    if ecosystem == "python":
        return re.sub(r"[-_.]+", "-", name).lower()
    if ecosystem == "rust":
        return name.replace("_", "-").lower()
    if ecosystem == "go":
        return name
    return name.lower()


@attrs.frozen
class Dependency:
    """A declared dependency: its ecosystem, normalised name, and where it is declared (``file [section]``)."""

    ecosystem: str
    name: str
    declared: tuple[str, ...]


@attrs.frozen
class Script:
    """A ``package.json`` script: the manifest, the script's name and its command."""

    manifest: str
    name: str
    command: str


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


# -- reading helpers ------------------------------------------------------------
class _Reader:
    """Reads one repository's manifests into the accumulators of a scan."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.deps: dict[tuple[str, str], set[str]] = {}
        self.configs: set[str] = set()
        self.settings: dict[str, Mapping[str, Any]] = {}
        self.scripts: list[Script] = []
        self.names: dict[str, str] = {}
        self.manifests: set[str] = set()
        self.ecosystems: set[str] = set()
        self.root_ecosystems: set[str] = set()
        self.workspace_patterns: list[str] = []

    # generic
    def text(self, rel: str) -> str:
        path = self.root / rel
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PlanError(f"cannot read: {error_text(exc)}", path=path) from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise PlanError(f"not UTF-8 text (byte {exc.start})", path=path, line=line) from None

    def fail(self, rel: str, problem: str, *, line: int | None = None, field: str | None = None) -> PlanError:
        return PlanError(problem, path=self.root / rel, line=line, field=field)

    def add_dep(self, ecosystem: str, name: str, where: str) -> None:
        self.deps.setdefault((ecosystem, normalise_name(ecosystem, name)), set()).add(where)

    def toml(self, rel: str) -> tuple[dict[str, Any], str]:
        text = self.text(rel)
        try:
            return tomllib.loads(text), text
        except (RecursionError, MemoryError):
            raise self.fail(rel, f"not valid TOML: {_TOO_DEEP}") from None
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = _TOML_AT.search(msg)
            raise self.fail(
                rel, f"not valid TOML: {msg[: m.start()] if m else msg}", line=int(m.group(1)) if m else None
            ) from None

    def ini(self, rel: str) -> tuple[configparser.ConfigParser, str]:
        text = self.text(rel)
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text, source=rel)
        except configparser.MissingSectionHeaderError as exc:
            raise self.fail(rel, "not valid INI: a [section] header must come first", line=exc.lineno) from None
        except configparser.ParsingError as exc:
            line = exc.errors[0][0] if exc.errors else None
            raise self.fail(rel, "not valid INI: a line is neither 'key = value' nor a [section]", line=line) from None
        except configparser.Error as exc:
            raise self.fail(rel, f"not valid INI: {error_text(exc)}", line=getattr(exc, "lineno", None)) from None
        return parser, text

    def requirement(self, rel: str, text: str, entry: Any, field: str, where: str, *, line: int | None = None) -> None:
        """One PEP 508 requirement string; a malformed one names its line."""
        if not isinstance(entry, str):
            raise self.fail(
                rel, f"a requirement is a string, not {entry!r}", line=line or _line_of(text, field), field=field
            )
        m = _REQ_NAME.match(entry)
        if m is None:
            raise self.fail(
                rel, f"not a requirement: {entry.strip()!r}", line=line or _line_with(text, entry), field=field
            )
        self.add_dep("python", m.group(1), where)

    def requirements(self, rel: str, text: str, entries: Any, field: str) -> None:
        if not isinstance(entries, list):
            raise self.fail(rel, "expected a list of requirements", line=_line_of(text, field), field=field)
        for entry in entries:
            if isinstance(entry, dict) and "include-group" in entry:
                continue
            self.requirement(rel, text, entry, field, f"{rel} [{field}]")

    def table(self, rel: str, text: str, data: Mapping[str, Any], dotted: str) -> dict[str, Any] | None:
        """The table at ``dotted`` in ``data`` (None when absent); a non-table there is an error."""
        value: Any = data
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        if not isinstance(value, dict):
            raise self.fail(rel, "expected a table", line=_line_of(text, dotted.rsplit(".", 1)[-1]), field=dotted)
        return value

    # manifests
    def pyproject(self, rel: str) -> None:
        data, text = self.toml(rel)
        project = self.table(rel, text, data, "project") or {}
        if isinstance(project.get("name"), str):
            self.names[rel] = project["name"]
        if "dependencies" in project:
            self.requirements(rel, text, project["dependencies"], "project.dependencies")
        for group, entries in sorted((self.table(rel, text, data, "project.optional-dependencies") or {}).items()):
            self.requirements(rel, text, entries, f"project.optional-dependencies.{group}")
        for group, entries in sorted((self.table(rel, text, data, "dependency-groups") or {}).items()):
            self.requirements(rel, text, entries, f"dependency-groups.{group}")
        poetry = self.table(rel, text, data, "tool.poetry") or {}
        if isinstance(poetry.get("name"), str) and rel not in self.names:
            self.names[rel] = poetry["name"]
        dotted_names = ["tool.poetry.dependencies", "tool.poetry.dev-dependencies"]
        dotted_names += [
            f"tool.poetry.group.{g}.dependencies"
            for g in sorted(self.table(rel, text, data, "tool.poetry.group") or {})
        ]
        sections = [(d, self.table(rel, text, data, d)) for d in dotted_names]
        for dotted, deps in sections:
            for name in sorted(deps or {}):
                if name.lower() != "python":
                    self.add_dep("python", name, f"{rel} [{dotted}]")
        for name, value in sorted((self.table(rel, text, data, "tool") or {}).items()):
            label = f"{rel} [tool.{name}]"
            self.configs.add(label)
            self.settings[label] = value if isinstance(value, dict) else {}
            if name == "pytest" and isinstance(value, dict) and isinstance(value.get("ini_options"), dict):
                self.configs.add(f"{rel} [tool.pytest.ini_options]")

    def requirements_txt(self, rel: str) -> None:
        text = self.text(rel)
        lines = text.splitlines()
        n = 0
        while n < len(lines):
            start = n + 1
            line = lines[n]
            while line.endswith("\\") and n + 1 < len(lines):
                n += 1
                line = line[:-1] + " " + lines[n]
            n += 1
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            if not line:
                continue
            if line.startswith(("-", ".", "/")) or re.match(r"[A-Za-z+]+://", line):
                egg = re.search(r"#egg=([A-Za-z0-9._-]+)", lines[start - 1])
                if egg:
                    self.add_dep("python", egg.group(1), rel)
                continue
            self.requirement(rel, text, line, "requirement", rel, line=start)

    def setup_cfg(self, rel: str, parser: configparser.ConfigParser, text: str) -> None:
        fields = [("options", "install_requires"), ("options", "tests_require")]
        if parser.has_section("options.extras_require"):
            fields += [("options.extras_require", k) for k in sorted(parser["options.extras_require"])]
        if parser.has_section("metadata") and parser["metadata"].get("name"):
            self.names[rel] = parser["metadata"]["name"]
        for section, key in fields:
            raw = parser.get(section, key, fallback="")
            for raw_entry in raw.splitlines():
                entry = re.sub(r"(^|\s)#.*", "", raw_entry).strip()
                if entry and not entry.startswith("file:"):
                    self.requirement(rel, text, entry, f"{section}.{key}", f"{rel} [{section}] {key}")

    def package_json(self, rel: str, *, root: bool) -> None:
        text = self.text(rel)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self.fail(rel, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
        except (RecursionError, MemoryError):
            raise self.fail(rel, f"not valid JSON: {_TOO_DEEP}") from None
        if not isinstance(data, dict):
            raise self.fail(rel, "package.json holds a JSON object", line=1)
        if isinstance(data.get("name"), str):
            self.names[rel] = data["name"]
        for section in ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies"):
            deps = data.get(section, {})
            if not isinstance(deps, dict) or not all(isinstance(v, str) for v in deps.values()):
                raise self.fail(
                    rel, "expected an object of name → version strings", line=_line_of(text, section), field=section
                )
            for name in sorted(deps):
                self.add_dep("node", name, f"{rel} [{section}]")
        scripts = data.get("scripts", {})
        if not isinstance(scripts, dict) or not all(isinstance(v, str) for v in scripts.values()):
            raise self.fail(
                rel, "expected an object of name → command strings", line=_line_of(text, "scripts"), field="scripts"
            )
        self.scripts.extend(Script(rel, k, v) for k, v in scripts.items())
        for key in _PACKAGE_JSON_TOOLS:
            if key in data:
                self.configs.add(f"{rel} [{key}]")
                self.settings[f"{rel} [{key}]"] = data[key] if isinstance(data[key], dict) else {}
        if root and "workspaces" in data:
            ws = data["workspaces"]
            patterns = ws.get("packages") if isinstance(ws, dict) else ws
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise self.fail(
                    rel, "expected a list of folder globs", line=_line_of(text, "workspaces"), field="workspaces"
                )
            self.workspace_patterns.extend(patterns)

    def pnpm_workspace(self, rel: str) -> None:
        text = self.text(rel)
        try:
            data = yamlio.load(text)
        except YamlError as exc:
            raise self.fail(rel, f"not valid YAML: {exc.problem}", line=exc.line) from None
        patterns = data.get("packages", []) if isinstance(data, dict) else None
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise self.fail(rel, "expected a list of folder globs", line=_line_of(text, "packages"), field="packages")
        self.workspace_patterns.extend(p for p in patterns if not p.startswith("!"))

    def cargo_toml(self, rel: str, *, root: bool) -> None:
        data, text = self.toml(rel)
        package = self.table(rel, text, data, "package") or {}
        if isinstance(package.get("name"), str):
            self.names[rel] = package["name"]
        kinds = ("dependencies", "dev-dependencies", "build-dependencies", "workspace.dependencies")
        sections = [(s, self.table(rel, text, data, s)) for s in kinds]
        for target, tdata in sorted((self.table(rel, text, data, "target") or {}).items()):
            if not isinstance(tdata, dict):
                raise self.fail(rel, "expected a table", line=_line_with(text, target), field=f"target.{target}")
            sections += [(f"target.{target}.{s}", tdata.get(s)) for s in ("dependencies", "dev-dependencies")]
        for dotted, deps in sections:
            if deps is None:
                continue
            if not isinstance(deps, dict):
                raise self.fail(rel, "expected a table", line=_line_of(text, dotted), field=dotted)
            for key, spec in sorted(deps.items()):
                name = spec.get("package", key) if isinstance(spec, dict) else key
                self.add_dep("rust", str(name), f"{rel} [{dotted}]")
        workspace = self.table(rel, text, data, "workspace") or {}
        if root and "members" in workspace:
            members = workspace["members"]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise self.fail(
                    rel, "expected a list of folder globs", line=_line_of(text, "members"), field="workspace.members"
                )
            self.workspace_patterns.extend(members)

    def go_mod(self, rel: str) -> None:
        text = self.text(rel)
        block: str | None = None
        for n, raw in enumerate(text.splitlines(), 1):
            indirect = "// indirect" in raw
            line = raw.split("//", 1)[0].strip()
            if not line:
                continue
            if block is not None:
                if line == ")":
                    block = None
                elif block == "require":
                    self._go_require(rel, n, line, indirect)
                continue
            if line.endswith("("):
                word, rest = line[:-1].strip(), "("
            else:
                word, _, rest = line.replace("\t", " ").partition(" ")
                rest = rest.strip()
            if rest == "(":
                block = word
            elif word == "module":
                self.names[rel] = rest.strip('"')
            elif word == "require":
                self._go_require(rel, n, rest, indirect)
        if block is not None:
            raise self.fail(rel, f"the {block} ( … ) block is not closed", line=len(text.splitlines()), field=block)

    def _go_require(self, rel: str, n: int, spec: str, indirect: bool) -> None:
        parts = spec.split()
        if len(parts) != 2 or not parts[1].startswith("v"):
            raise self.fail(rel, f"expected '<module path> <version>', not {spec!r}", line=n, field="require")
        if not indirect:  # an indirect requirement is not a choice the project made
            self.add_dep("go", parts[0].strip('"'), f"{rel} [require]")

    def go_work(self, rel: str) -> None:
        block = False
        for raw in self.text(rel).splitlines():
            line = raw.split("//", 1)[0].strip()
            if block:
                if line == ")":
                    block = False
                elif line:
                    self.workspace_patterns.append(line.strip('"'))
            elif line in ("use (", "use("):
                block = True
            elif line.startswith("use "):
                self.workspace_patterns.append(line[4:].strip().strip('"'))

    def gemfile(self, rel: str) -> None:
        stack: list[str | None] = []
        for n, raw in enumerate(self.text(rel).splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            group = re.match(r"group\s*\(?\s*(.+?)\)?\s+do(\s*\|.*\|)?\Z", line)
            if group:
                stack.append(", ".join(sorted(g.strip() for g in group.group(1).split(","))))
            elif re.search(r"\sdo(\s*\|[^|]*\|)?\Z", line) or re.match(r"(if|unless|case|begin|while|until)\b", line):
                stack.append(None)
            elif line == "end":
                if stack:
                    stack.pop()
            elif re.match(r"gem\b", line):
                m = re.match(r"gem\s*\(?\s*[\"']([^\"']+)[\"']", line)
                if m is None:
                    raise self.fail(rel, f'expected gem "<name>", not {line!r}', line=n, field="gem")
                groups = [g for g in stack if g is not None]
                self.add_dep("ruby", m.group(1), f"{rel} [group {groups[-1]}]" if groups else rel)


def _line_of(text: str, key: str) -> int | None:
    """The first line of ``text`` where ``key`` (its last dotted part) is a key or a table header."""
    last = key.rsplit(".", 1)[-1]
    pattern = re.compile(rf"^\s*(\[[^\]]*\.)?\[?\s*[\"']?{re.escape(last)}[\"']?\s*[=:\]]")
    return next((n for n, line in enumerate(text.splitlines(), 1) if pattern.match(line)), None)


def _line_with(text: str, needle: str) -> int | None:
    """The first line of ``text`` that contains ``needle``."""
    return next((n for n, line in enumerate(text.splitlines(), 1) if needle in line), None)


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
    by_dir: dict[str, list[str]] = {}
    for rel in files:
        parent, _, name = rel.rpartition("/")
        by_dir.setdefault(parent, []).append(name)
    reader = _Reader(root)

    def read_dir(base: str, *, is_root: bool) -> None:
        prefix = f"{base}/" if base else ""
        for name, ecosystem in _MANIFESTS.items():
            rel = prefix + name
            if rel not in file_set:
                continue
            reader.manifests.add(rel)
            reader.ecosystems.add(ecosystem)
            if is_root:
                reader.root_ecosystems.add(ecosystem)
            if name == "pyproject.toml":
                reader.pyproject(rel)
            elif name == "package.json":
                reader.package_json(rel, root=is_root)
            elif name == "Cargo.toml":
                reader.cargo_toml(rel, root=is_root)
            elif name == "go.mod":
                reader.go_mod(rel)
            elif name == "Gemfile":
                reader.gemfile(rel)
        here = by_dir.get(base, [])
        reqs = [prefix + n for n in here if fnmatch.fnmatchcase(n, "requirements*.txt")]
        reqs += [f"{prefix}requirements/{n}" for n in by_dir.get(f"{prefix}requirements", []) if n.endswith(".txt")]
        for rel in reqs:
            reader.manifests.add(rel)
            reader.ecosystems.add("python")
            if is_root:
                reader.root_ecosystems.add("python")
            reader.requirements_txt(rel)
        for name in _INI_CONFIGS:
            rel = prefix + name
            if rel not in file_set:
                continue
            parser, text = reader.ini(rel)
            if name == "setup.cfg":
                reader.setup_cfg(rel, parser, text)
            else:
                reader.configs.add(rel)
            for section in parser.sections():
                reader.configs.add(f"{rel} [{section}]")
                reader.settings[f"{rel} [{section}]"] = dict(parser[section])
        reader.configs.update(prefix + n for n in here if any(fnmatch.fnmatchcase(n, p) for p in _CONFIG_FILES))
        if is_root and f"{prefix}pnpm-workspace.yaml" in file_set:
            reader.pnpm_workspace(f"{prefix}pnpm-workspace.yaml")
        if is_root and f"{prefix}go.work" in file_set:
            reader.go_work(f"{prefix}go.work")

    read_dir("", is_root=True)
    members = {d for p in reader.workspace_patterns for d in _glob_dirs(p, dirs)}
    members |= {d for d in dirs if d.split("/")[0] in _MEMBER_DIRS and d.count("/") == 1}
    members = {d for d in members if any(f"{d}/{m}" in file_set for m in _MANIFESTS)}
    for member in sorted(members):
        read_dir(member, is_root=False)

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
