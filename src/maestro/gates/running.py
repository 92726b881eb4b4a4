"""Running a gate: its command with ``sh -c`` in the repository, judged ``passed``, ``failed`` or ``skipped``.

A gate is a shell command run in the repository (through
:func:`~maestro.agents.process.run_process`: its own process group, a
timeout, transcripts written as the output comes)::

    for name, (command, required, source) in gate_commands(config.gates, decisions).items():
        result = run_gate(name, command, required=required, workdir=repo, transcript_dir=session_dir / "gates")

Its outcome is a :class:`~maestro.core.records.GateResult`:

* ``passed`` — the command exited 0 (and its JUnit report, if any, counts no failure);
* ``failed`` — it exited non-zero, its JUnit report counts failures or errors, or it timed out;
* ``skipped`` — there is no command, or the tool it names is not installed
  (:func:`~maestro.gates.commands.missing_tool`).  A missing tool is never reported as passed.

A command may contain ``{junit}``: it is replaced by the (shell-quoted) path of a
temporary file, and the JUnit XML the tool writes there gives the gate its
passed and failed counts (:mod:`maestro.gates.junit`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from maestro.agents.process import ProcessOutcome, run_process
from maestro.config.model import render_command
from maestro.core.errors import GateError, MaestroError
from maestro.core.records import GateResult
from maestro.core.text import MARK, last_line, one_line
from maestro.gates.commands import GateCommand, missing_tool
from maestro.gates.junit import JUnitCounts, report_counts

__all__ = ["DEFAULT_TIMEOUT_S", "NO_COMMAND", "gate_runs", "last_output", "run_gate", "run_gates"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1800.0
NO_COMMAND = "no command configured and none detected"
_SUMMARY_CHARS = 200  # one failure message or output line in a summary


def _stem(name: str) -> str:
    """What gate ``name``'s transcripts are called before their run number: ``gate-<name>``, the name made safe."""
    return "gate-" + (re.sub(r"[^A-Za-z0-9._-]", "_", name) or "gate")


def gate_runs(transcript_dir: Path, name: str) -> list[tuple[int, Path, Path]]:
    """The runs of gate ``name`` whose transcripts are in ``transcript_dir``, first to last: each run's number and
    its ``gate-<name>.<n>.out`` and ``.err`` (either may be missing)."""
    stem = _stem(name)
    pattern = re.compile(rf"{re.escape(stem)}\.([0-9]+)\.(?:out|err|xml)\Z")
    taken = {int(m[1]) for p in transcript_dir.glob(f"{stem}.*") if (m := pattern.match(p.name))}
    return [(n, transcript_dir / f"{stem}.{n}.out", transcript_dir / f"{stem}.{n}.err") for n in sorted(taken)]


_ENDS_BYTES = 256 * 1024  # of a transcript longer than twice this, its first and last this many bytes are read


def last_output(transcript_dir: Path, name: str) -> str:
    """What gate ``name``'s last run on record printed: its stdout, then its stderr on lines of their own ("" when
    there is none).  Of a long transcript its beginning and end are read, around a line saying how much was left
    out: a gate that printed gigabytes still shows its head and tail."""
    runs = gate_runs(transcript_dir, name)
    if not runs:
        return ""
    _n, out, err = runs[-1]
    parts = [text for text in map(_ends, (out, err)) if text.strip()]
    return "".join(t if t.endswith("\n") else t + "\n" for t in parts)


def _ends(path: Path) -> str:
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= 2 * _ENDS_BYTES:
                return f.read().decode("utf-8", "replace")
            head = f.read(_ENDS_BYTES)
            f.seek(size - _ENDS_BYTES)
            tail = f.read(_ENDS_BYTES)
    except OSError:
        return ""
    cut = f"\n[{MARK} {size - 2 * _ENDS_BYTES:,} bytes left out {MARK}]\n"
    return head.decode("utf-8", "replace") + cut + tail.decode("utf-8", "replace")


def _transcripts(transcript_dir: Path | None, name: str) -> tuple[Path, Path] | None:
    """The transcripts of gate ``name``'s next run, numbered one more than the highest in ``transcript_dir``."""
    if transcript_dir is None:
        return None
    runs = gate_runs(transcript_dir, name)
    n, stem = (runs[-1][0] if runs else 0) + 1, _stem(name)
    return transcript_dir / f"{stem}.{n}.out", transcript_dir / f"{stem}.{n}.err"


