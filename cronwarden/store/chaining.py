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
from sqlalchemy.engine import Connection

from cronwarden.chains import ChainAsk
from cronwarden.model import Run, Status
from cronwarden.store.engine import dialect_insert

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
    """The latest counting end of each listed task, joined, once none of them started
    this task before; None while a listed task has no such end.  No clock is compared:
    nodes' clocks differ, and "ended since the last chained run" is "not a cause of an
    earlier one" here."""
    task_name = ask.row["task_name"]
    if conn.dialect.name == "postgresql":
        key = sa.func.hashtext(f"cronwarden chain {task_name}")
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    causes = []
    for cause_task in ask.after:
        latest = conn.execute(
            sa.select(RUNS.c.id)
            .where(
                RUNS.c.task_name == cause_task,
                RUNS.c.status == Status.ENDED,
                RUNS.c.end_reason.in_(ask.after_on),
            )
            .order_by(RUNS.c.end_at.desc())
            .limit(1)
        ).scalar()
        if latest is None or _started_before(conn, task_name, str(latest)):
            return None
        causes.append(str(latest))
    return ",".join(sorted(causes))


def _started_before(conn: Connection, task_name: str, cause: str) -> bool:
    """Whether ``cause`` is already a cause of a run of ``task_name``."""
    used = (
        sa.select(RUNS.c.id)
        .where(RUNS.c.task_name == task_name, caused_by_condition(cause))
        .limit(1)
    )
    return conn.execute(used).first() is not None


def caused_by_condition(run_id: str) -> sa.ColumnElement[bool]:
    """Runs whose cause is ``run_id``, alone or among those of after_mode = "all"
    (ids joined with ","; an id holds no LIKE wildcard, and is escaped all the same)."""
    column = RUNS.c.caused_by
    escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.or_(
        column == run_id,
        column.like(f"{escaped},%", escape="\\"),
        column.like(f"%,{escaped}", escape="\\"),
        column.like(f"%,{escaped},%", escape="\\"),
    )


def _insert_once(conn: Connection, row: Mapping[str, Any]) -> bool:
    statement = (
        dialect_insert(conn.dialect.name, RUNS)
        .values(**row)
        .on_conflict_do_nothing(
            index_elements=[RUNS.c.task_name, RUNS.c.caused_by], index_where=_CAUSED
        )
        .returning(RUNS.c.id)
    )
    return conn.execute(statement).first() is not None
