"""The real API app served in-process: no daemon, no subprocess, no port to race for.

``serve_in_process`` builds ``create_app(services)`` over the real services (the
dispatcher, the scheduler, the event log, metrics, alerts ...) on the in-memory store
(cronwarden/store/memory.py, held to the SQL stores' contract by tests/contract), the
fake launcher and the fake clock of the dispatcher's unit tests, and serves it with
aiohttp's TestServer on an ephemeral port the kernel hands out.  A test of an endpoint
rule then takes milliseconds, and the runs it starts end when the test says
(``api.launcher.finish(run_id)``), never on a timer.

What it leaves out: processes (see tests/integration for real ones), the retention
pass and the fleet's heartbeats (their engine is an SQLite database in memory that no
test path queries), and the daemon's start-up and signals.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import create_async_engine

from cronwarden.alerts.service import Alerts
from cronwarden.api.app import create_app
from cronwarden.api.keys import Services
from cronwarden.api.schemas import run_fields
from cronwarden.config import parse_config
from cronwarden.event_log import EventLog
from cronwarden.fleet import Fleet
from cronwarden.host.space_reserve import SpaceReserve
from cronwarden.live_config import LiveConfig
from cronwarden.metrics import LiveState, Metrics
from cronwarden.model import Run
from cronwarden.pauses import Pauses
from cronwarden.retention import Retention
from cronwarden.runlog.feeds import LogFeeds
from cronwarden.runners.artifacts import RunArtifacts
from cronwarden.runners.dispatch import Dispatcher
from cronwarden.scheduler.service import SchedulerService
from cronwarden.store import Store
from cronwarden.store.artifacts import SqlArtifacts
from cronwarden.store.memory import MemoryStore
from cronwarden.store.nodes import NodeRegistry
from cronwarden.store.pruning import RetentionQueries

sys.path.insert(0, str(Path(__file__).parent / "unit"))  # the dispatcher's test doubles
from dispatch_doubles import FakeClock, FakeLauncher  # type: ignore[import-not-found]

NODE = "n1"


@dataclass
class InProcessApi:
    client: TestClient  # type: ignore[type-arg]
    services: Services
    store: MemoryStore
    launcher: FakeLauncher
    clock: FakeClock

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """One request; the answer's status, headers and body (JSON when it is JSON)."""
        async with self.client.request(method, path, json=json, headers=headers) as answer:
            text = await answer.text()
            body: Any = text
            if "json" in answer.content_type:
                body = await answer.json(content_type=None)
            return answer.status, dict(answer.headers), body


def _services(
    config_text: str, data_dir: Path, clock: FakeClock
) -> tuple[Services, MemoryStore, FakeLauncher]:
    """The daemon's services wired as daemon.py wires them, with the doubles in place
    of the store, the launcher and the clock."""
    live = LiveConfig(parse_config(config_text, data_dir / "cronwarden.toml"))
    store = MemoryStore(now=clock.now)
    launcher = FakeLauncher()
    events, feeds = EventLog(started_at=clock.now()), LogFeeds()

    def changed(kind: Any, run: Run) -> None:
        metrics.observe(kind, run)
        events.publish_run(kind, run)
        if kind == "run.ended":
            feeds.finish(run.id)

    dispatcher = Dispatcher(
        store, live, node=NODE, launcher=launcher, clock=clock, on_change=changed
    )
    scheduler = SchedulerService(dispatcher, store, clock)
    metrics = Metrics(
        LiveState(
            run_phases=dispatcher.phases,
            tasks=lambda: len(live.tasks),
            paused=lambda: pauses.count,
        )
    )
    unused = create_async_engine("sqlite+aiosqlite://")  # never connected (see above)
    registry = NodeRegistry(unused)  # alone on its database: pauses are never polled
    pauses = Pauses(store, scheduler, live, publish=events.publish_task, fleet=registry)
    sql_store = cast(Store, store)  # handlers ask the Store's reads, which the double has
    logs_dir = data_dir / "logs"

    async def reload() -> dict[str, list[str]]:
        return {"added": [], "removed": [], "changed": [], "restart_needed": []}

    services = Services(
        live=live,
        store=sql_store,
        dispatcher=dispatcher,
        scheduler=scheduler,
        pauses=pauses,
        logs_dir=logs_dir,
        artifacts=RunArtifacts(data_dir / "artifacts", SqlArtifacts(unused), NODE),
        log_feeds=feeds,
        events=events,
        reserve=SpaceReserve(data_dir),
        retention=Retention(
            cast(Store, _PruningOnly(RetentionQueries(unused))), live, logs_dir, clock
        ),
        metrics=metrics,
        alerts=Alerts(
            live,
            sql_store,
            clock,
            node=NODE,
            base_url=None,
            run_json=run_fields,
            on_outcome=lambda target, event, outcome: None,
            logs_dir=logs_dir,
        ),
        fleet=Fleet(
            registry, live, dispatcher, pauses, node=NODE, started_at=clock.now(), api_url=None
        ),
        started_at=clock.now(),
        clock=clock,
        reload=reload,
    )
    return services, store, launcher


@dataclass
class _PruningOnly:
    """What Retention reads of a store when it is built: the queries of its passes."""

    pruning: RetentionQueries


@contextlib.asynccontextmanager
async def serve_in_process(
    tasks: str, data_dir: Path, *, daemon: str = ""
) -> AsyncIterator[InProcessApi]:
    """Serve the app over ``tasks`` (TOML of [tasks.*] tables; ``daemon``: lines of the
    [daemon] table) until the block ends (``data_dir`` must exist); then its runs are stopped."""
    clock = FakeClock()
    text = f'[daemon]\ndata_dir = "{data_dir}"\nnode = "{NODE}"\n{daemon}\n{tasks}'
    services, store, launcher = _services(text, data_dir, clock)
    await services.pauses.load()
    await services.scheduler.start(services.live.current.tasks)
    client = TestClient(TestServer(create_app(services), host="127.0.0.1"))
    await client.start_server()
    try:
        yield InProcessApi(client, services, store, launcher, clock)
    finally:
        await client.close()
        services.scheduler.shutdown()
        await services.scheduler.wait_inflight()
        await services.dispatcher.shutdown(services.live.current.daemon.shutdown_timeout * 0)
        services.events.close()
