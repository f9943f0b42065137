"""Whether a run that ended is tried again: one pure rule, read by the run core (which
schedules the retry) and by alerts (which say whether a failure will be retried).

It lives outside both the scheduler and the runners so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Collection


def should_retry(end_reason: str, *, attempt: int, retries: int, retry_on: Collection[str]) -> bool:
    """``retries`` counts extra attempts, so attempt N may retry while N <= retries."""
    return attempt <= retries and end_reason in retry_on
