"""``maestro init [--claude] [--force]``: config.yaml with the detected gates, /flow:autonomous, maestro's skills."""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from ruamel.yaml import YAML

import maestro
from maestro.agents.registry import discover, shipped_skills
from maestro.cli.init import HINT, add_parser, cmd_init
from maestro.config.init import (
    COMMAND_PATH,
    CONFIG_PATH,
    CREATED,
    KEPT,
    OVERWRITTEN,
    UNCHANGED,
    command_text,
    init_project,
)
from maestro.config.model import GATE_NAMES
from maestro.config.reader import load_config
from maestro.config.writer import default_config_yaml
from tests.support.git import git_init as dulwich_git_init

SHIPPED_COMMAND = Path(maestro.__file__).parent / "data" / "commands" / "flow" / "autonomous.md"
SKILLS = [PurePosixPath(".claude/skills") / p.parent.name / "SKILL.md" for p in shipped_skills()]
ALL_FILES = [CONFIG_PATH, COMMAND_PATH, *SKILLS]

PYTEST = "python -m pytest -q --junitxml={junit}"


def git_init(path: Path) -> Path:
    """A real repository: made by the git binary where there is one, else by dulwich (CI has only Python)."""
    if shutil.which("git") is None:
        return dulwich_git_init(path)
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    return path


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A fresh, empty git repository."""
    return git_init(tmp_path / "fresh")


@pytest.fixture
def python_repo(tmp_path: Path) -> Path:
    """A repository whose pyproject.toml declares pytest and configures ruff (and nothing else)."""
    repo = git_init(tmp_path / "py")
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "calc"\nversion = "0.1"\n\n'
        '[project.optional-dependencies]\ntest = ["pytest>=8"]\n\n'
        "[tool.ruff]\nline-length = 100\n",
        encoding="utf-8",
    )
    return repo


def snapshot(repo: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file outside .git: its bytes, inode and mtime (an atomic rewrite changes the inode)."""
    out: dict[str, tuple[bytes, int, int]] = {}
    for path in sorted(repo.rglob("*")):
        if ".git" in path.relative_to(repo).parts[:1] or not path.is_file():
            continue
        st = path.stat()
        out[path.relative_to(repo).as_posix()] = (path.read_bytes(), st.st_ino, st.st_mtime_ns)
    return out


def age(repo: Path) -> None:
    """Set every file's mtime far in the past, so that any rewrite shows whatever the clock's granularity."""
    for path in repo.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(repo).parts[:1]:
            os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))


def actions(result: maestro.config.init.InitResult) -> dict[str, str]:
    return {str(f.path): f.action for f in result.files}


# -- config.yaml ----------------------------------------------------------------------------------------------------


def test_init_on_a_fresh_repository_writes_only_a_config_that_loads(fresh: Path) -> None:
    result = init_project(fresh, claude=False, force=False)
    assert result.repo == fresh.resolve()
    assert actions(result) == {str(CONFIG_PATH): CREATED}
    path = fresh / CONFIG_PATH
    config = load_config(path, missing_ok=False)
    assert config.gates.keys() == set(GATE_NAMES)
    assert path.read_text(encoding="utf-8") == default_config_yaml(result.gates)
    assert not (fresh / ".claude").exists()


def test_nothing_detected_gives_null_commands(fresh: Path) -> None:
    result = init_project(fresh, claude=False, force=False)
    assert result.gates == dict.fromkeys(GATE_NAMES)
    config = load_config(fresh / CONFIG_PATH, missing_ok=False)
    assert {name: gate.command for name, gate in config.gates.items()} == dict.fromkeys(GATE_NAMES)
    assert config.gates["tests"].required
    gates = (fresh / CONFIG_PATH).read_text(encoding="utf-8").split("\ngates:\n", 1)[1]
    assert gates.count("{command: null,") == 4


def test_detected_gates_appear_as_commands(python_repo: Path) -> None:
    result = init_project(python_repo, claude=False, force=False)
    expected = {"tests": PYTEST, "lint": "ruff check .", "typecheck": None, "security": None}
    assert result.gates == expected
    config = load_config(python_repo / CONFIG_PATH, missing_ok=False)
    assert {name: gate.command for name, gate in config.gates.items()} == expected
    assert config.agent is None  # the agent is the user's to choose


