"""Three real daemons with the same config on one PostgreSQL database (DESIGN.md
§Several hosts): every fire runs once, a dead node's runs end crashed on a survivor and
retry there, API triggers, idempotency keys, stops and pauses hold across nodes, and a
node cut off from the database does not double-run or overwrite when it returns."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from conftest import (  # type: ignore[import-not-found]
    PG_URL,
    TcpProxy,
    alive,
    concurrently,
    stays_false,
    wait_for,
)

pytestmark = pytest.mark.postgres

LEASE = 2.0  # node_lease, seconds


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def start_nodes(make_daemon, tasks: str, urls: list[str]) -> list:  # type: ignore[no-untyped-def, type-arg]
    extra = 'database = "{}"\nnode_lease = "' + f'{LEASE:g}s"\n'
    return [make_daemon(tasks, daemon_extra=extra.format(url)) for url in urls]


def name_of(daemon) -> str:  # type: ignore[no-untyped-def]
    return str(daemon.get("/api/info").body["node"])


def running_retry(daemon, run: dict) -> dict | None:  # type: ignore[no-untyped-def, type-arg]
    """The retry of ``run`` once it is running (read through ``daemon``)."""
    found = [r for r in daemon.runs(task_name=run["task_name"]) if r["retry_of"] == run["id"]]
    return found[0] if found and found[0]["status"] == "running" else None


def through_proxy(url: str) -> tuple[TcpProxy, str]:
    """A relay to the database that the test can cut, and ``url`` through it: a node
    given that url is partitioned from PostgreSQL whenever the test says."""
    host, rest = PG_URL.split("://", 1)[1].split("/", 1)[0].split(":")
    proxy = TcpProxy((host, int(rest)))
    return proxy, url.replace(f"{host}:{rest}", f"127.0.0.1:{proxy.port}")


def tasks_of(daemon) -> set[str]:  # type: ignore[no-untyped-def]
    return {t["name"] for t in daemon.get("/api/tasks").body["tasks"]}


def events_named(daemon, event: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in daemon.log().splitlines() if f'"event": "{event}"' in line]


def fenced(daemon) -> bool:  # type: ignore[no-untyped-def]
    """Whether the node's keeper was last told that other nodes share the database."""
    said = events_named(daemon, "keeper.fence")
    return bool(said) and '"on": true' in said[-1]


