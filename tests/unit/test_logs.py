"""Log capture: lines, streams, caps and markers, without a process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cronwarden.runlog.masking import NO_SECRETS, SecretMasker
from cronwarden.runlog.reader import iter_raw, read_log_page
from cronwarden.runlog.writer import MAX_ENTRY_BYTES, MAX_LINE_BYTES, LogWriter, append_note


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


# -- the compact store ----------------------------------------------------------


class Ticks:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, ms: int) -> None:
        self.value += timedelta(milliseconds=ms)


def disk_use(tmp_path: Path) -> int:
    return sum(p.stat().st_size for p in tmp_path.iterdir())


def test_short_lines_cost_little_more_than_the_output(tmp_path: Path) -> None:
    w = writer(tmp_path, max_size=1 << 30)
    output = b"y\n" * 2_500_000  # 5 MB of the shortest lines there are
    for start in range(0, len(output), 65536):
        w.feed("stdout", output[start : start + 65536])
    summary = w.finish()
    assert summary.size == len(output) and not summary.truncated
    assert disk_use(tmp_path) <= len(output) * 1.01
    assert b"".join(iter_raw(tmp_path / "run.idx")) == output
    page = read_log_page(tmp_path / "run.idx", after=2_499_990, limit=100)
    assert [ln.n for ln in page.lines] == list(range(2_499_991, 2_500_001))
    assert not page.has_more


def test_lines_arriving_together_share_a_timestamp_and_a_trickle_gets_its_own(
    tmp_path: Path,
) -> None:
    clock = Ticks()
    w = LogWriter(tmp_path / "run.idx", max_size=1 << 20, mode="drop_old", now=clock)
    w.feed("stdout", b"a\n")
    clock.advance(5)
    w.feed("stdout", b"b\n")  # within 10 ms: same block
    clock.advance(400)
    w.feed("stdout", b"c\n")  # a quarter second later: its own time
    w.feed("stderr", b"d\n")
    w.finish()
    lines = read_log_page(tmp_path / "run.idx").lines
    assert [(ln.text, ln.stream, ln.ts[-10:]) for ln in lines] == [
        ("a", "stdout", "00:00.000Z"),
        ("b", "stdout", "00:00.000Z"),
        ("c", "stdout", "00:00.405Z"),
        ("d", "stderr", "00:00.405Z"),
    ]


def test_binary_output_is_kept_as_bytes_and_shown_with_replacement_characters(
    tmp_path: Path,
) -> None:
    w = writer(tmp_path)
    output = bytes(range(256)) * 4 + b"\n\x00\xff tail without newline"
    w.feed("stdout", output)
    w.finish()
    assert b"".join(iter_raw(tmp_path / "run.idx")) == output
    lines = read_log_page(tmp_path / "run.idx").lines
    assert any("\ufffd" in ln.text for ln in lines)
    assert lines[-1].text == "\x00\ufffd tail without newline"
    assert len(lines) == output.count(b"\n") + 1


def test_overlong_lines_inside_a_chunk_of_short_ones_are_cut(tmp_path: Path) -> None:
    w = writer(tmp_path, max_size=1 << 30)
    long = b"L" * (MAX_LINE_BYTES * 3 + 5)
    w.feed("stdout", b"a\nb\n" + long + b"\nc\n")
    w.finish()
    sizes = [len(t) for _, _, t in texts(tmp_path)]
    assert sizes == [1, 1, MAX_LINE_BYTES, MAX_LINE_BYTES, MAX_LINE_BYTES, 5, 1]
    assert b"".join(iter_raw(tmp_path / "run.idx")) == b"a\nb\n" + long + b"\nc\n"


def test_a_page_stops_at_its_text_budget(tmp_path: Path) -> None:
    w = writer(tmp_path, max_size=1 << 30)
    for _ in range(100):
        w.feed("stdout", b"z" * 60_000 + b"\n")
    w.finish()
    page = read_log_page(tmp_path / "run.idx", limit=10_000)
    assert page.has_more and 60 < len(page.lines) < 100
    rest = read_log_page(tmp_path / "run.idx", after=page.next_after, limit=10_000)
    assert [ln.n for ln in rest.lines] == list(range(page.next_after + 1, 101))


def test_secret_split_across_chunks_is_masked(tmp_path: Path) -> None:
    w = LogWriter(
        tmp_path / "run.idx",
        max_size=1 << 30,
        mode="drop_old",
        now=Ticks(),
        masker=SecretMasker(["s3cr3t-t0ken"]),
    )
    w.feed("stdout", b"token=s3cr")
    w.feed("stdout", b"3t-t0ken done\nnext s3cr3t-")
    w.feed("stdout", b"t0ken\n")
    # An overlong line cut where a secret straddles the cut.
    w.feed("stdout", b"x" * (MAX_LINE_BYTES - 4) + b"s3cr3t")
    w.feed("stdout", b"-t0ken" + b"y" * MAX_LINE_BYTES + b"\n")
    w.finish()
    raw = b"".join(iter_raw(tmp_path / "run.idx"))
    assert b"s3cr" not in raw.replace(b"\n", b"") and b"t0ken" not in raw
    assert [t for _, _, t in texts(tmp_path)][:2] == ["token=*** done", "next ***"]
    assert raw.count(b"***") == 3


def test_masker_cuts_before_a_secret_that_continues_past_the_data() -> None:
    masker = SecretMasker(["abcdef", "\nmulti\nline-value\n"])
    data = b"0123456789abc"
    assert masker.safe_cut(data, len(data)) == 10
    assert masker.mask(b"x line-value y multi") == b"x *** y ***"
    assert masker.mask_text("failed: abcdef") == "failed: ***"
    assert not SecretMasker(["", "ab", "*"])  # too short to mask anything useful


def test_drop_old_disk_use_stays_bounded_while_writing(tmp_path: Path) -> None:
    cap = 1 << 20
    segment = cap // 8
    w = writer(tmp_path, max_size=cap, mode="drop_old")
    line = b"0123456789" * 9 + b"abcdefghi\n"  # 100 bytes
    peak = 0
    for i in range(2000):  # 20 MB
        w.feed("stdout" if i % 3 else "stderr", line * 100)
        peak = max(peak, disk_use(tmp_path))
    summary = w.finish()
    index = (tmp_path / "run.idx").stat().st_size
    assert peak <= cap + segment + MAX_ENTRY_BYTES + index
    assert summary.size <= cap and summary.size > cap - 100 and summary.truncated
    assert disk_use(tmp_path) <= cap + segment + index and index < cap // 100
    lines = read_log_page(tmp_path / "run.idx", limit=3).lines
    assert lines[0].stream == "cronwarden" and "before this line" in lines[0].text
    assert lines[1].n == lines[0].n + 1 and lines[-1].text == line[:-1].decode()
    assert read_log_page(tmp_path / "run.idx", after=200_000).lines == []
    last = read_log_page(tmp_path / "run.idx", after=199_999).lines
    assert [ln.n for ln in last] == [200_000]
    raw = b"".join(iter_raw(tmp_path / "run.idx"))
    assert raw.startswith(b"[cronwarden] log cap of 1048576 bytes reached: dropped ")
    assert raw.endswith(line * 100) and len(raw) == summary.size + raw.index(b"\n") + 1


def test_drop_new_and_kill_disk_use_stays_within_the_cap(tmp_path: Path) -> None:
    cap = 256 * 1024
    for mode in ("drop_new", "kill"):
        folder = tmp_path / mode
        folder.mkdir()
        w = writer(folder, max_size=cap, mode=mode)
        for _ in range(300):
            w.feed("stdout", b"k" * 99 + b"\n" + b"m" * 1000 + b"\n")
        summary = w.finish()
        assert summary.truncated and cap - 1101 <= summary.size <= cap
        assert disk_use(folder) <= cap + 1024, mode
        marker = read_log_page(folder / "run.idx", after=590, limit=1000).lines[-1]
        assert marker.stream == "cronwarden" and "after this line" in marker.text


def test_a_note_after_a_crash_drops_output_the_index_never_saw(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.feed("stdout", b"one\ntwo\n")
    with open(tmp_path / "run.out", "ab") as data:  # a crash between data and index writes
        data.write(b"torn")
    summary = append_note(tmp_path / "run.idx", "re-adopted after a daemon restart", Ticks()())
    assert summary.size == 8 and not summary.truncated
    assert texts(tmp_path) == [
        (1, "stdout", "one"),
        (2, "stdout", "two"),
        (3, "cronwarden", "[cronwarden] re-adopted after a daemon restart"),
    ]
    assert b"torn" not in b"".join(iter_raw(tmp_path / "run.idx"))


def test_logs_of_the_json_lines_format_are_still_read(tmp_path: Path) -> None:
    records = [
        {"n": 1, "ts": "2026-01-01T00:00:00.000Z", "stream": "stdout", "text": "old"},
        {"n": 2, "ts": "2026-01-01T00:00:01.000Z", "stream": "stderr", "text": "format"},
    ]
    legacy = tmp_path / "run.log"
    legacy.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert texts(tmp_path) == [(1, "stdout", "old"), (2, "stderr", "format")]
    assert b"".join(iter_raw(tmp_path / "run.idx")) == b"old\nformat\n"
    assert append_note(tmp_path / "run.idx", "bye", Ticks()()).size == 11
    assert texts(tmp_path)[-1] == (3, "cronwarden", "[cronwarden] bye")


def test_a_long_drop_old_trickle_keeps_its_index_small(tmp_path: Path) -> None:
    clock = Ticks()
    cap = 64 * 1024
    w = LogWriter(tmp_path / "run.idx", max_size=cap, mode="drop_old", now=clock)
    for i in range(30_000):  # one 20-byte line every second: an entry each
        w.feed("stdout", f"tick {i:>14}\n".encode())
        clock.advance(1000)
    # A crash and a restart: the next life adds its note to the segmented log, which
    # holds what the writer had (no final trim: at most a segment over the cap).
    summary = append_note(tmp_path / "run.idx", "re-adopted after a daemon restart", clock())
    assert summary.truncated and cap - 20 <= summary.size <= cap + 64 * 1024
    kept_entries = cap // 20
    assert (tmp_path / "run.idx").stat().st_size < (kept_entries * 2 + 1100) * 34
    page = read_log_page(tmp_path / "run.idx", after=29_998)
    assert [(ln.n, ln.text) for ln in page.lines] == [
        (29_999, "tick          29998"),
        (30_000, "tick          29999"),
        (30_001, "[cronwarden] re-adopted after a daemon restart"),
    ]
    first = read_log_page(tmp_path / "run.idx", limit=2).lines
    assert first[0].stream == "cronwarden" and first[1].n == first[0].n + 1
    assert first[1].text == f"tick {first[1].n - 1:>14}"


# -- a restarted daemon going on with a run's log ---------------------------------

RESTART = "re-adopted after a daemon restart"


def resume(
    folder: Path, max_size: int = 1 << 20, mode: str = "drop_old", **options: object
) -> LogWriter | None:
    """The next daemon life's writer for the log in ``folder``: the previous life's
    writer is just left, unfinished, as a crash leaves it."""
    return LogWriter.resume(
        folder / "run.idx",
        max_size=max_size,
        mode=mode,  # type: ignore[arg-type]
        now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        note=RESTART,
        **options,  # type: ignore[arg-type]
    )


def resumed(
    folder: Path, max_size: int = 1 << 20, mode: str = "drop_old", **options: object
) -> LogWriter:
    writer = resume(folder, max_size, mode, **options)
    assert writer is not None
    return writer


@pytest.mark.parametrize("mode", ["drop_new", "drop_old"])
def test_a_resumed_log_goes_on_after_the_note(tmp_path: Path, mode: str) -> None:
    w = writer(tmp_path, mode=mode)
    w.feed("stdout", b"one\ntwo\n")
    w.feed("stderr", b"three\n")
    before = (tmp_path / "run.idx").read_bytes()
    r = resumed(tmp_path, mode=mode)
    r.feed("stdout", b"four\n")  # arrives at once: it could join "one two" if allowed
    r.feed("stderr", b"five\n")
    summary = r.finish()
    assert texts(tmp_path) == [
        (1, "stdout", "one"),
        (2, "stdout", "two"),
        (3, "stderr", "three"),
        (4, "cronwarden", f"[cronwarden] {RESTART}"),
        (5, "stdout", "four"),
        (6, "stderr", "five"),
    ]
    assert (tmp_path / "run.idx").read_bytes().startswith(before)  # old entries as they were
    assert not summary.truncated
    if mode == "drop_new":
        assert summary.size == len(b"one\ntwo\nthree\nfour\nfive\n")  # the note is on top


@pytest.mark.parametrize("mode", ["drop_new", "kill"])
def test_a_log_at_its_cap_before_the_crash_drops_what_comes_after(
    tmp_path: Path, mode: str
) -> None:
    w = writer(tmp_path, max_size=20, mode=mode)
    for i in range(4):
        w.feed("stdout", f"abc{i}\n".encode())  # 20 bytes: the cap
    calls: list[int] = []
    r = resumed(tmp_path, max_size=20, mode=mode, on_full=lambda: calls.append(1))
    r.feed("stdout", b"x\n")
    r.feed("stderr", b"more\n")
    summary = r.finish()
    lines = texts(tmp_path)
    assert [t for _, s, t in lines if s != "cronwarden"] == ["abc0", "abc1", "abc2", "abc3"]
    assert lines[4] == (5, "cronwarden", f"[cronwarden] {RESTART}")
    assert lines[5][:2] == (8, "cronwarden") and len(lines) == 6  # 6, 7: the dropped ones
    assert "dropped 2 lines (7 bytes) after this line" in lines[5][2]
    assert summary.truncated and summary.size == 20 and calls == [1]


def test_a_resumed_drop_old_log_keeps_dropping_its_oldest_segments(tmp_path: Path) -> None:
    cap = 1 << 20
    segment = cap // 8
    line = b"0123456789" * 9 + b"abcdefghi\n"  # 100 bytes
    w = writer(tmp_path, max_size=cap, mode="drop_old")
    for _ in range(150):  # 1.5 MB: the oldest segments are gone already
        w.feed("stdout", line * 100)
    r = resumed(tmp_path, max_size=cap, mode="drop_old")
    peak = 0
    for i in range(500):  # 5 MB more
        r.feed("stdout" if i % 3 else "stderr", line * 100)
        peak = max(peak, disk_use(tmp_path))
    summary = r.finish()
    index = (tmp_path / "run.idx").stat().st_size
    assert peak <= cap + segment + MAX_ENTRY_BYTES + index
    assert disk_use(tmp_path) <= cap + segment + index
    assert summary.truncated and cap - 100 < summary.size <= cap
    total = 15_000 + 1 + 50_000  # lines before, the note, lines after
    last = read_log_page(tmp_path / "run.idx", after=total - 2).lines
    assert [(ln.n, ln.text) for ln in last] == [(n, line[:-1].decode()) for n in (total - 1, total)]
    first = read_log_page(tmp_path / "run.idx", limit=2).lines
    assert first[0].stream == "cronwarden" and "before this line" in first[0].text
    assert first[1].n == first[0].n + 1 > 15_001
    raw = b"".join(iter_raw(tmp_path / "run.idx"))
    assert len(raw) == summary.size + raw.index(b"\n") + 1


@pytest.mark.parametrize("mode", ["drop_new", "drop_old"])
def test_resume_cuts_output_the_index_never_named(tmp_path: Path, mode: str) -> None:
    w = writer(tmp_path, mode=mode)
    w.feed("stdout", b"one\ntwo\n")
    with open(tmp_path / "run.out", "ab") as data:  # a crash between data and index writes
        data.write(b"torn\n")
    if mode == "drop_old":  # a torn write that went on into the next segment
        (tmp_path / "run.out.1").write_bytes(b"more torn\n")
    r = resumed(tmp_path, mode=mode)
    assert not (tmp_path / "run.out.1").exists()
    r.feed("stdout", b"three\n")
    r.finish()
    assert texts(tmp_path) == [
        (1, "stdout", "one"),
        (2, "stdout", "two"),
        (3, "cronwarden", f"[cronwarden] {RESTART}"),
        (4, "stdout", "three"),
    ]
    raw = b"".join(iter_raw(tmp_path / "run.idx"))
    assert raw == f"one\ntwo\n[cronwarden] {RESTART}\nthree\n".encode()


def test_resume_of_a_run_that_printed_nothing_starts_with_the_note(tmp_path: Path) -> None:
    (tmp_path / "run.out").write_bytes(b"torn")  # a crash before the index was made
    r = resumed(tmp_path, mode="drop_new")
    r.feed("stdout", b"first\n")
    assert r.finish().size == 6
    assert texts(tmp_path) == [(1, "cronwarden", f"[cronwarden] {RESTART}"), (2, "stdout", "first")]
    assert b"torn" not in b"".join(iter_raw(tmp_path / "run.idx"))


def test_masking_applies_after_resume(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.feed("stdout", b"before\n")
    r = resumed(tmp_path, masker=SecretMasker(["s3cr3t-t0ken"]))
    r.feed("stdout", b"token=s3cr")
    r.feed("stdout", b"3t-t0ken\n")
    r.finish()
    assert [t for _, _, t in texts(tmp_path)][-1] == "token=***"
    assert b"t0ken" not in b"".join(iter_raw(tmp_path / "run.idx"))


def test_logs_that_cannot_be_resumed_say_so_and_can_still_be_noted(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "run.log").write_text(
        json.dumps({"n": 1, "ts": "2026-01-01T00:00:00.000Z", "stream": "stdout", "text": "a"})
        + "\n"
    )
    assert resume(legacy, masker=NO_SECRETS) is None
    assert not (legacy / "run.idx").exists()
    one_file = tmp_path / "one_file"
    one_file.mkdir()
    w = writer(one_file, mode="drop_new")
    w.feed("stdout", b"a\n")
    assert resume(one_file, mode="drop_old") is None
    for folder in (legacy, one_file):
        append_note(folder / "run.idx", RESTART, Ticks()())
        assert texts(folder) == [(1, "stdout", "a"), (2, "cronwarden", f"[cronwarden] {RESTART}")]
