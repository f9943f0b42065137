"""The dashboard in a real browser against a real daemon: what an operator sees and
clicks.  Processes that must stay running wait on FIFO gates the test opens."""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

import pytest
from conftest import EXPECTED_REFUSALS  # type: ignore[import-not-found]
from playwright.sync_api import expect

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from conftest import Daemon, Gate  # type: ignore[import-not-found]

    workdir = tmp_path_factory.mktemp("dashboard")
    gates = {name: Gate(workdir / f"{name}.fifo") for name in ("run_now", "log", "stop")}
    tasks = f"""
        [tasks.gated]
        command = "echo started; {gates["run_now"].wait_command}; echo finished"

        [tasks.chatty]
        command = "echo first line; echo to stderr >&2; {gates["log"].wait_command}; echo last line"

        [tasks.failing]
        command = "echo about to fail >&2; exit 3"

        [tasks.stoppable]
        command = "{gates["stop"].wait_command}"

        [tasks.many]
        command = "true"

        [tasks.retrying]
        command = "echo attempt $CRONWARDEN_ATTEMPT; exit 1"
        retries = 1
        retry_delay = "0"

        [tasks.bad]
        command = "exit 1"

        [tasks.nightly]
        command = "echo report for $CRONWARDEN_PARAM_day"
        schedule = "30 1 * * *"
        timezone = "Europe/London"
        params = ["day"]
        env = {{ API_KEY = "s3cret-value", REGION = "eu" }}
        secret_env = ["API_KEY"]
    """
    daemon = Daemon(workdir, tasks).start()
    yield daemon, gates
    for gate in gates.values():
        with contextlib.suppress(AssertionError):
            gate.open(timeout=0)  # a test that failed left a process waiting
    assert daemon.stop() == 0


def row(page, task: str):  # type: ignore[no-untyped-def]
    return page.locator(f'tr[data-task="{task}"]')


def loaded_row(page, task: str):  # type: ignore[no-untyped-def]
    """A task's row once its recent runs have arrived (nothing moves under a click)."""
    found = row(page, task)
    expect(found.locator(".strip")).to_have_count(1)
    expect(found.locator(".strip.loading")).to_have_count(0)
    return found


def test_tasks_page_lists_every_task_with_schedule_and_next_fire(fleet, open_page) -> None:
    daemon, _ = fleet
    page, _ = open_page(daemon.url + "/")
    expect(page.locator("table.tasks tbody tr")).to_have_count(8)
    nightly = row(page, "nightly")
    expect(nightly).to_contain_text("At 01:30")
    expect(nightly).to_contain_text("30 1 * * *")
    expect(nightly).to_contain_text("Europe/London")
    expect(nightly).to_contain_text(re.compile(r"in \d+ hours?|tomorrow|in \d+ minutes?"))
    expect(row(page, "many")).to_contain_text("on request only")
    expect(page.locator("#live")).to_have_text("live")


def test_run_now_appears_and_turns_to_success_without_a_reload(fleet, open_page) -> None:
    daemon, gates = fleet
    page, _ = open_page(daemon.url + "/")
    page.evaluate("window.notReloaded = true")
    gated = loaded_row(page, "gated")
    gated.get_by_role("button", name="Run now: gated").click()
    expect(gated.locator("td[data-label='Last run']")).to_contain_text("running")
    expect(page.locator("#notices")).to_contain_text("Started gated.")
    gates["run_now"].open()
    expect(gated.locator("td[data-label='Last run']")).to_contain_text("success")
    expect(gated.locator(".strip .cell.o-success")).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True


def test_a_failing_task_shows_failed_with_its_exit_code(fleet, open_page) -> None:
    daemon, _ = fleet
    page, _ = open_page(daemon.url + "/")
    loaded_row(page, "failing").get_by_role("button", name="Run now: failing").click()
    page.locator("#notices").get_by_role("link", name="Open the run").click()
    expect(page.locator("h1")).to_contain_text("failed")
    outcome = page.locator("dl.outcome")
    expect(outcome).to_contain_text("exit 3")
    expect(outcome).to_contain_text("failed")
    expect(page.locator("ol.log li.err")).to_contain_text("about to fail")
    page.get_by_role("link", name="Tasks").click()
    expect(row(page, "failing").locator("td[data-label='Last run']")).to_contain_text("failed")


