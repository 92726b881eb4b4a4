"""What the fake agent CLIs of this folder (``claude``, ``codex``, ``aider``) share.  Standard library only.

The fakes import this module by path (their own folder is put first on ``sys.path``),
so it must not import anything from ``maestro`` or ``tests``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

SCENARIO = os.environ.get("FAKE_SCENARIO") or "success"
"""The behaviour asked for; every fake reads it once, at start."""

NOT_MODELLED = 3
"""Exit code of a fake asked for a scenario it does not model (a mistake in the test, not an agent failure)."""

DEFAULT_PRD = """\
---
prd:
  version: v1
  feature_name: greeting
  status: draft
priorities:
  requirements:
    - id: FR-1
      text: "Print a greeting"
      priority: P0
---

# Product Requirements Document: Greeting

## Functional Requirements

| ID | Requirement | Priority | Notes |
|----|-------------|----------|-------|
| FR-1 | Print a greeting | P0 | Core |
"""

DEFAULT_TASKS = """\
version: 1
tasks:
  - id: T1
    title: Add the greeting
    description: Write greet.py that prints a greeting.
    category: backend
    requirements: [FR-1]
    depends_on: []
    risk: low
    priority: P1
    acceptance:
      - python greet.py
"""


def setup() -> None:
    """UTF-8 on stdout and stderr whatever the locale (the real CLIs print '·' and '─')."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]


def dumps(obj: object) -> str:
    """One compact JSON line, non-ASCII kept as is, like the real CLIs."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def out(line: str) -> None:
    """A line on stdout, flushed at once (a reader sees it before the fake exits or hangs)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit(obj: object) -> None:
    out(dumps(obj))


def err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def new_uuid() -> str:
    return str(uuid.uuid4())


def uuid7() -> str:
    """A time-ordered UUID (version 7), the shape of Codex thread ids."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


def timestamp() -> str:
    """``2026-11-26T03:27:19.441Z``, as in Claude Code's assistant lines."""
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def log(prog: str, argv: list[str], stdin: str | None, **extra: object) -> None:
    """Append one JSON line to ``$FAKE_LOG``: prog, argv (without the program), cwd, stdin, pid, scenario."""
    path = os.environ.get("FAKE_LOG")
    if not path:
        return
    record = {"prog": prog, "argv": argv, "cwd": os.getcwd(), "stdin": stdin, "pid": os.getpid()}
    record.update(scenario=SCENARIO, **extra)
    _append(path, record)


def log_event(prog: str, event: str, **fields: object) -> None:
    """Append a non-invocation record to ``$FAKE_LOG``, e.g. ``{"event": "grandchild", "grandchild_pid": …}``."""
    path = os.environ.get("FAKE_LOG")
    if path:
        _append(path, {"prog": prog, "event": event, "pid": os.getpid(), **fields})


def _append(path: str, record: dict[str, object]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps(record) + "\n")


def stdin_ready(timeout_s: float) -> bool:
    """Whether stdin (not a terminal) has data or EOF within ``timeout_s``."""
    try:
        ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    except (OSError, ValueError):
        return True
    return bool(ready)


def read_stdin() -> str:
    """Everything on stdin up to EOF (blocks while the writer keeps the pipe open)."""
    try:
        return sys.stdin.buffer.read().decode("utf-8", errors="replace")
    except (OSError, ValueError, AttributeError):
        return ""


def stdin_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def target(base: str | os.PathLike[str]) -> Path | None:
    """The file ``$FAKE_WRITE`` names, relative to ``base``; None when the variable is unset."""
    rel = os.environ.get("FAKE_WRITE")
    return Path(base, rel) if rel else None


def content() -> str:
    return os.environ.get("FAKE_CONTENT", "done\n")


def write_target(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content(), encoding="utf-8")


