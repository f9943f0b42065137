"""One exception hierarchy for cronwarden; each docstring is the default message."""

from __future__ import annotations


def short_message(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text, bounded: fit for a log field or an API error."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CronwardenError(Exception):
    """cronwarden failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(CronwardenError):
    """The configuration is invalid."""

    def __init__(self, path: str, problems: list[str], warnings: tuple[str, ...] = ()) -> None:
        self.path = path
        self.problems = problems
        self.warnings = warnings  # said beside the errors, so a fix does not uncover more
        count = len(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: {count} error{'s' if count != 1 else ''}\n{lines}")


class ScheduleError(CronwardenError, ValueError):
    """The schedule expression is invalid."""


class TaskNotFound(CronwardenError):
    """No task has that name."""


class RunNotFound(CronwardenError):
    """No run has that id."""


class ArtifactNotFound(CronwardenError):
    """The run keeps no artifact of that name."""


class InvalidRunId(CronwardenError):
    """A run id is a UUID such as 0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a."""


class Conflict(CronwardenError):
    """The request conflicts with the current state."""


class CarriedElsewhere(Conflict):
    """The run is carried by another node."""

    def __init__(self, message: str, node: str) -> None:
        super().__init__(message)
        self.node = node


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


class CgroupUnavailable(CronwardenError):
    """Runs cannot get cgroups of their own on this host (the message says why)."""


class IdempotencyMismatch(CronwardenError):
    """This Idempotency-Key was already used for a request with another body."""


class IllegalTransition(CronwardenError):
    """A run was asked to move to a state its current state does not lead to."""


class MigrationFailed(CronwardenError):
    """The database's schema could not be brought to this version's."""


class StoreUnavailable(CronwardenError):
    """The database cannot be reached right now; nothing was written."""


class RecorderStopped(CronwardenError):
    """The daemon's database writer has stopped (the daemon is going down loudly)."""


class GaveUp(CronwardenError):
    """The database stayed unreachable for longer than the write could wait."""


class InvalidCursor(CronwardenError):
    """The cursor is not one this server handed out; start again without it."""


class InvalidExpand(CronwardenError):
    """expand takes attempts and related (comma-separated or repeated)."""


class InvalidTags(CronwardenError):
    """A tag is 1 to 64 characters of A-Z a-z 0-9 . _ - : / =; at most 10 per trigger."""


class InvalidMetadata(CronwardenError):
    """Run metadata is a JSON object of at most 4096 bytes."""


class StartFailed(CronwardenError):
    """The process could not be started; the message says why, for the run's ``error``."""


class Unauthorized(CronwardenError):
    """A token is needed: send Authorization: Bearer <token>."""


class Forbidden(CronwardenError):
    """The token's scope does not allow this request."""
