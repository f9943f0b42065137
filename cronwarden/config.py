"""TOML -> validated, frozen pydantic models.

Every problem in a file is reported at once, each naming ``file:line``, the key path
(``tasks.backup.schedule``), the offending value and what is allowed.  Unknown keys are
errors: a typo must never silently disable a setting.  Relative paths are resolved
against the directory of the config file, so the daemon behaves the same whatever its
working directory is.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
import signal
import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, timedelta, tzinfo
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cronwarden.chains import find_cycle, followers
from cronwarden.errors import ConfigError, ScheduleError
from cronwarden.host.control_env import is_control_variable
from cronwarden.outcomes import FailureReason
from cronwarden.packed import PackedModels
from cronwarden.run_tags import check_tags
from cronwarden.scheduler.policies import CatchUp
from cronwarden.scheduler.triggers import AnyTrigger, parse_schedule
from cronwarden.support.units import format_duration, format_size, parse_duration, parse_size

TASK_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
DEFAULT_LISTEN = "127.0.0.1:9477"
# What Debian's cron gives a job, plus /usr/local/*: runs see the same programs as under cron.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELL = ("/bin/sh", "-c")  # how a string command runs
EventName = Literal[
    "run.failed",
    "run.timeout",
    "run.crashed",
    "fire.missed",
    "run.stuck",
    "task.overdue",
    "task.recovered",
    "run.output",
    "run.too_short",
    "run.too_long",
    "fire.late",
    "run.expired",
]
# The rest are opt-in: DESIGN.md's default list is what goes wrong.
DEFAULT_EVENTS: tuple[EventName, ...] = get_args(EventName)[:6]
# retry_on takes failures only (cronwarden/outcomes.py); log_overflow would print as much again.
DEFAULT_RETRY_ON: tuple[FailureReason, ...] = ("failed", "timeout", "crashed")

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
Size = Annotated[int, BeforeValidator(parse_size)]


def _no_negative_duration(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


def _inherit_env(value: object) -> bool | tuple[str, ...]:
    """``inherit_env``: true, false, or names of the daemon's variables (never one of
    its control variables: runners/environment.py leaves those out even with true)."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            'expected true, false or a list of variable names, e.g. ["AWS_PROFILE", "LANG"]'
        )
    for name in value:
        _env_name(name)
        if is_control_variable(name):
            raise ValueError(
                f"{name!r} is one of the daemon's control variables, which never reach a run "
                "(NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*, INVOCATION_ID, CRONWARDEN_*, ...); "
                "set it in env or env_file if the task needs it"
            )
    return tuple(value)


def _env_name(value: str) -> str:
    if not ENV_NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid variable name (letters, digits, _; "
            "not starting with a digit)"
        )
    return value


def _hold_name(value: str) -> str:
    if not TASK_NAME_RE.fullmatch(value):
        raise ValueError(f"invalid name {value!r}; names are 1-100 characters of A-Z a-z 0-9 . _ -")
    return value


def _node_patterns(value: object) -> tuple[str, ...]:
    """``nodes``: globs over node names (``fnmatch``, case-sensitive: node names are
    compared as written), at least one; leaving the key out means any node."""
    example = 'e.g. ["web-*", "db1"]'
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of node-name patterns, {example}")
    if not value:
        raise ValueError(
            f"needs at least one pattern, {example}; leave nodes out for a task any node runs"
        )
    for pattern in value:
        if (
            not pattern
            or len(pattern) > 200
            or not pattern.isprintable()
            or pattern != pattern.strip()
        ):
            raise ValueError(
                f"{pattern!r} is not a node-name pattern: 1-200 printable characters, no "
                f"leading or trailing space, with * ? [...] as wildcards ({example})"
            )
    return tuple(value)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


