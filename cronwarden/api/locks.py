"""GET /api/locks: the named locks and pools of the config, who holds each now and who
waits for it.

Holders are read from the database, so they are every node's; the runs waiting are
this node's (a run waits in the memory of the node that carries it), which the OpenAPI
document says.  Which tasks name a lock is worked out once per configuration (it is
swapped whole on reload): with 10,000 tasks, building each one again for every request
would hold the loop for a tenth of a second."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from aiohttp import web

from cronwarden.api.keys import SERVICES
from cronwarden.api.schemas import HolderOut, LockList, LockOut, LocksQuery, LockWaiterOut
from cronwarden.config import Config
from cronwarden.ports import Holder, hold_key
from cronwarden.support.timefmt import iso_z

if TYPE_CHECKING:
    from cronwarden.runners.holds import Waiter

Kind = Literal["lock", "pool"]


@dataclass(frozen=True)
class _Named:
    """A lock or pool as the config defines it."""

    kind: Kind
    name: str
    size: int
    tasks: tuple[str, ...]

    @property
    def key(self) -> str:
        """The hold's name in the database and in a waiting run's wants."""
        return hold_key(self.kind, self.name)


_cached: tuple[Config, list[_Named]] | None = None


def named_holds(config: Config) -> list[_Named]:
    """Every lock some task names and every pool of [pools], sorted by kind then name,
    each with the tasks that name it."""
    global _cached
    if _cached is not None and _cached[0] is config:
        return _cached[1]
    locks: dict[str, list[str]] = {}
    pools: dict[str, list[str]] = {name: [] for name in config.pools}
    for task in config.tasks.values():
        for lock in task.locks:
            locks.setdefault(lock, []).append(task.name)
        if task.pool is not None and task.pool in pools:
            pools[task.pool].append(task.name)
    named = [
        _Named("lock", name, 1, tuple(sorted(tasks))) for name, tasks in sorted(locks.items())
    ] + [
        _Named("pool", name, config.pools[name].size, tuple(sorted(tasks)))
        for name, tasks in sorted(pools.items())
    ]
    _cached = (config, named)
    return named


async def list_locks(request: web.Request) -> web.Response:
    LocksQuery.model_validate(dict(request.query))
    services = request.app[SERVICES]
    named = named_holds(services.live.current)
    place = services.dispatcher.holds
    holders: list[Holder] = []
    waiting: list[Waiter] = []
    if place is not None and named:
        holders = await place.holds.holders([n.key for n in named])  # StoreUnavailable: 503
        waiting = place.waiting
    body = LockList(locks=[_lock_out(n, holders, waiting) for n in named])
    return web.json_response(text=body.model_dump_json())


def _lock_out(named: _Named, holders: list[Holder], waiting: list[Waiter]) -> LockOut:
    return LockOut(
        name=named.name,
        kind=named.kind,
        size=named.size,
        tasks=list(named.tasks),
        holders=[
            HolderOut(run_id=h.run_id, task_name=h.task_name, node=h.node, since=iso_z(h.taken_at))
            for h in holders
            if h.name == named.key
        ],
        waiting=[
            LockWaiterOut(
                run_id=w.run_id,
                task_name=w.task_name,
                since=iso_z(datetime.fromtimestamp(w.since, UTC)),
            )
            for w in waiting
            if named.key in w.wants
        ],
    )
