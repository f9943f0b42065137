"""Alerts from a real daemon to a real local HTTP receiver and a real command:
delivery with its signature, retries, a slow target that delays nothing, run.stuck,
fire.missed after downtime, task.recovered, and the metric and log events."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, wait_for  # type: ignore[import-not-found]
from prometheus_client.parser import text_string_to_metric_families

SECRET = "a-shared-secret-of-some-length"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.raw))


@dataclass
class Receiver:
    """An HTTP endpoint that records what it is sent; per path, a script of answers
    (status codes; the last repeats) and an optional gate that holds each request."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    holds: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def answer(self, path: str) -> int:
        with self.lock:
            script = self.answers.get(path, [200])
            return script.pop(0) if len(script) > 1 else script[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers), raw))
            hold = state.holds.get(self.path)
            if hold is not None:
                hold.wait(30)
            self.send_response(state.answer(self.path))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    for hold in state.holds.values():
        hold.set()
    server.shutdown()
    server.server_close()


def alert_metric(daemon: Daemon, target: str, event: str, outcome: str) -> float:
    text = daemon.get("/metrics").body
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cronwarden_alerts_total" and sample.labels == {
                "target": target,
                "event": event,
                "outcome": outcome,
            }:
                return float(sample.value)
    return 0.0


def log_events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    found = []
    for line in daemon.log().splitlines():
        if f'"{name}"' in line:
            found.append(json.loads(line))
    return found


def test_a_failed_run_is_posted_signed_with_a_link_to_its_log(make_daemon, receiver) -> None:
    daemon = make_daemon(
        f"""
        [notify.hook]
        type = "webhook"
        url = "{receiver.url}/hook"
        secret = "{SECRET}"
        headers = {{ Authorization = "Bearer receiver-token" }}

        [tasks.backup]
        command = "echo copying; exit 3"
        notify = ["hook"]
        [tasks.quiet]
        command = "exit 3"
        """
    )
    run = daemon.wait_run(daemon.trigger("backup")["id"])
    daemon.wait_run(daemon.trigger("quiet")["id"])  # no notify: no alert
    got = wait_for(lambda: receiver.on("/hook"), what="the alert")[0]
    body = got.body
    assert body["event"] == "run.failed" and body["task"] == "backup"
    assert body["run"]["id"] == run["id"] and body["run"]["exit_code"] == 3
    assert "exit code 3" in body["message"]
    # what the run printed (its first 64 KiB, secret_env values masked)
    assert body["output"] == {"text": "copying\n", "size": 8, "truncated": False}
    assert body["log_url"] == f"{daemon.url}/api/runs/{run['id']}/log"
    assert body["at"].endswith("Z") and body["node"]
    expected = "sha256=" + hmac.new(SECRET.encode(), got.raw, hashlib.sha256).hexdigest()
    assert got.headers["X-Cronwarden-Signature"] == expected
    assert got.headers["X-Cronwarden-Event"] == "run.failed"
    assert got.headers["X-Cronwarden-Delivery"] == body["id"]
    assert got.headers["Authorization"] == "Bearer receiver-token"
    wait_for(lambda: alert_metric(daemon, "hook", "run.failed", "delivered") == 1, what="metric")
    assert log_events(daemon, "alert.delivered")
    assert len(receiver.on("/hook")) == 1


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(make_daemon, receiver) -> None:
    receiver.answers["/flaky"] = [503, 502, 200]
    receiver.answers["/down"] = [500]
    receiver.answers["/refuses"] = [400]
    daemon = make_daemon(
        f"""
        [notify.flaky]
        type = "webhook"
        url = "{receiver.url}/flaky"
        retries = 3
        retry_delay = "100ms"
        [notify.down]
        type = "webhook"
        url = "{receiver.url}/down"
        retries = 2
        retry_delay = "100ms"
        [notify.refuses]
        type = "webhook"
        url = "{receiver.url}/refuses"
        retries = 5
        retry_delay = "100ms"

        [tasks.t]
        command = "exit 1"
        notify = ["flaky", "down", "refuses"]
        """
    )
    daemon.wait_run(daemon.trigger("t")["id"])
    wait_for(lambda: alert_metric(daemon, "flaky", "run.failed", "delivered") == 1, what="flaky")
    wait_for(lambda: alert_metric(daemon, "down", "run.failed", "failed") == 1, what="down")
    wait_for(lambda: alert_metric(daemon, "refuses", "run.failed", "failed") == 1, what="400")
    assert len(receiver.on("/flaky")) == 3
    assert len(receiver.on("/down")) == 3  # the first try and two retries
    assert len(receiver.on("/refuses")) == 1  # a 400 will not get better
    ids = {r.body["id"] for r in receiver.on("/flaky")}
    assert len(ids) == 1  # one delivery id across retries: receivers can deduplicate
    retried = [e for e in log_events(daemon, "alert.retrying") if e["target"] == "flaky"]
    assert [e["delay_s"] for e in retried] == [0.1, 0.2]
    failed = [e for e in log_events(daemon, "alert.failed") if e["target"] == "down"]
    assert failed and "HTTP 500" in failed[0]["error"]


