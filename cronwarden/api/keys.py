"""Typed application keys: the API reaches the daemon's services only through these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from cronwarden.alerts.service import Alerts
    from cronwarden.event_log import EventLog
    from cronwarden.fleet import Fleet
    from cronwarden.host.space_reserve import SpaceReserve
    from cronwarden.live_config import LiveConfig
    from cronwarden.metrics import Metrics
    from cronwarden.pauses import Pauses
    from cronwarden.retention import Retention
    from cronwarden.runlog.feeds import LogFeeds
    from cronwarden.runners.artifacts import RunArtifacts
    from cronwarden.runners.dispatch import Dispatcher
    from cronwarden.scheduler.service import SchedulerService
    from cronwarden.store import Store
    from cronwarden.support.clock import Clock


@dataclass
class Services:
    """What handlers need; ``live`` holds the current config (swapped on reload)."""

    live: LiveConfig
    store: Store
    dispatcher: Dispatcher
    scheduler: SchedulerService
    pauses: Pauses
    logs_dir: Path
    artifacts: RunArtifacts  # runs' artifact directories here, and every run's listing
    log_feeds: LogFeeds
    events: EventLog
    reserve: SpaceReserve
    retention: Retention
    metrics: Metrics
    alerts: Alerts
    fleet: Fleet
    started_at: datetime
    clock: Clock  # the daemon's one clock (tests give a fake one)
    # Re-reads the config file and applies it; raises ConfigError and keeps the old one.
    reload: Callable[[], Awaitable[dict[str, list[str]]]]


SERVICES = web.AppKey("services", Services)
