"""The architecture decision (FR-3): where new code goes — match the layout the repository already has.

Asked as ``engine.decide("architecture", repo=repo, feature="add a users endpoint")``.
The layout is read from the scan (:mod:`maestro.decide.repofacts`): src or flat layout,
where the tests live, the role folders (routes, controllers, services, models,
components …), monorepo members.  Two options::

    match_existing    1.0 when there is a structure (evidence: its paths), 0.0 in an empty repository
    appropriate_new   0.8 in an empty repository (a conventional layout for the ecosystem), else 0.3

The concrete layout is in the rationale and in the chosen option's notes, e.g.
``src layout: src/calc; tests in tests/; services in src/calc/services``.

Given a ``feature``, the notes also say where its code goes: the role folder its
words name (``add a users endpoint`` → ``routes``), never one inside a test or
fixture folder (``tests``, ``__tests__``, ``spec``, ``e2e``, ``fixtures`` …).  In a
monorepo the folder holding the members (``services`` for ``services/*``) is not
a role folder; the code goes into the member the feature's words name (its
folder or package name), else the one member with a matching role folder, else
"the member package that owns it" with the candidates listed.
"""

from __future__ import annotations

import re

from maestro.core.errors import DecisionError
from maestro.core.records import Decision, Evidence, Option
from maestro.decide.context import DecisionContext
from maestro.decide.repofacts import ECOSYSTEMS, RepoFacts

__all__ = ["ROLE_DIRS", "architecture", "conventional_layout", "describe_layout"]

ROLE_DIRS = (
    "api", "routes", "routers", "controllers", "handlers", "services", "models", "schemas", "entities",
    "repositories", "views", "pages", "components", "hooks", "middleware", "cmd", "internal", "pkg", "commands",
)  # fmt: skip
"""Folder names that say what the code in them does."""

_TEST_DIRS = ("tests", "test", "spec", "specs", "__tests__")
_NOT_CODE_DIRS = frozenset(
    {*_TEST_DIRS, "e2e", "fixtures", "__fixtures__", "__mocks__", "testdata", "test-data", "mocks"}
)
"""Folders whose contents are tests or test data: never a place for new code."""
_COMMON_WORDS = frozenset({"add", "new", "the", "for", "and", "with", "from", "into", "that", "this", "support"})
_FEATURE_ROLES = (
    (r"\b(route|endpoint|api|url|rest|http|request)s?\b", ("routes", "routers", "api", "controllers", "handlers")),
    (r"\b(model|table|schema|database|entity|entities|record)s?\b", ("models", "schemas", "entities")),
    (r"\b(service|business|logic|workflow)s?\b", ("services",)),
    (r"\b(component|ui|page|view|button|form|screen|widget)s?\b", ("components", "pages", "views")),
    (r"\b(cli|command|subcommand)s?\b", ("commands", "cmd")),
)


