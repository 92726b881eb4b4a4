"""Subagents and skills: found in ``.claude/``, chosen per task, and the skills maestro ships (FR-14, FR-15).

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

Choosing (:func:`choose_subagent`) is a recorded decision of kind ``subagent``.
The first rule that applies decides:

1. the task's own ``subagent`` field, if that subagent is installed (if not, the evidence says so and
   the next rules apply);
2. the ``config.yaml`` mapping for the task's category (``subagents.mapping``);
3. :data:`DEFAULT_MAPPING` for the task's category;
4. :data:`TRIGGERS`: trigger words found in the title, description and category; the installed
   subagent with the most matches wins (ties: the name);
5. otherwise the general agent (:data:`GENERAL`, no subagent passed).

A mapped subagent that is not installed falls back to the general agent, with the
evidence "backend-architect is not in .claude/agents/ or ~/.claude/agents/".

Skills (:func:`choose_skills`) are the task's own ``skills`` that exist plus skills
whose name or description share words with the task, at most :data:`MAX_SKILLS`.

maestro ships its own skills (:func:`shipped_skills`) and installs them into a
repository or home folder (:func:`install_skills`).  ``docs/subagents.md`` has the tables.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from ruamel.yaml.comments import CommentedMap

from maestro.agents.base import Skill, Subagent
from maestro.core import yamlio
from maestro.core.errors import DecisionError, StoreError, YamlError
from maestro.core.records import Decision, Evidence, Option
from maestro.plan.tasks import Task
from maestro.store.filestore import atomic_write

__all__ = [
    "DEFAULT_MAPPING",
    "GENERAL",
    "MAX_SKILLS",
    "NAME",
    "TRIGGERS",
    "Origin",
    "Registry",
    "choose_skills",
    "choose_subagent",
    "discover",
    "install_skills",
    "overrides_from_config",
    "shipped_skills",
]

log = logging.getLogger(__name__)

GENERAL = "general-purpose"
"""The general agent: chosen when no subagent applies; no subagent is passed to the coding agent."""

NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")
"""A valid subagent or skill name: lowercase letters, digits and single hyphens (at most 64 characters)."""

MAX_SKILLS = 3
"""At most this many skills go with a task (the task's own ``skills`` are always kept)."""

PROJECT, USER = "project", "user"
_MISSING_WHERE = "not in .claude/agents/ or ~/.claude/agents/"

DEFAULT_MAPPING: Mapping[str, str] = {
    # the PRD's five (FR-14)
    "frontend": "frontend-developer",
    "backend": "backend-architect",
    "database": "database-admin",
    "testing": "test-automator",
    "documentation": "api-documenter",
    # other names for the same categories
    "ui": "frontend-developer",
    "ux": "frontend-developer",
    "web": "frontend-developer",
    "api": "backend-architect",
    "server": "backend-architect",
    "service": "backend-architect",
    "db": "database-admin",
    "data": "database-admin",
    "migration": "database-admin",
    "migrations": "database-admin",
    "schema": "database-admin",
    "sql": "database-admin",
    "test": "test-automator",
    "tests": "test-automator",
    "qa": "test-automator",
    "e2e": "test-automator",
    "docs": "api-documenter",
    "doc": "api-documenter",
    # categories whose usual subagents ship in common collections (used when installed)
    "security": "security-auditor",
    "devops": "deployment-engineer",
    "deployment": "deployment-engineer",
    "infra": "deployment-engineer",
    "infrastructure": "deployment-engineer",
    "ci": "deployment-engineer",
    "performance": "performance-engineer",
}
"""Task category → subagent name.  ``config.yaml`` (``subagents.mapping``) overrides it per category."""

TRIGGERS: Mapping[str, tuple[str, ...]] = {
    "frontend-developer": (
        "frontend", "front-end", "ui", "ux", "component", "css", "html", "react", "vue", "svelte", "angular",
        "page", "layout", "tailwind", "jsx", "tsx", "form", "button", "responsive", "browser",
    ),
    "backend-architect": (
        "backend", "back-end", "api", "endpoint", "server", "service", "route", "controller", "auth",
        "authentication", "rest", "graphql", "middleware", "handler", "microservice", "webhook",
    ),
    "database-admin": (
        "database", "db", "schema", "migration", "sql", "table", "index", "query", "postgres", "postgresql",
        "mysql", "sqlite", "orm", "alembic",
    ),
    "test-automator": (
        "test", "testing", "pytest", "jest", "vitest", "coverage", "e2e", "spec", "tdd", "unittest", "fixture",
        "playwright", "cypress",
    ),
    "api-documenter": (
        "docs", "documentation", "document", "readme", "openapi", "swagger", "api-spec", "docstring",
        "changelog", "guide", "tutorial",
    ),
    "security-auditor": (
        "security", "vulnerability", "xss", "csrf", "injection", "owasp", "secret", "cve", "sanitize",
    ),
    "deployment-engineer": (
        "deploy", "deployment", "docker", "dockerfile", "kubernetes", "k8s", "helm", "pipeline", "ci",
        "github-actions", "terraform",
    ),
    "performance-engineer": ("performance", "latency", "profiling", "benchmark", "optimize", "cache"),
}  # fmt: skip
"""Subagent name → trigger words, matched whole-word and case-insensitively; plurals match too (tests, queries)."""

# Scores and confidences by the rule that names a subagent (the chosen option has the top score).
_SCORE = {"explicit": 1.0, "config_mapping": 0.9, "default_mapping": 0.8}
_CONFIDENCE = {"explicit": 1.0, "config_mapping": 0.9, "default_mapping": 0.8, "general": 0.5}
_GENERAL_SCORE = 0.1


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


def _parse_agent(path: Path) -> Subagent | None:
    text = path.read_text(encoding="utf-8")
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
    found = _front_matter(path.read_text(encoding="utf-8"))
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


# -- choosing a subagent --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _pattern(word: str) -> re.Pattern[str]:
    """``word`` whole, case-insensitive, with its plural: ``test(s)``, ``class(es)``, ``quer(y|ies)``."""
    w = word.lower()
    if len(w) > 2 and w.endswith("y") and w[-2] not in "aeiou":
        body = rf"{re.escape(w[:-1])}(?:y|ies)"
    else:
        body = rf"{re.escape(w)}(?:e?s)?"
    return re.compile(rf"(?<![a-z0-9]){body}(?![a-z0-9])", re.IGNORECASE)


def _matched(words: Sequence[str], text: str) -> tuple[str, ...]:
    """The trigger words found in ``text``, in the order given, each once."""
    seen: list[str] = []
    for w in words:
        if w.lower() not in seen and _pattern(w).search(text):
            seen.append(w.lower())
    return tuple(seen)


@attrs.define
class _Candidate:
    name: str
    score: float = 0.0
    evidence: list[Evidence] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)


