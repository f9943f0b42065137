"""Wires it all: start-up, crash recovery, signals, sd_notify, reload, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import signal
import socket
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import structlog
from aiohttp import web

from cronwarden import __version__
from cronwarden.alerts.service import Alerts, base_url_of
from cronwarden.api.app import create_app
from cronwarden.api.connections import (
    IDLE_TIMEOUT,
    ConnectionGate,
    GatedSite,
    connection_cap,
    soft_fd_limit,
)
from cronwarden.api.keys import Services
from cronwarden.api.schemas import run_fields
from cronwarden.artifacts.layout import PASSABLE, artifacts_root, is_passable
from cronwarden.artifacts.layout import ROOT_NAME as ARTIFACTS
from cronwarden.config import Config, DaemonConfig, Listen, load_config
from cronwarden.errors import ConfigError, DataDirLocked, StartFailed, StoreUnavailable
from cronwarden.event_log import EventLog
from cronwarden.fleet import FENCE_STOP, Fleet
from cronwarden.host.sd_notify import (
    notify_socket_set,
    sd_notify,
    watchdog_interval,
    watchdog_pings,
)
from cronwarden.host.space_reserve import RESERVE_BYTES, SpaceReserve
from cronwarden.hub import Hub
from cronwarden.live_config import LiveConfig
from cronwarden.metrics import LiveState, Metrics
from cronwarden.pauses import Pauses
from cronwarden.retention import Retention
from cronwarden.run_tokens import api_url_for_runs
from cronwarden.runlog.feeds import LogFeeds
from cronwarden.runners.adoption import ExitWatcher
from cronwarden.runners.artifacts import RunArtifacts
from cronwarden.runners.containment import Containment
from cronwarden.runners.dispatch import Dispatcher
from cronwarden.runners.identity import resolve_identity
from cronwarden.runners.keeping import KeeperLink
from cronwarden.runners.launch import ProcessLauncher
from cronwarden.runners.proc_events import ExitClock
from cronwarden.runners.recovery import recover
from cronwarden.scheduler.boot import RebootLedger, current_boot_id
from cronwarden.scheduler.service import SchedulerService
from cronwarden.store import Store, open_engine
from cronwarden.store.artifacts import SqlArtifacts
from cronwarden.store.engine import is_shared
from cronwarden.store.holds import SqlHolds
from cronwarden.store.nodes import NodeRegistry
from cronwarden.store.slots import FleetSlots
from cronwarden.support.clock import Clock, SystemClock
from cronwarden.support.heap import (
    freeze_start_up_objects,
    give_back_free_memory,
    share_malloc_arenas,
)
from cronwarden.support.log_setup import configure_logging

log = structlog.get_logger("cronwarden.daemon")


PRIVATE_UMASK = 0o077
STATUS_EVERY = 2.0  # seconds between checks of the STATUS= line
PARSER_LINE_LIMIT = 64 * 1024
# How long stopped side tasks get to unwind (a query in flight finishes, its connection
# closes) before the store they use is closed under them.
UNWIND_TIMEOUT = 10.0


def make_private(data_dir: Path) -> None:
    """data_dir holds every run's output and the history: 0700, its files 0600.

    The daemon runs with umask 077 so what it creates is private; this tightens what
    an older version, or another tool, left more open.  Runs' artifact directories are
    their users' (cronwarden/artifacts/layout.py): never walked here, where a run's
    user could swap a file for a link to have root change its target's mode; and
    data_dir stays passable (0711) once runs of other users were given a way in.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(PASSABLE if is_passable(data_dir) else 0o700)
    for root, dirs, files in os.walk(data_dir):
        if root == str(data_dir) and ARTIFACTS in dirs:
            dirs.remove(ARTIFACTS)
        for name in dirs:
            _tighten(Path(root) / name, 0o700)
        for name in files:
            _tighten(Path(root) / name, 0o600)


