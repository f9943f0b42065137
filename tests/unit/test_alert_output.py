"""run.output (cron's MAILTO): which runs raise it, and the excerpt an alert carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronwarden.alerts.output import EXCERPT_BYTES, cut_excerpt, output_event
from cronwarden.run_record import RunRecord

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def ended(**values: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": "00000000-0000-7000-8000-000000000001",
        "task_name": "backup",
        "status": "ended",
        "end_reason": "success",
        "exit_code": 0,
        "triggered_by": "api",
        "created_at": T0,
        "node": "n1",
        "task_hash": "h",
        "log_size": 12,
    }
    return RunRecord(**{**fields, **values})


def test_a_run_that_printed_raises_run_output_naming_its_outcome() -> None:
    event = output_event(ended(), {"id": "x"}, T0)
    assert event is not None
    assert event.event == "run.output" and event.task == "backup"
    assert event.message == "backup succeeded; it printed 12 bytes"
    assert event.run == {"id": "x"}


def test_a_run_that_printed_nothing_raises_nothing() -> None:
    assert output_event(ended(log_size=0), None, T0) is None


@pytest.mark.parametrize("reason", ["skipped", "missed"])
def test_runs_that_never_ran_raise_nothing(reason: str) -> None:
    assert output_event(ended(end_reason=reason, exit_code=None, log_size=0), None, T0) is None


def test_a_run_still_going_raises_nothing() -> None:
    assert output_event(ended(status="running", end_reason=None), None, T0) is None


def test_every_attempt_that_printed_raises_it_also_one_to_be_retried() -> None:
    """cron mails every execution that prints; an attempt's output is not repeated by
    its retry, so it is told with that attempt."""
    first = output_event(ended(end_reason="failed", exit_code=2, attempt=1), None, T0)
    second = output_event(ended(end_reason="failed", exit_code=2, attempt=2), None, T0)
    assert first is not None and second is not None
    assert second.message == "backup failed with exit code 2 (attempt 2); it printed 12 bytes"


def test_a_stopped_or_timed_out_run_that_printed_raises_it() -> None:
    assert output_event(ended(end_reason="stopped", exit_code=None, signal=15), None, T0)
    assert output_event(ended(end_reason="timeout", exit_code=None), None, T0)


def test_the_excerpt_is_the_first_64_kib() -> None:
    data = b"a" * EXCERPT_BYTES + b"b" * 10
    text, truncated = cut_excerpt(data)
    assert EXCERPT_BYTES == 64 * 1024
    assert text == "a" * EXCERPT_BYTES and truncated


def test_a_short_output_is_whole() -> None:
    assert cut_excerpt(b"copied 3 files\n") == ("copied 3 files\n", False)
    assert cut_excerpt(b"") == ("", False)


def test_the_cut_never_splits_a_character() -> None:
    data = b"a" * (EXCERPT_BYTES - 1) + "é".encode() + b"tail"
    text, truncated = cut_excerpt(data)
    assert text == "a" * (EXCERPT_BYTES - 1) and truncated


def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    assert cut_excerpt(b"ok \xff\xfe done") == ("ok \ufffd\ufffd done", False)


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=200))
def test_the_excerpt_never_exceeds_its_bound(data: bytes, limit: int) -> None:
    text, truncated = cut_excerpt(data, limit)
    assert truncated == (len(data) > limit)
    assert len(text.encode("utf-8", errors="surrogatepass")) <= 3 * limit  # U+FFFD is 3 bytes
    if not truncated:
        assert text == data.decode(errors="replace")
