"""What the fault-injection tests share: a PostgreSQL cluster of their own that a test
may stop and start (the shared server on 5432 is never touched), a small filesystem
that really fills up, and the check that every fire of a window is accounted for."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import IN_CI, free_port  # type: ignore[import-not-found]

VERSION = "15"


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def unusable(message: str) -> None:
    """Outside CI a missing tool skips the test; in CI it fails it."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class PgCluster:
    """``pg_createcluster`` on a free port, trust auth on 127.0.0.1, dropped by ``drop``."""

    def __init__(self) -> None:
        self.name = f"cwfaults{uuid.uuid4().hex[:8]}"
        self.port = free_port()

    @property
    def _psql(self) -> list[str]:
        return ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", VERSION, self.name, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"pg_ctlcluster {' '.join(args)}: {done.stderr.strip()}")
        return done

    def create(self) -> None:
        done = subprocess.run(
            [
                "pg_createcluster",
                VERSION,
                self.name,
                "-p",
                str(self.port),
                "--",
                "--auth=trust",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise AssertionError(f"pg_createcluster: {done.stderr.strip()}")
        self.start()

    def start(self) -> None:
        self._ctl("start")
        self.sql("SELECT 1")  # answers before start() returns

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", "--stop", VERSION, self.name], capture_output=True, timeout=120
        )

    def sql(self, statement: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                [*self._psql, "-v", "ON_ERROR_STOP=1", "-c", statement],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"psql {statement!r}: {done.stderr.strip()}")
            time.sleep(0.1)

    def database(self) -> str:
        """A fresh database; its SQLAlchemy URL."""
        name = f"cw_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    @contextmanager
    def down(self) -> Iterator[None]:
        """The cluster stopped for the block; started again (and answering) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


def pg_cluster_fixture() -> Iterator[PgCluster]:
    if not (shutil.which("pg_createcluster") and shutil.which("pg_ctlcluster")):
        unusable("pg_createcluster is not installed (Debian's postgresql-common)")
    if os.geteuid() != 0:
        unusable("pg_createcluster needs root here")
    cluster = PgCluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.drop()


@contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``, so the disk really fills up."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        unusable(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def per_second(start: datetime, end: datetime) -> list[datetime]:
    """The whole seconds in [start, end]: a per-second task's fires."""
    first = start.replace(microsecond=0)
    if first < start:
        first += timedelta(seconds=1)
    return [first + timedelta(seconds=i) for i in range(int((end - first).total_seconds()) + 1)]


def unaccounted(runs: Iterable[dict[str, Any]], fires: Iterable[datetime]) -> dict[str, Any]:
    """What breaks "each fire of the window ran once or is recorded missed": fires with
    no row, fires with more than one first attempt, runs not ended."""
    rows = Counter(z(r["scheduled_for"]) for r in runs if r["scheduled_for"] and r["attempt"] == 1)
    wanted = list(fires)
    problems = {
        "no_row": [f.isoformat() for f in wanted if rows[f] == 0],
        "twice": [f.isoformat() for f in wanted if rows[f] > 1],
        "not_ended": [r["id"] for r in runs if r["status"] != "ended"],
    }
    return {k: v for k, v in problems.items() if v}


def now_utc() -> datetime:
    return datetime.now(UTC)
