"""Start-up and idle cost with many tasks: time to READY, RSS, idle CPU.

    python benchmarks/startup.py [--tasks 10000] [--idle 60] [--settle 10] [--daemon-python PATH]

The daemon gets N tasks with cron lines spread over the week (minute, hour and weekday
vary per task, none due during the measurement).  READY is read off a real
NOTIFY_SOCKET datagram, as systemd would, timed from the process start; the CPU the
daemon and the children it reaped (a migrating process) spent to get there is read
from /proc at READY, a figure a loaded machine does not stretch.  Then, after a
settling pause for the start-up chores (first retention pass, last successes), RSS
and CPU are sampled from /proc over the idle window.  The daemon is then started again
on the same data directory: a restart finds the schema current and never loads the
migration tool, which is how a daemon usually starts; its READY and RSS are printed too.

``--daemon-python`` runs the daemon with another interpreter: ``make bench`` gives it a
virtualenv holding only what ``pip install cronwarden`` installs.  The test tools pull
in packages the daemon does not need but imports when present (structlog loads rich,
and rich pygments, when they are installed: ~8 MB).

The baseline, measured in the same run: the bare stack (python importing aiohttp,
SQLAlchemy, APScheduler 3 and croniter) serving one aiohttp endpoint with the same N
cron jobs in an AsyncIOScheduler; its time to listening, RSS and idle CPU.  Ratios are
daemon / baseline (lower is better).  Targets (DESIGN.md): READY <= 2 s, RSS <= 100 MB,
idle CPU ~0, with 10,000 tasks; with 100,000 or more (issue 30): READY <= 10 s, RSS <=
250 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _daemon import free_port, ready_daemon

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# After READY the daemon does its start-up chores (the first retention pass, reading
# last successes for /metrics); idle is measured after them.  With 100,000 tasks they
# took ~20 s on a loaded machine: --settle gives them longer.
SETTLE = 10.0


def cron_line(i: int) -> str:
    """Minute, hour and weekday spread over the week; never within the next hour."""
    hour = (time.gmtime().tm_hour + 2 + i % 20) % 24
    return f"{i % 60} {hour} * * {i % 7}"


def write_config(workdir: Path, port: int, count: int) -> Path:
    lines = [
        "[daemon]",
        f'listen = "127.0.0.1:{port}"',
        f'data_dir = "{workdir / "data"}"',
        "[defaults]",
        'timezone = "UTC"',
        "",
    ]
    for i in range(count):
        lines += [f"[tasks.t{i:05d}]", 'command = "true"', f'schedule = "{cron_line(i)}"', ""]
    path = workdir / "startup.toml"
    path.write_text("\n".join(lines))
    return path


BARE = textwrap.dedent(
    """
    import asyncio, sys
    from aiohttp import web
    import sqlalchemy, croniter  # what the daemon imports besides
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    async def main(port, lines):
        scheduler = AsyncIOScheduler(timezone="UTC")
        for i, line in enumerate(lines):
            scheduler.add_job(print, CronTrigger.from_crontab(line, timezone="UTC"), id=str(i))
        scheduler.start()
        app = web.Application()
        app.router.add_get("/health", lambda r: web.json_response({"status": "ok"}))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("READY", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(int(sys.argv[1]), sys.stdin.read().splitlines()))
    """
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def cpu_with_children(pid: int) -> float:
    """CPU seconds of the process and of the children it reaped (a migrating process):
    the work to READY, which a loaded machine stretches in time but not in CPU."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def idle(pid: int, seconds: float) -> dict[str, float]:
    before = cpu_seconds(pid)
    peak = rss_mb(pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1)
        peak = max(peak, rss_mb(pid))
    return {"rss_mb": peak, "idle_cpu_pct": (cpu_seconds(pid) - before) / seconds * 100}


