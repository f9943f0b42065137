"""Tables (sqlmodel) and the enums of a run's life; enums are stored as their text."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

from cronwarden.column_types import UTCDateTime
from cronwarden.run_sorts import NULLABLE_SORTS


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    ENDED = "ended"


class EndReason(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    STOPPED = "stopped"
    CRASHED = "crashed"
    SKIPPED = "skipped"
    LOG_OVERFLOW = "log_overflow"
    MISSED = "missed"  # a fire that did not run: the daemon was down or asleep (catch_up)
    EXPIRED = "expired"  # not started within the ttl it was triggered with


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    CATCH_UP = "catch_up"
    API = "api"
    RETRY = "retry"
    CHAIN = "chain"  # another task's run ended (the task's `after`)


def utc_column(nullable: bool = True, **kwargs: Any) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, **kwargs))


STATS_COLUMNS = (
    "status",
    "end_reason",
    "end_at",
    "duration_ms",
    # What the runs cost (migration 0013): a task's stats sum them from the index too.
    "cpu_user_s",
    "cpu_system_s",
    "max_rss_bytes",
    "output_bytes",
)
# Fields a run list can be sorted by that need an index of their own (migration 0004):
# the nullable ones (task_name, status and created_at have theirs).
SORTED_BY_INDEX = NULLABLE_SORTS


SLOT_HELD = "slot IS NOT NULL AND status <> 'ended'"

# A run's instants that the API shows.  A page's rows carry each of them twice: as
# the column (a datetime, for the page's cursors) and under wire_name, as the API
# writes it, made by the database (column_types.wire_text).
SHOWN_INSTANTS = (
    "scheduled_for",
    "created_at",
    "start_at",
    "end_at",
    "delayed_until",
    "expires_at",
)


def wire_name(instant: str) -> str:
    return f"{instant}_wire"


class Tags(sa.TypeDecorator[Any]):
    """A run's tags: JSON, and JSONB on PostgreSQL.  PostgreSQL's dialect is named
    only here, where a PostgreSQL connection asks: a daemon on SQLite never loads it
    (~2.4 MB of its RSS)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


TAGS_TYPE = Tags()
# PostgreSQL's options of the runs' indexes, by index.  They are not written into the
# indexes below: naming one (``postgresql_where=``) makes SQLAlchemy load PostgreSQL's
# dialect to check it, on SQLite too.  ``postgresql_index_options`` gives them back
# (to compare the tables with a PostgreSQL database: migrations/env.py).
POSTGRESQL_INDEX_OPTIONS: dict[str, dict[str, Any]] = {
    "uq_runs_cause": {"where": sa.text("caused_by IS NOT NULL")},
    "ix_runs_retry_of": {"where": sa.text("retry_of IS NOT NULL")},
    "ix_runs_rerun_of": {"where": sa.text("rerun_of IS NOT NULL")},
    # Runs carrying tags, by containment: PostgreSQL's only (migration 0013).
    "ix_runs_tags": {"using": "gin", "ops": {"tags": "jsonb_path_ops"}},
    "uq_runs_task_slot": {"where": sa.text(SLOT_HELD)},
}