def describe_layout(facts: RepoFacts) -> tuple[list[str], list[Evidence]]:
    """The layout ``facts`` show, as phrases (``src layout: src/calc``) and the file evidence for them."""
    parts: list[str] = []
    evidence: list[Evidence] = []
    if facts.members:
        parts.append(f"monorepo: {', '.join(facts.members)}")
        evidence += [Evidence("file", m, "monorepo member") for m in facts.members]
    src = [p for p in facts.packages if p == "src" or "/src/" in f"/{p}"]
    flat = [p for p in facts.packages if p not in src]
    if src:
        parts.append(f"src layout: {', '.join(src)}")
        evidence += [Evidence("file", f"{p}/__init__.py", "python package (src layout)") for p in src]
    if flat:
        parts.append(f"flat layout: {', '.join(flat)}")
        evidence += [Evidence("file", f"{p}/__init__.py", "python package (flat layout)") for p in flat]
    anchors = [a for a in ("src/lib.rs", "src/main.rs", "main.go") if a in facts.files]
    for anchor in anchors:
        what = {"src/lib.rs": "rust library", "src/main.rs": "rust binary", "main.go": "go command"}[anchor]
        parts.append(f"{what}: {anchor}")
        evidence.append(Evidence("file", anchor, what))
    if not facts.packages and not any(a.startswith("src/") for a in anchors):
        folders = [
            d for d in ("src", "lib", "app") if any(f.startswith(f"{d}/") and _is_source(f) for f in facts.files)
        ]
        if folders:
            parts.append(f"sources in {', '.join(f'{d}/' for d in folders)}")
            evidence += [Evidence("file", d, "source folder") for d in folders]
    test_dirs: set[str] = set()
    colocated: list[str] = []
    for f in facts.test_files:
        segs = f.split("/")
        at = next((i for i, s in enumerate(segs[:-1]) if s in _TEST_DIRS), None)
        if at is None:
            colocated.append(f)
        else:
            test_dirs.add("/".join(segs[: at + 1]))
    if test_dirs:
        parts.append(f"tests in {', '.join(f'{d}/' for d in sorted(test_dirs))}")
        evidence += [Evidence("file", d, "tests folder") for d in sorted(test_dirs)]
    if colocated:
        suffixes = sorted({_test_pattern(f.rsplit("/", 1)[-1]) for f in colocated})
        parts.append(f"tests beside the code ({', '.join(suffixes)})")
        evidence += [Evidence("file", f, "test beside the code") for f in colocated[:5]]
    roles: dict[str, list[str]] = {}
    for d in _role_dirs(facts):
        roles.setdefault(d.rsplit("/", 1)[-1], []).append(d)
    for role in ROLE_DIRS:
        if role in roles:
            parts.append(f"{role} in {', '.join(roles[role])}")
            evidence += [Evidence("file", d, f"{role} folder") for d in roles[role]]
    if not parts:
        loose = [f for f in facts.files if "/" not in f and _is_source(f) and f not in ("setup.py", "conftest.py")]
        if loose:
            parts.append(f"sources at the root: {', '.join(loose)}")
            evidence += [Evidence("file", f, "source file") for f in loose]
    return parts, evidence


def _is_source(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in ("py", "js", "jsx", "ts", "tsx", "mjs", "cjs", "rs", "go", "rb")


def _test_pattern(name: str) -> str:
    """``calc_test.go`` → ``*_test.go``, ``Button.test.tsx`` → ``*.test.tsx``, ``test_calc.py`` → ``test_*.py``."""
    if name.startswith("test_"):
        return "test_*." + name.rsplit(".", 1)[-1]
    return re.sub(r"^[^._]*", "*", name)


def conventional_layout(ecosystem: str | None, name: str) -> str:
    """The layout a new project of ``ecosystem`` gets (``name``: the package or command name)."""
    layouts = {
        "python": f"src layout: src/{name}/ (pyproject.toml at the root); tests in tests/",
        "node": "sources in src/ (package.json at the root); tests beside the code (*.test.ts)",
        "go": f"module at the root (go.mod); cmd/{name}/main.go for commands, internal/ for packages; "
        "tests beside the code (*_test.go)",
        "rust": "src/lib.rs with src/main.rs for a binary (Cargo.toml at the root); integration tests in tests/",
        "ruby": f"lib/{name}.rb and lib/{name}/ (Gemfile at the root); tests in spec/ or test/",
    }
    if ecosystem is None:
        return "a conventional layout for the ecosystem the tech-stack decision picks"
    return layouts[ecosystem]


def _containers(facts: RepoFacts) -> set[str]:
    """The folders that hold monorepo members (``services`` for ``services/auth``), and their parents."""
    out: set[str] = set()
    for member in facts.members:
        parts = member.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return out - set(facts.members)


def _role_dirs(facts: RepoFacts) -> list[str]:
    """The folders named for a role (:data:`ROLE_DIRS`): not members, not member containers, not in test folders."""
    skip = set(facts.members) | _containers(facts)
    return [
        d
        for d in facts.dirs
        if d.rsplit("/", 1)[-1] in ROLE_DIRS and d not in skip and not any(s in _NOT_CODE_DIRS for s in d.split("/"))
    ]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _COMMON_WORDS}


