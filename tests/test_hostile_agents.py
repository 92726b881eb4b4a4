"""Hostile agents (issue 15): each behaviour through the real command line, with its expected outcome.

Every test makes a real git repository on ``main`` in ``tmp_path`` and runs ``python -m maestro run`` with the
command agent (``agent: {kind: command}``) running a shell script (``tests.support.hostile``: the script finds the
user's checkout through ``git rev-parse --git-common-dir``, since it runs in a worktree outside it).  What is
asserted: the exit code, the one line naming what changed, the session's state (``maestro status --json``, the
event log), the user's side of the repository (refs, HEAD, index bytes, config, hooks, files) and maestro's refs
as the log says.

* tampering: ``.flow`` deleted, a line appended to ``events.jsonl``, the log replaced, the user's ``main`` deleted
  or moved (not a fast-forward), HEAD pointed at the session's branch, ``.git/config`` edited, a hook added, the
  session's branch moved, a checkpoint tag deleted;
* a ``kill -9`` of maestro mid-run leaving lock files: ``maestro resume`` clears the dead run's and completes,
  refuses in one line a lock not provably its own, and puts back the refs deleted meanwhile;
* a repository mid-merge or mid-rebase: exit 2, nothing written;
* a session beside ``git status`` loops (the checkout, the session's worktrees): completes, the user's index
  byte-identical;
* shell syntax in task titles, descriptions and paths through the command agent, and in a folder the tests gate
  is detected from: nothing runs;
* staged-but-uncommitted work kept at ``refs/maestro/<s>/index``, an empty folder noted.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.support.hostile import (
    Hostile,
    git,
    git_status_loops,
    hostile_plan,
    quick_config,
    settle_index,
    user_view,
)
from tests.support.runs import task

Out = subprocess.CompletedProcess[str]


def shown(out: Out) -> str:
    return f"exit {out.returncode}\n--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}"


def started(out: Out) -> str:
    """The session id the run's first line names."""
    found = re.search(r"\[Maestro\] Session (\S+) started", out.stdout)
    assert found, shown(out)
    return found.group(1)


def tampering_lines(out: Out) -> list[str]:
    return [line.removeprefix("[Maestro] Tampering: ") for line in out.stdout.splitlines()
            if line.startswith("[Maestro] Tampering: ")]  # fmt: skip


def paused_for_tampering(h: Hostile, out: Out, what: str) -> dict[str, Any]:
    """Exit 3, a ``Tampering:`` line that is ``what``, paused from implementing with retry/abort (critical)."""
    assert out.returncode == 3, shown(out)
    assert tampering_lines(out)[:1] == [what], shown(out)
    doc = h.status()
    assert (doc["state"], doc["paused_from"]) == ("paused", "implementing")
    request = doc["decision_request"]
    assert request["options"] == ["retry", "abort"]
    assert request["context"]["failure_class"] == "critical"
    assert what in request["question"] and "\n" not in request["question"]
    return doc


def assert_refs_as_logged(h: Hostile) -> None:
    """The session's branch at its log's last checkpoint; one tag per logged checkpoint, peeling to its commit."""
    logged = h.checkpoints()
    assert h.peel(f"refs/heads/maestro/{h.sid}") == logged[-1][1]
    tags = sorted(int(t.rsplit("/", 1)[1]) for t in git(h.repo, "tag", "-l", f"maestro/{h.sid}/*").split())
    assert tags == [n for n, _ in logged]
    for n, commit in logged:
        assert h.peel(f"refs/tags/maestro/{h.sid}/{n}") == commit, n
        assert git(h.repo, "cat-file", "-t", f"refs/tags/maestro/{h.sid}/{n}") == "tag"  # annotated, as maestro tags


def assert_completed(h: Hostile, out: Out) -> None:
    assert out.returncode == 0, shown(out)
    assert out.stdout.splitlines()[-2] == f"session {h.sid}: completed", shown(out)
    assert h.status()["state"] == "completed"


def retry_completes(h: Hostile) -> None:
    """Answer the pause with retry and resume: the session completes, maestro's refs as its log says."""
    assert h.answer("retry").returncode == 0
    out = h.resume()
    assert_completed(h, out)
    assert_refs_as_logged(h)
    assert h.branch_file("a.txt") == "a\n"


# -- the store -------------------------------------------------------------------------------------------------------


