"""The per-task series are tallied in plain dicts, not prometheus-client's labelled
children: a scrape must read exactly what those children would have given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cronwarden.metrics import DURATION_BUCKETS, LiveState, Metrics
from cronwarden.run_record import RunRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PER_TASK = {
    "cronwarden_runs",
    "cronwarden_run_duration_seconds",
    "cronwarden_missed_fires",
    "cronwarden_log_bytes",
    "cronwarden_last_success_timestamp_seconds",
    "cronwarden_run_cpu_seconds",
    "cronwarden_run_max_rss_bytes",
    "cronwarden_run_output_bytes",
}


def ended(
    i: int, task: str, reason: str, duration_ms: int | None, log_size: int = 0, **cost: Any
) -> RunRecord:
    return RunRecord(
        id=f"00000000-0000-7000-8000-{i:012d}",
        task_name=task,
        status="ended",
        end_reason=reason,
        triggered_by="api",
        created_at=T0,
        start_at=T0,
        end_at=T0 + timedelta(seconds=i),
        duration_ms=duration_ms,
        node="n",
        task_hash="h",
        log_size=log_size,
        **cost,
    )


def cost(user: float, system: float, peak: int, output: int | None) -> dict[str, Any]:
    return {
        "cpu_user_s": user,
        "cpu_system_s": system,
        "max_rss_bytes": peak,
        "output_bytes": output,
    }


RUNS = [
    ended(1, "a", "success", 50, 10, **cost(0.5, 0.25, 3_000_000, 10)),
    ended(2, "a", "failed", 7_000, **cost(1.0, 0.5, 1_000_000, 0)),
    ended(3, "a", "success", 100),  # on a bucket's bound: counted in it (le); cost unknown
    ended(4, "b", "success", 3_600_001, 5, **cost(2.0, 0.125, 40_000_000, 5)),
    ended(5, "b", "missed", None),
    ended(6, "c", "skipped", 0),
    ended(7, "d", "timeout", 99_999_999, **cost(0.0, 0.0, 8192, None)),  # past the last bound
]


def reference(runs: list[RunRecord], known: dict[str, datetime]) -> bytes:
    """What prometheus-client's labelled metrics say of the same runs."""
    r = CollectorRegistry()
    count = Counter("cronwarden_runs", "", ["task", "end_reason"], registry=r)
    took = Histogram(
        "cronwarden_run_duration_seconds", "", ["task"], buckets=DURATION_BUCKETS, registry=r
    )
    missed = Counter("cronwarden_missed_fires", "", ["task"], registry=r)
    log_bytes = Counter("cronwarden_log_bytes", "", ["task"], registry=r)
    success = Gauge("cronwarden_last_success_timestamp_seconds", "", ["task"], registry=r)
    cpu = Counter("cronwarden_run_cpu_seconds", "", ["task", "mode"], registry=r)
    peak = Gauge("cronwarden_run_max_rss_bytes", "", ["task"], registry=r)
    output = Counter("cronwarden_run_output_bytes", "", ["task"], registry=r)
    for task, end in known.items():
        success.labels(task).set(end.timestamp())
    for run in runs:
        count.labels(run.task_name, run.end_reason).inc()
        if run.end_reason == "missed":
            missed.labels(run.task_name).inc()
        if run.end_reason not in ("missed", "skipped") and run.duration_ms is not None:
            took.labels(run.task_name).observe(run.duration_ms / 1000)
            # a run that ran has its cost series, at 0 for what is not known (no peak yet)
            cpu.labels(run.task_name, "user").inc(run.cpu_user_s or 0)
            cpu.labels(run.task_name, "system").inc(run.cpu_system_s or 0)
            output.labels(run.task_name).inc(run.output_bytes or 0)
            if run.max_rss_bytes is not None:
                peak.labels(run.task_name).set(run.max_rss_bytes)
        if run.log_size:
            log_bytes.labels(run.task_name).inc(run.log_size)
        if run.end_reason == "success" and run.end_at is not None:
            success.labels(run.task_name).set(run.end_at.timestamp())
    return generate_latest(r)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        if family.name in PER_TASK:
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def scrape(metrics: Metrics) -> bytes:
    return b"".join([piece async for piece in metrics.exposition()])