@pytest.mark.timeout(240)
def test_three_nodes_run_each_fire_trigger_and_key_once(make_daemon, pg_admin, gate) -> None:
    url = pg_admin.create()
    tasks = f"""
    [tasks.tick]
    schedule = "* * * * * *"
    command = "true"

    [tasks.tock]
    schedule = "* * * * * *"
    command = "true"

    [tasks.once]
    command = "echo ran once"

    [tasks.hold]
    command = "{gate.wait_command}"

    [tasks.single]
    command = "{gate.wait_command}"
    overlap = "skip"
    """
    nodes = start_nodes(make_daemon, tasks, [url] * 3)
    names = [name_of(n) for n in nodes]
    window_start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)

    # API triggers sent round-robin: each runs once, on the node that received it.
    sent = [(i % 3, nodes[i % 3].trigger("once")["id"]) for i in range(30)]
    assert len({run_id for _, run_id in sent}) == 30
    for i, run_id in sent:
        run = nodes[(i + 1) % 3].wait_run(run_id)  # read through another node
        assert run["end_reason"] == "success" and run["node"] == names[i]

    # Its log lives on the node that ran it; another node relays it.
    i, run_id = sent[0]
    page = nodes[1].get(f"/api/runs/{run_id}/log")
    assert page.status == 200 and page.headers["X-Cronwarden-Node"] == names[0]
    assert [line["text"] for line in page.body["lines"]] == ["ran once"]
    raw = nodes[2].get(f"/api/runs/{run_id}/log/raw")
    assert raw.status == 200 and raw.body == "ran once\n"

    # One Idempotency-Key sent to two nodes at the same instant: one run.
    for attempt in range(5):
        key = {"Idempotency-Key": f"deploy-{attempt}"}
        answers = concurrently(
            2, lambda i, key=key: nodes[i].post("/api/tasks/once/runs", None, headers=key)
        )
        assert sorted(a.status for a in answers) == [200, 201], answers
        assert answers[0].body["id"] == answers[1].body["id"]
    assert len(nodes[2].runs(task_name="once")) == 35

    # A stop sent to a node that does not carry the run stops it.
    held = nodes[0].trigger("hold")
    nodes[0].wait_run(held["id"], lambda r: r["status"] == "running")
    stop = nodes[1].post(f"/api/runs/{held['id']}/stop")
    assert stop.status == 202, stop
    stopped = nodes[2].wait_run(held["id"], timeout=15)
    assert stopped["end_reason"] == "stopped" and stopped["node"] == names[0]
    again = nodes[1].post(f"/api/runs/{held['id']}/stop")
    assert again.status == 409 and "already ended" in again.body["detail"]

    # overlap = skip counts the runs other nodes hold.
    single = nodes[0].trigger("single")
    nodes[0].wait_run(single["id"], lambda r: r["status"] == "running")
    refused = nodes[1].post("/api/tasks/single/runs")
    assert refused.status == 409 and "1 of them on other nodes" in refused.body["detail"]
    gate.open()
    assert nodes[0].wait_run(single["id"])["end_reason"] == "success"

    # A pause stored by one node is honoured by all; so is the resume.
    assert nodes[2].post("/api/tasks/tock/pause").status == 200
    paused_at = datetime.now(UTC)
    wait_for(lambda: all(n.get("/api/tasks/tock").body["paused"] for n in nodes), 10, "paused")

    def tock_fired_after(moment: datetime) -> bool:
        runs = nodes[0].runs(task_name="tock", limit=1000)
        return any(z(r["scheduled_for"]) > moment for r in runs)

    assert stays_false(lambda: tock_fired_after(paused_at + timedelta(seconds=1)), 3)
    assert nodes[0].post("/api/tasks/tock/resume").status == 200
    wait_for(lambda: not any(n.get("/api/tasks/tock").body["paused"] for n in nodes), 10)
    resumed_at = datetime.now(UTC)
    wait_for(lambda: tock_fired_after(resumed_at), 10, "tock fires again")

    # A per-second task for 30 s: exactly one run for each second, on whichever node.
    window_end = window_start + timedelta(seconds=30)
    wait_for(lambda: datetime.now(UTC) > window_end + timedelta(seconds=2), 45, "30 s")
    ticks = [
        r
        for r in nodes[1].runs(task_name="tick", limit=1000)
        if window_start <= z(r["scheduled_for"]) < window_end
    ]
    per_second = Counter(z(r["scheduled_for"]) for r in ticks)
    assert sorted(per_second) == [window_start + timedelta(seconds=s) for s in range(30)]
    assert set(per_second.values()) == {1}
    assert {r["end_reason"] for r in ticks} == {"success"}
    assert {r["node"] for r in ticks} <= set(names)


