"""Every configured task's alerting series exist from start-up at 0, after a restart
too, so ``increase(cronwarden_runs_total{end_reason="failed"}[5m]) > 0`` sees the first
failure; and a real scrape passes ``promtool check metrics``."""

from __future__ import annotations

import subprocess

from conftest import IN_CI, ensure_debian_tool, wait_for  # type: ignore[import-not-found]
from test_metrics import scrape, value  # type: ignore[import-not-found]

ALERTING = ("success", "failed", "timeout", "crashed", "log_overflow")
TASKS = """
[tasks.never]
command = "true"
schedule = "0 0 1 1 *"
[tasks.bad]
command = "exit 3"
[tasks.off]
command = "true"
enabled = false
"""


def zero_series(samples: dict, task: str) -> dict[str, float | None]:
    shown = {r: value(samples, "cronwarden_runs_total", task=task, end_reason=r) for r in ALERTING}
    for gauge in ("cronwarden_runs_running", "cronwarden_runs_waiting"):
        shown[gauge] = value(samples, gauge, task=task)
    return shown


ZEROS = dict.fromkeys([*ALERTING, "cronwarden_runs_running", "cronwarden_runs_waiting"], 0.0)


def test_tasks_that_never_ran_show_their_alerting_series_at_zero(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    samples = scrape(daemon)
    for task in ("never", "bad", "off"):
        assert zero_series(samples, task) == ZEROS, task
    # What runs did appears only with a run, as before: no made-up durations.
    assert value(samples, "cronwarden_run_duration_seconds_count", task="never") is None
    assert value(samples, "cronwarden_runs_total", task="never", end_reason="skipped") is None

    daemon.wait_run(daemon.trigger("bad")["id"])
    failed = wait_for(
        lambda: (
            (s := scrape(daemon))
            and value(s, "cronwarden_runs_total", task="bad", end_reason="failed") == 1
            and s
        ),
        what="the failure counted",
    )
    assert zero_series(failed, "bad") == {**ZEROS, "failed": 1.0}

    # After a restart the counters start again, from series that are all there at 0.
    daemon.stop()
    daemon.start()
    restarted = scrape(daemon)
    for task in ("never", "bad", "off"):
        assert zero_series(restarted, task) == ZEROS, task


def test_a_scrape_passes_promtool_check_metrics(make_daemon, gate) -> None:
    promtool = ensure_debian_tool("/usr/bin/promtool", "prometheus", install=IN_CI)
    daemon = make_daemon(
        TASKS
        + f"""
[tasks.held]
command = "{gate.wait_command}"
locks = ["db"]
[tasks.ok]
command = "echo hi"
"""
    )
    daemon.wait_run(daemon.trigger("ok")["id"])
    daemon.wait_run(daemon.trigger("bad")["id"])
    held = daemon.trigger("held")
    daemon.wait_run(held["id"], until=lambda r: r["status"] == "running")
    response = daemon.get("/metrics")
    assert response.status == 200
    text = response.body
    assert 'cronwarden_runs_running{task="held"} 1.0' in text
    assert 'cronwarden_runs_total{end_reason="failed",task="never"} 0.0' in text
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked
    gate.open()
