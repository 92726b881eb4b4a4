"""End to end with the REAL coding-agent CLIs, offline: ``maestro run`` sessions whose model is a scripted server.

The real ``claude`` 2.1.328, ``codex`` 0.169.0 and ``aider`` 0.86.2 (installed by
tests/support/agent_clis.py) talk to :class:`maestro.testing.model_server.ModelServer`
on 127.0.0.1, which plays the model turns of a model script: the CLI's own tools
write the files (Claude Code's Write/Edit/Read/Bash, Codex's apply_patch and
exec_command, Aider's edit blocks).  Each session is a small graph — two tasks in
parallel, one depending on both, one first attempt failing its acceptance — run
through the command line (``maestro run`` as a subprocess) with the agent set in
config.yaml, its ``env`` pointing the CLI at the server and HOME at a folder of
the test.  Then the failure classes: what each real CLI does on the server's 429,
529, 401 and a stream cut mid-answer, and the class its adapter gives.

A test is skipped, with the reason, only when its CLI cannot be installed here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from maestro.agents._common import Attempt
from maestro.agents.aider import AiderAgent
from maestro.agents.base import AgentRequest, Subagent
from maestro.agents.claude import ClaudeAgent, parse_stream
from maestro.agents.codex import CodexAgent
from maestro.agents.process import ProcessOutcome
from maestro.core.records import AgentResult
from maestro.plan.tasks import Task
from maestro.testing.model_server import ModelServer
from tests.support import agent_clis
from tests.support.git import git_init
from tests.support.runs import Plan, assert_completed, config_text, make_repo, prd_text, task

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@pytest.fixture(scope="module")
def claude() -> Path:
    try:
        return agent_clis.npm_bin() / "claude"
    except agent_clis.Missing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def aider() -> Path:
    try:
        return agent_clis.aider_exe()
    except agent_clis.Missing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def codex() -> Path:
    try:
        return agent_clis.npm_bin() / "codex"
    except agent_clis.Missing as exc:
        pytest.skip(str(exc))


def base_env(tmp_path: Path) -> dict[str, str]:
    """A HOME of the test's own (no user configuration, no keys from the developer's shell)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "LANG": "C.UTF-8"}


def session_plan(root: Path, agent: Mapping[str, Any], tasks: list[dict[str, Any]], *,
                 files: Mapping[str, str] | None = None, alternatives: int = 1) -> Plan:  # fmt: skip
    """A repository under ``root`` with its PRD, tasks and a config.yaml naming ``agent``."""
    make_repo(root, files)
    plan = Plan(root, script=False)
    plan.dir.mkdir()
    (plan.dir / "prd.md").write_text(prd_text([("FR-1", "The feature", "P0")]), encoding="utf-8")
    (plan.dir / "tasks.yaml").write_text(json.dumps({"version": 1, "tasks": tasks}), encoding="utf-8")
    config = config_text(workers=2, retries=2, alternatives=alternatives, backoff=(0.1, 2.0, 0.5))
    (plan.dir / "config.yaml").write_text(config + f"agent: {json.dumps(dict(agent))}\n", encoding="utf-8")
    return plan


def barrier(folder: Path, me: str, other: str) -> str:
    """A shell command that marks ``me`` started and waits (20 s at most) for ``other``: it exits 0 only when both
    tasks run at the same time."""
    return (
        f'touch "{folder}/{me}"; n=0; while [ ! -f "{folder}/{other}" ]; do n=$((n+1)); '
        f'if [ $n -gt 400 ]; then echo "{other} never started while {me} ran" >&2; exit 1; fi; sleep 0.05; done'
    )


GRAPH = [
    task("a", acceptance=["grep -qx A a.txt"], files=["a.txt"]),
    task("b", acceptance=["grep -qx B b.txt"], files=["b.txt"]),
    task("c", deps=["a", "b"], acceptance=["grep -qx A c.txt", "grep -qx B c.txt"], files=["c.txt"]),
]
"""a and b in parallel, c after both; b's first attempt writes the wrong content and fails its acceptance."""