@pytest.mark.parametrize("tasks_a_slice", [250, 2, 1])
async def test_a_scrape_reads_what_labelled_metrics_would_have(
    tasks_a_slice: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cronwarden.metrics.SCRAPE_SLICE", tasks_a_slice)
    metrics = Metrics(LiveState(lambda: [], lambda: 0, lambda: 0))
    known = {"z": T0, "a": T0 - timedelta(days=1)}
    metrics.known_successes(known)
    for run in RUNS:
        metrics.observe("run.ended", run)
    text = await scrape(metrics)
    ours = samples(text)
    assert ours == samples(reference(RUNS, known))
    assert ours[("cronwarden_run_duration_seconds_bucket", (("le", "0.1"), ("task", "a")))] == 2
    assert ours[("cronwarden_run_duration_seconds_bucket", (("le", "+Inf"), ("task", "d")))] == 1
    assert ours[("cronwarden_run_cpu_seconds_total", (("mode", "user"), ("task", "a")))] == 1.5
    assert ours[("cronwarden_run_max_rss_bytes", (("task", "a"),))] == 1_000_000  # the newest
    assert ("cronwarden_run_max_rss_bytes", (("task", "c"),)) not in ours  # never ran
    # Written a slice of tasks at a time, each family still has one heading, and its
    # samples together (the text format allows nothing else).
    families = [f.name for f in text_string_to_metric_families(text.decode())]
    assert len(families) == len(set(families))
    assert text.count(b"# TYPE cronwarden_run_duration_seconds histogram") == 1


async def test_configured_tasks_have_their_alerting_series_at_zero() -> None:
    """Every configured task shows its runs by each end reason alerts watch, and its
    runs running and waiting, at 0 until something happens; a task no longer configured
    keeps what it tallied and gets no zeros; reasons alerts do not watch appear with a
    run, as before."""
    from cronwarden.metrics import ZERO_END_REASONS

    configured = {"a", "never"}
    phases = [("a", "running"), ("a", "waiting"), ("a", "waiting")]
    metrics = Metrics(
        LiveState(lambda: phases, lambda: 2, lambda: 0, task_names=lambda: configured)
    )
    metrics.observe("run.ended", ended(1, "a", "failed", 50))
    metrics.observe("run.ended", ended(2, "a", "skipped", 0))
    metrics.observe("run.ended", ended(3, "gone", "timeout", 50))
    text = await scrape(metrics)
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }

    def runs(task: str, reason: str) -> float | None:
        return found.get(("cronwarden_runs_total", (("end_reason", reason), ("task", task))))

    assert set(ZERO_END_REASONS) == {"success", "failed", "timeout", "crashed", "log_overflow"}
    assert {r: runs("never", r) for r in ZERO_END_REASONS} == dict.fromkeys(ZERO_END_REASONS, 0)
    assert runs("a", "failed") == 1 and runs("a", "success") == 0 and runs("a", "skipped") == 1
    assert runs("never", "skipped") is None and runs("never", "stopped") is None
    assert runs("gone", "timeout") == 1 and runs("gone", "failed") is None
    for name, a, never in (("cronwarden_runs_running", 1, 0), ("cronwarden_runs_waiting", 2, 0)):
        assert found[(name, (("task", "a"),))] == a
        assert found[(name, (("task", "never"),))] == never
        assert (name, (("task", "gone"),)) not in found
    # Series that say what ran still appear with a run that ran.
    assert ("cronwarden_run_duration_seconds_count", (("task", "never"),)) not in found


async def test_zero_series_are_written_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of configured tasks: each family keeps one heading and every task its
    series, whichever slice it falls in."""
    monkeypatch.setattr("cronwarden.metrics.SCRAPE_SLICE", 7)
    names = {f"t{i:03d}" for i in range(50)}
    metrics = Metrics(LiveState(list, lambda: 50, lambda: 0, task_names=lambda: names))
    text = (await scrape(metrics)).decode()
    families = list(text_string_to_metric_families(text))
    assert len({f.name for f in families}) == len(families)
    by_name = {f.name: f for f in families}
    assert {s.labels["task"] for s in by_name["cronwarden_runs_running"].samples} == names
    assert len(by_name["cronwarden_runs"].samples) == 5 * len(names)
    assert text.count("# TYPE cronwarden_runs_waiting gauge") == 1
