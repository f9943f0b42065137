"""The runs this daemon carries, one ``RunHandle`` each, and what others may read of
them: counts, phases, ids, and a run's snapshot (never the handle itself)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any

import structlog

from cronwarden.model import Status
from cronwarden.run_record import RunRecord
from cronwarden.runners.lifecycle import LIVE, WAITING, RunHandle, RunState

log = structlog.get_logger("cronwarden.dispatch")


class RunView:
    """Read access to one carried run, kept by a reader past the run's end (its last
    snapshot then holds what was recorded)."""

    __slots__ = ("_handle",)

    def __init__(self, handle: RunHandle) -> None:
        self._handle = handle

    def snapshot(self) -> RunRecord:
        return self._handle.run.copy()

    @property
    def state(self) -> RunState:
        """Where the run is in its life (see lifecycle.py)."""
        return self._handle.state


class Carried:
    def __init__(self) -> None:
        self._handles: dict[str, RunHandle] = {}

    def add(self, handle: RunHandle) -> None:
        self._handles[handle.id] = handle

    def get(self, run_id: str) -> RunHandle | None:
        return self._handles.get(run_id)

    def pop(self, run_id: str) -> None:
        self._handles.pop(run_id, None)

    def clear(self) -> None:
        self._handles.clear()

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._handles

    def __getitem__(self, run_id: str) -> RunHandle:
        return self._handles[run_id]

    def handles(self) -> list[RunHandle]:
        return list(self._handles.values())

    def ids(self) -> list[str]:
        return list(self._handles)

    @property
    def active(self) -> int:
        """Runs carried: waiting, starting, running or ending."""
        return sum(1 for h in self._handles.values() if not h.ended)

    def phases(self) -> Iterator[tuple[str, str]]:
        """(task, "running" or "waiting") of each run carried: waiting is queued, a
        retry's delay, or a place (under max_concurrent_runs, or on other nodes)."""
        for handle in self._handles.values():
            if handle.state in WAITING:
                yield handle.task_name, "waiting"
            elif handle.state in LIVE:
                yield handle.task_name, "running"

    def view(self, run_id: str) -> RunView | None:
        handle = self._handles.get(run_id)
        return None if handle is None else RunView(handle)

    def running(self) -> list[RunRecord]:
        """The runs whose processes run (adopted ones, at start-up): the objects the
        dispatcher keeps, as told to subscribers of run changes; read, never written."""
        return [h.run for h in self._handles.values() if h.run.status == Status.RUNNING]

    def live_jobs(self) -> list[asyncio.Task[None]]:
        return [h.job for h in self._handles.values() if h.job is not None and not h.job.done()]


class Background:
    """Tasks started beside the runs' lives (records, cancellations, stops of leftover
    processes): kept referenced, a failure logged, all awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatch.background_failed", error=repr(task.exception()))

    async def cancel_with(self, others: list[asyncio.Task[None]]) -> None:
        """Cancel these tasks and ``others``, and wait until they are done."""
        unfinished = [*others, *self._tasks]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
