"""Any command as an agent: a shell command template run once per task attempt.

The values an attempt has are passed to the command in its environment, never as
shell text:

``{task_id}``      ``MAESTRO_TASK_ID``      the task's id
``{prompt_file}``  ``MAESTRO_PROMPT_FILE``  a file holding the prompt (its first line is ``Task <id>: <title>``)
``{workdir}``      ``MAESTRO_WORKDIR``      the repository (also the command's working directory)
``{attempt}``      ``MAESTRO_ATTEMPT``      the attempt number, from 1
``{title}``        ``MAESTRO_TASK_TITLE``   the task's title

A placeholder is filled in with a quoted reference to its variable —
``"${MAESTRO_TASK_TITLE}"`` where it stands outside quotes, ``${MAESTRO_TASK_TITLE}``
inside double quotes or an expanding here-document — so the shell reads the value
as data: whatever it holds (quotes, ``;``, ``$(...)``, backquotes, newlines), the
command receives it byte for byte as one word (or as that part of its word) and no
value can end its quoting.  Where no reference can be quoted safely — inside single
quotes, ``$'...'``, backquotes, ``${...}``, ``$((...))``, a quoted here-document or
its delimiter, right after a ``\\`` or a ``$`` — the template is refused when the
agent is made (:class:`~maestro.agents.AgentError`), with the fix; so is an unknown
placeholder, a conversion (``{task_id!r}``) or a format spec (``{attempt:d}``).  A
command that hands a value to another shell as code (``eval``, ``sh -c "... {title}"``,
``ssh host ... {title}``, bash arithmetic) runs it: pass ``"$MAESTRO_TASK_TITLE"``
along instead (docs/security.md).

For example ``my-agent --task {task_id} --prompt {prompt_file}``.  The command
runs with ``sh -c`` in the working directory, in its own process group, killed
at the timeout.  Exit 0 is success, any other exit a failure of class
``implementation`` (``critical`` for 126 and 127: the shell could not run it);
a timeout is ``transient``.

A command says a failure is *transient* (a rate limit, the network: retry the same
attempt later) with exit code 75 (``EX_TEMPFAIL``), or with a last line, on stdout
or stderr, of the form (:func:`transient_line` writes it, :func:`read_transient`
reads it)::

    maestro: transient: <reason>
    maestro: transient retry-after=<seconds>: <reason>

The line counts with any non-zero exit (exit 0 is success, whatever was printed);
``retry-after`` is a non-negative decimal number of seconds, at most
:data:`MAX_RETRY_AFTER_S` (more is read as that), carried as the result's
``retry_after_s``: the retry waits for the longer of it and the backoff delay.

The environment is maestro's with the agent's
``env`` and the request's ``env`` laid over it, then the variables above (a NUL
character in a value is written ``\\0``).  With no budget left the command is not
run (``critical``).
"""

from __future__ import annotations

import math
import re
import string
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from maestro.agents._common import Attempt, request_env, run_attempt, tail
from maestro.agents.base import PLAN_TASK, AgentError, AgentRequest, PlanOutcome, PlanRequest, task_prompt
from maestro.agents.process import ProcessOutcome
from maestro.core.records import AgentResult

__all__ = [
    "EX_TEMPFAIL",
    "MAX_RETRY_AFTER_S",
    "PLACEHOLDERS",
    "VARIABLES",
    "CommandAgent",
    "Transient",
    "read_transient",
    "shell_script",
    "transient_line",
]

VARIABLES = {
    "task_id": "MAESTRO_TASK_ID",
    "prompt_file": "MAESTRO_PROMPT_FILE",
    "workdir": "MAESTRO_WORKDIR",
    "attempt": "MAESTRO_ATTEMPT",
    "title": "MAESTRO_TASK_TITLE",
}
"""Each placeholder and the environment variable that carries its value."""

PLACEHOLDERS = tuple(VARIABLES)

EX_TEMPFAIL = 75
"""The exit code (sysexits.h) by which a command says its failure is transient: retry it later."""