def _signal_number(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError('expected a signal name such as "SIGTERM" or "INT", or a number')
    try:
        if isinstance(value, int):
            return int(signal.Signals(value))
        if isinstance(value, str):
            name = value.strip().upper()
            if name.isdigit():
                return int(signal.Signals(int(name)))
            return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except (KeyError, ValueError):
        pass
    raise ValueError('expected a signal name such as "SIGTERM" or "INT", or a number')


def _umask(value: object) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{1,3}", value.strip()):
        return int(value.strip(), 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return value
    raise ValueError('expected an octal string such as "022" or "0027" (or a TOML octal 0o022)')


def _alert_after(value: object) -> int:
    """``alert_after_failures``: how many failing runs in a row raise the failure alert."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1000:
        return value
    raise ValueError(
        "expected a whole number from 1 to 1000: the failing runs in a row that raise the "
        "failure alert (1, the default, alerts on every failing run)"
    )


_TASK_GLOB_RE = re.compile(r"(?:[A-Za-z0-9._\-*?]|\[!?[A-Za-z0-9._\-]+\])+")


def _task_globs(value: object) -> tuple[str, ...]:
    """``[notify.NAME] tasks``: globs over task names (``fnmatch``, case-sensitive, as
    task names are).  A glob that could match no task name is refused: a typo must not
    quietly route nothing."""
    example = 'e.g. ["backup-*", "db?-dump", "nightly"]'
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of task-name globs, {example}")
    for glob in value:
        if len(glob) > 200 or not _TASK_GLOB_RE.fullmatch(glob):
            raise ValueError(
                f"{glob!r} is not a task-name glob: the characters of task names "
                f"(A-Z a-z 0-9 . _ -) with * ? and [...] as wildcards, {example}"
            )
    return tuple(value)


NonNegDuration = Annotated[Duration, AfterValidator(_no_negative_duration)]
AlertAfter = Annotated[int, BeforeValidator(_alert_after)]
TaskGlobs = Annotated[tuple[str, ...], BeforeValidator(_task_globs)]
EnvName = Annotated[str, AfterValidator(_env_name)]
EndReasonName = Literal[
    "success",
    "failed",
    "timeout",
    "stopped",
    "crashed",
    "skipped",
    "log_overflow",
    "missed",
    "expired",
]
HoldName = Annotated[str, AfterValidator(_hold_name)]
NodePatterns = Annotated[tuple[str, ...], BeforeValidator(_node_patterns)]
InheritEnv = Annotated[bool | tuple[str, ...], BeforeValidator(_inherit_env)]
RunTags = Annotated[tuple[str, ...], BeforeValidator(check_tags)]
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
SignalNumber = Annotated[int, BeforeValidator(_signal_number)]
Umask = Annotated[int, BeforeValidator(_umask)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Frozen):
    """Where the API listens: a TCP host/port or a unix socket path."""

    host: str | None = None
    port: int | None = None
    unix_path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> Listen:
        text = text.strip()
        if text.startswith("unix:"):
            path = text.removeprefix("unix:")
            if not path.startswith("/"):
                raise ValueError(
                    'a unix socket needs an absolute path, e.g. "unix:/run/cronwarden/api.sock"'
                )
            return cls(unix_path=Path(path))
        match = re.fullmatch(
            r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d+)", text
        )
        if match is None:
            raise ValueError(
                'expected "HOST:PORT" (e.g. "127.0.0.1:9477", "[::1]:9477") or '
                '"unix:/absolute/path.sock"'
            )
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range 1..65535")
        return cls(host=match["v6"] or match["host"], port=port)

    @property
    def is_loopback(self) -> bool:
        if self.unix_path is not None:
            return True
        assert self.host is not None
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def _listen(value: object) -> Listen:
    if isinstance(value, Listen):
        return value
    if not isinstance(value, str):
        raise ValueError('expected a string such as "127.0.0.1:9477" or "unix:/path.sock"')
    return Listen.parse(value)


ListenAddress = Annotated[Listen, BeforeValidator(_listen), PlainSerializer(str, return_type=str)]


class TokenConfig(_Frozen):
    """An API token: only the SHA-256 of the secret is kept in the file."""

    name: str = Field(min_length=1)
    sha256: str
    scopes: list[Literal["read", "trigger", "admin"]] = Field(min_length=1)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not SHA256_RE.match(value):
            raise ValueError(
                "expected the 64-character hex SHA-256 digest of the token "
                "(e.g. from `printf %s TOKEN | sha256sum`)"
            )
        return value.lower()


def _default_data_dir() -> Path:
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    return Path.home() / ".local" / "state" / "cronwarden"


class DaemonConfig(_Frozen):
    listen: ListenAddress = Field(default_factory=lambda: Listen.parse(DEFAULT_LISTEN))
    data_dir: ConfigPath = Field(default_factory=_default_data_dir)
    database: str | None = None
    node: str | None = Field(default=None, min_length=1, max_length=200)
    node_lease: NonNegDuration = timedelta(seconds=10)
    log_format: Literal["json", "console"] | None = None
    shutdown_timeout: NonNegDuration = timedelta(seconds=30)
    keep_runs: int = Field(default=10000, ge=1)
    keep_for: NonNegDuration = timedelta(days=90)
    max_body: Size = Field(default=1024 * 1024, ge=1)
    max_concurrent_runs: int = Field(default=0, ge=0)  # on this host, all tasks; 0 = no limit
    path: str = Field(default=DEFAULT_PATH, min_length=1)
    # Host names the API answers to besides loopback, the listen address and the node's own
    # names: the names a reverse proxy forwards (DNS rebinding defence, api/origin.py).
    allowed_hosts: tuple[str, ...] = ()
    metrics_open: bool = False  # GET /metrics without a token, for a scraper on the host
    # Whether each run gets its own cgroup v2 (runners/containment.py): auto where the
    # daemon's cgroup was delegated to it (systemd's Delegate=yes), always (refuse to
    # start without one), never (the daemon as child subreaper only).
    run_cgroups: Literal["auto", "always", "never"] = "auto"
    tokens: list[TokenConfig] = Field(default_factory=list)

    @field_validator("database")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.match(r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://", value):
            raise ValueError(
                'expected "sqlite+aiosqlite:///PATH" or "postgresql+asyncpg://USER@HOST:PORT/DB"'
            )
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]+\]", name):
                raise ValueError(
                    f"{name!r} is not a host name; expected names such as "
                    '"cron.example.com" or "10.0.0.5" (no port, no scheme)'
                )
        return tuple(name.lower() for name in value)

    @field_validator("path")
    @classmethod
    def _absolute_dirs(cls, value: str) -> str:
        relative = [d for d in value.split(":") if not d.startswith("/")]
        if relative:
            raise ValueError(
                f"every PATH entry must be an absolute directory (got {relative[0]!r}); "
                f'e.g. "{DEFAULT_PATH}"'
            )
        return value

    @model_validator(mode="after")
    def _open_listen_needs_tokens(self) -> DaemonConfig:
        if not self.listen.is_loopback and not self.tokens:
            raise ValueError(
                f"listen = {str(self.listen)!r} is not a loopback address; binding it without "
                "[[daemon.tokens]] would open the API to the network. Add tokens, or listen on "
                "127.0.0.1 / ::1 / a unix: socket"
            )
        return self

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite+aiosqlite:///{self.data_dir / 'cronwarden.db'}"

    @property
    def node_name(self) -> str:
        if self.node:
            return self.node
        import socket

        port = self.listen.port if self.listen.port is not None else "unix"
        return f"{socket.gethostname()}:{port}"


class RunLimits(_Frozen):
    """``limits``: bounds of one run's process tree (runners/bounds.py says how each is
    applied on this host: a cgroup where the daemon has one, else the kernel's rlimits)."""

    memory: Size | None = None
    cpu_time: Duration | None = None
    open_files: int | None = Field(default=None, ge=3, le=1 << 20)
    processes: int | None = Field(default=None, ge=1, le=1 << 22)
    cpu: float | None = Field(default=None, gt=0, le=4096)  # in CPUs: 0.5 is half of one

    @field_validator("memory")
    @classmethod
    def _enough_memory(cls, value: int | None) -> int | None:
        if value is not None and value < 1024 * 1024:
            raise ValueError('must be at least 1MiB: a size such as "512MiB" or "2GiB"')
        return value

    @field_validator("cpu_time")
    @classmethod
    def _positive_cpu_time(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError('must be at least 1s (the kernel counts whole seconds), e.g. "10m"')
        return value


class TaskSettings(_Frozen):
    """Every task key; all optional so that ``[defaults]`` can hold any subset."""

    command: str | list[str] | None = None
    schedule: str | None = None
    timezone: str | None = None
    working_dir: ConfigPath | None = None
    env: dict[EnvName, str] = Field(default_factory=dict)
    env_file: ConfigPath | None = None
    secret_env: tuple[EnvName, ...] = ()
    # false: cron's environment only; true: also the daemon's; names: those of the daemon's.
    # The daemon's own control variables never pass (runners/environment.py).
    inherit_env: InheritEnv = False
    user: str | int | None = None
    group: str | int | None = None
    umask: Umask | None = None
    timeout: NonNegDuration = timedelta(0)
    stop_signal: SignalNumber = int(signal.SIGTERM)
    kill_grace: NonNegDuration = timedelta(seconds=5)
    success_exit_codes: tuple[Annotated[int, Field(ge=0, le=255)], ...] = Field(
        default=(0,), min_length=1
    )
    retries: int = Field(default=0, ge=0, le=1000)
    retry_delay: NonNegDuration = timedelta(seconds=10)
    retry_backoff: Literal["constant", "linear", "exponential"] = "exponential"
    retry_max_delay: NonNegDuration = timedelta(minutes=5)
    retry_on: tuple[FailureReason, ...] = DEFAULT_RETRY_ON
    overlap: Literal["allow", "skip", "queue", "terminate"] = "allow"
    max_concurrent: int = Field(default=1, ge=1)
    # Named locks (tasks sharing one never run at once) and a pool ([pools.NAME] size):
    # held across every node sharing the database (runners/holds.py).
    locks: tuple[HoldName, ...] = ()
    pool: HoldName | None = None
    # Chains (cronwarden/chains.py): the ends of these tasks' runs start a run of this one.
    after: tuple[HoldName, ...] = ()
    after_on: tuple[EndReasonName, ...] = ("success",)
    after_mode: Literal["any", "all"] = "any"
    after_params: Literal["inherit"] | None = None
    # Where it runs (cronwarden/placement.py): node-name globs (None: any node), and
    # whether each scheduled fire runs once on every such node instead of once in all.
    nodes: NodePatterns | None = None
    on_every_node: bool = False
    queue_max: int = Field(default=100, ge=0)
    catch_up: CatchUp = "latest"
    max_catch_up: int = Field(default=100, ge=1)
    jitter: NonNegDuration = timedelta(0)
    max_log_size: Size = Field(default=10 * 1024 * 1024, ge=1)
    log_on_full: Literal["drop_old", "drop_new", "kill"] = "drop_old"
    # Files a run leaves in $CRONWARDEN_ARTIFACTS_DIR (cronwarden/artifacts/): kept up to
    # this much per run; the task's runs keep up to keep_artifacts_size, oldest out first.
    max_artifacts_size: Size = Field(default=100 * 1024**2, ge=0)
    keep_artifacts_size: Size = Field(default=1024**3, ge=0)
    keep_runs: int | None = Field(default=None, ge=1)
    keep_for: NonNegDuration | None = None
    api_trigger: bool = True
    params: tuple[EnvName, ...] = ()
    # Labels every run of the task gets, besides a trigger's own (cronwarden/run_tags.py).
    tags: RunTags = ()
    notify: tuple[str, ...] = ()
    limits: RunLimits | None = None
    stuck_after: NonNegDuration = timedelta(0)
    expect_success_within: NonNegDuration = timedelta(0)
    # Alert rules (cronwarden/alerts/): the failure alert from the Nth failing run in a
    # row; run.too_short for a success quicker than min_duration; run.too_long for a run
    # still running max_duration after its start (it goes on); fire.late for a scheduled
    # run not started start_grace after its time.  0 = off.
    alert_after_failures: AlertAfter = 1
    min_duration: NonNegDuration = timedelta(0)
    max_duration: NonNegDuration = timedelta(0)
    start_grace: NonNegDuration = timedelta(0)
    enabled: bool = True

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        if isinstance(value, list) and (not value or not value[0]):
            raise ValueError('an argv list needs at least the program, e.g. ["/bin/echo", "hi"]')
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_schedule(value, UTC)  # syntax only; the zone does not change validity
            except ScheduleError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r}; expected an IANA name such as "
                    '"UTC", "Europe/London" or "America/New_York"'
                ) from None
        return value


class TaskConfig(TaskSettings):
    """One task, after ``[defaults]`` were applied."""

    name: str
    command: str | list[str]

    @cached_property
    def zone(self) -> tzinfo:
        """The zone the schedule is read in; the host's IANA zone when none is set."""
        return ZoneInfo(self.timezone) if self.timezone else tzlocal.get_localzone()

    @cached_property
    def trigger(self) -> AnyTrigger | None:
        return parse_schedule(self.schedule, self.zone, self.name) if self.schedule else None

    @property
    def argv(self) -> list[str]:
        """The program and arguments to exec: a string runs under ``/bin/sh -c``."""
        if isinstance(self.command, str):
            return [*SHELL, self.command]
        return list(self.command)


class PoolConfig(_Frozen):
    """``[pools.NAME]``: at most ``size`` runs of the tasks naming it at once."""

    size: int = Field(ge=1, le=100_000)


class NotifyConfig(_Frozen):
    """An alert target.  ``secret`` signs webhook bodies (HMAC-SHA256, in the
    X-Cronwarden-Signature header); ``headers`` are sent with each webhook POST."""

    type: Literal["webhook", "command", "apprise"]
    url: str | None = None
    urls: tuple[str, ...] = ()  # type = "apprise": Apprise URLs (mailto://, slack://, ntfy://...)
    command: str | list[str] | None = None
    timeout: NonNegDuration = timedelta(seconds=5)
    retries: int = Field(default=3, ge=0, le=100)
    retry_delay: NonNegDuration = timedelta(seconds=1)  # doubles per retry, up to 5 min
    secret: str | None = Field(default=None, min_length=16)
    headers: dict[str, str] = Field(default_factory=dict)
    events: list[EventName] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    # Tasks whose alerts come here besides those whose notify names this target.
    tasks: TaskGlobs = ()

    def routes(self, task_name: str) -> bool:
        """Whether ``tasks`` routes the task's alerts here."""
        return any(fnmatchcase(task_name, glob) for glob in self.tasks)

    @model_validator(mode="after")
    def _target_matches_type(self) -> NotifyConfig:
        if self.type != "apprise" and self.urls:
            raise ValueError(f'type = "{self.type}" takes {_TARGET_KEY[self.type]}, not urls')
        if self.type == "apprise":
            if not self.urls:
                raise ValueError(
                    'type = "apprise" needs urls = ["mailto://...", "ntfy://...", ...] '
                    "(Apprise URLs; see https://github.com/caronc/apprise/wiki)"
                )
            bad = [i for i, url in enumerate(self.urls) if not re.match(r"^[a-z0-9+]+://", url)]
            if bad:  # the value is not shown: Apprise URLs carry credentials
                raise ValueError(f"urls[{bad[0]}] is not an Apprise URL (SCHEME://...)")
            unused = [k for k in ("url", "command", "secret") if getattr(self, k) is not None]
            if unused or self.headers:
                keys = ", ".join(unused + ["headers"] * bool(self.headers))
                raise ValueError(f'type = "apprise" takes urls, not {keys}')
        elif self.type == "webhook":
            if not self.url or not re.match(r"^https?://", self.url):
                raise ValueError('type = "webhook" needs url = "http(s)://..."')
            if self.command is not None:
                raise ValueError('type = "webhook" takes url, not command')
        else:
            if not self.command:
                raise ValueError('type = "command" needs command = "..." (event JSON on stdin)')
            unused = [k for k in ("url", "secret") if getattr(self, k) is not None]
            if unused or self.headers:
                keys = ", ".join(unused + ["headers"] * bool(self.headers))
                raise ValueError(f'type = "command" takes command, not {keys}')
        return self


_TARGET_KEY = {"webhook": "url", "command": "command", "apprise": "urls"}


def alert_targets(
    notify: Mapping[str, NotifyConfig], task_name: str, own: Iterable[str], event: str
) -> list[tuple[str, NotifyConfig]]:
    """The targets an alert of a task goes to: those its ``notify`` names, then those
    whose ``tasks`` route it there, each once (a target both named and routing gets one
    alert), and of them only those whose ``events`` take ``event``."""
    routed = (name for name, target in notify.items() if target.tasks and target.routes(task_name))
    found: dict[str, NotifyConfig] = {}
    for name in (*own, *routed):
        target = notify.get(name)
        if target is not None and name not in found and event in target.events:
            found[name] = target
    return list(found.items())


TaskTable = PackedModels[TaskConfig]


class Config(_Frozen):
    """A whole validated config file (its tasks packed: see cronwarden/packed.py)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path
    daemon: DaemonConfig
    tasks: TaskTable
    notify: dict[str, NotifyConfig]
    pools: dict[str, PoolConfig] = Field(default_factory=dict)
    # Things that may be fine later (a working_dir on a mount not there yet): said, not fatal.
    warnings: tuple[str, ...] = ()

    @cached_property
    def starts(self) -> dict[str, list[str]]:
        """Task name -> the tasks whose ``after`` names it, sorted (what its runs' ends
        start; chains.py).  Once per config, from the packed ``after`` values without
        building a task: walking 10,000 tasks per end or per GET /api/tasks would hold
        the loop."""
        links = (_Link(name, tuple(after)) for name, after in self.tasks.field("after") if after)
        return {cause: sorted(tasks) for cause, tasks in followers(links).items()}


class _Link(NamedTuple):
    """A task as chains.followers reads it: its name and the tasks its ``after`` names."""

    name: str
    after: tuple[str, ...]


_M = TypeVar("_M", bound=BaseModel)
_TOP_LEVEL = ("daemon", "defaults", "tasks", "notify", "pools")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), [f"the file is not UTF-8 text: {exc}"]) from None
    return parse_config(text, file)


def parse_config(text: str, file: Path) -> Config:
    """Validate config text; ``file`` names it in messages and anchors relative paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"{file}: not valid TOML: {exc}"]) from None
    checker = _Checker(file, KeyLines(text), {"base_dir": file.resolve().parent})
    for key in data:
        if key not in _TOP_LEVEL:
            checker.problem((key,), f"unknown section; allowed: {', '.join(_TOP_LEVEL)}")
    daemon = checker.validate(DaemonConfig, data.get("daemon", {}), ("daemon",))
    notify = {
        name: target
        for name, body in checker.tables(data, "notify").items()
        if (target := checker.validate(NotifyConfig, body, ("notify", name))) is not None
    }
    pool_tables = checker.tables(data, "pools")
    pools = {
        name: pool
        for name, body in pool_tables.items()
        if _named(checker, ("pools", name))
        and (pool := checker.validate(PoolConfig, body, ("pools", name))) is not None
    }
    defaults = _valid_defaults(data.get("defaults", {}), checker)
    tasks = TaskTable(TaskConfig, key_field="name")
    host = _HostFacts()
    task_tables = checker.tables(data, "tasks")
    for name, body in task_tables.items():
        if not TASK_NAME_RE.fullmatch(name) or name in (".", ".."):
            checker.problem(
                ("tasks", name),
                "invalid task name; names are 1-100 characters of A-Z a-z 0-9 . _ - "
                'and not "." or ".." (a URL path cannot carry those)',
            )
            continue
        merged = {**defaults, **body, "name": name}
        task = checker.validate(TaskConfig, merged, ("tasks", name))
        if task is not None:
            tasks.add(name, task)
            _check_on_host(task, checker, host)
            _check_holds(task, set(pool_tables), checker)
            _check_where(task, checker)
            _check_alert_rules(task, set(body), notify, checker)
            _check_artifact_sizes(task, checker)
        _check_notify_targets(name, merged.get("notify", []), notify, checker)
    _check_chains(tasks, set(task_tables), checker)
    _check_routes(notify, set(task_tables), checker)
    warnings = tuple(sorted(checker.warnings, key=_line_number))
    if checker.problems or daemon is None:
        raise ConfigError(str(file), sorted(checker.problems, key=_line_number), warnings)
    return Config(
        path=file.resolve(),
        daemon=daemon,
        tasks=tasks,
        notify=notify,
        pools=pools,
        warnings=warnings,
    )