def test_a_runs_log_follows_live_and_ends(fleet, open_page) -> None:
    daemon, gates = fleet
    run = daemon.trigger("chatty")
    page, _ = open_page(f"{daemon.url}/#/runs/{run['id']}")
    log = page.locator("ol.log")
    expect(log.locator("li.out")).to_contain_text("first line")
    expect(log.locator("li.err")).to_contain_text("to stderr")
    expect(page.locator("h1")).to_contain_text("running")
    expect(page.locator(".log-state")).to_have_text("Following the log…")
    gates["log"].open()
    expect(log.locator("li.out").last).to_contain_text("last line")
    expect(page.locator(".log-state")).to_contain_text("The run has ended; 3 lines")
    expect(page.locator("h1")).to_contain_text("success")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download raw log").click()
    saved = Path(download.value.path()).read_text()
    assert saved.splitlines() == ["first line", "to stderr", "last line"]
    assert download.value.suggested_filename == f"chatty-{run['id']}.log"


def test_a_run_page_links_the_attempts_of_its_fire(fleet, open_page) -> None:
    from conftest import wait_for  # type: ignore[import-not-found]

    daemon, _ = fleet
    first = daemon.trigger("retrying")
    retry = wait_for(
        lambda: [r for r in daemon.runs(task_name="retrying") if r["retry_of"] == first["id"]],
        what="the retry",
    )[0]
    daemon.wait_run(retry["id"])
    page, _ = open_page(f"{daemon.url}/#/runs/{first['id']}")
    chain = page.locator("ol.chain li")
    expect(chain).to_have_count(2)
    expect(chain.nth(0)).to_contain_text("Attempt 1 (this run)")
    chain.nth(1).get_by_role("link").click()
    expect(page.locator("ol.log")).to_contain_text("attempt 2")
    expect(page.locator("dl.fields")).to_contain_text(first["id"])  # its retry_of


def test_stop_a_running_run_from_its_page(fleet, open_page) -> None:
    daemon, _ = fleet
    page, _ = open_page(f"{daemon.url}/#/runs?task_name=stoppable")
    expect(page.locator(".empty")).to_have_text("No runs match.")
    run = daemon.trigger("stoppable")
    live_row = page.locator(f'tr[data-run="{run["id"]}"]')
    expect(live_row).to_contain_text("running")  # arrived over /api/events
    live_row.get_by_role("link", name=f"Run {run['id']}").click()
    with page.expect_response(lambda r: r.url.endswith(f"/api/runs/{run['id']}/stop")) as asked:
        page.get_by_role("button", name="Stop").click()
    answer = asked.value
    assert answer.ok, (answer.status, answer.text())
    ended = daemon.wait_run(run["id"])
    assert ended["end_reason"] == "stopped", (ended, daemon.log()[-4000:])
    expect(page.locator("h1")).to_contain_text("stopped")
    assert daemon.wait_run(run["id"])["end_reason"] == "stopped"


