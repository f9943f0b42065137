"""The one wire format for instants: ISO 8601 UTC with milliseconds and a trailing Z."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(value: datetime) -> str:
    # isoformat is C code; strftime was a measurable share of a page of runs.  The
    # store's instants are UTC already: converting them anyway was a fifth of iso_z.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def iso_z_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso_z(value)
