"""Log capture: a fast producer through a real daemon, beside ``cat > file``.

    python benchmarks/logs.py [--mb 200] [--rounds 2]

For each kind of output (``yes``-style 2-byte lines, 60-byte log lines, 16 KiB lines,
and 2-byte lines into a 1 MiB drop_old cap) a file of that output is written first;
then, in the same run, the baseline ``cat FILE > OUT`` is timed, and the same ``cat
FILE`` runs as a task of the daemon.  The daemon's figure comes from its own record of
the run (start_at to end_at: the process ran, its output was captured, the run ended).

Printed per kind: MB/s of each, their ratio (daemon / cat), disk bytes of the run's
log over the output bytes (for the cap: the peak while running, over the cap), and
/health latency (p50/p99) measured by a client polling it while the producer runs.
Targets (DESIGN.md): >= 100 MB/s, or >= 30% of cat where cat itself is slower;
disk <= 1.1x; /health p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _daemon import free_port, get, post, running_daemon, z

MB = 1_000_000
CAP = 1 << 20


@dataclass(frozen=True)
class Kind:
    name: str
    line: bytes
    cap: str = "2GiB"
    mode: str = "drop_new"


KINDS = [
    Kind("yes (2 B lines)", b"y\n"),
    Kind("log lines (60 B)", b"2026-11-24T22:00:00.123Z INFO served GET /api/items id=4711\n"),
    Kind("long lines (16 KiB)", b"x" * (16 * 1024 - 1) + b"\n"),
    Kind("yes, 1 MiB drop_old cap", b"y\n", cap="1MiB", mode="drop_old"),
]


def make_output(path: Path, line: bytes, size: int) -> None:
    block = line * max(1, (1 << 20) // len(line))
    with open(path, "wb") as out:
        written = 0
        while written < size:
            chunk = block[: size - written]
            out.write(chunk)
            written += len(chunk)


def cat_seconds(source: Path, target: Path) -> float:
    start = time.perf_counter()
    with open(target, "wb") as out:
        subprocess.run(["cat", str(source)], stdout=out, check=True)
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def write_config(workdir: Path, sources: list[Path]) -> Path:
    lines = ["[daemon]", f'listen = "127.0.0.1:{free_port()}"', f'data_dir = "{workdir / "data"}"']
    for i, (kind, source) in enumerate(zip(KINDS, sources, strict=True)):
        lines += [
            f"[tasks.k{i}]",
            f'command = ["cat", "{source}"]',
            f'max_log_size = "{kind.cap}"',
            f'log_on_full = "{kind.mode}"',
        ]
    path = workdir / "logs.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class HealthProbe(threading.Thread):
    """Polls /health back to back, keeping each answer's latency."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=30) as resp:
                    resp.read()
            except urllib.error.HTTPError as err:
                self.failures.append(f"{err.code} {err.read().decode(errors='replace')}")
            self.latencies.append(time.perf_counter() - start)
            time.sleep(0.005)


def run_through_daemon(base: str, task: str, logs_dir: Path) -> tuple[dict, float, int]:
    """(the ended run, its seconds, peak bytes its log held on disk while running)"""
    run = post(f"{base}/api/tasks/{task}/runs")
    peak = 0
    while (run := get(f"{base}/api/runs/{run['id']}"))["status"] != "ended":
        peak = max(peak, _log_bytes(logs_dir, run["id"]))
        time.sleep(0.01)
    seconds = (z(run["end_at"]) - z(run["start_at"])).total_seconds()
    return run, seconds, max(peak, _log_bytes(logs_dir, run["id"]))


def _log_bytes(logs_dir: Path, run_id: str) -> int:
    total = 0
    for path in logs_dir.glob(f"{run_id}.*"):
        with contextlib.suppress(FileNotFoundError):  # a segment deleted meanwhile
            total += path.stat().st_size
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="output per producer, in MB")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = args.mb * MB
    print(f"logs: {args.mb} MB per producer, {os.cpu_count()} cores, best of {args.rounds}")
    print(
        f"{'output':<26} {'cat MB/s':>9} {'daemon MB/s':>12} {'ratio':>6} {'disk/out':>9} "
        f"{'health p50/p99 ms':>18} {'end':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="cronwarden-logs-") as tmp:
        workdir = Path(tmp)
        sources = [workdir / f"out{i}.txt" for i in range(len(KINDS))]
        for kind, source in zip(KINDS, sources, strict=True):
            make_output(source, kind.line, size)
        config = write_config(workdir, sources)
        with running_daemon(workdir, config) as (base, _):
            for i, (kind, source) in enumerate(zip(KINDS, sources, strict=True)):
                best: tuple[float, float, float, float, list[float], str] | None = None
                for _ in range(args.rounds):
                    cat = cat_seconds(source, workdir / "cat.out")
                    probe = HealthProbe(base)
                    probe.start()
                    run, seconds, peak = run_through_daemon(base, f"k{i}", workdir / "data/logs")
                    probe.stop.set()
                    probe.join()
                    for failure in probe.failures[:3]:
                        print(f"  /health failed during {kind.name}: {failure}")
                    ratio = cat / seconds
                    disk = peak / (CAP if kind.mode == "drop_old" else run["log_size"] or 1)
                    if best is None or ratio > best[0]:
                        best = (ratio, cat, seconds, disk, probe.latencies, run["end_reason"])
                assert best is not None
                ratio, cat, seconds, disk, latencies, end = best
                p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
                print(
                    f"{kind.name:<26} {size / MB / cat:>9.0f} {size / MB / seconds:>12.0f} "
                    f"{ratio:>6.2f} {disk:>9.3f} {p50:>8.1f}/{p99:<9.1f}{end:>8}"
                )
    print("targets: daemon >= 100 MB/s (or >= 0.30 of cat), disk/out <= 1.10, health p99 < 50 ms")
    print("(for the 1 MiB cap, disk/out is the peak on disk while running over the cap)")


if __name__ == "__main__":
    main()
