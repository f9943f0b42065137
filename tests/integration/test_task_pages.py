"""GET /api/tasks a page at a time, through a real daemon on SQLite, and gzip on the
answers that gain from it.

The pages are cut from the configuration (the daemon's tasks, sorted), not from the
store: the store gives each listed task's newest run, and every task's when the states
decide what is listed.  So a reload between two pages moves nothing already given."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest

from cronwarden.api.schemas import TaskPage

NAMES = [f"job-{i:03d}" for i in range(250)]
TASKS = (
    "".join(f'[tasks.{name}]\ncommand = "true"\n' for name in NAMES)
    + """
[tasks.zz-failing]
command = "exit 3"

[tasks.zz-running]
command = "sleep 300"

[tasks.zz-paused]
command = "true"
schedule = "0 3 * * *"

[tasks.aa-soon]
command = "true"
schedule = "0 3 * * *"
"""
)
ALL = sorted([*NAMES, "zz-failing", "zz-running", "zz-paused", "aa-soon"])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from conftest import Daemon, wait_for  # type: ignore[import-not-found]

    d = Daemon(tmp_path_factory.mktemp("task-pages"), TASKS).start()
    d.wait_run(d.trigger("zz-failing")["id"])
    running = d.trigger("zz-running")
    d.wait_run(running["id"], lambda r: r["status"] == "running")
    assert d.post("/api/tasks/zz-paused/pause").status == 200
    wait_for(lambda: d.get("/api/tasks/aa-soon").body["next_run_at"], what="a next fire")
    yield d
    d.post(f"/api/runs/{running['id']}/stop")
    assert d.stop() == 0


def pages(daemon, query: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every page of a listing, following next_cursor."""
    found, cursor = [], ""
    while True:
        page = daemon.get(f"/api/tasks?{query}{cursor}")
        assert page.status == 200, page
        found.append(page.body)
        if not page.body["has_next"]:
            assert page.body["next_cursor"] is None
            return found
        cursor = f"&cursor={page.body['next_cursor']}"


def test_without_parameters_the_listing_is_every_task_as_before(daemon) -> None:
    body = daemon.get("/api/tasks").body
    assert [t["name"] for t in body["tasks"]] == ALL
    assert set(body) == {"tasks"}  # no paging fields: old clients read it as they did


def test_pages_by_name_cover_every_task_once_in_order(daemon) -> None:
    found = pages(daemon, "limit=100&total=true")
    assert [len(p["tasks"]) for p in found] == [100, 100, 54]
    assert [t["name"] for p in found for t in p["tasks"]] == ALL
    assert found[0]["total"] == len(ALL)
    assert set(found[0]) == {"tasks", "next_cursor", "has_next", "total"}  # counts: not asked
    TaskPage.model_validate(found[0])  # the documented answer
    offset = daemon.get("/api/tasks?limit=3&offset=100").body
    assert [t["name"] for t in offset["tasks"]] == ALL[100:103]


def test_a_reload_between_pages_moves_nothing_already_given(daemon) -> None:
    first = daemon.get("/api/tasks?limit=10").body
    given = [t["name"] for t in first["tasks"]]
    config = Path(daemon.config)
    before = config.read_text()
    config.write_text(before + '\n[tasks.aa-added]\ncommand = "true"\n')
    try:
        assert daemon.post("/api/reload").body["added"] == ["aa-added"]
        rest = pages(daemon, f"limit=100&cursor={first['next_cursor']}")
        after = [t["name"] for p in rest for t in p["tasks"]]
        assert given + after == ALL  # the new task sorts before the cursor: not repeated
    finally:
        config.write_text(before)
        daemon.post("/api/reload")


def test_states_filter_count_and_sort_most_urgent_first(daemon) -> None:
    body = daemon.get(
        "/api/tasks?state=failing,stuck,overdue,running,paused&sort=attention&counts=true&total=true"
    ).body
    listed = [(t["name"], t["attention"]) for t in body["tasks"]]
    assert listed == [
        ("zz-failing", ["failing"]),
        ("zz-running", ["running"]),
        ("zz-paused", ["paused"]),
    ]
    assert body["total"] == 3
    assert body["counts"] == {
        "tasks": len(ALL),
        "failing": 1,
        "stuck": 0,
        "overdue": 0,
        "running": 1,
        "paused": 1,
    }
    failing = daemon.get("/api/tasks?state=failing&state=paused").body  # repeated, as lists are
    assert [t["name"] for t in failing["tasks"]] == ["zz-failing", "zz-paused"]
    by_fire = daemon.get("/api/tasks?sort=next_run_at&limit=2").body["tasks"]
    assert [t["name"] for t in by_fire] == ["aa-soon", "job-000"]  # no next fire: by name
    assert by_fire[0]["next_run_at"] and by_fire[1]["next_run_at"] is None
    following = pages(daemon, "sort=attention&limit=2")
    assert [t["name"] for p in following for t in p["tasks"]][:4] == [
        "zz-failing",
        "zz-running",
        "zz-paused",
        "aa-soon",
    ]


