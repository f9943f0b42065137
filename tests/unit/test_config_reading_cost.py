"""Reading a config with many tasks builds no task model it does not need: a build
costs ~11 us (cronwarden/packed.py), and start-up reads 100,000 tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cronwarden.config import load_config
from cronwarden.packed import PackedModels


def test_checking_chains_builds_only_the_chained_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [f'[tasks.t{i}]\ncommand = "true"\nschedule = "@hourly"\n' for i in range(50)]
    lines.append('[tasks.follower]\ncommand = "true"\nafter = ["t3"]\n')
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines))
    built: list[str] = []
    build = PackedModels._build

    def counted(self: PackedModels[Any], name: str) -> Any:
        built.append(name)
        return build(self, name)

    monkeypatch.setattr(PackedModels, "_build", counted)
    config = load_config(path)
    assert built == ["follower"]
    assert list(config.tasks["follower"].after) == ["t3"]
    assert len(config.tasks) == 51
