"""Flag: what a run's supervision waits on beside its exit, without a task."""

from __future__ import annotations

import asyncio

from cronwarden.support.flag import Flag


async def test_a_flag_set_after_or_before_its_future_was_asked_for_settles_it() -> None:
    later, earlier = Flag(), Flag()
    waited = later.settled()
    assert not waited.done() and not later.is_set()
    later.set()
    assert waited.done() and later.is_set()
    earlier.set()
    assert earlier.settled().done()


async def test_waiters_share_one_future_and_a_cancelled_one_is_replaced() -> None:
    flag = Flag()
    first = flag.settled()
    assert flag.settled() is first
    done, _ = await asyncio.wait({first}, timeout=0.01)
    assert not done and not first.cancelled()  # asyncio.wait leaves it be
    first.cancel()
    again = flag.settled()
    assert again is not first and not again.done()
    flag.set()
    assert again.done()
