"""Run-list pages, sorts, filters and stats at 1,000,000 runs, over HTTP.

    python benchmarks/run_pages.py [--runs 1000000] [--requests 200] [--data DIR]

The runs are seeded through the store's own group-committed insert into the daemon's
SQLite file; then a daemon serves them and each kind of request is timed back to back
(after a warm-up).  Baselines measured in the same run: a bare aiohttp endpoint
answering a run page of the same size, and the bare SQLite keyset query of a first page
on the same file.  Printed: p50/p99 in ms, and p50 over the bare endpoint's p50.
Target (DESIGN.md): pages p99 <= 5 ms.

``--data DIR`` keeps the daemon's data directory: seeded on the first run, read again by
the next ones, so two runs compared alternately read the same runs (and the minutes of
seeding are paid once).  ``--reader-lane off`` serves them with pages read through the
async engine instead of the reader lane (``store/lane.py``): the lane's gain is the
difference, taken from at least two runs each way, alternately, on one ``--data``.  A
build other than the installed one runs with ``PYTHONPATH=ITS_SOURCE_TREE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _daemon import free_port, get, running_daemon
from aiohttp import web

from cronwarden.run_record import RunRecord
from cronwarden.run_sorts import SORT_FIELDS
from cronwarden.store import Store, open_engine

TASKS = 20
RETAIN_DAYS = 36500  # keep_for: the seeded runs start on T0, in the past
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REASONS = ["success"] * 90 + ["failed"] * 7 + ["timeout"] * 2 + ["skipped"]


async def seed(database: str, count: int) -> float:
    """Insert ``count`` ended runs through the store; returns the seconds it took."""
    store = await Store.open(open_engine(database))
    writer = store.recorder.start()
    rng = random.Random(1)
    costs = random.Random(2)  # its own: the runs drawn stay those of earlier rounds
    started = time.perf_counter()
    batch = []
    for i in range(count):
        created = T0 + timedelta(seconds=i)
        reason = rng.choice(REASONS)
        took = rng.randrange(10, 60_000)
        ran = reason != "skipped"
        batch.append(
            RunRecord(
                id=f"00000000-0000-7000-8000-{i:012d}",
                task_name=f"t{i % TASKS:02d}",
                status="ended",
                end_reason=reason,
                exit_code=(0 if reason == "success" else 1) if ran else None,
                triggered_by="api" if i % 10 == 0 else "schedule",
                scheduled_for=None if i % 10 == 0 else created,
                created_at=created,
                start_at=created if ran else None,
                end_at=created + timedelta(milliseconds=took if ran else 0),
                duration_ms=took if ran else 0,
                params={"n": str(i)} if i % 10 == 0 else {},
                node="bench",
                task_hash="h",
                error="exit status 1" if reason == "failed" else None,
                # what it cost: summed by the stats, as a real history's would be
                cpu_user_s=round(costs.random() * 2, 6) if ran else None,
                cpu_system_s=round(costs.random() / 4, 6) if ran else None,
                max_rss_bytes=costs.randrange(2**20, 2**30) if ran else None,
                output_bytes=costs.randrange(0, 2**16) if ran else None,
            )
        )
        if len(batch) == 10_000:
            await store.claim(batch)
            batch = []
    if batch:
        await store.claim(batch)
    seconds = time.perf_counter() - started
    await store.recorder.close()
    writer.cancel()
    await store.close()
    return seconds


# ``cronwarden serve`` with no reader lane: pages read through the async engine.
WITHOUT_LANE = (
    "import runpy, cronwarden.store.runs as runs; runs.READER_THREADS = 0; "
    "runpy.run_module('cronwarden', run_name='__main__', alter_sys=True)"
)


@contextmanager
def serving(workdir: Path, config: Path, lane: bool) -> Iterator[str]:
    """The daemon on ``config`` until the block ends, with or without the reader lane;
    yields its base URL."""
    if lane:
        with running_daemon(workdir, config) as (base, _):
            yield base
        return
    base = "http://" + config.read_text().split('listen = "', 1)[1].split('"', 1)[0]
    with open(workdir / "daemon.log", "wb") as log:
        argv = [sys.executable, "-c", WITHOUT_LANE, "serve", "-c", str(config)]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not _healthy(base):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"daemon did not start; see {workdir / 'daemon.log'}")
                time.sleep(0.1)
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def _healthy(base: str) -> bool:
    try:
        return bool(get(f"{base}/health")["status"] == "ok")
    except OSError:
        return False


def seeded_runs(path: Path) -> int:
    """How many runs a kept data directory holds (0: none yet, to be seeded)."""
    if not path.exists():
        return 0
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:  # no runs table yet
        return 0
    finally:
        connection.close()


def timed(call: Callable[[], Any], requests: int) -> tuple[float, float]:
    for _ in range(min(20, requests)):
        call()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def fetch(url: str) -> Callable[[], Any]:
    def call() -> Any:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            raise SystemExit(f"{url}: {err.code} {err.read().decode(errors='replace')}") from None

    return call


def bare_endpoint(body: bytes) -> tuple[str, Callable[[], None]]:
    """An aiohttp app answering ``body`` at /page, in a thread of its own."""
    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/page", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return f"http://127.0.0.1:{port}/page", stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--data", type=Path, help="a data directory to seed once and read again in later runs"
    )
    parser.add_argument(
        "--reader-lane",
        choices=("on", "off"),
        default="on",
        help="off: the daemon reads pages through the async engine (the lane's baseline)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cronwarden-pages-") as tmp:
        workdir = Path(tmp)
        data = args.data.resolve() if args.data else workdir / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        database = f"sqlite+aiosqlite:///{data / 'cronwarden.db'}"
        seeded = seeded_runs(data / "cronwarden.db")
        if seeded == 0:
            seconds = asyncio.run(seed(database, args.runs))
            rate = args.runs / seconds
            print(f"run pages: {args.runs:,} runs seeded in {seconds:.1f}s ({rate:,.0f}/s)")
        elif seeded != args.runs:
            raise SystemExit(f"{data} holds {seeded:,} runs, not --runs {args.runs:,}")
        else:
            print(f"run pages: the {seeded:,} runs seeded in {data} before")
        config = workdir / "pages.toml"
        tasks = "".join(f'[tasks.t{i:02d}]\ncommand = "true"\n' for i in range(TASKS))
        config.write_text(
            f'[daemon]\nlisten = "127.0.0.1:{free_port()}"\ndata_dir = "{data}"\n'
            # Retention must not delete the seeded history while it is being read.
            f'keep_runs = {args.runs}\nkeep_for = "{RETAIN_DAYS}d"\n{tasks}'
        )
        print(f"run pages: reader lane {args.reader_lane}")
        with serving(workdir, config, args.reader_lane == "on") as base:
            page = get(f"{base}/api/runs?limit=50")
            cursor = page["next_cursor"]
            for _ in range(min(200, args.runs // 1000 - 1)):  # 200k rows in
                cursor = get(f"{base}/api/runs?limit=1000&cursor={cursor}")["next_cursor"]
            middle, until = (
                (T0 + timedelta(seconds=args.runs // 2 + s)).isoformat().replace("+00:00", "Z")
                for s in (0, 3600)
            )
            cases = {
                "first page": "/api/runs?limit=50",
                "deep cursor (200k in)": f"/api/runs?limit=50&cursor={cursor}",
                "task filter": "/api/tasks/t07/runs?limit=50",
                "status filter": "/api/runs?status=ended&limit=50",
                "end_reason filter": "/api/runs?end_reason=failed&limit=50",
                "triggered_by filter": "/api/runs?triggered_by=api&limit=50",
                "date range": f"/api/runs?start_date={middle}&end_date={until}&limit=50",
                "search (one match)": f"/api/runs?search={args.runs // 2}&limit=50",
                "search (7% match)": "/api/runs?search=exit%20status&limit=50",
                "offset=500000": "/api/runs?offset=500000&limit=50",
                "total=true": "/api/runs?total=true&limit=50",
                **{
                    f"sort {field}": f"/api/runs?sort_field={field}&limit=50"
                    for field in SORT_FIELDS[1:]
                },
                "stats (all)": "/api/tasks/t07/stats",
                "stats (a day)": f"/api/tasks/t07/stats?since={middle}",
                "/health": "/health",
            }
            bare_url, stop = bare_endpoint(json.dumps(page).encode())
            try:
                bare = timed(fetch(bare_url), args.requests)
            finally:
                stop()
            connection = sqlite3.connect(data / "cronwarden.db")
            keyset = "SELECT * FROM runs ORDER BY created_at DESC, id DESC LIMIT 51"
            sqlite = timed(lambda: connection.execute(keyset).fetchall(), args.requests)
            connection.close()
            print(f"{'request':<24} {'p50 ms':>8} {'p99 ms':>8} {'p50 / bare':>11}")
            print(f"{'bare aiohttp page':<24} {bare[0]:>8.2f} {bare[1]:>8.2f} {1:>11.1f}")
            print(f"{'bare SQLite keyset':<24} {sqlite[0]:>8.2f} {sqlite[1]:>8.2f} {'-':>11}")
            for name, path in cases.items():
                scan = any(word in name for word in ("search", "offset", "total", "stats"))
                p50, p99 = timed(fetch(base + path), 20 if scan else args.requests)
                print(f"{name:<24} {p50:>8.2f} {p99:>8.2f} {p50 / bare[0]:>11.1f}")
    print("target: pages p99 <= 5 ms")


if __name__ == "__main__":
    main()
