"""The architecture, checked: no import cycle (imports inside functions count), imports inside functions say why,
modules small enough to read in one sitting, and the layers of pyproject.toml (``lint-imports``) kept.

``lint-imports`` checks the direction between packages (``.ci/run`` runs it); these tests check what it does
not: cycles inside a package, and the habits that hide them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import maestro

SRC = Path(maestro.__file__).parent
MAX_LINES = 550  # "about 500": a module past it must say, in its docstring, the single idea it holds


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, *, in_function: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it is inside a function; ``if TYPE_CHECKING:`` blocks left out."""
    for child in ast.iter_child_nodes(tree):
        if _type_checking(child):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        yield from _imports(
            child, in_function=in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
        )


def _targets(node: ast.Import | ast.ImportFrom, modules: dict[str, Path], here: str) -> set[str]:
    """The maestro modules an import statement loads (a package's ``__init__`` counts as the package)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = here.split(".") if modules[here].name == "__init__.py" else here.split(".")[:-1]
            base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = set()
    for dotted in names:
        name = dotted
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith("maestro"):
            out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node, _ in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            deps |= _targets(node, modules, name)
        # importing maestro.a.b runs maestro/a/__init__.py first, unless maestro.a is this module's own package
        # (which Python has started importing already)
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for dep in list(deps):
            parts = dep.split(".")
            inits = {".".join(parts[:i]) for i in range(2, len(parts))}
            deps |= {p for p in inits if p in modules and p not in ancestors}
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)  # other tests rely on the default (deep YAML is refused by it)
    return found


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    graph = _graph()
    # the public API module re-exports everything; nothing below it may import it back (cli's __version__ aside)
    importers = sorted(m for m, deps in graph.items() if "maestro" in deps and m != "maestro.cli.main")
    assert importers == []
    graph = {m: deps - {"maestro"} for m, deps in graph.items() if m != "maestro"}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_an_import_inside_a_function_says_why() -> None:
    """Only an optional or heavy dependency (or what start-up of the command line need not load) is imported in a
    function, with a comment on the line or the line above saying so."""
    silent = []
    for name, path in _modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, in_function in _imports(ast.parse("\n".join(lines))):
            if in_function:
                said = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
                if not said:
                    silent.append(f"{name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert silent == []


def test_modules_are_small_or_hold_one_idea() -> None:
    big = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n > MAX_LINES and "one idea" not in doc.lower():
            big.append(f"{name}: {n} lines")
    assert big == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is a dev dependency (.ci/run has it)")
def test_the_layers_of_pyproject_are_kept() -> None:
    root = SRC.parents[1]
    if not (root / "pyproject.toml").is_file():
        pytest.skip("an installed package without its pyproject.toml")
    done = subprocess.run(["lint-imports"], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
