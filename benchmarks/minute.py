"""A 10,000-task minute: every task due at one minute's boundary, beside raw spawning.

    python benchmarks/minute.py [--tasks 10000] [--passes raw,every,spread] [--minutes 1]
    python benchmarks/minute.py --passes raw,apscheduler      (make bench-peers)
    python benchmarks/minute.py --tasks 200 --soon --passes raw,every   (a quick check)

Passes, one after the other in the same run (``--passes``):

* **raw**, the baseline: ``--tasks`` ``/bin/true`` started by
  ``asyncio.create_subprocess_exec`` with stdout and stderr pipes (as burst.py), all at
  once but at most ``--raw-in-flight`` (4,000) alive at a time: 10,000 at once need
  more than the 20,000 descriptors this machine allows (root here may not raise it).
  The seconds until the last one was started and until the last one was reaped.
  Beside it the floor: ``os.posix_spawn`` of the same processes one after the other,
  no pipes (reaped afterwards).  The raw spawn is measured again right before each
  daemon pass, and that pass's ratio is against it.
* **every**: a daemon with ``--tasks`` tasks on ``* * * * *`` running ``/bin/true``.
  From the minute's boundary (the fire's ``scheduled_for``) until the last run started
  (``start_at``) and until the last run ended (``end_at``), read from the run rows
  (the SQLite file, read-only) once all have ended or ``--wait`` has passed; every run
  must be recorded, once (rows = tasks for each minute, all ended as success, none
  missed).  The daemon waits for a real minute boundary at least 12 s after its
  start; its clock is not touched.
* **spread**: the same tasks on ``H * * * * *``: each task at its own hashed second of
  every minute (Jenkins' H), so the minute holds the same 10,000 runs spread over its
  60 s.  (``H * * * *`` hashes the minute of the hour instead: 10,000 tasks make ~167
  runs a minute, an hourly load, not this one.)  Per run: start lateness after its own
  ``scheduled_for``; rows = tasks in the minute.
* **apscheduler**, a peer: bare APScheduler 3 (AsyncIOScheduler, its default
  misfire_grace_time of 1 s), ``--tasks`` CronTrigger jobs on ``* * * * *``, each
  spawning ``/bin/true`` as the raw side does.  How many it ran and how many it marked
  missed (EVENT_JOB_MISSED: nothing else says so, its warnings go to a logger).

During each daemon pass ``/health`` is polled ``--health-rate`` times a second (one
keep-alive connection, from 3 s before the minute to the last run's end) and its p99
latency printed.  Targets (issue 30): the daemon's all-started time <= 1.25x raw's,
every run recorded, ``/health`` p99 < 100 ms.  Debian's cron on the same 10,000 lines is
``cron_peer.py --tasks 10000`` (as root; ``make bench-peers``).

``--profile DIR`` runs the daemon under cProfile from 3 s before the minute until its
runs have ended (``_profiled.py``; SIGUSR1 starts, SIGUSR2 writes DIR/<pass>.prof).
``--stalls`` runs it under ``_stalls_timed.py`` and prints what blocked its event loop
in that same window: the full garbage collections, and the loop's steps over 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _daemon import free_port, profiled, running_daemon
from sustained import daemon_cpu, own_cpu

COMMAND = ["/bin/true"]
SCHEDULES = {"every": "* * * * *", "spread": "H * * * * *"}
MARGIN = 12.0  # s between the daemon's READY (or the peer's last job) and its minute
SOON = 10.0  # s from a --soon pass's config to its fire (the daemon starts meanwhile)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def next_boundary(margin: float, soon: bool) -> float:
    """The Unix time of the next minute at least ``margin`` s away; with ``soon``, the
    whole second ``margin`` s away (the tasks then fire at that second of each minute)."""
    now = time.time()
    if soon:
        return float(int(now + margin) + 1)
    start = (int(now) // 60 + 1) * 60
    return float(start if start - now >= margin else start + 60)


def soon_schedule(margin: float) -> str:
    """A --soon pass's schedule: the second ``margin`` s from now, in every minute."""
    return f"{int(next_boundary(margin, soon=True)) % 60} * * * * *"


