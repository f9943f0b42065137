"""Where each of a task's limits goes on a host, and what a failed run's error says of
them (pure: no process, no cgroup)."""

from __future__ import annotations

import signal

from cronwarden.config import RunLimits
from cronwarden.host.cgroups import CgroupEvents
from cronwarden.runners.bounds import bound_error, plan_bounds
from cronwarden.support.units import format_size

ALL = RunLimits(memory="512MiB", cpu_time="10m", open_files=64, processes=32, cpu=0.5)
EVERY_CONTROLLER = frozenset({"memory", "pids", "cpu"})


def test_a_cgroup_with_its_controllers_bounds_the_whole_tree() -> None:
    plan = plan_bounds(ALL, EVERY_CONTROLLER, uid=0, prlimit="/usr/bin/prlimit")
    assert dict(plan.cgroup_files) == {
        "memory.max": str(512 << 20),
        "memory.swap.max": "0",
        "pids.max": "32",
        "cpu.max": "50000 100000",
    }
    # CPU time and open files have no controller: each process gets its rlimit.
    assert plan.prefix() == ["/usr/bin/prlimit", "--cpu=600:601", "--nofile=64:64", "--"]
    assert plan.unenforced == ()


def test_without_a_cgroup_rlimits_bound_each_process_and_the_rest_is_said() -> None:
    plan = plan_bounds(ALL, frozenset(), uid=1000, prlimit="/usr/bin/prlimit")
    assert plan.cgroup_files == ()
    assert plan.prefix() == [
        "/usr/bin/prlimit",
        f"--as={512 << 20}:{512 << 20}",
        "--nproc=32:32",
        "--cpu=600:601",
        "--nofile=64:64",
        "--",
    ]
    assert [line.split(":")[0] for line in plan.unenforced] == ["cpu 0.5"]


def test_root_is_exempt_from_rlimit_nproc_so_processes_is_said_unenforced() -> None:
    plan = plan_bounds(RunLimits(processes=8), frozenset(), uid=0, prlimit="/usr/bin/prlimit")
    assert plan.prefix() == []
    assert "root is exempt from RLIMIT_NPROC" in plan.unenforced[0]


def test_without_prlimit_no_rlimit_is_applied_and_each_is_said() -> None:
    plan = plan_bounds(RunLimits(memory="1GiB", open_files=10), frozenset(), uid=0, prlimit=None)
    assert plan.prefix() == []
    assert [line.split(":")[0] for line in plan.unenforced] == ["memory", "open_files"]


def test_no_limits_no_plan() -> None:
    plan = plan_bounds(None, EVERY_CONTROLLER, uid=0, prlimit="/usr/bin/prlimit")
    assert plan.prefix() == [] and plan.cgroup_files == ()
    assert bound_error(plan, signal_number=9, cpu_seconds=1.0, events=CgroupEvents(1, 1)) is None


def test_the_error_names_the_bound_that_ended_the_run() -> None:
    in_cgroup = plan_bounds(ALL, EVERY_CONTROLLER, uid=0, prlimit="/usr/bin/prlimit")
    oom = bound_error(in_cgroup, signal_number=9, cpu_seconds=0.1, events=CgroupEvents(1, 0))
    assert oom == "killed: memory limit 512MiB"
    xcpu = bound_error(
        in_cgroup, signal_number=signal.SIGXCPU, cpu_seconds=600.0, events=CgroupEvents()
    )
    assert xcpu == "killed: cpu_time limit 10m"
    # SIGKILL a second past the soft limit: a process that ignored SIGXCPU.
    killed = bound_error(in_cgroup, signal_number=9, cpu_seconds=601.0, events=CgroupEvents())
    assert killed == "killed: cpu_time limit 10m"
    refused = bound_error(in_cgroup, signal_number=None, cpu_seconds=0.0, events=CgroupEvents(0, 3))
    assert refused == "failed: processes limit 32 refused a new process"


def test_a_run_that_failed_under_rlimits_is_told_which_it_ran_under() -> None:
    plan = plan_bounds(ALL, frozenset(), uid=1000, prlimit="/usr/bin/prlimit")
    error = bound_error(plan, signal_number=None, cpu_seconds=0.2, events=CgroupEvents())
    assert error == (
        "failed under its memory limit 512MiB (address space) and open_files limit 64 "
        "and processes limit 32: a request past a limit fails"
    )


def test_sizes_read_as_they_were_written() -> None:
    assert [format_size(n) for n in (512 << 20, 1 << 30, 50_000_000, 1500001)] == [
        "512MiB",
        "1GiB",
        "50MB",
        "1500001",
    ]
