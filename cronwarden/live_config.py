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
from cronwarden.support.turns import share_the_loop
from cronwarden.task_hash import config_hash_of, config_share, new_key, task_hash

# Tasks hashed between two turns of the event loop while the config hash is worked out:
# 10,000 tasks in one go held the loop 0.25 s on a quiet host, 1.5 s on a busy one.
HASH_SHARE = 200


@dataclass(frozen=True)
class ConfigChanges:
    """What a reload changed, by task name (``changed``: the definition differs, and so
    does the ``task_hash`` its runs record)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


class LiveConfig:
    """The current config, and the keyed hashes of its tasks (see task_hash.py).

    The daemon gives it the installation's key once the store is open (``use_key``);
    until then, and wherever no store gives one, hashes are keyed by a random key of
    this object alone: never by none, since an unkeyed hash gives secret_env values
    away.  A task's hash is worked out once per definition (a dict by name, ~100 bytes
    a task; a reload keeps those of the tasks it did not change).
    """

    def __init__(self, config: Config, key: bytes | None = None) -> None:
        self._config = config
        self._key = key if key is not None else new_key()
        # Of the current config, by task name: the tasks whose runs asked for theirs.
        self._task_hashes: dict[str, str] = {}
        self._shares: int | None = None  # every task's config share, XORed (task_hash.py)

    @property
    def current(self) -> Config:
        return self._config

    @property
    def tasks(self) -> TaskTable:
        return self._config.tasks

    def use_key(self, key: bytes) -> None:
        """Key the hashes with the installation's key (the same on every node sharing
        the database, so their hashes compare)."""
        self._key = key
        self._task_hashes.clear()
        self._shares = None

    def task_hash(self, task: TaskConfig) -> str:
        """The keyed hash of ``task``'s definition: what its runs record as
        ``task_hash``.  Worked out once for the current definition of each task; a
        definition that is no longer current (a reload came meanwhile) is hashed as it
        is, so a run never records the hash of a definition it did not run."""
        current = self.tasks.get(task.name)
        if current is None or (current is not task and current != task):
            return task_hash(self._key, task)
        return self._current_hash(task.name, current)

    def _current_hash(self, name: str, task: TaskConfig | None = None) -> str:
        digest = self._task_hashes.get(name)
        if digest is None:
            digest = task_hash(self._key, task if task is not None else self.tasks[name])
            self._task_hashes[name] = digest
        return digest

    async def tasks_hash(self) -> str:
        """One keyed hash of every task's definition: nodes sharing a database compare
        it to find one that runs a different config.  Worked out once (then kept up to
        date by ``swap``) one task at a time, none kept (the table is packed, see
        cronwarden/packed.py), letting the loop turn between slices; a walk that a
        reload or a new key overtook is walked again."""
        while self._shares is None:
            table, key, shares = self.tasks, self._key, 0
            for n, (name, task) in enumerate(table.items()):
                await share_the_loop(n, HASH_SHARE)
                shares ^= self._share(name, task)
            if self.tasks is table and self._key is key and self._shares is None:
                self._shares = shares
        return config_hash_of(self._shares)

    def _share(self, name: str, task: TaskConfig) -> int:
        digest = self._task_hashes.get(name) or task_hash(self._key, task)
        return config_share(self._key, name, digest)

    def task(self, name: str) -> TaskConfig:
        try:
            return self._config.tasks[name]
        except KeyError:
            raise TaskNotFound(f"no task is named {name!r}") from None

    def swap(self, new: Config) -> ConfigChanges:
        """Make ``new`` current; says which tasks came, went or changed."""
        old = self._config.tasks
        changes = ConfigChanges(
            added=sorted(set(new.tasks) - set(old)),
            removed=sorted(set(old) - set(new.tasks)),
            changed=sorted(
                name for name in set(old) & set(new.tasks) if not old.same(name, new.tasks)
            ),
        )
        if self._shares is not None:  # the shares of what changed, out and in
            for name in (*changes.removed, *changes.changed):
                self._shares ^= self._share(name, old[name])
        self._config = new
        for name in (*changes.removed, *changes.changed):
            self._task_hashes.pop(name, None)
        if self._shares is not None:
            for name in (*changes.added, *changes.changed):
                self._shares ^= self._share(name, new.tasks[name])
        return changes
