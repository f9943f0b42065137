"""The daemon's control variables: what steers cronwarden's own process, never a run's.

systemd hands the daemon a notify socket, a watchdog period, an invocation id, a
journal stream and its state and credentials directories; the operator may give it an
API token or URL for the CLI.  Passed on to a run, they would let a task speak for the
daemon to systemd (READY=1, WATCHDOG=1 from the wrong process), write into the
daemon's state, read its credentials or use its token.  So none of them reaches a
run from the daemon's environment, even with ``inherit_env = true``; a task's own
``env`` or ``env_file`` may still set such a name, as an explicit choice.

Kept free of imports from the rest of cronwarden: config validation (refusing such
names in ``inherit_env`` lists) and the runner both read it.
"""

from __future__ import annotations

from collections.abc import Mapping

CONTROL_VARIABLES = frozenset(
    {
        # sd_notify(3), sd_listen_fds(3), sd_watchdog_enabled(3) and the service manager
        "NOTIFY_SOCKET",
        "INVOCATION_ID",
        "JOURNAL_STREAM",
        "MANAGERPID",
        "SYSTEMD_EXEC_PID",
        "MAINPID",
        "PIDFILE",
        "FDSTORE",
        "MEMORY_PRESSURE_WATCH",
        "MEMORY_PRESSURE_WRITE",
        "LOG_NAMESPACE",
        "TRIGGER_UNIT",
        "TRIGGER_PATH",
        "TRIGGER_TIMER_REALTIME_USEC",
        "TRIGGER_TIMER_MONOTONIC_USEC",
        # the directories StateDirectory=, RuntimeDirectory=, ... and credentials give
        "STATE_DIRECTORY",
        "RUNTIME_DIRECTORY",
        "CACHE_DIRECTORY",
        "LOGS_DIRECTORY",
        "CONFIGURATION_DIRECTORY",
        "CREDENTIALS_DIRECTORY",
        # the daemon process's own place, not the run's (a run has its working_dir)
        "PWD",
        "OLDPWD",
    }
)

# Families of names: WATCHDOG_USEC/WATCHDOG_PID, LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES,
# and every CRONWARDEN_* name (the CLI's token and URL; the per-run values cronwarden
# sets itself, which must come from this run and never from the daemon's own).
CONTROL_PREFIXES = ("WATCHDOG_", "LISTEN_", "CRONWARDEN_")
# The run a process belongs to, in its environment: set for every run, read back from
# an orphan's /proc/PID/environ, and by `cronwarden report` inside a run.
RUN_ID_VARIABLE = "CRONWARDEN_RUN_ID"


def is_control_variable(name: str) -> bool:
    """True for a name the daemon's environment must never pass to a run."""
    return name in CONTROL_VARIABLES or name.startswith(CONTROL_PREFIXES)


def without_control_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The daemon's environment as a process it starts (a run, an alert command) may
    have it."""
    return {k: v for k, v in environ.items() if not is_control_variable(k)}
