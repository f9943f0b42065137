"""Prometheus metrics, in a registry of the daemon's own (not the process-global one,
so an embedded or test daemon never collides with another).

Counters and histograms are fed by run changes as they happen; what the daemon holds
now (runs running or waiting per task, tasks, paused tasks) is read at scrape time from
the dispatcher and the scheduler, so no second copy of that state can drift.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cronwarden import __version__
from cronwarden.model import EndReason, Run, Trigger

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf"))
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, float("inf"))
LAG_PROBE_SECONDS = 1.0
_NOT_RUN = (EndReason.SKIPPED, EndReason.MISSED)


class Metrics:
    def __init__(self, live_state: LiveState) -> None:
        # A "_created" series beside every counter and histogram doubles what a scrape of
        # thousands of tasks carries, for a start time /api/info already gives.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "cronwarden_runs",
            "Runs ended, by task and end_reason.",
            ["task", "end_reason"],
            registry=r,
        )
        self.duration = Histogram(
            "cronwarden_run_duration_seconds",
            "How long runs that ran took, from process start to end.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "cronwarden_fire_lateness_seconds",
            "How long after its scheduled_for a scheduled run's process started.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.missed = Counter(
            "cronwarden_missed_fires", "Fires recorded as missed (catch_up).", ["task"], registry=r
        )
        self.log_bytes = Counter(
            "cronwarden_log_bytes", "Output bytes captured by runs.", ["task"], registry=r
        )
        self.last_success = Gauge(
            "cronwarden_last_success_timestamp_seconds",
            "When the task's newest successful run ended (Unix time).",
            ["task"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "cronwarden_loop_lag_seconds",
            "How late the event loop ran a timer (a blocked loop delays every fire).",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.alerts = Counter(
            "cronwarden_alerts",
            "Alert deliveries by target, event and outcome (delivered, failed, dropped).",
            ["target", "event", "outcome"],
            registry=r,
        )
        self.retention_deleted = Counter(
            "cronwarden_retention_deleted_runs", "Runs deleted by retention.", registry=r
        )
        Info("cronwarden_build", "The running version.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        r.register(_LiveCollector(live_state))

    def observe(self, kind: str, run: Run) -> None:
        """A run changed (the dispatcher's on_change)."""
        if kind == "run.started" and run.triggered_by == Trigger.SCHEDULE:
            self._observe_lateness(run)
        if kind != "run.ended" or run.end_reason is None:
            return
        task = run.task_name
        self.runs.labels(task, run.end_reason).inc()
        if run.end_reason == EndReason.MISSED:
            self.missed.labels(task).inc()
        if run.end_reason not in _NOT_RUN and run.duration_ms is not None:
            self.duration.labels(task).observe(run.duration_ms / 1000)
        if run.log_size:
            self.log_bytes.labels(task).inc(run.log_size)
        if run.end_reason == EndReason.SUCCESS and run.end_at is not None:
            self.last_success.labels(task).set(run.end_at.timestamp())

    def _observe_lateness(self, run: Run) -> None:
        if run.scheduled_for is not None and run.start_at is not None:
            late = (run.start_at - run.scheduled_for).total_seconds()
            self.lateness.observe(max(late, 0.0))

    def known_successes(self, ends: Mapping[str, datetime]) -> None:
        """Last successes from the history, at start-up (a counter restarts at zero, a
        timestamp must not)."""
        for task, end in ends.items():
            self.last_success.labels(task).set(end.timestamp())

    async def probe_loop_lag(self) -> None:
        """Once a second, how late a timer ran, for the daemon's life."""
        while True:
            began = time.monotonic()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            self.loop_lag.observe(max(time.monotonic() - began - LAG_PROBE_SECONDS, 0.0))


class LiveState:
    """What the collector reads at scrape time; the daemon fills in the callables."""

    def __init__(
        self,
        run_phases: Callable[[], Iterable[tuple[str, str]]],
        tasks: Callable[[], int],
        paused: Callable[[], int],
    ) -> None:
        self.run_phases = run_phases
        self.tasks = tasks
        self.paused = paused


class _LiveCollector(Collector):
    def __init__(self, state: LiveState) -> None:
        self.state = state

    def collect(self) -> Iterable[GaugeMetricFamily]:
        running: dict[str, int] = {}
        waiting: dict[str, int] = {}
        for task, phase in self.state.run_phases():
            counts = running if phase == "running" else waiting
            counts[task] = counts.get(task, 0) + 1
        yield _per_task("cronwarden_runs_running", "Runs of the task running now.", running)
        yield _per_task(
            "cronwarden_runs_waiting",
            "Runs of the task waiting: queued by overlap, for a retry's time, or for a "
            "place under max_concurrent_runs.",
            waiting,
        )
        yield GaugeMetricFamily("cronwarden_tasks", "Configured tasks.", value=self.state.tasks())
        yield GaugeMetricFamily(
            "cronwarden_tasks_paused", "Tasks paused.", value=self.state.paused()
        )


def _per_task(name: str, documentation: str, counts: Mapping[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["task"])
    for task, count in sorted(counts.items()):
        family.add_metric([task], count)
    return family
