"""End-to-end sessions (issue 7): the runner on temporary git repositories, with the scripted agent.

Every test builds a real repository (dulwich), a PRD, a task graph and a script, runs
:class:`maestro.run.runner.Runner` and checks what the session left behind: its outcome, the
event log (rebuilt with :func:`maestro.rebuild`), the decisions, the tasks and their attempts
(each one's commit at ``refs/maestro/<session>/attempts/<task>/<n>``), the checkpoints (one per
merged task: tags and commits on the session branch ``maestro/<session>``, which holds the
result), the decision request of a pause, the final report, and the user's checkout, which a
session never writes (issue 14: every session works in worktrees of its own, outside the
checkout, removed when it ends).  Backoffs are recorded, not slept.

The bugs these tests found in the runner (the alternative attempt never ran, a late retry crashed, files
deleted far outside a task went unnoticed, a refinement iteration ignored dependencies, ``last`` could
name the wrong session) are fixed; each test here pins one.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from dulwich.object_store import tree_lookup_path
from dulwich.objects import Commit, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo

import maestro
from maestro import MaestroError
from maestro.agents.base import task_prompt
from maestro.agents.claude import LOGIN_FIX, ClaudeAgent
from maestro.agents.scripted import ScriptedAgent
from maestro.config.model import Config
from maestro.config.reader import parse_config
from maestro.core.records import Decision, Event
from maestro.git.housekeeping import dirty_paths
from maestro.git.places import ENV_ROOT, worktree_dir
from maestro.run import Runner, RunOutcome
from tests.support.fakes import FAKES_DIR, fake_env, invocations
from tests.support.runs import Recorder, barrier, config_text, make_repo, prd_text, task, write

PY = sys.executable
SID = "session-1"  # SequentialIds: the first session of a store
REPORT_SECTIONS = [
    "Summary",
    "Decisions Made",
    "Changes Made",
    "Testing",
    "Quality Gates",
    "Requirements",
    "Recovery",
    "Metrics",
    "Checkpoints",
    "Next Steps",
]
NO_GATE = "no command configured and none detected"


# -- running a session and reading what it left (the inputs: tests.support.runs) ---------------------------------


class Done:
    """A finished run: its outcome, and the session as its event log tells it."""

    def __init__(self, outcome: RunOutcome, store: maestro.Store, agent: Recorder, delays: list[float]) -> None:
        self.outcome = outcome
        self.store = store
        self.repo = store.repo
        self.agent = agent
        self.delays = delays
        self.events: list[Event] = store.read_events(outcome.session_id)
        self.state = maestro.rebuild(self.events)
        self.dir = store.session_dir(outcome.session_id)

    def decisions(self, kind: str) -> list[Decision]:
        return [d for d in self.state.decisions if d.kind == kind]

    def recoveries(self) -> list[tuple[str | None, str]]:
        return [(d.task, d.choice) for d in self.decisions("recovery")]

    def tasks(self) -> dict[str, tuple[str, int]]:
        return {k: (t.state, t.attempts) for k, t in sorted(self.state.tasks.items())}

    def triggers(self) -> list[str]:
        """The session's moves, in order."""
        return [e.data["trigger"] for e in self.events if e.kind == "transition"]

    def task_triggers(self, tid: str) -> list[str]:
        return [e.data["trigger"] for e in self.events if e.kind == "task" and e.data["task"] == tid]

    def results(self, tid: str) -> list[tuple[int, str, str | None]]:
        return [(r.attempt, r.status, r.failure_class) for r in self.state.agent_results if r.task == tid]

    def gate_rounds(self, name: str) -> list[tuple[str, str]]:
        """Every recorded result of gate ``name`` (one per validation round): (status, summary)."""
        return [
            (e.data["status"], e.data["summary"]) for e in self.events if e.kind == "gate" and e.data["name"] == name
        ]

    def latest_gates(self) -> dict[str, str]:
        return {g.name: g.status for g in self.state.gates}

    def checkpoints(self) -> list[tuple[int, str, list[str]]]:
        return [(c.n, c.label, sorted(f.path for f in c.files)) for c in self.state.checkpoints]

    def index(self, kind: str, **data: Any) -> int:
        """The position of the first event of ``kind`` whose data has these values."""
        for i, e in enumerate(self.events):
            if e.kind == kind and all(e.data.get(k) == v for k, v in data.items()):
                return i
        raise AssertionError(f"no {kind} event with {data}")

    def request(self) -> dict[str, Any]:
        assert self.outcome.request_file == self.dir / "decision-request.json"
        doc: dict[str, Any] = json.loads(self.outcome.request_file.read_text(encoding="utf-8"))
        how = doc.pop("answer")  # how to answer: checked here, the rest by each test
        sid, options = doc["session"], "|".join(doc["options"])
        assert how == f"maestro answer {sid} {options} [--note TEXT]; then maestro resume {sid}"
        return doc

    def report(self) -> str:
        assert self.outcome.report == self.dir / "final-report.md"
        return self.outcome.report.read_text(encoding="utf-8")


