"""Pure policy decisions: catch-up and jitter (retries: cronwarden/retry_policy.py).
No clock, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

CatchUp = Literal["skip", "latest", "all"]  # what a task does with fires it missed


def catch_up_fires(
    missed: Sequence[datetime],
    *,
    mode: CatchUp,
    max_catch_up: int,
) -> tuple[list[datetime], list[datetime]]:
    """Split missed fires into (to run, to drop); dropped fires raise fire.missed."""
    if mode == "skip" or not missed:
        return [], list(missed)
    if mode == "latest":
        return [missed[-1]], list(missed[:-1])
    keep = list(missed[-max_catch_up:])
    return keep, list(missed[: len(missed) - len(keep)])


NO_JITTER = timedelta(0)  # one object for every task without jitter


def jitter_offset(task_name: str, bound: timedelta) -> timedelta:
    """A stable offset in [0, bound) per task: the same task always gets the same delay,
    and tasks sharing a schedule are spread out instead of all starting at once."""
    import hashlib

    micros = int(bound.total_seconds() * 1_000_000)
    if micros <= 0:
        return NO_JITTER
    digest = int.from_bytes(hashlib.sha256(task_name.encode()).digest()[:8], "big")
    return timedelta(microseconds=digest % micros)
