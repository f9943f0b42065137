"""A run's page shows what it cost (CPU, peak memory, output written)."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_a_run_page_shows_what_the_run_cost(make_daemon, open_page) -> None:  # type: ignore[no-untyped-def]
    # dd's buffer: a peak above the daemon's own, so the kernel's figure is the run's
    command = "seq 1 100; dd if=/dev/zero of=/dev/null bs=160M count=1 2>/dev/null"
    daemon = make_daemon(f'[tasks.talker]\ncommand = "{command}"\n')
    run = daemon.wait_run(daemon.trigger("talker")["id"])
    page, _ = open_page(f"{daemon.url}/#/runs/{run['id']}")
    expect(page.locator("h1")).to_contain_text("success")
    fields = page.locator("dl.fields")
    expect(fields.locator("dt", has_text="CPU").locator("+ dd")).to_have_text(
        re.compile(r"^\d+\.\d\d s user, \d+\.\d\d s system$")
    )
    expect(fields.locator("dt", has_text="Peak memory").locator("+ dd")).to_have_text(
        re.compile(r"^1\d\d(\.\d+)? MiB$")
    )
    expect(fields.locator("dt", has_text="Output written").locator("+ dd")).to_have_text("292 B")
