"""The store against real engines: a SQLite file and a PostgreSQL database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from cronwarden.errors import InvalidCursor, RunNotFound
from cronwarden.model import Run, Status
from cronwarden.reservations import reserve
from cronwarden.run_record import RunRecord
from cronwarden.store import RunFilter, Store, open_engine
from cronwarden.store.migrate import HEAD, alembic_config
from cronwarden.store.protocol import KeyClaim

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def claim_one(store: Store, run: RunRecord) -> None:
    assert await store.claim([run]) == {run.id}


def make_run(i: int, task: str = "t", **kw: object) -> RunRecord:
    values: dict[str, object] = {
        "id": f"00000000-0000-7000-8000-{i:012d}",
        "task_name": task,
        "triggered_by": "schedule",
        "created_at": T0 + timedelta(seconds=i),
        "node": "n1",
        "task_hash": "abc",
        "params": {"k": "v"},
        **kw,
    }
    return RunRecord(**values)  # type: ignore[arg-type]


async def test_migrations_are_idempotent(store: Store) -> None:
    await Store.open(store.engine)  # a second start-up applies nothing new
    async with store.engine.connect() as conn:
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
    assert version == [(HEAD,)]


def test_head_names_the_newest_migration() -> None:
    """A database at HEAD skips alembic at start-up, so HEAD must be the real head."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD == "0020"


async def test_sqlite_keeps_instants_as_utc_iso_text(tmp_path: Path) -> None:
    """The text SQLite holds sorts as the instants do, whatever zone they were given in;
    reads turn it back into aware UTC, and a naive datetime is refused, not guessed."""
    path = tmp_path / "cronwarden.db"
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{path}"))
    try:
        plus_two = timezone(timedelta(hours=2))
        given = datetime(2026, 3, 1, 14, 0, 0, 250, tzinfo=plus_two)
        await claim_one(store, make_run(1, created_at=given, scheduled_for=given))
        await store.record(make_run(1).id, {"end_at": T0 + timedelta(minutes=1)})
        async with store.engine.connect() as conn:
            raw = (
                await conn.execute(sa.text("SELECT created_at, end_at, start_at FROM runs"))
            ).one()
        assert tuple(raw) == ("2026-03-01 12:00:00.000250", "2026-03-01 12:01:00.000000", None)
        run = await store.get_run(make_run(1).id)
        assert run.created_at == given and run.created_at.tzinfo == UTC
        assert not (await store.list_runs(RunFilter(end_date=T0), limit=5)).runs  # 250 µs late
        page = await store.list_runs(RunFilter(end_date=given), limit=5)
        assert [r.created_at for r in page.runs] == [given]
        with pytest.raises(sa.exc.StatementError, match="naive"):
            await store.record(make_run(1).id, {"end_at": datetime(2026, 3, 1, 12, 0)})
    finally:
        await store.close()


async def test_round_trip_keeps_aware_utc_times(store: Store) -> None:
    await claim_one(store, make_run(1, scheduled_for=T0))
    run = await store.get_run(make_run(1).id)
    assert run.created_at == T0 + timedelta(seconds=1)
    assert run.created_at.tzinfo is not None and run.scheduled_for == T0
    assert run.params == {"k": "v"} and run.status == Status.PENDING


async def test_unknown_id_raises(store: Store) -> None:
    with pytest.raises(RunNotFound):
        await store.get_run("00000000-0000-7000-8000-999999999999")


async def test_a_fire_can_be_claimed_once(store: Store) -> None:
    assert await store.claim([make_run(1, scheduled_for=T0)]) == {make_run(1).id}
    assert await store.claim([make_run(2, scheduled_for=T0)]) == set()
    again = [
        make_run(3, scheduled_for=T0, attempt=2),  # a retry is a new attempt
        make_run(4),  # API runs have no fire to collide on
        make_run(5),
        make_run(6, scheduled_for=T0),  # the same fire twice in one statement
    ]
    assert await store.claim(again) == {make_run(i).id for i in (3, 4, 5)}


async def test_concurrent_writes_are_group_committed_in_order(store: Store) -> None:
    """Writes that arrive while a commit is in flight share the next transaction; the
    updates of one run keep the order they were asked for."""
    runs = [make_run(i, scheduled_for=T0 + timedelta(seconds=i)) for i in range(300)]
    before = store.recorder.batches
    claimed = await asyncio.gather(*(store.claim([run]) for run in runs))
    assert set().union(*claimed) == {r.id for r in runs}
    assert store.recorder.batches - before <= 3  # not 300 commits
    before = store.recorder.batches
    await asyncio.gather(
        *(
            step
            for run in runs
            for step in (
                store.record(run.id, {"status": "running", "pid": 1}),
                store.record(run.id, {"status": "ended", "end_reason": "success"}),
            )
        )
    )
    assert store.recorder.batches - before <= 3
    for run in (runs[0], runs[-1]):
        got = await store.get_run(run.id)
        assert (got.status, got.end_reason, got.pid) == ("ended", "success", 1)


