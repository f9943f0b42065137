"""What a run cost, from the kernel, on real processes: CPU seconds, peak memory, the
bytes it wrote; on the run's row and in the API."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import Daemon, wait_for  # type: ignore[import-not-found]

from cronwarden.support.readable import duration_ms

ALLOCATE = 100 * 1024 * 1024


SPIN = """\
import time
end = time.process_time() + 1
while time.process_time() < end:
    for _ in range(100_000):  # user time: the clock is read seldom (a system call)
        pass
"""
ALLOCATOR = f"""\
b = bytearray({ALLOCATE})
b[::4096] = b"x" * len(b[::4096])  # touch every page: resident, not just mapped
"""


@pytest.mark.both_databases
def test_a_run_reports_its_cpu_time_peak_memory_and_output(make_daemon, tmp_path) -> None:
    (tmp_path / "spin.py").write_text(SPIN)
    (tmp_path / "allocate.py").write_text(ALLOCATOR)
    python = sys.executable
    daemon = make_daemon(
        f"""
    [tasks.busy]
    command = ["{python}", "{tmp_path / "spin.py"}"]

    [tasks.big]
    command = ["{python}", "{tmp_path / "allocate.py"}"]

    [tasks.talker]
    command = "seq 1 1000"
    """
    )
    busy = daemon.wait_run(daemon.trigger("busy")["id"])
    assert busy["end_reason"] == "success", busy
    assert 0.9 <= busy["cpu_user_s"] + busy["cpu_system_s"] <= 2.0, busy
    assert busy["cpu_user_s"] >= 0.8, busy
    big = daemon.wait_run(daemon.trigger("big")["id"])
    assert big["end_reason"] == "success", big
    # the bytearray, plus the interpreter itself (some 10 MB)
    assert ALLOCATE <= big["max_rss_bytes"] <= ALLOCATE * 1.15, big
    talker = daemon.wait_run(daemon.trigger("talker")["id"])
    assert talker["output_bytes"] == sum(len(f"{i}\n") for i in range(1, 1001)), talker
    assert talker["log_size"] == talker["output_bytes"]


def test_a_run_that_never_started_cost_nothing_known(make_daemon, gate) -> None:
    daemon = make_daemon(
        f"""
    [tasks.one]
    command = "{gate.wait_command}"
    overlap = "skip"
    """
    )
    first = daemon.trigger("one")
    daemon.wait_run(first["id"], lambda r: r["status"] == "running")
    skipped = daemon.post("/api/tasks/one/runs")
    assert skipped.status == 409
    gate.open()
    ended = daemon.wait_run(first["id"])
    assert ended["cpu_user_s"] is not None and ended["output_bytes"] == 0
    never = [r for r in daemon.runs(task_name="one") if r["end_reason"] == "skipped"]
    for run in never:
        assert (run["cpu_user_s"], run["max_rss_bytes"], run["output_bytes"]) == (None, None, None)


# -- where a user looks: a task's stats, the CLI --------------------------------------

ALLOCATE_SOME = 160 * 1024 * 1024  # above the daemon's own peak: see runners/cost.py
SOME_ALLOCATOR = f"""\
import sys
b = bytearray({ALLOCATE_SOME})
b[::4096] = b"x" * len(b[::4096])
print("x" * 999)
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.both_databases
def test_task_stats_add_up_what_its_runs_cost(make_daemon, tmp_path, gate) -> None:
    """Over the runs whose cost is known, whatever their outcome; a skipped fire never
    ran and counts for nothing (not as free)."""
    (tmp_path / "allocate.py").write_text(SOME_ALLOCATOR)
    daemon = make_daemon(
        f"""
    [tasks.big]
    command = "{sys.executable} {tmp_path / "allocate.py"} $CRONWARDEN_PARAM_code"
    params = ["code"]

    [tasks.held]
    command = "{gate.wait_command}"
    overlap = "skip"
    schedule = "* * * * * *"
    catch_up = "skip"
    """
    )
    ran = [daemon.wait_run(daemon.trigger("big", {"code": c})["id"]) for c in ("0", "0", "3")]
    assert [r["end_reason"] for r in ran] == ["success", "success", "failed"]
    stats = daemon.get("/api/tasks/big/stats")
    assert stats.status == 200, stats
    cpu = stats.body["cpu_s"]
    user = sum(r["cpu_user_s"] for r in ran)
    system = sum(r["cpu_system_s"] for r in ran)
    assert cpu["runs"] == 3
    assert cpu["user"] == pytest.approx(user, abs=1e-6)
    assert cpu["system"] == pytest.approx(system, abs=1e-6)
    assert cpu["total"] == pytest.approx(user + system, abs=1e-6)
    assert cpu["avg"] == pytest.approx((user + system) / 3, abs=1e-6)
    peaks = sorted(r["max_rss_bytes"] for r in ran)
    assert stats.body["max_rss_bytes"] == {"p95": peaks[2], "max": peaks[2], "sample": 3}
    assert all(p >= ALLOCATE_SOME for p in peaks)
    assert stats.body["output_bytes"] == 3 * 1000 == sum(r["output_bytes"] for r in ran)
    later = daemon.get("/api/tasks/big/stats?since=now").body
    assert later["cpu_s"] == {"user": 0, "system": 0, "total": 0, "avg": None, "runs": 0}
    assert later["max_rss_bytes"] == {"p95": None, "max": None, "sample": 0}

    # One run held on the gate; the fires meanwhile are skipped: runs, not costs.
    wait_for(
        lambda: any(r["end_reason"] == "skipped" for r in daemon.runs(task_name="held")),
        what="a skipped fire",
    )
    gate.open()
    wait_for(
        lambda: any(r["end_reason"] == "success" for r in daemon.runs(task_name="held")),
        what="the held run's end",
    )
    held = daemon.get("/api/tasks/held/stats").body
    assert held["by_end_reason"]["skipped"] >= 1
    assert held["cpu_s"]["runs"] == held["by_end_reason"].get("success", 0)


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args, "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


