"""The one current configuration, swapped whole on reload and read where needed.

The daemon, the dispatcher, the scheduler and the API all hold this object rather
than copies of the task table, so a reload can never leave one part on the old tasks.
A run keeps the ``TaskConfig`` it was admitted with: running runs finish under the
definition they started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cronwarden.config import Config, TaskConfig, TaskTable
from cronwarden.errors import TaskNotFound


@dataclass(frozen=True)
class ConfigChanges:
    """What a reload changed, by task name (``changed``: the definition differs, and so
    does the ``task_hash`` its runs record)."""

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
    def tasks(self) -> TaskTable:
        return self._config.tasks

    @property
    def tasks_hash(self) -> str:
        """One hash of every task's definition: nodes sharing a database compare it to
        find one that runs a different config."""
        import hashlib

        if self._tasks_hash is None:
            # One task at a time: the table is packed (see cronwarden/packed.py), and
            # all its tasks built at once would be several times its size.
            digest = hashlib.sha256()
            for name in sorted(self.tasks):
                digest.update(f"{name}={self.tasks.peek(name).definition_hash}\n".encode())
            self._tasks_hash = digest.hexdigest()[:16]
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
                name for name in set(old) & set(new.tasks) if not old.same(name, new.tasks)
            ),
        )
