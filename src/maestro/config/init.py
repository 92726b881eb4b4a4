"""Setting a repository up for maestro (``maestro init``): the files it writes, compared, then written atomically.

Writes, relative to the top of the git repository::

    .flow/maestro/config.yaml                      always: every setting with its default, the detected gates
    .claude/commands/flow/autonomous.md            with --claude: the /flow:autonomous slash command
    .claude/skills/<name>/SKILL.md                 with --claude: maestro's own skills

The gates in ``config.yaml`` are the commands the ``gate`` decisions find in the
repository (:mod:`maestro.decide.strategies.gate`); a gate with no evidence is
written as ``command: null``.  What was detected comes back with its evidence
(:class:`Detection`: each gate decision, the stack of each ecosystem — manifests,
declared dependencies, the packages the code imports — and the entry points), for
``maestro init`` to print; :func:`detect` gives it without writing anything, and
``dry_run=True`` says what each file would become without writing it.  Each file is compared with what maestro would
write: the same text is left alone (``unchanged``: a second run writes nothing),
a missing file is written (``created``), and a file that differs is kept
(``kept (differs; use --force)``) unless ``force`` (``overwritten``).  Every
write is atomic.  The library never prints; it logs to the ``maestro`` logger.

The command line's half (the parser and what ``maestro init`` prints) is
:mod:`maestro.cli.init`; ``docs/claude-code.md`` describes what the user sees.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Final

import attrs

from maestro.agents.registry import install_skills, shipped_skills
from maestro.config.model import GATE_NAMES
from maestro.config.writer import default_config_yaml
from maestro.core.errors import MaestroError
from maestro.core.records import Decision
from maestro.decide.engine import DecisionEngine
from maestro.decide.manifests import MANIFESTS
from maestro.decide.repofacts import EntryPoint, Import, RepoFacts
from maestro.decide.strategies import gate_command
from maestro.store.filestore import atomic_write, find_repo

__all__ = [
    "COMMAND_PATH",
    "CONFIG_PATH",
    "CREATED",
    "KEPT",
    "OVERWRITTEN",
    "UNCHANGED",
    "Detection",
    "FileResult",
    "InitResult",
    "Stack",
    "command_text",
    "detect",
    "detect_gates",
    "init_project",
]

log = logging.getLogger("maestro")

CONFIG_PATH: Final = PurePosixPath(".flow/maestro/config.yaml")
COMMAND_PATH: Final = PurePosixPath(".claude/commands/flow/autonomous.md")
SKILLS_DIR: Final = PurePosixPath(".claude/skills")

CREATED: Final = "created"
UNCHANGED: Final = "unchanged"
KEPT: Final = "kept (differs; use --force)"
OVERWRITTEN: Final = "overwritten"


@attrs.frozen
class FileResult:
    """One file ``maestro init`` looked after: its path relative to the repository, and what was done."""

    path: PurePosixPath
    action: str  # CREATED | UNCHANGED | KEPT | OVERWRITTEN

    @property
    def written(self) -> bool:
        return self.action in (CREATED, OVERWRITTEN)


@attrs.frozen
class Stack:
    """One ecosystem of the repository: its manifests, how many source files, the dependencies declared, and the
    packages the code imports that are not the language's own (the first site of each)."""

    ecosystem: str
    manifests: tuple[str, ...]
    source_files: int
    declared: tuple[str, ...]
    imports: tuple[Import, ...]


@attrs.frozen
class Detection:
    """What ``maestro init`` detected: each gate's decision (its choice, options and evidence), and the scan."""

    repo: Path
    gates: Mapping[str, Decision]
    facts: RepoFacts

    @property
    def commands(self) -> dict[str, str | None]:
        """The command of each gate (``{junit}`` still to be filled in), None for a gate with no evidence."""
        return {name: gate_command(decision) for name, decision in self.gates.items()}

    @property
    def stacks(self) -> tuple[Stack, ...]:
        """The ecosystems, the primary one first."""
        f = self.facts
        stacks = []
        for eco in f.ecosystems:
            manifests = tuple(m for m in f.manifests if _manifest_ecosystem(m) == eco)
            firsts: dict[str, Import] = {}
            for imp in f.imports:
                if imp.ecosystem == eco and not imp.builtin:
                    firsts.setdefault(imp.name, imp)
            declared = tuple(d.name for d in f.dependencies_of(eco))
            stacks.append(Stack(eco, manifests, f.source_counts.get(eco, 0), declared, tuple(firsts.values())))
        return tuple(stacks)

    @property
    def entry_points(self) -> tuple[EntryPoint, ...]:
        """The commands the project declares and the files that run as programs, declared first."""
        return self.facts.entry_points


def _manifest_ecosystem(rel: str) -> str | None:
    name = rel.rsplit("/", 1)[-1]
    return "python" if name.startswith("requirements") or "requirements/" in rel else MANIFESTS.get(name)


@attrs.frozen
class InitResult:
    """What ``maestro init`` did (or, with ``dry_run``, would do): the repository (its top folder), each file in the
    order written, the gates' commands, and what was detected."""

    repo: Path
    files: tuple[FileResult, ...]
    gates: Mapping[str, str | None]
    detection: Detection
    dry_run: bool = False

    @property
    def written(self) -> tuple[FileResult, ...]:
        """The files created or overwritten (none on a second run)."""
        return tuple(f for f in self.files if f.written)

    def action(self, path: str | PurePosixPath) -> str:
        """The action for ``path`` (relative, as in :attr:`files`); KeyError if init did not look at it."""
        for f in self.files:
            if f.path == PurePosixPath(path):
                return f.action
        raise KeyError(str(path))


