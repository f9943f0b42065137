"""The keeper: a small process that holds a copy of every run's output pipes, so a run
outlives its daemon's crash without dying of it.

A run writes into pipes the daemon reads. If the daemon dies (kill -9, an OOM kill, a
bug), the last reader of those pipes is gone, and the run's next write kills it with
SIGPIPE. So, as containerd's shim and podman's conmon keep a container's stdio, the
daemon gives each run's read ends to its keeper as it spawns the run (one message with
two descriptors over a unix socket). While the daemon is down its runs' output waits in
the pipes (a writer blocks once its pipe is full; it never dies of the missing reader);
the next daemon asks the keeper for the pipes of the runs it adopts and goes on reading
and logging them where the last life left off.

One keeper serves a data_dir across daemon lives. The daemon starts it on the listening
socket ``data_dir/keeper.sock`` (mode 0600; only a peer of the keeper's own user is
served) and is its only client. What the daemon says:

* ``hello``: a daemon (re)attached. The keeper answers with a ``held`` message (and the
  two descriptors) per run it holds, then ``ready``; it goes on holding them until told.
* ``keep``: a run started: hold its pipes. ``drop``: its output has ended: let them go
  (a background process that still holds a dropped pipe gets SIGPIPE, as before).
* ``many``: several of the above in one datagram (``messages``, in order; each says how
  many of the datagram's descriptors are its own in ``fds``).  A burst of spawns costs
  the daemon one send a turn, not two a run: each send wakes the keeper, and on a busy
  machine that wake-up is what the daemon's loop waits for.
* ``bye``: a normal stop; the keeper exits. ``detach``: the daemon leaves on purpose
  (a failed start-up): the runs go on, held, waiting for the next life.
* ``fence``: whether other nodes share the daemon's database now (``on``), so a
  survivor would retry its runs should it die (also in ``hello``).
* The connection closing without either is the daemon's death. With ``fence`` on, a
  dead node's runs must not go on while a survivor retries them: the keeper stops each
  run's process group (its stop_signal, then SIGKILL after its kill_grace, at most
  ``fence_grace``) and exits. Otherwise it keeps holding for the next life, and exits
  once it holds nothing.

While no daemon is attached, a held run whose writers are all gone and whose pipes are
empty is let go: nothing more can come. Output left in a pipe keeps it until a daemon
comes to read it, for at most ``ALONE_AT_MOST`` (an hour): a daemon that has not come
back by then is not coming, and the keeper lets every pipe go and exits (a run still
printing then meets SIGPIPE, as it would have without a keeper).

This module is also the keeper's program: the daemon runs it as a script
(``python -I -S keeper.py FD``), so it imports the standard library only (a keeper
costs about 12 MB, not a daemon's 90), and the daemon imports the wire format from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import termios
import time

TYPE_CHECKING = False  # typing and dataclasses would cost the keeper 2 MB
if TYPE_CHECKING:
    from typing import Any

VERSION = 2  # 2: ``many``
SOCKET_NAME = "keeper.sock"
MANY_AT_MOST = 32  # messages in one ``many``: 64 descriptors at most, two a run
MAX_MESSAGE = 16384
MAX_FDS = 2 * MANY_AT_MOST  # a run's stdout and stderr, for each message
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
FIRST_CLIENT_WITHIN = 30.0  # s
ALONE_AT_MOST = 3600.0  # s without a daemon before the keeper gives up its runs


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """One message, and the descriptors it carries (copies arrive at the other end)."""
    data = json.dumps(message, separators=(",", ":")).encode()
    socket.send_fds(sock, [data], fds or [])


def receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """The next message and its descriptors (close-on-exec); None at the end."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    for fd in fds:
        os.set_inheritable(fd, False)
    if not data or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        if data:
            raise ValueError("a keeper message was cut short")
        return None
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("a keeper message is not an object")
    return message, fds


def peer_uid(sock: socket.socket) -> int:
    _, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return int(uid)


class Held:
    """A run's pipes, and how to stop its process group if its daemon dies."""

    __slots__ = ("fds", "kill_grace", "pid", "stop_signal")

    def __init__(self, pid: int, fds: list[int], stop_signal: int, kill_grace: float) -> None:
        self.pid = pid
        self.fds = fds
        self.stop_signal = stop_signal
        self.kill_grace = kill_grace


