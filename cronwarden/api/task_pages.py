"""Pages of the task list (``GET /api/tasks`` with parameters) and each task's
attention states (cronwarden/attention.py).

The pages are cut from the configuration, not from the store: the tasks are the
config's, sorted in memory (10,000 names sort in a few milliseconds), and a cursor
holds the sort key of the last task it gave, so a page follows on from it even when a
reload added or removed tasks meanwhile.  The store is read for the newest run of the
tasks on the page, or of every task when the states decide what is listed (a state
filter, ``sort=attention``, ``counts``), in slices as the full listing reads them.
"""

from __future__ import annotations

import base64
import bisect
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cronwarden.api.keys import Services
from cronwarden.api.schemas import TaskCounts, TaskListQuery, TaskOut
from cronwarden.attention import ORDER, State, rank, states_of, stuck_limit
from cronwarden.config import TaskConfig
from cronwarden.errors import InvalidCursor
from cronwarden.run_record import AnyRun
from cronwarden.support.timefmt import iso_z

LISTING_SLICE = 500  # tasks whose last runs are read together
Key = tuple[Any, ...]
BuildTask = Callable[[TaskConfig, AnyRun | None], TaskOut]


def task_states(
    services: Services, task: TaskConfig, last: AnyRun | None, now: datetime
) -> list[State]:
    """One task's states, from its model."""
    limit = stuck_limit(task.stuck_after, task.max_duration, task.timeout, task.kill_grace)
    return states_of(
        last,
        paused=services.pauses.is_paused(task.name),
        overdue=services.alerts.overdue.is_overdue(task.name, task.expect_success_within, now),
        stuck_after=limit,
        now=now,
    )


async def last_runs(services: Services, names: list[str]) -> dict[str, AnyRun]:
    """The newest run of each task named, read LISTING_SLICE tasks at a time."""
    found: dict[str, AnyRun] = {}
    for start in range(0, len(names), LISTING_SLICE):
        found.update(await services.store.last_runs(names[start : start + LISTING_SLICE]))
    return found


def every_state(
    services: Services, lasts: dict[str, AnyRun], now: datetime
) -> dict[str, list[State]]:
    """Every configured task's states, read from the packed table's columns: building
    10,000 task models for four values each would cost a tenth of a second."""
    table = services.live.tasks
    columns = [
        dict(table.field(name)) for name in ("stuck_after", "max_duration", "timeout", "kill_grace")
    ]
    within = dict(table.field("expect_success_within"))
    overdue = services.alerts.overdue
    return {
        name: states_of(
            lasts.get(name),
            paused=services.pauses.is_paused(name),
            overdue=overdue.is_overdue(name, within[name], now),
            stuck_after=stuck_limit(*(column[name] for column in columns)),
            now=now,
        )
        for name in table
    }


class TaskOrder:
    """A sort of the task list and its cursors: the key of each task, ending with its
    name so that no two tasks tie."""

    def __init__(self, sort: str) -> None:
        self.sort = sort

    def key(self, name: str, states: list[State], next_fire: datetime | None) -> Key:
        if self.sort == "attention":
            return (rank(states), name)
        if self.sort == "next_run_at":
            return (0, iso_z(next_fire), name) if next_fire else (1, "", name)
        return (name,)

    def encode(self, key: Key) -> str:
        raw = json.dumps([self.sort, *key], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> Key:
        """The key a cursor holds; InvalidCursor if it is forged or of another sort."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            sort, *key = json.loads(raw)
        except (ValueError, TypeError):
            raise InvalidCursor() from None
        shape = {"name": (str,), "attention": (int, str), "next_run_at": (int, str, str)}
        types = tuple(type(part) for part in key)
        if sort != self.sort or types != shape[self.sort]:
            raise InvalidCursor()
        return tuple(key)


async def task_page(services: Services, query: TaskListQuery, build: BuildTask) -> str:
    """The page's JSON (a TaskPage)."""
    now = services.clock.now()
    table = services.live.tasks
    names = sorted(table)
    by_states = bool(query.state) or query.sort == "attention" or query.counts
    lasts = await last_runs(services, names) if by_states else {}
    states = every_state(services, lasts, now) if by_states else {}
    wanted = set(query.state or ())
    if wanted:
        names = [name for name in names if wanted.intersection(states[name])]
    order = TaskOrder(query.sort)
    next_fire = services.scheduler.next_fire_time
    if query.sort == "name":
        keys = [(name,) for name in names]
    else:
        keys = sorted(order.key(n, states.get(n, []), next_fire(n)) for n in names)
    start = bisect.bisect_right(keys, order.decode(query.cursor)) if query.cursor else 0
    chosen = keys[start + query.offset : start + query.offset + query.limit + 1]
    has_next = len(chosen) > query.limit
    chosen = chosen[: query.limit]
    shown = [key[-1] for key in chosen]
    if not by_states:
        lasts = await last_runs(services, shown)
    tasks = ",".join(build(table[name], lasts.get(name)).model_dump_json() for name in shown)
    paging: dict[str, Any] = {
        "next_cursor": order.encode(chosen[-1]) if has_next else None,
        "has_next": has_next,
    }
    if query.total:
        paging["total"] = len(keys)
    if query.counts:
        paging["counts"] = _counts(states).model_dump()
    return '{"tasks":[' + tasks + "]," + json.dumps(paging)[1:]


def _counts(states: dict[str, list[State]]) -> TaskCounts:
    tally = Counter(state for found in states.values() for state in found)
    return TaskCounts(tasks=len(states), **{state: tally[state] for state in ORDER})
