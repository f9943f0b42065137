"""gzip for the answers that gain from it, when the client says it takes gzip.

A listing of 10,000 tasks is ~7 MB of JSON and a tenth of that compressed; the
dashboard's files shrink by two thirds.  So an answer is compressed when the request's
Accept-Encoding takes gzip and the answer is text (JSON, problem+json, the metrics) of
at least MIN_SIZE bytes: a whole body here, a streamed one (``streamed``) as it is
written.  Event streams never are: a compressor holds back what it has not filled a
block with, and an event must reach its follower when it happens.  The dashboard's
files are compressed once, when they are loaded (api/dashboard.py).

gzip, not deflate, though aiohttp would pick deflate first: "deflate" has been sent
both as zlib and as raw deflate data, and some clients read only one of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.web_response import ContentCoding

MIN_SIZE = 1024  # bytes; below this, the gzip header and the work are not worth it
GZIP = web.RequestKey("gzip", bool)  # the request's Accept-Encoding takes gzip
_TEXT = ("application/json", "application/problem+json", "text/plain")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (RFC 9110 section 12.5.3): named,
    or through ``*``, with a q-value above 0; a named refusal wins over ``*``."""
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.strip()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def _compressible(response: web.StreamResponse) -> bool:
    return response.content_type in _TEXT and hdrs.CONTENT_ENCODING not in response.headers


def vary(response: web.StreamResponse) -> None:
    """Caches must keep the compressed and plain answers apart."""
    if hdrs.ACCEPT_ENCODING not in response.headers.get(hdrs.VARY, ""):
        response.headers.add(hdrs.VARY, hdrs.ACCEPT_ENCODING)


def compress_stream(request: web.Request, response: web.StreamResponse) -> None:
    """For a streamed answer, before it is prepared (its size is not known yet)."""
    if _compressible(response):
        vary(response)
        if request.get(GZIP):
            response.enable_compression(ContentCoding.gzip)


@web.middleware
async def compression_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[GZIP] = accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
    response = await handler(request)
    if not isinstance(response, web.Response) or response.prepared:
        return response  # a stream: compressed as it was prepared, or never
    if not _compressible(response):
        return response
    vary(response)
    body = response.body
    big = isinstance(body, bytes | bytearray) and len(body) >= MIN_SIZE
    if request[GZIP] and big and request.method != "HEAD" and response.status not in (204, 304):
        response.enable_compression(ContentCoding.gzip)
    return response
