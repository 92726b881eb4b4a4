"""The shipped strategies (tech stack, architecture, gates) through the decision engine, on small repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import maestro
from maestro.core.errors import DecisionError, PlanError
from maestro.core.records import Decision
from maestro.decide.engine import DecisionEngine
from maestro.decide.repofacts import scan
from maestro.decide.strategies import STRATEGIES, gate_command, load_catalogue
from maestro.decide.strategies.tech_stack import SCORES, parse_catalogue
from maestro.store.views import decision_file_name
from tests.support.repos import GO, MONOREPO, NODE, PY_FLAT, PY_SRC, RUBY, RUST, make

PY_UNITTEST = {k: v for k, v in PY_FLAT.items() if k != "setup.cfg"}  # no pytest declared


@pytest.fixture
def engine() -> DecisionEngine:
    return DecisionEngine(strategies=STRATEGIES)


def scores(decision: Decision) -> dict[str, float]:
    return {o.name: o.score for o in decision.options}


def assert_evidence_is_real(decision: Decision, repo: Path) -> None:
    """Every file the evidence names exists; every dependency it names is declared."""
    facts = scan(repo)
    declared = {d.name for d in facts.dependencies}
    for option in decision.options:
        for e in option.evidence:
            if e.kind == "file":
                assert (repo / e.value).exists(), f"{option.name}: {e.value} does not exist"
            elif e.kind == "dependency":
                assert e.value in declared, f"{option.name}: {e.value} is not declared"


# -- tech stack ---------------------------------------------------------------------------
def test_tech_stack_prefers_an_existing_dependency(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "py", PY_SRC)
    d = engine.decide("tech_stack", repo=repo, capability="http client")
    assert d.kind == "tech_stack" and d.choice == "httpx"
    assert d.rationale == (
        "prefer_existing: httpx is already a dependency (httpx in pyproject.toml [project.dependencies])"
    )
    s = scores(d)
    assert s["httpx"] == 1.0 and s["requests"] == 0.7 and s["niquests"] == 0.3
    httpx = next(o for o in d.options if o.name == "httpx")
    assert [(e.kind, e.value, e.detail) for e in httpx.evidence] == [
        ("dependency", "httpx", "pyproject.toml [project.dependencies]")
    ]
    assert d.confidence > 0.9
    assert_evidence_is_real(d, repo)


def test_tech_stack_existing_beats_catalogue_order(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "flat", PY_FLAT)
    d = engine.decide("tech_stack", repo=repo, capability="HTTP-Client")
    assert d.choice == "requests"  # httpx comes first in the catalogue, but requests is declared
    assert scores(d)["requests"] == 1.0 and scores(d)["httpx"] == 0.7
    assert "requests in requirements.txt" in d.rationale
    linter = engine.decide("tech_stack", repo=repo, capability="lint")
    assert linter.choice == "flake8" and scores(linter)["ruff"] == 0.7


def test_tech_stack_mature_new_when_nothing_is_declared(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "py", PY_SRC)
    d = engine.decide("tech_stack", repo=repo, capability="task queue")
    assert d.choice == "celery"
    assert d.rationale.startswith(
        "mature_new: no task queue is declared or imported in the repository; celery is mature"
    )
    s = scores(d)
    assert s["arq"] == SCORES["experimental"] < s["celery"] == SCORES["mature_new"]
    assert d.confidence < 0.9
    assert all(e.kind == "fact" for o in d.options for e in o.evidence)


@pytest.mark.parametrize(
    ("files", "capability", "choice", "evidence"),
    [
        (NODE, "http", "axios", "package.json [dependencies]"),
        (NODE, "test runner", "vitest", "package.json [devDependencies]"),
        (MONOREPO, "web framework", "express", "packages/api/package.json [dependencies]"),
        (GO, "web framework", "github.com/go-chi/chi/v5", "go.mod [require]"),  # chi v1 declared: same project
        (RUST, "http clients", "reqwest", "Cargo.toml [dependencies]"),
        (RUST, "serialization", "serde", "Cargo.toml [dependencies]"),  # serde_json counts for serde
        (RUBY, "ORM", "activerecord", "Gemfile"),  # rails brings ActiveRecord
        (RUBY, "linter", "rubocop", "Gemfile [group :development, :test]"),
    ],
)
def test_tech_stack_across_ecosystems(
    tmp_path: Path, engine: DecisionEngine, files: dict[str, str], capability: str, choice: str, evidence: str
) -> None:
    repo = make(tmp_path / "repo", files)
    d = engine.decide("tech_stack", repo=repo, capability=capability)
    assert d.choice == choice
    assert d.rationale.startswith(f"prefer_existing: {choice} is already a dependency")
    chosen = next(o for o in d.options if o.name == choice)
    assert chosen.score == 1.0 and any(e.kind == "dependency" and e.detail == evidence for e in chosen.evidence)
    assert [o.score for o in d.options if o.name != choice] and max(o.score for o in d.options if o.name != choice) < 1
    assert_evidence_is_real(d, repo)


def test_tech_stack_without_a_dependency_in_other_ecosystems(tmp_path: Path, engine: DecisionEngine) -> None:
    node = make(tmp_path / "node", NODE)
    assert engine.decide("tech_stack", repo=node, capability="orm").choice == "prisma"
    go = make(tmp_path / "go", GO)
    assert engine.decide("tech_stack", repo=go, capability="test runner").choice == "go test"
    assert engine.decide("tech_stack", repo=go, capability="http client", ecosystem="rust").choice == "reqwest"


def test_tech_stack_asks_for_what_it_needs(tmp_path: Path, engine: DecisionEngine) -> None:
    empty = make(tmp_path / "empty", {})
    with pytest.raises(DecisionError, match="say which capability"):
        engine.decide("tech_stack", repo=empty)
    with pytest.raises(DecisionError, match=r"unknown capability 'blockchain' \(known: http client, web framework"):
        engine.decide("tech_stack", repo=empty, capability="blockchain", ecosystem="python")
    with pytest.raises(DecisionError, match=r"no ecosystem detected.*pass ecosystem="):
        engine.decide("tech_stack", repo=empty, capability="orm")
    with pytest.raises(DecisionError, match="unknown ecosystem 'cobol'"):
        engine.decide("tech_stack", repo=empty, capability="orm", ecosystem="cobol")
    d = engine.decide("tech_stack", ecosystem="python", capability="Web-Framework")  # no repository at all
    assert d.choice == "fastapi" and d.question == "Which web framework for python?"


def test_tech_stack_human_precedent_wins(tmp_path: Path) -> None:
    repo = make(tmp_path / "py", PY_SRC)
    history = tmp_path / "decisions"
    history.mkdir()
    earlier = {
        "kind": "tech_stack",
        "question": "Which http client for python?",
        "choice": "aiohttp",
        "rationale": "we standardise on aiohttp",
        "decided_by": "human",
    }
    (history / f"{decision_file_name('tech_stack')}.json").write_text(
        json.dumps([{"session": "S7", "decision": earlier}])
    )
    engine = DecisionEngine(strategies=STRATEGIES, decisions_dir=history)
    d = engine.decide("tech_stack", repo=repo, capability="http client")
    assert d.choice == "aiohttp"
    assert d.rationale.startswith("human_precedent: a human chose aiohttp")
    assert engine.decide("tech_stack", repo=repo, capability="orm").choice == "sqlalchemy"  # another question


def test_catalogue_is_complete_and_strict(tmp_path: Path) -> None:
    cat = load_catalogue()
    needed = {"http client", "web framework", "orm", "test runner", "linter", "type checker", "security scanner",
              "oauth", "cli", "validation/serialization", "task queue", "logging"}  # fmt: skip
    for ecosystem in ("python", "node", "rust", "go", "ruby"):
        assert set(cat.entries[ecosystem]) >= needed, ecosystem
        for cands in cat.entries[ecosystem].values():
            names = [c.name for c in cands]
            assert len(set(names)) == len(names)
    assert cat.capability("Http_Clients") == "http client" and cat.capability("OAuth2") == "oauth"
    bad = tmp_path / "cat.yaml"
    bad.write_text(
        "version: 1\ncapabilities: {orm: []}\necosystems:\n  python:\n    orm:\n      - {name: x, maturity: ok}\n"
    )
    with pytest.raises(PlanError, match=r"cat\.yaml: ecosystems\.python\.orm\[0\]\.maturity: expected mature"):
        load_catalogue(bad)
    with pytest.raises(PlanError, match=r"<input>:3: YAML syntax"):
        parse_catalogue("version: 1\ncapabilities: [\n")


# -- architecture --------------------------------------------------------------------------
def test_architecture_matches_a_python_src_layout(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "py", PY_SRC)
    d = engine.decide("architecture", repo=repo)
    assert d.choice == "match_existing"
    assert d.rationale == "match_existing: src layout: src/calc; tests in tests/; services in src/calc/services"
    assert scores(d) == {"match_existing": 1.0, "appropriate_new": 0.3}
    match = d.options[0]
    assert match.notes == "src layout: src/calc; tests in tests/; services in src/calc/services"
    assert {e.value for e in match.evidence} == {"src/calc/__init__.py", "tests", "src/calc/services"}
    assert_evidence_is_real(d, repo)


@pytest.mark.parametrize(
    ("files", "feature", "expected"),
    [
        (PY_FLAT, "store orders in a new table", "flat layout: shop; tests in tests/; models in shop/models; "
         "for this feature: add code under shop/models"),
        (NODE, "", "sources in src/; tests beside the code (*.test.tsx); components in src/components"),
        (MONOREPO, "add a users endpoint", "monorepo: packages/api, packages/web; tests beside the code "
         "(*.test.tsx); routes in packages/api/src/routes; for this feature: add code under packages/api/src/routes"),
        (GO, "", "go command: main.go; tests beside the code (*_test.go); cmd in cmd"),
        (RUST, "", "rust library: src/lib.rs; tests in tests/"),
        (RUBY, "", "sources in app/; tests in spec/; models in app/models"),
    ],
)  # fmt: skip
def test_architecture_across_ecosystems(
    tmp_path: Path, engine: DecisionEngine, files: dict[str, str], feature: str, expected: str
) -> None:
    repo = make(tmp_path / "repo", files)
    d = engine.decide("architecture", repo=repo, feature=feature)
    assert d.choice == "match_existing"
    assert d.rationale == f"match_existing: {expected}"
    assert scores(d)["match_existing"] > scores(d)["appropriate_new"]
    assert_evidence_is_real(d, repo)


def test_architecture_in_an_empty_repository(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "new-app", {".gitignore": "*.pyc\n"})
    d = engine.decide("architecture", repo=repo, ecosystem="python")
    assert d.choice == "appropriate_new"
    assert scores(d) == {"match_existing": 0.0, "appropriate_new": 0.8}
    assert d.options[1].notes == "src layout: src/new_app/ (pyproject.toml at the root); tests in tests/"
    assert "no source files to match (an empty repository)" in d.rationale
    go = engine.decide("architecture", repo=repo, ecosystem="go")
    assert "cmd/new_app/main.go" in go.rationale
    unknown = engine.decide("architecture", repo=repo)
    assert "the tech-stack decision picks" in unknown.rationale


# -- gates -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "gate", "choice", "command"),
    [
        (PY_SRC, "tests", "pytest", "python -m pytest -q --junitxml={junit}"),
        (PY_SRC, "lint", "ruff", "ruff check ."),
        (PY_SRC, "typecheck", "mypy", "python -m mypy"),  # files are configured in [tool.mypy]
        (PY_FLAT, "tests", "pytest", "python -m pytest -q --junitxml={junit}"),  # declared; runs unittest tests too
        (PY_UNITTEST, "tests", "unittest", "python -m unittest discover -s tests"),
        (PY_FLAT, "lint", "flake8", "python -m flake8"),
        (NODE, "tests", "vitest", "npx vitest run --reporter=junit --outputFile={junit}"),
        (NODE, "lint", "eslint", "npx eslint ."),
        (NODE, "typecheck", "tsc", "npx tsc --noEmit"),
        (NODE, "security", "npm audit", "npm audit --audit-level=high"),
        (MONOREPO, "tests", "vitest", "npx vitest run --reporter=junit --outputFile={junit}"),
        (GO, "tests", "go test", "go test ./..."),
        (GO, "typecheck", "go vet", "go vet ./..."),
        (GO, "security", "govulncheck", "govulncheck ./..."),
        (RUST, "tests", "cargo test", "cargo test"),
        (RUST, "typecheck", "cargo check", "cargo check --all-targets"),
        (RUBY, "tests", "rspec", "bundle exec rspec"),
        (RUBY, "lint", "rubocop", "bundle exec rubocop"),
    ],
)
def test_gate_picks_the_tool_with_evidence(
    tmp_path: Path, engine: DecisionEngine, files: dict[str, str], gate: str, choice: str, command: str
) -> None:
    repo = make(tmp_path / "repo", files)
    d = engine.decide("gate", repo=repo, gate=gate)
    assert d.kind == "gate" and d.choice == choice
    assert d.options[0].name == choice and d.options[0].notes == command
    assert d.rationale.endswith(f"; command: {command}")
    assert gate_command(d) == command
    assert [o.score for o in d.options] == sorted((o.score for o in d.options), reverse=True)
    assert d.options[0].evidence and d.confidence == d.options[0].score
    assert_evidence_is_real(d, repo)


def test_gate_scores_follow_the_evidence(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "py", PY_SRC)
    tests = engine.decide("gate", repo=repo, gate="tests")
    assert scores(tests) == {"pytest": 1.0}  # config + conftest, dependency, test files importing pytest
    lint = engine.decide("gate", repo=repo, gate="lint")
    assert scores(lint) == {"ruff": 0.8}  # [tool.ruff] 0.5 + dependency 0.3
    assert {(e.kind, e.value, e.detail) for e in lint.options[0].evidence} == {
        ("file", "pyproject.toml", "[tool.ruff]"),
        ("dependency", "ruff", "pyproject.toml [project.optional-dependencies.dev]"),
    }
    node = make(tmp_path / "node", NODE)
    node_tests = engine.decide("gate", repo=node, gate="tests")
    assert list(scores(node_tests)) == ["vitest", "jest", "npm test"]  # jest only has a package.json key
    assert scores(node_tests)["vitest"] > scores(node_tests)["jest"]


def test_gate_jest_and_junit_reporters(tmp_path: Path, engine: DecisionEngine) -> None:
    pkg = {"scripts": {"test": "jest"}, "devDependencies": {"jest": "^29", "jest-junit": "^16"}}
    repo = make(tmp_path / "jest", {"package.json": json.dumps(pkg), "jest.config.js": "module.exports = {}\n"})
    d = engine.decide("gate", repo=repo, gate="tests")
    assert d.choice == "jest"
    assert gate_command(d) == "npx jest --ci --reporters=default --reporters=jest-junit"


def test_gate_rspec_junit_and_mypy_targets(tmp_path: Path, engine: DecisionEngine) -> None:
    ruby = make(tmp_path / "rb", {**RUBY, "Gemfile": 'gem "rspec"\ngem "rspec_junit_formatter"\n'})
    assert "--out {junit}" in (gate_command(engine.decide("gate", repo=ruby, gate="tests")) or "")
    flat = make(tmp_path / "flat", {**PY_FLAT, "mypy.ini": "[mypy]\nstrict = True\n", ".bandit": "[bandit]\n"})
    assert gate_command(engine.decide("gate", repo=flat, gate="typecheck")) == "python -m mypy shop"
    assert gate_command(engine.decide("gate", repo=flat, gate="security")) == "python -m bandit -r shop -q"


@pytest.mark.parametrize(("files", "gate"), [(PY_SRC, "security"), (PY_FLAT, "typecheck"), (GO, "lint"), ({}, "tests")])
def test_gate_without_evidence_is_none(
    tmp_path: Path, engine: DecisionEngine, files: dict[str, str], gate: str
) -> None:
    repo = make(tmp_path / "repo", files)
    d = engine.decide("gate", repo=repo, gate=gate)
    assert d.choice == "none"
    assert len(d.options) == 1 and d.options[0].name == "none" and d.options[0].score == 0.0
    (fact,) = d.options[0].evidence
    assert fact.kind == "fact" and fact.value.startswith(f"no {gate} tool found: looked for ")
    assert d.rationale.endswith(f"no {gate} gate will run")
    assert gate_command(d) is None


def test_gate_restricted_to_an_ecosystem_and_bad_input(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "both", {**PY_SRC, **{k: v for k, v in NODE.items() if k != "src/index.ts"}})
    assert repo and scan(repo).ecosystems == ("python", "node")  # python has more source files
    tests = engine.decide("gate", repo=repo, gate="tests")
    assert scores(tests)["pytest"] == scores(tests)["vitest"] == 1.0
    assert tests.choice == "pytest"  # a tie goes to the primary ecosystem
    assert engine.decide("gate", repo=repo, gate="tests", ecosystem="node").choice == "vitest"
    assert engine.decide("gate", repo=repo, gate="lint").choice == "eslint"  # stronger evidence than ruff's
    with pytest.raises(DecisionError, match="gate= one of tests, lint, typecheck, security"):
        engine.decide("gate", repo=repo, gate="format")
    with pytest.raises(DecisionError, match="needs a repository"):
        engine.decide("gate", gate="tests")
    other = Decision("tech_stack", "q", "httpx", "r")
    assert gate_command(other) is None


def test_malformed_manifest_surfaces_as_plan_error_through_the_engine(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(tmp_path / "bad", {"package.json": '{\n  "name": "x",\n  "dependencies": []\n}\n'})
    with pytest.raises(PlanError, match=r"package\.json:3: dependencies: expected an object"):
        engine.decide("gate", repo=repo, gate="tests")


# -- through a real session ------------------------------------------------------------------
def test_decisions_are_recorded_in_the_session(session: maestro.Session, engine: DecisionEngine) -> None:
    repo = session.store.repo
    make(repo, PY_SRC)
    gate = session.record(engine.decide("gate", state=session.state, repo=session.store.repo, gate="tests")).payload()
    stack = session.record(
        engine.decide("tech_stack", state=session.state, repo=session.store.repo, capability="http client", task="T1")
    ).payload()
    assert (gate.id, stack.id) == ("D1", "D2")
    recorded = session.state.decisions
    assert [d.choice for d in recorded] == ["pytest", "httpx"]
    assert recorded[0].options[0].notes == "python -m pytest -q --junitxml={junit}"
    assert gate_command(recorded[0]) == "python -m pytest -q --junitxml={junit}"
    assert any(e.kind == "dependency" and e.value == "httpx" for e in recorded[1].options[0].evidence)
    assert recorded[1].task == "T1" and recorded[1].decided_by == "policy"


# -- regressions ---------------------------------------------------------------------------
def test_tech_stack_human_precedent_carries_the_top_score(tmp_path: Path) -> None:
    repo = make(tmp_path / "py", PY_SRC)  # declares httpx
    history = tmp_path / "decisions"
    history.mkdir()

    def entry(kind: str, choice: str) -> dict[str, object]:
        question = "Which http client for python?"
        return {"session": "s1", "decision": {"kind": kind, "question": question, "choice": choice,
                                              "rationale": "r", "decided_by": "human"}}  # fmt: skip

    # the file is shared by the kinds tech_stack and tech-stack: only tech_stack entries count
    assert decision_file_name("tech_stack") == decision_file_name("tech-stack")
    (history / f"{decision_file_name('tech_stack')}.json").write_text(
        json.dumps([entry("tech_stack", "requests"), entry("tech-stack", "aiohttp")])
    )
    d = DecisionEngine(strategies=STRATEGIES, decisions_dir=history).decide(
        "tech_stack", repo=repo, capability="http client"
    )
    assert d.choice == "requests"
    s = scores(d)
    assert s["requests"] == max(s.values()) == 1.0 and s["httpx"] == 1.0 and s["aiohttp"] == 0.7
    requests = next(o for o in d.options if o.name == "requests")
    assert requests.notes.startswith("human_precedent: ")
    assert requests.evidence[-1].value == "decided by a human in session s1"


@pytest.mark.parametrize(
    ("files", "ecosystem", "choice", "detail"),
    [
        ({"tests/test_a.py": "import unittest\n"}, "python", "unittest", "imports unittest"),
        ({"package.json": "{}", "src/sum.test.js": "import test from 'node:test'\n"}, "node", "node:test",
         "imports node:test"),
        ({"Gemfile": "source 'https://rubygems.org'\n", "test/test_calc.rb": "require 'minitest/autorun'\n"}, "ruby",
         "minitest", "requires minitest"),
        (GO, "go", "go test", "go test file"),
        (RUST, "rust", "cargo test", "#[test]"),
    ],
)  # fmt: skip
def test_tech_stack_counts_the_built_ins_a_repository_uses(
    tmp_path: Path, engine: DecisionEngine, files: dict[str, str], ecosystem: str, choice: str, detail: str
) -> None:
    repo = make(tmp_path / "repo", files)
    d = engine.decide("tech_stack", repo=repo, capability="test-runner", ecosystem=ecosystem)
    assert d.choice == choice
    assert d.rationale.startswith(f"prefer_existing: {choice} is already in use (")
    chosen = next(o for o in d.options if o.name == choice)
    assert chosen.score == 1.0 and chosen.notes.startswith("prefer_existing: ")
    assert chosen.evidence and all(e.kind == "file" and e.detail == detail for e in chosen.evidence)
    assert_evidence_is_real(d, repo)
    if choice == "unittest":  # the gate agrees
        assert engine.decide("gate", repo=repo, gate="tests").choice == "unittest"


@pytest.mark.parametrize("folder", ["__tests__", "test", "tests", "spec", "specs", "e2e", "fixtures"])
def test_architecture_never_places_code_in_a_test_folder(tmp_path: Path, engine: DecisionEngine, folder: str) -> None:
    repo = make(
        tmp_path / "web",
        {
            "package.json": "{}",
            "src/components/Button.tsx": "export {}\n",
            f"src/{folder}/components/Button.test.tsx": "\n",
        },
    )
    d = engine.decide("architecture", repo=repo, feature="add a login form component")
    assert d.rationale.endswith("; components in src/components; for this feature: add code under src/components")


def test_architecture_in_a_monorepo_names_a_member_not_the_container(tmp_path: Path, engine: DecisionEngine) -> None:
    repo = make(
        tmp_path / "mono",
        {
            "package.json": json.dumps({"name": "root", "workspaces": ["services/*"]}),
            "services/auth/package.json": json.dumps({"name": "@acme/auth"}),
            "services/auth/index.js": "\n",
            "services/billing/package.json": json.dumps({"name": "@acme/billing"}),
            "services/billing/index.js": "\n",
        },
    )
    d = engine.decide("architecture", repo=repo, feature="add invoice business logic service")
    assert d.rationale == (
        "match_existing: monorepo: services/auth, services/billing; "
        "for this feature: add code in the member package that owns it: services/auth, services/billing"
    )
    d = engine.decide("architecture", repo=repo, feature="add a billing business logic service")
    assert d.rationale.endswith("; for this feature: add code under services/billing")
    make(repo, {"services/auth/src/routes/login.js": "\n"})
    d = DecisionEngine(strategies=STRATEGIES).decide("architecture", repo=repo, feature="add a logout endpoint")
    assert d.rationale.endswith(
        "routes in services/auth/src/routes; for this feature: add code under services/auth/src/routes"
    )


@pytest.mark.parametrize(
    ("kind", "params"),
    [("gate", {"gate": "tests"}), ("tech_stack", {"capability": "orm"}), ("architecture", {})],
)
def test_an_unknown_ecosystem_is_refused(
    tmp_path: Path, engine: DecisionEngine, kind: str, params: dict[str, str]
) -> None:
    repo = make(tmp_path / "py", PY_SRC)
    with pytest.raises(DecisionError, match=r"unknown ecosystem 'cobol' \(known: python, node, rust, go, ruby\)"):
        engine.decide(kind, repo=repo, ecosystem="cobol", **params)


def test_a_catalogue_key_that_is_not_a_name_is_one_line_with_its_line() -> None:
    text = "version: 1\ncapabilities:\n  orm: []\n  1: []\necosystems:\n  python: {}\n"
    with pytest.raises(PlanError) as info:
        parse_catalogue(text, source="cat.yaml")
    assert str(info.value) == "cat.yaml:4: capabilities.1: a key is a name (a string), not 1"
    head = "version: 1\ncapabilities: {orm: []}\necosystems:\n  python:\n"
    text = head + "    orm: [{name: x, maturity: mature}]\n    true: []\n"
    with pytest.raises(PlanError, match=r"^cat\.yaml:6: ecosystems\.python\.True: a key is a name"):
        parse_catalogue(text, source="cat.yaml")
    with pytest.raises(PlanError, match=r"^cat\.yaml: YAML nested too deeply to read$"):
        parse_catalogue("version: 1\ncapabilities: " + "[" * 5000 + "]" * 5000 + "\n", source="cat.yaml")
    bad = head + "    orm: [{name: x, maturity: mature, markers: x}]\n"
    with pytest.raises(PlanError, match=r"orm\[0\]\.markers: expected a list of scan markers"):
        parse_catalogue(bad, source="cat.yaml")
