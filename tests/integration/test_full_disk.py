"""A full data_dir (issue: hostile inputs and faults, item 1): the run that filled it
ends, saying why; /health says so; runs work again once space is back."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI, wait_for  # type: ignore[import-not-found]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs (room for the 3 MiB reserve twice over), so the disk really fills up."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs: {done.stderr.decode().strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_run_that_fills_data_dir_ends_and_later_runs_work(make_daemon, small_disk) -> None:
    daemon = make_daemon(
        """
    [tasks.big]
    command = "yes | head -c 14000000"
    timeout = "60s"
    overlap = "skip"

    [tasks.small]
    command = "echo hi"
    """,
        data_dir=small_disk / "data",
    )
    big = daemon.trigger("big")
    ended = daemon.wait_run(big["id"], timeout=30)
    assert ended["end_reason"] == "failed", ended
    assert "no space left on device" in ended["error"].lower(), ended
    assert ended["log_truncated"] is True
    assert "disk.full" in daemon.log()
    health = daemon.get("/health")
    assert health.status == 503 and health.body["status"] == "degraded", health
    assert health.body["data_dir"] == "full"
    # Space comes back (the operator deletes the big log): everything works again.
    for path in (small_disk / "data" / "logs").glob(f"{big['id']}*"):
        os.unlink(path)
    small = daemon.wait_run(daemon.trigger("small")["id"], timeout=30)
    assert small["end_reason"] == "success"
    wait_for(lambda: daemon.get("/health").status == 200, what="/health back to ok")
    again = daemon.wait_run(daemon.trigger("big")["id"], timeout=30)
    assert again["status"] == "ended"  # the task is not wedged by its earlier run
