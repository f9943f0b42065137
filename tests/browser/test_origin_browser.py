"""What a web page in a real browser can make a default daemon (loopback, no token) do.

A page from another origin (a small HTTP server on another port) sends what any page
may send without asking: a ``no-cors`` fetch and an auto-submitted empty text/plain
form. A page whose name is rebound to 127.0.0.1 (chromium's --host-resolver-rules)
is same-origin with the daemon as far as the browser knows. Neither may change
anything or read anything; the dashboard served by the daemon itself still works.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

TASKS = """
    [tasks.hello]
    command = "echo hello"

    [tasks.nightly]
    command = "true"
    schedule = "0 3 * * *"
"""

ATTACK = """<!doctype html>
<html><body>
<iframe name="sink"></iframe>
<form id="form" method="post" enctype="text/plain" target="sink"
      action="{daemon}/api/reload"></form>
<form id="trigger" method="post" enctype="text/plain" target="sink"
      action="{daemon}/api/tasks/hello/runs"></form>
<script>
  window.fetched = Promise.all([
    fetch("{daemon}/api/tasks/hello/runs", {{method: "POST", mode: "no-cors"}}),
    fetch("{daemon}/api/tasks/nightly/pause", {{method: "POST", mode: "no-cors",
                                                 body: "{{}}"}}),
    fetch("{daemon}/api/reload", {{method: "POST", mode: "no-cors",
                                   headers: {{"Content-Type": "text/plain"}}}}),
  ]).then(() => "sent", (e) => "failed: " + e);
  let loads = 0;
  window.submitted = new Promise((resolve) => {{
    document.querySelector("iframe").addEventListener("load", () => {{
      loads += 1;
      if (loads === 1) document.getElementById("trigger").submit();
      else resolve("submitted");
    }});
  }});
  document.getElementById("form").submit();
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from conftest import Daemon  # type: ignore[import-not-found]

    d = Daemon(tmp_path_factory.mktemp("origin-browser"), TASKS).start()
    yield d
    assert d.stop() == 0, d.log()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright itself: this module launches chromium twice (once with a rebound name)."""
    from conftest import _ensure_chromium  # type: ignore[import-not-found]
    from playwright.sync_api import sync_playwright

    executable = _ensure_chromium()
    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        yield p, executable


@pytest.fixture(scope="module")
def chromium(playwright: Any) -> Iterator[Any]:
    p, executable = playwright
    launched = p.chromium.launch(executable_path=executable)
    yield launched
    launched.close()


@pytest.fixture
def attacker(daemon: Any) -> Iterator[str]:
    """Another origin: the attack page served from a port of its own."""
    page = ATTACK.format(daemon=daemon.url).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def run_ids(daemon: Any) -> set[str]:
    return {run["id"] for run in daemon.runs(task_name="hello")}


def paused(daemon: Any) -> bool:
    return bool(daemon.get("/api/tasks/nightly").body["paused"])


def test_a_page_on_another_origin_changes_nothing(daemon, chromium, attacker) -> None:
    before = run_ids(daemon)
    reloads = daemon.log().count("config.reloaded")
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(attacker)
        assert page.evaluate("window.fetched") == "sent"
        assert page.evaluate("window.submitted") == "submitted"
    finally:
        context.close()
    # Every request was answered (the page waited for each) before these reads.
    assert run_ids(daemon) == before
    assert not paused(daemon)
    assert daemon.log().count("config.reloaded") == reloads


def test_a_rebound_name_can_neither_read_nor_post(daemon, playwright) -> None:
    p, executable = playwright
    rebinding = p.chromium.launch(
        executable_path=executable,
        args=["--host-resolver-rules=MAP evil.example 127.0.0.1"],
    )
    before = run_ids(daemon)
    try:
        page = rebinding.new_page()
        response = page.goto(f"http://evil.example:{daemon.port}/")
        assert response is not None and response.status == 421
        expect(page.locator("body")).to_contain_text("allowed_hosts")
        answers = page.evaluate(
            """async () => {
              const read = await fetch("/api/tasks");
              const definition = await fetch("/api/tasks/nightly?definition=true");
              const post = await fetch("/api/tasks/nightly/pause", {
                method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
              const trigger = await fetch("/api/tasks/hello/runs", {
                method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
              return [read.status, definition.status, post.status, trigger.status,
                      (await read.text()).includes("hello")];
            }"""
        )
        assert answers == [421, 421, 421, 421, False]
    finally:
        rebinding.close()
    assert run_ids(daemon) == before
    assert not paused(daemon)


def test_the_dashboard_on_loopback_still_triggers_pauses_and_resumes(daemon, chromium) -> None:
    before = run_ids(daemon)
    context = chromium.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(daemon.url + "/")
        hello = page.locator('tr[data-task="hello"]')
        expect(hello.locator(".strip.loading")).to_have_count(0)
        hello.get_by_role("button", name="Run now: hello").click()
        expect(page.locator("#notices")).to_contain_text("Started hello.")
        nightly = page.locator('tr[data-task="nightly"]')
        expect(nightly.locator(".strip.loading")).to_have_count(0)
        nightly.get_by_role("button", name="Pause nightly").click()
        expect(nightly).to_contain_text("paused")
        assert paused(daemon)
        nightly.get_by_role("button", name="Resume nightly").click()
        expect(nightly.get_by_role("button", name="Pause nightly")).to_be_visible()
        assert not paused(daemon)
    finally:
        context.close()
    assert len(run_ids(daemon) - before) == 1
    assert errors == []


def test_the_dashboard_under_localhost_works_too(daemon, chromium) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://localhost:{daemon.port}/")
        expect(page.locator('tr[data-task="hello"] .strip')).to_have_count(1)
        expect(page.locator('tr[data-task="hello"] .strip.loading')).to_have_count(0)
        page.locator('tr[data-task="hello"]').get_by_role("button", name="Run now: hello").click()
        expect(page.locator("#notices")).to_contain_text("Started hello.")
    finally:
        context.close()
