from __future__ import annotations

from datetime import timedelta

import pytest

from cronwarden.support.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("0", timedelta(0)),
        (0, timedelta(0)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", 5, "5 mins", "1.5h", "-1s", "1m1h", True, "s"])
def test_bad_durations_say_what_is_allowed(text: object) -> None:
    with pytest.raises(ValueError, match="90s"):
        parse_duration(text)


def test_duration_round_trip() -> None:
    for text in ("1h30m", "90ms", "2d3h", "0", "45s"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1024, 1024),
        ("512KiB", 524288),
        ("10MB", 10_000_000),
        ("1GiB", 1 << 30),
        ("7", 7),
        ("3 kb", 3000),
    ],
)
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["10M", "lots", -1, "1.5MB", None])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError, match="512KiB"):
        parse_size(text)


def test_the_api_offers_exactly_the_sorts_the_store_serves() -> None:
    from typing import get_args

    from cronwarden.api.schemas import SortField
    from cronwarden.run_sorts import SORT_FIELDS

    assert get_args(SortField) == SORT_FIELDS
