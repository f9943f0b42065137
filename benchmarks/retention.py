"""A retention pass deleting 1,000,000 runs, and a per-second task's lateness meanwhile.

    python benchmarks/retention.py [--runs 1000000] [--store-seed 100000] [--after 30]
        [--seed-dir DIR] [--database-url postgresql+asyncpg://.../DB]

``--runs`` ended runs of 20 tasks are seeded as ``run_pages.py`` seeds them (the first
``--store-seed`` by the store's own insert, the rest copies of those made in SQL), all
of January 2026.  The daemon then starts with ``keep_for = "30d"``: its first
retention pass, at start-up, finds every seeded run expired and deletes them all
(with their log files, none here, and artifacts) in batches of 256-1,024, while a per-second task
(``date +%s.%N`` appended to a file, as ``lateness.py`` measures) keeps firing.

Measured:

* the pass's rate: deleted runs / the pass's duration, as the daemon logs it
  (``retention.pass``; /api/info's ``retention`` says the same);
* the per-second task's start lateness (how far past its whole second the command read
  the clock) during the pass, and the seconds that had no fire at all.

Baselines measured in the same run, on copies of the same seeded database:

* a bare ``DELETE FROM runs`` of the same rows, one statement (the store's floor);
* the same rows deleted by a bare loop of the pass's own shape: 200 ids chosen oldest
  first, deleted by id, one transaction each (what the batching alone costs);
* the per-second task's lateness in the same daemon over ``--after`` seconds once the
  pass has ended.

Targets (issue 30): >= 10,000 rows/s, start lateness p99 <= 50 ms during the pass.
``--seed-dir`` keeps the seeded database (SQLite: its file; PostgreSQL: the seeded
database itself), copied afresh for each run, so a second run does not seed again.
With ``--database-url`` the seeded database is that one, and the copies are made with
``CREATE DATABASE ... TEMPLATE``.  A build other than the installed one runs with
``PYTHONPATH=ITS_SOURCE_TREE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from _daemon import free_port, get, running_daemon, z
from run_pages import prepare

TICK = "date +%s.%N >> {out}"
KEEP_FOR = "30d"  # the seeded runs are of January 2026: every one has expired
BATCH = 200  # cronwarden/retention.py's


# -- the baselines: bare deletes on copies ---------------------------------------------


def bare_sqlite(path: Path, batched: bool) -> tuple[int, float]:
    """Delete every run of the file at ``path``; returns (rows, seconds)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = NORMAL")  # as the daemon's (WAL already)
    try:
        began = time.perf_counter()
        if not batched:
            deleted = connection.execute("DELETE FROM runs").rowcount
            return deleted, time.perf_counter() - began
        deleted = 0
        pick = f"SELECT id FROM runs ORDER BY created_at, id LIMIT {BATCH}"
        while ids := [row[0] for row in connection.execute(pick)]:
            marks = ",".join("?" * len(ids))
            connection.execute("BEGIN")
            connection.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids)
            connection.execute("COMMIT")
            deleted += len(ids)
        return deleted, time.perf_counter() - began
    finally:
        connection.close()


async def bare_postgres(dsn: str, batched: bool) -> tuple[int, float]:
    import asyncpg  # only for PostgreSQL

    connection = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        if not batched:
            status = await connection.execute("DELETE FROM runs")
            return int(status.split()[-1]), time.perf_counter() - began
        deleted = 0
        pick = f"SELECT id FROM runs ORDER BY created_at, id LIMIT {BATCH}"
        while ids := [row[0] for row in await connection.fetch(pick)]:
            await connection.execute("DELETE FROM runs WHERE id = ANY($1::varchar[])", ids)
            deleted += len(ids)
        return deleted, time.perf_counter() - began
    finally:
        await connection.close()


# -- copies of the seeded database -------------------------------------------------------


