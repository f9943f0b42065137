"""Live streams at the edges: heartbeats on a quiet stream, and a follower of a log or
of the events too slow to keep up, which is dropped while the daemon's memory stays
flat.

These run the real handler on a real socket against a real log on disk, in this
process, so the heartbeat interval and the send timeout can be made short.
"""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from cronwarden.api import handlers, streams
from cronwarden.api.keys import SERVICES
from cronwarden.event_log import EventLog
from cronwarden.model import EndReason, Run, Status, Trigger
from cronwarden.runlog.feeds import LogFeeds
from cronwarden.runlog.layout import index_path
from cronwarden.runlog.writer import LogWriter

RUN_ID = "0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class OneRun:
    """The store, as far as following one run's log needs it."""

    def __init__(self) -> None:
        self.run = Run(
            id=RUN_ID,
            task_name="t",
            status=Status.RUNNING,
            triggered_by=Trigger.API,
            created_at=T0,
            node="n1",
            task_hash="h",
        )

    async def get_run(self, run_id: str) -> Run:
        assert run_id == RUN_ID
        return self.run.model_copy()

    def end(self) -> None:
        self.run.status = Status.ENDED
        self.run.end_reason = EndReason.SUCCESS
        self.run.exit_code = 0


class Server:
    def __init__(self, tmp_path: Path) -> None:
        self.logs_dir = tmp_path / "logs"
        self.store = OneRun()
        self.feeds = LogFeeds()
        self.events = EventLog(started_at=T0, window=200_000)
        self.handled = asyncio.Event()
        self.port = 0

    def handling(self, handler: Any) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            finally:
                self.handled.set()

        return handle

    def writer(self) -> LogWriter:
        return LogWriter(
            index_path(self.logs_dir, RUN_ID),
            max_size=1 << 30,
            mode="drop_old",
            now=lambda: T0,
            on_written=lambda kept: self.feeds.notify(RUN_ID, kept),
        )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    state = Server(tmp_path)
    app = web.Application()
    app[SERVICES] = SimpleNamespace(  # type: ignore[assignment]
        logs_dir=state.logs_dir,
        log_feeds=state.feeds,
        store=state.store,
        events=state.events,
        fleet=SimpleNamespace(shared=False),  # one node: every log is here
    )
    app.router.add_get("/api/runs/{run_id}/log", state.handling(handlers.run_log))
    app.router.add_get("/api/events", state.handling(handlers.events))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    yield state
    await runner.cleanup()


async def open_follow(
    port: int, rcvbuf: int | None = None, path: str = f"/api/runs/{RUN_ID}/log?follow=true"
) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
    await loop.sock_sendall(sock, request.encode())
    return sock


async def read_until(sock: socket.socket, needle: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    seen = b""
    async with asyncio.timeout(10):
        while needle not in seen:
            chunk = await loop.sock_recv(sock, 65536)
            assert chunk, f"connection closed before {needle!r}; got {seen[-300:]!r}"
            seen += chunk
    return seen


async def test_a_quiet_stream_gets_heartbeats_then_its_end(
    server: Server, monkeypatch: Any
) -> None:
    monkeypatch.setattr(streams, "HEARTBEAT", 0.05)
    writer = server.writer()
    writer.feed("stdout", b"first\n")
    sock = await open_follow(server.port)
    try:
        seen = await read_until(sock, b'"text": "first"')
        seen += await read_until(sock, b": ping")
        seen += await read_until(sock, b": ping")  # and again: it keeps beating
        writer.feed("stdout", b"second\n")
        writer.finish()
        seen += await read_until(sock, b'"text": "second"')
        server.store.end()
        server.feeds.finish(RUN_ID)
        seen += await read_until(sock, b"event: end")
    finally:
        sock.close()
    assert seen.index(b'"n": 1') < seen.index(b'"n": 2') < seen.index(b"event: end")


async def follow_without_reading(server: Server, path: str) -> tuple[list[str], int]:
    """Follow ``path`` and never read: (what the daemon logged of it, its memory peak)."""
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        sock = await open_follow(server.port, rcvbuf=4096, path=path)
        try:
            with capture_logs() as events:
                async with asyncio.timeout(20):
                    await server.handled.wait()
            peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            sock.close()
    finally:
        tracemalloc.stop()
    return [e["event"] for e in events], peak


# Dropped by the send timeout, or by the kernel (TCP_USER_TIMEOUT) a moment earlier.
DROPPED = (["stream.follower_dropped"], ["stream.follower_left"])


async def test_a_reader_that_stops_reading_is_dropped_and_memory_stays_flat(
    server: Server, monkeypatch: Any
) -> None:
    monkeypatch.setattr(streams, "SEND_TIMEOUT", 0.5)
    writer = server.writer()
    line = b"x" * 99 + b"\n"
    for _ in range(400):  # 40 MB on disk
        writer.feed("stdout", line * 1000)
    writer.finish()
    server.store.end()
    events, peak = await follow_without_reading(server, f"/api/runs/{RUN_ID}/log?follow=true")
    assert events in DROPPED
    assert peak < 8 << 20, f"following grew memory by {peak / 2**20:.1f} MiB"
    assert server.feeds._feeds == {}  # the follower let go of the run's feed


async def test_an_events_follower_that_stops_reading_is_dropped_and_memory_stays_flat(
    server: Server, monkeypatch: Any
) -> None:
    monkeypatch.setattr(streams, "SEND_TIMEOUT", 0.5)
    for i in range(150_000):  # ~10 MB of events held in the window
        server.events.publish("task.paused", f"task-{i % 50}", {"task": f"task-{i % 50}"})
    events, peak = await follow_without_reading(
        server, f"/api/events?after={server.events.first_id - 1}"
    )
    assert events in DROPPED
    assert peak < 8 << 20, f"following grew memory by {peak / 2**20:.1f} MiB"