def run_session(
    repo: Path,
    *,
    tasks: Sequence[Mapping[str, Any]],
    script: Mapping[str, Any] | None = None,
    requirements: Sequence[tuple[str, str, str]] = (("FR-1", "The feature", "P0"),),
    agent: Any = None,
    config: str | None = None,
    worktree: bool = False,
    allow_dirty: bool = False,
    refinement: Sequence[Sequence[Mapping[str, Any]]] = (),
) -> Done:
    """Write the plan beside ``repo`` and run one session (ticking clock, sequential ids, no real sleep);
    ``refinement`` holds the new tasks the scripted agent plans in each refinement round."""
    plan = repo.parent / "plan"
    plan.mkdir(exist_ok=True)
    (plan / "prd.md").write_text(prd_text(requirements), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": list(tasks)}, indent=1), encoding="utf-8")
    rounds = []
    for n, new in enumerate(refinement, 1):
        (plan / f"refine-{n}.yaml").write_text(json.dumps({"version": 1, "tasks": list(new)}), encoding="utf-8")
        rounds.append({"tasks": f"refine-{n}.yaml"})
    scripted = {"version": 1, "tasks": dict(script or {}), **({"refinement": rounds} if rounds else {})}
    inner = agent if agent is not None else ScriptedAgent.from_mapping(scripted, plan)
    recorder = Recorder(inner)
    cfg: Config = parse_config(config if config is not None else config_text(), plan / "config.yaml")
    delays: list[float] = []
    store = maestro.Store(repo)
    runner = Runner(
        store, cfg, recorder, clock=maestro.TickingClock(), ids=maestro.SequentialIds(), sleep=delays.append
    )
    outcome = runner.run(
        "Build the sample",
        prd_path=plan / "prd.md",
        tasks_path=plan / "tasks.yaml",
        worktree=worktree,
        allow_dirty=allow_dirty,
    )
    return Done(outcome, store, recorder, delays)


def sections(report: str) -> list[str]:
    return [line[3:] for line in report.splitlines() if line.startswith("## ")]


def section(report: str, name: str) -> list[str]:
    """The lines of one ``## name`` section of a report (without blank lines)."""
    lines = report.splitlines()
    start = lines.index(f"## {name}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [line for line in lines[start:end] if line.strip()]


def read_ref(repo: Path, ref: str) -> bytes:
    with Repo(str(repo)) as r:
        return r.refs[Ref(ref.encode())]


def commit_at(repo: Path, rev: bytes | str) -> Commit:
    """The commit a ref names (a tag peeled), or the commit whose sha is ``rev``."""
    with Repo(str(repo)) as r:
        obj = r[r.get_peeled(Ref(rev.encode())) if isinstance(rev, str) else rev]
        while isinstance(obj, Tag):
            obj = r[obj.object[1]]
    assert isinstance(obj, Commit)
    return obj


def file_at(repo: Path, commit: bytes | str, path: str) -> bytes | None:
    """A file's content in a commit (through tags), or None when the commit does not have it."""
    tree = commit_at(repo, commit).tree
    with Repo(str(repo)) as r:
        try:
            _mode, sha = tree_lookup_path(r.__getitem__, tree, path.encode())
        except KeyError:
            return None
        return r[sha].as_raw_string()


BRANCH = f"refs/heads/maestro/{SID}"  # the session's result


def on_branch(repo: Path, path: str) -> bytes | None:
    """A file of the session's branch (None when it has none)."""
    return file_at(repo, BRANCH, path)


def refs_under(repo: Path, prefix: str) -> list[str]:
    """The names of the refs under ``prefix``, sorted."""
    with Repo(str(repo)) as r:
        return sorted(k.decode() for k in r.refs.allkeys() if k.startswith(prefix.encode()))


def checkout(repo: Path) -> dict[str, bytes]:
    """The user's checkout as a session must leave it: every file (maestro's ``.flow/`` and ``.git/`` aside), by
    path, and HEAD (``.git/HEAD``, the commit it names) and the index, byte for byte."""
    out = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and p.relative_to(repo).parts[0] not in (".git", ".flow")
    }
    with Repo(str(repo)) as r:
        out[".git/HEAD"] = (repo / ".git" / "HEAD").read_bytes()
        out["HEAD commit"] = r.refs[Ref(b"HEAD")]
    out[".git/index"] = (repo / ".git" / "index").read_bytes()
    return out


def worktrees(repo: Path) -> list[str]:
    """The linked worktrees git knows of (their admin folders under ``.git/worktrees``)."""
    admin = repo / ".git" / "worktrees"
    return sorted(p.name for p in admin.iterdir()) if admin.is_dir() else []


# -- 1. the happy path: each task as soon as its dependencies are merged --------------------------------------------

PYPROJECT = '[project]\nname = "pkg"\nversion = "0.1.0"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
PKG = {"pyproject.toml": PYPROJECT, "pkg/__init__.py": "", "tests/__init__.py": ""}
C_PY = "from pkg.a import one\nfrom pkg.b import two\n\nTHREE = one() + two()\n"


def test_happy_path_each_task_starts_once_its_dependencies_are_merged_and_each_merge_is_a_checkpoint(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, PKG)
    bar = tmp_path / "barrier"
    bar.mkdir()
    tasks = [
        task("a", reqs=["FR-1"], acceptance=["test -f pkg/a.py"], files=["pkg/a.py", "tests/test_a.py"]),
        task("b", reqs=["FR-2"], acceptance=["test -f pkg/b.py"], files=["pkg/b.py", "tests/test_b.py"]),
        task("c", reqs=["FR-3"], deps=["a", "b"], acceptance=["grep -q 'from pkg.a import' pkg/c.py"]),
        task("d", reqs=["FR-4"], deps=["a"], acceptance=["grep -q usage docs.md"]),
    ]
    test_a = "from pkg.a import one\n\n\ndef test_one():\n    assert one() == 1\n"
    test_b = "from pkg.b import two\n\n\ndef test_two():\n    assert two() == 2\n"
    test_c = "from pkg.c import THREE\n\n\ndef test_three():\n    assert THREE == 3\n"
    script = {
        "a": [
            {
                "actions": [barrier(bar, "a", "b"), write("pkg/a.py", "def one():\n    return 1\n"),
                            write("tests/test_a.py", test_a)],
                "summary": "a done",
                "cost_usd": 0.01,
            }
        ],
        "b": [
            {
                "actions": [barrier(bar, "b", "a"), write("pkg/b.py", "def two():\n    return 2\n"),
                            write("tests/test_b.py", test_b)],
                "summary": "b done",
                "cost_usd": 0.02,
            }
        ],
        "c": [{"actions": [write("pkg/c.py", C_PY), write("tests/test_c.py", test_c)]}],
        "d": [{"actions": [write("docs.md", "usage: import pkg\n")]}],
    }  # fmt: skip
    reqs = [("FR-1", "one", "P0"), ("FR-2", "two", "P1"), ("FR-3", "three", "P1"), ("FR-4", "docs", "P3")]
    tests_gate = f"{PY} -m pytest -q -p no:cacheprovider --junitxml={{junit}}"
    before = checkout(repo)
    done = run_session(repo, tasks=tasks, script=script, requirements=reqs, config=config_text(tests=tests_gate))

    assert done.outcome == RunOutcome(SID, "completed", 0, report=done.dir / "final-report.md", request_file=None)
    assert done.triggers() == ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done",
                               "handoff", "complete"]  # fmt: skip
    assert done.state.state == "completed"
    # the ordering decision: the planned view, two groups, at most two wide
    (ordering,) = done.decisions("task_ordering")
    assert "G1: a, b | G2: c, d" in ordering.rationale
    # a and b ran at the same time: each waited for the other to start (the barrier), at their first attempt
    assert done.tasks() == {"a": ("succeeded", 1), "b": ("succeeded", 1), "c": ("succeeded", 1), "d": ("succeeded", 1)}
    assert done.results("a") == done.results("b") == [(1, "succeeded", None)]
    # one checkpoint per merged task, numbered in merge order; a and b in either order (they ran together)
    cps = done.checkpoints()
    assert cps[0] == (0, "start", [".gitignore", "README.md", "pkg/__init__.py", "pyproject.toml", "tests/__init__.py"])
    assert [n for n, _, _ in cps] == [0, 1, 2, 3, 4]
    merged = {label: (n, files) for n, label, files in cps[1:]}
    assert {label: files for label, (_, files) in merged.items()} == {
        "task a: A": ["pkg/a.py", "tests/test_a.py"],
        "task b: B": ["pkg/b.py", "tests/test_b.py"],
        "task c: C": ["pkg/c.py", "tests/test_c.py"],
        "task d: D": ["docs.md"],
    }
    n_of = {label[5]: n for label, (n, _) in merged.items()}
    assert {n_of["a"], n_of["b"]} == {1, 2}  # both ran before either merged: c and d wait for a
    cp = {tid: done.index("checkpoint", n=n) for tid, n in n_of.items()}
    for tid in "ab":
        assert done.index("task", task=tid, trigger="start") < min(cp["a"], cp["b"])
    # each task starts once every dependency is merged (its succeed move: the merge is made, its checkpoint is
    # recorded once the tasks it made ready have started), on that merge; each is the checkpoint after its success
    for t in tasks:
        tid = t["id"]
        for dep in t.get("depends_on", []):
            assert done.index("task", task=dep, trigger="succeed") < done.index("task", task=tid, trigger="ready")
            r = Repo(str(repo))
            attempt = r[f"refs/maestro/{SID}/attempts/{tid}/1".encode()]
            assert isinstance(attempt, Commit)
            history = {w.commit.id for w in r.get_walker(include=[attempt.parents[0]])}
            assert done.state.checkpoints[n_of[dep]].commit.encode() in history  # it started on its dependency's merge
        assert done.index("task", task=tid, trigger="start") < done.index("agent", task=tid)
        assert done.index("agent", task=tid) < done.index("task", task=tid, trigger="succeed") < cp[tid]
    assert max(cp.values()) < done.index("transition", trigger="implementation_done")
    # each checkpoint is a commit with its tag on the session branch, which holds the result
    records = done.state.checkpoints
    for c in records:
        assert c.tag == f"maestro/{SID}/{c.n}"
    assert read_ref(repo, BRANCH) == records[4].commit.encode()
    assert file_at(repo, f"refs/tags/maestro/{SID}/{n_of['a']}", "pkg/a.py") == b"def one():\n    return 1\n"
    assert file_at(repo, f"refs/tags/maestro/{SID}/{n_of['a']}", "pkg/c.py") is None
    assert file_at(repo, f"refs/tags/maestro/{SID}/{n_of['c']}", "pkg/c.py") == C_PY.encode()
    assert on_branch(repo, "pkg/c.py") == C_PY.encode()
    assert on_branch(repo, "docs.md") == b"usage: import pkg\n"
    # the user's checkout is as it was (same branch, commit, index and files: none of the work), and the
    # session's worktrees are gone
    assert checkout(repo) == before
    assert (repo / ".git" / "HEAD").read_bytes() == b"ref: refs/heads/master\n"
    assert not (repo / "pkg" / "c.py").exists()
    assert dirty_paths(repo) == []
    assert worktrees(repo) == []
    # decisions, by kind
    kinds = [d.kind for d in done.state.decisions]
    assert kinds.count("gate") == 4
    assert kinds.count("subagent") == 4
    assert {d.task for d in done.decisions("subagent")} == {"a", "b", "c", "d"}
    assert [d.choice for d in done.decisions("refinement")] == ["handoff"]
    assert done.decisions("recovery") == []
    assert "architecture" in kinds
    assert "tech_stack" in kinds
    # validation: real pytest, counted from its JUnit report; gates without a tool are skipped, not passed
    gates = {g.name: g for g in done.state.gates}
    assert (gates["tests"].status, gates["tests"].passed, gates["tests"].failed) == ("passed", 3, 0)
    assert gates["tests"].summary == "3 passed, 0 failed"
    for name in ("lint", "typecheck", "security"):
        assert (gates[name].status, gates[name].summary) == ("skipped", NO_GATE)
    assert (gates["traceability"].status, gates["traceability"].summary) == ("passed", "4 of 4 requirements met")
    # the report
    report = done.report()
    assert sections(report) == [*REPORT_SECTIONS[:9], "Tasks", "Next Steps"]
    summary = section(report, "Summary")
    assert "- Feature: Build the sample" in summary
    assert "- Outcome: completed" in summary
    assert "- Tasks completed: 4/4" in summary
    assert "- Tests passed: 3 passed, 0 failed" in summary
    assert "- Checkpoints: 5" in summary
    assert "- Agent calls: 4; cost: $0.0300" in summary
    assert any(line.startswith("- Duration: ") for line in summary)
    changes = section(report, "Changes Made")  # the net diff split by kind, then each task's checkpoint's diffstat
    assert changes[:9] == [
        "7 files changed (7 created), +24 -0 lines, from checkpoint 0 to checkpoint 4",
        "### Created (7 files)",
        "- docs.md (+1 -0)",
        "- pkg/a.py (+2 -0)",
        "- pkg/b.py (+2 -0)",
        "- pkg/c.py (+4 -0)",
        "- tests/test_a.py (+5 -0)",
        "- tests/test_b.py (+5 -0)",
        "- tests/test_c.py (+5 -0)",
    ]
    stat = {"a": "2 files (2 created), +7 -0", "b": "2 files (2 created), +7 -0", "c": "2 files (2 created), +9 -0",
            "d": "1 file (1 created), +1 -0"}  # fmt: skip
    assert changes[9] == "### By task (each checkpoint's diffstat)"
    assert [line for line in changes[10:] if not line.startswith("  - ")] == [
        f"- {c.label} (checkpoint {c.n}): {stat[c.label[5]]}" for c in records[1:]
    ]
    assert "  - pkg/c.py: created (+4 -0)" in changes[10:]
    assert section(report, "Requirements")[2:] == [
        "| FR-1 | P0 | met | a | task a succeeded and its acceptance passes |",
        "| FR-2 | P1 | met | b | task b succeeded and its acceptance passes |",
        "| FR-3 | P1 | met | c | task c succeeded and its acceptance passes |",
        "| FR-4 | P3 | met | d | task d succeeded and its acceptance passes |",
    ]
    assert section(report, "Recovery") == ["- no failures"]
    metrics = section(report, "Metrics")
    assert metrics[:5] + metrics[6:] == [
        "- Autonomy: autonomous: completed with no human answer",
        "- Recovery: no failures",
        "- Attempts per task: median 1, total 4 over 4 tasks",
        "- Cost per task: median $0.0050, total $0.0300",  # c and d report no cost
        "- Agent time per task: median 0.0 s, total 0.0 s",  # the scripted agent takes no time
        f"- Session: cost $0.0300, running time {done.state.active_s:.1f} s, 4 agent calls",
    ]
    span = r"[0-9.]+ (s|min)"
    assert re.fullmatch(rf"- Time per task \(first start to last move\): median {span}, total {span}", metrics[5])
    assert section(report, "Checkpoints") == [
        f"- {c.n}: commit {c.commit[:12]} `maestro/{SID}/{c.n}` — {c.label}" for c in records
    ]
    # the derived views agree with the log
    meta = json.loads((done.dir / "metadata.json").read_text())
    assert meta["state"] == "completed"
    assert meta["tasks"] == {k: {"state": s, "attempts": n} for k, (s, n) in done.tasks().items()}
    log = (done.dir / "execution-log.md").read_text()
    assert [f"Checkpoint {c.n}: {c.commit[:12]} {c.label}" in log for c in records] == [True] * 5


