"""The tech-stack decision (FR-2): which library serves a capability — prefer what the repository already uses.

Asked as ``engine.decide("tech_stack", repo=repo, capability="http client")``
(``ecosystem=`` optional: the repository's primary ecosystem by default).  The
options are the catalogue's candidates for the capability
(``maestro/data/catalogue.yaml``), and for ``cli`` also the argument parser the
project's own commands use when the catalogue does not list it (``getopt``,
``docopt``, ``fire`` …), scored by the rule that applies::

    human_precedent   1.0   a human chose it for the same question before (the history across sessions)
    lesson            1.0   an approved tech_override lesson: humans overrode the rules' choice with it
    prefer_existing   1.0   the repository already uses it: a declared dependency (the manifest and section),
                            an import in its code (file and line), a command of the project that parses its
                            arguments with it (the declaration and the import, file and line), or a built-in
                            the scan saw in use (the files)
    mature_new        0.7   a mature candidate of the catalogue
    experimental      0.3   an experimental one

The best score wins; among equals, the parser of a command a manifest declares
(``[project.scripts]``, ``console_scripts``, ``package.json`` ``bin``) comes
first, then that of a file that runs as ``__main__``, then the catalogue's order.
A human's earlier decision on the same question (the latest ``tech_stack`` entry
decided by a human whose question is the same) wins over all of them: its option
scores 1.0 and a tie with ``prefer_existing`` goes to it.  Without such a precedent, an
approved ``tech_override`` lesson (``maestro lessons``: humans overrode A with B) makes
B the choice where the rules would choose A and B is an option (scored 1.0, citing the lesson).

What the code uses comes from the scan (:mod:`maestro.decide.repofacts`):
``imports`` (Python's module-level imports named as their distribution,
JavaScript's imports and requires), so the standard library's candidates
(argparse, logging) count when the code imports them; ``entry_points`` (the
commands and ``__main__`` files with the parser each uses); and ``markers``, named
by a candidate's ``markers`` in the catalogue, for the built-ins that show in tests:
unittest, ``go test`` (``*_test.go``), ``cargo test`` (``#[test]``), ``node:test``,
minitest, and pytest imported without being declared.  Still left alone: what only
a call shows (``fetch``, ``net/http``'s client), which scores as a catalogue candidate.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from maestro.core import yamlio
from maestro.core.errors import DecisionError, PlanError, YamlError, error_text
from maestro.core.records import Decision, Evidence, Option
from maestro.decide.context import DecisionContext
from maestro.decide.lessons import cite, lessons_for
from maestro.decide.repofacts import ECOSYSTEMS, Dependency, EntryPoint, Import, RepoFacts, normalise_name

__all__ = ["MATURITIES", "SCORES", "Candidate", "Catalogue", "load_catalogue", "parse_catalogue", "tech_stack"]

log = logging.getLogger(__name__)

MATURITIES = ("mature", "experimental")
SCORES = {"prefer_existing": 1.0, "mature_new": 0.7, "experimental": 0.3, "human_precedent": 1.0, "lesson": 1.0}
"""The score each rule gives an option."""

CLI = "cli"
"""The capability the project's commands (its entry points) are evidence for."""
_SHOWN = 3  # import sites and commands named in evidence and rationales


@attrs.frozen
class Candidate:
    """A library or tool of the catalogue: its dependency name, maturity, a note, and other names it goes by.

    ``markers`` name what a repository scan sees when the candidate is in use
    without a declared dependency (a built-in: ``python:unittest``, ``go:test``).
    """

    name: str
    maturity: str
    note: str = ""
    also: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()


@attrs.frozen
class Catalogue:
    """Ecosystem → capability → candidates (best first), and the names each capability is asked by."""

    capabilities: tuple[str, ...]
    aliases: Mapping[str, str]
    entries: Mapping[str, Mapping[str, tuple[Candidate, ...]]]

    def capability(self, text: str) -> str:
        """The canonical capability ``text`` names (case, dashes and a plural ``s`` do not matter)."""
        key = _key(text)
        for attempt in (key, key.removesuffix("s")):
            if attempt in self.aliases:
                return self.aliases[attempt]
        raise DecisionError(f"unknown capability {text!r} (known: {', '.join(self.capabilities)})")

    def candidates(self, ecosystem: str, capability: str) -> tuple[Candidate, ...]:
        """The candidates for ``capability`` (any alias) in ``ecosystem``."""
        if ecosystem not in self.entries:
            raise DecisionError(f"unknown ecosystem {ecosystem!r} (known: {', '.join(sorted(self.entries))})")
        name = self.capability(capability)
        found = self.entries[ecosystem].get(name)
        if not found:
            raise DecisionError(f"the catalogue has no {name!r} candidates for {ecosystem}")
        return found