def failures(plan: Plan) -> list[tuple[str, str]]:
    """(task, reason) of each failed attempt, as the session's log says."""
    return [(e.data["task"], e.data.get("reason", "")) for e in plan.events()
            if e.kind == "task" and e.data["trigger"] == "fail"]  # fmt: skip


def results(plan: Plan) -> dict[tuple[str, int], AgentResult]:
    return {(r.task, r.attempt): r for r in plan.state().agent_results}


# -- Claude Code --------------------------------------------------------------------------------------------------


def portable_script(bar: Path) -> dict[str, Any]:
    return {"tasks": {
        "a": [{"turns": [{"run": barrier(bar, "a", "b")},
                         {"write": {"path": "a.txt", "content": "A\n"}, "usage": {"input_tokens": 1200,
                                                                                 "output_tokens": 80}},
                         {"text": "Wrote a.txt."}]}],
        "b": [{"turns": [{"run": barrier(bar, "b", "a")},
                         {"write": {"path": "b.txt", "content": "wrong\n"}},
                         {"text": "Wrote b.txt."}]},
              {"turns": [{"write": {"path": "b.txt", "content": "B\n"}},
                         {"text": "Fixed b.txt."}]}],
        "c": [{"turns": [{"read": "a.txt"},
                         {"run": "cat a.txt b.txt > c.txt"},
                         {"text": "Joined them into c.txt."}]}],
    }}  # fmt: skip


def claude_agent(claude: Path, srv: ModelServer, tmp_path: Path, **more: Any) -> dict[str, Any]:
    return {"kind": "claude", "executable": str(claude), "env": {**base_env(tmp_path), **srv.claude_env()}, **more}


def test_a_session_with_the_real_claude(claude: Path, tmp_path: Path) -> None:
    bar = tmp_path / "barrier"
    bar.mkdir()
    with ModelServer(portable_script(bar)) as srv:
        plan = session_plan(tmp_path, claude_agent(claude, srv, tmp_path), GRAPH)
        out = plan.run()
        assert_completed(plan, out)
    # the files, written by claude's own Write tool and its Bash tool, are the session's result
    assert (plan.file("a.txt"), plan.file("b.txt"), plan.file("c.txt")) == ("A\n", "B\n", "A\nB\n")
    got = results(plan)
    assert sorted(got) == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    assert {k: r.status for k, r in got.items()} == dict.fromkeys(got, "succeeded")  # claude did each attempt
    assert failures(plan) == [("b", "test_failure: acceptance failed: $ grep -qx B b.txt")]  # b's first did not pass
    assert plan.attempts() == {"a": ("succeeded", 1), "b": ("succeeded", 2), "c": ("succeeded", 1)}
    # what claude's result lines said: its turns, its cost (from the usage the server reported), its session
    assert (got["a", 1].turns, got["b", 2].turns, got["c", 1].turns) == (3, 2, 3)
    assert got["a", 1].summary == "Wrote a.txt."
    assert got["a", 1].input_tokens is not None and got["a", 1].input_tokens >= 1200
    for r in got.values():
        assert r.cost_usd is not None and r.cost_usd > 0, r
        assert r.agent_session is not None and UUID.match(r.agent_session)
    total = sum(r.cost_usd or 0 for r in got.values())
    turns = sum(r.turns or 0 for r in got.values())
    assert f"- Agent calls: 4; cost: ${total:.4f}; {turns} turns" in plan.report().splitlines()
    # the transcript is the real stream
    lines = [json.loads(x) for x in (plan.session_dir / "agents" / "a.1.claude.out").read_text().splitlines() if x]
    assert lines[0]["claude_code_version"] == "2.1.328"
    assert lines[-1]["type"] == "result" and lines[-1]["num_turns"] == 3
    # what claude sent: the task's prompt, the tool results, the retry's feedback
    first_b2 = srv.requests_of("b", 2)[0]
    prompt = next(t for t in first_b2.texts if t.startswith("Task b: B"))
    assert "This is attempt 2; the previous attempt failed." in prompt
    assert "grep -qx B b.txt" in prompt
    assert {"Write", "Edit", "Read", "Bash"} <= set(first_b2.tool_names)
    assert first_b2.headers["x-api-key"] == "<redacted>"
    turns_a = [r.turn for r in srv.requests_of("a")]
    assert turns_a == [0, 1, 2]
    tool_result = srv.requests_of("a")[1].body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"


