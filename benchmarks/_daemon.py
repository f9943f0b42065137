"""What every benchmark needs: a real daemon on a free port, and its API."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # say what the daemon refused, and why
        why = f"{exc.msg}: {exc.read().decode(errors='replace')}"
        raise urllib.error.HTTPError(url, exc.code, why, exc.headers, None) from exc


def post(url: str) -> Any:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@contextmanager
def running_daemon(workdir: Path, config: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``cronwarden serve`` until the block ends; yields its base URL and process."""
    base = _listen_url(config)
    log = open(workdir / "daemon.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "cronwarden", "serve", "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(f"{base}/health")["status"] == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"daemon did not start; see {workdir / 'daemon.log'}")
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()


def _listen_url(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("listen = "):
            return "http://" + line.split("=", 1)[1].strip().strip('"')
    raise SystemExit(f"{config} has no listen line")