def _key(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


CATALOGUE_FILE = "catalogue.yaml"


@functools.cache
def _shipped() -> Catalogue:
    resource = importlib.resources.files("maestro") / "data" / CATALOGUE_FILE
    return parse_catalogue(resource.read_text(encoding="utf-8"), source=str(resource))


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """The catalogue at ``path``, or the one maestro ships (read once); malformed → :class:`~maestro.PlanError`."""
    if path is None:
        return _shipped()
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read the catalogue: {error_text(exc)}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PlanError(f"the catalogue is not UTF-8 text (byte {exc.start})", path=path, line=line) from None
    return parse_catalogue(text, source=str(path))


def parse_catalogue(text: str, *, source: str | None = None) -> Catalogue:
    """A :class:`Catalogue` from its YAML text; every problem names the file, line (for syntax) and field."""
    try:
        doc: Any = yamlio.load(text)
    except YamlError as exc:
        problem = {"syntax": f"YAML syntax: {exc.problem}", "depth": f"YAML {exc.problem}"}.get(exc.kind)
        raise PlanError(problem or f"YAML: {exc.problem}", path=source, line=exc.line) from None

    def fail(field: str, problem: str, line: int | None = None) -> PlanError:
        return PlanError(problem, path=source, field=field, line=line)

    def keys_are_names(mapping: dict[Any, Any], *at: str) -> None:
        """Every key of ``mapping`` (at the keys ``at`` of the document) is a string, or the error names its line."""
        for key in mapping:
            if not isinstance(key, str):
                where = ".".join(at)
                raise fail(f"{where}.{key}", f"a key is a name (a string), not {key!r}", _key_line(text, at, key))

    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise fail("version", "a catalogue is a mapping with 'version: 1', 'capabilities' and 'ecosystems'")
    caps, ecos = doc.get("capabilities"), doc.get("ecosystems")
    if not isinstance(caps, dict) or not caps:
        raise fail("capabilities", "expected a mapping of capability → list of other names")
    keys_are_names(caps, "capabilities")
    aliases: dict[str, str] = {}
    for cap, names in caps.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise fail(f"capabilities.{cap}", "expected a list of other names")
        for alias in (cap, *names):
            if aliases.setdefault(_key(alias), cap) != cap:
                raise fail(f"capabilities.{cap}", f"{alias!r} already names {aliases[_key(alias)]!r}")
    if not isinstance(ecos, dict) or not ecos:
        raise fail("ecosystems", "expected a mapping of ecosystem → capability → candidates")
    keys_are_names(ecos, "ecosystems")
    entries: dict[str, dict[str, tuple[Candidate, ...]]] = {}
    for eco, table in ecos.items():
        if eco not in ECOSYSTEMS or not isinstance(table, dict):
            raise fail(f"ecosystems.{eco}", f"expected one of {', '.join(ECOSYSTEMS)} with a mapping of capabilities")
        keys_are_names(table, "ecosystems", eco)
        entries[eco] = {}
        for cap, items in table.items():
            field = f"ecosystems.{eco}.{cap}"
            if cap not in caps:
                raise fail(field, f"unknown capability (known: {', '.join(caps)})")
            if not isinstance(items, list) or not items:
                raise fail(field, "expected a list of candidates")
            entries[eco][cap] = tuple(_candidate(item, f"{field}[{i}]", fail) for i, item in enumerate(items))
    return Catalogue(tuple(caps), aliases, entries)


def _key_line(text: str, at: tuple[str, ...], key: object) -> int | None:
    """The line of ``key`` in the mapping at the keys ``at`` of the YAML ``text`` (None when it cannot be told)."""
    try:
        node: Any = yamlio.load(text, rt=True)
        for part in at:
            node = node[part]
        return int(node.lc.key(key)[0]) + 1
    except (YamlError, LookupError, AttributeError, TypeError, RecursionError):
        return None


def _candidate(item: Any, field: str, fail: Any) -> Candidate:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise fail(f"{field}.name", "a candidate is {name, maturity, note, also}")
    unknown = sorted(set(map(str, item)) - set(_CANDIDATE_KEYS))
    if unknown:
        raise fail(f"{field}.{unknown[0]}", f"unknown key (known: {', '.join(_CANDIDATE_KEYS)})")
    if item.get("maturity") not in MATURITIES:
        raise fail(f"{field}.maturity", f"expected {' or '.join(MATURITIES)}, not {item.get('maturity')!r}")
    also = item.get("also", [])
    if not isinstance(also, list) or not all(isinstance(a, str) for a in also):
        raise fail(f"{field}.also", "expected a list of dependency names")
    markers = item.get("markers", [])
    if not isinstance(markers, list) or not all(isinstance(m, str) and ":" in m for m in markers):
        raise fail(f"{field}.markers", "expected a list of scan markers ('python:unittest', 'go:test')")
    return Candidate(item["name"], item["maturity"], str(item.get("note", "")), tuple(also), tuple(markers))


_CANDIDATE_KEYS = ("name", "maturity", "note", "also", "markers")
_MARKER_DETAIL = {
    "python:unittest": "imports unittest",
    "python:pytest": "imports pytest",
    "go:test": "go test file",
    "rust:test": "#[test]",
    "node:test": "imports node:test",
    "ruby:minitest": "requires minitest",
}


# -- the strategy -------------------------------------------------------------------
def _same(ecosystem: str, a: str, b: str) -> bool:
    """Whether two dependency names are the same project (Go: a major-version suffix does not matter)."""
    if ecosystem == "go":
        return re.sub(r"/v\d+\Z", "", a) == re.sub(r"/v\d+\Z", "", b)
    return normalise_name(ecosystem, a) == normalise_name(ecosystem, b)


def _declared(facts: RepoFacts | None, ecosystem: str, candidate: Candidate) -> list[Dependency]:
    if facts is None:
        return []
    names = (candidate.name, *candidate.also)
    return [d for d in facts.dependencies_of(ecosystem) if any(_same(ecosystem, d.name, n) for n in names)]


def _seen(facts: RepoFacts | None, candidate: Candidate) -> list[Evidence]:
    """The files that show ``candidate`` in use without a dependency (its catalogue ``markers``), a few per marker."""
    if facts is None:
        return []
    return [
        Evidence("file", path, _MARKER_DETAIL.get(marker, f"uses {candidate.name} ({marker})"))
        for marker in candidate.markers
        for path in facts.markers.get(marker, ())[:3]
    ]


def _imported(facts: RepoFacts | None, ecosystem: str, candidate: Candidate) -> list[Import]:
    """Where the code imports ``candidate`` (by its name or another it goes by), a few sites."""
    if facts is None:
        return []
    names = (candidate.name, *candidate.also)
    return [i for i in facts.imports if i.ecosystem == ecosystem and any(_same(ecosystem, i.name, n) for n in names)]


def _commands(facts: RepoFacts | None, ecosystem: str, capability: str) -> list[EntryPoint]:
    """The project's commands and ``__main__`` files in ``ecosystem`` (only a ``cli`` question asks), declared first."""
    if facts is None or capability != CLI:
        return []
    return [e for e in facts.entry_points if e.ecosystem == ecosystem]


def _parsed_with(commands: list[EntryPoint], ecosystem: str, names: tuple[str, ...]) -> list[EntryPoint]:
    return [e for e in commands if e.parser and any(_same(ecosystem, e.parser, n) for n in names)]


def _command_evidence(commands: list[EntryPoint]) -> list[Evidence]:
    """Where each command is declared (a few), then each import of the parser they use, once."""
    evidence: list[Evidence] = []
    users: dict[tuple[str, int | None, str], list[str]] = {}
    for e in commands[:_SHOWN]:
        what = f"[{e.kind}] {e.name} = {e.target}" if e.declared else f"runs as a program ({e.name})"
        evidence.append(Evidence("file", e.path, f"line {e.line}: {what}" if e.line else what))
        users.setdefault((e.parser_path, e.parser_line, e.parser), []).append(e.name)
    for (path, line, parser), names in users.items():
        evidence.append(
            Evidence("file", path, f"line {line}: imports {parser}, the argument parser of {' and '.join(names)}")
        )
    return evidence


def _command_phrase(commands: list[EntryPoint]) -> str:
    """``the command tabulate (pyproject.toml:32 [project.scripts] tabulate:_main)``, or a file run as a program."""
    first = commands[0]
    if first.declared:
        return f"the command {first.name} ({first.where} [{first.kind}] {first.target})"
    return f"{first.target} (runs as a program: {first.where})"


def _others(commands: list[EntryPoint]) -> str:
    n = len(commands) - 1
    return "" if n == 0 else "; so does 1 other entry point" if n == 1 else f"; so do {n} other entry points"


def _rank(option: Option, commands: list[EntryPoint], ecosystem: str) -> tuple[float, int]:
    """An option's place: its score, then whether a declared command (2) or a ``__main__`` file (1) uses it."""
    users = _parsed_with(commands, ecosystem, (option.name,))
    return option.score, max((2 if e.declared else 1 for e in users), default=0)


def _ecosystem(ctx: DecisionContext, facts: RepoFacts | None) -> str:
    given = ctx.params.get("ecosystem")
    if given is not None:
        if given not in ECOSYSTEMS:
            raise DecisionError(f"tech_stack: unknown ecosystem {given!r} (known: {', '.join(ECOSYSTEMS)})")
        return str(given)
    if facts is None or facts.primary is None:
        where = f"in {ctx.repo}" if ctx.repo is not None else "without a repository"
        raise DecisionError(f"tech_stack: no ecosystem detected {where}; pass ecosystem= ({', '.join(ECOSYSTEMS)})")
    return facts.primary


def _precedent(ctx: DecisionContext, question: str) -> tuple[str, str] | None:
    """The latest human decision on the same question: (choice, session), if any."""
    for entry in reversed(ctx.history):
        d = entry.get("decision")
        if (
            isinstance(d, Mapping)
            and d.get("kind") == "tech_stack"  # the history file is shared with the kind "tech-stack"
            and d.get("decided_by") == "human"
            and d.get("question") == question
        ):
            choice = d.get("choice")
            if isinstance(choice, str) and choice:
                return choice, str(entry.get("session", "?"))
    return None


def tech_stack(ctx: DecisionContext) -> Decision:
    """Which library serves ``capability`` in the ecosystem: prefer_existing > mature_new > experimental.

    Parameters: ``capability`` (required), ``ecosystem`` (default: the repository's
    primary one), ``catalogue`` (a path, default: the shipped catalogue).
    """
    capability = ctx.params.get("capability")
    if not isinstance(capability, str) or not capability.strip():
        raise DecisionError("tech_stack: say which capability is needed: capability='http client', 'orm', …")
    catalogue = load_catalogue(ctx.params.get("catalogue"))
    facts = ctx.facts() if ctx.repo is not None else None
    ecosystem = _ecosystem(ctx, facts)
    cap = catalogue.capability(capability)
    candidates = catalogue.candidates(ecosystem, cap)
    question = f"Which {cap} for {ecosystem}?"

    commands = _commands(facts, ecosystem, cap)
    options: list[tuple[Option, str]] = []  # each option with the rationale its rule gives
    for cand in candidates:
        declared = _declared(facts, ecosystem, cand)
        imported = _imported(facts, ecosystem, cand)
        parsing = _parsed_with(commands, ecosystem, (cand.name, *cand.also))
        seen = [] if declared or imported else _seen(facts, cand)
        evidence = [Evidence("dependency", d.name, where) for d in declared for where in d.declared]
        evidence += _command_evidence(parsing)
        cited = {(e.value, e.detail.split(":", 1)[0]) for e in evidence}
        imported = [i for i in imported if (i.path, f"line {i.line}") not in cited]
        evidence += [Evidence("file", i.path, f"line {i.line}: imports {i.module}") for i in imported[:_SHOWN]]
        evidence += seen
        sites = "; ".join(f"{i.where} imports {i.module}" for i in imported[:_SHOWN])
        if parsing:
            rule = "prefer_existing"
            why = f"prefer_existing: {_command_phrase(parsing)} parses its arguments with {cand.name}"
            why += f" ({parsing[0].parser_where}){_others(parsing)}"
        elif declared:
            rule = "prefer_existing"
            where = "; ".join(f"{d.name} in {w}" for d in declared for w in d.declared)
            why = f"prefer_existing: {cand.name} is already a dependency ({where})"
            why += f" and imported ({sites})" if sites else ""
        elif imported:
            rule = "prefer_existing"
            why = f"prefer_existing: {cand.name} is already in use ({sites})"
        elif seen:
            rule = "prefer_existing"
            where = "; ".join(f"{e.value}: {e.detail}" for e in seen)
            why = f"prefer_existing: {cand.name} is already in use ({where})"
        else:
            rule = "mature_new" if cand.maturity == "mature" else "experimental"
            evidence = [Evidence("fact", f"{cand.maturity} in the {ecosystem} catalogue", cand.note)]
            why = f"{rule}: no {cap} is declared or imported in the repository"
            if commands:
                unparsed = [c for c in commands if not c.parser] or commands
                why += f"; {_command_phrase(unparsed)} uses no argument parser maestro knows"
            why += f"; {cand.name} is {cand.maturity} ({cand.note})"
        options.append((Option(cand.name, SCORES[rule], tuple(evidence), f"{rule}: {cand.note}"), why))

    listed = {n for c in candidates for n in (c.name, *c.also)}
    for parser in dict.fromkeys(c.parser for c in commands if c.parser):  # parsers the catalogue does not list
        if any(_same(ecosystem, parser, n) for n in listed):
            continue
        parsing = _parsed_with(commands, ecosystem, (parser,))
        why = f"prefer_existing: {_command_phrase(parsing)} parses its arguments with {parser}"
        why += f" ({parsing[0].parser_where}){_others(parsing)}"
        note = "prefer_existing: the project's own parser (not in the catalogue)"
        options.append((Option(parser, SCORES["prefer_existing"], tuple(_command_evidence(parsing)), note), why))

    precedent = _precedent(ctx, question)
    if precedent is not None:
        choice, session = precedent
        fact = Evidence("fact", f"decided by a human in session {session}", question)
        known = [o for o, _ in options if o.name == choice]
        if known:
            top = SCORES["human_precedent"]
            notes = {c.name: c.note for c in candidates}
            options = [
                (
                    attrs.evolve(
                        o, score=top, evidence=(*o.evidence, fact), notes=f"human_precedent: {notes.get(o.name, '')}"
                    )
                    if o.name == choice
                    else o,
                    w,
                )
                for o, w in options
            ]
        else:
            options.append((Option(choice, SCORES["human_precedent"], (fact,), "human_precedent"), ""))
        why = f"human_precedent: a human chose {choice} for this question in session {session}"
        return Decision("tech_stack", question, choice, why, tuple(o for o, _ in options), confidence=0.95)

    # max keeps the first of equals: the catalogue's order, then the project's own parsers
    best, why = max(options, key=lambda ow: _rank(ow[0], commands, ecosystem))
    for lesson in lessons_for(ctx.lessons, "tech_override", best.name):
        instead = next((o for o, _ in options if o.name == lesson.choice), None)
        if instead is None:
            continue  # not a candidate for this question
        lifted = attrs.evolve(instead, score=SCORES["lesson"], evidence=(*instead.evidence, cite(lesson)),
                              notes=f"lesson: {instead.notes}")  # fmt: skip
        options = [(lifted, w) if o is instead else (o, w) for o, w in options]
        why = f"lesson: approved lesson {lesson.id}: {lesson.claim}; without it: {best.name} ({why})"
        return Decision("tech_stack", question, lifted.name, why, tuple(o for o, _ in options), confidence=0.95)
    confidence = {1.0: 0.95, 0.7: 0.7}.get(best.score, 0.4)
    log.debug("tech_stack %s/%s: %s (%s)", ecosystem, cap, best.name, best.score)
    return Decision("tech_stack", question, best.name, why, tuple(o for o, _ in options), confidence=confidence)
