"""One contract for every store: the in-memory double (MemoryStore), SQLite and
PostgreSQL (Store) answer each question of the store's seam the same way.

The seam is what the dispatcher (RunRecords, store/protocol.py), the scheduler
(TaskStateStore, scheduler/service.py), start-up (InstallationKeys) and the API's
run listings ask of a store.  A unit test driving the core over the double is only
worth as much as the double's likeness to the real stores: this is where it is held.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cronwarden.api.schemas import page_fields, run_fields
from cronwarden.errors import InvalidCursor, RunNotFound
from cronwarden.model import EndReason, Status, Trigger, utcnow
from cronwarden.reservations import reserve
from cronwarden.run_record import RUN_COLUMNS, AnyRun, RunRecord
from cronwarden.run_sorts import SORT_FIELDS
from cronwarden.store import RunFilter, Store, open_engine
from cronwarden.store.memory import MemoryStore
from cronwarden.store.protocol import KeyClaim
from cronwarden.store.runs import CostTally

# The stores are fixtures of this module, not of a conftest.py of its own: the test
# modules import the root conftest by name, which a second conftest would shadow.

STORES = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
TABLES = ("runs", "task_state", "nodes", "idempotency_keys")


@pytest.fixture(scope="module")
def contract_pg_url(pg_admin: Any) -> str:
    """A PostgreSQL database made for this module, dropped with the session's."""
    return str(pg_admin.create())


@pytest.fixture(params=STORES)
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A store with nothing in it; its kind is the test id (memory, sqlite, postgresql)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'cronwarden.db'}"
    else:
        url = request.getfixturevalue("contract_pg_url")
    store = await Store.open(open_engine(url))
    async with store.engine.begin() as conn:
        for table in TABLES:
            await conn.execute(sa.text(f"DELETE FROM {table}"))
    try:
        yield store
    finally:
        await store.close()


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def run_id(i: int) -> str:
    return str(uuid.UUID(int=(0x0190 << 112) | i))


def make_run(i: int, task: str = "t", **values: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": run_id(i),
        "task_name": task,
        "triggered_by": Trigger.API,
        "created_at": T0 + timedelta(seconds=i),
        "node": "n1",
        "task_hash": "h",
        "params": {"k": "v"},
        **values,
    }
    return RunRecord(**fields)


def fire(i: int, task: str = "t", at: datetime = T0, **values: Any) -> RunRecord:
    """A scheduled fire of ``task`` at ``at``."""
    return make_run(i, task, triggered_by=Trigger.SCHEDULE, scheduled_for=at, **values)


def reservation(i: int, at: datetime, node: str = "n1") -> RunRecord:
    """A fire's row committed ahead of its instant (see cronwarden/reservations.py)."""
    return reserve(fire(i, at=at, node=node), at)


def fields(run: AnyRun) -> dict[str, Any]:
    """A run's column values, whichever shape it comes in."""
    return {name: getattr(run, name) for name in RUN_COLUMNS}


async def ids_of(store: Any) -> set[str]:
    page = await store.list_runs(RunFilter(), limit=1000)
    return {row.id for row in page.runs}


# -- claim ---------------------------------------------------------------------------


async def test_claim_returns_what_it_committed_and_get_run_reads_it_back(any_store: Any) -> None:
    runs = [make_run(1), fire(2, error="e", params={"a": "b"}, exit_code=3)]
    assert await any_store.claim(runs) == {run_id(1), run_id(2)}
    for run in runs:
        assert fields(await any_store.get_run(run.id)) == fields(run)


async def test_get_run_hands_back_its_own_copy(any_store: Any) -> None:
    run = make_run(1)
    await any_store.claim([run])
    run.status = Status.RUNNING
    read = await any_store.get_run(run.id)
    read.status = Status.ENDED
    assert (await any_store.get_run(run.id)).status == Status.PENDING


async def test_unknown_run_is_not_found(any_store: Any) -> None:
    with pytest.raises(RunNotFound):
        await any_store.get_run(run_id(404))


async def test_a_fire_is_claimed_once(any_store: Any) -> None:
    """(task_name, scheduled_for, attempt) is claimed once: another node's claim (or an
    earlier life's) of the same fire is left out; another attempt or task is not."""
    assert await any_store.claim([fire(1)]) == {run_id(1)}
    assert await any_store.claim([fire(2, node="n2")]) == set()
    assert await any_store.claim([fire(3)]) == set()
    again = [fire(4, attempt=2), fire(5, task="u"), fire(6, at=T0 + DAY)]
    assert await any_store.claim(again) == {run_id(4), run_id(5), run_id(6)}
    with pytest.raises(RunNotFound):
        await any_store.get_run(run_id(2))


