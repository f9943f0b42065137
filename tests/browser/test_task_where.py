"""A task's page says where it runs (nodes, on_every_node), in a real browser."""

from __future__ import annotations

from playwright.sync_api import expect


def test_task_page_says_where_the_task_runs(make_daemon, open_page) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(
        """
        [tasks.cleanup]
        command = "true"
        schedule = "0 4 * * *"
        nodes = ["*"]
        on_every_node = true

        [tasks.anywhere]
        command = "true"
        """
    )
    page, _ = open_page(f"{daemon.url}/#/tasks/cleanup")
    expect(page.locator("h1")).to_have_text("cleanup")
    expect(page.locator("p.where")).to_have_text(
        "Runs on nodes matching * — each scheduled fire once on every one of them."
    )
    page.goto(f"{daemon.url}/#/tasks/anywhere")
    expect(page.locator("h1")).to_have_text("anywhere")
    expect(page.locator("p.where")).to_have_count(0)
