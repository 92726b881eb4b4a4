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

The code is read too, bounded like the walk (the first :data:`MAX_SOURCE_FILES`
source files of each ecosystem outside the tests, shallowest first, their first
:data:`MAX_SOURCE_BYTES`), for what it already uses:

* ``imports`` (:class:`Import`): the packages Python code imports at module level
  (``import x``, ``from x import y``, outside functions; the project's own packages
  and relative imports left out), named as their distribution is where the two differ
  (``yaml`` → ``pyyaml``, ``PIL`` → ``pillow``), the standard library marked
  ``builtin``; and the packages JavaScript/TypeScript imports or requires (a scope
  kept: ``@scope/pkg``; Node's built-ins as ``node:fs``).  A few sites each, with
  their line.
* ``entry_points`` (:class:`EntryPoint`): the commands the manifests declare
  (``[project.scripts]``, ``setup.cfg``/``setup.py`` ``console_scripts``,
  ``package.json`` ``bin`` …) and the Python files that run as programs
  (``if __name__ == "__main__":``, ``__main__.py``), each with the argument parser
  the code it runs imports (``getopt``, ``argparse``, ``click``, ``typer``,
  ``docopt``, ``commander``, ``yargs`` …) and where: the target function first,
  then its module, then — one step — the project's own module the target comes from.

This is one idea — a bounded, deterministic reading of what a repository declares,
configures, lays out and imports — which is why the module is long.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
import stat
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import PlanError, error_text
from maestro.decide.manifests import MANIFESTS, EntryPoint, ManifestReader, Script, normalise_name
from maestro.git.tree import TreeWalk

__all__ = [
    "ECOSYSTEMS",
    "MAX_DEPTH",
    "MAX_FILES",
    "MAX_SOURCE_BYTES",
    "MAX_SOURCE_FILES",
    "Dependency",
    "EntryPoint",
    "Import",
    "RepoFacts",
    "Script",
    "normalise_name",
    "scan",
]

log = logging.getLogger(__name__)

ECOSYSTEMS = ("python", "node", "rust", "go", "ruby")
"""The ecosystems a scan recognises."""

MAX_DEPTH = 4
"""Folders deeper than this many levels below the root are not walked."""

MAX_FILES = 5000
"""The walk stops listing files after this many (:attr:`RepoFacts.truncated` says so)."""

MAX_SOURCE_FILES = 400
"""The source files of each ecosystem whose imports are read (shallowest first)."""

MAX_SOURCE_BYTES = 262_144
"""How much of each source file is read for its imports."""

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


@attrs.frozen
class Import:
    """Where the code imports a package: the ecosystem, the name it has as a dependency, the module as written, the
    file and line, and whether it is the language's own (Python's standard library, Node's built-ins)."""

    ecosystem: str
    name: str
    module: str
    path: str
    line: int
    builtin: bool = False

    @property
    def where(self) -> str:
        """``path:line``."""
        return f"{self.path}:{self.line}"


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
    imports: tuple[Import, ...] = ()
    entry_points: tuple[EntryPoint, ...] = ()

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

    def imported(self, ecosystem: str, name: str) -> tuple[Import, ...]:
        """Where the code of ``ecosystem`` imports the package ``name`` (compared normalised)."""
        key = normalise_name(ecosystem, name)
        return tuple(i for i in self.imports if i.ecosystem == ecosystem and normalise_name(ecosystem, i.name) == key)

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


# -- the code: imports and entry points -------------------------------------------
_PY_PARSERS = {
    "argparse": "argparse", "optparse": "optparse", "getopt": "getopt", "click": "click", "typer": "typer",
    "docopt": "docopt", "fire": "fire", "cyclopts": "cyclopts", "cleo": "cleo", "plac": "plac", "clize": "clize",
    "cloup": "cloup", "rich_click": "rich-click", "asyncclick": "asyncclick", "tap": "typed-argument-parser",
}  # fmt: skip
"""A module a Python program imports to read its arguments → the parser, named as its dependency is."""
_JS_PARSERS = frozenset({
    "commander", "yargs", "@oclif/core", "oclif", "cac", "citty", "meow", "minimist", "arg", "mri", "sade",
    "clipanion", "yargs-parser", "command-line-args", "@caporal/core", "caporal", "gluegun",
})  # fmt: skip
_PY_DISTRIBUTIONS = {
    "yaml": "pyyaml", "attr": "attrs", "bs4": "beautifulsoup4", "PIL": "pillow", "sklearn": "scikit-learn",
    "skimage": "scikit-image", "cv2": "opencv-python", "dateutil": "python-dateutil", "dotenv": "python-dotenv",
    "jwt": "pyjwt", "jose": "python-jose", "magic": "python-magic", "serial": "pyserial", "usb": "pyusb",
    "zmq": "pyzmq", "git": "gitpython", "Crypto": "pycryptodome", "OpenSSL": "pyopenssl", "MySQLdb": "mysqlclient",
    "docx": "python-docx", "pptx": "python-pptx", "slugify": "python-slugify", "multipart": "python-multipart",
    "ldap": "python-ldap", "gi": "pygobject", "win32api": "pywin32", "grpc": "grpcio", "fitz": "pymupdf",
    "telegram": "python-telegram-bot", "socketio": "python-socketio", "kafka": "kafka-python",
    "google.protobuf": "protobuf", "ruamel.yaml": "ruamel.yaml", "pkg_resources": "setuptools", "_pytest": "pytest",
    "tap": "typed-argument-parser", "rich_click": "rich-click", "jinja2": "jinja2", "websocket": "websocket-client",
    "Levenshtein": "levenshtein", "markdown": "markdown", "nacl": "pynacl", "psycopg": "psycopg",
}  # fmt: skip
"""Modules whose distribution has another name (``import yaml`` is the dependency ``pyyaml``)."""
_NODE_BUILTINS = frozenset({
    "assert", "async_hooks", "buffer", "child_process", "cluster", "console", "constants", "crypto", "dgram",
    "diagnostics_channel", "dns", "domain", "events", "fs", "http", "http2", "https", "inspector", "module", "net",
    "os", "path", "perf_hooks", "process", "punycode", "querystring", "readline", "repl", "stream",
    "string_decoder", "timers", "tls", "trace_events", "tty", "url", "util", "v8", "vm", "wasi", "worker_threads",
    "zlib",
})  # fmt: skip
_SITES = 3  # import sites kept for each package
_FOLLOW = 5  # the project's own imports followed (one step) when looking for a parser
_TEST_DIRS = frozenset({"tests", "test", "testing", "__tests__"})
_NOT_SOURCE = frozenset({"setup.py", "conftest.py", "noxfile.py", "fabfile.py"})
_PY_MAIN = re.compile(r"""if\s*\(?\s*(?:__name__\s*==\s*(['"])__main__\1|(['"])__main__\2\s*==\s*__name__)\s*\)?\s*:""")
_PY_TOKEN = re.compile(r"""#|\"\"\"|'''|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?""")
_PY_FROM = re.compile(r"from\s+(\.*)\s*([\w.]*)\s+import\s+(.*)", re.DOTALL)
_JS_IMPORT = re.compile(r"""(?:\bfrom|\bimport\s*\(?|\brequire\s*\()\s*["']([^"'\n]+)["']""")
_JS_COMMENT = re.compile(r"/\*.*?\*/|^\s*//[^\n]*", re.DOTALL | re.MULTILINE)
_JS_EXTS = ("", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx", "/index.js", "/index.ts")


@attrs.frozen
class _PyImport:
    """One import statement of a Python file: the module, its line, the level of a relative import, the names a
    ``from`` import takes, and the top-level function (or class) it sits in (None: module level)."""

    module: str
    line: int
    level: int = 0
    names: tuple[str, ...] = ()
    scope: str | None = None


def _py_read(text: str) -> tuple[list[_PyImport], int | None]:
    """The imports of Python ``text`` and the line of its ``if __name__ == "__main__":``, read line by line.

    Lines inside triple-quoted strings are skipped; an import is at module level unless the last statement at
    column 0 before it opened a ``def``, ``async def`` or ``class`` (a ``try:``/``if`` block stays module level).
    """
    imports: list[_PyImport] = []
    main: int | None = None
    scope: str | None = None
    quote: str | None = None  # the triple quote of the string a line starts in
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        line = lines[n]
        n += 1
        if quote is not None:  # inside a triple-quoted string: only its closing quote matters
            if quote in line:
                quote = _quote_after(line, quote)
            continue
        if '"""' in line or "'''" in line:  # else no string that spans lines opens here
            quote = _quote_after(line, None)
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(line) == len(stripped):  # a statement at column 0 says where the next lines are
            head = re.match(r"(?:async\s+)?(?:def|class)\s+(\w+)", stripped)
            if head:
                scope = head.group(1)
            elif not stripped.startswith(("@", ")", "]", "}")):
                scope = None
                if main is None and _PY_MAIN.match(stripped):
                    main = n
        if stripped.startswith("import "):
            for part in stripped[7:].split("#", 1)[0].split(";", 1)[0].split(","):
                module = part.split(" as ", 1)[0].strip()
                if re.fullmatch(r"[A-Za-z_][\w.]*", module):
                    imports.append(_PyImport(module, n, scope=scope))
        elif stripped.startswith("from "):
            statement, first = stripped.split("#", 1)[0], n
            while "(" in statement and ")" not in statement and n < len(lines):  # from x import (a,\n b)
                statement += " " + lines[n].split("#", 1)[0]
                n += 1
            m = _PY_FROM.match(statement.strip())
            if m is not None:
                names = tuple(
                    w.split(" as ", 1)[0].strip() for w in m.group(3).strip().strip("()\\").split(",") if w.strip()
                )
                imports.append(_PyImport(m.group(2), first, len(m.group(1)), names, scope))
    return imports, main


def _quote_after(line: str, quote: str | None) -> str | None:
    """The triple-quoted string still open at the end of ``line`` (``quote``: the one open at its start).

    Outside a triple-quoted string, one-line strings are stepped over (a ``"\'\'\'"`` opens nothing) and a ``#``
    ends the line.
    """
    at = 0
    while True:
        if quote is not None:
            end = line.find(quote, at)
            if end < 0:
                return quote
            at, quote = end + 3, None
            continue
        m = _PY_TOKEN.search(line, at)
        if m is None or m.group() == "#":
            return None
        at = m.end()
        if m.group() in ('"""', "'''"):
            quote = m.group()


def _py_distribution(module: str) -> tuple[str, bool]:
    """The dependency name a Python module is installed by, and whether it is the standard library's."""
    top = module.split(".", 1)[0]
    if top in sys.stdlib_module_names:
        return top, True
    parts = module.split(".")
    if top == "google" and len(parts) > 2 and parts[1] == "cloud":
        return f"google-cloud-{parts[2]}", False
    for size in (2, 1):
        key = ".".join(parts[:size])
        if key in _PY_DISTRIBUTIONS:
            return normalise_name("python", _PY_DISTRIBUTIONS[key]), False
    return normalise_name("python", top), False


def _js_package(spec: str) -> tuple[str, bool] | None:
    """The package a JavaScript import names (``@scope/pkg``, ``node:fs``) and whether it is Node's; None: a path."""
    if spec.startswith((".", "/", "#", "~")) or "://" in spec or not spec.strip():
        return None
    first = spec.split("/", 1)[0]
    if first.startswith("node:"):
        return first, True
    if first in _NODE_BUILTINS:
        return f"node:{first}", True
    if first.startswith("@"):
        return "/".join(spec.split("/")[:2]).lower(), False
    return first.lower(), False


def _js_read(text: str) -> list[tuple[str, int]]:
    """The modules JavaScript/TypeScript ``text`` imports, requires or re-exports, with their lines (comments out)."""
    text = _JS_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return [(m.group(1), text.count("\n", 0, m.start(1)) + 1) for m in _JS_IMPORT.finditer(text)]


class _CodeReader:
    """Reads a repository's source files (cached, bounded) for their imports and the parsers its programs use."""

    def __init__(self, root: Path, files: Iterable[str], bases: Iterable[str]) -> None:
        self.root = root
        self.files = set(files)
        self.bases = list(bases)
        self._py: dict[str, tuple[list[_PyImport], int | None]] = {}
        self._text: dict[str, str] = {}
        roots = [b for base in self.bases for b in (base, f"{base}src/")]
        self.first_party = {
            rel[len(r) :].split("/", 1)[0].removesuffix(".py")
            for rel in self.files
            for r in roots
            if rel.startswith(r) and rel.endswith(".py") and rel[len(r) :].count("/") <= 1
        }

    def text(self, rel: str) -> str:
        if rel not in self._text:
            try:
                with open(self.root / rel, encoding="utf-8", errors="replace") as fh:
                    self._text[rel] = fh.read(MAX_SOURCE_BYTES)
            except OSError as exc:
                log.debug("cannot read %s: %s", rel, exc)
                self._text[rel] = ""
        return self._text[rel]

    def own(self, rel: str, top: str) -> bool:
        """Whether ``top`` is the project's own module for ``rel``: a package of the project, or beside ``rel``."""
        folder = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
        return (
            top in self.first_party or f"{folder}{top}.py" in self.files or f"{folder}{top}/__init__.py" in self.files
        )

    def python(self, rel: str) -> tuple[list[_PyImport], int | None]:
        if rel not in self._py:
            self._py[rel] = _py_read(self.text(rel))
        return self._py[rel]

    # imports
    def imports(self, sources: Mapping[str, list[str]]) -> list[Import]:
        sites: dict[tuple[str, str], list[Import]] = {}
        for rel in sources.get("python", []):
            for imp in self.python(rel)[0]:
                top = imp.module.split(".", 1)[0]
                if imp.scope is not None or imp.level or not top or top == "__future__" or self.own(rel, top):
                    continue
                name, builtin = _py_distribution(imp.module)
                sites.setdefault(("python", name), []).append(
                    Import("python", name, imp.module, rel, imp.line, builtin)
                )
        for rel in sources.get("node", []):
            for spec, line in _js_read(self.text(rel)):
                package = _js_package(spec)
                if package is not None:
                    sites.setdefault(("node", package[0]), []).append(
                        Import("node", package[0], spec, rel, line, package[1])
                    )
        return [i for _, found in sorted(sites.items()) for i in sorted(found, key=lambda i: (i.path, i.line))[:_SITES]]

    # entry points
    def python_module(self, dotted: str, near: str = "") -> str | None:
        """The file of the Python module ``dotted`` (``pkg.cli``): beside ``near`` first, then at each base."""
        path = dotted.replace(".", "/")
        for base in dict.fromkeys([near, *self.bases]):
            for rel in (f"{base}{path}.py", f"{base}{path}/__init__.py", f"{base}src/{path}.py",
                        f"{base}src/{path}/__init__.py"):  # fmt: skip
                if rel in self.files:
                    return rel
        return None

    def python_parser(self, rel: str, function: str | None, *, followed: bool = False) -> tuple[str, str, int] | None:
        """The parser ``rel`` imports: in ``function`` (what a command runs), at module level, then — in the file a
        command or a ``__main__`` names itself — anywhere.  Else, one step: the project's own module that a
        ``from … import name`` takes ``function`` from (any name, for a whole file), in that name or at module level.
        """
        imports, _main = self.python(rel)
        groups = [[i for i in imports if i.scope == function]] if function else []
        groups.append([i for i in imports if i.scope is None])
        if not followed:
            groups.append(imports)
        for group in groups:
            for imp in group:
                parser = _PY_PARSERS.get(imp.module.split(".", 1)[0]) if not imp.level else None
                if parser is not None:
                    return parser, rel, imp.line
        if followed:
            return None
        sources = [i for i in imports if i.names and (function is None or function in i.names)][:_FOLLOW]
        for imp in sources:
            for name in [function] if function is not None else imp.names:
                for target in self._own_modules(rel, imp, name):
                    found = self.python_parser(target, name, followed=True)
                    if found is not None:
                        return found
        return None

    def _own_modules(self, rel: str, imp: _PyImport, name: str) -> list[str]:
        """The files of the project's own module a ``from`` import takes ``name`` from (``from .cli import main``),
        or that ``name`` is itself (``from . import cli``)."""
        dotted = [imp.module, f"{imp.module}.{name}"] if imp.module else [name]
        if imp.level:
            folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
            for _ in range(imp.level - 1):
                folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
            prefix = f"{folder}/" if folder else ""
            found = [self.python_module(d, prefix) for d in dotted]
            return [f for f in found if f is not None and f.startswith(prefix) and f != rel]
        if imp.module.split(".", 1)[0] not in self.first_party:
            return []
        found = [self.python_module(d) for d in dotted]
        return [f for f in found if f is not None and f != rel]

    def js_parser(self, rel: str, *, follow: bool = True) -> tuple[str, str, int] | None:
        """The argument parser a JavaScript file imports (or Node's ``util.parseArgs``), or — one step — the parser
        of a file of the project it imports by a relative path."""
        text = self.text(rel)
        found = _js_read(text)
        for spec, line in found:
            package = _js_package(spec)
            if package is not None and package[0] in _JS_PARSERS:
                return package[0], rel, line
            if package is not None and package[0] == "node:util" and "parseArgs" in text:
                return "util.parseArgs", rel, line
        if follow:
            folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
            for spec, _line in [f for f in found if f[0].startswith(".")][:_FOLLOW]:
                target = os.path.normpath(os.path.join(folder, spec)).replace(os.sep, "/")
                hit = next((target + e for e in _JS_EXTS if target + e in self.files), None)
                result = self.js_parser(hit, follow=False) if hit is not None and hit != rel else None
                if result is not None:
                    return result
        return None

    def how_to_run(self, rel: str) -> str:
        """How a Python file runs as a program: ``python -m pkg`` (its ``__main__.py``), ``python -m pkg.mod`` (a
        module of a package), ``python path`` (a script, or a package's ``__init__.py``)."""
        folder, _, name = rel.rpartition("/")
        if name == "__init__.py" or (folder and f"{folder}/__init__.py" not in self.files):
            return f"python {rel}"
        module = rel.removesuffix(".py").removesuffix("/__main__")
        for base in sorted(self.bases, key=len, reverse=True):
            if base and module.startswith(base):
                module = module[len(base) :]
                break
        return f"python -m {module.removeprefix('src/').replace('/', '.')}"

    def entry_points(self, declared: Iterable[EntryPoint], sources: Mapping[str, list[str]]) -> list[EntryPoint]:
        """The declared commands with their parsers, and the Python files that run as programs."""
        found: list[EntryPoint] = []
        for declared_ep in declared:
            parser: tuple[str, str, int] | None = None
            if declared_ep.ecosystem == "python":
                module, _, function = declared_ep.target.partition(":")
                near = declared_ep.path.rsplit("/", 1)[0] + "/" if "/" in declared_ep.path else ""
                file = self.python_module(module.strip(), near)
                if file is not None:
                    parser = self.python_parser(file, function.split(".", 1)[0].strip() or None)
            elif declared_ep.ecosystem == "node" and declared_ep.target in self.files:
                parser = self.js_parser(declared_ep.target)
            found.append(_with_parser(declared_ep, parser))
        for rel in sources.get("python", []):
            _imports, main = self.python(rel)
            if main is None and rel.rsplit("/", 1)[-1] != "__main__.py":
                continue
            main_ep = EntryPoint("python", "__main__", self.how_to_run(rel), rel, rel, main or 1)
            found.append(_with_parser(main_ep, self.python_parser(rel, None)))
        return sorted(found, key=lambda e: (not e.declared, e.path, e.line or 0, e.name))


def _with_parser(entry: EntryPoint, parser: tuple[str, str, int] | None) -> EntryPoint:
    if parser is None:
        return entry
    return attrs.evolve(entry, parser=parser[0], parser_path=parser[1], parser_line=parser[2])


def _sources(files: Iterable[str], test_files: Iterable[str]) -> dict[str, list[str]]:
    """The source files of each ecosystem whose code is read: outside the tests, shallowest first, capped."""
    tests = set(test_files)
    by: dict[str, list[str]] = {}
    for rel in files:
        ecosystem = _SOURCE_EXTS.get(os.path.splitext(rel)[1])
        parts = rel.split("/")
        if ecosystem is None or rel in tests or parts[-1] in _NOT_SOURCE or _TEST_DIRS & set(parts[:-1]):
            continue
        by.setdefault(ecosystem, []).append(rel)
    return {e: sorted(found, key=lambda f: (f.count("/"), f))[:MAX_SOURCE_FILES] for e, found in by.items()}


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
    sources = _sources(files, test_files)
    code = _CodeReader(root, files, bases)
    imports = code.imports(sources)
    entry_points = code.entry_points(reader.entry_points, sources)
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
        imports=tuple(imports),
        entry_points=tuple(entry_points),
    )
