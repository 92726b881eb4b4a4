"""The gate decisions: which tool runs each validation gate — from evidence only, never a guess.

Asked as ``engine.decide("gate", repo=repo, gate="tests")`` for each of
:data:`GATES`.  Every tool the repository shows evidence for becomes an option;
the evidence comes in categories, each counted once towards the score (capped at 1)::

    config      0.5   a configuration file or section (pytest.ini, pyproject.toml [tool.ruff], tsconfig.json)
    dependency  0.3   a declared dependency (pytest, eslint)
    script      0.3   a package.json script that runs it
    manifest    0.3   the ecosystem's manifest, for tools built into it (go.mod → go test)
    files       0.3   files it runs (tests/test_calc.py, calc_test.go)
    marker      0.3   test files that import it (import unittest)

The strongest evidence wins (ties: the primary ecosystem, then the order of
:data:`TOOLS`).  The chosen option's ``notes`` hold the command, which
:func:`gate_command` returns for the runner; a test command writes JUnit XML to
``{junit}`` where the tool can.  No evidence: the choice is ``none`` and no
gate runs.  A repository path in a command (``unittest discover -s <folder>``, the
packages mypy, pylint and bandit check, a member's ``tsconfig.json``) is one
shell-quoted word, never an option (docs/security.md).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import attrs

from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, Option
from maestro.decide.context import DecisionContext
from maestro.decide.repofacts import ECOSYSTEMS, RepoFacts

__all__ = ["GATES", "TOOLS", "WEIGHTS", "Tool", "detect_tools", "gate", "gate_command"]

GATES = ("tests", "lint", "typecheck", "security")
WEIGHTS = {"config": 0.5, "dependency": 0.3, "script": 0.3, "manifest": 0.3, "files": 0.3, "marker": 0.3}

Found = list[tuple[str, Evidence]]
"""Evidence, each with its category (a key of :data:`WEIGHTS`)."""


@attrs.frozen
class Tool:
    """A tool that can run a gate: where to look for evidence of it, and the command that runs it."""

    name: str
    gate: str
    ecosystem: str
    detect: Callable[[RepoFacts], Found]
    command: Callable[[RepoFacts], str]


# -- evidence helpers ------------------------------------------------------------------
def _configs(*patterns: str) -> Callable[[RepoFacts], Found]:
    return lambda f: [("config", Evidence("file", c, "configuration")) for c in f.config_files(*patterns)]


def _sections(*names: str) -> Callable[[RepoFacts], Found]:
    def found(f: RepoFacts) -> Found:
        pairs = [label.split(" [", 1) for label in f.sections(*names)]
        return [("config", Evidence("file", path, f"[{section}")) for path, section in pairs]

    return found


def _deps(ecosystem: str, *names: str) -> Callable[[RepoFacts], Found]:
    def found(f: RepoFacts) -> Found:
        deps = [d for d in (f.dependency(ecosystem, n) for n in names) if d is not None]
        return [("dependency", Evidence("dependency", d.name, "; ".join(d.declared))) for d in deps]

    return found


def _scripts(pattern: str) -> Callable[[RepoFacts], Found]:
    regex = re.compile(pattern)
    return lambda f: [
        ("script", Evidence("command", s.command, f"{s.manifest} scripts.{s.name}"))
        for s in f.scripts
        if regex.search(s.command)
    ]


def _files(pattern: str, detail: str, category: str = "files") -> Callable[[RepoFacts], Found]:
    regex = re.compile(pattern)

    def found(f: RepoFacts) -> Found:
        matched = [p for p in f.test_files if regex.search(p)]
        return [(category, Evidence("file", p, detail)) for p in matched[:3]] + (
            [(category, Evidence("fact", f"{len(matched)} {detail}s in all"))] if len(matched) > 3 else []
        )

    return found


def _marker(name: str, detail: str) -> Callable[[RepoFacts], Found]:
    return lambda f: [("marker", Evidence("file", p, detail)) for p in f.markers.get(name, ())[:3]]


def _manifest(name: str, *, needs: Callable[[RepoFacts], Found]) -> Callable[[RepoFacts], Found]:
    """The ecosystem's manifest counts only alongside what ``needs`` finds (a built-in runner needs tests)."""

    def found(f: RepoFacts) -> Found:
        other = needs(f)
        if not other or name not in f.files:
            return []
        return [("manifest", Evidence("file", name, "manifest")), *other]

    return found