def test_a_slow_target_delays_neither_runs_nor_other_targets(make_daemon, receiver) -> None:
    receiver.holds["/slow"] = threading.Event()
    daemon = make_daemon(
        f"""
        [notify.slow]
        type = "webhook"
        url = "{receiver.url}/slow"
        timeout = "30s"
        [notify.fast]
        type = "webhook"
        url = "{receiver.url}/fast"

        [tasks.t]
        command = "exit 1"
        notify = ["slow", "fast"]
        """
    )
    for i in range(3):
        began = time.monotonic()
        daemon.wait_run(daemon.trigger("t")["id"], timeout=10)
        wait_for(lambda n=i: len(receiver.on("/fast")) == n + 1, what=f"fast alert {i}")
        assert time.monotonic() - began < 10
    assert len(receiver.on("/slow")) == 1  # held; the other two wait in its queue, in order
    receiver.holds["/slow"].set()
    wait_for(lambda: len(receiver.on("/slow")) == 3, what="the slow target catching up")
    runs = [r.body["run"]["id"] for r in receiver.on("/slow")]
    assert runs == [r.body["run"]["id"] for r in receiver.on("/fast")]


def test_a_command_target_gets_the_event_on_stdin_and_in_its_environment(
    make_daemon, tmp_path: Path
) -> None:
    out = tmp_path / "alert.json"
    env_out = tmp_path / "alert.env"
    daemon = make_daemon(
        f"""
        [notify.local]
        type = "command"
        command = "cat > {out}.tmp && mv {out}.tmp {out}; env | grep ^CRONWARDEN_ > {env_out}"

        [tasks.slowpoke]
        command = "sleep 5"
        timeout = "200ms"
        notify = ["local"]
        """
    )
    run = daemon.wait_run(daemon.trigger("slowpoke")["id"])
    assert run["end_reason"] == "timeout"
    body = wait_for(lambda: out.exists() and json.loads(out.read_text()), what="the command")
    assert body["event"] == "run.timeout" and body["run"]["id"] == run["id"]
    env = dict(
        line.split("=", 1)
        for line in wait_for(lambda: env_out.exists() and env_out.read_text()).splitlines()
    )
    assert env["CRONWARDEN_EVENT"] == "run.timeout"
    assert env["CRONWARDEN_RUN_ID"] == run["id"]
    assert env["CRONWARDEN_END_REASON"] == "timeout"
    assert env["CRONWARDEN_TASK"] == "slowpoke"
    wait_for(lambda: alert_metric(daemon, "local", "run.timeout", "delivered") == 1)


