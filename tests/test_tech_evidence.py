"""Better evidence (issue 17, item 5): what the code imports and the entry points a project declares.

The tech-stack strategy cites the CLI a project already has (a tabulate-like package: getopt behind a
``[project.scripts]`` entry; a click app; an argparse ``__main__``; a Node package's ``bin``) with file and
line, and ``maestro init`` prints what it detected, one line each (``--dry-run``: and writes nothing).
Real repository layouts in tmp_path; the real tabulate 0.9.0 and humanize 4.11.0 sdists when
``MAESTRO_SDISTS`` names a folder that holds them (``pip download --no-deps --no-binary :all:
tabulate==0.9.0 humanize==4.11.0 -d DIR``).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.cli.init import add_parser, cmd_init, detected_lines
from maestro.config.init import CONFIG_PATH, detect, init_project
from maestro.core.errors import PlanError
from maestro.core.records import Decision, Option
from maestro.decide.engine import DecisionEngine
from maestro.decide.repofacts import EntryPoint, scan
from tests.support.git import git_init
from tests.support.repos import make

# -- the repositories ------------------------------------------------------------------------------------------------

TABULATE_LIKE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61.2.0"]

        [project]
        name = "tabulate"
        dynamic = ["version"]

        [project.optional-dependencies]
        widechars = ["wcwidth"]

        [project.scripts]
        tabulate = "tabulate:_main"
    """,
    "tabulate/__init__.py": '''
        """Pretty-print tabular data.

        import fake_in_a_docstring
        """

        from collections import namedtuple
        import re

        try:
            import wcwidth  # optional wide-character support
        except ImportError:
            wcwidth = None

        from .version import version as __version__

        _moin = dict(header="\'\'\'")  # a triple quote inside a one-line string opens nothing

        def _main():
            """\\
            Usage: tabulate [options] [FILE ...]

            import not_an_import
            """
            import getopt
            import sys

            opts, args = getopt.getopt(sys.argv[1:], "h1o:")
            return opts, args


        if __name__ == "__main__":
            _main()
    ''',
    "tabulate/version.py": 'version = "0.9.0"\n',
    "test/test_cli.py": "import subprocess\nimport pytest\n\ndef test_cli():\n    assert True\n",
    "benchmark.py": """
        import tabulate
        import texttable

        if __name__ == '__main__':
            print(tabulate.tabulate([]))
    """,
}

CLICK_APP = {
    "pyproject.toml": """
        [project]
        name = "greeter"
        dependencies = ["click>=8", "PyYAML>=6", "requests"]

        [project.scripts]
        greet = "greeter.cli:main"
    """,
    "src/greeter/__init__.py": "",
    "src/greeter/cli.py": """
        import click
        import yaml

        from greeter import core


        @click.command()
        @click.argument("name")
        def main(name):
            click.echo(core.greet(name))
    """,
    "src/greeter/core.py": "from PIL import Image\n\n\ndef greet(name):\n    import requests\n    return name\n",
    "tests/test_cli.py": "import httpx\n",
}

ARGPARSE_MAIN = {
    "tool/__init__.py": "",
    "tool/__main__.py": "from .cli import main\n\nmain()\n",
    "tool/cli.py": """
        import logging


        def main(argv=None):
            import argparse

            parser = argparse.ArgumentParser(prog="tool")
            return parser.parse_args(argv)
    """,
    "scripts/report.py": "import sys\n\n\ndef run():\n    return sys.argv\n\n\nif __name__ == '__main__':\n    run()\n",
}

JS_PACKAGE = {
    "package.json": json.dumps(
        {
            "name": "@acme/greet",
            "version": "1.0.0",
            "bin": {"greet": "./bin/greet.js", "greet-lite": "bin/lite.mjs"},
            "dependencies": {"commander": "^12.0.0"},
        },
        indent=2,
    ),
    "bin/greet.js": """
        #!/usr/bin/env node
        // import fake from "commented-out";
        const { program } = require("commander");
        const { hello } = require("../lib/hello");
        program.parse();
    """,
    "bin/lite.mjs": 'import { parseArgs } from "node:util";\nconst { values } = parseArgs({ options: {} });\n',
    "lib/hello.js": 'import axios from "axios";\nimport fs from "fs";\nexport * from "@scope/pkg/sub/path";\n',
    "lib/hello.test.js": 'import { test } from "vitest";\n',
}


