"""Shared fixtures: a real daemon in a subprocess, a real SQLite file, a real PostgreSQL."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from daemon_zygote import ForkedProcess, zygote  # type: ignore[import-not-found]
from schema_templates import migrate, place_sqlite  # type: ignore[import-not-found]

if TYPE_CHECKING:
    from cronwarden.store import Store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("CRONWARDEN_TEST_PG", "postgresql://127.0.0.1:5432/test")
# Daemons forked from a process that imported cronwarden once (tests/daemon_zygote.py);
# CRONWARDEN_TEST_FORK=0 starts each as a new interpreter.
FORK_DAEMONS = os.environ.get("CRONWARDEN_TEST_FORK", "1") != "0"


# Daemons listen on ports below the kernel's ephemeral range (32768 and up here), each
# test worker (pytest-xdist) in a block of its own, handed out in turn: a port is then
# never taken meanwhile by another worker's daemon or by an outgoing connection.
_PORT_BLOCK = 1500
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_FIRST_PORT = 20000 + (_WORKER % 8) * _PORT_BLOCK
_PORTS = itertools.count(os.getpid() % _PORT_BLOCK)  # a rerun starts elsewhere in the block


def free_port() -> int:
    for _ in range(_PORT_BLOCK):
        port = _FIRST_PORT + next(_PORTS) % _PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in this worker's block")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]


class Daemon:
    """``cronwarden serve`` as an operator runs it, driven over its HTTP API.

    Started as ``python -m cronwarden serve -c FILE``, or (the same code, the same
    argv, environment and files) forked from a process that imported cronwarden once:
    tests/daemon_zygote.py says when and why."""

    def __init__(
        self,
        workdir: Path,
        tasks: str,
        daemon_extra: str = "",
        shutdown_timeout: str = "5s",
        data_dir: Path | None = None,
        fresh_schema: bool = False,
    ) -> None:
        """``fresh_schema``: a new SQLite database starts empty and is migrated by the
        daemon (otherwise it starts as a copy of one at HEAD: tests/schema_templates.py)."""
        self.workdir = workdir
        self.fresh_schema = fresh_schema
        self.port = free_port()
        self.data_dir = data_dir or workdir / "data"
        self.config = workdir / "cronwarden.toml"
        self.config.write_text(
            f'[daemon]\nlisten = "127.0.0.1:{self.port}"\ndata_dir = "{self.data_dir}"\n'
            f'shutdown_timeout = "{shutdown_timeout}"\n{daemon_extra}\n' + textwrap.dedent(tasks)
        )
        self.proc: subprocess.Popen[bytes] | ForkedProcess | None = None
        self.lives = 0
        self.env: dict[str, str] = {}  # added to the daemon's environment
        self.wrapper: list[str] = []  # a program the daemon is started under (unshare)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> str:
        """The daemon's database URL: its ``database`` line, or SQLite in data_dir."""
        for line in self.config.read_text().splitlines():
            if line.startswith("database = "):
                return line.split("=", 1)[1].strip().strip('"')
        return f"sqlite+aiosqlite:///{self.data_dir / 'cronwarden.db'}"

    def start(self, timeout: float = 20) -> Daemon:
        self.start_process()
        return self.wait_healthy(timeout)

    def start_process(self) -> None:
        sqlite = "sqlite+aiosqlite:///"
        if self.lives == 0 and not self.fresh_schema and self.database.startswith(sqlite):
            place_sqlite(Path(self.database.removeprefix(sqlite)))
        self.lives += 1
        path = self.workdir / f"daemon-{self.lives}.log"
        args, env = ["serve", "-c", str(self.config)], {**os.environ, **self.env}
        if FORK_DAEMONS and not self.wrapper and zygote().can_start(env):
            self.proc = zygote().spawn(args, str(self.workdir), env, str(path))
            return
        with open(path, "wb") as log:
            self.proc = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "cronwarden", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )

    def wait_healthy(self, timeout: float = 20) -> Daemon:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/health").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return (self.workdir / f"daemon-{self.lives}.log").read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Response:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=headers or {}
        )
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, hdrs, payload = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            status, hdrs, payload = err.code, dict(err.headers), err.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode(errors="replace")
        return Response(status, hdrs, parsed)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def trigger(self, task: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        resp = self.post(f"/api/tasks/{task}/runs", {"params": params} if params else None)
        assert resp.status == 201, resp
        return dict(resp.body)

    def wait_run(
        self,
        run_id: str,
        until: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Poll a run until ``until`` holds (default: it ended)."""
        until = until or (lambda r: r["status"] == "ended")
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/api/runs/{run_id}").body
            if until(run):
                return dict(run)
            if time.monotonic() > deadline:
                raise AssertionError(f"run did not reach the state in {timeout}s: {run}")
            time.sleep(0.05)

    def runs(self, **query: Any) -> list[dict[str, Any]]:
        qs = "&".join(f"{k}={v}" for k, v in {"limit": 1000, **query}.items())
        return list(self.get(f"/api/runs?{qs}").body["runs"])


def as_from_a_terminal() -> None:
    """``preexec_fn`` for a CLI a test interrupts with SIGINT (its ^C): a process
    started in the background of a shell without job control (CI's scripts, ``cmd &``)
    inherits SIGINT ignored, and Python then leaves it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def benchmark_script(script: str, *args: str, timeout: float, exits: int = 0) -> str:
    """Run ``benchmarks/SCRIPT ARGS`` as ``make bench`` does (from benchmarks/, the
    daemon importing this tree); its output and errors, once it exited ``exits``."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, script, *args],
        cwd=root / "benchmarks",
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == exits, done.stdout + done.stderr
    return done.stdout + done.stderr


def wait_for(predicate: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {value!r})")
        time.sleep(0.05)


def process_state(pid: int) -> str | None:
    """The process's state from /proc/PID/stat (S sleeping, Z exited and not yet
    reaped, ...); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    return process_state(pid) not in (None, "Z")


def children(pid: int) -> list[int]:
    """The process's children, forked by any of its threads (a thread gone meanwhile
    has none)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def signal_masks(pid: int) -> dict[str, int]:
    """The process's signal masks from /proc/PID/status, by name (SigPnd, SigBlk,
    SigIgn, SigCgt): bit ``signum - 1`` of each."""
    with open(f"/proc/{pid}/status") as status:
        lines = [line.split(":", 1) for line in status]
    return {name: int(value, 16) for name, value in lines if name in _SIGNAL_MASKS}


_SIGNAL_MASKS = ("SigPnd", "SigBlk", "SigIgn", "SigCgt")


def stays_false(predicate: Callable[[], Any], window: float = 1.0) -> bool:
    """For negative checks: True if ``predicate`` never held during ``window`` seconds.

    A negative property needs some time to be observed; this polls through a stated
    window instead of sleeping and then looking once.
    """
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        if predicate():
            return False
        time.sleep(0.05)
    return not predicate()


def concurrently(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` from ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def one(i: int) -> Any:
        barrier.wait(timeout=30)
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


class TcpProxy:
    """A TCP relay the test can cut: a node's database connection goes through it, so
    the test decides when that node is partitioned from PostgreSQL and for how long."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                server = socket.create_connection(self.upstream)
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """End every relayed connection and refuse new ones."""
        with self._lock:
            self._cut = True
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._listener.close()


class Gate:
    """A FIFO that task processes block on (``cat GATE``) until the test opens it.

    Opening releases every process then waiting on it (each reads EOF), so the test,
    not the scheduler of a busy machine, decides when a run may end.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)

    @property
    def wait_command(self) -> str:
        return f"cat {self.path} > /dev/null"

    def open(self, timeout: float = 10) -> None:
        """Release the processes waiting now; fails if none is waiting in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                if time.monotonic() > deadline:
                    raise AssertionError(f"no process waited on {self.path}") from None
                time.sleep(0.02)
                continue
            os.close(fd)
            return


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """A FIFO gate; whatever still waits on it when the test ends is released, so a
    failing test leaves no process behind."""
    fifo = Gate(tmp_path / "gate.fifo")
    yield fifo
    with contextlib.suppress(AssertionError):
        fifo.open(timeout=0)


# The files that take longest (30-130 s each, mostly waiting on daemons and clocks),
# started first: with each file kept on one worker (--dist loadfile), one of them left
# for the end stretched the suite by its whole length while the other workers idled.
LONGEST_FIRST = (
    "integration/test_several_hosts.py",
    "integration/test_locks_and_pools.py",
    "integration/test_soak_script.py",
    "faults/test_store_outage.py",
    "integration/test_where_jobs_run.py",
    "integration/test_connections.py",
    "integration/test_retention.py",
    "browser/test_dashboard.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in LONGEST_FIRST first, then the others by their number of tests (the
    Makefile turns xdist's own reordering off, which knows only the counts)."""
    tests_in: dict[str, int] = {}
    for item in items:
        tests_in[item.nodeid.split("::")[0]] = tests_in.get(item.nodeid.split("::")[0], 0) + 1

    def rank(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        named = [i for i, long in enumerate(LONGEST_FIRST) if path.endswith(long)]
        return (0, named[0]) if named else (1, -tests_in[path])

    items.sort(key=rank)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_databases`` run twice: their daemons on SQLite, then each on
    a fresh PostgreSQL database."""
    if metafunc.definition.get_closest_marker("both_databases") and (
        "make_daemon" in metafunc.fixturenames
    ):
        metafunc.parametrize("engine", DATABASES, indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def make_daemon(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []
    databases: list[str] = []  # made here, dropped with the test

    def factory(tasks: str, start: bool = True, **options: str) -> Daemon:
        workdir = tmp_path / f"d{len(daemons)}"
        workdir.mkdir()
        if engine == "postgresql" and "database =" not in options.get("daemon_extra", ""):
            url = request.getfixturevalue("pg_admin").create()
            databases.append(url)
            options["daemon_extra"] = f'database = "{url}"\n' + options.get("daemon_extra", "")
        daemon = Daemon(workdir, tasks, **options)
        daemons.append(daemon)
        return daemon.start() if start else daemon

    yield factory
    for daemon in daemons:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(10)
        kill_keepers(daemon)
    if databases:  # now, not all at the session's end (that landed on the last test's clock)
        request.getfixturevalue("pg_admin").drop(databases)


def kill_keepers(daemon: Daemon) -> None:
    """The keepers a test's daemon started: gone with the test, or a run a failing test
    left printing would block on its full pipe for as long as its keeper waits."""
    for log in daemon.workdir.glob("daemon-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"event": "keeper.started"' not in line:
                continue
            pid = int(json.loads(line)["pid"])
            with contextlib.suppress(OSError):
                if b"keeper.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


class PgAdmin:
    """Creates, drops and cuts off PostgreSQL databases for tests (its own thread+loop)."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._template: str | None = None  # a database at HEAD, copied by create

    def sql(self, *statements: str) -> None:
        """Run the statements in turn on one connection (a new connection, loop and
        thread per statement made dropping a worker's hundred databases take minutes
        on a loaded machine)."""
        import asyncio

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run()).result()

    def create(self, schema: bool = True) -> str:
        """A fresh database (at HEAD, unless ``schema`` is False: then empty); returns
        its SQLAlchemy URL."""
        template = ""
        if schema:
            if self._template is None:
                self._template = self._name_of(self.create(schema=False))
                migrate(self._url_of(self._template))
            template = f' TEMPLATE "{self._template}"'
        name = f"cronwarden_test_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}"{template}')
        self.created.append(name)
        return self._url_of(name)

    @staticmethod
    def _url_of(name: str) -> str:
        base = PG_URL.rsplit("/", 1)[0]
        return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)

    @staticmethod
    def _name_of(url: str) -> str:
        return url.rsplit("/", 1)[1]

    def cut_off(self, url: str) -> None:
        """Refuse new connections to the database and end the open ones."""
        name = url.rsplit("/", 1)[1]
        self.sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )

    def restore(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    def drop(self, urls: list[str]) -> None:
        names = [url.rsplit("/", 1)[1] for url in urls]
        self.sql(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))
        self.created = [name for name in self.created if name not in names]

    def drop_all(self) -> None:
        if self.created:
            self.sql(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.created))


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[PgAdmin]:
    admin = PgAdmin()
    try:
        admin.sql("SELECT 1")
    except Exception as exc:
        message = f"PostgreSQL at {PG_URL} is not usable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield admin
    admin.drop_all()