async def test_runs_on_request_never_collide(any_store: Any) -> None:
    runs = [make_run(i) for i in range(1, 4)]  # no scheduled_for: each is its own
    assert await any_store.claim(runs) == {r.id for r in runs}


async def test_a_batch_claims_what_is_free_and_leaves_out_the_rest(any_store: Any) -> None:
    await any_store.claim([fire(1)])
    batch = [fire(2), fire(3, task="u"), fire(4, at=T0 + DAY)]
    assert await any_store.claim(batch) == {run_id(3), run_id(4)}


async def test_own_reservation_is_taken_over_by_the_same_fire(any_store: Any) -> None:
    at = utcnow() + timedelta(hours=1)
    assert await any_store.claim([reservation(1, at)]) == {run_id(1)}
    assert await any_store.claim([fire(2, at=at, created_at=at)]) == {run_id(2)}
    with pytest.raises(RunNotFound):
        await any_store.get_run(run_id(1))
    assert (await any_store.get_run(run_id(2))).scheduled_for == at


@pytest.mark.parametrize(
    "held",
    [
        pytest.param({"node": "n2"}, id="another-nodes-reservation"),
        pytest.param({"status": Status.RUNNING}, id="a-started-run"),
        pytest.param({"not_before": None}, id="a-fire-claimed-at-its-instant"),
    ],
)
async def test_what_is_not_own_reservation_is_kept(any_store: Any, held: dict[str, Any]) -> None:
    at = utcnow() + timedelta(hours=1)
    first = reservation(1, at)
    for name, value in held.items():
        setattr(first, name, value)
    await any_store.claim([first])
    assert await any_store.claim([fire(2, at=at, created_at=at)]) == set()
    assert (await any_store.get_run(run_id(1))).id == run_id(1)


# -- what a job reports (cronwarden/api/reports.py) ----------------------------------


async def test_a_report_lands_until_the_run_ends_and_its_end_keeps_it(any_store: Any) -> None:
    """Written while the run has not ended (pending or running); then final: a report
    after the end changes nothing and says so, and the end never clears a report."""
    await any_store.claim([make_run(1, report_token_sha256="a" * 64)])
    said = {"stage": "loading", "progress": 0.5, "output": '{"rows":3}'}
    assert await any_store.report(run_id(1), said) is True
    await any_store.record(run_id(1), {"status": Status.RUNNING, "pid": 9})
    assert await any_store.report(run_id(1), {"progress": 0.75, "output": None}) is True
    run = await any_store.get_run(run_id(1))
    assert (run.stage, run.progress, run.output, run.pid) == ("loading", 0.75, None, 9)
    await any_store.record_end(
        run_id(1), {"status": Status.ENDED, "end_reason": EndReason.SUCCESS}, []
    )
    assert await any_store.report(run_id(1), {"stage": "late"}) is False
    run = await any_store.get_run(run_id(1))
    assert (run.stage, run.progress, run.report_token_sha256) == ("loading", 0.75, "a" * 64)
    assert await any_store.report(run_id(404), {"stage": "x"}) is False


# -- record ---------------------------------------------------------------------------


async def test_record_sets_fields(any_store: Any) -> None:
    await any_store.claim([make_run(1)])
    started = T0 + timedelta(minutes=1)
    await any_store.record(run_id(1), {"status": Status.RUNNING, "start_at": started, "pid": 9})
    run = await any_store.get_run(run_id(1))
    assert (run.status, run.start_at, run.pid) == (Status.RUNNING, started, 9)


async def test_an_ended_run_is_final(any_store: Any) -> None:
    """A survivor may have ended a run of a node it declared dead: that node's later
    writes must not overwrite the end."""
    await any_store.claim([make_run(1)])
    await any_store.record(run_id(1), {"status": Status.ENDED, "end_reason": EndReason.CRASHED})
    await any_store.record(run_id(1), {"status": Status.ENDED, "end_reason": EndReason.SUCCESS})
    await any_store.record(run_id(1), {"error": "late"})
    run = await any_store.get_run(run_id(1))
    assert (run.status, run.end_reason, run.error) == (Status.ENDED, EndReason.CRASHED, None)


