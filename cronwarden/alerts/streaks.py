"""alert_after_failures: the failure alert waits for the Nth failing run in a row.

A failing run counts when it ends its chain: the attempt that raises run.failed,
run.timeout or run.crashed when N is 1; an attempt that was retried belongs to its
retry's chain and is no failure of its own.  A success ends a streak.  Stopped runs
and runs still in flight say nothing of the task's health (outcomes.py) and are passed
over, as are fires that never ran (the store leaves those out).

The count is read from the recorded runs, newest first, never kept beside them: a
restart neither resets it nor counts a failure twice, and on a fleet every node's runs
count.  It is read only as far as it decides anything: up to N failing runs, or back
to the last success.  What came before an end is what had ended by then: a run that
ended later (a run running beside it, or one ended while this end was being decided)
is passed over, so the count is the same however late it is read.  Pure: the caller
reads the pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cronwarden.model import EndReason
from cronwarden.outcomes import FAILURE_END_REASONS
from cronwarden.store.runs import Attempt


@dataclass
class FailureStreak:
    """Failing runs in a row before the end of run ``of`` (at ``until``), counted up to
    ``cap`` from its task's runs fed newest first."""

    cap: int
    of: str = ""
    until: datetime | None = None
    retried: set[str] = field(default_factory=set)  # runs a newer attempt retried
    count: int = 0
    settled: bool = False  # a success came, or ``cap`` failing runs
    newest: str | None = None  # the end reason of the newest failing run counted

    def read(self, attempts: Iterable[Attempt]) -> bool:
        """Count on through a page of runs (older than those read before); True once
        the count is settled and no older page can change it."""
        for attempt in attempts:
            if self.settled:
                break
            if attempt.retry_of is not None:
                self.retried.add(attempt.retry_of)
            if attempt.id == self.of or attempt.id in self.retried or self._later(attempt):
                continue
            if attempt.end_reason == EndReason.SUCCESS:
                self.settled = True
            elif attempt.end_reason in FAILURE_END_REASONS:
                self.newest = self.newest or attempt.end_reason
                self.count += 1
                self.settled = self.count >= self.cap
        return self.settled

    def _later(self, attempt: Attempt) -> bool:
        """Still in flight, or ended after the end the count is for."""
        if attempt.end_reason is None:
            return True
        return self.until is not None and attempt.end_at is not None and attempt.end_at > self.until


def failure_alert_due(before: FailureStreak | None, after_failures: int) -> bool:
    """Whether a failing run that ends its chain raises the failure alert, ``before``
    being the streak that came before it (None: not read, as with
    alert_after_failures = 1, or unreadable: a missed alert costs more than one too
    many)."""
    return before is None or before.count + 1 >= after_failures


def recovered_from(before: FailureStreak | None, after_failures: int) -> str | None:
    """What a success recovers from, told as task.recovered: a streak long enough to
    have raised the failure alert; None when it ends none (or none was read)."""
    if before is None or before.count < after_failures:
        return None
    if after_failures == 1:
        return f"a run that ended {before.newest}"
    return f"{after_failures} or more failing runs in a row"


def streak_note(before: FailureStreak | None, after_failures: int) -> str:
    """What a failure alert says of its streak when alert_after_failures is above 1
    (the streak is counted up to alert_after_failures)."""
    if after_failures <= 1 or before is None:
        return ""
    rule = f"alert_after_failures = {after_failures}"
    if before.count + 1 == after_failures:
        return f"; the {ordinal(after_failures)} failing run in a row ({rule})"
    return f"; {after_failures + 1} or more failing runs in a row ({rule})"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
