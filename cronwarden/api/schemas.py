"""API request and response models; the OpenAPI document is generated from these."""

from __future__ import annotations

import dataclasses
import json
import operator
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic_core
import sqlalchemy as sa
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cronwarden.artifacts.stock import Entry
from cronwarden.attention import State as AttentionState
from cronwarden.config import TASK_NAME_RE, Duration, RunLimits
from cronwarden.errors import InvalidExpand, InvalidMetadata, InvalidTags
from cronwarden.model import SHOWN_INSTANTS, EndReason, Status, Trigger, wire_name
from cronwarden.outcomes import FailureReason
from cronwarden.run_record import AnyRun
from cronwarden.run_tags import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_RUN_TAGS,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    TAG_RE,
    TAG_RULE,
    check_metadata,
    check_tags,
)
from cronwarden.run_timing import Timing
from cronwarden.support.text import printable
from cronwarden.support.timefmt import iso_z, iso_z_or_none

if TYPE_CHECKING:
    from cronwarden.retention import PassReport

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_WORDS = {"now": None, "today": 0, "yesterday": 1}
SortField = Literal[
    "created_at", "task_name", "status", "start_at", "end_at", "exit_code", "duration_ms"
]


# A date a query names: what parse_instant reads, declared as the string it is (a
# generated client must be able to send "7 days ago", never only an RFC 3339 instant).
WhenText = Annotated[
    datetime,
    WithJsonSchema(
        {
            "type": "string",
            "description": 'an instant or day (ISO 8601: "2026-01-31", '
            '"2026-01-31T12:00:00Z"), or relative: "now", "today", "yesterday", '
            '"7 days ago", "24 hours ago"',
            "examples": ["7 days ago", "today", "2026-01-31", "2026-01-31T12:00:00Z"],
        }
    ),
]
# An instant in an answer: ISO 8601 UTC with milliseconds and Z (RFC 3339).
Instant = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def _day_bound(days_ago: int | None, ending: bool) -> datetime:
    """``now``; or the start of a UTC day (``today``, ``yesterday``), or its last
    instant when it ends a range (so end_date=today includes all of today)."""
    now = datetime.now(UTC)
    if days_ago is None:
        return now
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
    return start + timedelta(days=1, microseconds=-1) if ending else start


# The largest event id or log line number a request may name: what a signed 64-bit
# integer holds (ids are counted from 1 and would take centuries to get there).
MAX_ID = 2**63 - 1
TASK_NAMES = "task names are 1 to 100 characters of A-Z a-z 0-9 . _ -"


def is_task_name(name: str) -> bool:
    """Whether a task could have this name (the config allows no other)."""
    return TASK_NAME_RE.fullmatch(name) is not None


def shown_name(name: str) -> str:
    """A name as an error quotes it: escaped (repr escapes control characters and
    lone surrogates) and bounded."""
    shown = repr(name)
    return shown if len(shown) <= 110 else shown[:100] + "...'"


def text_problem(value: str) -> str | None:
    """Why ``value`` is not text a database can hold, or None if it is.

    PostgreSQL refuses a NUL in text and SQLite's full-text search ends a string at one;
    a lone surrogate is not Unicode and cannot be encoded for either.  Request text
    that reaches the store is checked here, at the edge, so such input is the client's
    error (4xx), never mistaken for the database being down (503)."""
    if "\0" in value:
        return "must not contain a NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be Unicode text (it holds a lone surrogate: bytes that are not UTF-8)"
    return None


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _task_name(value: str) -> str:
    if not is_task_name(value):
        raise ValueError(f"no task can have this name: {TASK_NAMES}")
    return value


def _task_names(value: str) -> str:
    """Task names, comma-separated (empty items are ignored)."""
    for name in (part.strip() for part in value.split(",")):
        if name and not is_task_name(name):
            raise ValueError(f"{shown_name(name)} is not a task name: {TASK_NAMES}")
    return value


TaskName = Annotated[
    str,
    AfterValidator(_task_name),
    Field(json_schema_extra={"pattern": TASK_NAME_RE.pattern}),
]
# Free text that reaches the database (a search term).
StorableText = Annotated[str, AfterValidator(_storable)]