def test_no_more_than_max_workers_tasks_run_at_once_and_library_users_get_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="maestro.run")
    repo = make_repo(tmp_path)
    tasks = [task("a", acceptance=["test -f a.txt"]), task("b", acceptance=["test -f b.txt"])]
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    done = run_session(repo, tasks=tasks, script=script, config=config_text(workers=1))
    assert done.outcome.state == "completed"
    assert "G1: a | G2: b" in done.decisions("task_ordering")[0].rationale
    # one worker: b, ready from the start, waits for a's attempt to end (and merge), in priority order
    assert done.checkpoints() == [
        (0, "start", [".gitignore", "README.md"]),
        (1, "task a: A", ["a.txt"]),
        (2, "task b: B", ["b.txt"]),
    ]
    assert done.index("task", task="a", trigger="succeed") < done.index("task", task="b", trigger="start")
    # the [Maestro] log, through the maestro.run logger: the planned view, then the actual timeline (no groups)
    lines = [r.getMessage() for r in caplog.records if r.name == "maestro.run"]
    assert lines[0] == f"[Maestro] Session {SID} started on branch maestro/{SID}"
    assert all(line.startswith("[Maestro] ") for line in lines)
    assert "[Maestro] 2 tasks in 2 groups: G1: a | G2: b" in lines
    assert not any(line.startswith("[Maestro] Group ") for line in lines)
    timeline = [
        "[Maestro] Task a: attempt 1",
        "[Maestro] Task a: succeeded (1 action done); merged as checkpoint 1 (1 file)",
        "[Maestro] Task b: attempt 1",
        "[Maestro] Task b: succeeded (1 action done); merged as checkpoint 2 (1 file)",
    ]
    assert [line for line in lines if line in timeline] == timeline
    assert lines[-3:] == [
        "[Maestro] Removed the session's 2 worktrees (branch, tags and attempt refs stay)",
        f"[Maestro] Completed on branch maestro/{SID}. Report: {done.dir / 'final-report.md'}",
        f"[Maestro] To take the work into your branch: maestro land {SID}",
    ]


# -- 2. the recovery ladder ------------------------------------------------------------------------------------------


def test_transient_failures_are_retried_with_the_configured_backoff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {
        "a": [
            {"fail": {"kind": "transient", "message": "rate limited"}},
            {"fail": {"kind": "transient", "message": "overloaded"}},
            {"fail": {"kind": "transient", "message": "connection reset by peer"}},
            {"actions": [write("a.txt", "a\n")]},
        ]
    }
    done = run_session(
        repo,
        tasks=[task("a", acceptance=["test -f a.txt"])],
        script=script,
        config=config_text(retries=3, backoff=(1.5, 3.0, 10.0)),
    )
    assert done.outcome.state == "completed"
    assert done.delays == [1.5, 4.5, 10.0]  # initial_s * factor**(n-1), at most max_s
    assert [d.rationale for d in done.decisions("recovery")] == [
        "transient failure: retry 1 of 3 after 1.5 s backoff",
        "transient failure: retry 2 of 3 after 4.5 s backoff",
        "transient failure: retry 3 of 3 after 10 s backoff",
    ]
    assert done.recoveries() == [("a", "retry")] * 3
    assert done.results("a") == [
        (1, "failed", "transient"),
        (2, "failed", "transient"),
        (3, "failed", "transient"),
        (4, "succeeded", None),
    ]
    assert done.task_triggers("a") == ["ready", "start"] + ["fail", "retry", "start"] * 3 + ["succeed"]
    assert done.tasks() == {"a": ("succeeded", 4)}
    assert "error" not in done.triggers()  # a retry happens inside implementing
    recovery = section(done.report(), "Recovery")
    d1, d2, d3 = done.decisions("recovery")
    assert recovery == [  # each failed attempt, what answered it and what became of it
        "- a attempt 1: failed (transient), recovered without a human (attempt 4 succeeded) — rate limited",
        f"  - {d1.id} [a] retry: transient failure: retry 1 of 3 after 1.5 s backoff",
        "- a attempt 2: failed (transient), recovered without a human (attempt 4 succeeded) — overloaded",
        f"  - {d2.id} [a] retry: transient failure: retry 2 of 3 after 4.5 s backoff",
        "- a attempt 3: failed (transient), recovered without a human (attempt 4 succeeded) — connection reset by peer",
        f"  - {d3.id} [a] retry: transient failure: retry 3 of 3 after 10 s backoff",
    ]


