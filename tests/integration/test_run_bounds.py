"""A task's ``limits`` on real processes, and no process left behind when a run ends:
on the subreaper path (the daemon reaps and ends what a run's processes leave it) and
on the cgroup path (each run in a cgroup v2 of its own), checked by scanning /proc."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import IN_CI, children, process_state  # type: ignore[import-not-found]

ALLOCATE = 100 * 1024 * 1024
ALLOCATOR = f"""\
b = bytearray({ALLOCATE})
b[::4096] = b"x" * len(b[::4096])  # touch every page: resident, not just mapped
"""
SPIN_FOREVER = "while True:\n    pass\n"
OPEN_MANY = "import os\nfds = [os.open('/dev/null', os.O_RDONLY) for _ in range(100)]\n"
# Forks until refused; each child waits, so they all count at once.  Prints how many.
FORK_MANY = (
    "import os, time\n"
    "n = 0\n"
    "for _ in range(20):\n"
    "    try:\n"
    "        pid = os.fork()\n"
    "    except OSError:\n"
    "        break\n"
    "    if pid == 0:\n"
    "        time.sleep(60)\n"
    "        os._exit(0)\n"
    "    n += 1\n"
    "print('forked', n, flush=True)\n"
)
# A grandchild that leaves the run's session and process group, and outlives the run.
DOUBLE_FORK = "(setsid sh -c 'echo escaped; exec sleep 1000' &) ; echo forked"
# The same, ignoring SIGTERM: only SIGKILL ends it.
STUBBORN = "(setsid sh -c 'trap \"\" TERM; echo escaped; sleep 1000' &) ; echo forked"
# One that also sheds its environment: only a cgroup still knows whose it is.
BARE = "(env -i setsid sleep 1000 &) ; echo forked"


def log_texts(daemon, run_id: str) -> list[str]:
    body = daemon.get(f"/api/runs/{run_id}/log?limit=10000").body
    return [line["text"] for line in body["lines"]]


def processes_of_run(run_id: str) -> list[int]:
    """Every live process whose environment names the run (its descendants keep it)."""
    marker = f"CRONWARDEN_RUN_ID={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != b"Z":
            found.append(int(entry))
    return found


def zombie_children(pid: int) -> list[int]:
    return [child for child in children(pid) if process_state(child) == "Z"]


def no_zombie_remains(daemon, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while zombie_children(daemon.proc.pid):
        assert time.monotonic() < deadline, f"zombies: {zombie_children(daemon.proc.pid)}"
        time.sleep(0.05)


def test_a_memory_limit_ends_an_allocator_past_it_and_says_so(make_daemon, tmp_path) -> None:
    (tmp_path / "allocate.py").write_text(ALLOCATOR)
    daemon = make_daemon(
        f"""
    [tasks.big]
    command = ["{sys.executable}", "{tmp_path / "allocate.py"}"]
    limits = {{ memory = "50MB" }}

    [tasks.unbounded]
    command = "dd if=/dev/zero of=/dev/null bs={ALLOCATE} count=1"

    [tasks.idle]
    command = "true"
    """
    )
    assert daemon.get("/api/tasks/big").body["limits"] == {
        "memory": 50_000_000,
        "cpu_time": None,
        "open_files": None,
        "processes": None,
        "cpu": None,
    }
    big = daemon.wait_run(daemon.trigger("big")["id"])
    assert big["end_reason"] == "failed", big
    assert "memory limit 50MB" in big["error"], big
    assert "MemoryError" in "\n".join(log_texts(daemon, big["id"]))
    # Unbounded, dd's one buffer is its peak, within 10% (dd itself is ~1 MB).
    unbounded = daemon.wait_run(daemon.trigger("unbounded")["id"])
    assert unbounded["end_reason"] == "success", unbounded
    assert abs(unbounded["max_rss_bytes"] - ALLOCATE) <= ALLOCATE * 0.1, unbounded
    # A peak below the daemon's own is not known without a memory cgroup: the kernel
    # gives a spawned process its spawner's high-water mark.
    idle = daemon.wait_run(daemon.trigger("idle")["id"])
    assert idle["end_reason"] == "success" and idle["max_rss_bytes"] is None, idle


def test_a_cpu_time_limit_kills_a_spinning_run_and_says_so(make_daemon, tmp_path) -> None:
    (tmp_path / "spin.py").write_text(SPIN_FOREVER)
    daemon = make_daemon(
        f"""
    [tasks.spin]
    command = ["{sys.executable}", "{tmp_path / "spin.py"}"]
    limits = {{ cpu_time = "1s" }}
    """
    )
    run = daemon.wait_run(daemon.trigger("spin")["id"], timeout=60)
    assert (run["end_reason"], run["signal"]) == ("failed", 24), run  # SIGXCPU
    assert run["error"].startswith("killed: cpu_time limit 1s"), run
    # The kernel checks RLIMIT_CPU against CPU time sampled at each timer tick, while
    # wait4 reports the exact run time: on a busy machine a process charged a whole
    # tick for part of one reaches its second of ticks at ~0.85 s of exact time.
    assert run["cpu_user_s"] + run["cpu_system_s"] >= 0.5, run


def test_an_open_files_limit_holds(make_daemon, tmp_path) -> None:
    (tmp_path / "open.py").write_text(OPEN_MANY)
    daemon = make_daemon(
        f"""
    [tasks.show]
    command = "ulimit -n"
    limits = {{ open_files = 16 }}

    [tasks.greedy]
    command = ["{sys.executable}", "{tmp_path / "open.py"}"]
    limits = {{ open_files = 16 }}
    """
    )
    show = daemon.wait_run(daemon.trigger("show")["id"])
    assert show["end_reason"] == "success" and log_texts(daemon, show["id"]) == ["16"], show
    greedy = daemon.wait_run(daemon.trigger("greedy")["id"])
    assert greedy["end_reason"] == "failed", greedy
    assert "open_files limit 16" in greedy["error"], greedy
    assert "Too many open files" in "\n".join(log_texts(daemon, greedy["id"]))


def test_a_processes_limit_holds_for_a_run_user_and_is_said_unenforced_for_root(
    make_daemon,
) -> None:
    daemon = make_daemon(
        f"""
    [tasks.forker]
    command = ["/usr/bin/python3", "-c", '''{FORK_MANY}''']
    user = "nobody"
    limits = {{ processes = 4 }}

    [tasks.as_root]
    command = "true"
    limits = {{ processes = 4 }}
    """
    )
    run = daemon.wait_run(daemon.trigger("forker")["id"], timeout=60)
    lines = log_texts(daemon, run["id"])
    forked = int(next(line for line in lines if line.startswith("forked")).split()[1])
    # RLIMIT_NPROC counts every process of the user: itself and its children, at most 4.
    assert forked <= 3, lines
    assert not processes_of_run(run["id"])
    if os.geteuid() == 0:
        assert "task.limit_unenforced" in daemon.log() and "as_root" in daemon.log()


@pytest.mark.parametrize("cgroups", ["never", "always"])
def test_a_double_forked_process_is_gone_when_its_run_ends(make_daemon, cgroups) -> None:
    daemon = _daemon_with(make_daemon, cgroups, "")
    for task in ("double_fork", "stubborn", "group"):
        run = daemon.wait_run(daemon.trigger(task)["id"], timeout=30)
        assert run["end_reason"] == "success", run
        assert not processes_of_run(run["id"]), (task, run)
    no_zombie_remains(daemon)
    if cgroups == "always":
        runs_cgroups = Path(_cgroups_dir(daemon))
        assert daemon.stop() == 0
        assert not runs_cgroups.exists()  # gone with the daemon


def test_a_run_in_its_own_cgroup_leaves_nothing_even_without_its_environment(
    make_daemon,
) -> None:
    daemon = _daemon_with(make_daemon, "always", "")
    run = daemon.wait_run(daemon.trigger("bare")["id"], timeout=30)
    assert run["end_reason"] == "success", run
    left = [pid for pid in children(daemon.proc.pid) if _command_of(pid) == b"sleep\x001000\x00"]
    assert not left
    assert not Path(_cgroups_dir(daemon), run["id"]).exists()
    no_zombie_remains(daemon)
    assert daemon.stop() == 0


def _daemon_with(make_daemon, cgroups: str, extra: str):
    daemon = make_daemon(
        f"""
    [tasks.double_fork]
    command = '''{DOUBLE_FORK}'''
    kill_grace = "1s"

    [tasks.stubborn]
    command = '''{STUBBORN}'''
    kill_grace = "1s"

    [tasks.group]
    command = "sleep 1000 & echo main done"

    [tasks.bare]
    command = '''{BARE}'''
    {extra}
    """,
        start=False,
        daemon_extra=f'run_cgroups = "{cgroups}"',
    )
    try:
        daemon.start()
    except AssertionError as exc:
        if cgroups == "always" and "cgroup" in str(exc) and not IN_CI:
            pytest.skip(f"this host gives the daemon no cgroup v2 subtree: {exc}")
        raise
    assert "runs.contained" in daemon.log()
    return daemon


def _cgroups_dir(daemon) -> str:
    for line in daemon.log().splitlines():
        if "runs.contained" in line and "a cgroup per run under " in line:
            return line.split("a cgroup per run under ", 1)[1].split(" (", 1)[0]
    raise AssertionError(daemon.log())


def _command_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# Children that outlive their parents inside the run, and exit on their own meanwhile.
ORPHANS_THAT_EXIT = (
    "for i in 1 2 3 4 5; do (sleep 0.1 &) ; (setsid sleep 0.2 &) ; done; sleep 0.5; echo done"
)


def test_as_pid_1_of_a_container_no_zombie_survives(make_daemon) -> None:
    """PID 1 inherits every orphan of its namespace; none is left a zombie."""
    daemon = make_daemon(
        f"""
    [tasks.orphans]
    command = "{ORPHANS_THAT_EXIT}"
    """,
        start=False,
    )
    daemon.wrapper = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    daemon.start()
    inner = children(daemon.proc.pid)  # unshare's one child: the daemon, PID 1 inside
    assert len(inner) == 1, inner
    assert "NSpid:" in (status := Path(f"/proc/{inner[0]}/status").read_text())
    assert status.split("NSpid:", 1)[1].split("\n", 1)[0].split()[-1] == "1"
    for _ in range(3):
        run = daemon.wait_run(daemon.trigger("orphans")["id"], timeout=30)
        assert run["end_reason"] == "success", run
        assert not processes_of_run(run["id"])
    deadline = time.monotonic() + 10
    while zombie_children(inner[0]):
        assert time.monotonic() < deadline, zombie_children(inner[0])
        time.sleep(0.05)
    os.kill(inner[0], signal.SIGTERM)
    assert daemon.proc.wait(30) == 0, daemon.log()
