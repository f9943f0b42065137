"""Where a job runs, without daemons: the nodes and on_every_node keys, node matching,
a node's scheduler leaving out the tasks it does not match, a fire's row per node, and
the trigger a node refuses (cronwarden/placement.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dispatch_doubles import FakeClock  # type: ignore[import-not-found]
from test_scheduler_service import FakeDispatcher, FakeStore  # type: ignore[import-not-found]

from cronwarden.config import TaskConfig, load_config, parse_config
from cronwarden.errors import ConfigError
from cronwarden.model import Trigger
from cronwarden.placement import fire_node, not_here, runs_on
from cronwarden.scheduler.service import SchedulerService
from cronwarden.store.memory import MemoryStore

T = datetime(2036, 5, 1, 12, 0, 30, tzinfo=UTC)


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def task(body: str, name: str = "t") -> TaskConfig:
    config = parse_config(f'[tasks.{name}]\ncommand = "true"\n{body}', Path("/tmp/c.toml"))
    return config.tasks[name]


def test_the_keys_default_to_any_node_once_per_fire() -> None:
    plain = task("")
    assert plain.nodes is None and plain.on_every_node is False
    assert runs_on(plain, "anything:9477")
    assert fire_node(plain, "web-1") == ""


def test_patterns_are_case_sensitive_globs_over_node_names() -> None:
    web = task('nodes = ["web-*", "db1", "cache-[ab]", "q?"]')
    assert web.nodes == ("web-*", "db1", "cache-[ab]", "q?")
    for node in ("web-1", "web-", "db1", "cache-a", "q1"):
        assert runs_on(web, node), node
    for node in ("Web-1", "db10", "db", "cache-c", "q12", "xweb-1"):
        assert not runs_on(web, node), node


def test_an_every_node_fire_is_the_node_s_own() -> None:
    cleanup = task('schedule = "@hourly"\non_every_node = true\nnodes = ["web-*"]')
    assert fire_node(cleanup, "web-2") == "web-2"


def test_the_refusal_names_the_patterns_and_the_node() -> None:
    detail = not_here(task('nodes = ["web-*", "db1"]'), "batch-3")
    assert "runs only on nodes matching 'web-*', 'db1'" in detail
    assert "this node is 'batch-3'" in detail


def test_bad_values_are_reported_with_their_lines(tmp_path: Path) -> None:
    found = problems(
        """\
[tasks.a]
command = "true"
nodes = "web-*"

[tasks.b]
command = "true"
nodes = []

[tasks.c]
command = "true"
nodes = ["web-*", " db1"]

[tasks.d]
command = "true"
on_every_node = true

[tasks.e]
command = "true"
schedule = "@daily"
on_every_node = "always"

[tasks.f]
command = "true"
nodes = [1]
""",
        tmp_path,
    )
    text = "\n".join(found)
    assert "c.toml:3: tasks.a.nodes: expected a list of node-name patterns" in text
    assert "c.toml:7: tasks.b.nodes: needs at least one pattern" in text
    assert "leave nodes out for a task any node runs" in text
    assert "c.toml:11: tasks.c.nodes: ' db1' is not a node-name pattern" in text
    assert "c.toml:15: tasks.d.on_every_node: on_every_node = true runs each" in text
    assert "but the task has no schedule" in text
    assert "c.toml:20: tasks.e.on_every_node:" in text
    assert "c.toml:24: tasks.f.nodes: expected a list of node-name patterns" in text
    assert len(found) == 6


def test_defaults_may_set_them(tmp_path: Path) -> None:
    config = parse_config(
        '[defaults]\nnodes = ["web-*"]\n[tasks.a]\ncommand = "true"\n'
        '[tasks.b]\ncommand = "true"\nnodes = ["db1"]\n',
        tmp_path / "c.toml",
    )
    assert config.tasks["a"].nodes == ("web-*",) and config.tasks["b"].nodes == ("db1",)


SCHEDULED = """
[tasks.anywhere]
command = "true"
schedule = "* * * * *"

[tasks.web]
command = "true"
schedule = "* * * * *"
nodes = ["web-*"]

