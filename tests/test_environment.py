"""The ``environment`` decision and :func:`worktree_env`: commands in a worktree use the worktree's code.

The Python cases are real: a fresh virtual environment in tmp, the main checkout
installed into it with ``pip install -e`` (a src layout gets setuptools' path
``.pth``, a flat layout its meta-path finder), a copy of the project as the
worktree with a changed function, and the interpreter run with and without the
variables.  When pip cannot build an editable install here (no index reachable),
the two ``.pth`` forms are written the way setuptools writes them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

from maestro.agents import AgentRequest
from maestro.agents.aider import AiderAgent
from maestro.agents.base import Agent
from maestro.agents.claude import ClaudeAgent
from maestro.agents.codex import CodexAgent
from maestro.agents.command import CommandAgent
from maestro.core.errors import AgentError, DecisionError
from maestro.core.records import Decision
from maestro.decide.engine import DecisionEngine
from maestro.decide.strategies.environment import (
    NODE_INSTALL,
    NODE_REUSE,
    NOTHING,
    PYTHON,
    EnvironmentFacts,
    decide_environment,
    editable_installs,
    environment_facts,
    python_roots,
    worktree_env,
)
from maestro.plan.tasks import Task
from tests.support.fakes import FAKES_DIR, invocations
from tests.support.git import git_init

PYPROJECT_SRC = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "srcpkg"
version = "0.1"

[tool.setuptools.packages.find]
where = ["src"]
"""
PYPROJECT_FLAT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "flatpkg"
version = "0.1"

[tool.setuptools]
packages = ["flatpkg"]
"""
PROBE = "import {pkg}; print({pkg}.f())"


def _project(root: Path, layout: str, value: str) -> Path:
    """A project with one package whose ``f()`` returns ``value``: ``src`` (srcpkg) or ``flat`` (flatpkg)."""
    pkg = root / ("src/srcpkg" if layout == "src" else "flatpkg")
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"def f():\n    return {value!r}\n")
    (root / "pyproject.toml").write_text(PYPROJECT_SRC if layout == "src" else PYPROJECT_FLAT)
    (root / "docs").mkdir()  # somewhere to run from that is not the project's root
    return root


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def _simulate_editable(venv: Path, project: Path, layout: str) -> None:
    """What setuptools (>= 64) writes for ``pip install -e``: a path ``.pth`` (src layout), a finder (flat layout)."""
    site = _site_packages(venv)
    name = "srcpkg" if layout == "src" else "flatpkg"
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "direct_url.json").write_text(json.dumps({"dir_info": {"editable": True}, "url": project.as_uri()}))
    if layout == "src":
        (site / f"__editable__.{name}-0.1.pth").write_text(str(project / "src"))
        return
    finder = f"__editable___{name}_0_1_finder"
    (site / f"{finder}.py").write_text(
        textwrap.dedent(f"""\
        import sys
        from importlib.machinery import ModuleSpec
        from importlib.util import spec_from_file_location
        MAPPING = {{{name!r}: {str(project / name)!r}}}

        class _EditableFinder:
            @classmethod
            def find_spec(cls, fullname, path=None, target=None):
                if fullname in MAPPING:
                    return spec_from_file_location(fullname, MAPPING[fullname] + "/__init__.py",
                                                   submodule_search_locations=[MAPPING[fullname]])
                return None

        def install():
            if not any(finder == _EditableFinder for finder in sys.meta_path):
                sys.meta_path.append(_EditableFinder)
        """)
    )
    (site / f"__editable__.{name}-0.1.pth").write_text(f"import {finder}; {finder}.install()")


@attrs.frozen
class Installed:
    python: Path
    main: Path  # holds main/src-project and main/flat-project
    how: str


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv with both main-checkout projects installed editable (really, or as setuptools would)."""
    top = tmp_path_factory.mktemp("env")
    src = _project(top / "main-src", "src", "main")
    flat = _project(top / "main-flat", "flat", "main")
    venv = top / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(src), "-e", str(flat)]
    try:
        done = subprocess.run(pip, capture_output=True, text=True, timeout=300, env=env, cwd=top)
    except subprocess.TimeoutExpired:
        done = None
    how = "pip install -e"
    if done is None or done.returncode != 0:  # no index here: write what setuptools writes
        for name in [p.name for p in _site_packages(venv).iterdir() if "srcpkg" in p.name or "flatpkg" in p.name]:
            target = _site_packages(venv) / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        _simulate_editable(venv, src, "src")
        _simulate_editable(venv, flat, "flat")
        how = "simulated"
    return Installed(python, top, how)


