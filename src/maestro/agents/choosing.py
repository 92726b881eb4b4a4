"""Choosing per task: which subagent works on it (a recorded decision), which skills go with it (FR-14, FR-15).

The subagents and skills to choose from are a :class:`~maestro.agents.registry.Registry`
(:func:`~maestro.agents.registry.discover`).

Choosing (:func:`choose_subagent`) is a recorded decision of kind ``subagent``.
The first rule that applies decides:

1. the task's own ``subagent`` field, if that subagent is installed (if not, the evidence says so and
   the next rules apply);
2. the ``config.yaml`` mapping for the task's category (``subagents.mapping``, read by
   :func:`~maestro.agents.registry.overrides_from_config`);
3. :data:`DEFAULT_MAPPING` for the task's category;
4. :data:`TRIGGERS`: trigger words found in the title, description and category; the installed
   subagent with the most matches wins (ties: the name);
5. otherwise the general agent (:data:`GENERAL`, no subagent passed).

A mapped subagent that is not installed falls back to the general agent, with the
evidence "backend-architect is not in .claude/agents/ or ~/.claude/agents/".

Skills (:func:`choose_skills`) are the task's own ``skills`` that exist plus skills
whose name or description share words with the task, at most :data:`MAX_SKILLS`.
``docs/subagents.md`` has the tables.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence

import attrs

from maestro.agents.base import Skill
from maestro.agents.registry import Registry
from maestro.core.records import Decision, Evidence, Option
from maestro.plan.tasks import Task

__all__ = [
    "DEFAULT_MAPPING",
    "GENERAL",
    "MAX_SKILLS",
    "TRIGGERS",
    "choose_skills",
    "choose_subagent",
]

log = logging.getLogger(__name__)

GENERAL = "general-purpose"
"""The general agent: chosen when no subagent applies; no subagent is passed to the coding agent."""

MAX_SKILLS = 3
"""At most this many skills go with a task (the task's own ``skills`` are always kept)."""

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
