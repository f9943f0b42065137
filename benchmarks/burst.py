"""Burst: N tasks due at the same instant on a real daemon, beside raw asyncio spawning.

    python benchmarks/burst.py [--tasks 1000] [--rounds 2] [--limits] [--cgroups]

The baseline is measured in the same run, on the same machine, right before each
daemon burst: asyncio.create_subprocess_exec of the same N processes with stdout and
stderr pipes, all started at once and awaited.  The daemon's figure is taken from its
own durable records: from the fire instant (scheduled_for) to the last end_at of the N
runs of that fire, every one committed.  The ratio is baseline / daemon (higher is
better; the target in DESIGN.md is >= 0.5).

Two options change only the daemon's config, to measure what each costs at the spawn:
``--limits`` gives every task ``limits = { open_files = 4096, cpu_time = "1h" }``
(bounds no cgroup controller holds, so each run's command is started through
util-linux's ``prlimit``: one more exec per run); ``--cgroups`` sets ``[daemon]
run_cgroups = "always"`` (each run gets a cgroup v2 of its own, made before its spawn
and removed at its end; the daemon refuses to start where it cannot have one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _daemon import free_port, get, running_daemon, z

COMMAND = ["/bin/true"]
LIMITS = 'limits = { open_files = 4096, cpu_time = "1h" }'


async def raw_spawn(count: int) -> float:
    """Seconds to start and reap ``count`` processes with pipes, all at once."""

    async def one() -> None:
        proc = await asyncio.create_subprocess_exec(
            *COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        await proc.communicate()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - start


def write_config(
    workdir: Path, port: int, count: int, period: int, *, limits: bool, cgroups: bool
) -> Path:
    lines = [
        "[daemon]",
        f'listen = "127.0.0.1:{port}"',
        f'data_dir = "{workdir / "data"}"',
        *(['run_cgroups = "always"'] if cgroups else []),
        "",
    ]
    for i in range(count):
        lines += [
            f"[tasks.t{i:05d}]",
            f"command = {json.dumps(COMMAND)}",
            f'schedule = "*/{period} * * * * *"',
            'catch_up = "skip"',
            *([LIMITS] if limits else []),
            "",
        ]
    path = workdir / "burst.toml"
    path.write_text("\n".join(lines))
    return path


def runs_of_fire(base: str, fire: str, count: int, timeout: float) -> list[dict]:
    """All runs of one fire instant, once every one of them has ended.

    While the burst runs, only a one-row query is polled (a full listing would cost
    the daemon the CPU this measures)."""
    deadline = time.monotonic() + timeout
    time.sleep(max(0.0, z(fire).timestamp() - time.time() + 0.5))
    while time.monotonic() < deadline:
        busy = get(f"{base}/api/runs?status=pending,running&limit=1")["runs"]
        newest = get(f"{base}/api/runs?limit=1")["runs"]
        if not busy and newest and newest[0]["created_at"] >= fire:
            break
        time.sleep(0.25)
    while True:
        runs, cursor = [], None
        while True:
            query = "limit=1000&status=ended" + (f"&cursor={cursor}" if cursor else "")
            page = get(f"{base}/api/runs?{query}")
            runs += [r for r in page["runs"] if r["scheduled_for"] == fire]
            if not page["has_next"]:
                break
            cursor = page["next_cursor"]
        if len(runs) >= count or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def daemon_burst(
    workdir: Path, count: int, period: int, *, limits: bool, cgroups: bool
) -> dict[str, float]:
    config = write_config(workdir, free_port(), count, period, limits=limits, cgroups=cgroups)
    with running_daemon(workdir, config) as (base, proc):
        # The first fire at least 2 s away, so the daemon is idle when it comes.
        task = get(f"{base}/api/tasks/t00000")
        fire = task["next_run_at"]
        while (z(fire).timestamp() - time.time()) < 2:
            time.sleep(0.2)
            task = get(f"{base}/api/tasks/t00000")
            fire = task["next_run_at"]
        profiler = None
        if os.environ.get("BURST_PYSPY"):  # a flame profile of the burst only (raw format)
            time.sleep(max(0.0, z(fire).timestamp() - time.time() - 0.5))
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--duration",
                    "8",
                    "--rate",
                    "500",
                    "--format",
                    "raw",
                    "--output",
                    os.environ["BURST_PYSPY"],
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        runs = runs_of_fire(base, fire, count, timeout=120)
        if profiler is not None:
            profiler.wait(60)
    if len(runs) < count:
        raise SystemExit(f"only {len(runs)} of {count} runs ended; see {workdir}")
    at = z(fire)
    starts = sorted((z(r["start_at"]) - at).total_seconds() for r in runs)
    ends = sorted((z(r["end_at"]) - at).total_seconds() for r in runs)
    durations = sorted(r["duration_ms"] for r in runs)
    return {
        "first_start_s": starts[0],
        "last_start_s": starts[-1],
        "all_ended_s": ends[-1],
        "duration_ms_p50": statistics.median(durations),
        "duration_ms_max": durations[-1],
        "success": sum(r["end_reason"] == "success" for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--period", type=int, default=15, help="seconds between fires")
    parser.add_argument("--keep", type=Path, help="keep the daemon's files (log) in this directory")
    parser.add_argument(
        "--limits", action="store_true", help="every task gets limits (runs start through prlimit)"
    )
    parser.add_argument(
        "--cgroups", action="store_true", help='run_cgroups = "always": a cgroup v2 per run'
    )
    args = parser.parse_args()
    options = {"limits": args.limits, "cgroups": args.cgroups}
    variant = " + ".join(name for name, on in options.items() if on) or "plain"
    print(f"burst: {args.tasks} tasks due at one instant, {os.cpu_count()} cores, {variant}")
    print(
        f"{'round':>5} {'raw spawn s':>12} {'daemon all ended s':>19} {'ratio':>6} "
        f"{'first start s':>14} {'last start s':>13} {'dur p50/max ms':>15} {'ok':>5}"
    )
    ratios = []
    for round_ in range(1, args.rounds + 1):
        raw = asyncio.run(raw_spawn(args.tasks))
        if args.keep:
            workdir = args.keep / f"round{round_}"
            workdir.mkdir(parents=True, exist_ok=True)
            got = daemon_burst(workdir, args.tasks, args.period, **options)
        else:
            with tempfile.TemporaryDirectory(prefix="cronwarden-burst-") as tmp:
                got = daemon_burst(Path(tmp), args.tasks, args.period, **options)
        ratio = raw / got["all_ended_s"]
        ratios.append(ratio)
        print(
            f"{round_:>5} {raw:>12.3f} {got['all_ended_s']:>19.3f} {ratio:>6.2f} "
            f"{got['first_start_s']:>14.3f} {got['last_start_s']:>13.3f} "
            f"{got['duration_ms_p50']:>7.0f}/{got['duration_ms_max']:<7.0f} "
            f"{got['success']:>5}"
        )
    print(
        f"ratio (raw spawn time / daemon time), median of {len(ratios)}: "
        f"{statistics.median(ratios):.2f}  (target >= 0.50)"
    )


if __name__ == "__main__":
    main()
