"""A run's page shows what its job reported: the stage, a progress bar and the output,
updated live as the job reports again, and stays accessible (axe)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import wait_for  # type: ignore[import-not-found]
from playwright.sync_api import expect


def test_a_run_page_shows_stage_progress_and_output_live(
    make_daemon, open_page, gate, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from axe_playwright_python.sync_playwright import Axe

    report = f"{sys.executable} -m cronwarden report"
    daemon = make_daemon(
        f"""
    [tasks.load]
    inherit_env = ["PYTHONPATH"]
    command = '''printf %s "$CRONWARDEN_RUN_TOKEN" > {tmp_path}/token; \\
    {report} --stage "loading <b>dumps</b>" --progress 0.5 --output '{{"rows": 3}}'; \\
    {gate.wait_command}'''
    """
    )
    run = daemon.trigger("load")
    wait_for(lambda: daemon.get(f"/api/runs/{run['id']}").body["stage"], what="the report")
    page, _ = open_page(f"{daemon.url}/#/runs/{run['id']}")
    said = page.locator("section[aria-labelledby=reported-h]")
    expect(said.locator("h2")).to_have_text("Reported by the job")
    expect(said.locator(".run-stage")).to_have_text("loading <b>dumps</b>")  # text, not markup
    bar = said.get_by_role("progressbar", name="Progress")
    expect(bar).to_have_attribute("value", "0.5")
    expect(said.locator(".run-progress")).to_have_text("50%")
    expect(said.locator("pre.run-output")).to_have_text('{\n  "rows": 3\n}')
    found = Axe().run(page).response["violations"]
    assert [v["id"] for v in found if v["impact"] in ("serious", "critical")] == []

    token = (tmp_path / "token").read_text()
    answer = daemon.request(
        "PATCH",
        f"/api/runs/{run['id']}",
        {"stage": "indexing", "progress": 0.75, "output": {"rows": 7, "tables": ["a"]}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 200, answer
    # Live, over /api/events: no reload.
    expect(bar).to_have_attribute("value", "0.75")
    expect(said.locator(".run-stage")).to_have_text("indexing")
    expect(said.locator("pre.run-output")).to_contain_text('"tables": [')
    gate.open()
    expect(page.locator("h1")).to_contain_text("success")
    expect(said.locator(".run-stage")).to_have_text("indexing")  # the end keeps them
    expect(bar).to_have_attribute("value", "0.75")