@pytest.mark.timeout(240)
@pytest.mark.faults  # kill -9 of a fleet node, a partition (issue 24)
def test_a_killed_node_s_run_dies_with_it_and_retries_on_a_survivor(
    make_daemon, pg_admin, gate, tmp_path
) -> None:
    """By the processes' own clocks: the killed node's process of an overlap = "skip"
    task is gone (its keeper stopped it) before a survivor's retry of it starts."""
    url = pg_admin.create()
    starts = tmp_path / "starts.log"
    tasks = f"""
    [tasks.long]
    command = "date +%s.%N >> {starts}; {gate.wait_command}"
    overlap = "skip"
    retries = 1
    retry_delay = "1s"
    kill_grace = "30s"
    """
    nodes = start_nodes(make_daemon, tasks, [url] * 3)
    names = [name_of(n) for n in nodes]
    # A node killed before its heartbeat saw the others is "alone" (README: not
    # covered): its keeper would keep the run for the next life.
    wait_for(lambda: fenced(nodes[0]), 10, "the first node's keeper told of the others")
    run = nodes[0].trigger("long")
    pid = nodes[0].wait_run(run["id"], lambda r: r["status"] == "running")["pid"]
    wait_for(lambda: starts.exists() and starts.read_text().count("\n") == 1, 10, "started")

    nodes[0].kill9()
    killed_at = datetime.now(UTC)
    wait_for(lambda: not alive(pid), LEASE, "the killed node's run stopped by its keeper")
    gone_at = datetime.now(UTC).timestamp()
    crashed = nodes[1].wait_run(run["id"], timeout=LEASE + 10)
    assert crashed["end_reason"] == "crashed" and crashed["node"] == names[0]
    assert "took over" in crashed["error"]
    elsewhere = nodes[1].get(f"/api/runs/{run['id']}/log")
    assert elsewhere.status == 409 and names[0] in elsewhere.body["detail"]
    # by the database clock: within the lease, a beat and a margin for a busy machine
    assert z(crashed["end_at"]) - killed_at < timedelta(seconds=LEASE + 6)
    takers = [n for n in nodes[1:] if events_named(n, "node.taken_over")]
    assert len(takers) == 1 and len(events_named(takers[0], "node.taken_over")) == 1

    second = wait_for(lambda: running_retry(nodes[1], run), 20, "the retry on a survivor")
    assert second["node"] in names[1:] and second["attempt"] == 2
    wait_for(lambda: starts.read_text().count("\n") == 2, 10, "the retry's start line")
    retry_started = float(starts.read_text().split()[1])  # the retry's own clock
    assert gone_at <= retry_started, (gone_at, retry_started)

    nodes[0].start()  # back: it neither duplicates nor overwrites anything
    listed = {n["name"]: n for n in nodes[0].get("/api/nodes").body["nodes"]}
    assert listed[names[0]]["state"] == "alive"
    gate.open()  # the retry, alone at the gate
    assert nodes[2].wait_run(second["id"])["end_reason"] == "success"
    assert stays_false(lambda: len(nodes[0].runs(task_name="long")) != 2, 2)
    assert nodes[0].get(f"/api/runs/{run['id']}").body == crashed


def keeper_of(daemon) -> int:  # type: ignore[no-untyped-def]
    started = events_named(daemon, "keeper.started")
    assert len(started) == 1, started
    return int(json.loads(started[0])["pid"])


@pytest.mark.timeout(240)
@pytest.mark.faults  # kill -9 of a fleet node, a partition (issue 24)
def test_a_node_killed_with_its_keeper_stops_the_leftover_run_when_it_returns(
    make_daemon, pg_admin, gate
) -> None:
    """The daemon and its keeper killed together (no one left to stop the run): the
    run goes on, a survivor retries it, and the node stops it once it is back."""
    url = pg_admin.create()
    tasks = f"""
    [tasks.long]
    command = "{gate.wait_command}"
    retries = 1
    retry_delay = "1s"
    """
    nodes = start_nodes(make_daemon, tasks, [url] * 2)
    run = nodes[0].trigger("long")
    pid = nodes[0].wait_run(run["id"], lambda r: r["status"] == "running")["pid"]
    keeper = keeper_of(nodes[0])
    os.kill(keeper, signal.SIGSTOP)  # it cannot hear the daemon die, then dies itself
    nodes[0].kill9()
    os.kill(keeper, signal.SIGKILL)

    crashed = nodes[1].wait_run(run["id"], timeout=LEASE + 10)
    assert crashed["end_reason"] == "crashed"
    second = wait_for(lambda: running_retry(nodes[1], run), 20, "the retry on the survivor")
    assert alive(pid)  # only the daemon and its keeper died: its run's process goes on

    nodes[0].start()
    wait_for(lambda: not alive(pid), 15, "the leftover process stopped")
    assert events_named(nodes[0], "run.leftover_stopped")
    gate.open()
    assert nodes[1].wait_run(second["id"])["end_reason"] == "success"
    assert nodes[0].get(f"/api/runs/{run['id']}").body == crashed
    assert nodes[0].get(f"/api/runs/{second['id']}").body["end_reason"] == "success"


