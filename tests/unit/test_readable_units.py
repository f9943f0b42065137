"""Sizes, durations and CPU times as the CLI prints them (cronwarden/support/readable.py)."""

from __future__ import annotations

import pytest

from cronwarden.support.readable import duration_ms, seconds, size


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0KiB"),
        (1536, "1.5KiB"),
        (12_900_000, "12.3MiB"),
        (1024**3 - 1, "1.0GiB"),  # not "1024.0MiB"
        (5 * 1024**3, "5.0GiB"),
        (3 * 1024**5, "3072.0TiB"),  # past the last unit: more of it
    ],
)
def test_sizes_are_binary_units_with_one_decimal(n: int, shown: str) -> None:
    assert size(n) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0.00s"),
        (0.004, "0.00s"),
        (0.425, "0.42s"),
        (9.994, "9.99s"),
        (9.996, "10.0s"),  # not "10.00s"
        (59.94, "59.9s"),
        (59.96, "1m00s"),  # not "60.0s"
        (125.4, "2m05s"),
        (3599.4, "59m59s"),
        (3599.6, "1h00m"),
        (11_220, "3h07m"),
        (200_000, "55h33m"),
    ],
)
def test_times_read_as_seconds_then_minutes_then_hours(value: float, shown: str) -> None:
    assert seconds(value) == shown


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(0, "0ms"), (250, "250ms"), (999, "999ms"), (1000, "1.00s"), (200_893, "3m21s")],
)
def test_durations_read_as_milliseconds_under_a_second(ms: int, shown: str) -> None:
    assert duration_ms(ms) == shown
