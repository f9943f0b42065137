"""The dead-man's switch: a task with expect_success_within is overdue once that long
has passed since its last success (or, if it never succeeded, since it was first
watched).  Pure: the caller owns the clock, the timer and the store.

What must survive a restart is kept in task_state: when watching began (so a daemon
restarted every night still notices a task that never succeeds) and when the alert
went out (so a restart does not page again for the same silence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class Watched:
    since: datetime  # when watching began
    last_success: datetime | None = None
    alerted_at: datetime | None = None

    @property
    def reference(self) -> datetime:
        """The instant the allowed silence is counted from."""
        if self.last_success is None or self.last_success < self.since:
            return self.since
        return self.last_success

    @property
    def alerted(self) -> bool:
        """Alerted for the present silence (a success since then starts a new one)."""
        return self.alerted_at is not None and self.alerted_at >= self.reference

    def due_at(self, within: timedelta) -> datetime | None:
        return None if self.alerted else self.reference + within


class OverdueWatch:
    def __init__(self) -> None:
        self.tasks: dict[str, Watched] = {}

    def watch(self, task: str, now: datetime) -> Watched:
        """Start watching a task if not yet (its state may come from the store)."""
        return self.tasks.setdefault(task, Watched(since=now))

    def forget(self, task: str) -> None:
        self.tasks.pop(task, None)

    def succeeded(self, task: str, at: datetime) -> bool:
        """Record a success; True if it ends a silence that was alerted."""
        watched = self.tasks.get(task)
        if watched is None:
            return False
        was_alerted = watched.alerted
        if watched.last_success is None or at > watched.last_success:
            watched.last_success = at
        return was_alerted

    def is_overdue(self, task: str, within: timedelta, now: datetime) -> bool:
        """Whether the task's allowed silence has run out now, alerted or not (what the
        dashboard shows; ``due`` is what is still to be alerted)."""
        watched = self.tasks.get(task)
        return watched is not None and within > timedelta(0) and watched.reference + within <= now

    def due(self, within: dict[str, timedelta], now: datetime) -> list[str]:
        """Tasks overdue now and not yet alerted; marks them alerted."""
        found = []
        for task, limit in within.items():
            watched = self.tasks.get(task)
            if watched is None:
                continue
            due = watched.due_at(limit)
            if due is not None and due <= now:
                watched.alerted_at = now
                found.append(task)
        return found

    def next_due(self, within: dict[str, timedelta]) -> datetime | None:
        times = [
            due
            for task, limit in within.items()
            if (watched := self.tasks.get(task)) is not None
            and (due := watched.due_at(limit)) is not None
        ]
        return min(times, default=None)
