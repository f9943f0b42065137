"""A fire's chain of attempts as ``cronwarden run --wait`` follows it: whether an
attempt that ended will be tried again, and when its retry is due.

The API shows a retry as a run of its own once the run core has committed it, a moment
after the attempt's end is recorded; a client that looked once could take a failure
for the final outcome.  So the client reads the task's retry policy (``GET
/api/tasks/{task}?definition=true``) and applies the run core's own rule
(``retry_policy.should_retry``) to know whether a retry is coming, then waits for it
(``GET /api/runs/{id}?expand=attempts``).  The retry's due time is worked out the way
the run core works it out: its creation plus the backoff after the failed attempt
(``support/backoff.py``).  Pure: the waiting is the CLI's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronwarden.retry_policy import should_retry
from cronwarden.run_text import ending
from cronwarden.support.backoff import Backoff, backoff_delay
from cronwarden.support.readable import seconds
from cronwarden.support.timefmt import iso_z
from cronwarden.support.units import parse_duration

Run = Mapping[str, Any]
# How the end reasons of retried attempts read in a sentence ("attempt 1 timed out").
_VERBS = {"timeout": "timed out", "log_overflow": "filled its log"}


@dataclass(frozen=True)
class RetryPolicy:
    """A task's retry keys, as its definition in the API writes them."""

    retries: int
    retry_on: tuple[str, ...]
    delay: timedelta
    backoff: Backoff
    max_delay: timedelta

    @classmethod
    def of(cls, definition: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            retries=int(definition["retries"]),
            retry_on=tuple(definition["retry_on"]),
            delay=parse_duration(definition["retry_delay"]),
            backoff=definition["retry_backoff"],
            max_delay=parse_duration(definition["retry_max_delay"]),
        )

    def retries_after(self, run: Run) -> bool:
        """Whether the run core commits a retry of this ended attempt."""
        reason = run["end_reason"]
        return reason is not None and should_retry(
            reason, attempt=run["attempt"], retries=self.retries, retry_on=self.retry_on
        )

    def due(self, failed: Run, retry: Run) -> datetime:
        """When ``retry`` (of ``failed``) may start."""
        wait = backoff_delay(
            failed["attempt"], delay=self.delay, backoff=self.backoff, max_delay=self.max_delay
        )
        return instant(retry["created_at"]) + wait


def instant(text: str) -> datetime:
    """An instant as the API writes it (ISO 8601 UTC, ``Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def attempt_line(failed: Run, retry: Run, due: datetime, now: datetime) -> str:
    """``attempt 1 failed (exit 3); retry 2 scheduled at 2026-12-06T10:00:05.120Z (in
    10s): RETRY_ID``."""
    reason = failed["end_reason"]
    how = ending(failed)
    wait = (due - now).total_seconds()
    return (
        f"attempt {failed['attempt']} {_VERBS.get(reason, reason)}"
        + (f" ({how})" if how else "")
        + f"; retry {retry['attempt']} scheduled at {iso_z(due)}"
        + (f" (in {seconds(wait)})" if wait >= 0.5 else "")
        + f": {retry['id']}"
    )
