"""One exception hierarchy for cronwarden; each docstring is the default message."""

from __future__ import annotations


class CronwardenError(Exception):
    """cronwarden failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(CronwardenError):
    """The configuration is invalid."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: {count} error{'s' if count != 1 else ''}\n{lines}")


class ScheduleError(CronwardenError, ValueError):
    """The schedule expression is invalid."""


class TaskNotFound(CronwardenError):
    """No task has that name."""


class RunNotFound(CronwardenError):
    """No run has that id."""


class InvalidRunId(CronwardenError):
    """A run id is a UUID such as 0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a."""


class Conflict(CronwardenError):
    """The request conflicts with the current state."""


class TriggerRefused(Conflict):
    """The task refused the trigger."""


class InvalidParams(CronwardenError):
    """The run parameters are invalid."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class ShuttingDown(CronwardenError):
    """The daemon is shutting down and accepts no new runs."""


class DataDirLocked(CronwardenError):
    """Another cronwarden daemon already uses this data_dir."""
