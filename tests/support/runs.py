"""End-to-end sessions for tests: a committed repository with a plan (PRD, tasks, config, script) beside it.

In process: :func:`make_repo`, :func:`prd_text`, :func:`task`, :func:`write`, :func:`config_text` build the
inputs and :class:`Recorder` keeps every request the runner gives its agent (:func:`in_process` puts them
together).  Through the command line: :class:`Plan` (made by :func:`make_plan`) runs ``maestro`` as a real
subprocess (:func:`cli`) and reads back what the session left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dulwich import porcelain

import maestro
from maestro.agents.base import AgentRequest, PlanOutcome, PlanRequest
from maestro.agents.scripted import ScriptedAgent
from maestro.config import parse_config
from maestro.core.records import AgentResult, Event
from maestro.run.runner import Runner

PY = sys.executable


# -- the inputs of a session --------------------------------------------------------------------------------------


def make_repo(root: Path, files: Mapping[str, str] | None = None) -> Path:
    """A committed git repository ``root/repo`` holding ``files`` (and a .gitignore for caches)."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    every = {".gitignore": "__pycache__/\n.pytest_cache/\n", "README.md": "# sample\n", **(files or {})}
    for rel, text in every.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    with porcelain.init(str(repo)):
        pass
    porcelain.add(str(repo), paths=[str(repo / rel) for rel in every])
    porcelain.commit(str(repo), message=b"base", author=b"t <t@example.com>", committer=b"t <t@example.com>")
    return repo


def prd_text(requirements: Sequence[tuple[str, str, str]]) -> str:
    """A PRD with these (id, text, priority) requirements."""
    items = "".join(f'    - id: {i}\n      text: "{t}"\n      priority: {p}\n' for i, t, p in requirements)
    rows = "".join(f"| {i} | {t} | {p} | - |\n" for i, t, p in requirements)
    return (
        "---\nprd:\n  version: v1\n  feature_name: sample\n  status: approved\npriorities:\n  requirements:\n"
        f"{items}---\n\n# Product Requirements Document: Sample\n\n## Functional Requirements\n\n"
        f"| ID | Requirement | Priority | Notes |\n|----|-------------|----------|-------|\n{rows}"
    )


def task(tid: str, *, reqs: Sequence[str] = ("FR-1",), deps: Sequence[str] = (), acceptance: Sequence[str] = (),
         files: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """One task of tasks.yaml (title: the id in capitals)."""
    t: dict[str, Any] = {"id": tid, "title": tid.upper(), "requirements": list(reqs), "acceptance": list(acceptance)}
    if deps:
        t["depends_on"] = list(deps)
    if files:
        t["files"] = list(files)
    return t


def write(path: str, content: str) -> dict[str, Any]:
    return {"write": {"path": path, "content": content}}


def config_text(
    *,
    workers: int = 2,
    retries: int = 2,
    alternatives: int = 1,
    backoff: tuple[float, float, float] = (1.5, 3.0, 10.0),
    iterations: int = 1,
    tests: str | None = "true",
    tests_required: bool = True,
    lint: str | None = None,
    lint_required: bool = False,
    typecheck: str | None = None,
) -> str:
    """config.yaml's text (JSON strings are YAML strings; None is null: the command is detected)."""

    def b(x: bool) -> str:
        return "true" if x else "false"

    return (
        f"parallel: {{max_workers: {workers}}}\n"
        "recovery:\n"
        f"  max_retries: {retries}\n"
        f"  backoff: {{initial_s: {backoff[0]}, factor: {backoff[1]}, max_s: {backoff[2]}}}\n"
        f"  max_alternatives: {alternatives}\n"
        f"limits: {{max_iterations: {iterations}, max_minutes: 10, budget_usd: null}}\n"
        "gates:\n"
        f"  tests: {{command: {json.dumps(tests)}, required: {b(tests_required)}}}\n"
        f"  lint: {{command: {json.dumps(lint)}, required: {b(lint_required)}}}\n"
        f"  typecheck: {{command: {json.dumps(typecheck)}, required: false}}\n"
        "  security: {command: null, required: false}\n"
    )


class Recorder:
    """An agent that hands each request to ``inner`` and keeps it (the runner calls from worker threads)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[AgentRequest] = []
        self.plans: list[PlanRequest] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def run(self, request: AgentRequest) -> AgentResult:
        with self._lock:
            self.requests.append(request)
        result: AgentResult = self.inner.run(request)
        return result

    def plan(self, request: PlanRequest) -> PlanOutcome:
        self.plans.append(request)
        outcome: PlanOutcome = self.inner.plan(request)
        return outcome

    def of(self, tid: str) -> list[AgentRequest]:
        """The requests for task ``tid``, by attempt."""
        return sorted((r for r in self.requests if r.task.id == tid), key=lambda r: r.attempt)


def barrier(folder: Path, me: str, other: str) -> dict[str, Any]:
    """A ``run`` action that marks ``me`` started and waits (at most 4 s) for ``other``: it passes only when both
    tasks run at the same time."""
    cmd = (
        f'touch "{folder}/{me}"; n=0; while [ ! -f "{folder}/{other}" ]; do n=$((n+1)); '
        f'if [ $n -gt 200 ]; then echo "{other} never started while {me} ran" >&2; exit 1; fi; sleep 0.02; done'
    )
    return {"run": cmd}


# -- a session through the command line --------------------------------------------------------------------------

REQUEST = "Build the sample"


def cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "maestro", *args], capture_output=True, text=True, cwd=cwd, timeout=120,
        env=dict(env) if env is not None else None,
    )  # fmt: skip


class Plan:
    """A repository (``root/repo``) and, beside it, its PRD, tasks, config and script; one session at most."""

    def __init__(self, root: Path, *, script: bool) -> None:
        self.root = root
        self.repo = root / "repo"
        self.dir = root / "plan"
        self.script = script

    def run_args(self, *extra: str) -> list[str]:
        args = ["run", REQUEST, "--prd", str(self.dir / "prd.md"), "--tasks", str(self.dir / "tasks.yaml"),
                "--config", str(self.dir / "config.yaml")]  # fmt: skip
        if self.script:
            args += ["--script", str(self.dir / "script.yaml")]
        return [*args, *extra]

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(*self.run_args(*extra), cwd=self.repo)

    @property
    def sid(self) -> str:
        (sid,) = maestro.Store(self.repo).session_ids()
        return sid

    @property
    def session_dir(self) -> Path:
        return maestro.Store(self.repo).session_dir(self.sid)

    def answer(self, choice: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli("answer", self.sid, choice, *extra, cwd=self.repo)

    def resume(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli("resume", self.sid, *extra, cwd=self.repo)

    def status(self) -> dict[str, Any]:
        out = cli("status", self.sid, "--json", cwd=self.repo)
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        doc: dict[str, Any] = json.loads(out.stdout)
        return doc

    def events(self) -> list[Event]:
        return maestro.Store(self.repo).read_events(self.sid)

    def state(self) -> maestro.SessionState:
        return maestro.rebuild(self.events())

    def triggers(self) -> list[str]:
        return [e.data["trigger"] for e in self.events() if e.kind == "transition"]

    def attempts(self) -> dict[str, tuple[str, int]]:
        return {k: (t.state, t.attempts) for k, t in sorted(self.state().tasks.items())}

    def answers(self) -> list[dict[str, Any]]:
        """The ``answer`` decisions of the event log (their data)."""
        return [dict(e.data) for e in self.events() if e.kind == "decision" and e.data["kind"] == "answer"]

    def saved_answers(self) -> list[dict[str, Any]]:
        """The ``answer`` decisions of the session's ``decisions.json``."""
        doc = json.loads((self.session_dir / "decisions.json").read_text(encoding="utf-8"))
        return [d for d in doc if d["kind"] == "answer"]

    def request_file(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.session_dir / "decision-request.json").read_text(encoding="utf-8"))
        return doc

    def report(self) -> str:
        return (self.session_dir / "final-report.md").read_text(encoding="utf-8")

    def tree(self) -> str:
        """The tree of the session's branch (its result; the user's checkout is never written)."""
        out = subprocess.run(["git", "rev-parse", f"maestro/{self.sid}^{{tree}}"], cwd=self.repo, capture_output=True,
                             text=True, check=True)  # fmt: skip
        return out.stdout.strip()

    def file(self, path: str) -> str | None:
        """A file of the session's branch (None when it has none)."""
        out = subprocess.run(["git", "show", f"maestro/{self.sid}:{path}"], cwd=self.repo, capture_output=True,
                             text=True)  # fmt: skip
        return out.stdout if out.returncode == 0 else None


