"""A running run's log size is known while it is written and forgotten at its end, so
the sizes held never outnumber the runs in flight."""

from __future__ import annotations

from cronwarden.runlog.feeds import LogFeeds


def test_a_size_is_held_while_the_log_grows_and_dropped_at_the_end() -> None:
    feeds = LogFeeds()
    assert feeds.kept_so_far("r1") is None  # nothing printed yet
    feeds.notify("r1", 10)
    feeds.notify("r1", 472)
    feeds.notify("r2", 3)
    assert (feeds.kept_so_far("r1"), feeds.kept_so_far("r2")) == (472, 3)
    feeds.finish("r1")
    assert feeds.kept_so_far("r1") is None
    assert feeds.kept_so_far("r2") == 3


def test_a_follower_is_woken_by_growth_and_by_the_end() -> None:
    feeds = LogFeeds()
    with feeds.follow("r1") as feed:
        seen = feed.version
        feeds.notify("r1", 5)
        assert feed.version > seen and not feed.ended
        feeds.finish("r1")
        assert feed.ended