def test_an_agent_deleting_flow_stops_the_run_in_one_line(tmp_path: Path) -> None:
    h = hostile_plan(tmp_path, 'rm -rf "$U/.flow"')
    before = user_view(h.repo)
    out = h.run()
    sid = started(out)
    assert out.returncode == 1, shown(out)
    *warnings, last = out.stderr.splitlines()
    assert last.startswith(f"maestro: error: session {sid} stopped: "), shown(out)
    assert "events.jsonl: the session's log was changed behind its back: " in last
    assert f"maestro: WARNING: session {sid}: tampering: events.jsonl of session {sid} was deleted" in warnings
    assert f"session {sid}: completed" not in out.stdout
    assert not (h.repo / ".flow" / "maestro" / "sessions" / sid / "events.jsonl").exists()
    assert user_view(h.repo) == before
    assert h.peel(f"refs/heads/maestro/{sid}") == before.refs["refs/heads/main"]  # still at checkpoint 0


def test_an_agent_appending_to_the_log_pauses_with_abort_only_and_the_session_never_completes(
    tmp_path: Path,
) -> None:
    h = hostile_plan(tmp_path, """echo '{"seq": 999, "kind": "forged"}' >> "$S/events.jsonl\"""")
    before = user_view(h.repo)
    out = h.run()
    assert out.returncode == 3, shown(out)
    (line,) = tampering_lines(out)
    assert re.fullmatch(rf"events\.jsonl of session {h.sid}: 31 bytes appended after event \d+ by another writer "
                        r"\(moved to events\.jsonl\.foreign-1\)", line), line  # fmt: skip
    assert (h.session_dir / "events.jsonl.foreign-1").read_text() == '{"seq": 999, "kind": "forged"}\n'
    assert "forged" not in h.log_text()
    assert all(e.kind != "forged" for e in h.events())  # the log reads: the foreign line was cut off
    doc = h.status()
    assert (doc["state"], doc["decision_request"]["options"]) == ("paused", ["abort"])
    assert doc["decision_request"]["question"].startswith("The session's log was changed by something other than ")
    # retry is not an answer, and resuming without one is refused: abort is the only way on
    refused = h.answer("retry")
    assert refused.returncode == 2 and refused.stderr == (
        f"maestro: error: 'retry' is not an answer to session {h.sid}'s question; the options are: abort\n"
    )
    refused = h.resume()
    assert refused.returncode == 2 and f"session {h.sid} is waiting for a decision" in refused.stderr
    assert h.answer("abort").returncode == 0
    out = h.resume()
    assert out.returncode == 1, shown(out)
    assert out.stdout.splitlines()[-2] == f"session {h.sid}: aborted"
    assert h.status()["state"] == "aborted"
    assert user_view(h.repo) == before
    assert_refs_as_logged(h)


def test_a_replaced_log_stops_the_run_and_the_session_never_completes(tmp_path: Path) -> None:
    forge = ('if [ ! -e "$U/../forged" ]; then touch "$U/../forged"; '
             'sed "s/Build the sample/Build a forged thing/" "$S/events.jsonl" > "$S/forged.tmp"; '
             'mv "$S/forged.tmp" "$S/events.jsonl"; fi')  # fmt: skip
    h = hostile_plan(tmp_path, forge)
    out = h.run()
    assert out.returncode == 1, shown(out)
    last = out.stderr.splitlines()[-1]
    assert last.startswith(f"maestro: error: session {h.sid} stopped: ") and "was replaced by another file" in last
    again = h.resume()
    assert again.returncode != 0, shown(again)
    assert again.stderr.count("\n") == 1 and "changed behind maestro's back" in again.stderr  # one line: why
    assert h.status()["state"] != "completed"


# -- the user's side of the repository: reported, never restored ------------------------------------------------------


def test_an_agent_deleting_the_users_main_pauses_naming_it_and_how_to_bring_it_back(tmp_path: Path) -> None:
    h = hostile_plan(tmp_path, 'git -C "$U" update-ref -d "$B"')
    before = user_view(h.repo)
    main = before.refs["refs/heads/main"]
    out = h.run()
    what = (f"refs/heads/main was deleted (it was at {main[:12]}: `git update-ref refs/heads/main {main}` "
            "brings it back)")  # fmt: skip
    paused_for_tampering(h, out, what)
    assert_refs_as_logged(h)
    assert "refs/heads/main" not in user_view(h.repo).refs  # the user's refs are not written by maestro
    git(h.repo, "update-ref", "refs/heads/main", main)  # the command the line gives
    assert user_view(h.repo) == before


