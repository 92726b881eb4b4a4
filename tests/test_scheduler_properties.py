"""The scheduler and the merge queue as a property (issue 14): real sessions over generated scenarios.

Each example is a random DAG of 2–6 tasks run by a real in-process session (the scripted agent, a real
git repository, real acceptance commands), ``parallel.max_workers`` 1–3.  Each task writes a file of its
own and may edit a line of its own in a shared file (a clean three-way merge with everyone else's
lines); every attempt starts with a random sleep, so the completion order varies.  Some tasks first
fail (transient: a retry; implementation: an alternative), some first break a dependency's file that
the dependency's acceptance command checks (a regression: the merge is not kept), and with two
workers or more two independent tasks x and y may edit the same line of the shared file: x's attempt
waits until y's has started, y's until x is merged, so y's edit is made on a head without x's and
conflicts (a ``merge`` decision, then a second attempt that appends instead).  So the expected result
of every example is known in advance, and the test checks: the session completed; each task has
exactly one checkpoint, after every dependency's; each checkpoint's tree is the base plus the changes
of the tasks merged so far (no merge lost, no failed work kept), so the final tree equals applying the
tasks' changes in a dependency order; the branch head is the last checkpoint; each attempt is kept at
its ref with what it did; the log's decisions are the recovery ladder's; a first attempt is told
nothing, a later one what went wrong; the user's checkout is unchanged and no worktree is left.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

import maestro
from maestro.agents.scripted import ScriptedAgent
from maestro.config.reader import parse_config
from maestro.run.runner import Runner
from tests.support.runs import REQUEST, Recorder, config_text, make_repo, prd_text, task, write

#: The shared file's lines: the conflicting pair edits ``s1``, task i may edit ``s{3i+4}`` (two untouched lines
#: between any two edits, so those merge cleanly), and the rebasing task appends after ``s23``.
SHARED = [f"s{k}" for k in range(24)]
BASE = {
    ".gitignore": "__pycache__/\n.pytest_cache/\n",
    "README.md": "# sample\n",
    "shared.txt": "\n".join(SHARED) + "\n",
}
#: What each kind of failed attempt leads to in the log (the recovery decision's choice).
RECOVERY = {
    "transient": "retry",
    "implementation": "alternative",
    "regression": "alternative",
    "conflict": "alternative",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def blobs(repo: Path, names: Sequence[str]) -> dict[str, str | None]:
    """``rev:path`` → the file's text (None when there is no such file), read with one ``git cat-file --batch``."""
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input="".join(f"{n}\n" for n in names).encode(),
                         capture_output=True, check=True).stdout  # fmt: skip
    found: dict[str, str | None] = {}
    pos = 0
    for name in names:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if header[-1] == b"missing":
            found[name] = None
            continue
        size = int(header[2])
        found[name] = out[pos : pos + size].decode()
        pos += size + 1
    return found


def snapshot(repo: Path) -> dict[str, str]:
    """Every file of the user's checkout (ignored and untracked too; ``.flow/`` aside) and its git state."""
    out: dict[str, str] = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel == ".flow" or rel.startswith((".flow/", ".git/")):
            continue
        if path.is_file() and not path.is_symlink():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    out[".git/index"] = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    out[".git/HEAD"] = (repo / ".git" / "HEAD").read_text()
    refs = git(repo, "for-each-ref", "refs/heads/", "--format=%(refname) %(objectname)").splitlines()
    out["branches"] = "\n".join(r for r in refs if not r.startswith("refs/heads/maestro/"))
    return out


