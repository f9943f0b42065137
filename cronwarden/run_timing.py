"""When an on-request run may start, and until when: what a trigger's ``delay``,
``run_at`` and ``ttl`` ask for, read by the API and carried out by the run core."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Timing:
    """When an on-request run may start: no earlier than ``start_at`` (a trigger's
    delay or run_at; None: now), and no later than ``ttl`` after it was asked for."""

    start_at: datetime | None = None
    ttl: timedelta | None = None

    def of(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """The new run's ``delayed_until`` and ``expires_at``."""
        later = self.start_at if self.start_at is not None and self.start_at > now else None
        return later, (now + self.ttl if self.ttl is not None else None)


NOW = Timing()
