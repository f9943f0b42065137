"""The URL map of DESIGN.md (HTTP API)."""

from __future__ import annotations

from aiohttp import web

from cronwarden.api import handlers


def add_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.get("/health", handlers.health),
            web.get("/api/info", handlers.info),
            web.get("/api/tasks", handlers.list_tasks),
            web.get("/api/tasks/{task}", handlers.get_task),
            web.post("/api/tasks/{task}/runs", handlers.trigger_run),
            web.get("/api/tasks/{task}/runs", handlers.list_task_runs),
            web.post("/api/tasks/{task}/pause", handlers.pause_task),
            web.post("/api/tasks/{task}/resume", handlers.resume_task),
            web.get("/api/runs", handlers.list_runs),
            web.get("/api/runs/{run_id}", handlers.get_run),
            web.post("/api/runs/{run_id}/stop", handlers.stop_run),
            web.post("/api/runs/{run_id}/rerun", handlers.rerun),
            web.get("/api/runs/{run_id}/log", handlers.run_log),
            web.get("/api/runs/{run_id}/log/raw", handlers.run_log_raw),
            web.post("/api/reload", handlers.reload),
            web.get("/api/events", handlers.events),
        ]
    )