def _sources(ecosystem: str) -> Callable[[RepoFacts], Found]:
    def found(f: RepoFacts) -> Found:
        n = f.source_counts.get(ecosystem, 0)
        return [("files", Evidence("fact", f"{n} {ecosystem} source files"))] if n else []

    return found


def _all(*detectors: Callable[[RepoFacts], Found]) -> Callable[[RepoFacts], Found]:
    def found(f: RepoFacts) -> Found:
        seen: set[tuple[str, str]] = set()
        items = []
        for category, e in (item for d in detectors for item in d(f)):
            if (e.kind, e.value) not in seen:
                seen.add((e.kind, e.value))
                items.append((category, e))
        return items

    return found


def _py_unmarked_tests(f: RepoFacts) -> Found:
    """Python test files that import neither unittest nor pytest: plain functions only pytest runs."""
    marked = set(f.markers.get("python:unittest", ())) | set(f.markers.get("python:pytest", ()))
    plain = [p for p in f.test_files if p.endswith(".py") and p not in marked]
    return [("files", Evidence("file", p, "test file with plain test functions")) for p in plain[:3]]


def _conftest(f: RepoFacts) -> Found:
    return [
        ("config", Evidence("file", p, "pytest conftest")) for p in f.files if p.rsplit("/", 1)[-1] == "conftest.py"
    ]


def _npm_test(f: RepoFacts) -> Found:
    return [
        ("script", Evidence("command", s.command, f"{s.manifest} scripts.test"))
        for s in f.scripts
        if s.name == "test" and s.manifest == "package.json" and "no test specified" not in s.command
    ]


# -- commands ------------------------------------------------------------------------------
def _arg(path: str) -> str:
    """A repository path as one shell word of a gate command: never an option, never shell syntax, never a placeholder.

    A name starting with ``-`` gets ``./`` (else the tool reads it as an option); the
    name is shell-quoted (a folder ``t;touch X;#`` is one word, not three commands);
    its braces are doubled, since a gate command's ``{junit}`` is filled in later
    (:func:`maestro.config.model.render_command` turns ``{{`` back into ``{``).
    """
    word = shlex.quote(f"./{path}" if path.startswith("-") else path)
    return word.replace("{", "{{").replace("}", "}}")


def _py_targets(f: RepoFacts) -> str:
    return " ".join(_arg(p) for p in f.packages) or "."


def _mypy(f: RepoFacts) -> str:
    configured = any("files" in f.settings.get(label, {}) for label in f.sections("tool.mypy", "mypy"))
    return "python -m mypy" if configured else f"python -m mypy {_py_targets(f)}"


def _bandit(f: RepoFacts) -> str:
    config = " -c pyproject.toml" if "pyproject.toml [tool.bandit]" in f.configs else ""
    return f"python -m bandit -r {_py_targets(f)} -q{config}"


def _unittest(f: RepoFacts) -> str:
    dirs = sorted({p.split("/")[0] for p in f.markers.get("python:unittest", ()) if "/" in p})
    return f"python -m unittest discover -s {_arg(dirs[0])}" if dirs else "python -m unittest discover"


def _jest(f: RepoFacts) -> str:
    if f.dependency("node", "jest-junit") is not None:
        return "npx jest --ci --reporters=default --reporters=jest-junit"
    return "npx jest --ci"


def _tsc(f: RepoFacts) -> str:
    if "tsconfig.json" in f.configs:
        return "npx tsc --noEmit"
    nested = f.config_files("tsconfig.json")
    return f"npx tsc --noEmit -p {_arg(nested[0])}" if nested else "npx tsc --noEmit"


def _rspec(f: RepoFacts) -> str:
    if f.dependency("ruby", "rspec_junit_formatter") is not None:
        return "bundle exec rspec --format progress --format RspecJunitFormatter --out {junit}"
    return "bundle exec rspec"


def _const(command: str) -> Callable[[RepoFacts], str]:
    return lambda _f: command


