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


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args], capture_output=True, text=True, timeout=60
    )


MAYBE_LATER = """\
[tasks.report]
command = "/usr/local/bin/report"
schedule = "0 6 * * *"
working_dir = "{missing}/reports"
"""


def test_warnings_are_shown_and_do_not_fail(tmp_path: Path) -> None:
    """A working_dir that does not exist yet (a mount, a deploy) is a warning: exit 0."""
    config = tmp_path / "config.toml"
    config.write_text(MAYBE_LATER.format(missing=tmp_path / "not-mounted"))
    result = validate("-c", str(config))
    assert result.returncode == 0, result.stderr
    (warning,) = result.stderr.splitlines()
    assert warning.startswith(f"warning: {config}:4: tasks.report.working_dir")
    assert "does not exist" in warning
    assert "1 warning(s)" in result.stdout
    report = validate("-c", str(config), "--json")
    assert report.returncode == 0
    body = json.loads(report.stdout)
    assert body["valid"] is True and len(body["warnings"]) == 1
    assert body["warnings"][0].startswith(f"{config}:4: tasks.report.working_dir")


def test_a_clean_file_has_no_warnings(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    (tmp_path / "mounted" / "reports").mkdir(parents=True)
    config.write_text(MAYBE_LATER.format(missing=tmp_path / "mounted"))
    result = validate("-c", str(config), "--json")
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout)["warnings"] == []


def test_an_unknown_user_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[tasks.x]\ncommand = "true"\nuser = "nosuchuser"\n')
    result = validate("-c", str(config))
    assert result.returncode == 2
    assert f"{config}:3: tasks.x.user" in result.stderr and "nosuchuser" in result.stderr
    report = json.loads(validate("-c", str(config), "--json").stdout)
    assert report["valid"] is False and report["warnings"] == []


def test_explain_says_reboot_runs_once_per_boot(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[tasks.warm]\ncommand = "true"\nschedule = "@reboot"\n')
    result = cli("explain", "-c", str(config), "warm")
    assert result.returncode == 0, result.stderr
    assert "once per machine boot on each node" in result.stdout
    assert "not again when the daemon restarts within the same boot" in result.stdout


def test_the_daemon_logs_the_same_warnings_at_start_and_reload(make_daemon, tmp_path: Path) -> None:
    from conftest import wait_for  # type: ignore[import-not-found]

    missing = tmp_path / "not-mounted-yet"
    daemon = make_daemon(f'[tasks.report]\ncommand = "true"\nworking_dir = "{missing}"\n')
    assert "config.warning" in daemon.log() and f"{missing} does not exist" in daemon.log()
    other = tmp_path / "also-missing.env"
    daemon.config.write_text(daemon.config.read_text() + f'env_file = "{other}"\n')
    assert daemon.post("/api/reload").status == 200
    wait_for(lambda: f"{other} does not exist" in daemon.log(), what="the reload's warning")
