"""A run's environment, as cron gives it, and not the daemon's.

Layers, each over the one before:

1. cron's: SHELL=/bin/sh, PATH from ``[daemon] path``, the daemon's LANG, LANGUAGE,
   LC_* and TZ (a locale and a zone are the host's, not the daemon's secrets);
2. HOME, USER and LOGNAME of the user the run runs as (the daemon's own user when
   the task names none), from the user database as cron reads them;
3. what ``inherit_env`` passes from the daemon's environment: ``true`` all of it,
   a list those names; never a control variable (cronwarden/host/control_env.py), and with
   ``true`` never the daemon's HOME/USER/LOGNAME over the run user's (a list naming
   them is the operator's explicit choice);
4. the task's ``env_file``, read at each run so rotated secrets apply;
5. the task's ``env`` (4 and 5 may set any name, control variables included: the
   operator writes those values, they do not leak from the daemon);
6. CRONWARDEN_RUN_ID, CRONWARDEN_TASK, CRONWARDEN_ATTEMPT, CRONWARDEN_SCHEDULED_FOR
   (scheduled runs only), CRONWARDEN_ARTIFACTS_DIR (the run's own directory for files
   kept with it, cronwarden/artifacts/), CRONWARDEN_PARAM_<name> for each param, and
   what lets the job report (cronwarden/run_tokens.py): CRONWARDEN_RUN_TOKEN, the run's
   own token, and CRONWARDEN_URL, this daemon's API as the job reaches it.

Without layer 3 a daemon started under systemd handed every run its NOTIFY_SOCKET,
INVOCATION_ID and STATE_DIRECTORY, and whatever secrets the operator gave the daemon.

Everything that is the same for every run of a daemon life is worked out once, in
``DaemonEnvironment``; per run only the run's own layers are added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from dotenv import dotenv_values

from cronwarden.config import TaskConfig
from cronwarden.errors import StartFailed
from cronwarden.host.control_env import RUN_ID_VARIABLE, without_control_variables
from cronwarden.run_tokens import TOKEN_VARIABLE, URL_VARIABLE
from cronwarden.support.timefmt import iso_z

CRON_SHELL = "/bin/sh"  # as cron's: commands run by /bin/sh -c whatever the user's shell
IDENTITY_NAMES = frozenset({"HOME", "USER", "LOGNAME"})


def is_locale_or_zone(name: str) -> bool:
    return name in ("LANG", "LANGUAGE", "TZ") or name.startswith("LC_")


@dataclass(frozen=True, slots=True)
class DaemonEnvironment:
    """The per-daemon layers, computed once from the environment snapshot taken at
    start-up (decoding ``os.environ`` for each of a thousand runs due at once costs
    more than the rest of building their environments)."""

    cron: Mapping[str, str]  # layer 1
    own_identity: Mapping[str, str]  # layer 2 for a run without ``user``
    inheritable: Mapping[str, str]  # the daemon's environment minus control variables
    inherit_all: Mapping[str, str]  # ... minus HOME/USER/LOGNAME: ``inherit_env = true``

    @classmethod
    def of(
        cls, environ: Mapping[str, str], *, path: str, own_identity: Mapping[str, str]
    ) -> DaemonEnvironment:
        cron = {"SHELL": CRON_SHELL, "PATH": path}
        cron.update((k, v) for k, v in environ.items() if is_locale_or_zone(k))
        inheritable = without_control_variables(environ)
        inherit_all = {k: v for k, v in inheritable.items() if k not in IDENTITY_NAMES}
        return cls(
            cron=MappingProxyType(cron),
            own_identity=MappingProxyType(dict(own_identity)),
            inheritable=MappingProxyType(inheritable),
            inherit_all=MappingProxyType(inherit_all),
        )


def run_environment(
    task: TaskConfig,
    *,
    daemon: DaemonEnvironment,
    run_id: str,
    attempt: int,
    scheduled_for: datetime | None,
    params: Mapping[str, str],
    identity: Mapping[str, str] | None = None,
    reporting: Reporting | None = None,
    artifacts_dir: Path | None = None,
) -> dict[str, str]:
    """The environment of one run; ``identity`` is HOME/USER/LOGNAME of a task's
    ``user`` (None: the daemon's own user).  Raises StartFailed for an unreadable
    env_file."""
    from_file = read_env_file(task.env_file) if task.env_file is not None else None
    values = run_variables(task.name, run_id, attempt, scheduled_for, params, artifacts_dir)
    if reporting is not None:
        values.update(reporting.variables())
    return compose_environment(
        task, daemon=daemon, identity=identity, from_file=from_file, run_values=values
    )


@dataclass(frozen=True, slots=True)
class Reporting:
    """What lets a run's job report: its token (None: it has none, and no task's env
    may stand in for one) and the daemon's API address."""

    token: str | None
    api_url: str

    def variables(self) -> dict[str, str]:
        values = {URL_VARIABLE: self.api_url}
        if self.token is not None:
            values[TOKEN_VARIABLE] = self.token
        return values


def compose_environment(
    task: TaskConfig,
    *,
    daemon: DaemonEnvironment,
    identity: Mapping[str, str] | None,
    from_file: Mapping[str, str] | None,
    run_values: Mapping[str, str],
) -> dict[str, str]:
    """The layers put together; no I/O."""
    env = dict(daemon.cron)
    env.update(daemon.own_identity if identity is None else identity)
    inherit = task.inherit_env
    if inherit is True:
        env.update(daemon.inherit_all)
    elif inherit:
        inheritable = daemon.inheritable
        env.update((name, inheritable[name]) for name in inherit if name in inheritable)
    if from_file:
        env.update(from_file)
    env.update(task.env)
    for own in ("CRONWARDEN_SCHEDULED_FOR", TOKEN_VARIABLE):
        if own not in run_values:
            env.pop(own, None)  # only a scheduled run has one; only cronwarden makes one
    env.update(run_values)
    return env


def run_variables(
    task_name: str,
    run_id: str,
    attempt: int,
    scheduled_for: datetime | None,
    params: Mapping[str, str],
    artifacts_dir: Path | None = None,
) -> dict[str, str]:
    """What cronwarden tells the run about itself: the last layer, over any other."""
    values = {
        RUN_ID_VARIABLE: run_id,
        "CRONWARDEN_TASK": task_name,
        "CRONWARDEN_ATTEMPT": str(attempt),
    }
    if scheduled_for is not None:
        values["CRONWARDEN_SCHEDULED_FOR"] = iso_z(scheduled_for)
    if artifacts_dir is not None:
        values["CRONWARDEN_ARTIFACTS_DIR"] = str(artifacts_dir)
    for name, value in params.items():
        values[f"CRONWARDEN_PARAM_{name}"] = value
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """A task's env_file as a dotenv file; names without a value are left out."""
    try:
        with open(path, encoding="utf-8") as file:
            values = dotenv_values(stream=file)
    except OSError as exc:
        raise StartFailed(f"cannot read env_file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise StartFailed(f"env_file {path} is not UTF-8 text") from None
    return {k: v for k, v in values.items() if v is not None}
