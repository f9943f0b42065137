"""run.stuck and task.overdue with an injected clock and a real SQLite store, across
restarts (a new ``Alerts`` on the same database is what a restarted daemon makes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dispatch_doubles import T0, FakeClock  # type: ignore[import-not-found]

from cronwarden.alerts.overdue import OverdueWatch
from cronwarden.alerts.service import Alerts
from cronwarden.config import NotifyConfig, parse_config
from cronwarden.live_config import LiveConfig
from cronwarden.run_record import RunRecord
from cronwarden.store import Store, open_engine

CONFIG = """
[notify.ops]
type = "webhook"
url = "http://127.0.0.1:9/never-called"
events = ["run.stuck", "task.overdue", "task.recovered"]

[tasks.nightly]
command = "true"
expect_success_within = "1h"
notify = ["ops"]
[tasks.long]
command = "sleep 99999"
stuck_after = "30m"
notify = ["ops"]
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """SQLite only (overrides the shared fixture): the timers do not depend on the engine."""
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"))
    yield store
    await store.close()


class Life:
    """One daemon life's alerts: what they sent, by event name."""

    def __init__(self, store: Store, clock: FakeClock, tmp_path: Path) -> None:
        self.sent: list[Mapping[str, Any]] = []
        self.alerts = Alerts(
            LiveConfig(parse_config(CONFIG, tmp_path / "c.toml")),
            store,
            clock,
            node="n1",
            base_url=None,
            run_json=lambda run: {"id": run.id, "status": run.status},
            on_outcome=lambda *_: None,
            send=self.send,
        )

    async def send(self, target: NotifyConfig, event: Mapping[str, Any]) -> None:
        self.sent.append(event)

    async def events(self, prefix: str = "") -> list[str]:
        await self.alerts.ends.settled()  # ends that read the task's history first
        for _ in range(5):  # let the couriers and background saves run
            await asyncio.sleep(0)
        await asyncio.gather(*self.alerts._saving)
        return [e["event"] for e in self.sent if e["event"].startswith(prefix)]


def running_run(started_ago: timedelta, clock: FakeClock) -> Any:
    return RunRecord(
        id="00000000-0000-7000-8000-000000000001",
        task_name="long",
        status="running",
        triggered_by="api",
        created_at=clock.now() - started_ago,
        start_at=clock.now() - started_ago,
        node="n1",
        task_hash="h",
    )


async def test_stuck_counts_from_the_run_start_also_for_a_run_adopted_after_a_restart(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock(at=T0)
    life = Life(store, clock, tmp_path)
    run = running_run(timedelta(minutes=20), clock)
    await life.alerts.start([run])  # adopted: it started 20 minutes before this life
    clock.advance(timedelta(minutes=9))
    assert await life.events("run.") == []
    clock.advance(timedelta(minutes=1))
    assert await life.events("run.") == ["run.stuck"]
    assert "running for 30m" in life.sent[0]["message"]
    clock.advance(timedelta(hours=5))
    assert await life.events("run.") == ["run.stuck"]  # once per run


async def test_a_run_that_ends_in_time_is_not_stuck(store: Store, tmp_path: Path) -> None:
    clock = FakeClock(at=T0)
    life = Life(store, clock, tmp_path)
    await life.alerts.start([])
    run = running_run(timedelta(0), clock)
    life.alerts.on_change("run.started", run)
    clock.advance(timedelta(minutes=29))
    run.change({"status": "ended", "end_reason": "success", "end_at": clock.now()})
    life.alerts.on_change("run.ended", run)
    clock.advance(timedelta(hours=2))
    assert await life.events("run.") == []


async def test_overdue_survives_restarts_and_alerts_once_per_silence(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock(at=T0)
    first = Life(store, clock, tmp_path)
    await first.alerts.start([])  # watching begins at T0; the task never succeeded
    clock.advance(timedelta(minutes=40))
    assert await first.events() == []

    # a restart 40 minutes in: the silence is still counted from T0
    second = Life(store, clock, tmp_path)
    await second.alerts.start([])
    clock.advance(timedelta(minutes=19))
    assert await second.events() == []
    clock.advance(timedelta(minutes=1))
    assert await second.events() == ["task.overdue"]
    assert "has not succeeded since it was first watched" in second.sent[0]["message"]

    # another restart: that silence was alerted already
    third = Life(store, clock, tmp_path)
    await third.alerts.start([])
    clock.advance(timedelta(hours=3))
    assert await third.events() == []

    # a success ends the silence (and is told as a recovery); the next one is alerted
    success = RunRecord(
        id="00000000-0000-7000-8000-000000000002",
        task_name="nightly",
        status="ended",
        end_reason="success",
        triggered_by="schedule",
        created_at=clock.now(),
        start_at=clock.now(),
        end_at=clock.now(),
        node="n1",
        task_hash="h",
    )
    await store.claim([success])
    third.alerts.on_change("run.ended", success)
    assert await third.events() == ["task.recovered"]
    clock.advance(timedelta(minutes=59))
    assert await third.events() == ["task.recovered"]
    clock.advance(timedelta(minutes=1))
    assert await third.events() == ["task.recovered", "task.overdue"]
    assert "has not succeeded since" in third.sent[1]["message"]

    # a restart reads the last success from the history, and the alert from task_state
    fourth = Life(store, clock, tmp_path)
    await fourth.alerts.start([])
    clock.advance(timedelta(days=1))
    assert await fourth.events() == []


def test_the_switch_is_counted_from_the_last_success_or_the_start_of_watching() -> None:
    watch = OverdueWatch()
    hour = timedelta(hours=1)
    watched = watch.watch("t", T0)
    assert watch.next_due({"t": hour}) == T0 + hour
    watch.succeeded("t", T0 + 2 * hour)
    assert watch.next_due({"t": hour}) == T0 + 3 * hour
    assert watch.due({"t": hour}, T0 + 3 * hour) == ["t"]
    assert watched.alerted and watch.next_due({"t": hour}) is None
    assert watch.due({"t": hour}, T0 + 9 * hour) == []
    assert watch.succeeded("t", T0 + 10 * hour) is True  # ends an alerted silence
    assert watch.succeeded("t", T0 + 11 * hour) is False
    assert watch.due({"unwatched": hour}, T0 + 99 * hour) == []
