"""/metrics scraped from a real daemon, parsed with prometheus-client's own parser, and
checked against the runs the test made."""

from __future__ import annotations

import hashlib
import urllib.request
from datetime import datetime
from typing import Any

import pytest
from conftest import Daemon, wait_for  # type: ignore[import-not-found]
from prometheus_client.parser import text_string_to_metric_families


def approx_ms(x: float) -> object:
    return pytest.approx(x, abs=0.001)


def scrape(
    daemon: Daemon, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = daemon.request("GET", "/metrics", headers=headers)
    assert response.status == 200, response
    assert response.content_type == "text/plain"
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


TASKS = """
[tasks.ok]
command = "printf 'hello\\n'"
[tasks.bad]
command = "exit 3"
[tasks.held]
command = "{gate}"
[tasks.tick]
command = "true"
schedule = "* * * * * *"
catch_up = "skip"
"""


def test_metrics_count_what_the_runs_did(make_daemon, gate) -> None:
    daemon = make_daemon(TASKS.replace("{gate}", gate.wait_command))
    for _ in range(3):
        daemon.wait_run(daemon.trigger("ok")["id"])
    for _ in range(2):
        daemon.wait_run(daemon.trigger("bad")["id"])
    held = daemon.trigger("held")
    daemon.wait_run(held["id"], until=lambda r: r["status"] == "running")
    wait_for(lambda: len(daemon.runs(task_name="tick", status="ended")) >= 2, what="two ticks")

    samples = scrape(daemon)
    assert value(samples, "cronwarden_runs_total", task="ok", end_reason="success") == 3
    assert value(samples, "cronwarden_runs_total", task="bad", end_reason="failed") == 2
    assert value(samples, "cronwarden_run_duration_seconds_count", task="ok") == 3
    assert value(samples, "cronwarden_log_bytes_total", task="ok") == 3 * len("hello\n")
    assert value(samples, "cronwarden_runs_running", task="held") == 1
    assert value(samples, "cronwarden_tasks") == 4
    assert value(samples, "cronwarden_tasks_paused") == 0
    assert (value(samples, "cronwarden_asyncio_tasks") or 0) >= 1  # the scrape's own, at least
    newest_ok = daemon.runs(task_name="ok")[0]
    end = datetime.fromisoformat(newest_ok["end_at"].replace("Z", "+00:00")).timestamp()
    assert value(samples, "cronwarden_last_success_timestamp_seconds", task="ok") == approx_ms(end)
    assert value(samples, "cronwarden_last_success_timestamp_seconds", task="bad") is None
    lateness = value(samples, "cronwarden_fire_lateness_seconds_count")
    assert lateness is not None and lateness >= 2
    assert not [k for k in samples if k[0].endswith("_created")]  # no series per series
    assert value(samples, "cronwarden_fire_lateness_seconds_bucket", le="+Inf") == lateness
    # The loop's lag is sampled once a second from start-up on: the runs above may all
    # have ended before the first sample on a fast machine, so wait for one.
    wait_for(
        lambda: (value(scrape(daemon), "cronwarden_loop_lag_seconds_count") or 0) >= 1,
        what="a loop lag sample",
    )
    build = [k for k in samples if k[0] == "cronwarden_build_info"]
    assert build and dict(build[0][1])["version"]

    gate.open()
    daemon.wait_run(held["id"])
    assert value(scrape(daemon), "cronwarden_runs_running", task="held") == 0

    # a restart resets counters, not the last success, which comes from the history
    daemon.stop()
    daemon.start()
    restarted = wait_for(
        lambda: (
            (s := scrape(daemon))
            and value(s, "cronwarden_last_success_timestamp_seconds", task="ok") is not None
            and s
        ),
        what="the last success loaded from the history",
    )
    assert value(restarted, "cronwarden_last_success_timestamp_seconds", task="ok") == approx_ms(
        end
    )
    assert value(restarted, "cronwarden_runs_total", task="ok", end_reason="success") == 0


def test_metrics_need_the_read_scope_unless_configured_open(make_daemon) -> None:
    token = "metrics-reader-token"
    digest = hashlib.sha256(token.encode()).hexdigest()
    tokens = f'[[daemon.tokens]]\nname = "prom"\nsha256 = "{digest}"\nscopes = ["read"]\n'
    daemon = make_daemon('[tasks.a]\ncommand = "true"\n', daemon_extra=tokens)
    assert daemon.get("/metrics").status == 401
    assert scrape(daemon, {"Authorization": f"Bearer {token}"})

    open_daemon = make_daemon(
        '[tasks.a]\ncommand = "true"\n', daemon_extra="metrics_open = true\n" + tokens
    )
    assert scrape(open_daemon)
    assert open_daemon.get("/api/info").status == 401  # only /metrics is opened


def test_paused_tasks_are_counted(make_daemon) -> None:
    daemon = make_daemon('[tasks.a]\ncommand = "true"\nschedule = "@hourly"\n')
    assert daemon.post("/api/tasks/a/pause").status == 200
    assert value(scrape(daemon), "cronwarden_tasks_paused") == 1
    with urllib.request.urlopen(daemon.url + "/metrics", timeout=10) as response:
        assert b"# TYPE cronwarden_runs_total counter" in response.read()


def test_metrics_count_what_runs_cost(make_daemon) -> None:
    """CPU seconds by mode and output bytes add up per task; peak memory is the newest
    run's.  A task that has not run has no such series."""
    daemon = make_daemon(
        """
    [tasks.work]
    command = "head -c $CRONWARDEN_PARAM_size /dev/zero"
    params = ["size"]
    [tasks.idle]
    command = "true"
    """
    )
    runs = [
        daemon.wait_run(daemon.trigger("work", {"size": size})["id"]) for size in ("1000", "200000")
    ]

    def scraped() -> dict[Any, float] | None:
        samples = scrape(daemon)
        return (
            samples
            if value(samples, "cronwarden_runs_total", task="work", end_reason="success") == 2
            else None
        )

    samples = wait_for(scraped, what="both runs in the metrics")
    for mode in ("user", "system"):
        spent = sum(r[f"cpu_{mode}_s"] for r in runs)
        shown = value(samples, "cronwarden_run_cpu_seconds_total", task="work", mode=mode)
        assert shown == pytest.approx(spent, abs=1e-6), mode
    assert value(samples, "cronwarden_run_max_rss_bytes", task="work") == runs[1]["max_rss_bytes"]
    assert value(samples, "cronwarden_run_output_bytes_total", task="work") == 201_000
    for name in ("cronwarden_run_max_rss_bytes", "cronwarden_run_output_bytes_total"):
        assert value(samples, name, task="idle") is None
    assert value(samples, "cronwarden_run_cpu_seconds_total", task="idle", mode="user") is None
