"""Pure: the next fire times of a task, as ``explain`` and ``GET /api/tasks/{task}`` show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from cronwarden.scheduler.triggers import AnyTrigger
from cronwarden.support.timefmt import iso_z


@dataclass(frozen=True)
class Fire:
    at: datetime  # in the task's zone
    shifted: timedelta | None  # the UTC offset change since the previous fire, if any

    @property
    def local_iso(self) -> str:
        return self.at.isoformat()

    @property
    def utc_iso(self) -> str:
        return iso_z(self.at)

    @property
    def offset_change_minutes(self) -> int | None:
        return None if self.shifted is None else self.shifted // timedelta(minutes=1)

    def as_json(self) -> dict[str, str | int | None]:
        """As ``explain --json`` and ``GET /api/tasks/{task}?next=`` both list it."""
        return {
            "at": self.local_iso,
            "utc": self.utc_iso,
            "offset_change_minutes": self.offset_change_minutes,
        }


def upcoming(trigger: AnyTrigger, zone: tzinfo, after: datetime, count: int) -> list[Fire]:
    """The next ``count`` nominal fires after ``after``, marking where the offset changed."""
    fires: list[Fire] = []
    previous_offset = after.astimezone(zone).utcoffset()
    at = after
    for _ in range(count):
        try:
            nxt = trigger.next_fire(at)
            local = nxt.astimezone(zone) if nxt is not None else None
        except OverflowError:  # past the end of the calendar (year 9999)
            break
        if nxt is None or local is None:
            break
        offset = local.utcoffset()
        shift = None
        if offset is not None and previous_offset is not None and offset != previous_offset:
            shift = offset - previous_offset
        fires.append(Fire(local, shift))
        previous_offset, at = offset, nxt
    return fires
