"""@reboot fires once per machine boot: the ledger in data_dir, without a daemon."""

from __future__ import annotations

import json
from pathlib import Path

from cronwarden.scheduler.boot import RebootLedger, current_boot_id


def test_each_task_fires_once_per_boot_and_again_after_a_new_boot(tmp_path: Path) -> None:
    first = RebootLedger(tmp_path, "boot-1")
    assert first.claim(["worker", "warm-cache"]) == ["worker", "warm-cache"]
    assert RebootLedger(tmp_path, "boot-1").claim(["worker", "warm-cache"]) == []
    # a task added later in the same boot fires once, at the next start
    assert RebootLedger(tmp_path, "boot-1").claim(["worker", "new"]) == ["new"]
    assert RebootLedger(tmp_path, "boot-1").claim(["worker", "new"]) == []
    assert RebootLedger(tmp_path, "boot-2").claim(["worker", "new"]) == ["worker", "new"]
    assert (tmp_path / "reboot-fired.json").stat().st_mode & 0o777 == 0o600


def test_without_a_boot_id_every_start_counts(tmp_path: Path) -> None:
    assert RebootLedger(tmp_path, None).claim(["a"]) == ["a"]
    assert RebootLedger(tmp_path, None).claim(["a"]) == ["a"]


def test_a_damaged_ledger_fires_rather_than_loses(tmp_path: Path) -> None:
    (tmp_path / "reboot-fired.json").write_text("{not json")
    assert RebootLedger(tmp_path, "b").claim(["a"]) == ["a"]
    assert json.loads((tmp_path / "reboot-fired.json").read_text()) == {
        "boot_id": "b",
        "tasks": ["a"],
    }


def test_boot_id_is_read_from_the_kernel_or_the_given_file(tmp_path: Path) -> None:
    assert current_boot_id() not in (None, "")  # /proc/sys/kernel/random/boot_id
    source = tmp_path / "boot_id"
    source.write_text("1234\n")
    assert current_boot_id(source) == "1234"
    assert current_boot_id(tmp_path / "missing") is None