def _tighten(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink():
            return
        if path.stat().st_mode & 0o077:
            path.chmod(mode)


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[IO[str]]:
    """One daemon per data_dir: a second one is refused instead of corrupting state."""
    make_private(data_dir)
    path = data_dir / "cronwarden.lock"
    handle = open(path, "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirLocked(
            f"another cronwarden daemon (pid {holder}) already uses data_dir {data_dir}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    try:
        yield handle
    finally:
        handle.close()


def advertised_host(host: str | None) -> str | None:
    """The address other nodes reach this one at: a listener on every interface is
    reached by this host's name, not by 0.0.0.0."""
    if host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return host


def _use_pidfd_child_watcher() -> None:
    """On 3.11 the default watcher starts a thread per child; pidfd needs none."""
    if sys.version_info < (3, 12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


T = TypeVar("T")


class _StoppedWhileStarting(Exception):
    """SIGTERM/SIGINT came before the daemon was ready (``_unless_stopped``)."""


class SideTasks:
    """Tasks beside the daemon's work (retention, the fleet's heartbeat, probes): one
    that ends ends the daemon, loudly.  Stopping them is two steps: cancelled first,
    so nothing new starts while runs get their grace, and awaited last, before the
    store they use closes (a task cancelled inside a query still has its connection
    to close; closing the engine under it left the process hung)."""

    def __init__(self) -> None:
        self.supervised: set[asyncio.Task[Any]] = set()
        self._all: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], name: str, *, supervised: bool = True) -> None:
        task = asyncio.create_task(work, name=name)
        self._all.add(task)
        if supervised:
            self.supervised.add(task)

    def cancel(self) -> None:
        for task in self._all:
            task.cancel()

    async def unwind(self) -> None:
        if not self._all:
            return
        _, unwinding = await asyncio.wait(self._all, timeout=UNWIND_TIMEOUT)
        for task in unwinding:
            log.warning("daemon.task_did_not_stop", task=task.get_name())


class Daemon:
    """Start-up is a sequence of steps; each one that leaves something to undo enters
    its teardown into one exit stack as it starts, so a failure at any step undoes
    exactly what started, in reverse order.

    Two ways out (``_letting_runs_go``):

    * a stop (SIGTERM, before or after READY, or a side task died): the scheduler stops
      firing, runs get their shutdown_timeout and are then stopped, every end is
      recorded;
    * a failed start-up: the runs recovery adopted are let go (``Dispatcher.detach``):
      their processes keep running, their rows stay ``running`` with their pid, nothing
      is recorded or alerted, and the next start adopts them again.
    """

    def __init__(self, config: Config, clock: Clock | None = None, task_umask: int = 0o022) -> None:
        self.live = LiveConfig(config)
        self.task_umask = task_umask
        self.clock = clock or SystemClock()
        self._stop = asyncio.Event()
        self._reloading = asyncio.Lock()
        self._ready: Services | None = None
        # Run and task changes: the dispatcher (and pause/resume) publish, the metrics,
        # alerts, events log and log feeds subscribe.
        self.hub = Hub()
        self.exit_code = 0
        self.keeper: KeeperLink | None = None
        self.containment: Containment | None = None

    @property
    def config(self) -> Config:
        return self.live.current

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code (1 if a part failed).
        A start-up failure raises, once what had started is undone; a stop asked while
        starting cuts the start-up short and exits 0."""
        self._install_signals()
        _log_warnings(self.config)
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with self._reloading:  # a reload asked meanwhile waits for READY
                    services, side = await self._start(stack)
            except _StoppedWhileStarting:
                sd_notify("STOPPING=1")
                log.info("daemon.stopping", reason="asked to stop before it was ready")
            except BaseException as exc:
                log.error("daemon.start_failed", error=str(exc) or repr(exc))
                raise
            else:
                await self._serve_until_stopped(services, side)
        log.info("daemon.stopped", exit_code=self.exit_code)
        return self.exit_code

    def _letting_runs_go(self) -> bool:
        """Whether the way out lets runs go as they are: a start-up that failed, not one
        asked to stop (see the class docstring)."""
        return self._ready is None and not self._stop.is_set()

    async def _start(self, stack: contextlib.AsyncExitStack) -> tuple[Services, SideTasks]:
        """The start-up steps, in order; see the class docstring."""
        daemon = self.config.daemon
        stack.enter_context(data_dir_lock(daemon.data_dir))
        # A busy port fails here, before any run is adopted (the port is bound for
        # good later: one taken meanwhile is a failed start-up like any other).
        check_port_free(daemon.listen)
        store = await _unless_stopped(Store.open(open_engine(daemon.database_url)), self._stop)
        stack.push_async_callback(store.close)  # last: the recorder flushes every end
        side = SideTasks()
        stack.push_async_callback(side.unwind)
        exits = ExitClock()  # a run's end_at is the kernel's exit time where it can tell
        exits.open()
        stack.callback(exits.close)
        # Before anything hashes a task: runs and the node's config_hash carry
        # hashes keyed by the installation's key, never by a key of this life.
        self.live.use_key(await store.installation_key())
        # Before the keeper: it is started in the daemon's cgroup, not a run's.
        self.containment = _contain_runs(self.config, stack)
        self.keeper = keeper = await _attach_keeper(daemon)
        if keeper is not None:  # after the runs: a stop says goodbye, a failed start detaches
            stack.push_async_callback(lambda: keeper.close(detach=self._letting_runs_go()))
        services = self._build(store, exits)
        runner = _http_runner(services)
        await runner.setup()
        # Torn down after the runs' grace: the API answers while runs are stopping.
        stack.push_async_callback(runner.cleanup)
        stack.callback(services.events.close)  # followers end before the server stops
        stack.push_async_callback(services.alerts.close)  # after the runs' ends: theirs too
        await services.fleet.join()
        stack.callback(services.fleet.close)  # its lease timer
        await stack.enter_async_context(self._carrying(services))
        dispatcher = services.dispatcher
        await _unless_stopped(services.alerts.start(dispatcher.running_runs()), self._stop)
        await serve_api(runner, daemon.listen)
        stack.push_async_callback(_stop_firing, services.scheduler)
        reboots = RebootLedger(daemon.data_dir, current_boot_id())
        # The tasks the scheduler must not time.
        await _unless_stopped(services.pauses.load(), self._stop)
        await _unless_stopped(
            services.scheduler.start(self.config.tasks, reboots.claim), self._stop
        )
        stack.callback(side.cancel)  # first: nothing new starts while runs stop
        self._start_side_tasks(services, side)
        return services, side

    def _build(self, store: Store, exits: ExitClock) -> Services:
        """Every service, made and wired (nothing here waits or touches the outside)."""
        daemon = self.config.daemon
        reserve = _hold_reserve(daemon.data_dir)
        store.recorder.on_disk_full = reserve.release
        feeds = LogFeeds()
        artifacts = _run_artifacts(daemon, store)
        launcher = _launcher(self, reserve, feeds, exits if exits.active else None, artifacts)
        dispatcher = Dispatcher(
            store,
            self.live,
            node=daemon.node_name,
            launcher=launcher,
            clock=self.clock,
            on_change=self.hub.runs.publish,
            places=FleetSlots(store.engine) if is_shared(store.engine) else None,
            holds=SqlHolds(store.engine),
            on_held=lambda name, seconds: metrics.lock_wait.labels(name).observe(seconds),
        )
        scheduler = SchedulerService(dispatcher, store, self.clock, node=daemon.node_name)
        pauses = self._pauses(store, scheduler)
        metrics = _metrics(self.live, dispatcher, pauses)
        alerts = self._alerts(store, launcher.logs_dir, metrics)
        events = EventLog(started_at=self.clock.now())
        _subscribe(self.hub, metrics, alerts, events, feeds)
        started_at = self.clock.now()
        services = Services(
            live=self.live,
            store=store,
            dispatcher=dispatcher,
            scheduler=scheduler,
            pauses=pauses,
            logs_dir=launcher.logs_dir,
            artifacts=artifacts,
            log_feeds=feeds,
            events=events,
            reserve=reserve,
            retention=_retention(self.live, self.clock, store, launcher, metrics, scheduler),
            metrics=metrics,
            alerts=alerts,
            fleet=_fleet(self.live, store, dispatcher, pauses, started_at),
            started_at=started_at,
            clock=self.clock,
            reload=lambda: self.reload(services),
        )
        services.fleet.on_reload = services.reload
        if self.keeper is not None:
            services.fleet.on_company = self.keeper.fence
        return services

    def _alerts(self, store: Store, logs_dir: Path, metrics: Metrics) -> Alerts:
        listen = self.config.daemon.listen
        return Alerts(
            self.live,
            store,
            self.clock,
            node=self.config.daemon.node_name,
            base_url=base_url_of(listen.host, listen.port),
            run_json=run_fields,
            logs_dir=logs_dir,
            on_outcome=lambda target, event, outcome: metrics.alerts.labels(
                target, event, outcome
            ).inc(),
        )

    def _pauses(self, store: Store, scheduler: SchedulerService) -> Pauses:
        """Paused tasks: stored in the store, timed by the scheduler, followed from and
        announced to the other nodes, told to the hub (cronwarden/pauses.py)."""
        return Pauses(
            store,
            scheduler,
            self.live,
            publish=self.hub.tasks.publish,
            fleet=NodeRegistry(store.engine),
        )

    @contextlib.asynccontextmanager
    async def _carrying(self, services: Services) -> AsyncIterator[None]:
        """The runs a previous life left: recovered (adopted, resumed or ended), and on
        the way out given their grace and recorded (a daemon that started) or let go
        as they are (a start-up that failed: see the class docstring)."""
        dispatcher = services.dispatcher
        watcher: ExitWatcher | None = None
        try:
            node = services.fleet.node
            taken_over = await services.fleet.registry.taken_over_runs(node)
            unfinished = await services.store.unfinished_runs(node)
            watcher = await recover(
                dispatcher,
                unfinished,
                now=self.clock.now(),
                taken_over=taken_over,
                held=self.keeper.claim if self.keeper is not None else lambda run_id: (),
            )
            if self.keeper is not None:
                self.keeper.drop_unclaimed()  # their runs ended while no daemon watched
            yield
        finally:
            if self._letting_runs_go():
                await dispatcher.detach()
            else:
                await dispatcher.shutdown(self.config.daemon.shutdown_timeout)
            if watcher is not None:
                watcher.close()

    def _start_side_tasks(self, services: Services, side: SideTasks) -> None:
        side.start(services.retention.serve(), "retention")
        side.start(services.metrics.probe_loop_lag(), "loop lag probe")
        side.start(give_back_free_memory(), "memory trim", supervised=False)
        side.start(services.fleet.serve(), "fleet")
        # Not supervised: it ends once the history has been read.
        side.start(_load_successes(services), "last successes", supervised=False)
        interval = watchdog_interval()
        if interval is not None:
            side.start(watchdog_pings(interval), "watchdog")
        if notify_socket_set():
            side.start(_report_status(services), "status")

    async def _serve_until_stopped(self, services: Services, side: SideTasks) -> None:
        """Until SIGTERM/SIGINT, or until a side task (or the recorder) dies: then
        exit code 1.  The exit stack then stops what started."""
        self._ready = services
        sd_notify("READY=1\n" + _status_line(services))
        daemon = self.config.daemon
        log.info(
            "daemon.ready",
            version=__version__,
            listen=str(daemon.listen),
            tasks=len(self.config.tasks),
            data_dir=str(daemon.data_dir),
            database=_redact(daemon.database_url),
        )
        freeze_start_up_objects()
        recorder = services.store.recorder.start()
        stop = asyncio.create_task(self._stop.wait(), name="stop signal")
        supervised = {recorder, *side.supervised}
        done, _ = await asyncio.wait({stop, *supervised}, return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stop}:
            error = None if task.cancelled() else task.exception()
            log.critical("daemon.side_task_died", task=task.get_name(), error=repr(error))
            self.exit_code = 1
        stop.cancel()
        await asyncio.gather(stop, return_exceptions=True)
        active = services.dispatcher.active_runs
        sd_notify(f"STOPPING=1\nSTATUS=Stopping: {active} runs get up to their shutdown_timeout")
        log.info("daemon.stopping")

    def _install_signals(self) -> None:
        """First thing at start-up: SIGHUP's default action would end the process, so a
        reload racing the start must not kill it; SIGTERM then stops it once started."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        if self._ready is None:
            log.info("config.reload_skipped", reason="the daemon is still starting")
            return
        asyncio.get_running_loop().create_task(self._reload_quietly(self._ready))

    async def reload(self, services: Services) -> dict[str, list[str]]:
        """Validate first; a bad file keeps the old config and raises ConfigError.

        Returns the tasks added, removed and changed, and the daemon keys that need a
        restart to take effect.
        """
        async with self._reloading:
            sd_notify("RELOADING=1")
            try:
                new = load_config(self.config.path)
            except ConfigError as exc:
                log.error("config.reload_failed", path=str(self.config.path), errors=exc.problems)
                raise
            finally:
                sd_notify("READY=1")
            _log_warnings(new)
            if self.containment is not None:
                _log_unenforced_limits(new, self.containment)
            restart_needed = _restart_needed(self.config, new)
            if restart_needed:
                log.warning("config.restart_needed", keys=restart_needed)
            changes = self.live.swap(new)
            services.scheduler.apply(new.tasks)
            await services.dispatcher.reload(changes)
            services.alerts.reloaded()
            answer = {**dataclasses.asdict(changes), "restart_needed": restart_needed}
            log.info("config.reloaded", **answer)
            self.hub.reloads.publish("config.reloaded", answer)
            return answer

    async def _reload_quietly(self, services: Services) -> None:
        with contextlib.suppress(ConfigError):
            await self.reload(services)


async def _unless_stopped(step: Awaitable[T], stop_asked: asyncio.Event) -> T:
    """A start-up step that can take long (a migration waiting for the database, a
    hundred thousand schedules), cut short by SIGTERM/SIGINT: it is cancelled, and
    the exit stack undoes what had started.  Only steps that can stop anywhere go
    through here (reads, a migration in its own process, timing): recovering a
    previous life's runs does not."""
    running = asyncio.ensure_future(step)
    stop = asyncio.ensure_future(stop_asked.wait())
    try:
        await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    if running.cancelled():
        raise _StoppedWhileStarting
    return running.result()


async def _load_successes(services: Services) -> None:
    """The last success of each task, from the history (off the start-up path)."""
    while True:
        try:
            services.metrics.known_successes(await services.store.last_successes())
            return
        except StoreUnavailable:
            await asyncio.sleep(5)


def _launcher(
    owner: Daemon,
    reserve: SpaceReserve,
    feeds: LogFeeds,
    exits: ExitClock | None,
    artifacts: RunArtifacts,
) -> ProcessLauncher:
    """The runs' launcher, with what the daemon holds for them (its keeper, how runs'
    processes are contained) and the services made beside it."""
    daemon = owner.config.daemon
    return ProcessLauncher(
        daemon.data_dir,
        owner.clock,
        default_umask=owner.task_umask,
        path=daemon.path,
        reserve=reserve,
        feeds=feeds,
        exits=exits,
        keeper=owner.keeper,
        containment=owner.containment,
        api_url=api_url_for_runs(daemon.listen),
        artifacts=artifacts,
    )


def _run_artifacts(daemon: DaemonConfig, store: Store) -> RunArtifacts:
    """Runs' artifact directories on this node, their listings in the database."""
    return RunArtifacts(
        artifacts_root(daemon.data_dir), SqlArtifacts(store.engine), daemon.node_name
    )


def _retention(
    live: LiveConfig,
    clock: Clock,
    store: Store,
    launcher: ProcessLauncher,
    metrics: Metrics,
    scheduler: SchedulerService,
) -> Retention:
    """Ended runs past their task's keep go, with the files the launcher kept of them."""
    return Retention(
        store,
        live,
        launcher.logs_dir,
        clock,
        on_pass=lambda report: metrics.retention_deleted.inc(report.deleted_runs),
        artifacts_root=launcher.artifacts.root if launcher.artifacts is not None else None,
        next_fire=scheduler.next_instant,
    )


def _metrics(live: LiveConfig, dispatcher: Dispatcher, pauses: Pauses) -> Metrics:
    holds = dispatcher.holds
    return Metrics(
        LiveState(
            run_phases=dispatcher.phases,
            tasks=lambda: len(live.tasks),
            paused=lambda: pauses.count,
            held=holds.held_here if holds is not None else dict,
            task_names=lambda: live.tasks,
        )
    )


def _fleet(
    live: LiveConfig, store: Store, dispatcher: Dispatcher, pauses: Pauses, started_at: datetime
) -> Fleet:
    daemon = live.current.daemon
    return Fleet(
        NodeRegistry(store.engine),
        live,
        dispatcher,
        pauses,
        node=daemon.node_name,
        started_at=started_at,
        api_url=base_url_of(advertised_host(daemon.listen.host), daemon.listen.port),
    )


def _log_warnings(config: Config) -> None:
    """What ``cronwarden validate`` warns of (a working_dir not there yet), said at load."""
    for warning in config.warnings:
        log.warning("config.warning", path=str(config.path), warning=warning)


def _contain_runs(config: Config, stack: contextlib.AsyncExitStack) -> Containment:
    """How this host keeps each run's processes together (runners/containment.py);
    SIGCHLD reaps what runs leave."""
    containment = Containment.choose(config.daemon)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGCHLD, containment.child_exited)
    stack.callback(loop.remove_signal_handler, signal.SIGCHLD)
    stack.callback(containment.close)
    _log_unenforced_limits(config, containment)
    return containment


