"""What a web page can make a default (loopback, no token) daemon do, over raw HTTP.

A page on another origin can send "simple" requests (forms, no-cors fetch) whose
answers it cannot read but whose effects happen; a page that rebinds its own name to
127.0.0.1 talks to the daemon with ``Host: evil.example``. Both must change nothing.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TASKS = """
    [tasks.hello]
    command = "echo hello"

    [tasks.nightly]
    command = "true"
    schedule = "0 3 * * *"
"""
BROWSER_FORM = {"Content-Type": "text/plain", "Origin": "null", "Sec-Fetch-Site": "cross-site"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from conftest import Daemon  # type: ignore[import-not-found]

    d = Daemon(
        tmp_path_factory.mktemp("origin"),
        TASKS,
        daemon_extra='allowed_hosts = ["cron.example.com"]',
    ).start()
    yield d
    assert d.stop() == 0, d.log()


def send(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, str, Any]:
    """One request with exactly these headers (Host included when given), as a browser
    or a hostile page would send it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = dict(headers or {})
        host = headers.pop("Host", f"127.0.0.1:{port}")
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None or method == "POST":
            conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        response = conn.getresponse()
        payload = response.read()
        content_type = (response.getheader("Content-Type") or "").split(";")[0]
        parsed = json.loads(payload) if payload and "json" in content_type else payload
        return response.status, content_type, parsed
    finally:
        conn.close()


def runs_of(daemon, task: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {run["id"] for run in daemon.runs(task_name=task)}


def paused(daemon, task: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(daemon.get(f"/api/tasks/{task}").body["paused"])


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Content-Type": "application/json"},
        {"Origin": "null", "Content-Type": "application/json"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
        {"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"},
        # no-cors fetch from another origin: a safelisted type, the browser's labels
        {
            "Origin": "http://127.0.0.1:8000",
            "Sec-Fetch-Site": "same-site",
            "Sec-Fetch-Mode": "no-cors",
            "Content-Type": "text/plain;charset=UTF-8",
        },
    ],
    ids=["origin", "null-origin", "cross-site", "same-site", "no-cors-fetch"],
)
def test_a_cross_origin_trigger_pause_and_reload_change_nothing(daemon, headers) -> None:
    before = runs_of(daemon, "hello")
    for path in ("/api/tasks/hello/runs", "/api/tasks/nightly/pause", "/api/reload"):
        status, content_type, body = send(daemon.port, "POST", path, headers, b"{}")
        assert status == 403, (path, status, body)
        assert content_type == "application/problem+json"
        assert body["type"] == "urn:cronwarden:problem:cross-origin"
        assert "origin" in body["detail"] or "site" in body["detail"]
    assert runs_of(daemon, "hello") == before
    assert not paused(daemon, "nightly")


@pytest.mark.parametrize("body", [b"", b"  ", b'{"params": {}}', b"a=b"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_form_post_is_refused_whatever_its_body(daemon, content_type: str, body: bytes) -> None:
    before = runs_of(daemon, "hello")
    # An old browser may send neither Origin nor Sec-Fetch-*: the type alone refuses it.
    for path in ("/api/tasks/hello/runs", "/api/tasks/nightly/pause"):
        status, _, problem = send(daemon.port, "POST", path, {"Content-Type": content_type}, body)
        assert status == 415, (path, problem)
        assert problem["type"] == "urn:cronwarden:problem:unsupported-media-type"
        assert "application/json" in problem["detail"]
    assert runs_of(daemon, "hello") == before
    assert not paused(daemon, "nightly")


def test_a_browser_post_without_a_content_type_is_refused(daemon) -> None:
    before = runs_of(daemon, "hello")
    headers = {"Origin": f"http://127.0.0.1:{daemon.port}", "Sec-Fetch-Site": "same-origin"}
    status, _, problem = send(daemon.port, "POST", "/api/tasks/hello/runs", headers)
    assert status == 415, problem
    assert "Content-Type: application/json" in problem["detail"]
    assert runs_of(daemon, "hello") == before


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "EVIL.example.:{port}"])
def test_a_foreign_host_is_misdirected(daemon, method: str, host: str) -> None:
    headers = {"Host": host.format(port=daemon.port)}
    if method == "POST":
        headers["Content-Type"] = "application/json"
    for path in ("/api/tasks", "/api/tasks/nightly?definition=true", "/api/tasks/nightly/pause"):
        if method == "GET" and path.endswith("pause"):
            continue
        if method == "POST" and not path.endswith("pause"):
            continue
        status, content_type, problem = send(daemon.port, method, path, headers, b"{}")
        assert status == 421, (path, problem)
        assert content_type == "application/problem+json"
        assert problem["type"] == "urn:cronwarden:problem:misdirected-host"
        assert "allowed_hosts" in problem["detail"]
        assert "nightly" not in json.dumps(problem).replace("/api/tasks/nightly", "")
    assert not paused(daemon, "nightly")


def test_the_dashboard_page_itself_is_misdirected_too(daemon) -> None:
    status, _, _ = send(daemon.port, "GET", "/", {"Host": f"evil.example:{daemon.port}"})
    assert status == 421


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "127.0.0.1",
        "127.1.2.3:{port}",
        "localhost:{port}",
        "LOCALHOST",
        "app.localhost:{port}",
        "[::1]:{port}",
        "cron.example.com",
        "cron.example.com:443",
        socket.gethostname(),
    ],
)
def test_own_names_and_allowed_hosts_are_answered(daemon, host: str) -> None:
    status, _, body = send(
        daemon.port, "GET", "/api/tasks", {"Host": host.format(port=daemon.port)}
    )
    assert status == 200, body


