"""The public API is exactly what maestro/__init__.py exports; changing it is a decision."""

from __future__ import annotations

import maestro

PUBLIC = [
    "DEFAULT_GUARDS",
    "AgentResult",
    "Chart",
    "ChartError",
    "CheckpointError",
    "CheckpointRecord",
    "Checkpointer",
    "Clock",
    "Decision",
    "DecisionContext",
    "DecisionEngine",
    "DecisionError",
    "Event",
    "Evidence",
    "FileChange",
    "GateResult",
    "GuardContext",
    "IdSource",
    "Limits",
    "MaestroError",
    "Note",
    "Option",
    "Ordering",
    "PlanError",
    "Prd",
    "RandomIds",
    "Requirement",
    "SequentialIds",
    "Session",
    "SessionLocked",
    "SessionState",
    "Step",
    "Store",
    "StoreError",
    "SystemClock",
    "Task",
    "TaskGraph",
    "TaskState",
    "TickingClock",
    "TransitionNotAllowed",
    "__version__",
    "converter",
    "load_chart",
    "load_prd",
    "load_tasks",
    "order_tasks",
    "parse_chart",
    "parse_prd",
    "parse_tasks",
    "rebuild",
    "replay",
    "replay_session",
    "state_at",
    "update_prd",
    "validate_graph",
]


def test_public_api_is_pinned() -> None:
    assert sorted(maestro.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(maestro, name) is not None, name


def test_public_names_are_defined_in_maestro_modules() -> None:
    for name in PUBLIC:
        obj = getattr(maestro, name)
        module = getattr(obj, "__module__", "maestro")
        if name not in {"__version__", "converter", "DEFAULT_GUARDS"}:
            assert module.startswith("maestro"), (name, module)


def test_errors_share_one_root() -> None:
    for err in (
        maestro.ChartError,
        maestro.StoreError,
        maestro.SessionLocked,
        maestro.PlanError,
        maestro.DecisionError,
        maestro.TransitionNotAllowed,
        maestro.CheckpointError,
    ):
        assert issubclass(err, maestro.MaestroError)


def test_version_comes_from_the_installed_distribution() -> None:
    from importlib.metadata import version

    assert maestro.__version__ == version("maestro-orchestrator")


def test_the_library_never_prints() -> None:
    import ast
    from pathlib import Path

    src = Path(maestro.__file__).parent
    for path in src.rglob("*.py"):
        if path.name == "__main__.py" or path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{path}:{node.lineno} prints"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys":
                assert node.attr not in {"stdout", "stderr"}, f"{path}:{node.lineno} writes to sys.{node.attr}"
