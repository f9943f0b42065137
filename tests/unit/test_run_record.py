"""The record of a run in flight: its fields are the runs table's columns, its row is
what the recorder writes, and a run read from the store becomes one field for field."""

from __future__ import annotations

from datetime import UTC, datetime

from cronwarden.model import Run, Status, Trigger
from cronwarden.run_record import RUN_COLUMNS, RunRecord, run_row

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def a_record(**values: object) -> RunRecord:
    fields: dict[str, object] = {
        "id": "0190f3a0-0000-7000-8000-000000000001",
        "task_name": "backup",
        "triggered_by": Trigger.SCHEDULE,
        "created_at": AT,
        "node": "n1",
        "task_hash": "abc",
        **values,
    }
    return RunRecord(**fields)  # type: ignore[arg-type]


def test_the_record_has_exactly_the_columns_of_the_runs_table() -> None:
    table = {column.name for column in Run.__table__.columns}  # type: ignore[attr-defined]
    assert set(RUN_COLUMNS) == table


def test_a_new_record_has_the_defaults_of_a_new_row() -> None:
    row = run_row(a_record())
    table_defaults = Run(
        **{
            name: row[name]
            for name in ("id", "task_name", "triggered_by", "created_at", "node", "task_hash")
        }
    )
    assert row == {name: getattr(table_defaults, name) for name in RUN_COLUMNS}
    assert row["status"] == Status.PENDING and row["params"] == {} and row["attempt"] == 1


def test_change_sets_the_named_fields_and_the_row_follows() -> None:
    record = a_record()
    record.change({"status": Status.RUNNING, "pid": 42, "start_at": AT})
    row = run_row(record)
    assert (row["status"], row["pid"], row["start_at"]) == (Status.RUNNING, 42, AT)


def test_a_record_has_no_field_outside_the_table() -> None:
    record = a_record()
    try:
        record.change({"not_a_column": 1})
    except AttributeError:
        return
    raise AssertionError("a slotted record took a field that is no column")


def test_a_run_from_the_store_becomes_a_record_field_for_field() -> None:
    stored = Run(**run_row(a_record(status="running", pid=7, params={"day": "mon"})))
    assert run_row(RunRecord.of(stored)) == {name: getattr(stored, name) for name in RUN_COLUMNS}


def test_a_copy_does_not_see_later_changes() -> None:
    record = a_record()
    snapshot = record.copy()
    record.change({"status": Status.ENDED})
    assert snapshot.status == Status.PENDING and snapshot is not record