class Keeper:
    """The keeper's state and its loop (see the module docstring)."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.held: dict[str, Held] = {}
        self.conn: socket.socket | None = None
        self.fence = False
        self.fence_grace = 5.0
        self.kills: list[tuple[float, int]] = []  # (monotonic, pgid)
        self.poller = select.poll()
        self.watched: dict[int, str] = {}  # held fd -> run, while no daemon is attached
        # The daemon that started it connects at once; one that died first leaves no work.
        self.first_client_by: float | None = None
        self.alone_until: float | None = None  # no daemon: when to give up waiting for one

    def serve(self) -> None:
        self.poller.register(self.listener.fileno(), select.POLLIN)
        self.first_client_by = time.monotonic() + FIRST_CLIENT_WITHIN
        while self.conn is not None or self.held or self.kills or self._awaiting_first():
            deadlines = [at for at, _ in self.kills]
            deadlines += [t for t in (self.first_client_by, self.alone_until) if t is not None]
            timeout = None
            if deadlines:
                timeout = max(0.0, min(deadlines) - time.monotonic()) * 1000
            for fd, events in self.poller.poll(timeout):
                self._on_event(fd, events)
            self._kill_due()
            if self.alone_until is not None and time.monotonic() >= self.alone_until:
                for run in list(self.held):
                    self._drop(run)  # no daemon came back: let the runs go

    def _awaiting_first(self) -> bool:
        return self.first_client_by is not None and time.monotonic() < self.first_client_by

    def _on_event(self, fd: int, events: int) -> None:
        if fd == self.listener.fileno():
            self._accept()
        elif self.conn is not None and fd == self.conn.fileno():
            self._read_conn()
        elif fd in self.watched and events & (select.POLLHUP | select.POLLERR):
            self._spent(fd)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        if self.conn is not None:
            self._read_conn()  # the old daemon's end may be waiting to be read
        if self.conn is not None or peer_uid(conn) not in (os.geteuid(), 0):
            conn.close()  # one daemon at a time, and only our own user's
            return
        self.first_client_by = self.alone_until = None
        self.conn = conn
        conn.setblocking(False)
        self._unwatch()
        self.poller.register(conn.fileno(), select.POLLIN)

    def _read_conn(self) -> None:
        assert self.conn is not None
        while self.conn is not None:
            try:
                got = receive(self.conn)
            except BlockingIOError:
                return
            except (OSError, ValueError):
                got = None
            if got is None:
                self._daemon_gone(died=True)
                return
            self._handle(*got)

    def _handle(self, message: dict[str, Any], fds: list[int]) -> None:
        op = message.get("op")
        if op == "many":
            for one in message["messages"]:
                own = int(one.get("fds", 0))
                self._handle(one, fds[:own])
                fds = fds[own:]
            for fd in fds:  # none, from a daemon that counted right
                os.close(fd)
            return
        if op == "keep":
            self._drop(str(message["run"]))
            self.held[str(message["run"])] = Held(
                int(message["pid"]),
                fds,
                int(message.get("stop_signal", signal.SIGTERM)),
                float(message.get("kill_grace", 10.0)),
            )
            return
        for fd in fds:
            os.close(fd)
        if op == "drop":
            self._drop(str(message["run"]))
        elif op == "hello":
            self._set_fence(message)
            self._hand_over()
        elif op == "fence":
            self._set_fence(message)
        elif op == "bye":
            for run in list(self.held):
                self._drop(run)
            self._daemon_gone(died=False)
        elif op == "detach":
            self._daemon_gone(died=False)

    def _set_fence(self, message: dict[str, Any]) -> None:
        self.fence = bool(message.get("fence", False))
        self.fence_grace = float(message.get("fence_grace", 5.0))

    def _hand_over(self) -> None:
        assert self.conn is not None
        self.conn.setblocking(True)  # a few hundred small messages: the daemon reads them
        try:
            for run, held in self.held.items():
                send(self.conn, {"op": "held", "run": run, "pid": held.pid}, held.fds)
            send(self.conn, {"op": "ready", "version": VERSION})
        finally:
            self.conn.setblocking(False)

    def _daemon_gone(self, *, died: bool) -> None:
        assert self.conn is not None
        self.poller.unregister(self.conn.fileno())
        self.conn.close()
        self.conn = None
        if died and self.fence:
            self._fence_all()
        self.alone_until = time.monotonic() + ALONE_AT_MOST
        self._watch()

    def _fence_all(self) -> None:
        now = time.monotonic()
        for run, held in list(self.held.items()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(held.pid, held.stop_signal)
                self.kills.append((now + min(held.kill_grace, self.fence_grace), held.pid))
            self._drop(run)
        with contextlib.suppress(OSError):  # its output may have gone with the daemon
            print(f"cronwarden keeper: the daemon died; stopped {len(self.kills)} runs", flush=True)

    def _kill_due(self) -> None:
        now = time.monotonic()
        due = [k for k in self.kills if k[0] <= now]
        self.kills = [k for k in self.kills if k[0] > now]
        for _, pgid in due:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)

    def _watch(self) -> None:
        """No daemon: hear when a held run's writers are all gone."""
        for run, held in self.held.items():
            for fd in held.fds:
                self.watched[fd] = run
                self.poller.register(fd, 0)  # POLLHUP is always reported

    def _unwatch(self) -> None:
        for fd in self.watched:
            self.poller.unregister(fd)
        self.watched.clear()

    def _spent(self, fd: int) -> None:
        """Every writer of this pipe is gone (HUP stays reported: stop watching it).
        Once all of a run's pipes are spent and empty, nothing more can come."""
        run = self.watched.pop(fd)
        self.poller.unregister(fd)
        held = self.held[run]
        if any(other in self.watched for other in held.fds):
            return
        if not any(_pending(other) for other in held.fds):
            self._drop(run)  # else its output waits for the next daemon

    def _drop(self, run: str) -> None:
        held = self.held.pop(run, None)
        if held is None:
            return
        for fd in held.fds:
            if self.watched.pop(fd, None) is not None:
                self.poller.unregister(fd)
            os.close(fd)


def _pending(fd: int) -> int:
    """Bytes waiting in a pipe."""
    buffer = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buffer)
    return int.from_bytes(buffer, sys.byteorder)


def main(argv: list[str]) -> int:
    """``keeper.py FD``: serve the listening socket the daemon passed as FD."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the daemon
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # two per run held
    listener = socket.socket(fileno=int(argv[1]))
    Keeper(listener).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
