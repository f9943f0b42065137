"""The daemon's notion of "now" and of "later", replaceable in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Cancellable:
        """Call ``callback`` in the event loop once ``when`` has come (now if it has)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> Cancellable:
        wait = max(0.0, (when - self.now()).total_seconds())
        return asyncio.get_running_loop().call_later(wait, callback)
