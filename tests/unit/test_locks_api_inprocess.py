"""GET /api/locks against the real app in-process (tests/inprocess.py), with the Holds
port replaced: a database outage is the API's usual 503, holders are matched to the
lock or pool they hold, and the names the API matches by are the run core's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from inprocess import InProcessApi, serve_in_process  # type: ignore[import-not-found]

from cronwarden.api.locks import named_holds
from cronwarden.errors import StoreUnavailable
from cronwarden.ports import Holder
from cronwarden.runners.holds import HoldPlace, lock_key, pool_key

TASKS = """
[pools.batch]
size = 3

[tasks.a]
command = "true"
locks = ["shared"]

[tasks.b]
command = "true"
locks = ["shared"]
pool = "batch"

[tasks.c]
command = "true"
"""
TAKEN = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


class FakeHolds:
    """The Holds port with fixed holders, or an unreachable database."""

    def __init__(self, holders: list[Holder], down: bool = False) -> None:
        self._holders = holders
        self.down = down

    async def take(self, run_id: str, wants: Mapping[str, int]) -> list[Holder] | None:
        return None

    async def holders(self, names: Collection[str] | None = None) -> list[Holder]:
        if self.down:
            raise StoreUnavailable("the database cannot be reached: connection refused")
        return [h for h in self._holders if names is None or h.name in names]

    async def announce_freed(self, names: Collection[str]) -> None:
        return None


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with serve_in_process(TASKS, tmp_path) as served:
        yield served


def wire(api: InProcessApi, holds: FakeHolds) -> None:
    api.services.dispatcher.holds = HoldPlace(holds, api.services.live)


async def test_holders_are_listed_under_what_they_hold(api: InProcessApi) -> None:
    wire(
        api,
        FakeHolds(
            [
                Holder(lock_key("shared"), "r1", "b", "n2", TAKEN),
                Holder(pool_key("batch"), "r1", "b", "n2", TAKEN),
                Holder(lock_key("gone"), "r9", "old", "n1", TAKEN),  # no task names it now
            ]
        ),
    )
    status, _, body = await api.call("GET", "/api/locks")
    assert status == 200, body
    assert body == {
        "locks": [
            {
                "name": "shared",
                "kind": "lock",
                "size": 1,
                "tasks": ["a", "b"],
                "holders": [
                    {
                        "run_id": "r1",
                        "task_name": "b",
                        "node": "n2",
                        "since": "2026-03-01T12:00:00.250Z",
                    }
                ],
                "waiting": [],
            },
            {
                "name": "batch",
                "kind": "pool",
                "size": 3,
                "tasks": ["b"],
                "holders": [
                    {
                        "run_id": "r1",
                        "task_name": "b",
                        "node": "n2",
                        "since": "2026-03-01T12:00:00.250Z",
                    }
                ],
                "waiting": [],
            },
        ]
    }


async def test_a_database_outage_is_a_503_problem(api: InProcessApi) -> None:
    wire(api, FakeHolds([], down=True))
    status, headers, body = await api.call("GET", "/api/locks")
    assert status == 503, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["type"] == "urn:cronwarden:problem:database-unavailable"
    assert headers["Retry-After"] == "5"


async def test_without_holds_wired_the_config_is_still_listed(api: InProcessApi) -> None:
    assert api.services.dispatcher.holds is None  # the harness does not wire them
    status, _, body = await api.call("GET", "/api/locks")
    assert status == 200
    assert [(lock["name"], lock["holders"]) for lock in body["locks"]] == [
        ("shared", []),
        ("batch", []),
    ]


async def test_a_query_parameter_is_refused(api: InProcessApi) -> None:
    status, _, body = await api.call("GET", "/api/locks?kind=lock")
    assert status == 422, body
    assert body["errors"][0]["field"] == "kind"


def test_the_names_matched_are_the_run_cores(api: InProcessApi) -> None:
    named = named_holds(api.services.live.current)
    assert [n.key for n in named] == [lock_key("shared"), pool_key("batch")]
    assert named_holds(api.services.live.current) is named  # worked out once per config