def test_the_same_transient_error_twice_in_a_row_is_retried_all_the_same(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {
        "a": [
            {"fail": {"kind": "transient", "message": "API Error: 429 (request req_17)"}},
            {"fail": {"kind": "transient", "message": "API Error: 429 (request req_42)"}},  # the same, numbers aside
            {"actions": [write("a.txt", "a\n")]},
        ]
    }
    done = run_session(
        repo, tasks=[task("a", acceptance=["test -f a.txt"])], script=script,
        config=config_text(retries=3, alternatives=0),
    )  # fmt: skip
    # stuck detection is for non-transient failures only: a rate limit may well say the same thing twice
    assert done.delays == [1.5, 4.5]
    assert done.recoveries() == [("a", "retry"), ("a", "retry")]
    assert [d.rationale for d in done.decisions("recovery")] == [
        "transient failure: retry 1 of 3 after 1.5 s backoff",
        "transient failure: retry 2 of 3 after 4.5 s backoff",
    ]
    assert done.results("a") == [(1, "failed", "transient"), (2, "failed", "transient"), (3, "succeeded", None)]
    assert done.outcome.state == "completed"
    assert [r.approach for r in done.agent.of("a")] == [None, None, None]  # a retry is the same attempt again


def test_the_same_non_transient_error_twice_in_a_row_is_stuck_and_the_alternative_says_so(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {
        "a": [
            {"fail": {"kind": "implementation", "message": "gave up after 30 turns"}},
            {"fail": {"kind": "implementation", "message": "gave up after 31 turns"}},  # the same, numbers aside
            {"actions": [write("a.txt", "a\n")]},
        ]
    }
    done = run_session(repo, tasks=[task("a", acceptance=["test -f a.txt"])], script=script,
                       config=config_text(retries=3, alternatives=2))  # fmt: skip
    assert done.delays == []  # not transient: never retried in place
    assert done.recoveries() == [("a", "alternative"), ("a", "alternative")]
    assert [d.rationale for d in done.decisions("recovery")] == [
        "implementation: alternative 1 of 2 from checkpoint 0 with the failure as feedback (nothing to roll back)",
        "the same error twice in a row: alternative 2 of 2 from checkpoint 0 with the failure as feedback "
        "(nothing to roll back)",
    ]
    assert [r.approach for r in done.agent.of("a")] == [
        None,
        "alternative 1: the previous attempt failed (implementation); take another approach",
        "alternative 2: the previous attempt failed (the same error twice in a row); take another approach",
    ]
    assert done.agent.of("a")[2].feedback == "gave up after 31 turns"
    assert done.outcome.state == "completed"
    assert done.tasks() == {"a": ("succeeded", 3)}


def _failing_then_fixed(kind: str) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Tasks, script and expected feedback: b's first attempt leaves junk and fails (``kind``), its second works."""
    tasks = [
        task("a", acceptance=["test -f a.txt"]),
        task("b", deps=["a"], acceptance=["grep -qx right b.txt"]),
    ]
    if kind == "implementation":
        feedback = "claude: error_max_turns: gave up after 30 turns"
        first = {
            "actions": [write("junk.txt", "half done\n"), write("b.txt", "half\n")],
            "fail": {"kind": "implementation", "message": feedback},
        }
    else:  # the agent says it succeeded, but the acceptance command fails
        first = {"actions": [write("junk.txt", "half done\n"), write("b.txt", "wrong\n")]}
        feedback = "$ grep -qx right b.txt\n"
    script = {
        "a": [{"actions": [write("a.txt", "a\n")]}],
        "b": [first, {"actions": [write("b.txt", "right\n")]}],
    }
    return tasks, script, feedback


@pytest.mark.parametrize("kind", ["implementation", "test_failure"])
def test_an_implementation_or_test_failure_is_kept_in_its_attempt_and_rolls_nothing_back(
    tmp_path: Path, kind: str
) -> None:
    repo = make_repo(tmp_path)
    tasks, script, _feedback = _failing_then_fixed(kind)
    before = checkout(repo)
    done = run_session(repo, tasks=tasks, script=script, config=config_text(alternatives=1))
    assert done.outcome.state == "completed"
    cp1 = done.state.checkpoints[1]
    assert (cp1.n, cp1.label) == (1, "task a: A")
    rec = done.decisions("recovery")[0]
    assert (rec.task, rec.choice, rec.checkpoint) == ("b", "alternative", 1)
    assert rec.rationale == (
        f"{kind}: alternative 1 of 1 from checkpoint 1 with the failure as feedback (nothing to roll back)"
    )
    scores = {o.name: o.score for o in rec.options}  # the engine's: what is left of each rung
    assert list(scores) == ["retry", "alternative", "pause", "give_up"]
    assert scores["retry"] == 0.0  # not transient: a retry would fail the same way
    assert scores["give_up"] == 0.0  # the run pauses rather than give up (recovery.on_exhausted: pause)
    assert scores["alternative"] > scores["pause"] > 0.0
    assert any(e.value == f"a {kind} failure does not go away by itself" for e in rec.options[0].evidence)
    # an implementation failure is the agent's; a test failure is an agent success whose acceptance failed
    assert done.results("b")[0] == (
        (1, "failed", "implementation") if kind == "implementation" else (1, "succeeded", None)
    )
    fail = next(e for e in done.events if e.kind == "task" and e.data["task"] == "b" and e.data["trigger"] == "fail")
    assert fail.data["reason"].startswith(f"{kind}: ")
    # the session never leaves implementing: no rollback, no session recovery; b alone runs again, a is untouched
    assert done.triggers() == ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done",
                               "handoff", "complete"]  # fmt: skip
    assert done.decisions("session_recovery") == []
    assert done.task_triggers("b") == ["ready", "start", "fail", "retry", "start", "succeed"]
    assert done.task_triggers("a") == ["ready", "start", "succeed"]
    assert refs_under(repo, f"refs/maestro/{SID}/pre-rollback") == []
    # the failed attempt's work is kept (its commit on top of checkpoint 1), and reached no checkpoint
    first = f"refs/maestro/{SID}/attempts/b/1"
    assert file_at(repo, first, "junk.txt") == b"half done\n"
    assert file_at(repo, first, "b.txt") == (b"half\n" if kind == "implementation" else b"wrong\n")
    assert commit_at(repo, first).parents == [cp1.commit.encode()]
    assert done.checkpoints()[1:] == [(1, "task a: A", ["a.txt"]), (2, "task b: B", ["b.txt"])]
    assert on_branch(repo, "junk.txt") is None
    assert (on_branch(repo, "a.txt"), on_branch(repo, "b.txt")) == (b"a\n", b"right\n")
    assert checkout(repo) == before


@pytest.mark.parametrize("kind", ["implementation", "test_failure"])
def test_an_implementation_or_test_failure_gets_an_alternative_attempt_with_feedback(tmp_path: Path, kind: str) -> None:
    repo = make_repo(tmp_path)
    tasks, script, feedback = _failing_then_fixed(kind)
    done = run_session(repo, tasks=tasks, script=script, config=config_text(alternatives=1))
    reqs = done.agent.of("b")
    assert [r.attempt for r in reqs] == [1, 2]
    assert (reqs[0].approach, reqs[0].feedback) == (None, None)
    assert reqs[1].approach == f"alternative 1: the previous attempt failed ({kind}); take another approach"
    assert reqs[1].feedback is not None
    assert reqs[1].feedback.startswith(feedback)
    prompt = task_prompt(reqs[1])
    assert "This is attempt 2; the previous attempt failed. Take another approach: alternative 1" in prompt
    assert feedback.strip() in prompt
    assert done.tasks()["b"] == ("succeeded", 2)
    assert done.outcome.state == "completed"
    # the alternative started clean from the session's head: its commit holds b.txt alone on top of checkpoint 1
    second = f"refs/maestro/{SID}/attempts/b/2"
    assert (file_at(repo, second, "b.txt"), file_at(repo, second, "junk.txt")) == (b"right\n", None)
    assert commit_at(repo, second).parents == [done.state.checkpoints[1].commit.encode()]
    assert (on_branch(repo, "b.txt"), on_branch(repo, "junk.txt")) == (b"right\n", None)
    assert not (repo / "b.txt").exists()  # the result is the branch; the checkout is never written


def test_a_task_runs_only_after_its_dependencies_succeeded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tasks = [
        task("a", reqs=["FR-1"], acceptance=["test -f a.txt"]),
        task("b", reqs=["FR-2"], deps=["a"], acceptance=["test -f b.txt"]),
    ]
    script = {
        "a": [{"fail": {"kind": "implementation", "message": "gave up"}}, {"actions": [write("a.txt", "a\n")]}],
        "b": [{"actions": [write("b.txt", "b\n")]}],
    }
    reqs = [("FR-1", "one", "P3"), ("FR-2", "two", "P3")]  # nothing blocks the handoff
    done = run_session(repo, tasks=tasks, script=script, requirements=reqs)
    assert done.outcome.state == "completed"
    assert done.tasks() == {"a": ("succeeded", 2), "b": ("succeeded", 1)}
    assert done.index("task", task="a", trigger="succeed") < done.index("task", task="b", trigger="start")


BROKE_A = "Your change broke task a (A): its acceptance command `grep -qx A a.txt` failed (exit 1):"


def test_a_regression_is_not_merged_and_the_task_alone_runs_again_with_the_breakage_as_feedback(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    tasks = [task("a", acceptance=["grep -qx A a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {
        "a": [{"actions": [write("a.txt", "A\n")]}],
        "b": [
            {"actions": [write("b.txt", "b\n"), write("a.txt", "simplified\n")], "summary": "b, and a 'simpler' a"},
            {"actions": [write("b.txt", "b\n")], "summary": "b alone"},
        ],
    }
    done = run_session(repo, tasks=tasks, script=script, config=config_text(alternatives=1))
    assert done.outcome.state == "completed"
    # b's first attempt succeeded on its own terms, then broke a's acceptance command in the merged tree
    assert done.results("b") == [(1, "succeeded", None), (2, "succeeded", None)]
    (rec,) = done.decisions("recovery")
    assert (rec.task, rec.choice, rec.checkpoint) == ("b", "alternative", 1)
    assert rec.rationale == (
        "regression: Your change broke task a (A): its acceptance command `grep -qx A a.txt` failed (exit 1):; "
        "the merge is not kept: alternative 1 of 1 from checkpoint 1"
    )
    fail = next(e for e in done.events if e.kind == "task" and e.data["task"] == "b" and e.data["trigger"] == "fail")
    assert (
        fail.data["reason"]
        == "regression: Your change broke task a (A): its acceptance command `grep -qx A a.txt` failed (exit 1):"
    )
    # the session stays in implementing; b alone runs again, a is neither re-run nor reopened
    assert done.triggers() == ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done",
                               "handoff", "complete"]  # fmt: skip
    assert done.task_triggers("b") == ["ready", "start", "fail", "retry", "start", "succeed"]
    assert done.task_triggers("a") == ["ready", "start", "succeed"]
    assert done.tasks() == {"a": ("succeeded", 1), "b": ("succeeded", 2)}
    # the redo carries the approach and the broken task's output
    first, second = done.agent.of("b")
    assert (first.attempt, first.approach, first.feedback) == (1, None, None)
    assert second.attempt == 2
    assert second.approach == "keep every earlier task's acceptance commands passing"
    assert second.feedback == f"{BROKE_A}\n$ grep -qx A a.txt\n"
    assert "Take another approach: keep every earlier task's acceptance commands passing" in task_prompt(second)
    # the breaking attempt is kept in its ref; the branch never held it: no checkpoint, nothing rolled back
    assert file_at(repo, f"refs/maestro/{SID}/attempts/b/1", "a.txt") == b"simplified\n"
    assert refs_under(repo, f"refs/maestro/{SID}/pre-rollback") == []
    assert done.checkpoints()[1:] == [(1, "task a: A", ["a.txt"]), (2, "task b: B", ["b.txt"])]
    assert (on_branch(repo, "a.txt"), on_branch(repo, "b.txt")) == (b"A\n", b"b\n")
    assert not (repo / "a.txt").exists()
    assert done.latest_gates()["traceability"] == "passed"
    recovery = section(done.report(), "Recovery")
    assert any("[b] alternative: regression: Your change broke task a" in line for line in recovery)


def test_a_task_that_keeps_breaking_earlier_work_pauses(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tasks = [task("a", acceptance=["grep -qx A a.txt"]), task("b", deps=["a"], acceptance=["test -f b.txt"])]
    script = {
        "a": [{"actions": [write("a.txt", "A\n")]}],
        "b": [{"actions": [write("b.txt", "b\n"), write("a.txt", "simplified\n")]}],
    }
    done = run_session(repo, tasks=tasks, script=script, config=config_text(alternatives=1))
    assert (done.outcome.state, done.outcome.exit_code) == ("paused", 3)
    assert done.recoveries() == [("b", "alternative"), ("b", "pause")]  # the pause is a decision too
    assert done.decisions("recovery")[1].rationale == (
        "the task keeps breaking earlier work (1 alternatives): "
        "Your change broke task a (A): its acceptance command `grep -qx A a.txt` failed (exit 1):"
    )
    assert done.results("b") == [(1, "succeeded", None), (2, "succeeded", None)]
    req = done.request()
    assert req["question"] == (
        "Task b keeps breaking earlier work (1 alternatives): "
        "Your change broke task a (A): its acceptance command `grep -qx A a.txt` failed (exit 1):"
    )
    assert req["options"] == ["retry", "skip", "abort", "guidance"]
    assert set(req["context"]) == {"task", "failure_class", "output", "mid_group"}
    assert (req["context"]["task"], req["context"]["failure_class"], req["context"]["mid_group"]) == (
        "b", "regression", True
    )  # fmt: skip
    assert "$ grep -qx A a.txt" in req["context"]["output"]
    assert (req["session"], req["paused_from"]) == (SID, "implementing")
    assert done.state.paused_from == "implementing"
    # neither breaking attempt was merged: the branch is at checkpoint 1, a's work intact
    assert [c.n for c in done.state.checkpoints] == [0, 1]
    assert read_ref(repo, BRANCH) == done.state.checkpoints[1].commit.encode()
    assert on_branch(repo, "a.txt") == b"A\n"
    assert f"maestro-{SID}-integration" in worktrees(repo)  # a paused session keeps its worktrees


def test_deleting_files_far_outside_the_task_is_a_regression(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"docs/guide.md": "# guide\n", "src/__init__.py": ""})
    tasks = [
        task("a", acceptance=["test -f src/a.py"], files=["src/a.py"]),
        task("b", deps=["a"], acceptance=["test -f src/b.py"], files=["src/b.py"]),
    ]
    script = {
        "a": [{"actions": [write("src/a.py", "A = 1\n")]}],
        "b": [
            {
                "actions": [
                    write("src/b.py", "B = 2\n"),
                    {"delete": {"path": "docs"}},
                    {"delete": {"path": "README.md"}},
                ]
            },
            {"actions": [write("src/b.py", "B = 2\n")]},
        ],
    }
    done = run_session(repo, tasks=tasks, script=script)
    assert done.recoveries() == [("b", "alternative")]
    assert [e.data["reason"] for e in done.events if e.kind == "task" and e.data["trigger"] == "fail"] == [
        "regression: Your change deleted files outside the task's files (README.md, docs/guide.md): "
        "keep to the task's files"
    ]
    # the deletions stay in b's first attempt; the branch keeps the files
    first = f"refs/maestro/{SID}/attempts/b/1"
    assert (file_at(repo, first, "README.md"), file_at(repo, first, "docs/guide.md")) == (None, None)
    assert on_branch(repo, "README.md") == b"# sample\n"
    assert on_branch(repo, "docs/guide.md") == b"# guide\n"
    assert on_branch(repo, "src/b.py") == b"B = 2\n"
    assert done.outcome.state == "completed"


def test_a_critical_failure_pauses_at_once_after_the_running_tasks_finish(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tasks = [
        task("a", acceptance=["test -f a.txt"]),
        task("b", acceptance=["test -f b.txt"]),
        task("c", deps=["a", "b"], acceptance=["test -f c.txt"]),
    ]
    script = {
        "a": [{"fail": {"kind": "critical", "message": "Credit balance is too low"}}],
        "b": [{"delay_s": 0.3, "actions": [write("b.txt", "b\n")]}],
        "c": [{"actions": [write("c.txt", "c\n")]}],
    }
    done = run_session(repo, tasks=tasks, script=script, config=config_text(retries=3, alternatives=2))
    assert done.outcome == RunOutcome(
        SID, "paused", 3, report=done.dir / "final-report.md", request_file=done.dir / "decision-request.json"
    )
    req = done.request()
    assert req == {
        "session": SID,
        "question": "scripted cannot work: Credit balance is too low",
        "options": ["retry", "abort"],
        "context": {"task": "a", "failure_class": "critical", "fix": "Credit balance is too low", "mid_group": True},
        "paused_from": "implementing",
    }
    # no retry, no alternative: one attempt; b (running at the time) finished; c (needing a) never started
    assert done.results("a") == [(1, "failed", "critical")]
    assert done.delays == []
    assert done.recoveries() == [("a", "pause")]
    assert done.decisions("recovery")[0].rationale == "the agent cannot work: Credit balance is too low"
    assert done.index("agent", task="a") < done.index("agent", task="b")
    assert done.tasks() == {"a": ("failed", 1), "b": ("succeeded", 1)}
    assert done.triggers()[-1] == "pause"
    assert "error" not in done.triggers()
    # b, running at the time, finished and was merged before the pause (a checkpoint of its own)
    assert done.checkpoints()[1:] == [(1, "task b: B", ["b.txt"])]
    assert done.index("checkpoint", n=1) < done.index("transition", trigger="pause")
    assert read_ref(repo, BRANCH) == done.state.checkpoints[1].commit.encode()
    assert on_branch(repo, "b.txt") == b"b\n"
    assert done.state.state == "paused"
    assert done.state.paused_from == "implementing"
    report = done.report()
    assert "- Outcome: paused (paused from implementing)" in section(report, "Summary")
    (pause,) = done.decisions("recovery")
    assert section(report, "Recovery") == [
        "- a attempt 1: failed (critical), not recovered yet — Credit balance is too low",
        f"  - {pause.id} [a] pause: the agent cannot work: Credit balance is too low",
    ]
    assert section(report, "Metrics")[:2] == [
        "- Autonomy: not ended (paused) yet, 0 human answers so far",
        "- Recovery: 1 failure (1 agent): 0 recovered without a human (0%), 0 after a human answer, 1 not recovered",
    ]


def test_a_path_outside_the_repository_is_critical(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {"a": [{"actions": [write("../outside.txt", "x\n")]}]}
    done = run_session(repo, tasks=[task("a")], script=script)
    assert done.outcome.state == "paused"
    assert done.results("a") == [(1, "failed", "critical")]
    req = done.request()
    assert req["context"]["failure_class"] == "critical"
    assert req["question"] == "scripted cannot work: refused: ../outside.txt: '..' leaves the repository"
    wt = done.agent.of("a")[0].workdir  # the attempt's worktree: "../" is beside it, not beside the checkout
    assert not (wt.parent / "outside.txt").exists()
    assert not (tmp_path / "outside.txt").exists()


def test_an_ambiguous_failure_pauses_with_a_question(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {"a": [{"fail": {"kind": "ambiguous", "message": "Which database: postgres or sqlite?"}}]}
    done = run_session(repo, tasks=[task("a"), task("b", deps=["a"])], script=script)
    assert (done.outcome.state, done.outcome.exit_code) == ("paused", 3)
    assert done.request() == {
        "session": SID,
        "question": "Task a needs a decision: Which database: postgres or sqlite?",
        "options": ["retry", "skip", "abort", "guidance"],
        "context": {"task": "a", "failure_class": "ambiguous", "mid_group": True},
        "paused_from": "implementing",
    }
    assert done.recoveries() == [("a", "pause")]
    assert done.decisions("recovery")[0].rationale == "a human must decide: Which database: postgres or sqlite?"
    assert done.results("a") == [(1, "failed", "ambiguous")]
    assert "b" not in done.state.tasks


def test_every_rung_used_pauses_with_a_decision_request(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {
        "a": [
            {"fail": {"kind": "transient", "message": "rate limited"}},
            {"fail": {"kind": "transient", "message": "service overloaded"}},
        ]
    }
    done = run_session(repo, tasks=[task("a")], script=script, config=config_text(retries=1, alternatives=0))
    assert done.delays == [1.5]
    assert done.recoveries() == [("a", "retry"), ("a", "pause")]
    assert done.decisions("recovery")[1].rationale == "every rung used (1 retries, 0 alternatives)"
    assert done.request() == {
        "session": SID,
        "question": "Task a still fails after 1 retries and 0 alternatives: service overloaded",
        "options": ["retry", "skip", "abort", "guidance"],
        "context": {"task": "a", "failure_class": "transient", "output": "service overloaded", "mid_group": True},
        "paused_from": "implementing",
    }
    assert done.tasks() == {"a": ("failed", 2)}


def test_every_rung_used_after_the_alternatives_pauses(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {
        "a": [
            {"fail": {"kind": "implementation", "message": "first approach failed"}},
            {"fail": {"kind": "implementation", "message": "second approach failed"}},
        ]
    }
    done = run_session(repo, tasks=[task("a")], script=script, config=config_text(retries=2, alternatives=1))
    assert done.recoveries() == [("a", "alternative"), ("a", "pause")]
    assert done.results("a") == [(1, "failed", "implementation"), (2, "failed", "implementation")]
    assert done.request()["question"] == (
        "Task a still fails after 0 retries and 1 alternatives: second approach failed"
    )


def test_a_retry_late_in_a_session_does_not_crash_the_runner(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {
        "a": [
            {"actions": [write("a.txt", "a\n")]},
            {"actions": [write("a.txt", "a\n")]},
            {"fail": {"kind": "transient", "message": "rate limited"}},
            {"actions": [write("fixed.txt", "ok\n")]},
        ]
    }
    done = run_session(
        repo,
        tasks=[task("a", acceptance=["test -f a.txt"])],
        script=script,
        config=config_text(retries=1, alternatives=0, iterations=3, tests="test -f fixed.txt"),
    )
    assert done.outcome.state in ("completed", "paused")
    if done.outcome.state == "paused":
        assert done.outcome.request_file is not None
        assert done.outcome.request_file.is_file()


def test_refinement_reruns_no_task_whose_work_is_done_and_adds_a_fix_task_after_every_other(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tasks = [task("a", acceptance=["test -f a.txt"]), task("c", deps=["a"], acceptance=["test -f c.txt"])]
    script = {
        "a": [{"actions": [write("a.txt", "a\n")]}],
        "c": [{"actions": [write("c.txt", "c\n")]}],
        "fix-tests-1": [{"actions": [write("fixed.txt", "ok\n")]}],
    }
    done = run_session(repo, tasks=tasks, script=script, config=config_text(tests="test -f fixed.txt"))
    assert done.outcome.state == "completed"
    assert done.tasks() == {"a": ("succeeded", 1), "c": ("succeeded", 1), "fix-tests-1": ("succeeded", 1)}
    assert [r.task.id for r in done.agent.requests] == ["a", "c", "fix-tests-1"]  # a and c were not paid for twice
    fix = done.agent.of("fix-tests-1")[0].task
    assert (fix.title, fix.depends_on, fix.category) == ("Make the tests gate pass", ("a", "c"), "fix")
    assert "Its command: `test -f fixed.txt`" in fix.description
    (plan,) = done.decisions("refinement_plan")
    assert plan.choice == "fix tasks: fix-tests-1"
    saved = (done.store.session_dir(done.outcome.session_id) / "tasks.yaml").read_text(encoding="utf-8")
    assert "fix-tests-1" in saved  # the session's graph holds the task it added
    assert on_branch(repo, "fixed.txt") == b"ok\n"


# -- 3. gates and traceability ---------------------------------------------------------------------------------------


def test_a_failing_test_gets_a_refinement_iteration_with_the_failure_as_feedback(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {**PKG, "tests/test_value.py": "from pkg.a import VALUE\n\n\ndef test_value():\n"
                                "    assert VALUE == 2\n"})  # fmt: skip
    script = {"a": [{"actions": [write("pkg/a.py", "VALUE = 1\n")]}],
              "fix-tests-1": [{"actions": [write("pkg/a.py", "VALUE = 2\n")]}]}  # fmt: skip
    tests_gate = f"{PY} -m pytest -q -p no:cacheprovider --junitxml={{junit}}"
    done = run_session(
        repo, tasks=[task("a", acceptance=["test -f pkg/a.py"])], script=script,
        config=config_text(tests=tests_gate, iterations=2),
    )  # fmt: skip
    assert done.outcome.state == "completed"
    rounds = done.gate_rounds("tests")
    assert [status for status, _ in rounds] == ["failed", "passed"]
    assert rounds[0][1].startswith("0 passed, 1 failed (tests/test_value.py::test_value: assert 1 == 2")
    assert rounds[1][1] == "1 passed, 0 failed"
    assert [(d.choice, d.rationale) for d in done.decisions("refinement")] == [
        ("refine", "required gates failing: tests"),
        ("handoff", "every required gate passed"),
    ]
    assert done.triggers() == ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done",
                               "refine", "tasks_ready", "implementation_done", "validation_done", "handoff",
                               "complete"]  # fmt: skip
    assert done.state.iteration == 1
    (first,) = done.agent.of("a")  # its work is done: the fix is a task of its own, not a second attempt of a
    assert (first.approach, first.feedback) == (None, None)
    (fix,) = done.agent.of("fix-tests-1")
    assert f"failed in the last validation: {rounds[0][1]}" in fix.task.description
    assert "--junitxml={junit}" in fix.task.description  # the gate's command
    assert "assert VALUE == 2" in fix.task.description  # and its output, where pytest shows the failing line
    assert "\x1b[" not in fix.task.description
    assert done.tasks() == {"a": ("succeeded", 1), "fix-tests-1": ("succeeded", 1)}
    summary = section(done.report(), "Summary")
    assert "- Tests passed: 1 passed, 0 failed" in summary
    assert "- Refinement iterations: 1" in summary
    assert section(done.report(), "Testing") == ["- tests: passed — 1 passed, 0 failed"]


def test_a_gate_that_keeps_failing_pauses_after_max_iterations(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "fix-tests-1": [{"summary": "tried"}],
              "fix-tests-2": [{"summary": "tried again"}]}  # fmt: skip
    done = run_session(
        repo, tasks=[task("a", acceptance=["test -f a.txt"])], script=script,
        config=config_text(tests="echo '2 tests failed'; exit 1", iterations=2),
    )  # fmt: skip
    assert (done.outcome.state, done.outcome.exit_code) == ("paused", 3)
    assert done.gate_rounds("tests") == [("failed", "exit status 1: 2 tests failed")] * 3
    assert [d.choice for d in done.decisions("refinement")] == ["refine", "refine", "stop"]
    assert done.decisions("refinement")[2].rationale == "required gates still failing (tests) after 2 iterations"
    assert done.state.iteration == 2
    assert done.tasks() == {"a": ("succeeded", 1), "fix-tests-1": ("succeeded", 1), "fix-tests-2": ("succeeded", 1)}
    assert done.agent.of("fix-tests-2")[0].task.depends_on == ("a", "fix-tests-1")
    assert done.request() == {
        "session": SID,
        "question": "Limit reached: required gates still fail after 2 iterations (max_iterations 2): tests",
        "options": ["raise", "handoff", "abort"],
        "context": {"limit": "max_iterations", "failing_gates": ["tests"]},
        "paused_from": "reviewing",
    }
    assert "handoff" not in done.triggers()
    quality = section(done.report(), "Quality Gates")
    assert "- tests: failed — exit status 1: 2 tests failed" in quality


def test_a_gate_that_changes_files_fails_when_required_and_its_changes_are_discarded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    fixer = "sh -c 'echo fixed > a.txt; echo new > gate.txt'"  # a formatter or fixer, run on the final head
    done = run_session(
        repo, tasks=[task("a", acceptance=["test -f a.txt"])], script={"a": [{"actions": [write("a.txt", "a\n")]}]},
        config=config_text(lint=fixer, lint_required=True),
    )  # fmt: skip
    lint = [g for g in done.state.gates if g.name == "lint"]
    assert lint[0].status == "failed"
    assert "a.txt" in lint[0].summary
    assert "gate.txt" in lint[0].summary
    assert on_branch(repo, "a.txt") == b"a\n"
    assert on_branch(repo, "gate.txt") is None
    assert f"kept at refs/maestro/{done.outcome.session_id}/pre-rollback-" in lint[0].summary


def test_a_missing_tool_is_skipped_never_passed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    done = run_session(
        repo, tasks=[task("a", acceptance=["test -f a.txt"])], script={"a": [{"actions": [write("a.txt", "a\n")]}]},
        config=config_text(lint="maestro-no-such-linter check .", typecheck=f"{PY} -m maestro_no_such_checker src"),
    )  # fmt: skip
    assert done.outcome.state == "completed"  # neither is required
    gates = {g.name: g for g in done.state.gates}
    assert gates["lint"].status == "skipped"
    assert gates["lint"].summary.startswith("maestro-no-such-linter is not installed (")
    assert gates["typecheck"].status == "skipped"
    assert gates["typecheck"].summary.startswith("maestro_no_such_checker is not installed (")
    assert "No module named maestro_no_such_checker" in gates["typecheck"].summary
    quality = section(done.report(), "Quality Gates")
    assert any(
        line.startswith("- lint: skipped (not required) — maestro-no-such-linter is not installed") for line in quality
    )


def test_a_required_gate_skipped_blocks_the_handoff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    done = run_session(
        repo, tasks=[task("a", acceptance=["test -f a.txt"])], script={"a": [{"actions": [write("a.txt", "a\n")]}]},
        config=config_text(lint="maestro-no-such-linter check .", lint_required=True, iterations=1),
    )  # fmt: skip
    assert (done.outcome.state, done.outcome.exit_code) == ("paused", 3)
    # a missing tool is no agent's work: no futile iteration re-runs a task, a human is asked at once
    assert [status for status, _ in done.gate_rounds("lint")] == ["skipped"]
    assert [d.choice for d in done.decisions("refinement")] == ["ask"]
    assert done.tasks() == {"a": ("succeeded", 1)}
    assert done.request()["options"] == ["handoff", "abort"]
    assert done.request()["question"].startswith("Required gates fail (lint) and no refinement can change that")
    assert "handoff" not in done.triggers()


def test_traceability_verdicts_met_unmet_uncovered_and_only_p0_p1_block(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    gate, check = _breaks_b_once(tmp_path)
    tasks = [
        task("a", reqs=["FR-1"], acceptance=["test -f a.txt"]),
        task("b", reqs=["FR-2"], acceptance=["test -f b.txt", check]),
    ]
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "b": [{"actions": [write("b.txt", "b\n")]}]}
    reqs = [("FR-1", "one", "P0"), ("FR-2", "two", "P2"), ("FR-3", "three", "P3")]
    # the tests gate breaks b's acceptance in the final validation, so FR-2 is unmet
    done = run_session(repo, tasks=tasks, script=script, requirements=reqs, config=config_text(tests=gate))
    assert done.outcome.state == "completed"
    trace = {g.name: g for g in done.state.gates}["traceability"]
    assert (trace.status, trace.required, trace.passed, trace.failed) == ("passed", True, 1, 2)
    assert trace.summary == "1 of 3 requirements met; not blocking: FR-2 (P2, unmet), FR-3 (P3, uncovered)"
    assert section(done.report(), "Requirements") == [
        "| Requirement | Priority | Verdict | Tasks | Reason |",
        "|---|---|---|---|---|",
        "| FR-1 | P0 | met | a | task a succeeded and its acceptance passes |",
        "| FR-2 | P2 | unmet | b | the acceptance commands of task b fail |",
        "| FR-3 | P3 | uncovered | — | no task serves it |",
    ]


def _breaks_b_once(tmp_path: Path) -> tuple[str, str]:
    """A tests gate that breaks task b's acceptance the next time it runs (a marker outside the repository: a gate
    may not change the tree), and b's acceptance command that checks it (and takes the marker away)."""
    marker = tmp_path / "gate-ran"
    return f"touch {marker}", f"! rm {marker} 2>/dev/null"


def test_a_p0_requirement_unmet_fails_validation_and_reruns_only_the_task_whose_acceptance_fails(
    tmp_path: Path,
) -> None:
    priority, verdict = "P0", "unmet: the acceptance commands of task b fail"
    repo = make_repo(tmp_path)
    tasks = [task("a", reqs=["FR-1"], acceptance=["test -f a.txt"])]
    script: dict[str, Any] = {"a": [{"actions": [write("a.txt", "a\n")]}]}
    gate_command, check = _breaks_b_once(tmp_path)
    tasks.append(task("b", reqs=["FR-2"], acceptance=["test -f b.txt", check]))
    script["b"] = [{"actions": [write("b.txt", "b\n")]}]
    reqs = [("FR-1", "one", "P0"), ("FR-2", "two", priority)]
    done = run_session(repo, tasks=tasks, script=script, requirements=reqs, config=config_text(tests=gate_command))
    assert (done.outcome.state, done.outcome.exit_code) == ("paused", 3)
    expected = f"blocking requirements not met: FR-2 ({priority}, {verdict}); 1 of 2 requirements met"
    assert done.gate_rounds("traceability") == [("failed", expected)] * 2  # the first round, and after a refinement
    assert done.latest_gates()["tests"] == "passed"
    assert done.request()["context"] == {"limit": "max_iterations", "failing_gates": ["traceability"]}
    assert done.request()["question"] == (
        "Limit reached: required gates still fail after 1 iterations (max_iterations 1): traceability"
    )
    assert done.tasks() == {"a": ("succeeded", 1), "b": ("succeeded", 2)}  # b again, told why; a's work stands
    again = done.agent.of("b")[1]
    assert again.feedback is not None
    assert again.feedback.startswith(f"its acceptance command `{check}` fails on the final head (exit status 1)")


def test_an_uncovered_requirement_gets_the_tasks_the_agent_plans_in_a_refinement_round(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    planned = [{"id": "a", "title": "two", "requirements": ["FR-2"], "acceptance": ["test -f b.txt"]}]
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "a-r1": [{"actions": [write("b.txt", "b\n")]}]}
    done = run_session(
        repo, tasks=[task("a", reqs=["FR-1"], acceptance=["test -f a.txt"])], script=script,
        requirements=[("FR-1", "one", "P0"), ("FR-2", "two", "P1")], refinement=[planned],
    )  # fmt: skip
    assert done.outcome.state == "completed"
    assert done.tasks() == {"a": ("succeeded", 1), "a-r1": ("succeeded", 1)}  # its id was taken: renamed
    (ask,) = done.agent.plans
    assert (ask.refinement, ask.requirements, ask.existing) == (1, ("FR-2",), ("a",))
    assert "FR-2" in ask.prd_markdown
    (plan,) = done.decisions("refinement_plan")
    assert (plan.choice, plan.decided_by) == ("new tasks (planned by the agent): a-r1", "agent")
    assert [str(e) for o in plan.options for e in o.evidence if e.kind == "command"] == [
        "command test -f b.txt (task a-r1)"
    ]
    assert done.latest_gates()["traceability"] == "passed"


def test_an_uncovered_requirement_gets_a_task_of_maestro_when_the_agent_cannot_plan(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = {"a": [{"actions": [write("a.txt", "a\n")]}], "cover-fr-2-1": [{"actions": [write("b.txt", "b\n")]}]}
    done = run_session(
        repo, tasks=[task("a", reqs=["FR-1"], acceptance=["test -f a.txt"])], script=script,
        requirements=[("FR-1", "one", "P0"), ("FR-2", "Export the results as CSV", "P1")],
    )  # fmt: skip
    assert done.outcome.state == "completed"
    assert done.tasks() == {"a": ("succeeded", 1), "cover-fr-2-1": ("succeeded", 1)}
    cover = done.agent.of("cover-fr-2-1")[0].task
    assert (cover.title, cover.requirements, cover.priority) == ("Implement FR-2: Export the results as CSV",
                                                                  ("FR-2",), "P1")  # fmt: skip
    (plan,) = done.decisions("refinement_plan")
    assert (plan.choice, plan.decided_by) == ("new tasks (planned by maestro): cover-fr-2-1", "policy")
    assert done.latest_gates()["traceability"] == "passed"


# -- 4. a dirty tree -------------------------------------------------------------------------------------------------


def _dirty(repo: Path) -> None:
    (repo / "README.md").write_text("# sample\n\nwork in progress\n", encoding="utf-8")
    (repo / "new.txt").write_text("untracked\n", encoding="utf-8")


@pytest.mark.parametrize("allow_dirty", [False, True], ids=["plain", "allow_dirty"])
def test_a_dirty_tree_is_the_base_and_stays_untouched_in_the_checkout(tmp_path: Path, allow_dirty: bool) -> None:
    repo = make_repo(tmp_path)
    head = read_ref(repo, "HEAD")
    _dirty(repo)
    (repo / "secret.env").write_text("TOKEN=1\n", encoding="utf-8")  # ignored: never in the base, never touched
    with open(repo / ".gitignore", "a", encoding="utf-8") as f:
        f.write("*.env\n")
    before = checkout(repo)
    tasks = [task("a", acceptance=["test -f a.txt", "grep -q 'work in progress' README.md", "test ! -e secret.env"])]
    script = {"a": [{"actions": [write("a.txt", "a\n")]}]}
    done = run_session(repo, tasks=tasks, script=script, allow_dirty=allow_dirty)  # --allow-dirty changes nothing
    assert done.outcome.state == "completed"
    # the uncommitted work (not the ignored file) is checkpoint 0, a commit on top of HEAD at the base ref
    zero = done.state.checkpoints[0]
    assert (zero.n, zero.label) == (0, "start (uncommitted work saved as base)")
    assert sorted((f.path, f.change) for f in zero.files) == [
        (".gitignore", "modified"), ("README.md", "modified"), ("new.txt", "added")
    ]  # fmt: skip
    base = read_ref(repo, f"refs/maestro/{SID}/base")
    assert base == zero.commit.encode()
    assert commit_at(repo, base).parents == [head]
    assert file_at(repo, base, "README.md") == b"# sample\n\nwork in progress\n"
    assert file_at(repo, base, "new.txt") == b"untracked\n"
    assert file_at(repo, base, "secret.env") is None
    # the session's work is on its branch, on top of the base (the agent saw the uncommitted work: acceptance)
    assert done.checkpoints()[1] == (1, "task a: A", ["a.txt"])
    assert section(done.report(), "Changes Made") == [
        "1 file changed (1 created), +1 -0 lines, from checkpoint 0 to checkpoint 1",
        "### Created (1 file)",
        "- a.txt (+1 -0)",
        "### By task (each checkpoint's diffstat)",
        "- task a: A (checkpoint 1): 1 file (1 created), +1 -0",
        "  - a.txt: created (+1 -0)",
    ]
    assert (on_branch(repo, "a.txt"), on_branch(repo, "new.txt")) == (b"a\n", b"untracked\n")
    assert on_branch(repo, "README.md") == b"# sample\n\nwork in progress\n"
    # the checkout: byte for byte as it was, the uncommitted work still uncommitted, on the same commit
    assert checkout(repo) == before
    assert (repo / "README.md").read_text() == "# sample\n\nwork in progress\n"
    assert (repo / "secret.env").read_text() == "TOKEN=1\n"
    assert read_ref(repo, "HEAD") == head
    assert dirty_paths(repo) == [".gitignore", "README.md", "new.txt"]


# -- 5. worktrees: every session's, outside the checkout (--worktree is accepted and changes nothing) ------------


@pytest.mark.parametrize("worktree", [False, True], ids=["plain", "worktree"])
def test_a_session_works_in_worktrees_outside_the_checkout_and_leaves_it_untouched(
    tmp_path: Path, worktree: bool
) -> None:
    repo = make_repo(tmp_path, {"notes.txt": "mine\n"})
    before = checkout(repo)
    tasks = [task("a", acceptance=["test -f a.txt", "grep -qx changed notes.txt"])]
    script = {"a": [{"actions": [write("a.txt", "a\n"), write("notes.txt", "changed\n")]}]}
    done = run_session(repo, tasks=tasks, script=script, worktree=worktree)
    assert done.outcome.state == "completed"
    # the user's checkout: same branch, same commit, same index, same files, nothing new
    assert checkout(repo) == before
    assert not (repo / "a.txt").exists()
    assert (repo / "notes.txt").read_text() == "mine\n"
    assert dirty_paths(repo) == []
    # the attempt ran in a pooled worktree under $MAESTRO_WORKTREES (tests/conftest.py), not in the checkout
    wt = worktree_dir(repo / ".git", SID, "w1")
    assert done.agent.of("a")[0].workdir == wt
    assert wt.parent.parent.parent == Path(os.environ[ENV_ROOT])
    assert repo not in wt.parents
    # the work: on the session's branch; the session's worktrees are gone now that it ended
    branch = read_ref(repo, BRANCH)
    assert branch == done.state.checkpoints[-1].commit.encode()
    assert (file_at(repo, branch, "a.txt"), file_at(repo, branch, "notes.txt")) == (b"a\n", b"changed\n")
    assert done.checkpoints()[1] == (1, "task a: A", ["a.txt", "notes.txt"])
    assert not wt.exists()
    assert not worktree_dir(repo / ".git", SID, "integration").exists()
    assert worktrees(repo) == []
    assert refs_under(repo, f"refs/maestro/{SID}/attempts/") == [f"refs/maestro/{SID}/attempts/a/1"]  # refs stay


# -- 6. the Claude Code adapter with its fake CLI -----------------------------------------------------------------


def test_a_session_through_the_claude_adapter(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    log = tmp_path / "claude.log"
    agent = ClaudeAgent(executable=str(FAKES_DIR / "claude"), env=fake_env("success", write="a.txt", content="A\n",
                                                                           log=log))  # fmt: skip
    done = run_session(repo, tasks=[task("a", acceptance=["grep -qx A a.txt"])], agent=agent)
    assert done.outcome.state == "completed"
    (result,) = done.state.agent_results
    assert (result.task, result.agent, result.attempt, result.status) == ("a", "claude", 1, "succeeded")
    assert result.summary == "Done: wrote a.txt."
    assert result.cost_usd is not None
    assert result.cost_usd > 0
    assert result.transcript == "agents/a.1.claude.out"
    assert (done.dir / "agents" / "a.1.claude.out").is_file()
    (call,) = invocations(log, "claude")
    assert call["cwd"] == str(done.agent.of("a")[0].workdir) == str(worktree_dir(repo / ".git", SID, "w1"))
    argv = call["argv"]
    assert isinstance(argv, list)
    assert argv[:2] == ["-p", task_prompt(done.agent.of("a")[0])]
    assert argv[1].startswith("Task a: A\n")
    assert file_at(repo, f"refs/maestro/{SID}/attempts/a/1", "a.txt") == b"A\n"  # what it wrote in its worktree
    assert on_branch(repo, "a.txt") == b"A\n"
    assert not (repo / "a.txt").exists()
    turns = f"; {result.turns} turn{'' if result.turns == 1 else 's'}" if result.turns is not None else ""
    assert f"- Agent calls: 1; cost: ${result.cost_usd:.4f}{turns}" in section(done.report(), "Summary")


def test_claude_not_logged_in_pauses_with_the_login_fix(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    log = tmp_path / "claude.log"
    agent = ClaudeAgent(executable=str(FAKES_DIR / "claude"), env=fake_env("auth", log=log))
    done = run_session(repo, tasks=[task("a"), task("b")], agent=agent, config=config_text(retries=3, alternatives=2))
    assert (done.outcome.state, done.outcome.exit_code) == ("paused", 3)
    req = done.request()
    assert req["question"].startswith(f"claude cannot work: {LOGIN_FIX}")
    assert req["context"]["failure_class"] == "critical"
    assert req["context"]["fix"].startswith("claude is not logged in: run `claude` and `/login`")
    assert req["options"] == ["retry", "abort"]
    assert req["paused_from"] == "implementing"
    # both tasks were running (two workers, no dependency); no retry after the critical failures
    assert len(invocations(log, "claude")) == 2
    assert sorted(r.attempt for r in done.state.agent_results) == [1, 1]
    assert {r.failure_class for r in done.state.agent_results} == {"critical"}
    assert done.delays == []
    assert all(choice == "pause" for _, choice in done.recoveries())


def test_claude_missing_is_critical_with_the_install_fix(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    missing = tmp_path / "no-such-claude"
    done = run_session(repo, tasks=[task("a")], agent=ClaudeAgent(executable=str(missing)))
    assert (done.outcome.state, done.outcome.exit_code) == ("paused", 3)
    fix = (
        f"{missing}: executable not found on PATH: install Claude Code (npm install -g @anthropic-ai/claude-code) "
        "or set agent.executable in config.yaml"
    )
    assert done.request()["question"] == f"claude cannot work: {fix}"
    assert done.request()["context"] == {"task": "a", "failure_class": "critical", "fix": fix, "mid_group": True}
    assert done.results("a") == [(1, "failed", "critical")]


# -- 7. the command line, as a subprocess ------------------------------------------------------------------------


def maestro_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "maestro", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def cli_plan(tmp_path: Path) -> dict[str, Path]:
    """A repository and, beside it, a PRD, tasks, a config and two scripts (one that works, one out of credit)."""
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "one", "P0"), ("FR-2", "two", "P1")]), encoding="utf-8")
    tasks = [task("a", reqs=["FR-1"], acceptance=["test -f a.txt"]),
             task("b", reqs=["FR-2"], acceptance=["test -f b.txt"])]  # fmt: skip
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    ok = {"a": [{"actions": [write("a.txt", "a\n")], "cost_usd": 0.01}],
          "b": [{"actions": [write("b.txt", "b\n")], "cost_usd": 0.02}]}  # fmt: skip
    (plan / "script.yaml").write_text(json.dumps({"version": 1, "tasks": ok}), encoding="utf-8")
    broke = {"a": [{"fail": {"kind": "critical", "message": "out of credit"}}],
             "b": [{"delay_s": 0.2, "actions": [write("b.txt", "b\n")]}]}  # fmt: skip
    (plan / "broke.yaml").write_text(json.dumps({"version": 1, "tasks": broke}), encoding="utf-8")
    (plan / "config.yaml").write_text(config_text(), encoding="utf-8")
    return {"repo": repo, **{p.stem: p for p in plan.iterdir()}}


def _run_args(p: Mapping[str, Path], script: str, *extra: str) -> list[str]:
    return ["run", "Build the sample", "--script", str(p[script]), "--prd", str(p["prd"]), "--tasks",
            str(p["tasks"]), "--config", str(p["config"]), *extra]  # fmt: skip


def test_cli_run_completes_then_status_report_and_rollback(cli_plan: dict[str, Path]) -> None:
    repo = cli_plan["repo"]
    before = checkout(repo)
    out = maestro_cli(*_run_args(cli_plan, "script"), cwd=repo)
    assert (out.returncode, out.stderr) == (0, "")
    lines = out.stdout.splitlines()
    store = maestro.Store(repo)
    (sid,) = store.session_ids()
    report = store.session_dir(sid) / "final-report.md"
    assert lines[0] == f"[Maestro] Session {sid} started on branch maestro/{sid}"
    assert lines[-5:] == [
        f"[Maestro] Completed on branch maestro/{sid}. Report: {report}",
        f"[Maestro] To take the work into your branch: maestro land {sid}",
        f"html report: {report.parent / 'report.html'}",
        f"session {sid}: completed",
        f"report: {report}",
    ]
    assert all(line.startswith("[Maestro] ") for line in lines[:-3])
    assert "[Maestro] 2 tasks in 1 group: G1: a, b" in lines  # the planned view; no "Group" lines at run time
    assert not any(line.startswith("[Maestro] Group ") for line in lines)
    assert {"[Maestro] Task a: attempt 1", "[Maestro] Task b: attempt 1"} <= set(lines)
    branch = f"refs/heads/maestro/{sid}"
    assert (file_at(repo, branch, "a.txt"), file_at(repo, branch, "b.txt")) == (b"a\n", b"b\n")
    assert checkout(repo) == before

    status = maestro_cli("status", "last", "--json", cwd=repo)
    assert status.returncode == 0
    doc = json.loads(status.stdout)
    assert {"session", "state", "tasks", "checkpoints", "cost_usd"} <= set(doc)
    assert doc["session"] == sid
    assert doc["state"] == "completed"
    assert doc["tasks"] == {"a": "succeeded", "b": "succeeded"}
    cps = [(c["n"], c["tag"], c["label"]) for c in doc["checkpoints"]]
    assert cps[0] == (0, f"maestro/{sid}/0", "start")
    assert sorted(cps[1:], key=lambda c: c[2]) in (  # a and b ran together: merged in either order
        [(1, f"maestro/{sid}/1", "task a: A"), (2, f"maestro/{sid}/2", "task b: B")],
        [(2, f"maestro/{sid}/2", "task a: A"), (1, f"maestro/{sid}/1", "task b: B")],
    )
    assert doc["cost_usd"] == pytest.approx(0.03)

    shown = maestro_cli("report", "last", cwd=repo)
    assert (shown.returncode, shown.stdout) == (0, report.read_text(encoding="utf-8"))
    assert sections(shown.stdout) == [*REPORT_SECTIONS[:9], "Tasks", "Next Steps"]

    back = maestro_cli("rollback", "last", "--to", "0", cwd=repo)
    assert (back.returncode, back.stdout, back.stderr) == (
        0,
        f"session {sid}: branch maestro/{sid} is at checkpoint 0 (maestro/{sid}/0)\n",
        "",
    )
    # the session's branch moved back; the checkout was not touched
    assert commit_at(repo, branch).id == commit_at(repo, f"refs/tags/maestro/{sid}/0").id
    assert (file_at(repo, branch, "a.txt"), file_at(repo, branch, "b.txt")) == (None, None)
    assert file_at(repo, branch, "README.md") == b"# sample\n"
    assert checkout(repo) == before


def test_cli_run_paused_exits_3_with_the_decision_request(cli_plan: dict[str, Path]) -> None:
    repo = cli_plan["repo"]
    out = maestro_cli(*_run_args(cli_plan, "broke"), cwd=repo)
    assert (out.returncode, out.stderr) == (3, "")
    store = maestro.Store(repo)
    (sid,) = store.session_ids()
    folder = store.session_dir(sid)
    lines = out.stdout.splitlines()
    assert lines[0] == f"[Maestro] Session {sid} started on branch maestro/{sid}"
    assert lines[-4:] == [
        f"session {sid}: paused",
        f"report: {folder / 'final-report.md'}",
        f"decision request: {folder / 'decision-request.json'}",
        f"answer it: maestro answer {sid} CHOICE [--note TEXT]; then: maestro resume {sid}",
    ]
    assert (
        f"[Maestro] Paused: scripted cannot work: out of credit (options: retry, abort; see "
        f"{folder / 'decision-request.json'})"
    ) in lines
    doc = json.loads(maestro_cli("status", "last", "--json", cwd=repo).stdout)
    assert (doc["session"], doc["state"], doc["paused_from"]) == (sid, "paused", "implementing")
    assert doc["tasks"] == {"a": "failed", "b": "succeeded"}
    assert doc["decision_request"]["question"] == "scripted cannot work: out of credit"
    assert doc["cost_usd"] == 0


def test_cli_a_dirty_tree_is_the_base_and_the_checkout_stays_as_it_was(cli_plan: dict[str, Path]) -> None:
    repo = cli_plan["repo"]
    (repo / "README.md").write_text("# edited\n", encoding="utf-8")
    before = checkout(repo)
    for extra in ((), ("--allow-dirty",)):  # --allow-dirty is accepted and changes nothing
        out = maestro_cli(*_run_args(cli_plan, "script", *extra), cwd=repo)
        assert (out.returncode, out.stderr) == (0, "")
        assert out.stdout.splitlines()[-2].endswith(": completed")
    store = maestro.Store(repo)
    sids = store.session_ids()
    assert len(sids) == 2
    for sid in sids:
        state = maestro.rebuild(store.read_events(sid))
        assert state.checkpoints[0].label == "start (uncommitted work saved as base)"
        branch = f"refs/heads/maestro/{sid}"
        assert file_at(repo, branch, "README.md") == b"# edited\n"
        assert file_at(repo, branch, "a.txt") == b"a\n"
    assert checkout(repo) == before
    assert (repo / "README.md").read_text() == "# edited\n"
    assert dirty_paths(repo) == ["README.md"]


def test_cli_bad_input_exits_2_and_writes_nothing(cli_plan: dict[str, Path]) -> None:
    repo = cli_plan["repo"]
    missing = cli_plan["prd"].parent / "nope.md"
    args = _run_args(cli_plan, "script")
    args[args.index("--prd") + 1] = str(missing)
    out = maestro_cli(*args, cwd=repo)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.startswith("maestro: error: ")
    assert str(missing) in out.stderr
    assert out.stderr.count("\n") == 1
    assert not (repo / ".flow").exists()


def test_cli_last_is_the_session_started_last(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    store = maestro.Store(repo)

    class Ids:
        def __init__(self) -> None:
            self.ids = ["20260101-000000-ffffff", "20260101-000000-000000"]  # started in the same second

        def new_session_id(self, now: _dt.datetime) -> str:
            return self.ids.pop(0)

    ids, clock = Ids(), maestro.TickingClock()
    for request in ("first", "second"):
        with maestro.Session.create(store, request, clock=clock, ids=ids):
            pass
    doc = json.loads(maestro_cli("status", "last", "--json", cwd=repo).stdout)
    assert (doc["session"], doc["request"]) == ("20260101-000000-000000", "second")


# -- the chart drives the loop; recovery is the engine's ---------------------------------------------------------
def _giving_up(config: str) -> str:
    return config.replace("  max_alternatives: 1\n", "  max_alternatives: 1\n  on_exhausted: give_up\n")


def test_every_state_but_paused_and_the_final_ones_has_one_step() -> None:
    from maestro.run.loop import STEPS, check_steps

    chart = maestro.load_chart("session")
    assert set(STEPS) == {s.name for s in chart.states if not s.final} - {"paused"}
    check_steps(chart)  # every step's moves are declared, every declared move is a step's or a human's


def test_the_loop_and_the_chart_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from maestro.run import loop

    chart = maestro.load_chart("session")
    monkeypatch.setitem(loop.STEPS, "reviewing", loop.Step(loop.SessionRun.review, ("handoff", "refine")))
    with pytest.raises(maestro.ChartError, match="'give_up' from reviewing is fired by no step"):
        loop.check_steps(chart)
    monkeypatch.setitem(loop.STEPS, "reviewing", loop.Step(loop.SessionRun.review, ("handoff", "refine", "complete")))
    with pytest.raises(maestro.ChartError, match="the reviewing step may fire 'complete', not declared from reviewing"):
        loop.check_steps(chart)


def test_a_step_asking_for_a_move_the_chart_does_not_allow_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maestro.run import loop

    monkeypatch.setitem(loop.STEPS, "planning", loop.Step(lambda run: "complete", ("plan_ready",)))
    repo = make_repo(tmp_path)
    with pytest.raises(MaestroError, match="the planning step returned 'complete', not one of its moves"):
        run_session(repo, tasks=[task("a")], script={"a": [{"actions": [write("a.txt", "a\n")]}]})
    (sid,) = maestro.Store(repo).session_ids()
    assert maestro.Store(repo).read_events(sid)[-1].data.get("trigger") == "start"  # nothing fired after it


@pytest.mark.parametrize("left", [None, "half.txt"], ids=["left_nothing", "changed_files"])
def test_a_task_failure_never_leaves_implementing_and_rolls_nothing_back(tmp_path: Path, left: str | None) -> None:
    repo = make_repo(tmp_path)
    first: dict[str, Any] = {"fail": {"kind": "implementation", "message": "no idea"}}
    if left is not None:
        first["actions"] = [write(left, "x\n")]
    script = {"a": [first, {"actions": [write("a.txt", "a\n")]}]}
    done = run_session(repo, tasks=[task("a", acceptance=["test -f a.txt"])], script=script)
    assert done.outcome.state == "completed"
    # no error, recovering, rollback: the task's recovery decision is carried out in implementing
    assert done.triggers() == ["start", "plan_ready", "tasks_ready", "implementation_done", "validation_done",
                               "handoff", "complete"]  # fmt: skip
    assert done.decisions("session_recovery") == []
    assert done.recoveries() == [("a", "alternative")]
    assert done.task_triggers("a") == ["ready", "start", "fail", "retry", "start", "succeed"]
    assert refs_under(repo, f"refs/maestro/{SID}/pre-rollback") == []
    # what the failed attempt left is in its commit, and only there
    first_ref = f"refs/maestro/{SID}/attempts/a/1"
    attempt = commit_at(repo, first_ref)
    assert attempt.parents == [done.state.checkpoints[0].commit.encode()]
    assert (attempt.tree == commit_at(repo, attempt.parents[0]).tree) is (left is None)  # nothing left: no change
    if left is not None:
        assert file_at(repo, first_ref, left) == b"x\n"
        assert on_branch(repo, left) is None
    assert done.checkpoints()[1:] == [(1, "task a: A", ["a.txt"])]


def test_a_run_told_to_give_up_ends_failed_through_the_charts_give_up(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    fail = {"fail": {"kind": "implementation", "message": "cannot do it"}}
    done = run_session(repo, tasks=[task("a", acceptance=["test -f a.txt"])], script={"a": [fail, fail]},
                       config=_giving_up(config_text(retries=0, alternatives=1)))  # fmt: skip
    assert (done.outcome.state, done.outcome.exit_code) == ("failed", 1)
    # the alternative runs inside implementing; only the task's giving up takes the session to recovering
    assert done.triggers() == ["start", "plan_ready", "tasks_ready", "error", "give_up"]
    err = next(e for e in done.events if e.kind == "transition" and e.data["trigger"] == "error")
    assert err.data["reason"] == "tasks a give up"
    assert done.recoveries() == [("a", "alternative"), ("a", "give_up")]
    assert done.decisions("recovery")[1].rationale == (
        "every rung used (0 retries, 1 alternatives): giving up (on_exhausted: give_up)"
    )
    assert [d.choice for d in done.decisions("session_recovery")] == ["give_up"]
    assert done.task_triggers("a") == ["ready", "start", "fail", "retry", "start", "fail"]
    assert done.state.state == "failed"
    assert worktrees(repo) == []  # a failed session's worktrees are removed too
    assert done.outcome.report is not None and "failed" in done.outcome.report.read_text(encoding="utf-8")


def test_required_gates_failing_at_the_iteration_limit_give_up_when_told(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    done = run_session(repo, tasks=[task("a", acceptance=["test -f a.txt"])],
                       script={"a": [{"actions": [write("a.txt", "a\n")]}], "fix-tests-1": [{}]},
                       config=_giving_up(config_text(tests="false", iterations=1)))  # fmt: skip
    assert (done.outcome.state, done.outcome.exit_code) == ("failed", 1)
    assert [d.choice for d in done.decisions("refinement")] == ["refine", "give_up"]
    assert done.triggers()[-2:] == ["validation_done", "give_up"]
