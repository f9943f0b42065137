"""A run triggered with a ``ttl`` ends ``expired`` if it has not started by its
``expires_at``: wherever it waits (delayed, queued, committing its row, waiting for a
place or a lock), never once its process is being started.  One timer per such run,
set when the run is carried (so a run recovered at start-up or taken over from a dead
node is watched again, and one whose instant passed meanwhile expires at once)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from cronwarden.runners.carried import Background
from cronwarden.runners.endings import expired
from cronwarden.runners.lifecycle import NOT_STARTED, RunHandle, RunState
from cronwarden.runners.outcome import Outcome
from cronwarden.support.clock import Clock


class Expiries:
    def __init__(
        self,
        clock: Clock,
        cancel: Callable[[RunHandle, Outcome], Awaitable[None]],
        background: Background,
        closing: Callable[[], bool],
    ) -> None:
        self._clock = clock
        self._cancel = cancel
        self._background = background
        self._closing = closing

    def watch(self, handle: RunHandle) -> None:
        if handle.run.expires_at is not None and handle.expiry is None:
            when = handle.run.expires_at
            handle.expiry = self._clock.call_at(when, partial(self._expire, handle))

    def _expire(self, handle: RunHandle) -> None:
        handle.expiry = None
        if handle.state not in NOT_STARTED or self._closing():
            return
        handle.expired = True
        if handle.state in (RunState.QUEUED, RunState.DELAYED):
            self._background.spawn(self._cancel(handle, expired(handle.run)))
        else:  # committing its row, or waiting for a place: it ends where it waits
            handle.control.stop.set()
