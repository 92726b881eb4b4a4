"""The ``environment`` decision (issue 14 §5): what commands run in a worktree need to use that worktree's code.

Asked once per session as ``engine.decide("environment", worktree=wt, main=checkout)``;
:func:`worktree_env` turns the decision (or :class:`EnvironmentFacts`) into the
variables to add for a command run in any worktree of the session — the coding
agent (``AgentRequest.env``), acceptance commands and gates::

    decision = engine.decide("environment", worktree=wt, main=repo)
    session.record(decision)
    extra = worktree_env(decision, wt, os.environ)      # {"PYTHONPATH": "<wt>/src:…"}

The set-up is read from the worktree (at the start of a session it holds the
user's tree) and compared with the main checkout:

``python-worktree-first``  a Python project (``pyproject.toml``, ``setup.py``, ``setup.cfg``,
                           ``requirements.txt``, or a ``src/`` folder holding a package): its import
                           roots go first on ``PYTHONPATH``.  An editable install of the main
                           checkout (a ``.pth`` path entry, or a meta-path finder appended to
                           ``sys.meta_path``) is only looked at after ``PYTHONPATH``, so the
                           worktree's code wins.  The roots come from ``[tool.setuptools]
                           package-dir``, ``[tool.setuptools.packages.find] where``, hatch's
                           ``packages``/``sources``, poetry's ``packages … from``, pdm's
                           ``package-dir``, ``setup.cfg``'s ``package_dir``/``where``, else a
                           ``src/`` folder holding a package, else the root.  Evidence: the editable
                           installs of the main checkout found in the site-packages of the
                           interpreter on ``PATH`` (``*.pth`` files, ``direct_url.json`` with
                           ``"editable": true``).
``node-reuse-main``        ``package.json`` and the lockfile are byte-identical in both and the main
                           checkout has ``node_modules/``: reused (``NODE_PATH``, and its ``.bin``
                           first on ``PATH``; a worktree inside the main checkout also finds it by
                           Node's own walk up the folders).
``node-install-in-worktree``  they differ (the evidence names the file), the main checkout has no
                           ``node_modules/``, or the worktree is outside the main checkout and the
                           project is one ``NODE_PATH`` cannot serve (``"type": "module"``,
                           ``workspaces``, a ``tsconfig.json``): install the dependencies in the worktree.
``none``                   anything else: no variables.

A project that is both gets both, joined by ``+`` (``python-worktree-first+node-reuse-main``).
The chosen option's evidence holds what :func:`worktree_env` needs: each import root
(a ``file`` relative to the worktree, detail :data:`ROOT_DETAIL`), the reused
``node_modules`` and its ``.bin`` (each an absolute ``file``, details :data:`NODE_MODULES_DETAIL`
and :data:`BIN_DETAIL`), so a decision read back from ``decisions.json`` gives the same variables.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from maestro.core.errors import DecisionError, error_text
from maestro.core.records import Decision, Evidence, Option
from maestro.decide.context import DecisionContext

__all__ = [
    "BIN_DETAIL",
    "KIND",
    "LOCKFILES",
    "NODE_INSTALL",
    "NODE_MODULES_DETAIL",
    "NODE_REUSE",
    "NOTHING",
    "PYTHON",
    "QUESTION",
    "ROOT_DETAIL",
    "EnvironmentFacts",
    "decide_environment",
    "editable_installs",
    "environment",
    "environment_facts",
    "python_roots",
    "worktree_env",
]

KIND = "environment"
QUESTION = "What do commands run in a worktree need to use the worktree's code?"
PYTHON = "python-worktree-first"
NODE_REUSE = "node-reuse-main"
NODE_INSTALL = "node-install-in-worktree"
NOTHING = "none"
ROOT_DETAIL = "import root of the worktree, first on PYTHONPATH"
"""The detail of the evidence naming an import root (relative to the worktree): what :func:`worktree_env` reads."""
NODE_MODULES_DETAIL = "the main checkout's node_modules, reused (NODE_PATH)"
"""The detail of the evidence naming the reused ``node_modules`` (absolute): what :func:`worktree_env` reads."""
BIN_DETAIL = "the main checkout's node_modules/.bin, first on PATH"
"""The detail of the evidence naming the reused ``node_modules/.bin`` (absolute): what :func:`worktree_env` reads."""
LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "bun.lock")
INSTALL_COMMANDS = {
    "package-lock.json": "npm ci",
    "npm-shrinkwrap.json": "npm ci",
    "yarn.lock": "yarn install --frozen-lockfile",
    "pnpm-lock.yaml": "pnpm install --frozen-lockfile",
    "bun.lockb": "bun install --frozen-lockfile",
    "bun.lock": "bun install --frozen-lockfile",
}
PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")
PROBE_TIMEOUT_S = 15.0
_PROBE = (
    "import json, site, sys\n"
    "dirs = list(site.getsitepackages()) if hasattr(site, 'getsitepackages') else []\n"
    "if site.ENABLE_USER_SITE: dirs.append(site.getusersitepackages())\n"
    "print(json.dumps({'site': dirs, 'executable': sys.executable}))\n"
)


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class EnvironmentFacts:
    """What :func:`worktree_env` needs: the import roots (relative to the worktree) and a reused ``node_modules``."""

    python_roots: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    node_modules: str | None = None
    node_bin: str | None = None
    node_install: bool = False


# -- Python -----------------------------------------------------------------------------------------------------
def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _table(doc: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    node: Any = doc
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _parent(path: str) -> str:
    parent = Path(path.strip("/")).parent.as_posix()
    return "." if parent in ("", ".") else parent


def _from_pyproject(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(root, where it was read) from a parsed ``pyproject.toml``."""
    found: list[tuple[str, str]] = []
    setuptools = _table(doc, "tool", "setuptools")
    for name, folder in _table(setuptools, "package-dir").items():
        if not isinstance(folder, str):
            continue
        if name == "":
            found.append((folder, f'[tool.setuptools] package-dir "" = {folder}'))
        elif "." not in name and Path(folder).name == name:
            found.append((_parent(folder), f"[tool.setuptools] package-dir {name} = {folder}"))
    for where in _strings(_table(setuptools, "packages", "find").get("where")):
        found.append((where, f"[tool.setuptools.packages.find] where = {where}"))
    for section in (("tool", "hatch", "build"), ("tool", "hatch", "build", "targets", "wheel")):
        table, label = _table(doc, *section), ".".join(section)
        for package in _strings(table.get("packages")):
            found.append((_parent(package), f"[{label}] packages = {package}"))
        sources = table.get("sources")
        for source in _strings(sources):
            found.append((source, f"[{label}] sources = {source}"))
        if isinstance(sources, Mapping):
            for top, prefix in sources.items():
                if prefix == "":
                    found.append((top, f'[{label}] sources {top} = ""'))
    for entry in _table(doc, "tool", "poetry").get("packages") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("include"), str):
            origin = entry.get("from")
            folder = origin if isinstance(origin, str) else "."
            found.append((folder, f"[tool.poetry] packages from = {folder}"))
    pdm = _table(doc, "tool", "pdm", "build").get("package-dir")
    if isinstance(pdm, str):
        found.append((pdm, f"[tool.pdm.build] package-dir = {pdm}"))
    return found


