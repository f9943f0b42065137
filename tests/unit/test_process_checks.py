"""Start checks that need no process: clear reasons before anything is forked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronwarden.runners import process
from cronwarden.runners.process import ProcessSpec, StartFailed, _check_start, proc_stat


def test_switching_user_without_root_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(process.os, "geteuid", lambda: 1000)
    spec = ProcessSpec(argv=["/bin/true"], env={}, cwd=tmp_path, user="nobody")
    with pytest.raises(StartFailed, match="not running as root"):
        _check_start(spec)


def test_working_dir_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(StartFailed, match="is not a directory"):
        _check_start(ProcessSpec(argv=["/bin/true"], env={}, cwd=file))


def test_proc_stat_of_this_process_and_of_none() -> None:
    import os

    stat = proc_stat(os.getpid())
    assert stat is not None and stat.state in "RS" and stat.start_ticks > 0
    assert proc_stat(2**22 + 12345) is None