def line_of(path: Path, text: str) -> int:
    """The line of ``path`` that holds ``text`` (exactly one)."""
    hits = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line]
    assert len(hits) == 1, f"{text!r} is on lines {hits} of {path}"
    return hits[0]


def option(decision: Decision, name: str) -> Option:
    return next(o for o in decision.options if o.name == name)


def cli_decision(repo: Path) -> Decision:
    return DecisionEngine().decide("tech_stack", repo=repo, capability="command line")


def assert_evidence_points_at_lines(decision: Decision, repo: Path) -> None:
    """Every ``file`` evidence names a file that exists, and a ``line N`` it names is within that file."""
    for o in decision.options:
        for e in o.evidence:
            if e.kind != "file":
                continue
            path = repo / e.value
            assert path.is_file(), f"{o.name}: {e.value} is not a file"
            if e.detail.startswith("line "):
                n = int(e.detail[5:].split(":", 1)[0])
                assert 1 <= n <= len(path.read_text(encoding="utf-8").splitlines()), (o.name, e)


# -- the tabulate-like package ---------------------------------------------------------------------------------------


def test_the_scan_finds_the_getopt_cli_behind_project_scripts(tmp_path: Path) -> None:
    repo = make(tmp_path / "tabulate", TABULATE_LIKE)
    facts = scan(repo)
    init = repo / "tabulate/__init__.py"
    declared = facts.entry_points[0]
    assert declared == EntryPoint(
        "python", "project.scripts", "tabulate", "tabulate:_main", "pyproject.toml",
        line_of(repo / "pyproject.toml", 'tabulate = "tabulate:_main"'),
        "getopt", "tabulate/__init__.py", line_of(init, "import getopt"),
    )  # fmt: skip
    mains = {e.target: e for e in facts.entry_points if not e.declared}
    assert set(mains) == {"benchmark.py", "tabulate/__init__.py"}
    assert mains["tabulate/__init__.py"].line == line_of(init, 'if __name__ == "__main__":')
    assert mains["tabulate/__init__.py"].parser == "getopt"  # the file itself: anywhere in it
    assert mains["benchmark.py"].parser == ""  # `import tabulate` is not followed into getopt
    assert mains["benchmark.py"].name == "python -m benchmark"
    assert mains["tabulate/__init__.py"].name == "python tabulate/__init__.py"


def test_the_scan_reads_module_level_imports_only(tmp_path: Path) -> None:
    repo = make(tmp_path / "tabulate", TABULATE_LIKE)
    imports = {(i.name, i.where, i.builtin) for i in scan(repo).imports}
    init = repo / "tabulate/__init__.py"
    assert ("wcwidth", f"tabulate/__init__.py:{line_of(init, 'import wcwidth')}", False) in imports  # in a try block
    assert ("collections", f"tabulate/__init__.py:{line_of(init, 'from collections')}", True) in imports
    assert ("texttable", "benchmark.py:2", False) in imports
    names = {name for name, _, _ in imports}
    assert "getopt" not in names and "sys" not in names  # inside _main: not the module's dependencies
    assert not names & {"fake-in-a-docstring", "not-an-import"}  # text in docstrings
    assert not names & {"tabulate", "version"}  # the project's own modules, relative imports
    assert "pytest" not in names and "subprocess" not in names  # tests are not read for imports