def test_filters_and_paging_over_hundreds_of_runs(fleet, open_page) -> None:
    from conftest import wait_for  # type: ignore[import-not-found]

    daemon, _ = fleet
    for _ in range(150):
        daemon.trigger("many")
    for _ in range(60):
        daemon.trigger("bad")
    ended = "/api/runs?task_name={}&status=ended&total=true&limit=1"
    wait_for(lambda: daemon.get(ended.format("many")).body["total"] == 150, 60, "many ended")
    wait_for(lambda: daemon.get(ended.format("bad")).body["total"] == 60, 60, "bad ended")

    page, _ = open_page(f"{daemon.url}/#/runs")
    page.get_by_label("Task").fill("bad")
    page.get_by_label("End reason").select_option("failed")
    page.get_by_label("Per page").select_option("25")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("table.runs tbody tr")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        expect(rows).to_have_count(25 if pages < 3 else 10)
        expect(page.locator("table.runs tbody")).not_to_contain_text("success")
        seen += [rows.nth(i).get_attribute("data-run") or "" for i in range(rows.count())]
        following = page.get_by_role("link", name="Next page")
        if following.count() == 0:
            break
        first = rows.first.get_attribute("data-run")
        following.click()
        expect(rows.first).not_to_have_attribute("data-run", first or "")
    assert pages == 3 and len(set(seen)) == 60
    page.get_by_role("link", name="Previous page").click()
    expect(rows.first).to_have_attribute("data-run", seen[25])
    assert "end_reason=failed" in page.url and "task_name=bad" in page.url

    page.get_by_role("link", name="Reset").click()
    # The reset form is drawn anew (its task field empty): a choice made before that
    # would be made in the old form, and lost with it.
    expect(page.get_by_label("Task")).to_have_value("")
    expect(page).not_to_have_url(re.compile(r"task_name="))
    page.get_by_label("Sort by").select_option("task_name")
    page.get_by_label("Order").select_option("asc")
    page.get_by_role("button", name="Apply").click()
    expect(rows.first.locator("td[data-label='Task']")).to_have_text("bad")


def test_task_page_shows_figures_fires_and_hides_secrets(fleet, open_page) -> None:
    daemon, _ = fleet
    page, _ = open_page(f"{daemon.url}/#/tasks/nightly")
    expect(page.locator("h1")).to_have_text("nightly")
    expect(page.locator("dl.figures").first).to_contain_text("Success rate")
    fires = page.locator("section", has=page.get_by_role("heading", name="Next fires"))
    expect(fires.locator("tbody tr")).to_have_count(10)
    definition = page.locator("dl.definition")
    expect(definition).to_contain_text("API_KEY=***")
    expect(definition).to_contain_text("REGION=eu")
    expect(page.locator("body")).not_to_contain_text("s3cret-value")

    # Run it with a declared param through the form; the page redraws with the run.
    page.get_by_role("button", name="Run now").click()
    page.get_by_label("day").fill("monday")
    page.get_by_role("button", name="Run now", exact=True).last.click()
    page.locator("#notices").get_by_role("link", name="Open the run").click()
    expect(page.locator("ol.log")).to_contain_text("report for monday")
    expect(page.locator("dl.fields")).to_contain_text("day=monday")


def test_next_fires_mark_a_dst_shift(make_daemon, open_page) -> None:
    """Within a fortnight of a DST change in the task's zone, the fire after it says so."""
    daemon = make_daemon(
        '[tasks.far]\ncommand = "true"\nschedule = "0 12 * * *"\ntimezone = "Europe/London"\n'
    )
    fires = daemon.get("/api/tasks/far?next=400").body["next"]
    shifted = [f for f in fires if f["offset_change_minutes"]]
    assert {f["offset_change_minutes"] for f in shifted} == {60, -60}
    page, _ = open_page(f"{daemon.url}/#/tasks/far")
    expect(page.locator("h1")).to_have_text("far")
    table = daemon.get("/api/tasks/far?next=10").body["next"]
    marked = page.locator("tr.dst")
    expect(marked).to_have_count(sum(1 for f in table if f["offset_change_minutes"]))