@pytest.mark.faults  # kill -9 of a fleet node, a partition (issue 24)
def test_a_node_cut_off_from_the_database_gives_up_its_runs_when_it_returns(
    make_daemon, pg_admin, gate
) -> None:
    url = pg_admin.create()
    proxy, proxied = through_proxy(url)
    tasks = f"""
    [tasks.tick]
    schedule = "* * * * * *"
    command = "true"

    [tasks.hold]
    command = "{gate.wait_command}"
    retries = 1
    retry_delay = "1s"
    """
    try:
        survivor, cut_off = start_nodes(make_daemon, tasks, [url, proxied])
        names = [name_of(survivor), name_of(cut_off)]
        run = cut_off.trigger("hold")
        cut_off.wait_run(run["id"], lambda r: r["status"] == "running")

        proxy.cut()
        crashed = survivor.wait_run(run["id"], timeout=LEASE + 10)
        assert crashed["end_reason"] == "crashed" and names[0] in crashed["error"]

        second = wait_for(lambda: running_retry(survivor, run), 20, "the retry on the survivor")
        assert second["node"] == names[0]

        proxy.restore()
        wait_for(lambda: events_named(cut_off, "node.was_taken_over"), 20, "rejoined")
        wait_for(lambda: events_named(cut_off, "run.abandoned"), 10, "its run given up")

        def alive_again() -> bool:
            listed = {n["name"]: n for n in survivor.get("/api/nodes").body["nodes"]}
            return bool(listed[names[1]]["state"] == "alive")

        wait_for(alive_again, 15, "the returning node alive again")
        assert survivor.get(f"/api/runs/{run['id']}").body == crashed
        gate.open()
        assert survivor.wait_run(second["id"])["end_reason"] == "success"
        assert stays_false(lambda: len(survivor.runs(task_name="hold")) != 2, 2)
        assert survivor.get(f"/api/runs/{run['id']}").body == crashed
        ticks = Counter(r["scheduled_for"] for r in survivor.runs(task_name="tick", limit=1000))
        assert set(ticks.values()) == {1}
        assert cut_off.get("/api/info").status == 200
    finally:
        proxy.close()


def test_a_reload_asked_of_one_node_reloads_every_node(make_daemon, pg_admin) -> None:
    url = pg_admin.create()
    nodes = start_nodes(make_daemon, '[tasks.a]\ncommand = "true"\n', [url] * 2)
    for node in nodes:  # as a rollout edits each host's file
        node.config.write_text(node.config.read_text() + '\n[tasks.b]\ncommand = "true"\n')
    answer = nodes[0].post("/api/reload")
    assert answer.status == 200 and answer.body["added"] == ["b"]

    wait_for(lambda: tasks_of(nodes[1]) == {"a", "b"}, 10, "the other node reloaded")
    assert events_named(nodes[1], "config.reload_asked_by_another_node")
    # both beat with the new hash within a heartbeat interval
    wait_for(lambda: nodes[0].get("/api/info").body["config_differs"] == [], 10, "same config")


@pytest.mark.faults  # a node cut off from the database (issue 24)
def test_a_reload_asked_while_a_node_was_not_listening_still_reaches_it(
    make_daemon, pg_admin
) -> None:
    """The request is kept in the database, not only said by a NOTIFY: a node that
    could not hear it (its LISTEN connection down) reloads once it is back."""
    url = pg_admin.create()
    proxy, proxied = through_proxy(url)
    try:
        asker, deaf = start_nodes(make_daemon, '[tasks.a]\ncommand = "true"\n', [url, proxied])
        for node in (asker, deaf):
            node.config.write_text(node.config.read_text() + '\n[tasks.b]\ncommand = "true"\n')
        proxy.cut()
        assert asker.post("/api/reload").body["added"] == ["b"]
        proxy.restore()
        wait_for(lambda: "b" in tasks_of(deaf), 15, "the node that was cut off reloaded")
        assert events_named(deaf, "config.reload_asked_by_another_node")
        assert asker.post("/api/reload").body["added"] == []  # asked once, done once
        wait_for(lambda: len(events_named(deaf, "config.reloaded")) == 2, 10, "reloaded twice")
        assert stays_false(lambda: len(events_named(deaf, "config.reloaded")) > 2, 1)
        assert len(events_named(deaf, "config.reload_asked_by_another_node")) == 2
    finally:
        proxy.close()