class Run(SQLModel, table=True):
    """One attempt of one task: the durable record operators query."""

    __tablename__ = "runs"
    __table_args__ = (
        # A fire runs once: once in all (fire_node "") or once per node (on_every_node).
        # On SQLite, one daemon's database, it stays without fire_node (migration 0011).
        sa.UniqueConstraint(
            "task_name", "scheduled_for", "attempt", "fire_node", name="uq_runs_fire"
        ),
        sa.Index("ix_runs_created", "created_at", "id"),
        # A task's runs in order; its outcome columns let stats read the index alone.
        sa.Index("ix_runs_task_created", "task_name", "created_at", "id", *STATS_COLUMNS),
        sa.Index("ix_runs_status_created", "status", "created_at", "id"),
        *(sa.Index(f"ix_runs_{f}", f, "created_at", "id") for f in SORTED_BY_INDEX),
        # A task's places under max_concurrent across every node sharing the database:
        # a run holds one until it ends, when it leaves this index by itself.
        sa.Index(
            "uq_runs_cause",
            "task_name",
            "caused_by",
            unique=True,
            sqlite_where=sa.text("caused_by IS NOT NULL"),
        ),
        # The runs linking to a run: its retries and its reruns (store/links.py).
        *(
            sa.Index(
                f"ix_runs_{link}",
                link,
                sqlite_where=sa.text(f"{link} IS NOT NULL"),
            )
            for link in ("retry_of", "rerun_of")
        ),
        sa.Index("ix_runs_tags", "tags"),  # PostgreSQL's options: POSTGRESQL_INDEX_OPTIONS
        sa.Index(
            "uq_runs_task_slot",
            "task_name",
            "slot",
            unique=True,
            sqlite_where=sa.text(SLOT_HELD),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    task_name: str = Field(max_length=100)
    status: str = Field(default=Status.PENDING, max_length=16)
    end_reason: str | None = Field(default=None, max_length=16)
    exit_code: int | None = None
    signal: int | None = None
    triggered_by: str = Field(max_length=16)
    scheduled_for: datetime | None = utc_column()
    created_at: datetime = utc_column(nullable=False)
    start_at: datetime | None = utc_column()
    end_at: datetime | None = utc_column()
    duration_ms: int | None = Field(default=None, sa_type=sa.BigInteger)
    attempt: int = 1
    retry_of: str | None = Field(default=None, max_length=36)
    rerun_of: str | None = Field(default=None, max_length=36)  # the run this one repeats
    params: dict[str, str] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    idempotency_key: str | None = Field(default=None, max_length=255)
    pid: int | None = None
    node: str = Field(max_length=200)
    # Whose fire this is: "" for one run across the nodes, the node's name for an
    # on_every_node fire (cronwarden/placement.py); part of the fire's uniqueness.
    fire_node: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    log_size: int = Field(default=0, sa_type=sa.BigInteger)
    log_truncated: bool = False
    task_hash: str = Field(max_length=64)
    error: str | None = None
    # Not part of the API: when a pending run (a delayed retry) may start, and the
    # process start time that lets a restarted daemon recognise a pid as still ours.
    not_before: datetime | None = utc_column()
    proc_started: int | None = Field(default=None, sa_type=sa.BigInteger)
    # Set by a node asked to stop a run that another node carries; that node stops it.
    stop_requested_at: datetime | None = utc_column()
    # Its place among the task's max_concurrent, on a shared database (overlap != allow).
    slot: int | None = None
    # A chained run's cause: the run whose end started it, or the runs (ids joined with
    # ",") whose ends did for after_mode = "all" (cronwarden/chains.py).
    caused_by: str | None = Field(default=None, sa_type=sa.Text)
    # What it cost (runners/cost.py): CPU seconds and peak memory of its process and the
    # descendants it waited for, from the kernel; bytes it wrote.  None: not known.
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    max_rss_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)
    output_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)
    # A run triggered with delay or run_at: it starts no earlier than this; with ttl:
    # it ends expired at this instant unless it started (runners/expiry.py).
    delayed_until: datetime | None = utc_column()
    expires_at: datetime | None = utc_column()
    # Labels to find it by (its task's and its trigger's; cronwarden/run_tags.py) and
    # what its trigger attached to it.  Tags are JSONB on PostgreSQL, for the
    # containment test its GIN index serves (store/search.py).  Not "metadata": the
    # name is SQLAlchemy's own on a table class.
    tags: list[str] = Field(
        default_factory=list,
        sa_column=sa.Column(TAGS_TYPE, nullable=False, server_default="[]"),
    )
    run_metadata: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(sa.JSON, nullable=False, server_default="{}"),
    )
    # What the job reported (PATCH /api/runs/{id} with the run's own token, whose
    # SHA-256 alone is kept: cronwarden/run_tokens.py): its stage, its progress (0..1)
    # and a result, as JSON text.  Never indexed; null until it reports.
    report_token_sha256: str | None = Field(default=None, max_length=64)
    stage: str | None = Field(default=None, sa_type=sa.Text)
    progress: float | None = None
    output: str | None = Field(default=None, sa_type=sa.Text)


def postgresql_index_options() -> None:
    """Give the runs' indexes their PostgreSQL options (POSTGRESQL_INDEX_OPTIONS), as
    they were declared before; this loads PostgreSQL's dialect.  Idempotent."""
    for index in Run.__table__.indexes:  # type: ignore[attr-defined]
        for key, value in POSTGRESQL_INDEX_OPTIONS.get(index.name, {}).items():
            index.dialect_kwargs[f"postgresql_{key}"] = value