def test_an_agent_moving_main_to_another_commit_pauses_naming_it(tmp_path: Path) -> None:
    script = ('C="$(git commit-tree "$(git rev-parse HEAD^{tree})" -m other)"\n'
              'git -C "$U" update-ref "$B" "$C"')  # fmt: skip
    h = hostile_plan(tmp_path, script)
    before = user_view(h.repo)
    out = h.run()
    after = user_view(h.repo)
    old, new = before.refs["refs/heads/main"], after.refs["refs/heads/main"]
    assert subprocess.run(["git", "-C", str(h.repo), "merge-base", "--is-ancestor", old, new]).returncode == 1
    paused_for_tampering(h, out, f"refs/heads/main moved from {old[:12]} to {new[:12]}")
    assert_refs_as_logged(h)
    assert attrs.evolve(after, refs=before.refs) == before  # nothing else of the user's changed


def test_an_agent_pointing_the_users_head_at_the_session_branch_pauses_naming_it(tmp_path: Path) -> None:
    h = hostile_plan(tmp_path, 'git -C "$U" symbolic-ref HEAD "refs/heads/maestro/$SID"')
    before = user_view(h.repo)
    out = h.run()
    paused_for_tampering(h, out, f"HEAD now points at refs/heads/maestro/{h.sid} (points at refs/heads/main before)")
    after = user_view(h.repo)
    assert after.head == f"ref: refs/heads/maestro/{h.sid}\n".encode()
    assert (after.refs, after.index, after.config, after.hooks) == (before.refs, before.index, before.config,
                                                                    before.hooks)  # fmt: skip
    assert_refs_as_logged(h)


def test_an_agent_editing_git_config_pauses_naming_it(tmp_path: Path) -> None:
    h = hostile_plan(tmp_path, 'git config --file "$G/config" core.hooksPath "$U/../evil-hooks"')
    before = user_view(h.repo)
    out = h.run()
    paused_for_tampering(h, out, ".git/config was changed")
    after = user_view(h.repo)
    assert b"hooksPath" in after.config
    assert attrs.evolve(after, config=before.config) == before
    assert_refs_as_logged(h)


def test_an_agent_adding_a_hook_pauses_naming_it(tmp_path: Path) -> None:
    script = 'printf "#!/bin/sh\\necho pwned\\n" > "$G/hooks/post-checkout"\nchmod +x "$G/hooks/post-checkout"'
    h = hostile_plan(tmp_path, script)
    before = user_view(h.repo)
    out = h.run()
    paused_for_tampering(h, out, ".git/hooks/post-checkout was added (executable)")
    after = user_view(h.repo)
    assert after.hooks == {**before.hooks, "post-checkout": b"#!/bin/sh\necho pwned\n"}
    assert attrs.evolve(after, hooks=before.hooks) == before


# -- maestro's refs: put back from the log ----------------------------------------------------------------------------


def test_an_agent_moving_the_session_branch_is_put_back_from_the_log(tmp_path: Path) -> None:
    script = ('if [ "$MAESTRO_ATTEMPT" = 1 ]; then\n'
              '  C="$(git commit-tree "$(git rev-parse HEAD^{tree})" -m evil)"\n'
              '  git -C "$U" update-ref "refs/heads/maestro/$SID" "$C"\n'
              '  echo "$C" > "$U/../evil"\n'
              'fi')  # fmt: skip
    h = hostile_plan(tmp_path, script)
    before = user_view(h.repo)
    out = h.run()
    evil = (tmp_path / "evil").read_text().strip()
    ((_, zero),) = h.checkpoints()
    paused_for_tampering(h, out, f"refs/heads/maestro/{h.sid} is at {evil[:12]}; the log's last checkpoint is "
                                 f"{zero[:12]}")  # fmt: skip
    assert f"put back: refs/heads/maestro/{h.sid}: back at {zero[:12]}" in tampering_lines(out)
    assert_refs_as_logged(h)
    retry_completes(h)
    assert subprocess.run(["git", "-C", str(h.repo), "merge-base", "--is-ancestor", evil,
                           f"maestro/{h.sid}"]).returncode == 1  # fmt: skip
    assert user_view(h.repo) == before