# -- the failure classes of the real claude ----------------------------------------------------------------------


TASK = Task("T1", "Write the file", description="Write out.txt.", acceptance=("true",), files=("out.txt",))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return git_init(tmp_path / "repo")


def run_claude(claude: Path, srv: ModelServer, tmp_path: Path, workdir: Path, *, timeout_s: float = 120,
               retries: int | None = None, **kw: Any) -> AgentResult:  # fmt: skip
    env = {**base_env(tmp_path), **srv.claude_env()}
    if retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(retries)
    agent = ClaudeAgent(executable=str(claude), env=env, **kw)
    return agent.run(AgentRequest(TASK, workdir, session_dir=tmp_path / "session", timeout_s=timeout_s))


def writes(*fail: dict[str, Any]) -> dict[str, Any]:
    """T1 writes out.txt, after the failures given (answered to its first request)."""
    return {"tasks": {"T1": [{"turns": [{"fail": list(fail), "write": {"path": "out.txt", "content": "x\n"}},
                                        {"text": "Wrote out.txt."}]}]}}  # fmt: skip


def answers(srv: ModelServer) -> list[str]:
    return [r.answer for r in srv.requests_of("T1")]


def test_claude_retries_a_429_itself_after_its_retry_after_and_succeeds(
    claude: Path, tmp_path: Path, workdir: Path
) -> None:
    with ModelServer(writes({"status": 429, "retry_after": 1}, {"status": 529})) as srv:
        result = run_claude(claude, srv, tmp_path, workdir)
    assert (result.status, result.failure_class) == ("succeeded", None), result
    assert answers(srv) == ["failure 429", "failure 529", "turn", "turn"]
    assert (workdir / "out.txt").read_text() == "x\n"


@pytest.mark.parametrize(("status", "word"), [(429, "rate"), (529, "overloaded")])
def test_claude_out_of_retries_on_a_rate_limit_or_overload_is_transient(
    claude: Path, tmp_path: Path, workdir: Path, status: int, word: str
) -> None:
    with ModelServer(writes({"status": status, "retry_after": 0, "times": None})) as srv:
        result = run_claude(claude, srv, tmp_path, workdir, retries=1)
    assert (result.status, result.failure_class) == ("failed", "transient"), result
    assert word in result.summary.lower(), result.summary
    assert answers(srv) == [f"failure {status}"] * 2  # the first try and its one retry
    assert not (workdir / "out.txt").exists()


def test_claude_retries_a_401_too_and_then_its_result_is_critical_with_the_login_fix(
    claude: Path, tmp_path: Path, workdir: Path
) -> None:
    with ModelServer(writes({"status": 401, "times": None})) as srv:
        result = run_claude(claude, srv, tmp_path, workdir, retries=1)
    assert (result.status, result.failure_class) == ("failed", "critical"), result
    assert "claude is not logged in" in result.summary
    assert answers(srv) == ["failure 401"] * 2  # claude 2.1.328 retries a 401 like any API error
    lines = [json.loads(x) for x in (tmp_path / "session" / str(result.transcript)).read_text().splitlines()]
    retry = next(x for x in lines if x.get("subtype") == "api_retry")
    assert (retry["error_status"], retry["error"]) == (401, "authentication_failed")


