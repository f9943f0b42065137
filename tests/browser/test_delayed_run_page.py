"""A run triggered for later shows when it may start; one past its ttl, when it expired."""

from __future__ import annotations

from playwright.sync_api import expect


def test_a_run_page_shows_delayed_until_and_expired_at(make_daemon, open_page, gate) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(
        f"""
    [tasks.later]
    command = "true"

    [tasks.queued]
    command = "{gate.wait_command}"
    overlap = "queue"
    """
    )
    later = daemon.post("/api/tasks/later/runs", {"delay": "1h"}).body
    page, _ = open_page(f"{daemon.url}/#/runs/{later['id']}")
    fields = page.locator("dl.fields")
    expect(fields.locator("dt", has_text="Delayed until").locator("+ dd")).to_contain_text(
        later["delayed_until"][:4]  # the year, whatever the viewer's locale writes around it
    )
    daemon.trigger("queued")
    expiring = daemon.post("/api/tasks/queued/runs", {"ttl": "1s"}).body
    expired = daemon.wait_run(expiring["id"])
    assert expired["end_reason"] == "expired"
    page.goto(f"{daemon.url}/#/runs/{expiring['id']}")
    expect(page.locator("h1")).to_contain_text("expired")
    expect(page.locator("dl.fields dt", has_text="Expired at")).to_be_visible()
    gate.open()