RUN_ID_EXAMPLE = "0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a"


def run_id_of(value: str) -> str:
    """A run id in the form the store holds.  ASCII only: uuid.UUID reads hex with
    int(), which takes other scripts' digits too."""
    try:
        if not value.isascii():
            raise ValueError(value)
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"not a run id; run ids are UUIDs such as {RUN_ID_EXAMPLE}") from None


RunId = Annotated[str, AfterValidator(run_id_of)]


_RELATIVE = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week)s?\s+ago\s*$", re.I)
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


class Schema(BaseModel):
    """The API's models: each is built on its first use, not at import (defer_build), so
    a daemon builds the validators and serializers of the answers it gives only."""

    model_config = ConfigDict(defer_build=True)


class RunOut(Schema):
    """A run as the API shows it: flat, instants as ISO 8601 UTC strings with ms and Z."""

    id: str
    task_name: str
    status: Status
    end_reason: EndReason | None
    exit_code: int | None
    signal: int | None
    triggered_by: Trigger
    scheduled_for: Instant | None
    created_at: Instant
    start_at: Instant | None
    end_at: Instant | None
    duration_ms: int | None
    attempt: int
    retry_of: str | None
    rerun_of: str | None
    params: dict[str, str]
    idempotency_key: str | None
    pid: int | None
    node: str
    log_size: int = Field(
        description="bytes of output its log keeps; while it runs, what the log holds so far "
        "(GET /api/runs/{id} on the node writing it; lists and events say 0 until it ends)"
    )
    log_truncated: bool
    task_hash: str
    error: str | None
    cpu_user_s: float | None = Field(
        default=None,
        description="CPU seconds in user mode of the run's process and the descendants it "
        "waited for (the kernel's accounting); null: not known (never started, re-adopted)",
    )
    cpu_system_s: float | None = Field(
        default=None, description="the same, in the kernel on the run's behalf"
    )
    max_rss_bytes: int | None = Field(
        default=None,
        description="peak resident memory of the largest of those processes, in bytes",
    )
    output_bytes: int | None = Field(
        default=None,
        description="bytes the run wrote to stdout and stderr, kept in its log or not; "
        "null: not known (a run re-adopted after a daemon restart)",
    )
    caused_by: list[str] | None = Field(
        default=None,
        description="a chained run (triggered_by = chain): the run whose end started it, "
        'or for after_mode = "all" the runs whose ends did',
    )
    delayed_until: Instant | None = Field(
        default=None,
        description="triggered with delay or run_at: it starts no earlier than this",
    )
    expires_at: Instant | None = Field(
        default=None,
        description="triggered with ttl: it ends expired at this instant unless started",
    )
    expired_at: Instant | None = Field(
        default=None, description="end_reason expired: when its ttl ended it"
    )
    tags: list[str] = Field(
        default_factory=list,
        description="labels to find it by (run lists filter by tag): its task's tags, then "
        "those its trigger added; a retry and a rerun carry them on",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="the JSON object its trigger attached ({} when none); a retry and a "
        "rerun carry it on",
    )
    stage: str | None = Field(
        default=None,
        description="what the job reported it is doing (PATCH /api/runs/{run_id}, "
        "`cronwarden report --stage`); null until it says",
    )
    progress: float | None = Field(
        default=None, description="how far along the job reported it is, from 0 to 1"
    )
    output: Any = Field(
        default=None,
        description="the result the job reported: any JSON value (at most 64 KiB as "
        "JSON); null until it reports one",
    )

    @classmethod
    def of(cls, run: AnyRun) -> RunOut:
        """Built without validation: the values come typed from the store (the enum
        fields made enums, as the serializer expects them)."""
        fields = run_fields(run)
        fields["status"] = Status(fields["status"])
        fields["triggered_by"] = Trigger(fields["triggered_by"])
        if fields["end_reason"] is not None:
            fields["end_reason"] = EndReason(fields["end_reason"])
        return cls.model_construct(**fields)