def test_the_cli_decision_cites_the_getopt_cli_with_file_and_line(tmp_path: Path) -> None:
    repo = make(tmp_path / "tabulate", TABULATE_LIKE)
    d = cli_decision(repo)
    scripts_line = line_of(repo / "pyproject.toml", 'tabulate = "tabulate:_main"')
    getopt_line = line_of(repo / "tabulate/__init__.py", "import getopt")
    assert d.choice == "getopt" and d.confidence == 0.95
    assert d.rationale == (
        f"prefer_existing: the command tabulate (pyproject.toml:{scripts_line} [project.scripts] tabulate:_main) "
        f"parses its arguments with getopt (tabulate/__init__.py:{getopt_line}); so does 1 other entry point"
    )
    getopt = option(d, "getopt")
    assert getopt.score == 1.0
    assert [(e.value, e.detail) for e in getopt.evidence] == [
        ("pyproject.toml", f"line {scripts_line}: [project.scripts] tabulate = tabulate:_main"),
        (
            "tabulate/__init__.py",
            f"line {line_of(repo / 'tabulate/__init__.py', 'if __name__')}: "
            "runs as a program (python tabulate/__init__.py)",
        ),
        (
            "tabulate/__init__.py",
            f"line {getopt_line}: imports getopt, the argument parser of tabulate and python tabulate/__init__.py",
        ),
    ]
    assert option(d, "click").score == 0.7 and option(d, "argparse").score == 0.7  # catalogue candidates stay
    assert "no cli is declared" not in d.rationale  # what issue 17 saw for tabulate
    assert_evidence_points_at_lines(d, repo)


def test_without_the_entry_point_the_decision_is_what_it_was(tmp_path: Path) -> None:
    """The same package without [project.scripts] or a __main__ block: no command, so the catalogue decides."""
    files = dict(TABULATE_LIKE)
    files["pyproject.toml"] = files["pyproject.toml"].split("[project.scripts]")[0]
    files["tabulate/__init__.py"] = files["tabulate/__init__.py"].split("if __name__")[0]
    del files["benchmark.py"]
    d = cli_decision(make(tmp_path / "tabulate", files))
    assert d.choice == "click"
    assert d.rationale.startswith("mature_new: no cli is declared or imported in the repository; click is mature")


# -- a click app, an argparse __main__, a Node package ---------------------------------------------------------------


def test_a_click_app_cites_the_dependency_the_command_and_the_import(tmp_path: Path) -> None:
    repo = make(tmp_path / "greeter", CLICK_APP)
    facts = scan(repo)
    cli_py = repo / "src/greeter/cli.py"
    (ep,) = facts.entry_points
    assert (ep.kind, ep.name, ep.target, ep.parser, ep.parser_where) == (
        "project.scripts", "greet", "greeter.cli:main", "click", f"src/greeter/cli.py:{line_of(cli_py, 'import click')}"
    )  # fmt: skip
    d = cli_decision(repo)
    assert d.choice == "click"
    assert d.rationale.startswith(
        "prefer_existing: the command greet (pyproject.toml:6 [project.scripts] greeter.cli:main)"
    )
    click = option(d, "click")
    kinds = [(e.kind, e.value) for e in click.evidence]
    assert kinds[0] == ("dependency", "click") and ("file", "src/greeter/cli.py") in kinds
    assert_evidence_points_at_lines(d, repo)

    # a module named unlike its distribution: `import yaml` is the declared PyYAML, `from PIL` is pillow
    assert {i.name for i in facts.imports if not i.builtin} == {"click", "pyyaml", "pillow"}  # requests: in a function
    engine = DecisionEngine()
    serial = engine.decide("tech_stack", repo=repo, capability="serialization")
    assert serial.choice == "pydantic"  # yaml is not a catalogue candidate; the import changes nothing here
    http = engine.decide("tech_stack", repo=repo, capability="http client")
    assert http.choice == "requests" and http.rationale == (
        "prefer_existing: requests is already a dependency (requests in pyproject.toml [project.dependencies])"
    )  # declared, imported only inside a function: no import evidence; httpx is only in a test