def test_read_only_token_prompt_hides_actions(make_daemon, open_page) -> None:
    digest = {
        n: hashlib.sha256(s.encode()).hexdigest() for n, s in [("r", "read-1"), ("a", "adm-1")]
    }
    tokens = (
        f'[[daemon.tokens]]\nname = "viewer"\nsha256 = "{digest["r"]}"\nscopes = ["read"]\n'
        f'[[daemon.tokens]]\nname = "ops"\nsha256 = "{digest["a"]}"\nscopes = ["admin"]\n'
    )
    daemon = make_daemon('[tasks.t]\ncommand = "true"\n', daemon_extra=tokens)
    page, _ = open_page(daemon.url + "/", allow=EXPECTED_REFUSALS)
    dialog = page.get_by_role("dialog", name="API token")
    expect(dialog).to_be_visible()
    expect(page.locator("table.tasks")).to_have_count(0)  # nothing shown before a token
    dialog.get_by_label("Token").fill("wrong")
    dialog.get_by_role("button", name="Use token").click()
    expect(dialog).to_contain_text("not known")
    dialog.get_by_label("Token").fill("read-1")
    dialog.get_by_role("button", name="Use token").click()

    t = row(page, "t")
    expect(t).to_be_visible()
    run_now = t.get_by_role("button", name="Run now: t")
    expect(run_now).to_be_disabled()
    expect(run_now).to_have_attribute("title", "Needs a token with the trigger scope")
    expect(t.get_by_role("button", name="Pause t")).to_be_disabled()
    expect(page.locator("main")).to_contain_text("Token viewer has the read scope")
    expect(page.locator("#who")).to_contain_text("token viewer (read)")

    page.reload()  # the token stays for the browser session
    expect(row(page, "t")).to_be_visible()
    expect(dialog).to_be_hidden()

    admin, _ = open_page(daemon.url + "/", allow=EXPECTED_REFUSALS)
    admin.get_by_role("dialog", name="API token").get_by_label("Token").fill("adm-1")
    admin.get_by_role("button", name="Use token").click()
    expect(row(admin, "t").get_by_role("button", name="Run now: t")).to_be_enabled()
    loaded_row(admin, "t").get_by_role("button", name="Pause t").click()
    expect(row(admin, "t")).to_contain_text("paused")
    expect(row(page, "t")).to_contain_text("paused")  # the viewer's page followed


PAGES = {
    "tasks": "/#/",
    "runs": "/#/runs",
    "run": None,  # a failed run, found at run time
    "task": "/#/tasks/many",  # with its chart of 150 runs
    "nodes": "/#/nodes",
}


def settled(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """The page has drawn what it loads (its event stream stays open, so the network
    never goes idle)."""
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#live")).to_have_text("live")
    if name == "tasks":
        first = page.locator("td[data-label='Recent runs']").first
        expect(first.locator(".strip.loading")).to_have_count(0)  # the rest load on scrolling
    elif name == "run":
        expect(page.locator(".log-state")).to_contain_text("ended")
    elif name == "task":
        expect(page.locator("ol.chain, dl.definition")).not_to_have_count(0)


def test_every_page_passes_axe_and_is_photographed(fleet, open_page, artifacts: Path) -> None:
    from axe_playwright_python.sync_playwright import Axe

    daemon, _ = fleet
    failed = daemon.trigger("failing")
    daemon.wait_run(failed["id"])
    axe = Axe()
    problems: dict[str, list[str]] = {}
    for name, path in PAGES.items():
        url = daemon.url + (path or f"/#/runs/{failed['id']}")
        for scheme in ("light", "dark"):
            for device, size in (("desktop", {"width": 1280, "height": 900}), ("phone", PHONE)):
                page, _ = open_page(url, scheme=scheme, bypass_csp=True, **size)
                settled(page, name)
                shot = artifacts / "screenshots" / f"{name}-{device}-{scheme}.png"
                page.screenshot(path=str(shot), full_page=device == "phone")
                found = axe.run(page).response["violations"]
                serious = [
                    f"{v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['target']})"
                    for v in found
                    if v["impact"] in ("serious", "critical")
                ]
                if serious:
                    problems[f"{name} {device} {scheme}"] = serious
    assert problems == {}


def test_first_page_load_time_from_a_fresh_start(make_daemon, open_page, artifacts: Path) -> None:
    """Reported, not asserted: a timing on a shared machine is a figure, not a test."""
    daemon = make_daemon('[tasks.t]\ncommand = "true"\nschedule = "@every 1h"\n')
    page, _ = open_page(daemon.url + "/")
    expect(row(page, "t")).to_be_visible()
    ready = page.evaluate("performance.getEntriesByName('cronwarden:first-view')[0].startTime")
    nav = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
    figure = (
        f"first view drawn {ready:.0f} ms after navigation start "
        f"(DOMContentLoaded {nav['domContentLoadedEventEnd']:.0f} ms)\n"
    )
    (artifacts / "first-load.txt").write_text(figure)
    print(figure)
    assert ready > 0