_DERIVED_FIELDS = ("expired_at",)  # worked out from the others, not columns
_RUN_FIELDS = tuple(name for name in RunOut.model_fields if name not in _DERIVED_FIELDS)
# RunOut's fields are named as a run's columns, but for metadata (model.Run says why).
_STORED = {"metadata": "run_metadata"}
_SHOWN = {stored: shown for shown, stored in _STORED.items()}
_fields_of = operator.attrgetter(*(_STORED.get(name, name) for name in _RUN_FIELDS))
# Each shown instant, and the name a page's row has it under as the API writes it.
_INSTANT_FIELDS = tuple((name, wire_name(name)) for name in SHOWN_INSTANTS)


def run_fields(run: AnyRun) -> dict[str, Any]:
    """A run as the API shows it (RunOut's fields, JSON-ready), whichever shape it
    comes in: the store's ``Run`` or the record of a run in flight."""
    return _shown(dict(zip(_RUN_FIELDS, _fields_of(run), strict=True)))


def run_json(run: AnyRun, **shown: Any) -> bytes:
    """A run as the API answers it (what RunOut describes), as JSON, with ``shown``
    over its values: written from run_fields as a page's runs are, not through a
    model built for each answer (3-4 % of the daemon's loop under sustained triggers)."""
    return json_bytes(run_fields(run) | shown)


def json_bytes(body: Any) -> bytes:
    """``body`` (plain JSON values) as compact JSON, written by pydantic's serializer: a
    page of 50 runs took json.dumps a quarter of the page's time past its query, this a
    quarter of that.  A lone surrogate (which no UTF-8 text can carry) is written
    escaped, as json.dumps writes it."""
    try:
        return pydantic_core.to_json(body)
    except pydantic_core.PydanticSerializationError:
        return json.dumps(body, separators=(",", ":")).encode()


def page_fields(rows: Sequence[sa.Row[Any]]) -> list[dict[str, Any]]:
    """The rows of a page of the runs table as the API shows runs (see run_fields).
    The column names are read once: a row's ``_fields`` is worked out on each call,
    a tenth of a page's time when it was read per row."""
    if not rows:
        return []
    names = [_SHOWN.get(name, name) for name in rows[0]._fields]
    return [_shown(dict(zip(names, row, strict=True))) for row in rows]


def _shown(values: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: values[name] for name in _RUN_FIELDS}
    for name, wire in _INSTANT_FIELDS:  # six a run: iso_z_or_none's call spared
        if fields[name] is not None:
            fields[name] = values.get(wire) or iso_z(fields[name])
    fields["created_at"] = fields["created_at"] or ""
    fields["params"] = {printable(k): printable(v) for k, v in fields["params"].items()}
    if fields["error"] is not None:
        fields["error"] = printable(fields["error"])
    if fields["caused_by"] is not None:
        fields["caused_by"] = fields["caused_by"].split(",")
    if fields["output"] is not None:  # kept as JSON text, shown as the value
        fields["output"] = json.loads(fields["output"])
    fields["expired_at"] = fields["end_at"] if fields["end_reason"] == EndReason.EXPIRED else None
    fields["tags"] = list(fields["tags"])
    return fields


class RelatedRunsOut(Schema):
    """The runs linked to a run, besides its attempts; runs deleted by retention are
    left out."""

    rerun_of: RunOut | None = Field(description="the run this one repeats (its rerun_of)")
    reruns: list[RunOut] = Field(
        description="the runs that repeat this one (POST /api/runs/{run_id}/rerun), oldest "
        "first, at most 1000"
    )
    caused_by: list[RunOut] = Field(
        description="a chained run: the runs whose end started it (its caused_by)"
    )
    chained: list[RunOut] = Field(
        description="the runs this run's end started (tasks whose after names its task), "
        "oldest first"
    )


class RunDetail(RunOut):
    """One run; with ``?expand=``, the runs linked to it in the same answer."""

    attempts: list[RunOut] | None = Field(
        default=None,
        description="with expand=attempts: every attempt of this run's fire, attempt 1 first "
        "and this run among them (each retry names the attempt it repeats in retry_of)",
    )
    related: RelatedRunsOut | None = Field(
        default=None,
        description="with expand=related: the runs it repeats, started or was started by",
    )


EXPANSIONS = ("attempts", "related")


