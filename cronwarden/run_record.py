"""A run in flight: the plain record the run core holds while the run lives, and the
row the recorder writes from it.

Why not the ORM ``Run``: building and changing SQLModel instances goes through pydantic
and SQLAlchemy's instrumentation (about 0.1 ms a run), and a burst of a thousand fires
builds a thousand at once; a slotted dataclass costs a few microseconds and needs no
library's private state.  Its fields are named exactly as the runs table's columns, so
whoever reads a run (metrics, alerts, the events log, the API) reads either shape by
attribute (one field, the run's report token, is no column: only its hash is kept).
``Run`` stays the table's definition and what store reads return.

A record changes only through ``change``: one place to look for who writes a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from cronwarden.model import Run, Status


@dataclass(slots=True, kw_only=True, eq=False)
class RunRecord:
    """One attempt of one task as the daemon carries it (see the module docstring).

    Compared by identity, as the run core holds exactly one record per run."""

    id: str
    task_name: str
    triggered_by: str
    created_at: datetime
    node: str
    task_hash: str
    status: str = Status.PENDING
    fire_node: str = ""  # "" or, for an on_every_node fire, the node's name
    end_reason: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    scheduled_for: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    duration_ms: int | None = None
    attempt: int = 1
    retry_of: str | None = None
    rerun_of: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    pid: int | None = None
    log_size: int = 0
    log_truncated: bool = False
    error: str | None = None
    not_before: datetime | None = None
    proc_started: int | None = None
    stop_requested_at: datetime | None = None
    slot: int | None = None
    caused_by: str | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    max_rss_bytes: int | None = None
    output_bytes: int | None = None
    delayed_until: datetime | None = None
    expires_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    run_metadata: dict[str, Any] = field(default_factory=dict)
    report_token_sha256: str | None = None
    stage: str | None = None
    progress: float | None = None
    output: str | None = None  # JSON text
    # Not a column: the run's report token itself (run_tokens.py), held from the row's
    # making to the spawn that hands it to the job; only its hash is stored.  None in a
    # record read back from the store, and in a copy for a reader.
    report_token: str | None = field(default=None, repr=False, metadata={"column": False})

    def change(self, values: Mapping[str, Any]) -> None:
        """Set the fields named in ``values`` (the same mapping the recorder writes)."""
        for name, value in values.items():
            setattr(self, name, value)

    def copy(self, *, with_token: bool = False) -> RunRecord:
        """A record of its own, for a reader that must not see later changes; the
        report token only ``with_token``: a copy the daemon itself starts the run from,
        whose row holds that token's hash."""
        copied = RunRecord(**run_row(self))  # half the time of dataclasses.replace
        if with_token:
            copied.report_token = self.report_token
        return copied

    @classmethod
    def of(cls, run: Run | RunRecord) -> RunRecord:
        """The record of a run read from the store (adopted, resumed, taken over)."""
        return cls(**{name: getattr(run, name) for name in RUN_COLUMNS})


RUN_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(RunRecord) if f.metadata.get("column", True)
)

# Either shape of a run, for code that reads one by attribute.
AnyRun = Run | RunRecord


def run_row(record: RunRecord) -> dict[str, Any]:
    """The column values of a run's row, as the recorder inserts it."""
    return {name: getattr(record, name) for name in RUN_COLUMNS}
