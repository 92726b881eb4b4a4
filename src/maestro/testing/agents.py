"""The agent conformance suite: the contract every :class:`~maestro.agents.base.Agent` keeps, as pytest tests.

An adapter's author writes an :class:`AgentHarness` — how to build the agent so
that its next attempt succeeds and writes a file, fails with a given failure
class, outlasts its timeout, plans — and subclasses :class:`AgentConformance`
with a ``harness`` fixture::

    import pytest
    from maestro.testing.agents import AgentCase, AgentConformance, AgentHarness

    class MyHarness(AgentHarness):
        failure_classes = ("implementation", "critical")
        budgets = True

        def succeeding(self, case: AgentCase) -> Agent: ...
        def failing(self, case: AgentCase, failure_class: str) -> Agent: ...
        def hanging(self, case: AgentCase) -> Agent: ...

    class TestMyAgent(AgentConformance):
        @pytest.fixture
        def harness(self) -> AgentHarness:
            return MyHarness()

Each check builds a fresh git repository (``calc.py`` and ``README.md``
committed, ``.flow/`` ignored) with a session folder inside it, as a live
session has (``.flow/maestro/sessions/<id>/``), and runs the agent there.  The
checks are what the runner relies on:

* ``run`` returns an :class:`~maestro.core.records.AgentResult` for the
  request's task and attempt, with a status and failure class from the allowed
  values, and ``succeeded`` exactly when there is no failure class;
* a success leaves its work in the working directory; a failure is a result,
  never an exception;
* nothing under ``.git`` changes (no commit, no index; except the files the
  harness declares in :attr:`AgentHarness.git_writes`), nothing under
  ``.flow`` outside the session folder, and in the session folder only
  ``agents/…`` (and ``plan.json`` when planning); without a session folder
  nothing is saved there;
* the result's ``transcript`` is a file inside the session folder;
* an attempt that outlasts its timeout returns, soon after it, with status
  ``timeout`` and class ``transient``;
* with a budget, an attempt runs; with none left (``budget_usd`` 0) an agent
  that supports budgets refuses it, ``critical``, without running;
* a deterministic agent gives the same result, tree and transcripts twice;
* ``plan`` returns a :class:`~maestro.agents.base.PlanOutcome` whose plan is
  there exactly when its result succeeded, validated, with the answer given;
  an invalid answer is a failed result (``implementation``); an agent that
  cannot plan says so (``ambiguous``).

The module holds one idea, the agent contract as checks: the harness the
checks are fed by, the world they build, and the checks.  Needs pytest (this
is the test toolkit; nothing in maestro imports it).
"""

from __future__ import annotations

import abc
import hashlib
import os
import stat
import time
from pathlib import Path, PurePosixPath

import attrs
import pytest
from dulwich import porcelain
from dulwich.repo import Repo

from maestro.agents.base import PLAN_TASK, Agent, AgentRequest, Plan, PlanOutcome, PlanRequest, validate_plan
from maestro.core.records import AGENT_STATUSES, FAILURE_CLASSES, AgentResult
from maestro.plan.tasks import Task

__all__ = [
    "CONTENT",
    "INVALID_TASKS",
    "PLAN_PRD",
    "PLAN_TASKS",
    "SEED",
    "SESSION_FOLDER",
    "TASK",
    "AgentCase",
    "AgentConformance",
    "AgentHarness",
    "make_case",
]

TASK = Task(
    "T1",
    "Add calculator core",
    description="Write add(a, b) in calc.py.",
    acceptance=("true",),
    files=("calc.py",),
)
"""The task every check asks for (it declares its file: an agent judged by the tree, like aider, needs it)."""

SEED = "x = 1\n"
"""What ``calc.py`` holds before the attempt."""

CONTENT = "def add(a, b):\n    return a + b\n"
"""What a succeeding attempt writes to ``calc.py``."""

SESSION_FOLDER = ".flow/maestro/sessions/conformance-1"
"""The session folder, inside the working directory as a live session's is."""

PLAN_PRD = """\
---
prd:
  version: v1
  feature_name: greeting
  status: draft
priorities:
  requirements:
    - id: FR-1
      text: "Print a greeting"
      priority: P0
---

# Product Requirements Document: Greeting

## Functional Requirements

| ID | Requirement | Priority | Notes |
|----|-------------|----------|-------|
| FR-1 | Print a greeting | P0 | Core |
"""
"""The PRD a planning agent answers with."""

