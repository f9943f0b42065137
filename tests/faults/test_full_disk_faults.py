"""A full data_dir under a per-second task (issue 24, item 6): records go on from the
space kept aside; once even that is gone /health says the store cannot write
("unavailable"), and when space is back every fire of the window ran once or is
recorded missed, and no run is left unfinished."""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]
from faults_support import (  # type: ignore[import-not-found]
    now_utc,
    per_second,
    small_filesystem,
    unaccounted,
    z,
)

pytestmark = pytest.mark.faults

PER_SECOND = """
[tasks.tick]
command = "true"
schedule = "* * * * * *"
timezone = "UTC"
catch_up = "all"
"""


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    for size in (1 << 16, 512):  # big writes, then the last partial blocks
        with contextlib.suppress(OSError), open(path, "ab") as file:
            while True:
                file.write(b"\0" * size)
                file.flush()
    assert os.statvfs(path).f_bavail == 0


def ticks(daemon: Any) -> list[dict[str, Any]]:
    return daemon.runs(task_name="tick")


@pytest.mark.timeout(120)
def test_a_full_data_dir_keeps_records_then_says_so_and_loses_no_fire(
    make_daemon, tmp_path
) -> None:
    with small_filesystem(tmp_path / "small", "16m") as mount:
        daemon = make_daemon(PER_SECOND, data_dir=mount / "data")
        first = z(wait_for(lambda: ticks(daemon)[2:] and ticks(daemon)[-1])["scheduled_for"])
        fill(mount / "filler-1")
        # The daemon frees its reserve and goes on recording from it.
        wait_for(lambda: daemon.get("/health").body["data_dir"] == "full", what="full")
        full_at = now_utc()
        wait_for(
            lambda: len([r for r in ticks(daemon) if z(r["scheduled_for"]) > full_at]) >= 5,
            what="ticks recorded from the reserve",
        )
        # The reserve filled too: nothing can be written, and /health says so.
        fill(mount / "filler-2")
        health = wait_for(
            lambda: (h := daemon.get("/health")).body["database"] == "unwritable" and h,
            timeout=20,
            what="/health: the store cannot write",
        )
        assert health.status == 503 and health.body["status"] == "unavailable", health
        for filler in ("filler-1", "filler-2"):
            (mount / filler).unlink()
        back = now_utc()
        wait_for(lambda: daemon.get("/health").status == 200, timeout=20, what="/health ok")
        fires = per_second(first, back + timedelta(seconds=2))
        runs = wait_for(
            lambda: (r := ticks(daemon)) and not unaccounted(r, fires) and r,
            timeout=30,
            what="every fire accounted",
        )
        assert unaccounted(runs, fires) == {}
        daemon.stop()
