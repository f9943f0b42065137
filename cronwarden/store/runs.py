"""Run and task-state queries.  Everything above this module speaks in models, not SQL."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col, select

from cronwarden.chains import ChainAsk
from cronwarden.column_types import UTCDateTime, wire_text
from cronwarden.errors import RunNotFound
from cronwarden.model import (
    SHOWN_INSTANTS,
    IdempotencyKey,
    Run,
    Status,
    TaskState,
    utcnow,
    wire_name,
)
from cronwarden.outcomes import RAN_TO_AN_OUTCOME
from cronwarden.reservations import ahead_rows, listed_rows
from cronwarden.run_record import RunRecord
from cronwarden.store.chaining import caused_by_condition
from cronwarden.store.lane import Lane
from cronwarden.store.links import RelatedRuns, attempts_of, related_to
from cronwarden.store.migrate import migrate
from cronwarden.store.paging import Read, RunOrder, RunPage, read_page
from cronwarden.store.protocol import KeyClaim, KeyedRun
from cronwarden.store.pruning import RetentionQueries
from cronwarden.store.recorder import Recorder
from cronwarden.store.resilience import outage_as_unavailable
from cronwarden.store.search import TRIGRAM, search_condition, tags_condition
from cronwarden.store.task_states import StateRows

T = TypeVar("T")
# Threads (and connections) reading pages on SQLite; WAL lets them read side by side.
# 0: pages read through the async engine, as on PostgreSQL (the baseline that
# `benchmarks/run_pages.py --reader-lane off` measures the lane against).
READER_THREADS = 2
# How recent a landed commit answers for the database as a ping would (seconds): less
# than a health check's usual period, so an outage shows at the next check or the one
# after.
FRESH_ANSWER = 1.0
# A search read newest first looks among this many newest runs before the whole table
# (see _newest_matches).
SEARCH_WINDOW = 2000


@dataclass(frozen=True)
class RunFilter:
    """Filters of a run list; None means "any"."""

    task_name: str | None = None
    status: Sequence[str] | None = None
    end_reason: Sequence[str] | None = None
    triggered_by: Sequence[str] | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    search: str | None = None  # in the task name, the error or the params
    caused_by: str | None = None  # a run id: the chained runs its end started
    tags: Sequence[str] | None = None  # runs carrying every one of them


DURATION_SAMPLE = 10_000


@dataclass(frozen=True)
class CostTally:
    """What a task's runs in a window cost, summed over the runs whose cost is known
    (a run that never started, or was re-adopted after a restart, adds nothing)."""

    runs: int = 0  # runs whose CPU time is known
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    max_rss_bytes: int | None = None  # the largest peak among them
    output_bytes: int = 0


@dataclass(frozen=True)
class TaskTally:
    counts: dict[tuple[str, str | None], int]  # (status, end_reason) -> runs
    last_end: dict[str, datetime]  # end_reason -> newest end_at
    longest: dict[str, int]  # end_reason -> longest duration_ms
    durations: list[int]  # of the newest runs that ran to an outcome, newest first
    cost: CostTally = CostTally()
    # The peak memory of those same runs, where known, newest first.
    peaks: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Attempt:
    """One run of a task as a failure streak reads it (alerts/streaks.py)."""

    id: str
    created_at: datetime
    end_at: datetime | None
    end_reason: str | None
    retry_of: str | None


# Fires that never ran (skipped by overlap, missed while down): a streak passes over
# them, and a task skipped every second would otherwise fill its pages.
NEVER_RAN = ("skipped", "missed")


class Store(StateRows):
    """The durable record of runs and task state (``RunRecords`` on SQL).

    Writes of runs go through one group-committing ``Recorder``; reads use pooled
    sessions, and run pages a lane of their own on SQLite (see lane.py); retention's
    reads and deletes are ``pruning``'s.  Raises
    ``RunNotFound`` for unknown ids, ``InvalidCursor`` for a forged cursor and
    ``StoreUnavailable`` when the database cannot be reached.  The unique
    (task_name, scheduled_for, attempt) constraint is what makes a fire run exactly
    once across nodes: ``claim`` leaves out a run whose fire already has a row.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.recorder = Recorder(engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)
        self._reader: Lane | None = None
        if engine.dialect.name == "sqlite" and READER_THREADS:
            self._reader = Lane(engine, READER_THREADS, "cronwarden-reader")
        self.pruning = RetentionQueries(engine, self.recorder.writers)

    @classmethod
    async def open(cls, engine: AsyncEngine) -> Store:
        await migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.recorder.close()
        if self._reader is not None:
            await self._reader.close()
        await self.pruning.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        """Whether the database answers: a commit that landed under FRESH_ANSWER ago
        says so, else one statement, one hop to the driver (the reader lane on SQLite).
        While thousands of runs start, commits land every few milliseconds, and each
        hop waited for a turn of the busy loop: /health's p50 in a 10,000-task minute
        was 76 ms with the hop, 53 without (BENCHMARKS.md)."""
        if self.recorder.landed_within(FRESH_ANSWER):
            return
        await self._read(_select_one)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        """A session whose connection failures surface as StoreUnavailable."""
        with outage_as_unavailable():
            async with self._sessions() as session:
                yield session

    async def _read(self, work: Callable[[Connection], T]) -> T:
        """Core reads (no ORM session: a page of rows costs half as much) as one unit
        of work: one call in the reader lane on SQLite, run_sync on PostgreSQL; its
        failures surface as StoreUnavailable."""
        with outage_as_unavailable():
            if self._reader is not None:
                return await self._reader.read(work)
            async with self.engine.connect() as conn:
                return await conn.run_sync(work)

    # -- runs: writes (group-committed) -----------------------------------------

    async def claim(self, runs: Sequence[RunRecord]) -> set[str]:
        return await self.recorder.insert(runs)

    async def claim_keyed(self, run: RunRecord, key: KeyClaim) -> str:
        return await self.recorder.insert_keyed(run, key)

    async def record(self, run_id: str, values: Mapping[str, Any]) -> None:
        await self.recorder.update(run_id, values)

    async def record_end(
        self, run_id: str, values: Mapping[str, Any], asks: Sequence[ChainAsk]
    ) -> list[dict[str, Any]]:
        if not asks:
            await self.recorder.update(run_id, values)
            return []
        return await self.recorder.end(run_id, values, asks)

    async def discard_reserved(self, run_ids: Sequence[str]) -> None:
        await self.recorder.discard(run_ids)

    async def report(self, run_id: str, values: Mapping[str, Any]) -> bool:
        """What a run's job reported; False (nothing written) once the run has ended."""
        return await self.recorder.report(run_id, values)

    # -- runs: reads ------------------------------------------------------------

    async def get_run(self, run_id: str) -> Run:
        async with self._session() as session:
            run = await session.get(Run, run_id)
        if run is None:
            raise RunNotFound(f"no run has the id {run_id}")
        return run

    async def attempts_of(self, run: Run) -> list[Run]:
        """Every attempt of ``run``'s fire, attempt 1 first (store/links.py)."""
        async with self._session() as session:
            return await attempts_of(session, run)

    async def related_to(self, run: Run) -> RelatedRuns:
        """The runs ``run`` repeats, was repeated by, was started by and started."""
        async with self._session() as session:
            return await related_to(session, run)

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
        sort_field: str = "created_at",
    ) -> RunPage:
        """A page in ``sort_field`` order (then created_at, then id) with its cursors
        (store/paging.py): keyset cursors that stay right for every sort, either way;
        offset only when asked.  Runs without a value in the sort field (not started,
        not ended) come after those with one."""
        order = RunOrder(sort_field, ascending)
        position = None if cursor is None else order.decode(cursor)
        dialect, now = self.engine.dialect.name, utcnow()
        # A search in created_at order on SQLite looks among the newest runs first.
        windowed = (
            dialect == "sqlite"
            and where.search is not None
            and len(where.search) >= TRIGRAM
            and sort_field == "created_at"
        )

        wired = _wired_instants(dialect)

        def read(conn: Connection) -> RunPage:
            def fetch(how: Read, wanted: int, skip: int) -> list[sa.Row[Any]]:
                runs = None
                as_of = how.as_of or now
                if windowed and how.plain and not skip:
                    assert where.search is not None
                    rest = _conditions(replace(where, search=None), "sqlite", as_of=as_of)
                    first = order.parts(how.start)[0].add_columns(*wired)
                    runs = _newest_matches(conn, order, first, rest, where.search, wanted + 1)
                if runs is None:
                    parts = order.parts(
                        how.start, inclusive=how.inclusive, stop=how.stop, backward=how.backward
                    )
                    parts = [part.add_columns(*wired) for part in parts]
                    runs = _page_rows(conn, parts, _conditions(where, dialect, as_of), wanted, skip)
                return runs

            page = read_page(fetch, order, position, limit=limit, offset=offset, now=now)
            if with_total:
                page.total = _total(conn, where, dialect, now)
            return page

        return await self._read(read)

    async def task_tally(self, task_name: str, since: datetime | None) -> TaskTally:
        """What a task's runs since ``since`` came to: counts by (status, end_reason),
        the newest end and the longest duration per end_reason, what they cost, and the
        durations and peak memory of the newest DURATION_SAMPLE runs that ran to an
        outcome.  Both queries read the (task_name, created_at) index alone: it carries
        every column they read (model.STATS_COLUMNS)."""
        groups, sample = _tally_queries(task_name, since)
        async with self._session() as session:
            rows = (await session.execute(groups)).all()
            ran = (await session.execute(sample)).all()
        return _tally_of(rows, ran)

    async def run_count(self) -> int:
        async with self._session() as session:
            return int(
                (await session.execute(sa.select(sa.func.count()).select_from(Run))).scalar_one()
            )

    async def last_successes(self) -> dict[str, datetime]:
        """Per task, when its newest successful run ended."""
        query = (
            select(col(Run.task_name), sa.func.max(col(Run.end_at)))
            .where(col(Run.end_reason) == "success")
            .group_by(col(Run.task_name))
        )
        async with self._session() as session:
            rows = (await session.execute(query)).all()
        return {name: _as_utc(end) for name, end in rows if end is not None}

    async def last_runs(self, task_names: Collection[str] | None = None) -> dict[str, Run]:
        """The newest run of every task (or of those named), for task listings."""
        latest = select(
            col(Run.task_name), sa.func.max(col(Run.created_at)).label("created_at")
        ).where(listed_rows(utcnow()))
        if task_names is not None:
            latest = latest.where(col(Run.task_name).in_(task_names))
        newest = latest.group_by(col(Run.task_name)).subquery()
        query = select(Run).join(
            newest,
            sa.and_(
                col(Run.task_name) == newest.c.task_name, col(Run.created_at) == newest.c.created_at
            ),
        )
        async with self._session() as session:
            return {run.task_name: run for run in (await session.execute(query)).scalars()}

    async def recent_attempts(
        self, task_name: str, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[Attempt]:
        """The task's runs, newest first (created before ``before``, a (created_at, id)
        keyset, if given), fires that never ran left out: what a failure streak is
        counted from."""
        async with self._session() as session:
            rows = (await session.execute(_attempts_query(task_name, limit, before))).all()
        return [
            Attempt(i, _as_utc(at), None if end is None else _as_utc(end), reason, of)
            for i, at, end, reason, of in rows
        ]

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

    async def own_fires(self, node: str, task_names: list[str]) -> dict[str, datetime]:
        """Per on_every_node task, the newest fire ``node`` handled as its own: its
        catch-up anchor (the fires other nodes handled are not this node's)."""
        newest = (
            select(col(Run.task_name), sa.func.max(col(Run.scheduled_for)))
            .where(col(Run.fire_node) == node, col(Run.task_name).in_(task_names))
            .group_by(col(Run.task_name))
        )
        async with self._session() as session:
            rows = (await session.execute(newest)).all()
        return {name: _as_utc(when) for name, when in rows if when is not None}


def _tally_queries(task_name: str, since: datetime | None) -> tuple[Any, Any]:
    """A task tally's two queries: counts, newest end, longest duration and cost per
    (status, end_reason); the durations and peaks of the newest runs that ran to an
    outcome."""
    window = [col(Run.task_name) == task_name, listed_rows(utcnow())]
    if since is not None:
        window.append(col(Run.created_at) >= since)
    groups = (
        sa.select(
            col(Run.status),
            col(Run.end_reason),
            sa.func.count().label("runs"),
            sa.func.max(col(Run.end_at)).label("last_end"),
            sa.func.max(col(Run.duration_ms)).label("longest"),
            sa.func.count(col(Run.cpu_user_s)).label("costed"),
            sa.func.sum(col(Run.cpu_user_s)).label("cpu_user_s"),
            sa.func.sum(col(Run.cpu_system_s)).label("cpu_system_s"),
            sa.func.max(col(Run.max_rss_bytes)).label("max_rss_bytes"),
            sa.func.sum(col(Run.output_bytes)).label("output_bytes"),
        )
        .where(*window)
        .group_by(col(Run.status), col(Run.end_reason))
    )
    sample = (
        select(col(Run.duration_ms), col(Run.max_rss_bytes))
        .where(
            *window,
            col(Run.end_reason).in_(RAN_TO_AN_OUTCOME),
            col(Run.duration_ms).is_not(None),
        )
        .order_by(col(Run.created_at).desc())
        .limit(DURATION_SAMPLE)
    )
    return groups, sample


def _attempts_query(task_name: str, limit: int, before: tuple[datetime, str] | None) -> Any:
    """Served by ix_runs_task_created, in its order (the row-value keyset form)."""
    ran = sa.or_(col(Run.end_reason).is_(None), col(Run.end_reason).not_in(NEVER_RAN))
    query = (
        sa.select(
            col(Run.id),
            col(Run.created_at),
            col(Run.end_at),
            col(Run.end_reason),
            col(Run.retry_of),
        )
        .where(col(Run.task_name) == task_name, ran)
        .order_by(col(Run.created_at).desc(), col(Run.id).desc())
        .limit(limit)
    )
    if before is None:
        return query
    at, run_id = before
    key = sa.tuple_(col(Run.created_at), col(Run.id))
    return query.where(key < sa.tuple_(sa.literal(at, UTCDateTime()), sa.literal(run_id)))


def _tally_of(groups: Sequence[sa.Row[Any]], ran: Sequence[sa.Row[Any]]) -> TaskTally:
    """The tally of the two queries' rows.  PostgreSQL sums integers as numeric
    (Decimal), and a sum of no values is NULL: each is made a plain number here."""
    peaks = [g.max_rss_bytes for g in groups if g.max_rss_bytes is not None]
    return TaskTally(
        counts={(g.status, g.end_reason): g.runs for g in groups},
        last_end={
            g.end_reason: _as_utc(g.last_end)
            for g in groups
            if g.end_reason and g.last_end is not None
        },
        longest={
            g.end_reason: int(g.longest) for g in groups if g.end_reason and g.longest is not None
        },
        durations=[r.duration_ms for r in ran],
        cost=CostTally(
            runs=sum(g.costed for g in groups),
            cpu_user_s=sum(float(g.cpu_user_s or 0) for g in groups),
            cpu_system_s=sum(float(g.cpu_system_s or 0) for g in groups),
            max_rss_bytes=max(peaks, default=None),
            output_bytes=sum(int(g.output_bytes or 0) for g in groups),
        ),
        peaks=[r.max_rss_bytes for r in ran if r.max_rss_bytes is not None],
    )


def _conditions(where: RunFilter, dialect: str, as_of: datetime | None = None) -> list[Any]:
    """The filter's conditions; with ``as_of``, only runs listed by then (not the
    reservations ahead: cronwarden/reservations.py)."""
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
    if as_of is not None:
        conditions.append(listed_rows(as_of, until=where.end_date))
    elif where.end_date is not None:
        conditions.append(col(Run.created_at) <= where.end_date)
    if where.search:
        conditions.append(search_condition(where.search, dialect))
    if where.caused_by is not None:
        conditions.append(caused_by_condition(where.caused_by))
    if where.tags:
        conditions.append(tags_condition(where.tags, dialect))
    return conditions


def _page_rows(
    conn: Connection,
    parts: Sequence[sa.Select[Any]],
    conditions: Sequence[sa.ColumnElement[bool]],
    limit: int,
    offset: int,
) -> list[sa.Row[Any]]:
    """Up to ``limit + 1`` rows (the extra one says there is a next page), read part by
    part of the order (a sort's runs with a value, then those without one)."""
    runs: list[sa.Row[Any]] = []
    skip = offset
    for part in parts:
        query = part.where(*conditions).offset(skip).limit(limit + 1 - len(runs))
        runs += conn.execute(query).all()
        if len(runs) > limit:
            break
        if skip:  # what this part held counts against the offset
            held = select(sa.func.count()).select_from(part.where(*conditions).subquery())
            skip = max(0, skip - conn.execute(held).scalar_one())
    return runs


def _total(conn: Connection, where: RunFilter, dialect: str, now: datetime) -> int:
    """All the filter matches, less the reservations ahead among them (see
    reservations.ahead_rows)."""
    filters = _conditions(where, dialect)
    total = 0
    for sign, extra in ((1, []), (-1, [ahead_rows(now)])):
        count = select(sa.func.count()).select_from(Run).where(*filters, *extra)
        total += sign * conn.execute(count).scalar_one()
    return total


def _newest_matches(
    conn: Connection, order: RunOrder, part: Any, rest: list[Any], term: str, wanted: int
) -> list[sa.Row[Any]] | None:
    """The first ``wanted`` runs matching ``term`` in created_at order, if the newest
    SEARCH_WINDOW runs (in that order, under the other filters) hold them; else None.

    The FTS evaluates every match of a term before the first row is returned: a term
    found in 7% of 1,000,000 runs took 230 ms a page.  Limited to the rowid range of
    the window's runs, it reads a sliver of each trigram's list.  The answer is the
    same: a match before the window's last run is in the window."""
    newest = part.where(*rest)
    # The window's rowid range and size, then its last run: read in SQL (a window's
    # rows brought into Python cost more than the search).
    window = newest.with_only_columns(sa.literal_column("runs.rowid").label("r"))
    window = window.limit(SEARCH_WINDOW).subquery()
    low, high, size = conn.execute(
        sa.select(sa.func.min(window.c.r), sa.func.max(window.c.r), sa.func.count())
    ).one()
    if not size:
        return []
    last = conn.execute(
        newest.with_only_columns(col(Run.created_at), col(Run.id)).offset(size - 1).limit(1)
    ).one()
    matching = search_condition(term, "sqlite", rowids=(low, high))
    inside = order.up_to(list(last))
    found = list(conn.execute(newest.where(inside, matching).limit(wanted)).all())
    if len(found) == wanted or size < SEARCH_WINDOW:
        return found
    return None


@functools.cache
def _wired_instants(dialect: str) -> tuple[Any, ...]:
    """The shown instants of a page's runs as the API writes them (model.SHOWN_INSTANTS)."""
    table = Run.__tablename__
    return tuple(
        wire_text(f"{table}.{name}", dialect).label(wire_name(name)) for name in SHOWN_INSTANTS
    )


def _as_utc(value: datetime) -> datetime:
    """Aggregates (MAX) bypass the column type, so SQLite hands back naive text values."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _select_one(conn: Connection) -> None:
    conn.execute(sa.text("SELECT 1"))