def test_an_argparse_main_found_through_the_module_it_imports(tmp_path: Path) -> None:
    repo = make(tmp_path / "tool", ARGPARSE_MAIN)
    facts = scan(repo)
    by_target = {e.target: e for e in facts.entry_points}
    main = by_target["tool/__main__.py"]
    argparse_line = line_of(repo / "tool/cli.py", "import argparse")
    assert (main.kind, main.name, main.line, main.parser, main.parser_where) == (
        "__main__", "python -m tool", 1, "argparse", f"tool/cli.py:{argparse_line}"
    )  # fmt: skip
    report = by_target["scripts/report.py"]
    assert (report.name, report.parser) == ("python scripts/report.py", "")  # sys.argv is no parser

    d = cli_decision(repo)
    assert d.choice == "argparse" and option(d, "argparse").score == 1.0
    assert d.rationale == (
        f"prefer_existing: tool/__main__.py (runs as a program: tool/__main__.py:1) parses its arguments with "
        f"argparse (tool/cli.py:{argparse_line})"
    )
    logging = DecisionEngine().decide("tech_stack", repo=repo, capability="logging")
    assert logging.choice == "logging" and logging.rationale == (
        "prefer_existing: logging is already in use (tool/cli.py:1 imports logging)"
    )
    assert_evidence_points_at_lines(d, repo)


def test_a_declared_command_beats_a_dependency_and_a_script(tmp_path: Path) -> None:
    """click is declared and a script uses argparse, but the command the project ships parses with docopt."""
    repo = make(
        tmp_path / "mixed",
        {
            "setup.cfg": """
                [metadata]
                name = mixed

                [options]
                install_requires =
                    click
                    docopt

                [options.entry_points]
                console_scripts =
                    mixed = mixed.main:run
            """,
            "mixed/__init__.py": "",
            "mixed/main.py": "from docopt import docopt\n\n\ndef run():\n    return docopt(__doc__)\n",
            "tools/build.py": "import argparse\n\nif __name__ == '__main__':\n    argparse.ArgumentParser()\n",
        },
    )
    (ep, script) = scan(repo).entry_points
    assert (ep.kind, ep.path, ep.line, ep.parser) == ("console_scripts", "setup.cfg", 11, "docopt")
    assert (script.target, script.parser) == ("tools/build.py", "argparse")
    d = cli_decision(repo)
    assert d.choice == "docopt"  # not in the catalogue: the project's own parser is an option of its own
    assert option(d, "docopt").notes == "prefer_existing: the project's own parser (not in the catalogue)"
    assert option(d, "click").score == option(d, "argparse").score == 1.0  # declared / imported: in use too
    assert d.rationale.startswith("prefer_existing: the command mixed (setup.cfg:11 [console_scripts] mixed.main:run)")


def test_a_node_package_bin_with_its_parsers_and_imports(tmp_path: Path) -> None:
    repo = make(tmp_path / "greet", JS_PACKAGE)
    facts = scan(repo)
    eps = {e.name: e for e in facts.entry_points}
    commander_line = line_of(repo / "bin/greet.js", 'require("commander")')
    assert (eps["greet"].target, eps["greet"].parser, eps["greet"].parser_where) == (
        "bin/greet.js", "commander", f"bin/greet.js:{commander_line}"
    )  # fmt: skip
    assert (eps["greet-lite"].target, eps["greet-lite"].parser) == ("bin/lite.mjs", "util.parseArgs")
    assert eps["greet"].line == line_of(repo / "package.json", '"./bin/greet.js"')
    imports = {(i.name, i.module, i.builtin) for i in facts.imports}
    assert {("axios", "axios", False), ("node:fs", "fs", True), ("@scope/pkg", "@scope/pkg/sub/path", False)} <= imports
    names = {n for n, _, _ in imports}
    assert "commented-out" not in names and "vitest" not in names  # a comment; a test file

    d = cli_decision(repo)
    assert d.choice == "commander" and d.rationale.startswith(
        f"prefer_existing: the command greet (package.json:{eps['greet'].line} [bin] bin/greet.js)"
    )
    http = DecisionEngine().decide("tech_stack", repo=repo, capability="http client")
    assert http.choice == "axios"  # imported, not declared
    assert http.rationale == "prefer_existing: axios is already in use (lib/hello.js:1 imports axios)"
    assert_evidence_points_at_lines(d, repo)


