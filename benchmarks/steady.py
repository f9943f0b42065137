"""Memory once 10,000 tasks have all run, and what a scrape or a task listing costs.

    python benchmarks/steady.py [--tasks 10000] [--daemon-python PATH]

startup.py measures a daemon whose tasks have never run.  Here every task is triggered
once over the API (16 clients, ``?wait=``), so each has a last run, its per-task
metrics and a last success; then, with the daemon idle again: RSS; a ``/metrics``
scrape (its time, and the longest ``/health`` answer while it runs: how long the scrape
held up the event loop); ``GET /api/tasks`` (its time) and RSS after each.  Baseline,
measured in the same run: the same daemon with the same tasks before any has run.
Target (DESIGN.md): RSS <= 100 MB with 10,000 tasks (idle); the others have none.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _daemon import free_port, ready_daemon

CLIENTS = 16
SETTLE = 5.0  # after READY or after the runs: the start-up chores, the runs' ends


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def run_all(base: str, names: list[str]) -> float:
    began = time.monotonic()
    slots = asyncio.Semaphore(CLIENTS)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:

        async def one(name: str) -> None:
            async with slots, session.post(f"{base}/api/tasks/{name}/runs?wait=60") as response:
                run = await response.json()
                if response.status != 201 or run.get("end_reason") != "success":
                    raise SystemExit(f"{name}: {response.status} {run}")

        await asyncio.gather(*(one(name) for name in names))
    return time.monotonic() - began


async def timed_beside_health(base: str, path: str) -> tuple[float, float]:
    """Seconds ``path`` took, and the longest /health answer meanwhile (ms)."""
    longest = 0.0
    async with aiohttp.ClientSession() as session:
        done = asyncio.Event()

        async def health() -> None:
            nonlocal longest
            while not done.is_set():
                began = time.monotonic()
                async with session.get(f"{base}/health") as response:
                    await response.read()
                longest = max(longest, time.monotonic() - began)
                await asyncio.sleep(0.01)

        probe = asyncio.create_task(health())
        await asyncio.sleep(0.2)
        began = time.monotonic()
        async with session.get(f"{base}{path}") as response:
            await response.read()
            if response.status != 200:
                raise SystemExit(f"{path}: {response.status}")
        took = time.monotonic() - began
        done.set()
        await probe
    return took, longest * 1000


def measure(
    python: str, workdir: Path, config: Path, port: int, names: list[str], run: bool
) -> dict[str, float]:
    base = f"http://127.0.0.1:{port}"
    figures: dict[str, float] = {}
    with ready_daemon(python, workdir, config) as (proc, _):
        time.sleep(SETTLE)
        if run:
            figures["runs_s"] = asyncio.run(run_all(base, names))
            time.sleep(SETTLE)
        figures["rss"] = rss_mb(proc.pid)
        figures["scrape_s"], figures["scrape_health_ms"] = asyncio.run(
            timed_beside_health(base, "/metrics")
        )
        figures["rss_scrape"] = rss_mb(proc.pid)
        figures["tasks_s"], figures["tasks_health_ms"] = asyncio.run(
            timed_beside_health(base, "/api/tasks")
        )
        figures["rss_tasks"] = rss_mb(proc.pid)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--daemon-python", default=sys.executable)
    args = parser.parse_args()
    names = [f"t{i:05d}" for i in range(args.tasks)]
    with tempfile.TemporaryDirectory(prefix="cw-steady-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        config = workdir / "steady.toml"
        config.write_text(
            f'[daemon]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{workdir / "data"}"\n'
            "metrics_open = true\n"
            + "".join(f'[tasks.{name}]\ncommand = ["/bin/true"]\n' for name in names)
        )
        fresh = measure(args.daemon_python, workdir, config, port, names, run=False)
        ran = measure(args.daemon_python, workdir, config, port, names, run=True)
    print(f"steady state with {args.tasks} tasks, the daemon on {args.daemon_python}")
    print(f"  every task run once over the API in {ran['runs_s']:.1f} s, then idle")
    print(f"  {'figure':<42} {'never run':>10} {'all ran':>10}  target")
    rows = [
        ("RSS idle (MB)", "rss", "<= 100"),
        ("/metrics scrape (s)", "scrape_s", ""),
        ("  longest /health meanwhile (ms)", "scrape_health_ms", ""),
        ("RSS after the scrape (MB)", "rss_scrape", ""),
        ("GET /api/tasks (s)", "tasks_s", ""),
        ("  longest /health meanwhile (ms)", "tasks_health_ms", ""),
        ("RSS after the listing (MB)", "rss_tasks", ""),
    ]
    for label, key, target in rows:
        print(f"  {label:<42} {fresh[key]:>10.2f} {ran[key]:>10.2f}  {target}")


if __name__ == "__main__":
    main()
