"""Trigger-to-start delay of API-triggered runs, alone and with several hosts.

    python benchmarks/trigger_delay.py [--runs 90] [--pg postgresql://127.0.0.1:5432/test]

An API trigger runs on the node that received it (README "Several hosts"); this shows
what that costs: each run's start_at minus its created_at, as recorded, for a daemon
on SQLite, one daemon on PostgreSQL, and three daemons on one PostgreSQL database
taking the triggers in turn.  The SQLite figure is the baseline of the same run.
The PostgreSQL database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from _daemon import free_port, get, post, running_daemon, z

TASK = '[tasks.t]\ncommand = "true"\n'


def delays(bases: list[str], runs: int) -> tuple[float, float]:
    """p50 and p99 in ms of created_at -> start_at, triggers sent to ``bases`` in turn."""
    sent = [
        (bases[i % len(bases)], post(f"{bases[i % len(bases)]}/api/tasks/t/runs")["id"])
        for i in range(runs)
    ]
    measured = []
    for base, run_id in sent:
        while (run := get(f"{base}/api/runs/{run_id}"))["status"] != "ended":
            time.sleep(0.01)  # a spinning client would take the daemon's cores
        measured.append((z(run["start_at"]) - z(run["created_at"])).total_seconds() * 1000)
    measured.sort()
    return statistics.median(measured), measured[max(0, int(len(measured) * 0.99) - 1)]


@contextmanager
def daemons(root: Path, count: int, database: str | None) -> Iterator[list[str]]:
    with ExitStack() as stack:
        bases = []
        for i in range(count):
            work = root / f"{'pg' if database else 'sqlite'}-{i}"
            work.mkdir()
            config = work / "c.toml"
            db = f'database = "{database}"\n' if database else ""
            config.write_text(
                f'[daemon]\nlisten = "127.0.0.1:{free_port()}"\ndata_dir = "{work / "data"}"\n'
                f"{db}{TASK}"
            )
            base, _ = stack.enter_context(running_daemon(work, config))
            bases.append(base)
        yield bases


def admin(url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=90)
    parser.add_argument("--pg", default="postgresql://127.0.0.1:5432/test")
    args = parser.parse_args()
    name = f"cronwarden_bench_{uuid.uuid4().hex[:8]}"
    admin(args.pg, f'CREATE DATABASE "{name}"')
    database = f"{args.pg.rsplit('/', 1)[0]}/{name}".replace(
        "postgresql://", "postgresql+asyncpg://", 1
    )
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="cw-trigger-") as tmp:
            root = Path(tmp)
            with daemons(root, 1, None) as bases:
                rows.append(("one node, SQLite (baseline)", *delays(bases, args.runs)))
            with daemons(root, 3, database) as bases:
                rows.append(("one node, PostgreSQL", *delays(bases[:1], args.runs)))
                rows.append(("three nodes in turn, PostgreSQL", *delays(bases, args.runs)))
    finally:
        admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    base_p50 = rows[0][1]
    print(f"trigger to start (created_at -> start_at), {args.runs} runs each")
    print(f"  {'daemons':34} {'p50 ms':>7} {'p99 ms':>7}  p50 / baseline")
    for label, p50, p99 in rows:
        print(f"  {label:34} {p50:7.2f} {p99:7.2f}  {p50 / base_p50:.2f}")


if __name__ == "__main__":
    main()
