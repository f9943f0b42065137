"""The dashboard marks a run as a failure by the daemon's own set (GET /api/info,
``failure_end_reasons``), the one its alerts and stats use, not by a list of its own."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Route, expect


@pytest.fixture(scope="module")
def ended(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A daemon with a failed and a successful run of one task."""
    from conftest import Daemon  # type: ignore[import-not-found]

    daemon = Daemon(
        tmp_path_factory.mktemp("failures"),
        """
        [tasks.flaky]
        command = "test \\"$CRONWARDEN_PARAM_ok\\" = yes"
        params = ["ok"]
        """,
    ).start()
    failed = daemon.wait_run(daemon.trigger("flaky", {"ok": "no"})["id"])
    succeeded = daemon.wait_run(daemon.trigger("flaky", {"ok": "yes"})["id"])
    assert (failed["end_reason"], succeeded["end_reason"]) == ("failed", "success")
    yield daemon, failed, succeeded
    assert daemon.stop() == 0


def test_a_failed_run_is_marked_failing_and_a_success_is_not(ended, open_page) -> None:  # type: ignore[no-untyped-def]
    daemon, failed, succeeded = ended
    assert daemon.get("/api/info").body["failure_end_reasons"] == [
        "failed",
        "timeout",
        "crashed",
        "log_overflow",
    ]
    page, _ = open_page(f"{daemon.url}/#/runs/{failed['id']}")
    expect(page.locator("h1 .badge")).to_have_class("badge o-failed failing")
    page.goto(f"{daemon.url}/#/runs/{succeeded['id']}")
    expect(page.locator("h1 .badge")).to_have_class("badge o-success")
    page.goto(f"{daemon.url}/#/tasks/flaky")
    expect(page.locator(".strip .cell.failing")).to_have_count(1)
    expect(page.locator(".strip .cell.o-failed.failing")).to_have_count(1)


def test_the_set_comes_from_the_api(ended, browser) -> None:  # type: ignore[no-untyped-def]
    """A daemon that counted only timeouts as failures would have the page say so."""
    daemon, failed, _ = ended

    def only_timeouts(route: Route) -> None:
        answer = route.fetch()
        info = {**answer.json(), "failure_end_reasons": ["timeout"]}
        route.fulfill(response=answer, body=json.dumps(info))

    context = browser.new_context()
    try:
        context.route("**/api/info", only_timeouts)
        page = context.new_page()
        page.goto(f"{daemon.url}/#/runs/{failed['id']}")
        expect(page.locator("h1 .badge")).to_contain_text("failed")
        expect(page.locator("h1 .badge")).to_have_class("badge o-failed")
    finally:
        context.close()
