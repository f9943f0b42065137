"""Sizes and CPU times as the CLI's tables print them (cronwarden/support/readable.py)."""

from __future__ import annotations

import pytest

from cronwarden.support.readable import cpu_seconds, size


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
    ("seconds", "shown"),
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
def test_cpu_times_read_as_seconds_then_minutes_then_hours(seconds: float, shown: str) -> None:
    assert cpu_seconds(seconds) == shown
