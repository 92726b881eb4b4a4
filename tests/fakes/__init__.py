"""Fake executables of the coding-agent CLIs maestro drives: ``claude``, ``codex`` and ``aider``.

Put :data:`FAKES_DIR` first on ``PATH`` and an adapter runs them by name.  They are
stdlib-only Python scripts that parse their command line like the real CLIs (Claude Code
2.1.328, codex-cli 0.169.0, aider 0.86.2) and print what the real ones print, field for
field: the shapes come from /work/shared/protocols.md and the real captures copied into ``captures/`` beside
this file (their README says how each was recorded).  ``tests/test_fakes.py`` pins them to the captures.

Environment:

``FAKE_SCENARIO``  what happens (default ``success``): ``success``, ``max_turns``, ``auth``,
                   ``rate_limit``, ``budget``, ``permission_denied``, ``malformed``, ``crash``,
                   ``hang``, ``plan``, ``stdin_wait`` (codex), ``no_conversation`` (claude with
                   ``--resume``).  A scenario a fake does not model exits 3 with a message.
``FAKE_LOG``       a file; every invocation appends one JSON line ``{"prog", "argv"
                   (without the program), "cwd", "stdin" (text read, or null), "pid",
                   "scenario"}`` once its stdin is read (or when it refuses its arguments), and
                   ``hang`` adds ``{"prog", "event": "grandchild", "grandchild_pid", "pid"}``.
``FAKE_WRITE``     a path relative to the working directory (codex: to ``-C``) that the
                   ``success``/``malformed`` run writes, when the agent's permissions allow it.
``FAKE_CONTENT``   what it writes (default ``"done\\n"``).
``FAKE_PRD``, ``FAKE_TASKS``  files whose texts form the ``plan`` answer
                   ``{"prd_markdown", "tasks_yaml"}`` (default: a small valid plan).

Permissions are modelled, as in the real CLIs: claude writes only with
``--permission-mode acceptEdits|auto|bypassPermissions``, ``--dangerously-skip-permissions`` or
an ``Edit``/``Write`` rule in ``--allowedTools`` (otherwise a ``permission_denials`` entry, exit
0); codex writes only with ``--sandbox workspace-write|danger-full-access`` (its default is
read-only: a failed ``file_change``, exit 0).  The helpers that run
them and read ``FAKE_LOG`` are in ``tests/support/fakes.py``.
"""
