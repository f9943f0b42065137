"""Retries, and nothing lost when the daemon is killed (issue: runners)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import uuid6
from conftest import stays_false, wait_for  # type: ignore[import-not-found]

from cronwarden import reservations
from cronwarden.model import Trigger
from cronwarden.run_record import RunRecord
from cronwarden.store import Store, open_engine

pytestmark = pytest.mark.both_databases


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def chain(daemon, task: str, attempts: int, timeout: float = 30) -> list[dict]:
    """Wait until the task has ``attempts`` ended runs; return them oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        runs = daemon.runs(task_name=task, sort_direction="asc")
        if len(runs) >= attempts and all(r["status"] == "ended" for r in runs):
            return runs
        assert time.monotonic() < deadline, runs
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [("constant", [0.6, 0.6]), ("linear", [0.6, 1.2]), ("exponential", [0.6, 1.2, 2.0])],
)
def test_retries_follow_the_backoff(make_daemon, backoff: str, delays: list[float]) -> None:
    daemon = make_daemon(
        f"""
    [tasks.flaky]
    command = "echo attempt $CRONWARDEN_ATTEMPT; exit 1"
    retries = {len(delays)}
    retry_delay = "600ms"
    retry_backoff = "{backoff}"
    retry_max_delay = "2s"
    """,
    )
    first = daemon.trigger("flaky")
    runs = chain(daemon, "flaky", len(delays) + 1)
    assert len(runs) == len(delays) + 1  # no attempt beyond retries
    assert [r["attempt"] for r in runs] == list(range(1, len(delays) + 2))
    assert runs[0]["id"] == first["id"] and runs[0]["triggered_by"] == "api"
    for previous, retry, delay in zip(runs[:-1], runs[1:], delays, strict=True):
        assert retry["retry_of"] == previous["id"] and retry["triggered_by"] == "retry"
        assert retry["end_reason"] == "failed" and retry["exit_code"] == 1
        gap = (z(retry["start_at"]) - z(previous["end_at"])).total_seconds()
        assert delay - 0.05 <= gap <= delay + 0.5, (backoff, gap, delay)


def test_retry_on_limits_which_ends_retry(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.times_out]
    command = "sleep 5"
    timeout = "200ms"
    retries = 2
    retry_delay = "100ms"
    retry_on = ["failed"]
    """,
    )
    run = daemon.wait_run(daemon.trigger("times_out")["id"])
    assert run["end_reason"] == "timeout"
    assert stays_false(lambda: len(daemon.runs(task_name="times_out")) > 1, window=1.0)


def test_a_pending_retry_survives_a_restart(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.flaky]
    command = "test $CRONWARDEN_ATTEMPT -ge 2"
    retries = 3
    retry_delay = "3s"
    """,
    )
    first = daemon.wait_run(daemon.trigger("flaky")["id"])
    assert first["end_reason"] == "failed"
    pending = wait_for(
        lambda: [r for r in daemon.runs(task_name="flaky") if r["status"] == "pending"],
        what="the retry's pending row",
    )
    assert len(pending) == 1 and pending[0]["attempt"] == 2
    assert daemon.stop() == 0
    daemon.start()
    runs = chain(daemon, "flaky", 2, timeout=15)
    assert len(runs) == 2
    retry = runs[1]
    assert retry["id"] == pending[0]["id"] and retry["retry_of"] == first["id"]
    assert retry["end_reason"] == "success"
    assert (z(retry["start_at"]) - z(first["end_at"])).total_seconds() >= 2.95