def test_claude_stopped_while_it_retries_a_401_is_critical_not_transient(
    claude: Path, tmp_path: Path, workdir: Path
) -> None:
    """With its default 10 retries the real claude spends minutes on a 401: stopped at the timeout, the retry it
    was doing says why."""
    with ModelServer(writes({"status": 401, "times": None})) as srv:
        result = run_claude(claude, srv, tmp_path, workdir, timeout_s=4)
    assert (result.status, result.failure_class) == ("timeout", "critical"), result
    assert result.summary.startswith("claude is not logged in"), result.summary
    assert "still retrying authentication_failed (HTTP 401)" in result.summary
    assert len(answers(srv)) >= 2


def test_claude_stopped_while_it_retries_a_529_is_transient(claude: Path, tmp_path: Path, workdir: Path) -> None:
    with ModelServer(writes({"status": 529, "times": None})) as srv:
        result = run_claude(claude, srv, tmp_path, workdir, timeout_s=4)
    assert (result.status, result.failure_class) == ("timeout", "transient"), result
    assert "still retrying" in result.summary and "529" in result.summary, result.summary


def test_claude_retries_a_stream_cut_mid_answer_and_succeeds(claude: Path, tmp_path: Path, workdir: Path) -> None:
    with ModelServer(writes({"cut": True})) as srv:
        result = run_claude(claude, srv, tmp_path, workdir)
    assert (result.status, result.failure_class) == ("succeeded", None), result
    assert answers(srv)[:2] == ["cut", "turn"]


def test_claude_with_every_stream_cut_is_transient(claude: Path, tmp_path: Path, workdir: Path) -> None:
    with ModelServer(writes({"cut": True, "times": None})) as srv:
        result = run_claude(claude, srv, tmp_path, workdir, retries=1)
    assert (result.status, result.failure_class) == ("failed", "transient"), result
    assert set(answers(srv)) == {"cut"}


# -- a subagent as the real claude sees it --------------------------------------------------------------------------


def test_the_chosen_subagent_reaches_claude_and_claude_runs_it(claude: Path, tmp_path: Path, workdir: Path) -> None:
    sub = Subagent("file-writer", "Writes files exactly as asked", "You are FILE-WRITER. Write exactly what is asked.",
                   ("Read", "Write"), None)  # fmt: skip
    script = {"tasks": {
        "T1": [{"turns": [{"tool": {"name": "Agent", "input": {
                              "subagent_type": "file-writer", "description": "Write out.txt",
                              "prompt": "Task T1.sub: write out.txt"}}},
                          {"text": "The subagent wrote out.txt."}]}],
        "T1.sub": [{"turns": [{"write": {"path": "out.txt", "content": "from the subagent\n"}},
                              {"text": "Wrote out.txt."}]}],
    }}  # fmt: skip
    with ModelServer(script) as srv:
        env = {**base_env(tmp_path), **srv.claude_env()}
        agent = ClaudeAgent(executable=str(claude), env=env)
        result = agent.run(AgentRequest(TASK, workdir, subagent=sub, session_dir=tmp_path / "session", timeout_s=120))
    assert (result.status, result.failure_class) == ("succeeded", None), result
    assert (workdir / "out.txt").read_text() == "from the subagent\n"
    main = srv.requests_of("T1")[0]
    assert any("Use the file-writer subagent for this task." in t for t in main.texts)
    assert any("file-writer" in t and "Writes files exactly as asked" in t for t in main.texts)  # listed to the model
    (sub_first, *_) = srv.requests_of("T1.sub")
    system = json.dumps(sub_first.body.get("system"))
    assert "You are FILE-WRITER." in system  # the subagent's own prompt is its system prompt
    assert set(sub_first.tool_names) <= {"Read", "Write"}, sub_first.tool_names  # and its tools are its own


