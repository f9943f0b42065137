"""Request handlers: read the request, ask a service, shape the answer.  No SQL, no spawning."""

from __future__ import annotations

import asyncio
import contextlib
import json
import unicodedata
from collections.abc import AsyncIterator
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from cronwarden import __version__
from cronwarden.api.auth import Access
from cronwarden.api.keys import SERVICES, Services
from cronwarden.api.log_relay import relay_if_elsewhere
from cronwarden.api.middlewares import ACCESS, BadRequest
from cronwarden.api.origin import is_json_media
from cronwarden.api.schemas import (
    EXPANSIONS,
    RUN_ID_EXAMPLE,
    TASK_NAMES,
    AccessOut,
    ArtifactList,
    CpuStats,
    DurationStats,
    EventsQuery,
    FireOut,
    Health,
    InfoOut,
    LimitsOut,
    LogLineOut,
    LogPageOut,
    LogQuery,
    MemoryStats,
    NodeList,
    NodeOut,
    RawLogQuery,
    ReloadOut,
    RetentionOut,
    RunDetail,
    RunDetailQuery,
    RunOut,
    RunQuery,
    StatsQuery,
    TaskListQuery,
    TaskOut,
    TaskQuery,
    TaskStats,
    TriggerBody,
    TriggerQuery,
    is_task_name,
    json_bytes,
    page_fields,
    run_fields,
    run_id_of,
    run_json,
    shown_name,
)
from cronwarden.api.streams import (
    artifact_file,
    follow_events,
    follow_log,
    raw_log,
    resume_point,
    streamed,
)
from cronwarden.api.task_definition import task_definition
from cronwarden.api.task_pages import LISTING_SLICE, task_page, task_states
from cronwarden.artifacts.names import NAMES, name_problem
from cronwarden.config import TaskConfig
from cronwarden.errors import (
    ArtifactNotFound,
    CarriedElsewhere,
    Conflict,
    InvalidRunId,
    StoreUnavailable,
    TaskNotFound,
)
from cronwarden.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cronwarden.model import EndReason, Status
from cronwarden.outcomes import FAILURE_END_REASONS
from cronwarden.run_record import AnyRun
from cronwarden.runlog.layout import index_path
from cronwarden.runlog.reader import read_log_page
from cronwarden.scheduler.explain import upcoming
from cronwarden.scheduler.words import schedule_in_words
from cronwarden.stats import summarize
from cronwarden.store.links import RelatedRuns
from cronwarden.store.runs import RunFilter
from cronwarden.support.timefmt import iso_z, iso_z_or_none

_M = TypeVar("_M", bound=BaseModel)
_LIST_FIELDS = {"status", "end_reason", "triggered_by", "task", "expand", "tag", "state"}


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def _json_of(model: BaseModel, exclude: set[str]) -> web.Response:
    """A model without the fields a request did not ask for (``?expand=``)."""
    return web.json_response(text=model.model_dump_json(exclude=exclude))


def _query(request: web.Request) -> dict[str, Any]:
    """Query string to a dict; list filters may repeat or be comma-separated."""
    values: dict[str, Any] = {}
    for key in request.query:
        items = request.query.getall(key)
        values[key] = ",".join(items) if key in _LIST_FIELDS else items[-1]
    return values


def _run_id(request: web.Request) -> str:
    """The run id of the URL, in the form the store holds."""
    raw = request.match_info["run_id"]
    try:
        return run_id_of(raw)
    except ValueError:
        raise InvalidRunId(
            f"{raw!r} is not a run id; run ids are UUIDs such as {RUN_ID_EXAMPLE}"
        ) from None


def _task_name(request: web.Request) -> str:
    """The ``{task}`` of the URL, if a task could have that name.  Any other is refused
    here, before a lookup: like a malformed run id (400) it names nothing, and text a
    database cannot hold (a NUL) must not reach one."""
    name = request.match_info["task"]
    if not is_task_name(name):
        raise BadRequest(
            400,
            "invalid-task-name",
            f"the task in the path, {shown_name(name)}, is not a task name, so no task "
            f"has it: {TASK_NAMES}",
        )
    return name


MAX_IDEMPOTENCY_KEY = 255


