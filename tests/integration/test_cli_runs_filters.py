"""``cronwarden runs`` against a real daemon: every filter the API has (end reason,
trigger, --since/--until, --all to the last page), a table that fits 100 columns with
durations people read (--wide for the rest), and errors that name the option."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import Daemon, wait_for  # type: ignore[import-not-found]

from cronwarden.support.readable import duration_ms
from cronwarden.support.timefmt import iso_z

LONG = "a-task-with-the-longest-name-a-task-may-have-" + "x" * 55
TASKS = f"""
[tasks.ok]
command = "true"
[tasks.bad]
command = "exit 3"
retries = 1
retry_delay = "100ms"
[tasks.slow]
command = "sleep 5"
timeout = "200ms"
[tasks.{LONG}]
command = "true"
"""


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args, "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def listed(daemon: Daemon, *args: str) -> list[str]:
    done = cli(daemon, "runs", "--json", *args)
    assert done.returncode == 0, done.stderr
    return [r["id"] for r in json.loads(done.stdout)["runs"]]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Six ended runs: ok, bad and its retry (both failed), slow (timeout), the long
    name; created one after the other."""
    daemon = Daemon(tmp_path_factory.mktemp("runs-filters"), TASKS).start()
    made: dict[str, dict[str, Any]] = {}
    for name in ("ok", "bad", "slow", LONG):
        made[name] = daemon.wait_run(daemon.trigger(name)["id"])
        if name == "bad":
            made["retry"] = wait_for(
                lambda: [
                    r for r in daemon.runs(task_name="bad", status="ended") if r["attempt"] == 2
                ],
                what="the retry's end",
            )[0]
    yield daemon, made
    assert daemon.stop() == 0


def test_runs_filter_by_end_reason_and_trigger(history: Any) -> None:
    daemon, made = history
    failures = [made["slow"]["id"], made["retry"]["id"], made["bad"]["id"]]
    assert listed(daemon, "--end-reason", "failed,timeout") == failures
    assert listed(daemon, "--end-reason", "failed", "--end-reason", "timeout") == failures
    assert listed(daemon, "--end-reason", "failed", "--triggered-by", "retry") == [
        made["retry"]["id"]
    ]
    assert listed(daemon, "--task", "bad", "--triggered-by", "api", "--status", "ended") == [
        made["bad"]["id"]
    ]
    assert listed(daemon, "--triggered-by", "schedule,catch_up") == []


def just_before(run: dict[str, Any]) -> str:
    """An instant before the run's creation and after the one made before it (an
    answer's instants are to the millisecond, the stored ones finer)."""
    created = datetime.fromisoformat(run["created_at"].replace("Z", "+00:00"))
    return iso_z(created - timedelta(milliseconds=1))


def test_runs_since_and_until_take_what_the_api_takes(history: Any) -> None:
    daemon, made = history
    every = [made[k]["id"] for k in (LONG, "slow", "retry", "bad", "ok")]
    assert listed(daemon, "--until", just_before(made["bad"])) == [made["ok"]["id"]]
    assert listed(daemon, "--since", made["bad"]["created_at"]) == every[:-1]
    window = ("--since", made["bad"]["created_at"], "--until", just_before(made["slow"]))
    assert listed(daemon, *window) == [made["retry"]["id"], made["bad"]["id"]]
    assert listed(daemon, "--since", "1 hour ago", "--until", "today") == every
    assert listed(daemon, "--until", "2 days ago") == []


def test_runs_all_follows_every_page(history: Any) -> None:
    daemon, made = history
    one_page = cli(daemon, "runs", "--limit", "2")
    assert len(one_page.stdout.splitlines()) == 3 and "next page: --cursor " in one_page.stderr
    every = cli(daemon, "runs", "--limit", "2", "--all")
    assert every.returncode == 0, every.stderr
    assert len(every.stdout.splitlines()) == 1 + 5 and every.stderr == ""
    as_json = json.loads(cli(daemon, "runs", "--limit", "2", "--all", "--json").stdout)
    assert [r["id"] for r in as_json["runs"]] == [r["id"] for r in daemon.runs()]
    assert as_json["next_cursor"] is None and as_json["has_next"] is False
    assert listed(daemon, "--all", "--end-reason", "failed", "--limit", "1") == [
        made["retry"]["id"],
        made["bad"]["id"],
    ]


def test_the_runs_table_fits_100_columns_and_wide_adds_the_rest(history: Any) -> None:
    daemon, made = history
    table = cli(daemon, "runs").stdout.splitlines()
    assert max(len(line) for line in table) <= 100, table
    assert table[0].split() == ["ID", "TASK", "STATUS", "EXIT", "CREATED", "(UTC)", "TOOK"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    long_row = rows[made[LONG]["id"]]
    assert long_row[1].endswith("…") and LONG.startswith(long_row[1][:-1])
    slow = made["slow"]
    assert rows[slow["id"]][2:4] == ["timeout", "SIGTERM"]
    assert rows[slow["id"]][-1] == duration_ms(slow["duration_ms"])
    assert rows[made["bad"]["id"]][2:4] == ["failed", "3"]
    created = made["ok"]["created_at"]
    assert rows[made["ok"]["id"]][4:6] == [created[5:10], created[11:19]]

    wide = cli(daemon, "runs", "--wide").stdout.splitlines()
    assert wide[0].split() == [
        *["ID", "TASK", "STATUS", "END", "EXIT", "SIGNAL", "BY", "CREATED", "TOOK"],
        *["CPU", "MEM", "TAGS"],
    ]
    wide_rows = {line.split()[0]: line.split() for line in wide[1:]}
    assert wide_rows[made[LONG]["id"]][1] == LONG
    assert wide_rows[made["retry"]["id"]][6] == "retry"
    assert wide_rows[slow["id"]][5] == "15" and wide_rows[slow["id"]][7] == slow["created_at"]


def test_stats_read_durations_as_people_do(history: Any) -> None:
    daemon, made = history
    stats = cli(daemon, "stats", "slow")
    assert stats.returncode == 0, stats.stderr
    took = duration_ms(made["slow"]["duration_ms"])
    assert f"duration:     p50 {took}, p95 {took}, max {took} (of the newest 1)" in stats.stdout


def test_a_bad_filter_names_the_option(history: Any) -> None:
    daemon, _ = history
    bad = cli(daemon, "runs", "--end-reason", "exploded", "--until", "next week")
    assert bad.returncode == 1 and bad.stdout == "" and "Traceback" not in bad.stderr
    assert "  --end-reason: Input should be 'success'" in bad.stderr, bad.stderr
    assert '  --until: expected ISO 8601 ("2026-01-31T12:00:00Z"' in bad.stderr, bad.stderr
    as_json = cli(daemon, "runs", "--since", "soon", "--json")
    assert as_json.returncode == 1 and as_json.stderr == ""
    said = json.loads(as_json.stdout)
    assert said["status"] == 422 and "--since: expected ISO 8601" in said["error"]