# -- what is written ------------------------------------------------------------------------------------------------


def detect(repo: Path | str) -> Detection:
    """What ``maestro init`` detects in the repository ``repo`` (its top folder): the gate decisions and the scan.

    Reads only.  One engine, so the repository is scanned once for the four gates.
    """
    engine = DecisionEngine()
    top = Path(repo)
    gates: dict[str, Decision] = {}
    for name in GATE_NAMES:
        gates[name] = engine.decide("gate", repo=top, gate=name)
        log.debug("gate %s: %s", name, gates[name].rationale)
    return Detection(top, gates, engine.facts(top))


def detect_gates(repo: Path) -> dict[str, str | None]:
    """The command of each gate (tests, lint, typecheck, security) the gate decisions find; None without evidence."""
    return detect(repo).commands


def command_text() -> str:
    """The ``/flow:autonomous`` slash command maestro ships (``maestro/data/commands/flow/autonomous.md``)."""
    source = importlib.resources.files("maestro").joinpath("data", *COMMAND_PATH.parts[1:])
    try:
        return source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # pragma: no cover - a broken installation
        raise MaestroError(f"{source}: maestro's /flow:autonomous command is missing from this installation") from exc


# -- comparing and writing ------------------------------------------------------------------------------------------


def _is_current(dest: Path, text: str) -> bool | None:
    """None: ``dest`` is missing; True: it holds ``text``; False: it holds something else (or cannot be read).

    Read as text (universal newlines), as :func:`~maestro.agents.registry.install_skills` compares: a copy
    whose line ends git turned into CRLF is still the same file.
    """
    try:
        if not dest.exists():
            return None
    except OSError as exc:  # a folder on the way that cannot be searched
        raise MaestroError(f"{dest}: cannot read: {exc.strerror or exc}") from exc
    if not dest.is_file():
        raise MaestroError(f"{dest}: is in the way: a file is to be written there")
    try:
        return dest.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


def _write(dest: Path, text: str) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MaestroError(f"{dest.parent}: cannot create: {exc.strerror or exc}") from exc
    atomic_write(dest, text)  # a StoreError naming dest if it cannot


def _action(current: bool | None, force: bool) -> str:
    """What becomes of a file: missing → created; the same → unchanged; differs → kept, or overwritten with force."""
    if current is None:
        return CREATED
    if current:
        return UNCHANGED
    return OVERWRITTEN if force else KEPT


def _place(
    repo: Path, rel: PurePosixPath, text: str, current: bool | None, *, force: bool, dry_run: bool
) -> FileResult:
    dest = repo / rel
    action = _action(current, force)
    if action == KEPT:
        log.info("%s differs from what maestro init writes; kept (use --force to replace it)", dest)
    elif action != UNCHANGED and not dry_run:
        _write(dest, text)
        log.info("%s: %s", dest, action)
    return FileResult(rel, action)


# -- the library call -----------------------------------------------------------------------------------------------


def init_project(repo: Path | str, *, claude: bool, force: bool, dry_run: bool = False) -> InitResult:
    """Set up ``repo`` (a folder inside a git repository) for maestro; see the module's docstring.

    Idempotent: a second call writes nothing and reports every file ``unchanged``.
    ``dry_run``: nothing is written; each file's action is what a real run would do.
    A folder that is not in a git repository, a folder in the way of a file, or a
    path that cannot be written raises :class:`~maestro.MaestroError` with one line
    naming the path; the checks that can be made first are made before anything is
    written.
    """
    top = find_repo(Path(repo).absolute())  # StoreError naming the full path: no such directory, not a git repository
    detection = detect(top)
    gates = detection.commands
    planned: list[tuple[PurePosixPath, str]] = [(CONFIG_PATH, default_config_yaml(gates))]
    skills: list[tuple[PurePosixPath, str]] = []
    if claude:
        planned.append((COMMAND_PATH, command_text()))
        for source in shipped_skills():
            skills.append((SKILLS_DIR / source.parent.name / "SKILL.md", source.read_text(encoding="utf-8")))
    # Compare everything first: a folder in the way is refused before any file is written.
    current = {rel: _is_current(top / rel, text) for rel, text in (*planned, *skills)}

    files = [_place(top, rel, text, current[rel], force=force, dry_run=dry_run) for rel, text in planned]
    if skills and dry_run:
        files += [FileResult(rel, _action(current[rel], force)) for rel, _text in skills]
    elif skills:
        written = set(install_skills(top, force=force))  # it skips the same files and keeps the differing ones
        for rel, _text in skills:
            was = current[rel]
            if top / rel in written:
                action = CREATED if was is None else OVERWRITTEN
            else:
                action = UNCHANGED if was is True else KEPT
            files.append(FileResult(rel, action))
    result = InitResult(top, tuple(files), gates, detection, dry_run)
    log.info("maestro init %s%s: %d file(s) written, %d unchanged, %d kept", top, " (dry run)" if dry_run else "",
             0 if dry_run else len(result.written), sum(f.action == UNCHANGED for f in files),
             sum(f.action == KEPT for f in files))  # fmt: skip
    return result