def _check_notify_targets(
    name: str, targets: object, notify: dict[str, NotifyConfig], checker: _Checker
) -> None:
    for target in targets if isinstance(targets, list) else []:
        if isinstance(target, str) and target not in notify:
            defined = ", ".join(sorted(notify)) or "none are defined"
            checker.problem(
                ("tasks", name, "notify"),
                f"unknown target {target!r}; define [notify.{target}] (defined: {defined})",
            )


# The alert rule keys and the event each raises.
_RULE_EVENTS = {
    "min_duration": "run.too_short",
    "max_duration": "run.too_long",
    "start_grace": "fire.late",
}


def _check_alert_rules(
    task: TaskConfig, own_keys: set[str], notify: dict[str, NotifyConfig], checker: _Checker
) -> None:
    """Rules that contradict each other are errors; a rule the task's own table sets
    that would tell nobody, or could never fire, is a warning (from [defaults] it
    would be one per task: those are not said)."""
    loc = ("tasks", task.name)
    low, high = task.min_duration, task.max_duration
    if low and high and low >= high:
        checker.problem(
            (*loc, "min_duration"),
            f"min_duration = {format_duration(low)!r} is not below max_duration = "
            f"{format_duration(high)!r}: every run would be too short or too long; "
            "min_duration must be the shorter",
        )
    if "max_duration" in own_keys and high and task.timeout and high >= task.timeout:
        checker.warn(
            (*loc, "max_duration"),
            f"max_duration = {format_duration(high)!r} is not below timeout = "
            f"{format_duration(task.timeout)!r}: the timeout stops a run before it is too long",
        )
    if "start_grace" in own_keys and task.start_grace and task.schedule is None:
        checker.warn(
            (*loc, "start_grace"),
            "start_grace watches scheduled runs, but the task has no schedule",
        )
    for key, event in _RULE_EVENTS.items():
        if (
            key in own_keys
            and getattr(task, key)
            and not alert_targets(notify, task.name, task.notify, event)
        ):
            checker.warn(
                (*loc, key),
                f"{key} raises {event}, but no target of this task takes it: add "
                f'"{event}" to the events of a target in its notify (or route it with tasks)',
            )