async def test_record_of_an_unknown_run_changes_nothing(any_store: Any) -> None:
    await any_store.record(run_id(404), {"status": Status.RUNNING})
    assert await ids_of(any_store) == set()


async def test_writes_at_once_all_land_in_the_order_asked(any_store: Any) -> None:
    """Group commit: writes queued together land together, each caller's own."""
    await any_store.claim([make_run(i) for i in range(1, 21)])
    await asyncio.gather(
        *(any_store.record(run_id(i), {"pid": i}) for i in range(1, 21)),
        *(any_store.record(run_id(i), {"pid": 100 + i}) for i in range(1, 11)),
        any_store.claim([make_run(21)]),
    )
    pids = {i: (await any_store.get_run(run_id(i))).pid for i in range(1, 21)}
    assert pids == {i: 100 + i if i <= 10 else i for i in range(1, 21)}
    assert (await any_store.get_run(run_id(21))).id == run_id(21)


# -- reservations -----------------------------------------------------------------------


async def test_discard_reserved_deletes_only_pending_rows(any_store: Any) -> None:
    at = utcnow() + timedelta(hours=1)
    await any_store.claim([reservation(1, at), reservation(2, at + DAY), make_run(3)])
    await any_store.record(run_id(2), {"status": Status.RUNNING})
    await any_store.discard_reserved([run_id(1), run_id(2), run_id(404)])
    with pytest.raises(RunNotFound):
        await any_store.get_run(run_id(1))
    assert (await any_store.get_run(run_id(2))).status == Status.RUNNING
    await any_store.discard_reserved([])


async def test_listings_hide_fires_reserved_ahead(any_store: Any) -> None:
    """A reserved fire is a run once its instant has come, not before."""
    ahead = utcnow() + timedelta(hours=1)
    await any_store.claim([reservation(1, ahead), make_run(2)])
    assert await ids_of(any_store) == {run_id(2)}
    page = await any_store.list_runs(RunFilter(), limit=10, with_total=True)
    assert page.total == 1
    assert set(await any_store.last_runs()) == {"t"}
    assert (await any_store.last_runs())["t"].id == run_id(2)
    assert (await any_store.task_tally("t", None)).counts == {(Status.PENDING, None): 1}


# -- unfinished runs --------------------------------------------------------------------


async def test_unfinished_runs_are_this_nodes_pending_and_running(any_store: Any) -> None:
    await any_store.claim(
        [make_run(1), make_run(2), make_run(3), make_run(4, node="n2"), make_run(5)]
    )
    await any_store.record(run_id(2), {"status": Status.RUNNING})
    await any_store.record(run_id(3), {"status": Status.ENDED, "end_reason": "success"})
    unfinished = await any_store.unfinished_runs("n1")
    assert {r.id for r in unfinished} == {run_id(1), run_id(2), run_id(5)}


# -- idempotency keys --------------------------------------------------------------------


def key(at: datetime, fingerprint: str = "f1", task: str = "t", name: str = "k") -> KeyClaim:
    return KeyClaim(task, name, fingerprint, at, at - DAY)


async def test_a_key_is_owned_by_its_first_run(any_store: Any) -> None:
    assert await any_store.claim_keyed(make_run(1), key(T0)) == run_id(1)
    assert await any_store.claim_keyed(make_run(2), key(T0 + timedelta(hours=1))) == run_id(1)
    with pytest.raises(RunNotFound):
        await any_store.get_run(run_id(2))  # the repeat made no run
    found = await any_store.find_key("t", "k", T0 - DAY)
    assert found is not None
    assert (found.run.id, found.fingerprint) == (run_id(1), "f1")


async def test_two_requests_with_one_key_at_once_get_one_run(any_store: Any) -> None:
    owners = await asyncio.gather(
        any_store.claim_keyed(make_run(1), key(T0)), any_store.claim_keyed(make_run(2), key(T0))
    )
    assert len(set(owners)) == 1
    assert await ids_of(any_store) == set(owners)


async def test_an_expired_key_goes_to_the_next_request(any_store: Any) -> None:
    await any_store.claim_keyed(make_run(1), key(T0))
    later = T0 + DAY + timedelta(seconds=1)
    assert await any_store.claim_keyed(make_run(2), key(later, "f2")) == run_id(2)
    found = await any_store.find_key("t", "k", later - DAY)
    assert found is not None
    assert (found.run.id, found.fingerprint) == (run_id(2), "f2")


