"""The URL map of DESIGN.md (HTTP API): each operation once, with what it takes and
answers; the app's routes and its OpenAPI document are both made from this list."""

from __future__ import annotations

from aiohttp import web

from cronwarden.api import handlers
from cronwarden.api.dashboard import add_dashboard_routes
from cronwarden.api.keys import SERVICES
from cronwarden.api.locks import list_locks
from cronwarden.api.openapi import BINARY, JSON, SSE, TEXT, Operation, Reply, build_spec
from cronwarden.api.reports import ReportBody, report_run
from cronwarden.api.schemas import (
    ArtifactList,
    EventsQuery,
    Health,
    InfoOut,
    LockList,
    LocksQuery,
    LogPageOut,
    LogQuery,
    NodeList,
    RawLogQuery,
    ReloadOut,
    RunDetail,
    RunDetailQuery,
    RunList,
    RunOut,
    RunQuery,
    StatsQuery,
    TaskListQuery,
    TaskOut,
    TaskPage,
    TaskQuery,
    TaskStats,
    TriggerBody,
    TriggerQuery,
)

_NEW_RUN = {
    201: Reply("The run was created (with ?wait=, as recorded at its end).", RunOut),
    200: Reply("A repeat of an Idempotency-Key request: the run it made.", RunOut),
    202: Reply("With ?wait=: the wait ran out; the run as it is now.", RunOut),
}
_REFUSED = {409: "Refused by the task's overlap or queue limit, or the daemon is stopping."}
_ELSEWHERE = {
    409: "The run's log is on another node (the one that ran it) that cannot be asked "
    "now: the detail names it and why."
}
_RESUME_LOG = "with follow=true: resume after this line number (a reconnecting client's)"

