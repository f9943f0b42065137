"""The runs' indexes keep their PostgreSQL options apart (model.py), so that a daemon
on SQLite never loads PostgreSQL's dialect; given back, they make the same DDL the
indexes were declared with."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex

from cronwarden.model import Run, Tags, postgresql_index_options


def ddl(dialect: object) -> dict[str, str]:
    indexes = Run.__table__.indexes  # type: ignore[attr-defined]
    return {i.name: str(CreateIndex(i).compile(dialect=dialect)) for i in indexes}


def test_postgresql_options_given_back_make_the_declared_indexes() -> None:
    postgresql_index_options()
    postgresql_index_options()  # idempotent
    made = ddl(postgresql.dialect())
    assert made["ix_runs_tags"].endswith("USING gin (tags jsonb_path_ops)")
    assert made["uq_runs_cause"].endswith("WHERE caused_by IS NOT NULL")
    assert made["ix_runs_retry_of"].endswith("WHERE retry_of IS NOT NULL")
    assert made["ix_runs_rerun_of"].endswith("WHERE rerun_of IS NOT NULL")
    assert made["uq_runs_task_slot"].endswith("WHERE slot IS NOT NULL AND status <> 'ended'")


def test_sqlite_keeps_its_partial_indexes() -> None:
    made = ddl(sqlite.dialect())
    assert made["uq_runs_cause"].endswith("WHERE caused_by IS NOT NULL")
    assert made["uq_runs_task_slot"].endswith("WHERE slot IS NOT NULL AND status <> 'ended'")


def test_tags_are_jsonb_on_postgresql_and_json_on_sqlite() -> None:
    tags = Tags()
    pg = postgresql.dialect()
    assert isinstance(tags.load_dialect_impl(pg), postgresql.JSONB)
    assert not isinstance(tags.load_dialect_impl(sqlite.dialect()), postgresql.JSONB)