@pytest.mark.parametrize(
    ("query", "status", "slug"),
    [
        ("cursor=nonsense", 400, "invalid-cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b'["name",1]').decode(), 400, "invalid-cursor"),
        ("state=broken", 422, "invalid-request"),
        ("limit=0", 422, "invalid-request"),
        ("limit=1001", 422, "invalid-request"),
        ("sort=created_at", 422, "invalid-request"),
        ("colour=red", 422, "invalid-request"),
    ],
)
def test_bad_parameters_say_what_is_allowed(daemon, query: str, status: int, slug: str) -> None:
    answer = daemon.get(f"/api/tasks?{query}")
    assert answer.status == status, answer
    assert answer.content_type == "application/problem+json"
    assert answer.body["type"].endswith(slug)
    if status == 422:
        assert answer.body["errors"][0]["message"], answer.body


def test_a_cursor_of_another_sort_is_refused(daemon) -> None:
    cursor = daemon.get("/api/tasks?sort=attention&limit=1").body["next_cursor"]
    refused = daemon.get(f"/api/tasks?sort=name&cursor={cursor}")
    assert refused.status == 400 and refused.body["type"].endswith("invalid-cursor")


def test_the_openapi_document_declares_the_paging_parameters(daemon) -> None:
    operation = daemon.get("/openapi.json").body["paths"]["/api/tasks"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"state", "sort", "limit", "cursor", "offset", "total", "counts"}


def fetch(daemon, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    """The raw answer: urllib would not say how it came."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def test_json_and_the_dashboards_files_come_gzipped_when_asked(daemon) -> None:
    for path in ("/api/tasks", "/api/tasks?limit=100", "/ui/app.js", "/"):
        status, headers, body = fetch(daemon, path, **{"Accept-Encoding": "gzip, deflate, br"})
        assert status == 200 and headers.get("content-encoding") == "gzip", (path, headers)
        assert "Accept-Encoding" in headers["vary"]
        status, plain_headers, plain = fetch(daemon, path)
        assert "content-encoding" not in plain_headers
        assert gzip.decompress(body) == plain and len(body) < len(plain) / 2, path
    _, zipped, _ = fetch(daemon, "/ui/app.js", **{"Accept-Encoding": "gzip"})
    _, plain, _ = fetch(daemon, "/ui/app.js")
    assert zipped["etag"] != plain["etag"]  # two representations, two tags
    asking = {"Accept-Encoding": "gzip", "If-None-Match": zipped["etag"]}
    again = fetch(daemon, "/ui/app.js", **asking)
    assert again[0] == 304
    refused = fetch(daemon, "/api/tasks", **{"Accept-Encoding": "gzip;q=0, deflate"})
    assert "content-encoding" not in refused[1]
    small = fetch(daemon, "/api/tasks/aa-soon", **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small[1]  # under a kilobyte: not worth it


def test_event_streams_are_never_compressed(daemon) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.request("GET", "/api/events", headers={"Accept-Encoding": "gzip"})
        answer = conn.getresponse()
        assert answer.status == 200
        assert answer.getheader("Content-Type", "").startswith("text/event-stream")
        assert answer.getheader("Content-Encoding") is None
    finally:
        conn.close()


def test_ten_thousand_tasks_shrink_tenfold(make_daemon, artifacts: Path) -> None:
    many = "".join(
        f'[tasks.task-{i:05d}]\ncommand = "/usr/bin/backup --volume {i}"\n'
        f'schedule = "{i % 60} 3 1 1 *"\n'  # New Year: no fire in the test
        for i in range(10_000)
    )
    daemon = make_daemon(many)
    started = time.monotonic()
    status, headers, zipped = fetch(daemon, "/api/tasks", **{"Accept-Encoding": "gzip"})
    took_zipped = time.monotonic() - started
    started = time.monotonic()
    _, _, plain = fetch(daemon, "/api/tasks")
    took_plain = time.monotonic() - started
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(zipped))["tasks"]) == 10_000
    figure = (
        f"GET /api/tasks, 10,000 tasks: {len(plain):,} bytes plain in {took_plain:.2f} s, "
        f"{len(zipped):,} gzipped in {took_zipped:.2f} s "
        f"({len(plain) / len(zipped):.1f}x smaller)\n"
    )
    (artifacts / "task-list-compression.txt").write_text(figure)
    print(figure)
    assert len(zipped) * 10 < len(plain)
