"""A task's definition as the API shows it: every key after ``[defaults]``, written the
way the config file would write it, with the values of ``secret_env`` names hidden."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from cronwarden.config import TaskConfig
from cronwarden.support.units import format_duration

HIDDEN = "***"


def task_definition(task: TaskConfig) -> dict[str, Any]:
    keys = task.model_dump(exclude={"name"})
    hidden = set(task.secret_env)
    keys["env"] = {name: HIDDEN if name in hidden else v for name, v in keys["env"].items()}
    return {name: _as_written(value) for name, value in keys.items()}


def _as_written(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path):
        return str(value)
    return value
