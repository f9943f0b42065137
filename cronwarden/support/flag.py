"""A switch set once, awaited as a future."""

from __future__ import annotations

import asyncio


class Flag:
    """Set once, then set for good; ``settled()`` is a future to wait on beside others.

    An ``asyncio.Event`` is awaited through a coroutine, so waiting for one beside other
    futures (``asyncio.wait``) takes a task of its own: every run's supervision waited
    for two of them, two tasks a run that never did anything but wait.  The future is
    shared by every waiter: wait for it with ``asyncio.wait`` (which never cancels
    it), or ``asyncio.shield`` it.  One cancelled all the same is replaced."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def is_set(self) -> bool:
        return self._set

    def settled(self) -> asyncio.Future[None]:
        """Done once the flag is set."""
        if self._future is None or self._future.cancelled():
            self._future = asyncio.get_running_loop().create_future()
            if self._set:
                self._future.set_result(None)
        return self._future
