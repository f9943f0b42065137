"""Endpoint rules against the real app served in-process (tests/inprocess.py): the real
handlers, middlewares and services over the in-memory store and a fake launcher, no
daemon and no subprocess.  A new endpoint rule gets its test here first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from inprocess import InProcessApi, serve_in_process  # type: ignore[import-not-found]

from cronwarden.model import EndReason, Status, Trigger
from cronwarden.run_record import RunRecord

TASKS = """
[tasks.hello]
command = "echo hello"

[tasks.nightly]
command = "true"
schedule = "0 3 * * *"
"""
PROBLEM = "application/problem+json"
JSON_POST = {"Content-Type": "application/json"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with serve_in_process(TASKS, tmp_path) as served:
        yield served


def problem_type(body: dict[str, Any]) -> str:
    return str(body["type"]).removeprefix("urn:cronwarden:problem:")


async def test_an_unknown_task_is_a_problem_404(api: InProcessApi) -> None:
    for method, path in (("GET", "/api/tasks/nope"), ("POST", "/api/tasks/nope/runs")):
        status, headers, body = await api.call(method, path, headers=JSON_POST)
        assert status == 404, body
        assert headers["Content-Type"].startswith(PROBLEM)
        assert problem_type(body) == "task-not-found"
        assert "nope" in body["detail"]
    assert api.store.runs == {}


async def test_a_trigger_is_201_and_its_idempotent_repeat_200(api: InProcessApi) -> None:
    keyed = {**JSON_POST, "Idempotency-Key": "deploy-42"}
    status, headers, first = await api.call("POST", "/api/tasks/hello/runs", headers=keyed)
    assert status == 201, first
    assert headers["Location"] == f"/api/runs/{first['id']}"
    assert (first["task_name"], first["triggered_by"]) == ("hello", "api")
    assert api.launcher.started == [first["id"]]  # the run really went to the launcher

    status, _, repeat = await api.call("POST", "/api/tasks/hello/runs", headers=keyed)
    assert status == 200, repeat
    assert repeat["id"] == first["id"]
    assert api.launcher.started == [first["id"]]  # and only once
    status, _, other = await api.call("POST", "/api/tasks/hello/runs", headers=JSON_POST)
    assert status == 201 and other["id"] != first["id"]


async def test_a_reused_key_with_another_body_is_a_conflict(api: InProcessApi) -> None:
    keyed = {"Idempotency-Key": "k1"}
    first, _, _ = await api.call("POST", "/api/tasks/hello/runs", json={}, headers=keyed)
    assert first == 201
    status, _, body = await api.call(
        "POST", "/api/tasks/hello/runs", json={"params": {"x": "1"}}, headers=keyed
    )
    assert status in (409, 422), body  # refused either way: never the first run silently
    assert "params" in body["detail"] or "Idempotency-Key" in body["detail"], body


async def test_a_run_ends_when_the_launcher_says(api: InProcessApi) -> None:
    _, _, run = await api.call("POST", "/api/tasks/hello/runs", headers=JSON_POST)
    api.launcher.finish(run["id"], EndReason.FAILED)
    for _ in range(100):  # the end is recorded by the dispatcher's own task: no timer
        status, _, ended = await api.call("GET", f"/api/runs/{run['id']}")
        if ended["status"] == "ended":
            break
    assert status == 200
    assert (ended["status"], ended["end_reason"], ended["exit_code"]) == ("ended", "failed", 1)


@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["cross-site", "null-origin", "same-site"],
)
async def test_a_cross_origin_post_is_403_and_changes_nothing(
    api: InProcessApi, browser: dict[str, str]
) -> None:
    for path in ("/api/tasks/hello/runs", "/api/tasks/nightly/pause"):
        status, headers, body = await api.call("POST", path, headers={**JSON_POST, **browser})
        assert status == 403, (path, body)
        assert headers["Content-Type"].startswith(PROBLEM)
        assert problem_type(body) == "cross-origin"
    assert api.store.runs == {} and api.launcher.started == []
    assert not api.services.pauses.is_paused("nightly")


async def test_the_same_origin_may_post(api: InProcessApi) -> None:
    origin = f"http://127.0.0.1:{api.client.port}"
    headers = {**JSON_POST, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
    status, _, body = await api.call("POST", "/api/tasks/hello/runs", headers=headers)
    assert status == 201, body


@pytest.mark.parametrize("host", ["evil.example", "evil.example:9477", "127.0.0.1.evil.example"])
async def test_an_unknown_host_is_421(api: InProcessApi, host: str) -> None:
    for method, path in (("GET", "/api/tasks"), ("POST", "/api/tasks/hello/runs")):
        status, headers, body = await api.call(method, path, headers={**JSON_POST, "Host": host})
        assert status == 421, (path, body)
        assert headers["Content-Type"].startswith(PROBLEM)
        assert problem_type(body) == "misdirected-host"
    assert api.store.runs == {}


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:1", "[::1]", "n1"])
async def test_known_hosts_are_answered(api: InProcessApi, host: str) -> None:
    status, _, body = await api.call("GET", "/api/tasks", headers={"Host": host})
    assert status == 200, body
    assert {t["name"] for t in body["tasks"]} == {"hello", "nightly"}


def ended_run(i: int, api: InProcessApi) -> RunRecord:
    at = api.clock.now() - timedelta(minutes=100 - i)
    return RunRecord(
        id=f"01900000-0000-7000-8000-{i:012d}",
        task_name="hello" if i % 2 else "nightly",
        status=Status.ENDED,
        end_reason=EndReason.SUCCESS if i % 3 else EndReason.FAILED,
        triggered_by=Trigger.API,
        created_at=at,
        start_at=at,
        end_at=at + timedelta(seconds=i),
        duration_ms=i * 1000,
        exit_code=0 if i % 3 else 1,
        node="n1",
        task_hash="h",
    )


async def test_runs_are_paged_by_cursor_newest_first(api: InProcessApi) -> None:
    await api.store.claim([ended_run(i, api) for i in range(1, 24)])
    seen: list[str] = []
    path = "/api/runs?limit=10&total=true"
    for _ in range(5):
        status, _, page = await api.call("GET", path)
        assert status == 200, page
        assert page["total"] == 23
        seen += [r["id"] for r in page["runs"]]
        if not page["has_next"]:
            break
        path = f"/api/runs?limit=10&total=true&cursor={page['next_cursor']}"
    assert seen == [ended_run(i, api).id for i in range(23, 0, -1)]


async def test_run_pages_filter_and_sort(api: InProcessApi) -> None:
    await api.store.claim([ended_run(i, api) for i in range(1, 13)])
    _, _, failed = await api.call("GET", "/api/runs?end_reason=failed&task_name=hello")
    assert [r["id"][-2:] for r in failed["runs"]] == ["09", "03"]
    shortest = "/api/runs?sort_field=duration_ms&sort_direction=asc&limit=3"
    _, _, by_length = await api.call("GET", shortest)
    assert [r["duration_ms"] for r in by_length["runs"]] == [1000, 2000, 3000]


async def test_a_page_of_a_bad_cursor_is_a_problem_400(api: InProcessApi) -> None:
    status, headers, body = await api.call("GET", "/api/runs?cursor=forged")
    assert status == 400, body
    assert headers["Content-Type"].startswith(PROBLEM)
    assert "cursor" in body["detail"]


async def test_a_fire_reserved_ahead_is_not_listed(api: InProcessApi) -> None:
    """The scheduler's reservation of the next fire is a row already; not a run yet."""
    ahead = api.clock.now() + timedelta(minutes=1)
    reserved = ended_run(1, api)
    reserved.change(
        {
            "status": Status.PENDING,
            "end_reason": None,
            "created_at": ahead,
            "triggered_by": "schedule",
            "scheduled_for": ahead,
            "not_before": ahead,
        }
    )
    await api.store.claim([reserved])
    _, _, page = await api.call("GET", "/api/runs?total=true")
    assert (page["runs"], page["total"]) == ([], 0)
    api.clock.advance(timedelta(minutes=1))
    _, _, page = await api.call("GET", "/api/runs?total=true")
    assert page["total"] == 1
