"""Learning how a process that is no longer our child ended.

After a daemon crash its runs' processes may still be alive, re-parented elsewhere: the
restarted daemon cannot ``waitpid`` them.  Linux's process-events connector (netlink,
``PROC_EVENT_EXIT``) reports the exit status of *any* process to a privileged listener,
so a daemon running as root records the real outcome of a re-adopted run.  Without the
privilege, a pidfd still says *when* the process ended, and the run records that its
exit status could not be read.

The listener is opened before liveness is checked, so an exit cannot slip between.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog

from cronwarden.runners.proc_events import PROC_CN_MCAST_IGNORE, control, exit_of, open_events

log = structlog.get_logger("cronwarden.adoption")


class ExitWatcher:
    """Futures for process exits: the return code (negative for a signal, as asyncio
    reports it) when privileged, else None once the process is gone."""

    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock
        self._waiting: dict[int, asyncio.Future[int | None]] = {}
        self._pidfds: dict[int, int] = {}
        if sock is not None:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._on_events)

    @classmethod
    def open(cls) -> ExitWatcher:
        try:
            sock = open_events()
        except OSError as exc:
            log.warning(
                "adoption.no_exit_events",
                reason=str(exc),
                consequence="re-adopted runs will not know their exit status",
            )
            return cls(None)
        return cls(sock)

    def watch(self, pid: int) -> asyncio.Future[int | None]:
        """A future for the exit of ``pid``: its return code, or None when unknowable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self._waiting[pid] = future
        if self._sock is None:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                future.set_result(None)
                return future
            self._pidfds[pid] = fd
            loop.add_reader(fd, self._on_pidfd, pid)
        return future

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for pid in list(self._pidfds):
            self._drop_pidfd(pid)
        if self._sock is not None:
            loop.remove_reader(self._sock.fileno())
            with contextlib.suppress(OSError):
                self._sock.send(control(PROC_CN_MCAST_IGNORE))
            self._sock.close()
            self._sock = None

    def _on_pidfd(self, pid: int) -> None:
        self._drop_pidfd(pid)
        self._resolve(pid, None)

    def _drop_pidfd(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def _on_events(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ENOBUFS when events overflowed the buffer
                log.warning("adoption.events_lost", reason=str(exc))
                return
            event = exit_of(data)
            if event is not None and event.pid in self._waiting:
                self._resolve(event.pid, event.returncode)

    def _resolve(self, pid: int, returncode: int | None) -> None:
        future = self._waiting.pop(pid, None)
        if future is not None and not future.done():
            future.set_result(returncode)
