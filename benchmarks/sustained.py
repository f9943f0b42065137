"""Sustained API-triggered short runs, every record committed, beside raw spawning.

    python benchmarks/sustained.py [--seconds 30] [--clients 16] [--limits] [--cgroups]
                                   [--profile OUT.prof]

Baseline (same run, same machine): ``--clients`` asyncio loops each spawning
``/bin/true`` with stdout and stderr pipes and awaiting it, for the window; runs/s.

cronwarden: the same number of HTTP clients, each POSTing ``/api/tasks/t/runs?wait=60``
in a loop: the answer comes once the run's end is durably recorded, so every counted
run has its row committed before its process started and its outcome committed before
the answer.  Runs/s over the window; the ratio is cronwarden / raw (target >= 0.8, issue 30).
The clients run in this process and take CPU from both sides alike.

Beside the rates, CPU per run, less swayed than a rate by other work on the machine:
the raw side's (this process and the children it reaped) and the daemon's (its own, its
reaped children's: the runs and whatever starts them, and its keeper's), over each
window.

Two options change only the daemon's config, to measure what each costs a run:
``--limits`` gives the task ``limits = { open_files = 4096, cpu_time = "1h" }`` (bounds
no cgroup controller holds, so each run's command is started through util-linux's
``prlimit``: one more exec per run); ``--cgroups`` sets ``[daemon] run_cgroups =
"always"`` (each run gets a cgroup v2 of its own, made before its spawn and removed at
its end; the daemon refuses to start where it cannot have one).

``--profile OUT.prof`` runs the daemon under cProfile for the API window
(``_profiled.py``); its rate is then not the benchmark's figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import aiohttp
from _daemon import free_port, profiled, running_daemon

COMMAND = ["/bin/true"]
LIMITS = 'limits = { open_files = 4096, cpu_time = "1h" }\n'


async def raw(seconds: float, clients: int) -> tuple[float, int]:
    done = 0
    end = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < end:
            proc = await asyncio.create_subprocess_exec(
                *COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            await proc.communicate()
            done += 1

    began = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.monotonic() - began), done


async def through_api(base: str, seconds: float, clients: int) -> tuple[float, int, int]:
    done = failed = 0
    end = time.monotonic() + seconds
    url = f"{base}/api/tasks/t/runs?wait=60"

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done, failed
        while time.monotonic() < end:
            async with session.post(url) as response:
                run = await response.json()
                if response.status == 201 and run.get("end_reason") == "success":
                    done += 1
                else:
                    failed += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return done / (time.monotonic() - began), failed, done + failed


def write_config(work: Path, *, limits: bool = False, cgroups: bool = False) -> Path:
    """The daemon's config: one task ``t`` running COMMAND, on a free port."""
    config = work / "sustained.toml"
    config.write_text(
        f'[daemon]\nlisten = "127.0.0.1:{free_port()}"\ndata_dir = "{work / "data"}"\n'
        + ('run_cgroups = "always"\n' if cgroups else "")
        + f"[tasks.t]\ncommand = {json.dumps(COMMAND)}\n"
        + (LIMITS if limits else "")
    )
    return config


def own_cpu() -> float:
    """CPU seconds of this process and of the children it reaped."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def daemon_cpu(pid: int) -> float:
    """CPU seconds of the daemon, of the children it reaped (its runs), and of those
    alive (its keeper; no run is in flight when this is read)."""
    ticks = sum(_cpu_ticks(pid, reaped=True))
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            ticks += sum(_cpu_ticks(int(child), reaped=False))
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int, *, reaped: bool) -> list[int]:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # gone meanwhile
        return []
    return [int(f) for f in fields[11 : 15 if reaped else 13]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--limits", action="store_true", help="the task gets limits (runs start through prlimit)"
    )
    parser.add_argument(
        "--cgroups", action="store_true", help='run_cgroups = "always": a cgroup v2 per run'
    )
    parser.add_argument("--profile", type=Path, help="cProfile the daemon's window into this file")
    args = parser.parse_args()
    profile = args.profile.resolve() if args.profile else None
    options = {"limits": args.limits, "cgroups": args.cgroups}
    variant = " + ".join(name for name, on in options.items() if on) or "plain"
    before = own_cpu()
    raw_rate, raw_count = asyncio.run(raw(args.seconds, args.clients))
    raw_ms = (own_cpu() - before) * 1000 / raw_count
    with tempfile.TemporaryDirectory(prefix="cw-sustained-") as tmp:
        work = Path(tmp)
        config = write_config(work, limits=args.limits, cgroups=args.cgroups)
        with running_daemon(work, config, profile=profile) as (base, daemon):
            before = daemon_cpu(daemon.pid)
            with profiled(daemon, profile):
                api_rate, failed, count = asyncio.run(through_api(base, args.seconds, args.clients))
            api_ms = (daemon_cpu(daemon.pid) - before) * 1000 / count
    ratio = api_rate / raw_rate
    print(f"sustained short runs for {args.seconds:g} s, {args.clients} clients, {variant}")
    print(f"  raw asyncio spawn + reap          {raw_rate:8.0f} runs/s  {raw_ms:5.2f} ms CPU a run")
    print(
        f"  cronwarden API, every end durable {api_rate:8.0f} runs/s  {api_ms:5.2f} ms CPU a run"
        f"  ({failed} not success)"
    )
    print(f"  ratio {ratio:.2f}  target >= 0.8: {'met' if ratio >= 0.8 else 'MISSED'}")


if __name__ == "__main__":
    main()
