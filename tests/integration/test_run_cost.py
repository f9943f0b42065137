"""What a run cost, from the kernel, on real processes: CPU seconds, peak memory, the
bytes it wrote; on the run's row and in the API."""

from __future__ import annotations

import sys

import pytest

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