# -- the scenarios ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What is generated: the DAG, the workers, and what each task's attempts do (``kinds``, the last one good)."""

    deps: tuple[tuple[int, ...], ...]  # task i depends on tasks deps[i] (all < i)
    workers: int
    kinds: tuple[tuple[str, ...], ...]  # per task: "transient" | "implementation" | "regression" | "conflict" | "good"
    breaks: tuple[int | None, ...]  # per task: the dependency whose file its regression attempt breaks
    own_line: tuple[bool, ...]  # per task: whether it edits its own line of shared.txt
    pair: tuple[int, int] | None  # (x, y): x takes line s1; y's first try edits it too (conflict), then rebases
    sleeps: tuple[tuple[float, ...], ...]  # per task, per attempt: the sleep it starts with

    @property
    def n(self) -> int:
        return len(self.deps)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(2, 6))
    deps = tuple(tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3))))) if i else () for i in range(n))
    workers = draw(st.sampled_from([1, 2, 2, 3, 3]))

    def ancestors(i: int) -> set[int]:
        out: set[int] = set()
        todo = list(deps[i])
        while todo:
            j = todo.pop()
            if j not in out:
                out.add(j)
                todo.extend(deps[j])
        return out

    independent = [(i, j) for i in range(n) for j in range(i + 1, n) if i not in ancestors(j)]
    pair = None
    if workers >= 2 and independent and draw(st.sampled_from([False, True, True])):
        i, j = draw(st.sampled_from(independent))
        pair = (i, j) if draw(st.booleans()) else (j, i)
    kinds: list[tuple[str, ...]] = []
    breaks: list[int | None] = []
    for i in range(n):
        k: list[str] = []
        fail = draw(st.sampled_from([None, None, "transient", "implementation"]))
        if fail:
            k.append(fail)
        broken: int | None = None
        if len(deps[i]) > 0 and draw(st.booleans()):
            broken = draw(st.sampled_from(deps[i]))
        if broken is not None:
            k.append("regression")
        if pair is not None and i == pair[1]:
            k.append("conflict")
        kinds.append((*k, "good"))
        breaks.append(broken)
    own_line = tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    sleep = st.sampled_from([0.0, 0.02, 0.05, 0.1])
    sleeps = tuple(tuple(draw(st.lists(sleep, min_size=len(k), max_size=len(k)))) for k in kinds)
    return Scenario(deps, workers, tuple(kinds), tuple(breaks), own_line, pair, sleeps)


def tid(i: int) -> str:
    return f"t{i}"


def tasks_of(sc: Scenario) -> list[dict[str, Any]]:
    """tasks.yaml: each task checks its own file, that its dependencies' files are there, and its line if it has one."""
    out = []
    for i in range(sc.n):
        acceptance = [f'test "$(cat {tid(i)}.txt)" = {tid(i)}', *(f"test -f {tid(j)}.txt" for j in sc.deps[i])]
        if sc.own_line[i]:
            acceptance.append(f"grep -qx '{tid(i)} was here' shared.txt")
        out.append(task(tid(i), deps=[tid(j) for j in sc.deps[i]], acceptance=acceptance))
    return out


def wait_for(condition: str, what: str) -> dict[str, Any]:
    """A ``run`` action that waits (at most 10 s) until ``condition`` holds, failing the attempt if it never does."""
    return {"run": f"n=0; until {condition}; do n=$((n+1)); if [ $n -gt 500 ]; then echo '{what}' >&2; exit 1; fi; "
                   "sleep 0.02; done"}  # fmt: skip


