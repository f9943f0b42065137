"""The dashboard's landing view and what a user meets every day, in a real browser
against a real daemon: what needs attention (failing first), icons that draw without
a font, one 24-hour time format, a definition in units, a long task list a page at a
time, and compressed answers.  A running task waits on a FIFO gate the test opens."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1400, "height": 900}
# Symbols the page once drew from fonts; U+29D7 is an empty box with Debian's fonts.
FONT_SYMBOLS = "⧗◷▶✓✗■⚠↷≋∅●○✕"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from conftest import Daemon, Gate  # type: ignore[import-not-found]

    workdir = tmp_path_factory.mktemp("landing")
    gate = Gate(workdir / "running.fifo")
    tasks = f"""
        [tasks.a-paused]
        command = "true"
        schedule = "*/10 * * * *"

        [tasks.b-running]
        command = "{gate.wait_command}"

        [tasks.c-failing]
        command = "echo no space left >&2; exit 3"

        [tasks.d-fine]
        command = "true"

        [tasks.e-nightly]
        command = "true"
        schedule = "30 1 * * *"
        timezone = "Europe/London"

        [tasks.f-charted]
        command = "true"
        timeout = "90s"
        stop_signal = "SIGINT"
        max_log_size = "2MiB"
        umask = "0027"
        limits = {{ memory = "512MiB" }}

        [tasks.g-slow]
        command = "sleep 30"
        timeout = "1s"
        kill_grace = "1s"
    """
    daemon = Daemon(workdir, tasks).start()
    for name in ("c-failing", "d-fine", "f-charted", "f-charted", "f-charted", "g-slow"):
        daemon.wait_run(daemon.trigger(name)["id"])
    running = daemon.trigger("b-running")
    daemon.wait_run(running["id"], lambda r: r["status"] == "running")
    assert daemon.post("/api/tasks/a-paused/pause").status == 200
    yield daemon
    with contextlib.suppress(AssertionError):
        gate.open(timeout=0)
    assert daemon.stop() == 0


def test_the_landing_view_counts_and_lists_what_needs_attention_failing_first(
    fleet, open_page, artifacts: Path
) -> None:
    for scheme in ("light", "dark"):
        for device, size in (("desktop", WIDE), ("phone", PHONE)):
            page, _ = open_page(fleet.url + "/", scheme=scheme, **size)
            counts = page.locator("ul.counts")
            expect(counts.locator(".state-failing")).to_contain_text("2 Failing")  # a timeout too
            expect(counts.locator(".state-running")).to_contain_text("1 Running")
            expect(counts.locator(".state-paused")).to_contain_text("1 Paused")
            expect(counts.locator(".state-stuck")).to_contain_text("0 Stuck")
            expect(counts.locator(".state-all")).to_contain_text("7 Tasks")
            urgent = page.locator("ol.attention > li")
            expect(urgent).to_have_count(4)
            order = [urgent.nth(i).get_attribute("data-task") for i in range(4)]
            assert order == ["c-failing", "g-slow", "b-running", "a-paused"]  # not by name
            expect(urgent.nth(0)).to_contain_text("failing")
            expect(urgent.nth(0).locator(".badge")).to_contain_text("failed")
            soon = page.locator("ol.soon")
            expect(soon).to_contain_text("e-nightly")
            expect(soon).not_to_contain_text("a-paused")  # paused: no next fire
            expect(page.locator("table.tasks tbody tr")).to_have_count(7)
            first_strip = page.locator("td[data-label='Recent runs']").first
            expect(first_strip.locator(".strip.loading")).to_have_count(0)  # the rest on scrolling
            page.screenshot(path=str(artifacts / "screenshots" / f"landing-{device}-{scheme}.png"))


def test_a_count_lists_the_tasks_in_its_state(fleet, open_page) -> None:
    page, _ = open_page(fleet.url + "/")
    page.locator("ul.counts").get_by_role("link", name="2 Failing").click()
    expect(page).to_have_url(re.compile(r"#/\?state=failing$"))
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(2)
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.task)") == ["c-failing", "g-slow"]
    expect(page.get_by_role("heading", name="Failing tasks")).to_be_visible()
    expect(page.locator(".count.state-failing a")).to_have_attribute("aria-current", "true")
    page.get_by_role("link", name="show every task").click()
    expect(page.locator("table.tasks tbody tr")).to_have_count(7)


def test_icons_are_inline_svg_and_no_font_symbol_is_left(fleet, open_page) -> None:
    timed_out = fleet.runs(task_name="g-slow")[0]
    assert timed_out["end_reason"] == "timeout"
    for path in ("/", "/#/runs", f"/#/runs/{timed_out['id']}", "/#/nodes"):
        page, _ = open_page(fleet.url + path)
        expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
        expect(page.locator(".badge svg.icon").first).to_be_visible()
        text = page.locator("body").inner_text()
        assert not set(FONT_SYMBOLS) & set(text), (path, set(FONT_SYMBOLS) & set(text))
    expect(page.locator(".badge.node-alive svg.i-alive")).to_have_count(1)
    page, _ = open_page(f"{fleet.url}/#/runs/{timed_out['id']}")
    expect(page.locator(".log-state")).to_contain_text("ended")  # the header is drawn for good
    timeout_badge = page.locator("h1 .badge.o-timeout")
    expect(timeout_badge).to_have_text("timeout")
    drawn = timeout_badge.locator("svg.i-timeout path")
    expect(drawn).to_be_visible()
    size = drawn.evaluate("p => { const b = p.getBBox(); return [b.width, b.height]; }")
    assert size[0] >= 5 and size[1] >= 10, size  # an hourglass's outline, not an empty box


def test_the_chart_labels_its_times_on_a_24_hour_clock(browser, fleet) -> None:
    """In an American locale and zone, where toLocaleTimeString says "9:08:03 AM"."""
    context = browser.new_context(locale="en-US", timezone_id="America/New_York")
    try:
        page = context.new_page()
        page.goto(f"{fleet.url}/#/tasks/f-charted")
        labels = page.locator("figure.chart svg text.label")
        expect(labels).to_have_count(4)
        times = [labels.nth(i).text_content() or "" for i in (2, 3)]
        assert all(re.fullmatch(r"\d{2}:\d{2}:\d{2}", t) for t in times), times
        chart = page.locator("figure.chart")
        expect(chart).to_contain_text("times in America/New_York")
        page.locator("figure.chart summary").click()
        table_text = chart.locator("table").inner_text()
        assert not re.search(r"\b(AM|PM)\b", table_text), table_text
        assert re.search(r"\b\d{2}:\d{2}:\d{2}\b", table_text), table_text
    finally:
        context.close()


def test_the_definition_reads_in_human_units(fleet, open_page) -> None:
    page, _ = open_page(f"{fleet.url}/#/tasks/f-charted")
    definition = page.locator("dl.definition")
    value = lambda key: definition.locator(f'dd[data-key="{key}"]')  # noqa: E731
    expect(value("stop_signal")).to_have_text("SIGINT (2)")
    expect(value("max_log_size")).to_have_text("2 MiB")
    expect(value("timeout")).to_have_text("1 min 30 s")
    expect(value("kill_grace")).to_have_text("5 s")
    expect(value("jitter")).to_have_text("off")
    expect(value("umask")).to_have_text("0027")
    expect(value("limits")).to_have_text("memory=512 MiB")
    expect(value("pool")).to_have_text("—")
    expect(value("enabled")).to_have_text("yes")
    text = definition.inner_text()
    assert "null" not in text and "10485760" not in text and "536870912" not in text


def test_three_hundred_tasks_come_a_page_at_a_time(make_daemon, open_page, artifacts: Path) -> None:
    names = [f"task-{i:03d}" for i in range(320)]
    daemon = make_daemon("".join(f'[tasks.{n}]\ncommand = "true"\n' for n in reversed(names)))
    page, _ = open_page(daemon.url + "/")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/tasks?limit=" in r.url else None)
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(50)
    status = page.locator(".more [role=status]")
    expect(status).to_have_text("50 of 320 tasks shown; more load as you scroll.")
    shown = 50
    while shown < 320:
        page.locator(".more").scroll_into_view_if_needed()
        expect(rows).not_to_have_count(shown)
        shown = rows.count()
    expect(rows).to_have_count(320)
    expect(status).to_have_text("320 of 320 tasks shown.")
    expect(page.get_by_role("button", name="Show more tasks")).to_be_hidden()
    listed = rows.evaluate_all("rows => rows.map(r => r.dataset.task)")
    assert listed == names  # in name order, each once
    following = [url for url in asked if "cursor=" in url]
    assert len(following) == 6 and all("limit=50" in url for url in following), asked
    page.screenshot(path=str(artifacts / "screenshots" / "landing-320-tasks.png"))


def test_answers_come_gzipped_and_the_event_stream_does_not(browser, fleet) -> None:
    context = browser.new_context()  # an empty cache: every file is fetched, none revalidated
    try:
        page = context.new_page()
        seen: dict[str, dict[str, str]] = {}
        page.on("response", lambda r: seen.setdefault(r.url.split("?")[0], r.headers))
        page.goto(fleet.url + "/")
        expect(page.locator("table.tasks tbody tr")).to_have_count(7)
        expect(page.locator("#live")).to_have_text("live")
        for path in ("/", "/ui/app.js", "/ui/app.css", "/api/tasks"):
            headers = seen[fleet.url + path]
            assert headers.get("content-encoding") == "gzip", (path, headers)
        events = seen[f"{fleet.url}/api/events"]
        assert events["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in events
    finally:
        context.close()
