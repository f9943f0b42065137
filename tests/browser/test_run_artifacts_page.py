"""A run's page lists the files it kept (sizes for people, digests) as download links,
says what was dropped and why, and shows the listing when a run ends while open."""

from __future__ import annotations

import hashlib
from pathlib import Path

from playwright.sync_api import expect

WRITES = """
cd "$CRONWARDEN_ARTIFACTS_DIR" && head -c 3000 /dev/zero > report.bin && mkdir sub &&
printf 'a,b\\n1,2\\n' > sub/data.csv && ln -s /etc/passwd passwd
"""


def test_a_run_page_lists_its_artifacts_as_downloads(make_daemon, open_page, gate) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(
        f"""
    [tasks.writer]
    command = '''{WRITES}'''

    [tasks.slow]
    command = 'echo hi > "$CRONWARDEN_ARTIFACTS_DIR/late.txt"; {gate.wait_command}'
    """
    )
    run = daemon.wait_run(daemon.trigger("writer")["id"])
    page, _ = open_page(f"{daemon.url}/#/runs/{run['id']}")
    section = page.locator("section", has=page.locator("h2", has_text="Artifacts"))
    rows = section.locator("table.artifacts tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("report.bin")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("2.9 KiB")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text(hashlib.sha256(b"\0" * 3000).hexdigest())
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("8 B")
    expect(section.locator("ul.dropped li")).to_have_text(
        "passwd dropped: a symbolic link: only regular files are kept, and links are never followed"
    )
    link = section.get_by_role("link", name="sub/data.csv")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "data.csv"
    assert Path(download.value.path()).read_bytes() == b"a,b\n1,2\n"
    link.focus()  # a link: reachable from the keyboard, and Enter saves it too
    with page.expect_download() as again:
        page.keyboard.press("Enter")
    assert again.value.suggested_filename == "data.csv"

    slow = daemon.trigger("slow")
    daemon.wait_run(slow["id"], lambda r: r["status"] == "running")
    page.goto(f"{daemon.url}/#/runs/{slow['id']}")
    section = page.locator("section", has=page.locator("h2", has_text="Artifacts"))
    expect(section).to_contain_text("Listed when the run ends")
    expect(section.locator("table.artifacts")).to_be_hidden()
    gate.open()
    expect(section.get_by_role("link", name="late.txt")).to_be_visible()
    expect(section).not_to_contain_text("Listed when the run ends")