def test_an_agent_deleting_a_checkpoint_tag_is_put_back_from_the_log(tmp_path: Path) -> None:
    script = 'if [ "$MAESTRO_ATTEMPT" = 1 ]; then git -C "$U" tag -d "maestro/$SID/0" >/dev/null; fi'
    h = hostile_plan(tmp_path, script)
    before = user_view(h.repo)
    out = h.run()
    (line, put_back) = tampering_lines(out)
    assert re.fullmatch(rf"tag maestro/{h.sid}/0 was deleted \(it was at [0-9a-f]{{12}}\)", line), line
    assert re.fullmatch(rf"put back: refs/tags/maestro/{h.sid}/0: back at [0-9a-f]{{12}}", put_back), put_back
    paused_for_tampering(h, out, line)
    assert_refs_as_logged(h)
    retry_completes(h)
    assert user_view(h.repo) == before


# -- a kill -9 mid-run ------------------------------------------------------------------------------------------------

KILL = """\
if [ ! -e "$U/../killed" ]; then
  touch "$U/../killed"
  {locks}
  kill -9 "$(cat "$S/lock")"
  exit 0
fi"""
DULWICH_LOCKS = """\
: > "$G/refs/heads/maestro/$SID.lock"
  mkdir -p "$G/objects/ab"
  : > "$G/objects/ab/0123456789abcdef0123456789abcdef012345.lock"
  : > "$G/worktrees/maestro-$SID-w1/index.lock\""""
"""What a dulwich writer killed mid-write leaves: a lock of the session's branch, of a loose object, of its
worktree's index."""


def dead_run(tmp_path: Path, locks: str = "") -> tuple[Hostile, list[Path]]:
    """A run whose maestro was SIGKILLed in its first attempt, after the agent made ``locks``; the lock files."""
    h = hostile_plan(tmp_path, KILL.format(locks=locks or ":"))
    out = h.run()
    assert out.returncode == -9, shown(out)
    return h, sorted((h.repo / ".git").rglob("*.lock"))


def test_a_resume_after_a_kill_9_clears_the_dead_runs_locks_and_completes(tmp_path: Path) -> None:
    h, locks = dead_run(tmp_path, DULWICH_LOCKS)
    git_dir = h.repo / ".git"
    assert [p.relative_to(git_dir).as_posix() for p in locks] == [
        "objects/ab/0123456789abcdef0123456789abcdef012345.lock",
        f"refs/heads/maestro/{h.sid}.lock",
        f"worktrees/maestro-{h.sid}-w1/index.lock",
    ]
    users = git_dir / "refs" / "heads" / "main.lock"  # the user's: not provably the dead run's, left alone
    users.write_text("the user's\n")
    old = time.time() - 60
    os.utime(users, (old, old))
    before = user_view(h.repo)
    out = h.resume()
    assert_completed(h, out)
    for lock in locks:
        assert not lock.exists()
        assert f"maestro: WARNING: {lock}: removing the lock file the stopped run left" in out.stderr.splitlines()
    assert users.read_text() == "the user's\n"
    assert user_view(h.repo) == before
    assert_refs_as_logged(h)
    assert [e.data["n"] for e in h.events() if e.kind == "checkpoint"] == [0, 1]  # never a second checkpoint 0


def test_a_resume_after_a_kill_9_refuses_in_one_line_a_lock_not_its_own(tmp_path: Path) -> None:
    h, locks = dead_run(tmp_path, ': > "$G/refs/heads/maestro/$SID.lock"')
    foreign = h.repo / ".git" / "packed-refs.lock"
    foreign.write_text("")
    old = time.time() - 60
    os.utime(foreign, (old, old))
    log = h.log_text()
    out = h.resume()
    assert out.returncode == 2, shown(out)
    assert out.stderr == (f"maestro: error: {foreign}: a lock file left by another git process; remove it if no git "
                          "command is running\n")  # fmt: skip
    assert all(lock.exists() for lock in locks)  # refused before anything was removed
    assert h.log_text() == log
    foreign.unlink()
    assert_completed(h, h.resume())
    assert not any(lock.exists() for lock in locks)
    assert_refs_as_logged(h)


