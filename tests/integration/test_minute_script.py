"""benchmarks/minute.py end to end, small: the script's passes run and its table says
every run was recorded (a check of the script, not a benchmark: no time is asserted).

With ``--soon`` the tasks fire at a second a few seconds away instead of at the
minute's boundary, so the check takes ~20 s, not up to two minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_minute_is_measured_and_every_run_is_recorded(tmp_path: Path) -> None:
    tasks = 40
    result = subprocess.run(
        [
            sys.executable,
            "minute.py",
            *("--tasks", str(tasks), "--soon", "--passes", "raw,every"),
            *("--health-rate", "5", "--keep", str(tmp_path), "--stalls"),
        ],
        cwd=ROOT / "benchmarks",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.strip().startswith("raw: asyncio create_subprocess_exec") for line in lines)
    # minute 1: rows, tasks, success, no other end reason
    rows = [line.split()[:5] for line in lines if line.split()[:1] == ["1"]]
    assert rows == [["1", str(tasks), str(tasks), str(tasks), "-"]], result.stdout
    assert any("/health meanwhile:" in line and " 0 failed" in line for line in lines)
    assert (tmp_path / "every" / "daemon.log").exists()
    assert any("full garbage collections meanwhile:" in line for line in lines)
    assert any("loop steps over 20 ms meanwhile:" in line for line in lines)
