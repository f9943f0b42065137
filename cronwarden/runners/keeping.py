"""The daemon's end of its keeper (cronwarden/keeper.py): every run's output pipes are
held by a second process, so a daemon crash costs no run its life.

At start-up the daemon attaches to the keeper a previous life left (or starts one) and
takes back the pipes of the runs it will adopt; from then on each run's pipes are
handed over as it spawns and let go when its output ends.  Should the keeper itself
die, a new one is started and given the pipes of every run in flight.

What a turn of the loop says goes in one datagram, at the turn's end (``many``): every
send wakes the keeper, and while the machine is busy that wake-up costs the loop more
than the send (a tenth of its time in a 10,000-run minute, at two sends a run).  A drop
waits up to DROP_WAIT for company: the keeper holding a spent pipe a moment longer
changes nothing.  The price: a daemon killed in the very turn that spawned a run (at
most two spawns a turn) leaves that run's pipes to no one, as before any keeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from cronwarden import keeper as program
from cronwarden.host.subreaper import disown_child, own_child
from cronwarden.keeper import MANY_AT_MOST, MAX_FDS, SOCKET_NAME, VERSION, receive, send

log = structlog.get_logger("cronwarden.keeper")

HELLO_TIMEOUT = 10.0  # s for a keeper to hand back what it holds
DROP_WAIT = 0.05  # s a drop may wait to go with other messages


@dataclass(frozen=True)
class HeldPipes:
    """A run's output pipes as a previous life left them: its pid and the daemon's own
    copies of the read ends (stdout, stderr)."""

    pid: int
    fds: tuple[int, ...]


@dataclass
class _Kept:
    pid: int
    fds: Callable[[], list[int]]  # the read ends still open (none once drained)
    stop_signal: int
    kill_grace: float


class KeeperLink:
    def __init__(self, data_dir: Path, *, fence_grace: float = 0.0) -> None:
        """``fence_grace``: while other nodes share the database (``fence``), the
        keeper stops the runs of a daemon that died, SIGKILL at most this long after
        their stop_signal.  Otherwise runs outlive the daemon, for its next life."""
        self._path = data_dir / SOCKET_NAME
        self._fence_grace = fence_grace
        self._fence = False
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._kept: dict[str, _Kept] = {}
        self._unclaimed: dict[str, HeldPipes] = {}
        # Said this turn, not sent yet: each message with copies of its descriptors.
        self._said: list[tuple[dict[str, Any], list[int]]] = []
        self._sending: asyncio.Handle | None = None  # the send of what was said
        self._outbox: deque[tuple[dict[str, Any], list[int]]] = deque()
        self._closing = False
        self._restarting: asyncio.Task[None] | None = None

    async def attach(self) -> None:
        """Attach to the keeper a previous life left, or start one; what it held waits
        for ``claim``."""
        sock = _connect(self._path)
        if sock is not None:
            try:
                held, version = _hello(sock, self._hello())
            except (OSError, ValueError) as exc:
                log.warning("keeper.unanswered", error=str(exc), consequence="a new keeper")
                sock.close()
                sock = None
            else:
                self._unclaimed = held
                if version != VERSION:  # an older keeper: its pipes move to a new one
                    send(sock, {"op": "bye"})
                    sock.close()
                    sock = None
        if sock is None:
            sock = self._start_keeper()
            _hello(sock, self._hello())
            for run_id, pipes in self._unclaimed.items():
                send(sock, {"op": "keep", "run": run_id, "pid": pipes.pid}, list(pipes.fds))
        self._use(sock)
        if self._unclaimed:
            log.info("keeper.attached", runs_held=len(self._unclaimed))

    def claim(self, run_id: str) -> tuple[int, ...]:
        """The pipes a previous life's run left (stdout, stderr read ends), for the life
        that adopts it; none if its keeper did not hold them."""
        pipes = self._unclaimed.pop(run_id, None)
        return pipes.fds if pipes is not None else ()

    def drop_unclaimed(self) -> None:
        """Runs held for a previous life that no one adopted (they ended meanwhile):
        what they left in their pipes is not read."""
        for run_id, pipes in self._unclaimed.items():
            for fd in pipes.fds:
                os.close(fd)
            self._send({"op": "drop", "run": run_id})
        self._unclaimed.clear()

    def hold(
        self,
        run_id: str,
        pid: int,
        fds: Callable[[], list[int]],
        *,
        stop_signal: int,
        kill_grace: float,
    ) -> Callable[[], None]:
        """Hand a run's pipes to the keeper; returns what lets them go (once its output
        ended: a background process still holding them then gets SIGPIPE, as it would
        without a keeper)."""
        kept = _Kept(pid, fds, stop_signal, kill_grace)
        self._kept[run_id] = kept
        self._send(_keep(run_id, kept), fds())

        def release() -> None:
            if self._kept.pop(run_id, None) is not None:
                self._send({"op": "drop", "run": run_id}, wait=DROP_WAIT)

        return release

    async def close(self, *, detach: bool) -> None:
        """A normal stop says goodbye (the keeper exits); a failed start-up detaches
        (the runs it let go stay held for the next life)."""
        self._closing = True
        if self._restarting is not None:
            self._restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restarting
        self.drop_unclaimed()
        self._send({"op": "detach" if detach else "bye"})
        self._send_said()
        self._flush_before_leaving()
        self._disconnect()
        if self._process is not None and not detach:
            await asyncio.to_thread(_reap, self._process)

    # -- the connection -------------------------------------------------------------

    def fence(self, on: bool) -> None:
        """Other nodes share the database now (``on``): a survivor would retry this
        node's runs should its daemon die, so they must die with it."""
        if on != self._fence:
            self._fence = on
            self._send(self._fencing("fence"))
            # An operator (and a test) can tell when a crash would take the runs along.
            log.info("keeper.fence", on=on)

    def _fencing(self, op: str) -> dict[str, Any]:
        return {"op": op, "fence": self._fence, "fence_grace": self._fence_grace}

    def _hello(self) -> dict[str, Any]:
        return self._fencing("hello")

    def _start_keeper(self) -> socket.socket:
        """A new keeper on a fresh listening socket, and the daemon's connection to it."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with _reachable(self._path) as address:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(address)
                listener.bind(address)
                os.chmod(address, 0o600)
            listener.listen(8)
            fd = listener.fileno()
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", program.__file__, str(fd)],
                pass_fds=[fd],
                env={},  # it needs none, and the daemon's may hold secrets
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a signal to the daemon's group is not its
            )
            own_child(self._process.pid)
        finally:
            listener.close()
        sock = _connect(self._path)
        if sock is None:
            raise OSError(f"the keeper started at {self._path} does not answer")
        log.info("keeper.started", pid=self._process.pid, socket=str(self._path))
        return sock

    def _use(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            got = receive(self._sock)
        except BlockingIOError:
            return
        except (OSError, ValueError):
            got = None
        if got is None:
            self._lost("the keeper closed its end")
        else:
            for fd in got[1]:
                os.close(fd)

    def _send(
        self, message: dict[str, Any], fds: list[int] | None = None, *, wait: float = 0.0
    ) -> None:
        """Say ``message`` at the end of this turn, or within ``wait`` seconds."""
        if self._sock is None:
            return  # a keeper is being started: it will be given every run in flight
        # With copies of its descriptors: the run may close its own (and the number be
        # reused for another file) before the message leaves.
        self._said.append((message, [os.dup(fd) for fd in fds or []]))
        pending = self._sending
        if pending is None or (not wait and isinstance(pending, asyncio.TimerHandle)):
            if pending is not None:
                pending.cancel()  # a drop's wait: it goes now, with this
            loop = asyncio.get_running_loop()
            self._sending = (
                loop.call_later(wait, self._send_said) if wait else loop.call_soon(self._send_said)
            )

    def _send_said(self) -> None:
        """What was said since the last send, in as few datagrams as the keeper reads
        (MANY_AT_MOST messages, MAX_FDS descriptors each)."""
        if self._sending is not None:
            self._sending.cancel()
            self._sending = None
        said, self._said = self._said, []
        for part in _datagrams(said):
            if len(part) == 1:
                self._deliver(*part[0])
                continue
            messages = [{**message, "fds": len(fds)} if fds else message for message, fds in part]
            self._deliver(
                {"op": "many", "messages": messages}, [fd for _, fds in part for fd in fds]
            )

    def _deliver(self, message: dict[str, Any], fds: list[int]) -> None:
        """Send now, or queue behind what waits for room (``fds`` are the message's own
        copies: closed once sent)."""
        if self._sock is None:
            _close_all(fds)
            return
        if self._outbox:
            self._outbox.append((message, fds))
            return
        try:
            send(self._sock, message, fds)
        except BlockingIOError:
            asyncio.get_running_loop().add_writer(self._sock.fileno(), self._flush)
            self._outbox.append((message, fds))
            return
        except OSError as exc:
            _close_all(fds)
            self._lost(str(exc))
            return
        _close_all(fds)

    def _flush(self) -> None:
        assert self._sock is not None
        try:
            self._send_queued()
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(str(exc))
            return
        asyncio.get_running_loop().remove_writer(self._sock.fileno())

    def _send_queued(self) -> None:
        assert self._sock is not None
        while self._outbox:
            send(self._sock, *self._outbox[0])
            self._forget_first()

    def _forget_first(self) -> None:
        _close_all(self._outbox.popleft()[1])

    def _flush_before_leaving(self) -> None:
        """What is still queued, sent waiting (a stop: the keeper reads it at once)."""
        if self._sock is None or not self._outbox:
            return
        asyncio.get_running_loop().remove_writer(self._sock.fileno())
        self._sock.settimeout(HELLO_TIMEOUT)
        with contextlib.suppress(OSError):
            self._send_queued()

    def _disconnect(self) -> None:
        if self._sock is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._sock.fileno())
        loop.remove_writer(self._sock.fileno())
        self._sock.close()
        self._sock = None
        if self._sending is not None:
            self._sending.cancel()
            self._sending = None
        for _, fds in self._said:
            _close_all(fds)
        self._said.clear()
        while self._outbox:
            self._forget_first()

    def _lost(self, why: str) -> None:
        self._disconnect()
        if self._closing or self._restarting is not None:
            return
        log.warning("keeper.lost", reason=why, runs=len(self._kept))
        self._restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        """A keeper died: a new one gets the pipes of every run in flight."""
        try:
            if self._process is not None:
                await asyncio.to_thread(_reap, self._process)
            sock = self._start_keeper()
            _hello(sock, self._hello())
            for run_id, kept in self._kept.items():
                send(sock, _keep(run_id, kept), kept.fds())
            self._use(sock)
            log.info("keeper.restarted", runs=len(self._kept))
        except OSError as exc:
            log.error("keeper.unavailable", error=str(exc), consequence="runs die with the daemon")
        finally:
            self._restarting = None


def _keep(run_id: str, kept: _Kept) -> dict[str, Any]:
    return {
        "op": "keep",
        "run": run_id,
        "pid": kept.pid,
        "stop_signal": kept.stop_signal,
        "kill_grace": kept.kill_grace,
    }


def _hello(sock: socket.socket, hello: dict[str, Any]) -> tuple[dict[str, HeldPipes], int]:
    """Say hello; what the keeper holds, and its version."""
    sock.settimeout(HELLO_TIMEOUT)
    send(sock, hello)
    held: dict[str, HeldPipes] = {}
    while True:
        got = receive(sock)
        if got is None:
            raise ValueError("the keeper closed the connection")
        message, fds = got
        if message.get("op") == "ready":
            return held, int(message.get("version", 0))
        if message.get("op") == "held":
            held[str(message["run"])] = HeldPipes(int(message["pid"]), tuple(fds))


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with _reachable(path) as address:
            sock.connect(address)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    return sock


@contextlib.contextmanager
def _reachable(path: Path) -> Iterator[str]:
    """An address for ``path`` within a unix socket's 108 bytes, however deep data_dir
    is: through the directory's descriptor."""
    fd = os.open(path.parent, os.O_PATH | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _datagrams(
    said: list[tuple[dict[str, Any], list[int]]],
) -> Iterator[list[tuple[dict[str, Any], list[int]]]]:
    """``said`` in order, cut where a datagram would pass the keeper's bounds (one the
    kernel cut short would read to the keeper as its daemon's death)."""
    part: list[tuple[dict[str, Any], list[int]]] = []
    fds = 0
    for message in said:
        if part and (len(part) == MANY_AT_MOST or fds + len(message[1]) > MAX_FDS):
            yield part
            part, fds = [], 0
        part.append(message)
        fds += len(message[1])
    if part:
        yield part


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _reap(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
        disown_child(process.pid)