def make_plan(
    root: Path,
    *,
    tasks: Sequence[Mapping[str, Any]],
    script: Mapping[str, Any] | None = None,
    requirements: Sequence[tuple[str, str, str]] = (("FR-1", "The feature", "P0"),),
    config: str | None = None,
    agent_command: str | None = None,
) -> Plan:
    """Write a repository and its plan under ``root``: the scripted agent, or a command agent if ``agent_command``."""
    make_repo(root)
    plan = Plan(root, script=agent_command is None)
    plan.dir.mkdir()
    (plan.dir / "prd.md").write_text(prd_text(requirements), encoding="utf-8")
    (plan.dir / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
    text = config if config is not None else config_text()
    if agent_command is not None:
        text += f"agent: {{kind: command, command: {json.dumps(agent_command)}}}\n"
    else:
        (plan.dir / "script.yaml").write_text(json.dumps({"version": 1, "tasks": dict(script or {})}),
                                              encoding="utf-8")  # fmt: skip
    (plan.dir / "config.yaml").write_text(text, encoding="utf-8")
    return plan


def assert_completed(plan: Plan, out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-2:] == [
        f"session {plan.sid}: completed",
        f"report: {plan.session_dir / 'final-report.md'}",
    ]
    doc = plan.status()
    assert (doc["state"], doc["decision_request"], doc["paused_from"]) == ("completed", None, None)
    return doc


def resume_reasons(plan: Plan) -> list[str]:
    return [e.data.get("reason", "") for e in plan.events() if e.kind == "transition" and e.data["trigger"] == "resume"]


def in_process(tmp_path: Path, tasks: Sequence[Mapping[str, Any]], script: Mapping[str, Any],
               config: str) -> tuple[maestro.Store, Runner, Recorder, Path]:  # fmt: skip
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
    agent = Recorder(ScriptedAgent.from_mapping({"version": 1, "tasks": dict(script)}, plan))
    cfg = parse_config(config, plan / "config.yaml")
    store = maestro.Store(repo)
    return store, Runner(store, cfg, agent, sleep=lambda s: None), agent, plan


def plan_folder(root: Path, n: int, tasks: Sequence[Mapping[str, Any]]) -> Path:
    """``root/plan<n>``, made, holding a one-requirement PRD (FR-1) and ``tasks`` as ``tasks.yaml``."""
    plan = root / f"plan{n}"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}), encoding="utf-8")
    return plan
