"""Waking the readers that follow a run's log: when it grows, and when the run ends.

The writer calls ``notify`` after every chunk; that costs one dict lookup while nobody
follows the run.  Followers never get lines from here, only a nudge: they read the
lines from the log itself, at their own pace, so a slow follower holds no buffer.
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

    def notify(self, run_id: str) -> None:
        feed = self._feeds.get(run_id)
        if feed is not None:
            feed.bump()

    def finish(self, run_id: str) -> None:
        """The run's end is recorded: followers send what is left, then the end."""
        feed = self._feeds.get(run_id)
        if feed is not None:
            feed.ended = True
            feed.bump()

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