class Artifact(SQLModel, table=True):
    """A line of a run's artifact listing (cronwarden/artifacts/): a file it left in
    $CRONWARDEN_ARTIFACTS_DIR, kept (with its sha256) or dropped (saying why).  The
    bytes lie in the run's directory on the node that ran it; the listing is here, so
    every node sharing the database can read it."""

    __tablename__ = "artifacts"
    # A task's kept artifacts, for keep_artifacts_size.
    __table_args__ = (sa.Index("ix_artifacts_task", "task_name", "run_id"),)

    run_id: str = Field(primary_key=True, max_length=36)
    # Its place in the listing (names may be too long for an index key).
    n: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(sa_type=sa.Text)
    task_name: str = Field(max_length=100)
    size: int | None = Field(default=None, sa_type=sa.BigInteger)
    sha256: str | None = Field(default=None, max_length=64)
    dropped: str | None = Field(default=None, sa_type=sa.Text)  # why (None: kept)


class IdempotencyKey(SQLModel, table=True):
    """An Idempotency-Key taken by an API trigger: unique per task, free again after
    24 h.  The fingerprint of the request body tells a repeat from a reuse."""

    __tablename__ = "idempotency_keys"

    task_name: str = Field(primary_key=True, max_length=100)
    key: str = Field(primary_key=True, max_length=255)
    run_id: str = Field(max_length=36)
    fingerprint: str = Field(max_length=64)
    created_at: datetime = utc_column(nullable=False)


class TaskState(SQLModel, table=True):
    """What the daemon must remember about a task across restarts."""

    __tablename__ = "task_state"

    task_name: str = Field(primary_key=True, max_length=100)
    paused: bool = False
    last_scheduled_for: datetime | None = utc_column()
    updated_at: datetime = utc_column(nullable=False)
    # The dead-man's switch (expect_success_within): when watching began, and when the
    # task.overdue alert for the present silence went out.
    watched_since: datetime | None = utc_column()
    overdue_alerted_at: datetime | None = utc_column()
    # run.too_long (max_duration): the start_at of the newest run it was raised for; a
    # run re-adopted after a restart that started no later was told already.
    too_long_alerted_start: datetime | None = utc_column()


class Hold(SQLModel, table=True):
    """A run's seat in a named lock (``lock:NAME``, one seat) or pool (``pool:NAME``,
    ``size`` seats).  It counts while its run has not ended (store/holds.py): the run's
    end frees it, and a later taker of the seat replaces the row."""

    __tablename__ = "holds"
    __table_args__ = (sa.Index("ix_holds_run", "run_id"),)

    name: str = Field(primary_key=True, max_length=110)
    seat: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    run_id: str = Field(max_length=36)
    taken_at: datetime = utc_column(nullable=False)


class Node(SQLModel, table=True):
    """A daemon sharing the database; its heartbeat tells the others it is alive."""

    __tablename__ = "nodes"

    name: str = Field(primary_key=True, max_length=200)
    started_at: datetime = utc_column(nullable=False)
    heartbeat_at: datetime = utc_column(nullable=False)
    version: str = Field(max_length=50)
    pid: int
    api_url: str | None = Field(default=None, max_length=300)
    config_hash: str | None = Field(default=None, max_length=64)
    # Raised by the survivor that takes over the node's runs: the node's own writes
    # (heartbeats) carry the epoch they started with, so a node that was declared dead
    # learns it instead of carrying on as if nothing happened.
    epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    taken_over_at: datetime | None = utc_column()
    taken_over_by: str | None = Field(default=None, max_length=200)
    # Raised by a node asked over the API to reload, on every other node's row: a
    # node that did not hear the NOTIFY (not yet listening, reconnecting) still finds
    # the request when it next looks (fleet.py).
    reloads_asked: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Installation(SQLModel, table=True):
    """What belongs to the installation rather than to one daemon: one row, shared by
    every node on the database.  ``hash_key`` keys the task hashes (task_hash.py) and
    never leaves the daemon."""

    __tablename__ = "installation"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_installation_one_row"),)

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    hash_key: bytes = Field(sa_column=sa.Column(sa.LargeBinary(64), nullable=False))
    created_at: datetime = utc_column(nullable=False)


def utcnow() -> datetime:
    return datetime.now(UTC)
