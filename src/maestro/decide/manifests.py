"""A repository's manifests and the configuration of its tools, read for a scan (:mod:`maestro.decide.repofacts`).

:class:`ManifestReader` reads, folder by folder (:meth:`ManifestReader.read_folder`),
``pyproject.toml``, ``requirements*.txt`` (and ``requirements/*.txt``), ``setup.cfg``,
``package.json``, ``Cargo.toml``, ``go.mod`` and ``Gemfile``, at the root also
``pnpm-workspace.yaml`` and ``go.work``, and the INI files of the usual tools
(``tox.ini``, ``pytest.ini``, ``.flake8``, ``mypy.ini``).  It gathers the declared
dependencies (names compared as :func:`normalise_name` says), the configuration files
and sections with their settings, ``package.json`` scripts (:class:`Script`), project
names, the monorepo's workspace patterns, and the commands the project declares
(:class:`EntryPoint`: ``[project.scripts]``, ``[project.gui-scripts]``,
``[tool.poetry.scripts]``, ``setup.cfg`` ``console_scripts``/``gui_scripts``, the
``console_scripts`` of a ``setup.py``, ``package.json`` ``bin``);
:func:`~maestro.decide.repofacts.scan` turns them into a
:class:`~maestro.decide.repofacts.RepoFacts`.

A malformed manifest raises :class:`~maestro.PlanError` naming the file, the line
when known and the field; so does a file nested too deeply to parse or not UTF-8.

The module holds one idea — reading every manifest format a scan knows into one set
of accumulators — which is why it is long.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from maestro.core import yamlio
from maestro.core.errors import PlanError, YamlError, error_text

__all__ = ["MANIFESTS", "EntryPoint", "ManifestReader", "Script", "normalise_name"]

MANIFESTS = {
    "pyproject.toml": "python",
    "setup.cfg": "python",
    "setup.py": "python",
    "package.json": "node",
    "Cargo.toml": "rust",
    "go.mod": "go",
    "Gemfile": "ruby",
}
"""The manifest files read in a folder, with the ecosystem each says is there (``requirements*.txt`` too: Python)."""

_CONFIG_FILES = (
    "pytest.ini", "tox.ini", "conftest.py", "ruff.toml", ".ruff.toml", ".flake8", "mypy.ini", ".mypy.ini",
    "pyrightconfig.json", ".bandit", ".pylintrc", "tsconfig.json", ".eslintrc", ".eslintrc.*", "eslint.config.*",
    "vitest.config.*", "vitest.workspace.*", "jest.config.*", ".mocharc.*", "biome.json", "package-lock.json",
    "yarn.lock", "pnpm-lock.yaml", "pnpm-workspace.yaml", "go.work", "go.sum", ".golangci.*", "Cargo.lock",
    "clippy.toml", ".clippy.toml", "Gemfile.lock", ".rubocop.yml", ".rspec", "Rakefile", "poetry.lock", "uv.lock",
)  # fmt: skip
_INI_CONFIGS = ("setup.cfg", "tox.ini", "pytest.ini", ".flake8", "mypy.ini", ".mypy.ini")
_PACKAGE_JSON_TOOLS = ("jest", "eslintConfig", "prettier", "stylelint", "babel")
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?=[\[<>=!~;@(,\s]|\Z)")
_TOML_AT = re.compile(r"\s*\(at line (\d+), column \d+\)\s*\Z")
_TOO_DEEP = "nested too deeply to read"
_SETUP_PY_SCRIPT = re.compile(
    r"""["']\s*([A-Za-z0-9][\w.-]*)\s*=\s*([A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?)\s*(?:\[[^\]]*\])?\s*["']"""
)
_SETUP_PY_BYTES = 262_144


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
class Script:
    """A ``package.json`` script: the manifest, the script's name and its command."""

    manifest: str
    name: str
    command: str