def _expansions(value: object) -> object:
    """``expand``: attempts, related, comma-separated or repeated.  Anything else is
    refused as a request the API cannot answer (400), naming what it can: raised as
    InvalidExpand, which pydantic lets through (it turns only ValueError and
    AssertionError into its own 422)."""
    if not isinstance(value, str):
        return value
    wanted = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in EXPANSIONS]
    if unknown:
        raise InvalidExpand(
            f"expand cannot be {', '.join(shown_name(u) for u in unknown)}; it takes "
            f"{' and '.join(EXPANSIONS)} (comma-separated or repeated)"
        )
    return wanted


class RunDetailQuery(Schema):
    model_config = ConfigDict(extra="forbid")

    expand: Annotated[list[Literal["attempts", "related"]] | None, BeforeValidator(_expansions)] = (
        Field(
            default=None,
            description="also answer with the run's attempts (attempts) and the runs linked to "
            "it (related), in one request: comma-separated or repeated",
        )
    )


class RunList(Schema):
    runs: list[RunOut]
    next_cursor: str | None = Field(
        description="the cursor of the next page (null: this is the last page)"
    )
    has_next: bool
    prev_cursor: str | None = Field(
        description="the cursor of the page before this one, exactly as it was read (runs "
        "added since do not shift it); null on the first page"
    )
    total: int | None = None


class FireOut(Schema):
    at: str = Field(description="fire time in the task's zone, ISO 8601 with offset")
    utc: str = Field(description="the same instant in UTC, ISO 8601 with Z")
    offset_change_minutes: int | None = Field(
        default=None,
        description="the zone's UTC offset changed (a DST shift) since the previous fire, "
        "by this many minutes",
    )


class LimitsOut(Schema):
    """A task's ``limits``, in plain units; null: that bound is not set."""

    memory: int | None = Field(default=None, description="bytes")
    cpu_time: float | None = Field(default=None, description="CPU seconds of each process")
    open_files: int | None = None
    processes: int | None = None
    cpu: float | None = Field(default=None, description="CPUs (0.5: half of one)")

    @classmethod
    def of(cls, limits: RunLimits) -> LimitsOut:
        cpu_time = limits.cpu_time.total_seconds() if limits.cpu_time is not None else None
        return cls(
            memory=limits.memory,
            cpu_time=cpu_time,
            open_files=limits.open_files,
            processes=limits.processes,
            cpu=limits.cpu,
        )


class TaskOut(Schema):
    name: str
    command: str | list[str]
    schedule: str | None
    schedule_text: str | None = Field(description="the schedule in words")
    timezone: str
    enabled: bool
    paused: bool
    api_trigger: bool
    params: list[str]
    locks: list[str] = Field(
        description="named locks the task's runs hold while they run (see GET /api/locks)"
    )
    pool: str | None = Field(
        description="the pool ([pools.NAME]) whose places the task's runs share, or null"
    )
    after: list[str] = Field(
        description="tasks whose runs' ends start a run of this one (a chain), in the "
        "config's order; empty when none do"
    )
    after_on: list[EndReason] = Field(
        description="the end reasons of those runs (their final outcome, after retries) "
        "that start one"
    )
    after_mode: Literal["any", "all"] = Field(
        description='"any": each counting end of any task in after starts a run; "all": '
        "one run once every task in after has a counting end that is not yet a cause of "
        "one of its runs (the latest end of each)"
    )
    after_params: Literal["inherit"] | None = Field(
        description='"inherit": a chained run gets the params of its cause that this task '
        "declares; null: none"
    )
    starts: list[str] = Field(
        description="the tasks whose after names this one (what its runs' ends start), sorted"
    )
    nodes: list[str] | None = Field(
        description="globs over node names: only matching nodes fire or start the task "
        "(another node answers a trigger 409); null: any node"
    )
    on_every_node: bool = Field(
        description="each scheduled fire runs once on every matching node, not once in all"
    )
    limits: LimitsOut | None = Field(
        default=None, description="bounds of each run's process tree (limits); null: none"
    )
    next_run_at: Instant | None
    last_run: RunOut | None
    attention: list[AttentionState] = Field(
        default_factory=list,
        description="what calls for an operator's eye, most urgent first: failing (its "
        "last run failed), stuck (that run runs past stuck_after, max_duration, or "
        "timeout + kill_grace), overdue (expect_success_within passed), running, paused",
    )
    next: list[FireOut] | None = None
    definition: dict[str, Any] | None = Field(
        default=None,
        description="with ?definition=true: every key of the task after [defaults], "
        "durations as written in the config, secret_env values as ***",
    )