def _log_unenforced_limits(config: Config, containment: Containment) -> None:
    """A bound this host cannot hold is said at load, once per task (never silently)."""
    for name, bounds in config.tasks.field("limits"):
        if bounds is None:
            continue
        try:
            uid = resolve_identity(config.tasks[name].user, None).uid
        except StartFailed:
            continue  # said at load already: an unknown user is a config error
        plan = containment.plan(bounds, os.geteuid() if uid is None else uid)
        for line in plan.unenforced:
            log.warning("task.limit_unenforced", task=name, limit=line)


def _restart_needed(old: Config, new: Config) -> list[str]:
    """The daemon keys a reload cannot apply (they take effect at the next start)."""
    keys = ("listen", "data_dir", "database", "node", "run_cgroups")
    return [k for k in keys if getattr(new.daemon, k) != getattr(old.daemon, k)]


def _status_line(services: Services) -> str:
    tasks = len(services.live.tasks)
    paused = services.pauses.count
    active = services.dispatcher.active_runs
    return f"STATUS={tasks} tasks ({paused} paused), {active} runs active"


async def _report_status(services: Services) -> None:
    """systemctl status shows a STATUS= line; it is sent when it changes."""
    sent = _status_line(services)
    while True:
        await asyncio.sleep(STATUS_EVERY)
        line = _status_line(services)
        if line != sent:
            sd_notify(line)
            sent = line


