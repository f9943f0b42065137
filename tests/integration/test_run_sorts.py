"""Run lists in every sort, on SQLite and PostgreSQL: a cursor walk with runs added
between pages sees every run once, in order; each sort reads an index; search
(issue: the API, complete)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_store import T0, claim_one, make_run  # type: ignore[import-not-found]

from cronwarden.errors import InvalidCursor
from cronwarden.model import Run
from cronwarden.run_sorts import SORT_FIELDS
from cronwarden.store import RunFilter, Store, open_engine
from cronwarden.store.paging import RunOrder

STATUSES = ("pending", "running", "ended")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """600 runs with repeated values and gaps (no start, no end, no exit code)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'cronwarden.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    store = await Store.open(open_engine(url))
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM runs"))
    rng = random.Random(7)
    await store.claim([seed_run(i, rng) for i in range(600)])
    yield store
    await store.close()


def seed_run(i: int, rng: random.Random, **kw: Any) -> Run:
    status = rng.choice(STATUSES)
    started = status != "pending" and rng.random() < 0.9
    ended = status == "ended"
    start = T0 + timedelta(seconds=rng.randrange(0, 50)) if started else None
    return make_run(
        i,
        task=rng.choice(["alpha", "beta", "gamma"]),
        status=status,
        start_at=start,
        end_at=start + timedelta(seconds=rng.randrange(0, 5)) if start and ended else None,
        exit_code=rng.choice([0, 0, 1, 2]) if ended and start else None,
        duration_ms=rng.randrange(0, 4) * 1000 if ended and start else None,
        end_reason="success" if ended else None,
        **kw,
    )


def expected_order(runs: list[Run], field: str, ascending: bool) -> list[str]:
    def key(run: Run) -> tuple[Any, ...]:
        value = getattr(run, field)
        return (value, run.created_at, run.id)

    valued = sorted((r for r in runs if getattr(r, field) is not None), key=key)
    empty = sorted(
        (r for r in runs if getattr(r, field) is None), key=lambda r: (r.created_at, r.id)
    )
    if not ascending:
        valued.reverse()
        empty.reverse()
    return [r.id for r in valued + empty]  # runs without a value always come last


@pytest.mark.parametrize("ascending", [False, True], ids=["desc", "asc"])
@pytest.mark.parametrize("field", SORT_FIELDS)
async def test_a_cursor_walk_sees_every_run_once_in_order(
    seeded: Store, field: str, ascending: bool
) -> None:
    before = (await seeded.list_runs(RunFilter(), limit=1000)).runs
    walked: list[str] = []
    page = await seeded.list_runs(RunFilter(), limit=37, ascending=ascending, sort_field=field)
    walked += [r.id for r in page.runs]
    added = 0
    rng = random.Random(len(field))
    while page.has_next:
        # Runs arrive between pages; those sorting before the cursor are not seen,
        # those after it are, and nothing seen before comes again.
        added += 1
        extra = seed_run(10_000 + added + (0 if ascending else 500), rng)
        await claim_one(seeded, extra)
        assert page.next_cursor is not None
        page = await seeded.list_runs(
            RunFilter(), limit=37, ascending=ascending, sort_field=field, cursor=page.next_cursor
        )
        walked += [r.id for r in page.runs]
    assert len(walked) == len(set(walked)), "a run came twice"
    original = expected_order(before, field, ascending)
    assert [i for i in walked if i in set(original)] == original


@pytest.mark.parametrize("field", SORT_FIELDS)
async def test_every_sort_reads_an_index(seeded: Store, field: str) -> None:
    sample = (await seeded.list_runs(RunFilter(), limit=1000)).runs
    for ascending in (False, True):
        order = RunOrder(field, ascending)
        positions = [None, order.key(sample[0])]
        if field in ("start_at", "end_at", "exit_code", "duration_ms"):
            pending = next(r for r in sample if getattr(r, field) is None)
            positions.append(order.key(pending))
        reads = [{}, {"backward": True}, {"inclusive": True, "stop": positions[-1]}]
        for position in positions:
            # Forward (a next page), backward (the page before a run), and between two
            # runs (a page read again by a prev_cursor).
            for read in reads if position is not None else reads[:1]:
                for query in order.parts(position, **read):
                    plan = await explain(seeded, query.limit(50))
                    assert uses_index_in_order(seeded, plan), (field, ascending, read, plan)