def _matches(word: str, other: str) -> bool:
    """Whether two words name the same thing: equal, or one a prefix of the other (``auth``, ``authentication``)."""
    return word == other or (min(len(word), len(other)) >= 4 and (word.startswith(other) or other.startswith(word)))


def _named_members(feature: str, facts: RepoFacts) -> list[str]:
    """The members whose folder or package name shares the most words with ``feature`` (none share any: [])."""
    wanted = _words(feature)
    names = {
        m: _words(" ".join([m.rsplit("/", 1)[-1], *(n for k, n in facts.names.items() if k.startswith(f"{m}/"))]))
        for m in facts.members
    }
    common = set.intersection(*names.values()) if len(names) > 1 else set()
    scores = {m: sum(any(_matches(w, t) for t in words - common) for w in wanted) for m, words in names.items()}
    top = max(scores.values(), default=0)
    return [m for m in facts.members if top and scores[m] == top]


def _owner(path: str, members: tuple[str, ...]) -> str | None:
    return next((m for m in members if path.startswith(f"{m}/")), None)


def _placement(feature: str, facts: RepoFacts) -> str | None:
    """Where code for ``feature`` goes (``add code under src/components``), or None when nothing says."""
    members = facts.members
    named = _named_members(feature, facts) if members else []
    scope = named[0] if len(named) == 1 else None
    roles = _role_dirs(facts)
    if scope is not None:
        roles = [d for d in roles if d.startswith(f"{scope}/")]
    for pattern, wanted in _FEATURE_ROLES:
        if re.search(pattern, feature, re.IGNORECASE):
            for role in wanted:
                found = [d for d in roles if d.rsplit("/", 1)[-1] == role]
                owners = {_owner(d, members) for d in found}
                if len(owners) == 1:
                    return f"add code under {found[0]}"
                if found:
                    return f"add code under the {role} folder of the member that owns it: {', '.join(found)}"
    if scope is not None:
        inside = [p for p in facts.packages if p.startswith(f"{scope}/")]
        return f"add code under {inside[0] if inside else scope}"
    if members:
        return f"add code in the member package that owns it: {', '.join(named or members)}"
    return f"add code under {facts.packages[0]}" if facts.packages else None


def architecture(ctx: DecisionContext) -> Decision:
    """Match the existing layout (match_existing) unless there is none (appropriate_new)."""
    facts = ctx.facts()
    ecosystem = ctx.params.get("ecosystem") or facts.primary
    if ecosystem is not None and ecosystem not in ECOSYSTEMS:
        raise DecisionError(f"architecture: unknown ecosystem {ecosystem!r} (known: {', '.join(ECOSYSTEMS)})")
    feature = str(ctx.params.get("feature") or "").strip()
    parts, evidence = describe_layout(facts)
    has_code = bool(facts.source_counts) and bool(parts)
    raw_name = next(iter(facts.names.values()), "") or facts.root.resolve().name
    name = re.sub(r"\W+", "_", raw_name.rsplit("/", 1)[-1]).strip("_").lower() or "app"
    new = conventional_layout(ecosystem, name)
    question = "Which layout should new code follow?" + (f" (feature: {feature})" if feature else "")
    if has_code:
        layout = "; ".join(parts)
        where = _placement(feature, facts) if feature else None
        if where:
            layout += f"; for this feature: {where}"
        match = Option("match_existing", 1.0, tuple(evidence), layout)
        other = Option("appropriate_new", 0.3, (Evidence("fact", "the repository already has a structure"),), new)
        rationale = f"match_existing: {layout}"
        return Decision("architecture", question, "match_existing", rationale, (match, other), confidence=0.9)
    nothing = "no source files to match" + (" (an empty repository)" if facts.is_empty else "")
    match = Option("match_existing", 0.0, (Evidence("fact", nothing),), "")
    other = Option(
        "appropriate_new",
        0.8,
        (Evidence("fact", nothing), Evidence("fact", f"ecosystem: {ecosystem or 'unknown'}")),
        new,
    )
    rationale = f"appropriate_new: {nothing}; use {new}"
    return Decision("architecture", question, "appropriate_new", rationale, (match, other), confidence=0.7)
