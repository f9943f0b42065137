"""Apprise targets from a real daemon: mail to a real local SMTP server (cron's MAILTO
as run.output, and run.failed), Apprise's json:// to a real local HTTP server, retries
that go only to the URLs that failed, URLs never in the log, and Apprise not even
imported by a daemon that has no such target."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from conftest import Daemon, free_port, wait_for  # type: ignore[import-not-found]
from prometheus_client.parser import text_string_to_metric_families

SECRET = "s3cr3t-token-4b5a"
MakeDaemon = Callable[..., Daemon]


@dataclass
class Mailbox:
    """What the SMTP server accepted, as (envelope recipients, parsed message)."""

    port: int = 0
    mails: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.mails.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def received(self) -> list[tuple[list[str], EmailMessage]]:
        with self.lock:
            return list(self.mails)

    def url(self, **query: str) -> str:
        options = {
            "to": "ops@example.com",
            "from": "cron@example.com",
            "smtp": "127.0.0.1",
            "mode": "insecure",  # a plain local relay: no TLS, no login
            **query,
        }
        qs = "&".join(f"{k}={v}" for k, v in options.items())
        return f"mailto://127.0.0.1:{self.port}?{qs}"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@dataclass
class HttpReceiver:
    """An aiohttp server on its own thread: records JSON posts per path and answers
    each path's script of status codes (the last one repeats)."""

    url: str = ""
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.posts if p == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self.lock:
            self.posts.append((request.path, body))
            script = self.answers.get(request.path, [200])
            status = script.pop(0) if len(script) > 1 else script[0]
        return web.Response(status=status)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(app)
    port = free_port()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    receiver.url = f"127.0.0.1:{port}"
    yield receiver
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def alert_metric(daemon: Daemon, target: str, event: str, outcome: str) -> float:
    for family in text_string_to_metric_families(daemon.get("/metrics").body):
        for sample in family.samples:
            if sample.name == "cronwarden_alerts_total" and sample.labels == {
                "target": target,
                "event": event,
                "outcome": outcome,
            }:
                return float(sample.value)
    return 0.0


def log_events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in daemon.log().splitlines() if f'"{name}"' in line]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, message
    return str(part.get_content()).replace("\r\n", "\n")  # SMTP line ends


def test_mail_as_cron_mails_a_job_that_prints_with_secrets_masked(
    make_daemon: MakeDaemon, mailbox: Mailbox
) -> None:
    daemon = make_daemon(
        f"""
        [notify.mail]
        type = "apprise"
        urls = ["{mailbox.url()}"]
        events = ["run.output", "run.failed"]

        [tasks.quiet]
        command = "true"
        notify = ["mail"]
        [tasks.report]
        command = "echo 'disk /srv at 91%'; echo token=$API_TOKEN; echo '<b>not html</b>'"
        env = {{ API_TOKEN = "{SECRET}" }}
        secret_env = ["API_TOKEN"]
        notify = ["mail"]
        """
    )
    daemon.wait_run(daemon.trigger("quiet")["id"])  # printed nothing: no mail
    run = daemon.wait_run(daemon.trigger("report")["id"])
    assert run["end_reason"] == "success"
    # One target's alerts go out in order: had "quiet" raised one, it would come first.
    wait_for(mailbox.received, what="the mail")
    [(recipients, mail)] = mailbox.received()
    assert recipients == ["ops@example.com"]
    assert mail["To"] == "ops@example.com" and mail["From"] == "cron@example.com"
    assert mail["Subject"] == "cronwarden: report printed output (succeeded, exit 0)"
    body = text_of(mail)
    assert "disk /srv at 91%\ntoken=***\n<b>not html</b>" in body
    assert f"Run:  {run['id']} (attempt 1)" in body
    assert f"Log:  {daemon.url}/api/runs/{run['id']}/log" in body
    assert SECRET not in mail.as_string() and SECRET not in daemon.log()
    wait_for(lambda: alert_metric(daemon, "mail", "run.output", "delivered") == 1, what="metric")


def test_a_failed_run_mails_its_failure_and_its_output(
    make_daemon: MakeDaemon, mailbox: Mailbox
) -> None:
    daemon = make_daemon(
        f"""
        [notify.mail]
        type = "apprise"
        urls = ["{mailbox.url()}"]
        events = ["run.output", "run.failed"]

        [tasks.backup]
        command = "echo copying; echo 'no space left' >&2; exit 2"
        notify = ["mail"]
        """
    )
    run = daemon.wait_run(daemon.trigger("backup")["id"])
    assert run["exit_code"] == 2
    wait_for(lambda: len(mailbox.received()) == 2, what="two mails")
    failed, printed = (mail for _, mail in mailbox.received())
    assert failed["Subject"] == "cronwarden: backup failed (exit 2)"
    assert printed["Subject"] == "cronwarden: backup printed output (failed, exit 2)"
    for mail in (failed, printed):
        body = text_of(mail)
        assert "Output:\n\ncopying\nno space left\n" in body
        assert run["id"] in body
    assert text_of(failed).startswith("backup failed with exit code 2\n")
    wait_for(lambda: alert_metric(daemon, "mail", "run.failed", "delivered") == 1, what="metric")