async def serve_api(runner: web.AppRunner, listen: Listen) -> None:
    """Bind the API's address and serve it (a unix socket is made private)."""
    fd_limit = soft_fd_limit()
    site = GatedSite(runner, listen, ConnectionGate(connection_cap(fd_limit)))
    if listen.unix_path is not None:
        listen.unix_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            listen.unix_path.unlink()
        old_umask = os.umask(0o177)  # the socket is 0600: only its owner may talk to it
        try:
            await site.start()
        finally:
            os.umask(old_umask)
    else:
        await site.start()
    log.info(
        "api.listening",
        listen=str(listen),
        max_connections=site.gate.cap,
        fd_limit=fd_limit,
        idle_timeout_s=IDLE_TIMEOUT,
    )


def _hold_reserve(data_dir: Path) -> SpaceReserve:
    reserve = SpaceReserve(data_dir)
    if not reserve.hold():
        reserve.release(f"data_dir has less than {2 * RESERVE_BYTES // 2**20} MiB free at start-up")
    return reserve


def _http_runner(services: Services) -> web.AppRunner:
    return web.AppRunner(
        create_app(services),
        access_log=None,
        handle_signals=False,
        # aiohttp answers lines over its parser limits itself, in text/plain; these let
        # them reach the app, which refuses them as problem+json.
        max_line_size=PARSER_LINE_LIMIT,
        max_field_size=PARSER_LINE_LIMIT,
        # From opening, or from the last answer, to a complete request head: the header
        # and idle timeout both (api/connections.py).
        keepalive_timeout=IDLE_TIMEOUT,
    )