SIZE = re.compile(r"^\d+(\.\d)?(B|KiB|MiB|GiB)$")
CPU = re.compile(r"^\d+\.\d\ds$")


def test_the_cli_shows_what_runs_cost(make_daemon, tmp_path) -> None:
    (tmp_path / "allocate.py").write_text(SOME_ALLOCATOR)
    daemon = make_daemon(
        f"""
    [tasks.big]
    command = "{sys.executable} {tmp_path / "allocate.py"} 0"

    [tasks.never]
    command = "true"
    """
    )
    waited = cli(daemon, "run", "big", "--wait")
    assert waited.returncode == 0, waited.stderr
    run_id = waited.stdout.split()[0]
    run = daemon.get(f"/api/runs/{run_id}").body
    line = waited.stdout.strip()
    took = duration_ms(run["duration_ms"])
    assert line.startswith(f"{run_id} ended success in {took}; cpu "), line
    peak = re.search(r"peak memory (\S+),", line)
    assert peak and peak.group(1).endswith("MiB") and float(peak.group(1)[:-3]) >= 40, line
    assert line.endswith("output 1000B"), line

    listed = cli(daemon, "runs", "--wide")  # the cost columns are the wide table's
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[-4:] == ["TOOK", "CPU", "MEM", "TAGS"]
    cells = row.split()
    assert cells[0] == run_id
    assert CPU.match(cells[-3]) and SIZE.match(cells[-2]), row
    total = run["cpu_user_s"] + run["cpu_system_s"]
    assert abs(float(cells[-3][:-1]) - total) <= 0.005 + 1e-9, (cells, total)
    as_json = json.loads(cli(daemon, "runs", "--json").stdout)["runs"][0]
    assert {k: as_json[k] for k in COST_FIELDS} == {k: run[k] for k in COST_FIELDS}

    stats = cli(daemon, "stats", "big")
    assert stats.returncode == 0, stats.stderr
    lines = {ln.split(":")[0].strip(): ln for ln in stats.stdout.splitlines()[1:]}
    assert "a run (of 1)" in lines["cpu"], stats.stdout
    assert re.search(r"p95 \S+MiB \(of the newest 1\), max \S+MiB$", lines["peak memory"])
    assert lines["output"].endswith("1000B written")
    stats_json = json.loads(cli(daemon, "stats", "big", "--json").stdout)
    assert stats_json["cpu_s"]["runs"] == 1 and stats_json["output_bytes"] == 1000
    # A task that never ran: dashes, not zeros passed off as measurements.
    never = cli(daemon, "stats", "never").stdout
    assert "cpu:          - (no run's cost is known)" in never
    assert "peak memory:  p95 - (of the newest 0), max -" in never


COST_FIELDS = ("cpu_user_s", "cpu_system_s", "max_rss_bytes", "output_bytes")