# -- Codex --------------------------------------------------------------------------------------------------------


def codex_agent(codex: Path, srv: ModelServer, tmp_path: Path, **provider: object) -> dict[str, Any]:
    env = {**base_env(tmp_path), **srv.codex_env(tmp_path / "codex-home", **provider)}
    return {"kind": "codex", "executable": str(codex), "env": env}


def test_a_session_with_the_real_codex(codex: Path, tmp_path: Path) -> None:
    bar = tmp_path / "barrier"
    bar.mkdir()
    with ModelServer(portable_script(bar)) as srv:
        plan = session_plan(tmp_path, codex_agent(codex, srv, tmp_path), GRAPH)
        out = plan.run()
        assert_completed(plan, out)
    # apply_patch (its own file tool) wrote a.txt and b.txt, its shell (exec_command) c.txt
    assert (plan.file("a.txt"), plan.file("b.txt"), plan.file("c.txt")) == ("A\n", "B\n", "A\nB\n")
    got = results(plan)
    assert {k: r.status for k, r in got.items()} == dict.fromkeys([("a", 1), ("b", 1), ("b", 2), ("c", 1)], "succeeded")
    assert failures(plan) == [("b", "test_failure: acceptance failed: $ grep -qx B b.txt")]
    assert plan.attempts() == {"a": ("succeeded", 1), "b": ("succeeded", 2), "c": ("succeeded", 1)}
    # what codex's turn.completed said: one turn each, the tokens the server reported; codex reports no cost
    assert {r.turns for r in got.values()} == {1}
    assert (got["a", 1].input_tokens, got["a", 1].output_tokens) == (1400, 120)
    assert all(r.cost_usd is None for r in got.values())
    assert "- Agent calls: 4; cost: $0.0000" in plan.report()
    for r in got.values():
        assert r.agent_session is not None and UUID.match(r.agent_session), r
    events = [json.loads(x) for x in (plan.session_dir / "agents" / "a.1.codex.out").read_text().splitlines() if x]
    changes = [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "file_change"]
    assert [c["kind"] for ch in changes for c in ch["changes"]] == ["add"]
    first_b2 = srv.requests_of("b", 2)[0]
    assert any("This is attempt 2; the previous attempt failed." in t for t in first_b2.texts)
    assert {"exec_command", "apply_patch"} <= set(first_b2.tool_names)
    assert first_b2.headers["authorization"] == "<redacted>"
    assert [r.turn for r in srv.requests_of("c")] == [0, 1, 2]


def run_codex(codex: Path, srv: ModelServer, tmp_path: Path, workdir: Path, *, timeout_s: float = 120,
              **provider: object) -> AgentResult:  # fmt: skip
    env = {**base_env(tmp_path), **srv.codex_env(tmp_path / "codex-home", **provider)}
    agent = CodexAgent(executable=str(codex), env=env)
    return agent.run(AgentRequest(TASK, workdir, session_dir=tmp_path / "session", timeout_s=timeout_s))


FEW_RETRIES = {"request_max_retries": 1, "stream_max_retries": 1}
"""Codex's own retries cut down (4 and 5 by default: 30 requests and 25 s on a 529 that does not go away)."""


def test_codex_retries_a_429_a_529_and_a_cut_itself_and_succeeds(codex: Path, tmp_path: Path, workdir: Path) -> None:
    with ModelServer(writes({"status": 429, "retry_after": 1}, {"status": 529}, {"cut": True})) as srv:
        result = run_codex(codex, srv, tmp_path, workdir)
    assert (result.status, result.failure_class) == ("succeeded", None), result
    assert answers(srv) == ["failure 429", "failure 529", "cut", "turn", "turn"]
    assert (workdir / "out.txt").read_text() == "x\n"


