"""Would a spawner process close the sustained-runs gap?  A probe, not the daemon.

    python benchmarks/spawner_probe.py [--seconds 15] [--clients 16] [--loop-work-ms 0.8]

The daemon's sustained API runs reach about half of raw spawning (`sustained.py`); its
profiles show the event loop's thread inside ``fork_exec`` for 0.37-0.54 ms a spawn
while the machine is busy (0.09 ms idle): the vfork child waits for a core, and the
loop waits with it.  This measures the cure before building it into the run core.
Three ways of running ``--clients`` concurrent loops of ``/bin/true`` with stdout and
stderr pipes read to EOF and the exit status awaited, one after the other:

* raw: ``asyncio.create_subprocess_exec`` and ``communicate`` (sustained.py's
  baseline), with no other work in the loop;
* in-loop: the same, plus ``--loop-work-ms`` of CPU in the loop's thread per run (what
  the daemon's loop does besides spawning: the HTTP request and answer, the records'
  round trips, the events; ~1.1 ms a run in all was measured, the spawn included);
* spawner: the same work per run, but the process is started by a small stdlib-only
  helper process (``_spawner.py``): the loop sends it the command and the pipes' write
  ends over a unix socket (SCM_RIGHTS), reads the pipes itself, and hears the exit
  status when the helper reaps the child.  The helper's CPU is counted beside it.

Printed: runs/s of each and the ratios to raw; the daemon's target is >= 0.8 of raw.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

COMMAND = ["/bin/true"]
HERE = Path(__file__).resolve().parent


def burn(ms: float) -> None:
    """CPU in this thread: the loop's other work for one run."""
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass


async def raw_run(work_ms: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await proc.communicate()
    burn(work_ms)


class Spawner:
    """The loop's side of ``_spawner.py``: one request a run, two answers back."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(HERE / "_spawner.py"), str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        self.sock = ours
        self.ended: dict[int, asyncio.Future[int]] = {}
        # Answered in the order asked, each with the future of its child's exit status
        self.started: list[asyncio.Future[asyncio.Future[int]]] = []
        asyncio.get_running_loop().add_reader(ours.fileno(), self._answers)

    def _answers(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            answer = json.loads(data)
            if "started" in answer:
                ended = asyncio.get_running_loop().create_future()
                self.ended[answer["started"]] = ended
                self.started.pop(0).set_result(ended)
            else:
                self.ended.pop(answer["ended"]).set_result(answer["status"])

    async def run(self, work_ms: float) -> None:
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        started = loop.create_future()
        self.started.append(started)
        fds = array.array("i", [out_w, err_w])
        request = json.dumps({"argv": COMMAND}).encode()
        self.sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        os.close(out_w)
        os.close(err_w)
        ended = await started
        await asyncio.gather(read_to_end(out_r), read_to_end(err_r))
        await ended
        burn(work_ms)

    def close(self) -> float:
        """Stops the helper; gives its CPU seconds."""
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        _, _, usage = os.wait4(self.process.pid, 0)
        return usage.ru_utime + usage.ru_stime


async def read_to_end(fd: int) -> bytes:
    """Read a pipe to EOF the way asyncio's subprocess transport does."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0)
    )
    try:
        return await reader.read()
    finally:
        transport.close()


async def measure(seconds: float, clients: int, one_run) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    done = 0
    end = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < end:
            await one_run()
            done += 1

    began = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.monotonic() - began), done


async def through_spawner(seconds: float, clients: int, work_ms: float) -> tuple[float, float]:
    spawner = Spawner()
    try:
        rate, done = await measure(seconds, clients, lambda: spawner.run(work_ms))
    finally:
        helper_cpu = spawner.close()
    return rate, helper_cpu * 1000 / max(done, 1)


def cpu_ms_per_run(before: os.times_result, done: int) -> float:
    after = os.times()
    own = (after.user - before.user) + (after.system - before.system)
    return own * 1000 / max(done, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--loop-work-ms", type=float, default=0.8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = args.loop_work_ms
    print(f"{args.clients} clients, {args.seconds:g} s each, {work:g} ms of loop work a run")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        "| round | raw runs/s | in-loop runs/s (ratio) | spawner runs/s (ratio) "
        "| loop CPU a run, in-loop / spawner (+ helper) |"
    )
    print("|---|---|---|---|---|")
    for round_no in range(1, args.rounds + 1):
        raw_rate, _ = asyncio.run(measure(args.seconds, args.clients, lambda: raw_run(0)))
        before = os.times()
        in_loop, done = asyncio.run(measure(args.seconds, args.clients, lambda: raw_run(work)))
        in_loop_ms = cpu_ms_per_run(before, done)
        before = os.times()
        spawned, helper_ms = asyncio.run(through_spawner(args.seconds, args.clients, work))
        spawned_ms = cpu_ms_per_run(before, int(spawned * args.seconds))
        print(
            f"| {round_no} | {raw_rate:.0f} | {in_loop:.0f} ({in_loop / raw_rate:.2f}) "
            f"| {spawned:.0f} ({spawned / raw_rate:.2f}) "
            f"| {in_loop_ms:.2f} / {spawned_ms:.2f} (+ {helper_ms:.2f}) |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
