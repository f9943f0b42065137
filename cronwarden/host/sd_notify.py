"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, a no-op elsewhere."""

from __future__ import annotations

import asyncio
import os
import socket


def notify_socket_set() -> bool:
    return bool(os.environ.get("NOTIFY_SOCKET"))


def sd_notify(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the systemd watchdog period, in seconds, if systemd asked for pings."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


async def watchdog_pings(interval: float) -> None:
    """WATCHDOG=1 every ``interval`` seconds, from the event loop itself: when the loop
    is wedged the pings stop, and systemd restarts the daemon."""
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval)