PLAN_TASKS = """\
version: 1
tasks:
  - id: T1
    title: Add the greeting
    description: Write greet.py that prints a greeting.
    category: backend
    requirements: [FR-1]
    depends_on: []
    risk: low
    priority: P1
    acceptance:
      - python greet.py
"""
"""The task graph a planning agent answers with."""

INVALID_TASKS = PLAN_TASKS.replace("[FR-1]", "[FR-9]")
"""A task graph naming a requirement the PRD does not have: the answer does not validate."""


@attrs.frozen
class AgentCase:
    """What a check asks of the harness: an agent for ``task``'s attempt ``attempt`` in ``workdir``.

    ``scratch`` is a folder of the harness's own, outside the working directory
    (for a fake's log, a script, a recording).  A succeeding attempt writes
    ``content`` to ``path`` (relative to ``workdir``); a hanging one outlasts
    ``timeout_s``; a planning agent answers with ``prd_markdown`` and ``tasks_yaml``.
    """

    workdir: Path
    scratch: Path
    task: Task = TASK
    attempt: int = 1
    path: str = "calc.py"
    content: str = CONTENT
    timeout_s: float = 60.0
    prd_markdown: str = PLAN_PRD
    tasks_yaml: str = PLAN_TASKS

    @property
    def session_dir(self) -> Path:
        """The session folder the checks give the request (transcripts go under it)."""
        return self.workdir / SESSION_FOLDER


class AgentHarness(abc.ABC):
    """How to build one kind of agent for the suite's checks; an adapter's author writes one.

    The class attributes say what the agent can do; the checks that need a
    capability it does not have are skipped.
    """

    failure_classes: tuple[str, ...] = ()
    """The failure classes :meth:`failing` can produce (at least one)."""

    budgets: bool = False
    """The agent refuses an attempt when no budget is left (``budget_usd`` 0), without running it."""

    plans: bool = False
    """:meth:`planning` gives an agent that answers with a plan (others must refuse to plan, ``ambiguous``)."""

    deterministic: bool = False
    """The same request in the same tree gives the same result, tree and transcripts every time."""

    names_its_results: bool = True
    """Every result carries the agent's ``name`` (a replaying agent carries the recorded agent's)."""

    git_writes: tuple[str, ...] = ()
    """Files under ``.git`` (relative to it) the agent is documented to write, e.g. ``info/exclude``."""

    timeout_s: float = 1.0
    """The timeout :meth:`hanging`'s attempt is given."""

    overrun_s: float = 20.0
    """How long after its timeout a hanging attempt may take to return (the process group's grace period)."""

    @abc.abstractmethod
    def succeeding(self, case: AgentCase) -> Agent:
        """An agent whose attempt ``case.attempt`` at ``case.task`` writes ``case.content`` to ``case.path`` and
        succeeds — and, for one with :attr:`budgets`, would run (and so change the file) if it were let."""

    @abc.abstractmethod
    def failing(self, case: AgentCase, failure_class: str) -> Agent:
        """An agent whose attempt fails with ``failure_class`` (one of :attr:`failure_classes`)."""

    @abc.abstractmethod
    def hanging(self, case: AgentCase) -> Agent:
        """An agent whose attempt would outlast ``case.timeout_s``."""

    def planning(self, case: AgentCase) -> Agent:
        """An agent whose :meth:`~maestro.agents.base.Agent.plan` answers ``case.prd_markdown`` and
        ``case.tasks_yaml`` (only asked for when :attr:`plans` is true)."""
        raise NotImplementedError(f"{type(self).__name__} has plans = True but no planning()")


def make_case(root: Path, **fields: object) -> AgentCase:
    """A fresh world under ``root``: a git repository with ``calc.py`` (:data:`SEED`) and ``README.md``
    committed, ``.flow/`` ignored, an empty session folder, and a scratch folder for the harness."""
    workdir = root / "repo"
    scratch = root / "scratch"
    scratch.mkdir(parents=True)
    workdir.mkdir(parents=True)
    Repo.init(str(workdir)).close()
    files = {"calc.py": SEED, "README.md": "# calc\n", ".gitignore": ".flow/\n"}
    for name, text in files.items():
        (workdir / name).write_text(text, encoding="utf-8")
    porcelain.add(str(workdir), paths=[str(workdir / name) for name in files])
    who = b"maestro conformance <conformance@example.invalid>"
    porcelain.commit(str(workdir), message=b"seed", author=who, committer=who)
    case = AgentCase(workdir, scratch, **fields)  # type: ignore[arg-type]
    case.session_dir.mkdir(parents=True)
    (workdir / ".flow" / "maestro" / "config.yaml").write_text("{}\n", encoding="utf-8")
    return case


