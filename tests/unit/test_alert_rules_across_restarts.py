"""alert_after_failures, min_duration, max_duration and start_grace with an injected
clock and a real SQLite store, across restarts (a new ``Alerts`` on the same database
is what a restarted daemon makes): a restart neither resets a count nor repeats an
alert already sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dispatch_doubles import T0, FakeClock  # type: ignore[import-not-found]

from cronwarden.alerts.service import Alerts
from cronwarden.config import NotifyConfig, parse_config
from cronwarden.live_config import LiveConfig
from cronwarden.run_record import RunRecord
from cronwarden.store import Store, open_engine

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

CONFIG = """
[notify.ops]
type = "webhook"
url = "http://127.0.0.1:9/ops"
events = ["run.failed", "run.timeout", "task.recovered", "run.too_short", "run.too_long"]
tasks = ["backup*"]
[notify.team]
type = "webhook"
url = "http://127.0.0.1:9/team"
events = ["run.too_long", "fire.late"]

[tasks.backup]
command = "true"
alert_after_failures = 3
retries = 1
retry_on = ["failed"]
min_duration = "1m"
[tasks.long]
command = "sleep 99999"
max_duration = "1h"
notify = ["team"]
[tasks.hourly]
command = "true"
schedule = "@hourly"
start_grace = "5m"
notify = ["team"]
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """SQLite only (overrides the shared fixture): the rules do not depend on the engine."""
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"))
    yield store
    await store.close()


class Life:
    """One daemon life's alerts: what they sent, to which target."""

    def __init__(self, store: Store, clock: FakeClock, tmp_path: Path) -> None:
        self.sent: list[tuple[str, Mapping[str, Any]]] = []
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
        self.sent.append((str(target.url).rsplit("/", 1)[1], event))

    async def told(self) -> list[tuple[str, str, str]]:
        """(target, event, run id) of every alert delivered so far."""
        await self.alerts.ends.settled()  # ends that read the task's history first
        for _ in range(5):  # let the couriers and background saves run
            await asyncio.sleep(0)
        await asyncio.gather(*self.alerts._saving)
        return [(target, e["event"], (e["run"] or {}).get("id", "")) for target, e in self.sent]

    def message(self, event: str) -> str:
        return str(next(e["message"] for _, e in reversed(self.sent) if e["event"] == event))


def record(i: int, task: str, clock: FakeClock, **values: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": f"00000000-0000-7000-8000-{i:012d}",
        "task_name": task,
        "status": "ended",
        "triggered_by": "api",
        "created_at": clock.now(),
        "start_at": clock.now(),
        "end_at": clock.now(),
        "duration_ms": 0,
        "node": "n1",
        "task_hash": "h",
    }
    return RunRecord(**{**fields, **values})


async def end(life: Life, store: Store, run: RunRecord, clock: FakeClock) -> None:
    """A run's end as the daemon tells it: recorded first, then told."""
    await store.claim([run])
    life.alerts.on_change("run.ended", run)
    clock.advance(MINUTE)  # the next run is created later


def rid(i: int) -> str:
    return f"00000000-0000-7000-8000-{i:012d}"


