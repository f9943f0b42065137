"""The one timer of every scheduled task, on a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatch_doubles import FakeClock  # type: ignore[import-not-found]

from cronwarden.scheduler.timer import MAX_SLEEP, WAKE_BATCH, FireTimer

T0 = datetime(2030, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


def timer() -> tuple[FireTimer, FakeClock, list[tuple[str, datetime]]]:
    clock = FakeClock(at=T0)
    calls: list[tuple[str, datetime]] = []
    fire_timer = FireTimer(clock, lambda name, when: calls.append((name, when)))
    fire_timer.start()
    return fire_timer, clock, calls


def test_tasks_come_due_in_order_and_only_once() -> None:
    fire_timer, clock, calls = timer()
    fire_timer.set("b", T0 + 2 * S)
    fire_timer.set("a", T0 + S)
    fire_timer.set("c", T0 + 2 * S)
    assert len(clock.armed) == 1  # one wake-up for all of them
    clock.advance(S)
    assert calls == [("a", T0 + S)]
    clock.advance(5 * S)
    assert calls[1:] == [("b", T0 + 2 * S), ("c", T0 + 2 * S)]
    assert clock.armed == [] and fire_timer.next_fire("a") is None


def test_a_reset_or_cleared_task_does_not_fire_at_its_old_time() -> None:
    fire_timer, clock, calls = timer()
    fire_timer.set("a", T0 + S)
    fire_timer.set("a", T0 + 3 * S)  # rescheduled later
    fire_timer.set("b", T0 + S)
    fire_timer.clear("b")  # paused
    clock.advance(2 * S)
    assert calls == []
    clock.advance(S)
    assert calls == [("a", T0 + 3 * S)]


def test_a_far_fire_wakes_the_loop_every_max_sleep_to_notice_clock_jumps() -> None:
    fire_timer, clock, calls = timer()
    fire_timer.set("a", T0 + timedelta(hours=1))
    assert clock.armed[0] == T0 + MAX_SLEEP
    clock.advance(MAX_SLEEP)
    assert calls == [] and clock.armed[0] == T0 + 2 * MAX_SLEEP
    clock.at += timedelta(hours=2)  # the host slept: the wall clock jumped
    clock.advance(timedelta(0))
    assert calls == [("a", T0 + timedelta(hours=1))]  # due at once, not an hour late more


def test_a_stopped_timer_fires_nothing() -> None:
    fire_timer, clock, calls = timer()
    fire_timer.set("a", T0 + S)
    fire_timer.stop()
    clock.advance(2 * S)
    assert calls == [] and clock.armed == []


def announcing_timer(lead: timedelta):  # type: ignore[no-untyped-def]
    clock = FakeClock(at=T0)
    calls: list[tuple[str, str, datetime]] = []
    fire_timer = FireTimer(
        clock,
        lambda name, when: calls.append(("due", name, when)),
        on_soon=lambda name, when: calls.append(("soon", name, when)),
        lead=lambda fires: lead * fires,  # each fire sharing the instant adds a lead
    )
    fire_timer.start()
    return fire_timer, clock, calls


def test_a_fire_is_announced_once_lead_ahead_then_comes_due() -> None:
    lead = timedelta(milliseconds=250)
    fire_timer, clock, calls = announcing_timer(lead)
    fire_timer.set("a", T0 + S)
    fire_timer.set("b", T0 + 2 * S)
    assert clock.armed == [T0 + S - lead]
    clock.advance(S - lead)
    assert calls == [("soon", "a", T0 + S)]
    clock.advance(lead)
    assert calls[1:] == [("due", "a", T0 + S)]
    clock.advance(S - lead)
    clock.advance(lead)
    assert calls[2:] == [("soon", "b", T0 + 2 * S), ("due", "b", T0 + 2 * S)]


def test_a_fire_cleared_after_its_announcement_does_not_come_due() -> None:
    fire_timer, clock, calls = announcing_timer(timedelta(milliseconds=250))
    fire_timer.set("a", T0 + S)
    clock.advance(timedelta(milliseconds=800))
    fire_timer.clear("a")
    clock.advance(S)
    assert calls == [("soon", "a", T0 + S)]


def test_a_wake_too_late_to_announce_only_comes_due() -> None:
    fire_timer, clock, calls = announcing_timer(timedelta(milliseconds=250))
    fire_timer.set("a", T0 + S)
    clock.at += 2 * S  # the loop was blocked past the lead and the instant
    clock.advance(timedelta(0))
    assert calls == [("due", "a", T0 + S)]


def test_an_instant_many_fires_share_is_announced_earlier_and_all_at_once() -> None:
    lead = timedelta(milliseconds=250)
    fire_timer, clock, calls = announcing_timer(lead)
    fire_timer.set("alone", T0 + S)
    for name in ("x", "y", "z"):
        fire_timer.set(name, T0 + 10 * S)
    fire_timer.set("x", T0 + 20 * S)  # moved: two share the instant now
    clock.advance(S - lead)
    assert calls == [("soon", "alone", T0 + S)]
    clock.advance(lead)
    clock.advance(timedelta(0))
    assert clock.armed[0] == T0 + 10 * S - 2 * lead
    clock.advance(9 * S - 2 * lead)
    assert calls[2:] == [("soon", "y", T0 + 10 * S), ("soon", "z", T0 + 10 * S)]
    clock.advance(2 * lead)
    assert calls[4:] == [("due", "y", T0 + 10 * S), ("due", "z", T0 + 10 * S)]
    assert clock.armed[0] == T0 + 20 * S - lead


def test_a_crowded_instant_comes_due_in_batches_each_fire_once_in_order() -> None:
    """The first of 10,000 fires on one instant go on while the rest are handed over:
    each wake hands over WAKE_BATCH and is armed again at once.  Their announcements
    go in one wake (they are reserved in one write)."""
    fire_timer, clock, calls = announcing_timer(timedelta(0))
    names = [f"t{i:05d}" for i in range(WAKE_BATCH * 2 + 7)]
    for name in reversed(names):
        fire_timer.set(name, T0 + S)
    wakes: list[int] = []  # the calls each wake made
    clock.at += S
    while clock.armed and clock.armed[0] <= clock.at:
        timer = min((t for t in clock.timers if not t.cancelled), key=lambda t: t.when)
        clock.timers.remove(timer)
        before = len(calls)
        timer.callback()
        wakes.append(len(calls) - before)
    assert wakes == [WAKE_BATCH, WAKE_BATCH, 7]
    assert calls == [("due", name, T0 + S) for name in names]  # in order, each once
    assert fire_timer.earliest() is None


def test_fires_whose_instant_came_before_their_announcement_are_only_due() -> None:
    fire_timer, clock, calls = announcing_timer(timedelta(milliseconds=1))
    names = [f"t{i:05d}" for i in range(WAKE_BATCH + 3)]
    for name in names:
        fire_timer.set(name, T0 + S)
    clock.at += 2 * S  # the loop was blocked past the lead and the instant
    clock.advance(timedelta(0))
    assert calls == [("due", name, T0 + S) for name in names]