def test_a_reverse_proxy_name_can_trigger_with_its_own_origin(daemon) -> None:
    headers = {
        "Host": "cron.example.com",
        "Origin": "https://cron.example.com",
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json",
    }
    status, _, run = send(daemon.port, "POST", "/api/tasks/hello/runs", headers, b"{}")
    assert status == 201, run
    daemon.wait_run(run["id"])


def test_the_dashboard_origin_can_trigger_and_pause(daemon) -> None:
    origin = f"http://127.0.0.1:{daemon.port}"
    headers = {
        "Origin": origin,
        "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Mode": "cors",
        "Content-Type": "application/json",
    }
    status, _, run = send(daemon.port, "POST", "/api/tasks/hello/runs", headers, b"{}")
    assert status == 201, run
    assert send(daemon.port, "POST", "/api/tasks/nightly/pause", headers, b"{}")[0] == 200
    assert paused(daemon, "nightly")
    assert send(daemon.port, "POST", "/api/tasks/nightly/resume", headers, b"{}")[0] == 200
    assert not paused(daemon, "nightly")
    daemon.wait_run(run["id"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/octet-stream"}, {"Content-Type": "application/json"}],
    ids=["curl", "http-library", "json"],
)
def test_a_script_post_without_a_body_still_triggers(daemon, headers) -> None:
    status, _, run = send(daemon.port, "POST", "/api/tasks/hello/runs", headers)
    assert status == 201, run
    daemon.wait_run(run["id"])


def test_gets_are_not_origin_checked(daemon) -> None:
    # A cross-origin page cannot read the answer (no CORS headers); a same-host one may.
    headers = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    status, _, body = send(daemon.port, "GET", "/api/tasks", headers)
    assert status == 200, body


def test_the_cli_still_works(daemon) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cronwarden", *args, "--url", daemon.url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ran = cli("run", "hello")
    assert ran.returncode == 0, ran.stderr
    assert cli("pause", "nightly").returncode == 0
    assert paused(daemon, "nightly")
    assert cli("resume", "nightly").returncode == 0
    assert not paused(daemon, "nightly")
    reloaded = cli("reload")
    assert reloaded.returncode == 0, reloaded.stderr


def test_a_reload_applies_new_allowed_hosts(tmp_path: Path) -> None:
    from conftest import Daemon, wait_for  # type: ignore[import-not-found]

    d = Daemon(tmp_path, TASKS).start()
    try:
        host = {"Host": f"added.example:{d.port}"}
        assert send(d.port, "GET", "/api/tasks", host)[0] == 421
        text = d.config.read_text().replace(
            "[daemon]\n", '[daemon]\nallowed_hosts = ["added.example"]\n'
        )
        d.config.write_text(text)
        assert d.post("/api/reload").status == 200
        wait_for(lambda: send(d.port, "GET", "/api/tasks", host)[0] == 200, what="new name")
    finally:
        assert d.stop() == 0, d.log()


def test_the_unix_socket_answers_any_host_but_still_checks_origin(tmp_path: Path) -> None:
    from conftest import Daemon  # type: ignore[import-not-found]

    d = Daemon(tmp_path, TASKS)
    sock_path = tmp_path / "api.sock"
    d.config.write_text(
        d.config.read_text().replace(f'"127.0.0.1:{d.port}"', f'"unix:{sock_path}"')
    )
    d.start_process()
    try:
        deadline = time.monotonic() + 20
        while unix_send(sock_path, "GET", "/health", {"Host": "anything"})[0] != 200:
            assert time.monotonic() < deadline and d.proc.poll() is None, d.log()
            time.sleep(0.05)
        assert unix_send(sock_path, "GET", "/api/tasks", {"Host": "evil.example"})[0] == 200
        refused = unix_send(
            sock_path, "POST", "/api/tasks/hello/runs", {**BROWSER_FORM, "Host": "proxy.example"}
        )
        assert refused[0] == 403
        assert unix_send(sock_path, "POST", "/api/tasks/hello/runs", {"Host": "x"})[0] == 201
    finally:
        assert d.stop() == 0, d.log()


def unix_send(path: Path, method: str, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """A raw HTTP/1.1 exchange over the unix socket (answers 0 while it is not there)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            sock.sendall(
                f"{method} {target} HTTP/1.1\r\n{head}Content-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    except OSError:
        return 0, b""
    return int(answer.split(b" ", 2)[1]), answer
