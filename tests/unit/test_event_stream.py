"""The CLI's event-stream parser: events split anywhere across reads come out whole."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from cronwarden.client import EventStreamParser, ServerEvent

STREAM = (
    b": ping\n\n"
    b'id: 1\ndata: {"n": 1}\n\n'
    b"id: 2\r\ndata: two\r\ndata: lines\r\n\r\n"
    b"event: end\ndata: {}\n\n"
)
EVENTS = [
    ServerEvent("message", "1", '{"n": 1}'),
    ServerEvent("message", "2", "two\nlines"),
    ServerEvent("end", None, "{}"),
]


@given(st.lists(st.integers(0, len(STREAM)), max_size=8))
def test_events_come_out_whole_wherever_the_reads_split(cuts: list[int]) -> None:
    parser = EventStreamParser()
    edges = [0, *sorted(cuts), len(STREAM)]
    events = []
    for start, end in itertools.pairwise(edges):
        events += parser.feed(STREAM[start:end])
    assert events == EVENTS


def test_an_unfinished_event_waits_for_its_blank_line() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 7\ndata: x\n") == []
    assert parser.feed(b"\n") == [ServerEvent("message", "7", "x")]
