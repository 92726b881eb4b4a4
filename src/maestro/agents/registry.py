"""Subagents and skills in ``.claude/``: those installed (discovery) and maestro's own skills (FR-14, FR-15).

Discovery (:func:`discover`) reads Claude Code's own files, project first, then the user's::

    <repo>/.claude/agents/**/*.md          project subagents (recursive; identity from ``name`` only)
    ~/.claude/agents/**/*.md               user subagents (a project subagent of the same name wins)
    <repo>/.claude/skills/<name>/SKILL.md  project skills (the name is the directory's)
    ~/.claude/skills/<name>/SKILL.md       user skills

A subagent file is markdown with YAML front matter (``name``, ``description``,
optional ``tools`` and ``model``); its body is the system prompt.  A broken
file never stops maestro: it is skipped, a warning naming the file and line is
logged, and the same line is kept in :attr:`Registry.problems` for the CLI to
show.  A ``.md`` file without front matter (a README in a cloned collection) is
not a subagent and is passed over quietly.

maestro ships its own skills (:func:`shipped_skills`) and installs them into a
repository or home folder (:func:`install_skills`).  :func:`overrides_from_config`
reads the ``subagents`` section of ``config.yaml``: the category mapping and the
trigger words the choosing rules take.

Which subagent and which skills go with a task is :mod:`maestro.agents.choosing`.
``docs/subagents.md`` has the tables.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
from ruamel.yaml.comments import CommentedMap

from maestro.agents.base import Skill, Subagent
from maestro.core import yamlio
from maestro.core.errors import DecisionError, StoreError, YamlError
from maestro.core.text import InputTooLarge, read_input
from maestro.store.filestore import atomic_write

__all__ = [
    "NAME",
    "Origin",
    "Registry",
    "discover",
    "install_skills",
    "overrides_from_config",
    "shipped_skills",
]

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")
"""A valid subagent or skill name: lowercase letters, digits and single hyphens (at most 64 characters)."""

PROJECT, USER = "project", "user"


# -- the registry ---------------------------------------------------------------------------------------------------


@attrs.frozen
class Origin:
    """Where a subagent or skill was found: ``project`` or ``user``, its file, and the path as shown to people."""

    scope: str
    path: Path
    shown: str


def _agent_tuple(value: Iterable[Subagent]) -> tuple[Subagent, ...]:
    return tuple(value)


def _skill_tuple(value: Iterable[Skill]) -> tuple[Skill, ...]:
    return tuple(value)


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Registry:
    """The subagents and skills found, sorted by name, with where each came from and what was skipped.

    ``problems`` holds one line per skipped file (``<file>:<line>: <problem>``), in the order found.
    """

    subagents: tuple[Subagent, ...] = attrs.field(default=(), converter=_agent_tuple)
    skills: tuple[Skill, ...] = attrs.field(default=(), converter=_skill_tuple)
    agent_origins: Mapping[str, Origin] = attrs.field(factory=dict, hash=False)
    skill_origins: Mapping[str, Origin] = attrs.field(factory=dict, hash=False)
    problems: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    _agents: Mapping[str, Subagent] = attrs.field(init=False, eq=False, hash=False, repr=False)
    _skills: Mapping[str, Skill] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_agents", {a.name: a for a in self.subagents})
        object.__setattr__(self, "_skills", {s.name: s for s in self.skills})

    def subagent(self, name: str) -> Subagent | None:
        """The subagent called ``name``, or None."""
        return self._agents.get(name)

    def skill(self, name: str) -> Skill | None:
        """The skill called ``name``, or None."""
        return self._skills.get(name)

    @property
    def subagent_names(self) -> tuple[str, ...]:
        """The subagents' names, sorted."""
        return tuple(sorted(self._agents))

    @property
    def skill_names(self) -> tuple[str, ...]:
        """The skills' names, sorted."""
        return tuple(sorted(self._skills))

    def shown_path(self, subagent: Subagent) -> str | None:
        """Where ``subagent`` is defined, as people read it (``.claude/agents/x.md``, ``~/.claude/agents/x.md``)."""
        origin = self.agent_origins.get(subagent.name)
        return origin.shown if origin is not None else subagent.path


