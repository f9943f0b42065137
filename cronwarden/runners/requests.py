"""Runs started on request (API, CLI): the api_trigger and params checks, the
Idempotency-Key, and admission before the row is committed.

Refusals raise and record nothing.  With an Idempotency-Key, a repeat within
IDEMPOTENCY_TTL gets the run the first request made, even while requests race (one
lock per key in this daemon, the store's unique key across nodes); the same key with
other params raises IdempotencyMismatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypedDict

from cronwarden.config import TaskConfig
from cronwarden.errors import Conflict, IdempotencyMismatch, InvalidParams, TriggerRefused
from cronwarden.live_config import LiveConfig
from cronwarden.model import Run, Trigger
from cronwarden.placement import not_here, runs_on
from cronwarden.ports import KeyClaim, KeyedRun, RunRecords
from cronwarden.run_record import AnyRun, RunRecord
from cronwarden.run_timing import NOW, Timing
from cronwarden.runners.admission import Verdict
from cronwarden.runners.endings import refusal
from cronwarden.runners.gate import Gate
from cronwarden.runners.life import Lives
from cronwarden.runners.lifecycle import RunHandle
from cronwarden.runners.rows import NewRuns
from cronwarden.support.clock import Clock
from cronwarden.support.text import printable

IDEMPOTENCY_TTL = timedelta(hours=24)


class Asked(TypedDict, total=False):
    """What a trigger may ask for beyond the task and its params (Requests.trigger)."""

    tags: Sequence[str]
    metadata: Mapping[str, Any] | None
    idempotency_key: str | None
    timing: Timing


class Requests:
    def __init__(
        self,
        *,
        records: RunRecords,
        config: LiveConfig,
        clock: Clock,
        new_run: NewRuns,
        gate: Gate,
        lives: Lives,
        refuse_if_closing: Callable[[], None],
    ) -> None:
        self._records = records
        self._config = config
        self._clock = clock
        self._new_run = new_run
        self._gate = gate
        self._lives = lives
        self._refuse_if_closing = refuse_if_closing
        self._key_locks = _KeyedLocks()

    async def trigger(
        self,
        task_name: str,
        params: Mapping[str, Any] | None = None,
        *,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        timing: Timing = NOW,
    ) -> tuple[AnyRun, bool]:
        """An on-request run: (the run, whether this request created it).  ``tags`` and
        ``metadata`` were checked where they arrived (cronwarden/run_tags.py)."""
        task = self._triggerable(task_name)
        checked = check_params(task, params or {})
        self._refuse_if_closing()
        delayed_until, expires_at = timing.of(self._clock.now())
        if idempotency_key is None:
            run = self._new_run(
                task,
                Trigger.API,
                params=checked,
                tags=tags,
                metadata=metadata,
                delayed_until=delayed_until,
                expires_at=expires_at,
            )
            await self._admit(task, run, self._claim_plain(run))
            return run, True
        fingerprint = _fingerprint(checked, tags, metadata)
        async with self._key_locks.hold((task.name, idempotency_key)):
            since = self._clock.now() - IDEMPOTENCY_TTL
            earlier = await self._records.find_key(task.name, idempotency_key, since)
            if earlier is not None:
                return _same_request(earlier, fingerprint, idempotency_key), False
            run = self._new_run(
                task,
                Trigger.API,
                params=checked,
                idempotency_key=idempotency_key,
                delayed_until=delayed_until,
                expires_at=expires_at,
                tags=tags,
                metadata=metadata,
            )
            claim = KeyClaim(task.name, idempotency_key, fingerprint, run.created_at, since)
            if await self._admit(task, run, self._claim_keyed(run, claim)):
                return run, True
            earlier = await self._records.find_key(task.name, idempotency_key, since)
            if earlier is None:  # the other request's key expired meanwhile: rare, say so
                raise Conflict("the Idempotency-Key changed hands during the request; retry")
            return _same_request(earlier, fingerprint, idempotency_key), False

    async def rerun(self, run_id: str) -> RunRecord:
        """A new run of the same task with the same params, tags and metadata, as an API
        trigger would start it (api_trigger, params and admission are checked against
        the task as configured now); it records which run it repeats."""
        earlier = await self._records.get_run(run_id)
        task = self._triggerable(earlier.task_name)
        checked = check_params(task, earlier.params)
        self._refuse_if_closing()
        run = self._new_run(
            task,
            Trigger.API,
            params=checked,
            rerun_of=earlier.id,
            tags=earlier.tags,
            metadata=earlier.run_metadata,
        )
        await self._admit(task, run, self._claim_plain(run))
        return run

    def _triggerable(self, task_name: str) -> TaskConfig:
        task = self._config.task(task_name)
        if not task.api_trigger:
            raise TriggerRefused(f"task {task_name!r} has api_trigger = false")
        if not runs_on(task, self._new_run.node):
            # Answered, not forwarded: the caller learns where the task runs and asks
            # one of those nodes, so a run never starts where it was not asked to.
            raise TriggerRefused(not_here(task, self._new_run.node))
        return task

    async def _admit(
        self, task: TaskConfig, run: RunRecord, claim: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Admission, then the durable claim.  A refusal raises (409) and records
        nothing; False when the claim was not ours (the key was taken).  A delayed run
        is claimed first and goes through admission at its time."""
        if run.not_before is not None:
            if not await claim():
                return False
            self._lives.claimed_delayed(RunHandle(run, task))
            return True
        elsewhere = (await self._gate.elsewhere([task.name])).get(task.name, 0)
        handle = RunHandle(run, task)
        verdict = self._lives.admit(handle, elsewhere)
        if verdict in (Verdict.SKIP, Verdict.REFUSE):
            raise TriggerRefused(refusal(task, verdict, elsewhere))
        try:
            committed = await claim()
        except BaseException:
            self._lives.lose(handle)
            raise
        if not committed:
            self._lives.lose(handle)
            return False
        self._lives.claimed(handle)
        return True

    def _claim_plain(self, run: RunRecord) -> Callable[[], Awaitable[bool]]:
        async def claim() -> bool:
            return run.id in await self._records.claim([run])

        return claim

    def _claim_keyed(self, run: RunRecord, key: KeyClaim) -> Callable[[], Awaitable[bool]]:
        async def claim() -> bool:
            return await self._records.claim_keyed(run, key) == run.id

        return claim


