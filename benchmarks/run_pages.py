"""Run-list pages, sorts, filters and stats at 1,000,000 runs, over HTTP.

    python benchmarks/run_pages.py [--runs 1000000] [--requests 200] [--data DIR]
        [--database-url postgresql+asyncpg://...] [--store-seed 1000000]
        [--scan-requests 20] [--skip NAME ...]

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

Past ``--store-seed`` runs (1,000,000 by default: the store inserts ~2,000-5,000 a
second here, so ten million would take an hour or more; the copies below went at ~2,000
a second on SQLite, ~5,000 on PostgreSQL, on a loaded machine), the rest are copies of the
store's rows made by ``INSERT ... SELECT`` in the database itself: run ``i`` is run
``i % store_seed`` moved ``i - i % store_seed`` seconds later, with its own id and
params, so the history reads as one run a second throughout, as the store's own rows do.

``--database-url postgresql+asyncpg://...`` seeds and serves PostgreSQL instead (the
daemon's ``database`` key); the bare keyset baseline is then the same query through
asyncpg.  ``--data`` keeps the daemon's directory, and the database keeps the runs: a
database already holding ``--runs`` runs is read again, not seeded.

At ten million runs the requests that read the whole history (search, offset, total,
stats) take seconds each: ``--scan-requests 3`` times three of each after three of
warm-up, and ``--skip "7% match"`` leaves out a request by its name (on PostgreSQL the
7 % search went past the client's 30 s timeout).
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

import sqlalchemy as sa
from _daemon import free_port, get, running_daemon
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

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


async def seeded_runs(database: str) -> int:
    """How many runs a kept database holds (0: none yet, to be seeded)."""
    engine = create_async_engine(database)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text("SELECT count(*) FROM runs"))).scalar_one())
    except sa.exc.DBAPIError:  # no runs table yet (or no file)
        return 0
    finally:
        await engine.dispose()


_ID = "00000000-0000-7000-8000-"  # then the run's number, 12 digits (as seed() writes it)
_SHIFTED = {"scheduled_for", "created_at", "start_at", "end_at"}
COPY_ROWS = 100_000  # a transaction


def _copy_select(dialect: str, columns: list[str]) -> str:
    """``SELECT`` of run ``:first + k`` as a copy of run ``k`` moved ``:shift`` s."""
    if dialect == "sqlite":
        number = "(CAST(substr(id, 25) AS INTEGER) + :shift)"
        new_id = f"'{_ID}' || printf('%012d', {number})"
        # naive ISO text with microseconds, as UTCDateTime stores it on SQLite
        moved = "strftime('%Y-%m-%d %H:%M:%f', {0}, '+' || :shift || ' seconds') || '000'"
        params = f"""CASE WHEN params = '{{}}' THEN params
                     ELSE '{{"n": "' || {number} || '"}}' END"""
    else:
        number = "(CAST(substr(id, 25) AS BIGINT) + CAST(:shift AS BIGINT))"
        new_id = f"'{_ID}' || lpad(CAST({number} AS TEXT), 12, '0')"
        moved = "{0} + make_interval(secs => CAST(:shift AS BIGINT))"
        params = f"""CASE WHEN CAST(params AS TEXT) = '{{}}' THEN params
                     ELSE CAST(json_build_object('n', CAST({number} AS TEXT)) AS JSON) END"""
    chosen = []
    for column in columns:
        if column == "id":
            chosen.append(new_id)
        elif column in _SHIFTED:
            chosen.append(f"CASE WHEN {column} IS NULL THEN NULL ELSE {moved.format(column)} END")
        elif column == "params":
            chosen.append(params)
        else:
            chosen.append(column)
    return (
        f"INSERT INTO runs ({', '.join(columns)}) SELECT {', '.join(chosen)} FROM runs "
        "WHERE id >= :low AND id < :high ORDER BY id"
    )


async def extend_by_copies(database: str, base: int, start: int, count: int) -> float:
    """Runs ``start`` .. ``count - 1`` as copies of the store's runs 0 .. ``base - 1``
    (see the module's docstring); returns the seconds it took."""
    engine = open_engine(database)
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                # A page cache of 1 GiB: the indexes on random values (duration_ms,
                # end_at) take their rows all over the file, and the default 2 MB
                # cache made the copy as slow as the store (~2,000 rows/s).
                await conn.execute(sa.text("PRAGMA cache_size = -1048576"))
            columns = list((await conn.execute(sa.text("SELECT * FROM runs LIMIT 0"))).keys())
            insert = sa.text(_copy_select(engine.dialect.name, columns))
            await conn.commit()
            first = start
            while first < count:
                low = first % base
                rows = min(COPY_ROWS, count - first, base - low)
                window = {"shift": first - low, "low": f"{_ID}{low:012d}"}
                await conn.execute(insert, {**window, "high": f"{_ID}{low + rows:012d}"})
                await conn.commit()
                first += rows
    finally:
        await engine.dispose()
    return time.perf_counter() - started


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


def prepare(database: str, runs: int, store_seed: int) -> None:
    """Seed the database to ``runs`` runs, unless it holds them already."""
    seeded = asyncio.run(seeded_runs(database))
    if seeded == runs:
        print(f"run pages: the {seeded:,} runs seeded before")
        return
    base = min(runs, store_seed)
    if seeded == 0:
        seconds = asyncio.run(seed(database, base))
        print(
            f"run pages: {base:,} runs seeded by the store in {seconds:.1f}s "
            f"({base / seconds:,.0f}/s)"
        )
        seeded = base
    elif not base <= seeded < runs:
        raise SystemExit(f"the database holds {seeded:,} runs, not --runs {runs:,}")
    if seeded < runs:
        seconds = asyncio.run(extend_by_copies(database, base, seeded, runs))
        copied = runs - seeded
        print(
            f"run pages: {copied:,} runs copied in SQL in {seconds:.1f}s "
            f"({copied / seconds:,.0f}/s)"
        )


KEYSET = "SELECT * FROM runs ORDER BY created_at DESC, id DESC LIMIT 51"


def bare_keyset(database: str, requests: int) -> tuple[float, float]:
    """The first page's keyset query on the bare driver (sqlite3, or asyncpg)."""
    if database.startswith("sqlite"):
        connection = sqlite3.connect(database.split(":///", 1)[1])
        try:
            return timed(lambda: connection.execute(KEYSET).fetchall(), requests)
        finally:
            connection.close()
    import asyncpg  # only for PostgreSQL

    loop = asyncio.new_event_loop()
    dsn = database.replace("+asyncpg", "")
    pg = loop.run_until_complete(asyncpg.connect(dsn))
    try:
        return timed(lambda: loop.run_until_complete(pg.fetch(KEYSET)), requests)
    finally:
        loop.run_until_complete(pg.close())
        loop.close()


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
    parser.add_argument(
        "--scan-requests",
        type=int,
        default=20,
        help="requests of each kind that reads the whole history (search, offset, total, stats)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help="leave out the requests whose name holds this (repeatable)",
    )
    parser.add_argument(
        "--database-url", help="postgresql+asyncpg://...: the daemon's database key (else SQLite)"
    )
    parser.add_argument(
        "--store-seed",
        type=int,
        default=1_000_000,
        help="runs inserted by the store; the rest are copies of them made in SQL",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cronwarden-pages-") as tmp:
        workdir = Path(tmp)
        data = args.data.resolve() if args.data else workdir / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        database = args.database_url or f"sqlite+aiosqlite:///{data / 'cronwarden.db'}"
        prepare(database, args.runs, args.store_seed)
        config = workdir / "pages.toml"
        tasks = "".join(f'[tasks.t{i:02d}]\ncommand = "true"\n' for i in range(TASKS))
        url = f'database = "{args.database_url}"\n' if args.database_url else ""
        config.write_text(
            f'[daemon]\nlisten = "127.0.0.1:{free_port()}"\ndata_dir = "{data}"\n{url}'
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
            keyset = bare_keyset(database, args.requests)
            engine = "PostgreSQL" if args.database_url else "SQLite"
            print(f"{'request':<24} {'p50 ms':>8} {'p99 ms':>8} {'p50 / bare':>11}")
            print(f"{'bare aiohttp page':<24} {bare[0]:>8.2f} {bare[1]:>8.2f} {1:>11.1f}")
            print(
                f"{'bare ' + engine + ' keyset':<24} {keyset[0]:>8.2f} {keyset[1]:>8.2f} {'-':>11}"
            )
            for name, path in cases.items():
                if any(word in name for word in args.skip):
                    continue
                scan = any(word in name for word in ("search", "offset", "total", "stats"))
                p50, p99 = timed(fetch(base + path), args.scan_requests if scan else args.requests)
                print(f"{name:<24} {p50:>8.2f} {p99:>8.2f} {p50 / bare[0]:>11.1f}")
    print("target: pages p99 <= 5 ms")


if __name__ == "__main__":
    main()
