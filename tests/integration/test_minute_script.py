"""benchmarks/minute.py end to end, small: the script's passes run and its table says
every run was recorded (a check of the script, not a benchmark: no time is asserted).

With ``--soon`` the tasks fire at a second a few seconds away instead of at the
minute's boundary, so the check takes ~20 s, not up to two minutes."""

from __future__ import annotations

from pathlib import Path

from conftest import benchmark_script  # type: ignore[import-not-found]


def test_a_small_minute_is_measured_and_every_run_is_recorded(tmp_path: Path) -> None:
    tasks = 40
    out = benchmark_script(
        "minute.py",
        *("--tasks", str(tasks), "--soon", "--passes", "raw,every"),
        *("--health-rate", "5", "--keep", str(tmp_path), "--stalls"),
        timeout=110,
    )
    lines = out.splitlines()
    assert any(line.strip().startswith("raw: asyncio create_subprocess_exec") for line in lines)
    # minute 1: rows, tasks, success, no other end reason
    rows = [line.split()[:5] for line in lines if line.split()[:1] == ["1"]]
    assert rows == [["1", str(tasks), str(tasks), str(tasks), "-"]], out
    assert any("/health meanwhile:" in line and " 0 failed" in line for line in lines)
    assert (tmp_path / "every" / "daemon.log").exists()
    assert any("full garbage collections meanwhile:" in line for line in lines)
    assert any("loop steps over 20 ms meanwhile:" in line for line in lines)