def next_soon_fire(schedule: str) -> float:
    """The next fire of a ``soon_schedule`` from now: its second's next turn (a daemon
    that started slower than the margin waits for the next minute's)."""
    second = int(schedule.split()[0])
    boundary = next_boundary(0, soon=True)
    while int(boundary) % 60 != second:
        boundary += 1
    return boundary


def wait_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.5))


# --- the baseline -------------------------------------------------------------------


async def raw_asyncio(count: int, in_flight: int) -> dict[str, float]:
    """Seconds from the start until the last process started, and was reaped; at most
    ``in_flight`` started and not yet reaped at once (each holds its two pipes and, with
    3.11's child watcher, a thread; 10,000 at once pass a 20,000 descriptor limit)."""
    started: list[float] = []
    ended: list[float] = []
    room = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with room:
            proc = await asyncio.create_subprocess_exec(
                *COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            started.append(time.perf_counter())
            await proc.communicate()
            ended.append(time.perf_counter())

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return {"all_started": max(started) - began, "all_ended": max(ended) - began}


def raw_posix_spawn(count: int) -> float:
    """Seconds to posix_spawn ``count`` processes one after the other (no pipes)."""
    began = time.perf_counter()
    pids = [os.posix_spawn(COMMAND[0], COMMAND, os.environ) for _ in range(count)]
    took = time.perf_counter() - began
    for pid in pids:
        os.waitpid(pid, 0)
    return took


def raise_fd_limit(want: int) -> None:
    """As many descriptors as systemd/cronwarden.service gives the daemon (LimitNOFILE,
    65,536), which inherits them; else the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def raw_pass(count: int, in_flight: int) -> dict[str, float]:
    before = own_cpu()
    figures = asyncio.run(raw_asyncio(count, in_flight))
    figures["cpu_ms"] = (own_cpu() - before) * 1000 / count
    figures["posix_spawn"] = raw_posix_spawn(count)
    return figures


# --- /health meanwhile ---------------------------------------------------------------


class HealthPoller(threading.Thread):
    """GET /health ``rate`` times a second on one keep-alive connection; latencies."""

    def __init__(self, base: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.address = urlsplit(base).netloc
        self.period = 1 / rate
        self.latencies: list[float] = []
        self.failures = 0
        self.done = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.address, timeout=30)
        next_at = time.monotonic()
        while not self.done.is_set():
            began = time.perf_counter()
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.address, timeout=30)
                ok = False
            self.latencies.append((time.perf_counter() - began) * 1000)
            self.failures += not ok
            next_at = max(next_at + self.period, time.monotonic())
            self.done.wait(next_at - time.monotonic())
        conn.close()

    def summary(self) -> dict[str, float]:
        values = self.latencies or [float("nan")]
        return {
            "n": len(self.latencies),
            "p50": statistics.median(values),
            "p99": pct(values, 0.99),
            "max": max(values),
            "failed": self.failures,
        }


# --- the daemon ------------------------------------------------------------------------


def write_config(workdir: Path, count: int, schedule: str) -> Path:
    lines = [
        "[daemon]",
        f'listen = "127.0.0.1:{free_port()}"',
        f'data_dir = "{workdir / "data"}"',
        "",
    ]
    for i in range(count):
        lines += [
            f"[tasks.t{i:05d}]",
            f"command = {json.dumps(COMMAND)}",
            f'schedule = "{schedule}"',
            'catch_up = "skip"',
            "",
        ]
    path = workdir / "minute.toml"
    path.write_text("\n".join(lines))
    return path


def sqlite_text(moment: float) -> str:
    """An instant as the SQLite store keeps it (naive UTC ISO text)."""
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None).isoformat(sep=" ")


def wait_all_ended(db: Path, first: float, last: float, count: int, deadline: float) -> None:
    """Until ``count`` runs scheduled in [first, last) have ended, or ``deadline``: read
    from the SQLite file itself (read-only), so the waiting costs the daemon nothing."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        while time.time() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM runs WHERE status = 'ended' AND scheduled_for >= ? "
                "AND scheduled_for < ?",
                (sqlite_text(first), sqlite_text(last)),
            ).fetchone()
            if row[0] >= count:
                return
            time.sleep(0.5)
    finally:
        conn.close()


