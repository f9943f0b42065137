"""Each daemon's heartbeat in the nodes table, as GET /api/nodes and `cronwarden nodes`
show it: alone on SQLite, and several daemons on one PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import wait_for  # type: ignore[import-not-found]


def test_a_lone_daemon_lists_itself(make_daemon, gate) -> None:
    daemon = make_daemon(f'[tasks.hold]\ncommand = "{gate.wait_command}"\n')
    run = daemon.trigger("hold")
    daemon.wait_run(run["id"], lambda r: r["status"] == "running")
    # the config hash comes with the first beat after start-up
    (node,) = wait_for(
        lambda: [n for n in daemon.get("/api/nodes").body["nodes"] if n["same_config"]]
    )
    assert node["this_node"] and node["state"] == "alive"
    assert node["name"] == daemon.get("/api/info").body["node"]
    assert node["running_runs"] == 1
    assert node["api_url"] == daemon.url
    gate.open()
    daemon.wait_run(run["id"])
    assert daemon.get("/api/nodes").body["nodes"][0]["running_runs"] == 0

    cli = subprocess.run(
        [sys.executable, "-m", "cronwarden", "nodes", "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cli.returncode == 0, cli.stderr
    assert node["name"] in cli.stdout and "alive" in cli.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "cronwarden", "nodes", "--url", daemon.url, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(as_json.stdout)["nodes"][0]["name"] == node["name"]


@pytest.mark.postgres
def test_nodes_on_one_database_see_each_other_and_a_lapsed_lease(make_daemon, pg_admin) -> None:
    from conftest import wait_for  # type: ignore[import-not-found]

    url = pg_admin.create()
    extra = f'database = "{url}"\nnode_lease = "2s"'
    first = make_daemon('[tasks.a]\ncommand = "true"\n', daemon_extra=extra)
    second = make_daemon('[tasks.a]\ncommand = "false"\n', daemon_extra=extra)  # differs

    def listed() -> dict[str, dict]:  # type: ignore[type-arg]
        return {n["name"]: n for n in first.get("/api/nodes").body["nodes"]}

    names = wait_for(lambda: len(listed()) == 2 and listed(), what="both nodes listed")
    me = first.get("/api/info").body["node"]
    other = next(n for n in names if n != me)
    assert names[me]["this_node"] and names[me]["same_config"]
    assert not names[other]["this_node"] and not names[other]["same_config"]
    assert names[other]["state"] == "alive" and names[other]["api_url"] == second.url

    info = wait_for(lambda: first.get("/api/info").body["config_differs"], 10, "difference")
    assert info == [other]
    assert '"event": "config.differs_between_nodes"' in first.log()

    second.kill9()
    # lapsed, then dead once this node took over its runs
    dead = wait_for(lambda: listed()[other]["state"] == "dead" and listed(), 15, "takeover")
    assert dead[other]["silent_s"] > 2 and dead[other]["taken_over_by"] == me
    assert listed()[me]["state"] == "alive"
    assert wait_for(lambda: first.get("/api/info").body["config_differs"] == [], 10)
    cli = subprocess.run(
        [sys.executable, "-m", "cronwarden", "nodes", "--url", first.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cli.returncode == 0 and f"dead (taken over by {me})" in cli.stdout, cli
