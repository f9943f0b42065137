"""Schedules in words, as the dashboard and GET /api/tasks show them."""

from __future__ import annotations

from datetime import UTC

import pytest

from cronwarden.scheduler.triggers import parse_schedule
from cronwarden.scheduler.words import schedule_in_words


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("*/5 * * * *", "Every 5 minutes"),
        ("0 3 * * 1-5", "At 03:00, Monday through Friday"),
        ("*/10 * * * * *", "Every 10 seconds"),  # six fields: seconds first
        ("@daily", "At 00:00"),
        ("@every 90s", "Every 1m30s, counted from the Unix epoch"),
        ("@reboot", "Once, when the daemon starts"),
        ("0 0 L * *", "At 00:00, on the last day of the month"),
        ("0 9 1 * 1", "At 09:00, on day 1 of the month, or on Monday"),  # Vixie's OR
        ("30 2 * * 0#2", "At 02:30, on the second Sunday of the month"),
    ],
)
def test_schedules_read_as_words(expression: str, words: str) -> None:
    assert schedule_in_words(parse_schedule(expression, UTC, "task")) == words


def test_a_hashed_schedule_reads_as_the_time_it_was_placed_on() -> None:
    trigger = parse_schedule("H H * * *", UTC, "nightly-backup")
    minute, hour = trigger.cron.split()[:2]  # type: ignore[union-attr]
    assert schedule_in_words(trigger) == f"At {int(hour):02d}:{int(minute):02d}"
