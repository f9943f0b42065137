"""cronwarden import-crontab over real-world crontabs: user and system format, every
macro, variable lines, %, CRON_TZ/TZ, comments and bad lines; what it prints loads."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from cronwarden.config import load_config
from cronwarden.crontab_import import convert

DATA = Path(__file__).resolve().parents[1] / "data"


def import_crontab(path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", "import-crontab", *flags, str(path)],
        capture_output=True,
        text=True,
    )


def loads(stdout: str, tmp_path: Path) -> dict[str, dict[str, object]]:
    config = tmp_path / "imported.toml"
    config.write_text(stdout)
    loaded = load_config(config)  # what it prints is a config cronwarden accepts
    assert set(loaded.tasks) == set(tomllib.loads(stdout)["tasks"])
    return dict(tomllib.loads(stdout)["tasks"])


def test_a_user_crontab(tmp_path: Path) -> None:
    source = DATA / "user.crontab"
    assert len(source.read_text().splitlines()) >= 30
    result = import_crontab(source)
    assert result.returncode == 1  # some lines could not be converted
    tasks = loads(result.stdout, tmp_path)
    assert len(tasks) == 19
    backup = tasks["backup.sh"]
    assert backup["command"] == [
        "/bin/bash",
        "-c",
        "/usr/local/bin/backup.sh --full >> /var/log/backup.log 2>&1",
    ]
    assert backup["schedule"] == "30 2 * * *" and backup["catch_up"] == "skip"
    assert backup["jitter"] == "5m"
    assert backup["env"] == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/home/deploy",
        "GREETING": "hello world",
    }
    assert "MAILTO" not in str(tasks)
    assert {"sync-queue", "build-report", "php", "vacuum-db", "rotate-keys"} <= set(tasks)
    macros = {t["schedule"] for t in tasks.values() if str(t["schedule"]).startswith("@")}
    assert macros == {
        "@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
        "@hourly",
    }  # fmt: skip
    assert "catch_up" not in tasks["warm-cache"]  # @reboot
    assert tasks["annual-audit"]["schedule"] == "@yearly"
    assert tasks["annual-audit-2"]["schedule"] == "@annually"
    assert tasks["date"]["command"][2] == "date +%Y-%m-%d > /tmp/today"  # \% is a %
    assert tasks["london-morning"]["timezone"] == "Europe/London"
    assert "timezone" not in tasks["martian-morning"]  # unknown zone: the host's
    assert tasks["noon-report"]["env"]["TZ"] == "America/New_York"  # TZ reaches commands
    assert "timezone" not in tasks["noon-report"]
    warnings = result.stderr.splitlines()
    assert [w.split(": ")[2] for w in warnings[:-1]] == [
        "line 4",
        "line 28",
        "line 32",
        "line 33",
        "line 34",
        "line 35",
        "line 36",
    ]
    assert "MAILTO" in warnings[0] and "[notify.NAME]" in warnings[0]
    assert "never matches a real date" in warnings[6]
    assert warnings[-1].endswith("7 line(s) or setting(s) not converted")
    assert "# line 10: 30 2 * * * /usr/local/bin/backup.sh" in result.stdout


def test_a_system_crontab_keeps_the_user_column(tmp_path: Path) -> None:
    result = import_crontab(DATA / "system.crontab", "--system")
    assert result.returncode == 1
    tasks = loads(result.stdout, tmp_path)
    users = {name: t["user"] for name, t in tasks.items()}
    assert users == {
        "run-parts": "root",
        "run-parts-2": "root",
        "run-parts-3": "root",
        "run-parts-4": "root",
        "php": "www-data",
        "pg_ctl": "postgres",
        "offsite-sync": "backup",
    }
    assert tasks["run-parts"]["command"] == "cd / && run-parts --report /etc/cron.hourly"
    assert tasks["run-parts"]["env"]["PATH"].startswith("/usr/local/sbin")
    assert "line 20: not a crontab entry" in result.stderr


def test_a_clean_crontab_exits_0_and_reads_stdin(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cronwarden", "import-crontab", "-"],
        input="# nothing odd\n*/5 * * * * /usr/local/bin/health-check\n",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stderr == ""
    assert loads(result.stdout, tmp_path)["health-check"]["schedule"] == "*/5 * * * *"


def test_percent_gives_the_command_what_cron_would_on_stdin() -> None:
    tasks = convert("0 * * * * cat%first line%second line\\%with a percent%\n").tasks
    command = tasks["cat"]["command"]
    output = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True)
    assert output.stdout == "first line\nsecond line%with a percent\n"


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = import_crontab(tmp_path / "nope")
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