def test_a_resume_puts_back_the_session_tags_deleted_while_it_was_dead(tmp_path: Path) -> None:
    h = hostile_plan(tmp_path, KILL.format(locks=":").replace("! -e", '"$MAESTRO_TASK_ID" = b ] && [ ! -e'),
                     tasks=[task("a"), task("b", deps=["a"])])  # fmt: skip
    out = h.run()
    assert out.returncode == -9, shown(out)
    logged = h.checkpoints()
    assert [n for n, _ in logged] == [0, 1]
    (h.repo / "mine.txt").write_text("the user's later work\n")  # the user goes on working meanwhile
    git(h.repo, "add", "mine.txt")
    git(h.repo, "commit", "-q", "-m", "later")
    for tag in git(h.repo, "tag", "-l", f"maestro/{h.sid}/*").split():
        git(h.repo, "tag", "-d", tag)
    out = h.resume()
    # never a second checkpoint 0: a tag there is the log's, the branch never takes the user's later work
    assert h.peel(f"refs/tags/maestro/{h.sid}/0") in (None, logged[0][1]), shown(out)
    assert h.branch_file("mine.txt") is None
    assert h.checkpoints()[:2] == logged
    if out.returncode != 0:  # refused: one line, and the session's refs as they were
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("maestro: error: "), shown(out)
        assert h.peel(f"refs/heads/maestro/{h.sid}") == logged[1][1]
    else:
        assert_completed(h, out)
        assert_refs_as_logged(h)


# -- a repository in the middle of something ----------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "file", "words"), [("merge", "MERGE_HEAD", "a merge"),
                                                          ("rebase", "rebase-merge", "a rebase")])  # fmt: skip
def test_a_repository_mid_merge_or_rebase_is_refused_with_nothing_written(
    tmp_path: Path, operation: str, file: str, words: str
) -> None:
    h = hostile_plan(tmp_path, "")
    git(h.repo, "checkout", "-q", "-b", "other")
    (h.repo / "README.md").write_text("theirs\n")
    git(h.repo, "commit", "-q", "-am", "theirs")
    git(h.repo, "checkout", "-q", "main")
    (h.repo / "README.md").write_text("mine\n")
    git(h.repo, "commit", "-q", "-am", "mine")
    git(h.repo, operation, "other", check=False)  # stops on the conflict
    assert (h.repo / ".git" / file).exists()
    before = user_view(h.repo)
    exclude = (h.repo / ".git" / "info" / "exclude").read_bytes()
    out = h.run()
    assert out.returncode == 2, shown(out)
    assert out.stderr.count("\n") == 1 and out.stdout == "", shown(out)
    assert out.stderr.startswith(f"maestro: error: {h.repo / '.git' / file}: the repository is in the middle of "
                                 f"{words}; finish it or abort it (git ")  # fmt: skip
    assert not (h.repo / ".flow").exists()
    assert not h.worktrees.exists() or not any(h.worktrees.iterdir())
    assert "maestro" not in git(h.repo, "for-each-ref", "--format=%(refname)")
    assert user_view(h.repo) == before
    assert (h.repo / ".git" / "info" / "exclude").read_bytes() == exclude


# -- other git processes ----------------------------------------------------------------------------------------------


def test_a_session_beside_git_status_loops_completes_and_never_writes_the_users_index(tmp_path: Path) -> None:
    h = hostile_plan(tmp_path, "sleep 0.4", tasks=[task("a"), task("b", deps=["a"])])
    settle_index(h.repo)
    before = user_view(h.repo)
    git(h.repo, "status")
    assert user_view(h.repo) == before  # git status alone writes nothing: what changes below is maestro's doing
    with git_status_loops(h.repo, h.worktrees) as loops:
        out = h.run()
    assert_completed(h, out)
    assert loops.failures == []
    assert loops.checkout > 10, loops
    assert loops.worktrees > 0 and any(name.startswith(f"maestro-{h.sid}-") for name in loops.seen), loops
    after = user_view(h.repo)
    assert after.index == before.index  # byte for byte
    assert after == before
    assert h.branch_file("a.txt") == "a\n" and h.branch_file("b.txt") == "b\n"


# -- shell syntax in values -------------------------------------------------------------------------------------------

TITLES = ["$(touch INJECTED)", "`touch INJECTED`", "'; touch INJECTED; '", '"; touch INJECTED; #', 'a\\"b $HOME *']


def injected(root: Path) -> list[Path]:
    return list(root.rglob("INJECTED"))