MAX_RETRY_AFTER_S = 3600.0
"""The longest ``retry-after`` a command may ask for, in seconds; a longer one is read as this."""


# -- a transient failure, as a command says it ------------------------------------------------------------------------
_MARK = "maestro: transient"
_LINE = re.compile(r"maestro: transient(?: +retry-after=(?P<after>[^\s:]*))?(?: *:[ \t]*(?P<reason>.*))?\Z")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?\Z|\.[0-9]+\Z")


@attrs.frozen
class Transient:
    """What a command's transient line said: its reason, the seconds to wait (None: not said), and a ``note`` when
    the retry-after was not read as written (not a number: ignored; too long: cut to :data:`MAX_RETRY_AFTER_S`)."""

    reason: str
    retry_after_s: float | None = None
    note: str = ""


def transient_line(reason: str, retry_after_s: float | None = None) -> str:
    """The line a command prints last (on stdout or stderr) to say its failure is transient (no newline).

    ``reason`` is flattened to one line; ``retry_after_s`` is a number of seconds ≥ 0, or None.
    """
    flat = " ".join(reason.split())
    if retry_after_s is None:
        return f"{_MARK}: {flat}"
    if isinstance(retry_after_s, bool) or not math.isfinite(retry_after_s) or retry_after_s < 0:
        raise ValueError(f"retry_after_s is a number of seconds, at least 0, not {retry_after_s!r}")
    seconds = f"{retry_after_s:.3f}".rstrip("0").rstrip(".")
    return f"{_MARK} retry-after={seconds}: {flat}"


def read_transient(stdout: str, stderr: str = "") -> Transient | None:
    """The transient failure a command's output reports on its last non-blank line (stdout's first, then stderr's),
    or None.  Only the last line counts: the same words earlier (a log, an echoed prompt) do not."""
    for text in (stdout, stderr):
        lines = text.rstrip().splitlines()
        if not lines:
            continue
        found = _read_line(lines[-1].strip())
        if found is not None:
            return found
    return None


def _read_line(line: str) -> Transient | None:
    m = _LINE.match(line)
    if m is None:
        return None
    reason = (m.group("reason") or "").strip()
    after = m.group("after")
    if after is None:
        return Transient(reason)
    if not _SECONDS.match(after):
        return Transient(reason, None, f"retry-after {after!r} is not a number of seconds: ignored")
    seconds = float(after)
    if seconds > MAX_RETRY_AFTER_S:
        most = f"{MAX_RETRY_AFTER_S:g} s"
        return Transient(reason, MAX_RETRY_AFTER_S, f"retry-after {after} s is over the {most} maestro waits at most")
    return Transient(reason, seconds)


# -- where a placeholder stands in the shell's grammar ---------------------------------------------------------------
_UNQUOTED = ("top", "cmd", "comment")  # filled in as "${VAR}"
_QUOTED = ("dq", "heredoc")  # filled in as ${VAR}: the shell does not split or glob inside double quotes
_REFUSED = {
    "sq": "inside single quotes",
    "ansi": "inside $'...'",
    "bq": "inside backquotes (write $(...) instead)",
    "param": "inside ${...}",
    "arith": "inside $((...))",
    "literal-heredoc": "in a quoted here-document (<<'EOF')",
    "heredoc-word": "in a here-document's delimiter",
    "escaped": "right after a backslash",
    "dollar": "right after a $",
}
_WORD_END = frozenset(" \t\n;&|()<>")


@attrs.define
class _Frame:
    """One nesting level of the shell's grammar: its kind and what it needs to know to find its end."""

    kind: str
    depth: int = 0  # parentheses open inside $( or $((
    word: str = ""  # a here-document's delimiter, as read so far, then in full
    quoted: bool = False  # the delimiter was quoted: the body is literal
    quote: str = ""  # the quote open inside the delimiter word
    strip_tabs: bool = False  # <<- : leading tabs of the body's lines are not part of them
    line: str = ""  # a here-document body's current line