class _KeyedLocks:
    """One asyncio.Lock per key while anyone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def check_params(task: TaskConfig, params: Mapping[str, Any]) -> dict[str, str]:
    """Only declared names, only string values: params never reach a shell string."""
    errors = []
    for name, value in params.items():
        shown = printable(name)
        if name not in task.params:
            allowed = ", ".join(task.params) or "none (the task declares no params)"
            errors.append(
                {"name": shown, "reason": f"not declared by the task; allowed: {allowed}"}
            )
        elif not isinstance(value, str):
            errors.append({"name": shown, "reason": "value must be a string"})
        elif "\0" in value:
            errors.append({"name": shown, "reason": "value must not contain a NUL character"})
        elif printable(value) != value:
            errors.append(
                {"name": shown, "reason": "value must be Unicode text (it has a lone surrogate)"}
            )
    if errors:
        raise InvalidParams(f"invalid params for task {task.name!r}", errors)
    return dict(params)


def _fingerprint(
    params: Mapping[str, str], tags: Sequence[str], metadata: Mapping[str, Any] | None
) -> str:
    """What a request asked for.  Tags and metadata count only when given, so that a
    request of params alone keeps the fingerprint it had before they existed (a key
    taken before an upgrade still matches its repeat)."""
    asked: Any = params
    if tags or metadata:
        asked = {"params": params, "tags": list(tags), "metadata": metadata or {}}
    blob = json.dumps(asked, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _same_request(earlier: KeyedRun, fingerprint: str, key: str) -> Run:
    """The earlier run, if the repeat asks for the same thing ("" = unknown: accept)."""
    if earlier.fingerprint and earlier.fingerprint != fingerprint:
        raise IdempotencyMismatch(
            f"Idempotency-Key {key!r} was already used for task {earlier.run.task_name!r} "
            f"with other params (run {earlier.run.id}); use a new key for a new request"
        )
    return earlier.run
