"""A session's result and what it left: ``land`` (its branch into yours) and ``clean`` (its worktrees)."""

from __future__ import annotations

import argparse
import sys

from maestro.cli._common import session_id
from maestro.core.errors import MaestroError
from maestro.store.filestore import Store

__all__ = ["cmd_clean", "cmd_land"]


def cmd_land(args: argparse.Namespace) -> int:
    # imported here: start-up of the command line stays light
    from maestro.run.landing import land

    store = Store(args.repo)
    sid = session_id(store, args.session)
    landed = land(store, sid, force=args.force)
    out = sys.stdout
    if landed.how == "already landed":
        out.write(f"session {sid}: already landed: {landed.branch} holds maestro/{sid} ({landed.commit[:12]})\n")
        return 0
    if landed.fast_forward:
        out.write(f"fast-forward {landed.branch} to {landed.commit[:12]}\n")
    else:
        out.write(f"merged maestro/{sid} into {landed.branch} as {landed.commit[:12]}\n")
    n = landed.files_changed
    out.write(f"{n} file{'' if n == 1 else 's'} changed\n")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    # imported here: start-up of the command line stays light
    from maestro.run.cleaning import clean, clean_all

    if args.all == (args.session is not None):
        raise MaestroError("clean: name a SESSION or give --all (not both)")
    store = Store(args.repo)
    cleaned = clean_all(store) if args.all else clean(store, session_id(store, args.session))
    out = sys.stdout
    for sid, n in cleaned.removed.items():
        out.write(f"session {sid}: removed {n} worktree{'' if n == 1 else 's'}\n")
    if cleaned.stale:
        k = cleaned.stale
        out.write(f"removed {k} stale worktree entr{'y' if k == 1 else 'ies'} (their folders had gone)\n")
    for sid, pid in cleaned.live.items():
        holder = f"pid {pid}" if pid is not None else "another process"
        out.write(f"session {sid}: running ({holder}), skipped\n")
    if cleaned.nothing:
        out.write("nothing to clean\n")
    return 0