@pytest.fixture(scope="session")
def pg_database(pg_admin: PgAdmin) -> str:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    return pg_admin.create()


DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def database_option(request: pytest.FixtureRequest) -> str:
    """The ``[daemon]`` line selecting the engine of ``request.param``: SQLite in
    data_dir (the default, no line), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    return f'database = "{request.getfixturevalue("pg_admin").create()}"'


@pytest.fixture(params=DATABASES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store on a SQLite file, then on the session's PostgreSQL database."""
    import sqlalchemy as sa

    from cronwarden.store import Store, open_engine

    if request.param == "sqlite":
        place_sqlite(tmp_path / "state" / "cronwarden.db")
        url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'cronwarden.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    opened = await Store.open(open_engine(url))
    async with opened.engine.begin() as conn:  # each test starts from empty tables
        for table in ("runs", "task_state", "nodes", "idempotency_keys", "holds", "artifacts"):
            await conn.execute(sa.text(f"DELETE FROM {table}"))
    yield opened
    await opened.close()


# -- a real headless browser: Playwright driving Debian's chromium (installed here when
# it is missing; Playwright's own browser download is never used) -----------------

ARTIFACTS = Path(
    os.environ.get("CRONWARDEN_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")
)
CHROMIUM = "/usr/bin/chromium"
# What a browser says about a request the test meant to be refused (401 with no token).
EXPECTED_REFUSALS = "the server responded with a status of 401"