async def explain(store: Store, query: Any, *, sorting: bool = False) -> str:
    dialect = store.engine.dialect
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    async with store.engine.connect() as conn:
        if dialect.name == "sqlite":
            rows = await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"))
            return "\n".join(str(row[-1]) for row in rows)
        # On a small table the planner would rather scan and sort; forbid both to
        # see whether an index can serve the order at all.
        await conn.execute(sa.text("SET enable_seqscan = off"))
        if not sorting:
            await conn.execute(sa.text("SET enable_sort = off"))
            await conn.execute(sa.text("SET enable_incremental_sort = off"))
        rows = await conn.execute(sa.text(f"EXPLAIN {sql}"))
        return "\n".join(str(row[0]) for row in rows)


def uses_index_in_order(store: Store, plan: str) -> bool:
    if store.engine.dialect.name == "sqlite":
        return "USING" in plan and "INDEX" in plan and "TEMP B-TREE" not in plan
    return "Index" in plan and "Sort" not in plan


async def test_a_cursor_of_another_sort_is_refused(seeded: Store) -> None:
    page = await seeded.list_runs(RunFilter(), limit=5, sort_field="duration_ms")
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await seeded.list_runs(RunFilter(), limit=5, sort_field="end_at", cursor=page.next_cursor)
    with pytest.raises(InvalidCursor):
        await seeded.list_runs(
            RunFilter(), limit=5, sort_field="duration_ms", ascending=True, cursor=page.next_cursor
        )


async def test_offset_continues_into_the_runs_without_a_value(seeded: Store) -> None:
    everything = (await seeded.list_runs(RunFilter(), limit=1000, sort_field="exit_code")).runs
    valued = sum(r.exit_code is not None for r in everything)
    page = await seeded.list_runs(RunFilter(), limit=10, sort_field="exit_code", offset=valued - 5)
    assert [r.id for r in page.runs] == [r.id for r in everything[valued - 5 : valued + 5]]


async def test_search_finds_task_names_errors_and_params(seeded: Store) -> None:
    await claim_one(seeded, make_run(20_001, task="backup", params={}))
    await claim_one(seeded, make_run(20_002, error="disk full on /srv", params={}))
    await claim_one(seeded, make_run(20_003, params={"who": "Ann"}))
    await claim_one(seeded, make_run(20_004, params={"rate": "100%"}))
    ended = make_run(20_005, params={})
    await claim_one(seeded, ended)
    await seeded.record(ended.id, {"error": "timed out waiting for lock"})

    async def found(term: str) -> list[int]:
        page = await seeded.list_runs(RunFilter(search=term), limit=10)
        return sorted(int(r.id[-5:]) for r in page.runs)

    assert await found("BACKUP") == [20_001]
    assert await found("disk full") == [20_002]
    assert await found("ann") == [20_003]
    assert await found("100%") == [20_004]
    assert await found("%") == [20_004]  # a literal percent, not a wildcard
    assert await found("for lock") == [20_005]  # an error recorded at the end
    assert await found("_x_") == []