class TaskCounts(Schema):
    """How many configured tasks are in each state (a task may be in several)."""

    tasks: int = Field(description="every configured task")
    failing: int
    stuck: int
    overdue: int
    running: int
    paused: int


class TaskList(Schema):
    tasks: list[TaskOut]


class TaskPage(TaskList):
    """Without parameters, every task (``tasks`` alone, as the listing always was); with
    any, a page of the tasks asked for and the cursor of the next."""

    next_cursor: str | None = Field(
        default=None, description="with paging: pass as cursor for the next page"
    )
    has_next: bool = Field(default=False, description="with paging: a next page exists")
    total: int | None = Field(default=None, description="with total=true: tasks that match")
    counts: TaskCounts | None = Field(default=None, description="with counts=true")


TaskSort = Literal["name", "attention", "next_run_at"]


class TaskListQuery(Schema):
    """A page of the tasks: sorted by name (the config's tasks, a stable order),
    most urgent first (``attention``), or soonest next fire first (``next_run_at``,
    tasks without one last); ties by name."""

    model_config = ConfigDict(extra="forbid")

    state: list[AttentionState] | None = Field(
        default=None, description="only the tasks in any of these states (comma-separated)"
    )
    sort: TaskSort = "name"
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, description="the next_cursor of the last page")
    offset: int = Field(default=0, ge=0, le=1_000_000_000)
    total: bool = Field(default=False, description="add total: how many tasks match")
    counts: bool = Field(default=False, description="add counts: tasks by state, of all")

    @field_validator("state", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return comma_list(value)


class HolderOut(Schema):
    """A run holding a seat of a lock or pool, on any node sharing the database."""

    run_id: str
    task_name: str
    node: str
    since: Instant = Field(description="when the run took the seat, ISO 8601 UTC with ms and Z")


class LockWaiterOut(Schema):
    """A run of the node that answered, waiting (pending) for a seat."""

    run_id: str
    task_name: str
    since: Instant = Field(description="when it began to wait, ISO 8601 UTC with ms and Z")


class LockOut(Schema):
    name: str
    kind: Literal["lock", "pool"]
    size: int = Field(description="how many runs may hold it at once: 1 for a lock")
    tasks: list[str] = Field(description="the configured tasks that name it, sorted")
    holders: list[HolderOut] = Field(
        description="the runs holding it now, on every node sharing the database"
    )
    waiting: list[LockWaiterOut] = Field(
        description="runs of the node that answered waiting for it, oldest first (another "
        "node's waiting runs are listed by that node's own GET /api/locks)"
    )


class LocksQuery(Schema):
    """The lock list takes no parameters: an unknown one is an error, not ignored (a
    filter that seemed to apply would not)."""

    model_config = ConfigDict(extra="forbid")


class LockList(Schema):
    locks: list[LockOut] = Field(
        description="each lock named by a configured task and each pool of [pools], "
        "sorted by kind, then name"
    )


MAX_WAIT_SECONDS = 300


class TriggerQuery(Schema):
    model_config = ConfigDict(extra="forbid")

    # Answer when the run ends (201/200), or with the run as it is after this many
    # seconds (202).
    wait: float | None = Field(default=None, ge=0, le=MAX_WAIT_SECONDS)


def _tags_of(most: int, what: str) -> Any:
    """A before-validator of tags (run_tags.py's rules), refusing with InvalidTags: a
    400 saying what a tag may be, as pydantic lets any exception but ValueError and
    AssertionError through (it would make those a 422)."""

    def check(value: object) -> object:
        if what == "tag" and isinstance(value, str):  # a filter: comma-separated
            value = [part.strip() for part in value.split(",") if part.strip()]
        try:
            return list(check_tags(value, most=most))
        except ValueError as exc:
            raise InvalidTags(f"{what}: {exc}") from None

    return BeforeValidator(check)


def _metadata(value: object) -> object:
    """Run metadata (run_tags.py's rules), refused with InvalidMetadata (a 400)."""
    try:
        return check_metadata(value)
    except ValueError as exc:
        raise InvalidMetadata(str(exc)) from None


Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH, pattern=TAG_RE.pattern)]