def hang(prog: str) -> None:
    """Start a grandchild ``sleep 3600`` in this process group, log its pid, then sleep until killed."""
    child = subprocess.Popen(
        ["sleep", "3600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log_event(prog, "grandchild", grandchild_pid=child.pid)
    time.sleep(3600)
    os._exit(0)


def plan_answer() -> dict[str, str]:
    """The planning answer: the texts of ``$FAKE_PRD`` and ``$FAKE_TASKS`` (files), or a small valid default plan."""
    answer = {"prd_markdown": DEFAULT_PRD, "tasks_yaml": DEFAULT_TASKS}
    for key, var in (("prd_markdown", "FAKE_PRD"), ("tasks_yaml", "FAKE_TASKS")):
        if os.environ.get(var):
            answer[key] = Path(os.environ[var]).read_text(encoding="utf-8")
    return answer


def git_root(start: str | os.PathLike[str]) -> Path | None:
    """The nearest folder at or above ``start`` holding ``.git`` (a folder, or a file for worktrees)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def option_table(specs: str) -> dict[str, tuple[str, str, str, str]]:
    """Option specs like ``-p, --print|--model <model>|--add-dir <dirs...>|-r, --resume [value]`` (``|`` or newline
    between specs) as a map: every spelling -> (key: the first long name, spec, kind, argument), kind being
    ``flag``, ``value``, ``optional`` or ``variadic``."""
    table = {}
    for spec in re.split(r"[|\n]", specs.strip()):
        m = re.fullmatch(r"(-{1,2}[\w-]+(?:, -{1,2}[\w-]+)*)(?: ([<\[].*))?", spec.strip())
        assert m, spec
        names, arg = m[1].split(", "), m[2] or ""
        kind = "flag" if not arg else "variadic" if arg.endswith("...>") else "value" if arg[0] == "<" else "optional"
        key = next((n for n in names if n.startswith("--")), names[0])
        table.update(dict.fromkeys(names, (key, spec.strip(), kind, arg)))
    return table


def parse_args(args, table, fail, *, hyphen_values=True):
    """Options and positionals, the way commander (Claude Code) and clap (Codex) read them.

    Returns ``(opts, seen, positionals)``: ``opts`` maps an option's key to True (flags; optional options given
    without a value), its value (the last one wins) or the list of its values (variadic options, which take every
    following argument up to the next option, a prompt included); ``seen`` lists ``(spelling, key, value)`` in
    order.  ``fail(problem, arg, entry)`` is called for ``"unknown"`` and ``"missing"`` and must not return.
    ``hyphen_values``: a required value may start with ``-`` (commander) or not (clap).
    """
    opts, seen, positionals, args, i = {}, [], [], list(args), 0
    while i < len(args):
        a, i = args[i], i + 1
        if a == "--":
            positionals += args[i:]
            break
        if a == "-" or not a.startswith("-"):
            positionals.append(a)
            continue
        name, eq, value = a.partition("=") if a.startswith("--") else (a[:2], "", "")
        entry = table.get(name)
        if entry is not None and not a.startswith("--") and len(a) > 2:
            if entry[2] == "flag":  # a cluster of short flags: -pv
                args[i:i] = ["-" + c for c in a[2:]]
            else:  # an attached value: -sread-only, -s=read-only
                eq, value = "=", a[2:].removeprefix("=")
        if entry is None:
            fail("unknown", a, None)
        key, _, kind, _ = entry
        value = value if eq else None
        if kind == "variadic":
            values = [value] if value is not None else []
            while value is None and i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
            if not values:
                fail("missing", a, entry)
            opts.setdefault(key, []).extend(values)
            seen += [(name, key, v) for v in values]
            continue
        if kind == "value" and value is None:
            if i >= len(args) or (not hyphen_values and args[i].startswith("-") and args[i] != "-"):
                fail("missing", a, entry)
            value, i = args[i], i + 1
        elif kind == "optional" and value is None and i < len(args) and not args[i].startswith("-"):
            value, i = args[i], i + 1
        opts[key] = True if value is None else value
        seen.append((name, key, opts[key]))
    return opts, seen, positionals


def not_modelled(prog: str, scenario: str) -> None:
    err(f"fake {prog}: FAKE_SCENARIO={scenario!r} is not modelled for {prog}")
    sys.exit(NOT_MODELLED)
