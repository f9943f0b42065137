"""Chains in a real browser against a real daemon: a chained run's page names the run
whose end started it, the cause's page lists what its end started (appearing live,
without a reload), and each task's page shows its chain; every page stays accessible
(axe)."""

from __future__ import annotations

from typing import Any

from conftest import wait_for  # type: ignore[import-not-found]
from playwright.sync_api import expect


def serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    return [v["id"] for v in violations if v["impact"] in ("serious", "critical")]


def test_a_run_shows_its_cause_and_what_its_end_started(make_daemon, gate, open_page) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(
        f"""
        [tasks.extract]
        command = "echo extracting; {gate.wait_command}"
        params = ["day"]

        [tasks.load]
        command = "echo loading $CRONWARDEN_PARAM_day"
        params = ["day"]
        after = ["extract"]
        after_params = "inherit"
        """
    )
    head = daemon.trigger("extract", {"day": "monday"})
    daemon.wait_run(head["id"], lambda r: r["status"] == "running")

    # The cause's page, open while it runs: what its end starts is said before it ends.
    page, _ = open_page(f"{daemon.url}/#/runs/{head['id']}")
    started = page.locator("section", has=page.get_by_role("heading", name="What it started"))
    expect(started).to_contain_text("When it ends, it may start: load.")
    expect(started.get_by_role("link", name="load")).to_have_attribute("href", "#/tasks/load")
    expect(page.locator("dl.fields")).to_contain_text("Caused by—")  # a run nobody chained
    assert serious(page) == []

    page.evaluate("window.notReloaded = true")
    gate.open()
    found = wait_for(
        lambda: daemon.get(f"/api/runs?caused_by={head['id']}").body["runs"], 20, "load chained"
    )
    chained = daemon.wait_run(found[0]["id"])
    link = started.get_by_role("link", name=f"load run {chained['id']}")
    expect(link).to_have_attribute("href", f"#/runs/{chained['id']}")  # appeared live
    expect(started.get_by_role("listitem")).to_have_count(1)
    expect(started.get_by_role("listitem")).to_contain_text("success")
    assert page.evaluate("window.notReloaded") is True

    # The chained run's page: triggered by chain, caused by the extract run.
    link.click()
    expect(page.locator("h1")).to_contain_text("load")
    fields = page.locator("dl.fields")
    expect(fields).to_contain_text("chain")
    cause = fields.get_by_role("link", name=f"extract run {head['id']}")
    expect(cause).to_have_attribute("href", f"#/runs/{head['id']}")
    expect(fields).to_contain_text("day=monday")  # the inherited param
    expect(page.get_by_role("heading", name="What it started")).to_be_hidden()  # ends a chain
    assert serious(page) == []


def test_task_pages_show_the_chain_both_ways(make_daemon, open_page) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(
        """
        [tasks.left]
        command = "true"

        [tasks.right]
        command = "true"

        [tasks.join]
        command = "true"
        after = ["left", "right"]
        after_on = ["success", "failed"]
        after_mode = "all"
        """
    )
    page, _ = open_page(f"{daemon.url}/#/tasks/join")
    expect(page.locator("h1")).to_have_text("join")
    chain = page.locator("section", has=page.get_by_role("heading", name="Chain"))
    expect(chain.get_by_role("link", name="left")).to_have_attribute("href", "#/tasks/left")
    expect(chain.get_by_role("link", name="right")).to_have_attribute("href", "#/tasks/right")
    expect(chain).to_contain_text("success, failed")
    expect(chain).to_contain_text("all: one run once each of them has ended")
    expect(chain).to_contain_text("Paramsnone")
    expect(chain).to_contain_text("Startsno task")
    assert serious(page) == []

    page.get_by_role("link", name="left").click()
    expect(page.locator("h1")).to_have_text("left")
    chain = page.locator("section", has=page.get_by_role("heading", name="Chain"))
    expect(chain).to_contain_text("no task (not chained)")
    expect(chain.get_by_role("link", name="join")).to_have_attribute("href", "#/tasks/join")
    assert serious(page) == []

    page, _ = open_page(f"{daemon.url}/#/tasks/join")  # a fresh page: nothing left over
    expect(page.locator("h1")).to_have_text("join")
    daemon.trigger("left")
    daemon.trigger("right")
    joined = wait_for(lambda: daemon.runs(task_name="join"), 20, "join after both")
    assert joined[0]["triggered_by"] == "chain" and len(joined[0]["caused_by"]) == 2
    recent = page.locator("section", has=page.get_by_role("heading", name="Recent runs"))
    expect(recent.locator(".strip a")).to_have_count(1)  # the chained run, shown live