async def test_find_key_sees_only_keys_taken_since(any_store: Any) -> None:
    await any_store.claim_keyed(make_run(1), key(T0))
    assert await any_store.find_key("t", "k", T0 + timedelta(seconds=1)) is None
    assert await any_store.find_key("t", "other", T0 - DAY) is None
    assert await any_store.find_key("u", "k", T0 - DAY) is None


async def test_keys_are_per_task(any_store: Any) -> None:
    assert await any_store.claim_keyed(make_run(1), key(T0)) == run_id(1)
    assert await any_store.claim_keyed(make_run(2, "u"), key(T0, task="u")) == run_id(2)


# -- task state (pauses, catch-up anchors) ------------------------------------------------


async def test_task_state_is_upserted_field_by_field(any_store: Any) -> None:
    assert await any_store.task_states() == {}
    await any_store.save_task_state("t", paused=True)
    await any_store.save_task_state("t", last_scheduled_for=T0)
    await any_store.save_task_state("u", paused=False, watched_since=T0)
    states = await any_store.task_states()
    assert set(states) == {"t", "u"}
    t, u = states["t"], states["u"]
    assert (t.paused, t.last_scheduled_for, t.watched_since) == (True, T0, None)
    assert (u.paused, u.watched_since) == (False, T0)
    assert t.updated_at is not None and t.updated_at.tzinfo is not None
    await any_store.save_task_state("t", paused=False)
    assert (await any_store.task_states())["t"].paused is False


async def test_two_saves_of_one_task_at_once_both_land(any_store: Any) -> None:
    await asyncio.gather(
        any_store.save_task_state("t", watched_since=T0),
        any_store.save_task_state("t", overdue_alerted_at=T0 + DAY),
    )
    state = (await any_store.task_states())["t"]
    assert (state.watched_since, state.overdue_alerted_at) == (T0, T0 + DAY)


async def test_the_too_long_mark_is_kept_with_the_task_state(any_store: Any) -> None:
    await any_store.save_task_state("t", too_long_alerted_start=T0)
    await any_store.save_task_state("t", paused=True)
    state = (await any_store.task_states())["t"]
    assert (state.too_long_alerted_start, state.paused) == (T0, True)


async def test_recent_attempts_reads_a_tasks_runs_newest_first_but_fires_never_run(
    any_store: Any,
) -> None:
    """What a failure streak is counted from (alerts/streaks.py), page by page."""
    await any_store.claim(
        [
            make_run(1, status=Status.ENDED, end_reason=EndReason.FAILED, end_at=T0 + DAY),
            make_run(2, status=Status.ENDED, end_reason=EndReason.SKIPPED),
            make_run(3, status=Status.ENDED, end_reason=EndReason.MISSED),
            make_run(4, status=Status.ENDED, end_reason=EndReason.FAILED, retry_of=run_id(1)),
            make_run(5, "u", status=Status.ENDED, end_reason=EndReason.SUCCESS),
            make_run(6, status=Status.RUNNING),
            make_run(7, status=Status.ENDED, end_reason=EndReason.STOPPED),
        ]
    )
    read = await any_store.recent_attempts("t", 10)
    assert [(a.id, a.end_reason, a.retry_of) for a in read] == [
        (run_id(7), "stopped", None),
        (run_id(6), None, None),
        (run_id(4), "failed", run_id(1)),
        (run_id(1), "failed", None),
    ]
    assert read[0].created_at == T0 + timedelta(seconds=7)
    assert (read[1].end_at, read[3].end_at) == (None, T0 + DAY)
    page = await any_store.recent_attempts("t", 2)
    assert [a.id for a in page] == [run_id(7), run_id(6)]
    after_page = (page[-1].created_at, page[-1].id)  # strictly before: a keyset
    assert [a.id for a in await any_store.recent_attempts("t", 2, after_page)] == [
        run_id(4),
        run_id(1),
    ]
    assert await any_store.recent_attempts("nobody", 10) == []


