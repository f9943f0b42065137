"""A soak: one real daemon under a steady mixed load for a long window, sampled every 10 s.

    python benchmarks/soak.py [--minutes 30] [--history 1000000] [--warmup 5] [--tasks 200]
                              [--triggers 20] [--sample-every 10] [--data DIR] [--out DIR]
                              [--trace-memory FRAMES]

The daemon (SQLite) has ``--tasks`` per-second tasks (``* * * * * *``, seconds first),
two of them sharing a lock (``locks``) and one the cause of a chain (a task with
``after``), and an on-request task that prints five lines over half a second.  Its
history is seeded with ``--history`` ended runs (20,000 through the store's own insert,
the rest copies of them, as ``run_pages.py --store-seed`` does), dated January 2026:
``keep_for = "30d"`` makes retention prune them while the soak runs (its first pass
starts with the daemon), and keeps every run of the soak.  Meanwhile, from this process:

* 20 API triggers a second (``--triggers``), ``POST /api/tasks/talk/runs?wait=60``,
  each answered once its run has ended;
* SSE followers of ``/api/events`` and of running runs' logs
  (``/api/runs/{id}/log?follow=true``), each connecting, reading a while and dropping;
* a ``/metrics`` scrape every 10 s, and a reload (``POST /api/reload``, the config
  changed a little each time) every minute.

Sampled every 10 s (``--sample-every``): the daemon's RSS and its keeper's
(``keeper.py``: the process that holds runs' pipes), open fds and threads (``/proc``),
the event loop's tasks (``cronwarden_asyncio_tasks`` in ``/metrics``), the SQLite WAL
file's size, the runs left and what retention deleted (``/api/info``, ``/metrics``),
the start lateness p99 of the scheduled runs created since the last sample
(``start_at - scheduled_for``, read from ``GET /api/runs``), and every answer of 500 or
more.  Written to ``--out`` as
``soak.csv`` and drawn as ``soak.png`` (matplotlib, the ``bench`` extra); the daemon's
own log is kept beside them as ``soak-daemon.log``.

At the end, beside the targets (issue 30, DESIGN.md): the RSS slope after the warm-up
(least squares, MB per hour; target < 1 MB/h), fds, threads and tasks (first, last,
min, max; flat), the lateness p99 of each 5 minutes over the first 5 (within 20%), the
5xx count (0), and every fire accounted for: each per-second task has, for every second
of the window, a run (or a recorded missed or skipped one) with that scheduled_for, read
back over the API.  The targets are absolute (a slope, flatness), so there is no
baseline run beside it; the first 5 minutes are the lateness's own baseline.

``--trace-memory FRAMES`` runs the daemon under ``_memtraced.py`` and says, at the
warm-up's end, every 5 minutes after and at the end, where its memory is: malloc's
heaps (in use, free inside them), pymalloc's arenas, SQLite's own (page caches,
prepared statements) and, with FRAMES > 0, what tracemalloc traced, with the call
sites whose blocks grew most (tracing slows the daemon: its figures are not the soak's).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from _daemon import free_port, running_daemon, z
from run_pages import extend_by_copies, seed, seeded_runs

SAMPLE_EVERY = 10.0  # s
RELOAD_EVERY = 60.0  # s
FOLLOWERS = 3  # of each kind
SNAPSHOT_EVERY = 300.0  # s, with --trace-memory
TOP_SITES = 15
TALK = "echo started; sleep 0.5; echo ended"
STORE_SEED = 20_000  # history runs inserted through the store; the rest are copies
IN_FLIGHT = 100  # triggers awaiting their answer at most: beyond, one is not sent
COLUMNS = [
    "t_s",
    "rss_mb",
    "keeper_rss_mb",
    "fds",
    "threads",
    "asyncio_tasks",
    "wal_mb",
    "lateness_p99_ms",
    "scheduled_runs",
    "not_started",
    "runs_in_store",
    "retention_deleted",
    "api_age_s",
    "http_5xx",
    "daemon_cpu",
    "load1",
    "triggers_done",
]
# The columns read over the API (by Readings); the rest are read from /proc and the disk.
API_COLUMNS = {
    "asyncio_tasks",
    "lateness_p99_ms",
    "scheduled_runs",
    "not_started",
    "runs_in_store",
    "retention_deleted",
}


def config_text(port: int, data: Path, tasks: int, reloads: int) -> str:
    """The soak's config; ``reloads`` changes the talking task's env, so each reload
    has a difference to apply."""
    lines = [
        "[daemon]",
        f'listen = "127.0.0.1:{port}"',
        f'data_dir = "{data}"',
        'shutdown_timeout = "10s"',
        "keep_runs = 1000000",  # every run of the soak stays; the seeded ones are too old
        'keep_for = "30d"',
        "[defaults]",
        'timezone = "UTC"',
        "[tasks.talk]",
        f"command = {json.dumps(TALK)}",
        f"env = {{ SOAK_RELOADS = '{reloads}' }}",
        "[tasks.chained]",
        'command = "true"',
        f'after = ["t{tasks - 3:02d}"]',
    ]
    for i in range(tasks):
        lines += [f"[tasks.t{i:02d}]", 'command = "true"', 'schedule = "* * * * * *"']
        if i >= tasks - 2:
            lines.append('locks = ["soak"]')
    return "\n".join(lines) + "\n"


def proc_figures(pid: int) -> tuple[float, int, int]:
    """RSS in MB, open fds and threads of one process (0s once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0, 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0])
    return rss_kb / 1024, fds, int(fields["Threads"])


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of the children it reaped (its runs)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def keeper_pid(daemon: int) -> int | None:
    """The daemon's child running keeper.py, if it has one."""
    for children in Path(f"/proc/{daemon}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if any(arg.endswith(b"keeper.py") for arg in argv):
                return int(child)
    return None


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Load:
    """What the load saw: answers by status, and what each kind of client did."""

    base: str
    session: aiohttp.ClientSession
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)
    lateness: list[tuple[float, float]] = field(default_factory=list)  # (fire time, ms)
    unstarted: int = 0  # scheduled runs read by a sample before they had started

    def answered(self, kind: str, status: int) -> None:
        self.statuses[(kind, status)] += 1

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)

    async def get_json(self, kind: str, path: str) -> Any:
        for attempt in range(3):
            try:
                async with self.session.get(self.base + path) as response:
                    self.answered(kind, response.status)
                    return await response.json() if response.status == 200 else None
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
                # a kept-alive connection the daemon closed as idle meanwhile: again
                self.errors[f"{kind}: {type(exc).__name__}"] += 1
                if attempt == 2:
                    raise
        return None

    async def trigger(self) -> None:
        try:
            async with self.session.post(
                f"{self.base}/api/tasks/talk/runs?wait=60", json={}
            ) as response:
                self.answered("trigger", response.status)
                run = await response.json()
                if response.status == 201 and run.get("end_reason") == "success":
                    self.done["trigger"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors[f"trigger: {type(exc).__name__}"] += 1

    async def triggers(self, rate: float, until: float) -> None:
        """Open loop: a trigger every 1/rate s, whether or not the last one answered."""
        pending: set[asyncio.Task[None]] = set()
        due = time.monotonic()
        while due < until:
            if len(pending) < IN_FLIGHT:
                task = asyncio.create_task(self.trigger())
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                self.done["trigger not sent (too many awaiting)"] += 1
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        if pending:
            await asyncio.wait(pending, timeout=90)

    async def follow(self, kind: str, path: str, seconds: float) -> None:
        """An SSE stream read for ``seconds`` (or to its end), then dropped."""
        try:
            async with self.session.get(self.base + path) as response:
                self.answered(kind, response.status)
                ends = time.monotonic() + seconds
                while (left := ends - time.monotonic()) > 0:
                    line = await asyncio.wait_for(response.content.readline(), left)
                    if not line:
                        break
                    if line.startswith(b"data:"):
                        self.done[f"{kind} events"] += 1
            self.done[f"{kind} streams"] += 1
        except TimeoutError:
            self.done[f"{kind} streams"] += 1  # read for its time: dropped
        except aiohttp.ClientError as exc:
            self.errors[f"{kind}: {type(exc).__name__}"] += 1

    async def event_followers(self, until: float, rng: random.Random) -> None:
        while time.monotonic() < until:
            await self.follow("events", "/api/events", rng.uniform(0.5, 5))

    async def log_followers(self, until: float, rng: random.Random) -> None:
        while time.monotonic() < until:
            page = await self.get_json("runs", "/api/runs?task_name=talk&status=running&limit=5")
            if not page or not page["runs"]:
                await asyncio.sleep(0.2)
                continue
            run = rng.choice(page["runs"])["id"]
            await self.follow("log", f"/api/runs/{run}/log?follow=true", rng.uniform(0.1, 1.5))

    async def reloads(self, config: Path, text: Any, until: float) -> None:
        count = 0
        while time.monotonic() + RELOAD_EVERY < until:
            await asyncio.sleep(RELOAD_EVERY)
            count += 1
            await asyncio.to_thread(config.write_text, text(count))
            try:
                async with self.session.post(f"{self.base}/api/reload", json={}) as response:
                    self.answered("reload", response.status)
                    if response.status == 200:
                        self.done["reload"] += 1
            except aiohttp.ClientError as exc:
                self.errors[f"reload: {type(exc).__name__}"] += 1

    async def scheduled_lateness(self, since: datetime, until: datetime) -> list[float]:
        """Start lateness (ms) of the scheduled runs created in [since, until) that
        have started (those not started yet are counted in ``unstarted``)."""
        found: list[float] = []
        path = (
            f"/api/runs?triggered_by=schedule&start_date={iso(since)}"
            f"&end_date={iso(until)}&limit=1000"
        )
        cursor = ""
        while True:
            page = await self.get_json("runs", path + cursor)
            if page is None:
                return found
            for run in page["runs"]:
                if run["start_at"] and run["scheduled_for"]:
                    late = z(run["start_at"]) - z(run["scheduled_for"])
                    found.append(late.total_seconds() * 1000)
                elif run["status"] != "ended":
                    self.unstarted += 1
            if not page["has_next"]:
                return found
            cursor = f"&cursor={page['next_cursor']}"


async def scrape(load: Load) -> dict[str, float]:
    """The unlabelled samples of one /metrics scrape."""
    try:
        async with load.session.get(load.base + "/metrics") as response:
            load.answered("metrics", response.status)
            text = await response.text()
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        load.errors[f"metrics: {type(exc).__name__}"] += 1
        return {}
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            values[name] = float(value)
    return values


@dataclass
class Readings:
    """The API's latest figures, read by a loop of their own: a daemon too busy to
    answer soon never holds up the samples of /proc."""

    figures: dict[str, float] = field(default_factory=dict)
    at: float = 0.0  # monotonic time of the last complete reading

    async def every(self, load: Load, until: float, period: float) -> None:
        # A run is created at its fire and started a few ms later: the window read lags
        # the clock by 3 s, so the runs read have had their start recorded.
        lag = timedelta(seconds=3)
        since = datetime.now(UTC) - lag
        while time.monotonic() < until:
            began = time.monotonic()
            metrics = await scrape(load)
            info = await load.get_json("info", "/api/info") or {}
            unstarted = load.unstarted
            now = datetime.now(UTC) - lag
            late = await load.scheduled_lateness(since, now)
            since = now
            self.figures = {
                "asyncio_tasks": metrics.get("cronwarden_asyncio_tasks", float("nan")),
                "lateness_p99_ms": round(p99(late), 2),
                "scheduled_runs": len(late),
                "not_started": load.unstarted - unstarted,
                "runs_in_store": info.get("runs", -1),
                "retention_deleted": metrics.get("cronwarden_retention_deleted_runs_total", 0),
            }
            self.at = time.monotonic()
            await asyncio.sleep(max(0.0, period - (self.at - began)))


@dataclass
class Sampler:
    load: Load
    pid: int
    wal: Path
    began: float
    readings: Readings = field(default_factory=Readings)
    rows: list[dict[str, float]] = field(default_factory=list)
    cpu: tuple[float, float] = (0.0, 0.0)  # (monotonic, daemon CPU seconds) at the last
    snapshot_rss: list[float] = field(default_factory=list)  # MB at each memory snapshot

    def sample(self) -> dict[str, float]:
        rss, fds, threads = proc_figures(self.pid)
        keeper = keeper_pid(self.pid)
        keeper_rss = proc_figures(keeper)[0] if keeper else 0.0
        wal = self.wal.stat().st_size if self.wal.exists() else 0
        now, cpu = time.monotonic(), cpu_seconds(self.pid)
        share = (cpu - self.cpu[1]) / (now - self.cpu[0])
        self.cpu = (now, cpu)
        nan = float("nan")
        api = self.readings.figures
        row = {
            "t_s": round(now - self.began, 1),
            "rss_mb": round(rss, 2),
            "keeper_rss_mb": round(keeper_rss, 2),
            "fds": fds,
            "threads": threads,
            "wal_mb": round(wal / 2**20, 2),
            **{name: api.get(name, nan) for name in COLUMNS if name in API_COLUMNS},
            "api_age_s": round(now - self.readings.at, 1) if self.readings.at else nan,
            "http_5xx": self.load.server_errors,
            "daemon_cpu": round(share, 3),  # cores, its runs included
            "load1": os.getloadavg()[0],
            "triggers_done": self.load.done["trigger"],
        }
        self.rows.append(row)
        return row

    async def every(self, until: float, period: float) -> None:
        """/proc and the WAL every ``period`` s, with the API's latest readings."""
        self.cpu = (time.monotonic(), cpu_seconds(self.pid))
        due = time.monotonic()
        while (due := due + period) < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            row = self.sample()
            print(
                f"  {row['t_s']:>6.0f}s  rss {row['rss_mb']:6.1f}+{row['keeper_rss_mb']:.1f} MB"
                f"  fds {row['fds']:4.0f}  threads {row['threads']:3.0f}"
                f"  tasks {row['asyncio_tasks']:5.0f}  wal {row['wal_mb']:6.1f} MB"
                f"  p99 {row['lateness_p99_ms']:7.1f} ms ({row['scheduled_runs']:.0f}"
                f" +{row['not_started']:.0f} not started, {row['api_age_s']:.0f} s ago)"
                f"  runs {row['runs_in_store']:.0f}  5xx {row['http_5xx']}"
                f"  cpu {row['daemon_cpu']:.2f}  load {row['load1']:.1f}",
                flush=True,
            )


async def soak(args: argparse.Namespace, base: str, config: Path, text: Any, data: Path, pid: int):
    """The load and the sampler for the window; returns (sampler, load, window)."""
    rng = random.Random(3)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        load = Load(base, session)
        began = time.monotonic()
        first_fire = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        until = began + args.minutes * 60
        sampler = Sampler(load, pid, data / "cronwarden.db-wal", began)
        await asyncio.gather(
            load.triggers(args.triggers, until),
            *(load.event_followers(until, rng) for _ in range(FOLLOWERS)),
            *(load.log_followers(until, rng) for _ in range(FOLLOWERS)),
            load.reloads(config, text, until),
            sampler.every(until, args.sample_every),
            sampler.readings.every(load, until, args.sample_every),
            *(
                [
                    account_memory(
                        pid,
                        args.trace_memory,
                        began + args.warmup * 60,
                        until,
                        sampler.snapshot_rss,
                    )
                ]
                if args.trace_memory is not None
                else []
            ),
        )
        last_fire = first_fire + timedelta(seconds=int(time.monotonic() - began) - 4)
        await asyncio.sleep(3)  # the window's last fires end
        await claimed_through(load, f"t{args.tasks - 1:02d}", last_fire)
        accounted = await account(load, args.tasks, first_fire, last_fire)
    return sampler, load, (first_fire, last_fire), accounted


async def account_memory(
    pid: int, frames: int, first: float, until: float, rss: list[float]
) -> None:
    """With ``--trace-memory``: the daemon's memory accounted for (``_memtraced.py``) at
    the warm-up's end, every SNAPSHOT_EVERY s after and just before the window's end;
    ``rss`` gets its RSS at each.  With tracing, the warm-up's end only starts it: the
    first snapshot, a while later, holds the blocks any moment of the load keeps alive."""
    await asyncio.sleep(max(0.0, first - time.monotonic()))
    steps = int((until - first) // SNAPSHOT_EVERY)
    moments = [first + SNAPSHOT_EVERY * k for k in range(1 if frames else 0, steps)]
    if frames:
        os.kill(pid, signal.SIGUSR1)
    for at in [*moments, until - 2]:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        rss.append(proc_figures(pid)[0])
        os.kill(pid, signal.SIGUSR1)


def memory_report(prefix: Path, rss: list[float]) -> None:
    """Where the memory was at each moment: RSS beside malloc's heaps (in use, free in
    them, large blocks mapped apart), pymalloc's arenas (spanned, in use), SQLite's own
    and what tracemalloc traced; then, when traced, the call sites that grew most."""
    paths = [Path(f"{prefix}.{n}.json") for n in range(len(rss))]
    deadline = time.monotonic() + 300  # a snapshot of a large heap takes a while
    while not all(path.exists() for path in paths) and time.monotonic() < deadline:
        time.sleep(1)
    written = [path for path in paths if path.exists()]
    print(f"  memory, MB ({len(written)} of {len(paths)} accounts written):")
    names = (
        "malloc_in_use", "malloc_free", "malloc_mapped", "pymalloc", "pymalloc_in_use",
        "sqlite", "traced",
    )  # fmt: skip
    print(f"    {'':<16} {'RSS':>7}" + "".join(f" {name:>15}" for name in names))
    for path, resident in zip(written, rss, strict=False):
        figures = json.loads(path.read_text())
        cells = "".join(
            f" {figures[name] / 2**20:>15.1f}" if name in figures else f" {'-':>15}"
            for name in names
        )
        print(f"    {path.stem:<16} {resident:>7.1f}{cells}")
    snaps = [path.with_suffix(".snap") for path in written if path.with_suffix(".snap").exists()]
    if len(snaps) < 2:
        return
    first = tracemalloc.Snapshot.load(str(snaps[0]))
    last = tracemalloc.Snapshot.load(str(snaps[-1]))
    print("  the call sites that grew most, first snapshot to last:")
    for stat in last.compare_to(first, "traceback")[:TOP_SITES]:
        print(
            f"    {stat.size_diff / 2**10:+9.1f} KiB  {stat.count_diff:+7d} blocks"
            f"  now {stat.size / 2**10:9.1f} KiB"
        )
        for line in stat.traceback.format():
            print(f"        {line}")


async def claimed_through(load: Load, task: str, last: datetime, wait: float = 120) -> None:
    """Until the scheduler has recorded a fire of ``task`` after ``last`` (at most
    ``wait`` s): a daemon behind its schedule claims the window's last seconds late,
    and a fire read back before its claim would look lost."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        page = await load.get_json("account", f"/api/tasks/{task}/runs?limit=1")
        newest = page["runs"][0]["scheduled_for"] if page and page["runs"] else None
        if newest and z(newest) > last:
            return
        await asyncio.sleep(1)
    print(f"  {task} had no fire after {iso(last)} recorded within {wait:g} s", flush=True)


async def account(
    load: Load, tasks: int, first: datetime, last: datetime
) -> tuple[int, int, Counter[str], list[str]]:
    """Every fire of [first, last] of each per-second task, looked up over the API:
    (expected, recorded, recorded by end reason, examples of fires not found).  The
    start lateness of each scheduled run read is kept in ``load.lateness``."""
    seconds = int((last - first).total_seconds()) + 1
    expected = tasks * seconds
    recorded = 0
    reasons: Counter[str] = Counter()
    lost: list[str] = []
    since = iso(first - timedelta(seconds=5))
    for i in range(tasks):
        name = f"t{i:02d}"
        fires: dict[datetime, str] = {}
        cursor = ""
        while True:
            page = await load.get_json(
                "account", f"/api/tasks/{name}/runs?start_date={since}&limit=1000{cursor}"
            )
            if page is None:
                break
            for run in page["runs"]:
                if run["scheduled_for"] and run["attempt"] == 1:
                    fired = z(run["scheduled_for"])
                    fires[fired] = run["end_reason"] or run["status"]
                    kept = run["triggered_by"] == "schedule" and first <= fired <= last
                    if run["start_at"] and kept:
                        late = (z(run["start_at"]) - fired).total_seconds() * 1000
                        load.lateness.append((fired.timestamp(), late))
            if not page["has_next"]:
                break
            cursor = f"&cursor={page['next_cursor']}"
        for s in range(seconds):
            fire = first + timedelta(seconds=s)
            if fire in fires:
                recorded += 1
                reasons[fires[fire]] += 1
            elif len(lost) < 10:
                lost.append(f"{name} {iso(fire)}")
    return expected, recorded, reasons, lost


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 2:
        return float("nan")
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    num = sum((t - mean_t) * (v - mean_v) for t, v in points)
    den = sum((t - mean_t) ** 2 for t, _ in points)
    return num / den * 3600 if den else float("nan")


def flat(values: list[float]) -> bool:
    """No growth: the last third's mean within 10% (or 3) of the first third's."""
    third = max(1, len(values) // 3)
    first, last = statistics.fmean(values[:third]), statistics.fmean(values[-third:])
    return last <= first * 1.1 + 3


def report(
    args: argparse.Namespace,
    sampler: Sampler,
    load: Load,
    window: tuple[datetime, datetime],
    accounted: tuple[int, int, Counter[str], list[str]],
) -> bool:
    """Prints the figures beside their targets; True when every target is met."""
    rows = sampler.rows
    warm = [r for r in rows if r["t_s"] >= args.warmup * 60] or rows
    rss = [(r["t_s"], r["rss_mb"] + r["keeper_rss_mb"]) for r in warm]
    slope = slope_per_hour(rss)
    met = {"rss": slope < 1.0}
    print(
        f"\nsoak: {args.minutes:g} min, {args.tasks} per-second tasks, {args.triggers:g} "
        f"triggers/s, history {args.history:,}; {len(rows)} samples, warm-up {args.warmup:g} min"
    )
    print(
        f"  RSS (daemon + keeper) after warm-up: {rss[0][1]:.1f} -> {rss[-1][1]:.1f} MB, "
        f"slope {slope:+.2f} MB/h  target < 1 MB/h: {'met' if met['rss'] else 'MISSED'}"
    )
    print(f"  {'':<14} {'first':>7} {'last':>7} {'min':>7} {'max':>7} {'slope/h':>8}  flat")
    for column in ("fds", "threads", "asyncio_tasks", "wal_mb"):
        values = [r[column] for r in warm]
        ok = flat(values)
        if column != "wal_mb":
            met[column] = ok
        s = slope_per_hour([(r["t_s"], r[column]) for r in warm])
        print(
            f"  {column:<14} {values[0]:>7.0f} {values[-1]:>7.0f} {min(values):>7.0f} "
            f"{max(values):>7.0f} {s:>+8.1f}  {'yes' if ok else 'NO'}"
        )
    met["lateness"] = lateness_report(load.lateness, window[0])
    errors = load.server_errors
    met["5xx"] = errors == 0
    print(f"  5xx answers: {errors}  target 0: {'met' if met['5xx'] else 'MISSED'}")
    print(f"  answers by kind and status: {dict(sorted(load.statuses.items()))}")
    if load.errors:
        print(f"  client errors: {dict(load.errors)}")
    print(f"  done: {dict(sorted(load.done.items()))}")
    expected, recorded, reasons, lost = accounted
    met["fires"] = expected == recorded
    print(
        f"  fires {iso(window[0])} .. {iso(window[1])}: expected {expected:,}, recorded "
        f"{recorded:,} {dict(reasons)}"
    )
    print(f"  every fire accounted for: {'yes' if met['fires'] else 'NO: ' + ', '.join(lost)}")
    missed = [name for name, ok in met.items() if not ok]
    print(f"  targets: {'all met' if not missed else 'MISSED ' + ', '.join(missed)}")
    return not missed


def lateness_report(samples: list[tuple[float, float]], first: datetime) -> bool:
    """The start lateness p99 of each 5 minutes beside the first 5's (within 20%)."""
    buckets: dict[int, list[float]] = {}
    start = first.timestamp()
    for fired, late in samples:
        buckets.setdefault(int((fired - start) // 300), []).append(late)
    if not buckets:
        print("  lateness: no scheduled run read")
        return False
    base = p99(buckets[min(buckets)])
    ok = True
    print(f"  start lateness p99 by 5 minutes (first {base:.1f} ms; target within 20%):")
    for number in sorted(buckets):
        value, count = p99(buckets[number]), len(buckets[number])
        within = value <= base * 1.2
        ok = ok and (within or count < 1000)  # a last sliver of a window says little
        print(
            f"    min {number * 5:>3}-{number * 5 + 5:<3} p99 {value:7.1f} ms  "
            f"ratio {value / base:5.2f}  ({count:,} runs){'' if within else '  OVER'}"
        )
    return ok


def write_outputs(rows: list[dict[str, float]], out: Path) -> None:
    with open(out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["t_s"] / 60 for r in rows]
    panels = [
        ("RSS MB (daemon + keeper)", [r["rss_mb"] + r["keeper_rss_mb"] for r in rows]),
        ("open fds", [r["fds"] for r in rows]),
        ("threads", [r["threads"] for r in rows]),
        ("asyncio tasks", [r["asyncio_tasks"] for r in rows]),
        ("WAL MB", [r["wal_mb"] for r in rows]),
        ("start lateness p99 ms (a sample's)", [r["lateness_p99_ms"] for r in rows]),
    ]
    figure, axes = plt.subplots(3, 2, figsize=(9, 7), sharex=True)
    for axis, (title, values) in zip(axes.flat, panels, strict=True):
        axis.plot(minutes, values, linewidth=1)
        axis.set_title(title, fontsize=9)
        axis.tick_params(labelsize=8)
        axis.set_ylim(bottom=0)
    for axis in axes[-1]:
        axis.set_xlabel("minutes", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "soak.png", dpi=70)
    plt.close(figure)


def history(runs: int, kept: Path, data: Path) -> None:
    """``runs`` ended runs in ``data``'s database: seeded there, or in ``kept`` once
    (seeding a million takes minutes) and copied from it for each soak."""
    kept.mkdir(mode=0o700, parents=True, exist_ok=True)
    have = asyncio.run(seeded_runs(f"sqlite+aiosqlite:///{kept / 'cronwarden.db'}"))
    if have == 0:
        database = f"sqlite+aiosqlite:///{kept / 'cronwarden.db'}"
        # Through the store's own insert up to STORE_SEED runs, then copies of them
        # (run_pages.py's extend_by_copies): a million through the store took 13 min.
        took = asyncio.run(seed(database, min(runs, STORE_SEED)))
        if runs > STORE_SEED:
            took += asyncio.run(extend_by_copies(database, STORE_SEED, STORE_SEED, runs))
        print(f"soak: {runs:,} runs of history seeded in {took:.0f} s", flush=True)
    elif have != runs:
        raise SystemExit(f"{kept} holds {have:,} runs, not --history {runs:,}")
    if kept != data:
        for name in ("cronwarden.db", "cronwarden.db-wal"):
            if (kept / name).exists():
                shutil.copy2(kept / name, data / name)
        print(f"soak: the {runs:,} runs of history seeded in {kept} before, copied", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--history", type=int, default=1_000_000, help="runs seeded first")
    parser.add_argument("--warmup", type=float, default=5, help="minutes left out of the slopes")
    parser.add_argument("--tasks", type=int, default=200, help="per-second tasks (>= 20)")
    parser.add_argument("--triggers", type=float, default=20, help="API triggers a second")
    parser.add_argument(
        "--sample-every", type=float, default=SAMPLE_EVERY, help="seconds between samples"
    )
    parser.add_argument(
        "--data", type=Path, help="seed the history here once; each soak prunes a copy of it"
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="where soak.csv/png go")
    parser.add_argument(
        "--trace-memory",
        type=int,
        metavar="FRAMES",
        help="account for the daemon's memory every 5 minutes (malloc, SQLite); with"
        " FRAMES > 0 also under tracemalloc, reporting the call sites that grew (slower)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cw-soak-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir(mode=0o700)
        if args.history:
            history(args.history, args.data.resolve() if args.data else data, data)
        port = free_port()
        config = work / "soak.toml"

        def text(reloads: int) -> str:
            return config_text(port, data, args.tasks, reloads)

        config.write_text(text(0))
        try:
            traces = args.out / "soak-memory" if args.trace_memory is not None else None
            for stale in args.out.glob("soak-memory.*"):
                stale.unlink()
            memory = None if traces is None else (traces, args.trace_memory)
            with running_daemon(work, config, trace_memory=memory) as (base, daemon):
                print(f"soak: daemon {daemon.pid} at {base}, {args.minutes:g} min", flush=True)
                sampler, load, window, accounted = asyncio.run(
                    soak(args, base, config, text, data, daemon.pid)
                )
                write_outputs(sampler.rows, args.out)
                print(f"soak: samples in {args.out / 'soak.csv'}, plot {args.out / 'soak.png'}")
                report(args, sampler, load, window, accounted)
                if traces is not None:
                    memory_report(traces, sampler.snapshot_rss)
                shutil.copy2(work / "daemon.log", args.out / "soak-daemon.log")
                began_stop = time.monotonic()
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
            print("  the daemon did not exit within 60 s of SIGTERM: killed")
        else:
            print(f"  the daemon exited {time.monotonic() - began_stop:.1f} s after SIGTERM")


if __name__ == "__main__":
    main()
