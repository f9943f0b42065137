"""What users see of chains outside the dashboard: ``cronwarden explain`` says what
starts a task and what it starts (lines and --json keys, the task API's names), and
``cronwarden runs --caused-by`` lists what a run's end started, on a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import wait_for  # type: ignore[import-not-found]

TASKS = """
[tasks.extract]
command = "echo extracted"
params = ["day"]

[tasks.clean]
command = "true"
schedule = "0 3 * * *"

[tasks.load]
command = "echo loading $CRONWARDEN_PARAM_day"
params = ["day"]
after = ["extract"]
after_params = "inherit"

[tasks.report]
command = "true"
after = ["load", "clean"]
after_on = ["success", "failed"]
after_mode = "all"
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args], capture_output=True, text=True, timeout=60
    )


def explained(config: Path, task: str, *more: str) -> subprocess.CompletedProcess[str]:
    done = cli("explain", "-c", str(config), task, "-n", "1", *more)
    assert done.returncode == 0, done.stderr
    return done


def test_explain_shows_what_starts_a_task_and_what_it_starts(tmp_path: Path) -> None:
    config = tmp_path / "cronwarden.toml"
    config.write_text(TASKS)
    lines = explained(config, "load").stdout.splitlines()
    assert "  after: extract (each end success of any of them starts a run; params inherited)" in (
        lines
    )
    assert "  starts: report (its runs' ends start theirs)" in lines
    lines = explained(config, "report").stdout.splitlines()
    assert (
        "  after: load, clean (one run once each has ended success or failed since its last "
        "chained run)"
    ) in lines
    assert not any(line.startswith("  starts:") for line in lines)  # the end of the chain
    scheduled = explained(config, "clean").stdout.splitlines()
    assert scheduled[1] == "  starts: report (its runs' ends start theirs)"  # before the fires
    plain = explained(config, "extract").stdout.splitlines()
    assert plain[1:] == ["  starts: load (its runs' ends start theirs)"]

    shown = json.loads(explained(config, "report", "--json").stdout)
    assert {k: shown[k] for k in ("after", "after_on", "after_mode", "after_params", "starts")} == {
        "after": ["load", "clean"],
        "after_on": ["success", "failed"],
        "after_mode": "all",
        "after_params": None,
        "starts": [],
    }
    assert json.loads(explained(config, "extract", "--json").stdout)["starts"] == ["load"]


def test_runs_caused_by_lists_what_a_runs_end_started(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(TASKS)
    head = daemon.wait_run(daemon.trigger("extract", {"day": "d1"})["id"])
    chained: list[dict[str, Any]] = wait_for(
        lambda: daemon.get(f"/api/runs?caused_by={head['id']}").body["runs"], 20, "load"
    )
    printed = cli("runs", "--url", daemon.url, "--caused-by", head["id"], "--wide")
    assert printed.returncode == 0, printed.stderr
    rows = printed.stdout.splitlines()[1:]
    assert [row.split()[:2] for row in rows] == [[chained[0]["id"], "load"]]
    assert rows[0].split()[6] == "chain"  # the BY column
    as_json = json.loads(
        cli("runs", "--url", daemon.url, "--caused-by", head["id"], "--json").stdout
    )
    assert [r["caused_by"] for r in as_json["runs"]] == [[head["id"]]]
    refused = cli("runs", "--url", daemon.url, "--caused-by", "not-a-run")
    assert refused.returncode == 1 and "not a run id" in refused.stderr
    tasks = {t["name"]: t for t in daemon.get("/api/tasks").body["tasks"]}
    assert (tasks["extract"]["starts"], tasks["load"]["after"]) == (["load"], ["extract"])