def test_shell_syntax_in_titles_descriptions_and_paths_reaches_the_command_agent_as_data(tmp_path: Path) -> None:
    root = tmp_path / "q'$(touch INJECTED);touch INJECTED;#"  # every path the agent is given holds it too
    tasks = [{**task(f"t{i}"), "title": t, "description": f"{t} $(touch INJECTED)"} for i, t in enumerate(TITLES)]
    template = ('printf "%s\\n" {title} > "{task_id}.title"; echo "Task {task_id}: {title}" > "{task_id}.line"; '
                'cp {prompt_file} "{task_id}.prompt"; printf %s {workdir} > "{task_id}.workdir"')  # fmt: skip
    h = hostile_plan(root, "", tasks=tasks, config=quick_config(workers=2), template=template)
    out = h.run()
    assert_completed(h, out)
    assert injected(tmp_path) == []
    for i, title in enumerate(TITLES):
        assert h.branch_file(f"t{i}.title") == f"{title}\n"
        assert h.branch_file(f"t{i}.line") == f"Task t{i}: {title}\n"
        prompt = h.branch_file(f"t{i}.prompt")
        assert prompt is not None and prompt.startswith(f"Task t{i}: {title}\n\n{title} $(touch INJECTED)\n")
        workdir = Path(h.branch_file(f"t{i}.workdir") or "")
        assert workdir.parent.parent.parent == h.worktrees and workdir.name.startswith(f"maestro-{h.sid}-w")


@pytest.mark.parametrize("name", ["t;touch INJECTED;#", "t;touch $HOSTILE_INJECTED;#"])
def test_a_folder_named_as_shell_syntax_is_one_word_of_the_detected_gate(tmp_path: Path, name: str) -> None:
    seen = tmp_path / "seen.txt"
    env = {"HOSTILE_SEEN": str(seen), "HOSTILE_INJECTED": str(tmp_path / "INJECTED")}
    h = hostile_plan(tmp_path, "", config=quick_config(tests=None), env=env)  # the tests gate detected
    folder = h.repo / name
    folder.mkdir()
    (folder / "test_it.py").write_text(
        "import os\nimport pathlib\nimport unittest\n\n\nclass T(unittest.TestCase):\n    def test_where(self):\n"
        "        pathlib.Path(os.environ['HOSTILE_SEEN']).write_text(pathlib.Path(__file__).resolve().parent.name)\n"
    )
    git(h.repo, "add", "-A")
    git(h.repo, "commit", "-q", "-m", "a folder")
    out = h.run()
    assert_completed(h, out)
    quoted = "'" + name + "'"
    assert f"command: python -m unittest discover -s {quoted}" in out.stdout
    assert "[Maestro] Gate tests (detected: unittest (D3)): passed — exit status 0" in out.stdout.splitlines()
    assert seen.read_text() == name  # the folder's test ran: the command named it, as one word
    assert injected(tmp_path) == []


# -- what the base cannot hold ----------------------------------------------------------------------------------------


def test_staged_work_is_kept_at_the_index_ref_and_an_empty_folder_is_noted(tmp_path: Path) -> None:
    h = hostile_plan(tmp_path, "")
    (h.repo / "staged.txt").write_text("staged\n")
    git(h.repo, "add", "staged.txt")
    (h.repo / "staged.txt").write_text("working\n")  # the tree differs from the index
    (h.repo / "empty" / "deeper").mkdir(parents=True)
    before = user_view(h.repo)
    out = h.run()
    assert_completed(h, out)
    notes = [
        f"The index (staged, not committed) is kept at refs/maestro/{h.sid}/index",
        "Staged, not committed: staged.txt; the index is kept as it was at session start",
        "Empty folders are not in the session (git stores no folders): empty",
    ]
    assert out.stdout.splitlines()[1:4] == [f"[Maestro] {n}" for n in notes]
    assert [e.data["text"] for e in h.events() if e.kind == "note"][1:4] == notes
    log = (h.session_dir / "execution-log.md").read_text()
    assert all(n in log for n in notes)
    assert git(h.repo, "show", f"refs/maestro/{h.sid}/index:staged.txt") == "staged"
    assert git(h.repo, "show", f"maestro/{h.sid}/0:staged.txt") == "working"  # the base is the tree as it is
    assert git(h.repo, "show", f"maestro/{h.sid}:staged.txt") == "working"
    assert user_view(h.repo) == before  # the index, the files: as they were
    assert (h.repo / "empty" / "deeper").is_dir()
