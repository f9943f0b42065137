"""One error middleware: domain errors and HTTP errors become problem+json, never a trace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from cronwarden.api.auth import authorize
from cronwarden.api.keys import SERVICES
from cronwarden.api.schemas import Problem
from cronwarden.errors import (
    ArtifactNotFound,
    ConfigError,
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InvalidCursor,
    InvalidExpand,
    InvalidMetadata,
    InvalidParams,
    InvalidRunId,
    InvalidTags,
    RunNotFound,
    ShuttingDown,
    StoreUnavailable,
    TaskNotFound,
    Unauthorized,
)
from cronwarden.support.text import printable

log = structlog.get_logger("cronwarden.api")
ACCESS = "cronwarden.access"  # the request's Access, set before its handler runs
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DOMAIN: list[tuple[type[Exception], int, str]] = [
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (RunNotFound, 404, "run-not-found"),
    (ArtifactNotFound, 404, "artifact-not-found"),
    (TaskNotFound, 404, "task-not-found"),
    (InvalidRunId, 400, "invalid-run-id"),
    (InvalidCursor, 400, "invalid-cursor"),
    (InvalidExpand, 400, "invalid-expand"),
    (InvalidTags, 400, "invalid-tags"),
    (InvalidMetadata, 400, "invalid-metadata"),
    (InvalidParams, 422, "invalid-params"),
    (IdempotencyMismatch, 422, "idempotency-key-reused"),
    (ShuttingDown, 409, "shutting-down"),
    (StoreUnavailable, 503, "database-unavailable"),
    (Conflict, 409, "conflict"),
]


class BadRequest(Exception):
    """A request the handler cannot read (bad JSON, wrong content type)."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug


def problem(
    request: web.Request,
    status: int,
    slug: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
) -> web.Response:
    body = Problem(
        type=f"urn:cronwarden:problem:{slug}",
        title=HTTPStatus(status).phrase,
        status=status,
        # A detail may quote a header or a path: bytes that are not UTF-8 arrive as lone
        # surrogates, which no response can carry, so they are escaped here, once.
        detail=printable(detail),
        instance=printable(request.path[:MAX_INSTANCE]),
        errors=errors or [],
    )
    return web.json_response(
        text=body.model_dump_json(), status=status, content_type="application/problem+json"
    )


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "body",
            "message": err["msg"].removeprefix("Value error, "),
        }
        for err in exc.errors()
    ]


MAX_URL = 8 * 1024
MAX_INSTANCE = 1024
MAX_HEADER = 8 * 1024


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if len(request.raw_path) > MAX_URL:
        return problem(request, 414, "uri-too-long", f"the URL is longer than {MAX_URL} bytes")
    for name, value in request.headers.items():
        if len(name) + len(value) > MAX_HEADER:
            detail = f"header {name[:100]!r} is longer than {MAX_HEADER} bytes"
            return problem(request, 431, "header-too-large", detail)
    try:
        request[ACCESS] = authorize(request, request.app[SERVICES].live.current.daemon)
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
            exc.status, "http-error"
        )
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 405:
            allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ())))
            detail = f"{request.method} is not allowed here; allowed: {allowed}"
            response = problem(request, 405, slug, detail)
            response.headers["Allow"] = allowed
            return response
        if exc.status == 404:
            detail = f"no such endpoint: {request.path}"
        return problem(request, exc.status, slug, detail)
    except BadRequest as exc:
        return problem(request, exc.status, exc.slug, str(exc))
    except ValidationError as exc:
        return problem(
            request, 422, "invalid-request", "the request is invalid", validation_errors(exc)
        )
    except ConfigError as exc:
        return problem(
            request,
            422,
            "invalid-config",
            f"{exc.path} is invalid; the running configuration was kept",
            [{"message": p} for p in exc.problems],
        )
    except InvalidParams as exc:
        return problem(request, 422, "invalid-params", str(exc), list(exc.errors))
    except tuple(cls for cls, _, _ in _DOMAIN) as exc:
        status, slug = next((s, g) for cls, s, g in _DOMAIN if isinstance(exc, cls))
        response = problem(request, status, slug, str(exc))
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="cronwarden"'
        elif status == 503:
            response.headers["Retry-After"] = "5"
        return response
    except Exception:
        log.exception("api.internal_error", path=request.path, method=request.method)
        return problem(
            request,
            500,
            "internal-error",
            "cronwarden hit an internal error; the daemon log has the details",
        )
