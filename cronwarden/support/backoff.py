"""Pure backoff arithmetic, shared by task retries and riding out database outages.

Kept apart from both users so that the store does not depend on the scheduler (and the
other way round) for one formula.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

Backoff = Literal["constant", "linear", "exponential"]


def backoff_delay(
    attempt: int, *, delay: timedelta, backoff: Backoff, max_delay: timedelta
) -> timedelta:
    """The wait after ``attempt`` (1-based): delay x 1, x attempt or x 2^(attempt-1), capped."""
    factor = {"constant": 1.0, "linear": float(attempt)}.get(backoff, 2.0 ** min(attempt - 1, 64))
    seconds = min(delay.total_seconds() * factor, max_delay.total_seconds())
    return timedelta(seconds=seconds)
