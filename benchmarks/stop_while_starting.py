"""How soon a daemon told to stop while it starts is gone.

    python benchmarks/stop_while_starting.py [--tasks 100000] [--rounds 2]

The daemon gets N tasks (startup.py's config) and is started once (a first start
migrates a new database), then twice a round on the same data directory.  Each start
is watched until its log says `api.listening`: the runs of its previous life are
recovered and what is left is timing the N tasks.  The baseline start runs on to
READY (its log's `daemon.ready`): how long the rest of its start-up took.  The other
is sent SIGTERM there: how long until it exits.  A daemon that waited for READY before
stopping takes the rest of its start-up and then its stop.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _daemon import free_port
from startup import write_config


def started(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cronwarden", "serve", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def said(log: Path, event: str, deadline: float = 600) -> float:
    """Poll the log until it has ``event``; the monotonic time it was seen."""
    until = time.monotonic() + deadline
    while f'"event": "{event}"' not in log.read_text(errors="replace"):
        if time.monotonic() > until:
            raise SystemExit(f"{event} not logged within {deadline} s; see {log}")
        time.sleep(0.01)
    return time.monotonic()


def rest_of_start_up(config: Path, log: Path) -> float:
    """Seconds from `api.listening` to `daemon.ready` (then stopped, not measured)."""
    proc = started(config, log)
    try:
        listening = said(log, "api.listening")
        return said(log, "daemon.ready") - listening
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)


def stop_at_listening(config: Path, log: Path) -> tuple[float, int, bool]:
    """SIGTERM at `api.listening`: (seconds to the exit, exit code, READY first?)."""
    proc = started(config, log)
    said(log, "api.listening")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(300)
    return time.monotonic() - sent, code, '"event": "daemon.ready"' in log.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"SIGTERM at api.listening, {args.tasks} tasks")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = write_config(workdir, free_port(), args.tasks)
        rest_of_start_up(config, workdir / "first.log")
        for n in range(1, args.rounds + 1):
            rest = rest_of_start_up(config, workdir / f"ready-{n}.log")
            gone, code, was_ready = stop_at_listening(config, workdir / f"stopped-{n}.log")
            print(
                f"  round {n}: api.listening to READY {rest:.2f} s (baseline); "
                f"SIGTERM at api.listening: exit {code} {gone:.2f} s later"
                + ("; it had said READY first" if was_ready else "")
            )


if __name__ == "__main__":
    main()