def script_of(sc: Scenario, repo: Path, marker: Path) -> dict[str, list[dict[str, Any]]]:
    """The scripted agent's attempts, kind by kind (see :class:`Scenario`)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(sc.n):
        t = tid(i)
        core = [write(f"{t}.txt", f"{t}\n")]
        if sc.own_line[i]:
            core.append({"run": f"sed -i 's/^s{3 * i + 4}$/{t} was here/' shared.txt"})
        attempts = []
        for kind, pause in zip(sc.kinds[i], sc.sleeps[i], strict=True):
            actions: list[dict[str, Any]] = [{"run": f"sleep {pause}"}]
            item: dict[str, Any] = {}
            if kind in ("transient", "implementation"):
                actions.append(write(f"{t}.junk", "half done\n"))
                item["fail"] = {"kind": kind, "message": f"{t} failed ({kind})"}
            elif kind == "regression":
                actions += [*core, write(f"{tid(breaks_of(sc, i))}.txt", "broken\n")]
            elif kind == "conflict":  # started before x's merge (x waits for the marker), finished after it
                x = tid(sc.pair[0]) if sc.pair else "?"
                head = f"$(git -C '{repo}' for-each-ref --format='%(refname)' refs/heads/maestro/)"
                actions += [
                    {"run": f"touch '{marker}'"},
                    wait_for(f'b={head}; [ -n "$b" ] && git -C \'{repo}\' cat-file -e "$b:{x}.txt" 2>/dev/null',
                             f"{x} was never merged"),
                    *core,
                    {"run": "sed -i 's/^s1$/" + t + " took s1/' shared.txt"},
                ]  # fmt: skip
            else:
                if sc.pair and i == sc.pair[0]:
                    actions += [wait_for(f"[ -f '{marker}' ]", "the conflicting attempt never started"), *core,
                                {"run": f"sed -i 's/^s1$/{t} took s1/' shared.txt"}]  # fmt: skip
                elif sc.pair and i == sc.pair[1]:
                    actions += [*core, {"append": {"path": "shared.txt", "content": f"{t} rebased\n"}}]
                else:
                    actions += core
            attempts.append({"actions": actions, **item})
        out[t] = attempts
    return out


def breaks_of(sc: Scenario, i: int) -> int:
    b = sc.breaks[i]
    assert b is not None
    return b


def apply_changes(tree: dict[str, str], sc: Scenario, i: int) -> None:
    """Task i's change (its last, good attempt) applied to ``tree``."""
    t = tid(i)
    tree[f"{t}.txt"] = f"{t}\n"
    lines = tree["shared.txt"].splitlines()
    if sc.own_line[i]:
        lines[lines.index(f"s{3 * i + 4}")] = f"{t} was here"
    if sc.pair and i == sc.pair[0]:
        lines[lines.index("s1")] = f"{t} took s1"
    if sc.pair and i == sc.pair[1]:
        lines.append(f"{t} rebased")
    tree["shared.txt"] = "\n".join(lines) + "\n"


def expected_tree(sc: Scenario, order: Sequence[int]) -> dict[str, str]:
    tree = dict(BASE)
    for i in order:
        apply_changes(tree, sc, i)
    return tree


def tree_at(repo: Path, rev: str) -> dict[str, str | None]:
    names = git(repo, "ls-tree", "-r", "--name-only", rev).splitlines()
    return dict(zip(names, blobs(repo, [f"{rev}:{p}" for p in names]).values(), strict=True))


# -- the property ---------------------------------------------------------------------------------------------------


@dataclass
class Ran:
    """A scenario's session, run to its end: the repository, the user's checkout before it, and what it left."""

    repo: Path
    before: dict[str, str]
    outcome: maestro.RunOutcome
    state: maestro.SessionState
    agent: Recorder


def run_session(root: Path, sc: Scenario) -> Ran:
    repo = make_repo(root, {"shared.txt": BASE["shared.txt"]})
    plan = root / "plan"
    plan.mkdir()
    (plan / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks_of(sc)}), encoding="utf-8")
    script = {"version": 1, "tasks": script_of(sc, repo.resolve(), root.resolve() / "conflicting-attempt-started")}
    agent = Recorder(ScriptedAgent.from_mapping(script, plan))
    config = parse_config(config_text(workers=sc.workers, retries=2, alternatives=3), plan / "config.yaml")
    store = maestro.Store(repo)
    before = snapshot(repo)
    outcome = Runner(store, config, agent, sleep=lambda s: None).run(
        REQUEST, prd_path=plan / "prd.md", tasks_path=plan / "tasks.yaml"
    )
    return Ran(repo, before, outcome, maestro.rebuild(store.read_events(outcome.session_id)), agent)


