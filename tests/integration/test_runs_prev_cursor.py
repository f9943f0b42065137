"""Paging back through run lists: a page's prev_cursor leads to the page before it
exactly as it was read, even after new runs were added, in the API (GET /api/runs and
a task's run list) and in `cronwarden runs --cursor`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.both_databases

CLI = [sys.executable, "-m", "cronwarden"]
TASKS = """
[tasks.alpha]
command = "true"

[tasks.beta]
command = "true"
"""


def ran(daemon: Any, *tasks: str) -> None:
    for task in tasks:
        daemon.wait_run(daemon.trigger(task)["id"])


def page(daemon: Any, path: str, query: str, cursor: str | None = None) -> dict[str, Any]:
    answer = daemon.get(f"{path}?{query}" + (f"&cursor={quote(cursor)}" if cursor else ""))
    assert answer.status == 200, answer
    return dict(answer.body)


def ids(listed: dict[str, Any]) -> list[str]:
    return [run["id"] for run in listed["runs"]]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/runs", "limit=3"),
        ("/api/runs", "limit=3&sort_field=task_name&sort_direction=asc"),
        ("/api/runs", "limit=3&sort_field=end_at&sort_direction=desc&status=ended"),
        ("/api/tasks/alpha/runs", "limit=2&sort_direction=asc"),
    ],
    ids=["newest-first", "by-task", "by-end", "a-task"],
)
def test_prev_cursor_returns_each_page_as_it_was(make_daemon, path: str, query: str) -> None:
    daemon = make_daemon(TASKS)
    ran(daemon, *["alpha", "beta"] * 5)
    pages = [page(daemon, path, query)]
    assert pages[0]["prev_cursor"] is None and pages[0]["has_next"]
    while pages[-1]["has_next"]:
        pages.append(page(daemon, path, query, pages[-1]["next_cursor"]))
    assert len(pages) >= 3 and all(p["prev_cursor"] for p in pages[1:])
    ran(daemon, "beta", "alpha", "beta")  # new runs, some sorting among the pages seen
    back = pages[-1]
    for seen in reversed(pages[:-1]):
        back = page(daemon, path, query, back["prev_cursor"])
        assert ids(back) == ids(seen)
    # Forward again: the page after the first one starts where the second one did (the
    # new runs sort before it, or after its first run).
    again = page(daemon, path, query, back["next_cursor"])
    assert ids(again)[0] == ids(pages[1])[0]


def test_a_cursor_of_another_sort_says_whose_it_is(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    ran(daemon, "alpha", "beta", "alpha")
    first = page(daemon, "/api/runs", "limit=1&sort_field=duration_ms")
    refused = daemon.get(f"/api/runs?limit=1&sort_field=end_at&cursor={first['next_cursor']}")
    assert refused.status == 400 and refused.content_type == "application/problem+json"
    assert refused.body["type"] == "urn:cronwarden:problem:invalid-cursor"
    detail = refused.body["detail"]
    assert "belongs to another sort (sort_field=duration_ms, sort_direction=desc)" in detail
    assert "without a cursor" in detail
    forged = daemon.get("/api/runs?cursor=bm90LWEtY3Vyc29y").body["detail"]
    assert "not one this server handed out" in forged
    next_cursor = quote(first["next_cursor"])
    with_offset = daemon.get(
        f"/api/runs?limit=1&sort_field=duration_ms&offset=1&cursor={next_cursor}"
    )
    assert with_offset.status == 200  # a next cursor takes an offset, as before
    second = page(daemon, "/api/runs", "limit=1&sort_field=duration_ms", first["next_cursor"])
    back = f"/api/runs?limit=1&sort_field=duration_ms&offset=2&cursor={second['prev_cursor']}"
    assert "takes no offset" in daemon.get(back).body["detail"]


def cli(daemon: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "runs", "--url", daemon.url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_pages_both_ways(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    ran(daemon, *["alpha", "beta"] * 3)
    first = json.loads(cli(daemon, "--json", "--limit", "4").stdout)
    assert first["prev_cursor"] is None
    second = cli(daemon, "--limit", "4", "--cursor", first["next_cursor"])
    assert second.returncode == 0, second.stderr
    assert [line.split()[0] for line in second.stdout.splitlines()[1:]] == ids(
        page(daemon, "/api/runs", "limit=4", first["next_cursor"])
    )
    hints = dict(line.split(" page: --cursor ") for line in second.stderr.splitlines())
    assert set(hints) == {"previous"}  # the last page: no next one
    ran(daemon, "beta")
    back = json.loads(cli(daemon, "--json", "--limit", "4", "--cursor", hints["previous"]).stdout)
    assert ids(back) == ids(first)
    other = cli(daemon, "--limit", "4", "--sort", "task_name", "--cursor", first["next_cursor"])
    assert other.returncode == 1 and "belongs to another sort" in other.stderr
