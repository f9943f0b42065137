"""max_concurrent_runs bookkeeping: places, lines served in turn across tasks."""

from __future__ import annotations

import asyncio

from cronwarden.runners.host_limit import HostLimit


async def test_beyond_the_limit_runs_wait_and_tasks_are_served_in_turn() -> None:
    host = HostLimit(2)
    assert host.take("a", "a0") is None and host.take("a", "a1") is None
    waiters = {f"a{i}": host.take("a", f"a{i}") for i in range(2, 8)}
    waiters["b0"] = host.take("b", "b0")
    waiters["c0"] = host.take("c", "c0")
    assert all(w is not None for w in waiters.values()) and host.waiting == 8
    served = []
    for holder in ["a0", "a1", "a2", "b0", "c0", "a3"]:
        host.release(holder)
        served += [r for r, w in waiters.items() if w is not None and w.done() and r not in served]
    # a2 waited longest; then b and c take their turn before a's backlog goes on
    assert served == ["a2", "b0", "c0", "a3", "a4", "a5"]
    assert len(host.holders) == 2


async def test_a_run_that_leaves_its_line_frees_its_turn() -> None:
    host = HostLimit(1)
    assert host.take("a", "a0") is None
    leaving = host.take("b", "b0")
    staying = host.take("c", "c0")
    assert leaving is not None and staying is not None
    host.release("b0")  # stopped while waiting
    assert leaving.cancelled()
    host.release("a0")
    assert staying.done() and host.holders == {"c0"}


async def test_no_limit_and_a_raised_limit() -> None:
    unlimited = HostLimit(0)
    assert all(unlimited.take("a", f"r{i}") is None for i in range(1000))
    host = HostLimit(1)
    host.take("a", "a0")
    waiting = [host.take("a", f"a{i}") for i in range(1, 4)]
    host.set_limit(3)
    await asyncio.sleep(0)
    assert [w is not None and w.done() for w in waiting] == [True, True, False]
    host.occupy("adopted")  # an adopted run holds a place beyond the limit
    assert len(host.holders) == 4
