"""Durations ("90s", "1h30m") and sizes ("512KiB", "10MB") as config files write them.

The grammar is deliberately strict: a typo such as "5 mins" or "10M" must be an error
that names what is allowed, not a silently different value.  Loose parsers (natural
language, bare numbers meaning minutes) are what makes a timeout end up 60x too short.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
DURATION_HELP = 'a duration such as "90s", "5m", "1h30m", "2d", "250ms", or "0" for none'

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^(\d+)\s*([A-Za-z]*)$")
SIZE_HELP = 'a number of bytes or a size such as "512KiB", "10MB", "1GiB"'


def parse_duration(value: object) -> timedelta:
    """Parse a config duration; raises ValueError saying what is allowed."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}")
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"a bare number is ambiguous; expected {DURATION_HELP}")
    if not isinstance(value, str):
        raise ValueError(f"expected {DURATION_HELP}")
    text = value.strip()
    if text == "0":
        return timedelta(0)
    match = _DURATION_RE.match(text)
    if not text or match is None:
        raise ValueError(f"expected {DURATION_HELP}")
    seconds = sum(
        int(amount) * scale
        for amount, scale in zip(match.groups(), _DURATION_UNITS.values(), strict=True)
        if amount is not None
    )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest config spelling of a duration, so messages echo what users write."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0"
    parts = []
    for unit, scale in _DURATION_UNITS.items():
        unit_ms = round(scale * 1000)
        amount, total_ms = divmod(total_ms, unit_ms)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def parse_size(value: object) -> int:
    """Parse a byte count or a size with a unit (decimal kB/MB/GB or binary KiB/MiB/GiB)."""
    if isinstance(value, bool):
        raise ValueError(f"expected {SIZE_HELP}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative; expected {SIZE_HELP}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected {SIZE_HELP}")
    match = _SIZE_RE.match(value.strip())
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected {SIZE_HELP}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def format_size(value: int) -> str:
    """The shortest exact config spelling of a size ("100MiB", "50MB", "1500"), so
    messages echo what users write."""
    binary = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
    for unit, scale in (*binary, ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if value and value % scale == 0:
            return f"{value // scale}{unit}"
    return str(value)