def _check_artifact_sizes(task: TaskConfig, checker: _Checker) -> None:
    """One run may keep max_artifacts_size: a task keeping less would delete a run's
    artifacts as soon as it kept them."""
    if task.keep_artifacts_size < task.max_artifacts_size:
        checker.problem(
            ("tasks", task.name, "keep_artifacts_size"),
            f"keep_artifacts_size = {format_size(task.keep_artifacts_size)!r} is below "
            f"max_artifacts_size = {format_size(task.max_artifacts_size)!r}: the task must "
            "keep at least what one run may keep",
        )


def _check_routes(notify: dict[str, NotifyConfig], declared: set[str], checker: _Checker) -> None:
    """A ``tasks`` glob that matches no task of the file is said (a typo routes nothing)."""
    for name, target in notify.items():
        for glob in target.tasks:
            if not any(fnmatchcase(task, glob) for task in declared):
                checker.warn(("notify", name, "tasks"), f"{glob!r} matches no task of this file")


def _check_chains(tasks: TaskTable, declared: set[str], checker: _Checker) -> None:
    """Every task a chain names is declared (one declared but invalid is said once,
    where it is), and no chain comes back to where it began."""
    # Only the chained tasks are built: a build costs ~11 us (cronwarden/packed.py), a
    # tenth of a start-up with 100,000 tasks when every task was built here.
    chained = {name: tasks[name] for name, after in tasks.field("after") if after}
    for name, task in chained.items():
        for cause in task.after:
            if cause not in declared:
                checker.problem(
                    ("tasks", name, "after"),
                    f"unknown task {cause!r}; after names tasks defined in this file",
                )
    cycle = find_cycle(chained)
    if cycle is not None:
        checker.problem(
            ("tasks", cycle[1], "after"),
            "a chain that starts itself: " + " -> ".join(cycle) + " (each ends to start the next)",
        )


