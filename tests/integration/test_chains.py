"""Chains on real daemons (cronwarden/chains.py): a task's ``after`` starts its runs
when listed tasks' runs end; once per cause, in the transaction of the cause's end."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import concurrently, stays_false, wait_for  # type: ignore[import-not-found]


def chained_of(daemon: Any, run_id: str) -> list[dict[str, Any]]:
    return list(daemon.get(f"/api/runs?caused_by={run_id}").body["runs"])


def one_chained(daemon: Any, run_id: str, what: str) -> dict[str, Any]:
    found = wait_for(lambda: chained_of(daemon, run_id), 20, what)
    assert len(found) == 1, found
    return dict(daemon.wait_run(found[0]["id"]))


@pytest.mark.both_databases
def test_a_chain_runs_each_task_once_per_run_of_its_head(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.extract]
    command = "echo extracted $CRONWARDEN_PARAM_day"
    params = ["day"]

    [tasks.load]
    command = "echo loading $CRONWARDEN_PARAM_day"
    after = ["extract"]
    after_params = "inherit"
    params = ["day"]

    [tasks.report]
    command = "true"
    after = ["load"]
    """
    )
    heads = [daemon.trigger("extract", {"day": f"d{i}"}) for i in range(3)]
    for head in heads:
        assert daemon.wait_run(head["id"])["end_reason"] == "success"
        load = one_chained(daemon, head["id"], "load chained to extract")
        assert (load["triggered_by"], load["caused_by"]) == ("chain", [head["id"]])
        assert load["end_reason"] == "success" and load["params"] == head["params"]
        report = one_chained(daemon, load["id"], "report chained to load")
        assert report["caused_by"] == [load["id"]] and report["params"] == {}
    assert stays_false(lambda: len(daemon.runs(task_name="report")) != 3, 2)


@pytest.mark.both_databases
def test_after_on_and_retries_decide_what_starts(make_daemon, tmp_path) -> None:
    marker = tmp_path / "tried"
    daemon = make_daemon(
        f"""
    [tasks.flaky]
    command = "test -e {marker} || {{ touch {marker}; exit 1; }}"
    retries = 1
    retry_delay = "0"

    [tasks.on_success]
    command = "true"
    after = ["flaky"]

    [tasks.on_failure]
    command = "true"
    after = ["flaky"]
    after_on = ["failed", "timeout"]
    """
    )
    first = daemon.wait_run(daemon.trigger("flaky")["id"])
    assert first["end_reason"] == "failed"
    retry = wait_for(
        lambda: [r for r in daemon.runs(task_name="flaky") if r["retry_of"] == first["id"]],
        20,
        "the retry",
    )[0]
    assert daemon.wait_run(retry["id"])["end_reason"] == "success"
    # The failed first attempt was retried: only the final outcome starts a chain.
    assert chained_of(daemon, first["id"]) == []
    assert one_chained(daemon, retry["id"], "on_success")["task_name"] == "on_success"
    assert daemon.runs(task_name="on_failure") == []


