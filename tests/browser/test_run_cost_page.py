"""A run's page shows what it cost (CPU, peak memory, output written); a task's page what
its runs cost."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, expect


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


def test_a_task_page_shows_what_its_runs_cost(make_daemon, open_page) -> None:  # type: ignore[no-untyped-def]
    # dd's buffer: a peak above the daemon's own (a lower one is not known: runners/cost.py)
    talker = "seq 1 100; dd if=/dev/zero of=/dev/null bs=160M count=1 2>/dev/null"
    daemon = make_daemon(
        f'[tasks.talker]\ncommand = "{talker}"\n\n[tasks.quiet]\ncommand = "true"\n'
    )
    for _ in range(2):
        daemon.wait_run(daemon.trigger("talker")["id"])
    page, _ = open_page(f"{daemon.url}/#/tasks/talker")
    cost = page.locator("section", has=page.get_by_role("heading", name="What its runs cost"))

    def figure(name: str) -> Locator:
        return cost.locator("dt", has_text=name).locator("+ dd")

    expect(figure("CPU in all")).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d+ s$"))
    expect(figure("CPU a run")).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d+ s$"))
    expect(figure("Peak memory p95")).to_have_text(re.compile(r"^\d+(\.\d+)? (KiB|MiB)$"))
    expect(figure("Peak memory max")).to_have_text(re.compile(r"^\d+(\.\d+)? (KiB|MiB)$"))
    expect(figure("Output written")).to_have_text("584 B")
    expect(cost.locator(".note")).to_contain_text("over 2 runs")

    # A task that never ran: dashes, not zeros passed off as measurements.
    page.goto(f"{daemon.url}/#/tasks/quiet")
    expect(page.locator("h1")).to_have_text("quiet")
    expect(figure("CPU in all")).to_have_text("—")
    expect(figure("Peak memory max")).to_have_text("—")
    expect(figure("Output written")).to_have_text("0 B")