@pytest.mark.parametrize(
    ("fail", "cls", "words"),
    [
        ({"status": 429, "retry_after": 0}, "transient", "exceeded retry limit, last status: 429"),
        ({"status": 529}, "transient", "unexpected status 529"),
        ({"status": 401}, "critical", "unexpected status 401 Unauthorized"),
        ({"cut": True}, "transient", "stream disconnected before completion"),
    ],
)
def test_codex_out_of_retries_is_classified_by_its_last_error(
    codex: Path, tmp_path: Path, workdir: Path, fail: dict[str, Any], cls: str, words: str
) -> None:
    with ModelServer(writes({**fail, "times": None})) as srv:
        result = run_codex(codex, srv, tmp_path, workdir, **FEW_RETRIES)
    assert (result.status, result.failure_class, result.exit_code) == ("failed", cls, 1), result
    assert result.summary.startswith(f"codex: {words}"), result.summary
    assert len(answers(srv)) >= 2  # codex retried before it gave up, a 401 too
    assert not (workdir / "out.txt").exists()


# -- Aider --------------------------------------------------------------------------------------------------------

AIDER_MODEL = "openai/gpt-4o"
"""A model litellm knows the price of, so aider prints a cost (any ``openai/`` name reaches the server)."""


def aider_script() -> dict[str, Any]:
    """Aider has no tool calls: each answer is text with edit blocks (SEARCH/REPLACE for this model), applied by
    aider itself.  It cannot run a command here, so there is no barrier."""
    return {"tasks": {
        "a": [{"turns": [{"text": "Creating a.txt.", "write": {"path": "a.txt", "content": "A\n"},
                          "usage": {"input_tokens": 1200, "output_tokens": 80}}]}],
        "b": [{"turns": [{"text": "Creating b.txt.", "write": {"path": "b.txt", "content": "wrong\n"}}]},
              {"turns": [{"text": "Fixing b.txt.", "write": {"path": "b.txt", "content": "B\n"}}]}],
        "c": [{"turns": [{"text": "Joining.", "write": {"path": "c.txt", "content": "A\nB\n"}}]}],
    }}  # fmt: skip


def aider_agent(aider: Path, srv: ModelServer, tmp_path: Path) -> dict[str, Any]:
    return {"kind": "aider", "executable": str(aider), "model": AIDER_MODEL,
            "env": {**base_env(tmp_path), **srv.aider_env()}}  # fmt: skip


def test_a_session_with_the_real_aider(aider: Path, tmp_path: Path) -> None:
    """In a repository where aider has worked before (``.aider*`` in ``.git/info/exclude``), with a git identity
    in the user's ~/.gitconfig (else aider writes a placeholder one into ``.git/config``)."""
    home = Path(base_env(tmp_path)["HOME"])
    (home / ".gitconfig").write_text("[user]\n\tname = Dev\n\temail = dev@example.com\n")
    with ModelServer(aider_script()) as srv:
        plan = session_plan(tmp_path, aider_agent(aider, srv, tmp_path), GRAPH)
        with (plan.repo / ".git" / "info" / "exclude").open("a") as f:
            f.write("# aider's caches (.aider.tags.cache.v4), listed by maestro\n.aider*\n")
        out = plan.run()
        assert_completed(plan, out)
    assert (plan.file("a.txt"), plan.file("b.txt"), plan.file("c.txt")) == ("A\n", "B\n", "A\nB\n")
    got = results(plan)
    assert {k: r.status for k, r in got.items()} == dict.fromkeys([("a", 1), ("b", 1), ("b", 2), ("c", 1)], "succeeded")
    assert failures(plan) == [("b", "test_failure: acceptance failed: $ grep -qx B b.txt")]
    assert plan.attempts() == {"a": ("succeeded", 1), "b": ("succeeded", 2), "c": ("succeeded", 1)}
    # what aider printed after each answer: "Tokens: 1.2k sent, 80 received. Cost: $0.0038 message, ..."
    assert (got["a", 1].turns, got["a", 1].input_tokens, got["a", 1].output_tokens) == (1, 1200, 80)
    assert got["a", 1].cost_usd == pytest.approx(1200 * 2.5e-6 + 80 * 10e-6, abs=1e-4)
    total = sum(r.cost_usd or 0 for r in got.values())
    assert total > 0
    assert f"- Agent calls: 4; cost: ${total:.4f}" in plan.report()
    prompt = next(t for t in srv.requests_of("b", 2)[0].texts if t.startswith("Task b: B"))
    assert "This is attempt 2; the previous attempt failed." in prompt
    assert all(r.api == "chat" for r in srv.requests if r.task)
    assert not (plan.repo / ".gitignore").read_text().count(".aider")  # --no-gitignore