TOOLS: tuple[Tool, ...] = (
    # tests
    Tool("pytest", "tests", "python",
         _all(_sections("tool.pytest.ini_options", "tool:pytest", "pytest"), _configs("pytest.ini"), _conftest,
              _deps("python", "pytest"), _marker("python:pytest", "imports pytest"), _py_unmarked_tests),
         _const("python -m pytest -q --junitxml={junit}")),
    Tool("unittest", "tests", "python", _marker("python:unittest", "imports unittest"), _unittest),
    Tool("vitest", "tests", "node",
         _all(_configs("vitest.config.*", "vitest.workspace.*"), _deps("node", "vitest"), _scripts(r"\bvitest\b")),
         _const("npx vitest run --reporter=junit --outputFile={junit}")),
    Tool("jest", "tests", "node",
         _all(_configs("jest.config.*"), _sections("jest"), _deps("node", "jest"), _scripts(r"\bjest\b")), _jest),
    Tool("mocha", "tests", "node",
         _all(_configs(".mocharc.*"), _deps("node", "mocha"), _scripts(r"\bmocha\b")),
         _const("npx mocha --reporter xunit --reporter-option output={junit}")),
    Tool("go test", "tests", "go", _manifest("go.mod", needs=_files(r"_test\.go\Z", "go test file")),
         _const("go test ./...")),
    Tool("cargo test", "tests", "rust",
         _manifest("Cargo.toml", needs=_all(_files(r"\.rs\Z", "integration test"), _marker("rust:test", "#[test]"))),
         _const("cargo test")),
    Tool("rspec", "tests", "ruby",
         _all(_configs(".rspec"), _deps("ruby", "rspec", "rspec-rails", "rspec-core"),
              _files(r"_spec\.rb\Z", "spec file")), _rspec),
    Tool("minitest", "tests", "ruby",
         _all(_deps("ruby", "minitest"), _files(r"(_test|/test_[^/]*)\.rb\Z", "minitest file")),
         _const("bundle exec rake test")),
    Tool("npm test", "tests", "node", _npm_test, _const("npm test")),
    # lint
    Tool("ruff", "lint", "python",
         _all(_configs("ruff.toml", ".ruff.toml"), _sections("tool.ruff"), _deps("python", "ruff")),
         _const("ruff check .")),
    Tool("flake8", "lint", "python", _all(_configs(".flake8"), _sections("flake8"), _deps("python", "flake8")),
         _const("python -m flake8")),
    Tool("pylint", "lint", "python", _all(_configs(".pylintrc"), _sections("tool.pylint"), _deps("python", "pylint")),
         lambda f: f"python -m pylint {_py_targets(f)}"),
    Tool("eslint", "lint", "node",
         _all(_configs(".eslintrc", ".eslintrc.*", "eslint.config.*"), _sections("eslintConfig"),
              _deps("node", "eslint"), _scripts(r"\beslint\b")),
         _const("npx eslint .")),
    Tool("biome", "lint", "node", _all(_configs("biome.json"), _deps("node", "@biomejs/biome")),
         _const("npx biome lint .")),
    Tool("golangci-lint", "lint", "go", _configs(".golangci.*"), _const("golangci-lint run")),
    Tool("clippy", "lint", "rust", _configs("clippy.toml", ".clippy.toml"), _const("cargo clippy -- -D warnings")),
    Tool("rubocop", "lint", "ruby", _all(_configs(".rubocop.yml"), _deps("ruby", "rubocop", "standard")),
         _const("bundle exec rubocop")),
    # typecheck
    Tool("mypy", "typecheck", "python",
         _all(_configs("mypy.ini", ".mypy.ini"), _sections("tool.mypy", "mypy"), _deps("python", "mypy")), _mypy),
    Tool("pyright", "typecheck", "python",
         _all(_configs("pyrightconfig.json"), _sections("tool.pyright"), _deps("python", "pyright"),
              _deps("node", "pyright")),
         lambda f: "python -m pyright" if f.dependency("python", "pyright") else "npx pyright"),
    Tool("tsc", "typecheck", "node", _all(_configs("tsconfig.json"), _deps("node", "typescript")), _tsc),
    Tool("go vet", "typecheck", "go", _manifest("go.mod", needs=_sources("go")), _const("go vet ./...")),
    Tool("cargo check", "typecheck", "rust", _manifest("Cargo.toml", needs=_sources("rust")),
         _const("cargo check --all-targets")),
    Tool("sorbet", "typecheck", "ruby", _deps("ruby", "sorbet", "sorbet-static"), _const("bundle exec srb tc")),
    # security
    Tool("bandit", "security", "python", _all(_configs(".bandit"), _sections("tool.bandit"), _deps("python", "bandit")),
         _bandit),
    Tool("pip-audit", "security", "python", _deps("python", "pip-audit"), _const("pip-audit")),
    Tool("npm audit", "security", "node", _all(_configs("package-lock.json"), _scripts(r"\bnpm audit\b")),
         _const("npm audit --audit-level=high")),
    Tool("govulncheck", "security", "go", _deps("go", "golang.org/x/vuln"), _const("govulncheck ./...")),
    Tool("brakeman", "security", "ruby", _deps("ruby", "brakeman"), _const("bundle exec brakeman -q")),
    Tool("bundler-audit", "security", "ruby", _deps("ruby", "bundler-audit"),
         _const("bundle exec bundle-audit check --update")),
)  # fmt: skip
"""Every tool maestro can pick for a gate, in tie-breaking order within a gate."""


