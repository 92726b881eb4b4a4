"""Setting a repository up for maestro (``maestro init``): the files it writes, compared, then written atomically.

Writes, relative to the top of the git repository::

    .flow/maestro/config.yaml                      always: every setting with its default, the detected gates
    .claude/commands/flow/autonomous.md            with --claude: the /flow:autonomous slash command
    .claude/skills/<name>/SKILL.md                 with --claude: maestro's own skills

The gates in ``config.yaml`` are the commands the ``gate`` decisions find in the
repository (:mod:`maestro.decide.strategies.gate`); a gate with no evidence is
written as ``command: null``.  Each file is compared with what maestro would
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
from maestro.decide.engine import DecisionEngine
from maestro.decide.strategies import gate_command
from maestro.store.filestore import atomic_write, find_repo

__all__ = [
    "COMMAND_PATH",
    "CONFIG_PATH",
    "CREATED",
    "KEPT",
    "OVERWRITTEN",
    "UNCHANGED",
    "FileResult",
    "InitResult",
    "command_text",
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
class InitResult:
    """What ``maestro init`` did: the repository (its top folder), each file in the order written, the gates."""

    repo: Path
    files: tuple[FileResult, ...]
    gates: Mapping[str, str | None]

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


def detect_gates(repo: Path) -> dict[str, str | None]:
    """The command of each gate (tests, lint, typecheck, security) the gate decisions find; None without evidence."""
    engine = DecisionEngine()  # one engine: the repository is scanned once for the four gates
    gates: dict[str, str | None] = {}
    for name in GATE_NAMES:
        decision = engine.decide("gate", repo=repo, gate=name)
        gates[name] = gate_command(decision)
        log.debug("gate %s: %s", name, decision.rationale)
    return gates


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


def _place(repo: Path, rel: PurePosixPath, text: str, current: bool | None, force: bool) -> FileResult:
    dest = repo / rel
    if current is True:
        log.debug("%s: unchanged", dest)
        return FileResult(rel, UNCHANGED)
    if current is False and not force:
        log.info("%s differs from what maestro init writes; kept (use --force to replace it)", dest)
        return FileResult(rel, KEPT)
    _write(dest, text)
    action = CREATED if current is None else OVERWRITTEN
    log.info("%s: %s", dest, action)
    return FileResult(rel, action)


# -- the library call -----------------------------------------------------------------------------------------------


def init_project(repo: Path | str, *, claude: bool, force: bool) -> InitResult:
    """Set up ``repo`` (a folder inside a git repository) for maestro; see the module's docstring.

    Idempotent: a second call writes nothing and reports every file ``unchanged``.
    A folder that is not in a git repository, a folder in the way of a file, or a
    path that cannot be written raises :class:`~maestro.MaestroError` with one line
    naming the path; the checks that can be made first are made before anything is
    written.
    """
    top = find_repo(Path(repo).absolute())  # StoreError naming the full path: no such directory, not a git repository
    gates = detect_gates(top)
    planned: list[tuple[PurePosixPath, str]] = [(CONFIG_PATH, default_config_yaml(gates))]
    skills: list[tuple[PurePosixPath, str]] = []
    if claude:
        planned.append((COMMAND_PATH, command_text()))
        for source in shipped_skills():
            skills.append((SKILLS_DIR / source.parent.name / "SKILL.md", source.read_text(encoding="utf-8")))
    # Compare everything first: a folder in the way is refused before any file is written.
    current = {rel: _is_current(top / rel, text) for rel, text in (*planned, *skills)}

    files = [_place(top, rel, text, current[rel], force) for rel, text in planned]
    if skills:
        written = set(install_skills(top, force=force))  # it skips the same files and keeps the differing ones
        for rel, _text in skills:
            was = current[rel]
            if top / rel in written:
                action = CREATED if was is None else OVERWRITTEN
            else:
                action = UNCHANGED if was is True else KEPT
            files.append(FileResult(rel, action))
    result = InitResult(top, tuple(files), gates)
    log.info("maestro init %s: %d file(s) written, %d unchanged, %d kept", top, len(result.written),
             sum(f.action == UNCHANGED for f in files), sum(f.action == KEPT for f in files))  # fmt: skip
    return result