def test_a_first_aider_session_in_a_fresh_repository_completes(aider: Path, tmp_path: Path) -> None:
    with ModelServer(aider_script()) as srv:
        plan = session_plan(tmp_path, aider_agent(aider, srv, tmp_path), GRAPH[:1])
        out = plan.run()
    assert_completed(plan, out)


def run_aider(aider: Path, srv: ModelServer, tmp_path: Path, workdir: Path, *, timeout_s: float = 120) -> AgentResult:
    agent = AiderAgent(executable=str(aider), model=AIDER_MODEL, env={**base_env(tmp_path), **srv.aider_env()})
    return agent.run(AgentRequest(TASK, workdir, session_dir=tmp_path / "session", timeout_s=timeout_s))


def test_aider_on_a_401_is_critical(aider: Path, tmp_path: Path, workdir: Path) -> None:
    with ModelServer(writes({"status": 401, "times": None})) as srv:
        result = run_aider(aider, srv, tmp_path, workdir)
    assert (result.status, result.failure_class, result.exit_code) == ("failed", "critical", 0), result
    assert result.summary.startswith("aider cannot work: litellm.AuthenticationError"), result.summary
    assert answers(srv) == ["failure 401"]  # no retry


def test_aider_retries_a_429_a_529_and_a_cut_itself_and_the_attempt_succeeds(
    aider: Path, tmp_path: Path, workdir: Path
) -> None:
    """The error aider printed before its own retry worked is not the outcome (it was, before issue 16)."""
    with ModelServer(writes({"status": 429, "retry_after": 0}, {"status": 529}, {"cut": True})) as srv:
        result = run_aider(aider, srv, tmp_path, workdir)
    assert (result.status, result.failure_class) == ("succeeded", None), result
    assert answers(srv) == ["failure 429", "failure 529", "cut", "turn"]
    out = (tmp_path / "session" / str(result.transcript)).read_text()
    assert "litellm.InternalServerError" in out and "Retrying in 0.2 seconds..." in out
    assert (workdir / "out.txt").read_text() == "x\n"
    assert (result.turns, result.input_tokens, result.output_tokens) == (1, 100, 20)


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        ({"status": 429, "retry_after": 0}, "litellm.RateLimitError"),
        ({"status": 529}, "litellm.APIError: APIError: OpenAIException - Overloaded"),
        ({"cut": True}, "litellm.InternalServerError"),
    ],
)
def test_aider_keeps_retrying_a_failure_that_does_not_go_away_and_is_stopped_as_transient(
    aider: Path, tmp_path: Path, workdir: Path, fail: dict[str, Any], error: str
) -> None:
    """aider 0.86.2 doubles its wait from 0.125 s until it passes 60 s (about 80 s in all), then prints the last
    error and exits 0 (classified transient by that line: the fake's ``rate_limit`` does the same, quickly)."""
    with ModelServer(writes({**fail, "times": None})) as srv:
        result = run_aider(aider, srv, tmp_path, workdir, timeout_s=12)
    assert (result.status, result.failure_class) == ("timeout", "transient"), result
    out = (tmp_path / "session" / str(result.transcript)).read_text()
    assert re.search(rf"^{re.escape(error)}.*\n(.*\n)*Retrying in 0\.2 seconds\.\.\.$", out, re.MULTILINE), out
    assert len(answers(srv)) >= 2


