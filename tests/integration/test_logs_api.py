"""Run logs through a real daemon: live following over SSE with resume, raw output,
masked secrets, caps with disk use checked, and the CLI (issue: run logs)."""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

from cronwarden.client import EventStreamParser, ServerEvent

pytestmark = pytest.mark.both_databases

CLI = [sys.executable, "-m", "cronwarden"]


@dataclass
class Follower:
    """An SSE client reading ``/api/runs/{id}/log?follow=true`` event by event."""

    port: int
    run_id: str
    last_event_id: str | None = None
    query: str = ""
    conn: http.client.HTTPConnection = field(init=False)
    resp: http.client.HTTPResponse = field(init=False)
    parser: EventStreamParser = field(default_factory=EventStreamParser)
    ready: deque[ServerEvent] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        self.conn.request(
            "GET", f"/api/runs/{self.run_id}/log?follow=true{self.query}", headers=headers
        )
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")

    def next(self) -> Event:
        """The next event (comments such as heartbeats are skipped)."""
        while not self.ready:
            chunk = self.resp.read1(65536)
            assert chunk, "the stream ended before the next event"
            self.ready.extend(self.parser.feed(chunk))
        event = self.ready.popleft()
        return Event(event.kind, event.id, json.loads(event.data))

    def lines(self, count: int) -> list[Event]:
        return [self.next() for _ in range(count)]

    def ended(self) -> bool:
        return not self.ready and self.resp.read1(65536) == b""

    def close(self) -> None:
        self.conn.close()


@dataclass
class Event:
    kind: str
    id: str | None
    data: Any


def texts(events: list[Event]) -> list[tuple[int, str]]:
    return [(e.data["n"], e.data["text"]) for e in events]


def logs_dir_bytes(daemon) -> int:  # type: ignore[no-untyped-def]
    total = 0
    logs = daemon.data_dir / "logs"
    if not logs.exists():  # made with the first run's log
        return 0
    for path in logs.iterdir():
        with contextlib.suppress(FileNotFoundError):  # a drop_old segment deleted meanwhile
            total += path.stat().st_size
    return total


def test_follow_resumes_from_last_event_id_with_no_line_lost_or_repeated(make_daemon, gate) -> None:
    hold = gate.wait_command
    command = f"echo a1; echo a2; echo a3; {hold}; echo b1; echo b2; echo b3 >&2; {hold}; echo c1"
    daemon = make_daemon(f'[tasks.steps]\ncommand = "{command}"\n')
    run = daemon.trigger("steps")
    first = Follower(daemon.port, run["id"])
    events = first.lines(3)
    assert texts(events) == [(1, "a1"), (2, "a2"), (3, "a3")]
    assert [e.id for e in events] == ["1", "2", "3"] and events[0].kind == "message"
    first.close()  # the follower goes away mid-run ...
    gate.open()  # ... while the run writes more
    wait_for(lambda: len(daemon.get(f"/api/runs/{run['id']}/log").body["lines"]) == 6)
    again = Follower(daemon.port, run["id"], last_event_id="3")
    resumed = again.lines(3)
    assert texts(resumed) == [(4, "b1"), (5, "b2"), (6, "b3")]
    assert [e.data["stream"] for e in resumed] == ["stdout", "stdout", "stderr"]
    gate.open()  # live: c1 arrives on the open stream, then the end
    assert texts([again.next()]) == [(7, "c1")]
    end = again.next()
    assert end.kind == "end" and end.id is None
    assert end.data["id"] == run["id"] and end.data["status"] == "ended"
    assert end.data["end_reason"] == "success" and end.data["exit_code"] == 0
    assert again.ended()  # the stream closes after the end
    again.close()
    # Following an ended run replays from ?after= and ends at once.
    late = Follower(daemon.port, run["id"], query="&after=5")
    assert texts(late.lines(2)) == [(6, "b3"), (7, "c1")]
    assert late.next().kind == "end"
    late.close()


def test_follow_rejects_a_last_event_id_that_is_not_a_line_number(make_daemon) -> None:
    daemon = make_daemon('[tasks.t]\ncommand = "echo hi"\n')
    run = daemon.trigger("t")
    resp = daemon.request(
        "GET", f"/api/runs/{run['id']}/log?follow=true", headers={"Last-Event-ID": "abc"}
    )
    assert resp.status == 400 and resp.content_type == "application/problem+json"
    assert "Last-Event-ID" in resp.body["detail"]
    missing = daemon.get("/api/runs/0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a/log?follow=true")
    assert missing.status == 404


def test_raw_log_is_the_output_as_it_came(make_daemon) -> None:
    daemon = make_daemon(
        r"""
    [tasks.bin]
    command = 'printf "caf\303\251 \377\376\n\000nul\nno newline at the end"'
    """
    )
    run = daemon.wait_run(daemon.trigger("bin")["id"])
    expected = "café ".encode() + b"\xff\xfe\n\x00nul\nno newline at the end"
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    conn.request("GET", f"/api/runs/{run['id']}/log/raw")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert resp.read() == expected
    page = daemon.get(f"/api/runs/{run['id']}/log").body
    assert [ln["text"] for ln in page["lines"]] == [
        "café \ufffd\ufffd",
        "\x00nul",
        "no newline at the end",
    ]
    cli = subprocess.run(
        [*CLI, "logs", run["id"], "--raw", "--url", daemon.url], capture_output=True, timeout=30
    )
    assert cli.returncode == 0 and cli.stdout == expected
    bad = daemon.get(f"/api/runs/{run['id']}/log/raw?stream=stdout")
    assert bad.status == 422 and bad.body["errors"][0]["field"] == "stream"


