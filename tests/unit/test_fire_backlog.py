"""A daemon that cannot start runs as fast as its schedules fire them keeps no backlog
without bound: a scheduled fire of an ``overlap = "allow"`` task is recorded ``missed``
while an earlier fire of it has waited 5 s to start and still has not.  (The soak at
200 fires/s on a loaded machine started ~23 runs/s; every fire it could not start
stayed pending with its own coroutine: 205,597 asyncio tasks and +2 GB/h of RSS.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from dispatch_doubles import T0, HeldPacer, LoopTurns, rig, settle  # type: ignore[import-not-found]

from cronwarden.model import EndReason, Status, Trigger

S = timedelta(seconds=1)
EVERY_SECOND = '[tasks.job]\ncommand = "true"\nschedule = "@every 1s"\n'


@contextlib.asynccontextmanager
async def held(r) -> AsyncIterator[HeldPacer]:  # type: ignore[no-untyped-def]
    """Spawns held back for the block; then every run carried is shut down."""
    pacer = HeldPacer()
    r.dispatcher._lives.pacer = pacer
    try:
        yield pacer
    finally:
        pacer.open.set()
        await r.dispatcher.shutdown(timedelta(0))


async def test_fires_behind_one_that_waited_its_grace_to_spawn_are_recorded_missed() -> None:
    r = rig(EVERY_SECOND)
    async with held(r) as pacer:
        await behind_then_caught_up(r, pacer)


async def fire_at(r, when):  # type: ignore[no-untyped-def]
    """The task's fire of ``when``, at ``when`` by the daemon's clock."""
    r.clock.at = when
    run = await r.dispatcher.fire("job", when)
    await settle()
    assert run is not None
    return r.store.runs[run.id]


async def behind_then_caught_up(r, pacer: HeldPacer) -> None:  # type: ignore[no-untyped-def]
    first = await fire_at(r, T0)
    # A moment's wait to spawn is no reason to lose a fire: the next ones wait too.
    waiting = [await fire_at(r, T0 + n * S) for n in (1, 2, 4)]
    assert [row.status for row in [first, *waiting]] == [Status.PENDING] * 4
    later = [await fire_at(r, T0 + n * S) for n in (5, 6)]
    for row in later:
        assert (row.status, row.end_reason, row.start_at) == (Status.ENDED, "missed", None)
        assert row.error is not None
        assert f"the fire of {T0:%H:%M:%S} UTC has waited over 5 s to start" in row.error
    assert ("run.ended", later[0].id) in r.changes  # told like any other missed fire
    assert r.dispatcher.active_runs == 4  # 5 s of fires carried, not every one
    pacer.open.set()
    await settle()
    assert sorted(r.launcher.running()) == sorted(row.id for row in [first, *waiting])
    # Once the waiting fires have started, the next one starts too (allow overlaps).
    nxt = await fire_at(r, T0 + 7 * S)
    assert nxt.id in r.launcher.running()


async def test_a_fire_waiting_for_a_host_place_holds_back_the_next_one() -> None:
    r = rig(
        '[daemon]\nmax_concurrent_runs = 1\n[tasks.long]\ncommand = "true"\n'
        '[tasks.job]\ncommand = "true"\nschedule = "* * * * *"\n'
    )
    busy, _ = await r.dispatcher.trigger("long")
    first = await fire_at(r, T0)
    second = await fire_at(r, T0 + 60 * S)
    assert first.status == Status.PENDING
    assert second.end_reason == EndReason.MISSED
    r.launcher.finish(busy.id)
    await settle()
    assert r.launcher.running() == [first.id]
    await r.dispatcher.shutdown(timedelta(0))


async def test_triggers_and_queued_fires_keep_their_own_rules() -> None:
    """API triggers wait (their callers bound them); overlap = queue has queue_max."""
    r = rig(EVERY_SECOND + '[tasks.q]\ncommand = "true"\noverlap = "queue"\nqueue_max = 2\n')
    async with held(r):
        triggered = [(await r.dispatcher.trigger("job"))[0] for _ in range(3)]
        fired = [await r.dispatcher.fire("q", T0 + n * S) for n in range(4)]
        await settle()
        assert all(r.store.runs[run.id].status == Status.PENDING for run in triggered)
        reasons = [r.store.runs[run.id].end_reason for run in fired if run is not None]
        assert reasons == [None, None, None, EndReason.SKIPPED]  # one holds, two wait, one refused


async def test_a_large_fire_lets_the_loop_turn_while_it_admits_and_begins() -> None:
    """1,000 tasks due together are one batch; the loop serves other work (requests,
    exits) between shares of it, not only once the whole batch is through."""
    tasks = "".join(
        f'[tasks.t{i}]\ncommand = "true"\nschedule = "* * * * *"\n' for i in range(1000)
    )
    r = rig(tasks)
    async with held(r), LoopTurns() as turns:
        runs = await r.dispatcher.fire_many([(f"t{i}", T0, Trigger.SCHEDULE) for i in range(1000)])
        assert len(runs) == 1000 and r.dispatcher.active_runs == 1000
        # Once a share of 100 was admitted, and once a share of 100 had begun.
        assert turns.count >= 2 * (1000 // 100 - 1)
