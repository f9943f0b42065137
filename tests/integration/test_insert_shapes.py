"""New runs go in INSERTs of a few sizes only.  Each number of rows is a statement of
its own that the driver keeps prepared (sqlite3: 128 a connection, ~90 KB each with the
runs' FTS trigger and indexes; asyncpg: its statement cache), so batches of every size
from 1 to 500 filled that memory for an hour of uptime."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from test_retention import ended  # type: ignore[import-not-found]

from cronwarden.store import Store
from cronwarden.support.statement_sizes import power_of_two_pieces


@pytest.fixture
def inserts() -> Iterator[set[str]]:
    """The text of every INSERT INTO runs executed meanwhile, on any engine."""
    seen: set[str] = set()

    def record(_conn, _cursor, statement: str, *_rest) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO RUNS"):
            seen.add(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


async def test_batches_of_every_size_use_a_few_statements(store: Store, inserts: set[str]) -> None:
    writer = store.recorder.start()
    first = 0
    for size in [*range(1, 40), 100, 255, 257, 300, 511]:
        runs = [ended("t", first + i, timedelta(seconds=first + i)) for i in range(size)]
        assert await store.claim(runs) == {run.id for run in runs}
        first += size
    await store.recorder.close()
    writer.cancel()
    assert 1 < len(inserts) <= 9  # 1, 2, 4, ... 256 rows
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM runs"))).scalar() == first


def test_pieces_are_powers_of_two_in_order() -> None:
    for count in (0, 1, 5, 256, 257, 1000):
        pieces = power_of_two_pieces(count, 256)
        assert [end - start for start, end in pieces] == sorted(
            (end - start for start, end in pieces), reverse=True
        )
        assert sum(end - start for start, end in pieces) == count
        assert all(
            start == end_before
            for (start, _), (_, end_before) in zip(pieces[1:], pieces, strict=False)
        )
        assert all((end - start) & (end - start - 1) == 0 for start, end in pieces)
        assert all(end - start <= 256 for start, end in pieces)