def check(sc: Scenario, ran: Ran) -> None:
    repo, state, sid = ran.repo, ran.state, ran.outcome.session_id
    assert ran.outcome.state == "completed", (ran.outcome, state.tasks)
    ids = [tid(i) for i in range(sc.n)]

    # every task merged once, after all its dependencies
    cps = state.checkpoints
    assert [c.n for c in cps] == list(range(sc.n + 1))
    labels = [c.label for c in cps[1:]]
    assert sorted(labels) == sorted(f"task {t}: {t.upper()}" for t in ids)
    order = [int(label.split(":")[0].removeprefix("task t")) for label in labels]
    for pos, i in enumerate(order):
        assert set(sc.deps[i]) <= set(order[:pos]), f"{tid(i)} merged before its dependencies: {labels}"
    assert git(repo, "rev-parse", f"maestro/{sid}") == cps[-1].commit  # the branch head is the last checkpoint

    # no merge lost, no failed work kept: checkpoint k's tree is the base plus the first k tasks' changes
    for k, cp in enumerate(cps):
        assert tree_at(repo, cp.commit) == expected_tree(sc, order[:k]), f"checkpoint {k} ({cp.label})"
    # so the final tree is the tasks' changes applied in a dependency order (any one: they commute)
    assert tree_at(repo, f"maestro/{sid}") == expected_tree(sc, range(sc.n))

    # each attempt kept at its ref, with what it did
    attempts = {t: ts.attempts for t, ts in state.tasks.items()}
    assert attempts == {tid(i): len(sc.kinds[i]) for i in range(sc.n)}
    refs = git(repo, "for-each-ref", f"refs/maestro/{sid}/attempts/", "--format=%(refname)").splitlines()
    want = {f"refs/maestro/{sid}/attempts/{tid(i)}/{a}" for i in range(sc.n) for a in range(1, len(sc.kinds[i]) + 1)}
    assert set(refs) == want
    probes: dict[str, str | None] = {}
    for i in range(sc.n):
        for a, kind in enumerate(sc.kinds[i], start=1):
            ref = f"refs/maestro/{sid}/attempts/{tid(i)}/{a}"
            if kind in ("transient", "implementation"):
                probes[f"{ref}:{tid(i)}.junk"] = "half done\n"
            elif kind == "regression":
                probes[f"{ref}:{tid(breaks_of(sc, i))}.txt"] = "broken\n"
            else:
                probes[f"{ref}:{tid(i)}.txt"] = f"{tid(i)}\n"
    assert blobs(repo, list(probes)) == probes

    # the log's decisions: the recovery ladder's rungs, and one merge decision per conflict
    for i in range(sc.n):
        rungs = [d.choice for d in state.decisions if d.kind == "recovery" and d.task == tid(i)]
        assert rungs == [RECOVERY[k] for k in sc.kinds[i][:-1]], tid(i)
    merges = [(d.task, d.choice) for d in state.decisions if d.kind == "merge"]
    assert merges == ([(tid(sc.pair[1]), "rerun")] if sc.pair else [])

    # what each attempt was told: nothing at first (nobody hears of another task's failure), then what went wrong
    for i in range(sc.n):
        requests = ran.agent.of(tid(i))
        assert [r.attempt for r in requests] == list(range(1, len(sc.kinds[i]) + 1))
        for r in requests:
            assert not r.workdir.resolve().is_relative_to(repo.resolve())  # a worktree outside the checkout
            told = [k for k in sc.kinds[i][: r.attempt - 1] if k != "transient"]  # a retry keeps what was said
            if not told:
                assert (r.feedback, r.approach) == (None, None), (tid(i), r.attempt)
                continue
            assert r.feedback is not None, (tid(i), r.attempt)
            if told[-1] == "conflict":
                assert "<<<<<<<" in r.feedback and "shared.txt" in r.feedback
            elif told[-1] == "regression":
                assert f"{tid(breaks_of(sc, i))}.txt" in r.feedback
            else:
                assert f"{tid(i)} failed (implementation)" in r.feedback

    # the user's checkout untouched, no worktree left
    assert snapshot(repo) == ran.before
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


@settings(
    max_examples=25,
    deadline=None,
    phases=tuple(p for p in Phase if p is not Phase.explain),  # explain re-runs a failing case many times
    suppress_health_check=[HealthCheck.too_slow],
)
@given(sc=scenarios())
def test_every_task_is_merged_once_after_its_dependencies_and_no_merge_is_lost(sc: Scenario) -> None:
    for kind in sorted({k for ks in sc.kinds for k in ks[:-1]}):
        event(f"an attempt: {kind}")
    event(f"{sc.n} tasks, {sc.workers} workers")
    root = Path(tempfile.mkdtemp(prefix="maestro-scheduler-"))
    try:
        check(sc, run_session(root, sc))
    finally:
        shutil.rmtree(root, ignore_errors=True)
