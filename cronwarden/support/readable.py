"""Sizes, durations and CPU times as the CLI shows them to people: short, one word each
(a table's cells are split on spaces by eye and by ``awk``), rounded to what a reader
compares at a glance.  Scripts read the exact numbers from ``--json``.

Sizes are binary units, as the dashboard shows them (web/static/fmt.js ``bytes``):
memory is counted in pages and KiB by the kernel, and a 512 MiB limit reads as such.
"""

from __future__ import annotations

_SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB")


def size(n: int) -> str:
    """``512B``, ``1.5KiB``, ``12.3MiB``, ``2.0GiB``."""
    if n < 1024:
        return f"{n}B"
    value = n / 1024
    for unit in _SIZE_UNITS[:-1]:
        if value < 1023.95:  # not "1024.0MiB": that is 1.0GiB
            return f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}{_SIZE_UNITS[-1]}"


def seconds(value: float) -> str:
    """``0.42s``, ``12.3s``, ``2m05s``, ``3h07m``: two significant decimals where a
    run is short, minutes and hours once seconds stop being read one by one."""
    if value < 9.995:
        return f"{value:.2f}s"
    if value < 59.95:
        return f"{value:.1f}s"
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    minutes = round(value / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def duration_ms(ms: int) -> str:
    """A run's duration from its ``duration_ms``: ``250ms`` under a second, then as
    :func:`seconds` (``3.20s``, ``3m20s`` where the API says 200893)."""
    return f"{ms}ms" if ms < 1000 else seconds(ms / 1000)
