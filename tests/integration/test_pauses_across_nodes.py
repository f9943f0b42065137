"""A pause or resume sent to one node reaches the ``/api/events`` of every node sharing
the database, once, however it was learned (issue 26, item 4)."""

from __future__ import annotations

import http.client
import json
import time
from collections import deque
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

from cronwarden.client import EventStreamParser, ServerEvent

pytestmark = pytest.mark.postgres

TASKS = """
[tasks.tock]
command = "true"
schedule = "@hourly"

[tasks.other]
command = "true"
"""
WAIT = 15.0  # the nodes follow pauses about each second; NOTIFY is sooner


class Follower:
    """A follower of a node's /api/events, subscribed once constructed."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        self.conn.request("GET", "/api/events")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        self.parser = EventStreamParser()
        self.ready: deque[ServerEvent] = deque()

    def next(self) -> tuple[str, Any]:
        """The next task change, within WAIT seconds (keep-alive comments do not count,
        nor the runs of a fire that falls inside the test)."""
        deadline = time.monotonic() + WAIT
        while True:
            while not self.ready:
                assert time.monotonic() < deadline, f"no task change within {WAIT}s"
                chunk = self.resp.read1(65536)
                assert chunk, "the stream ended"
                self.ready.extend(self.parser.feed(chunk))
            event = self.ready.popleft()
            if event.kind.startswith("task."):
                return event.kind, json.loads(event.data)

    def close(self) -> None:
        self.conn.close()


def paused(node: Any, task: str) -> bool:
    return bool(node.get(f"/api/tasks/{task}").body["paused"])


def test_a_pause_made_on_one_node_is_an_event_on_the_other(make_daemon, pg_admin) -> None:  # type: ignore[no-untyped-def]
    url = pg_admin.create()
    a = make_daemon(TASKS, daemon_extra=f'database = "{url}"')
    b = make_daemon(TASKS, daemon_extra=f'database = "{url}"')
    on_a, on_b = Follower(a.port), Follower(b.port)
    try:
        assert a.post("/api/tasks/tock/pause").status == 200
        assert on_b.next() == ("task.paused", {"task": "tock"})
        assert on_a.next() == ("task.paused", {"task": "tock"})
        wait_for(lambda: paused(b, "tock"), WAIT, "node B to follow the pause")
        assert b.get("/api/tasks/tock").body["next_run_at"] is None

        assert a.post("/api/tasks/tock/resume").status == 200
        assert on_b.next() == ("task.resumed", {"task": "tock"})
        assert on_a.next() == ("task.resumed", {"task": "tock"})
        assert not paused(b, "tock") and b.get("/api/tasks/tock").body["next_run_at"]

        # Said once on each node: a change made here is not heard again from the store.
        assert b.post("/api/tasks/other/pause").status == 200
        assert on_b.next() == ("task.paused", {"task": "other"})
        assert on_a.next() == ("task.paused", {"task": "other"})
    finally:
        on_a.close()
        on_b.close()
