"""The narrow seams between cronwarden's core and its database, as protocols.

They live outside ``store/`` so that the run core (``runners/``) and the scheduler can
depend on what they need of the database without importing the package that knows
SQL: ``Store`` (SQL, group-committed) and ``MemoryStore`` (a test double) implement
``RunRecords``; ``FleetSlots`` (store/slots.py) implements ``SharedPlaces``;
``SqlArtifacts`` (store/artifacts.py) implements ``ArtifactRecords``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cronwarden.artifacts.stock import Entry
from cronwarden.chains import ChainAsk
from cronwarden.model import Run
from cronwarden.run_record import RunRecord


@dataclass(frozen=True)
class KeyClaim:
    """An Idempotency-Key a request wants; one created before ``expired_before`` is free."""

    task_name: str
    key: str
    fingerprint: str  # of the request body: a repeat must ask for the same thing
    created_at: datetime
    expired_before: datetime


@dataclass(frozen=True)
class KeyedRun:
    """The run an Idempotency-Key belongs to, and the fingerprint of its request
    ("" when unknown: keys recorded before fingerprints existed)."""

    run: Run
    fingerprint: str


class RunRecords(Protocol):
    async def claim(self, runs: Sequence[RunRecord]) -> set[str]:
        """Commit new runs; returns the ids committed.  A run whose fire (task_name,
        scheduled_for, attempt) already has a row is left out: another node or an
        earlier life claimed it, and it must not run twice; unless that row is a
        reservation the new row may take over (reservations.may_take_over)."""
        ...

    async def claim_keyed(self, run: RunRecord, key: KeyClaim) -> str:
        """Commit ``run`` together with ``key``, unless an unexpired earlier request
        holds the key; returns the id of the run that owns the key."""
        ...

    async def find_key(self, task_name: str, key: str, since: datetime) -> KeyedRun | None:
        """The run an Idempotency-Key taken since ``since`` belongs to."""
        ...

    async def record(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Durably set fields of a run (raises StoreUnavailable: nothing was written)."""
        ...

    async def record_end(
        self, run_id: str, values: Mapping[str, Any], asks: Sequence[ChainAsk]
    ) -> list[dict[str, Any]]:
        """Record a run's end and, in the same transaction, the chained runs it starts
        (cronwarden/chains.py); returns the rows of those created (none twice for one
        cause, none if another node ended the run first)."""
        ...

    async def discard_reserved(self, run_ids: Sequence[str]) -> None:
        """Delete the rows of reservations let go, those still unused
        (reservations.may_discard)."""
        ...

    async def get_run(self, run_id: str) -> Run:
        """Raises RunNotFound."""
        ...

    async def unfinished_runs(self, node: str) -> list[Run]:
        """This node's runs still pending or running (left by a previous life)."""
        ...


class SharedPlaces(Protocol):
    """A task's places under max_concurrent across the nodes sharing a database (see
    store/slots.py); absent when a daemon is alone."""

    async def take(self, task_name: str, run_id: str, limit: int) -> bool: ...

    async def ask_oldest_to_stop(self, task_name: str) -> str | None: ...

    async def announce_freed(self, task_name: str) -> None: ...

    async def active_elsewhere(self, node: str, task_names: Collection[str]) -> dict[str, int]: ...


def hold_key(kind: str, name: str) -> str:
    """A hold's name in the database: ``lock:NAME`` or ``pool:NAME`` (one namespace
    each, so a lock and a pool may share a name)."""
    return f"{kind}:{name}"


@dataclass(frozen=True)
class Holder:
    """A run holding a seat of a named lock or pool (``lock:NAME``, ``pool:NAME``)."""

    name: str
    run_id: str
    task_name: str
    node: str
    taken_at: datetime


class Holds(Protocol):
    """Named locks and pools, held in the database (store/holds.py): for one daemon
    alone as for every node sharing it."""

    async def take(self, run_id: str, wants: Mapping[str, int]) -> list[Holder] | None:
        """Every seat of ``wants`` (hold name -> its seats), all or none: None once
        held; else who holds the first one that is full (none named: look again)."""
        ...

    async def holders(self, names: Collection[str] | None = None) -> list[Holder]: ...

    async def announce_freed(self, names: Collection[str]) -> None: ...


class InstallationKeys(Protocol):
    async def installation_key(self) -> bytes:
        """The installation's key for task hashes (see task_hash.py): made once, by the
        first daemon on the database, and the same for every node sharing it."""
        ...


class ArtifactRecords(Protocol):
    """Runs' artifact listings (cronwarden/artifacts/), readable by every node."""

    async def record(self, run_id: str, task_name: str, entries: Sequence[Entry]) -> None:
        """Store a run's listing, replacing one stored before (raises StoreUnavailable:
        nothing was written)."""
        ...

    async def listing(self, run_id: str) -> list[Entry]: ...

    async def find(self, run_id: str, name: str) -> Entry | None:
        """The entry of that name in the run's listing."""
        ...

    async def kept_sizes(self, task_name: str, node: str) -> list[tuple[str, int]]:
        """(run id, bytes kept) per run of the task whose artifacts ``node`` holds,
        newest first."""
        ...

    async def mark_removed(self, run_ids: Sequence[str], why: str) -> None:
        """The kept entries of these runs are gone: dropped, saying ``why``."""
        ...