def _ensure_chromium() -> str:
    return ensure_debian_tool(CHROMIUM, "chromium", install=True)


def ensure_debian_tool(path: str, package: str, *, install: bool) -> str:
    """The program at ``path``; with ``install``, Debian's ``package`` is installed
    first when it is missing (as root, with apt-get).  A program that cannot be had
    skips the test, or fails it in CI, saying why."""
    if os.path.exists(path):
        return path
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "--no-install-recommends", package]
        if subprocess.run(command, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise AssertionError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        return path
    found = shutil.which(os.path.basename(path))
    if found:
        return found
    if IN_CI:
        raise AssertionError(
            f"{path} is missing and cannot be installed here: Debian's {package} package "
            "needs root and apt-get"
        )
    pytest.skip(f"{path} is missing; install Debian's {package} package")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One browser per test module: Playwright's sync API keeps an event loop of its own
    open while it runs, which the asyncio tests sharing this worker must not meet."""
    from playwright.sync_api import expect, sync_playwright

    executable = _ensure_chromium()
    expect.set_options(timeout=15_000)  # a shared, loaded machine: wait, do not race
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


class Console:
    """What the page said on its console: errors fail the test that opened it."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def problems(self, allowed: str | None = None) -> list[str]:
        return [e for e in self.errors if allowed is None or allowed not in e]


@pytest.fixture
def open_page(browser) -> Iterator[Callable[..., tuple[object, Console]]]:  # type: ignore[no-untyped-def]
    """A fresh browser context per page (its own sessionStorage); console errors and
    uncaught exceptions are collected and, unless a test expects some, fail it."""
    contexts = []
    consoles: list[tuple[Console, str | None]] = []

    def factory(
        url: str,
        *,
        width: int = 1280,
        height: int = 900,
        scheme: str = "light",
        allow: str | None = None,
        bypass_csp: bool = False,
    ):  # type: ignore[no-untyped-def]
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=scheme,
            bypass_csp=bypass_csp,
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        console = Console()
        page.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
        consoles.append((console, allow))
        page.goto(url)
        return page, console

    yield factory
    for context in contexts:
        context.close()
    for console, allow in consoles:
        assert console.problems(allow) == [], console.errors


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots and figures go (not committed; CI keeps them)."""
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