@attrs.define
class _Shell:
    """A small lexer of POSIX ``sh`` that says, for a point of a template, in what quoting it stands.

    It follows quotes, backslashes, ``$(``, ``${``, ``$((``, backquotes, comments and
    here-documents, which is all that decides how text at a point is read.  Where it
    might misjudge (``case`` patterns inside ``$(...)``), the reference it writes is
    still only ever expanded, never parsed: a misjudged value is split, never run.
    """

    stack: list[_Frame] = attrs.field(factory=lambda: [_Frame("top")])
    pending: list[_Frame] = attrs.field(factory=list)  # here-documents whose body starts at the next newline
    escaped: bool = False
    prev: str = ""  # the character before this point ("" at the start)

    def where(self) -> str:
        """What the next character stands in: a key of ``_REFUSED``, or one of ``_UNQUOTED``, ``_QUOTED``."""
        if self.escaped:
            return "escaped"
        if self.prev == "$" and self.stack[-1].kind not in ("sq", "comment", "literal-heredoc"):
            return "dollar"
        frame = self.stack[-1]
        if frame.kind == "heredoc" and frame.quoted:
            return "literal-heredoc"
        if frame.kind == "heredoc-word":
            return "heredoc-word"
        return frame.kind

    def placeholder(self) -> None:
        """A placeholder's reference was written here: it is part of a word (and of a body's line)."""
        if self.stack[-1].kind == "heredoc":
            self.stack[-1].line += "\0"  # a line with a value is never the delimiter
        self.prev = "x"

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def _step(self, text: str, i: int) -> int:
        """Read the character at ``i`` (and what it opens); the index of the next one."""
        c, frame, before = text[i], self.stack[-1], self.prev
        kind = frame.kind
        if kind == "heredoc-word":
            return self._delimiter(frame, c, i)
        if kind == "heredoc":
            if c == "\n":
                if (frame.line.lstrip("\t") if frame.strip_tabs else frame.line) == frame.word:
                    self.stack.pop()
                    self._start_body()
                else:
                    frame.line = ""
                self.prev = c
                return i + 1
            frame.line += c
        if self.escaped:
            self.escaped, self.prev = False, "x"
            return i + 1
        if kind == "sq":
            if c == "'":
                self.stack.pop()
            self.prev = c
            return i + 1
        if kind == "comment":
            if c == "\n":
                self.stack.pop()
                return i  # the newline ends the command too: read it again outside the comment
            self.prev = c
            return i + 1
        if kind == "heredoc" and frame.quoted:
            self.prev = c
            return i + 1
        if c == "\\":
            self.escaped = True
            return i + 1
        self.prev = c
        if kind in ("ansi", "bq"):
            if c == ("'" if kind == "ansi" else "`"):
                self.stack.pop()
            return i + 1
        if c == "$":
            return self._dollar(text, i, kind)
        if c == "`":
            self.stack.append(_Frame("bq"))
            return i + 1
        if kind == "dq":
            if c == '"':
                self.stack.pop()
            return i + 1
        if kind == "heredoc":
            return i + 1
        if kind == "arith":
            if c == "(":
                frame.depth += 1
            elif c == ")":
                if frame.depth:
                    frame.depth -= 1
                else:
                    self.stack.pop()
                    return i + 2  # the second ) of ))
            return i + 1
        if c in "'\"":
            self.stack.append(_Frame("sq" if c == "'" else "dq"))
            return i + 1
        if kind == "param":
            if c == "}":
                self.stack.pop()
            return i + 1
        return self._unquoted(text, i, frame, before)

    def _unquoted(self, text: str, i: int, frame: _Frame, before: str) -> int:
        """A character outside quotes, at the top or inside ``$(...)`` (``before``: the one before it)."""
        c = text[i]
        if c == "#" and (before == "" or before in _WORD_END):
            self.stack.append(_Frame("comment"))
        elif c == "<" and text[i + 1 : i + 2] == "<":
            if text[i + 2 : i + 3] == "<":  # <<< (bash): a word follows, not a here-document
                self.prev = "<"
                return i + 3
            strip = text[i + 2 : i + 3] == "-"
            self.stack.append(_Frame("heredoc-word", strip_tabs=strip))
            self.prev = "<"
            return i + (3 if strip else 2)
        elif c == "\n":
            self._start_body()
        elif frame.kind == "cmd" and c == "(":
            frame.depth += 1
        elif frame.kind == "cmd" and c == ")":
            if frame.depth:
                frame.depth -= 1
            else:
                self.stack.pop()
        return i + 1

    def _dollar(self, text: str, i: int, kind: str) -> int:
        after = text[i + 1 : i + 3]
        opened = "arith" if after == "((" else {"(": "cmd", "{": "param", "'": "ansi"}.get(after[:1])
        if opened is None or (opened == "ansi" and kind in ("dq", "heredoc")):  # $'...' is literal in double quotes
            return i + 1
        self.stack.append(_Frame(opened))
        self.prev = after[-1] if opened == "arith" else after[0]
        return i + (3 if opened == "arith" else 2)

    def _delimiter(self, frame: _Frame, c: str, i: int) -> int:
        """A character of a here-document's delimiter word (``<<EOF``, ``<<'EOF'``, ``<< "E"OF``)."""
        if self.escaped:
            self.escaped = False
            frame.word += c
        elif frame.quote:
            if c == frame.quote:
                frame.quote = ""
            else:
                frame.word += c
        elif c in "'\"":
            frame.quote, frame.quoted = c, True
        elif c == "\\":
            self.escaped = frame.quoted = True
        elif c in " \t" and not frame.word:
            pass
        elif c in _WORD_END:
            self.stack.pop()
            self.pending.append(_Frame("heredoc", word=frame.word, quoted=frame.quoted, strip_tabs=frame.strip_tabs))
            return i  # read it again: it ends the word and is read outside it
        else:
            frame.word += c
        self.prev = c
        return i + 1

    def _start_body(self) -> None:
        if self.pending:
            self.stack.append(self.pending.pop(0))


