"""A task's page shows its locks and pool, who holds them now and who waits, in a real
browser against a real daemon, and stays accessible (axe)."""

from __future__ import annotations

from playwright.sync_api import expect


def test_task_page_shows_its_lock_and_pool_and_who_holds_them(make_daemon, gate, open_page) -> None:  # type: ignore[no-untyped-def]
    from axe_playwright_python.sync_playwright import Axe

    daemon = make_daemon(
        f"""
        [pools.workers]
        size = 2

        [tasks.backup]
        command = "{gate.wait_command}"
        locks = ["repo"]
        pool = "workers"
        overlap = "queue"

        [tasks.prune]
        command = "true"
        locks = ["repo"]
        overlap = "queue"
        """
    )
    holder = daemon.trigger("backup")
    daemon.wait_run(holder["id"], lambda r: r["status"] == "running")
    waiter = daemon.trigger("prune")
    node = daemon.get("/api/info").body["node"]

    page, _ = open_page(f"{daemon.url}/#/tasks/backup")
    expect(page.locator("h1")).to_have_text("backup")
    section = page.locator("section", has=page.get_by_role("heading", name="Locks and pool"))
    repo = section.get_by_role("row", name="repo")
    expect(repo).to_contain_text("lock")
    expect(repo.get_by_role("link", name="backup")).to_have_attribute(
        "href", f"#/runs/{holder['id']}"
    )
    expect(repo).to_contain_text(f"on {node}")
    expect(repo.get_by_role("link", name="prune")).to_have_attribute(
        "href", f"#/runs/{waiter['id']}"
    )  # waiting for the lock on this node
    expect(repo).to_contain_text("backup, prune")  # the tasks sharing it
    workers = section.get_by_role("row", name="workers")
    expect(workers).to_contain_text("pool")
    expect(workers.locator("td.num")).to_have_text("2")

    violations = Axe().run(page).response["violations"]
    assert [v["id"] for v in violations if v["impact"] in ("serious", "critical")] == []

    # The holder ends, the waiting run takes the lock and ends: the page follows.
    gate.open()
    daemon.wait_run(waiter["id"])
    expect(repo).to_contain_text("free")
    expect(repo.get_by_role("link")).to_have_count(0)

    page, _ = open_page(f"{daemon.url}/#/tasks/prune")
    expect(page.locator("h1")).to_have_text("prune")
    section = page.locator("section", has=page.get_by_role("heading", name="Locks and pool"))
    expect(section.get_by_role("row")).to_have_count(2)  # its header and repo: no pool
