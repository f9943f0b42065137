"""How a task's missed fires are gathered into fire.missed alerts.

A catch-up records a task's missed fires together: gathered for a second, they are one
alert.  A daemon that is behind (README: "the daemon is behind") records them one by one
for as long as it stays behind: gathered a second at a time, a 30-minute soak of 200
per-second tasks raised 47,671 alerts, one per task every second or two, each sent to
every target.  So while a task goes on missing fires, each gathering lasts twice as long
as the last, up to ``LONGEST``: a per-second task behind for 30 minutes raises ~14
alerts, each saying how many fires it gathered.  A task that missed nothing for as long
as its last gathering lasted starts again at ``FIRST``.

Pure: the caller owns the clock and the timers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cronwarden.run_record import AnyRun

FIRST = timedelta(seconds=1)  # a catch-up's missed fires, recorded together: one alert
LONGEST = timedelta(minutes=5)


@dataclass
class _Gathering:
    runs: list[AnyRun] = field(default_factory=list)
    length: timedelta = FIRST  # of the gathering under way, or of the last one
    ends_at: datetime | None = None  # None: none under way (ended at ``ended_at``)
    ended_at: datetime | None = None


class MissedFires:
    """Each task's missed fires, gathered until their alert is due."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Gathering] = {}

    def add(self, run: AnyRun, now: datetime) -> datetime | None:
        """Gather ``run`` (ended missed); returns when this task's alert is due if a new
        gathering began (the caller sets a timer for ``take``), else None."""
        gathering = self._tasks.setdefault(run.task_name, _Gathering())
        gathering.runs.append(run)
        if gathering.ends_at is not None:
            return None
        still_missing = (
            gathering.ended_at is not None and now - gathering.ended_at < gathering.length
        )
        gathering.length = min(gathering.length * 2, LONGEST) if still_missing else FIRST
        gathering.ends_at = now + gathering.length
        return gathering.ends_at

    def take(self, task_name: str, now: datetime) -> list[AnyRun]:
        """The task's gathered runs, for its alert; the gathering ends."""
        gathering = self._tasks.get(task_name)
        if gathering is None or not gathering.runs:
            return []
        runs, gathering.runs = gathering.runs, []
        gathering.ends_at, gathering.ended_at = None, now
        return runs

    def take_all(self, now: datetime) -> dict[str, list[AnyRun]]:
        """Every task's gathered runs (at shutdown)."""
        taken = {name: self.take(name, now) for name in list(self._tasks)}
        return {name: runs for name, runs in taken.items() if runs}

    def forget_quiet(self, now: datetime) -> None:
        """Drop the tasks with nothing gathered whose quiet spell has reset them, so
        the table holds only tasks that missed fires lately."""
        for name, gathering in list(self._tasks.items()):
            quiet = gathering.ended_at is not None and now - gathering.ended_at >= gathering.length
            if gathering.ends_at is None and not gathering.runs and quiet:
                del self._tasks[name]