def test_a_string_bin_is_named_after_the_package(tmp_path: Path) -> None:
    repo = make(
        tmp_path / "one", {"package.json": '{"name": "@me/tool", "bin": "cli.js"}', "cli.js": "require('yargs')\n"}
    )
    (ep,) = scan(repo).entry_points
    assert (ep.name, ep.target, ep.parser, ep.line) == ("tool", "cli.js", "yargs", 1)
    nameless = make(
        tmp_path / "nameless", {"package.json": '{"bin": "./bin/run.js"}', "bin/run.js": "require('mri')\n"}
    )
    (ep,) = scan(nameless).entry_points
    assert (ep.name, ep.target, ep.parser) == ("run", "bin/run.js", "mri")


def test_setup_py_and_poetry_scripts_are_read(tmp_path: Path) -> None:
    repo = make(
        tmp_path / "old",
        {
            "setup.py": """
                from setuptools import setup

                setup(
                    name="old",
                    entry_points={"console_scripts": ["old = old.cli:main", "old-admin=old.admin:run [extra]"]},
                )
            """,
            "pyproject.toml": """
                [tool.poetry]
                name = "old"

                [tool.poetry.scripts]
                old-poetry = "old.cli:main"
                old-ref = { reference = "old.cli:main", type = "console" }
            """,
            "old/__init__.py": "",
            "old/cli.py": "import typer\n\napp = typer.Typer()\n\n\ndef main():\n    app()\n",
        },
    )
    found = {(e.kind, e.name, e.target, e.path, e.line, e.parser) for e in scan(repo).entry_points}
    assert found == {
        ("tool.poetry.scripts", "old-poetry", "old.cli:main", "pyproject.toml", 5, "typer"),
        ("tool.poetry.scripts", "old-ref", "old.cli:main", "pyproject.toml", 6, "typer"),
        ("console_scripts", "old", "old.cli:main", "setup.py", 5, "typer"),
        ("console_scripts", "old-admin", "old.admin:run", "setup.py", 5, ""),  # no such module: no parser
    }


def test_a_script_that_is_not_a_string_is_one_line_naming_its_line(tmp_path: Path) -> None:
    repo = make(tmp_path / "bad", {"pyproject.toml": '[project]\nname = "x"\n\n[project.scripts]\nx = 3\n'})
    with pytest.raises(PlanError, match=r"pyproject\.toml:5: .*a script is 'module:function', not 3") as caught:
        scan(repo)
    assert "\n" not in str(caught.value)
    bad_bin = make(tmp_path / "bin", {"package.json": '{"name": "x",\n "bin": 3}'})
    with pytest.raises(PlanError, match=r"package\.json:2: .*expected a path, or an object of command"):
        scan(bad_bin)


# -- the module-level reader against Python's own parser -------------------------------------------------------------

_MODULES = st.sampled_from(["json", "yaml", "attr", "numpy", "click", "os.path", "email.mime.text"])


@st.composite
def python_modules(draw: st.DrawFn) -> str:
    """A module of module-level imports, imports in functions, try blocks, classes and docstrings that mention
    imports."""
    blocks = []
    for _ in range(draw(st.integers(1, 8))):
        module = draw(_MODULES)
        kind = draw(st.sampled_from(["import", "from", "def", "try", "class", "doc", "string", "if"]))
        blocks.append({
            "import": f"import {module}",
            "from": f"from {module} import (\n    a,\n    b,\n)",
            "def": f'def f():\n    """Doc.\n\nimport {module}\n"""\n    import {module}\n    return 1',
            "try": f"try:\n    import {module}\nexcept ImportError:\n    pass",
            "class": f"class C:\n    import {module}",
            "doc": f'"""\nimport {module}\n"""',
            "string": f"x = \"'''\"\nimport {module}",
            "if": f"if __name__ == '__main__':\n    import {module}",
        }[kind])  # fmt: skip
    return "\n\n".join(blocks) + "\n"