def _idempotency_key(request: web.Request) -> str | None:
    """The Idempotency-Key header: 1 to 255 characters of text.  Header bytes that are
    not UTF-8 arrive as lone surrogates, which no database can store; control
    characters could not be sent back in a header."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not _header_text(key):
        raise BadRequest(
            400,
            "invalid-idempotency-key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters of UTF-8 text "
            "without control characters",
        )
    return key


def _header_text(value: str) -> bool:
    """No control character (Cc) and no lone surrogate (Cs)."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


async def health(request: web.Request) -> web.Response:
    """Unavailable when the database does not answer, or answers but cannot take the
    writes that record fires and outcomes (its disk is full): with "database: ok" then,
    an operator would not look for the records being lost."""
    services = _services(request)
    database: Literal["ok", "unreachable", "unwritable"] = "ok"
    try:
        await services.store.ping()
    except Exception:
        database = "unreachable"
    running = services.scheduler.running
    full = services.reserve.full
    recorder = services.store.recorder
    if database == "ok" and recorder.failing is not None:
        if full and "disk is full" in recorder.failing:
            database = "unwritable"  # until there is space again, or a write lands
        else:
            recorder.failing = None  # it answers, with space: the outage is over
    status: Literal["ok", "degraded", "unavailable"] = "ok"
    if database != "ok" or not running:
        status = "unavailable"
    elif full:
        status = "degraded"  # runs go on, but their output is being dropped
    body = Health(
        status=status,
        database=database,
        scheduler="running" if running else "stopped",
        data_dir="full" if full else "ok",
    )
    return _json(body, 200 if status == "ok" else 503)


def _task_out(services: Services, task: TaskConfig, last: AnyRun | None) -> TaskOut:
    return TaskOut(
        name=task.name,
        command=task.command,
        schedule=task.schedule,
        schedule_text=schedule_in_words(task.trigger) if task.trigger else None,
        timezone=str(task.zone),
        enabled=task.enabled,
        paused=services.pauses.is_paused(task.name),
        api_trigger=task.api_trigger,
        params=task.params,
        locks=list(task.locks),
        pool=task.pool,
        after=list(task.after),
        after_on=[EndReason(reason) for reason in task.after_on],
        after_mode=task.after_mode,
        after_params=task.after_params,
        starts=services.live.current.starts.get(task.name, []),
        nodes=None if task.nodes is None else list(task.nodes),
        on_every_node=task.on_every_node,
        limits=LimitsOut.of(task.limits) if task.limits is not None else None,
        next_run_at=iso_z_or_none(services.scheduler.next_fire_time(task.name)),
        last_run=RunOut.of(last) if last else None,
        attention=task_states(services, task, last, services.clock.now()),
    )


async def list_tasks(request: web.Request) -> web.StreamResponse:
    """Every task as the listing always gave them; with any parameter, a page."""
    if not request.query:
        return await streamed(request, "application/json; charset=utf-8", _task_list(request))
    services = _services(request)
    query = TaskListQuery.model_validate(_query(request))
    page = await task_page(services, query, lambda task, last: _task_out(services, task, last))
    return web.json_response(text=page)


async def _task_list(request: web.Request) -> AsyncIterator[bytes]:
    """TaskList's JSON, a slice of tasks at a time: the config's tasks are packed (see
    cronwarden/packed.py), and 10,000 tasks built at once, with their last runs read as
    ORM rows, their TaskOut and the whole text, lifted the daemon's memory by a third."""
    services = _services(request)
    table = services.live.tasks
    names = sorted(table)
    for start in range(0, max(len(names), 1), LISTING_SLICE):
        some = names[start : start + LISTING_SLICE]
        last = await services.store.last_runs(some)
        text = ",".join(
            _task_out(services, table[name], last.get(name)).model_dump_json() for name in some
        )
        yield (b'{"tasks":[' if start == 0 else b",") + text.encode()
    yield b"]}"


async def get_task(request: web.Request) -> web.Response:
    services = _services(request)
    task = services.live.task(_task_name(request))
    query = TaskQuery.model_validate(_query(request))
    count = query.next or 0
    last = (await services.store.last_runs([task.name])).get(task.name)
    out = _task_out(services, task, last)
    if count and task.trigger is not None:
        fires = upcoming(task.trigger, task.zone, services.clock.now(), count)
        out.next = [FireOut.model_validate(f.as_json()) for f in fires]
    elif count:
        out.next = []
    if query.definition:
        out.definition = task_definition(task)
    return _json(out)


