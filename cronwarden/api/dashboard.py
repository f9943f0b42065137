"""The dashboard's files (cronwarden/web/static), read once from the package and served
at ``/`` and ``/ui/``.  They hold no data: the page reads everything through the API
with the visitor's token, so they are served to anyone who can reach the listener.

Each file is gzipped once, as it is read, and served so to a browser that takes gzip
(all do): two thirds less to send, and no compressing on every load.  The two forms
have ETags of their own, as RFC 9110 wants of two representations."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib.resources import files

from aiohttp import hdrs, web

from cronwarden.api.compression import GZIP, vary

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
    gzipped: bytes
    content_type: str
    etag: str

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


def _load() -> dict[str, _File]:
    loaded = {}
    for item in files("cronwarden.web").joinpath("static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if suffix in _TYPES:
            body = item.read_bytes()
            etag = hashlib.sha256(body).hexdigest()[:20]
            # mtime=0: the same bytes on every start, as the ETag promises.
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            loaded[item.name] = _File(body, packed, _TYPES[suffix], f'"{etag}"')
    return loaded


_FILES = _load()


def _serve(request: web.Request, name: str) -> web.Response:
    found = _FILES.get(name)
    if found is None:
        raise web.HTTPNotFound()
    zipped = bool(request.get(GZIP))
    etag = found.gzip_etag if zipped else found.etag
    headers = {**_HEADERS, "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        response = web.Response(status=304, headers=headers)
    elif zipped:
        headers[hdrs.CONTENT_ENCODING] = "gzip"
        response = web.Response(body=found.gzipped, headers=headers)
    else:
        response = web.Response(body=found.body, headers=headers)
    response.headers[hdrs.CONTENT_TYPE] = found.content_type
    vary(response)
    return response


async def index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def asset(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


def add_dashboard_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/ui/{name}", asset)
