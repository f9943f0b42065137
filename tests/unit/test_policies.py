"""Pure policies: retries, overlap admission, catch-up, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cronwarden.retry_policy import should_retry
from cronwarden.scheduler.catchup import missed_fires
from cronwarden.scheduler.policies import catch_up_fires, jitter_offset
from cronwarden.scheduler.triggers import parse_schedule
from cronwarden.support.backoff import backoff_delay

S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        ("constant", [10, 10, 10, 10]),
        ("linear", [10, 20, 30, 40]),
        ("exponential", [10, 20, 40, 60]),  # capped at 60
    ],
)
def test_retry_delays(backoff: str, delays: list[int]) -> None:
    got = [
        backoff_delay(n, delay=10 * S, backoff=backoff, max_delay=60 * S)  # type: ignore[arg-type]
        for n in (1, 2, 3, 4)
    ]
    assert got == [d * S for d in delays]


def test_exponential_delay_never_overflows() -> None:
    assert backoff_delay(500, delay=S, backoff="exponential", max_delay=300 * S) == 300 * S


def test_should_retry_counts_extra_attempts() -> None:
    on = ["failed", "timeout"]
    assert should_retry("failed", attempt=1, retries=2, retry_on=on)
    assert should_retry("timeout", attempt=2, retries=2, retry_on=on)
    assert not should_retry("failed", attempt=3, retries=2, retry_on=on)
    assert not should_retry("crashed", attempt=1, retries=2, retry_on=on)
    assert not should_retry("success", attempt=1, retries=2, retry_on=on)


def test_catch_up_modes() -> None:
    missed = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(5)]
    assert catch_up_fires(missed, mode="skip", max_catch_up=3) == ([], missed)
    assert catch_up_fires(missed, mode="latest", max_catch_up=3) == ([missed[-1]], missed[:-1])
    assert catch_up_fires(missed, mode="all", max_catch_up=3) == (missed[2:], missed[:2])
    assert catch_up_fires([], mode="latest", max_catch_up=3) == ([], [])


def test_missed_fires_walks_only_what_it_keeps() -> None:
    trigger = parse_schedule("* * * * * *", UTC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=7)
    window = missed_fires(trigger, start, end, keep=3)
    assert window.fires == [end - 2 * S, end - S, end]
    assert window.older > 0 and not window.older_is_exact


def test_missed_fires_exact_when_the_window_is_small() -> None:
    trigger = parse_schedule("*/10 * * * *", UTC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    window = missed_fires(trigger, start, start + timedelta(minutes=35), keep=100)
    assert [f.minute for f in window.fires] == [10, 20, 30]
    assert window.older == 0 and window.older_is_exact


def test_jitter_is_stable_and_bounded() -> None:
    bound = timedelta(minutes=5)
    offsets = {name: jitter_offset(name, bound) for name in ("a", "b", "backup", "report")}
    assert offsets == {name: jitter_offset(name, bound) for name in offsets}
    assert all(timedelta(0) <= o < bound for o in offsets.values())
    assert len(set(offsets.values())) == len(offsets)
    assert jitter_offset("a", timedelta(0)) == timedelta(0)
