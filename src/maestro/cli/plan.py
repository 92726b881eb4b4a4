"""Plans and decisions without a session: ``prd``, ``tasks``, ``decide``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from maestro.cli._common import escaped
from maestro.core.errors import MaestroError
from maestro.core.records import converter
from maestro.decide.engine import DecisionEngine
from maestro.decide.strategies.ordering import task_ordering
from maestro.plan.load import load_tasks
from maestro.plan.ordering import order_tasks
from maestro.plan.prd import load_prd
from maestro.store.filestore import atomic_write

__all__ = ["cmd_decide", "cmd_prd", "cmd_tasks"]


def cmd_prd(args: argparse.Namespace) -> int:
    prd = load_prd(args.path)
    if args.json:
        rows = [{"id": r.id, "priority": r.priority, "text": r.text, "line": r.line} for r in prd.requirements]
        doc = {"title": prd.title, "status": prd.status, "requirements": rows}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    status = f" ({prd.status})" if prd.status else ""
    sys.stdout.write(f"{escaped(prd.title or args.path)}{status}: {len(prd.requirements)} requirements\n")
    width = max(len(r.id) for r in prd.requirements)
    for r in prd.requirements:
        sys.stdout.write(f"  {r.id:<{width}}  {r.priority}  {escaped(r.text)}\n")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    ids = load_prd(args.prd).requirement_ids if args.prd else None
    graph = load_tasks(args.path, requirement_ids=ids)
    if args.output:
        atomic_write(Path(args.output), graph.to_yaml())
    if args.yaml:
        sys.stdout.write(graph.to_yaml())
        return 0
    engine = DecisionEngine(strategies={"task_ordering": task_ordering})
    decision = engine.decide("task_ordering", graph=graph, max_parallel=args.max_parallel)
    ordering = order_tasks(graph, max_parallel=args.max_parallel)
    if args.json:
        doc = {**ordering.to_dict(), "decision": converter.unstructure(decision)}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    out.write(f"{args.path}: {len(graph)} tasks in {len(ordering.groups)} groups\n")
    for i, group in enumerate(ordering.groups, 1):
        out.write(f"  G{i}:\n")
        for tid in group:
            t = graph[tid]
            deps = f" after {', '.join(t.depends_on)}" if t.depends_on else ""
            out.write(f"    {tid}  {t.priority} {t.risk:<6} {escaped(t.title)}{deps}\n")
    out.write(f"rationale: {decision.rationale}\n")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    for name in ("capability", "ecosystem", "gate", "feature"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    repo = Path(args.repo)
    if not repo.is_dir():
        raise MaestroError(f"{repo}: no such directory")
    decision = DecisionEngine().decide(args.kind, repo=repo, **params)
    if args.json:
        sys.stdout.write(json.dumps(converter.unstructure(decision), indent=2, ensure_ascii=False) + "\n")
        return 0
    out = sys.stdout
    out.write(f"{decision.kind}: {escaped(decision.question)}\n")
    how = f"confidence {decision.confidence:.2f}, by {decision.decided_by}"
    out.write(f"  choice: {escaped(decision.choice)} ({how})\n")
    out.write(f"  rationale: {escaped(decision.rationale)}\n")
    for option in decision.options:
        out.write(f"  option {escaped(option.name)}  score {option.score:.2f}\n")
        for ev in option.evidence:
            out.write(f"    {escaped(str(ev))}\n")
    return 0
