"""The dashboard redraws a run's page, a runs list and a task's page as runs change; a
link or button those redraws left as it was used to be replaced all the same, and a
press a redraw split (mouse down on the old element, up on the new) was no click: a
tag, a task link, Stop or Run now sometimes did nothing."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect


def keep(page: Any, selector: str) -> None:
    page.evaluate("(selector) => { window.kept = document.querySelector(selector); }", selector)


def still_there(page: Any) -> bool:
    return bool(page.evaluate("window.kept.isConnected"))


def test_a_run_s_page_and_a_runs_list_keep_what_a_redraw_left_as_it_was(  # type: ignore[no-untyped-def]
    make_daemon, open_page, gate
) -> None:
    daemon = make_daemon(f'[tasks.report]\ncommand = "{gate.wait_command}"\ntags = ["team:data"]\n')
    run = daemon.trigger("report")["id"]
    daemon.wait_run(run, lambda r: r["status"] == "running")
    page, _ = open_page(f"{daemon.url}/#/runs/{run}")
    expect(page.locator("dl.fields a.run-tag")).to_have_text("team:data")
    keep(page, "dl.fields a.run-tag")
    gate.open()
    ended = page.locator("dl.fields dt", has_text="Ended").locator("+ dd")
    expect(ended).not_to_have_text("—")  # redrawn: the run ended
    assert still_there(page), "the tag's link was replaced"

    run = daemon.trigger("report")["id"]
    page.goto(f"{daemon.url}/#/runs")
    task = page.locator(f'tr[data-run="{run}"] td[data-label="Task"] a')
    expect(task).to_have_text("report")
    keep(page, f'tr[data-run="{run}"] td[data-label="Task"] a')
    gate.open()
    outcome = page.locator(f'tr[data-run="{run}"] td[data-label="Outcome"] a')
    expect(outcome).to_have_attribute("aria-label", re.compile("^success"))  # redrawn
    assert still_there(page), "the task's link was replaced"


def test_a_task_s_page_keeps_what_a_redraw_left_as_it_was(make_daemon, open_page, gate) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(f'[tasks.report]\ncommand = "{gate.wait_command}"\n')
    page, _ = open_page(f"{daemon.url}/#/tasks/report")
    expect(page.get_by_text("No runs yet.")).to_be_visible()
    keep(page, "p.actions a.btn")  # All its runs
    run = daemon.trigger("report")["id"]
    gate.open()
    daemon.wait_run(run)
    expect(page.get_by_text("No runs yet.")).to_have_count(0)  # redrawn with the run
    assert still_there(page), "the link to its runs was replaced"


def test_the_tasks_list_keeps_what_a_redraw_left_as_it_was(make_daemon, open_page, gate) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(f'[tasks.report]\ncommand = "{gate.wait_command}"\n')
    page, _ = open_page(f"{daemon.url}/#/")
    last_run = page.locator('tr[data-task="report"] td[data-label="Last run"]')
    expect(last_run).to_have_text("never")
    keep(page, 'tr[data-task="report"] th a')
    run = daemon.trigger("report")["id"]
    expect(last_run.locator("a")).to_have_attribute("href", f"#/runs/{run}")  # redrawn
    gate.open()
    assert still_there(page), "the task's link was replaced"