async def test_an_idempotency_key_belongs_to_one_run_for_a_day(store: Store) -> None:
    def claim(i: int, at: datetime, fingerprint: str = "f1") -> KeyClaim:
        return KeyClaim("t", "k", fingerprint, at, at - timedelta(hours=24))

    first, second = make_run(1), make_run(2)
    owners = await asyncio.gather(
        store.claim_keyed(first, claim(1, T0)), store.claim_keyed(second, claim(2, T0))
    )
    assert owners == [first.id, first.id]  # the second request gets the first one's run
    with pytest.raises(RunNotFound):
        await store.get_run(second.id)
    found = await store.find_key("t", "k", T0 - timedelta(hours=24))
    assert found is not None and found.run.id == first.id and found.fingerprint == "f1"
    assert await store.find_key("other-task", "k", T0 - timedelta(hours=24)) is None
    later = T0 + timedelta(hours=25)  # expired: the key is free again
    assert await store.find_key("t", "k", later - timedelta(hours=24)) is None
    third = make_run(3)
    assert await store.claim_keyed(third, claim(3, later, "f2")) == third.id


async def test_keyset_pages_cover_everything_once(store: Store) -> None:
    for i in range(25):
        await claim_one(store, make_run(i, task="a" if i % 2 else "b"))
    seen: list[str] = []
    page = await store.list_runs(RunFilter(), limit=10, with_total=True)
    assert page.total == 25
    seen += [r.id for r in page.runs]
    while page.has_next:
        page = await store.list_runs(RunFilter(), limit=10, cursor=page.next_cursor)
        seen += [r.id for r in page.runs]
    assert seen == [make_run(i).id for i in reversed(range(25))]
    ascending = await store.list_runs(RunFilter(task_name="a"), limit=100, ascending=True)
    assert [r.id for r in ascending.runs] == [make_run(i).id for i in range(1, 25, 2)]


async def test_filters(store: Store) -> None:
    await claim_one(store, make_run(1, status="ended", end_reason="failed"))
    await claim_one(store, make_run(2, status="ended", end_reason="success"))
    await claim_one(store, make_run(3, triggered_by="api"))
    failed = await store.list_runs(RunFilter(end_reason=["failed"]), limit=10)
    assert [r.id for r in failed.runs] == [make_run(1).id]
    api = await store.list_runs(RunFilter(triggered_by=["api"]), limit=10)
    assert [r.id for r in api.runs] == [make_run(3).id]
    window = RunFilter(start_date=T0 + timedelta(seconds=2), end_date=T0 + timedelta(seconds=2))
    assert [r.id for r in (await store.list_runs(window, limit=10)).runs] == [make_run(2).id]


async def test_forged_cursor_is_refused(store: Store) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_runs(RunFilter(), limit=10, cursor="bm90LWEtY3Vyc29y")


async def test_anchor_is_the_newest_handled_fire(store: Store) -> None:
    await claim_one(store, make_run(1, scheduled_for=T0))
    await claim_one(store, make_run(2, scheduled_for=T0 + timedelta(minutes=1)))
    await store.save_task_state("other", last_scheduled_for=T0 + timedelta(hours=1))
    anchors = await store.last_scheduled_for()
    assert anchors == {"t": T0 + timedelta(minutes=1), "other": T0 + timedelta(hours=1)}


async def test_task_state_persists(store: Store) -> None:
    await store.save_task_state("t", paused=True)
    assert (await store.task_states())["t"].paused
    await store.save_task_state("t", paused=False)
    assert not (await store.task_states())["t"].paused


async def test_sqlite_runs_in_wal_mode_under_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "cronwarden.db"
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{path}"))
    async with store.engine.connect() as conn:
        mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
        sync = (await conn.execute(sa.text("PRAGMA synchronous"))).scalar_one()
    await store.close()
    assert path.exists() and mode == "wal" and sync == 1  # NORMAL


async def test_last_runs_for_all_tasks_or_those_named(store: Store) -> None:
    for i, task in enumerate(["a", "b", "a", "b", "a", "c"]):
        await claim_one(store, make_run(i, task=task))
    assert {n: r.id for n, r in (await store.last_runs()).items()} == {
        "a": make_run(4).id,
        "b": make_run(3).id,
        "c": make_run(5).id,
    }
    assert {n: r.id for n, r in (await store.last_runs(["b"])).items()} == {"b": make_run(3).id}
    named = await store.last_runs(["c", "a", "nobody"])
    assert {n: r.id for n, r in named.items()} == {"a": make_run(4).id, "c": make_run(5).id}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'old' / 'cronwarden.db'}"
    return str(request.getfixturevalue("pg_admin").create(schema=False))


