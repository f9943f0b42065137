"""Scheduling through a real daemon: overlap, catch-up, reload, pause (issue: scheduler)."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from conftest import stays_false, wait_for  # type: ignore[import-not-found]

pytestmark = pytest.mark.both_databases


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args], capture_output=True, text=True, timeout=60
    )


def test_catch_up_latest_after_downtime_runs_exactly_one(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.tick]
    command = "echo $CRONWARDEN_SCHEDULED_FOR"
    schedule = "* * * * * *"
    catch_up = "latest"
    """)
    wait_for(lambda: len(daemon.runs(task_name="tick")) >= 2)
    assert daemon.stop() == 0
    stopped_at = time.time()
    time.sleep(3.5)  # the downtime itself, not a wait for a result
    daemon.start()

    def catch_ups() -> list[dict]:
        return [r for r in daemon.runs(task_name="tick") if r["triggered_by"] == "catch_up"]

    wait_for(catch_ups, what="the catch-up run")
    assert stays_false(lambda: len(catch_ups()) > 1, window=1.0)
    runs = daemon.runs(task_name="tick", sort_direction="asc")
    catch_up = [r for r in runs if r["triggered_by"] == "catch_up"]
    assert len(catch_up) == 1, runs
    fire = z(catch_up[0]["scheduled_for"]).timestamp()
    assert stopped_at + 2 < fire <= time.time()  # the newest missed fire, not an old one
    fires = [r["scheduled_for"] for r in runs]
    assert len(fires) == len(set(fires))  # no fire ran twice
    missed = [r for r in runs if r["end_reason"] == "missed"]
    assert len(missed) >= 2, runs  # the fires of the gap before the one caught up
    assert all(z(r["scheduled_for"]) < z(catch_up[0]["scheduled_for"]) for r in missed)
    assert all("catch_up = latest" in r["error"] and r["start_at"] is None for r in missed)
    ran = [r for r in runs if r["status"] == "ended" and r["end_reason"] != "missed"]
    assert all(ran_or_caught_by_the_stop(r) for r in ran), [
        (r["scheduled_for"], r["triggered_by"], r["end_reason"], r["error"]) for r in ran
    ]


def ran_or_caught_by_the_stop(run: dict) -> bool:  # type: ignore[type-arg]
    """A success, or a fire the first life's stop caught before it started (on a busy
    machine a per-second fire can be waiting for its spawn when SIGTERM comes)."""
    if run["end_reason"] == "success":
        return True
    unstarted = run["start_at"] is None and run["end_reason"] == "stopped"
    return unstarted and run["error"] == "the daemon shut down before it started"


def test_catch_up_skip_runs_none(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.tick]
    command = "true"
    schedule = "* * * * * *"
    catch_up = "skip"
    """)
    wait_for(lambda: daemon.runs(task_name="tick"))
    assert daemon.stop() == 0
    time.sleep(2.5)  # the downtime itself
    daemon.start()
    missed = wait_for(
        lambda: [r for r in daemon.runs(task_name="tick") if r["end_reason"] == "missed"],
        what="the missed fires of the downtime",
    )
    assert all("catch_up = skip" in r["error"] for r in missed)
    assert stays_false(
        lambda: [r for r in daemon.runs(task_name="tick") if r["triggered_by"] == "catch_up"]
    )
    assert "fire.missed" in daemon.log()


def test_scheduled_runs_never_start_or_show_before_their_instant(make_daemon) -> None:
    # Each fire's row is committed ahead of its instant; nobody may see or start it early.
    daemon = make_daemon("""
    [tasks.tick]
    command = "true"
    schedule = "* * * * * *"
    jitter = "300ms"
    """)
    seen: list[tuple[datetime, dict]] = []

    def three_ended() -> bool:
        runs = daemon.runs(task_name="tick")
        seen.extend((datetime.now(UTC), run) for run in runs)
        return len([r for r in runs if r["status"] == "ended"]) >= 3

    wait_for(three_ended, what="three ended fires")
    for listed_by, run in seen:  # every listing on the way, pending rows included
        assert z(run["scheduled_for"]) <= z(run["created_at"]) <= listed_by, run
        assert run["start_at"] is None or z(run["start_at"]) >= z(run["created_at"]), run


def test_scheduled_runs_know_their_fire_time(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.tick]
    command = "echo $CRONWARDEN_SCHEDULED_FOR"
    schedule = "* * * * * *"
    """)
    run = wait_for(lambda: [r for r in daemon.runs(task_name="tick") if r["status"] == "ended"])[0]
    lines = daemon.get(f"/api/runs/{run['id']}/log").body["lines"]
    assert [ln["text"] for ln in lines] == [run["scheduled_for"]]


