"""Run and task-state queries.  Everything above this module speaks in models, not SQL."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col, select

from cronwarden.errors import InvalidCursor, RunNotFound
from cronwarden.model import IdempotencyKey, Run, Status, TaskState, UTCDateTime, utcnow
from cronwarden.store.migrate import migrate
from cronwarden.store.protocol import KeyClaim, KeyedRun
from cronwarden.store.recorder import Recorder
from cronwarden.store.resilience import is_outage, unavailable


@dataclass(frozen=True)
class RunFilter:
    """Filters of a run list; None means "any"."""

    task_name: str | None = None
    status: Sequence[str] | None = None
    end_reason: Sequence[str] | None = None
    triggered_by: Sequence[str] | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


@dataclass
class RunPage:
    runs: list[Run]
    next_cursor: str | None
    has_next: bool
    total: int | None = None


class Store:
    """The durable record of runs and task state (``RunRecords`` on SQL).

    Writes of runs go through one group-committing ``Recorder``; reads use pooled
    sessions.  Raises ``RunNotFound`` for unknown ids, ``InvalidCursor`` for a forged
    cursor and ``StoreUnavailable`` when the database cannot be reached.  The unique
    (task_name, scheduled_for, attempt) constraint is what makes a fire run exactly
    once across nodes: ``claim`` leaves out a run whose fire already has a row.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.recorder = Recorder(engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)

    @classmethod
    async def open(cls, engine: AsyncEngine) -> Store:
        await migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.recorder.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self._session() as session:
            await session.execute(sa.text("SELECT 1"))

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        """A session whose connection failures surface as StoreUnavailable."""
        try:
            async with self._sessions() as session:
                yield session
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if is_outage(exc):
                raise unavailable(exc) from exc
            raise

    # -- runs: writes (group-committed) -----------------------------------------

    async def claim(self, runs: Sequence[Run]) -> set[str]:
        return await self.recorder.insert(runs)

    async def claim_keyed(self, run: Run, key: KeyClaim) -> str:
        return await self.recorder.insert_keyed(run, key)

    async def record(self, run_id: str, values: Mapping[str, Any]) -> None:
        await self.recorder.update(run_id, values)

    # -- runs: reads ------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run:
        async with self._session() as session:
            run = await session.get(Run, run_id)
        if run is None:
            raise RunNotFound(f"no run has the id {run_id}")
        return run

    async def find_key(self, task_name: str, key: str, since: datetime) -> KeyedRun | None:
        query = (
            select(Run, col(IdempotencyKey.fingerprint))
            .join(IdempotencyKey, col(IdempotencyKey.run_id) == col(Run.id))
            .where(
                col(IdempotencyKey.task_name) == task_name,
                col(IdempotencyKey.key) == key,
                col(IdempotencyKey.created_at) >= since,
            )
        )
        async with self._session() as session:
            row = (await session.execute(query)).first()
        return None if row is None else KeyedRun(run=row[0], fingerprint=row[1])

    async def unfinished_runs(self, node: str) -> list[Run]:
        """Runs of this node that a previous daemon life left pending or running."""
        query = select(Run).where(
            col(Run.node) == node, col(Run.status).in_([Status.PENDING, Status.RUNNING])
        )
        async with self._session() as session:
            return list((await session.execute(query)).scalars())

    async def list_runs(
        self,
        where: RunFilter,
        *,
        limit: int,
        cursor: str | None = None,
        offset: int = 0,
        ascending: bool = False,
        with_total: bool = False,
    ) -> RunPage:
        """A page in (created_at, id) order; keyset cursor, offset only when asked."""
        conditions = _conditions(where)
        query = select(Run).where(*conditions)
        key = sa.tuple_(col(Run.created_at), col(Run.id))
        if cursor is not None:
            created_at, run_id = _decode_cursor(cursor)
            bound = sa.tuple_(sa.literal(created_at, UTCDateTime()), sa.literal(run_id))
            query = query.where(key > bound if ascending else key < bound)
        order = (col(Run.created_at), col(Run.id))
        query = query.order_by(*(c.asc() if ascending else c.desc() for c in order))
        query = query.offset(offset).limit(limit + 1)
        async with self._session() as session:
            runs = list((await session.execute(query)).scalars())
            total = None
            if with_total:
                count = select(sa.func.count()).select_from(Run).where(*conditions)
                total = (await session.execute(count)).scalar_one()
        has_next = len(runs) > limit
        runs = runs[:limit]
        next_cursor = _encode_cursor(runs[-1]) if has_next and runs else None
        return RunPage(runs=runs, next_cursor=next_cursor, has_next=has_next, total=total)

    async def last_runs(self, task_name: str | None = None) -> dict[str, Run]:
        """The newest run of every task (or of one), for task listings."""
        latest = select(col(Run.task_name), sa.func.max(col(Run.created_at)).label("created_at"))
        if task_name is not None:
            latest = latest.where(col(Run.task_name) == task_name)
        newest = latest.group_by(col(Run.task_name)).subquery()
        query = select(Run).join(
            newest,
            sa.and_(
                col(Run.task_name) == newest.c.task_name, col(Run.created_at) == newest.c.created_at
            ),
        )
        async with self._session() as session:
            return {run.task_name: run for run in (await session.execute(query)).scalars()}

    async def last_scheduled_for(self) -> dict[str, datetime]:
        """Per task, the newest fire already handled: the anchor of catch-up."""
        newest = select(col(Run.task_name), sa.func.max(col(Run.scheduled_for))).group_by(
            col(Run.task_name)
        )
        async with self._session() as session:
            rows = (await session.execute(newest)).all()
            states = (await session.execute(select(TaskState))).scalars().all()
        anchors: dict[str, datetime] = {}
        for name, when in rows:
            if when is not None:
                anchors[name] = _as_utc(when)
        for state in states:
            if state.last_scheduled_for is not None:
                known = anchors.get(state.task_name)
                if known is None or state.last_scheduled_for > known:
                    anchors[state.task_name] = state.last_scheduled_for
        return anchors

    # -- task state ----------------------------------------------------------

    async def task_states(self) -> dict[str, TaskState]:
        async with self._session() as session:
            rows = (await session.execute(select(TaskState))).scalars()
            return {row.task_name: row for row in rows}

    async def save_task_state(self, task_name: str, **values: Any) -> None:
        """Upsert one task's state (paused, last_scheduled_for)."""
        async with self._session() as session:
            state = await session.get(TaskState, task_name)
            if state is None:
                state = TaskState(task_name=task_name, updated_at=utcnow())
                session.add(state)
            for name, value in values.items():
                setattr(state, name, value)
            state.updated_at = utcnow()
            await session.commit()


def _conditions(where: RunFilter) -> list[Any]:
    conditions: list[Any] = []
    if where.task_name is not None:
        conditions.append(col(Run.task_name) == where.task_name)
    for column, values in (
        (Run.status, where.status),
        (Run.end_reason, where.end_reason),
        (Run.triggered_by, where.triggered_by),
    ):
        if values:
            conditions.append(col(column).in_(list(values)))
    if where.start_date is not None:
        conditions.append(col(Run.created_at) >= where.start_date)
    if where.end_date is not None:
        conditions.append(col(Run.created_at) <= where.end_date)
    return conditions


def _as_utc(value: datetime) -> datetime:
    """Aggregates (MAX) bypass the column type, so SQLite hands back naive text values."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _encode_cursor(run: Run) -> str:
    raw = json.dumps([run.created_at.isoformat(), run.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None or not isinstance(run_id, str):
            raise ValueError(cursor)
        return when.astimezone(UTC), run_id
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursor() from exc