def measure_daemon(
    python: str, workdir: Path, config: Path, idle_s: float | None, settle: float = SETTLE
) -> dict[str, float]:
    """READY and RSS; then, with an ``idle_s`` window, the settled RSS and idle CPU."""
    with ready_daemon(python, workdir, config) as (proc, ready):
        figures = {
            "ready_s": ready,
            "cpu_to_ready_s": cpu_with_children(proc.pid),
            "rss_at_ready_mb": rss_mb(proc.pid),
        }
        if idle_s is not None:
            time.sleep(settle)
            figures.update(idle(proc.pid, idle_s))
        keeper = keeper_of(proc.pid)
        figures["keeper_rss_mb"] = rss_mb(keeper) if keeper is not None else float("nan")
        return figures


def keeper_of(pid: int) -> int | None:
    """The daemon's keeper (cronwarden/keeper.py), a process of its own beside it."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"keeper.py" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    return None


def measure_bare(count: int, idle_s: float, settle: float = SETTLE) -> dict[str, float]:
    lines = "\n".join(cron_line(i) for i in range(count))
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE, str(free_port())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(lines)
        proc.stdin.close()
        if proc.stdout.readline().strip() != "READY":
            raise SystemExit("the bare stack did not start")
        figures = {
            "ready_s": time.monotonic() - began,
            "cpu_to_ready_s": cpu_with_children(proc.pid),
            "rss_at_ready_mb": rss_mb(proc.pid),
        }
        time.sleep(settle)
        figures.update(idle(proc.pid, idle_s))
        return figures
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=60, help="idle window, seconds")
    parser.add_argument(
        "--settle", type=float, default=SETTLE, help="seconds after READY before the idle window"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--daemon-python", default=sys.executable, help="the interpreter that runs the daemon"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-startup-") as tmp:
        bare = measure_bare(args.tasks, args.idle, args.settle)
        workdir = Path(tmp)
        config = write_config(workdir, free_port(), args.tasks)
        daemon = measure_daemon(args.daemon_python, workdir, config, args.idle, args.settle)
        again = measure_daemon(args.daemon_python, workdir, config, None)
        del again["keeper_rss_mb"]  # the same keeper, reported once
        daemon.update({f"restart_{key}": value for key, value in again.items()})
        bare.update({f"restart_{key}": bare[key] for key in again})
    # DESIGN.md's targets are for 10,000 tasks; issue 30's for ten times as many.
    ready, rss = (10.0, 250.0) if args.tasks >= 100_000 else (2.0, 100.0)
    rows = [
        ("time to READY (s)", "ready_s", ready),
        ("CPU to READY, with reaped children (s)", "cpu_to_ready_s", None),
        ("RSS at READY (MB)", "rss_at_ready_mb", rss),
        (f"RSS peak over {args.idle:g} s idle (MB)", "rss_mb", rss),
        ("idle CPU (%)", "idle_cpu_pct", None),
        ("restart: time to READY (s)", "restart_ready_s", ready),
        ("restart: CPU to READY (s)", "restart_cpu_to_ready_s", None),
        ("restart: RSS at READY (MB)", "restart_rss_at_ready_mb", rss),
    ]
    if args.json:
        print(json.dumps({"tasks": args.tasks, "bare": bare, "daemon": daemon}))
        return
    print(f"start-up and idle with {args.tasks} tasks, the daemon on {args.daemon_python}")
    print(f"  {'figure':<40} {'bare stack':>10} {'cronwarden':>10} {'ratio':>6}  target")
    for label, key, target in rows:
        ratio = daemon[key] / bare[key] if bare[key] else float("nan")
        goal = f"<= {target:g}" if target is not None else ("~0" if "idle" in key else "")
        met = "" if target is None else ("met" if daemon[key] <= target else "MISSED")
        print(f"  {label:<40} {bare[key]:>10.2f} {daemon[key]:>10.2f} {ratio:>6.2f}  {goal} {met}")
    print(f"  the keeper beside it (a process of its own): RSS {daemon['keeper_rss_mb']:.2f} MB")


if __name__ == "__main__":
    main()