def shell_script(template: str) -> str:
    """The script ``sh -c`` runs for ``template``: each placeholder a quoted reference to its variable.

    Raises :class:`AgentError` (one line) for a template maestro cannot fill in safely.
    """
    if not isinstance(template, str) or not template.strip():
        raise AgentError("agent.command: a shell command template is needed, e.g. 'my-agent {prompt_file}'")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise AgentError(f"agent.command: {exc} in {template!r} (write {{{{ and }}}} for literal braces)") from None
    shell, out = _Shell(), []
    for literal, field, spec, conv in parts:
        shell.feed(literal)
        out.append(literal)
        if field is None:
            continue
        if field not in VARIABLES:
            raise AgentError(f"agent.command: unknown placeholder {{{field}}} in {template!r}; the placeholders are "
                             + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))  # fmt: skip
        if conv is not None or spec:
            written = f"{{{field}{'!' + conv if conv is not None else ''}{':' + spec if spec else ''}}}"
            raise AgentError(f"agent.command: {written} in {template!r}: a placeholder takes no conversion or "
                             f"format spec (write {{{field}}}; the value is filled in quoted)")  # fmt: skip
        where, name = shell.where(), VARIABLES[field]
        if where in _REFUSED:
            raise AgentError(f"agent.command: {{{field}}} {_REFUSED[where]} in {template!r}: maestro fills in a "
                             f"placeholder as a quoted reference to ${name}: write it outside quotes or inside double "
                             f'quotes, or write "${name}" instead')  # fmt: skip
        out.append(f'"${{{name}}}"' if where in _UNQUOTED else f"${{{name}}}")
        shell.placeholder()
    return "".join(out)


def _check_template(_inst: object, _attr: object, template: str) -> None:
    shell_script(template)