def _named(checker: _Checker, loc: tuple[str, ...]) -> bool:
    if TASK_NAME_RE.fullmatch(loc[-1]):
        return True
    checker.problem(loc, "invalid name; names are 1-100 characters of A-Z a-z 0-9 . _ -")
    return False


def _check_holds(task: TaskConfig, pools: set[str], checker: _Checker) -> None:
    """A task's pool must be declared (a declared one that is invalid is said once, where
    it is); and ``terminate`` cannot share: whose run would it stop?"""
    loc = ("tasks", task.name)
    if task.pool is not None and task.pool not in pools:
        defined = ", ".join(sorted(pools)) or "none are defined"
        checker.problem(
            (*loc, "pool"),
            f"unknown pool {task.pool!r}; define [pools.{task.pool}] with a size "
            f"(defined: {defined})",
        )
    if task.overlap == "terminate" and (task.locks or task.pool is not None):
        checker.problem(
            (*loc, "overlap"),
            'overlap = "terminate" cannot go with locks or a pool (whose run would it stop?); '
            'use "skip" or "queue"',
        )


def _check_where(task: TaskConfig, checker: _Checker) -> None:
    """``on_every_node`` multiplies scheduled fires: a task without a schedule has none,
    and the key would silently do nothing."""
    if task.on_every_node and task.schedule is None:
        checker.problem(
            ("tasks", task.name, "on_every_node"),
            "on_every_node = true runs each scheduled fire on every matching node, but the "
            "task has no schedule; add one, or remove on_every_node",
        )