async def test_last_scheduled_for_is_the_newest_fire_handled(any_store: Any) -> None:
    """From the runs' fires and from the task state, whichever is newer."""
    await any_store.claim([fire(1, at=T0), fire(2, at=T0 + DAY), fire(3, "u", at=T0), make_run(4)])
    await any_store.save_task_state("u", last_scheduled_for=T0 + 2 * DAY)
    await any_store.save_task_state("v", last_scheduled_for=T0)
    await any_store.save_task_state("w", paused=True)
    anchors = await any_store.last_scheduled_for()
    assert anchors == {"t": T0 + DAY, "u": T0 + 2 * DAY, "v": T0}
    await any_store.save_task_state("t", last_scheduled_for=T0)
    assert (await any_store.last_scheduled_for())["t"] == T0 + DAY


# -- the installation ------------------------------------------------------------------------


async def test_installation_key_is_made_once(any_store: Any) -> None:
    first, second = await asyncio.gather(any_store.installation_key(), any_store.installation_key())
    assert first == second == await any_store.installation_key()
    assert isinstance(first, bytes) and len(first) >= 32


# -- the API's reads ---------------------------------------------------------------------


async def ended(
    store: Any, i: int, reason: str, duration_ms: int, task: str = "t", **cost: Any
) -> None:
    run = make_run(i, task)
    await store.claim([run])
    await store.record(
        run.id,
        {
            "status": Status.ENDED,
            "end_reason": reason,
            "start_at": run.created_at,
            "end_at": run.created_at + timedelta(milliseconds=duration_ms),
            "duration_ms": duration_ms,
            "exit_code": 0 if reason == "success" else 1,
            **cost,
        },
    )


def cost(user: float, system: float, peak: int, output: int) -> dict[str, Any]:
    return {
        "cpu_user_s": user,
        "cpu_system_s": system,
        "max_rss_bytes": peak,
        "output_bytes": output,
    }


async def test_tally_sums_what_the_runs_cost(any_store: Any) -> None:
    """Sums over every group of the window, of the runs whose cost is known; the peaks
    of the durations' sample, newest first.  Big numbers: PostgreSQL sums BIGINT as
    numeric, which must come back a plain int."""
    await ended(any_store, 1, "success", 100, **cost(0.5, 0.25, 6 * 2**30, 3 * 2**40))
    await ended(any_store, 2, "failed", 300, **cost(1.0, 0.5, 2**20, 2**40))
    await ended(any_store, 3, "success", 200)  # cost not known (re-adopted)
    await ended(any_store, 4, "skipped", 0)
    await ended(any_store, 5, "success", 50, task="u", **cost(9.0, 9.0, 2**40, 9))
    tally = await any_store.task_tally("t", None)
    assert tally.cost == CostTally(
        runs=2, cpu_user_s=1.5, cpu_system_s=0.75, max_rss_bytes=6 * 2**30, output_bytes=2**42
    )
    assert type(tally.cost.output_bytes) is int and type(tally.cost.cpu_user_s) is float
    assert tally.peaks == [2**20, 6 * 2**30]  # newest first, the unknown left out
    since = await any_store.task_tally("t", T0 + timedelta(seconds=2))
    assert since.cost == CostTally(
        runs=1, cpu_user_s=1.0, cpu_system_s=0.5, max_rss_bytes=2**20, output_bytes=2**40
    )
    assert (await any_store.task_tally("nothing", None)).cost == CostTally()


async def test_tally_last_runs_successes_and_count(any_store: Any) -> None:
    await ended(any_store, 1, "success", 100)
    await ended(any_store, 2, "failed", 300)
    await ended(any_store, 3, "success", 200)
    await ended(any_store, 4, "skipped", 0)
    await ended(any_store, 5, "success", 50, task="u")
    await any_store.claim([make_run(6)])
    tally = await any_store.task_tally("t", None)
    assert tally.counts == {
        (Status.ENDED, "success"): 2,
        (Status.ENDED, "failed"): 1,
        (Status.ENDED, "skipped"): 1,
        (Status.PENDING, None): 1,
    }
    assert tally.durations == [200, 300, 100]  # newest first, skipped left out
    assert tally.longest == {"success": 200, "failed": 300, "skipped": 0}
    assert tally.last_end["success"] == T0 + timedelta(seconds=3, milliseconds=200)
    since = await any_store.task_tally("t", T0 + timedelta(seconds=3))
    assert sum(since.counts.values()) == 3
    assert {n: r.id for n, r in (await any_store.last_runs()).items()} == {
        "t": run_id(6),
        "u": run_id(5),
    }
    assert set(await any_store.last_runs(["u"])) == {"u"}
    successes = await any_store.last_successes()
    assert successes["t"] == T0 + timedelta(seconds=3, milliseconds=200)
    assert set(successes) == {"t", "u"}
    assert await any_store.run_count() == 6