def test_secret_env_values_never_leave_the_daemon(make_daemon) -> None:
    token = "tok-5f1e2c3d4b5a"
    command = (
        f"echo token=$API_TOKEN; echo $API_TOKEN >&2; printf 'half:{token[:6]}'; sleep 0.2; "
        f"echo '{token[6:]}'; exit 3"
    )
    daemon = make_daemon(
        f"""
    [tasks.leaky]
    command = "{command}"
    env = {{ API_TOKEN = "{token}" }}
    secret_env = ["API_TOKEN"]
    """
    )
    run = daemon.wait_run(daemon.trigger("leaky")["id"])
    assert run["exit_code"] == 3
    page = daemon.get(f"/api/runs/{run['id']}/log").body
    assert [ln["text"] for ln in page["lines"]] == ["token=***", "***", "half:***"]
    follower = Follower(daemon.port, run["id"])
    events = [follower.next() for _ in range(4)]
    follower.close()
    raw = daemon.request("GET", f"/api/runs/{run['id']}/log/raw").body
    everything = json.dumps([page, [e.data for e in events], raw, run]) + daemon.log()
    assert token not in everything and token[:6] not in everything
    for path in (daemon.data_dir / "logs").iterdir():
        assert token.encode() not in path.read_bytes()


def test_a_fast_producer_finishes_quickly_and_its_log_is_compact(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.fast]
    command = "yes | head -c 20000000"
    max_log_size = "100MiB"
    """
    )
    run = daemon.wait_run(daemon.trigger("fast")["id"], timeout=60)
    assert run["end_reason"] == "success" and run["log_size"] == 20_000_000
    assert not run["log_truncated"]
    assert logs_dir_bytes(daemon) <= 20_000_000 * 1.01
    tail = daemon.get(f"/api/runs/{run['id']}/log?after=9999998").body
    assert [(ln["n"], ln["text"]) for ln in tail["lines"]] == [(9999999, "y"), (10000000, "y")]


def test_log_caps_bound_disk_use_in_every_mode(make_daemon) -> None:
    cap = 1 << 20
    daemon = make_daemon(
        """
    [tasks.old]
    command = "yes | head -c 30000000; echo last"
    max_log_size = "1MiB"
    log_on_full = "drop_old"

    [tasks.new]
    command = "yes | head -c 30000000"
    max_log_size = "1MiB"
    log_on_full = "drop_new"

    [tasks.kill]
    command = "yes"
    max_log_size = "1MiB"
    log_on_full = "kill"
    """
    )
    for name in ("old", "new", "kill"):
        run = daemon.trigger(name)
        peak = 0
        while (now := daemon.get(f"/api/runs/{run['id']}").body)["status"] != "ended":
            peak = max(peak, logs_dir_bytes(daemon))
        # drop_old writes segments of an eighth of the cap and deletes the oldest; a
        # block of up to 128 KiB may be on disk before the segment behind it goes.
        segment = cap // 8 if name == "old" else 0
        assert peak <= cap + segment + 128 * 1024 + 8192, (name, peak)
        assert now["log_truncated"] and now["log_size"] <= cap, now
        assert logs_dir_bytes(daemon) <= cap + segment + 8192, name
        lines = daemon.get(f"/api/runs/{now['id']}/log?limit=10000").body["lines"]
        if name == "old":  # the marker comes first, then the newest output
            tail = daemon.get(f"/api/runs/{now['id']}/log?after=14999999").body["lines"]
            assert [ln["text"] for ln in tail] == ["y", "last"]
        else:  # the first MiB, then the marker
            lines = daemon.get(f"/api/runs/{now['id']}/log?after=524000").body["lines"]
        markers = [ln for ln in lines if ln["stream"] == "cronwarden"]
        assert len(markers) == 1 and "log cap of 1048576 bytes reached" in markers[0]["text"]
        assert markers[0] == lines[0 if name == "old" else -1]
        # Capture keeps up: each producer runs to its end (the kill one is ended).
        assert now["end_reason"] == ("log_overflow" if name == "kill" else "success"), now
        for path in (daemon.data_dir / "logs").iterdir():
            path.unlink()


def test_cli_logs_follow_prints_lines_as_they_come_and_exits_with_the_run(
    make_daemon, gate
) -> None:
    daemon = make_daemon(
        f"""
    [tasks.slow]
    command = "echo one; {gate.wait_command}; echo two >&2; {gate.wait_command}; echo three"
    """
    )
    run = daemon.trigger("slow")
    cli = subprocess.Popen(
        [*CLI, "logs", run["id"], "--follow", "--url", daemon.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(iter(cli.stdout.readline, ""))),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.extend(iter(cli.stderr.readline, ""))),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: out == ["one\n"], what="the first line")
        gate.open()
        wait_for(lambda: err == ["two\n"], what="the second line, on stderr")
        gate.open()
        assert cli.wait(30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
        for reader in readers:
            reader.join(10)
    assert out == ["one\n", "three\n"]


def test_health_answers_quickly_while_a_fast_producer_runs(make_daemon) -> None:
    """Capture never blocks the event loop: /health keeps answering during 50 MB."""
    daemon = make_daemon(
        """
    [tasks.flood]
    command = "yes | head -c 50000000"
    max_log_size = "100MiB"
    """
    )
    run = daemon.trigger("flood")
    answered = 0
    while daemon.get(f"/api/runs/{run['id']}").body["status"] != "ended":
        assert daemon.get("/health").status == 200
        answered += 1
    assert answered >= 1
