"""The maths of a task's stats (cronwarden/stats.py) over a tally as the store gives it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronwarden.stats import percentile, summarize
from cronwarden.store.runs import CostTally, TaskTally

T = datetime(2026, 1, 31, 12, tzinfo=UTC)


def tally(
    counts: dict[tuple[str, str | None], int],
    last_end: dict[str, datetime] | None = None,
    longest: dict[str, int] | None = None,
    durations: list[int] | None = None,
) -> TaskTally:
    return TaskTally(
        counts=counts, last_end=last_end or {}, longest=longest or {}, durations=durations or []
    )


def test_no_runs_has_no_rate_no_durations_and_no_instants() -> None:
    summary = summarize(tally({}))
    assert (summary.runs, summary.active, summary.by_end_reason) == (0, 0, {})
    assert summary.success_rate is None
    assert (summary.durations.p50, summary.durations.p95, summary.durations.max) == (
        None,
        None,
        None,
    )
    assert summary.durations.sample == 0
    assert summary.last_success_at is None and summary.last_failure_at is None


def test_counts_active_runs_and_ended_ones_by_end_reason() -> None:
    summary = summarize(
        tally(
            {
                ("pending", None): 2,
                ("running", None): 1,
                ("ended", "success"): 5,
                ("ended", "failed"): 3,
            }
        )
    )
    assert summary.runs == 11
    assert summary.active == 3
    assert summary.by_end_reason == {"success": 5, "failed": 3}


def test_the_success_rate_leaves_out_runs_that_never_ran() -> None:
    summary = summarize(
        tally(
            {
                ("ended", "success"): 3,
                ("ended", "stopped"): 1,  # ran, did not succeed: counts against
                ("ended", "skipped"): 10,  # never ran: neither
                ("ended", "missed"): 10,
            }
        )
    )
    assert summary.success_rate == 0.75


def test_the_success_rate_is_rounded_to_four_places() -> None:
    assert summarize(tally({("ended", "success"): 1, ("ended", "failed"): 2})).success_rate == (
        0.3333
    )


def test_only_skipped_and_missed_runs_give_no_rate() -> None:
    assert summarize(tally({("ended", "skipped"): 4, ("ended", "missed"): 1})).success_rate is None


def test_last_failure_is_the_newest_end_among_every_failing_reason() -> None:
    ends = {
        "success": T,
        "failed": T - timedelta(hours=3),
        "log_overflow": T - timedelta(hours=1),
        "timeout": T - timedelta(hours=2),
        "stopped": T + timedelta(hours=1),  # an operator's stop is no failure
        "missed": T + timedelta(hours=2),
    }
    summary = summarize(tally({("ended", r): 1 for r in ends}, last_end=ends))
    assert summary.last_success_at == T
    assert summary.last_failure_at == T - timedelta(hours=1)


def test_durations_take_percentiles_of_the_sample_and_the_longest_run_that_ran() -> None:
    summary = summarize(
        tally(
            {("ended", "success"): 4, ("ended", "skipped"): 1},
            longest={"success": 900, "failed": 1200, "skipped": 99_999},
            durations=[400, 100, 300, 200],
        )
    )
    assert (summary.durations.p50, summary.durations.p95) == (200, 400)
    assert summary.durations.max == 1200
    assert summary.durations.sample == 4


def test_no_known_cost_gives_zero_sums_and_no_averages_or_peaks() -> None:
    summary = summarize(tally({("ended", "skipped"): 3}))
    assert (summary.cpu.user, summary.cpu.system, summary.cpu.total) == (0, 0, 0)
    assert summary.cpu.avg is None and summary.cpu.runs == 0
    assert (summary.memory.p95, summary.memory.max, summary.memory.sample) == (None, None, 0)
    assert summary.output_bytes == 0


def test_cpu_is_summed_and_averaged_over_the_runs_whose_cost_is_known() -> None:
    cost = CostTally(
        runs=3, cpu_user_s=0.1 + 0.2, cpu_system_s=0.05, max_rss_bytes=9_000, output_bytes=12
    )
    summary = summarize(TaskTally(counts={("ended", "success"): 5}, **EMPTY, cost=cost))
    # 0.1 + 0.2 is 0.30000000000000004 in floats: rounded to the microsecond runs record
    assert (summary.cpu.user, summary.cpu.system, summary.cpu.total) == (0.3, 0.05, 0.35)
    assert summary.cpu.avg == round(0.35 / 3, 6) and summary.cpu.runs == 3
    assert summary.output_bytes == 12


def test_peak_memory_is_the_p95_of_the_sample_and_the_largest_of_the_window() -> None:
    peaks = [5_000 + i for i in range(100)]  # newest first, as the store gives them
    summary = summarize(
        TaskTally(
            counts={("ended", "success"): 100},
            **EMPTY,
            cost=CostTally(runs=100, max_rss_bytes=1_000_000),  # an older run, out of sample
            peaks=peaks,
        )
    )
    assert summary.memory.p95 == 5_094 and summary.memory.sample == 100
    assert summary.memory.max == 1_000_000


EMPTY: dict[str, object] = {"last_end": {}, "longest": {}, "durations": []}


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7], 0.5, 7),
        ([7], 0.95, 7),
        ([1, 2], 0.5, 1),
        ([1, 2, 3, 4], 0.5, 2),
        ([1, 2, 3, 4], 0.95, 4),
        (list(range(1, 101)), 0.95, 95),
        (list(range(1, 101)), 0.5, 50),
    ],
)
def test_nearest_rank_percentiles(values: list[int], q: float, expected: int | None) -> None:
    assert percentile(values, q) == expected


@given(st.lists(st.integers(min_value=0), min_size=1), st.floats(min_value=0.01, max_value=1))
def test_a_percentile_is_a_value_with_at_least_that_share_at_or_below_it(
    values: list[int], q: float
) -> None:
    ordered = sorted(values)
    value = percentile(ordered, q)
    assert value in ordered
    at_or_below = sum(1 for v in ordered if v <= value)
    assert at_or_below >= q * len(ordered)
    below = sum(1 for v in ordered if v < value)  # and no smaller value would do
    assert below < q * len(ordered)