OPERATIONS = [
    Operation(
        "GET",
        "/health",
        handlers.health,
        "Liveness and readiness: database, scheduler, data_dir.",
        {200: Reply("All is well.", Health), 503: Reply("Unavailable or degraded.", Health)},
        open=True,
    ),
    Operation(
        "GET",
        "/metrics",
        handlers.metrics,
        "Prometheus metrics (text exposition format); needs the read scope unless "
        "[daemon] metrics_open = true.",
        {200: Reply("The metrics.", None, (TEXT,))},
    ),
    Operation("GET", "/api/info", handlers.info, "This daemon.", {200: Reply("It.", InfoOut)}),
    Operation(
        "GET",
        "/api/tasks",
        handlers.list_tasks,
        "Configured tasks. Without parameters, every one (sorted by name); with any, a "
        "page of them (limit, cursor, offset) sorted by name, by attention (failing, "
        "stuck, overdue, running, paused first) or by next fire, filtered by state, with "
        "the total and the counts by state when asked.",
        {200: Reply("Them, or a page of them.", TaskPage)},
        query=TaskListQuery,
    ),
    Operation(
        "GET",
        "/api/tasks/{task}",
        handlers.get_task,
        "One task, optionally with its next fire times.",
        {200: Reply("The task.", TaskOut)},
        query=TaskQuery,
    ),
    Operation(
        "POST",
        "/api/tasks/{task}/runs",
        handlers.trigger_run,
        "Start a run now (Idempotency-Key header honoured for 24 h).",
        _NEW_RUN,
        query=TriggerQuery,
        body=TriggerBody,
        problems=_REFUSED,
        headers={
            "Idempotency-Key": "the same key (with the same body) within 24 h answers 200 "
            "with the run the first request started, instead of starting another "
            "(1 to 255 printable characters)"
        },
    ),
    Operation(
        "GET",
        "/api/tasks/{task}/runs",
        handlers.list_task_runs,
        "A task's runs, also of a task no longer configured.",
        {200: Reply("A page of runs.", RunList)},
        query=RunQuery,
    ),
    Operation(
        "GET",
        "/api/tasks/{task}/stats",
        handlers.task_stats,
        "What a task's runs came to: counts by end_reason, success rate, durations, "
        "last success and failure (?since= as start_date).",
        {200: Reply("The figures.", TaskStats)},
        query=StatsQuery,
    ),
    Operation(
        "POST",
        "/api/tasks/{task}/pause",
        handlers.pause_task,
        "Stop firing the task's schedule (persists across restarts).",
        {200: Reply("The task.", TaskOut)},
    ),
    Operation(
        "POST",
        "/api/tasks/{task}/resume",
        handlers.resume_task,
        "Fire the task's schedule again (no catch-up of the pause).",
        {200: Reply("The task.", TaskOut)},
    ),
    Operation(
        "GET",
        "/api/runs",
        handlers.list_runs,
        "Runs, newest first, with filters and a keyset cursor.",
        {200: Reply("A page of runs.", RunList)},
        query=RunQuery,
    ),
    Operation(
        "GET",
        "/api/runs/{run_id}",
        handlers.get_run,
        "One run; ?expand=attempts,related adds every attempt of its fire and the runs it "
        "repeats, was repeated by, was started by and started.",
        {200: Reply("The run.", RunDetail)},
        query=RunDetailQuery,
    ),
    Operation(
        "PATCH",
        "/api/runs/{run_id}",
        report_run,
        "A running job reports its stage, progress (0 to 1) and output (any JSON value, "
        "at most 64 KiB): any of them, null clearing one. Authorised only by the run's own "
        "token, from its environment: Authorization: Bearer $CRONWARDEN_RUN_TOKEN "
        "(`cronwarden report` sends it); no daemon token is taken here, and a run's token "
        "is refused by every other operation.",
        {200: Reply("Written: the run as it is now.", RunOut)},
        body=ReportBody,
        problems={
            401: "No token, or not this run's token.",
            403: "Another run's token.",
            409: "The run has ended: a run reports only until it ends.",
        },
    ),
    Operation(
        "POST",
        "/api/runs/{run_id}/stop",
        handlers.stop_run,
        "Stop a run (a waiting one ends at once).",
        {202: Reply("Stopping: the run as it is now.", RunOut)},
        problems={409: "The run has ended, or runs on another node."},
    ),
    Operation(
        "POST",
        "/api/runs/{run_id}/rerun",
        handlers.rerun,
        "A new run of the same task with the same params.",
        {k: v for k, v in _NEW_RUN.items() if k != 200},
        query=TriggerQuery,
        problems=_REFUSED,
    ),
    Operation(
        "GET",
        "/api/runs/{run_id}/log",
        handlers.run_log,
        "A page of the run's output lines; ?follow=true streams them as they come "
        "(Server-Sent Events: id = line number, then an `end` event).",
        {200: Reply("A page, or the stream.", LogPageOut, (JSON, SSE))},
        query=LogQuery,
        problems=_ELSEWHERE,
        headers={"Last-Event-ID": _RESUME_LOG},
    ),
    Operation(
        "GET",
        "/api/runs/{run_id}/log/raw",
        handlers.run_log_raw,
        "The run's output as it came, streams interleaved.",
        {200: Reply("The bytes.", None, (TEXT,))},
        query=RawLogQuery,
        problems=_ELSEWHERE,
    ),
    Operation(
        "GET",
        "/api/runs/{run_id}/artifacts",
        handlers.list_artifacts,
        "The files the run left in $CRONWARDEN_ARTIFACTS_DIR, listed when it ended: "
        "those kept (size, sha256) and those dropped, with why.",
        {200: Reply("The listing.", ArtifactList)},
    ),
    Operation(
        "GET",
        "/api/runs/{run_id}/artifacts/{name:.+}",
        handlers.get_artifact,
        "One kept artifact's bytes, as a download (relayed from the node that ran it).",
        {200: Reply("The bytes.", None, (BINARY,))},
        problems={
            400: "The name has a '..' part, a NUL, or is an absolute path (or the run id "
            "is malformed).",
            404: "No such run, or the run keeps no artifact of that name.",
            409: "The run's node holds the file and cannot be reached.",
        },
    ),
    Operation(
        "GET",
        "/api/nodes",
        handlers.nodes,
        "The daemons sharing this database: heartbeat, state, running runs, config hash.",
        {200: Reply("Them.", NodeList)},
    ),
    Operation(
        "GET",
        "/api/locks",
        list_locks,
        "Named locks (task key locks) and pools ([pools.NAME]): size, the tasks naming "
        "each, the runs holding it on every node, and the runs of this node waiting for it "
        "(each node lists its own waiting runs).",
        {200: Reply("Them.", LockList)},
        query=LocksQuery,
    ),
    Operation(
        "POST",
        "/api/reload",
        handlers.reload,
        "Re-read the config file; a bad file keeps the running config (422).",
        {200: Reply("What changed.", ReloadOut)},
    ),
    Operation(
        "GET",
        "/api/events",
        handlers.events,
        "Runs created, started, reported on by their job (run.reported) and ended, tasks "
        "paused and resumed, reloads, as Server-Sent Events (resumable with Last-Event-ID).",
        {200: Reply("The stream.", None, (SSE,))},
        query=EventsQuery,
        headers={"Last-Event-ID": "resume after this event id (a reconnecting client's)"},
    ),
]


EXAMPLE_TASKS = 10


async def openapi(request: web.Request) -> web.Response:
    """The document, with some configured tasks as examples (it follows reloads)."""
    tasks = list(request.app[SERVICES].live.tasks)[:EXAMPLE_TASKS]
    return web.json_response(build_spec(OPERATIONS, tasks))


def add_routes(app: web.Application) -> None:
    app.router.add_routes([web.route(op.method, op.path, op.handler) for op in OPERATIONS])
    app.router.add_get("/openapi.json", openapi)
    add_dashboard_routes(app)
