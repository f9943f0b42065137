"""Prometheus metrics, in a registry of the daemon's own (not the process-global one,
so an embedded or test daemon never collides with another).

Counters and histograms are fed by run changes as they happen; what the daemon holds
now (runs running or waiting per task, tasks, paused tasks) is read at scrape time from
the dispatcher and the scheduler, so no second copy of that state can drift.

The per-task series are tallied in plain dicts and turned into metric families at
scrape time (``_TaskTallies``): prometheus-client's labelled children hold a lock per
value, and a task's runs counter, duration histogram (twelve values) and gauges came to
~6 KB, 59 MB for 10,000 tasks that had each run once.

What runs cost (CPU seconds by mode, the last run's peak memory, output bytes) rides in
the same per-task array as the durations: four more doubles, 40 bytes a task (0.4 MB for
10,000 tasks), where a dict of its own per series would cost 45 bytes a task each, 180
for the four (a float object and a dict entry; 110 a series keyed by (task, mode)).
Peak memory is a gauge of the newest run's ``max_rss_bytes``, not a histogram: a
histogram is a dozen series per task on every scrape (10,000 tasks already make 10 MB
of text), and no one set of buckets suits both a 5 MB shell script and a 30 GB batch
job; ``max_over_time`` of the gauge alerts on growth, and a task's stats give its p95
and max over any window.

Every configured task has its alerting series from start-up, at 0 until something
happens: ``cronwarden_runs_total`` for each end reason an alert watches (success and
the failures of ``outcomes.py``), ``cronwarden_runs_running`` and
``cronwarden_runs_waiting``.  A series that appears only with a task's first failure,
and again only after the first failure after each restart, is one ``increase(...) > 0``
never sees move.  The zeros are not tallied: they are written at scrape time from the
configured task list (the config's table, held by reference), where a tally has no
value, so 10,000 tasks that never ran hold nothing more than before (a scrape of them
writes 70,000 more lines).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import platform
import time
from array import array
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Container,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime
from functools import partial

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from cronwarden import __version__
from cronwarden.model import EndReason, Trigger
from cronwarden.outcomes import FAILURE_END_REASONS
from cronwarden.run_record import AnyRun

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf"))
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, float("inf"))
LAG_PROBE_SECONDS = 1.0
SCRAPE_SLICE = 250  # tasks whose series are written in one piece of a scrape
_NOT_RUN = (EndReason.SKIPPED, EndReason.MISSED)
# The end reasons whose counts every configured task shows from start-up (at 0): what
# alerts watch, a success and each failure.
ZERO_END_REASONS: tuple[str, ...] = (EndReason.SUCCESS.value, *FAILURE_END_REASONS)
_OTHER_END_REASONS = tuple(r.value for r in EndReason if r.value not in ZERO_END_REASONS)
# A ran-task array: the count in each of DURATION_BUCKETS (not cumulative), then these.
_SUM = len(DURATION_BUCKETS)  # the durations' sum
_CPU_USER = _SUM + 1  # CPU seconds of the runs whose cost is known, by mode
_CPU_SYSTEM = _SUM + 2
_PEAK = _SUM + 3  # the newest known max_rss_bytes; NaN until one is known
_OUTPUT = _SUM + 4  # output bytes of the runs whose output is known
_RAN_SLOTS = _SUM + 5


class Metrics:
    def __init__(self, live_state: LiveState) -> None:
        # A "_created" series beside every counter and histogram doubles what a scrape of
        # thousands of tasks carries, for a start time /api/info already gives.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.lateness = Histogram(
            "cronwarden_fire_lateness_seconds",
            "How long after its scheduled_for a scheduled run's process started.",
            buckets=LATENESS_BUCKETS,
            registry=None,
        )
        self.loop_lag = Histogram(
            "cronwarden_loop_lag_seconds",
            "How late the event loop ran a timer (a blocked loop delays every fire).",
            buckets=LATENESS_BUCKETS,
            registry=None,
        )
        self.alerts = Counter(
            "cronwarden_alerts",
            "Alert deliveries by target, event and outcome (delivered, failed, dropped).",
            ["target", "event", "outcome"],
            registry=None,
        )
        self.lock_wait = Histogram(
            "cronwarden_lock_wait_seconds",
            "How long runs of this node waited for a named lock or a pool's place, by "
            "hold (lock:NAME, pool:NAME).",
            ["hold"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.retention_deleted = Counter(
            "cronwarden_retention_deleted_runs", "Runs deleted by retention.", registry=None
        )
        build = Info("cronwarden_build", "The running version.", registry=None)
        build.info({"version": __version__, "python": platform.python_version()})
        # prometheus-client's own metrics lock their values: a thread may read them.
        self._locked: list[Collector] = [
            self.lateness,
            self.loop_lag,
            self.alerts,
            self.retention_deleted,
            self.lock_wait,
            build,
        ]
        self.tasks = _TaskTallies()
        self._live = _LiveCollector(live_state)

    async def exposition(self) -> AsyncIterator[bytes]:
        """The text of a scrape, in pieces written on a thread.  10,000 tasks that have
        run make ~160,000 lines: most of a second of formatting that would hold up every
        fire on the loop, and ~40 MB while prometheus-client holds them all at once (RSS
        after a scrape: 144 MB in one piece, 123 in pieces of 1,000 tasks, 115 of 250).  What
        the loop owns is copied on the loop first; each per-task family (the live gauges
        of runs running and waiting too) is then written SCRAPE_SLICE tasks at a time
        (its heading once), over the tasks configured or tallied."""
        fixed = CollectorRegistry(auto_describe=False)
        for collector in self._locked:
            fixed.register(collector)
        fixed.register(_Collected(list(self._live.collect())))
        tallies = self.tasks.copy()
        live = self._live.per_task()
        yield await asyncio.to_thread(generate_latest, fixed)
        tasks = sorted(tallies.tasks() | live.tasks())
        slices = [
            tasks[start : start + SCRAPE_SLICE]
            for start in range(0, max(len(tasks), 1), SCRAPE_SLICE)
        ]
        for family in [*tallies.families(live.configured), *live.families]:
            for number, some in enumerate(slices):
                text = await asyncio.to_thread(generate_latest, _Collected([family(some)]))
                yield text if number == 0 else text.split(b"\n", 2)[2]  # no second heading

    def observe(self, kind: str, run: AnyRun) -> None:
        """A run changed (subscribed to the hub's run changes)."""
        if kind == "run.started" and run.triggered_by == Trigger.SCHEDULE:
            self._observe_lateness(run)
        if kind != "run.ended" or run.end_reason is None:
            return
        self.tasks.ended(run)

    def _observe_lateness(self, run: AnyRun) -> None:
        if run.scheduled_for is not None and run.start_at is not None:
            late = (run.start_at - run.scheduled_for).total_seconds()
            self.lateness.observe(max(late, 0.0))

    def known_successes(self, ends: Mapping[str, datetime]) -> None:
        """Last successes from the history, at start-up (a counter restarts at zero, a
        timestamp must not)."""
        for task, end in ends.items():
            self.tasks.last_success[task] = end.timestamp()

    async def probe_loop_lag(self) -> None:
        """Once a second, how late a timer ran, for the daemon's life."""
        while True:
            began = time.monotonic()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            self.loop_lag.observe(max(time.monotonic() - began - LAG_PROBE_SECONDS, 0.0))


class _TaskTallies:
    """The per-task series: ended runs by end_reason, durations and cost of the runs
    that ran, missed fires, log bytes, last success."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], int] = {}
        # Per task whose runs ran: the slots named by _SUM ... _OUTPUT above.
        self.ran: dict[str, array[float]] = {}
        self.missed: dict[str, int] = {}
        self.log_bytes: dict[str, int] = {}
        self.last_success: dict[str, float] = {}

    def copy(self) -> _TaskTallies:
        twin = _TaskTallies()
        twin.runs = dict(self.runs)
        twin.ran = {task: array("d", tally) for task, tally in self.ran.items()}
        twin.missed = dict(self.missed)
        twin.log_bytes = dict(self.log_bytes)
        twin.last_success = dict(self.last_success)
        return twin

    def ended(self, run: AnyRun) -> None:
        task, reason = run.task_name, run.end_reason
        assert reason is not None
        self.runs[(task, reason)] = self.runs.get((task, reason), 0) + 1
        if reason == EndReason.MISSED:
            self.missed[task] = self.missed.get(task, 0) + 1
        if reason not in _NOT_RUN and run.duration_ms is not None:
            self._ran(run, run.duration_ms / 1000)
        if run.log_size:
            self.log_bytes[task] = self.log_bytes.get(task, 0) + run.log_size
        if reason == EndReason.SUCCESS and run.end_at is not None:
            self.last_success[task] = run.end_at.timestamp()

    def _ran(self, run: AnyRun, seconds: float) -> None:
        tally = self.ran.get(run.task_name)
        if tally is None:
            tally = self.ran[run.task_name] = array("d", bytes(8 * _RAN_SLOTS))
            tally[_PEAK] = math.nan
        tally[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        tally[_SUM] += seconds
        if run.cpu_user_s is not None and run.cpu_system_s is not None:
            tally[_CPU_USER] += run.cpu_user_s
            tally[_CPU_SYSTEM] += run.cpu_system_s
        if run.max_rss_bytes is not None:
            tally[_PEAK] = run.max_rss_bytes
        if run.output_bytes is not None:
            tally[_OUTPUT] += run.output_bytes

    def tasks(self) -> set[str]:
        return {task for task, _ in self.runs} | self.last_success.keys()

    def families(self, configured: Container[str]) -> list[PerTaskFamily]:
        """Each per-task family, of the tasks given (a configured task's runs counts
        at 0 where it has none)."""
        return [
            partial(self._runs, configured),
            self._durations,
            self._cpu,
            partial(
                self._ran_slot,
                GaugeMetricFamily,
                "cronwarden_run_max_rss_bytes",
                "Peak resident memory of the task's newest run whose cost is known (its "
                "largest process), in bytes.",
                _PEAK,
            ),
            partial(
                self._ran_slot,
                CounterMetricFamily,
                "cronwarden_run_output_bytes",
                "Bytes runs wrote to stdout and stderr, kept in their logs or not.",
                _OUTPUT,
            ),
            partial(
                _per_task_family,
                CounterMetricFamily,
                "cronwarden_missed_fires",
                "Fires recorded as missed (catch-up, or the store down past their grace).",
                self.missed,
            ),
            partial(
                _per_task_family,
                CounterMetricFamily,
                "cronwarden_log_bytes",
                "Output bytes captured by runs.",
                self.log_bytes,
            ),
            partial(
                _per_task_family,
                GaugeMetricFamily,
                "cronwarden_last_success_timestamp_seconds",
                "When the task's newest successful run ended (Unix time).",
                self.last_success,
            ),
        ]

    def _runs(self, configured: Container[str], tasks: Sequence[str]) -> Metric:
        runs = CounterMetricFamily(
            "cronwarden_runs", "Runs ended, by task and end_reason.", labels=["task", "end_reason"]
        )
        counts = self.runs
        for task in tasks:
            zero = 0 if task in configured else None
            for reason in ZERO_END_REASONS:
                count = counts.get((task, reason), zero)
                if count is not None:
                    runs.add_metric([task, reason], count)
            for reason in _OTHER_END_REASONS:
                count = counts.get((task, reason))
                if count is not None:
                    runs.add_metric([task, reason], count)
        return runs

    def _durations(self, tasks: Sequence[str]) -> Metric:
        durations = HistogramMetricFamily(
            "cronwarden_run_duration_seconds",
            "How long runs that ran took, from process start to end.",
            labels=["task"],
        )
        for task in tasks:
            tally = self.ran.get(task)
            if tally is None:
                continue
            below = 0.0
            buckets = []
            for bound, in_bucket in zip(_DURATION_LE, tally[:_SUM], strict=True):
                below += in_bucket
                buckets.append((bound, below))
            durations.add_metric([task], buckets, sum_value=tally[_SUM])
        return durations

    def _cpu(self, tasks: Sequence[str]) -> Metric:
        cpu = CounterMetricFamily(
            "cronwarden_run_cpu_seconds",
            "CPU seconds of runs' processes and the descendants they waited for, by mode "
            "(user, system); runs whose cost is not known (re-adopted) add nothing.",
            labels=["task", "mode"],
        )
        for task in tasks:
            tally = self.ran.get(task)
            if tally is not None:
                cpu.add_metric([task, "user"], tally[_CPU_USER])
                cpu.add_metric([task, "system"], tally[_CPU_SYSTEM])
        return cpu

    def _ran_slot(
        self,
        kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
        name: str,
        documentation: str,
        slot: int,
        tasks: Sequence[str],
    ) -> Metric:
        """One slot of the ran-task arrays as a family, of the tasks where it is known."""
        family = kind(name, documentation, labels=["task"])
        for task in tasks:
            tally = self.ran.get(task)
            if tally is not None and not math.isnan(tally[slot]):
                family.add_metric([task], tally[slot])
        return family


_DURATION_LE = [floatToGoString(b) for b in DURATION_BUCKETS]  # type: ignore[no-untyped-call]
# A per-task family, of the tasks of one slice of a scrape (sorted by name).
PerTaskFamily = Callable[[Sequence[str]], Metric]


def _per_task_family(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    documentation: str,
    values: Mapping[str, float],
    tasks: Sequence[str],
    zero: Container[str] = (),
) -> Metric:
    """The tasks' values; a task in ``zero`` that has none shows 0."""
    family = kind(name, documentation, labels=["task"])
    for task in tasks:
        value = values.get(task)
        if value is None and task in zero:
            value = 0
        if value is not None:
            family.add_metric([task], value)
    return family


class _Collected(Collector):
    """Families collected already (on the loop), handed over as they are."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class LiveState:
    """What the collector reads at scrape time; the daemon fills in the callables."""

    def __init__(
        self,
        run_phases: Callable[[], Iterable[tuple[str, str]]],
        tasks: Callable[[], int],
        paused: Callable[[], int],
        held: Callable[[], Mapping[str, int]] = dict,
        task_names: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self.run_phases = run_phases
        self.tasks = tasks
        self.paused = paused
        self.held = held  # seats of locks and pools this node's runs hold, by hold
        # The configured tasks' names: a collection not changed once in use (a reload
        # swaps in another), so a scrape's thread may read the one it was given.
        self.task_names = task_names


class _LiveTallies:
    """Runs running and waiting per task, counted on the loop for one scrape, and the
    configured tasks, whose gauges show 0 where they have none."""

    def __init__(self, state: LiveState) -> None:
        self.running: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        for task, phase in state.run_phases():
            counts = self.running if phase == "running" else self.waiting
            counts[task] = counts.get(task, 0) + 1
        self.configured = state.task_names()

    def tasks(self) -> set[str]:
        return {*self.configured, *self.running, *self.waiting}

    @property
    def families(self) -> list[PerTaskFamily]:
        return [
            partial(
                _per_task_family,
                GaugeMetricFamily,
                "cronwarden_runs_running",
                "Runs of the task running now.",
                self.running,
                zero=self.configured,
            ),
            partial(
                _per_task_family,
                GaugeMetricFamily,
                "cronwarden_runs_waiting",
                "Runs of the task waiting: queued by overlap, for a retry's time, or for a "
                "place under max_concurrent_runs.",
                self.waiting,
                zero=self.configured,
            ),
        ]


class _LiveCollector(Collector):
    def __init__(self, state: LiveState) -> None:
        self.state = state

    def per_task(self) -> _LiveTallies:
        return _LiveTallies(self.state)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily("cronwarden_tasks", "Configured tasks.", value=self.state.tasks())
        yield GaugeMetricFamily(
            "cronwarden_tasks_paused", "Tasks paused.", value=self.state.paused()
        )
        in_use = GaugeMetricFamily(
            "cronwarden_pool_in_use",
            "Places of a pool (or a lock: pool lock:NAME) held by runs of this node.",
            labels=["pool"],
        )
        for name, count in sorted(self.state.held().items()):
            in_use.add_metric([name.removeprefix("pool:")], count)
        yield in_use
        yield GaugeMetricFamily(
            "cronwarden_asyncio_tasks",
            "Tasks alive on the daemon's event loop (flat over days: a number that only "
            "grows is a leak).",
            value=_loop_tasks(),
        )


def _loop_tasks() -> int:
    """The event loop's live tasks (collect runs on the loop; 0 off it)."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # no running loop: a thread
        return 0