class TriggerBody(Schema):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    tags: Annotated[list[Tag], _tags_of(MAX_TAGS, "tags")] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description=f"labels for this run, besides its task's tags: at most {MAX_TAGS}; {TAG_RULE}",
    )
    metadata: Annotated[dict[str, Any], BeforeValidator(_metadata)] = Field(
        default_factory=dict,
        description=f"a JSON object kept with the run: at most {MAX_METADATA_BYTES} bytes "
        f"as compact UTF-8 JSON, {MAX_METADATA_DEPTH} levels deep, no NUL",
    )
    delay: Duration | None = Field(
        default=None,
        description='start no earlier than this after the request, e.g. "90s", "2h"; the '
        "run is pending (delayed_until) meanwhile, survives restarts and can be stopped",
    )
    run_at: datetime | None = Field(
        default=None,
        description="start no earlier than this instant (ISO 8601 with a zone, e.g. "
        '"2026-12-24T18:00:00Z"); one in the past starts now. Not with delay',
    )
    ttl: Duration | None = Field(
        default=None,
        description="end the run as expired if it has not started this long after the "
        'request (queued, waiting for a lock or place, or delayed past it), e.g. "10m"',
    )

    @field_validator("run_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError('needs a zone: end it with "Z" or an offset such as "+01:00"')
        return value

    @model_validator(mode="after")
    def _one_start(self) -> TriggerBody:
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give delay or run_at, not both")
        for name in ("delay", "ttl"):
            span = getattr(self, name)
            if span is not None and not timedelta(0) <= span <= MAX_WAIT:
                raise ValueError(f"{name} must be between 0 and {MAX_WAIT.days} days")
        if self.ttl is not None and self.ttl < timedelta(seconds=1):
            raise ValueError('ttl must be at least "1s"')
        return self

    def timing(self, now: datetime) -> Timing:
        """When the run may start and until when (runners/requests.py)."""
        start_at = self.run_at if self.delay is None else now + self.delay
        if start_at is not None and start_at - now > MAX_WAIT:
            raise ValueError(f"run_at must be within {MAX_WAIT.days} days")
        return Timing(start_at=start_at, ttl=self.ttl)


MAX_WAIT = timedelta(days=366)  # how far ahead a run may be asked for


class LogLineOut(Schema):
    n: int
    ts: str
    stream: str
    text: str


class LogPageOut(Schema):
    lines: list[LogLineOut]
    next_after: int
    has_more: bool


class LogQuery(Schema):
    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0, le=MAX_ID)
    limit: int = Field(default=1000, ge=1, le=10000)
    stream: Literal["stdout", "stderr"] | None = None
    follow: bool = False


class ArtifactOut(Schema):
    """A file the run left in $CRONWARDEN_ARTIFACTS_DIR, kept with it."""

    name: str = Field(description="its path in the run's directory, '/' between directories")
    size: int = Field(description="bytes")
    sha256: str = Field(description="hex digest of its bytes")


class DroppedArtifactOut(Schema):
    """What the run left that is not kept, and why (a symbolic link, past a size cap...)."""

    name: str
    size: int | None = Field(description="bytes; null for what is not a regular file")
    why: str


class ArtifactList(Schema):
    """A run's artifacts, listed when it ended (empty while it runs)."""

    artifacts: list[ArtifactOut]
    dropped: list[DroppedArtifactOut]

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> ArtifactList:
        return cls(
            artifacts=[
                ArtifactOut(name=e.name, size=e.size or 0, sha256=e.sha256 or "")
                for e in entries
                if e.dropped is None
            ],
            dropped=[
                DroppedArtifactOut(name=e.name, size=e.size, why=e.dropped)
                for e in entries
                if e.dropped is not None
            ],
        )


