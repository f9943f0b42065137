"""A run's artifacts from the run core's side: its directory made just before the spawn
(``prepare``), and once it has ended, whatever ended it, stock taken and recorded before
its end is (``collect``), so a client told of the end can list them at once.  Then the
task's runs on this node are kept within keep_artifacts_size, the oldest runs'
artifacts removed first.

What is kept, and how the directory is walked, is cronwarden/artifacts/; the listing
goes through ``ArtifactRecords`` (cronwarden/ports.py).  Nothing here may fail a run's
start or end: a directory that cannot be made, a listing that cannot be taken or
written, is logged, and the run goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog

from cronwarden.artifacts.layout import gone_if_empty, make_run_dir, remove_tree, run_dir
from cronwarden.artifacts.stock import Entry, runs_past_keep, take_stock
from cronwarden.config import TaskConfig
from cronwarden.durable import persist
from cronwarden.ports import ArtifactRecords
from cronwarden.run_record import RunRecord
from cronwarden.support.units import format_size

log = structlog.get_logger("cronwarden.dispatch")


class RunArtifacts:
    def __init__(self, root: Path, records: ArtifactRecords, node: str) -> None:
        self.root = root  # data_dir/artifacts
        self.records = records
        self.node = node  # whose disk holds the files: this node's

    def dir_of(self, run_id: str) -> Path:
        return run_dir(self.root, run_id)

    def prepare(self, run_id: str, uid: int | None, gid: int | None) -> bool:
        """Make the run's empty directory, its user's own; whether it was made.  One
        that cannot be (data_dir full) does not hold the run back, as a full data_dir
        holds no run back: most runs keep no files, and one that does finds nothing at
        $CRONWARDEN_ARTIFACTS_DIR and says so in its own output.

        In the event loop, not a worker thread (as the removal in ``collect`` is): runs
        due together spawn in the order they were admitted, oldest first, and threads
        would finish their mkdirs in any order.  On a busy disk a mkdir took 1-5 ms."""
        try:
            make_run_dir(self.root, run_id, uid, gid)
        except OSError as exc:
            error = f"cannot make {self.dir_of(run_id)}: {exc.strerror or exc}"
            log.warning("run.artifacts_dir_failed", run_id=run_id, error=error)
            return False
        return True

    async def collect(self, run: RunRecord, task: TaskConfig) -> None:
        """Take stock of what the ended run left, record it, keep the task within its
        keep_artifacts_size.  Never raises (but is cancelled like any coroutine)."""
        directory = self.dir_of(run.id)
        try:
            if await asyncio.to_thread(gone_if_empty, directory):  # it left nothing
                return
            entries = await asyncio.to_thread(take_stock, directory, task.max_artifacts_size)
            if not entries:
                return
            await persist(
                f"recording the artifacts of run {run.id}",
                lambda: self.records.record(run.id, run.task_name, entries),
            )
            _log_listing(run, entries)
            if any(entry.kept for entry in entries):
                await self._keep_within(task)
        except Exception:
            log.exception("run.artifacts_not_kept", task=run.task_name, run_id=run.id)

    async def _keep_within(self, task: TaskConfig) -> None:
        """Remove the oldest runs' artifacts past the task's keep_artifacts_size: their
        listing says so first, so none is offered while its file goes."""
        sizes = await self.records.kept_sizes(task.name, self.node)
        gone = runs_past_keep(sizes, task.keep_artifacts_size)
        if not gone:
            return
        why = (
            f"removed to keep task {task.name}'s artifacts within keep_artifacts_size "
            f"({format_size(task.keep_artifacts_size)}), oldest runs first"
        )
        await self.records.mark_removed(gone, why)
        await asyncio.to_thread(self._remove, gone)
        log.info("task.artifacts_pruned", task=task.name, runs=len(gone))

    def _remove(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            remove_tree(self.dir_of(run_id))


def _log_listing(run: RunRecord, entries: Sequence[Entry]) -> None:
    kept = [entry for entry in entries if entry.kept]
    log.info(
        "run.artifacts",
        task=run.task_name,
        run_id=run.id,
        kept=len(kept),
        kept_bytes=sum(entry.size or 0 for entry in kept),
        dropped=len(entries) - len(kept),
    )
