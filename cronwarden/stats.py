"""What a task's runs came to (``GET /api/tasks/{task}/stats``): pure maths over the
store's tally, so each rule is tested without a database or a request.

* ``runs`` counts every run in the window, ``active`` those not ended yet (pending or
  running), ``by_end_reason`` the ended ones per end reason.
* ``success_rate`` is successes among the runs that ran to an outcome
  (outcomes.RAN_TO_AN_OUTCOME): a skipped or missed fire never ran, so it neither helps
  nor hurts; a stop does count, as a run that did not succeed.  None with no such run.
* Durations: nearest-rank percentiles of the store's sample (the newest runs that ran
  to an outcome), and the longest of all such runs in the window.
* ``last_failure_at`` is the newest end among the failures (outcomes.py).
* What the runs cost is summed over the runs whose cost is known (one that never
  started, or was re-adopted after a restart, is left out, not counted as free): CPU
  seconds in all and per such run; peak memory as the nearest-rank p95 over the same
  sample as the durations, and the largest of the window.  Sums are rounded to the
  microsecond the runs record (a float sum of many runs is not exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cronwarden.outcomes import FAILURE_END_REASONS, RAN_TO_AN_OUTCOME

if TYPE_CHECKING:
    from cronwarden.store.runs import CostTally, TaskTally

ENDED = "ended"  # model.Status.ENDED, without loading the tables for one word


@dataclass(frozen=True, slots=True)
class Durations:
    p50: int | None
    p95: int | None
    max: int | None
    sample: int  # runs the percentiles are taken over


@dataclass(frozen=True, slots=True)
class CpuSeconds:
    user: float
    system: float
    total: float  # user + system
    avg: float | None  # total per run whose cost is known; None without such a run
    runs: int  # runs whose cost is known


@dataclass(frozen=True, slots=True)
class PeakMemory:
    p95: int | None
    max: int | None
    sample: int  # runs the p95 is taken over


@dataclass(frozen=True, slots=True)
class TaskSummary:
    runs: int
    active: int
    by_end_reason: dict[str, int]
    success_rate: float | None
    durations: Durations
    last_success_at: datetime | None
    last_failure_at: datetime | None
    cpu: CpuSeconds
    memory: PeakMemory
    output_bytes: int  # written by the runs whose output is known


def summarize(tally: TaskTally) -> TaskSummary:
    ended: dict[str, int] = {}
    for (_, reason), n in tally.counts.items():
        if reason:
            ended[reason] = ended.get(reason, 0) + n
    ran = sum(n for reason, n in ended.items() if reason in RAN_TO_AN_OUTCOME)
    ordered = sorted(tally.durations)
    failures = [tally.last_end[r] for r in FAILURE_END_REASONS if r in tally.last_end]
    return TaskSummary(
        runs=sum(tally.counts.values()),
        active=sum(n for (status, _), n in tally.counts.items() if status != ENDED),
        by_end_reason=ended,
        success_rate=round(ended.get("success", 0) / ran, 4) if ran else None,
        durations=Durations(
            p50=percentile(ordered, 0.50),
            p95=percentile(ordered, 0.95),
            max=max(
                (m for reason, m in tally.longest.items() if reason in RAN_TO_AN_OUTCOME),
                default=None,
            ),
            sample=len(ordered),
        ),
        last_success_at=tally.last_end.get("success"),
        last_failure_at=max(failures, default=None),
        cpu=cpu_seconds(tally.cost),
        memory=PeakMemory(
            p95=percentile(sorted(tally.peaks), 0.95),
            max=tally.cost.max_rss_bytes,
            sample=len(tally.peaks),
        ),
        output_bytes=tally.cost.output_bytes,
    )


def cpu_seconds(cost: CostTally) -> CpuSeconds:
    total = cost.cpu_user_s + cost.cpu_system_s
    return CpuSeconds(
        user=round(cost.cpu_user_s, 6),
        system=round(cost.cpu_system_s, 6),
        total=round(total, 6),
        avg=round(total / cost.runs, 6) if cost.runs else None,
        runs=cost.runs,
    )


def percentile(ordered: list[int], q: float) -> int | None:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below
    it (``ordered`` ascending).  None for no values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
