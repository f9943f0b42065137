"""The chain keys of tasks in the task API, against the real app in-process
(tests/inprocess.py): what starts a task (after, after_on, after_mode, after_params)
and what it starts (starts, the other side of the others' after), in the list, one
task and the OpenAPI document, worked out once per config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inprocess import InProcessApi, serve_in_process  # type: ignore[import-not-found]

TASKS = """
[tasks.extract]
command = "true"
params = ["day"]

[tasks.clean]
command = "true"

[tasks.load]
command = "true"
params = ["day"]
after = ["extract"]
after_params = "inherit"

[tasks.report]
command = "true"
after = ["load", "clean"]
after_on = ["success", "failed"]
after_mode = "all"

[tasks.audit]
command = "true"
after = ["extract"]
"""
CHAIN_KEYS = ("after", "after_on", "after_mode", "after_params", "starts")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with serve_in_process(TASKS, tmp_path) as served:
        yield served


def chain_of(task: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(task[key] for key in CHAIN_KEYS)


async def test_tasks_carry_what_starts_them_and_what_they_start(api: InProcessApi) -> None:
    status, _, body = await api.call("GET", "/api/tasks")
    assert status == 200, body
    listed = {task["name"]: chain_of(task) for task in body["tasks"]}
    assert listed == {
        "extract": ([], ["success"], "any", None, ["audit", "load"]),
        "clean": ([], ["success"], "any", None, ["report"]),
        "load": (["extract"], ["success"], "any", "inherit", ["report"]),
        "report": (["load", "clean"], ["success", "failed"], "all", None, []),
        "audit": (["extract"], ["success"], "any", None, []),
    }
    status, _, one = await api.call("GET", "/api/tasks/report")
    assert status == 200, one
    assert chain_of(one) == listed["report"]


async def test_the_openapi_document_describes_the_chain_keys(api: InProcessApi) -> None:
    status, _, spec = await api.call("GET", "/openapi.json")
    assert status == 200
    task = spec["components"]["schemas"]["TaskOut"]
    assert set(CHAIN_KEYS) <= set(task["required"])
    assert all(task["properties"][key].get("description") for key in CHAIN_KEYS)
    assert "caused_by" in spec["components"]["schemas"]["RunOut"]["properties"]


def test_starts_are_worked_out_once_per_config(api: InProcessApi) -> None:
    config = api.services.live.current
    assert config.starts is config.starts
    assert config.starts == {
        "extract": ["audit", "load"],
        "clean": ["report"],
        "load": ["report"],
    }


async def test_a_reloaded_config_shows_its_own_chain(api: InProcessApi, tmp_path: Path) -> None:
    from cronwarden.config import parse_config

    changed = TASKS.split("[tasks.audit]")[0].replace('after = ["extract"]\n', "")
    assert "extract" not in changed.split("[tasks.load]")[1]  # load no longer after it
    api.services.live.swap(parse_config(changed, tmp_path / "cronwarden.toml"))
    status, _, body = await api.call("GET", "/api/tasks/extract")
    assert status == 200, body
    assert body["starts"] == []
    status, _, body = await api.call("GET", "/api/tasks/load")
    assert (body["after"], body["starts"]) == ([], ["report"])