def _trigger_score(matches: int) -> float:
    """Below every mapping's score, rising with the matches: 1 → 0.35, 2 → 0.47, 3 → 0.53 …"""
    return round(0.7 * matches / (matches + 1), 3)


def choose_subagent(
    task: Task,
    registry: Registry,
    mapping_overrides: Mapping[str, str] | None = None,
    *,
    triggers: Mapping[str, Sequence[str]] | None = None,
) -> Decision:
    """Decide which subagent works on ``task`` (kind ``subagent``, linked to the task).

    ``mapping_overrides`` (category → subagent name, from ``config.yaml``) goes
    before :data:`DEFAULT_MAPPING`; a category mapped to ``general-purpose`` uses
    the general agent.  ``triggers`` (subagent name → words) adds to :data:`TRIGGERS`.
    The options are every subagent a rule named or a trigger word pointed to, and
    the general agent; each carries its score, the file it is defined in (or that
    it is not installed), the mapping that named it and the trigger words matched.
    """
    return _Chooser(task, registry, mapping_overrides or {}, triggers or {}).choose()


class _Chooser:
    """One :func:`choose_subagent` call: the candidates it weighs and the rule that decides."""

    def __init__(
        self,
        task: Task,
        registry: Registry,
        overrides: Mapping[str, str],
        triggers: Mapping[str, Sequence[str]],
    ) -> None:
        self.task = task
        self.registry = registry
        self.category = task.category.strip().lower()
        self.overrides = {str(k).strip().lower(): str(v).strip() for k, v in overrides.items()}
        self.words: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in TRIGGERS.items()}
        for name, extra in triggers.items():
            self.words[name] = tuple(dict.fromkeys((*self.words.get(name, ()), *extra)))
        self.candidates: dict[str, _Candidate] = {}
        self.general = _Candidate(GENERAL, _GENERAL_SCORE)
        self.fallbacks: list[str] = []  # why earlier rules did not decide, for the rationale

    def installed(self, name: str) -> bool:
        return self.registry.subagent(name) is not None

    def candidate(self, name: str) -> _Candidate:
        if name == GENERAL:
            return self.general
        c = self.candidates.get(name)
        if c is None:
            c = self.candidates[name] = _Candidate(name)
            sub = self.registry.subagent(name)
            if sub is None:
                c.evidence.append(Evidence("fact", f"{name} is {_MISSING_WHERE}"))
                c.notes.append("not installed")
            elif (where := self.registry.shown_path(sub)) is not None:
                origin = self.registry.agent_origins.get(name)
                c.evidence.append(Evidence("file", where, f"{origin.scope} subagent" if origin else "subagent"))
            else:
                c.evidence.append(Evidence("fact", f"{name} is in the registry"))
        return c

    def choose(self) -> Decision:
        scored = self.weigh_triggers()
        return self.explicit() or self.mapped() or self.triggered(scored)

    def weigh_triggers(self) -> list[tuple[int, str, tuple[str, ...]]]:
        """Trigger words for every known subagent: always shown as options, used by rule 4."""
        text = f"{self.task.title}\n{self.task.description}\n{self.task.category}"
        scored: list[tuple[int, str, tuple[str, ...]]] = []
        for name in sorted(self.words):
            hits = _matched(self.words[name], text)
            if not hits:
                continue
            scored.append((len(hits), name, hits))
            c = self.candidate(name)
            c.evidence.append(Evidence("fact", f"trigger words matched: {', '.join(hits)}"))
            c.notes.append(f"{len(hits)} trigger word{'s' if len(hits) != 1 else ''}")
            if self.installed(name):
                c.score = max(c.score, _trigger_score(len(hits)))
        scored.sort(key=lambda s: (-s[0], s[1]))
        return scored

    def explicit(self) -> Decision | None:
        if not self.task.subagent:
            return None
        name = self.task.subagent.strip()
        c = self.candidate(name)
        c.evidence.insert(0, Evidence("fact", f"task {self.task.id} names {name}", "the task's subagent field"))
        if name == GENERAL or self.installed(name):
            c.score = _SCORE["explicit"]
            return self.decide("explicit", name, f"task {self.task.id} names {name}{self.at(name)}")
        self.fallbacks.append(f"task {self.task.id} names {name}, which is {_MISSING_WHERE}")
        return None

    def mapped(self) -> Decision | None:
        for rule, mapping, label in (
            ("config_mapping", self.overrides, "config.yaml subagents.mapping"),
            ("default_mapping", DEFAULT_MAPPING, "default mapping"),
        ):
            name = mapping.get(self.category)
            if name is None:
                continue
            said = f"category {self.category!r} → {name} ({label})"
            c = self.candidate(name)
            c.evidence.insert(0, Evidence("fact", said))
            if name == GENERAL:
                c.score = _SCORE[rule]
                return self.decide(rule, GENERAL, f"{said}: the general agent works on the task")
            if self.installed(name):
                c.score = _SCORE[rule]
                return self.decide(rule, name, f"{said}{self.at(name)}")
            self.general.evidence.append(Evidence("fact", f"{name} is {_MISSING_WHERE}"))
            why = f"{said}, but {name} is {_MISSING_WHERE}; the general agent works on the task"
            return self.decide(rule, GENERAL, why, confidence=_CONFIDENCE["general"])
        return None

    def triggered(self, scored: list[tuple[int, str, tuple[str, ...]]]) -> Decision:
        installed = [s for s in scored if self.installed(s[1])]
        if installed:
            n, name, hits = installed[0]
            why = f"{name} matched {n} trigger word{'s' if n != 1 else ''} ({', '.join(hits)}){self.at(name)}"
            better = [s[1] for s in scored if s[0] > n]  # matched more, but not installed
            if better:
                verb = "is" if len(better) == 1 else "are"
                why += f"; {', '.join(better)} matched more but {verb} {_MISSING_WHERE}"
            return self.decide("triggers", name, why, confidence=round(0.4 + 0.1 * min(n, 4), 2))
        if scored:
            for _n, name, _hits in scored:
                self.general.evidence.append(Evidence("fact", f"{name} is {_MISSING_WHERE}"))
            names = ", ".join(s[1] for s in scored)
            why = f"trigger words point to {names}, {_MISSING_WHERE}; the general agent works on the task"
        else:
            why = (
                f"no mapping for category {self.category!r} and no trigger words matched; "
                "the general agent works on the task"
            )
        return self.decide("general", GENERAL, why)

    def at(self, name: str) -> str:
        sub = self.registry.subagent(name)
        where = self.registry.shown_path(sub) if sub is not None else None
        return f" ({where})" if where else ""

    def decide(self, rule: str, choice: str, why: str, *, confidence: float | None = None) -> Decision:
        chosen = self.general if choice == GENERAL else self.candidates[choice]
        chosen.notes.insert(0, f"chosen by {rule}")
        if choice == GENERAL:
            self.general.evidence.append(Evidence("fact", "no subagent is passed: the coding agent works on its own"))
        options = [*(self.candidates[n] for n in sorted(self.candidates)), self.general]
        rationale = f"{rule}: " + "; ".join([*self.fallbacks, why])
        return Decision(
            "subagent",
            f"Which subagent should work on task {self.task.id}?",
            choice,
            rationale,
            options=tuple(
                Option(c.name, c.score, tuple(c.evidence), "; ".join(dict.fromkeys(c.notes))) for c in options
            ),
            confidence=_CONFIDENCE.get(rule, 0.5) if confidence is None else confidence,
            task=self.task.id,
        )