@attrs.frozen
class EntryPoint:
    """A command the project declares, or a Python file it runs as a program.

    ``kind`` says how: ``project.scripts``, ``project.gui-scripts``, ``tool.poetry.scripts``,
    ``console_scripts``/``gui_scripts`` (``setup.cfg`` or ``setup.py``), ``bin``
    (``package.json``) or ``__main__`` (a Python file with ``if __name__ == "__main__":``, or a
    package's ``__main__.py``).  ``name`` is the command (``tabulate``; ``python -m app`` for a
    ``__main__``), ``target`` what it runs (``tabulate:_main``, ``bin/cli.js``, the file), and
    ``path``/``line`` where it is declared.  ``parser`` is the argument parser the code it runs
    uses (``getopt``, ``argparse``, ``click``, ``typer``, ``docopt``, ``commander`` …, as a
    dependency is named; empty when none was seen) and ``parser_path``/``parser_line`` where it
    is imported.  The manifests give the declaration; the scan finds the parser.
    """

    ecosystem: str
    kind: str
    name: str
    target: str
    path: str
    line: int | None = None
    parser: str = ""
    parser_path: str = ""
    parser_line: int | None = None

    @property
    def declared(self) -> bool:
        """A command a manifest declares (not a file that merely runs as ``__main__``)."""
        return self.kind != "__main__"

    @property
    def where(self) -> str:
        """``path:line`` of the declaration (``path`` alone when the line is not known)."""
        return f"{self.path}:{self.line}" if self.line else self.path

    @property
    def parser_where(self) -> str:
        """``path:line`` where the parser is imported (empty when no parser was seen)."""
        if not self.parser_path:
            return ""
        return f"{self.parser_path}:{self.parser_line}" if self.parser_line else self.parser_path


