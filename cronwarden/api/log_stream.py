"""A run's log as a live stream (Server-Sent Events) and as raw output.

Following reads the lines from the log itself after each nudge from the run's feed,
a page at a time, so what a follower has not taken yet stays on disk, not in memory.
A follower that takes longer than SEND_TIMEOUT to accept an event is dropped (its
connection aborted); it can reconnect and resume with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from cronwarden.api.keys import Services
from cronwarden.api.middlewares import BadRequest
from cronwarden.api.schemas import RunOut
from cronwarden.model import Status
from cronwarden.runlog.feeds import LogFeed
from cronwarden.runlog.layout import index_path
from cronwarden.runlog.model import LogLine
from cronwarden.runlog.reader import iter_raw, read_log_page

HEARTBEAT = 15.0  # seconds between ": ping" comments on a quiet stream
SEND_TIMEOUT = 30.0
PAGE = 1000

log = structlog.get_logger("cronwarden.api")


def resume_point(request: web.Request, after: int) -> int:
    """Last-Event-ID (an EventSource reconnecting) wins over ``?after=``."""
    header = request.headers.get("Last-Event-ID")
    if header is None or not header.strip():
        return after
    if not header.strip().isdigit():
        raise BadRequest(
            400,
            "invalid-last-event-id",
            f"Last-Event-ID {header[:40]!r} is not a line number; it must be the id of "
            "the last event received (a whole number >= 0)",
        )
    return int(header.strip())


async def follow_log(
    request: web.Request, services: Services, run_id: str, *, after: int, stream: str | None
) -> web.StreamResponse:
    path = index_path(services.logs_dir, run_id)
    # Follow before reading the run: an end recorded in between still wakes us.
    with services.log_feeds.follow(run_id) as feed:
        run = await services.store.get_run(run_id)  # 404 before the stream starts
        async with sse_response(
            request, sep="\n", ping_interval=HEARTBEAT, send_timeout=SEND_TIMEOUT
        ) as sse:
            try:
                await _stream(
                    sse,
                    services,
                    feed,
                    run_id,
                    path,
                    after,
                    stream,
                    ended=run.status == Status.ENDED,
                )
            except TimeoutError:
                if request.transport is not None:
                    request.transport.abort()  # its unsent events would wait forever
                log.warning(
                    "log.follower_dropped",
                    run_id=run_id,
                    reason=f"took no event for {SEND_TIMEOUT:g}s",
                )
            except ConnectionError as exc:
                # It went away, or the kernel gave up on a peer that acknowledged
                # nothing for SEND_TIMEOUT (TCP_USER_TIMEOUT): either way, it is gone.
                log.info("log.follower_left", run_id=run_id, reason=str(exc) or type(exc).__name__)
    return sse


async def _stream(
    sse: EventSourceResponse,
    services: Services,
    feed: LogFeed,
    run_id: str,
    path: Path,
    after: int,
    stream: str | None,
    *,
    ended: bool,
) -> None:
    while True:
        seen = feed.version
        ended = ended or feed.ended  # before reading: every line written by then is read
        page = read_log_page(path, after=after, limit=PAGE, stream=stream)
        if page.lines:
            await _send_lines(sse, page.lines)
            after = page.next_after
        if page.has_more:
            continue
        if ended:
            final = await services.store.get_run(run_id)
            await sse.send(RunOut.of(final).model_dump_json(), event="end")
            return
        try:
            async with asyncio.timeout(HEARTBEAT):
                await feed.wait_past(seen)
        except TimeoutError:
            # Quiet for a while: a run carried by another node ends without a nudge here.
            ended = (await services.store.get_run(run_id)).status == Status.ENDED


async def _send_lines(sse: EventSourceResponse, lines: list[LogLine]) -> None:
    """One write per page (a page can hold a thousand lines): each line is a default
    ``message`` event, its id the line number, its data the line as JSON (which never
    holds a raw newline, so one ``data:`` field is the whole event)."""
    frames = "".join(
        f"id: {line.n}\ndata: {json.dumps(asdict(line), ensure_ascii=False)}\n\n" for line in lines
    )
    async with asyncio.timeout(SEND_TIMEOUT):
        await sse.write(frames.encode())


async def raw_log(request: web.Request, services: Services, run_id: str) -> web.StreamResponse:
    run = await services.store.get_run(run_id)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    try:
        for chunk in iter_raw(index_path(services.logs_dir, run.id)):
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        pass  # the reader went away (a pipe into `head`, say): nothing to answer
    return response