# -- what the checks look at ------------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, tuple[str, str]]:
    """Every file and symlink under ``root`` (``.git`` and ``.flow`` included): path → (kind, digest or target)."""
    out: dict[str, tuple[str, str]] = {}
    for folder, dirs, names in os.walk(root):
        for name in [*names, *dirs]:
            full = os.path.join(folder, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ("executable" if st.st_mode & 0o111 else "file", digest)
    return out


def _changed(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> list[str]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def _trespasses(harness: AgentHarness, changed: list[str], *, planning: bool = False) -> list[str]:
    """The changed paths an agent must not write: ``.git`` (but the declared files), ``.flow`` outside the
    session folder, and in the session folder anything but ``agents/…`` (and ``plan.json`` when planning)."""
    bad = []
    session = SESSION_FOLDER + "/"
    for path in changed:
        if path == ".git" or path.startswith(".git/"):
            if path.removeprefix(".git/") not in harness.git_writes:
                bad.append(f"{path} (in .git: an agent never commits nor touches the repository's metadata)")
        elif path.startswith(session):
            inner = path.removeprefix(session)
            if not (inner.startswith("agents/") or (planning and inner == "plan.json")):
                bad.append(f"{path} (in the session folder an agent writes only agents/… and plan.json)")
        elif path == ".flow" or path.startswith(".flow/"):
            bad.append(f"{path} (in .flow, outside the session folder: that is maestro's)")
    return bad


def _shown(result: AgentResult) -> str:
    return f"{result.status} ({result.failure_class}): {result.summary}"


def _label(agent: object) -> str:
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) and name else type(agent).__name__


def _run(agent: Agent, request: AgentRequest) -> AgentResult:
    """``agent.run(request)``; an exception fails the check (an agent's own failure is a result)."""
    try:
        return agent.run(request)
    except Exception as exc:  # noqa: BLE001 - any exception is the finding
        pytest.fail(f"{_label(agent)}.run raised {type(exc).__name__}: {exc} (an agent's failure is a result, "
                    "never an exception)", pytrace=False)  # fmt: skip


def _plan(agent: Agent, request: PlanRequest) -> PlanOutcome:
    try:
        return agent.plan(request)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{_label(agent)}.plan raised {type(exc).__name__}: {exc} (a planning failure is a result)",
                    pytrace=False)  # fmt: skip


def _check_result(harness: AgentHarness, agent: Agent, result: object, task: str, attempt: int) -> AgentResult:
    """The result is an AgentResult for (task, attempt), its status and class allowed and consistent."""
    who = _label(agent)
    assert isinstance(result, AgentResult), f"{who} returned {type(result).__name__}, not an AgentResult"
    assert (result.task, result.attempt) == (task, attempt), (
        f"{who}: the result is for {result.task} attempt {result.attempt}, the request was {task} attempt {attempt}"
    )
    assert result.status in AGENT_STATUSES, f"{who}: status {result.status!r} is not one of {AGENT_STATUSES}"
    assert result.failure_class is None or result.failure_class in FAILURE_CLASSES, (
        f"{who}: failure class {result.failure_class!r} is not one of {FAILURE_CLASSES}"
    )
    if result.status == "succeeded":
        assert result.failure_class is None, f"{who}: a success with failure class {result.failure_class!r}"
    else:
        assert result.failure_class is not None, f"{who}: a {result.status} result without a failure class"
    assert isinstance(result.agent, str) and result.agent, f"{who}: the result names no agent"
    if harness.names_its_results:
        assert result.agent == agent.name, f"{who}: the result is stamped {result.agent!r}, not {agent.name!r}"
    assert isinstance(result.summary, str), f"{who}: the summary is not a string"
    return result


