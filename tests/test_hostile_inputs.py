"""Hostile input: every bad input is one line naming its file (and line), exit 2, nothing written (issue 15, item 7).

Two halves.  Through the real command line (``python -m maestro`` in a subprocess, a real git repository in
``tmp_path``): one test per case the adversarial pass found — integers past Python's 4,300 digits, bad dates,
``!!float abc``, an ``!!omap`` with a duplicate key in each loader, text that is not UTF-8, a full disk when the
session lock is taken, a stale ``.git/HEAD.lock``, ``.git`` as a ``gitdir:`` file, files past the input limit
(``/dev/zero`` too), a billion laughs, a script's errors naming the script.  Each asserts the exit code, one line
on stderr naming the file, and that no session folder was written.

And properties: every loader (PRD, front matter, tasks.yaml, config.yaml, a script, beads JSON, a markdown
list, a planner's answer) fed random and hostile text — YAML composed of the tags, anchors, aliases, nesting,
numbers and dates that broke them — raises nothing but its documented one-line error (item 6: a planner's bad
``tasks_yaml`` is a :class:`PlanError`, which the recovery ladder handles as an agent failure).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.agents.base import plan_outcome, validate_plan
from maestro.agents.script import parse_script
from maestro.cli.main import main
from maestro.config.reader import parse_config
from maestro.core import yamlio
from maestro.core.errors import (
    CheckpointError,
    ConfigError,
    MaestroError,
    PlanError,
    ScriptError,
    StoreError,
    YamlError,
)
from maestro.core.records import AgentResult, Event
from maestro.core.text import MAX_INPUT_BYTES, InputTooLarge, read_input
from maestro.git.checkpoints import Checkpointer
from maestro.plan.importers import from_beads, from_markdown
from maestro.plan.prd import parse_prd, update_prd_text
from maestro.plan.tasks import parse_tasks
from maestro.store import filestore
from maestro.store.filestore import Lock, Store
from tests.support.runs import REQUEST, Plan, cli, make_plan, task, write

BIG = "9" * 4301  # one digit past Python's limit on int(str)
HOSTILE_VALUES = {
    "a huge integer": (BIG, "a value cannot be read: an integer of more than 4,300 digits"),
    "a bad date": ("2024-13-45", "a value cannot be read: month must be in 1..12"),
    "a bad float": ("!!float abc", "a value cannot be read: could not convert string to float: 'abc'"),
    "an omap with a duplicate key": ("!!omap [{a: 1}, {a: 2}]", "found duplicate key 'a' in an !!omap"),
}


# -- a plan and what it left ------------------------------------------------------------------------------------


def new_plan(root: Path) -> Any:
    """A committed repository and, beside it, a valid PRD, tasks.yaml, config.yaml and script."""
    return make_plan(root, tasks=[task("a", acceptance=["test -f a.txt"])],
                     script={"a": [{"actions": [write("a.txt", "x\n")]}]})  # fmt: skip


def session_dirs(repo: Path) -> list[str]:
    sessions = repo / ".flow" / "maestro" / "sessions"
    return sorted(os.listdir(sessions)) if sessions.is_dir() else []


def refused(out: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit 2 and one line on stderr holding each of ``parts``; the line."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("maestro: error: "), lines
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def run_refused(plan: Any, *extra: str, parts: tuple[str, ...], cwd: Path | None = None) -> str:
    args = plan.run_args(*extra)
    out = cli(*args, cwd=cwd or plan.repo)
    line = refused(out, *parts)
    assert session_dirs(plan.repo) == []
    return line


PRD_HEAD = "---\nprd:\n  version: v1\n  feature_name: sample\n  status: approved\n"
PRD_TAIL = "priorities:\n  requirements:\n    - id: FR-1\n      text: The feature\n      priority: P0\n---\n\n# PRD\n"


# -- through the command line: a bad value in each loader ----------------------------------------------------------


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_a_bad_value_in_the_prd_front_matter(tmp_path: Path, case: str) -> None:
    plan = new_plan(tmp_path)
    value, problem = HOSTILE_VALUES[case]
    prd = plan.dir / "prd.md"
    prd.write_text(PRD_HEAD + f"  extra: {value}\n" + PRD_TAIL, encoding="utf-8")
    run_refused(plan, parts=(f"{prd}:6: front matter: ", problem))
    refused(cli("prd", str(prd), cwd=plan.repo), f"{prd}:6: ", problem)


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_a_bad_value_in_tasks_yaml(tmp_path: Path, case: str) -> None:
    plan = new_plan(tmp_path)
    value, problem = HOSTILE_VALUES[case]
    tasks = plan.dir / "tasks.yaml"
    tasks.write_text(f"version: 1\ntasks:\n  - id: a\n    title: {value}\n    requirements: [FR-1]\n",
                     encoding="utf-8")  # fmt: skip
    run_refused(plan, parts=(f"{tasks}:4: ", problem))
    refused(cli("tasks", str(tasks), cwd=plan.repo), f"{tasks}:4: ", problem)


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_a_bad_value_in_config_yaml(tmp_path: Path, case: str) -> None:
    plan = new_plan(tmp_path)
    value, problem = HOSTILE_VALUES[case]
    config = plan.dir / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("max_workers: 2", f"max_workers: {value}"),
                      encoding="utf-8")  # fmt: skip
    run_refused(plan, parts=(f"{config}:1: ", problem))


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_a_bad_value_in_the_script_names_the_script(tmp_path: Path, case: str) -> None:
    plan = new_plan(tmp_path)
    value, problem = HOSTILE_VALUES[case]
    script = plan.dir / "script.yaml"
    script.write_text(f"version: 1\ntasks:\n  a:\n    - summary: {value}\n", encoding="utf-8")
    line = run_refused(plan, parts=(f"{script}:4: ", problem))
    assert "config.yaml" not in line


def test_a_bad_script_named_in_config_yaml_names_the_script(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    script = plan.dir / "s.yaml"
    script.write_text("version: 1\ntasks:\n  a:\n    - summary: 2024-13-45\n", encoding="utf-8")
    config = plan.dir / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8") + f"agent: {{kind: scripted, script: {script.name}}}\n",
                      encoding="utf-8")  # fmt: skip
    out = cli("run", REQUEST, "--tasks", str(plan.dir / "tasks.yaml"), "--config", str(config), cwd=plan.repo)
    line = refused(out, f"{script}:4: a value cannot be read: month must be in 1..12")
    assert "config.yaml" not in line
    assert session_dirs(plan.repo) == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "b-1", "title": "x", "priority": ' + BIG + "}", "JSON: a number of more than 4,300 digits"),
        ("[" * 100_000, "JSON syntax: nested too deeply to read"),
    ],
)
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_bad_beads_export(tmp_path: Path, line: str, problem: str, suffix: str) -> None:
    plan = new_plan(tmp_path)
    beads = plan.dir / f"issues{suffix}"
    beads.write_text(line + "\n", encoding="utf-8")
    run_refused(plan, "--tasks", str(beads), parts=(f"{beads}:1: ", problem))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"- [ ] T1: caf\xe9\n", ":1: not UTF-8 text (byte 13)"),
        (b"- [ ] T1 [P:Group A] x\n", ":1: group: a group name matches"),
    ],
)
def test_a_bad_markdown_list(tmp_path: Path, data: bytes, problem: str) -> None:
    plan = new_plan(tmp_path)
    md = plan.dir / "tasks.md"
    md.write_bytes(data)
    run_refused(plan, "--tasks", str(md), parts=(f"{md}{problem}",))


def test_a_billion_laughs_in_the_prd_is_refused_at_once(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    prd = plan.dir / "prd.md"
    prd.write_text("---\n" + "\n".join(levels) + "\n" + PRD_TAIL[PRD_TAIL.index("priorities") :], encoding="utf-8")
    run_refused(plan, parts=(f"{prd}:8: front matter: aliases expand the document to more than 1,000,000 nodes",))


# -- through the command line: sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["--prd", "--tasks", "--config", "--script"])
def test_dev_zero_ends_at_once(tmp_path: Path, which: str) -> None:
    plan = new_plan(tmp_path)
    args = plan.run_args()
    args[args.index(which) + 1] = "/dev/zero"
    out = cli(*args, cwd=plan.repo)  # read at most the limit and one byte: a second, not forever
    refused(out, f"/dev/zero: too large: more than the {MAX_INPUT_BYTES:,} bytes an input file may have")
    assert session_dirs(plan.repo) == []


def test_a_tasks_file_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    tasks = plan.dir / "tasks.yaml"
    with tasks.open("r+b") as f:  # sparse: the size is what stat says, nothing is read
        f.truncate(MAX_INPUT_BYTES + 1)
    run_refused(plan, parts=(f"{tasks}: too large: {MAX_INPUT_BYTES + 1:,} bytes, more than the",))


def test_read_input_reads_at_most_one_byte_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_input(path, limit=10) == b"x" * 10
    with pytest.raises(InputTooLarge) as exc:
        read_input(path, limit=9)
    assert exc.value.errno == errno.EFBIG and exc.value.size == 10
    with pytest.raises(InputTooLarge) as exc:
        read_input("/dev/zero", limit=1000)
    assert exc.value.size is None and exc.value.problem == "too large: more than the 1,000 bytes an input file may have"
    assert yamlio.MAX_BYTES == MAX_INPUT_BYTES == 10 * 1024 * 1024


# -- through the command line: arguments, the repository, the disk ------------------------------------------------


def test_a_request_that_is_not_utf8(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    args: list[Any] = plan.run_args()
    args[args.index(REQUEST)] = b"add \xff thing"
    out = subprocess.run([sys.executable, "-m", "maestro", *args], cwd=plan.repo, capture_output=True,
                         timeout=120)  # fmt: skip
    line = out.stderr.decode("utf-8").strip()
    assert out.returncode == 2 and line == "maestro: error: the request is not UTF-8 text (byte 0xff at character 5)"
    assert session_dirs(plan.repo) == []


def paused_plan(root: Path) -> Any:
    """A plan whose session paused (a task that fails with no retry left); returns the plan."""
    make_plan(root, tasks=[task("a", acceptance=["false"])], script={"a": [{"actions": [write("a.txt", "x\n")]}]},
              config="recovery: {max_retries: 0, max_alternatives: 0}\n"
                     "gates: {tests: {command: 'true', required: true}}\n")  # fmt: skip
    plan = Plan(root, script=True)
    out = plan.run()
    assert out.returncode == 3, out.stderr
    return plan


def test_a_note_that_is_not_utf8_writes_nothing(tmp_path: Path) -> None:
    plan = paused_plan(tmp_path)
    before = plan.events()
    out = subprocess.run([sys.executable, "-m", "maestro", "answer", plan.sid, "guidance", "--note", b"do \xff it"],
                         cwd=plan.repo, capture_output=True, timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.decode().strip() == "maestro: error: --note is not UTF-8 text (byte 0xff at character 4)"
    assert plan.events() == before


def test_a_note_the_log_cannot_hold_is_a_store_error_in_the_library(tmp_path: Path) -> None:
    event = Event(1, 2, "2026-01-01T00:00:00Z", "note", {"text": "do \udcff it"})
    with pytest.raises(StoreError, match=r"^cannot record a note event: its text holds '\\udcff', which is not UTF-8$"):
        filestore.encode_event(event)


def test_a_stale_head_lock_does_not_stop_a_run(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    (plan.repo / ".git" / "HEAD.lock").write_text("", encoding="utf-8")  # a git that died; maestro never writes HEAD
    out = plan.run()
    assert out.returncode == 0, out.stderr
    assert (plan.repo / ".git" / "HEAD.lock").exists()


def test_a_linked_worktree_is_refused_with_one_line(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    linked = tmp_path / "linked"
    subprocess.run(["git", "worktree", "add", "-q", str(linked)], cwd=plan.repo, check=True, capture_output=True)
    out = cli(*plan.run_args(), cwd=linked)
    refused(out, f"{linked}: a linked worktree (git worktree add); maestro runs in the main checkout ({plan.repo})")
    assert session_dirs(linked) == [] and session_dirs(plan.repo) == []


def test_a_separate_git_dir_is_a_repository(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    (plan.repo / ".git").rename(tmp_path / "elsewhere.git")
    (plan.repo / ".git").write_text(f"gitdir: {tmp_path / 'elsewhere.git'}\n", encoding="utf-8")
    out = plan.run()
    assert out.returncode == 0, out.stderr
    assert len(session_dirs(plan.repo)) == 1


@pytest.mark.parametrize(
    ("dotgit", "problem"),
    [
        ("gitdir: ../nowhere\n", "points to {root}/nowhere, which is not a git directory"),
        ("not a gitdir line\n", "neither a git directory nor a 'gitdir: <path>' file"),
        (None, "not a git directory (it has no HEAD)"),
    ],
)
def test_a_dot_git_that_is_no_repository_is_refused_and_left_alone(tmp_path: Path, dotgit: str | None,
                                                                    problem: str) -> None:  # fmt: skip
    plan = new_plan(tmp_path)
    shutil.rmtree(plan.repo / ".git")
    if dotgit is None:
        (plan.repo / ".git").mkdir()
    else:
        (plan.repo / ".git").write_text(dotgit, encoding="utf-8")
    run_refused(plan, parts=(f"{plan.repo / '.git'}: {problem.format(root=tmp_path)}",))
    assert not (tmp_path / "nowhere").exists()  # dulwich made the folder it pointed to, and wrote a session there
    if dotgit is None:
        assert os.listdir(plan.repo / ".git") == []


# -- in process: a full disk when the lock is taken ---------------------------------------------------------------


def enospc_on_write(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    real = os.write

    def write(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_enospc_taking_the_lock_is_a_store_error_and_frees_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lock"
    enospc_on_write(monkeypatch, "/lock")
    with pytest.raises(StoreError, match=r"lock: cannot write the lock file: No space left on device$"):
        Lock(path, "s1")
    monkeypatch.undo()
    Lock(path, "s1").release()  # not held: the refused one closed its descriptor


def test_enospc_at_the_start_of_a_run_writes_no_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = new_plan(tmp_path)
    enospc_on_write(monkeypatch, "/lock")
    monkeypatch.chdir(plan.repo)
    assert main(plan.run_args()) == 2
    assert session_dirs(plan.repo) == []


def test_enospc_at_answer_and_resume_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    plan = paused_plan(tmp_path)
    before = plan.events()
    enospc_on_write(monkeypatch, "/lock")
    monkeypatch.chdir(plan.repo)
    capsys.readouterr()
    for argv in (["answer", plan.sid, "retry"], ["resume", plan.sid]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"maestro: error: {plan.session_dir / 'lock'}: cannot write the lock file: "
                       "No space left on device"]  # fmt: skip
    assert plan.events() == before


# -- properties: every loader, random and hostile text ------------------------------------------------------------

SCALARS = [
    BIG, "-" + BIG, "0b" + "1" * 15_000, "0x" + "f" * 4000, "0o" + "7" * 5000, "1:2:3:4:5", "1_000",
    "2024-13-45", "2024-02-30", "2024-01-01T25:61:61Z", "2001-12-14t21:59:43.10-05:00",
    "!!timestamp nope", "!!timestamp 2024-13-45", "!!float abc", "!!float", "!!int", "!!int x", "!!int 0x",
    "!!bool maybe", "!!null x", "!!str", "!!binary zz", "!!binary YWJj", "!!merge x", "!!value x", "!!yaml x",
    "!!python/object:os.system x", "!!python/name:os.system ''", "!!python/tuple [1]", "!foo bar", "!<tag:x> y",
    "1e400", "-1e400", ".nan", ".inf", "~", "null", "true", "no", "on", "''", '""', "'\\x00'", '"\\ud800"',
    '"\\x00\\u2028\\x85"', "*nowhere", "a: b", "- x", "? x", "|", ">", "&", "*", "!", "%TAG", "@x", "`x`",
    "FR-1", "P0", "high", "a", "T1", "true", "1", "0", "-1", "1.5",
]  # fmt: skip
COLLECTION_TAGS = ["", "", "", "!!omap ", "!!set ", "!!pairs ", "!!seq ", "!!map ", "!!str ", "!!binary ", "!x "]
KEYS = [
    "version", "tasks", "id", "title", "description", "requirements", "depends_on", "acceptance", "priority", "risk",
    "files", "group", "category", "subagent", "skills", "prd", "priorities", "text", "status", "feature_name",
    "metadata", "git", "agent", "kind", "script", "command", "parallel", "max_workers", "recovery", "limits", "gates",
    "tests", "required", "actions", "write", "path", "content", "summary", "fail", "cost_usd", "planner", "<<",
    "? [a]", "? {a: 1}", "!!binary YWJj", "1", "null", "2024-01-01", "!!omap a",
]  # fmt: skip


def _anchored(value: str, n: int) -> str:
    return f"&a{n} {value}" if not value.startswith(("&", "*")) else value


@st.composite
def hostile_yaml(draw: st.DrawFn) -> str:
    """A YAML value in flow style: hostile scalars, tags on collections, anchors and aliases, nesting."""
    anchors: list[str] = []

    def scalar() -> str:
        choice = draw(st.integers(0, 5))
        if choice == 0:
            return json.dumps(draw(st.text(max_size=20)))
        if choice == 1 and anchors:
            return "*" + draw(st.sampled_from(anchors))
        return draw(st.sampled_from(SCALARS))

    def value(depth: int) -> str:
        kind = draw(st.integers(0, 4 if depth < 4 else 1))
        if kind <= 1:
            text = scalar()
        elif kind == 2:
            items = [value(depth + 1) for _ in range(draw(st.integers(0, 3)))]
            text = draw(st.sampled_from(COLLECTION_TAGS)) + "[" + ", ".join(items) + "]"
        else:
            pairs = [f"{draw(st.sampled_from(KEYS))}: {value(depth + 1)}" for _ in range(draw(st.integers(0, 3)))]
            text = draw(st.sampled_from(COLLECTION_TAGS)) + "{" + ", ".join(pairs) + "}"
        if draw(st.integers(0, 7)) == 0:
            name = f"a{len(anchors)}"
            text = f"&{name} {text}" if not text.startswith(("&", "*")) else text
            if text.startswith(f"&{name}"):
                anchors.append(name)
        return text

    return value(0)


def _block(mapping: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in mapping.items())


@st.composite
def hostile_tasks_yaml(draw: st.DrawFn) -> str:
    """A tasks.yaml whose fields (or whole parts) are hostile values."""
    fields = ["id", "title", "description", "requirements", "depends_on", "acceptance", "priority", "risk", "files",
              "group", "category", "subagent", "skills"]  # fmt: skip
    tasks = []
    for i in range(draw(st.integers(1, 3))):
        task_fields = {"id": f"t{i}", "title": "T", "requirements": "[FR-1]"}
        for name in draw(st.lists(st.sampled_from(fields), max_size=3)):
            task_fields[name] = draw(hostile_yaml())
        tasks.append("{" + ", ".join(f"{k}: {v}" for k, v in task_fields.items()) + "}")
    version = draw(st.sampled_from(["1", "1", "2", "!!float 1", "'1'", BIG, "2024-13-45"]))
    tasks_value = draw(st.sampled_from(["[" + ", ".join(tasks) + "]", None])) or draw(hostile_yaml())
    return _block({"version": version, "tasks": tasks_value})


@st.composite
def hostile_prd(draw: st.DrawFn) -> str:
    front = {
        "prd": draw(st.sampled_from(["{version: v1, feature_name: x, status: draft}", None])) or draw(hostile_yaml()),
        "priorities": "{requirements: ["
        + ", ".join(
            "{" + f"id: {draw(st.sampled_from(['FR-1', 'FR-2']) | hostile_yaml())}, "
            f"text: {draw(st.sampled_from(['x']) | hostile_yaml())}, "
            f"priority: {draw(st.sampled_from(['P0']) | hostile_yaml())}" + "}"
            for _ in range(draw(st.integers(0, 2)))
        )
        + "]}",
    }
    if draw(st.booleans()):
        front[draw(st.sampled_from(KEYS))] = draw(hostile_yaml())
    body = draw(st.sampled_from([
        "", "# PRD\n",
        "## Functional Requirements\n\n| ID | Requirement | Priority |\n|---|---|---|\n| FR-1 | x | P0 |\n",
        "## Functional Requirements\n\n| ID | Requirement |\n|---|---|\n| | |\n",
    ]))  # fmt: skip
    return "---\n" + _block(front) + "---\n" + body


@st.composite
def hostile_config(draw: st.DrawFn) -> str:
    sections = {
        "agent": "{kind: scripted, script: s.yaml}", "parallel": "{max_workers: 2}",
        "recovery": "{max_retries: 1, backoff: {initial_s: 1, factor: 2, max_s: 3}}",
        "limits": "{max_iterations: 1, max_minutes: 10, budget_usd: null}",
        "gates": "{tests: {command: 'true', required: true}}", "subagents": "{}",
    }  # fmt: skip
    out = {}
    for name, text in sections.items():
        if draw(st.booleans()):
            out[name] = draw(hostile_yaml()) if draw(st.booleans()) else text
    return _block(out)


@st.composite
def hostile_script(draw: st.DrawFn) -> str:
    attempt = {"summary": "ok", "actions": "[{write: {path: a.txt, content: x}}]"}
    for name in draw(st.lists(st.sampled_from(["summary", "actions", "fail", "cost_usd", "delay_s", "tokens"]),
                              max_size=3)):  # fmt: skip
        attempt[name] = draw(hostile_yaml())
    item = "{" + ", ".join(f"{k}: {v}" for k, v in attempt.items()) + "}"
    tasks = draw(st.sampled_from(["{a: [" + item + "]}", None])) or draw(hostile_yaml())
    planner = draw(st.sampled_from(["{prd: p.md, tasks: t.yaml}", None])) or draw(hostile_yaml())
    return _block({"version": draw(st.sampled_from(["1", "1", BIG, "!!int x"])), "planner": planner, "tasks": tasks})


BLOCK_TEMPLATES = [
    "version: 1\ntasks:\n  - id: a\n    title: {v}\n    requirements: [FR-1]\n    acceptance:\n      - {v}\n",
    "base: &x\n  title: {v}\nversion: 1\ntasks:\n  - <<: *x\n    id: a\n  - <<: [*x, *x]\n    id: {v}\n",
    "? {v}\n: 1\n? [a, {v}]\n: 2\n",
    "%YAML 1.1\n---\nversion: 1\ntasks:\n  - id: 0777\n    title: 1:2:3:4:5:6:7:8:9\n    priority: {v}\n",
    "%YAML 1.1\n---\nx: " + ":".join(["59"] * 3000) + "\n",
    "parallel:\n  max_workers: |\n    {v}\nagent: >-\n  {v}\n",
    "--- !!omap\n- version: 1\n- tasks: {v}\n- version: 1\n",
    "--- !!set\n? version\n? {v}\n",
    "--- !!pairs\n- version: 1\n- tasks: []\n",
    "prd: &p {{version: v1, status: {v}}}\npriorities: {{requirements: [*p, *p]}}\n",
    "tasks: !!binary |\n  R0lGODlhDAAMAIQAAP//9/X17unp5WZmZgAAAOfn515eXvPz7Y6OjuDg4J+fn5\n",
    "version: 1\ntasks:\n" + "  - {{id: a, title: t, requirements: [FR-1], depends_on: [{v}]}}\n" * 3,
    "%TAG ! tag:yaml.org,2002:\n---\nversion: !int 1\ntasks: !seq [{v}]\n",
    "version: 1\ntasks:\n" + "  " * 40 + "- {v}\n",
]


@st.composite
def hostile_block_yaml(draw: st.DrawFn) -> str:
    """A block-style document (merge keys, complex keys, YAML 1.1 numbers, directives, block scalars, top-level
    tags) with hostile values in its holes."""
    template = draw(st.sampled_from(BLOCK_TEMPLATES))
    return (
        template.format(v=draw(hostile_yaml())) if "{v}" in template else template.replace("{{", "{").replace("}}", "}")
    )


def random_text() -> st.SearchStrategy[str]:
    """Any text: characters, or random bytes decoded as a reader would meet them."""
    return (
        st.text(max_size=200)
        | st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace"))
        | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    )


def one_line_error(call: Callable[[], Any], *allowed: type[MaestroError]) -> None:
    """``call`` returns, or raises one of ``allowed`` with a one-line message; nothing else escapes."""
    message = None
    try:
        call()
    except allowed as exc:
        message = str(exc)
    assert message is None or ("\n" not in message and message.strip()), repr(message)


FUZZ = settings(max_examples=int(os.environ.get("MAESTRO_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
"""150 examples a loader: the properties take about 10 s; MAESTRO_FUZZ_EXAMPLES=5000 hunts longer."""


@FUZZ
@given(st.one_of(hostile_yaml(), hostile_block_yaml(), random_text()))
def test_yamlio_raises_only_yaml_errors(text: str) -> None:
    for rt in (False, True):
        one_line_error(lambda rt=rt: yamlio.load(text, rt=rt, path="f.yaml"), YamlError)  # type: ignore[misc]


@FUZZ
@given(st.one_of(hostile_tasks_yaml(), hostile_block_yaml(), hostile_yaml(), random_text()))
def test_tasks_yaml_raises_only_plan_errors(text: str) -> None:
    one_line_error(lambda: parse_tasks(text, "tasks.yaml", requirement_ids={"FR-1"}), PlanError)
    one_line_error(lambda: parse_tasks(text, "tasks.yaml"), PlanError)


@FUZZ
@given(
    st.one_of(
        hostile_prd(),
        random_text(),
        hostile_yaml().map(lambda v: f"---\nprd: {v}\n---\n"),
        hostile_block_yaml().map(lambda d: f"---\n{d}---\n# body\n"),
    )
)
def test_prds_and_front_matter_raise_only_plan_errors(text: str) -> None:
    one_line_error(lambda: parse_prd(text, "prd.md"), PlanError)
    one_line_error(lambda: update_prd_text(text, {"prd.status": "approved"}, "prd.md"), PlanError)


@FUZZ
@given(st.one_of(hostile_config(), hostile_block_yaml(), hostile_yaml(), random_text()))
def test_config_yaml_raises_only_config_errors(text: str) -> None:
    one_line_error(lambda: parse_config(text, "config.yaml"), ConfigError)


@FUZZ
@given(st.one_of(hostile_script(), hostile_block_yaml(), hostile_yaml(), random_text()))
def test_scripts_raise_only_script_errors(text: str) -> None:
    one_line_error(lambda: parse_script(text, "/plan/script.yaml"), ScriptError)


def beads_issue() -> st.SearchStrategy[str]:
    scalars = st.sampled_from([BIG, "-" + BIG, "1e400", "NaN", "-Infinity", "null", "true", '"x"', '""', "[]", "{}",
                               '"' + "[" * 50 + '"', "[" * 5000, "0", "4", '"P9"', '{"a": 1}'])  # fmt: skip
    fields = st.sampled_from(["id", "title", "status", "priority", "issue_type", "dependencies", "labels", "notes",
                              "description", "design", "acceptance_criteria", "parent", "metadata"])  # fmt: skip
    issue = st.dictionaries(fields, scalars | st.text(max_size=10).map(json.dumps), max_size=5).map(
        lambda d: "{" + ", ".join(f'"{k}": {v}' for k, v in {"id": '"b-1"', "title": '"x"', **d}.items()) + "}"
    )
    return st.lists(issue, min_size=1, max_size=3).flatmap(
        lambda items: st.sampled_from(["\n".join(items) + "\n", "[" + ",\n".join(items) + "]\n"])
    )


@FUZZ
@given(st.one_of(beads_issue(), random_text()))
def test_beads_raise_only_plan_errors(text: str) -> None:
    one_line_error(lambda: from_beads(text, "issues.jsonl"), PlanError)


def markdown_list() -> st.SearchStrategy[str]:
    line = st.sampled_from([
        "- [ ] T1: do a [P:Group-A]", "- [x] T2: done", "- [ ] T3 [P:bad group] x", "  - Depends on: T1, T9, T3",
        "  - Priority: P9", "  - Priority: " + BIG, "  - Risk: huge", "  - Acceptance: `true`", "  - Files: `a`",
        "```", "<!--", "-->", "- [ ] ", "- [ ] T1: again", "    - [ ] nested", "  - Requirements: 1, FR-2",
        "  - Group: G", "  - Group: bad group", "\t- [ ] tab", "\ufeff- [ ] bom", "  - Subagent: x", "",
    ])  # fmt: skip
    return st.lists(line, max_size=8).map("\n".join)


@FUZZ
@given(st.one_of(markdown_list(), random_text()))
def test_markdown_lists_raise_only_plan_errors(text: str) -> None:
    one_line_error(lambda: from_markdown(text, "tasks.md"), PlanError)


VALID_PRD = PRD_HEAD + PRD_TAIL
VALID_TASKS = "version: 1\ntasks:\n  - {id: a, title: A, requirements: [FR-1]}\n"


@FUZZ
@given(
    st.one_of(
        hostile_tasks_yaml().map(lambda t: {"prd_markdown": VALID_PRD, "tasks_yaml": t}),
        hostile_block_yaml().map(lambda t: {"prd_markdown": VALID_PRD, "tasks_yaml": t}),
        hostile_prd().map(lambda p: {"prd_markdown": p, "tasks_yaml": VALID_TASKS}),
        st.dictionaries(st.sampled_from(["prd_markdown", "tasks_yaml", "x"]), hostile_yaml() | random_text()),
        random_text(),
        st.sampled_from(['{"prd_markdown": ' + BIG + "}", "[" * 100_000, '{"a": 1e999}', "null", "[]"]),
    )
)
def test_a_planner_answer_raises_only_plan_errors_and_fails_as_an_agent(answer: Any) -> None:
    one_line_error(lambda: validate_plan(answer, "claude's answer"), PlanError)
    result = AgentResult(task="maestro.plan", agent="fake", attempt=1, status="succeeded", summary="planned")
    outcome = plan_outcome(result, answer, "claude's answer")  # never raises: a bad plan is an agent failure
    assert (outcome.plan is None) == (outcome.result.status == "failed")
    if outcome.plan is None:
        assert outcome.result.failure_class == "implementation" and "\n" not in outcome.result.summary


@pytest.mark.parametrize(
    "tasks_yaml",
    [
        "version: 1\ntasks:\n  - {id: a, title: 2024-13-45, requirements: [FR-1]}\n",
        f"version: 1\ntasks:\n  - {{id: a, title: {BIG}, requirements: [FR-1]}}\n",
        "version: 1\ntasks: !!omap [{a: 1}, {a: 2}]\n",
        "version: 1\ntasks:\n  - !!omap [{id: a}, {id: b}]\n",
        "version: !!float abc\ntasks: []\n",
    ],
)
def test_a_planner_answer_with_a_bad_tasks_yaml_is_a_plan_error(tasks_yaml: str) -> None:
    answer = {"prd_markdown": VALID_PRD, "tasks_yaml": tasks_yaml}
    with pytest.raises(PlanError) as exc:
        validate_plan(answer, "claude's answer")
    assert str(exc.value).startswith("claude's answer: tasks_yaml:") and "\n" not in str(exc.value)
    result = AgentResult(task="maestro.plan", agent="fake", attempt=1, status="succeeded", summary="planned")
    outcome = plan_outcome(result, answer, "claude's answer")
    assert outcome.plan is None and outcome.result.failure_class == "implementation"


def test_a_store_reads_a_hostile_config_as_one_store_error(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    store = Store(plan.repo)
    store.init()
    store.config_path.write_text("parallel: {max_workers: 2024-13-45}\n", encoding="utf-8")
    with pytest.raises(StoreError, match=r"config.yaml: cannot read config: line 1: a value cannot be read: month"):
        store.load_config()


# -- exit codes: 2 is for input refused before anything was written ----------------------------------------------


def broken_checkpointer(monkeypatch: pytest.MonkeyPatch) -> None:
    def start(self: Any, **kwargs: Any) -> Any:
        raise CheckpointError("the disk said no")

    monkeypatch.setattr(Checkpointer, "start", start)


def test_a_failure_once_the_session_exists_is_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    plan = new_plan(tmp_path)
    broken_checkpointer(monkeypatch)
    monkeypatch.chdir(plan.repo)
    capsys.readouterr()
    assert main(plan.run_args()) == 1
    (sid,) = session_dirs(plan.repo)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"maestro: error: session {sid} stopped: the disk said no (`maestro status {sid}` shows where it is)"
    ]


def test_resume_is_exit_2_when_refused_and_1_once_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    plan = paused_plan(tmp_path)
    broken_checkpointer(monkeypatch)
    monkeypatch.chdir(plan.repo)
    before = plan.events()
    capsys.readouterr()
    assert main(["resume", plan.sid]) == 2  # the checkpointer failed before the log was written to
    assert plan.events() == before
    assert main(["resume", plan.sid, "--max-iterations", "5"]) == 1  # the raised limits were recorded first
    assert len(plan.events()) > len(before)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["maestro: error: the disk said no",
                   f"maestro: error: session {plan.sid} stopped: the disk said no (`maestro status {plan.sid}` shows "
                   "where it is)"]  # fmt: skip


def test_a_planner_answer_with_a_bad_date_pauses_the_session_instead_of_crashing(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    (plan.dir / "planned.yaml").write_text("version: 1\ntasks:\n  - id: a\n    title: 2024-13-45\n"
                                           "    requirements: [FR-1]\n", encoding="utf-8")  # fmt: skip
    (plan.dir / "script.yaml").write_text("version: 1\nplanner: {prd: prd.md, tasks: planned.yaml}\ntasks: {}\n",
                                          encoding="utf-8")  # fmt: skip
    seen = 0
    for args in (("run", REQUEST), ("resume", "last")):
        extra = ("--config", str(plan.dir / "config.yaml"), "--script", str(plan.dir / "script.yaml"))
        out = cli(*args, *(extra if args[0] == "run" else ()), cwd=plan.repo)
        assert out.returncode == 3, out.stderr  # an agent failure the ladder handles, on every resume too
        assert "Traceback" not in out.stderr
        assert "script.yaml planner: tasks_yaml:4: a value cannot be read: month must be in 1..12" in out.stdout
        results = [e.data for e in plan.events() if e.kind == "agent"]
        assert len(results) > seen  # the planner was asked (again)
        assert {(r["status"], r["failure_class"]) for r in results} == {("failed", "implementation")}
        seen = len(results)


def test_a_stale_ref_lock_when_landing_is_one_line(tmp_path: Path) -> None:
    plan = new_plan(tmp_path)
    assert plan.run().returncode == 0
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=plan.repo, capture_output=True, text=True).stdout
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=plan.repo, capture_output=True, text=True)
    lock = plan.repo / ".git" / "refs" / "heads" / f"{branch.stdout.strip()}.lock"
    lock.write_text("", encoding="utf-8")  # a git that died while moving the branch
    out = cli("land", plan.sid, cwd=plan.repo)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and str(lock) in lines[0], out.stderr
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=plan.repo, capture_output=True, text=True).stdout == head


TASK_FIELDS = st.fixed_dictionaries({
    "title": st.text(min_size=1, max_size=30),
    "description": st.text(max_size=30),
    "acceptance": st.lists(st.text(min_size=1, max_size=20), max_size=2),
    "files": st.lists(st.text(min_size=1, max_size=10), max_size=2),
})  # fmt: skip


@FUZZ
@given(st.lists(TASK_FIELDS, min_size=1, max_size=3))
def test_a_graph_that_reads_is_saved_so_that_it_reads_again(fields: list[dict[str, Any]]) -> None:
    """The session keeps the graph as tasks.yaml (``to_yaml``) and resume reads it again: whatever text a task
    holds, what was read once reads again, the same (else every resume of that session would fail)."""
    tasks = [{"id": f"t{i}", "requirements": ["FR-1"], **f} for i, f in enumerate(fields)]
    text = json.dumps({"version": 1, "tasks": tasks})
    message = None
    try:
        graph = parse_tasks(text, "tasks.yaml")
    except PlanError as exc:  # a blank title, a file path that leaves the repository ...
        message = str(exc)
    if message is not None:
        assert "\n" not in message
        return
    again = parse_tasks(graph.to_yaml(), "saved tasks.yaml")
    assert [t.to_dict() for t in again.tasks] == [t.to_dict() for t in graph.tasks]