def test_overlap_skip_records_a_skipped_fire_and_refuses_api_triggers(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.slow]
    command = "sleep 30"
    schedule = "* * * * * *"
    overlap = "skip"
    """)
    skipped = wait_for(
        lambda: [r for r in daemon.runs(task_name="slow") if r["end_reason"] == "skipped"],
        timeout=10,
    )[0]
    assert skipped["status"] == "ended" and skipped["pid"] is None
    assert skipped["scheduled_for"] is not None and "overlap = skip" in skipped["error"]
    before = len(daemon.runs(task_name="slow"))
    refused = daemon.post("/api/tasks/slow/runs")
    assert refused.status == 409 and refused.content_type == "application/problem+json"
    assert all(r["triggered_by"] != "api" for r in daemon.runs(task_name="slow"))
    assert len(daemon.runs(task_name="slow")) >= before
    running = [r for r in daemon.runs(task_name="slow") if r["status"] == "running"]
    assert len(running) == 1  # max_concurrent = 1


def test_overlap_queue_holds_at_most_queue_max(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.q]
    command = "sleep 0.5"
    overlap = "queue"
    queue_max = 2
    """)
    ids = [daemon.trigger("q")["id"] for _ in range(3)]
    full = daemon.post("/api/tasks/q/runs")
    assert full.status == 409 and "queue" in full.body["detail"]
    runs = [daemon.wait_run(i, timeout=15) for i in ids]
    assert all(r["end_reason"] == "success" for r in runs if r["status"] == "ended")
    for earlier, later in itertools.pairwise(runs):  # one at a time, in order
        assert z(later["start_at"]) >= z(earlier["end_at"])


def test_overlap_terminate_stops_the_old_run(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.t]
    command = "sleep 30"
    overlap = "terminate"
    kill_grace = "1s"
    """)
    old = daemon.trigger("t")
    daemon.wait_run(old["id"], lambda r: r["status"] == "running")
    new = daemon.trigger("t")
    assert daemon.wait_run(old["id"], timeout=10)["end_reason"] == "stopped"
    assert daemon.wait_run(new["id"], lambda r: r["status"] == "running")["pid"]


def test_max_concurrent_allows_that_many_before_skipping(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.two]
    command = "sleep 5"
    overlap = "skip"
    max_concurrent = 2
    """)
    daemon.trigger("two")
    daemon.trigger("two")
    assert daemon.post("/api/tasks/two/runs").status == 409


def test_reload_applies_changes_and_keeps_running_runs(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.keep]
    command = "sleep 2; echo old definition"

    [tasks.gone]
    command = "sleep 1.5"
    """)
    keep_run = daemon.trigger("keep")
    gone_run = daemon.trigger("gone")
    daemon.wait_run(keep_run["id"], lambda r: r["status"] == "running")
    text = daemon.config.read_text()
    head = text[: text.index("[tasks.keep]")]
    daemon.config.write_text(
        head
        + """
[tasks.keep]
command = "echo new definition"

[tasks.added]
command = "true"
schedule = "@hourly"
"""
    )
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "added" in {t["name"] for t in daemon.get("/api/tasks").body["tasks"]})
    assert daemon.get("/api/tasks/gone").status == 404
    old = daemon.wait_run(keep_run["id"])
    gone = daemon.wait_run(gone_run["id"])
    assert old["end_reason"] == "success" and gone["end_reason"] == "success"
    texts = [ln["text"] for ln in daemon.get(f"/api/runs/{keep_run['id']}/log").body["lines"]]
    assert texts == ["old definition"]
    new = daemon.wait_run(daemon.trigger("keep")["id"])
    assert new["task_hash"] != old["task_hash"]
    assert daemon.get("/api/tasks/added").body["next_run_at"] is not None


def test_a_broken_reload_keeps_the_old_config(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.a]
    command = "true"
    """)
    good = daemon.config.read_text()
    daemon.config.write_text(good + '\n[tasks.b]\ncommand = "true"\nschedule = "61 * * * *"\n')
    resp = daemon.post("/api/reload")
    assert resp.status == 422 and resp.content_type == "application/problem+json"
    assert "tasks.b.schedule" in json.dumps(resp.body["errors"])
    result = cli("reload", "--url", daemon.url)
    assert result.returncode == 1 and "tasks.b.schedule" in result.stderr
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.log().count("config.reload_failed") >= 3)
    assert daemon.get("/health").status == 200
    assert [t["name"] for t in daemon.get("/api/tasks").body["tasks"]] == ["a"]
    daemon.config.write_text(good + '\n[tasks.b]\ncommand = "true"\n')
    assert cli("reload", "--url", daemon.url).returncode == 0
    assert daemon.get("/api/tasks/b").status == 200


