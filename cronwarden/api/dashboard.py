"""The dashboard's files (cronwarden/web/static), read once from the package and served
at ``/`` and ``/ui/``.  They hold no data: the page reads everything through the API
with the visitor's token, so they are served to anyone who can reach the listener."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from aiohttp import web

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_HEADERS = {
    # Revalidated on each load (cheap with the ETag): an upgraded daemon's page is
    # never mixed with cached files of the old one.
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


def _load() -> dict[str, _File]:
    loaded = {}
    for item in files("cronwarden.web").joinpath("static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if suffix in _TYPES:
            body = item.read_bytes()
            etag = hashlib.sha256(body).hexdigest()[:20]
            loaded[item.name] = _File(body, _TYPES[suffix], f'"{etag}"')
    return loaded


_FILES = _load()


def _serve(request: web.Request, name: str) -> web.Response:
    found = _FILES.get(name)
    if found is None:
        raise web.HTTPNotFound()
    headers = {**_HEADERS, "ETag": found.etag}
    if found.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, headers={**headers, "Content-Type": found.content_type})


async def index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def asset(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


def add_dashboard_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/ui/{name}", asset)