def _check_transcript(agent: Agent, result: AgentResult, session_dir: Path, *, required: bool) -> None:
    """The transcript, when the result names one, is a file inside the session folder."""
    who = _label(agent)
    if result.transcript is None:
        assert not required, f"{who}: given a session folder, the result names no transcript"
        return
    rel = PurePosixPath(result.transcript)
    assert not rel.is_absolute() and ".." not in rel.parts, (
        f"{who}: transcript {result.transcript!r} is not a path inside the session folder"
    )
    assert (session_dir / rel).is_file(), f"{who}: transcript {result.transcript!r} is not in {session_dir}"


def _request(case: AgentCase, *, session: bool = True, **kw: object) -> AgentRequest:
    return AgentRequest(case.task, case.workdir, attempt=case.attempt, timeout_s=case.timeout_s,
                        session_dir=case.session_dir if session else None, **kw)  # type: ignore[arg-type]  # fmt: skip


def _plan_request(case: AgentCase) -> PlanRequest:
    return PlanRequest("Add a greeting", case.workdir, context="a Python project", timeout_s=case.timeout_s,
                       session_dir=case.session_dir)  # fmt: skip


def _first_failure(harness: AgentHarness) -> str:
    if not harness.failure_classes:
        pytest.fail(f"{type(harness).__name__}.failure_classes is empty: every agent can fail", pytrace=False)
    return harness.failure_classes[0]


# -- the suite --------------------------------------------------------------------------------------------------


