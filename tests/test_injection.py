"""No command injection: repository names in detected gate commands, and the command agent's placeholders.

Every test runs the commands through a real ``sh -c``, as maestro's gate runner and the
command agent do, in real git repositories whose folder names and task titles are hostile.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.agents.base import AgentError, AgentRequest
from maestro.agents.command import VARIABLES, CommandAgent, shell_script
from maestro.agents.process import run_process
from maestro.config.model import render_command
from maestro.decide.engine import DecisionEngine
from maestro.decide.repofacts import RepoFacts
from maestro.decide.strategies import STRATEGIES
from maestro.decide.strategies.gate import TOOLS
from maestro.gates.commands import gate_commands
from maestro.gates.running import run_gate
from maestro.plan.tasks import Task
from tests.support.checkpoints import make_repo

HOSTILE = [
    "t;touch INJECTED;#",
    "with space",
    "$(touch INJECTED)",
    "`touch INJECTED`",
    'it\'s "quoted"',
    "-x",
    "--help",
    "{junit}",
    "a{b}c",
    "${HOME}",
    "new\nline",
    "semi;colon & amp | pipe > gt",
]
"""Folder names (and titles) that are shell syntax, options or placeholders if written into a command unquoted."""

ARGV_SHIM = '#!/bin/sh\nprintf "%s\\0" "$@" > "$ARGV_LOG"\n'
"""A stand-in for a tool: writes the arguments the shell gave it, NUL-separated, to ``$ARGV_LOG``."""


def _injected(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "INJECTED" in p.name and p.is_file()]


def _shims(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(ARGV_SHIM)
        (folder / name).chmod(0o755)
    return folder


def _argv(log: Path) -> list[str]:
    return log.read_bytes().decode("utf-8", "surrogateescape").split("\0")[:-1]


def _target(name: str) -> str:
    return f"./{name}" if name.startswith("-") else name


@pytest.fixture(scope="module")
def engine() -> DecisionEngine:
    return DecisionEngine(strategies=STRATEGIES)


# -- gate detection ----------------------------------------------------------------------------------------------------
UNITTEST_FILE = """\
import pathlib
import unittest


class T(unittest.TestCase):
    def test_where(self):
        pathlib.Path("seen.txt").write_text(pathlib.Path(__file__).resolve().parent.name)
