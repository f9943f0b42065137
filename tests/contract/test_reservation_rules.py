"""Each rule of cronwarden/reservations.py has a Python form (records in memory, the
store double) and a SQL form (the stores): both must pick the same runs, or the double
and the stores would disagree about a reservation.  Every combination of the fields a
rule reads is written to SQLite and asked both ways."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from cronwarden import reservations
from cronwarden.model import Run, Status, Trigger
from cronwarden.run_record import RunRecord, run_row

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BEFORE, AFTER = NOW - timedelta(milliseconds=1), NOW + timedelta(milliseconds=1)
RUNS = Run.__table__  # type: ignore[attr-defined]


def every_run() -> Iterator[RunRecord]:
    fields = itertools.product(
        Status, Trigger, [None, BEFORE, NOW, AFTER], [BEFORE, NOW, AFTER], ["n1", "n2"]
    )
    for i, (status, trigger, not_before, created_at, node) in enumerate(fields):
        yield RunRecord(
            id=f"r{i}",
            task_name="t",
            status=status,
            triggered_by=trigger,
            not_before=not_before,
            created_at=created_at,
            node=node,
            task_hash="h",
        )


@pytest.fixture(scope="module")
def database() -> Iterator[sa.Connection]:
    engine = sa.create_engine("sqlite://")
    RUNS.create(engine)
    with engine.begin() as conn:
        conn.execute(RUNS.insert(), [run_row(run) for run in every_run()])
    with engine.connect() as conn:
        yield conn
    engine.dispose()


PYTHON_AND_SQL: dict[str, tuple[Callable[[RunRecord], bool], Callable[[], Any]]] = {
    "reserved": (reservations.is_reserved_fire, reservations.reserved_rows),
    "instant-came": (
        lambda run: reservations.instant_came(run, NOW),
        lambda: reservations.instant_came_rows(NOW),
    ),
    "discard": (reservations.may_discard, reservations.discardable_rows),
    "take-over": (
        lambda held: reservations.may_take_over(held, "n1"),
        lambda: reservations.take_over_rows(SimpleNamespace(node=sa.literal("n1"))),
    ),
    "listed": (
        lambda run: reservations.is_listed(run, NOW),
        lambda: reservations.listed_rows(NOW),
    ),
    "listed-until": (
        lambda run: reservations.is_listed(run, BEFORE),
        lambda: reservations.listed_rows(NOW, until=BEFORE),
    ),
    "ahead": (
        lambda run: not reservations.is_listed(run, NOW),
        lambda: reservations.ahead_rows(NOW),
    ),
}


@pytest.mark.parametrize(("python", "sql"), PYTHON_AND_SQL.values(), ids=PYTHON_AND_SQL)
def test_the_python_and_sql_forms_pick_the_same_runs(
    database: sa.Connection, python: Callable[[RunRecord], bool], sql: Callable[[], Any]
) -> None:
    expected = {run.id for run in every_run() if python(run)}
    found = set(database.execute(sa.select(RUNS.c.id).where(sql())).scalars())
    assert found == expected
    assert 0 < len(expected) < len(list(every_run()))  # the rule tells runs apart


def test_a_reservation_is_what_the_rules_call_one() -> None:
    run = RunRecord(
        id="r", task_name="t", triggered_by=Trigger.API, created_at=BEFORE, node="n1", task_hash="h"
    )
    reserved = reservations.reserve(run, AFTER)
    assert reservations.is_reserved_fire(reserved)
    assert (reserved.created_at, reserved.not_before) == (AFTER, AFTER)
    assert not reservations.is_listed(reserved, NOW)
    assert not reservations.instant_came(reserved, NOW)
    assert reservations.instant_came(reserved, AFTER)
    assert reservations.may_take_over(reserved, "n1")
    assert not reservations.may_take_over(reserved, "n2")
