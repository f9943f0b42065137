"""The chained runs a run's end starts, written in the transaction of that end
(store/recorder.py): a crash cannot lose them (the end and its chained runs land
together or not at all), and a cause starts a task's run at most once (the unique
(task_name, caused_by) of runs), on any node, however often the end is written.

``after_mode = "all"`` reads the other causes in the same transaction.  On PostgreSQL
two nodes recording the last two causes at once would each miss the other's
uncommitted end; a transaction-scoped advisory lock per chained task puts them one
after the other, so the second sees the first.  SQLite has one writer already.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from cronwarden.chains import ChainAsk
from cronwarden.model import Run, Status, Trigger

RUNS = Run.__table__  # type: ignore[attr-defined]
_CAUSED = sa.text("caused_by IS NOT NULL")


def start_chained(
    conn: Connection, run_id: str, values: Mapping[str, Any], asks: Sequence[ChainAsk]
) -> list[dict[str, Any]]:
    """Create the runs ``asks`` start, once the end of ``run_id`` (``values``) is
    written; returns the rows created: none when the row ended otherwise meanwhile
    (another node took the run over and ended it: its end is the one that counts)."""
    ended = conn.execute(sa.select(RUNS.c.end_reason).where(RUNS.c.id == run_id)).scalar()
    if ended != values.get("end_reason"):
        return []
    created = []
    for ask in asks:
        cause = run_id if ask.mode == "any" else _all_causes(conn, ask)
        if cause is None:
            continue
        row = {**ask.row, "caused_by": cause}
        if _insert_once(conn, row):
            created.append(row)
    return created


def _all_causes(conn: Connection, ask: ChainAsk) -> str | None:
    """The latest counting end of each listed task since the chained task's last
    chained run, joined; None while one of them has none."""
    task_name = ask.row["task_name"]
    if conn.dialect.name == "postgresql":
        key = sa.func.hashtext(f"cronwarden chain {task_name}")
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    since = conn.execute(
        sa.select(sa.func.max(RUNS.c.created_at)).where(
            RUNS.c.task_name == task_name, RUNS.c.triggered_by == Trigger.CHAIN
        )
    ).scalar()
    causes = []
    for cause_task in ask.after:
        latest = (
            sa.select(RUNS.c.id)
            .where(
                RUNS.c.task_name == cause_task,
                RUNS.c.status == Status.ENDED,
                RUNS.c.end_reason.in_(ask.after_on),
            )
            .order_by(RUNS.c.end_at.desc())
            .limit(1)
        )
        if since is not None:
            latest = latest.where(RUNS.c.end_at > since)
        found = conn.execute(latest).scalar()
        if found is None:
            return None
        causes.append(str(found))
    return ",".join(sorted(causes))


def _insert_once(conn: Connection, row: Mapping[str, Any]) -> bool:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(RUNS)
        .values(**row)
        .on_conflict_do_nothing(
            index_elements=[RUNS.c.task_name, RUNS.c.caused_by], index_where=_CAUSED
        )
        .returning(RUNS.c.id)
    )
    return conn.execute(statement).first() is not None
