"""kill -9 of the daemon while its runs print (issue 24): the runs live on, what they
print while no daemon reads waits in their pipes (their keeper holds them; a writer
whose pipe is full blocks, it does not die of SIGPIPE), and the next daemon captures
the rest into the same logs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

pytestmark = pytest.mark.faults

RUNS = 20
LINES = 20_000  # about 110 KB per run: more than a pipe holds, so each writer blocks


def log_lines(daemon: Any, run_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        page = daemon.get(f"/api/runs/{run_id}/log?after={after}&limit=10000").body
        lines += page["lines"]
        if not page["has_more"]:
            return lines
        after = page["next_after"]


@pytest.mark.timeout(180)
def test_runs_that_print_while_no_daemon_reads_outlive_the_crash_whole(
    make_daemon, tmp_path: Path
) -> None:
    go, finish = tmp_path / "go", tmp_path / "finish"
    wait = "while [ ! -e {} ]; do sleep 0.05; done"
    tasks = f"""
    [tasks.talker]
    command = "echo begin; {wait.format(go)}; seq 1 {LINES}; {wait.format(finish)}; echo end"
    overlap = "allow"
    max_concurrent = {RUNS}
    """
    daemon = make_daemon(tasks)
    runs = [daemon.trigger("talker")["id"] for _ in range(RUNS)]
    for run_id in runs:
        wait_for(
            lambda run_id=run_id: [line["text"] for line in log_lines(daemon, run_id)] == ["begin"],
            what="every run started and printed its first line",
        )
    pids = [daemon.get(f"/api/runs/{run_id}").body["pid"] for run_id in runs]

    daemon.kill9()
    go.touch()  # they print while no daemon reads: each fills its pipe and blocks
    daemon.start()
    finish.touch()

    for run_id, pid in zip(runs, pids, strict=True):
        ended = daemon.wait_run(run_id, timeout=60)
        if os.geteuid() == 0:  # the kernel's exit events tell a re-adopted run's status
            assert (ended["end_reason"], ended["exit_code"], ended["signal"]) == (
                "success",
                0,
                None,
            ), ended
        assert ended["pid"] == pid
        texts = [line["text"] for line in log_lines(daemon, run_id)]
        assert texts[0] == "begin"
        assert texts[1].startswith("[cronwarden] the daemon restarted"), texts[:3]
        assert texts[2:] == [str(i) for i in range(1, LINES + 1)] + ["end"], run_id
        # the bytes the log holds: every line of the run, and the note (drop_old)
        assert ended["log_size"] == sum(len(text) + 1 for text in texts), ended
    assert daemon.stop() == 0