async def varied_runs(store: Any, numbers: range = range(1, 13), now: bool = False) -> None:
    """Runs with ties and gaps in every sort field (created now, or from T0 on)."""
    for i in numbers:
        task = ("alpha", "beta", "gamma")[i % 3]
        created = utcnow() if now else T0 + timedelta(seconds=i // 2)
        run = make_run(i, task, created_at=created)
        await store.claim([run])
        if i % 4 == 0:
            continue  # pending: no start, no end
        values: dict[str, Any] = {"status": Status.RUNNING, "start_at": T0 + timedelta(i % 5)}
        if i % 4 != 1:
            values.update(
                status=Status.ENDED,
                end_reason="success" if i % 2 else "failed",
                end_at=T0 + timedelta(days=i % 3, seconds=1),
                duration_ms=(i % 3) * 1000,
                exit_code=i % 2,
                error=None if i % 2 else f"Boom {i}",
            )
        await store.record(run.id, values)


async def walk(store: Any, where: RunFilter, **order: Any) -> list[str]:
    """Every run of a listing, page after page by cursor."""
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page = await store.list_runs(where, limit=5, cursor=cursor, **order)
        seen += [row.id for row in page.runs]
        if not page.has_next:
            return seen
        cursor = page.next_cursor
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("ascending", [False, True], ids=["desc", "asc"])
@pytest.mark.parametrize("sort_field", SORT_FIELDS)
async def test_pages_walk_every_run_once_in_order(
    any_store: Any, sort_field: str, ascending: bool
) -> None:
    await varied_runs(any_store)
    order = {"sort_field": sort_field, "ascending": ascending}
    whole = await any_store.list_runs(RunFilter(), limit=100, **order)
    expected = [row.id for row in whole.runs]
    assert len(expected) == 12 and not whole.has_next and whole.next_cursor is None
    assert await walk(any_store, RunFilter(), **order) == expected
    by_offset = await any_store.list_runs(RunFilter(), limit=4, offset=5, **order)
    assert [row.id for row in by_offset.runs] == expected[5:9]


async def test_a_page_shows_instants_as_a_single_run_does(any_store: Any) -> None:
    """A page's instants are written by the database (column_types.wire_text), a single
    run's by Python: the same text either way, milliseconds truncated, never rounded."""
    edge = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)  # listed: in the past
    await any_store.claim(
        [
            make_run(1, created_at=edge, scheduled_for=edge, delayed_until=edge),
            make_run(2, created_at=T0 + timedelta(microseconds=123999), expires_at=edge),
        ]
    )
    await any_store.record(run_id(1), {"start_at": edge, "end_at": edge + DAY})
    page = page_fields((await any_store.list_runs(RunFilter(), limit=10)).runs)
    singles = [run_fields(await any_store.get_run(run["id"])) for run in page]
    instants = ("scheduled_for", "created_at", "start_at", "end_at", "delayed_until", "expires_at")
    assert [{k: run[k] for k in instants} for run in page] == [
        {k: run[k] for k in instants} for run in singles
    ]
    assert page[0]["created_at"] == "2026-11-30T23:59:59.999Z"
    assert page[0]["end_at"] == "2026-12-01T23:59:59.999Z"
    assert page[1]["created_at"] == "2026-03-01T12:00:00.123Z"
    assert page[1]["start_at"] is None


async def test_an_instant_stored_in_another_form_is_still_shown(tmp_path: Path) -> None:
    """SQLite text written by hand (no fraction, say) is not in the stored form the
    database reshapes: the page formats it itself."""
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"))
    try:
        await store.claim([make_run(1)])
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE runs SET created_at = '2026-03-01 12:00:07'"))
        (run,) = page_fields((await store.list_runs(RunFilter(), limit=10)).runs)
        assert run["created_at"] == "2026-03-01T12:00:07.000Z"
    finally:
        await store.close()


async def test_one_order_for_every_store(any_store: Any) -> None:
    """The order of a nullable field: runs with a value first, ties by created_at, id."""
    await varied_runs(any_store)
    page = await any_store.list_runs(RunFilter(), limit=100, sort_field="end_at")
    assert [int(row.id[-3:], 16) for row in page.runs] == [11, 2, 10, 7, 6, 3, 12, 9, 8, 5, 4, 1]


