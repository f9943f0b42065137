"""The keeper as a daemon meets it (cronwarden/keeper.py, runners/keeping.py): a real
keeper process, real pipes and processes; a daemon's death is its connection closing
without a word."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

from cronwarden.runners.keeping import KeeperLink


def die(link: KeeperLink) -> None:
    """What a kill -9 of the daemon does to its end of the keeper's connection."""
    sock = link._sock
    assert sock is not None
    asyncio.get_running_loop().remove_reader(sock.fileno())
    sock.close()
    link._sock = None
    link._closing = True


async def test_a_new_life_gets_back_the_pipes_and_what_waits_in_them(tmp_path: Path) -> None:
    first = KeeperLink(tmp_path)
    await first.attach()
    read_end, write_end = os.pipe()
    first.hold("run-1", os.getpid(), lambda: [read_end], stop_signal=15, kill_grace=1.0)
    await asyncio.sleep(0)
    die(first)
    os.close(read_end)  # the dead daemon's copy
    os.write(write_end, b"written while no daemon read\n")  # no SIGPIPE: the keeper reads

    second = KeeperLink(tmp_path)
    await second.attach()
    held = second.claim("run-1")
    assert len(held) == 1
    assert os.read(held[0], 100) == b"written while no daemon read\n"
    assert second.claim("run-1") == ()  # claimed once
    os.close(write_end)
    os.close(held[0])
    await second.close(detach=False)


async def test_a_dead_nodes_keeper_stops_its_runs(tmp_path: Path) -> None:
    link = KeeperLink(tmp_path, fence_grace=0.5)
    await link.attach()
    link.fence(True)  # another node shares the database
    read_end, write_end = os.pipe()
    child = subprocess.Popen(  # noqa: ASYNC220
        ["sh", "-c", "trap '' TERM; echo ready; sleep 60"],  # killed at the grace, then
        stdout=write_end,
        start_new_session=True,
    )
    os.close(write_end)
    link.hold("run-1", child.pid, lambda: [read_end], stop_signal=15, kill_grace=30.0)
    assert await asyncio.to_thread(os.read, read_end, 6) == b"ready\n"  # TERM is ignored now
    die(link)
    returncode = await asyncio.to_thread(child.wait, 10)
    assert returncode == -signal.SIGKILL
    os.close(read_end)


async def test_a_keeper_left_alone_exits_once_its_runs_are_spent(tmp_path: Path) -> None:
    link = KeeperLink(tmp_path)
    await link.attach()
    keeper = link._process
    assert keeper is not None
    read_end, write_end = os.pipe()
    link.hold("run-1", os.getpid(), lambda: [read_end], stop_signal=15, kill_grace=1.0)
    await asyncio.sleep(0)
    die(link)
    await asyncio.sleep(0.2)
    assert keeper.poll() is None  # it holds a pipe with a writer
    os.close(write_end)  # the run ended, printing nothing more
    assert await asyncio.to_thread(keeper.wait, 10) == 0
    os.close(read_end)


async def test_a_keeper_that_dies_is_replaced_and_given_every_run(tmp_path: Path) -> None:
    link = KeeperLink(tmp_path)
    await link.attach()
    keeper = link._process
    assert keeper is not None
    read_end, write_end = os.pipe()
    link.hold("run-1", os.getpid(), lambda: [read_end], stop_signal=15, kill_grace=1.0)
    await asyncio.sleep(0.1)
    keeper.kill()
    await asyncio.to_thread(wait_for, lambda: link._process is not keeper, 10, "a new keeper")
    await asyncio.to_thread(
        wait_for, lambda: link._sock is not None, 10, "attached to the new keeper"
    )
    await asyncio.sleep(0.1)
    die(link)
    os.close(read_end)
    os.write(write_end, b"still read\n")
    second = KeeperLink(tmp_path)
    await second.attach()
    held = second.claim("run-1")
    assert os.read(held[0], 100) == b"still read\n"
    os.close(write_end)
    os.close(held[0])
    await second.close(detach=False)


@pytest.mark.parametrize("depth", [1, 12])
async def test_a_deep_data_dir_is_no_obstacle(tmp_path: Path, depth: int) -> None:
    """A unix socket's address holds 108 bytes; data_dir may be deeper than that."""
    data_dir = tmp_path.joinpath(*["a-rather-long-directory-name"] * depth)
    data_dir.mkdir(parents=True)
    link = KeeperLink(data_dir)
    await link.attach()
    assert (data_dir / "keeper.sock").stat().st_mode & 0o777 == 0o600
    await link.close(detach=False)


