"""The run lifecycle and admission, driven through the real Dispatcher with an
in-memory store, a fake clock and a fake launcher: no processes, no sleeps."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dispatch_doubles import T0, HeldPacer, Rig, config, rig, settle  # type: ignore[import-not-found]

from cronwarden.durable import persist
from cronwarden.errors import (
    Conflict,
    GaveUp,
    IdempotencyMismatch,
    IllegalTransition,
    StoreUnavailable,
    TriggerRefused,
)
from cronwarden.live_config import ConfigChanges
from cronwarden.model import EndReason, Run, Status, Trigger
from cronwarden.runners.admission import Policy, TaskSlots, Verdict
from cronwarden.runners.lifecycle import TERMINAL, RunEvent, RunState, legal_events, transition

S = timedelta(seconds=1)


# -- the state machine itself --------------------------------------------------------


def test_every_state_and_event_is_either_a_move_or_refused() -> None:
    for state in RunState:
        for event in RunEvent:
            if event in legal_events(state):
                assert transition(state, event) in RunState
            else:
                with pytest.raises(IllegalTransition):
                    transition(state, event)
    assert all(legal_events(state) == [] for state in TERMINAL)


def test_every_state_can_reach_an_end() -> None:
    for state in RunState:
        assert _reachable(state) & TERMINAL, state


def _reachable(start: RunState) -> set[RunState]:
    seen, frontier = {start}, [start]
    while frontier:
        current = frontier.pop()
        for event in legal_events(current):
            nxt = transition(current, event)
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


# -- admission (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "active", "queued", "max_concurrent", "expected"),
    [
        ("allow", 5, 0, 1, Verdict.START),
        ("skip", 0, 0, 1, Verdict.START),
        ("skip", 1, 0, 1, Verdict.SKIP),
        ("skip", 2, 0, 3, Verdict.START),
        ("queue", 1, 0, 1, Verdict.QUEUE),
        ("queue", 1, 2, 1, Verdict.REFUSE),
        ("terminate", 1, 0, 1, Verdict.QUEUE),  # waits for the slot evict_for frees
    ],
)
def test_admission_verdicts(
    overlap: str, active: int, queued: int, max_concurrent: int, expected: Verdict
) -> None:
    policy = Policy(overlap, max_concurrent, queue_max=2)  # type: ignore[arg-type]
    slots = TaskSlots()
    slots.holders.update({f"active{i}": False for i in range(active)})
    slots.line.extend(f"queued{i}" for i in range(queued))
    assert slots.acquire("new", policy) is expected


def test_queue_hands_a_released_slot_to_the_oldest_waiting_run() -> None:
    slots, policy = TaskSlots(), Policy("queue", max_concurrent=1, queue_max=2)
    assert [slots.acquire(r, policy) for r in "abcd"] == [
        Verdict.START,
        Verdict.QUEUE,
        Verdict.QUEUE,
        Verdict.REFUSE,
    ]
    assert slots.release("a", policy) == ["b"]
    assert slots.withdraw("c") and slots.release("b", policy) == [] and slots.idle


def test_skip_and_allow() -> None:
    slots = TaskSlots()
    assert slots.acquire("a", Policy("skip", 1, 0)) is Verdict.START
    assert slots.acquire("b", Policy("skip", 1, 0)) is Verdict.SKIP
    assert slots.acquire("c", Policy("allow", 1, 0)) is Verdict.START  # allow: no limit


def test_terminate_stops_the_oldest_then_supersedes_waiting_newcomers() -> None:
    slots, policy = TaskSlots(), Policy("terminate", max_concurrent=1, queue_max=100)
    slots.acquire("old", policy)
    assert slots.acquire("new1", policy) is Verdict.QUEUE
    first = slots.evict_for("new1")
    assert (first.stop, first.supersede) == (["old"], [])
    slots.acquire("new2", policy)
    second = slots.evict_for("new2")  # old is already being stopped: new1 gives way
    assert (second.stop, second.supersede) == ([], ["new1"])
    assert slots.release("old", policy) == ["new2"]


# -- the dispatcher --------------------------------------------------------------------

ONE = """
[tasks.job]
command = "true"
"""


async def test_a_trigger_commits_before_it_starts_and_ends_exactly_once() -> None:
    r = rig(ONE)
    r.store.unavailable = True
    with pytest.raises(StoreUnavailable):
        await r.dispatcher.trigger("job")
    assert r.launcher.started == [] and r.dispatcher.active_runs == 0  # slot given back
    r.store.unavailable = False
    run, created = await r.dispatcher.trigger("job")
    await settle()
    assert created and r.launcher.started == [run.id]
    assert r.store.runs[run.id].status == Status.RUNNING
    r.launcher.finish(run.id)
    await settle()
    assert r.store.runs[run.id].end_reason == EndReason.SUCCESS
    assert r.store.end_records == [run.id] and r.dispatcher.active_runs == 0


QUEUED = """
[tasks.q]
command = "true"
overlap = "queue"
"""


async def test_stopping_a_queued_run_twice_ends_it_once_and_starts_nothing() -> None:
    r = rig(QUEUED)
    first, _ = await r.dispatcher.trigger("q")
    second, _ = await r.dispatcher.trigger("q")
    third, _ = await r.dispatcher.trigger("q")
    await settle()
    results = await asyncio.gather(
        *(r.dispatcher.stop(second.id) for _ in range(6)), return_exceptions=True
    )
    assert sum(isinstance(x, Conflict) for x in results) == 5
    await settle()
    assert r.store.end_records == [second.id]
    assert r.launcher.running() == [first.id]  # the third still waits its turn
    r.launcher.finish(first.id)
    await settle()
    assert r.launcher.running() == [third.id]


async def test_stop_of_a_running_run_then_its_exit_ends_it_once() -> None:
    r = rig(ONE)
    run, _ = await r.dispatcher.trigger("job")
    await settle()
    await r.dispatcher.stop(run.id)
    await r.dispatcher.stop(run.id)  # still running: asking again is harmless
    await settle()
    assert r.store.runs[run.id].end_reason == EndReason.STOPPED
    assert r.store.end_records == [run.id]
    with pytest.raises(Conflict):
        await r.dispatcher.stop(run.id)


RETRY_SKIP = """
[tasks.job]
command = "true"
overlap = "skip"
params = ["n"]
retries = 2
retry_delay = "10s"
"""


async def retry_due_while_another_runs(r: Rig) -> tuple[str, str]:
    """Attempt 1 fails; another run takes the slot; the retry comes due: (retry, holder)."""
    first, _ = await r.dispatcher.trigger("job")
    await settle()
    r.launcher.finish(first.id, EndReason.FAILED)
    await settle()
    holder, _ = await r.dispatcher.trigger("job", {"n": "2"})
    await settle()
    retry = next(x for x in r.store.runs.values() if x.retry_of == first.id)
    r.clock.advance(10 * S)
    await settle()
    assert r.launcher.running() == [holder.id]
    return retry.id, holder.id


async def test_a_retry_due_while_the_slot_is_busy_is_skipped_not_started() -> None:
    r = rig(RETRY_SKIP)
    retry_id, _ = await retry_due_while_another_runs(r)
    ended = r.store.runs[retry_id]
    assert ended.end_reason == EndReason.SKIPPED and "overlap = skip" in (ended.error or "")
    assert ended.start_at is None


class OtherNodes:
    """The shared places of a database where other nodes hold ``held`` runs of every
    task; ``free()`` lets this node take one."""

    def __init__(self, held: int) -> None:
        self.held = held
        self.places_free = False
        self.asked_to_stop: list[str] = []

    async def take(self, task_name: str, run_id: str, limit: int) -> bool:
        return self.places_free

    async def ask_oldest_to_stop(self, task_name: str) -> str | None:
        self.asked_to_stop.append(task_name)
        return "elsewhere"

    async def announce_freed(self, task_name: str) -> None:
        pass

    async def active_elsewhere(self, node: str, task_names: object) -> dict[str, int]:
        return dict.fromkeys(task_names, self.held)  # type: ignore[call-overload]


async def test_skip_counts_the_runs_of_other_nodes_on_a_shared_database() -> None:
    r = rig(RETRY_SKIP, places=OtherNodes(held=1))
    fired = await r.dispatcher.fire("job", T0)
    assert fired is not None and fired.end_reason == EndReason.SKIPPED
    assert "1 of them on other nodes" in (fired.error or "")
    with pytest.raises(TriggerRefused, match="on other nodes"):
        await r.dispatcher.trigger("job")
    assert r.launcher.running() == []


@pytest.mark.parametrize("overlap", ["queue", "terminate"])
async def test_a_run_waits_for_a_place_held_on_another_node(overlap: str) -> None:
    others = OtherNodes(held=1)
    r = rig(RETRY_SKIP.replace('overlap = "skip"', f'overlap = "{overlap}"'), places=others)
    run, _ = await r.dispatcher.trigger("job")
    await settle()
    assert r.launcher.running() == [] and r.store.runs[run.id].status == Status.PENDING
    assert others.asked_to_stop == (["job"] if overlap == "terminate" else [])
    others.places_free = True
    r.dispatcher.places_changed()  # as a NOTIFY from the node whose run ended
    await settle()
    assert r.launcher.running() == [run.id]


async def test_a_run_waiting_for_a_place_elsewhere_can_be_stopped() -> None:
    r = rig(RETRY_SKIP.replace('overlap = "skip"', 'overlap = "queue"'), places=OtherNodes(held=1))
    run, _ = await r.dispatcher.trigger("job")
    await settle()
    await r.dispatcher.stop(run.id)
    await settle()
    ended = r.store.runs[run.id]
    assert ended.end_reason == EndReason.STOPPED and "other nodes" in (ended.error or "")
    assert ended.start_at is None and r.store.end_records == [run.id]


RETRY_QUEUE = RETRY_SKIP.replace('overlap = "skip"', 'overlap = "queue"')


async def test_a_retry_due_while_the_slot_is_busy_waits_in_line() -> None:
    r = rig(RETRY_QUEUE)
    retry_id, holder_id = await retry_due_while_another_runs(r)
    r.launcher.finish(holder_id)
    await settle()
    assert r.launcher.running() == [retry_id]
    assert r.store.runs[retry_id].triggered_by == Trigger.RETRY


async def test_a_recovered_pending_run_goes_through_admission() -> None:
    r = rig(RETRY_SKIP)
    holder, _ = await r.dispatcher.trigger("job")
    await settle()
    left = r.new_run(r.live.task("job"), Trigger.RETRY, attempt=2)
    left.change({"not_before": T0 + 5 * S})
    await r.store.claim([left])
    r.dispatcher.resume_pending(left)
    r.clock.advance(5 * S)
    await settle()
    assert r.launcher.running() == [holder.id]
    assert r.store.runs[left.id].end_reason == EndReason.SKIPPED


async def one_running_one_queued_one_retry_waiting(r: Rig) -> tuple[Run, Run, Run]:
    """Task q: one run running, one queued; task job: attempt 1 failed, its retry waits."""
    running, _ = await r.dispatcher.trigger("q")
    queued, _ = await r.dispatcher.trigger("q")
    failed, _ = await r.dispatcher.trigger("job")
    await settle()
    r.launcher.finish(failed.id, EndReason.FAILED)
    await settle()
    return running, queued, failed


async def test_reload_removing_a_task_ends_its_waiting_runs_and_lets_running_finish() -> None:
    r = rig(QUEUED + RETRY_SKIP)
    running, queued, failed = await one_running_one_queued_one_retry_waiting(r)
    changes = r.live.swap(config('[tasks.other]\ncommand = "true"\n'))
    assert changes == ConfigChanges(added=["other"], removed=["job", "q"], changed=[])
    await r.dispatcher.reload(changes)
    await settle()
    assert r.store.runs[queued.id].end_reason == EndReason.STOPPED
    assert "removed" in (r.store.runs[queued.id].error or "")
    retry = next(x for x in r.store.runs.values() if x.retry_of == failed.id)
    assert r.store.runs[retry.id].end_reason == EndReason.STOPPED
    assert r.launcher.running() == [running.id]  # finishes under its definition
    r.clock.advance(60 * S)
    r.launcher.finish(running.id)
    await settle()
    assert r.dispatcher.active_runs == 0 and len(r.launcher.started) == 2


async def test_terminate_starts_the_newcomer_only_after_the_old_run_ended() -> None:
    r = rig('[tasks.t]\ncommand = "true"\noverlap = "terminate"\n')
    old, _ = await r.dispatcher.trigger("t")
    await settle()
    new, _ = await r.dispatcher.trigger("t")
    newest, _ = await r.dispatcher.trigger("t")
    await settle()
    assert r.store.runs[old.id].end_reason == EndReason.STOPPED
    assert r.store.runs[new.id].end_reason == EndReason.STOPPED  # superseded while waiting
    assert r.launcher.running() == [newest.id]


KEYED = """
[tasks.k]
command = "true"
params = ["who"]
"""


async def test_one_idempotency_key_makes_one_run_even_when_requests_race() -> None:
    r = rig(KEYED)
    answers = await asyncio.gather(
        *(r.dispatcher.trigger("k", {"who": "a"}, idempotency_key="K") for _ in range(20))
    )
    assert len({run.id for run, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1
    with pytest.raises(IdempotencyMismatch):
        await r.dispatcher.trigger("k", {"who": "b"}, idempotency_key="K")
    r.clock.advance(timedelta(hours=24, seconds=1))  # expired: the key is free again
    later, created = await r.dispatcher.trigger("k", {"who": "b"}, idempotency_key="K")
    assert created and later.id != answers[0][0].id


async def test_a_refused_trigger_records_nothing() -> None:
    r = rig(RETRY_SKIP)
    await r.dispatcher.trigger("job")
    with pytest.raises(TriggerRefused, match="overlap = skip"):
        await r.dispatcher.trigger("job")
    assert len(r.store.runs) == 1


async def test_shutdown_ends_queued_keeps_delayed_retries_and_stops_the_rest() -> None:
    r = rig(QUEUED + RETRY_SKIP)
    running, queued, failed = await one_running_one_queued_one_retry_waiting(r)
    await r.dispatcher.shutdown(timedelta(0))
    assert r.store.runs[queued.id].end_reason == EndReason.STOPPED
    assert r.store.runs[running.id].end_reason == EndReason.STOPPED
    retry = next(x for x in r.store.runs.values() if x.retry_of == failed.id)
    assert r.store.runs[retry.id].status == Status.PENDING  # for the next life
    assert r.dispatcher.active_runs == 0


async def test_runs_stopped_while_waiting_for_their_turn_to_spawn_never_start() -> None:
    """A shutdown whose grace ran out while 30,000 due runs waited for their turns (a
    few forks a turn of the loop) went on spawning each, to stop it at once, for minutes.
    A run stopped before its turn comes ends unstarted."""
    r = rig('[tasks.job]\ncommand = "true"\n')
    pacer = HeldPacer()
    r.dispatcher._lives.pacer = pacer  # type: ignore[assignment]
    runs = [(await r.dispatcher.trigger("job"))[0] for _ in range(3)]
    await settle()
    shutdown = asyncio.create_task(r.dispatcher.shutdown(timedelta(0)))
    await settle()
    pacer.open.set()
    await shutdown
    assert r.launcher.started == []
    for run in runs:
        row = r.store.runs[run.id]
        assert (row.end_reason, row.start_at) == (EndReason.STOPPED, None)
    assert r.dispatcher.active_runs == 0


async def test_missed_fires_are_recorded_and_the_newest_counts_the_rest() -> None:
    r = rig('[tasks.m]\ncommand = "true"\nschedule = "* * * * *"\n')
    fires = [T0 - 3 * 60 * S, T0 - 2 * 60 * S, T0 - 60 * S]
    await r.dispatcher.record_missed("m", fires, more=40, why="the daemon was down")
    rows = sorted(r.store.runs.values(), key=lambda x: x.scheduled_for or T0)
    assert [x.scheduled_for for x in rows] == fires
    assert all(x.end_reason == EndReason.MISSED and x.status == Status.ENDED for x in rows)
    assert "40 earlier fires" in (rows[-1].error or "") and "earlier" not in (rows[0].error or "")
    # A missed fire is a claimed fire: it can never run later by accident.
    assert await r.dispatcher.fire("m", fires[0]) is None


async def test_a_fire_waits_out_the_whole_lateness_grace() -> None:
    """The backoff's last wait is cut to what remains: 30 s of grace means 30 s."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def down() -> None:
        raise StoreUnavailable("down")

    with pytest.raises(GaveUp):
        await persist("x", down, give_up_after=30 * S, monotonic=lambda: now[0], sleep=sleep)
    assert now[0] == pytest.approx(30.0)


async def test_fires_due_together_are_claimed_in_one_write() -> None:
    r = rig(
        '[tasks.a]\ncommand = "true"\n[tasks.b]\ncommand = "true"\n'
        '[tasks.s]\ncommand = "true"\noverlap = "skip"\n'
    )
    busy, _ = await r.dispatcher.trigger("s")
    await r.dispatcher.fire("a", T0)  # this fire is already claimed (say, by another node)
    before = r.store.writes
    runs = await r.dispatcher.fire_many(
        [("a", T0, Trigger.SCHEDULE), ("b", T0, Trigger.SCHEDULE), ("s", T0, Trigger.SCHEDULE)]
    )
    assert r.store.writes - before == 1  # the claim of all three (starts record later)
    await settle()
    assert sorted(run.task_name for run in runs) == ["b", "s"]  # a's fire was taken
    skipped = next(run for run in runs if run.task_name == "s")
    assert r.store.runs[skipped.id].end_reason == EndReason.SKIPPED
    assert sorted(r.launcher.running()) == sorted(
        [busy.id, *r.launcher.running("a"), *[x.id for x in runs if x.task_name == "b"]]
    )