async def test_upgrade_from_0001_keeps_idempotency_keys(empty_database: str) -> None:
    """A database written by the first schema upgrades in place; keys recorded on runs
    keep returning their run."""
    from alembic import command

    from cronwarden.store.migrate import alembic_config

    engine = open_engine(empty_database)

    def upgrade_to_0001(connection: sa.Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade_to_0001)
        old = make_run(1, idempotency_key="deploy-7", created_at=T0)
        later = {"rerun_of", "stop_requested_at", "slot", "caused_by", "fire_node"}
        later |= {"cpu_user_s", "cpu_system_s", "max_rss_bytes", "output_bytes"}
        later |= {"delayed_until", "expires_at"}
        later |= {"tags", "run_metadata"}
        later |= {"report_token_sha256", "stage", "progress", "output"}
        columns = Run.__table__.columns  # type: ignore[attr-defined]
        row = {c.name: getattr(old, c.name) for c in columns if c.name not in later}
        # The table as 0001 made it: Run's own would add the later columns' defaults.
        as_of_0001 = sa.Table(
            "runs", sa.MetaData(), *(sa.Column(c.name, c.type) for c in columns if c.name in row)
        )
        await conn.execute(as_of_0001.insert(), [row])
    store = await Store.open(engine)
    try:
        found = await store.find_key("t", "deploy-7", T0 - timedelta(hours=1))
        assert found is not None and found.run.id == old.id
        assert found.fingerprint == ""  # unknown: any repeat body is accepted
        upgraded = await store.get_run(old.id)
        assert upgraded.idempotency_key == "deploy-7" and upgraded.rerun_of is None
        assert upgraded.tags == [] and upgraded.run_metadata == {}  # 0016's defaults
    finally:
        await store.close()


async def test_saves_of_one_new_task_state_at_once_both_land(store: Store) -> None:
    """The dead-man's switch saves when watching began and, a moment later, when it
    alerted: two first saves of one task must not race to insert its row."""
    await asyncio.gather(
        store.save_task_state("fresh", watched_since=T0),
        store.save_task_state("fresh", overdue_alerted_at=T0 + timedelta(hours=1)),
        store.save_task_state("fresh", paused=True),
    )
    state = (await store.task_states())["fresh"]
    assert state.watched_since == T0 and state.paused is True
    assert state.overdue_alerted_at == T0 + timedelta(hours=1)


async def test_a_reservation_is_taken_over_only_by_its_own_node(store: Store) -> None:
    """A fire's row committed ahead of its instant and let go (a pause, a reload, a wake
    too late) may be asked for again before its delete lands: the node's new row
    replaces it.  Another node's reservation, or a run that started, counts as claimed."""
    soon = datetime.now(UTC) + timedelta(seconds=1)

    def reservation(i: int, node: str = "n1", at: datetime = soon, **kw: object) -> RunRecord:
        run = reserve(make_run(i, scheduled_for=at, node=node), at)
        run.change(kw)
        return run

    await claim_one(store, reservation(1))
    assert await store.claim([reservation(2, node="n2")]) == set()
    missed = reservation(3, status=Status.ENDED, end_reason="missed")
    assert await store.claim([missed]) == {missed.id}
    with pytest.raises(RunNotFound):
        await store.get_run(make_run(1).id)
    assert await store.claim([reservation(4)]) == set()  # an ended run is no reservation
    later = soon + timedelta(seconds=1)
    await claim_one(store, reservation(5, at=later))
    await store.record(make_run(5).id, {"status": Status.RUNNING})
    assert await store.claim([reservation(6, at=later)]) == set()  # nor a started one


async def test_a_closed_store_leaves_no_thread_behind(tmp_path: Path) -> None:
    import threading

    def lane_threads() -> int:
        names = ("cronwarden-recorder", "cronwarden-reader")
        return sum(t.name.startswith(names) for t in threading.enumerate())

    before = lane_threads()
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{tmp_path / 'cronwarden.db'}"))
    await claim_one(store, make_run(1))  # SQLite batches commit on a thread of their own
    assert [r.id for r in (await store.list_runs(RunFilter(), limit=5)).runs] == [make_run(1).id]
    assert lane_threads() == before + 2  # and pages are read on another
    await store.close()
    deadline = asyncio.get_running_loop().time() + 10
    while lane_threads() > before:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_a_failed_migration_says_why(tmp_path: Path) -> None:
    """Migrations run in a process of their own; when one fails, the start-up fails
    with its error, and the daemon never imported alembic to find out."""
    from cronwarden.errors import MigrationFailed

    engine = open_engine(f"sqlite+aiosqlite:///{tmp_path / 'cronwarden.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE alembic_version (version_num TEXT)"))
            await conn.execute(sa.text("INSERT INTO alembic_version VALUES ('9999')"))
        with pytest.raises(MigrationFailed, match="9999"):
            await Store.open(engine)
    finally:
        await engine.dispose()