def test_max_concurrent_holds_across_nodes(make_daemon, pg_admin, gate) -> None:
    url = pg_admin.create()
    tasks = f"""
    [tasks.queued]
    command = "{gate.wait_command}"
    overlap = "queue"

    [tasks.newest]
    command = "{gate.wait_command}"
    overlap = "terminate"
    """
    a, b = start_nodes(make_daemon, tasks, [url] * 2)

    def running(r: dict) -> bool:  # type: ignore[type-arg]
        return bool(r["status"] == "running")

    # queue: a run triggered on b waits while a holds the task's only place.
    first = a.trigger("queued")
    a.wait_run(first["id"], running)
    second = b.trigger("queued")
    assert stays_false(lambda: running(b.get(f"/api/runs/{second['id']}").body), 1.5)
    gate.open()
    assert a.wait_run(first["id"])["end_reason"] == "success"
    b.wait_run(second["id"], running, timeout=10)
    gate.open()
    assert b.wait_run(second["id"])["end_reason"] == "success"

    # terminate: the newcomer on b has a's run stopped, then takes its place.
    old = a.trigger("newest")
    a.wait_run(old["id"], running)
    new = b.trigger("newest")
    assert a.wait_run(old["id"], timeout=15)["end_reason"] == "stopped"
    b.wait_run(new["id"], running, timeout=10)
    gate.open()
    assert b.wait_run(new["id"])["end_reason"] == "success"


@pytest.mark.timeout(120)
@pytest.mark.faults  # kill -9 of a fleet node, a partition (issue 24)
def test_a_cut_off_node_stops_a_run_that_must_not_overlap_before_a_survivor_retries_it(
    make_daemon, pg_admin, gate, tmp_path
) -> None:
    """By the processes' own clocks: the cut-off node's process of an overlap = "skip"
    task is gone before the survivor's retry of it starts (issue 24: a partition)."""
    url = pg_admin.create()
    proxy, proxied = through_proxy(url)
    starts = tmp_path / "starts.log"
    tasks = f"""
    [tasks.hold]
    command = "date +%s.%N >> {starts}; {gate.wait_command}"
    overlap = "skip"
    retries = 1
    retry_delay = "1s"
    kill_grace = "30s"
    """
    try:
        survivor, cut_off = start_nodes(make_daemon, tasks, [url, proxied])
        run = cut_off.trigger("hold")
        pid = cut_off.wait_run(run["id"], lambda r: r["status"] == "running")["pid"]
        wait_for(lambda: starts.exists() and starts.read_text().count("\n") == 1, 10, "started")

        proxy.cut()
        wait_for(lambda: not alive(pid), LEASE + 5, "the cut-off node's process stopped")
        gone_at = datetime.now(UTC).timestamp()
        assert events_named(cut_off, "node.lease_at_risk")
        crashed = survivor.wait_run(run["id"], timeout=LEASE + 10)
        assert crashed["end_reason"] == "crashed"
        wait_for(lambda: running_retry(survivor, run), 20, "the retry on the survivor")
        wait_for(lambda: starts.read_text().count("\n") == 2, 10, "the retry's start line")
        retry_started = float(starts.read_text().split()[1])  # the retry's own clock
        assert gone_at <= retry_started, (gone_at, retry_started)

        proxy.restore()
        wait_for(lambda: events_named(cut_off, "node.lease_regained"), 20, "the lease again")
        gate.open()
        retry = next(r for r in survivor.runs(task_name="hold") if r["retry_of"] == run["id"])
        assert survivor.wait_run(retry["id"])["end_reason"] == "success"
        assert survivor.get(f"/api/runs/{run['id']}").body == crashed  # its row stayed final
    finally:
        proxy.close()
