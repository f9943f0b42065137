"""What the task API shows of chains (cronwarden/chains.py): the tasks each task's
runs' ends start, the other side of their ``after``.

It is worked out once per configuration (swapped whole on reload), from the packed
``after`` values without building a task: with 10,000 tasks, walking them again for
every GET /api/tasks would hold the loop for a tenth of a second."""

from __future__ import annotations

from typing import NamedTuple

from cronwarden.chains import followers
from cronwarden.config import Config


class _Link(NamedTuple):
    """A task as chains.followers reads it: its name and the tasks its ``after`` names."""

    name: str
    after: tuple[str, ...]


_cached: tuple[Config, dict[str, list[str]]] | None = None


def starts_of(config: Config) -> dict[str, list[str]]:
    """Task name -> the tasks whose ``after`` names it (sorted); a task that starts
    nothing is absent."""
    global _cached
    if _cached is not None and _cached[0] is config:
        return _cached[1]
    links = (_Link(name, tuple(after)) for name, after in config.tasks.field("after") if after)
    found = {cause: sorted(tasks) for cause, tasks in followers(links).items()}
    _cached = (config, found)
    return found