class AgentConformance:
    """The checks every agent passes.  Subclass it with a ``harness`` fixture returning an :class:`AgentHarness`.

    Each check takes the fixtures ``harness`` and ``tmp_path`` (and a
    parameter where it is parametrised), so it can also be called directly.
    """

    def test_the_agent_has_a_name_and_speaks_the_protocol(self, harness: AgentHarness, tmp_path: Path) -> None:
        """``name`` is a non-empty string; the agent has ``run`` and ``plan`` (the :class:`Agent` protocol)."""
        agent = harness.succeeding(make_case(tmp_path))
        assert isinstance(agent.name, str) and agent.name.strip(), f"{type(agent).__name__}: name {agent.name!r}"
        assert isinstance(agent, Agent), f"{type(agent).__name__} lacks name, run or plan"

    def test_the_harness_declares_what_the_agent_can_do(self, harness: AgentHarness) -> None:
        """At least one failure class, each a real one; a positive timeout."""
        _first_failure(harness)
        unknown = [c for c in harness.failure_classes if c not in FAILURE_CLASSES]
        assert not unknown, f"unknown failure classes {unknown} (the classes: {FAILURE_CLASSES})"
        assert harness.timeout_s > 0 and harness.overrun_s >= 0

    def test_a_success_is_the_requests_result_and_its_work_is_in_the_workdir(
        self, harness: AgentHarness, tmp_path: Path
    ) -> None:
        """Attempt 2 (another approach, with the previous failure's output) succeeds: the result is for the
        request's task and attempt, ``succeeded`` with no failure class, and the file holds the work."""
        case = make_case(tmp_path, attempt=2)
        agent = harness.succeeding(case)
        request = _request(case, approach="write it directly", feedback="AssertionError: add is missing")
        result = _check_result(harness, agent, _run(agent, request), case.task.id, 2)
        assert result.status == "succeeded", f"{_label(agent)}: expected a success, got {_shown(result)}"
        target = case.workdir / case.path
        assert target.is_file() and target.read_text(encoding="utf-8") == case.content, (
            f"{_label(agent)} succeeded but {case.path} does not hold its work"
        )

    @pytest.mark.parametrize("failure_class", FAILURE_CLASSES)
    def test_a_failure_is_a_result_with_its_class_not_an_exception(
        self, harness: AgentHarness, tmp_path: Path, failure_class: str
    ) -> None:
        """An attempt that fails returns a result (never raises), not ``succeeded``, with the class it failed with."""
        if failure_class not in harness.failure_classes:
            pytest.skip(f"{type(harness).__name__} cannot make the agent fail with {failure_class}")
        case = make_case(tmp_path)
        agent = harness.failing(case, failure_class)
        result = _check_result(harness, agent, _run(agent, _request(case)), case.task.id, case.attempt)
        assert result.status != "succeeded", f"{_label(agent)}: asked to fail with {failure_class}, it succeeded"
        assert result.failure_class == failure_class, (
            f"{_label(agent)}: failed with class {result.failure_class}, expected {failure_class}: {result.summary}"
        )

    def test_git_and_maestros_files_are_never_written(self, harness: AgentHarness, tmp_path: Path) -> None:
        """A success and a failure leave ``.git`` as it was (no commit, no index), and ``.flow`` outside the
        session folder; in the session folder they write only under ``agents/``."""
        for n in range(2):
            case = make_case(tmp_path / str(n))
            agent = harness.succeeding(case) if n == 0 else harness.failing(case, _first_failure(harness))
            before = _files(case.workdir)
            _run(agent, _request(case))
            bad = _trespasses(harness, _changed(before, _files(case.workdir)))
            assert not bad, f"{_label(agent)} wrote where it must not: " + "; ".join(bad)

    def test_transcripts_land_in_the_session_folder(self, harness: AgentHarness, tmp_path: Path) -> None:
        """Given a session folder, a success names its transcript, a file inside that folder; a failure's
        transcript, if it names one, is there too."""
        case = make_case(tmp_path / "success")
        agent = harness.succeeding(case)
        result = _run(agent, _request(case))
        _check_transcript(agent, result, case.session_dir, required=True)
        case = make_case(tmp_path / "failure")
        agent = harness.failing(case, _first_failure(harness))
        _check_transcript(agent, _run(agent, _request(case)), case.session_dir, required=False)

    def test_without_a_session_folder_nothing_is_saved_there(self, harness: AgentHarness, tmp_path: Path) -> None:
        """Without ``session_dir`` the attempt still does its work, and writes nothing under ``.flow``."""
        case = make_case(tmp_path)
        agent = harness.succeeding(case)
        before = _files(case.workdir)
        result = _check_result(harness, agent, _run(agent, _request(case, session=False)), case.task.id, 1)
        assert result.status == "succeeded", f"{_label(agent)}: expected a success, got {_shown(result)}"
        changed = _changed(before, _files(case.workdir))
        saved = [p for p in changed if p == ".flow" or p.startswith(".flow/")]
        assert not saved, f"{_label(agent)} saved {saved} without a session folder"
        assert not _trespasses(harness, changed)
        assert (case.workdir / case.path).read_text(encoding="utf-8") == case.content

    def test_an_attempt_past_its_timeout_is_a_timeout(self, harness: AgentHarness, tmp_path: Path) -> None:
        """An attempt that outlasts ``timeout_s`` returns soon after it with status ``timeout``, class
        ``transient``."""
        case = make_case(tmp_path, timeout_s=harness.timeout_s)
        agent = harness.hanging(case)
        started = time.monotonic()
        result = _check_result(harness, agent, _run(agent, _request(case)), case.task.id, case.attempt)
        took = time.monotonic() - started
        assert (result.status, result.failure_class) == ("timeout", "transient"), (
            f"{_label(agent)}: expected timeout (transient), got {_shown(result)}"
        )
        limit = harness.timeout_s + harness.overrun_s
        assert took <= limit, f"{_label(agent)} returned {took:.1f} s after it started, past {limit:.1f} s"

    def test_a_budget_left_does_not_stop_the_attempt(self, harness: AgentHarness, tmp_path: Path) -> None:
        """``budget_usd`` above 0 (and None, infinity) runs the attempt as usual."""
        for n, budget in enumerate((5.0, None, float("inf"))):
            case = make_case(tmp_path / str(n))
            agent = harness.succeeding(case)
            result = _run(agent, _request(case, budget_usd=budget))
            assert result.status == "succeeded", f"{_label(agent)} with budget {budget}: {_shown(result)}"

    @pytest.mark.parametrize("budget", [0.0, 0.00001, -1.0, float("nan")])
    def test_no_budget_left_is_refused_without_running(
        self, harness: AgentHarness, tmp_path: Path, budget: float
    ) -> None:
        """With nothing left (0, under $0.0001, negative, not a number) an agent that supports budgets fails
        ``critical`` at once and the tree is untouched."""
        if not harness.budgets:
            pytest.skip(f"{type(harness).__name__}: the agent has no budget")
        case = make_case(tmp_path)
        agent = harness.succeeding(case)
        before = _files(case.workdir)
        result = _check_result(harness, agent, _run(agent, _request(case, budget_usd=budget)), case.task.id, 1)
        assert (result.status, result.failure_class) == ("failed", "critical"), (
            f"{_label(agent)} with budget {budget}: expected failed (critical), got {_shown(result)}"
        )
        changed = [p for p in _changed(before, _files(case.workdir)) if not p.startswith(SESSION_FOLDER + "/")]
        assert not changed, f"{_label(agent)} ran with no budget left: it changed {changed}"

    def test_a_deterministic_agent_repeats_itself(self, harness: AgentHarness, tmp_path: Path) -> None:
        """The same agent, the same request in two identical repositories: the same result, tree and session
        folder — for a success and for a failure."""
        if not harness.deterministic:
            pytest.skip(f"{type(harness).__name__}: the agent is not deterministic")
        for kind in ("success", "failure"):
            first = make_case(tmp_path / kind / "a")
            second = make_case(tmp_path / kind / "b")
            agent = harness.succeeding(first) if kind == "success" else harness.failing(first, _first_failure(harness))
            results, trees = [], []
            for case in (first, second):
                results.append(_run(agent, _request(case)))
                trees.append({p: v for p, v in _files(case.workdir).items() if not p.startswith(".git/")})
            assert results[0] == results[1], f"{_label(agent)}: two runs of one {kind} differ: {results}"
            diff = _changed(trees[0], trees[1])
            assert not diff, f"{_label(agent)}: two runs of one {kind} left different files: {diff}"

    def test_planning_gives_a_validated_plan_or_a_failed_result(self, harness: AgentHarness, tmp_path: Path) -> None:
        """``plan`` returns a PlanOutcome for task ``maestro.plan`` attempt 1; its plan is there exactly when the
        result succeeded.  An agent that plans answers with the given PRD and tasks, validated; one that cannot
        plan fails ``ambiguous``.  Either way it writes only ``agents/…`` and ``plan.json`` in the session folder."""
        case = make_case(tmp_path)
        agent = harness.planning(case) if harness.plans else harness.succeeding(case)
        before = _files(case.workdir)
        outcome = _plan(agent, _plan_request(case))
        assert isinstance(outcome, PlanOutcome), f"{_label(agent)}.plan returned {type(outcome).__name__}"
        result = _check_result(harness, agent, outcome.result, PLAN_TASK, 1)
        assert (outcome.plan is not None) == (result.status == "succeeded"), (
            f"{_label(agent)}: status {result.status} with plan {outcome.plan!r}"
        )
        bad = _trespasses(harness, _changed(before, _files(case.workdir)), planning=True)
        assert not bad, f"{_label(agent)} wrote where it must not while planning: " + "; ".join(bad)
        if not harness.plans:
            assert result.failure_class == "ambiguous", f"{_label(agent)} cannot plan, yet: {_shown(result)}"
            return
        assert result.status == "succeeded", f"{_label(agent)}: expected a plan, got {_shown(result)}"
        plan = outcome.plan
        assert isinstance(plan, Plan)
        assert (plan.prd_markdown, plan.tasks_yaml) == (case.prd_markdown, case.tasks_yaml), (
            f"{_label(agent)}: the plan is not the answer given"
        )
        again = validate_plan({"prd_markdown": plan.prd_markdown, "tasks_yaml": plan.tasks_yaml})
        assert [t.id for t in plan.graph] == [t.id for t in again.graph], f"{_label(agent)}: the graph is not valid"
        _check_transcript(agent, result, case.session_dir, required=False)

    def test_an_invalid_plan_is_a_failed_result(self, harness: AgentHarness, tmp_path: Path) -> None:
        """An answer whose tasks name a requirement the PRD lacks is no plan: failed, ``implementation``."""
        if not harness.plans:
            pytest.skip(f"{type(harness).__name__}: the agent does not plan")
        case = make_case(tmp_path, tasks_yaml=INVALID_TASKS)
        agent = harness.planning(case)
        outcome = _plan(agent, _plan_request(case))
        result = _check_result(harness, agent, outcome.result, PLAN_TASK, 1)
        assert outcome.plan is None, f"{_label(agent)} accepted an invalid plan"
        assert (result.status, result.failure_class) == ("failed", "implementation"), (
            f"{_label(agent)}: expected failed (implementation), got {_shown(result)}"
        )