def test_kill_9_loses_nothing_and_duplicates_nothing(make_daemon, gate) -> None:
    daemon = make_daemon(
        f"""
    [tasks.quiet]
    command = "{gate.wait_command}; exit 4"

    [tasks.chatty]
    command = "sleep 1; while true; do echo tick; sleep 0.05; done"

    [tasks.queued]
    command = "sleep 30"
    overlap = "queue"

    [tasks.later]
    command = "test $CRONWARDEN_ATTEMPT -ge 2"
    retries = 1
    retry_delay = "2s"
    """,
    )
    quiet = daemon.trigger("quiet")
    chatty = daemon.trigger("chatty")
    queued = [daemon.trigger("queued") for _ in range(2)]
    later = daemon.wait_run(daemon.trigger("later")["id"])
    for run in (quiet, chatty, queued[0]):
        daemon.wait_run(run["id"], lambda r: r["status"] == "running")
    deadline = time.monotonic() + 10
    while not daemon.get(f"/api/runs/{chatty['id']}/log").body["lines"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = {r["id"]: r for r in daemon.runs()}
    assert before[queued[1]["id"]]["status"] == "pending"
    daemon.kill9()

    daemon.start()  # recovery re-adopted the survivors before /health answered
    gate.open()  # the quiet run exits now, while the new daemon watches it
    # Whether exit statuses of processes that are not the daemon's children can be read
    # (the process-events connector needs root) is what the daemon says, not a guess.
    exit_events = "adoption.no_exit_events" not in daemon.log()
    ended = {
        run_id: daemon.wait_run(run_id, timeout=20) for run_id in (quiet["id"], queued[1]["id"])
    }
    if exit_events:  # the real outcome of a re-adopted process
        assert (ended[quiet["id"]]["end_reason"], ended[quiet["id"]]["exit_code"]) == ("failed", 4)
    else:
        assert ended[quiet["id"]]["end_reason"] == "crashed"

    # chatty printed on while no daemon read (its keeper held its pipes): re-adopted, its
    # log goes on after a note, and it can still be stopped.
    def chatty_log() -> list[str]:
        page = daemon.get(f"/api/runs/{chatty['id']}/log?limit=10000").body
        return [line["text"] for line in page["lines"]]

    restarted = "[cronwarden] the daemon restarted; the output went on being captured"
    wait_for(
        lambda: restarted in chatty_log() and chatty_log()[-1] == "tick",
        what="chatty's output captured after the restart",
    )
    assert daemon.post(f"/api/runs/{chatty['id']}/stop").status == 202
    assert daemon.wait_run(chatty["id"])["end_reason"] == "stopped"
    quiet_log = daemon.get(f"/api/runs/{quiet['id']}/log").body["lines"]
    assert [line["text"] for line in quiet_log] == [restarted]  # all it printed: nothing
    # queued[0] sleeps on: re-adopted, still running, and it can still be stopped
    assert daemon.get(f"/api/runs/{queued[0]['id']}").body["status"] == "running"
    assert daemon.post(f"/api/runs/{queued[0]['id']}/stop").status == 202
    assert daemon.wait_run(queued[0]["id"])["end_reason"] == "stopped"
    assert ended[queued[1]["id"]]["end_reason"] == "crashed"
    assert "before the run started" in ended[queued[1]["id"]]["error"]
    runs = chain(daemon, "later", 2, timeout=15)
    assert [r["attempt"] for r in runs] == [1, 2] and runs[1]["retry_of"] == later["id"]

    after = daemon.runs()
    assert len(after) == len({r["id"] for r in after})
    assert set(before) <= {r["id"] for r in after}
    assert all(r["status"] == "ended" for r in after)
    texts = chatty_log()  # ticks, the note, ticks: every line of one process, in order
    restart = texts.index(restarted)
    assert set(texts[:restart]) == set(texts[restart + 1 :]) == {"tick"}
    assert all(r["end_reason"] != "crashed" or r["error"] for r in after)


def test_stopping_a_waiting_retry_ends_it_at_once(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.flaky]
    command = "exit 1"
    retries = 1
    retry_delay = "1h"
    """,
    )
    daemon.wait_run(daemon.trigger("flaky")["id"])
    (pending,) = wait_for(
        lambda: [r for r in daemon.runs(task_name="flaky") if r["status"] == "pending"],
        what="the retry's pending row",
    )
    assert daemon.post(f"/api/runs/{pending['id']}/stop").status == 202
    stopped = daemon.wait_run(pending["id"], timeout=5)
    assert stopped["end_reason"] == "stopped" and stopped["start_at"] is None


async def reserve(database: str, node: str, task: str, instants: list[datetime]) -> list[str]:
    """Rows as the scheduler commits them ahead of each instant (what a daemon killed
    between reservation and instant leaves behind)."""
    store = await Store.open(open_engine(database))
    runs = [
        reservations.reserve(
            RunRecord(
                id=str(uuid6.uuid7()),
                task_name=task,
                triggered_by=Trigger.SCHEDULE,
                scheduled_for=instant,
                created_at=instant,
                node=node,
                task_hash="0" * 16,
            ),
            instant,
        )
        for instant in instants
    ]
    try:
        await store.claim(runs)
    finally:
        await store.close()
    return [run.id for run in runs]


def test_a_fire_reserved_before_the_daemon_died_never_runs_early(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.yearly]
    command = "true"
    schedule = "0 0 1 1 *"
    """,
    )
    [node] = [n["name"] for n in daemon.get("/api/nodes").body["nodes"]]
    daemon.kill9()
    now = datetime.now(UTC).replace(microsecond=0)
    ahead, came = asyncio.run(
        reserve(
            daemon.database, node, "yearly", [now + timedelta(hours=1), now - timedelta(seconds=5)]
        )
    )
    daemon.start()
    crashed = daemon.wait_run(came)  # it may have started as the daemon died: crashed
    assert crashed["end_reason"] == "crashed" and "before the run started" in crashed["error"]
    assert daemon.get(f"/api/runs/{ahead}").status == 404  # deleted: its fire is timed anew
    assert "fire.reservations_discarded" in daemon.log()