def test_a_keeper_no_daemon_comes_back_to_lets_its_runs_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour alone (here half a second), the keeper lets every pipe go and exits: a
    run still printing then meets a closed pipe, as it would without a keeper."""
    import socket
    import threading

    from cronwarden import keeper as program

    monkeypatch.setattr(program, "ALONE_AT_MOST", 0.5)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(tmp_path / "k.sock"))
    listener.listen(1)
    serving = threading.Thread(target=program.Keeper(listener).serve, daemon=True)
    serving.start()
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    daemon.connect(str(tmp_path / "k.sock"))
    read_end, write_end = os.pipe()
    program.send(daemon, {"op": "keep", "run": "r1", "pid": os.getpid()}, [read_end])
    os.close(read_end)
    os.write(write_end, b"x" * 1000)  # unread: the run's pipe is not spent
    daemon.close()  # the daemon died
    serving.join(10)
    assert not serving.is_alive()
    with pytest.raises(BrokenPipeError):
        os.write(write_end, b"more")
    os.close(write_end)
    listener.close()


async def test_pipes_queued_behind_a_slow_keeper_are_the_runs_own(tmp_path: Path) -> None:
    """A keeper that does not read fills the socket; a run's pipes queued meanwhile are
    still its own when they leave, though the run closed its descriptors and their
    numbers went to other files."""
    link = KeeperLink(tmp_path)
    await link.attach()
    keeper = link._process
    assert keeper is not None
    keeper.send_signal(signal.SIGSTOP)
    try:
        for i in range(100_000):  # small messages without descriptors, until one waits
            link.fence(i % 2 == 0)
            await asyncio.sleep(0)  # the turn's end: what it said is sent
            if link._outbox:
                break
        assert link._outbox
        link.fence(False)  # as it began: a keeper alone keeps the runs of a dead daemon
        read_end, write_end = os.pipe()
        link.hold("r1", os.getpid(), lambda: [read_end], stop_signal=15, kill_grace=1.0)
        os.close(read_end)  # the run's own end, closed before the message left
        other_read, other_write = os.pipe()  # likely the same number, another pipe
    finally:
        keeper.send_signal(signal.SIGCONT)
    await asyncio.to_thread(
        wait_for,
        lambda: not link._outbox,
        20,
        "the queue sent",
    )
    die(link)
    os.write(write_end, b"the run's own pipe\n")
    second = KeeperLink(tmp_path)
    await second.attach()
    held = second.claim("r1")
    assert os.read(held[0], 100) == b"the run's own pipe\n"
    for fd in (write_end, other_read, other_write, held[0]):
        os.close(fd)
    await second.close(detach=False)


async def test_what_a_turn_says_reaches_the_keeper_each_pipe_with_its_run(tmp_path: Path) -> None:
    """Many runs spawned and ended in one turn of the loop: the keeper is told in a few
    datagrams, and each run's pipes are still its own, the ended ones let go."""
    link = KeeperLink(tmp_path)
    await link.attach()
    pipes = {f"run-{i}": os.pipe() for i in range(70)}  # more than one datagram holds
    releases = {}
    for run, (read_end, _) in pipes.items():
        fds = [read_end] if run != "run-3" else []  # one run whose output ended at once
        releases[run] = link.hold(run, os.getpid(), lambda f=fds: f, stop_signal=15, kill_grace=1.0)
    for run in ("run-0", "run-41", "run-69"):
        releases[run]()  # their output ended
    link.fence(False)  # said with them: the drops go now too
    await asyncio.sleep(0)
    die(link)
    let_go = {"run-0", "run-3", "run-41", "run-69"}
    for run, (read_end, write_end) in pipes.items():
        os.close(read_end)  # the dead daemon's copies
        if run not in let_go:  # (no reader left for the others: SIGPIPE)
            os.write(write_end, run.encode())
    second = KeeperLink(tmp_path)
    await second.attach()
    for run, (_, write_end) in pipes.items():
        held = second.claim(run)
        if run in let_go:
            assert held == ()
        else:
            assert len(held) == 1
            assert os.read(held[0], 100) == run.encode()
            os.close(held[0])
        os.close(write_end)
    await second.close(detach=False)


async def test_a_turn_with_more_descriptors_than_one_datagram_carries_reaches_the_keeper(
    tmp_path: Path,
) -> None:
    """A keeper's datagram carries MAX_FDS descriptors at most (more would be cut short
    by the kernel, which the keeper reads as its daemon's death): a turn holding more
    goes in several."""
    link = KeeperLink(tmp_path)
    await link.attach()
    pipes = {f"run-{i}": [os.pipe() for _ in range(3)] for i in range(30)}  # 90 descriptors
    for run, ends in pipes.items():
        fds = [read_end for read_end, _ in ends]
        link.hold(run, os.getpid(), lambda f=fds: f, stop_signal=15, kill_grace=1.0)
    await asyncio.sleep(0)
    die(link)
    for ends in pipes.values():
        for read_end, write_end in ends:
            os.close(read_end)
            os.write(write_end, b"kept")  # no SIGPIPE: the keeper holds every pipe
    second = KeeperLink(tmp_path)
    await second.attach()
    for run, ends in pipes.items():
        held = second.claim(run)
        assert len(held) == 3, run
        for fd in held:
            assert os.read(fd, 10) == b"kept"
            os.close(fd)
        for _, write_end in ends:
            os.close(write_end)
    await second.close(detach=False)