def _module_level(text: str) -> list[tuple[str, int]]:
    """What Python's parser says is imported outside functions and classes."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, child.lineno))
            else:
                visit(child)

    visit(ast.parse(text))
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=python_modules())
def test_module_level_imports_agree_with_pythons_parser(tmp_path: Path, text: str) -> None:
    repo = tmp_path / "prop"
    make(repo, {"pkg/__init__.py": "", "pkg/mod.py": ""})
    (repo / "pkg/mod.py").write_text(text, encoding="utf-8")
    read = sorted((i.module, i.line) for i in scan(repo).imports if i.path == "pkg/mod.py")
    expected = sorted(_module_level(text))
    kept = [(m, n) for m, n in expected if [e for e in expected if e[0] == m].index((m, n)) < 3]  # 3 sites a package
    assert read == kept


# -- maestro init -----------------------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    """``maestro init ARGV`` parsed as maestro.cli.main parses it."""
    parser = argparse.ArgumentParser(prog="maestro")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def run_init(*argv: str) -> list[str]:
    out = io.StringIO()
    assert cmd_init(parse("init", *argv), out) == 0
    return out.getvalue().splitlines()


def snapshot(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file()}


def test_init_prints_what_it_detected_with_its_evidence(tmp_path: Path) -> None:
    repo = make(git_init(tmp_path / "tabulate"), TABULATE_LIKE)
    init = repo / "tabulate/__init__.py"
    getopt_at = f"tabulate/__init__.py:{line_of(init, 'import getopt')}"
    lines = run_init("--repo", str(repo))
    assert lines == [
        "gate tests: pytest, `python -m pytest -q --junitxml={junit}` (test/test_cli.py: imports pytest)",
        "gate lint: none (no lint tool found: looked for ruff, flake8, pylint, eslint, biome, golangci-lint, "
        "clippy, rubocop)",
        "gate typecheck: none (no typecheck tool found: looked for mypy, pyright, tsc, go vet, cargo check, sorbet)",
        "gate security: none (no security tool found: looked for bandit, pip-audit, npm audit, govulncheck, "
        "brakeman, bundler-audit)",
        f"stack python: pyproject.toml; 4 source file(s); declares wcwidth; imports texttable (benchmark.py:2), "
        f"wcwidth (tabulate/__init__.py:{line_of(init, 'import wcwidth')})",
        f"entry point tabulate: [project.scripts] tabulate:_main (pyproject.toml:12); parses its arguments with "
        f"getopt ({getopt_at})",
        "entry point python -m benchmark: runs as a program (benchmark.py:4); no argument parser seen",
        f"entry point python tabulate/__init__.py: runs as a program (tabulate/__init__.py:"
        f"{line_of(init, 'if __name__')}); parses its arguments with getopt ({getopt_at})",
        f"created {CONFIG_PATH}",
    ]


def test_init_dry_run_prints_the_same_and_writes_nothing(tmp_path: Path) -> None:
    repo = make(git_init(tmp_path / "tabulate"), TABULATE_LIKE)
    before = snapshot(repo)
    dry = run_init("--dry-run", "--claude", "--repo", str(repo))
    assert snapshot(repo) == before  # not one file written, .flow/ and .claude/ included
    assert not (repo / ".flow").exists() and not (repo / ".claude").exists()
    assert dry[-3:] == [
        "would create .claude/skills/maestro-session-inspect/SKILL.md",
        "dry run: nothing was written",
        'in Claude Code: /flow:autonomous "your request"',
    ]
    assert f"would create {CONFIG_PATH}" in dry
    real = run_init("--claude", "--repo", str(repo))
    detected = [line for line in dry if line.startswith(("gate ", "stack ", "entry point"))]
    assert real[: len(detected)] == detected  # the same detection, then the files really written
    assert (repo / CONFIG_PATH).is_file()

    # a second dry run: the config is there; one that differs would be kept, or overwritten with --force
    (repo / CONFIG_PATH).write_text("parallel: {max_workers: 2}\n", encoding="utf-8")
    after = snapshot(repo)
    assert f"would keep (differs; use --force) {CONFIG_PATH}" in run_init("--dry-run", "--repo", str(repo))
    assert f"would overwrite {CONFIG_PATH}" in run_init("--dry-run", "--force", "--repo", str(repo))
    assert snapshot(repo) == after


def test_the_library_detects_without_writing(tmp_path: Path) -> None:
    repo = make(git_init(tmp_path / "greet"), JS_PACKAGE)
    before = snapshot(repo)
    detection = detect(repo)
    assert snapshot(repo) == before
    assert [s.ecosystem for s in detection.stacks] == ["node"]
    assert detection.stacks[0].declared == ("commander",)
    assert [i.name for i in detection.stacks[0].imports] == ["@scope/pkg", "axios", "commander"]
    assert {e.name for e in detection.entry_points} == {"greet", "greet-lite"}
    result = init_project(repo, claude=False, force=False, dry_run=True)
    assert result.dry_run and result.detection.gates.keys() == {"tests", "lint", "typecheck", "security"}
    assert snapshot(repo) == before
    assert "entry point greet: [bin] bin/greet.js (package.json:5); parses its arguments with commander " in "\n".join(
        detected_lines(detection)
    )


def test_init_in_an_empty_repository_says_nothing_was_found(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "empty")
    lines = run_init("--dry-run", "--repo", str(repo))
    assert "stack: none detected (no manifest, no source file)" in lines
    assert "entry points: none (no [project.scripts], console_scripts, package.json bin or __main__)" in lines
    assert not (repo / ".flow").exists()


def test_maestro_init_dry_run_as_a_subprocess(tmp_path: Path) -> None:
    repo = make(git_init(tmp_path / "tool"), ARGPARSE_MAIN)
    before = snapshot(repo)
    out = subprocess.run(
        [sys.executable, "-m", "maestro", "init", "--dry-run"], capture_output=True, text=True, cwd=repo
    )
    assert out.returncode == 0, out.stderr
    assert snapshot(repo) == before
    lines = out.stdout.splitlines()
    assert "entry point python -m tool: runs as a program (tool/__main__.py:1); parses its arguments with argparse " \
           f"(tool/cli.py:{line_of(repo / 'tool/cli.py', 'import argparse')})" in lines  # fmt: skip
    assert lines[-2:] == [f"would create {CONFIG_PATH}", "dry run: nothing was written"]


# -- the real sdists -------------------------------------------------------------------------------------------------


def _sdist(name: str, tmp_path: Path) -> Path:
    """The sdist ``name`` unpacked in tmp_path, from the folder ``MAESTRO_SDISTS`` names (skip without it)."""
    folder = os.environ.get("MAESTRO_SDISTS")
    archive = Path(folder) / f"{name}.tar.gz" if folder else None
    if archive is None or not archive.is_file():
        pytest.skip(f"{name}.tar.gz is not available offline (set MAESTRO_SDISTS to a folder that holds it)")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / name


def test_real_tabulate_0_9_0(tmp_path: Path) -> None:
    repo = _sdist("tabulate-0.9.0", tmp_path)
    d = cli_decision(repo)
    assert d.choice == "getopt"
    assert d.rationale == (
        "prefer_existing: the command tabulate (pyproject.toml:32 [project.scripts] tabulate:_main) parses its "
        "arguments with getopt (tabulate/__init__.py:2625); so does 1 other entry point"
    )
    assert line_of(repo / "tabulate/__init__.py", "    import getopt") == 2625
    assert_evidence_points_at_lines(d, repo)
    git_init(repo)
    lines = run_init("--dry-run", "--repo", str(repo))
    assert "entry point tabulate: [project.scripts] tabulate:_main (pyproject.toml:32); parses its arguments " \
           "with getopt (tabulate/__init__.py:2625)" in lines  # fmt: skip
    assert "gate lint: flake8, `python -m flake8` (tox.ini [flake8])" in lines


def test_real_humanize_4_11_0(tmp_path: Path) -> None:
    repo = _sdist("humanize-4.11.0", tmp_path)
    facts = scan(repo)
    assert facts.entry_points == ()  # a library: no command, no __main__
    assert {i.name for i in facts.imports if not i.builtin} == {"typing-extensions"}
    d = cli_decision(repo)
    assert d.choice == "click"
    assert d.rationale.startswith("mature_new: no cli is declared or imported in the repository; click is mature")
    git_init(repo)
    lines = run_init("--dry-run", "--repo", str(repo))
    assert "entry points: none (no [project.scripts], console_scripts, package.json bin or __main__)" in lines
    assert any(line.startswith("gate tests: pytest, ") for line in lines)
    assert not (repo / ".flow").exists()