def run_gate(
    name: str,
    command: str | None,
    *,
    required: bool,
    workdir: Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transcript_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> GateResult:
    """Run one gate's ``command`` with ``sh -c`` in ``workdir`` and say how it went.

    The command is written as in ``config.yaml`` (:func:`maestro.config.model.render_command`):
    ``{junit}`` becomes a temporary file's shell-quoted path, ``{{`` and ``}}``
    literal braces, ``${VAR}`` is the shell's.  The JUnit XML written to
    ``{junit}`` gives the passed and failed counts (a copy is kept beside the
    transcripts as ``gate-<name>.<n>.xml``).  Never raises for the command's
    failures; raises :class:`GateError` only when ``workdir`` is not a directory.
    """
    if command is None or not command.strip():
        return GateResult(name, "skipped", required, NO_COMMAND)
    if not Path(workdir).is_dir():
        raise GateError(f"gate {name}: the working directory {workdir} is not a directory")
    wants_report = "{junit}" in command
    tmp = Path(tempfile.mkdtemp(prefix="maestro-junit-")) if wants_report else None
    try:
        junit = tmp / "junit.xml" if tmp is not None else None
        try:
            shell_command = render_command(command, junit=junit or os.devnull)
        except MaestroError as exc:  # a bad placeholder: load_config refuses it, a caller's command may have it
            return GateResult(name, "failed", required, f"the command cannot be run: {exc}")
        transcript = _transcripts(transcript_dir, name)
        log.debug("gate %s: running %s in %s", name, shell_command, workdir)
        outcome = run_process(["sh", "-c", shell_command], cwd=Path(workdir), timeout_s=timeout_s, env=env,
                              transcript=transcript)  # fmt: skip
        counts, report_problem = None, ""
        if junit is not None and junit.is_file():
            where = "{junit}"
            if transcript is not None:
                kept = transcript[0].with_suffix(".xml")
                shutil.copyfile(junit, kept)
                where = str(kept)
            try:
                counts = report_counts(where, junit.read_bytes())
            except (GateError, OSError) as exc:
                report_problem = f"the JUnit report is unreadable: {exc}"
                log.warning("gate %s: %s", name, report_problem)
        result = _judge(name, command=command, required=required, outcome=outcome, counts=counts,
                        report_problem=report_problem, root=Path(workdir), timeout_s=timeout_s)  # fmt: skip
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("gate %s: %s: %s", name, result.status, result.summary)
    return result


def _judge(
    name: str,
    *,
    command: str,
    required: bool,
    outcome: ProcessOutcome,
    counts: JUnitCounts | None,
    report_problem: str,
    root: Path,
    timeout_s: float,
) -> GateResult:
    if outcome.timed_out:
        text = f"timed out after {timeout_s:g} s: the command was killed"
        tail = last_line(outcome.stdout) or last_line(outcome.stderr)
        text += f"; last output: {one_line(tail, _SUMMARY_CHARS)}" if tail else ""
        return GateResult(name, "failed", required, text)
    if counts is None:  # a report proves the tool ran
        reason = missing_tool(command, outcome)
        if reason is not None:
            return GateResult(name, "skipped", required, reason)
    code = outcome.exit_code
    if counts is not None:
        summary = counts.summary(root)
        failed = code != 0 or counts.not_passed > 0
        if code != 0 and counts.not_passed == 0:
            summary += f"; exit status {code}" + _tail_note(outcome)
        elif code == 0 and counts.not_passed > 0:
            summary += "; exit status 0, but the report counts failures"
        return GateResult(name, "failed" if failed else "passed", required, summary, counts.passed, counts.not_passed)
    summary = "exit status 0" if code == 0 else f"exit status {code}{_tail_note(outcome)}"
    if code == 0:
        tail = last_line(outcome.stdout)
        summary += f": {one_line(tail, _SUMMARY_CHARS)}" if tail else ""
    if report_problem:
        summary += f"; {report_problem}"
    return GateResult(name, "passed" if code == 0 else "failed", required, summary)


def _tail_note(outcome: ProcessOutcome) -> str:
    tail = last_line(outcome.stdout) or last_line(outcome.stderr)
    return f": {one_line(tail, _SUMMARY_CHARS)}" if tail else ""


def run_gates(
    commands: Mapping[str, GateCommand | tuple[str | None, bool, str]],
    *,
    workdir: Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transcript_dir: Path | None = None,
) -> tuple[GateResult, ...]:
    """Run every gate of :func:`~maestro.gates.commands.gate_commands`, in order."""
    return tuple(
        run_gate(name, command, required=required, workdir=workdir, timeout_s=timeout_s, transcript_dir=transcript_dir)
        for name, (command, required, _source) in commands.items()
    )