# -- choosing skills ------------------------------------------------------------------------------------------------

_STOP = frozenset((
    "a", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "has", "have",
    "how", "if", "in", "into", "is", "it", "its", "of", "on", "or", "so", "that", "the", "their", "them", "then",
    "there", "these", "this", "to", "up", "use", "used", "uses", "using", "via", "was", "we", "when", "where",
    "which", "while", "will", "with", "you", "your", "add", "adds", "make", "makes", "new", "update", "updates",
    "create", "creates", "implement", "implements", "support", "supports", "work", "works", "task", "tasks",
    "code", "file", "files", "user", "users", "should", "must", "need", "needs", "also", "all", "more", "other",
    "one", "two",
))  # fmt: skip
"""Words too common to say which skill a task needs."""


def _words(text: str) -> set[str]:
    """Lowercase words of ``text`` (stop words dropped, a plural ``s`` removed) for skill matching."""
    out: set[str] = set()
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w in _STOP or len(w) < 2:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def choose_skills(task: Task, registry: Registry, *, limit: int = MAX_SKILLS) -> tuple[Skill, ...]:
    """The skills to pass with ``task``: its own ``skills`` that exist, then matching ones, at most ``limit``.

    A skill matches when a word of its name is a word of the task (title,
    description, category), or when two words of its description are.  Stronger
    matches come first (name words, then description words, then the name).
    maestro's own skills (``maestro-*``) are only passed when a task names them.
    """
    chosen: list[Skill] = []
    for name in task.skills:
        skill = registry.skill(name)
        if skill is None:
            log.info("task %s names skill %s, which is not in .claude/skills/ or ~/.claude/skills/", task.id, name)
        elif skill not in chosen:
            chosen.append(skill)
    task_words = _words(f"{task.title} {task.description} {task.category}")
    ranked: list[tuple[int, int, str, Skill]] = []
    for skill in registry.skills:
        if skill in chosen or skill.name.startswith("maestro-"):
            continue
        name_words = _words(skill.name.replace("-", " "))
        by_name = len(name_words & task_words)
        by_description = len((_words(skill.description) - name_words) & task_words)
        if by_name >= 1 or by_description >= 2:
            ranked.append((-by_name, -by_description, skill.name, skill))
    for *_key, skill in sorted(ranked, key=lambda r: r[:3]):
        if len(chosen) >= limit:
            break
        chosen.append(skill)
    return tuple(chosen)


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