class _HostFacts:
    """Users, groups and paths of this host, each asked once per config read (10,000
    tasks share a few), and asked again at the next read: a reload must see the user
    added or the directory mounted since."""

    def __init__(self) -> None:
        self._users: dict[str, bool] = {}
        self._groups: dict[str, bool] = {}
        self._paths: dict[Path, bool] = {}

    def user_known(self, user: str) -> bool:
        if user not in self._users:
            self._users[user] = _found(pwd.getpwnam, user)
        return self._users[user]

    def group_known(self, group: str) -> bool:
        if group not in self._groups:
            self._groups[group] = _found(grp.getgrnam, group)
        return self._groups[group]

    def exists(self, path: Path) -> bool:
        if path not in self._paths:
            self._paths[path] = path.exists()
        return self._paths[path]


def _found(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def _check_on_host(task: TaskConfig, checker: _Checker, host: _HostFacts) -> None:
    """What this host must have for the task to run: users and groups are errors (a typo
    would run nothing, or as the wrong user); missing paths are warnings, since a
    mount or a deploy may bring them before the first run.  Numeric ids pass: the
    kernel takes any id, with or without a passwd entry."""
    loc = ("tasks", task.name)
    if isinstance(task.user, str) and not host.user_known(task.user):
        checker.problem(
            (*loc, "user"),
            f"unknown user {task.user!r} (not in this host's passwd database or NSS); "
            "expected an existing user name or a numeric uid",
        )
    if isinstance(task.group, str) and not host.group_known(task.group):
        checker.problem(
            (*loc, "group"),
            f"unknown group {task.group!r} (not in this host's group database or NSS); "
            "expected an existing group name or a numeric gid",
        )
    for key in ("working_dir", "env_file"):
        path = getattr(task, key)
        if path is not None and not host.exists(path):
            checker.warn((*loc, key), f"{path} does not exist (yet); runs fail until it does")


def _line_number(problem: str) -> int:
    match = re.search(r":(\d+): ", problem)
    return int(match.group(1)) if match else 0


class _Checker:
    """Collects problems across sections so a file reports every error at once."""

    def __init__(self, file: Path, lines: KeyLines, context: dict[str, Any]) -> None:
        self.file = file
        self.lines = lines
        self.context = context
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, loc: tuple[str, ...], message: str) -> None:
        self.problems.append(self._line(loc, message))

    def warn(self, loc: tuple[str, ...], message: str) -> None:
        self.warnings.append(self._line(loc, message))

    def _line(self, loc: tuple[str, ...], message: str) -> str:
        return f"{self.file}:{self.lines.find(loc)}: {'.'.join(loc)}: {message}"

    def tables(self, data: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
        """``[section.NAME]`` tables; anything else in the section is reported."""
        value = data.get(section, {})
        if not isinstance(value, dict):
            self.problem((section,), f"expected a table of [{section}.NAME] tables")
            return {}
        tables = {}
        for name, body in value.items():
            if isinstance(body, dict):
                tables[name] = body
            else:
                self.problem(
                    (section, name), f"expected a table [{section}.{name}] (got {_short(body)})"
                )
        return tables

    def validate(self, model: type[_M], data: object, loc: tuple[str, ...]) -> _M | None:
        if not isinstance(data, dict):
            self.problem(loc, f"expected a table (got {_short(data)})")
            return None
        try:
            return model.model_validate(data, context=self.context)
        except ValidationError as exc:
            self.problems += [_describe(self.file, self.lines, err, loc) for err in exc.errors()]
            return None


def _valid_defaults(defaults: object, checker: _Checker) -> dict[str, Any]:
    """Check ``[defaults]`` once, reporting under ``defaults.KEY``; keep only valid keys."""
    if not isinstance(defaults, dict):
        checker.problem(("defaults",), f"expected a table (got {_short(defaults)})")
        return {}
    try:
        TaskSettings.model_validate(defaults, context=checker.context)
    except ValidationError as exc:
        bad = set()
        for err in exc.errors():
            checker.problems.append(_describe(checker.file, checker.lines, err, ("defaults",)))
            if err["loc"]:
                bad.add(err["loc"][0])
        return {k: v for k, v in defaults.items() if k not in bad}
    return dict(defaults)


# Values under these keys may be credentials: errors name the key, never the value.
# (Webhook and Apprise URLs carry tokens in their paths; headers carry Authorization.)
_NEVER_ECHOED = frozenset(
    {"env", "secret_env", "env_file", "secret", "headers", "url", "urls", "sha256", "tokens"}
)
# Values under these keys are shown with any password in them replaced by ***.
_REDACTED = frozenset({"database"})


def _describe(file: Path, lines: KeyLines, err: Any, prefix: tuple[str, ...] = ()) -> str:
    """One error line: ``file:line: key.path: what is wrong (value ...); what is allowed``."""
    loc = prefix + tuple(str(p) for p in err["loc"])
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        model = _model_for(loc[:-1])
        allowed = ", ".join(sorted(model.model_fields)) if model is not None else ""
        message = "unknown key" + (f"; allowed keys here: {allowed}" if allowed else "")
    elif kind == "missing":
        message = "required key is missing"
    elif kind in ("list_type", "tuple_type"):  # keys read into tuples are TOML arrays too
        message = "expected an array, e.g. [...]"
    shown = err.get("input")
    value = ""
    secret = any(part in _NEVER_ECHOED for part in loc)
    if kind not in ("missing", "extra_forbidden") and not isinstance(shown, dict) and not secret:
        if any(part in _REDACTED for part in loc) and isinstance(shown, str):
            shown = redact_url(shown)
        value = f" (got {_short(shown)})"
    return f"{file}:{lines.find(loc)}: {key}: {message}{value}"


def redact_url(text: str) -> str:
    """A URL as it may be shown: the password of ``scheme://user:password@host`` as ***
    (SQLAlchemy URLs, Apprise URLs); anything else unchanged."""
    return re.sub(r"(?<=://)([^/@:\s]*):[^/@\s]*@", r"\1:***@", text)


def _model_for(loc: tuple[str, ...]) -> type[BaseModel] | None:
    if loc == ("daemon",):
        return DaemonConfig
    if loc[:1] == ("defaults",) and len(loc) == 1:
        return TaskSettings
    if loc[:1] == ("tasks",) and len(loc) == 2:
        return TaskSettings
    if loc[:1] == ("notify",) and len(loc) == 2:
        return NotifyConfig
    if loc[:2] == ("daemon", "tokens") and len(loc) == 3:
        return TokenConfig
    if loc[-1:] == ("limits",) and (loc[:1] == ("defaults",) or loc[:1] == ("tasks",)):
        return RunLimits
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class KeyLines:
    """Maps key paths to the line that sets them, for ``file:line`` in messages.

    tomllib keeps no positions, so this reads the text for table headers and ``key =``
    lines.  It is a best effort: an unknown position falls back to the table's header,
    then to line 1, never to an error of its own.  The text is read on the first
    ``find``, so a valid file is never indexed (for 10,000 tasks the index was 30,000
    keys, held beside the parsed file while every task was validated).
    """

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")

    def __init__(self, text: str) -> None:
        self._text = text
        self._index: dict[tuple[str, ...], int] | None = None

    @property
    def _lines(self) -> dict[tuple[str, ...], int]:
        if self._index is None:
            self._index = self._read(self._text)
        return self._index

    @classmethod
    def _read(cls, text: str) -> dict[tuple[str, ...], int]:
        lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        array_index: dict[tuple[str, ...], int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = cls._HEADER.match(line)
            if header:
                table = cls._split(header.group(1))
                if line.lstrip().startswith("[["):
                    index = array_index.get(table, -1) + 1
                    array_index[table] = index
                    lines.setdefault(table, number)
                    table = (*table, str(index))
                lines.setdefault(table, number)
                continue
            key = cls._KEY.match(line)
            if key:
                lines.setdefault((*table, *cls._split(key.group(1))), number)
        return lines

    @staticmethod
    def _split(dotted: str) -> tuple[str, ...]:
        return tuple(
            part.strip().strip("\"'")
            for part in re.split(r"\.(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", dotted)
        )

    def find(self, loc: tuple[str, ...]) -> int:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self._lines:
                return self._lines[loc[:end]]
        return 1