def run_rows(db: Path, first: float, last: float) -> list[dict[str, Any]]:
    """The run rows scheduled in [first, last), times as Unix seconds.  Read from the
    file, not paged through the API: a daemon left behind by its minute answers a
    10,000-row listing slowly, and the figures would wait for it."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT task_name, status, end_reason, scheduled_for, start_at, end_at FROM runs "
            "WHERE scheduled_for >= ? AND scheduled_for < ?",
            (sqlite_text(first), sqlite_text(last)),
        ).fetchall()
    finally:
        conn.close()
    runs = []
    for row in rows:
        run = dict(row)
        for key in ("scheduled_for", "start_at", "end_at"):
            if run[key] is not None:
                run[key] = datetime.fromisoformat(run[key]).replace(tzinfo=UTC).timestamp()
        runs.append(run)
    return runs


def ended_between(db: Path, start: float, end: float) -> int:
    """Runs of any minute whose end was recorded in [start, end): what the daemon's CPU
    over the pass went to (a daemon behind its minutes ends earlier minutes' runs too)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE end_at >= ? AND end_at < ?",
            (sqlite_text(start), sqlite_text(end)),
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def stop(proc: Any) -> None:
    """SIGTERM, and SIGKILL if it is not gone within two minutes (a daemon with tens of
    thousands of due runs still waiting takes its time to record them stopped)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def daemon_pass(workdir: Path, args: argparse.Namespace, name: str) -> dict[str, Any]:
    schedule = SCHEDULES[name]
    if args.soon:  # at one second of each minute, a few seconds away: no wait
        schedule = soon_schedule(SOON)
    config = write_config(workdir, args.tasks, schedule)
    profile = args.profile / f"{name}.prof" if args.profile else None
    stalls_log = workdir / f"{name}.stalls.jsonl" if args.stalls else None
    with running_daemon(workdir, config, profile=profile, stalls_log=stalls_log) as (base, proc):
        spread = name == "spread"
        boundary = next_soon_fire(schedule) if args.soon else next_boundary(MARGIN, soon=False)
        window = 60.0 if spread else 1.0
        last = boundary + 60 * (args.minutes - 1) + window
        poller = HealthPoller(base, args.health_rate)
        wait_until(boundary - 3)
        with profiled(proc, profile):
            cpu_before, cpu_from = daemon_cpu(proc.pid), time.time()
            poller.start()
            expected = args.tasks * args.minutes
            db = workdir / "data" / "cronwarden.db"
            wait_all_ended(db, boundary, last, expected, deadline=last + args.wait)
            time.sleep(0.5)
            cpu, cpu_until = daemon_cpu(proc.pid) - cpu_before, time.time()
            poller.done.set()
            poller.join()
        runs = run_rows(db, boundary, last)
        cpu_ms = cpu * 1000 / max(1, ended_between(db, cpu_from, cpu_until))
        stop(proc)
    got = {"boundary": boundary, "runs": runs, "health": poller.summary(), "cpu_ms": cpu_ms}
    if stalls_log is not None:
        got["stalls"] = stalls(stalls_log, cpu_from, cpu_until)
    return got


def stalls(log: Path, start: float, end: float) -> list[dict[str, Any]]:
    """The full collections and long loop steps that ended in [start, end]."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [s for s in map(json.loads, lines) if start <= s["at"] <= end]


def minute_figures(runs: list[dict[str, Any]], first: float, width: float) -> dict[str, Any]:
    """The figures of the runs scheduled in [first, first + width)."""
    mine = [r for r in runs if first <= r["scheduled_for"] < first + width]
    started = [r for r in mine if r["start_at"] is not None]
    starts = [r["start_at"] - first for r in started]
    late = [(r["start_at"] - r["scheduled_for"]) * 1000 for r in started]
    ends = [r["end_at"] - first for r in mine if r["end_at"] is not None]
    fires = Counter((r["task_name"], r["scheduled_for"]) for r in mine)
    nan = float("nan")
    return {
        "rows": len(mine),
        "tasks": len({r["task_name"] for r in mine}),
        "twice": sum(n > 1 for n in fires.values()),
        "reasons": Counter(r["end_reason"] or r["status"] for r in mine),
        "first_start": min(starts, default=nan),
        "all_started": max(starts, default=nan) if len(started) == len(mine) else nan,
        "all_ended": max(ends, default=nan) if len(ends) == len(mine) else nan,
        "late_p50": statistics.median(late) if late else nan,
        "late_p99": pct(late, 0.99) if late else nan,
        "late_max": max(late, default=nan),
    }


# --- the APScheduler peer ---------------------------------------------------------------


async def apscheduler_minute(count: int) -> dict[str, Any]:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)  # counted by events
    started: list[float] = []
    ended: list[float] = []
    events: Counter[int] = Counter()

    async def job() -> None:
        proc = await asyncio.create_subprocess_exec(
            *COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        started.append(time.time())
        await proc.communicate()
        ended.append(time.time())

    scheduler = AsyncIOScheduler(timezone=UTC)
    accounted = asyncio.Event()

    def heard(event: Any) -> None:
        events.update([event.code])
        if sum(events.values()) >= count:
            accounted.set()

    scheduler.add_listener(heard, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    for i in range(count):
        trigger = CronTrigger.from_crontab("* * * * *", timezone=UTC)
        scheduler.add_job(job, trigger, id=f"t{i:05d}")
    boundary = next_boundary(MARGIN, soon=False)
    await asyncio.sleep(max(0.0, boundary - 59 - time.time()))  # its first fire: boundary
    wait_from = time.time()
    scheduler.start()
    with contextlib.suppress(TimeoutError):  # the next minute's fires are not this one's
        await asyncio.wait_for(accounted.wait(), boundary + 55 - time.time())
    scheduler.shutdown(wait=False)
    return {
        "boundary": boundary,
        "waited": boundary - wait_from,
        "ran": events[EVENT_JOB_EXECUTED],
        "missed": events[EVENT_JOB_MISSED],
        "errors": events[EVENT_JOB_ERROR],
        "started": len(started),
        "all_started": max(started, default=float("nan")) - boundary,
        "all_ended": max(ended, default=float("nan")) - boundary,
    }


# --- the run ------------------------------------------------------------------------------


def print_raw(raw: dict[str, float], count: int, in_flight: int) -> None:
    print(
        f"  raw: asyncio create_subprocess_exec with pipes, {count} (at most {in_flight} "
        "at once): all started "
        f"{raw['all_started']:.3f} s, all reaped {raw['all_ended']:.3f} s; "
        f"posix_spawn one by one, no pipes: {raw['posix_spawn']:.3f} s; "
        f"CPU {raw['cpu_ms']:.2f} ms a process (this process and its reaped children)"
    )


def print_daemon(name: str, got: dict[str, Any], raw: dict[str, float], args: Any) -> bool:
    spread = name == "spread"
    health = got["health"]
    met = True
    print(
        f"  cronwarden, {args.tasks} tasks on {SCHEDULES[name]!r}"
        + (" (at one second: --soon)" if args.soon else "")
    )
    print(
        f"    {'minute':>6} {'rows':>6} {'tasks':>6} {'success':>7} {'other':>14} "
        f"{'first s':>8} {'all started s':>13} {'all ended s':>11} "
        f"{'late p50/p99/max ms':>21} {'started/raw':>11}"
    )
    for m in range(args.minutes):
        f = minute_figures(got["runs"], got["boundary"] + 60 * m, 60.0 if spread else 1.0)
        other = {k: v for k, v in f["reasons"].items() if k != "success"}
        ratio = f["all_started"] / raw["all_started"]
        recorded = f["rows"] == f["tasks"] == args.tasks and not f["twice"] and not other
        met = met and recorded and (spread or ratio <= 1.25)
        print(
            f"    {m + 1:>6} {f['rows']:>6} {f['tasks']:>6} {f['reasons']['success']:>7} "
            f"{json.dumps(other) if other else '-':>14} {f['first_start']:>8.3f} "
            f"{f['all_started']:>13.3f} {f['all_ended']:>11.3f} "
            f"{f['late_p50']:>6.0f}/{f['late_p99']:>6.0f}/{f['late_max']:>6.0f} "
            f"{'-' if spread else f'{ratio:.2f}':>11}"
        )
    print(
        f"    /health meanwhile: {health['n']} requests, p50 {health['p50']:.1f} ms, "
        f"p99 {health['p99']:.1f} ms, max {health['max']:.1f} ms, "
        f"{health['failed']} failed (target p99 < 100 ms: "
        f"{'met' if health['p99'] < 100 and not health['failed'] else 'MISSED'})"
    )
    print(
        f"    daemon CPU {got['cpu_ms']:.2f} ms a run (its own, its reaped children's, its "
        f"keeper's, over the pass, by the runs it ended meanwhile), "
        f"{got['cpu_ms'] / raw['cpu_ms']:.2f}x raw's a process"
    )
    if "stalls" in got:
        print_stalls(got["stalls"])
    return met and health["p99"] < 100


def print_stalls(found: list[dict[str, Any]]) -> None:
    full = [s["ms"] for s in found if s["kind"] == "gc"]
    print(
        f"    full garbage collections meanwhile: {len(full)}, longest "
        f"{max(full, default=0):.1f} ms, {sum(full):.1f} ms in all (the loop blocked)"
    )
    steps = sorted((s for s in found if s["kind"] == "step"), key=lambda s: -s["ms"])
    print(
        f"    loop steps over 20 ms meanwhile: {len(steps)}, "
        f"{sum(s['ms'] for s in steps):.1f} ms in all (a collection inside one is in it)"
    )
    for step in steps[:8]:
        print(f"      {step['ms']:7.1f} ms  {step['what']}")


def print_peer(got: dict[str, Any], raw: dict[str, float], count: int) -> None:
    print(
        f"  bare APScheduler 3 (AsyncIOScheduler, misfire_grace_time 1 s), {count} "
        f"CronTrigger jobs on '* * * * *': ran {got['ran']}, marked missed "
        f"{got['missed']}, errors {got['errors']}; processes started {got['started']}, "
        f"the last {got['all_started']:.3f} s after the minute "
        f"({got['all_started'] / raw['all_started']:.2f}x raw), ended {got['all_ended']:.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument(
        "--passes",
        default="raw,every,spread",
        help="comma-separated: raw, every, spread, apscheduler",
    )
    parser.add_argument("--minutes", type=int, default=1, help="minutes measured a pass")
    parser.add_argument(
        "--raw-in-flight",
        type=int,
        default=4000,
        help="the baseline's processes started and not yet reaped, at most",
    )
    parser.add_argument("--health-rate", type=float, default=20, help="/health polls a second")
    parser.add_argument(
        "--soon",
        action="store_true",
        help="tasks fire at a second a few seconds away, not at a minute's "
        "boundary (a quick check of the script; 'every' only)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=300,
        help="seconds past the measured minute to wait for its runs to end, at most",
    )
    parser.add_argument("--keep", type=Path, help="keep each daemon's files in this directory")
    parser.add_argument("--profile", type=Path, help="cProfile each daemon's minute into DIR")
    parser.add_argument(
        "--stalls",
        action="store_true",
        help="time the daemon's full garbage collections and its loop steps over 20 ms",
    )
    args = parser.parse_args()
    passes = args.passes.split(",")
    if unknown := set(passes) - {"raw", "every", "spread", "apscheduler"}:
        raise SystemExit(f"unknown passes: {', '.join(sorted(unknown))}")
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    raise_fd_limit(65536)
    fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    load = os.getloadavg()
    print(
        f"a {args.tasks}-task minute, {os.cpu_count()} cores, {fds} fds, load {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}, python {sys.version.split()[0]}"
    )
    all_met = True
    for i, name in enumerate(passes):
        if name == "raw" or i == 0 or passes[i - 1] != "raw":  # right before each pass
            raw = raw_pass(args.tasks, args.raw_in_flight)
            print_raw(raw, args.tasks, args.raw_in_flight)
        if name == "raw":
            continue
        if name == "apscheduler":
            print_peer(asyncio.run(apscheduler_minute(args.tasks)), raw, args.tasks)
            continue
        if args.keep:
            workdir = args.keep / name
            workdir.mkdir(parents=True, exist_ok=True)
            got = daemon_pass(workdir, args, name)
        else:
            with tempfile.TemporaryDirectory(prefix="cw-minute-") as tmp:
                got = daemon_pass(Path(tmp), args, name)
        all_met = print_daemon(name, got, raw, args) and all_met
    load = os.getloadavg()
    print(
        f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; targets "
        f"{'met' if all_met else 'MISSED'} (all started <= 1.25x raw, every run "
        "recorded once as success, /health p99 < 100 ms)"
    )


if __name__ == "__main__":
    main()