@attrs.frozen
class CommandAgent:
    """A shell command template per task attempt (see the module for the placeholders)."""

    template: str = attrs.field(validator=_check_template)
    env: Mapping[str, str] = attrs.field(factory=dict)
    name: str = "command"

    def command(self, request: AgentRequest, prompt_file: Path) -> list[str]:
        """``sh -c <the script>``: the template with each placeholder a quoted reference to its variable."""
        return ["sh", "-c", shell_script(self.template)]

    def values(self, request: AgentRequest, prompt_file: Path) -> dict[str, str]:
        """The environment variables that carry the placeholders' values (:data:`VARIABLES`)."""
        values = {
            "task_id": request.task.id,
            "prompt_file": str(prompt_file),
            "workdir": str(request.workdir),
            "attempt": str(request.attempt),
            "title": request.task.title,
        }
        # no environment variable can hold a NUL character: a title with one gets it written \0
        return {VARIABLES[k]: v.replace("\0", "\\0") for k, v in values.items()}

    def run(self, request: AgentRequest) -> AgentResult:
        """Write the prompt to a file, run the command, judge by its exit code."""
        attempt = Attempt(self.name, request.task.id, request.attempt, request.session_dir)
        refused = attempt.budget_failure(request.budget_usd)
        if refused is not None:
            return refused
        with tempfile.TemporaryDirectory(prefix="maestro-prompt-") as tmp:
            if attempt.paths is not None:
                prompt_file = attempt.paths[0].with_suffix(".prompt.md")
                prompt_file.parent.mkdir(parents=True, exist_ok=True)
            else:
                prompt_file = Path(tmp) / f"{request.task.id}.prompt.md"
            prompt_file.write_text(task_prompt(request), encoding="utf-8")
            env = {**request_env(self.env, request.env), **self.values(request, prompt_file)}
            outcome = run_attempt(attempt, self.command(request, prompt_file), cwd=request.workdir,
                                  timeout_s=request.timeout_s, env=env)  # fmt: skip
        return self._judge(attempt, outcome)

    def _judge(self, attempt: Attempt, outcome: ProcessOutcome) -> AgentResult:
        early = attempt.common_failure(outcome, "the command's shell (sh) is not on PATH")
        if early is not None:
            return early
        last = tail(outcome.stdout.strip() or outcome.stderr.strip(), 400)
        if outcome.exit_code == 0:
            return attempt.result(outcome, "succeeded", None, last or "done")
        why = tail(outcome.stderr.strip() or outcome.stdout.strip(), 400) or "no output"
        said = read_transient(outcome.stdout, outcome.stderr)
        if said is not None:
            summary = f"the command reported a transient failure (exit {outcome.exit_code}): {said.reason or why}"
            if said.retry_after_s is not None:
                summary += f"; it asks to retry after {said.retry_after_s:g} s"
            if said.note:
                summary += f" ({said.note})"
            return attempt.result(outcome, "failed", "transient", summary, retry_after_s=said.retry_after_s)
        if outcome.exit_code == EX_TEMPFAIL:
            summary = f"the command exited {EX_TEMPFAIL} (EX_TEMPFAIL: a transient failure): {why}"
            return attempt.result(outcome, "failed", "transient", summary)
        cls = "critical" if outcome.exit_code in (126, 127) else "implementation"
        return attempt.result(outcome, "failed", cls, f"the command exited {outcome.exit_code}: {why}")

    def plan(self, request: PlanRequest) -> PlanOutcome:
        """A command cannot plan: give maestro a PRD and tasks."""
        attempt = Attempt(self.name, PLAN_TASK, 1, request.session_dir)
        nothing = ProcessOutcome(None, "", "", 0.0)
        return PlanOutcome(attempt.result(nothing, "failed", "ambiguous",
                                          "a command agent cannot write a plan: give maestro a PRD and tasks "
                                          "(maestro run --prd FILE --tasks FILE)"))  # fmt: skip
