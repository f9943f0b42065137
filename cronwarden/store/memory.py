"""An in-memory ``RunRecords``: the dispatch core's store in unit tests.

It keeps the rules that matter to the lifecycle (a fire claimed once per (task_name,
scheduled_for, attempt); an Idempotency-Key owned by one run for 24 h; writes either
land whole or raise StoreUnavailable) so tests can drive the real dispatcher through
every state with a fake clock and no database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cronwarden.errors import RunNotFound, StoreUnavailable
from cronwarden.model import Run, Status, is_reserved_fire
from cronwarden.store.protocol import KeyClaim, KeyedRun
from cronwarden.task_hash import new_key


@dataclass
class _Key:
    run_id: str
    fingerprint: str
    created_at: datetime


@dataclass
class MemoryStore:
    runs: dict[str, Run] = field(default_factory=dict)
    keys: dict[tuple[str, str], _Key] = field(default_factory=dict)
    unavailable: bool = False  # set to make every write fail as during an outage
    writes: int = 0
    hash_key: bytes = field(default_factory=new_key, repr=False)

    async def claim(self, runs: Sequence[Run]) -> set[str]:
        await self._write()
        taken: dict[tuple[str, datetime | None, int], Run] = {
            (r.task_name, r.scheduled_for, r.attempt): r
            for r in self.runs.values()
            if r.scheduled_for is not None
        }
        claimed = set()
        for run in runs:
            fire = (run.task_name, run.scheduled_for, run.attempt)
            held = taken.get(fire) if run.scheduled_for is not None else None
            # Another's claim, or a run under way; the node's own unused reservation
            # is taken over (see RunRecords.claim).
            if held is not None and not (held.node == run.node and is_reserved_fire(held)):
                continue
            if held is not None:
                del self.runs[held.id]
            taken[fire] = run
            self.runs[run.id] = _copy(run)
            claimed.add(run.id)
        return claimed

    async def claim_keyed(self, run: Run, key: KeyClaim) -> str:
        await self._write()
        held = self.keys.get((key.task_name, key.key))
        if held is not None and held.created_at >= key.expired_before:
            return held.run_id
        self.keys[(key.task_name, key.key)] = _Key(run.id, key.fingerprint, key.created_at)
        self.runs[run.id] = _copy(run)
        return run.id

    async def find_key(self, task_name: str, key: str, since: datetime) -> KeyedRun | None:
        held = self.keys.get((task_name, key))
        if held is None or held.created_at < since:
            return None
        return KeyedRun(run=_copy(self.runs[held.run_id]), fingerprint=held.fingerprint)

    async def record(self, run_id: str, values: Mapping[str, Any]) -> None:
        await self._write()
        run = self.runs[run_id]
        for name, value in values.items():
            setattr(run, name, value)

    async def discard_reserved(self, run_ids: Sequence[str]) -> None:
        await self._write()
        for run_id in run_ids:
            if run_id in self.runs and self.runs[run_id].status == Status.PENDING:
                del self.runs[run_id]

    async def get_run(self, run_id: str) -> Run:
        try:
            return _copy(self.runs[run_id])
        except KeyError:
            raise RunNotFound(f"no run has the id {run_id}") from None

    async def unfinished_runs(self, node: str) -> list[Run]:
        return [
            _copy(r)
            for r in self.runs.values()
            if r.node == node and r.status in (Status.PENDING, Status.RUNNING)
        ]

    async def installation_key(self) -> bytes:
        return self.hash_key

    async def _write(self) -> None:
        await asyncio.sleep(0)  # a real commit yields to the loop; so does this
        if self.unavailable:
            raise StoreUnavailable("the database is unavailable: (simulated outage)")
        self.writes += 1


def _copy(run: Run) -> Run:
    """What a database hands back is never the caller's own object."""
    return run.model_copy(deep=True)
