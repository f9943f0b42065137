"""Sustained API-triggered short runs, every record committed, beside raw spawning.

    python benchmarks/sustained.py [--seconds 30] [--clients 16]

Baseline (same run, same machine): ``--clients`` asyncio loops each spawning
``/bin/true`` with stdout and stderr pipes and awaiting it, for the window; runs/s.

cronwarden: the same number of HTTP clients, each POSTing ``/api/tasks/t/runs?wait=60``
in a loop: the answer comes once the run's end is durably recorded, so every counted
run has its row committed before its process started and its outcome committed before
the answer.  Runs/s over the window; the ratio is cronwarden / raw (target >= 0.5).
The clients run in this process and take CPU from both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiohttp
from _daemon import free_port, running_daemon

COMMAND = ["/bin/true"]


async def raw(seconds: float, clients: int) -> float:
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
    return done / (time.monotonic() - began)


async def through_api(base: str, seconds: float, clients: int) -> tuple[float, int]:
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
        return done / (time.monotonic() - began), failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    raw_rate = asyncio.run(raw(args.seconds, args.clients))
    with tempfile.TemporaryDirectory(prefix="cw-sustained-") as tmp:
        work = Path(tmp)
        config = work / "sustained.toml"
        config.write_text(
            f'[daemon]\nlisten = "127.0.0.1:{free_port()}"\ndata_dir = "{work / "data"}"\n'
            f"[tasks.t]\ncommand = {json.dumps(COMMAND)}\n"
        )
        with running_daemon(work, config) as (base, _):
            api_rate, failed = asyncio.run(through_api(base, args.seconds, args.clients))
    ratio = api_rate / raw_rate
    print(f"sustained short runs for {args.seconds:g} s, {args.clients} clients")
    print(f"  raw asyncio spawn + reap          {raw_rate:8.0f} runs/s")
    print(f"  cronwarden API, every end durable {api_rate:8.0f} runs/s  ({failed} not success)")
    print(f"  ratio {ratio:.2f}  target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
