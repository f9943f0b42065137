"""PostgreSQL stopped under a per-second task (DESIGN.md, Run semantics, "Faults"): every
fire of the window either ran once or is recorded ``missed`` once the store is back,
none twice, no run is left unfinished, and the fires that waited on the store start as
soon as it answers, oldest first.

The cluster is this module's own (the shared server on 5432 is never stopped)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]
from faults_support import (  # type: ignore[import-not-found]
    PgCluster,
    now_utc,
    per_second,
    pg_cluster_fixture,
    unaccounted,
    z,
)

pytestmark = [pytest.mark.postgres, pytest.mark.faults]

LATE_GRACE = timedelta(seconds=30)  # cronwarden.scheduler.catchup.LATE_GRACE
PER_SECOND = """
[tasks.tick]
command = "true"
schedule = "* * * * * *"
timezone = "UTC"
catch_up = "all"
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    yield from pg_cluster_fixture()


def ticks(daemon: Any) -> list[dict[str, Any]]:
    return daemon.runs(task_name="tick")


def settled(daemon: Any, fires: list[Any]) -> list[dict[str, Any]] | None:
    """The task's runs once every fire of ``fires`` has its row and every run ended."""
    runs = ticks(daemon)
    return None if unaccounted(runs, fires) else runs


def outage(daemon: Any, cluster: PgCluster, seconds: float) -> tuple[Any, Any, Any]:
    """Stop the cluster for ``seconds`` under the running daemon; (first fire seen,
    when it went down, when it answered again)."""
    first = wait_for(lambda: ticks(daemon)[2:] and ticks(daemon)[-1], what="three ticks")
    # Down from the moment the stop begins: stopping takes seconds on a loaded machine,
    # and the fires meanwhile already find no database.
    down = now_utc()
    with cluster.down():
        time.sleep(seconds)  # the fault lasts this long; nothing is asserted on it
    return z(first["scheduled_for"]), down, now_utc()


def test_a_short_outage_delays_fires_and_loses_none(make_daemon, cluster) -> None:
    daemon = make_daemon(PER_SECOND, daemon_extra=f'database = "{cluster.database()}"')
    first, down, up = outage(daemon, cluster, 5)
    fires = per_second(first, up + timedelta(seconds=3))
    runs = wait_for(lambda: settled(daemon, fires), timeout=30, what="every fire accounted")
    assert unaccounted(runs, fires) == {}
    assert [r for r in runs if r["end_reason"] == "missed"] == []
    # The fires that waited on the store start as soon as it answers, oldest first.
    waited = sorted(
        (r for r in runs if down + timedelta(seconds=1) < z(r["scheduled_for"]) < up),
        key=lambda r: z(r["scheduled_for"]),
    )
    assert len(waited) >= 3, runs
    started = [z(r["start_at"]) for r in waited]
    assert started == sorted(started), [(r["scheduled_for"], r["start_at"]) for r in waited]
    assert started[-1] - up < timedelta(seconds=3), (up, waited)


@pytest.mark.timeout(150)
def test_a_long_outage_records_the_fires_past_their_grace_as_missed(make_daemon, cluster) -> None:
    daemon = make_daemon(PER_SECOND, daemon_extra=f'database = "{cluster.database()}"')
    first, down, up = outage(daemon, cluster, 40)
    fires = per_second(first, up + timedelta(seconds=3))
    runs = wait_for(lambda: settled(daemon, fires), timeout=30, what="every fire accounted")
    assert unaccounted(runs, fires) == {}
    missed = sorted(z(r["scheduled_for"]) for r in runs if r["end_reason"] == "missed")
    # About the first ten seconds of the outage waited past their grace; the rest ran.
    assert len(missed) >= 5, runs
    outside = [
        (r["scheduled_for"], r["error"])
        for r in runs
        if r["end_reason"] == "missed"
        and not down - timedelta(seconds=1) <= z(r["scheduled_for"]) <= up - LATE_GRACE
    ]
    assert outside == [], (down, up)
    ran = [r for r in runs if r["end_reason"] != "missed" and z(r["scheduled_for"]) > missed[-1]]
    assert [r for r in ran if r["end_reason"] != "success"] == []
    started = [z(r["start_at"]) for r in sorted(ran, key=lambda r: z(r["scheduled_for"]))]
    assert started == sorted(started)
    for run in runs:
        if run["end_reason"] == "missed":
            assert run["status"] == "ended" and run["triggered_by"] == "schedule", run
            assert "database" in run["error"], run
    # Raised as fire.missed, and counted in the metric for missed fires.
    assert '"fire.missed"' in daemon.log()
    metrics = daemon.get("/metrics").body
    assert f'cronwarden_missed_fires_total{{task="tick"}} {len(missed)}.0' in metrics, metrics