def _score(found: Found) -> float:
    return round(min(1.0, sum(WEIGHTS[c] for c in {c for c, _ in found})), 2)


def detect_tools(facts: RepoFacts, gate_name: str, ecosystem: str | None = None) -> list[tuple[Tool, float, Found]]:
    """The tools with evidence for ``gate_name`` (optionally of one ecosystem), strongest first."""
    if gate_name not in GATES:
        raise DecisionError(f"gate: unknown gate {gate_name!r} (known: {', '.join(GATES)})")
    if ecosystem is not None and ecosystem not in ECOSYSTEMS:
        raise DecisionError(f"gate: unknown ecosystem {ecosystem!r} (known: {', '.join(ECOSYSTEMS)})")
    found = []
    for index, tool in enumerate(TOOLS):
        if tool.gate != gate_name or (ecosystem is not None and tool.ecosystem != ecosystem):
            continue
        evidence = tool.detect(facts)
        if evidence:
            found.append((index, tool, _score(evidence), evidence))
    found.sort(key=lambda t: (-t[2], t[1].ecosystem != facts.primary, t[0]))
    return [(tool, score, evidence) for _i, tool, score, evidence in found]


def gate(ctx: DecisionContext) -> Decision:
    """Which tool runs gate ``gate`` (tests, lint, typecheck, security) — or ``none`` without evidence."""
    name = ctx.params.get("gate")
    if not isinstance(name, str) or name not in GATES:
        raise DecisionError(f"gate: say which gate: gate= one of {', '.join(GATES)} (got {name!r})")
    ecosystem = ctx.params.get("ecosystem")
    if ecosystem is not None and ecosystem not in ECOSYSTEMS:
        raise DecisionError(f"gate: unknown ecosystem {ecosystem!r} (known: {', '.join(ECOSYSTEMS)})")
    facts = ctx.facts()
    question = f"Which tool runs the {name} gate?"
    tools = detect_tools(facts, name, ecosystem)
    if not tools:
        looked = ", ".join(t.name for t in TOOLS if t.gate == name and (ecosystem is None or t.ecosystem == ecosystem))
        fact = Evidence("fact", f"no {name} tool found: looked for {looked}")
        return Decision(
            "gate", question, "none", f"none: no {name} tool found (looked for {looked}); no {name} gate will run",
            (Option("none", 0.0, (fact,)),), confidence=1.0,
        )  # fmt: skip
    options = [Option(t.name, score, tuple(e for _c, e in found), t.command(facts)) for t, score, found in tools]
    best, (tool, score, found) = options[0], tools[0]
    shown = "; ".join(str(e) for _c, e in found[:4]) + ("; …" if len(found) > 4 else "")
    rationale = f"{tool.name} ({tool.ecosystem}, evidence {score}): {shown}; command: {best.notes}"
    return Decision("gate", question, tool.name, rationale, tuple(options), confidence=score)


def gate_command(decision: Decision) -> str | None:
    """The command a gate decision chose (``{junit}`` still to be filled in), or None for no gate."""
    if decision.kind != "gate" or decision.choice == "none":
        return None
    chosen = next((o for o in decision.options if o.name == decision.choice), None)
    return chosen.notes or None if chosen is not None else None