"""


@pytest.mark.parametrize("name", HOSTILE)
def test_unittest_discovery_of_a_hostile_folder_runs_it_and_nothing_else(
    tmp_path: Path, engine: DecisionEngine, name: str
) -> None:
    repo = make_repo(tmp_path / "repo", {f"{name}/test_it.py": UNITTEST_FILE})
    decision = engine.decide("gate", repo=repo, gate="tests")
    command = gate_commands({}, [decision])["tests"].command
    assert decision.choice == "unittest" and command is not None
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    result = run_gate("tests", command, required=True, workdir=repo, env=env)
    assert _injected(tmp_path) == []
    assert result.status == "passed", (command, result.summary)
    assert (repo / "seen.txt").read_text() == name  # the test in that folder ran: the command targets it


def test_python_targets_of_hostile_packages_reach_mypy_pylint_and_bandit_as_single_arguments(
    tmp_path: Path, engine: DecisionEngine
) -> None:
    files = {f"{name}/__init__.py": "" for name in HOSTILE}
    files |= {"mypy.ini": "[mypy]\n", ".pylintrc": "[MAIN]\n", ".bandit": "[bandit]\n"}
    repo = make_repo(tmp_path / "repo", files)
    env = {**os.environ, "PATH": os.pathsep.join([str(_shims(tmp_path / "bin", "python")), os.environ["PATH"]])}
    targets = [_target(n) for n in sorted(HOSTILE)]
    expected = {
        "typecheck": ("mypy", ["-m", "mypy", *targets]),
        "lint": ("pylint", ["-m", "pylint", *targets]),
        "security": ("bandit", ["-m", "bandit", "-r", *targets, "-q"]),
    }
    for gate, (tool, argv) in expected.items():
        decision = engine.decide("gate", repo=repo, gate=gate)
        command = gate_commands({}, [decision])[gate].command
        assert decision.choice == tool and command is not None
        log = tmp_path / f"{gate}.argv"
        result = run_gate(gate, command, required=True, workdir=repo, env={**env, "ARGV_LOG": str(log)})
        assert result.status == "passed", (command, result.summary)
        assert _argv(log) == argv, command
    assert _injected(tmp_path) == []


@pytest.mark.parametrize("name", HOSTILE)
def test_tsc_of_a_hostile_workspace_member_gets_its_tsconfig_as_one_argument(
    tmp_path: Path, engine: DecisionEngine, name: str
) -> None:
    member = f"packages/{name}"
    files = {
        "package.json": json.dumps({"devDependencies": {"typescript": "5"}}),
        f"{member}/package.json": json.dumps({"name": "member"}),
        f"{member}/tsconfig.json": "{}",
    }
    repo = make_repo(tmp_path / "repo", files)
    decision = engine.decide("gate", repo=repo, gate="typecheck")
    command = gate_commands({}, [decision])["typecheck"].command
    assert decision.choice == "tsc" and command is not None
    log = tmp_path / "argv"
    env = {**os.environ, "PATH": os.pathsep.join([str(_shims(tmp_path / "bin", "npx")), os.environ["PATH"]])}
    result = run_gate("typecheck", command, required=True, workdir=repo, env={**env, "ARGV_LOG": str(log)})
    assert result.status == "passed", (command, result.summary)
    assert _argv(log) == ["tsc", "--noEmit", "-p", f"{member}/tsconfig.json"]
    assert (repo / _argv(log)[-1]).is_file() and _injected(tmp_path) == []


_NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/")
    | st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),  # a byte that is not UTF-8, as os.fsdecode gives it
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_NAMES, min_size=1, max_size=3, unique=True))
def test_every_python_target_reaches_the_tool_byte_exact(tmp_path: Path, names: list[str]) -> None:
    """Any folder names (no NUL, no slash): each is one argument, as it is, and the shell makes no file."""
    tools = {t.name: t for t in TOOLS}
    facts = RepoFacts(root=tmp_path, packages=tuple(names), configs=(".pylintrc",))
    bin_dir = _shims(tmp_path / "bin", "python")
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        work, log = Path(tmp), Path(tmp) / "argv"
        env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), os.environ["PATH"]]), "ARGV_LOG": str(log)}
        script = render_command(tools["pylint"].command(facts), junit=work / "junit.xml")
        out = run_process(["sh", "-c", script], cwd=work, timeout_s=10, env=env)
        assert out.exit_code == 0, (script, out.stderr)
        assert _argv(log) == ["-m", "pylint", *(_target(n) for n in names)]
        assert sorted(p.name for p in work.iterdir()) == ["argv"]


# -- the command agent -----------------------------------------------------------------------------------------------
TEMPLATES: list[tuple[str, Callable[[str, str], str]]] = [
    ("printf %s {title} > out", lambda t, w: t),
    ('printf %s "{title}" > out', lambda t, w: t),
    ("printf '%s' \"Task {task_id}: {title} (attempt {attempt})\" > out", lambda t, w: f"Task T-1: {t} (attempt 2)"),
    ('x={title}; printf %s "$x" > out', lambda t, w: t),
    ('printf %s "$(printf %s {title})" > out', lambda t, w: t.rstrip("\n")),
    ("cat > out <<EOF\n{title}\nEOF", lambda t, w: t + "\n"),
    ("cat > out <<-EOF\n\t{title}\n\tEOF\n", lambda t, w: t + "\n"),
    ("printf %s {workdir} > out", lambda t, w: w),
    ('printf %s "$MAESTRO_TASK_TITLE" > out', lambda t, w: t),
]

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=60)
_TITLES = _TEXT | st.sampled_from(
    ["it's", '"', "a'b\"c", "$(touch INJECTED)", "`touch INJECTED`", "'; touch INJECTED; '", '"; touch INJECTED; "',
     "x\nEOF\ntouch INJECTED", "EOF", "\\", "${HOME}", "$HOME", "*", "-n", "\n\n", "", " a  b "]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=_TITLES, template=st.sampled_from(range(len(TEMPLATES))))
def test_a_placeholder_gives_the_command_its_value_byte_exact_and_nothing_else(
    tmp_path: Path, title: str, template: int
) -> None:
    text, expected = TEMPLATES[template]
    with tempfile.TemporaryDirectory(dir=tmp_path, prefix="it's $(x) `y`;") as tmp:
        work = Path(tmp)
        result = CommandAgent(text).run(AgentRequest(Task("T-1", title), work, attempt=2))
        assert (result.status, result.failure_class) == ("succeeded", None), (text, result)
        assert (work / "out").read_bytes() == expected(title, str(work)).encode("utf-8", "surrogateescape")
        assert [p.name for p in work.iterdir()] == ["out"]
    assert _injected(tmp_path) == []


def test_the_script_holds_no_value_only_references_to_the_variables(tmp_path: Path) -> None:
    agent = CommandAgent("my-agent --task {task_id} --title={title} --in {workdir} -n {attempt} {prompt_file}")
    request = AgentRequest(Task("T-1", "$(touch INJECTED)"), tmp_path / "it's", attempt=3)
    argv = agent.command(request, tmp_path / "p.md")
    assert argv == ["sh", "-c", 'my-agent --task "${MAESTRO_TASK_ID}" --title="${MAESTRO_TASK_TITLE}" --in '
                    '"${MAESTRO_WORKDIR}" -n "${MAESTRO_ATTEMPT}" "${MAESTRO_PROMPT_FILE}"']  # fmt: skip
    assert agent.values(request, tmp_path / "p.md") == {
        "MAESTRO_TASK_ID": "T-1", "MAESTRO_PROMPT_FILE": str(tmp_path / "p.md"),
        "MAESTRO_WORKDIR": str(tmp_path / "it's"), "MAESTRO_ATTEMPT": "3", "MAESTRO_TASK_TITLE": "$(touch INJECTED)",
    }  # fmt: skip
    assert set(VARIABLES.values()) == set(agent.values(request, tmp_path / "p.md"))


def test_the_agents_own_env_cannot_replace_a_value(tmp_path: Path) -> None:
    agent = CommandAgent("printf %s {title} > out", env={"MAESTRO_TASK_TITLE": "$(touch INJECTED)"})
    result = agent.run(AgentRequest(Task("T-1", "the title"), tmp_path, env={"MAESTRO_TASK_TITLE": "other"}))
    assert result.status == "succeeded" and (tmp_path / "out").read_text() == "the title"


@pytest.mark.parametrize(
    ("template", "where"),
    [("echo '{title}'", "inside single quotes"),
     ("echo \"it's '{title}'\" 'a {title}'", "inside single quotes"),
     ("echo $'{title}'", "inside $'...'"),
     ("echo `echo {title}`", "inside backquotes (write $(...) instead)"),
     ("echo \"`echo {title}`\"", "inside backquotes"),
     ("echo ${{X:-{title}}}", "inside ${...}"),
     ("echo $(( {attempt} + 1 ))", "inside $((...))"),
     ("cat <<'EOF'\n{title}\nEOF", "in a quoted here-document"),
     ("cat <<E\"O\"F\n{title}\nEOF", "in a quoted here-document"),
     ("cat <<{title}", "in a here-document's delimiter"),
     ("echo \\{title}", "right after a backslash"),
     ("echo \"\\{title}\"", "right after a backslash"),
     ("echo ${title}", "right after a $"),
     ("echo \"${title}\"", "right after a $")],
)  # fmt: skip
def test_a_placeholder_where_no_quoting_is_safe_is_refused_with_the_fix(template: str, where: str) -> None:
    with pytest.raises(AgentError) as info:
        CommandAgent(template)
    message = str(info.value)
    assert message.startswith("agent.command: {") and where in message and "\n" not in message
    assert 'or write "$MAESTRO_' in message


@pytest.mark.parametrize(
    ("template", "script"),
    [("a {title} # it's {title}", 'a "${MAESTRO_TASK_TITLE}" # it\'s "${MAESTRO_TASK_TITLE}"'),
     ("cat <<EOF\nit's {title}\nEOF\necho {title}",
      'cat <<EOF\nit\'s ${MAESTRO_TASK_TITLE}\nEOF\necho "${MAESTRO_TASK_TITLE}"'),
     ("cat <<-'E F'\n\tit's\n\tE F\necho {title}", 'cat <<-\'E F\'\n\tit\'s\n\tE F\necho "${MAESTRO_TASK_TITLE}"'),
     ("x=$(echo \"a)\" ) {title}", 'x=$(echo "a)" ) "${MAESTRO_TASK_TITLE}"'),
     ("echo $((1+(2))) `date` {title}", 'echo $((1+(2))) `date` "${MAESTRO_TASK_TITLE}"'),
     ("echo ${{HOME}} \"{title}\"$(echo {title})",
      'echo ${HOME} "${MAESTRO_TASK_TITLE}"$(echo "${MAESTRO_TASK_TITLE}")'),
     ("echo \"$(echo '{{' \"{title}\")\"", 'echo "$(echo \'{\' "${MAESTRO_TASK_TITLE}")"'),
     ("echo 'a'\\''b' {title}", 'echo \'a\'\\\'\'b\' "${MAESTRO_TASK_TITLE}"')],
)  # fmt: skip
def test_the_quoting_of_each_place_is_read_from_the_shells_grammar(template: str, script: str) -> None:
    assert shell_script(template) == script
