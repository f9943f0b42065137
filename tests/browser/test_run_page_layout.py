"""A run's page leads with what a reader came for: how the run ended and its log.  The
other fields sit beside the log on a wide screen and after it on a phone; while the run
runs, its duration and log size move."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from conftest import Gate, wait_for  # type: ignore[import-not-found]
from playwright.sync_api import Locator, expect

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def figure(page, name: str) -> Locator:  # type: ignore[no-untyped-def]
    return page.locator("dl.outcome dt", has_text=name).locator("+ dd")


def test_the_outcome_and_the_log_come_first(make_daemon, open_page, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon('[tasks.noisy]\ncommand = "seq 1 300; echo broke >&2; exit 2"\n')
    run = daemon.wait_run(daemon.trigger("noisy")["id"])
    url = f"{daemon.url}/#/runs/{run['id']}"
    for scheme in ("light", "dark"):
        for device, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page, _ = open_page(url, scheme=scheme, **size)
            expect(page.locator(".log-state")).to_contain_text("The run has ended; 301 lines")
            expect(figure(page, "End reason")).to_have_text("failed")
            expect(figure(page, "Exit")).to_have_text("exit 2")
            expect(figure(page, "Log size")).to_have_text(f"{run['log_size'] / 1024:.1f} KiB")
            # On a phone the details wait, unseen, until the log's lines are in: shown
            # earlier, they would be pushed down as the lines arrive (a layout shift).
            expect(page.locator("aside.run-aside")).to_be_visible()
            log = page.locator(".log-box").bounding_box()
            aside = page.locator("aside.run-aside").bounding_box()
            assert log is not None and aside is not None
            if device == "desktop":
                # Its first lines within the first screen, the details in a column beside
                assert log["y"] < 400, log
                assert aside["x"] >= log["x"] + log["width"], (log, aside)
                assert aside["y"] < log["y"], (log, aside)
            else:
                assert log["y"] < 560, log
                assert aside["y"] >= log["y"] + log["height"], (log, aside)
            shot = artifacts / "screenshots" / f"run-layout-{device}-{scheme}.png"
            page.screenshot(path=str(shot), full_page=device == "phone")


def test_a_running_runs_duration_and_log_size_move(make_daemon, open_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    more, end = Gate(tmp_path / "more.fifo"), Gate(tmp_path / "end.fifo")
    command = f"seq 1 145; {more.wait_command}; seq 146 200; {end.wait_command}"
    daemon = make_daemon(f'[tasks.printer]\ncommand = "{command}"\n')
    run_id = daemon.trigger("printer")["id"]
    # The API says what the log holds now (its row holds the size once the run ends):
    # 145 numbers and their newlines are 472 bytes.
    wait_for(lambda: daemon.get(f"/api/runs/{run_id}").body["log_size"] == 472, what="472 bytes")
    shown = daemon.get(f"/api/runs/{run_id}?expand=attempts").body
    assert (shown["status"], shown["log_size"]) == ("running", 472)

    page, _ = open_page(f"{daemon.url}/#/runs/{run_id}")
    expect(figure(page, "Status")).to_have_text("running")
    expect(figure(page, "Log size")).to_have_text("472 B")
    duration = figure(page, "Duration")
    expect(duration).to_have_text(re.compile(r"^\d"))
    first = duration.text_content()
    expect(duration).not_to_have_text(first or "")  # it counts up while the run runs

    more.open()  # 55 more numbers of 3 digits and a newline: 220 bytes
    expect(figure(page, "Log size")).to_have_text("692 B")
    end.open()
    ended = daemon.wait_run(run_id)
    expect(figure(page, "End reason")).to_have_text("success")
    assert ended["log_size"] == 692
    expect(figure(page, "Log size")).to_have_text("692 B")
    expect(duration).to_have_text(shown_duration(ended["duration_ms"]))  # the recorded one


def shown_duration(ms: int) -> str:
    """fmt.js's duration() below a minute (toFixed rounds a tie of the double up)."""
    if ms < 1000:
        return f"{ms} ms"
    seconds = Decimal(ms / 1000)
    places = Decimal("0.01") if seconds < 10 else Decimal("0.1")
    return f"{seconds.quantize(places, rounding=ROUND_HALF_UP)} s"
