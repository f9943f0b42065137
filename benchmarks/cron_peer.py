"""Debian's cron as a peer: the same minute burst and the same start lateness.

    sudo python benchmarks/cron_peer.py [--tasks 1000] [--wait 50]      (make bench-peers)

Needs root (cron runs /etc/cron.d files); installs Debian's ``cron`` package when it is
missing.  Cron's resolution is a minute, so both schedulers are measured on minute
fires, one after the other in the same run:

1. cron: ``--tasks`` lines due at the same minute, each running ``date +%s.%N``
   appended to a file, plus one line per minute for lateness;
2. cronwarden: the same lines as tasks (``import-crontab`` of the same file), the next
   minute.

Printed per scheduler: when the first and the last process of the burst read the clock
(seconds after the minute), and the lateness of the single task.  Cron records nothing
durably; cronwarden commits every run before its process starts.  Each scheduler has
``--wait`` seconds after the minute to start the burst (``--tasks 10000``: more than
the default 50 on a busy machine); what ran by then is counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _daemon import free_port, running_daemon

CRON_FILE = Path("/etc/cron.d/cronwarden-bench")


def ensure_cron() -> str:
    found = shutil.which("cron")
    if found is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "cron"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("cron")
    if found is None:
        raise SystemExit("cron is not installed and could not be installed")
    return found


def next_minute(margin: float) -> float:
    """The Unix time of the next minute at least ``margin`` seconds away."""
    now = time.time()
    start = (int(now) // 60 + 1) * 60
    return start if start - now >= margin else start + 60


def crontab(out: Path, minute: int, hour: int, tasks: int) -> str:
    lines = ['MAILTO=""', "SHELL=/bin/sh"]
    stamp = r"date +\%s.\%N"  # % is cron's newline: escaped
    lines += [f"{minute} {hour} * * * root {stamp} >> {out}/burst" for _ in range(tasks)]
    lines.append(f"* * * * * root {stamp} >> {out}/single")
    return "\n".join(lines) + "\n"


def wait_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 1.0))


def figures(out: Path, minute_at: float) -> dict[str, float]:
    burst = sorted(float(x) - minute_at for x in (out / "burst").read_text().split())
    singles = [float(x) for x in (out / "single").read_text().split()]
    late = [(t - (int(t) // 60) * 60) * 1000 for t in singles]
    return {"n": len(burst), "first": burst[0], "last": burst[-1], "single_ms": min(late)}


def run_cron(cron: str, out: Path, tasks: int, wait: float) -> dict[str, float]:
    at = next_minute(margin=15)
    local = time.localtime(at)  # cron reads the host's zone
    CRON_FILE.write_text(crontab(out, local.tm_min, local.tm_hour, tasks))
    CRON_FILE.chmod(0o644)
    daemon = subprocess.Popen([cron, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(at + 8)
        deadline = time.time() + wait
        while len((out / "burst").read_text().split()) < tasks and time.time() < deadline:
            time.sleep(0.5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        CRON_FILE.unlink(missing_ok=True)
    return figures(out, at)


def run_cronwarden(work: Path, out: Path, tasks: int, wait: float) -> dict[str, float]:
    at = next_minute(margin=25)  # start-up with the tasks comes first
    local = time.localtime(at)
    source = work / "bench.crontab"
    source.write_text(crontab(out, local.tm_min, local.tm_hour, tasks))
    converted = subprocess.run(
        [sys.executable, "-m", "cronwarden", "import-crontab", "--system", str(source)],
        capture_output=True,
        text=True,
    )
    config = work / "bench.toml"
    config.write_text(
        f'[daemon]\nlisten = "127.0.0.1:{free_port()}"\ndata_dir = "{work / "data"}"\n'
        + converted.stdout
    )
    with running_daemon(work, config):
        wait_until(at + 8)
        deadline = time.time() + wait
        while len((out / "burst").read_text().split()) < tasks and time.time() < deadline:
            time.sleep(0.5)
    return figures(out, at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=50, help="seconds for the burst to start")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("cron_peer.py needs root (it installs and runs cron)")
    cron = ensure_cron()
    results = {}
    with tempfile.TemporaryDirectory(prefix="cw-peer-") as tmp:
        work = Path(tmp)
        for name in ("cron", "cronwarden"):
            out = work / name
            out.mkdir()
            for file in ("burst", "single"):
                (out / file).write_text("")
            out.chmod(0o777)
            if name == "cron":
                results[name] = run_cron(cron, out, args.tasks, args.wait)
            else:
                results[name] = run_cronwarden(work, out, args.tasks, args.wait)
    print(f"minute fires: {args.tasks} jobs due at one minute, and one job every minute")
    header = ("scheduler", "ran", "first start s", "last start s", "single late ms")
    print("  {:<12} {:>5} {:>14} {:>13} {:>15}".format(*header))
    for name, r in results.items():
        print(
            f"  {name:<12} {r['n']:>5.0f} {r['first']:>14.3f} {r['last']:>13.3f} "
            f"{r['single_ms']:>15.1f}"
        )
    print("cron records nothing; cronwarden commits each run before its process starts")


if __name__ == "__main__":
    main()
