"""The merge queue: a succeeded attempt merged onto the session branch, revalidated, and made the next checkpoint.

Attempts are merged one at a time, in the order they finish, on the coordinating thread:

1. a three-way merge of the attempt's commit onto the branch head, from the base the
   attempt started at (:func:`maestro.git.merging.merge_commits`, no working tree); a
   fast-forward when nothing was merged since it started.  Conflicts are a ``merge``
   decision of the engine, and the attempt is rejected with the conflicting hunks;
2. the merged tree is revalidated in the session's integration worktree: files the task
   deleted outside its declared ``files``, then its acceptance commands and those of every
   task merged before it, each once, several at a time (:mod:`maestro.run.regression`).
   A failure rejects the attempt: the branch never moved;
3. the task's ``succeed`` move; the merge is then the queue's :meth:`~MergeQueue.tip`, where
   the tasks it made ready start at once, before the branch moves to it (compare-and-swap) and
   it is tagged and recorded as the next checkpoint (:meth:`~MergeQueue.advance`, which the
   scheduler calls once it has started them).  So a dependent task waits for the merge and two
   log lines, not for the refs and the checkpoint.  A crash before the checkpoint is recorded is
   a task that succeeded after the last recorded checkpoint, and its dependents were running:
   a resume redoes them all.

The integration worktree is brought to a commit only when a command is to run there, and to
the head before anything else looks at it (:meth:`MergeQueue.show`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from dulwich.diff_tree import tree_changes
from dulwich.objects import Commit, ObjectID

from maestro.core.records import CheckpointRecord, FileChange
from maestro.core.text import first_line
from maestro.git.merging import merge_commits
from maestro.plan.tasks import Task
from maestro.run.regression import regression

if TYPE_CHECKING:
    from maestro.run.loop import SessionRun

__all__ = ["MergeQueue", "Merged", "Rejected"]


@attrs.frozen
class Rejected:
    """An attempt the queue did not merge: ``conflict`` or ``regression``, a summary, and the feedback for a re-run."""

    failure_class: str
    summary: str
    feedback: str


@attrs.frozen
class Merged:
    """An attempt the queue merged: the merge commit, the number of the checkpoint it becomes, the files it changes."""

    task: str
    commit: ObjectID
    label: str
    n: int
    files: tuple[FileChange, ...]


class MergeQueue:
    """The merges of one session run."""

    def __init__(self, run: SessionRun) -> None:
        self.run = run
        self._shown: ObjectID | None = None  # the commit the integration worktree shows (None: not known)
        self._pending: list[Merged] = []  # merged, succeeded, not a checkpoint yet

    @property
    def pending(self) -> tuple[Merged, ...]:
        """The merges made since the last :meth:`advance`: succeeded, not checkpoints yet (in order)."""
        return tuple(self._pending)

    def tip(self) -> ObjectID:
        """Where the next attempt starts: the last merge, a checkpoint already or about to be one."""
        return self._pending[-1].commit if self._pending else self.run.cp.head()

    def advance(self) -> list[CheckpointRecord]:
        """The merges not yet checkpoints made checkpoints, in order: the branch moves, a tag, a log line each."""
        run, s = self.run, self.run.session
        done = []
        while self._pending:
            m = self._pending[0]
            record = run.record_checkpoint(run.cp.advance(m.commit, m.label, state=s.current, files=m.files))
            assert record.n == m.n, f"checkpoint {record.n} was said to be {m.n}"
            done.append(record)
            del self._pending[0]
        return done

    def show(self, commit: ObjectID) -> None:
        """The integration worktree at ``commit`` (nothing written when it is there already)."""
        if commit != self._shown:
            self.run.cp.show(commit)
            self._shown = commit

    def forget(self) -> None:
        """The integration worktree was moved behind the queue's back (a rollback): show again next time."""
        self._shown = None

    def merge(self, task: Task, base: ObjectID, commit: ObjectID) -> Merged | Rejected:
        """Merge an attempt's ``commit`` (made on ``base``) for ``task``: the merge (the new :meth:`tip`, a checkpoint
        at the next :meth:`advance`), or why it was rejected."""
        run, s = self.run, self.run.session
        cp = run.cp
        head = self.tip()
        merged = merge_commits(cp.repo, base, head, commit)
        if merged.tree is None:
            paths = tuple(c.path for c in merged.conflicts)
            run.decide(
                run.runner.engine.decide(
                    "merge", state=s.state, task=task.id, task_id=task.id, conflicts=paths,
                    checkpoint=run.last_checkpoint,
                )
            )  # fmt: skip
            return Rejected("conflict", f"merge conflict in {', '.join(paths[:5])}", merged.feedback())
        label = f"task {task.id}: {task.title}"
        if not merged.fast_forward:
            commit = cp.commit_tree(merged.tree, [head, commit], label)
        earlier = [t for t in run.graph or () if t.id != task.id and s.task_state(t.id) == "succeeded"]
        probes = [t for t in (task, *earlier) if t.acceptance]
        if probes:  # the integration worktree is brought to the merged tree only when a command runs there
            self.show(commit)
        found = regression(
            run.workdir,
            [task],
            probes,
            workers=run.config.parallel.max_workers,
            timeout_s=run.runner.acceptance_timeout_s,
            deleted=self._deleted(base, commit) if task.files else [],
            env=run.env_for(run.workdir, whole=True),
        )
        if found is not None:
            line, feedback = found
            run.say(line, note=True)
            return Rejected("regression", first_line(feedback, limit=200) or feedback[:200], feedback)
        s.fire_task(task.id, "succeed")
        n = (self._pending[-1].n if self._pending else cp.next_number() - 1) + 1
        merged_as = Merged(task.id, commit, label, n, cp.changes(head, commit))
        self._pending.append(merged_as)
        return merged_as

    def _deleted(self, base: ObjectID, commit: ObjectID) -> list[str]:
        """The files deleted from ``base`` to ``commit``."""
        store = self.run.cp.repo.object_store
        trees = []
        for sha in (base, commit):
            c = store[sha]
            assert isinstance(c, Commit)
            trees.append(c.tree)
        out = []
        for ch in tree_changes(store, trees[0], trees[1]):
            if ch.type == "delete" and ch.old is not None and ch.old.path is not None:
                out.append(ch.old.path.decode("utf-8", "surrogateescape"))
        return sorted(out)