def test_apprise_json_posts_to_a_local_http_server_with_the_first_64_kib(
    make_daemon: MakeDaemon, http_receiver: HttpReceiver
) -> None:
    daemon = make_daemon(
        f"""
        [notify.chat]
        type = "apprise"
        urls = ["json://{http_receiver.url}/chat"]
        events = ["run.output"]

        [tasks.chatty]
        command = "yes 'a line of output' | head -c 100000"
        notify = ["chat"]
        """
    )
    run = daemon.wait_run(daemon.trigger("chatty")["id"])
    assert run["log_size"] == 100_000
    [post] = wait_for(lambda: http_receiver.on("/chat"), what="the post")
    assert post["title"] == "cronwarden: chatty printed output (succeeded, exit 0)"
    assert post["type"] == "info"
    message = post["message"]
    assert "Output (the first 65536 of 100000 bytes):" in message
    quoted = message.split("bytes):\n\n", 1)[1]
    assert quoted.startswith("a line of output\n")
    assert quoted.rstrip("\n") == ("a line of output\n" * 5000)[: 64 * 1024].rstrip("\n")


def test_a_retry_goes_only_to_the_url_that_failed_and_no_url_is_logged(
    make_daemon: MakeDaemon, http_receiver: HttpReceiver
) -> None:
    http_receiver.answers["/flaky"] = [503, 200]
    http_receiver.answers["/down"] = [500]
    daemon = make_daemon(
        f"""
        [notify.both]
        type = "apprise"
        urls = ["json://{http_receiver.url}/ok", "json://user:hunter2-pass@{http_receiver.url}/flaky"]
        retry_delay = "0"
        events = ["run.failed"]
        [notify.dead]
        type = "apprise"
        urls = ["json://user:hunter2-pass@{http_receiver.url}/down", "nosuchscheme://hunter2-pass@x"]
        retries = 1
        retry_delay = "0"
        events = ["run.failed"]

        [tasks.broken]
        command = "exit 1"
        notify = ["both", "dead"]
        """
    )
    daemon.wait_run(daemon.trigger("broken")["id"])
    wait_for(lambda: alert_metric(daemon, "both", "run.failed", "delivered") == 1, what="both")
    wait_for(lambda: alert_metric(daemon, "dead", "run.failed", "failed") == 1, what="dead")
    assert len(http_receiver.on("/ok")) == 1  # not sent again when /flaky was retried
    assert len(http_receiver.on("/flaky")) == 2
    assert len(http_receiver.on("/down")) == 2  # retries = 1
    [retrying] = [e for e in log_events(daemon, "alert.retrying") if e["target"] == "both"]
    assert retrying["error"] == "urls[1] (json) was not accepted (1 of 2 delivered)"
    [failed] = log_events(daemon, "alert.failed")
    assert failed["target"] == "dead"
    assert failed["error"] == (
        "urls[0] (json) was not accepted; urls[1] (nosuchscheme) is not a URL Apprise can "
        "use (unknown scheme, or a required part missing)"
    )
    assert "hunter2" not in daemon.log() and http_receiver.url not in daemon.log()


def test_apprise_is_imported_only_by_a_daemon_with_an_apprise_target(
    make_daemon: MakeDaemon, http_receiver: HttpReceiver
) -> None:
    def daemon_with(target: str) -> Daemon:
        daemon = make_daemon(
            f"""
            [notify.ops]
            {target}
            [tasks.broken]
            command = "exit 1"
            notify = ["ops"]
            """,
            start=False,
        )
        daemon.env["PYTHONPROFILEIMPORTTIME"] = "1"  # each import on stderr: the daemon's log
        daemon.start()
        daemon.wait_run(daemon.trigger("broken")["id"])
        wait_for(lambda: alert_metric(daemon, "ops", "run.failed", "delivered"), what="alert")
        return daemon

    def imported(daemon: Daemon) -> set[str]:
        lines = [ln for ln in daemon.log().splitlines() if ln.startswith("import time:")]
        assert len(lines) > 100  # the daemon's own imports are listed
        return {ln.rsplit("|", 1)[1].strip() for ln in lines}

    plain = daemon_with(f'type = "webhook"\nurl = "http://{http_receiver.url}/hook"')
    assert not {m for m in imported(plain) if m.split(".")[0] == "apprise"}
    with_apprise = daemon_with(f'type = "apprise"\nurls = ["json://{http_receiver.url}/a"]')
    assert "apprise" in imported(with_apprise)
