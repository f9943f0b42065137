"""The OpenAPI 3.1 document, built from the route table and the pydantic models: the
routes the app serves and the document that describes them come from one list, so
they cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cronwarden import __version__
from cronwarden.api.schemas import Problem
from cronwarden.artifacts.names import NAMES
from cronwarden.config import TASK_NAME_RE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"
SSE = "text/event-stream"
TEXT = "text/plain"
BINARY = "application/octet-stream"

# Every operation can answer these with a problem document (RFC 9457): a request it
# cannot read, a token missing or short of scope, an unknown task or run, a body or
# URL or header too large, a body not JSON, invalid values, the database unreachable.
COMMON_PROBLEMS = {
    400: "The request cannot be read (bad JSON, a malformed run id, cursor or header), or "
    "asks for what the API does not take (an unknown expand, too many or malformed tags, "
    "metadata not an object or too large); `detail` says what is allowed.",
    401: "A token is required (when tokens are configured).",
    403: "The token lacks the scope this needs, or a browser request came from another origin.",
    408: "The request body did not arrive within 30 s.",
    404: "No such task or run.",
    405: "The method is not allowed here.",
    413: "The body is larger than max_body.",
    414: "The URL is longer than 8 KiB.",
    415: "A POST is not application/json (empty bodies included).",
    421: "The Host header is not a name this daemon answers to ([daemon] allowed_hosts).",
    422: "A parameter or the body is invalid; `errors` says which and why.",
    431: "A header is longer than 8 KiB.",
    503: "The database is unreachable; retry after Retry-After seconds.",
}
PROBLEM_TYPES = [
    "invalid-request",
    "invalid-json",
    "invalid-params",
    "invalid-run-id",
    "invalid-cursor",
    "invalid-expand",
    "invalid-tags",
    "invalid-metadata",
    "invalid-last-event-id",
    "invalid-idempotency-key",
    "idempotency-key-reused",
    "run-not-found",
    "artifact-not-found",
    "invalid-artifact-name",
    "task-not-found",
    "misdirected-host",
    "cross-origin",
    "request-timeout",
    "too-many-connections",
    "invalid-task-name",
    "not-found",
    "method-not-allowed",
    "unauthorized",
    "forbidden",
    "conflict",
    "shutting-down",
    "body-too-large",
    "uri-too-long",
    "header-too-large",
    "unsupported-media-type",
    "invalid-config",
    "database-unavailable",
    "http-error",
    "internal-error",
]


# One server-sent event, as a client sees it: its data is JSON text (a log line, a run,
# or a change), its id a line number or event id.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string"},
        "data": {"type": "string"},
    },
}
# Where a run just created can be looked at next.
RUN_LINKS = {
    name: {"operationId": name, "parameters": {"run_id": "$response.body#/id"}}
    for name in ("get_run", "stop_run", "rerun", "run_log", "run_log_raw", "list_artifacts")
}


@dataclass(frozen=True)
class Reply:
    description: str
    model: type[BaseModel] | None = None
    media: tuple[str, ...] = (JSON,)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    replies: dict[int, Reply]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    problems: dict[int, str] = field(default_factory=dict)  # beyond the common ones
    open: bool = False  # needs no token
    headers: dict[str, str] = field(default_factory=dict)  # request headers it reads

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def build_spec(operations: Sequence[Operation], tasks: Sequence[str] = ()) -> dict[str, Any]:
    """The document; ``tasks``, names of configured tasks, become the examples of the
    ``{task}`` path parameter."""
    models: set[type[BaseModel]] = {Problem}
    for op in operations:
        models |= {r.model for r in op.replies.values() if r.model is not None}
        models |= {m for m in (op.query, op.body) if m is not None}
    inputs = {m for op in operations for m in (op.query, op.body) if m is not None}
    _, schema = models_json_schema(
        [(m, "validation" if m in inputs else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(schema.get("$defs", {}))
    schemas["Problem"]["description"] = (
        "RFC 9457 problem details; `type` is urn:cronwarden:problem:SLUG, SLUG one of: "
        + ", ".join(PROBLEM_TYPES)
    )
    paths: dict[str, Any] = {}
    for op in operations:
        paths.setdefault(_spec_path(op.path), {})[op.method.lower()] = _operation(
            op, schemas, tasks
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cronwarden",
            "version": __version__,
            "description": "Cron-style jobs with retries, timeouts, capped logs and "
            "durable history. Errors are application/problem+json.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


def _operation(op: Operation, schemas: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    parameters = []
    for name in _path_names(op.path):
        parameter = {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
        if name == "task" and tasks:
            parameter["examples"] = {task: {"value": task} for task in tasks}
        parameters.append(parameter)
    if op.query is not None:
        parameters += _query_parameters(schemas[op.query.__name__])
    for name, description in op.headers.items():
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": description,
            }
        )
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        ref = {"$ref": f"#/components/schemas/{op.body.__name__}"}
        spec["requestBody"] = {"required": False, "content": {JSON: {"schema": ref}}}
    responses: dict[str, Any] = {}
    for status, reply in op.replies.items():
        content: dict[str, Any] = {}
        for media in reply.media:
            if media == JSON and reply.model is not None:
                model_ref = f"#/components/schemas/{reply.model.__name__}"
                content[media] = {"schema": {"$ref": model_ref}}
            elif media == SSE:
                content[media] = {"schema": SSE_EVENT}
            else:
                content[media] = {"schema": {"type": "string"}}
        responses[str(status)] = {"description": reply.description, "content": content}
        if reply.model is not None and reply.model.__name__ == "RunOut" and status in (201, 202):
            responses[str(status)]["links"] = RUN_LINKS
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status, description in {**COMMON_PROBLEMS, **op.problems}.items():
        responses.setdefault(str(status), {"description": description, "content": problem})
    spec["responses"] = responses
    if op.open:
        spec["security"] = [{}]
    return spec


def _spec_path(path: str) -> str:
    """The route's path as OpenAPI writes it: ``{name:.+}`` (a parameter that may hold
    '/') is ``{name}``."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in _spec_path(path).split("/") if part.startswith("{")]


def _path_schema(name: str) -> dict[str, Any]:
    if name == "run_id":
        return {"type": "string", "format": "uuid"}
    if name == "name":
        return {"type": "string", "minLength": 1, "description": f"an artifact's name: {NAMES}"}
    return {"type": "string", "pattern": TASK_NAME_RE.pattern}


def _query_parameters(model_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field of a query model as a query parameter (a list field is
    comma-separated: ``status=pending,running``)."""
    required = set(model_schema.get("required", []))
    parameters = []
    for name, prop in model_schema.get("properties", {}).items():
        schema = _without_null(prop)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": schema,
        }
        if schema.get("type") == "array":
            parameter["style"], parameter["explode"] = "form", False
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: ``X | None`` is just X there."""
    options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
    schema = {k: v for k, v in prop.items() if k not in ("anyOf", "title", "description")}
    if schema.get("default", "") is None:
        del schema["default"]  # absent, not null
    if len(options) == 1:
        return {**schema, **options[0]}
    return {**schema, "anyOf": options} if options else schema
