"""Taking stock of a run's artifacts on real directories: what is kept and in which
order, what is dropped (links, fifos, too deep, not UTF-8, past the cap) and deleted
without touching what a link points at; the task cap's choice of runs; names a client
may ask for; the directory a run gets; the config keys and their errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from cronwarden.artifacts import stock
from cronwarden.artifacts.layout import gone_if_empty, make_run_dir, open_artifact, remove_tree
from cronwarden.artifacts.names import attachment, name_problem
from cronwarden.artifacts.stock import MAX_DEPTH, Entry, runs_past_keep, take_stock
from cronwarden.config import TaskConfig, parse_config
from cronwarden.errors import ConfigError
from cronwarden.ports import ArtifactRecords
from cronwarden.run_record import RunRecord
from cronwarden.runners import artifacts as artifacts_core
from cronwarden.runners.artifacts import RunArtifacts
from cronwarden.support import readable
from cronwarden.support.units import format_size


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_regular_files_are_kept_in_name_order_with_their_digest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "b.txt", b"bee")
    write(run / "a" / "deep" / "x.bin", b"\0\1\2")
    write(run / "a.txt", b"")
    entries = take_stock(run, 1000)
    assert entries == [
        Entry("a/deep/x.bin", 3, hashlib.sha256(b"\0\1\2").hexdigest()),
        Entry("a.txt", 0, hashlib.sha256(b"").hexdigest()),
        Entry("b.txt", 3, hashlib.sha256(b"bee").hexdigest()),
    ]
    assert (run / "a" / "deep" / "x.bin").read_bytes() == b"\0\1\2"


def test_links_fifos_and_odd_names_are_dropped_and_deleted_alone(tmp_path: Path) -> None:
    target = write(tmp_path / "secret", b"not for the run")
    run = tmp_path / "run"
    write(run / "kept.txt", b"ok")
    (run / "link").symlink_to(target)
    (run / "dirlink").symlink_to(tmp_path)
    os.mkfifo(run / "pipe")
    odd = os.fsencode(run) + b"/caf\xe9.txt"  # Latin-1, not UTF-8
    with open(odd, "wb") as file:
        file.write(b"x")
    entries = take_stock(run, 1000)
    dropped = {e.name: e.dropped or "" for e in entries if not e.kept}
    assert "symbolic link" in dropped["link"] and "symbolic link" in dropped["dirlink"]
    assert "not a regular file" in dropped["pipe"]
    assert dropped["caf\\udce9.txt"] == "its name is not UTF-8 text"
    assert [e.name for e in entries if e.kept] == ["kept.txt"]
    assert sorted(os.listdir(run)) == ["kept.txt"]
    assert target.read_bytes() == b"not for the run" and tmp_path.is_dir()


def test_directories_deeper_than_the_limit_are_dropped_whole(tmp_path: Path) -> None:
    run = tmp_path / "run"
    allowed = run.joinpath(*[f"d{i}" for i in range(MAX_DEPTH)])
    write(allowed / "ok.txt", b"1")
    write(allowed / "deeper" / "lost.txt", b"2")
    entries = take_stock(run, 1000)
    assert [e.name for e in entries if e.kept] == [
        "/".join([*allowed.relative_to(run).parts, "ok.txt"])
    ]
    [too_deep] = [e for e in entries if not e.kept]
    assert too_deep.name.endswith("/deeper") and "nested deeper" in (too_deep.dropped or "")
    assert not (allowed / "deeper").exists()


def test_files_past_the_cap_are_dropped_but_smaller_ones_after_still_fit(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for name, size in (("a", 600), ("b", 600), ("c", 100), ("d", 400)):
        write(run / name, b"x" * size)
    entries = take_stock(run, 1024)
    assert [(e.name, e.kept) for e in entries] == [
        ("a", True),
        ("b", False),
        ("c", True),
        ("d", False),
    ]
    assert entries[1].dropped == "past max_artifacts_size (1KiB): it has 600 bytes, 424 were left"
    assert sorted(os.listdir(run)) == ["a", "c"]


def test_a_run_that_keeps_nothing_leaves_no_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gone_if_empty(empty) and not empty.exists()
    assert take_stock(tmp_path / "never-made", 10) == []
    only_link = tmp_path / "only-link"
    only_link.mkdir()
    (only_link / "l").symlink_to("/etc/passwd")
    [link] = take_stock(only_link, 10)
    assert not link.kept and not only_link.exists()
    nothing_fits = tmp_path / "nothing-fits"
    write(nothing_fits / "big", b"x" * 11)
    assert not take_stock(nothing_fits, 10)[0].kept and not nothing_fits.exists()


def test_a_listing_is_bounded_and_says_how_many_went_unlisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stock, "MAX_ENTRIES", 3)
    run = tmp_path / "run"
    for i in range(6):
        write(run / f"f{i}", b"x")
    entries = take_stock(run, 1000)
    assert [e.name for e in entries] == ["f0", "f1", "f2", "f3"]
    assert entries[3].dropped == (
        "a run lists at most 3 entries: this one and 2 more after it were deleted unlisted"
    )
    assert sorted(os.listdir(run)) == ["f0", "f1", "f2"]


def test_the_task_cap_removes_the_oldest_runs_first() -> None:
    newest_first = [("r5", 400), ("r4", 400), ("r3", 400), ("r2", 100), ("r1", 400)]
    assert runs_past_keep(newest_first, 1000) == ["r3", "r2", "r1"]
    assert runs_past_keep(newest_first, 1700) == []
    assert runs_past_keep(newest_first, 1200) == ["r2", "r1"]  # oldest out, even if small
    assert runs_past_keep([], 0) == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("../x", "'..' part"),
        ("a/../../x", "'..' part"),
        ("..", "'..' part"),
        ("/etc/passwd", "absolute path"),
        ("a\0b", "NUL"),
        ("a\udcffb", "not UTF-8"),
    ],
)
def test_names_that_climb_out_or_cannot_be_held_are_refused(name: str, problem: str) -> None:
    assert problem in (name_problem(name) or "")


def test_names_that_might_be_listed_pass() -> None:
    for name in ("report.html", "out/data.csv", "a..b", ".hidden", "dir/.../x", "sp ace?#%"):
        assert name_problem(name) is None, name


def test_a_download_is_saved_under_its_base_name_safely() -> None:
    assert attachment("out/report.html") == (
        "attachment; filename=\"report.html\"; filename*=UTF-8''report.html"
    )
    header = attachment('x/we"ird; name\r\n.txt')
    assert 'filename="we_ird_name_.txt"' in header and "\r" not in header and "\n" not in header
    assert "filename*=UTF-8''we%22ird%3B%20name%0D%0A.txt" in header
    assert 'filename="caf_.txt"' in attachment("café.txt")
    assert 'filename="artifact"' in attachment("...")


def test_a_run_gets_an_empty_directory_of_its_user(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    root = data_dir / "artifacts"
    own = make_run_dir(root, "r1", None, None)
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700  # no other user: stays shut
    write(own / "left.txt", b"from a life that crashed before the spawn")
    assert list(make_run_dir(root, "r1", None, None).iterdir()) == []
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    nobody = pwd.getpwnam("nobody")
    theirs = make_run_dir(root, "r2", nobody.pw_uid, nobody.pw_gid)
    info = theirs.stat()
    assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert stat.S_IMODE(root.stat().st_mode) == stat.S_IMODE(data_dir.stat().st_mode) == 0o711


def test_a_directory_that_cannot_be_made_holds_no_run_back(tmp_path: Path) -> None:
    """As a full data_dir holds no run back: the run starts, without its directory."""
    blocked = tmp_path / "artifacts"
    blocked.write_text("a file where the directory should be")
    shelf = RunArtifacts(blocked, records=cast(ArtifactRecords, None), node="n1")
    assert shelf.prepare("r1", None, None) is False
    assert blocked.is_file()
    fine = RunArtifacts(tmp_path / "fine", cast(ArtifactRecords, None), "n1")
    assert fine.prepare("r1", None, None)
    assert (tmp_path / "fine" / "r1").is_dir()


async def test_the_event_loop_goes_on_while_a_run_directory_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy disk makes rmdir wait (1-5 ms each, 10,000 runs in a minute): the loop
    must go on spawning and answering meanwhile.  The call here is held until the loop
    has run something else; in the loop itself it would never be released.  (A run's
    directory is made in the loop, so runs spawn in the order they were admitted.)"""
    released: list[bool] = []

    def held(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            gate = threading.Event()
            loop.call_soon_threadsafe(gate.set)  # runs only if the loop is free
            released.append(gate.wait(10))
            return real(*args)

        return call

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(artifacts_core, "gone_if_empty", held(artifacts_core.gone_if_empty))
    shelf = RunArtifacts(tmp_path / "artifacts", cast(ArtifactRecords, None), "n1")
    assert shelf.prepare("r1", None, None)
    assert (tmp_path / "artifacts" / "r1").is_dir()
    run = cast(RunRecord, SimpleNamespace(id="r1", task_name="t"))
    await shelf.collect(run, cast(TaskConfig, SimpleNamespace(max_artifacts_size=0)))
    assert not (tmp_path / "artifacts" / "r1").exists()
    assert released == [True]


def test_a_download_never_follows_a_link_on_its_way(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "real" / "f.txt", b"mine")
    (run / "sub").symlink_to(tmp_path / "elsewhere")
    write(tmp_path / "elsewhere" / "f.txt", b"not mine")
    (run / "top.txt").symlink_to(tmp_path / "elsewhere" / "f.txt")
    fd = open_artifact(run, "real/f.txt")
    try:
        assert os.read(fd, 100) == b"mine"
    finally:
        os.close(fd)
    for name in ("sub/f.txt", "top.txt", "real", "missing.txt"):
        with pytest.raises(FileNotFoundError):
            open_artifact(run, name)
    assert remove_tree(run) == (1, 4) and not run.exists()  # links count for nothing
    assert (tmp_path / "elsewhere" / "f.txt").read_bytes() == b"not mine"


def test_sizes_read_as_written() -> None:
    assert [format_size(n) for n in (0, 1000, 1024, 100 * 1024**2, 3 * 1024**3)] == [
        "0",
        "1kB",
        "1KiB",
        "100MiB",
        "3GiB",
    ]
    assert [readable.size(n) for n in (8, 1536, 5 * 1024**3)] == ["8B", "1.5KiB", "5.0GiB"]


def test_the_size_keys_default_apply_from_defaults_and_must_agree(tmp_path: Path) -> None:
    good = parse_config(
        '[defaults]\nkeep_artifacts_size = "5GiB"\n[tasks.a]\ncommand = "true"\n',
        tmp_path / "c.toml",
    )
    task = good.tasks["a"]
    assert (task.max_artifacts_size, task.keep_artifacts_size) == (100 * 1024**2, 5 * 1024**3)
    plain = parse_config('[tasks.a]\ncommand = "true"\n', tmp_path / "c.toml").tasks["a"]
    assert plain.keep_artifacts_size == 1024**3
    with pytest.raises(ConfigError) as info:
        parse_config(
            '[tasks.a]\ncommand = "true"\nmax_artifacts_size = "2GiB"\n'
            '[tasks.b]\ncommand = "true"\nmax_artifacts_size = "ten megs"\n',
            tmp_path / "c.toml",
        )
    text = "\n".join(info.value.problems)
    assert (
        "tasks.a.keep_artifacts_size: keep_artifacts_size = '1GiB' is below "
        "max_artifacts_size = '2GiB': the task must keep at least what one run may keep"
    ) in text
    assert ":6: tasks.b.max_artifacts_size: expected a number of bytes" in text
