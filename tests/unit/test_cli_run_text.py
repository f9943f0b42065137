"""What the CLI prints of runs, worked out without a daemon: the runs table and how it
fits 100 columns, a run's end in one line, and the chain of attempts that ``run
--wait`` follows (when a retry comes, when it is due)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronwarden import run_text
from cronwarden.retry_chain import RetryPolicy, attempt_line, instant
from cronwarden.support.table import table_lines


def run(**fields: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": "01a24c63-ee99-7bad-932c-09a91ce422e0",
        "task_name": "backup",
        "status": "ended",
        "end_reason": "success",
        "exit_code": 0,
        "signal": None,
        "triggered_by": "api",
        "created_at": "2026-12-06T17:25:47.289Z",
        "duration_ms": 200_893,
        "attempt": 1,
        "retry_of": None,
        "cpu_user_s": 0.5,
        "cpu_system_s": 0.25,
        "max_rss_bytes": 3 * 1024 * 1024,
        "output_bytes": 10,
        "tags": ["nightly"],
    }
    return shown | fields


def test_a_row_says_what_became_of_the_run_in_few_columns() -> None:
    assert run_text.cells(run()) == [
        "01a24c63-ee99-7bad-932c-09a91ce422e0",
        "backup",
        "success",
        "0",
        "12-06 17:25:47",
        "3m21s",
    ]
    killed = run(end_reason="timeout", exit_code=None, signal=9, duration_ms=250)
    assert run_text.cells(killed)[2:] == ["timeout", "SIGKILL", "12-06 17:25:47", "250ms"]
    waiting = run(status="pending", end_reason=None, exit_code=None, duration_ms=None)
    assert run_text.cells(waiting)[2:] == ["pending", "-", "12-06 17:25:47", "-"]
    assert run_text.signal_name(200) == "signal 200"


def test_the_wide_row_has_every_column() -> None:
    wide = run_text.wide_cells(run())
    assert dict(zip(run_text.WIDE_HEADERS, wide, strict=True)) == {
        "id": "01a24c63-ee99-7bad-932c-09a91ce422e0",
        "task": "backup",
        "status": "ended",
        "end": "success",
        "exit": "0",
        "signal": "-",
        "by": "api",
        "created": "2026-12-06T17:25:47.289Z",
        "took": "3m21s",
        "cpu": "0.75s",
        "mem": "3.0MiB",
        "tags": "nightly",
    }


def test_the_runs_table_fits_100_columns_by_cutting_the_task() -> None:
    long_name = "a-task-whose-name-is-as-long-as-a-name-may-be-" + "x" * 54
    rows = [
        run_text.cells(
            run(task_name=long_name, end_reason="log_overflow", exit_code=None, signal=6)
        ),
        run_text.cells(run()),
    ]
    lines = table_lines(
        rows, run_text.HEADERS, width=run_text.TABLE_WIDTH, gives_way=run_text.TASK_COLUMN
    )
    assert max(len(line) for line in lines) == 100
    assert lines[0].split() == ["ID", "TASK", "STATUS", "EXIT", "CREATED", "(UTC)", "TOOK"]
    cut = lines[1].split()[1]
    assert cut.endswith("…") and long_name.startswith(cut[:-1])
    assert lines[2].split()[1] == "backup"
    # The columns that identify a run are never cut.
    assert lines[1].split()[0] == rows[0][0] and "SIGABRT" in lines[1]


def test_a_table_that_fits_is_left_whole() -> None:
    rows = [["a", "bb"], ["ccc", "d"]]
    assert table_lines(rows, ["x", "yy"], width=100, gives_way=1) == [
        "X    YY",
        "a    bb",
        "ccc  d",
    ]
    # A column gives way only so far: past that, the line is wider than asked.
    narrow = table_lines([["0123456789" * 3, "z" * 20]], ["a", "b"], width=10, gives_way=1)
    assert narrow[1] == "0123456789" * 3 + "  " + "z" * 7 + "…"


def test_an_ended_run_in_one_line() -> None:
    assert run_text.ended_line(run()) == (
        "01a24c63-ee99-7bad-932c-09a91ce422e0 ended success in 3m21s; "
        "cpu 0.75s (0.50s user, 0.25s system), peak memory 3.0MiB, output 10B"
    )
    failed = run(end_reason="failed", exit_code=3, duration_ms=50, attempt=3, cpu_user_s=None)
    assert run_text.ended_line(failed).startswith(
        "01a24c63-ee99-7bad-932c-09a91ce422e0 ended failed (exit 3) in 50ms (attempt 3); "
        "peak memory"
    )
    never = run(end_reason="stopped", exit_code=None, duration_ms=None, max_rss_bytes=None)
    assert run_text.ended_line(never | {"output_bytes": None, "cpu_user_s": None}) == (
        "01a24c63-ee99-7bad-932c-09a91ce422e0 ended stopped; cost not known"
    )


DEFINITION = {
    "retries": 2,
    "retry_on": ["failed", "timeout", "crashed"],
    "retry_delay": "10s",
    "retry_backoff": "exponential",
    "retry_max_delay": "15s",
}


@pytest.mark.parametrize(
    ("end_reason", "attempt", "retried"),
    [
        ("failed", 1, True),
        ("timeout", 2, True),
        ("failed", 3, False),  # retries = 2: attempts 2 and 3 were the retries
        ("stopped", 1, False),  # an operator's decision is not retried
        ("success", 1, False),
    ],
)
def test_a_retry_comes_as_the_daemon_rule_says(
    end_reason: str, attempt: int, retried: bool
) -> None:
    policy = RetryPolicy.of(DEFINITION)
    assert policy.retries_after(run(end_reason=end_reason, attempt=attempt)) is retried


def test_a_retry_is_due_after_its_backoff_from_its_creation() -> None:
    policy = RetryPolicy.of(DEFINITION)
    created = "2026-12-06T17:25:40.000Z"
    first = run(end_reason="failed", exit_code=3, attempt=1)
    retry = run(id="retry-2", status="pending", attempt=2, created_at=created)
    assert policy.due(first, retry) == instant(created) + timedelta(seconds=10)
    second = run(end_reason="failed", exit_code=3, attempt=2)
    assert policy.due(second, retry) == instant(created) + timedelta(seconds=15)  # capped


def test_a_failed_attempt_says_when_its_retry_is_due() -> None:
    failed = run(end_reason="failed", exit_code=3, attempt=1)
    retry = run(id="RETRY", status="pending", attempt=2)
    due = datetime(2026, 12, 6, 17, 25, 50, 120_000, tzinfo=UTC)
    line = attempt_line(failed, retry, due, due - timedelta(seconds=10))
    assert line == (
        "attempt 1 failed (exit 3); retry 2 scheduled at 2026-12-06T17:25:50.120Z (in 10.0s): RETRY"
    )
    timed_out = run(end_reason="timeout", exit_code=None, signal=15, attempt=1)
    assert attempt_line(timed_out, retry, due, due).startswith(
        "attempt 1 timed out (SIGTERM); retry 2 scheduled at 2026-12-06T17:25:50.120Z: RETRY"
    )
