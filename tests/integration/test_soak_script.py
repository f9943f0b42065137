"""benchmarks/soak.py for half a minute: a test of the script (it runs, samples, writes its
CSV and plot, and reads every fire back), not of the figures, which a minute on a
shared machine cannot give (``make soak`` runs it for 30)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import benchmark_script  # type: ignore[import-not-found]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_soak_script_samples_and_accounts_for_every_fire(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the bench extra (make install installs it)")
    argv = ["--minutes", "0.5", "--warmup", "0.1", "--sample-every", "5"]
    argv += ["--history", "20000", "--tasks", "20", "--triggers", "5", "--out", str(tmp_path)]
    argv += ["--trace-memory", "0"]  # the daemon's memory accounted for at the end
    out = benchmark_script("soak.py", *argv, timeout=400)
    with open(tmp_path / "soak.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 4, out  # a sample every 5 s
    assert {"rss_mb", "fds", "threads", "asyncio_tasks", "wal_mb", "lateness_p99_ms"} <= set(
        rows[0]
    )
    assert all(float(r["rss_mb"]) > 0 and int(r["fds"]) > 0 for r in rows), rows
    assert all(float(r["asyncio_tasks"]) >= 1 for r in rows), rows  # the gauge is scraped
    assert (tmp_path / "soak.png").read_bytes().startswith(b"\x89PNG"), out
    assert "runs of history seeded" in out
    assert "5xx answers: 0 " in out, out
    assert "every fire accounted for: yes" in out, out
    assert "RSS (daemon + keeper) after warm-up" in out
    account = next(line for line in out.splitlines() if "soak-memory.0" in line).split()
    assert len(account) == 9 and all(float(cell) > 0 for cell in account[1:4]), out
