"""Run tags in the dashboard: shown in run lists and on a run's page (with its
metadata), and a click on a tag lists the runs carrying it; the tag filter lives in
the URL like the others and follows new runs as they arrive."""

from __future__ import annotations

import json

from playwright.sync_api import expect

TASKS = """
[defaults]
tags = ["team:data"]

[tasks.report]
command = "true"

[tasks.other]
command = "true"
tags = []
"""


def test_tags_are_shown_and_a_click_filters_by_one(make_daemon, open_page) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(TASKS)

    def run(task: str, tags: list[str], metadata: dict[str, object] | None = None) -> str:
        body = {"tags": tags, "metadata": metadata or {}}
        made = daemon.post(f"/api/tasks/{task}/runs", body)
        assert made.status == 201, made
        return str(daemon.wait_run(made.body["id"])["id"])

    eu = run("report", ["customer:42", "region=eu"], {"ticket": 7, "by": "ann"})
    us = run("report", ["customer:42", "region=us"])
    untagged = run("other", [])

    page, _ = open_page(f"{daemon.url}/#/runs")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(3)
    tags_of = lambda run_id: page.locator(f'tr[data-run="{run_id}"] td[data-label="Tags"]')  # noqa: E731
    expect(tags_of(eu).locator("a.run-tag")).to_have_text(["team:data", "customer:42", "region=eu"])
    expect(tags_of(untagged)).to_have_text("—")

    # A click on a tag lists the runs carrying it; a second adds to the filter.
    tags_of(us).get_by_role("link", name="customer:42").click()
    expect(rows).to_have_count(2)
    assert "tag=customer%3A42" in page.url
    expect(page.get_by_label("Tags")).to_have_value("customer:42")
    tags_of(eu).get_by_role("link", name="region=eu").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run", eu)
    expect(page.get_by_label("Tags")).to_have_value("customer:42,region=eu")

    # A new run that carries the tags appears in place; one that does not, does not.
    page.get_by_label("Tags").fill("customer:42")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    fresh = run("report", ["customer:42"])
    run("report", ["customer:7"])
    expect(page.locator(f'tr[data-run="{fresh}"]')).to_have_count(1)
    expect(rows).to_have_count(3)

    # The run's page: its tags (each a link to the runs carrying it) and its metadata.
    page.goto(f"{daemon.url}/#/runs/{eu}")
    fields = page.locator("dl.fields")
    tags = fields.locator("dt", has_text="Tags").locator("+ dd a.run-tag")
    expect(tags).to_have_text(["team:data", "customer:42", "region=eu"])
    metadata = fields.locator("dt", has_text="Metadata").locator("+ dd pre.metadata")
    expect(metadata).to_have_text(json.dumps({"ticket": 7, "by": "ann"}, indent=2))
    tags.filter(has_text="region=eu").click()
    expect(page.locator("h1")).to_have_text("Runs")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run", eu)