def _worktree(main: Path, dest: Path) -> Path:
    """A copy of ``main`` whose ``f()`` returns ``"worktree"``."""
    shutil.copytree(main, dest)
    init = next(p for p in dest.rglob("__init__.py") if "pkg" in p.parent.name)
    init.write_text("def f():\n    return 'worktree'\n")
    return dest


def _run(python: Path, pkg: str, cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run([str(python), "-c", PROBE.format(pkg=pkg)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    return out.stdout.strip()


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONSAFEPATH")}


@pytest.mark.parametrize(("layout", "pkg", "what"), [("src", "srcpkg", "sys.path"), ("flat", "flatpkg", "finder")])
def test_the_worktree_imports_its_own_code_only_with_worktree_env(
    installed: Installed, tmp_path: Path, layout: str, pkg: str, what: str
) -> None:
    main = installed.main / f"main-{layout}"
    wt = _worktree(main, tmp_path / "wt")
    base = _base_env()
    # without the variables the editable install of the main checkout wins (run from a subfolder: no '' on sys.path
    # that happens to be the project root)
    assert _run(installed.python, pkg, wt / "docs", base) == "main", installed.how

    decision = decide_environment(wt, main, python=str(installed.python))
    assert decision.kind == "environment" and decision.choice == PYTHON, decision
    evidence = [str(e) for o in decision.options if o.name == decision.choice for e in o.evidence]
    assert any(what in e and ".pth" in e and str(main) in e for e in evidence), evidence
    assert any(e.startswith(f"dependency {pkg}-0.1") and "editable install" in e for e in evidence), evidence
    assert "ahead of the editable install of the main checkout" in decision.rationale

    extra = worktree_env(decision, wt, base)
    root = wt / "src" if layout == "src" else wt
    assert extra == {"PYTHONPATH": str(root)}
    assert _run(installed.python, pkg, wt / "docs", {**base, **extra}) == "worktree"
    assert _run(installed.python, pkg, wt, {**base, **extra}) == "worktree"


def test_the_roots_go_ahead_of_an_existing_pythonpath(installed: Installed, tmp_path: Path) -> None:
    main = installed.main / "main-src"
    wt = _worktree(main, tmp_path / "wt")
    other = tmp_path / "other" / "srcpkg"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("def f():\n    return 'other'\n")
    base = {**_base_env(), "PYTHONPATH": str(other.parent)}
    assert _run(installed.python, "srcpkg", wt / "docs", base) == "other"
    extra = worktree_env(decide_environment(wt, main, python=str(installed.python)), wt, base)
    assert extra["PYTHONPATH"].split(os.pathsep) == [str(wt / "src"), str(other.parent)]
    assert _run(installed.python, "srcpkg", wt / "docs", {**base, **extra}) == "worktree"


def test_the_engine_decides_it_and_a_recorded_decision_gives_the_same_variables(
    installed: Installed, tmp_path: Path
) -> None:
    main = installed.main / "main-src"
    wt = _worktree(main, tmp_path / "wt")
    decision = DecisionEngine().decide("environment", worktree=wt, main=main, python=installed.python)
    assert decision.choice == PYTHON
    as_json = json.loads(json.dumps(attrs.asdict(decision)))
    assert environment_facts(as_json) == environment_facts(decision) == EnvironmentFacts(("src",))
    assert worktree_env(as_json, wt, {}) == worktree_env(decision, wt, {}) == {"PYTHONPATH": str(wt / "src")}
    other = tmp_path / "another-worktree"  # one decision serves every worktree of the session
    assert worktree_env(decision, other, {}) == {"PYTHONPATH": str(other / "src")}


def test_editable_installs_ignore_what_points_elsewhere(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    main = tmp_path / "main"
    (main / "src").mkdir(parents=True)
    (site / "a.pth").write_text(f"{tmp_path / 'main2' / 'src'}\n# {main}\n")
    (site / "b.pth").write_text(f"{main / 'src'}\n")
    (site / "_finder.py").write_text(f"MAPPING = {{'x': '{tmp_path / 'main-other'}/x'}}\n")
    (site / "c.pth").write_text("import _finder; _finder.install()\n")
    (site / "d-1.dist-info").mkdir()
    (site / "d-1.dist-info" / "direct_url.json").write_text(json.dumps({"url": main.as_uri(), "dir_info": {}}))
    found = editable_installs([site, tmp_path / "missing"], main)
    assert [(e.kind, Path(e.value).name) for e in found] == [("file", "b.pth")]


def test_no_interpreter_on_path_is_recorded_and_the_roots_still_go_first(tmp_path: Path) -> None:
    main = _project(tmp_path / "main", "src", "main")
    decision = decide_environment(main, main, env={"PATH": str(tmp_path / "empty")})
    assert decision.choice == PYTHON
    assert any("no python on PATH" in str(e) for o in decision.options for e in o.evidence)
    assert worktree_env(decision, main, {}) == {"PYTHONPATH": str(main / "src")}


# -- where the import roots come from ---------------------------------------------------------------------------
ROOTS = [
    ({"pyproject.toml": '[tool.setuptools]\npackage-dir = {"" = "lib"}\n'}, ["lib/p"], ("lib",)),
    ({"pyproject.toml": '[tool.setuptools.package-dir]\np = "code/p"\n'}, ["code/p"], ("code",)),
    ({"pyproject.toml": '[tool.setuptools.packages.find]\nwhere = ["a", "b"]\n'}, ["a/p", "b/q"], ("a", "b")),
    ({"pyproject.toml": '[tool.hatch.build.targets.wheel]\npackages = ["src/p"]\n'}, ["src/p"], ("src",)),
    ({"pyproject.toml": '[tool.hatch.build.targets.wheel]\nsources = ["lib"]\n'}, ["lib/p"], ("lib",)),
    ({"pyproject.toml": '[tool.hatch.build]\nsources = {"lib" = ""}\n'}, ["lib/p"], ("lib",)),
    ({"pyproject.toml": '[tool.poetry]\npackages = [{include = "p", from = "lib"}]\n'}, ["lib/p"], ("lib",)),
    ({"pyproject.toml": '[tool.poetry]\npackages = [{include = "p"}]\n'}, ["p"], (".",)),
    ({"pyproject.toml": '[tool.pdm.build]\npackage-dir = "lib"\n'}, ["lib/p"], ("lib",)),
    ({"setup.cfg": "[options]\npackage_dir =\n    =lib\n"}, ["lib/p"], ("lib",)),
    ({"setup.cfg": "[options.packages.find]\nwhere = lib\n"}, ["lib/p"], ("lib",)),
    ({"pyproject.toml": "[project]\nname = 'p'\n"}, ["src/p"], ("src",)),  # a src/ folder holding a package
    ({"pyproject.toml": "[project]\nname = 'p'\n"}, ["p"], (".",)),
    ({"setup.py": "from setuptools import setup\nsetup()\n"}, ["p"], (".",)),
    ({"requirements.txt": "attrs\n"}, [], (".",)),
    ({}, ["src/p"], ("src",)),  # no manifest, but src/ holds a package
    ({"pyproject.toml": "not [valid toml"}, ["src/p"], ("src",)),  # unreadable: the folders decide
    ({"pyproject.toml": '[tool.setuptools.packages.find]\nwhere = ["gone"]\n'}, ["p"], (".",)),  # where is missing
    ({"pyproject.toml": '[tool.setuptools.packages.find]\nwhere = ["../up"]\n'}, ["p"], (".",)),  # outside
]


@pytest.mark.parametrize(("files", "packages", "roots"), ROOTS)
def test_the_import_roots(tmp_path: Path, files: dict[str, str], packages: list[str], roots: tuple[str, ...]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for package in packages:
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    found, evidence = python_roots(tmp_path)
    assert found == roots
    assert [e.value for e in evidence if e.detail.startswith("import root")] == list(roots)


def test_a_folder_that_is_not_a_python_project_has_no_roots(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("")
    assert python_roots(tmp_path) == ((), ())


# -- Node -------------------------------------------------------------------------------------------------------
def _node_project(root: Path, *, lock: str = "{}\n", modules: bool = True, manifest: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(manifest or '{"name": "app", "dependencies": {"left-pad": "1.3.0"}}\n')
    (root / "package-lock.json").write_text(lock)
    if modules:
        (root / "node_modules" / "left-pad").mkdir(parents=True)
        (root / "node_modules" / "left-pad" / "index.js").write_text("module.exports = (s) => 'padded ' + s;\n")
    return root


def _evidence(decision: Decision) -> list[str]:
    return [str(e) for o in decision.options if o.name == decision.choice for e in o.evidence]


def test_node_unchanged_inside_the_checkout_reuses_its_node_modules(tmp_path: Path) -> None:
    main = _node_project(tmp_path / "repo")
    wt = main / ".git" / "maestro" / "worktrees" / "s1" / "w1"
    _node_project(wt, modules=False)
    decision = decide_environment(wt, main, env={})
    assert decision.choice == NODE_REUSE, decision
    assert "file package.json (the same in the worktree and the main checkout)" in _evidence(decision)
    assert any("walks up" in e for e in _evidence(decision))
    assert worktree_env(decision, wt, {"NODE_PATH": "/x"}) == {"NODE_PATH": f"{main / 'node_modules'}{os.pathsep}/x"}


def test_node_unchanged_outside_the_checkout_reuses_it_by_node_path_and_path(tmp_path: Path) -> None:
    main = _node_project(tmp_path / "repo")
    wt = _node_project(tmp_path / "elsewhere" / "w1", modules=False)
    decision = decide_environment(wt, main, env={})
    assert decision.choice == NODE_REUSE
    extra = worktree_env(decision, wt, {"PATH": "/usr/bin"})
    assert extra == {"NODE_PATH": str(main / "node_modules"),
                     "PATH": f"{main / 'node_modules' / '.bin'}{os.pathsep}/usr/bin"}  # fmt: skip
    node = shutil.which("node")
    if node is not None:  # the reuse works: require() finds the main checkout's package
        (wt / "index.js").write_text("console.log(require('left-pad')('x'))\n")
        out = subprocess.run([node, "index.js"], cwd=wt, env={**os.environ, **extra}, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert out.stdout.strip() == "padded x", out.stderr


def test_node_with_a_changed_lockfile_must_install_in_the_worktree(tmp_path: Path) -> None:
    main = _node_project(tmp_path / "repo")
    wt = _node_project(tmp_path / "wt", lock='{"changed": true}\n', modules=False)
    decision = decide_environment(wt, main, env={})
    assert decision.choice == NODE_INSTALL
    assert "file package-lock.json (differs between the worktree and the main checkout)" in _evidence(decision)
    assert "command npm ci (run in the worktree)" in _evidence(decision)
    assert "package-lock.json" in decision.rationale
    assert environment_facts(decision).node_install
    assert worktree_env(decision, wt, {}) == {}


def test_node_without_node_modules_in_the_checkout_must_install(tmp_path: Path) -> None:
    main = _node_project(tmp_path / "repo", modules=False)
    wt = _node_project(tmp_path / "wt", modules=False)
    decision = decide_environment(wt, main, env={})
    assert decision.choice == NODE_INSTALL and "no node_modules" in decision.rationale
    assert worktree_env(decision, wt, {}) == {}


def test_node_esm_outside_the_checkout_must_install(tmp_path: Path) -> None:
    manifest = '{"name": "app", "type": "module"}\n'
    main = _node_project(tmp_path / "repo", manifest=manifest)
    wt = _node_project(tmp_path / "wt", manifest=manifest, modules=False)
    decision = decide_environment(wt, main, env={})
    assert decision.choice == NODE_INSTALL and "ESM" in decision.rationale


def test_python_and_node_together(tmp_path: Path) -> None:
    main = _node_project(_project(tmp_path / "repo", "src", "main"))
    wt = main / ".git" / "maestro" / "worktrees" / "s1" / "w1"
    _node_project(_project(wt, "src", "wt"), modules=False)
    decision = decide_environment(wt, main, env={})
    assert decision.choice == f"{PYTHON}+{NODE_REUSE}"
    assert set(worktree_env(decision, wt, {})) == {"PYTHONPATH", "NODE_PATH"}


def test_anything_else_sets_nothing(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "x"\n')
    decision = decide_environment(tmp_path, tmp_path)
    assert decision.choice == NOTHING and "neither a Python nor a Node project" in decision.rationale
    assert worktree_env(decision, tmp_path) == {}


def test_bad_input_is_a_decision_error(tmp_path: Path) -> None:
    with pytest.raises(DecisionError, match="is not a folder"):
        decide_environment(tmp_path / "missing", tmp_path)
    with pytest.raises(DecisionError, match="pass worktree="):
        DecisionEngine().decide("environment", main=tmp_path)
    with pytest.raises(DecisionError, match="expected an environment decision"):
        worktree_env(Decision("gate", "q", "pytest", "r"), tmp_path)


# -- the agent's process sees request.env -----------------------------------------------------------------------
TASK = Task("T1", "Add calculator core", description="Write add(a, b).", acceptance=("true",), files=("calc.py",))


def test_a_command_agent_sees_the_request_env_over_its_own(tmp_path: Path) -> None:
    agent = CommandAgent('printf "%s|%s|%s" "$WHO" "$OWN" "$MAESTRO_TASK_ID" > seen.txt',
                         env={"WHO": "agent", "OWN": "kept"})  # fmt: skip
    result = agent.run(AgentRequest(TASK, tmp_path, timeout_s=30, env={"WHO": "request", "MAESTRO_TASK_ID": "no"}))
    assert result.status == "succeeded", result
    assert (tmp_path / "seen.txt").read_text() == "request|kept|T1"


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClaudeAgent(executable=str(FAKES_DIR / "claude"), env={"FAKE_SCENARIO": "auth"}),
        lambda: CodexAgent(executable=str(FAKES_DIR / "codex"), env={"FAKE_SCENARIO": "auth"}),
        lambda: AiderAgent(executable=str(FAKES_DIR / "aider"), env={"FAKE_SCENARIO": "auth"}),
    ],
    ids=["claude", "codex", "aider"],
)
def test_each_cli_adapter_passes_the_request_env(make: object, tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    (repo / "calc.py").write_text("x = 1\n")
    log = tmp_path / "fake.log"
    agent: Agent = make()  # type: ignore[operator]
    env = {"FAKE_SCENARIO": "success", "FAKE_LOG": str(log), "FAKE_WRITE": "calc.py", "FAKE_CONTENT": "y = 2\n"}
    result = agent.run(AgentRequest(TASK, repo, timeout_s=60, env=env))
    assert (result.status, result.failure_class) == ("succeeded", None), result  # the request's scenario, not "auth"
    assert invocations(log, agent.name)  # the fake read FAKE_LOG from the request's env
    assert (repo / "calc.py").read_text() == "y = 2\n"


def test_a_request_env_must_map_names_to_strings(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"AgentRequest\.env"):
        AgentRequest(TASK, tmp_path, env={"X": 1})  # type: ignore[dict-item]
