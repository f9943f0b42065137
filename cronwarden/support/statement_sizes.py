"""Batched statements come in sizes that are powers of two.

A statement with n values in a list (an INSERT of n rows, a DELETE ... IN of n ids) is
a statement of its own for each n, and the database driver keeps every statement it
has run prepared (128 a connection).  An INSERT into runs, with its FTS trigger and 13
indexes, takes ~90 KB of SQLite's memory prepared: batches of any size from 1 to 500
filled that cache for as long as new sizes came (~11 MB in a soak).  Powers of two up
to a bound B are log2(B) + 1 statements, whatever the counts.
"""

from __future__ import annotations

import math


def floor_power_of_two(n: int) -> int:
    """The largest power of two not above ``n`` (n >= 1)."""
    return 1 << (n.bit_length() - 1)


def nearest_power_of_two(x: float) -> int:
    """The power of two nearest ``x`` by ratio (x >= 1): 360 is 256, 363 is 512."""
    return 1 << round(math.log2(x))


def power_of_two_pieces(count: int, largest: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive pieces of ``count`` items, each a power of two and
    at most ``largest`` (itself one), largest first."""
    pieces, start = [], 0
    while start < count:
        size = min(largest, floor_power_of_two(count - start))
        pieces.append((start, start + size))
        start += size
    return pieces