def _dsn(url: str) -> str:
    return url.replace("+asyncpg", "")


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_dsn(_with_database(url, "postgres")))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def postgres_copy(seeded_url: str, suffix: str) -> Iterator[str]:
    """A database made from the seeded one, dropped when the block ends; yields its URL."""
    seeded = seeded_url.rsplit("/", 1)[1]
    name = f"{seeded}_{suffix}"
    asyncio.run(_admin(seeded_url, f"DROP DATABASE IF EXISTS {name}"))
    asyncio.run(_admin(seeded_url, f"CREATE DATABASE {name} TEMPLATE {seeded}"))
    try:
        yield _with_database(seeded_url, name)
    finally:
        asyncio.run(_admin(seeded_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def bare_delete(workdir: Path, seeded: str, batched: bool) -> tuple[int, float]:
    """A bare delete of every seeded run, on a copy of the seeded database."""
    if seeded.startswith("sqlite"):
        copy = workdir / "bare.db"
        shutil.copyfile(seeded.split(":///", 1)[1], copy)
        try:
            return bare_sqlite(copy, batched)
        finally:
            copy.unlink()
    with postgres_copy(seeded, "bare") as url:
        return asyncio.run(bare_postgres(_dsn(url), batched))


# -- the daemon's pass --------------------------------------------------------------------


def write_config(workdir: Path, data: Path, out: Path, database: str | None) -> Path:
    lines = [
        "[daemon]",
        f'listen = "127.0.0.1:{free_port()}"',
        f'data_dir = "{data}"',
        f'keep_for = "{KEEP_FOR}"',
        *([f'database = "{database}"'] if database else []),
        "[defaults]",
        'timezone = "UTC"',
        "[tasks.tick]",
        f'command = "{TICK.format(out=out)}"',
        'schedule = "* * * * * *"',
        'catch_up = "skip"',
        *(f'[tasks.t{i:02d}]\ncommand = "true"' for i in range(20)),  # the seeded tasks
    ]
    config = workdir / "retention.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def pass_logged(log: Path) -> dict[str, object] | None:
    """The first ``retention.pass`` event of the daemon's log, if there is one yet."""
    for line in log.read_text(errors="replace").splitlines():
        if '"retention.pass"' in line:
            event: dict[str, object] = json.loads(line)
            return event
    return None


def daemon_pass(
    workdir: Path, data: Path, database: str | None, after: float
) -> tuple[dict[str, object], list[float], float, float]:
    """The daemon's first pass; returns its /api/info report, the tick's clock readings,
    and the pass's start and end (epoch seconds)."""
    out = workdir / "tick.txt"
    out.write_text("")
    config = write_config(workdir, data, out, database)
    with running_daemon(workdir, config) as (base, _):
        deadline = time.monotonic() + 3600
        while (event := pass_logged(workdir / "daemon.log")) is None:
            if time.monotonic() > deadline:
                raise SystemExit("no retention pass within an hour")
            time.sleep(1)
        time.sleep(after)
        report = get(f"{base}/api/info")["retention"]
    start = z(report["started_at"]).timestamp()
    end = start + report["duration_ms"] / 1000
    logged = event["duration_ms"], event["deleted_runs"]
    if logged != (report["duration_ms"], report["deleted_runs"]):
        raise SystemExit(f"the log's pass {logged} is not /api/info's {report}")
    stamps = [float(line) for line in out.read_text().split()]
    return report, stamps, start, end


def lateness(stamps: list[float], start: float, end: float) -> dict[str, float]:
    """p50/p99/max ms of the fires of whole seconds in [start, end), and the seconds in
    it with no fire (a fire a second late or more, or none)."""
    chosen = sorted((t - int(t)) * 1000 for t in stamps if start <= int(t) < end)
    seconds = set(range(int(start) + 1, int(end)))
    missing = len(seconds - {int(t) for t in stamps})
    if not chosen:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0,
                "missing": missing}  # fmt: skip
    p99 = chosen[min(len(chosen) - 1, int(len(chosen) * 0.99))]
    return {
        "p50": statistics.median(chosen),
        "p99": p99,
        "max": chosen[-1],
        "n": len(chosen),
        "missing": missing,
    }


def seeded_database(args: argparse.Namespace, workdir: Path) -> str:
    """The seeded database's URL (seeded now, unless kept from an earlier run)."""
    if args.database_url:
        prepare(args.database_url, args.runs, args.store_seed)
        return str(args.database_url)
    keep = args.seed_dir.resolve() if args.seed_dir else workdir / "seed"
    keep.mkdir(mode=0o700, exist_ok=True)
    url = f"sqlite+aiosqlite:///{keep / 'cronwarden.db'}"
    prepare(url, args.runs, args.store_seed)
    sqlite3.connect(keep / "cronwarden.db").execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    return url


@contextmanager
def daemon_database(workdir: Path, seeded: str) -> Iterator[tuple[Path, str | None]]:
    """The daemon's data directory and database URL (None: SQLite in that directory),
    on a fresh copy of the seeded database."""
    data = workdir / "data"
    data.mkdir(mode=0o700)
    if seeded.startswith("sqlite"):
        shutil.copyfile(seeded.split(":///", 1)[1], data / "cronwarden.db")
        yield data, None
        return
    with postgres_copy(seeded, "daemon") as url:
        yield data, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--store-seed", type=int, default=100_000)
    parser.add_argument("--after", type=float, default=30, help="seconds after the pass")
    parser.add_argument("--seed-dir", type=Path, help="keeps the seeded SQLite file")
    parser.add_argument("--database-url", help="postgresql+asyncpg://.../DB: seeded there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-retention-", dir=args.seed_dir) as tmp:
        workdir = Path(tmp)
        seeded = seeded_database(args, workdir)
        whole = bare_delete(workdir, seeded, batched=False)
        batched = bare_delete(workdir, seeded, batched=True)
        with daemon_database(workdir, seeded) as (data, url):
            report, stamps, start, end = daemon_pass(workdir, data, url, args.after)
    during = lateness(stamps, start, end)
    later = lateness(stamps, end + 1, end + args.after)
    rate = report["deleted_runs"] / (report["duration_ms"] / 1000)
    engine = "PostgreSQL" if args.database_url else "SQLite"
    print(f"retention of {args.runs:,} runs on {engine}, {datetime.now():%Y-%m-%d %H:%M}")
    print(f"  {'delete':<44} {'rows':>9} {'s':>7} {'rows/s':>8} {'ratio':>6}")
    for label, (rows, seconds) in (
        ("bare DELETE FROM runs, one statement", whole),
        (f"bare loop: {BATCH} ids oldest first, DELETE by id", batched),
        ("cronwarden's retention pass", (report["deleted_runs"], report["duration_ms"] / 1000)),
    ):
        ratio = (rows / seconds) / rate
        print(f"  {label:<44} {rows:>9,} {seconds:>7.1f} {rows / seconds:>8,.0f} {ratio:>6.2f}")
    print("  (ratio: that delete's rows/s over the pass's; the pass's is 1.00)")
    print(f"  target >= 10,000 rows/s: {'met' if rate >= 10_000 else 'MISSED'} ({rate:,.0f})")
    columns = f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'fires':>6} {'none':>5}"
    print(f"  {'per-second task':<21} {columns}")
    for label, figures in (("during the pass", during), (f"{args.after:g} s after it", later)):
        print(
            f"  {label:<21} {figures['p50']:>7.2f} {figures['p99']:>7.2f} {figures['max']:>7.2f}"
            f" {figures['n']:>6.0f} {figures['missing']:>5.0f}"
        )
    ratio = during["p99"] / later["p99"] if later["p99"] else float("nan")
    print(f"  p99 during / after: {ratio:.2f}")
    met = during["p99"] <= 50 and during["missing"] == 0
    print(f"  target p99 <= 50 ms during the pass, no second without its fire: "
          f"{'met' if met else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