def test_pause_persists_across_restarts(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.tick]
    command = "true"
    schedule = "* * * * * *"
    """)
    result = cli("pause", "tick", "--url", daemon.url)
    assert result.returncode == 0, result.stderr
    assert daemon.get("/api/tasks/tick").body["paused"] is True
    assert daemon.stop() == 0
    daemon.start()
    count = len(daemon.runs(task_name="tick"))
    # neither fires nor catch-ups while paused, through two of its seconds
    assert stays_false(lambda: len(daemon.runs(task_name="tick")) != count, window=2.2)
    task = daemon.get("/api/tasks/tick").body
    assert task["paused"] is True and task["next_run_at"] is None
    assert cli("resume", "tick", "--url", daemon.url).returncode == 0
    wait_for(lambda: len(daemon.runs(task_name="tick")) > count, timeout=5)
    assert all(r["triggered_by"] == "schedule" for r in daemon.runs(task_name="tick"))


def test_explain_and_the_api_list_the_same_fires(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.london]
    command = "true"
    schedule = "30 1 * * *"
    timezone = "Europe/London"
    """)
    result = cli("explain", "-c", str(daemon.config), "london", "-n", "5", "--json")
    assert result.returncode == 0, result.stderr
    fires = json.loads(result.stdout)
    assert fires["task"] == "london" and len(fires["fires"]) == 5
    api = daemon.get("/api/tasks/london?next=5").body["next"]
    assert api == fires["fires"]
    assert all(f["at"][11:19] in ("01:30:00", "02:00:00") for f in api)
    march = cli(
        "explain", "-c", str(daemon.config), "london", "-n", "2", "--after", "2026-03-28T12:00:00Z"
    )
    assert "2026-03-29 02:00:00 BST" in march.stdout and "clocks went forward 1h" in march.stdout
    bad = daemon.get("/api/tasks/london?next=0")
    assert bad.status == 422 and bad.content_type == "application/problem+json"


def test_client_verbs(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.echo]
    command = "echo \\"hi $CRONWARDEN_PARAM_name\\"; exit 7"
    params = ["name"]
    """)
    result = cli("run", "echo", "--param", "name=bob", "--wait", "--url", daemon.url)
    assert result.returncode == 7, result.stderr
    run_id = result.stdout.split()[0]
    logs = cli("logs", run_id, "--url", daemon.url)
    assert logs.stdout == "hi bob\n"
    listing = json.loads(cli("runs", "--task", "echo", "--json", "--url", daemon.url).stdout)
    assert listing["runs"][0]["id"] == run_id
    tasks = cli("tasks", "--url", daemon.url)
    assert tasks.returncode == 0 and "echo" in tasks.stdout
    refused = cli("run", "echo", "--param", "nope=1", "--url", daemon.url)
    assert refused.returncode == 1 and "nope" in refused.stderr
    assert "Traceback" not in refused.stderr
    stopped = cli("stop", run_id, "--url", daemon.url)
    assert stopped.returncode == 1 and "already ended" in stopped.stderr
    down = cli("tasks", "--url", "http://127.0.0.1:1")
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_reboot_fires_once_per_machine_boot_not_per_daemon_start(make_daemon, tmp_path) -> None:
    """As cron: a daemon restart in the same boot (kernel boot_id) does not fire @reboot
    again; a new boot does."""
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("first-boot\n")
    daemon = make_daemon(
        """
    [tasks.boot]
    command = "true"
    schedule = "@reboot"
    """,
        start=False,
    )
    daemon.env["CRONWARDEN_BOOT_ID_FILE"] = str(boot_id)
    daemon.start()
    wait_for(lambda: len(daemon.runs(task_name="boot")) == 1)
    assert daemon.get("/api/tasks/boot").body["next_run_at"] is None
    assert daemon.stop() == 0

    daemon.start()  # same boot: the daemon says so and fires nothing
    wait_for(lambda: "reboot.already_fired" in daemon.log(), what="the ledger consulted")
    assert len(daemon.runs(task_name="boot")) == 1
    assert daemon.stop() == 0

    boot_id.write_text("second-boot\n")
    daemon.start()
    runs = wait_for(
        lambda: len(daemon.runs(task_name="boot")) == 2 and daemon.runs(task_name="boot")
    )
    assert all(r["triggered_by"] == "schedule" and r["scheduled_for"] for r in runs)


def test_a_suspended_daemon_catches_up_when_it_wakes(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.tick]
    command = "true"
    schedule = "* * * * * *"
    catch_up = "latest"
    """)
    wait_for(lambda: len(daemon.runs(task_name="tick")) >= 2)
    daemon.proc.send_signal(signal.SIGSTOP)  # as a laptop lid closing, or a stuck loop
    time.sleep(3.5)
    daemon.proc.send_signal(signal.SIGCONT)
    catch_up = wait_for(
        lambda: [r for r in daemon.runs(task_name="tick") if r["triggered_by"] == "catch_up"],
        timeout=5,
    )
    assert stays_false(
        lambda: (
            len([r for r in daemon.runs(task_name="tick") if r["triggered_by"] == "catch_up"]) > 1
        ),
        window=1.5,
    )
    fires = [r["scheduled_for"] for r in daemon.runs(task_name="tick")]
    assert len(fires) == len(set(fires))
    assert "fire.missed" in daemon.log() and "scheduler.woke_late" in daemon.log()
    assert catch_up[0]["scheduled_for"] is not None


def test_concurrent_triggers_never_exceed_max_concurrent(make_daemon) -> None:
    from concurrent.futures import ThreadPoolExecutor

    daemon = make_daemon("""
    [tasks.one]
    command = "sleep 3"
    overlap = "skip"
    """)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: daemon.post("/api/tasks/one/runs").status, range(8)))
    assert sorted(statuses) == [201] + [409] * 7
    assert len(daemon.runs(task_name="one")) == 1
