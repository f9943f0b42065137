"""What reading a run's log gives back, whatever format it is stored in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogLine:
    n: int
    ts: str
    stream: str
    text: str


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    next_after: int
    has_more: bool


@dataclass(frozen=True)
class LogSummary:
    size: int  # output bytes kept
    truncated: bool
    error: str | None = None  # why the log could not be written in full (a full disk)
    # What the run wrote, kept or not; None: not known (a log a restarted daemon went
    # on with: what the run wrote before is not counted anywhere).
    output_bytes: int | None = None
