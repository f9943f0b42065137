"""``GET /api/events`` on a real daemon: run and task changes in order, filtered by task,
resumed with Last-Event-ID, a gap said out loud, the CLI's ``events`` verb, and a
follower that does not keep the daemon from stopping (issue: the API, complete)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import as_from_a_terminal, wait_for  # type: ignore[import-not-found]

from cronwarden.client import EventStreamParser, ServerEvent

pytestmark = pytest.mark.both_databases

TASKS = """
[tasks.t]
command = "echo t"

[tasks.u]
command = "echo u"
"""


@dataclass
class Events:
    """A follower of /api/events; once constructed, it is subscribed."""

    port: int
    query: str = ""
    last_event_id: str | None = None
    parser: EventStreamParser = field(default_factory=EventStreamParser)
    ready: deque[ServerEvent] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {} if self.last_event_id is None else {"Last-Event-ID": self.last_event_id}
        self.conn.request("GET", f"/api/events{self.query}", headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()

    def next(self) -> tuple[str, str | None, Any]:
        while not self.ready:
            chunk = self.resp.read1(65536)
            assert chunk, "the stream ended"
            self.ready.extend(self.parser.feed(chunk))
        event = self.ready.popleft()
        return event.kind, event.id, json.loads(event.data)

    def take(self, count: int) -> list[tuple[str, str | None, Any]]:
        return [self.next() for _ in range(count)]

    def close(self) -> None:
        self.conn.close()


def test_run_and_task_changes_arrive_in_order_for_the_tasks_asked(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    events = Events(daemon.port, "?task=t")
    run = daemon.wait_run(daemon.trigger("t")["id"])
    daemon.wait_run(daemon.trigger("u")["id"])  # not asked for
    assert daemon.post("/api/tasks/t/pause").status == 200
    assert daemon.post("/api/reload").status == 200  # concerns every task
    got = events.take(5)
    events.close()
    assert [kind for kind, _, _ in got] == [
        "run.created",
        "run.started",
        "run.ended",
        "task.paused",
        "config.reloaded",
    ]
    ids = [int(i or 0) for _, i, _ in got]
    assert ids == sorted(ids) and len(set(ids)) == 5
    created, started, ended = (data for _, _, data in got[:3])
    assert created["id"] == started["id"] == ended["id"] == run["id"]
    assert (created["status"], started["status"], ended["status"]) == (
        "pending",
        "running",
        "ended",
    )
    assert ended == run  # the end event carries the run as recorded
    assert got[3][2] == {"task": "t"}


def test_a_follower_resumes_after_its_last_event_and_hears_of_a_gap(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    first = Events(daemon.port)
    daemon.wait_run(daemon.trigger("t")["id"])
    kind, created_id, _ = first.next()
    assert kind == "run.created"
    first.close()  # gone before the rest of this run's events
    daemon.wait_run(daemon.trigger("u")["id"])
    again = Events(daemon.port, last_event_id=created_id)
    kinds = [(kind, data["task_name"]) for kind, _, data in again.take(5)]
    assert kinds == [
        ("run.started", "t"),
        ("run.ended", "t"),
        ("run.created", "u"),
        ("run.started", "u"),
        ("run.ended", "u"),
    ]
    again.close()
    # An id older than what the daemon holds (an earlier life, say): a gap, then all.
    old = Events(daemon.port, last_event_id="5")
    kind, _, data = old.next()
    assert kind == "gap" and "no longer held" in data["detail"]
    assert [k for k, _, _ in old.take(6)][:3] == ["run.created", "run.started", "run.ended"]
    old.close()
    bad = daemon.request("GET", "/api/events", headers={"Last-Event-ID": "x1"})
    assert bad.status == 400 and bad.content_type == "application/problem+json"
    unknown = daemon.get("/api/events?tasks=t")
    assert unknown.status == 422 and unknown.body["errors"][0]["field"] == "tasks"


def test_cli_events_prints_changes_as_they_happen(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cronwarden",
            "events",
            "--task",
            "t",
            "--json",
            "--url",
            daemon.url,
        ],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(cli.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        # The CLI subscribes at its own pace: trigger until one run is seen end to end.
        seen = None
        for _ in range(20):
            run = daemon.wait_run(daemon.trigger("t")["id"])
            daemon.wait_run(daemon.trigger("u")["id"])
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and seen is None:
                lines = [json.loads(line) for line in list(out)]
                if any(e["event"] == "run.ended" and e["data"]["id"] == run["id"] for e in lines):
                    seen = run["id"]
                time.sleep(0.05)
            if seen:
                break
        assert seen, out
        events = [json.loads(line) for line in list(out)]
        assert {e["data"]["task_name"] for e in events} == {"t"}
        mine = [e["event"] for e in events if e["data"]["id"] == seen]
        assert mine == ["run.created", "run.started", "run.ended"]
        cli.send_signal(signal.SIGINT)
        assert cli.wait(10) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
        reader.join(10)


def test_an_open_event_stream_does_not_hold_up_a_shutdown(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    events = Events(daemon.port)
    started = time.monotonic()
    assert daemon.stop(timeout=20) == 0
    assert time.monotonic() - started < 10  # the HTTP server's own wait would be 60 s
    wait_for(lambda: events.resp.read1(65536) == b"", what="the stream to close")
    events.close()
