"""Live streams (Server-Sent Events): a run's log, and the daemon's events; a run's
raw output; and answers too large to hold whole (``streamed``).

Followers read from where the data already is (a run's log on disk, the window of
recent events) after a nudge, at their own pace: what a follower has not taken yet is
never queued for it in memory.  A follower that takes longer than SEND_TIMEOUT to
accept data is dropped (its connection aborted); it can reconnect and resume with
Last-Event-ID.  A quiet stream gets a ``: ping`` comment every HEARTBEAT seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from cronwarden.api.compression import compress_stream
from cronwarden.api.keys import Services
from cronwarden.api.middlewares import BadRequest
from cronwarden.api.schemas import MAX_ID, run_json, shown_name
from cronwarden.artifacts.layout import open_artifact
from cronwarden.artifacts.names import attachment
from cronwarden.errors import ArtifactNotFound
from cronwarden.event_log import Event
from cronwarden.model import Status
from cronwarden.runlog.feeds import LogFeed
from cronwarden.runlog.layout import index_path
from cronwarden.runlog.reader import iter_raw, read_log_page
from cronwarden.runlog.summary import LogLine

HEARTBEAT = 15.0  # seconds between ": ping" comments on a quiet stream
SEND_TIMEOUT = 30.0
PAGE = 1000

log = structlog.get_logger("cronwarden.api")


def resume_point(request: web.Request, after: int | None) -> int | None:
    """Last-Event-ID (an EventSource reconnecting) wins over ``?after=``.

    Read as ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses,
    and ``int`` reads other scripts' digits (U+0661, say), which no id is written in."""
    header = request.headers.get("Last-Event-ID", "").strip()
    if not header:
        return after
    if _EVENT_ID.fullmatch(header) is None or int(header) > MAX_ID:
        raise BadRequest(
            400,
            "invalid-last-event-id",
            f"Last-Event-ID {header[:40]!r} is not an event id; it must be the id of the "
            f"last event received: a whole number from 0 to {MAX_ID} in digits 0-9",
        )
    return int(header)


_EVENT_ID = re.compile(rf"[0-9]{{1,{len(str(MAX_ID))}}}")


@contextlib.asynccontextmanager
async def _event_stream(request: web.Request, what: str) -> AsyncIterator[EventSourceResponse]:
    """An SSE response whose follower is dropped when it stops taking data."""
    async with sse_response(
        request, sep="\n", ping_interval=HEARTBEAT, send_timeout=SEND_TIMEOUT
    ) as sse:
        try:
            yield sse
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()  # its unsent events would wait forever
            log.warning(
                "stream.follower_dropped", what=what, reason=f"took no data for {SEND_TIMEOUT:g}s"
            )
        except ConnectionError as exc:
            # It went away, or the kernel gave up on a peer that acknowledged nothing
            # for SEND_TIMEOUT (TCP_USER_TIMEOUT): either way, it is gone.
            log.info("stream.follower_left", what=what, reason=str(exc) or type(exc).__name__)


async def follow_log(
    request: web.Request, services: Services, run_id: str, *, after: int, stream: str | None
) -> web.StreamResponse:
    path = index_path(services.logs_dir, run_id)
    # Follow before reading the run: an end recorded in between still wakes us.
    with services.log_feeds.follow(run_id) as feed:
        run = await services.store.get_run(run_id)  # 404 before the stream starts
        async with _event_stream(request, f"log of run {run_id}") as sse:
            ended = run.status == Status.ENDED
            await _stream(sse, services, feed, run_id, path, after, stream, ended=ended)
    return sse


async def follow_events(
    request: web.Request, services: Services, *, after: int | None, tasks: set[str]
) -> web.StreamResponse:
    """Events after ``after`` (default: from now on), of the given tasks (default: all;
    config.reloaded concerns every task and is always sent)."""
    events = services.events
    cursor = events.last_id if after is None else after
    async with _event_stream(request, "events") as sse:
        while True:
            batch, gap = events.after(cursor, PAGE)
            if gap:
                detail = "older events are no longer held; what follows is the oldest held"
                await sse.send(json.dumps({"after": cursor, "detail": detail}), event="gap")
            if batch:
                chosen = [e for e in batch if not tasks or e.task is None or e.task in tasks]
                await _send(sse, "".join(_event_frame(e) for e in chosen))
                cursor = batch[-1].id
            elif gap:
                cursor = events.last_id
            if len(batch) == PAGE:
                continue
            if events.closed:
                return sse
            await events.wait_past(cursor)
    return sse


def _event_frame(event: Event) -> str:
    run = event.run
    data = run_json(run).decode() if run is not None else json.dumps(event.data)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


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
            await sse.send(run_json(final).decode(), event="end")
            return
        try:
            async with asyncio.timeout(HEARTBEAT):
                await feed.wait_past(seen)
        except TimeoutError:
            # Quiet for a while: a run carried by another node ends without a nudge here.
            ended = (await services.store.get_run(run_id)).status == Status.ENDED


async def _send_lines(sse: EventSourceResponse, lines: list[LogLine]) -> None:
    """Each line is a default ``message`` event, its id the line number, its data the
    line as JSON."""
    await _send(
        sse,
        "".join(
            f"id: {line.n}\ndata: {json.dumps(asdict(line), ensure_ascii=False)}\n\n"
            for line in lines
        ),
    )


async def _send(sse: EventSourceResponse, frames: str) -> None:
    """One write per page of events (a page can hold a thousand).  Their data is JSON,
    which never holds a raw newline, so one ``data:`` field is a whole event."""
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


async def artifact_file(request: web.Request, directory: Path, name: str) -> web.StreamResponse:
    """A kept artifact's bytes, as a download: never shown inline, never sniffed into
    markup (a run's file must not become a page of this origin).  Raises
    ArtifactNotFound when its file is no longer here."""
    try:
        fd = await asyncio.to_thread(open_artifact, directory, name)
    except FileNotFoundError:
        raise ArtifactNotFound(f"artifact {shown_name(name)} is no longer on this disk") from None
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": attachment(name),
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            }
        )
        left = response.content_length = os.fstat(fd).st_size
        await response.prepare(request)
        try:
            while left and (chunk := await asyncio.to_thread(os.read, fd, min(left, _FILE_CHUNK))):
                await response.write(chunk)
                left -= len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
    finally:
        os.close(fd)
    return response


_FILE_CHUNK = 256 * 1024


async def streamed(
    request: web.Request, content_type: str, pieces: AsyncIterator[bytes]
) -> web.StreamResponse:
    """An answer written as its pieces come.  An error before the first piece gets the
    usual problem+json answer; one after it cuts the answer short (the client sees a
    broken body, never a whole wrong one) and is logged."""
    first = await anext(pieces)
    response = web.StreamResponse(headers={"Content-Type": content_type})
    compress_stream(request, response)
    await response.prepare(request)
    try:
        await response.write(first)
        async for piece in pieces:
            await response.write(piece)
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away
    except Exception:
        log.exception("api.answer_cut_short", path=request.path, method=request.method)
        if request.transport is not None:
            request.transport.abort()
    return response
