"""``cronwarden validate`` as an operator (or a CI pipeline) runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BROKEN = """\
[daemon]
listen = "127.0.0.1:70000"

[tasks.backup]
command = "tar czf /tmp/b.tgz /etc"
schedule = "61 * * * *"
timezone = "Mars/Olympus"
retires = 3
"""


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", "validate", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_broken_file_lists_every_error_with_its_key_path(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(BROKEN)
    result = validate("-c", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for where in (
        f"{config}:2: daemon.listen",
        f"{config}:6: tasks.backup.schedule",
        f"{config}:7: tasks.backup.timezone",
        f"{config}:8: tasks.backup.retires",
    ):
        assert where in result.stderr, result.stderr
    assert "4 errors" in result.stderr


def test_json_report(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(BROKEN)
    result = validate("-c", str(config), "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False and len(report["errors"]) == 4


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "config.example.toml"
    result = validate("-c", str(example), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] is True


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = validate("-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "cannot read the file" in result.stderr and "Traceback" not in result.stderr
