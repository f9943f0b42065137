"""A run's log and its artifacts live on the node that ran it.  Asked of another node
sharing the database, the request is relayed to that node's API, whose address the
nodes table holds; a node that cannot be reached is named in a 409, so the caller knows
where they are.  The caller's Authorization travels along: nodes sharing a database
share their config, tokens included."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from cronwarden.api.keys import Services
from cronwarden.errors import Conflict
from cronwarden.runlog.layout import index_path

RELAYED = "X-Cronwarden-Relayed"  # a relayed request is answered where it lands: no loops
FROM_NODE = "X-Cronwarden-Node"
_FORWARDED = ("Authorization", "Last-Event-ID", "Accept")
_RETURNED = (
    "Content-Type",
    "Content-Length",
    "Cache-Control",
    "Content-Disposition",
    "X-Content-Type-Options",
)
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5, sock_read=None)


async def relay_if_elsewhere(
    request: web.Request,
    services: Services,
    run_id: str,
    *,
    here: Path | None = None,
    what: str = "the log",
) -> web.StreamResponse | None:
    """The relayed answer, or None when ``what`` is here (``here``, the run's log index
    unless told, exists; or the run is this node's; or this node is alone)."""
    if not services.fleet.shared or RELAYED in request.headers:
        return None
    if (here or index_path(services.logs_dir, run_id)).exists():
        return None
    run = await services.store.get_run(run_id)
    if run.node == services.fleet.node:
        return None
    api_url = await services.fleet.registry.api_url_of(run.node)
    where = f"run {run_id} ran on node {run.node}, which holds {what}"
    if api_url is None:
        raise Conflict(f"{where} and has no TCP API address to ask (it listens on a socket)")
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    headers[RELAYED] = services.fleet.node
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        try:
            upstream = await session.get(api_url + request.rel_url.path_qs, headers=headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Conflict(f"{where} and cannot be reached at {api_url}: {exc}") from None
        async with upstream:
            response = web.StreamResponse(status=upstream.status)
            for name in _RETURNED:
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
            response.headers[FROM_NODE] = run.node
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # either side went away: the caller may ask again, from where it was
    return response