class ManifestReader:
    """Reads one repository's manifests into the accumulators of a scan.

    ``files`` are the repository's files (relative, POSIX style) as the scan's walk listed them.
    """

    def __init__(self, root: Path, files: Sequence[str]) -> None:
        self.root = root
        self.files = set(files)
        self.by_dir: dict[str, list[str]] = {}
        for rel in files:
            parent, _, name = rel.rpartition("/")
            self.by_dir.setdefault(parent, []).append(name)
        self.deps: dict[tuple[str, str], set[str]] = {}
        self.configs: set[str] = set()
        self.settings: dict[str, Mapping[str, Any]] = {}
        self.scripts: list[Script] = []
        self.names: dict[str, str] = {}
        self.manifests: set[str] = set()
        self.ecosystems: set[str] = set()
        self.root_ecosystems: set[str] = set()
        self.workspace_patterns: list[str] = []
        self.entry_points: list[EntryPoint] = []

    def read_folder(self, base: str, *, is_root: bool) -> None:
        """Read the manifests and tool configuration of folder ``base`` (``""``: the root)."""
        prefix = f"{base}/" if base else ""
        for name, ecosystem in MANIFESTS.items():
            rel = prefix + name
            if rel not in self.files:
                continue
            self.manifests.add(rel)
            self.ecosystems.add(ecosystem)
            if is_root:
                self.root_ecosystems.add(ecosystem)
            if name == "pyproject.toml":
                self.pyproject(rel)
            elif name == "package.json":
                self.package_json(rel, root=is_root)
            elif name == "Cargo.toml":
                self.cargo_toml(rel, root=is_root)
            elif name == "go.mod":
                self.go_mod(rel)
            elif name == "Gemfile":
                self.gemfile(rel)
            elif name == "setup.py":
                self.setup_py(rel)
        here = self.by_dir.get(base, [])
        reqs = [prefix + n for n in here if fnmatch.fnmatchcase(n, "requirements*.txt")]
        reqs += [
            f"{prefix}requirements/{n}" for n in self.by_dir.get(f"{prefix}requirements", []) if n.endswith(".txt")
        ]
        for rel in reqs:
            self.manifests.add(rel)
            self.ecosystems.add("python")
            if is_root:
                self.root_ecosystems.add("python")
            self.requirements_txt(rel)
        for name in _INI_CONFIGS:
            rel = prefix + name
            if rel not in self.files:
                continue
            parser, text = self.ini(rel)
            if name == "setup.cfg":
                self.setup_cfg(rel, parser, text)
            else:
                self.configs.add(rel)
            for section in parser.sections():
                self.configs.add(f"{rel} [{section}]")
                self.settings[f"{rel} [{section}]"] = dict(parser[section])
        self.configs.update(prefix + n for n in here if any(fnmatch.fnmatchcase(n, p) for p in _CONFIG_FILES))
        if is_root and f"{prefix}pnpm-workspace.yaml" in self.files:
            self.pnpm_workspace(f"{prefix}pnpm-workspace.yaml")
        if is_root and f"{prefix}go.work" in self.files:
            self.go_work(f"{prefix}go.work")

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
        for dotted in ("project.scripts", "project.gui-scripts", "tool.poetry.scripts"):
            for name, value in (self.table(rel, text, data, dotted) or {}).items():
                target = value.get("reference", value.get("callable")) if isinstance(value, dict) else value
                if not isinstance(target, str) or (isinstance(value, dict) and dotted != "tool.poetry.scripts"):
                    line = _line_of(text, name)
                    raise self.fail(
                        rel, f"a script is 'module:function', not {value!r}", line=line, field=f"{dotted}.{name}"
                    )
                self.add_entry(EntryPoint("python", dotted, name, target.strip(), rel), text)
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
        for kind in ("console_scripts", "gui_scripts"):
            for raw_entry in parser.get("options.entry_points", kind, fallback="").splitlines():
                name, eq, target = raw_entry.partition("=")
                if eq and name.strip() and target.strip():
                    self.add_entry(EntryPoint("python", kind, name.strip(), target.split("[")[0].strip(), rel), text)
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
        self.package_bin(rel, text, data)
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

    def package_bin(self, rel: str, text: str, data: Mapping[str, Any]) -> None:
        """``bin``: a path (the command is the package's name, scope dropped) or an object of command → path."""
        if "bin" not in data:
            return
        value = data["bin"]
        if isinstance(value, str):  # the command is the package's name (npm needs one; else the file's)
            name = data.get("name") if isinstance(data.get("name"), str) else None
            value = {(name or value.rsplit("/", 1)[-1].split(".", 1)[0]).rsplit("/", 1)[-1]: value}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(rel, "expected a path, or an object of command → path", line=_line_of(text, "bin"),
                            field="bin")  # fmt: skip
        folder = rel.rpartition("/")[0]
        for name, target in value.items():
            path = target.strip().removeprefix("./")
            self.add_entry(EntryPoint("node", "bin", name, f"{folder}/{path}" if folder else path, rel), text, target)

    def setup_py(self, rel: str) -> None:
        """The ``console_scripts``/``gui_scripts`` of a ``setup.py`` (read, never run: its literal strings)."""
        try:
            with open(self.root / rel, encoding="utf-8", errors="replace") as fh:
                text = fh.read(_SETUP_PY_BYTES)
        except OSError:
            return
        for kind in ("console_scripts", "gui_scripts"):
            at = text.find(kind)
            start = text.find("[", at) if at >= 0 else -1
            if start < 0:
                continue
            for m in _SETUP_PY_SCRIPT.finditer(text, start, _list_end(text, start)):
                self.add_entry(EntryPoint("python", kind, m.group(1), m.group(2), rel), text)

    def add_entry(self, entry: EntryPoint, text: str, written: str | None = None) -> None:
        """A declared command, with the first line of ``text`` that holds its name and what it runs (as ``written``)."""
        shown = written if written is not None else entry.target
        lines = text.splitlines()
        line = next(
            (n for n, ln in enumerate(lines, 1) if shown in ln and entry.name in ln.replace(shown, "", 1)), None
        )
        self.entry_points.append(attrs.evolve(entry, line=line or _line_with(text, shown)))

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


def _list_end(text: str, start: int) -> int:
    """Where the Python list that opens at ``text[start]`` closes (brackets inside strings do not count)."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def _line_of(text: str, key: str) -> int | None:
    """The first line of ``text`` where ``key`` (its last dotted part) is a key or a table header."""
    last = key.rsplit(".", 1)[-1]
    pattern = re.compile(rf"^\s*(\[[^\]]*\.)?\[?\s*[\"']?{re.escape(last)}[\"']?\s*[=:\]]")
    return next((n for n, line in enumerate(text.splitlines(), 1) if pattern.match(line)), None)


def _line_with(text: str, needle: str) -> int | None:
    """The first line of ``text`` that contains ``needle``."""
    return next((n for n, line in enumerate(text.splitlines(), 1) if needle in line), None)
