"""The one current configuration, swapped whole on reload and read where needed.

The daemon, the dispatcher, the scheduler and the API all hold this object rather
than copies of the task table, so a reload can never leave one part on the old tasks.
A run keeps the ``TaskConfig`` it was admitted with: running runs finish under the
definition they started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cronwarden.config import Config, TaskConfig
from cronwarden.errors import TaskNotFound


@dataclass(frozen=True)
class ConfigChanges:
    """What a reload changed, by task name (``changed``: the definition hash differs)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


class LiveConfig:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._tasks_hash: str | None = None  # of the current config, computed once

    @property
    def current(self) -> Config:
        return self._config

    @property
    def tasks(self) -> dict[str, TaskConfig]:
        return self._config.tasks

    @property
    def tasks_hash(self) -> str:
        """One hash of every task's definition: nodes sharing a database compare it to
        find one that runs a different config."""
        import hashlib

        if self._tasks_hash is None:
            tasks = sorted(self.tasks.items())
            lines = "".join(f"{n}={t.definition_hash}\n" for n, t in tasks)
            self._tasks_hash = hashlib.sha256(lines.encode()).hexdigest()[:16]
        return self._tasks_hash

    def task(self, name: str) -> TaskConfig:
        try:
            return self._config.tasks[name]
        except KeyError:
            raise TaskNotFound(f"no task is named {name!r}") from None

    def swap(self, new: Config) -> ConfigChanges:
        """Make ``new`` current; says which tasks came, went or changed."""
        old = self._config.tasks
        self._config = new
        self._tasks_hash = None
        return ConfigChanges(
            added=sorted(set(new.tasks) - set(old)),
            removed=sorted(set(old) - set(new.tasks)),
            changed=sorted(
                name
                for name in set(old) & set(new.tasks)
                if old[name].definition_hash != new.tasks[name].definition_hash
            ),
        )