def test_retries_still_to_come_raise_nothing_and_a_recovery_is_told(
    make_daemon, receiver, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"
    daemon = make_daemon(
        f"""
        [notify.hook]
        type = "webhook"
        url = "{receiver.url}/hook"
        events = ["run.failed", "task.recovered"]

        [tasks.flaky]
        command = "test -e {marker} || {{ touch {marker}; exit 1; }}"
        retries = 1
        retry_delay = "0"
        notify = ["hook"]
        [tasks.toggle]
        command = "test -e {marker}.t && rm {marker}.t || {{ touch {marker}.t; exit 2; }}"
        notify = ["hook"]
        """
    )
    first = daemon.trigger("flaky")
    wait_for(
        lambda: [r for r in daemon.runs(task_name="flaky") if r["status"] == "ended"][1:],
        what="the retry",
    )
    assert daemon.runs(task_name="flaky")[0]["end_reason"] == "success"
    daemon.wait_run(daemon.trigger("toggle")["id"])  # fails: alert
    daemon.wait_run(daemon.trigger("toggle")["id"])  # succeeds: recovered
    events = wait_for(lambda: len(receiver.on("/hook")) >= 2 and receiver.on("/hook"))
    assert [(r.body["event"], r.body["task"]) for r in events] == [
        ("run.failed", "toggle"),
        ("task.recovered", "toggle"),
    ]
    assert "after a run that ended failed" in events[1].body["message"]
    assert first["id"] not in json.dumps([r.body for r in events])


def test_a_run_running_past_stuck_after_raises_run_stuck_once(make_daemon, receiver, gate) -> None:
    daemon = make_daemon(
        f"""
        [notify.hook]
        type = "webhook"
        url = "{receiver.url}/hook"

        [tasks.hang]
        command = "{gate.wait_command}"
        stuck_after = "1s"
        notify = ["hook"]
        """
    )
    run = daemon.trigger("hang")
    got = wait_for(lambda: receiver.on("/hook"), what="run.stuck")[0].body
    assert got["event"] == "run.stuck" and got["run"]["id"] == run["id"]
    assert got["run"]["status"] == "running" and got["details"]["running_for_s"] >= 1
    gate.open()
    daemon.wait_run(run["id"])
    assert len(receiver.on("/hook")) == 1


def test_fires_missed_while_down_are_one_alert(make_daemon, receiver) -> None:
    daemon = make_daemon(
        f"""
        [notify.hook]
        type = "webhook"
        url = "{receiver.url}/hook"

        [tasks.every_second]
        command = "true"
        schedule = "* * * * * *"
        catch_up = "latest"
        notify = ["hook"]
        """
    )
    wait_for(lambda: daemon.runs(task_name="every_second"), what="a first fire")
    daemon.stop()
    down_since = time.time()
    wait_for(lambda: time.time() - down_since > 3.5, what="a few seconds of downtime")
    daemon.start()
    got = wait_for(lambda: receiver.on("/hook"), what="fire.missed")
    assert len(got) == 1
    body = got[0].body
    assert body["event"] == "fire.missed" and body["task"] == "every_second"
    missed = [r for r in daemon.runs(task_name="every_second") if r["end_reason"] == "missed"]
    assert body["details"]["missed"] == len(missed) >= 2
    assert set(body["details"]["run_ids"]) == {r["id"] for r in missed}


def test_the_failure_alert_waits_for_the_nth_failing_run_in_a_row_across_a_restart(
    make_daemon, receiver, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"
    daemon = make_daemon(
        f"""
        [notify.hook]
        type = "webhook"
        url = "{receiver.url}/hook"
        events = ["run.failed", "task.recovered"]
        tasks = ["backup-*"]

        [tasks.backup-home]
        command = "test -e {fixed}"
        alert_after_failures = 2
        notify = ["hook"]
        """
    )
    definition = daemon.get("/api/tasks/backup-home?definition=true").body["definition"]
    assert definition["alert_after_failures"] == 2
    assert definition["min_duration"] == definition["max_duration"] == "0"
    assert definition["start_grace"] == "0"
    first = daemon.wait_run(daemon.trigger("backup-home")["id"])
    second = daemon.wait_run(daemon.trigger("backup-home")["id"])
    assert first["end_reason"] == second["end_reason"] == "failed"
    got = wait_for(lambda: receiver.on("/hook"), what="the second failure's alert")
    # one alert (the target is named by notify and routes the task: once), and not for
    # the first run, whose alert would have come first on the target's queue
    assert [(r.body["event"], r.body["run"]["id"]) for r in got] == [("run.failed", second["id"])]
    assert got[0].body["message"] == (
        "backup-home failed with exit code 1; the 2nd failing run in a row "
        "(alert_after_failures = 2)"
    )
    withheld = log_events(daemon, "alert.withheld")
    assert [(e["task"], e["failing_in_a_row"]) for e in withheld] == [("backup-home", 1)]

    daemon.stop()  # the count is read from the history: a restart does not reset it
    daemon.start()
    third = daemon.wait_run(daemon.trigger("backup-home")["id"])
    wait_for(lambda: len(receiver.on("/hook")) == 2, what="the third failure's alert")
    body = receiver.on("/hook")[1].body
    assert (body["event"], body["run"]["id"]) == ("run.failed", third["id"])
    assert "3 or more failing runs in a row" in body["message"]
    fixed.touch()
    success = daemon.wait_run(daemon.trigger("backup-home")["id"])
    assert success["end_reason"] == "success"
    wait_for(lambda: len(receiver.on("/hook")) == 3, what="the recovery")
    body = receiver.on("/hook")[2].body
    assert (body["event"], body["run"]["id"]) == ("task.recovered", success["id"])
    assert body["message"] == "backup-home succeeded again (after 2 or more failing runs in a row)"
    wait_for(lambda: alert_metric(daemon, "hook", "task.recovered", "delivered") == 1)
    assert alert_metric(daemon, "hook", "run.failed", "delivered") == 1  # this life's


def test_a_run_past_max_duration_is_told_once_and_goes_on_running(
    make_daemon, receiver, gate
) -> None:
    daemon = make_daemon(
        f"""
        [notify.team]
        type = "webhook"
        url = "{receiver.url}/team"
        events = ["run.too_long"]
        tasks = ["nightly-*"]

        [tasks.nightly-report]
        command = "{gate.wait_command}"
        max_duration = "1s"
        """
    )
    run = daemon.trigger("nightly-report")
    got = wait_for(lambda: receiver.on("/team"), what="run.too_long")[0].body
    assert got["event"] == "run.too_long" and got["run"]["id"] == run["id"]
    assert got["run"]["status"] == "running" and got["details"]["running_for_s"] >= 1
    assert got["message"].endswith("(max_duration = 1s); it goes on running")
    assert daemon.get(f"/api/runs/{run['id']}").body["status"] == "running"
    wait_for(lambda: alert_metric(daemon, "team", "run.too_long", "delivered") == 1)
    gate.open()
    assert daemon.wait_run(run["id"])["end_reason"] == "success"
    assert len(receiver.on("/team")) == 1