def test_the_gates_are_the_ones_maestro_decide_chooses(python_repo: Path) -> None:
    from maestro.decide.engine import DecisionEngine
    from maestro.decide.strategies import gate_command

    result = init_project(python_repo, claude=False, force=False)
    engine = DecisionEngine()
    assert result.gates == {n: gate_command(engine.decide("gate", repo=python_repo, gate=n)) for n in GATE_NAMES}


def test_init_from_a_subfolder_writes_at_the_top(python_repo: Path) -> None:
    sub = python_repo / "src" / "calc"
    sub.mkdir(parents=True)
    result = init_project(sub, claude=False, force=False)
    assert result.repo == python_repo.resolve()
    assert (python_repo / CONFIG_PATH).is_file()
    assert not (sub / ".flow").exists()


# -- --claude -------------------------------------------------------------------------------------------------------


def test_init_claude_on_a_fresh_repository(fresh: Path) -> None:
    result = init_project(fresh, claude=True, force=False)
    assert [str(f.path) for f in result.files] == [str(p) for p in ALL_FILES]
    assert all(f.action == CREATED for f in result.files)
    assert (fresh / COMMAND_PATH).read_bytes() == SHIPPED_COMMAND.read_bytes()
    for rel, source in zip(SKILLS, shipped_skills(), strict=True):
        assert (fresh / rel).read_bytes() == source.read_bytes()
    assert load_config(fresh / CONFIG_PATH, missing_ok=False).gates["tests"].required
    registry = discover(fresh, fresh / "no-home")  # Claude Code's skills, as maestro finds them
    assert registry.problems == ()
    assert set(registry.skill_names) >= {p.parent.name for p in shipped_skills()}


def test_the_shipped_command_is_a_slash_command_that_runs_maestro() -> None:
    text = SHIPPED_COMMAND.read_text(encoding="utf-8")
    assert command_text() == text
    assert text.startswith("---\n")
    front_text, body = text[4:].split("\n---\n", 1)
    front = YAML(typ="safe", pure=True).load(front_text)
    assert set(front) >= {"description", "argument-hint", "allowed-tools"}
    assert [t.strip() for t in front["allowed-tools"].split(",")] == ["Bash(maestro:*)", "Read"]
    assert front["description"].strip()
    assert 'maestro run "$ARGUMENTS"' in body
    for command in ("maestro status last --json", "maestro answer SESSION CHOICE", "maestro resume SESSION",
                    "maestro report last"):  # fmt: skip
        assert command in body, command
    for code, meaning in (("0", "completed"), ("3", "paused"), ("1", "failed"), ("2", "bad input")):
        assert re.search(rf"\*\*{code}, {meaning}", body), code
    assert "--json" not in re.findall(r"maestro run [^\n`]*", body)[0]