def _from_setup_cfg(text: str) -> list[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    found: list[tuple[str, str]] = []
    for line in parser.get("options", "package_dir", fallback="").splitlines():
        name, sep, folder = line.partition("=")
        if sep and not name.strip() and folder.strip():
            found.append((folder.strip(), f"[options] package_dir = ={folder.strip()}"))
    for where in parser.get("options.packages.find", "where", fallback="").split():
        found.append((where, f"[options.packages.find] where = {where}"))
    return found


def _holds_package(folder: Path) -> bool:
    try:
        return any(
            (p.is_dir() and (p / "__init__.py").is_file()) or (p.is_file() and p.suffix == ".py")
            for p in folder.iterdir()
        )
    except OSError:
        return False


def python_roots(root: Path) -> tuple[tuple[str, ...], tuple[Evidence, ...]]:
    """The import roots of the Python project at ``root`` (relative, POSIX, ``.`` for the root) and where each
    was read; ``((), ())`` when ``root`` holds no Python project."""
    src = root / "src"
    markers = [m for m in PYTHON_MARKERS if (root / m).is_file()]
    if not markers and not (src.is_dir() and _holds_package(src)):
        return (), ()
    found: list[tuple[str, Evidence]] = []
    notes: list[Evidence] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            notes.append(Evidence("file", "pyproject.toml", f"not read: {error_text(exc)}"))
        else:
            found += [(r, Evidence("file", "pyproject.toml", why)) for r, why in _from_pyproject(doc)]
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file():
        try:
            found += [
                (r, Evidence("file", "setup.cfg", why)) for r, why in _from_setup_cfg(setup_cfg.read_text("utf-8"))
            ]
        except (OSError, UnicodeDecodeError) as exc:
            notes.append(Evidence("file", "setup.cfg", f"not read: {error_text(exc)}"))
    roots: list[str] = []
    for raw, where in found:
        rel = Path(os.path.normpath(raw.strip() or ".")).as_posix()
        if rel.startswith("../") or rel == ".." or Path(rel).is_absolute():
            notes.append(Evidence("fact", f"{where.value}: {where.detail}", "outside the project: left alone"))
        elif not (root / rel).is_dir():
            notes.append(Evidence("fact", f"{where.value}: {where.detail}", f"{rel}/ is not in the worktree"))
        else:
            notes.append(where)
            if rel not in roots:
                roots.append(rel)
    if not roots:
        if src.is_dir() and _holds_package(src):
            roots, why = ["src"], "src/ holds a package (a src layout)"
        else:
            roots, why = ["."], f"{', '.join(markers)} at the root, no src layout"
        notes.append(Evidence("fact", why))
    evidence = (*(Evidence("file", r, ROOT_DETAIL) for r in roots), *notes)
    return tuple(roots), evidence


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _site_dirs(python: str) -> tuple[list[Path], str]:
    """The site-packages folders of ``python`` (it is run once), and the interpreter it is."""
    out = subprocess.run(  # a fixed probe, no shell; its environment is the caller's
        [python, "-c", _PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
    )
    if out.returncode != 0:
        raise OSError(f"{python} exited {out.returncode}: {' '.join(out.stderr.split())[-300:]}")
    data = json.loads(out.stdout)
    return [Path(d) for d in data["site"] if isinstance(d, str)], str(data["executable"])


def _file_url_path(url: str) -> Path | None:
    parts = urllib.parse.urlparse(url)
    if parts.scheme != "file":
        return None
    return Path(urllib.request.url2pathname(parts.path))


def _finders(site: Path, pth: Path, line: str, needles: tuple[str, ...]) -> list[Evidence]:
    """The modules a ``.pth`` import line loads from ``site`` that name the main checkout (a meta-path finder)."""
    found: list[Evidence] = []
    for statement in line.split(";"):
        words = statement.split()
        if len(words) < 2 or words[0] != "import":
            continue
        for module in " ".join(words[1:]).split(","):
            source = site / f"{module.strip().split('.')[0]}.py"
            try:
                text = source.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            hit = next((n for n in needles if re.search(re.escape(n) + r"(?![^/\\'\"\s])", text)), None)
            if hit is not None:
                found.append(Evidence("file", str(pth), f"a meta-path finder ({source.name}) maps imports to {hit}, "
                                      "after PYTHONPATH"))  # fmt: skip
    return found


def editable_installs(site_dirs: Iterable[Path], main: Path) -> tuple[Evidence, ...]:
    """What in ``site_dirs`` imports code from ``main``: ``*.pth`` path entries and finders, editable dists."""
    needles = tuple(dict.fromkeys((str(main), str(_resolved(main)))))
    main = _resolved(main)
    found: list[Evidence] = []
    for site in site_dirs:
        if not site.is_dir():
            continue
        for pth in sorted(site.glob("*.pth")):
            try:
                lines = pth.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in (s.strip() for s in lines):
                if not line or line.startswith("#"):
                    continue
                if line.startswith(("import ", "import\t")):  # a finder module, e.g. __editable___pkg_finder
                    found += _finders(site, pth, line, needles)
                    continue
                entry = _resolved(Path(line) if Path(line).is_absolute() else site / line)
                if _inside(entry, main):
                    found.append(Evidence("file", str(pth), f"puts {entry} on sys.path, after PYTHONPATH"))
        for direct in sorted(site.glob("*.dist-info/direct_url.json")):
            try:
                data = json.loads(direct.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict) or not isinstance(data.get("dir_info"), dict):
                continue
            where = _file_url_path(str(data.get("url", "")))
            if data["dir_info"].get("editable") is True and where is not None and _resolved(where) == main:
                dist = direct.parent.name.removesuffix(".dist-info")
                found.append(Evidence("dependency", dist, f"an editable install of {main}, recorded in {direct}"))
    return tuple(found)


def _python_evidence(main: Path, python: str | None, env: Mapping[str, str]) -> list[Evidence]:
    if python is None:
        path = env.get("PATH", os.defpath)
        python = shutil.which("python3", path=path) or shutil.which("python", path=path)
    if python is None:
        return [Evidence("fact", "no python on PATH", "cannot tell whether the main checkout is installed editable")]
    try:
        sites, exe = _site_dirs(python)
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError) as exc:
        return [Evidence("command", f"{python} -c <site-packages probe>", f"cannot tell: {error_text(exc)}")]
    found = list(editable_installs(sites, main))
    if not found:
        where = ", ".join(str(s) for s in sites) or "no site-packages"
        found.append(Evidence("fact", f"no editable install of {main} found for {exe}", where))
    return found


# -- Node -------------------------------------------------------------------------------------------------------
def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except FileNotFoundError:
        return not a.exists() and not b.exists()
    except OSError:
        return False


def _walls(worktree: Path) -> list[Evidence]:
    """What in the worktree's Node project does not read ``NODE_PATH`` (ESM ``import``, TypeScript, workspaces)."""
    found: list[Evidence] = []
    try:
        manifest = json.loads((worktree / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict) and manifest.get("type") == "module":
        found.append(Evidence("file", "package.json", '"type": "module": ESM import does not read NODE_PATH'))
    if isinstance(manifest, dict) and manifest.get("workspaces"):
        found.append(Evidence("file", "package.json", "workspaces: each member has node_modules of its own"))
    if (worktree / "tsconfig.json").is_file():
        found.append(Evidence("file", "tsconfig.json", "TypeScript does not read NODE_PATH"))
    return found


def _node(worktree: Path, main: Path) -> tuple[str | None, str, list[Evidence]]:
    """``(NODE_REUSE | NODE_INSTALL | None, why, evidence)`` for the Node project in ``worktree``, if any."""
    if not (worktree / "package.json").is_file() and not (main / "package.json").is_file():
        return None, "", []
    files = ["package.json", *(f for f in LOCKFILES if (worktree / f).exists() or (main / f).exists())]
    differ = [f for f in files if not _same_bytes(worktree / f, main / f)]
    lock = next((f for f in files[1:] if (worktree / f).exists()), None)
    install = Evidence("command", INSTALL_COMMANDS[lock] if lock else "npm install", "run in the worktree")
    if differ:
        why = f"node: {', '.join(differ)} differ from the main checkout's: install the dependencies in the worktree"
        return (
            NODE_INSTALL,
            why,
            [
                *(Evidence("file", f, "differs between the worktree and the main checkout") for f in differ),
                install,
            ],
        )
    modules = _resolved(main) / "node_modules"
    same = [Evidence("file", f, "the same in the worktree and the main checkout") for f in files]
    if not modules.is_dir():
        why = "node: the main checkout has no node_modules/ to reuse: install the dependencies in the worktree"
        return NODE_INSTALL, why, [*same, Evidence("fact", f"{modules} does not exist", "nothing to reuse"), install]
    if _inside(_resolved(worktree), _resolved(main)):
        walk = Evidence("fact", f"Node's resolution walks up from {worktree} to {modules}",
                        "require(), import and TypeScript find the main checkout's packages")  # fmt: skip
        return NODE_REUSE, _REUSED, [*same, Evidence("file", str(modules), NODE_MODULES_DETAIL), walk]
    walls = _walls(worktree)
    if walls:
        why = (f"node: the worktree is outside the main checkout and {walls[0].detail} ({walls[0].value}): "
               "install the dependencies in the worktree")  # fmt: skip
        return NODE_INSTALL, why, [*same, *walls, install]
    bins = Evidence("file", str(modules / ".bin"), BIN_DETAIL)
    return NODE_REUSE, _REUSED, [*same, Evidence("file", str(modules), NODE_MODULES_DETAIL), bins]


_REUSED = "node: package.json and the lockfile are the same as the main checkout's, whose node_modules is reused"


# -- the decision -----------------------------------------------------------------------------------------------
def decide_environment(
    worktree: Path, main: Path, *, python: str | None = None, env: Mapping[str, str] | None = None
) -> Decision:
    """The ``environment`` decision for ``worktree`` against the user's checkout ``main`` (see the module).

    ``python`` is the interpreter whose site-packages are searched for an editable install of
    ``main`` (default: ``python3`` or ``python`` on the ``PATH`` of ``env``, default ``os.environ``).
    """
    worktree, main = Path(worktree), Path(main)
    for name, folder in (("worktree", worktree), ("main", main)):
        if not folder.is_dir():
            raise DecisionError(f"{KIND}: the {name} {folder} is not a folder")
    parts: list[str] = []
    evidence: list[Evidence] = []
    reasons: list[str] = []
    roots, root_evidence = python_roots(worktree)
    if roots:
        parts.append(PYTHON)
        installs = _python_evidence(main, python, os.environ if env is None else env)
        evidence += [*root_evidence, *installs]
        shadow = [e for e in installs if e.kind in ("file", "dependency")]
        reasons.append(
            f"python: the worktree's {', '.join('root' if r == '.' else r + '/' for r in roots)} first on PYTHONPATH"
            + (f", ahead of the editable install of the main checkout ({shadow[0].value})" if shadow else "")
        )
    node, why, node_evidence = _node(worktree, main)
    if node is not None:
        parts.append(node)
        evidence += node_evidence
        reasons.append(why)
    if not parts:
        found = "no " + ", ".join((*PYTHON_MARKERS, "package.json")) + " or src/ package in the worktree"
        why = "nothing to set: the worktree is neither a Python nor a Node project"
        return Decision(KIND, QUESTION, NOTHING, why, (Option(NOTHING, 1.0, (Evidence("fact", found),)),), 0.8)
    choice = "+".join(parts)
    plain = Option(NOTHING, 0.0, (Evidence("fact", "without the variables, commands may use code that is not the "
                                          "worktree's (an installed copy, the main checkout's)"),),
                   "the environment as it is")  # fmt: skip
    chosen = Option(choice, 1.0, tuple(evidence), "variables: worktree_env(decision, worktree)")
    confidence = 0.9 if any(e.kind == "dependency" or "sys.path" in e.detail for e in evidence) else 0.8
    return Decision(KIND, QUESTION, choice, "; ".join(reasons), (chosen, plain), confidence)


def environment(ctx: DecisionContext) -> Decision:
    """The ``environment`` strategy: params ``worktree`` (required), ``main`` (default: the context's
    repository), ``python`` and ``env`` (see :func:`decide_environment`)."""
    worktree = ctx.params.get("worktree")
    main = ctx.params.get("main", ctx.repo)
    if not isinstance(worktree, (str, os.PathLike)) or not isinstance(main, (str, os.PathLike)):
        raise DecisionError(f"{KIND}: pass worktree=<path> and main=<the user's checkout> (got {worktree!r}, {main!r})")
    python, env = ctx.params.get("python"), ctx.params.get("env")
    if python is not None and not isinstance(python, (str, os.PathLike)):
        raise DecisionError(f"{KIND}: python must be a path to an interpreter, not {python!r}")
    if env is not None and not isinstance(env, Mapping):
        raise DecisionError(f"{KIND}: env must be a mapping of variables, not {type(env).__name__}")
    return decide_environment(Path(worktree), Path(main), python=None if python is None else os.fspath(python), env=env)


# -- the variables ----------------------------------------------------------------------------------------------
def environment_facts(decision: Decision | Mapping[str, Any]) -> EnvironmentFacts:
    """What an ``environment`` decision (a record, or its JSON form from ``decisions.json``) sets up."""
    if isinstance(decision, Mapping):
        kind, choice = decision.get("kind"), decision.get("choice")
        chosen: Any = next((o for o in decision.get("options") or () if isinstance(o, Mapping)
                            and o.get("name") == choice), {})  # fmt: skip
        items = [
            (str(e.get("kind")), str(e.get("value")), str(e.get("detail", "")))
            for e in chosen.get("evidence") or ()
            if isinstance(e, Mapping)
        ]
    else:
        kind, choice = decision.kind, decision.choice
        option = next((o for o in decision.options if o.name == choice), None)
        items = [(e.kind, e.value, e.detail) for e in (option.evidence if option is not None else ())]
    if kind != KIND or not isinstance(choice, str):
        raise DecisionError(f"{KIND}: expected an environment decision, not one of kind {kind!r}")
    roots = tuple(v for k, v, d in items if k == "file" and d == ROOT_DETAIL)
    modules = next((v for k, v, d in items if k == "file" and d == NODE_MODULES_DETAIL), None)
    bins = next((v for k, v, d in items if k == "file" and d == BIN_DETAIL), None)
    return EnvironmentFacts(roots, modules, bins, NODE_INSTALL in choice.split("+"))


def _prepend(first: list[str], existing: str | None) -> str:
    rest = [p for p in (existing or "").split(os.pathsep) if p and p not in first]
    return os.pathsep.join([*first, *rest])


def worktree_env(
    decision_or_facts: Decision | Mapping[str, Any] | EnvironmentFacts,
    worktree: Path,
    base_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables to add for a command run in ``worktree``: ``PYTHONPATH`` with the worktree's import roots
    first (ahead of ``base_env``'s), ``NODE_PATH`` with the reused ``node_modules`` first; ``{}`` when none apply.

    ``base_env`` is the environment the command would otherwise get (default: ``os.environ``); the result
    is meant to be laid over it (``{**base_env, **worktree_env(...)}``).  A decision works for every
    worktree of the session: the roots are relative to the worktree.
    """
    facts = (
        decision_or_facts if isinstance(decision_or_facts, EnvironmentFacts) else environment_facts(decision_or_facts)
    )
    base = os.environ if base_env is None else base_env
    out: dict[str, str] = {}
    top = os.path.abspath(worktree)
    if facts.python_roots:
        roots = [os.path.normpath(os.path.join(top, r)) for r in facts.python_roots]
        out["PYTHONPATH"] = _prepend(list(dict.fromkeys(roots)), base.get("PYTHONPATH"))
    if facts.node_modules:
        out["NODE_PATH"] = _prepend([facts.node_modules], base.get("NODE_PATH"))
    if facts.node_bin:
        out["PATH"] = _prepend([facts.node_bin], base.get("PATH", os.defpath))
    return out