class _Malformed(Exception):
    """A definition file that cannot be used: the line and the problem."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


_FENCE = re.compile(r"(?:---|\.\.\.)[ \t]*\Z")


def _front_matter(text: str) -> tuple[CommentedMap, str] | None:
    """(front matter, body) of a markdown file; None when it has no front matter at all."""
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return None
    end = next((i for i in range(1, len(lines)) if _FENCE.match(lines[i].rstrip("\r\n"))), None)
    if end is None:
        raise _Malformed(1, "the front matter opened by '---' is never closed by a '---' line")
    try:
        doc = yamlio.load("".join(lines[1:end]), rt=True, first_line=2)
    except YamlError as exc:
        problem = f"YAML syntax: {exc.problem}" if exc.kind == "syntax" else exc.problem
        raise _Malformed(exc.line or 1, f"front matter: {problem}") from exc
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise _Malformed(2, "the front matter is not a YAML mapping")
    return doc, "".join(lines[end + 1 :])


def _line(doc: CommentedMap, key: str) -> int:
    """The file line of ``key`` in the front matter (which starts on line 2); 1 when it is absent."""
    if key not in doc:
        return 1
    try:
        return int(doc.lc.key(key)[0]) + 2
    except (AttributeError, KeyError, TypeError):  # pragma: no cover - ruamel keeps positions for rt loads
        return 1


def _text_field(doc: CommentedMap, key: str) -> str:
    """A required non-empty string field."""
    value = doc.get(key)
    if value is None:
        raise _Malformed(_line(doc, key), f"missing '{key}'")
    if not isinstance(value, str) or not value.strip():
        raise _Malformed(_line(doc, key), f"'{key}' must be a non-empty string, not {value!r}")
    return " ".join(value.split())


def _check_name(name: str, line: int, what: str) -> str:
    if len(name) > 64 or not NAME.match(name):
        raise _Malformed(line, f"{what} {name!r} is not lowercase letters, digits and hyphens (at most 64)")
    return name


def _split_tools(value: str) -> tuple[str, ...]:
    """``"Read, Bash(git status:*), Agent(a, b)"`` → its tools; commas inside parentheses do not split."""
    out: list[str] = []
    depth, start = 0, 0
    for i, c in enumerate(value):
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            out.append(value[start:i])
            start = i + 1
    out.append(value[start:])
    return tuple(t.strip() for t in out if t.strip())


def _tools(doc: CommentedMap) -> tuple[str, ...]:
    # A bad allowlist skips the whole file: dropping it would give the subagent every tool.
    value = doc.get("tools")
    if value is None:
        return ()
    if isinstance(value, str):
        return _split_tools(value)
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(t.strip() for t in value if t.strip())
    raise _Malformed(
        _line(doc, "tools"), f"'tools' must be a comma-separated string or a list of strings, not {value!r}"
    )


def _read(path: Path) -> str:
    """A definition's text: at most the size any input may have (a huge or endless file is refused, not read)."""
    return read_input(path).decode("utf-8")


def _parse_agent(path: Path) -> Subagent | None:
    text = _read(path)
    found = _front_matter(text)
    if found is None:
        return None
    doc, body = found
    name = _check_name(_text_field(doc, "name"), _line(doc, "name"), "name")
    description = _text_field(doc, "description")
    tools = _tools(doc)
    model = doc.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _Malformed(_line(doc, "model"), f"'model' must be a string, not {model!r}")
    return Subagent(name, description, body.strip(), tools, model.strip() if model else None, str(path))


def _parse_skill(path: Path) -> Skill:
    name = _check_name(path.parent.name, 1, "the skill directory")
    found = _front_matter(_read(path))
    if found is None:
        raise _Malformed(1, "no front matter (SKILL.md starts with '---' and a 'description')")
    doc, _body = found
    return Skill(name, _text_field(doc, "description"), str(path))


def _agent_files(folder: Path) -> Iterator[Path]:
    """Every ``*.md`` under ``folder``, recursively, in sorted order (hidden folders skipped)."""
    if not folder.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath, f)
            if f.endswith(".md") and p.is_file():
                yield p


def _skill_files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for d in sorted(folder.iterdir()):
        if d.is_dir() and not d.name.startswith(".") and (d / "SKILL.md").is_file():
            yield d / "SKILL.md"


def _problem(problems: list[str], shown: str, line: int, what: str, problem: str) -> None:
    text = f"{shown}:{line}: {what} skipped: {problem}"
    log.warning("%s", text)
    problems.append(text)


def _roots(repo: Path, home: Path | None) -> list[tuple[str, Path, str]]:
    roots = [(PROJECT, repo, "")]
    if home is None:
        try:
            home = Path.home()
        except RuntimeError:  # no HOME: only the project's definitions
            return roots
    try:
        same = repo.resolve() == home.resolve()
    except OSError:
        same = False
    if not same:
        roots.append((USER, home, "~/"))
    return roots


def discover(repo: Path | str, home: Path | str | None = None) -> Registry:
    """Find the subagents and skills of ``repo`` and of the user (``home``, default ``Path.home()``).

    A project definition wins over a user one of the same name; within one scope
    the first file in sorted path order wins and the other is reported.  Nothing
    raises for a bad definition: see :attr:`Registry.problems`.
    """
    repo = Path(repo).absolute()
    agents: dict[str, tuple[Subagent, Origin]] = {}
    skills: dict[str, tuple[Skill, Origin]] = {}
    problems: list[str] = []
    for scope, root, prefix in _roots(repo, Path(home).absolute() if home is not None else None):
        kinds: tuple[tuple[str, Any, Any, dict[str, Any]], ...] = (
            ("subagent", _agent_files(root / ".claude" / "agents"), _parse_agent, agents),
            ("skill", _skill_files(root / ".claude" / "skills"), _parse_skill, skills),
        )
        for what, files, parse, found in kinds:
            for path in files:
                shown = prefix + path.relative_to(root).as_posix()
                try:
                    item = parse(path)
                except _Malformed as exc:
                    _problem(problems, shown, exc.line, what, exc.problem)
                    continue
                except InputTooLarge as exc:
                    _problem(problems, shown, 1, what, exc.problem)
                    continue
                except (OSError, UnicodeDecodeError) as exc:
                    _problem(problems, shown, 1, what, f"cannot read: {exc}")
                    continue
                if item is None:  # a markdown file without front matter (a README): not a definition
                    log.debug("%s: no front matter, not a %s", shown, what)
                    continue
                _keep(found, item, Origin(scope, path, shown), problems, what)
    return Registry(
        tuple(agents[n][0] for n in sorted(agents)),
        tuple(skills[n][0] for n in sorted(skills)),
        {n: agents[n][1] for n in sorted(agents)},
        {n: skills[n][1] for n in sorted(skills)},
        tuple(problems),
    )