[tasks.boot]
command = "true"
schedule = "@reboot"
nodes = ["web-*"]
"""


async def scheduler_of(node: str, text: str, anchors: dict[str, datetime] | None = None):  # type: ignore[no-untyped-def]
    defs = dict(parse_config(text, Path("/tmp/c.toml")).tasks)
    dispatcher = FakeDispatcher(defs, FakeStore(anchors or {}))
    service = SchedulerService(dispatcher, dispatcher.store, FakeClock(at=T), node=node)  # type: ignore[arg-type]
    await service.start(defs)
    await service.wait_inflight()
    return service, dispatcher, defs


async def test_a_node_times_only_the_tasks_it_matches() -> None:
    web, web_fired, _ = await scheduler_of("web-1", SCHEDULED)
    db, db_fired, defs = await scheduler_of("db1", SCHEDULED)
    assert web.next_fire_time("web") is not None and web.next_fire_time("anywhere") is not None
    assert db.next_fire_time("web") is None and db.next_fire_time("anywhere") is not None
    assert [name for name, _, _ in web_fired.fired] == ["boot"]  # @reboot too
    assert db_fired.fired == []
    # A reload that moves a task away from this node stops timing it; back, it times again.
    moved = SCHEDULED.replace('nodes = ["web-*"]', 'nodes = ["db*"]', 1)
    changes = web.apply(dict(parse_config(moved, Path("/tmp/c.toml")).tasks))
    assert changes["removed"] == ["web"] and web.next_fire_time("web") is None
    changes = db.apply(dict(parse_config(moved, Path("/tmp/c.toml")).tasks))
    assert changes["added"] == ["web"] and db.next_fire_time("web") is not None
    for service in (web, db):
        service.shutdown()
        await service.wait_inflight()
    assert defs  # the definitions read once, in one pass


class OwnFiresStore(FakeStore):
    """The anchors any node handled, and those this node handled as its own."""

    own: dict[str, datetime]

    async def own_fires(self, node: str, task_names: list[str]) -> dict[str, datetime]:
        return {name: when for name, when in self.own.items() if name in task_names}


async def test_an_every_node_task_catches_up_from_the_node_s_own_fires_only() -> None:
    text = """
    [tasks.cleanup]
    command = "true"
    schedule = "* * * * *"
    on_every_node = true
    [tasks.report]
    command = "true"
    schedule = "* * * * *"
    """
    defs = dict(parse_config(text.replace("    ", ""), Path("/tmp/c.toml")).tasks)
    earlier = T - timedelta(minutes=10)
    for own, expected in (({}, ["report"]), ({"cleanup": earlier}, ["cleanup", "report"])):
        store = OwnFiresStore({"cleanup": earlier, "report": earlier})
        store.own = own
        dispatcher = FakeDispatcher(defs, store)
        service = SchedulerService(dispatcher, store, FakeClock(at=T), node="late")  # type: ignore[arg-type]
        await service.start(defs)
        await service.wait_inflight()
        # Another node's fires are no anchor: a node that joined late catches up on none.
        caught_up = sorted(name for name, _, how in dispatcher.fired if how == Trigger.CATCH_UP)
        assert caught_up == expected, own
        service.shutdown()
        await service.wait_inflight()


async def test_one_fire_claims_a_row_per_node_when_it_runs_on_every_node() -> None:
    from cronwarden.live_config import LiveConfig
    from cronwarden.runners.rows import NewRuns

    config = parse_config(
        '[tasks.cleanup]\ncommand = "true"\nschedule = "@hourly"\non_every_node = true\n'
        '[tasks.report]\ncommand = "true"\nschedule = "@hourly"\n',
        Path("/tmp/c.toml"),
    )
    live = LiveConfig(config)
    store = MemoryStore()
    fire = T.replace(minute=0, second=0)
    claimed = []
    for node in ("a", "b", "a"):
        new_run = NewRuns(live, FakeClock(at=T), node)
        runs = [
            new_run(config.tasks[name], Trigger.SCHEDULE, scheduled_for=fire)
            for name in ("cleanup", "report")
        ]
        won = await store.claim(runs)
        claimed.append(sorted((r.task_name, r.fire_node) for r in runs if r.id in won))
    assert claimed == [[("cleanup", "a"), ("report", "")], [("cleanup", "b")], []]
    # A retry keeps the fire_node of the run it repeats.
    retry = NewRuns(live, FakeClock(at=T), "b")(
        config.tasks["cleanup"], Trigger.RETRY, scheduled_for=fire, attempt=2, of_fire_node="a"
    )
    assert retry.fire_node == "a"


def test_explain_shows_where_the_task_runs(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from cronwarden.cli import main

    path = tmp_path / "c.toml"
    path.write_text(
        '[tasks.cleanup]\ncommand = "true"\nschedule = "@hourly"\n'
        'nodes = ["web-*", "db1"]\non_every_node = true\n'
        '[tasks.plain]\ncommand = "true"\nschedule = "@hourly"\n'
    )
    printed = CliRunner().invoke(main, ["explain", "-c", str(path), "cleanup", "-n", "1"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert "  nodes: web-*, db1 (no other node fires it or accepts a trigger of it)" in lines
    assert "  on_every_node: each fire runs once on every matching node" in lines
    shown = CliRunner().invoke(main, ["explain", "-c", str(path), "plain", "--json"])
    assert json.loads(shown.output)["nodes"] is None
    assert json.loads(shown.output)["on_every_node"] is False
