"""Plain-text tables for the CLI: upper-cased headers, columns as wide as their widest
cell, two spaces between them, no trailing spaces on a row.

A table may be given a width it must fit (the runs table fits 100 columns): one column
named to give way is then cut to what the others leave it, its longer cells ending in
"…".  The other columns are never cut: they hold ids and values that must be whole to
be of use, and a user who wants every cell whole asks for JSON or a wider view.
"""

from __future__ import annotations

from collections.abc import Sequence

CUT = "…"
NARROWEST = 8  # a column giving way keeps at least this much


def table_lines(
    rows: Sequence[Sequence[str]],
    headers: Sequence[str],
    *,
    width: int | None = None,
    gives_way: int | None = None,
) -> list[str]:
    """The header line, then a line per row.  With ``width`` and ``gives_way`` (a
    column's index), that column is cut so the lines fit ``width`` where they can."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    if width is not None and gives_way is not None:
        over = sum(widths) + 2 * (len(widths) - 1) - width
        if over > 0:
            widths[gives_way] = max(widths[gives_way] - over, NARROWEST, len(headers[gives_way]))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        cells = (_cut(c, w).ljust(w) for c, w in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return lines


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - len(CUT)] + CUT