async def test_filters_and_totals(any_store: Any) -> None:
    await varied_runs(any_store)

    async def listed(**where: Any) -> list[int]:
        page = await any_store.list_runs(RunFilter(**where), limit=100, with_total=True)
        assert page.total == len(page.runs)
        return sorted(int(row.id[-3:], 16) for row in page.runs)

    assert await listed(task_name="alpha") == [3, 6, 9, 12]
    assert await listed(status=["pending"]) == [4, 8, 12]
    assert await listed(status=["running", "pending"]) == [1, 4, 5, 8, 9, 12]
    assert await listed(end_reason=["failed"]) == [2, 6, 10]
    assert await listed(triggered_by=["schedule"]) == []
    assert await listed(start_date=T0 + timedelta(seconds=5)) == [10, 11, 12]
    assert await listed(end_date=T0 + timedelta(seconds=1)) == [1, 2, 3]
    assert await listed(search="boom 1") == [10]  # in the error, any case
    assert await listed(search="gam") == [2, 5, 8, 11]  # in the task name
    assert await listed(search='"k": "v"') == list(range(1, 13))  # in the params


async def test_a_cursor_of_another_sort_is_refused(any_store: Any) -> None:
    await varied_runs(any_store)
    page = await any_store.list_runs(RunFilter(), limit=2)
    later = await any_store.list_runs(RunFilter(), limit=2, cursor=page.next_cursor)
    for cursor in (page.next_cursor, later.prev_cursor):
        with pytest.raises(InvalidCursor, match=r"another sort \(sort_field=created_at, sort_dir"):
            await any_store.list_runs(RunFilter(), limit=2, cursor=cursor, ascending=True)
    with pytest.raises(InvalidCursor, match="not one this server handed out"):
        await any_store.list_runs(RunFilter(), limit=2, cursor="not-a-cursor")
    with pytest.raises(InvalidCursor, match="takes no offset"):
        await any_store.list_runs(RunFilter(), limit=2, cursor=later.prev_cursor, offset=1)
    # Filters may change under a cursor: it is a place in the sort.
    alpha = await any_store.list_runs(
        RunFilter(task_name="alpha"), limit=2, cursor=page.next_cursor
    )
    assert {row.task_name for row in alpha.runs} == {"alpha"}


def ids(page: Any) -> list[str]:
    return [row.id for row in page.runs]


@pytest.mark.parametrize("ascending", [False, True], ids=["desc", "asc"])
@pytest.mark.parametrize("sort_field", SORT_FIELDS)
async def test_prev_cursors_lead_back_to_each_page_as_it_was(
    any_store: Any, sort_field: str, ascending: bool
) -> None:
    """Walked forward, then back by prev_cursor after runs were added that sort among
    the pages already seen (in every sort but created_at, some land inside them): each
    page comes back exactly as it was, and a walk forward from there misses none."""
    await varied_runs(any_store)
    order = {"sort_field": sort_field, "ascending": ascending}
    pages = [await any_store.list_runs(RunFilter(), limit=5, **order)]
    assert pages[0].prev_cursor is None  # the first page
    while pages[-1].has_next:
        cursor = pages[-1].next_cursor
        pages.append(await any_store.list_runs(RunFilter(), limit=5, cursor=cursor, **order))
    assert [len(page.runs) for page in pages] == [5, 5, 2]
    await varied_runs(any_store, range(13, 25), now=True)  # added meanwhile
    back = pages[-1]
    for seen in reversed(pages[:-1]):
        back = await any_store.list_runs(RunFilter(), limit=5, cursor=back.prev_cursor, **order)
        assert ids(back) == ids(seen) and back.has_next
    if back.prev_cursor is not None:  # runs added since sort before the first page
        newer = await any_store.list_runs(RunFilter(), limit=5, cursor=back.prev_cursor, **order)
        assert newer.runs and {int(i[-3:], 16) for i in ids(newer)} <= set(range(13, 25))
    walked, page = ids(back), back
    while page.has_next:
        page = await any_store.list_runs(RunFilter(), limit=5, cursor=page.next_cursor, **order)
        walked += ids(page)
    original = [i for seen in pages for i in ids(seen)]
    assert len(walked) == len(set(walked)) and [i for i in walked if i in original] == original