def test_every_flag_the_command_names_is_a_flag_of_maestro_run() -> None:
    helped = subprocess.run([sys.executable, "-m", "maestro", "run", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    known = set(re.findall(r"(--[a-z][a-z-]+)", helped.stdout))
    text = SHIPPED_COMMAND.read_text(encoding="utf-8")
    running = text.split("## 1. Run the session", 1)[1].split("\n## 2.", 1)[0]  # the part about `maestro run`
    named = set(re.findall(r"(--[a-z][a-z-]+)", running))
    assert named - {"--help"} <= known, named - known
    assert {"--agent", "--allow-dirty"} <= named


# -- idempotence and --force ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("claude", [False, True])
def test_running_twice_changes_nothing(python_repo: Path, claude: bool) -> None:
    init_project(python_repo, claude=claude, force=False)
    age(python_repo)
    before = snapshot(python_repo)
    again = init_project(python_repo, claude=claude, force=False)
    assert all(f.action == UNCHANGED for f in again.files)
    assert again.written == ()
    assert len(again.files) == (len(ALL_FILES) if claude else 1)
    assert snapshot(python_repo) == before


def test_force_on_an_up_to_date_repository_writes_nothing(fresh: Path) -> None:
    init_project(fresh, claude=True, force=False)
    age(fresh)
    before = snapshot(fresh)
    assert all(f.action == UNCHANGED for f in init_project(fresh, claude=True, force=True).files)
    assert snapshot(fresh) == before


@pytest.mark.parametrize("rel", ALL_FILES, ids=str)
def test_a_differing_file_is_kept_without_force_and_overwritten_with_force(fresh: Path, rel: PurePosixPath) -> None:
    first = init_project(fresh, claude=True, force=False)
    path = fresh / rel
    original = path.read_bytes()
    path.write_text("# my own version\n", encoding="utf-8")
    age(fresh)
    before = snapshot(fresh)

    kept = init_project(fresh, claude=True, force=False)
    assert actions(kept) == {**dict.fromkeys(actions(first), UNCHANGED), str(rel): KEPT}
    assert kept.action(rel) == KEPT
    assert snapshot(fresh) == before  # nothing written at all

    forced = init_project(fresh, claude=True, force=True)
    assert actions(forced) == {**dict.fromkeys(actions(first), UNCHANGED), str(rel): OVERWRITTEN}
    assert path.read_bytes() == original
    after = snapshot(fresh)
    assert {k for k in after if after[k] != before[k]} == {str(rel)}

    assert all(f.action == UNCHANGED for f in init_project(fresh, claude=True, force=False).files)


def test_a_missing_file_is_created_again_and_the_others_left_alone(fresh: Path) -> None:
    init_project(fresh, claude=True, force=False)
    (fresh / SKILLS[0]).unlink()
    result = init_project(fresh, claude=True, force=False)
    assert actions(result) == {**{str(p): UNCHANGED for p in ALL_FILES}, str(SKILLS[0]): CREATED}
    assert (fresh / SKILLS[0]).read_bytes() == shipped_skills()[0].read_bytes()


def test_init_then_init_claude_keeps_the_config(python_repo: Path) -> None:
    init_project(python_repo, claude=False, force=False)
    result = init_project(python_repo, claude=True, force=False)
    assert result.action(CONFIG_PATH) == UNCHANGED
    assert all(result.action(p) == CREATED for p in ALL_FILES[1:])


def test_a_new_tool_makes_the_config_differ_and_force_takes_it(fresh: Path) -> None:
    init_project(fresh, claude=False, force=False)
    (fresh / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    assert init_project(fresh, claude=False, force=False).action(CONFIG_PATH) == KEPT
    assert load_config(fresh / CONFIG_PATH).gates["tests"].command is None
    assert init_project(fresh, claude=False, force=True).action(CONFIG_PATH) == OVERWRITTEN
    assert load_config(fresh / CONFIG_PATH).gates["tests"].command == PYTEST


# -- bad input ------------------------------------------------------------------------------------------------------


def test_not_a_git_repository_names_the_path_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    with pytest.raises(maestro.MaestroError) as exc:
        init_project(folder, claude=True, force=False)
    message = str(exc.value)
    assert str(folder) in message and "not a git repository" in message and "\n" not in message
    assert list(folder.iterdir()) == []


def test_no_such_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(maestro.MaestroError, match=re.escape(str(tmp_path / "nowhere"))):
        init_project(tmp_path / "nowhere", claude=False, force=False)


def test_a_file_where_a_folder_must_go_names_the_path(fresh: Path) -> None:
    (fresh / ".flow").write_text("not a folder\n", encoding="utf-8")
    with pytest.raises(maestro.MaestroError) as exc:
        init_project(fresh, claude=False, force=False)
    assert str(fresh / ".flow") in str(exc.value) and "\n" not in str(exc.value)


def test_a_folder_in_the_way_is_refused_before_anything_is_written(fresh: Path) -> None:
    (fresh / COMMAND_PATH).mkdir(parents=True)
    with pytest.raises(maestro.MaestroError) as exc:
        init_project(fresh, claude=True, force=True)
    assert str(fresh / COMMAND_PATH) in str(exc.value) and "\n" not in str(exc.value)
    assert not (fresh / CONFIG_PATH).exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_names_the_path(fresh: Path) -> None:
    (fresh / ".flow" / "maestro").mkdir(parents=True)
    (fresh / ".flow" / "maestro").chmod(0o555)
    try:
        with pytest.raises(maestro.MaestroError, match=re.escape(str(fresh / CONFIG_PATH))):
            init_project(fresh, claude=False, force=False)
    finally:
        (fresh / ".flow" / "maestro").chmod(0o755)


# -- the command line -----------------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="maestro")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_the_parser_has_the_flags_and_defaults() -> None:
    args = parse("init")
    assert (args.command, args.claude, args.force, args.dry_run, args.repo) == ("init", False, False, False, ".")
    args = parse("init", "--claude", "--force", "--dry-run", "--repo", "somewhere")
    assert (args.claude, args.force, args.dry_run, args.repo) == (True, True, True, "somewhere")


DETECTED = ("gate ", "stack ", "stack:", "entry point ", "entry points:")
"""How the lines saying what init detected begin (before the files' lines)."""


def run_init(*argv: str, detected: bool = False) -> list[str]:
    """``maestro init ARGV`` through the parser and ``cmd_init``, as maestro.cli.main runs it: the lines printed
    after those saying what was detected (all of them with ``detected``)."""
    out = io.StringIO()
    assert cmd_init(parse("init", *argv), out) == 0
    lines = out.getvalue().splitlines()
    return lines if detected else without_detected(lines)


def without_detected(lines: list[str]) -> list[str]:
    """``lines`` after the leading ones that say what init detected (which each begin as :data:`DETECTED` says)."""
    n = next((i for i, line in enumerate(lines) if not line.startswith(DETECTED)), len(lines))
    return lines[n:]


def test_cmd_init_prints_a_line_a_file_and_the_hint(fresh: Path) -> None:
    lines = run_init("--claude", "--repo", str(fresh))
    assert lines[: len(ALL_FILES)] == [f"created {p}" for p in ALL_FILES]
    assert lines[-1] == HINT == 'in Claude Code: /flow:autonomous "your request"'
    assert any("commit .claude/" in line for line in lines)

    assert run_init("--claude", "--repo", str(fresh)) == [*(f"unchanged {p}" for p in ALL_FILES), HINT]

    (fresh / CONFIG_PATH).write_text("parallel: {max_workers: 2}\n", encoding="utf-8")
    assert run_init("--repo", str(fresh)) == [f"kept (differs; use --force) {CONFIG_PATH}"]
    assert run_init("--force", "--repo", str(fresh)) == [f"overwritten {CONFIG_PATH}"]


def test_cmd_init_without_claude_gives_no_hint(fresh: Path) -> None:
    assert run_init("--repo", str(fresh)) == [f"created {CONFIG_PATH}"]


def test_cmd_init_lets_a_maestro_error_through_for_the_cli(tmp_path: Path) -> None:
    out = io.StringIO()
    with pytest.raises(maestro.MaestroError, match="not a git repository"):
        cmd_init(parse("init", "--repo", str(tmp_path)), out)
    assert out.getvalue() == ""


def _console_script() -> list[str]:
    """The maestro command line of the Python running the tests."""
    return [sys.executable, "-m", "maestro"]


def test_maestro_init_claude_as_a_subprocess(fresh: Path) -> None:
    script = _console_script()
    out = subprocess.run([*script, "init", "--claude"], capture_output=True, text=True, cwd=fresh)
    assert out.returncode == 0, out.stderr
    assert without_detected(out.stdout.splitlines())[: len(ALL_FILES)] == [f"created {p}" for p in ALL_FILES]
    assert out.stdout.splitlines()[-1] == HINT
    assert (fresh / COMMAND_PATH).read_bytes() == SHIPPED_COMMAND.read_bytes()
    again = subprocess.run([*script, "init", "--claude"], capture_output=True, text=True, cwd=fresh)
    assert again.returncode == 0 and without_detected(again.stdout.splitlines())[0] == f"unchanged {CONFIG_PATH}"


def test_maestro_init_outside_a_repository_is_one_line_exit_2(tmp_path: Path) -> None:
    script = _console_script()
    out = subprocess.run([*script, "init", "--repo", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("maestro: error: ") and str(tmp_path) in out.stderr
    assert out.stderr.count("\n") == 1 and out.stdout == ""
