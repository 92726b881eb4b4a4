"""The public API is exactly what maestro/__init__.py exports; changing it is a decision."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

import maestro
import maestro.core.errors

# The names in __all__ that start with "_" (not public by the leading-underscore rule).
DUNDER_EXPORTS = {"__version__"}
# Exported data (not a class or function): documented by maestro's docstring alone.
DATA = {"DEFAULT_GUARDS", "converter", "__version__"}


def _loaded() -> None:
    """Touch every exported name, so those computed on first use are in ``vars(maestro)`` too."""
    for name in maestro.__all__:
        getattr(maestro, name)


def _is_submodule(name: str, value: object) -> bool:
    """A subpackage or module of maestro bound by the import system (``maestro.core`` ...)."""
    return isinstance(value, types.ModuleType) and value.__name__ == f"maestro.{name}"


def _all_modules() -> list[types.ModuleType]:
    """Every module of the maestro package, imported (``__main__`` aside: importing it runs the CLI)."""
    found = [maestro]
    for info in pkgutil.walk_packages(maestro.__path__, "maestro."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        found.append(importlib.import_module(info.name))
    return found


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's order for ``__all__`` (RUF022): CONSTANTS, then Classes, then the rest, each alphabetical."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_has_no_repeats() -> None:
    assert maestro.__all__ == sorted(maestro.__all__, key=_isort_key)
    assert len(set(maestro.__all__)) == len(maestro.__all__)
    assert set(maestro.__all__) >= DUNDER_EXPORTS


def test_nothing_leaks_and_nothing_is_missing() -> None:
    """The public names of the module are ``__all__``: no stray import, no helper, no missing export.

    The one exception is the subpackages: importing ``maestro.core.errors`` binds ``core`` in
    ``maestro`` (the import system does that, and removing it would break ``maestro.core.x``),
    so a name that is a submodule of maestro is allowed.  Everything else is held exactly.
    """
    _loaded()
    public = {name for name in vars(maestro) if not name.startswith("_")}
    submodules = {name for name in public if _is_submodule(name, vars(maestro)[name])}
    assert submodules <= {m.name for m in pkgutil.iter_modules(maestro.__path__)}
    assert sorted(public - submodules) == sorted(set(maestro.__all__) - DUNDER_EXPORTS)
    for name in maestro.__all__:
        assert getattr(maestro, name) is not None, name
        assert not isinstance(getattr(maestro, name), types.ModuleType), f"{name} is a module"


def test_public_names_are_defined_in_maestro_modules() -> None:
    for name in sorted(set(maestro.__all__) - DATA):
        module = getattr(maestro, name).__module__
        assert module.startswith("maestro."), (name, module)


def test_every_exported_name_is_documented() -> None:
    """Each class and function has its own docstring, and maestro's docstring places every name in a group."""
    doc = maestro.__doc__ or ""
    for name in maestro.__all__:
        obj = getattr(maestro, name)
        assert re.search(rf"`{re.escape(name)}`", doc), f"maestro's docstring does not place {name} in a group"
        if name in DATA:
            continue
        assert inspect.isclass(obj) or inspect.isfunction(obj), name
        own = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
        assert isinstance(own, str) and own.strip(), f"{name} has no docstring of its own"


# Exceptions used as signals inside one package, caught there and never raised to a caller: not
# errors, so not MaestroErrors, and not API.  Adding one here is a decision, like exporting a name.
INTERNAL_SIGNALS = {
    "maestro.cli.run.Stopped",  # the second Ctrl-C: cli/main.py prints how to resume, exits 130
    "maestro.run.pauses.Pause",  # pause the session with a decision request: the run loop catches it
    "maestro.cli.run.SessionFailed",  # an error after the session was written to: cli/main.py prints it, exits 1
    "maestro.core.errors.Terminated",  # SIGTERM/SIGHUP, a KeyboardInterrupt: stop at once, exit 128 + the signal
    "maestro.core.text.InputTooLarge",  # an OSError (EFBIG) so that every reader's `except OSError` words it
}


def test_every_exception_is_a_maestro_error_and_exported() -> None:
    """Any exception class defined in maestro with a public name is under MaestroError and exported.

    Private ones (``_Failed`` ...) and the internal signals above stay inside the module or
    package that raises and catches them.
    """
    found: dict[str, type[BaseException]] = {}
    for module in _all_modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("maestro")
                    and not name.startswith("_")):  # fmt: skip
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    assert "maestro.core.errors.TransitionNotAllowed" in found
    for where in sorted(INTERNAL_SIGNALS):
        cls = found.pop(where, None)
        assert cls is not None, f"{where} is gone: take it off INTERNAL_SIGNALS"
        assert not issubclass(cls, maestro.MaestroError), f"{where} is an error: export it instead"
        assert cls.__name__ not in maestro.__all__, where
    for where, cls in sorted(found.items()):
        assert issubclass(cls, maestro.MaestroError), f"{where} is not a MaestroError"
        assert getattr(maestro, cls.__name__, None) is cls, f"{where} is not exported"
        assert cls.__module__ == "maestro.core.errors", f"{where}: the errors live in core/errors.py"


def test_the_error_tree_is_drawn_whole() -> None:
    """Each exported exception is in the tree of core/errors.py's docstring, under its parent."""
    tree = maestro.core.errors.__doc__ or ""
    root = tree.index("    MaestroError\n")
    drawn: dict[str, int] = {}  # name -> depth in the tree
    for line in tree[root:].splitlines():
        words = line.replace("─", " ").replace("│", " ").replace("├", " ").replace("└", " ").split()
        if not words:
            break
        drawn[words[0]] = (line.index(words[0]) - 4) // 4
    exported = {n for n in maestro.__all__ if inspect.isclass(getattr(maestro, n))
                and issubclass(getattr(maestro, n), Exception)}  # fmt: skip
    assert set(drawn) == exported
    for name in sorted(exported - {"MaestroError"}):
        parent = getattr(maestro, name).__mro__[1].__name__
        assert drawn[name] == drawn[parent] + 1, f"{name} is not drawn under {parent}"


def test_version_comes_from_the_installed_distribution() -> None:
    from importlib.metadata import version

    assert maestro.__version__ == version("maestro-orchestrator")


def test_the_library_never_prints() -> None:
    import ast

    src = Path(maestro.__file__).parent
    for path in src.rglob("*.py"):
        if path.name == "__main__.py" or path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{path}:{node.lineno} prints"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys":
                assert node.attr not in {"stdout", "stderr"}, f"{path}:{node.lineno} writes to sys.{node.attr}"