async def trigger_run(request: web.Request) -> web.Response:
    services = _services(request)
    task_name = _task_name(request)
    services.live.task(task_name)
    body = await _read_body(request, TriggerBody)
    key = _idempotency_key(request)
    query = TriggerQuery.model_validate(_query(request))
    try:
        timing = body.timing(services.clock.now())
    except ValueError as exc:
        raise BadRequest(422, "invalid-request", str(exc)) from None
    run, created = await services.dispatcher.trigger(
        task_name,
        body.params,
        tags=body.tags,
        metadata=body.metadata,
        idempotency_key=key,
        timing=timing,
    )
    return await _new_run_answer(services, run, 201 if created else 200, query.wait)


async def rerun(request: web.Request) -> web.Response:
    services = _services(request)
    query = TriggerQuery.model_validate(_query(request))
    run = await services.dispatcher.rerun(_run_id(request))
    return await _new_run_answer(services, run, 201, query.wait)


async def _new_run_answer(
    services: Services, run: AnyRun, status: int, wait: float | None
) -> web.Response:
    """The run just triggered; with ``wait``, as recorded at its end, or (202) as it is
    when the wait runs out."""
    if wait is not None:
        run = await _wait_for_end(services, run.id, wait)
        if run.status != Status.ENDED:
            status = 202
    response = web.json_response(body=run_json(run), status=status)
    response.headers["Location"] = f"/api/runs/{run.id}"
    return response


async def _wait_for_end(services: Services, run_id: str, seconds: float) -> AnyRun:
    """The run as recorded once it ends, or as it is when ``seconds`` have passed.

    A run this daemon carries is not read back at its end: its feed ends only once the
    end is recorded, and the dispatcher's view of the run then holds what was written (two reads
    less per triggered run, a seventh of the daemon's CPU under sustained triggers).
    """
    carried = services.dispatcher.run_view(run_id)
    with services.log_feeds.follow(run_id) as feed:  # before reading: no end is missed
        run = carried.snapshot() if carried is not None else await services.store.get_run(run_id)
        if run.status == Status.ENDED and (carried is None or feed.ended):
            return run
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not feed.ended:
                    await feed.wait_past(feed.version)
        if carried is not None and feed.ended:
            return carried.snapshot()
    return await services.store.get_run(run_id)


