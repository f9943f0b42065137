"""A run's attempts and the runs linked to it in one answer: GET /api/runs/{id}
?expand=attempts,related, and `cronwarden show RUN_ID`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

pytestmark = pytest.mark.both_databases

CLI = [sys.executable, "-m", "cronwarden"]
TASKS = """
[tasks.flaky]
command = "exit 1"
retries = 2
retry_delay = "0"

[tasks.after_flaky]
command = "true"
after = ["flaky"]
after_on = ["failed"]
"""


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [run["id"] for run in runs]


def chain_of(daemon: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A fire of flaky that failed three times, and the run its end started."""
    first = daemon.trigger("flaky")
    wait_for(
        lambda: len(daemon.runs(task_name="after_flaky", status="ended")) == 1,
        30,
        "the chained run's end",
    )
    attempts = daemon.runs(task_name="flaky", sort_direction="asc")
    assert [a["attempt"] for a in attempts] == [1, 2, 3] and attempts[0]["id"] == first["id"]
    return attempts, daemon.runs(task_name="after_flaky")[0]


def test_attempts_and_related_runs_come_in_one_answer(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    attempts, chained = chain_of(daemon)
    middle = daemon.get(f"/api/runs/{attempts[1]['id']}?expand=attempts,related")
    assert middle.status == 200
    body = middle.body
    assert body["id"] == attempts[1]["id"] and body["attempt"] == 2
    assert ids(body["attempts"]) == ids(attempts)  # back to attempt 1, on to the last
    assert [a["retry_of"] for a in body["attempts"]] == [None, *ids(attempts)[:2]]
    assert body["related"] == {"rerun_of": None, "reruns": [], "caused_by": [], "chained": []}

    last = daemon.get(f"/api/runs/{attempts[2]['id']}?expand=related").body
    assert "attempts" not in last and ids(last["related"]["chained"]) == [chained["id"]]
    cause = daemon.get(f"/api/runs/{chained['id']}?expand=related&expand=attempts").body
    assert ids(cause["related"]["caused_by"]) == [attempts[2]["id"]]
    assert ids(cause["attempts"]) == [chained["id"]]

    rerun = daemon.post(f"/api/runs/{attempts[0]['id']}/rerun")
    assert rerun.status == 201
    again = daemon.get(f"/api/runs/{rerun.body['id']}?expand=related").body
    assert again["related"]["rerun_of"]["id"] == attempts[0]["id"]
    first = daemon.get(f"/api/runs/{attempts[0]['id']}?expand=attempts,related").body
    assert ids(first["related"]["reruns"]) == [rerun.body["id"]]
    assert ids(first["attempts"]) == ids(attempts)  # a rerun is a run of its own

    plain = daemon.get(f"/api/runs/{attempts[0]['id']}")
    assert plain.status == 200 and not {"attempts", "related"} & set(plain.body)
    empty = daemon.get(f"/api/runs/{attempts[0]['id']}?expand=")
    assert empty.status == 200 and not {"attempts", "related"} & set(empty.body)


def test_an_unknown_expand_says_what_is_allowed(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    run = daemon.wait_run(daemon.trigger("after_flaky")["id"])
    for query in ("expand=attempts,children", "expand=ATTEMPTS", "expand=related&expand=x"):
        refused = daemon.get(f"/api/runs/{run['id']}?{query}")
        assert refused.status == 400 and refused.content_type == "application/problem+json"
        assert refused.body["type"] == "urn:cronwarden:problem:invalid-expand", query
        assert "it takes attempts and related" in refused.body["detail"], refused.body
    assert daemon.get(f"/api/runs/{run['id']}?expnad=attempts").status == 422  # unknown key
    unknown = "0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a"
    assert daemon.get(f"/api/runs/{unknown}?expand=attempts").status == 404


def test_show_prints_a_run_with_its_attempts_and_links(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    attempts, chained = chain_of(daemon)

    def show(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "show", "--url", daemon.url, *args], capture_output=True, text=True, timeout=60
        )

    as_json = show(attempts[2]["id"], "--json")
    assert as_json.returncode == 0, as_json.stderr
    expanded = f"/api/runs/{attempts[2]['id']}?expand=attempts,related"
    assert json.loads(as_json.stdout) == daemon.get(expanded).body
    table = show(attempts[2]["id"])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert f"id:           {attempts[2]['id']}" in lines and "end_reason:   failed" in lines
    linked = {line.split()[-5]: line for line in lines if line.startswith(("attempt", "chained"))}
    assert set(linked) == {*ids(attempts), chained["id"]}
    assert "attempt 3 (this run)" in linked[attempts[2]["id"]]
    assert linked[chained["id"]].startswith("chained") and "after_flaky" in linked[chained["id"]]
    missing = show("0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a")
    assert missing.returncode == 1 and "404" in missing.stderr