async def _stop_firing(scheduler: SchedulerService) -> None:
    """No fire after this; claims in flight land (their runs then get their grace)."""
    scheduler.shutdown()
    await scheduler.wait_inflight()


async def _attach_keeper(daemon: DaemonConfig) -> KeeperLink | None:
    """The keeper of the runs' pipes (runners/keeping.py). While other nodes share
    the database (the fleet tells it), a dead node's runs must not go on beside a
    survivor's retries: its keeper stops them, killing what is left by half the lease."""
    fence_grace = daemon.node_lease.total_seconds() * FENCE_STOP
    keeper = KeeperLink(daemon.data_dir, fence_grace=fence_grace)
    try:
        await keeper.attach()
    except (OSError, ValueError) as exc:  # no keeper, or one that did not answer
        log.error("keeper.unavailable", error=str(exc), consequence="runs die with the daemon")
        return None
    return keeper


def _subscribe(
    hub: Hub, metrics: Metrics, alerts: Alerts, events: EventLog, feeds: LogFeeds
) -> None:
    """Who is told of what changed, in this order."""
    hub.runs.subscribe(metrics.observe)
    hub.runs.subscribe(alerts.on_change)
    hub.runs.subscribe(events.publish_run)
    hub.runs.subscribe(lambda kind, run: feeds.finish(run.id) if kind == "run.ended" else None)
    hub.tasks.subscribe(events.publish_task)
    hub.reloads.subscribe(events.publish_reload)


def check_port_free(listen: Listen) -> None:
    """Raise OSError naming the address if something listens on the API's TCP port.

    Bound with SO_REUSEADDR, as the server binds it: what a killed daemon's old
    connections leave in TIME_WAIT does not count, a listener does."""
    if listen.port is None:
        return
    try:
        addresses = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {listen}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:
            continue  # a family this host lacks: the server skips it too
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {listen}: {exc.strerror}") from None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def serve(config: Config) -> None:
    """Entry point of ``cronwarden serve``: DataDirLocked reaches the CLI."""
    share_malloc_arenas()  # before any thread
    configure_logging(config.daemon.log_format, node=config.daemon.node_name)
    _use_pidfd_child_watcher()
    # The daemon's own files are private; tasks keep the umask cronwarden was given.
    task_umask = os.umask(PRIVATE_UMASK)
    code = asyncio.run(Daemon(config, task_umask=task_umask).run())
    if code:
        raise SystemExit(code)