async def _read_body(request: web.Request, model: type[_M]) -> _M:
    raw = await request.read()
    if not raw.strip():
        return model()
    if not is_json_media(request.content_type) and request.content_type != "":
        raise BadRequest(
            415,
            "unsupported-media-type",
            f"the body must be application/json, not {shown_name(request.content_type)}",
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, "invalid-json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "invalid-json", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest(422, "invalid-request", "the body must be a JSON object")
    return model.model_validate(data)


async def list_runs(request: web.Request) -> web.Response:
    return await _run_list(request, _query(request))


async def list_task_runs(request: web.Request) -> web.Response:
    task_name = await _known_task(request)
    return await _run_list(request, {**_query(request), "task_name": task_name})


async def _known_task(request: web.Request) -> str:
    """The task of the URL: configured, or removed from the config but with history
    (only a name that is not configured and never ran is unknown)."""
    services = _services(request)
    task_name = _task_name(request)
    if task_name not in services.live.tasks:
        ran = await services.store.list_runs(RunFilter(task_name=task_name), limit=1)
        if not ran.runs:
            raise TaskNotFound(f"no task is named {task_name!r}, and no run of that name exists")
    return task_name


async def task_stats(request: web.Request) -> web.Response:
    task_name = await _known_task(request)
    query = StatsQuery.model_validate(_query(request))
    summary = summarize(await _services(request).store.task_tally(task_name, query.since))
    return _json(
        TaskStats(
            task=task_name,
            since=iso_z_or_none(query.since),
            runs=summary.runs,
            active=summary.active,
            by_end_reason=summary.by_end_reason,
            success_rate=summary.success_rate,
            duration_ms=DurationStats(
                p50=summary.durations.p50,
                p95=summary.durations.p95,
                max=summary.durations.max,
                sample=summary.durations.sample,
            ),
            last_success_at=iso_z_or_none(summary.last_success_at),
            last_failure_at=iso_z_or_none(summary.last_failure_at),
            cpu_s=CpuStats.model_validate(summary.cpu, from_attributes=True),
            max_rss_bytes=MemoryStats.model_validate(summary.memory, from_attributes=True),
            output_bytes=summary.output_bytes,
        )
    )


async def _run_list(request: web.Request, params: dict[str, Any]) -> web.Response:
    query = RunQuery.model_validate(params)
    page = await _services(request).store.list_runs(
        RunFilter(
            task_name=query.task_name,
            status=query.status,
            end_reason=query.end_reason,
            triggered_by=query.triggered_by,
            start_date=query.start_date,
            end_date=query.end_date,
            search=query.search,
            caused_by=query.caused_by,
            tags=None if query.tag is None else tuple(query.tag),
        ),
        limit=query.limit,
        cursor=query.cursor,
        offset=query.offset,
        ascending=query.sort_direction == "asc",
        with_total=query.total,
        sort_field=query.sort_field,
    )
    # The shape of RunList, serialized directly (see page_fields).
    body: dict[str, Any] = {
        "runs": page_fields(page.runs),
        "next_cursor": page.next_cursor,
        "has_next": page.has_next,
        "prev_cursor": page.prev_cursor,
    }
    if query.total:
        body["total"] = page.total
    return web.json_response(body=json_bytes(body))


async def get_run(request: web.Request) -> web.Response:
    services = _services(request)
    store = services.store
    run_id = _run_id(request)
    expand = set(RunDetailQuery.model_validate(_query(request)).expand or ())
    run = await store.get_run(run_id)
    # A run being written here: its row says 0 bytes until its end is recorded.
    live = services.log_feeds.kept_so_far(run.id) if run.status == Status.RUNNING else None
    shown = {} if live is None else {"log_size": live}
    if not expand:
        return web.json_response(body=run_json(run, **shown))
    fields = (
        run_fields(run)
        | shown
        | {
            "attempts": [run_fields(a) for a in await store.attempts_of(run)]
            if "attempts" in expand
            else None,
            "related": _related(await store.related_to(run)) if "related" in expand else None,
        }
    )
    # Validated: the links come as Run rows and RunOut.of would build them unchecked.
    body = RunDetail.model_validate(fields)
    return _json_of(body, exclude={name for name in EXPANSIONS if name not in expand})


def _related(related: RelatedRuns) -> dict[str, Any]:
    return {
        "rerun_of": None if related.rerun_of is None else run_fields(related.rerun_of),
        "reruns": [run_fields(r) for r in related.reruns],
        "caused_by": [run_fields(r) for r in related.caused_by],
        "chained": [run_fields(r) for r in related.chained],
    }


async def stop_run(request: web.Request) -> web.Response:
    """A run carried by another node sharing the database is stopped by that node: the
    request is stored on the run's row and that node is woken (NOTIFY)."""
    services = _services(request)
    run_id = _run_id(request)
    try:
        run: AnyRun = await services.dispatcher.stop(run_id)
    except CarriedElsewhere:
        asked = await services.fleet.request_stop(run_id)
        run = await services.store.get_run(run_id)
        if not asked:
            raise Conflict(f"run {run_id} has already ended ({run.end_reason})") from None
    return web.json_response(body=run_json(run), status=202)


async def run_log(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    run_id = _run_id(request)
    query = LogQuery.model_validate(dict(request.query))
    relayed = await relay_if_elsewhere(request, services, run_id)
    if relayed is not None:
        return relayed
    if query.follow:
        after = resume_point(request, query.after) or 0
        return await follow_log(request, services, run_id, after=after, stream=query.stream)
    run = await services.store.get_run(run_id)
    page = read_log_page(
        index_path(services.logs_dir, run.id),
        after=query.after,
        limit=query.limit,
        stream=query.stream,
    )
    return _json(
        LogPageOut(
            lines=[
                LogLineOut(n=ln.n, ts=ln.ts, stream=ln.stream, text=ln.text) for ln in page.lines
            ],
            next_after=page.next_after,
            has_more=page.has_more,
        )
    )


async def events(request: web.Request) -> web.StreamResponse:
    query = EventsQuery.model_validate(_query(request))
    tasks = {t.strip() for t in (query.task or "").split(",") if t.strip()}
    after = resume_point(request, query.after)
    return await follow_events(request, _services(request), after=after, tasks=tasks)


async def run_log_raw(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    run_id = _run_id(request)
    RawLogQuery.model_validate(dict(request.query))
    relayed = await relay_if_elsewhere(request, services, run_id)
    if relayed is not None:
        return relayed
    return await raw_log(request, services, run_id)


async def list_artifacts(request: web.Request) -> web.Response:
    services = _services(request)
    run = await services.store.get_run(_run_id(request))  # 404 for an unknown run
    return _json(ArtifactList.of(await services.artifacts.records.listing(run.id)))


async def get_artifact(request: web.Request) -> web.StreamResponse:
    """A kept artifact's bytes: from this node's disk, or relayed from the node that
    ran the run (the listing, in the database, says first whether it is kept)."""
    services = _services(request)
    run_id = _run_id(request)
    name = request.match_info["name"]
    problem = name_problem(name)
    if problem is not None:
        raise BadRequest(
            400,
            "invalid-artifact-name",
            f"{shown_name(name)} cannot name an artifact: {problem}; names are {NAMES}",
        )
    run = await services.store.get_run(run_id)
    entry = await services.artifacts.records.find(run.id, name)
    if entry is None or not entry.kept:
        why = "" if entry is None else f" (it was dropped: {entry.dropped})"
        raise ArtifactNotFound(f"run {run.id} keeps no artifact named {shown_name(name)}{why}")
    directory = services.artifacts.dir_of(run.id)
    relayed = await relay_if_elsewhere(
        request, services, run.id, here=directory, what="the artifacts"
    )
    if relayed is not None:
        return relayed
    return await artifact_file(request, directory, name)


async def pause_task(request: web.Request) -> web.Response:
    await _services(request).pauses.pause(_task_name(request))
    return await get_task(request)


async def resume_task(request: web.Request) -> web.Response:
    await _services(request).pauses.resume(_task_name(request))
    return await get_task(request)


async def info(request: web.Request) -> web.Response:
    services = _services(request)
    access: Access = request[ACCESS]
    now = services.clock.now()
    body = InfoOut(
        version=__version__,
        node=services.fleet.node,
        started_at=iso_z_or_none(services.started_at),
        uptime_s=round((now - services.started_at).total_seconds(), 3),
        config_path=str(services.live.current.path),
        tasks=len(services.live.tasks),
        active_runs=services.dispatcher.active_runs,
        runs=await _run_count(services),
        retention=RetentionOut.of(services.retention.last),
        access=AccessOut(token=access.token, scope=access.scope),
        config_differs=services.fleet.config_differs,
        failure_end_reasons=list(FAILURE_END_REASONS),
    )
    return _json(body)


async def nodes(request: web.Request) -> web.Response:
    services = _services(request)
    lease = services.live.current.daemon.node_lease
    mine = await services.live.tasks_hash()
    try:
        seen = await services.fleet.registry.seen()
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(f"the database cannot be reached: {exc}") from exc
    listed = [
        NodeOut(
            name=n.name,
            state="alive" if n.alive(lease) else "dead" if n.taken_over_by else "lapsed",
            taken_over_by=n.taken_over_by,
            started_at=iso_z(n.started_at),
            heartbeat_at=iso_z(n.heartbeat_at),
            silent_s=round(n.silent_for.total_seconds(), 3),
            running_runs=n.running_runs,
            config_hash=n.config_hash,
            same_config=n.config_hash == mine,
            version=n.version,
            pid=n.pid,
            api_url=n.api_url,
            this_node=n.name == services.fleet.node,
        )
        for n in seen
    ]
    return _json(NodeList(nodes=listed))


async def _run_count(services: Services) -> int | None:
    try:
        return await services.store.run_count()
    except StoreUnavailable:
        return None


async def metrics(request: web.Request) -> web.StreamResponse:
    return await streamed(request, METRICS_CONTENT_TYPE, _services(request).metrics.exposition())


async def reload(request: web.Request) -> web.Response:
    """Reloads this node, then asks the others sharing the database to re-read their
    own config files (SIGHUP, sent per host, reloads that host only)."""
    services = _services(request)
    changes = await services.reload()
    await services.fleet.ask_reload()
    return _json(ReloadOut(reloaded=True, **changes))