async def test_a_page_reached_by_an_offset_leads_back(any_store: Any) -> None:
    await varied_runs(any_store)
    whole = ids(await any_store.list_runs(RunFilter(), limit=100))
    page = await any_store.list_runs(RunFilter(), limit=4, offset=6)
    back = await any_store.list_runs(RunFilter(), limit=4, cursor=page.prev_cursor)
    assert ids(back) == whole[2:6] and back.prev_cursor is not None
    top = await any_store.list_runs(RunFilter(), limit=4, cursor=back.prev_cursor)
    assert ids(top) == whole[:2] and top.prev_cursor is None and top.has_next


async def test_a_key_whose_run_is_gone_finds_nothing(any_store: Any) -> None:
    await any_store.claim_keyed(make_run(1), key(T0))
    await any_store.discard_reserved([run_id(1)])  # still pending: deleted
    assert await any_store.find_key("t", "k", T0 - DAY) is None


# -- the runs linked to a run (GET /api/runs/{id}?expand=) ---------------------------


async def test_attempts_and_links_of_a_run(any_store: Any) -> None:
    """Attempts by retry_of, both ways from any of them; reruns by rerun_of; chained
    runs by caused_by, one cause alone or among those of an "all" chain."""
    await any_store.claim(
        [
            make_run(1),
            make_run(2, attempt=2, retry_of=run_id(1)),
            make_run(3, attempt=3, retry_of=run_id(2)),
            make_run(4),  # another fire
            make_run(5, rerun_of=run_id(1)),
            make_run(6, rerun_of=run_id(1)),
            make_run(7, "after", triggered_by=Trigger.CHAIN, caused_by=run_id(3)),
            make_run(8, "all", triggered_by=Trigger.CHAIN, caused_by=f"{run_id(3)},{run_id(4)}"),
        ]
    )
    numbers = lambda runs: [int(r.id[-3:], 16) for r in runs]  # noqa: E731
    for i in (1, 2, 3):
        assert numbers(await any_store.attempts_of(await any_store.get_run(run_id(i)))) == [1, 2, 3]
    assert numbers(await any_store.attempts_of(await any_store.get_run(run_id(4)))) == [4]
    first = await any_store.related_to(await any_store.get_run(run_id(1)))
    assert first.rerun_of is None and numbers(first.reruns) == [5, 6]
    assert first.caused_by == [] and first.chained == []
    last = await any_store.related_to(await any_store.get_run(run_id(3)))
    assert numbers(last.chained) == [7, 8] and last.reruns == []
    rerun = await any_store.related_to(await any_store.get_run(run_id(6)))
    assert rerun.rerun_of is not None and rerun.rerun_of.id == run_id(1)
    both = await any_store.related_to(await any_store.get_run(run_id(8)))
    assert numbers(both.caused_by) == [3, 4]


# -- tags and metadata ------------------------------------------------------------------


async def test_runs_are_found_by_every_tag_asked_for(any_store: Any) -> None:
    await any_store.claim(
        [
            make_run(1, tags=["nightly", "env=prod"], run_metadata={"ticket": 7}),
            make_run(2, tags=["nightly"]),
            make_run(3, tags=["Nightly", "env=prod:eu"]),
            make_run(4),
        ]
    )

    async def found(*tags: str, search: str | None = None, **order: Any) -> list[int]:
        where = RunFilter(tags=tags, search=search)
        page = await any_store.list_runs(where, limit=10, with_total=True, **order)
        assert page.total == len(page.runs)
        return [int(row.id[-3:], 16) for row in page.runs]

    assert await found("nightly") == [2, 1]  # case-sensitive
    assert await found("nightly", "env=prod") == [1]  # every one of them
    assert await found("env=prod") == [1]  # a whole tag, not a part of one
    assert await found("Nightly", sort_field="task_name", ascending=True) == [3]
    assert await found() == [4, 3, 2, 1]
    assert await found("env=prod", search="nightly") == [1]
    page = await any_store.list_runs(RunFilter(search="env=prod:e"), limit=10)
    assert [int(row.id[-3:], 16) for row in page.runs] == [3]  # the search reads tags
    run = await any_store.get_run(run_id(1))
    assert run.tags == ["nightly", "env=prod"] and run.run_metadata == {"ticket": 7}
    assert (await any_store.get_run(run_id(4))).tags == []
    row = (await any_store.list_runs(RunFilter(tags=["nightly", "env=prod"]), limit=1)).runs[0]
    assert row.tags == ["nightly", "env=prod"] and row.run_metadata == {"ticket": 7}
