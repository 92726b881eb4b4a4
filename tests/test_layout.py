"""The layout of the tests: a test module imports no other test module and not ``conftest``.

Helpers shared between test modules live in the ``tests.support`` package (fixtures in
``tests/conftest.py``).  Every ``tests/test_*.py`` is parsed with :mod:`ast` and each of its
imports, inside functions and classes too, is checked; so are ``conftest.py`` and the
``tests.support`` modules, which never reach back into a test module either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def local_names(root: Path) -> set[str]:
    """The modules and packages of the tests folder ``root``: importable by bare name were it on ``sys.path``."""
    return {p.stem for p in root.glob("*.py")} | {p.parent.name for p in root.glob("*/__init__.py")}


def _forbidden(module: str, names: list[str], local: set[str]) -> str | None:
    """Why importing ``names`` from ``module`` (dotted, absolute) is forbidden, or None if it is allowed."""
    parts = module.split(".")
    if parts[0] == "tests":
        if len(parts) == 1:  # from tests import x
            bad = [n for n in names if n != "support"]
            return f"from tests import {', '.join(bad)}" if bad else None
        return None if parts[1] == "support" else f"imports {module}"
    if parts[0] in local:  # import test_x, from conftest import y
        return f"imports {module} by its bare name"
    return None


def import_problems(path: Path, root: Path = TESTS) -> list[str]:
    """Every import of ``path`` (a module under the tests folder ``root``) reaching outside ``tests.support``.

    Each as ``line N: what``, in line order; none for stdlib, maestro and third-party imports.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ["tests", *path.relative_to(root).parts[:-1]]
    local = local_names(root)
    problems: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [_forbidden(alias.name, [], local) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolved against the module's own package
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found = [_forbidden(module, [alias.name for alias in node.names], local)]
        else:
            continue
        problems += [(node.lineno, why) for why in found if why]
    return [f"line {line}: {why}" for line, why in sorted(problems)]


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_a_test_module_imports_only_from_tests_support(path: Path) -> None:
    assert import_problems(path) == []


@pytest.mark.parametrize(
    "path", [TESTS / "conftest.py", *sorted((TESTS / "support").rglob("*.py"))], ids=lambda p: str(p.relative_to(TESTS))
)
def test_conftest_and_support_import_no_test_module(path: Path) -> None:
    assert import_problems(path) == []


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    (root / "support").mkdir(parents=True)
    for name in ("__init__.py", "conftest.py", "test_runner.py", "support/__init__.py", "support/runs.py"):
        (root / name).write_text("", encoding="utf-8")
    sample = root / "test_sample.py"
    sample.write_text(
        "import tests.test_runner\n"
        "from tests.conftest import git_init\n"
        "from tests import agent_clis, support\n"
        "from tests.support.git import git_init as ok\n"
        "import conftest, os\n"
        "from . import test_runner\n"
        "from .support import runs\n"
        "class C:\n"
        "    def f(self):\n"
        "        from tests.test_durable import Plan\n"
        "        from .test_runner import task\n"
        "import maestro, pytest, hypothesis\n",
        encoding="utf-8",
    )
    assert import_problems(sample, root) == [
        "line 1: imports tests.test_runner",
        "line 2: imports tests.conftest",
        "line 3: from tests import agent_clis",
        "line 5: imports conftest by its bare name",
        "line 6: from tests import test_runner",
        "line 10: imports tests.test_durable",
        "line 11: imports tests.test_runner",
    ]