def _keep(
    found: dict[str, tuple[Any, Origin]], item: Subagent | Skill, origin: Origin, problems: list[str], what: str
) -> None:
    earlier = found.get(item.name)
    if earlier is None:
        found[item.name] = (item, origin)
    elif earlier[1].scope == origin.scope:
        _problem(problems, origin.shown, 1, what, f"{item.name} is already defined in {earlier[1].shown}")
    else:
        log.info("%s %s in %s is overridden by %s", what, item.name, origin.shown, earlier[1].shown)


# -- the config.yaml section that tunes choosing -------------------------------------------------------------------


def overrides_from_config(config: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """The ``subagents`` section of ``config.yaml`` (``Store.load_config()``): (mapping, extra triggers).

    ::

        subagents:
          mapping:  {frontend: my-frontend-dev, api: general-purpose}
          triggers: {my-frontend-dev: [storybook, figma]}

    A malformed section raises :class:`~maestro.DecisionError` naming the key.
    """
    section = config.get("subagents")
    if section is None:
        return {}, {}
    if not isinstance(section, Mapping):
        raise DecisionError("config.yaml: subagents must be a mapping with 'mapping' and 'triggers'")
    unknown = sorted(set(map(str, section)) - {"mapping", "triggers"})
    if unknown:
        raise DecisionError(f"config.yaml: subagents: unknown key(s) {', '.join(unknown)} (mapping, triggers)")
    mapping: dict[str, str] = {}
    raw_mapping = section.get("mapping") or {}
    if not isinstance(raw_mapping, Mapping):
        raise DecisionError("config.yaml: subagents.mapping must map categories to subagent names")
    for key, value in raw_mapping.items():
        if not isinstance(value, str) or not value.strip():
            raise DecisionError(f"config.yaml: subagents.mapping.{key}: expected a subagent name, not {value!r}")
        mapping[str(key).strip().lower()] = value.strip()
    triggers: dict[str, tuple[str, ...]] = {}
    raw_triggers = section.get("triggers") or {}
    if not isinstance(raw_triggers, Mapping):
        raise DecisionError("config.yaml: subagents.triggers must map subagent names to lists of words")
    for key, value in raw_triggers.items():
        listed = [value] if isinstance(value, str) else value
        if not isinstance(listed, list) or not all(isinstance(w, str) and w.strip() for w in listed):
            raise DecisionError(f"config.yaml: subagents.triggers.{key}: expected a list of words, not {value!r}")
        triggers[str(key).strip()] = tuple(w.strip() for w in listed)
    return dict(sorted(mapping.items())), dict(sorted(triggers.items()))


# -- the skills maestro ships ---------------------------------------------------------------------------------------


def shipped_skills() -> tuple[Path, ...]:
    """The ``SKILL.md`` files maestro ships (``maestro/data/skills/<name>/SKILL.md``), sorted by skill name."""
    root = Path(str(importlib.resources.files("maestro").joinpath("data", "skills")))
    if not root.is_dir():  # pragma: no cover - a broken installation
        raise StoreError(f"{root}: maestro's shipped skills are missing from this installation")
    return tuple(d / "SKILL.md" for d in sorted(root.iterdir()) if (d / "SKILL.md").is_file())


def install_skills(target: Path | str, force: bool = False) -> list[Path]:
    """Copy the shipped skills to ``<target>/.claude/skills/<name>/SKILL.md``; return the files written.

    ``target`` is a repository (project skills) or a home folder (user skills).
    A file that already holds the shipped text is left alone (so a second call
    writes nothing); one that differs is kept, with a warning, unless ``force``.
    """
    written: list[Path] = []
    for source in shipped_skills():
        text = source.read_text(encoding="utf-8")
        dest = Path(target) / ".claude" / "skills" / source.parent.name / "SKILL.md"
        if dest.is_file():
            try:
                current = dest.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                current = None
            if current == text:
                log.debug("%s: up to date", dest)
                continue
            if not force:
                log.warning("%s differs from the skill maestro ships; kept (install with force to replace it)", dest)
                continue
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{dest.parent}: cannot create: {exc.strerror or exc}") from exc
        atomic_write(dest, text)
        log.info("installed skill %s: %s", source.parent.name, dest)
        written.append(dest)
    return written