async def test_the_failure_alert_waits_for_the_nth_failing_run_in_a_row_across_restarts(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock(at=T0)
    first = Life(store, clock, tmp_path)
    await first.alerts.start([])
    await end(first, store, record(1, "backup", clock, end_reason="crashed"), clock)
    # a failed attempt, then its retry failing: one failing run (the retry's chain)
    await end(first, store, record(2, "backup", clock, end_reason="failed", exit_code=1), clock)
    retry = record(3, "backup", clock, end_reason="failed", exit_code=1, attempt=2, retry_of=rid(2))
    await end(first, store, retry, clock)
    assert await first.told() == []  # two failing runs in a row: not yet

    second = Life(store, clock, tmp_path)  # a restart: the count goes on from the history
    await second.alerts.start([])
    await end(second, store, record(4, "backup", clock, end_reason="timeout"), clock)
    # ops takes it although the task's notify does not name it: its tasks route it
    assert await second.told() == [("ops", "run.timeout", rid(4))]
    assert second.message("run.timeout") == (
        "backup timed out; the 3rd failing run in a row (alert_after_failures = 3)"
    )
    await end(second, store, record(5, "backup", clock, end_reason="failed", exit_code=2), clock)
    assert len(await second.told()) == 1  # its retry is still to come
    retry = record(6, "backup", clock, end_reason="failed", exit_code=2, attempt=2, retry_of=rid(5))
    await end(second, store, retry, clock)
    assert (await second.told())[-1] == ("ops", "run.failed", rid(6))
    assert second.message("run.failed") == (
        "backup failed with exit code 2 (attempt 2); 4 or more failing runs in a row "
        "(alert_after_failures = 3)"
    )

    third = Life(store, clock, tmp_path)  # a success in a new life still ends the streak
    await third.alerts.start([])
    success = record(7, "backup", clock, end_reason="success", exit_code=0, duration_ms=90_000)
    await end(third, store, success, clock)
    assert await third.told() == [("ops", "task.recovered", rid(7))]
    assert third.message("task.recovered") == (
        "backup succeeded again (after 3 or more failing runs in a row)"
    )
    await end(third, store, record(8, "backup", clock, end_reason="crashed"), clock)
    assert len(await third.told()) == 1  # a new streak starts from one


async def test_a_streak_that_never_alerted_recovers_silently(store: Store, tmp_path: Path) -> None:
    clock = FakeClock(at=T0)
    life = Life(store, clock, tmp_path)
    await life.alerts.start([])
    await end(life, store, record(1, "backup", clock, end_reason="crashed"), clock)
    await end(life, store, record(2, "backup", clock, end_reason="failed", exit_code=1), clock)
    await end(
        life, store, record(3, "backup", clock, end_reason="success", duration_ms=90_000), clock
    )
    assert await life.told() == []


async def test_too_short_is_judged_on_the_runs_own_duration_also_after_a_restart(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock(at=T0)
    first = Life(store, clock, tmp_path)
    await first.alerts.start([])
    quick = record(1, "backup", clock, end_reason="success", exit_code=0, duration_ms=2_000)
    await end(first, store, quick, clock)
    assert await first.told() == [("ops", "run.too_short", rid(1))]
    assert first.message("run.too_short") == "backup succeeded after 2.0s, under min_duration = 1m"

    # a run adopted by the next life ends there: its duration runs from its real start
    second = Life(store, clock, tmp_path)
    await second.alerts.start([])
    adopted = record(2, "backup", clock, end_reason="success", duration_ms=2 * 3_600_000)
    await end(second, store, adopted, clock)
    failed = record(3, "backup", clock, end_reason="failed", exit_code=1, duration_ms=10)
    await end(second, store, failed, clock)  # a quick failure is no success too short
    assert await second.told() == []


def running(i: int, task: str, started: Any) -> RunRecord:
    return RunRecord(
        id=rid(i),
        task_name=task,
        status="running",
        triggered_by="api",
        created_at=started,
        start_at=started,
        node="n1",
        task_hash="h",
    )


async def test_too_long_is_told_once_per_run_across_restarts(store: Store, tmp_path: Path) -> None:
    clock = FakeClock(at=T0)
    first = Life(store, clock, tmp_path)
    await first.alerts.start([])
    a = running(1, "long", clock.now())
    first.alerts.on_change("run.started", a)
    clock.advance(10 * MINUTE)
    b = running(2, "long", clock.now())
    first.alerts.on_change("run.started", b)
    clock.advance(49 * MINUTE)
    assert await first.told() == []
    clock.advance(MINUTE)
    assert await first.told() == [("team", "run.too_long", a.id)]  # still running
    assert first.message("run.too_long") == (
        "long has been running for 1h (max_duration = 1h); it goes on running"
    )

    # a restart before b's hour is up: both are adopted; a was told, b was not
    second = Life(store, clock, tmp_path)
    await second.alerts.start([a, b])
    clock.advance(9 * MINUTE)
    assert await second.told() == []
    clock.advance(MINUTE)
    assert await second.told() == [("team", "run.too_long", b.id)]
    clock.advance(5 * HOUR)
    assert len(await second.told()) == 1  # once per run

    third = Life(store, clock, tmp_path)  # and neither is told again
    await third.alerts.start([a, b])
    clock.advance(HOUR)
    assert await third.told() == []

    # a run that ends in time is never told
    c = running(3, "long", clock.now())
    third.alerts.on_change("run.started", c)
    clock.advance(59 * MINUTE)
    c.change({"status": "ended", "end_reason": "success", "end_at": clock.now()})
    third.alerts.on_change("run.ended", c)
    clock.advance(2 * HOUR)
    assert await third.told() == []


def scheduled(i: int, fire: Any, **values: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": rid(i),
        "task_name": "hourly",
        "triggered_by": "schedule",
        "created_at": fire,
        "scheduled_for": fire,
        "node": "n1",
        "task_hash": "h",
    }
    return RunRecord(**{**fields, **values})


async def test_fire_late_is_told_once_when_a_scheduled_run_waits_past_its_grace(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock(at=T0)
    first = Life(store, clock, tmp_path)
    await first.alerts.start([])
    queued = scheduled(1, T0)  # waiting behind an earlier run, say
    first.alerts.on_change("run.created", queued)
    on_request = scheduled(2, T0, triggered_by="api", scheduled_for=None)
    first.alerts.on_change("run.created", on_request)
    clock.advance(4 * MINUTE)
    assert await first.told() == []
    clock.advance(MINUTE)
    assert await first.told() == [("team", "fire.late", queued.id)]
    assert first.message("fire.late").startswith("hourly has not started 5m after its scheduled")
    clock.advance(2 * MINUTE)
    queued.change({"status": "running", "start_at": clock.now()})
    first.alerts.on_change("run.started", queued)  # it starts at last: not told again
    assert len(await first.told()) == 1

    # a run that starts within its grace is not late
    fire = T0 + HOUR
    clock.at = fire
    on_time = scheduled(3, fire)
    first.alerts.on_change("run.created", on_time)
    clock.advance(MINUTE)
    on_time.change({"status": "running", "start_at": clock.now()})
    first.alerts.on_change("run.started", on_time)
    clock.advance(HOUR)
    assert len(await first.told()) == 1

    # a loop held up past the grace sees the start before its timer: told at the start
    fire = T0 + 3 * HOUR
    clock.at = fire
    held = scheduled(4, fire)
    first.alerts.on_change("run.created", held)
    clock.at = fire + 7 * MINUTE  # no timer ran meanwhile
    held.change({"status": "running", "start_at": clock.now()})
    first.alerts.on_change("run.started", held)
    assert (await first.told())[-1] == ("team", "fire.late", held.id)
    assert first.message("fire.late").startswith("hourly started 7m after its scheduled time")
    clock.advance(HOUR)
    assert len(await first.told()) == 2

    # a restart adopts the late runs still running: they are not told again
    second = Life(store, clock, tmp_path)
    await second.alerts.start([queued, held])
    clock.advance(2 * HOUR)
    assert await second.told() == []
