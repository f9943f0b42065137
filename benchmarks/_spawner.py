"""The helper process of ``spawner_probe.py``: starts processes on request, reaps them.

Run as ``python -I -S _spawner.py FD`` (standard library only, as the keeper is).  FD
is a SOCK_SEQPACKET unix socket.  A request is ``{"argv": [...]}`` with two descriptors
(the write ends of the child's stdout and stderr); the answer ``{"started": pid}``
comes once the child exists, ``{"ended": pid, "status": n}`` once it is reaped.  The
socket closing ends the helper.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import sys

FDS = socket.CMSG_SPACE(2 * array.array("i").itemsize)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.set_inheritable(False)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    env = {"PATH": "/usr/bin:/bin"}
    while True:
        for fd, _ in poller.poll():
            if fd == wake_r:
                while True:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        break
                reap(sock)
                continue
            # Close-on-exec: a child must hold its own pipes only (dup2 clears it on 1, 2).
            data, ancillary, _, _ = sock.recvmsg(4096, FDS, socket.MSG_CMSG_CLOEXEC)
            if not data:
                return
            fds = array.array("i")
            for _, _, payload in ancillary:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            argv = json.loads(data)["argv"]
            out, err = fds
            pid = os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, out, 1),
                    (os.POSIX_SPAWN_DUP2, err, 2),
                ],
                setsid=True,
            )
            os.close(out)
            os.close(err)
            sock.send(json.dumps({"started": pid}).encode())
        reap(sock)


def reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.send(json.dumps({"ended": pid, "status": status}).encode())


if __name__ == "__main__":
    main()
