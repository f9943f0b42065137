"""This node's heartbeat in the nodes table: what ``GET /api/nodes`` lists, and what tells
the other nodes sharing a PostgreSQL database that this one is alive."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from cronwarden import __version__
from cronwarden.live_config import LiveConfig
from cronwarden.store.nodes import Heartbeat, NodeRegistry

log = structlog.get_logger("cronwarden.nodes")
BEATS_PER_LEASE = 3  # a lease survives two lost beats
MIN_INTERVAL = timedelta(seconds=1)


class NodeHeartbeat:
    def __init__(
        self,
        registry: NodeRegistry,
        live: LiveConfig,
        node: str,
        started_at: datetime,
        api_url: str | None,
    ) -> None:
        self.registry = registry
        self.live = live
        self.node = node
        self.started_at = started_at
        self.api_url = api_url
        self._failing = False

    @property
    def interval(self) -> timedelta:
        return max(self.live.current.daemon.node_lease / BEATS_PER_LEASE, MIN_INTERVAL)

    async def beat(self) -> None:
        """One beat; an unreachable database is logged once per outage, never raised."""
        beat = Heartbeat(
            name=self.node,
            started_at=self.started_at,
            version=__version__,
            pid=os.getpid(),
            api_url=self.api_url,
            config_hash=self.live.tasks_hash,
        )
        try:
            await self.registry.beat(beat)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if not self._failing:
                log.warning("node.heartbeat_failed", node=self.node, error=str(exc))
            self._failing = True
            return
        if self._failing:
            log.info("node.heartbeat_resumed", node=self.node)
        self._failing = False

    async def serve(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval.total_seconds())
