"""This node among the daemons sharing its database: heartbeat and epoch, the takeover
of a node whose lease lapsed, and stops and pauses that act fleet-wide.

On SQLite a daemon is alone (the data_dir lock sees to it): it only heartbeats, so that
``GET /api/nodes`` lists it.  On PostgreSQL every node also, each ``SYNC_EVERY`` or as
soon as a NOTIFY on ``cronwarden`` wakes it:

* stops the runs it carries that another node was asked to stop (the request is a
  column on the run's row, so a lost NOTIFY only costs the polling delay);
* has the pauses and resumes stored by whichever node made them followed here
  (cronwarden/pauses.py);
* re-reads its own config file when another node was asked to reload over the API
  (a count on this node's row, so a NOTIFY it did not hear only costs the polling
  delay);

and, at each heartbeat, takes over the nodes silent for longer than ``node_lease`` (by
the database's clock) and notices nodes whose task definitions differ from its own.

A node that finds at a heartbeat that it was taken over (its epoch was raised while it
was cut off) stops the runs the survivor ended or moved, records nothing over them,
and joins again with the new epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from cronwarden import __version__
from cronwarden.errors import ConfigError, Conflict, StoreUnavailable
from cronwarden.live_config import LiveConfig
from cronwarden.pauses import Pauses
from cronwarden.placement import runs_on
from cronwarden.runners.dispatch import Dispatcher
from cronwarden.store.holds import FREED_HOLDS
from cronwarden.store.nodes import CHANNEL, Heartbeat, NodeRegistry
from cronwarden.store.slots import FREED

log = structlog.get_logger("cronwarden.nodes")
BEATS_PER_LEASE = 3  # a lease survives two lost beats
MIN_INTERVAL = timedelta(seconds=1)
# A node whose heartbeats stop landing may be taken over once node_lease has passed
# since the last one: by half the lease its runs that must not overlap are stopped,
# and by FENCE_KILL of it what is left of them is killed, so no survivor's run of the
# same task starts while one of this node's still runs (issue 24, a partitioned node).
FENCE_STOP = 0.5
FENCE_KILL = 0.8
SYNC_EVERY = 1.0  # seconds between polls of stop requests and pauses (NOTIFY is sooner)
_DATABASE_ERRORS = (SQLAlchemyError, StoreUnavailable, OSError, TimeoutError)


class Fleet:
    def __init__(
        self,
        registry: NodeRegistry,
        live: LiveConfig,
        dispatcher: Dispatcher,
        pauses: Pauses,
        *,
        node: str,
        started_at: datetime,
        api_url: str | None,
    ) -> None:
        self.registry = registry
        self.live = live
        self.dispatcher = dispatcher
        self.pauses = pauses
        self.node = node
        self.started_at = started_at
        self.api_url = api_url
        self.epoch: int | None = None
        self.config_differs: list[str] = []  # live nodes whose task definitions differ
        self._failing = False
        self._fence: asyncio.TimerHandle | None = None
        self._fenced = False
        self._wake = asyncio.Event()
        self._stops_sent: set[str] = set()
        self._reloads_seen = 0  # reloads asked of this node (its row's count) heeded
        self._reload_asked = False
        # Re-reads this node's config file (set once the services exist).
        self.on_reload: Callable[[], Awaitable[Any]] | None = None
        # Told whether other nodes are alive on the database (the keeper fences then).
        self.on_company: Callable[[bool], None] | None = None

    @property
    def shared(self) -> bool:
        return self.registry.shared

    @property
    def lease(self) -> timedelta:
        return self.live.current.daemon.node_lease

    @property
    def interval(self) -> timedelta:
        return max(self.lease / BEATS_PER_LEASE, MIN_INTERVAL)

    async def join(self) -> None:
        """The first beat, before start-up recovery reads this node's unfinished runs:
        once it lands, no survivor can take them over from under the recovery.  It
        leaves the config hash to the next beat: hashing 10,000 task definitions is
        a quarter of a second that start-up need not wait for."""
        await self.beat(with_hash=False)
        if self.shared:  # asked before this start: the file was read just now anyway
            # Unread (the database away), the first sync reloads once, to no harm.
            with contextlib.suppress(*_DATABASE_ERRORS):
                self._reloads_seen = await self.registry.reloads_asked(self.node)

    async def beat(self, *, with_hash: bool = True) -> None:
        """One heartbeat; an unreachable database is logged once per outage, never
        raised (the next beat tries again)."""
        config_hash = await self.live.tasks_hash() if with_hash else None
        sent = asyncio.get_running_loop().time()  # the beat's row is stamped after this
        try:
            epoch = await self.registry.beat(self._heartbeat(config_hash), self.epoch)
            if epoch is None:
                epoch = await self._rejoin()
            self._lease_renewed(sent)
        except _DATABASE_ERRORS as exc:
            if not self._failing:
                log.warning("node.heartbeat_failed", node=self.node, error=str(exc))
            self._failing = True
            return
        if self._failing:
            log.info("node.heartbeat_resumed", node=self.node)
        self._failing = False
        self.epoch = epoch

    def _lease_renewed(self, sent: float) -> None:
        """A beat sent at ``sent`` (loop time) landed: the lease runs from then."""
        if not self.shared:
            return
        if self._fence is not None:
            self._fence.cancel()
        lease = self.lease.total_seconds()
        # Not before the next beat has had its chance to land (a lease of a few beats).
        stop_after = min(
            max(lease * FENCE_STOP, self.interval.total_seconds() * 1.5), lease * FENCE_KILL
        )
        loop = asyncio.get_running_loop()
        self._fence = loop.call_at(sent + stop_after, self._lose_lease, sent + lease)
        if self._fenced:
            self._fenced = False
            log.info("node.lease_regained", node=self.node)
            self.dispatcher.unfence()

    def _lose_lease(self, lapses_at: float) -> None:
        """No beat landed for half the lease (at least a beat and a half): stop what
        must not overlap with a run a survivor may start once the lease lapses."""
        self._fenced = True
        kill_at = lapses_at - self.lease.total_seconds() * (1 - FENCE_KILL)
        stopped = self.dispatcher.fence(kill_at)
        log.warning(
            "node.lease_at_risk",
            node=self.node,
            why="heartbeats have not reached the database for half of node_lease",
            runs_stopped=stopped,
        )

    def close(self) -> None:
        if self._fence is not None:
            self._fence.cancel()

    def _heartbeat(self, config_hash: str | None) -> Heartbeat:
        return Heartbeat(
            name=self.node,
            started_at=self.started_at,
            version=__version__,
            pid=os.getpid(),
            api_url=self.api_url,
            config_hash=config_hash,
        )

    async def _rejoin(self) -> int:
        """A survivor took this node over while its beats did not land: the runs it
        ended or moved are not this node's any more."""
        carried = self.dispatcher.carried_ids()
        lost = await self.registry.lost_among(self.node, carried)
        log.critical(
            "node.was_taken_over",
            node=self.node,
            why="its heartbeats did not land for longer than node_lease",
            runs_given_up=lost,
        )
        self.dispatcher.abandon(lost)
        epoch = await self.registry.beat(self._heartbeat(await self.live.tasks_hash()), None)
        assert epoch is not None  # without an expected epoch the beat always lands
        return epoch

    async def serve(self) -> None:
        listener = asyncio.create_task(self._listen(), name="fleet listener")
        loop = asyncio.get_running_loop()
        next_beat = loop.time()  # at once: the join beat left the config hash out
        try:
            while True:
                if loop.time() >= next_beat:
                    next_beat = loop.time() + self.interval.total_seconds()
                    await self.beat()
                    if self.shared and not self._failing:
                        await self._guarded(self._take_over_lapsed)
                        await self._guarded(self._look_at_others)
                if self.shared:
                    await self._guarded(self._sync)
                    await self._reload_if_asked()
                wait = SYNC_EVERY if self.shared else self.interval.total_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait, next_beat - loop.time()))
                self._wake.clear()
        finally:
            listener.cancel()

    async def _guarded(self, step: Any) -> None:
        """A step that needs the database waits for the next turn when it is away (the
        heartbeat has logged the outage already)."""
        try:
            await step()
        except _DATABASE_ERRORS as exc:
            log.debug("node.step_failed", step=step.__name__, error=str(exc))

    async def _take_over_lapsed(self) -> None:
        for dead in await self.registry.lapsed(self.node, self.lease):
            why = (
                f"node {dead} stopped heartbeating for more than node_lease "
                f"({self.lease.total_seconds():g}s); {self.node} took over its runs"
            )
            # Waiting retries of tasks this node may not run stay the dead node's.
            elsewhere = [t.name for t in self.live.tasks.values() if not runs_on(t, self.node)]
            taken = await self.registry.take_over(
                dead, self.node, self.lease, why, not_here=elsewhere
            )
            if taken is None:  # it came back, or another survivor took it
                continue
            log.warning(
                "node.taken_over",
                node=dead,
                by=self.node,
                crashed=[r.id for r in taken.crashed],
                pending=[r.id for r in taken.pending],
            )
            await self.dispatcher.taken_over(taken.crashed, taken.pending)

    async def _look_at_others(self) -> None:
        """The other live nodes: whether there are any (a survivor would take this
        node's runs over should it die) and whether their tasks differ from ours."""
        others = [
            n for n in await self.registry.seen() if n.name != self.node and n.alive(self.lease)
        ]
        if self.on_company is not None:
            self.on_company(bool(others))
        mine = await self.live.tasks_hash()
        differing = sorted(
            n.name
            for n in others
            if n.config_hash is not None  # not hashed yet: it has just started
            and n.config_hash != mine
        )
        if differing != self.config_differs:
            if differing:
                log.warning(
                    "config.differs_between_nodes",
                    nodes=differing,
                    hint="every node sharing a database should load the same tasks",
                )
            else:
                log.info("config.same_on_all_nodes")
        self.config_differs = differing

    async def _sync(self) -> None:
        await self._follow_stops()
        await self.pauses.sync()
        await self._follow_reloads()

    async def _follow_reloads(self) -> None:
        asked = await self.registry.reloads_asked(self.node)
        if asked != self._reloads_seen:
            self._reloads_seen = asked
            self._reload_asked = True

    async def _follow_stops(self) -> None:
        requested = set(await self.registry.stop_requested(self.node))
        self._stops_sent &= requested  # ended runs drop out of both
        for run_id in requested - self._stops_sent:
            self._stops_sent.add(run_id)
            with contextlib.suppress(Conflict):  # it ended meanwhile
                await self.dispatcher.stop(run_id)
                log.info("run.stop_requested_elsewhere", run_id=run_id)

    async def request_stop(self, run_id: str) -> bool:
        """Ask whichever node carries the run to stop it (False: it has ended)."""
        return await self.registry.request_stop(run_id)

    async def ask_reload(self) -> None:
        """Ask the other nodes to re-read their config files.  With the database away
        the request is lost: the nodes then show as differing in ``config_differs``."""
        if self.shared:
            with contextlib.suppress(*_DATABASE_ERRORS):
                await self.registry.ask_reload(self.node)

    def _heard(self, payload: str) -> None:
        verb = payload.partition(" ")[0]
        if verb == FREED:
            self.dispatcher.places_changed()
            return
        if verb == FREED_HOLDS:
            self.dispatcher.holds_changed()
            return
        self._wake.set()

    async def _reload_if_asked(self) -> None:
        if not self._reload_asked or self.on_reload is None:
            return
        self._reload_asked = False
        log.info("config.reload_asked_by_another_node")
        with contextlib.suppress(ConfigError):  # logged by the reload; the old config stays
            await self.on_reload()

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL: a stop or pause reaches this node at once rather than
        at its next poll.  Reconnects on its own; polling covers the gaps."""
        if not self.shared:
            return
        import asyncpg  # type: ignore[import-untyped]

        dsn = self.registry.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError):
                await asyncio.sleep(self.interval.total_seconds())
                continue
            try:
                await self._hear(conn)
            except (OSError, asyncpg.PostgresError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)

    async def _hear(self, conn: Any) -> None:
        """Until the connection is lost: each NOTIFY wakes the sync loop."""
        lost = asyncio.Event()
        await conn.add_listener(CHANNEL, lambda *args: self._heard(str(args[-1])))
        conn.add_termination_listener(lambda _: lost.set())
        self._wake.set()  # what was said while this node was not listening
        await lost.wait()
