"""Log capture: lines, streams, caps and markers, without a process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cronwarden.runlog.reader import read_log_page
from cronwarden.runlog.writer import MAX_LINE_BYTES, LogWriter


def writer(
    tmp_path: Path, max_size: int = 1 << 20, mode: str = "drop_old", on_full=None
) -> LogWriter:  # type: ignore[no-untyped-def]
    return LogWriter(
        tmp_path / "run.idx",
        max_size=max_size,
        mode=mode,  # type: ignore[arg-type]
        now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        on_full=on_full,
    )


def texts(tmp_path: Path) -> list[tuple[int, str, str]]:
    page = read_log_page(tmp_path / "run.idx", limit=10000)
    return [(ln.n, ln.stream, ln.text) for ln in page.lines]


def test_lines_split_across_chunks_and_streams(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.feed("stdout", b"hel")
    w.feed("stderr", b"err1\n")
    w.feed("stdout", b"lo\nwor")
    summary = w.finish()
    assert texts(tmp_path) == [(1, "stderr", "err1"), (2, "stdout", "hello"), (3, "stdout", "wor")]
    assert summary.size == len(b"err1\nhello\nwor") and not summary.truncated
    assert read_log_page(tmp_path / "run.idx").lines[0].ts == "2026-01-01T00:00:00.000Z"


def test_invalid_utf8_is_replaced_not_lost(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.feed("stdout", b"caf\xc3\xa9 \xff\xfe ok\n")
    w.finish()
    assert texts(tmp_path) == [(1, "stdout", "café \ufffd\ufffd ok")]


def test_overlong_lines_are_cut_into_pieces(tmp_path: Path) -> None:
    w = writer(tmp_path, max_size=1 << 30)
    w.feed("stdout", b"x" * (MAX_LINE_BYTES * 2 + 10) + b"\n")
    w.finish()
    assert [len(t) for _, _, t in texts(tmp_path)] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]


def test_drop_new_keeps_the_start_and_marks_the_end(tmp_path: Path) -> None:
    w = writer(tmp_path, max_size=20, mode="drop_new")
    for i in range(10):
        w.feed("stdout", f"line{i}\n".encode())
    summary = w.finish()
    lines = texts(tmp_path)
    assert [t for _, s, t in lines if s == "stdout"] == ["line0", "line1", "line2"]
    assert lines[-1][1] == "cronwarden" and "dropped 7 lines (42 bytes)" in lines[-1][2]
    assert summary.truncated and summary.size == 18


def test_kill_mode_reports_the_overflow_once(tmp_path: Path) -> None:
    calls: list[int] = []
    w = writer(tmp_path, max_size=10, mode="kill", on_full=lambda: calls.append(1))
    for _ in range(5):
        w.feed("stdout", b"0123456789\n")
    assert w.finish().truncated and calls == [1]


def test_drop_old_keeps_the_end_within_the_cap(tmp_path: Path) -> None:
    w = writer(tmp_path, max_size=30, mode="drop_old")
    for i in range(100):
        w.feed("stdout" if i % 2 else "stderr", f"line{i:03d}\n".encode())  # 8 bytes each
    summary = w.finish()
    lines = texts(tmp_path)
    kept = [t for _, s, t in lines if s != "cronwarden"]
    assert kept == ["line097", "line098", "line099"]
    assert summary.size == 24 <= 30 and summary.truncated
    marker = lines[0]
    assert marker[1] == "cronwarden" and "dropped 97 lines (776 bytes)" in marker[2]
    assert [n for n, _, _ in lines] == [97, 98, 99, 100]  # numbers survive trimming
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.idx", "run.out.1"]


def test_paging_by_after_and_stream(tmp_path: Path) -> None:
    w = writer(tmp_path)
    for i in range(10):
        w.feed("stdout" if i % 2 else "stderr", f"{i}\n".encode())
    w.finish()
    page = read_log_page(tmp_path / "run.idx", after=2, limit=3)
    assert [ln.n for ln in page.lines] == [3, 4, 5] and page.has_more and page.next_after == 5
    last = read_log_page(tmp_path / "run.idx", after=8, limit=3)
    assert [ln.n for ln in last.lines] == [9, 10] and not last.has_more
    stdout = read_log_page(tmp_path / "run.idx", stream="stdout", limit=100)
    assert [ln.text for ln in stdout.lines] == ["1", "3", "5", "7", "9"]


def test_missing_log_reads_as_empty(tmp_path: Path) -> None:
    page = read_log_page(tmp_path / "none.idx", after=0, limit=10)
    assert page.lines == [] and not page.has_more and page.next_after == 0


def test_a_line_larger_than_the_cap_is_dropped_in_every_mode(tmp_path: Path) -> None:
    for mode in ("drop_old", "drop_new", "kill"):
        w = writer(tmp_path, max_size=8, mode=mode)
        w.feed("stdout", b"ok\n" + b"x" * 20 + b"\nend\n")
        summary = w.finish()
        kept = [t for _, s, t in texts(tmp_path) if s != "cronwarden"]
        assert summary.size <= 8 and summary.truncated, mode
        assert "x" * 20 not in kept, mode
