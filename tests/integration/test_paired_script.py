"""benchmarks/paired.py end to end, small: two daemons from source trees under one
load, their figures and B/A printed (a check of the script, not a benchmark: no time
is asserted).  Both builds are this checkout: an A/A run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import benchmark_script  # type: ignore[import-not-found]

ROOT = str(Path(__file__).resolve().parents[2])


def paired(rounds: int, *options: str) -> list[str]:
    out = benchmark_script("paired.py", ROOT, ROOT, "--rounds", str(rounds), *options, timeout=200)
    return out.splitlines()


def test_two_daemons_under_one_api_load_are_compared_round_by_round() -> None:
    lines = paired(2, "--load", "api", "--seconds", "1", "--clients", "2")
    rounds = [line for line in lines if line.strip().startswith("round ")]
    assert [r.split("(")[1].split(")")[0] for r in rounds] == ["A first", "B first"]
    assert all("runs/s" in r and "B/A" in r for r in rounds)
    assert any(line.strip().startswith("median B/A over 2 rounds: runs/s") for line in lines)


@pytest.mark.timeout(240)  # two daemons starting on a loaded machine may miss the second
def test_two_daemons_at_one_minute_are_compared_and_every_run_recorded() -> None:
    lines = paired(1, "--load", "minute", "--tasks", "20", "--soon")
    rounds = [line for line in lines if line.strip().startswith("round ")]
    assert len(rounds) == 1 and "s all started" in rounds[0]
    assert any("median B/A over 1 round: s all started" in line for line in lines)


def test_a_tree_that_holds_no_cronwarden_is_refused_not_replaced_by_the_installed_one(
    tmp_path: Path,
) -> None:
    out = benchmark_script("paired.py", str(tmp_path), ROOT, timeout=30, exits=2)
    assert f"{tmp_path} is not a cronwarden source tree" in out
    assert "Traceback" not in out