def test_a_session_whose_task_gets_a_claude_agents_subagent_shows_claude_using_it(claude: Path, tmp_path: Path) -> None:
    """The subagent is a file in the repository's .claude/agents/; the task names it; maestro chooses it (a
    ``subagent`` decision) and passes its definition with --agents; claude lists it to the model, and when the
    model delegates to it, runs it with the file's body as its system prompt and its own tools."""
    definition = ("---\nname: file-writer\ndescription: Writes files exactly as asked\ntools: Read, Write\n---\n"
                  "You are FILE-WRITER, from .claude/agents. Write exactly what is asked.\n")  # fmt: skip
    script = {"tasks": {
        "a": [{"turns": [{"tool": {"name": "Agent", "input": {"subagent_type": "file-writer",
                                                               "description": "Write a.txt",
                                                               "prompt": "Task a.sub: write a.txt"}}},
                         {"text": "The subagent wrote a.txt."}]}],
        "a.sub": [{"turns": [{"write": {"path": "a.txt", "content": "A\n"}}, {"text": "Wrote a.txt."}]}],
    }}  # fmt: skip
    graph = [{**task("a", acceptance=["grep -qx A a.txt"], files=["a.txt"]), "subagent": "file-writer"}]
    with ModelServer(script) as srv:
        plan = session_plan(tmp_path, claude_agent(claude, srv, tmp_path), graph,
                            files={".claude/agents/file-writer.md": definition})  # fmt: skip
        out = plan.run()
        assert_completed(plan, out)
    assert plan.file("a.txt") == "A\n"
    (decision,) = [e.data for e in plan.events() if e.kind == "decision" and e.data["kind"] == "subagent"]
    assert (decision["choice"], decision["task"]) == ("file-writer", "a")
    assert decision["rationale"].startswith("explicit")
    main = srv.requests_of("a")[0]
    assert any("Use the file-writer subagent for this task." in t for t in main.texts)
    assert any("file-writer" in t and "Writes files exactly as asked" in t for t in main.texts)
    (sub_first, *_) = srv.requests_of("a.sub")
    assert "You are FILE-WRITER, from .claude/agents." in json.dumps(sub_first.body.get("system"))
    assert set(sub_first.tool_names) <= {"Read", "Write"}, sub_first.tool_names


@pytest.mark.parametrize(
    ("status", "error", "cls", "start"),
    [
        (401, "authentication_failed", "critical", "claude is not logged in"),
        (403, "unknown", "critical", "claude is not logged in"),
        (402, "billing_error", "critical", "claude cannot work"),
        (529, "overloaded", "transient", "claude was still retrying overloaded (HTTP 529)"),
        (None, "unknown", "transient", "claude was still retrying an API error (retry 3 of 10)"),
    ],
)
def test_the_api_retry_claude_was_doing_when_stopped_decides_the_class(
    status: int | None, error: str, cls: str, start: str
) -> None:
    """The same judgement without the CLI: the stream the real claude printed before it was killed."""
    retry = {"type": "system", "subtype": "api_retry", "attempt": 3, "max_retries": 10, "retry_delay_ms": 2000,
             "error_status": status, "error": error, "session_id": "s-1"}  # fmt: skip
    init = {"type": "system", "subtype": "init", "session_id": "s-1"}
    stdout = f"{json.dumps(init)}\n{json.dumps(retry)}\n"
    summary = parse_stream(stdout)
    attempt = Attempt("claude", "T1", 1, None)
    result = ClaudeAgent()._judge(attempt, ProcessOutcome(-15, stdout, "", 4.0, timed_out=True), summary)
    assert (result.status, result.failure_class, result.agent_session) == ("timeout", cls, "s-1"), result
    assert result.summary.startswith(start), result.summary
