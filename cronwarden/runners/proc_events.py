"""Linux's process events (netlink, NETLINK_CONNECTOR / CN_IDX_PROC): when and how a
process ended, as the kernel tells it.

Two users: the exit clock below, and adoption.py (the exit status of a process a
previous daemon life started, which is no longer our child).

When a run's process really ended:

The daemon learns of an exit when its loop next turns: a daemon that was stopped
(SIGSTOP, a suspended VM, a loop blocked on a slow disk) for 40 s would otherwise
record a 5 s job as ending 40 s late, and its duration 8 times too long.  Linux's
process-events connector (netlink, NETLINK_CONNECTOR / CN_IDX_PROC) sends an event
for every exit with the kernel's monotonic timestamp; events wait in the socket's
buffer while the daemon is not running, so the true end can be read afterwards.

Listening needs CAP_NET_ADMIN in the initial network namespace (the daemon as root on
the host, as the shipped unit runs it).  Where the kernel refuses, or events were lost
because the buffer overflowed, a run's end is the time the daemon saw it: the same
rule as before, and what the README promises in that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import socket
import struct
import time
from dataclasses import dataclass

import structlog

log = structlog.get_logger("cronwarden.runner")

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
NLMSG_DONE = 3
PROC_EVENT_EXIT = 0x80000000

PROC_CN_MCAST_IGNORE = 2

_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns (CLOCK_MONOTONIC)
_EXIT = struct.Struct("=iiII")  # process_pid, process_tgid, exit_code (wait status), signal
_EVENT_AT = _NLMSG.size + _CN_MSG.size
_EXIT_AT = _EVENT_AT + _EVENT.size
SO_ATTACH_FILTER = 26
# Room for ~100,000 events (~76 bytes each): 40 s of a busy host's exits.
RECEIVE_BUFFER = 8 * 1024 * 1024
_KEPT = 4096  # exits of watched pids not yet asked for (a bound, never reached in use)


@dataclass(frozen=True, slots=True)
class ExitEvent:
    pid: int
    monotonic_ns: int  # when it exited, on CLOCK_MONOTONIC
    returncode: int  # as asyncio reports it: negative for the signal that ended it


def exit_of(message: bytes) -> ExitEvent | None:
    """A process's (thread-group leader's) exit, else None (other events, threads)."""
    if len(message) < _EXIT_AT + _EXIT.size:
        return None
    what, _cpu, timestamp = _EVENT.unpack_from(message, _EVENT_AT)
    if what != PROC_EVENT_EXIT:
        return None
    pid, tgid, status, _ = _EXIT.unpack_from(message, _EXIT_AT)
    if pid != tgid:
        return None
    signum = status & 0x7F
    return ExitEvent(pid, timestamp, -signum if signum else (status >> 8) & 0xFF)


def control(op: int, sender: int = 0) -> bytes:
    """The message that starts (PROC_CN_MCAST_LISTEN) or stops process events."""
    body = struct.pack("=I", op)
    cn_msg = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(body), 0)
    return _NLMSG.pack(_NLMSG.size + len(cn_msg) + len(body), NLMSG_DONE, 0, 0, sender) + (
        cn_msg + body
    )


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def exits_only() -> list[tuple[int, int, int, int]]:
    """A classic BPF program (code, jt, jf, k) that keeps a process's exit and drops
    every other event (forks, execs, a thread's exit) in the kernel: the connector
    tells of every process on the host, ~5 events a run's process, and each read was
    a system call on the event loop (2.5 % of a 10,000-task minute's loop).  Loads
    are big-endian; the event's fields are in host order."""
    exit_as_loaded = int.from_bytes(struct.pack("=I", PROC_EVENT_EXIT), "big")
    pid_at, tgid_at = _EXIT_AT, _EXIT_AT + 4
    return [
        (0x20, 0, 0, _EVENT_AT),  # A = what (a message too short for it is dropped)
        (0x15, 0, 6, exit_as_loaded),  # not an exit: drop
        (0x20, 0, 0, pid_at),  # A = pid
        (0x02, 0, 0, 0),  # M[0] = A
        (0x20, 0, 0, tgid_at),  # A = tgid
        (0x61, 0, 0, 0),  # X = M[0]
        (0x1D, 0, 1, 0),  # pid == tgid (the process, not one of its threads): keep
        (0x06, 0, 0, 0xFFFFFFFF),
        (0x06, 0, 0, 0),
    ]


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    instructions = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(program), ctypes.addressof(instructions))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


def open_events() -> socket.socket:
    """A non-blocking socket subscribed to process exits; OSError where refused
    (not root, not the host's network namespace, no CONFIG_PROC_EVENTS)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    try:
        with contextlib.suppress(OSError):  # SO_RCVBUFFORCE needs CAP_NET_ADMIN
            sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER)  # SO_RCVBUFFORCE
        with contextlib.suppress(OSError):  # unfiltered, exit_of tells exits apart
            _attach(sock, exits_only())
        sock.bind((0, CN_IDX_PROC))
        sock.setblocking(False)
        sock.send(control(PROC_CN_MCAST_LISTEN))
    except OSError:
        sock.close()
        raise
    return sock


class ExitClock:
    """Exit times of the pids it is told to watch, read from the kernel's events."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._watched: set[int] = set()
        self._exits: dict[int, int] = {}
        self.lost = False  # the buffer overflowed once: some exit times are unknown

    @property
    def active(self) -> bool:
        return self._socket is not None

    def open(self) -> bool:
        """Subscribe; False (and the time seen is used) where the kernel refuses."""
        try:
            self._socket = open_events()
        except OSError as exc:
            log.info(
                "exit_clock.unavailable",
                reason=str(exc),
                consequence="a run's end_at is when the daemon saw its process end",
            )
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            if self._watched:
                asyncio.get_running_loop().remove_reader(self._socket)
            self._watched.clear()
            self._socket.close()
            self._socket = None

    def watch(self, pid: int) -> None:
        """Keep ``pid``'s exit time.  Events are read only while some pid is watched,
        so an idle daemon is not woken by every exit on the host; what piled up
        meanwhile is read and dropped here."""
        if self._socket is None:
            return
        if not self._watched:
            self._read_pending()
            self._exits.clear()
            asyncio.get_running_loop().add_reader(self._socket, self._read_pending)
        self._watched.add(pid)

    def take(self, pid: int) -> float | None:
        """Seconds since ``pid`` exited, by the kernel's clock; None if not known (or it
        has not exited).  Forgets the pid: each exit is asked for once, at its end."""
        if self._socket is None or pid not in self._watched:
            return None
        self._read_pending()
        self._watched.discard(pid)
        stamp = self._exits.pop(pid, None)
        if not self._watched:
            asyncio.get_running_loop().remove_reader(self._socket)
        if stamp is None:
            return None
        return max(0.0, (time.monotonic_ns() - stamp) / 1e9)

    def _read_pending(self) -> None:
        """Read every event waiting in the buffer (they are not read between ends:
        nothing needs them until a run ends)."""
        assert self._socket is not None
        while True:
            try:
                message = self._socket.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: events were dropped while not read
                if not self.lost:
                    log.warning("exit_clock.events_lost", reason=str(exc))
                self.lost = True
                continue
            event = exit_of(message)
            if event is not None and event.pid in self._watched and len(self._exits) < _KEPT:
                self._exits[event.pid] = event.monotonic_ns
