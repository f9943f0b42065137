"""Pure: how a process's end maps to end_reason, exit_code, signal and error."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cronwarden.config import SHELL
from cronwarden.model import EndReason

SHELL_NOT_FOUND = 127
SHELL_NOT_EXECUTABLE = 126


@dataclass(frozen=True)
class Outcome:
    end_reason: EndReason
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None


def runs_in_shell(argv: Sequence[str]) -> bool:
    """Whether argv is a string command under the shell (so 126/127 mean the shell's)."""
    return tuple(argv[:2]) == SHELL


def classify(
    returncode: int,
    *,
    forced: EndReason | None,
    success_exit_codes: Collection[int],
    via_shell: bool,
) -> Outcome:
    """``forced`` is why the runner ended the process (timeout, stopped, log_overflow).

    A negative return code means a signal ended the process: ``signal`` holds its number
    and ``exit_code`` stays null, so "killed by 9" is never confused with "exited 137".
    """
    exit_code = returncode if returncode >= 0 else None
    signal = -returncode if returncode < 0 else None
    if forced is not None:
        return Outcome(forced, exit_code, signal)
    if exit_code is not None and exit_code in success_exit_codes:
        return Outcome(EndReason.SUCCESS, exit_code, None)
    error = None
    if via_shell and exit_code == SHELL_NOT_FOUND:
        error = "command not found (the shell exited 127)"
    elif via_shell and exit_code == SHELL_NOT_EXECUTABLE:
        error = "command not executable (the shell exited 126)"
    return Outcome(EndReason.FAILED, exit_code, signal, error)
