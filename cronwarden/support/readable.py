"""Sizes and CPU times as the CLI's tables show them to people: short, one word each
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


def cpu_seconds(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``2m05s``, ``3h07m``: two significant decimals where a
    run is short, minutes and hours once seconds stop being read one by one."""
    if seconds < 9.995:
        return f"{seconds:.2f}s"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
