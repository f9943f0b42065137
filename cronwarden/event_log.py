"""What changed, numbered, for ``GET /api/events``: runs created, started, reported on
(their job's stage, progress or output) and ended, tasks paused and resumed, the config
reloaded.

The daemon keeps a window of the latest events in memory.  Followers read it at their
own pace after a nudge (never a queue per follower), so a slow follower costs nothing
but its place in the window; one that falls out of the window is told so (a ``gap``)
and goes on from the oldest event still held.

Ids grow across daemon restarts (the first id of a life is its start time in ms times
1000), so a Last-Event-ID from an earlier life is recognised as older than the window
instead of being mistaken for an id of this one.
"""

from __future__ import annotations

import operator
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronwarden.run_record import RUN_COLUMNS, AnyRun, RunRecord
from cronwarden.support.nudge import Nudge

WINDOW = 10_000


# A run event holds the run's field values in this order, not a dict of them: with the
# window full of run events, a daemon whose 10,000 tasks had each run once held 114 MB
# with dicts, 107 MB with tuples (benchmarks/steady.py).  The hash of the run's report
# token is left out: no event shows it, and held it would cost each event 113 bytes.
_RUN_FIELDS = tuple(name for name in RUN_COLUMNS if name != "report_token_sha256")
_fields_of = operator.attrgetter(*_RUN_FIELDS)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str  # run.created, .started, .reported, .ended, task.paused, .resumed, config.reloaded
    task: str | None
    said: dict[str, Any] | tuple[Any, ...]  # see data

    @property
    def data(self) -> dict[str, Any]:
        """What the event says; for a run event, the run's fields then."""
        if isinstance(self.said, tuple):
            return dict(zip(_RUN_FIELDS, self.said, strict=True))
        return self.said

    @property
    def run(self) -> RunRecord | None:
        return RunRecord(**self.data) if self.kind.startswith("run.") else None


class EventLog:
    def __init__(self, started_at: datetime, window: int = WINDOW) -> None:
        self._events: deque[Event] = deque(maxlen=window)
        self._next_id = int(started_at.timestamp() * 1000) * 1000
        self.first_id = self._next_id
        self.closed = False
        self._nudge = Nudge()

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def publish_run(self, kind: str, run: AnyRun) -> None:
        """A run changed: kept as a copy of its fields (cheap: a burst publishes
        thousands; the JSON is made only for a follower that reads it)."""
        self._append(kind, run.task_name, _fields_of(run))

    def publish(self, kind: str, task: str | None, data: dict[str, Any]) -> None:
        self._append(kind, task, data)

    def publish_task(self, kind: str, task: str) -> None:
        """A task was paused or resumed (a subscriber of the hub's task changes)."""
        self._append(kind, task, {"task": task})

    def publish_reload(self, kind: str, answer: dict[str, Any]) -> None:
        """The config was reloaded: what changed (a subscriber of the hub's reloads)."""
        self._append(kind, None, answer)

    def _append(self, kind: str, task: str | None, said: dict[str, Any] | tuple[Any, ...]) -> None:
        self._events.append(Event(self._next_id, kind, task, said))
        self._next_id += 1
        self._nudge.bump()

    def after(self, last_id: int, limit: int) -> tuple[list[Event], bool]:
        """Up to ``limit`` events after ``last_id``, and whether some after it are no
        longer held (fell out of the window, or happened in an earlier life)."""
        if not self._events:
            return [], last_id < self.first_id - 1
        oldest = self._events[0].id
        gap = last_id < oldest - 1
        start = max(0, last_id + 1 - oldest)
        return [self._events[i] for i in range(start, min(len(self._events), start + limit))], gap

    def close(self) -> None:
        """The daemon is stopping: followers send what is left and close their streams
        (else the HTTP server would wait for them before it could stop)."""
        self.closed = True
        self._nudge.bump()

    async def wait_past(self, last_id: int) -> None:
        """Return once there is an event after ``last_id``, or the log is closed."""
        while self.last_id <= last_id and not self.closed:
            await self._nudge.wait_past(self._nudge.version)
