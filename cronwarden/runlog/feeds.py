"""Waking the readers that follow a run's log: when it grows, and when the run ends.

The writer calls ``notify`` after every chunk with the bytes its log keeps; that costs
two dict operations while nobody follows the run.  The size is kept until the run's end
is recorded, so a running run's page and ``GET /api/runs/{id}`` say how much it has
printed (its row says 0 until then).  Followers never get lines from here, only a
nudge: they read the lines from the log itself, at their own pace, so a slow follower
holds no buffer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cronwarden.support.nudge import Nudge


class LogFeed(Nudge):
    """Bumped when the run's log grows, and once more when the run has ended."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = False
        self.followers = 0


class LogFeeds:
    def __init__(self) -> None:
        self._feeds: dict[str, LogFeed] = {}
        self._sizes: dict[str, int] = {}  # runs being written here: bytes kept so far

    def notify(self, run_id: str, kept: int) -> None:
        self._sizes[run_id] = kept
        feed = self._feeds.get(run_id)
        if feed is not None:
            feed.bump()

    def finish(self, run_id: str) -> None:
        """The run's end is recorded: followers send what is left, then the end."""
        self._sizes.pop(run_id, None)
        feed = self._feeds.get(run_id)
        if feed is not None:
            feed.ended = True
            feed.bump()

    def kept_so_far(self, run_id: str) -> int | None:
        """The bytes a running run's log holds now (None: it is not being written here,
        or has printed nothing yet)."""
        return self._sizes.get(run_id)

    @contextlib.contextmanager
    def follow(self, run_id: str) -> Iterator[LogFeed]:
        feed = self._feeds.setdefault(run_id, LogFeed())
        feed.followers += 1
        try:
            yield feed
        finally:
            feed.followers -= 1
            if feed.followers == 0:
                del self._feeds[run_id]