class EventsQuery(Schema):
    model_config = ConfigDict(extra="forbid")

    # Task names, comma-separated (or the parameter repeated).
    task: Annotated[str, AfterValidator(_task_names)] | None = None
    after: int | None = Field(default=None, ge=0, le=MAX_ID)  # default: from now on


class RawLogQuery(Schema):
    """The raw log takes no parameters: an unknown one is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class RunQuery(Schema):
    """Query parameters of a run list."""

    model_config = ConfigDict(extra="forbid")

    task_name: TaskName | None = None
    status: list[Status] | None = None
    end_reason: list[EndReason] | None = None
    triggered_by: list[Trigger] | None = None
    start_date: WhenText | None = None
    end_date: WhenText | None = None
    search: StorableText | None = Field(default=None, max_length=200)
    caused_by: RunId | None = Field(default=None, description="runs this run's end started")
    tag: Annotated[list[Tag] | None, _tags_of(MAX_RUN_TAGS, "tag")] = Field(
        default=None,
        max_length=MAX_RUN_TAGS,
        description="runs carrying every one of these tags (comma-separated or repeated)",
    )
    sort_field: SortField = "created_at"
    sort_direction: Literal["asc", "desc"] = "desc"
    limit: int = Field(default=50, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000_000)
    cursor: str | None = Field(
        default=None,
        description="a next_cursor or prev_cursor of a page in the same sort (sort_field "
        "and sort_direction); filters may differ",
    )
    total: bool = False

    @field_validator("status", "end_reason", "triggered_by", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("sort_field", "sort_direction", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        """Clients that always send the parameter send ``""`` for "the default"."""
        if value == "":
            return "created_at" if info.field_name == "sort_field" else "desc"
        return value

    @field_validator("task_name", mode="before")
    @classmethod
    def _empty_is_any(cls, value: object) -> object:
        """``task_name=`` filters nothing, as an empty ``search`` does (it matched no
        run when any text was taken for a name; no task can be named "")."""
        return None if value == "" else value

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _instant(cls, value: object, info: ValidationInfo) -> object:
        return parse_instant(value, ending=info.field_name == "end_date")


def comma_list(value: object) -> object:
    """A list parameter sent as ``a,b`` (or repeated, which the handler joins)."""
    if isinstance(value, str):
        return [part for part in value.split(",") if part]
    return value


def parse_instant(value: object, *, ending: bool = False) -> object:
    """A query's instant: ISO 8601, a day, "N units ago", now, today or yesterday.  A
    day that ends a range means its last instant (end_date=2026-01-31 includes all of
    that day)."""
    if not isinstance(value, str):
        return value
    match = _RELATIVE.match(value)
    try:
        if match:
            seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
            return datetime.now(UTC) - timedelta(seconds=seconds)
        word = value.strip().lower()
        if word in _DAY_WORDS:
            return _day_bound(_DAY_WORDS[word], ending)
        if _DATE_ONLY.match(value.strip()):  # a whole day, in UTC
            day = datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
            return day + timedelta(days=1, microseconds=-1) if ending else day
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)  # fails here for instants before year 1
    except ValueError:
        raise ValueError(
            'expected ISO 8601 ("2026-01-31T12:00:00Z", or a day "2026-01-31"), '
            'relative ("24 hours ago", "7 days ago"), now, today or yesterday'
        ) from None
    except OverflowError:
        raise ValueError("the date is out of range (years 1 to 9999, in UTC)") from None


class StatsQuery(Schema):
    model_config = ConfigDict(extra="forbid")

    since: WhenText | None = None  # default: all the history there is

    @field_validator("since", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        return parse_instant(value)


class DurationStats(Schema):
    p50: int | None
    p95: int | None
    max: int | None
    sample: int  # runs the percentiles are taken over (the newest, up to 10,000)


class CpuStats(Schema):
    """CPU seconds of the window's runs whose cost is known (a run that never started,
    or was re-adopted after a daemon restart, is left out)."""

    user: float = Field(description="user-mode CPU seconds, summed")
    system: float = Field(description="CPU seconds in the kernel on the runs' behalf, summed")
    total: float = Field(description="user + system")
    avg: float | None = Field(description="total per run counted; null: no run counted")
    runs: int = Field(description="runs whose cost is known")


class MemoryStats(Schema):
    """Peak resident memory (a run's max_rss_bytes), in bytes."""

    p95: int | None = Field(
        description="nearest-rank p95 over the newest runs that ran to an outcome (the "
        "durations' sample), those whose peak is known"
    )
    max: int | None = Field(description="the largest peak of the window's runs")
    sample: int = Field(description="runs the p95 is taken over")


class TaskStats(Schema):
    task: str
    since: str | None
    runs: int
    active: int  # pending or running
    by_end_reason: dict[str, int]
    success_rate: float | None  # successes among runs that ran to an outcome
    duration_ms: DurationStats
    last_success_at: Instant | None
    last_failure_at: Instant | None
    cpu_s: CpuStats
    max_rss_bytes: MemoryStats
    output_bytes: int = Field(
        description="bytes the window's runs wrote to stdout and stderr, kept in their logs "
        "or not (runs whose output is known)"
    )


class Problem(Schema):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class RetentionOut(Schema):
    """The last retention pass: what it deleted, and the disk the logs used after it."""

    started_at: Instant | None
    duration_ms: int
    deleted_runs: int
    deleted_log_files: int
    freed_bytes: int
    expired_keys: int
    log_files: int
    log_bytes: int
    error: str | None

    @classmethod
    def of(cls, report: PassReport | None) -> RetentionOut | None:
        if report is None:
            return None
        fields = dataclasses.asdict(report)
        fields.pop("runs")
        return cls(**{**fields, "started_at": iso_z_or_none(report.started_at)})


class AccessOut(Schema):
    """What the caller may do, so a client can offer only the actions it is allowed."""

    token: str | None = Field(description="the name of the token used (null: none needed)")
    scope: Literal["read", "trigger", "admin"]


class InfoOut(Schema):
    version: str
    node: str
    started_at: Instant | None
    uptime_s: float
    config_path: str
    tasks: int
    active_runs: int
    runs: int | None = Field(description="run rows in the database (null if it is unreachable)")
    retention: RetentionOut | None = Field(
        description="the last retention pass (null until the first one, shortly after start)"
    )
    access: AccessOut
    config_differs: list[str] = Field(
        default_factory=list,
        description="live nodes sharing this database whose task definitions differ from "
        "this node's (empty when they all agree, and on SQLite)",
    )
    failure_end_reasons: list[FailureReason] = Field(
        description="the end reasons that count as a run failing: alerts, retry_on, the "
        "stats' last_failure_at and the dashboard's colours go by them (a stop, a skip "
        "and a missed fire are not failures)"
    )


class NodeOut(Schema):
    name: str
    state: Literal["alive", "lapsed", "dead"] = Field(
        description="lapsed: no heartbeat for longer than node_lease (by the database "
        "clock); dead: lapsed, and a surviving node took over its runs"
    )
    taken_over_by: str | None = Field(
        default=None, description="the node that took over its runs (state dead)"
    )
    started_at: Instant
    heartbeat_at: Instant
    silent_s: float = Field(description="seconds since its last heartbeat")
    running_runs: int
    config_hash: str | None = Field(description="a hash of every task's definition")
    same_config: bool = Field(description="its config_hash equals this node's")
    version: str
    pid: int
    api_url: str | None = Field(description="where its API listens (null: a unix socket)")
    this_node: bool = Field(description="the node that answered this request")


class NodeList(Schema):
    nodes: list[NodeOut]


class ReloadOut(Schema):
    reloaded: bool
    added: list[str]
    removed: list[str]
    changed: list[str]
    restart_needed: list[str]


class TaskQuery(Schema):
    """``next``: also list the task's next fire times (in its zone and in UTC);
    ``definition``: also show every key of the task."""

    model_config = ConfigDict(extra="forbid")

    next: int | None = Field(default=None, ge=1, le=1000)
    definition: bool = False


class Health(Schema):
    status: Literal["ok", "degraded", "unavailable"]
    database: Literal["ok", "unreachable", "unwritable"]
    scheduler: Literal["running", "stopped"]
    data_dir: Literal["ok", "full"]