@pytest.mark.both_databases
def test_fan_in_all_starts_once_both_causes_ended(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.left]
    command = "true"

    [tasks.right]
    command = "true"

    [tasks.join]
    command = "true"
    after = ["left", "right"]
    after_mode = "all"
    """
    )
    left = daemon.wait_run(daemon.trigger("left")["id"])
    assert stays_false(lambda: bool(daemon.runs(task_name="join")), 1)
    left_again = daemon.wait_run(daemon.trigger("left")["id"])
    right = daemon.wait_run(daemon.trigger("right")["id"])
    joined = one_chained(daemon, right["id"], "the join once both ended")
    assert sorted(joined["caused_by"]) == sorted([left_again["id"], right["id"]])
    assert left["id"] not in joined["caused_by"]  # the latest end of each counts
    assert stays_false(lambda: len(daemon.runs(task_name="join")) != 1, 1)
    # A new round needs both again.
    daemon.wait_run(daemon.trigger("right")["id"])
    assert stays_false(lambda: len(daemon.runs(task_name="join")) != 1, 1)
    last_left = daemon.wait_run(daemon.trigger("left")["id"])
    one_chained(daemon, last_left["id"], "the second join")


LEASE = 2.0


@pytest.mark.postgres
@pytest.mark.faults
@pytest.mark.timeout(240)
def test_a_chain_runs_once_across_three_nodes_and_through_a_node_s_death(
    make_daemon, pg_admin, gate
) -> None:
    """A -> B -> C once per A on three nodes; then the node that ran A is killed -9
    right after A ended, while B waits there (for a lock a gated run of that node
    holds): B still runs once, on a survivor, and C after it."""
    url = pg_admin.create()
    tasks = f"""
    [tasks.holder]
    command = "{gate.wait_command}"
    locks = ["b-waits"]

    [tasks.a]
    command = "true"

    [tasks.b]
    command = "true"
    after = ["a"]
    locks = ["b-waits"]
    overlap = "queue"

    [tasks.c]
    command = "true"
    after = ["b"]
    """
    extra = f'database = "{url}"\nnode_lease = "{LEASE:g}s"\n'
    nodes = [make_daemon(tasks, daemon_extra=extra) for _ in range(3)]
    heads = [node.trigger("a") for node in nodes]
    for head in heads:
        b = one_chained(nodes[1], head["id"], "b after a")
        assert one_chained(nodes[2], b["id"], "c after b")["end_reason"] == "success"
    assert stays_false(lambda: len(nodes[0].runs(task_name="c")) != 3, 2)

    doomed = nodes[0]
    name = doomed.get("/api/info").body["node"]
    holder = doomed.trigger("holder")
    doomed.wait_run(holder["id"], lambda r: r["status"] == "running")
    head = doomed.wait_run(doomed.trigger("a")["id"])
    waiting = wait_for(lambda: chained_of(doomed, head["id"]), 10, "b created with a's end")
    assert waiting[0]["status"] == "pending" and waiting[0]["node"] == name
    doomed.kill9()

    b = nodes[1].wait_run(waiting[0]["id"], timeout=LEASE + 30)
    assert b["end_reason"] == "success" and b["node"] != name
    assert len(chained_of(nodes[1], head["id"])) == 1
    c = one_chained(nodes[2], b["id"], "c after the survivor's b")
    assert c["end_reason"] == "success"
    assert stays_false(lambda: len(nodes[1].runs(task_name="b")) != 4, 2)


def test_a_skipped_fire_starts_what_waits_on_skips(make_daemon, gate) -> None:
    """An end recorded without a process (a fire skipped by overlap) starts a chain too,
    when the chained task's after_on names it."""
    daemon = make_daemon(
        f"""
    [tasks.busy]
    command = "{gate.wait_command}"
    schedule = "* * * * * *"
    timezone = "UTC"
    overlap = "skip"

    [tasks.notice]
    command = "true"
    after = ["busy"]
    after_on = ["skipped"]
    """
    )
    skipped = wait_for(
        lambda: [r for r in daemon.runs(task_name="busy") if r["end_reason"] == "skipped"],
        20,
        "a fire of busy skipped while one runs",
    )[-1]
    notice = one_chained(daemon, skipped["id"], "notice after the skip")
    assert notice["end_reason"] == "success" and notice["caused_by"] == [skipped["id"]]
    gate.open()


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_fan_in_across_nodes_fires_once_when_the_causes_end_at_once(make_daemon, pg_admin) -> None:
    """The two causes of an "all" chain end on two nodes at the same moment, round
    after round: each round starts the join exactly once (neither node misses the
    other's end, neither makes it twice)."""
    url = pg_admin.create()
    tasks = """
    [tasks.left]
    command = "true"

    [tasks.right]
    command = "true"

    [tasks.join]
    command = "true"
    after = ["left", "right"]
    after_mode = "all"
    """
    extra = f'database = "{url}"\nnode_lease = "{LEASE:g}s"\n'
    nodes = [make_daemon(tasks, daemon_extra=extra) for _ in range(3)]
    rounds = 5
    for done in range(1, rounds + 1):
        left, right = concurrently(2, lambda i: nodes[i].trigger(("left", "right")[i]))
        nodes[2].wait_run(left["id"])
        nodes[2].wait_run(right["id"])
        wait_for(lambda done=done: len(nodes[2].runs(task_name="join")) == done, 20, f"join {done}")
    assert stays_false(lambda: len(nodes[2].runs(task_name="join")) != rounds, 2)
