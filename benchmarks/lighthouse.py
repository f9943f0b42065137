"""Lighthouse's scores of the dashboard's tasks, runs and run pages, desktop and mobile.

A daemon with ``--tasks`` tasks (a failing, a running and a paused one among them, and
some history) is started; the run pages are of a failed run that printed 300 lines and
of the run still running (its duration counting up).  npm's ``lighthouse`` drives
Debian's chromium over each page and the four category scores are printed as a table
(``make lighthouse``; not in the test suite: it needs node and npm's lighthouse,
``npm install --prefix /tmp/lh lighthouse``).  The reports are kept under ``--out`` (HTML and JSON).

The page keeps one event stream open (/api/events), so the network never goes quiet:
Lighthouse stops waiting for that after ``--max-wait`` ms, once the page has drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _daemon import free_port, get, post, running_daemon

PAGES = ["tasks", "runs", "run", "running"]
DEVICES = ["desktop", "mobile"]
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
DEFAULT_BINARY = "/tmp/lh/node_modules/.bin/lighthouse"
TIMEOUT = 300  # seconds for one page


def config_text(port: int, data_dir: Path, tasks: int) -> str:
    lines = [
        f'[daemon]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{data_dir}"\n',
        '[tasks.backup-failing]\ncommand = "seq 1 300; echo disk full >&2; exit 2"\n',
        '[tasks.report-running]\ncommand = "echo started; sleep 600"\n',
        '[tasks.sync-paused]\ncommand = "true"\nschedule = "*/10 * * * *"\n',
    ]
    # Scheduled for New Year's Day: no fire lands while the pages are measured, so what
    # is measured is the page, not the rows a live list adds as runs are created.
    for i in range(tasks - 3):
        schedule = f'schedule = "{i % 60} {i % 24} 1 1 *"\n' if i % 3 else ""
        lines.append(f'[tasks.job-{i:05d}]\ncommand = "true"\n{schedule}')
    return "\n".join(lines)


def seed(base: str) -> dict[str, str]:
    """Some history: each outcome on the first page, a run going on, a task paused.
    Gives each page's path."""
    failed = [post(f"{base}/api/tasks/backup-failing/runs")["id"] for _ in range(2)]
    for name in ("job-00001", "job-00002"):
        post(f"{base}/api/tasks/{name}/runs")
    running = post(f"{base}/api/tasks/report-running/runs")["id"]
    post(f"{base}/api/tasks/sync-paused/pause")
    deadline = time.monotonic() + 30
    while get(f"{base}/api/runs?status=pending&limit=1")["runs"] or (
        get(f"{base}/api/runs/{failed[-1]}")["status"] != "ended"
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the seeded runs did not start")
        time.sleep(0.1)
    return {
        "tasks": "/",
        "runs": "/#/runs",
        "run": f"/#/runs/{failed[-1]}",
        "running": f"/#/runs/{running}",
    }


class LighthouseFailed(Exception):
    """Lighthouse gave no report; the message is its last word."""


def audit(binary: str, url: str, stem: Path, device: str, max_wait: int) -> dict[str, float]:
    command = [
        binary,
        url,
        "--quiet",
        "--output=json",
        "--output=html",
        f"--output-path={stem}",
        f"--max-wait-for-load={max_wait}",
        "--chrome-flags=--headless=new --no-sandbox",
    ]
    if device == "desktop":
        command.append("--preset=desktop")
    env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
    # In a session of its own: on a timeout the chromium it started goes with it.
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise LighthouseFailed(f"no report within {TIMEOUT} s") from None
    if proc.returncode != 0:  # e.g. the page never painted: say why, go on
        lines = (err or out).strip().splitlines() or ["no output"]
        raise LighthouseFailed(lines[-1][:200])
    report = json.loads(Path(f"{stem}.report.json").read_text())
    if report.get("runtimeError"):  # a report with no scores (NO_FCP: nothing painted)
        error = report["runtimeError"]
        raise LighthouseFailed(f"{error['code']}: {error['message'][:160]}")
    scores = {name: report["categories"][name]["score"] * 100 for name in CATEGORIES}
    scores["cls"] = report["audits"]["cumulative-layout-shift"]["numericValue"]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--max-wait", type=int, default=15_000, help="ms")
    parser.add_argument("--pages", nargs="+", choices=PAGES, default=PAGES)
    parser.add_argument("--devices", nargs="+", choices=DEVICES, default=DEVICES)
    parser.add_argument("--out", type=Path, default=Path("../test-artifacts/lighthouse"))
    args = parser.parse_args()
    binary = os.environ.get("LIGHTHOUSE") or shutil.which("lighthouse") or DEFAULT_BINARY
    if not Path(binary).exists():
        sys.exit(f"no lighthouse at {binary}: npm install --prefix /tmp/lh lighthouse")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "cronwarden.toml"
        config.write_text(config_text(free_port(), workdir / "data", args.tasks))
        with running_daemon(workdir, config) as (base, _):
            paths = seed(base)
            print(f"{args.tasks} tasks; {', '.join(CATEGORIES)}; CLS")
            print("| page | device | " + " | ".join(CATEGORIES) + " | CLS |")
            print("|---|---|" + "---|" * (len(CATEGORIES) + 1))
            for page in args.pages:
                path = paths[page]
                for device in args.devices:
                    stem = args.out / f"{page}-{device}"
                    try:
                        s = audit(binary, base + path, stem, device, args.max_wait)
                    except LighthouseFailed as exc:
                        print(f"| {page} | {device} | no report: {exc} |", flush=True)
                        continue
                    figures = " | ".join(f"{s[name]:.0f}" for name in CATEGORIES)
                    print(f"| {page} | {device} | {figures} | {s['cls']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
