"""A run's environment: daemon env, then env_file, then env, then cronwarden's own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime

from dotenv import dotenv_values

from cronwarden.config import TaskConfig
from cronwarden.errors import StartFailed
from cronwarden.timefmt import iso_z


def run_environment(
    task: TaskConfig,
    *,
    run_id: str,
    attempt: int,
    scheduled_for: datetime | None,
    params: Mapping[str, str],
    identity: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the environment; the env_file is read at each run so rotated secrets apply.

    ``base`` is the daemon's own environment (``os.environ`` when not given; the
    launcher passes one snapshot taken at start-up instead of decoding os.environ
    again for every run).

    ``identity`` (HOME, USER, LOGNAME of a switched user) comes right after the daemon's
    own environment, so env_file and env can still override it.
    """
    env = dict(os.environ if base is None else base)
    env.update(identity or {})
    if task.env_file is not None:
        try:
            with open(task.env_file, encoding="utf-8") as file:
                values = dotenv_values(stream=file)
        except OSError as exc:
            raise StartFailed(
                f"cannot read env_file {task.env_file}: {exc.strerror or exc}"
            ) from exc
        env.update({k: v for k, v in values.items() if v is not None})
    env.update(task.env)
    env["CRONWARDEN_RUN_ID"] = run_id
    env["CRONWARDEN_TASK"] = task.name
    env["CRONWARDEN_ATTEMPT"] = str(attempt)
    if scheduled_for is not None:
        env["CRONWARDEN_SCHEDULED_FOR"] = iso_z(scheduled_for)
    else:
        env.pop("CRONWARDEN_SCHEDULED_FOR", None)
    for name, value in params.items():
        env[f"CRONWARDEN_PARAM_{name}"] = value
    return env