@pytest.mark.parametrize("window", [7, 32, 50, 10_000])
async def test_a_search_read_newest_first_pages_like_the_whole_table(
    seeded: Store, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite looks for a search's matches among the newest runs first (SEARCH_WINDOW):
    with a window smaller than a page, as large as several, or the whole table, a
    cursor walk finds the same runs in the same order, whether the term is common
    (every third run) or rare (three runs, one of them the oldest)."""
    import cronwarden.store.runs as runs_module

    rare = {0, 300, 599}
    async with seeded.engine.begin() as conn:
        for i in range(600):
            marks = " ".join(
                word for word, on in (("common", i % 3 == 0), ("rare-one", i in rare)) if on
            )
            await conn.execute(
                sa.text("UPDATE runs SET error = :e WHERE id = :id"),
                {"e": marks or None, "id": make_run(i).id},
            )
        # A run whose rowid sits among the newest but whose created_at is the oldest:
        # the window is bounded by created_at, not by rowid alone.
        runs = Run.__table__  # type: ignore[attr-defined]
        await conn.execute(
            sa.update(runs)
            .where(runs.c.id == make_run(597).id)
            .values(created_at=T0 - timedelta(days=30))
        )
    monkeypatch.setattr(runs_module, "SEARCH_WINDOW", window)
    everything = (await seeded.list_runs(RunFilter(), limit=1000)).runs

    async def walk(flt: RunFilter, ascending: bool) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = await seeded.list_runs(flt, limit=10, cursor=cursor, ascending=ascending)
            seen += [r.id for r in page.runs]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    for term, chosen in (("common", lambda i: i % 3 == 0), ("rare-one", lambda i: i in rare)):
        for ascending in (False, True):
            expected = [r.id for r in everything if chosen(int(r.id[-12:]))]
            if ascending:
                expected.reverse()
            assert await walk(RunFilter(search=term), ascending) == expected, (term, ascending)
        task_only = [r.id for r in everything if chosen(int(r.id[-12:])) and r.task_name == "beta"]
        assert await walk(RunFilter(search=term, task_name="beta"), False) == task_only


FILTERS = {
    "task_name": RunFilter(task_name="alpha"),
    "status": RunFilter(status=["ended", "running"]),
    "end_reason": RunFilter(end_reason=["failed"]),
    "triggered_by": RunFilter(triggered_by=["api"]),
    "dates": RunFilter(start_date=T0, end_date=T0 + timedelta(hours=1)),
    "search": RunFilter(search="disk full"),
    "tags": RunFilter(tags=["nightly", "env=prod"]),
}


@pytest.mark.parametrize("name", FILTERS)
async def test_every_filter_reads_an_index(seeded: Store, name: str) -> None:
    from cronwarden.store.runs import _conditions

    for ascending in (False, True):
        (query,) = RunOrder("created_at", ascending).parts(None)
        plan = await explain(
            seeded, query.where(*_conditions(FILTERS[name], seeded.engine.dialect.name)).limit(50)
        )
        # The rows come from an index (for the filter, or in order for the sort), never
        # from a scan of the table; several statuses at once may then be sorted.
        assert "INDEX" in plan.upper() and "SEQ SCAN" not in plan.upper(), (name, plan)
        assert not any(line.strip() == "SCAN runs" for line in plan.splitlines()), plan


async def test_search_starts_from_its_trigram_index(seeded: Store) -> None:
    from cronwarden.store.runs import _conditions
    from cronwarden.store.search import search_condition

    dialect = seeded.engine.dialect.name
    (query,) = RunOrder("created_at", False).parts(None)
    condition = _conditions(FILTERS["search"], dialect)
    if dialect == "sqlite":  # the matches' rowids first, then those rows: no index walk
        plan = await explain(seeded, query.where(*condition).limit(50), sorting=True)
        assert "VIRTUAL TABLE INDEX" in plan and "INTEGER PRIMARY KEY" in plan, plan
    else:
        # On 600 rows the planner rightly walks the ordered index instead (and, for the
        # listing's own "created by now" bound, the created_at index); what matters here
        # is that the trigram index can serve the search condition at all.
        search = search_condition(FILTERS["search"].search or "", dialect)
        plan = await explain(seeded, sa.select(Run.id).where(search), sorting=True)
        assert "ix_runs_search" in plan, plan


async def test_a_tag_filter_reads_an_index(seeded: Store) -> None:
    """PostgreSQL: the runs carrying tags can come by containment from their GIN index
    (the planner picks it or the ordered index by the tag's frequency).  SQLite, which
    has no index of tags, checks them along the sort's index, never a table scan."""
    from cronwarden.store.search import tags_condition

    dialect = seeded.engine.dialect.name
    condition = tags_condition(["nightly", "env=prod"], dialect)
    if dialect == "postgresql":
        plan = await explain(seeded, sa.select(Run.id).where(condition), sorting=True)
        assert "ix_runs_tags" in plan, plan
    else:
        (query,) = RunOrder("created_at", False).parts(None)
        plan = await explain(seeded, query.where(condition).limit(50))
        assert uses_index_in_order(seeded, plan), plan
