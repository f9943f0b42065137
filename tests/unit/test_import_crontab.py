"""cronwarden import-crontab over real-world crontabs: Debian 12's own cron files, a
user crontab as people write them, and the ways they go wrong (the other format, name
clashes, MAILTO).  What it prints must load, alone and appended to a growing config."""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import apprise
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from conftest import free_port  # type: ignore[import-not-found]

from cronwarden.config import load_config
from cronwarden.crontab.convert import convert
from cronwarden.crontab.names import name_for

DATA = Path(__file__).resolve().parents[1] / "data"
DEBIAN = DATA / "debian"
HOST = socket.gethostname()
ME = pwd.getpwuid(os.geteuid()).pw_name

# What each Debian 12 file's entries are named: after the program that does the work,
# not the guard in front of it (these were if, if, command, command-2, perl, if, ...).
DEBIAN_NAMES = {
    "crontab": ["cron.hourly", "cron.daily", "cron.weekly", "cron.monthly"],
    "anacron": ["anacron"],
    "sysstat": ["debian-sa1", "debian-sa1-2"],
    "php": ["php-sessionclean"],
    "certbot": ["certbot"],
    "e2scrub_all": ["e2fsprogs-e2scrub_all_cron", "e2scrub_all"],
    "mdadm": ["mdadm-checkarray"],
    "munin-node": ["munin-run"],
    "awstats": ["awstats-update.sh", "awstats-buildstatic.sh"],
}


def import_crontab(
    path: Path | str, *flags: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", "import-crontab", *flags, str(path)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", "validate", "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def loads(stdout: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    config = tmp_path / "imported.toml"
    config.write_text(stdout)
    loaded = load_config(config)  # what it prints is a config cronwarden accepts
    assert set(loaded.tasks) == set(tomllib.loads(stdout).get("tasks", {}))
    return dict(tomllib.loads(stdout).get("tasks", {}))


def test_a_user_crontab_runs_as_the_user_named(tmp_path: Path) -> None:
    source = DATA / "user.crontab"
    result = import_crontab(source, "--user", "www-data")
    assert result.returncode == 1  # some lines could not be converted
    tasks = loads(result.stdout, tmp_path)
    assert len(tasks) == 23
    assert {t["user"] for t in tasks.values()} == {"www-data"}
    assert 'these tasks run as user = "www-data"' in result.stdout
    backup = tasks["backup.sh"]
    assert backup["command"] == [
        "/bin/bash",
        "-c",
        "/usr/local/bin/backup.sh --full >> /var/log/backup.log 2>&1",
    ]
    assert backup["schedule"] == "30 2 * * *" and backup["catch_up"] == "skip"
    assert backup["jitter"] == "5m"
    assert backup["working_dir"] == "/home/deploy"  # cron starts a command in its HOME
    assert backup["env"] == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/home/deploy",
        "GREETING": "hello world",
    }
    assert {"sync-queue", "build-report", "cron.php", "vacuum-db", "rotate-keys"} <= set(tasks)
    # Names are unique within the output: the second entry of a program gets a suffix.
    assert tasks["sync-queue-2"]["command"][2].endswith("timeout 10m ./bin/sync-queue")
    assert tasks["backup.sh-2"]["command"][2].endswith("backup.sh --incremental")
    assert tasks["night-poll"]["schedule"] == "*/20 2 * * 1-5"
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
        "line 28",
        "line 32",
        "line 33",
        "line 34",
        "line 35",
        "line 36",
    ]
    assert "never matches a real date" in warnings[5]
    assert warnings[-1].endswith("6 line(s) or setting(s) not converted")
    assert "# line 10: 30 2 * * * /usr/local/bin/backup.sh" in result.stdout


def test_without_user_a_user_crontab_runs_as_whoever_imports_it(tmp_path: Path) -> None:
    result = import_crontab("-", stdin="*/5 * * * * /usr/local/bin/health-check\n")
    assert result.returncode == 0 and result.stderr == ""
    assert loads(result.stdout, tmp_path)["health-check"]["user"] == ME
    assert f'these tasks run as user = "{ME}"' in result.stdout
    assert "the user who ran the import; give --user NAME" in result.stdout


def test_mailto_becomes_a_mail_target_for_the_entries_after_it(tmp_path: Path) -> None:
    result = import_crontab(DATA / "user.crontab", "--user", "www-data")
    data = tomllib.loads(result.stdout)
    tasks, targets = data["tasks"], data["notify"]
    assert targets["mail-ops-example.com"] == {
        "type": "apprise",
        "urls": [f"mailto://localhost:25/ops@example.com?mode=insecure&from=cronwarden@{HOST}"],
        "events": ["run.output", "run.failed"],
    }
    assert tasks["backup.sh"]["notify"] == ["mail-ops-example.com"]
    assert "notify" not in tasks["quiet-job"]  # MAILTO="" turns mail off
    # A local name goes to the local mailbox; MAILFROM is the sender.
    assert tasks["sync-queue-2"]["notify"] == ["mail-root-ops-example.com"]
    assert targets["mail-root-ops-example.com"]["urls"] == [
        "mailto://localhost:25/root@localhost/ops@example.com?mode=insecure&from=deploy@example.com"
    ]
    assert "# MAILTO=ops@example.com (line 4)" in result.stdout
    assert "CHECK that a mail server" in result.stdout
    assert "MAILTO" not in result.stderr


class _Inbox:
    def __init__(self) -> None:
        self.mail: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.mail.append(envelope)
        return "250 OK"


def test_the_mail_url_delivers_through_an_smtp_server_without_a_login() -> None:
    """The URL's syntax, checked by Apprise itself against a real SMTP server that asks
    for no login (only the port differs from the printed localhost:25)."""
    tasks = convert(
        'MAILTO="root,ops@example.com"\nMAILFROM=deploy@example.com\n0 * * * * /bin/job\n'
    )
    url = tasks.notify["mail-root-ops-example.com"]["urls"][0]
    inbox = _Inbox()
    port = free_port()  # in this test worker's own block of ports
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        notifier = apprise.Apprise()
        assert notifier.add(url.replace("localhost:25", f"127.0.0.1:{port}"))
        assert notifier.notify(title="job printed", body="hello from cron")
    finally:
        server.stop()
    # Apprise sends one message per recipient (cron sent one to all).
    assert {e.mail_from for e in inbox.mail} == {"deploy@example.com"}
    assert sorted(r for e in inbox.mail for r in e.rcpt_tos) == [
        "ops@example.com",
        "root@localhost",
    ]


@pytest.mark.parametrize("name", sorted(DEBIAN_NAMES))
def test_a_debian_file_imports_cleanly_named_after_what_it_runs(name: str, tmp_path: Path) -> None:
    result = import_crontab(DEBIAN / name, "--system")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    tasks = loads(result.stdout, tmp_path)
    assert list(tasks) == DEBIAN_NAMES[name]
    assert all(t["user"] in ("root", "www-data") for t in tasks.values())


def test_a_debian_file_keeps_cron_s_environment(tmp_path: Path) -> None:
    tasks = loads(import_crontab(DEBIAN / "sysstat", "--system").stdout, tmp_path)
    sa1 = tasks["debian-sa1"]
    assert sa1["command"] == "command -v debian-sa1 > /dev/null && debian-sa1 1 1"
    assert sa1["schedule"] == "5-55/10 * * * *" and sa1["user"] == "root"
    assert "working_dir" not in sa1  # no HOME= line: the run starts in its user's home
    assert sa1["env"] == {"PATH": "/usr/lib/sysstat:/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin"}
    mdadm = loads(import_crontab(DEBIAN / "mdadm", "--system").stdout, tmp_path)
    assert "[ $(date +%d) -le 7 ]" in str(mdadm["mdadm-checkarray"]["command"])


def test_appending_every_file_to_one_config_validates(tmp_path: Path) -> None:
    """As the README shows: each import appended with >> to one file, --config pointing
    at it, so names stay unique across files (and one mail target serves them all)."""
    config = tmp_path / "config.toml"  # absent at first, as before the first >>
    expected: list[str] = []
    for name in sorted(DEBIAN_NAMES):
        result = import_crontab(DEBIAN / name, "--system", "--config", str(config))
        assert result.returncode == 0, result.stderr
        with config.open("a") as out:
            out.write(result.stdout)
        expected += DEBIAN_NAMES[name]
    # Debian's hourly/daily/... again, from a second system file: suffixed.
    result = import_crontab(DATA / "system.crontab", "--system", "--config", str(config))
    assert result.returncode == 1 and "line 20: not a crontab entry" in result.stderr
    with config.open("a") as out:
        out.write(result.stdout)
    result = import_crontab(DATA / "user.crontab", "--user", "www-data", "--config", str(config))
    assert result.returncode == 1
    with config.open("a") as out:
        out.write(result.stdout)
    report = validate(config)
    assert report.returncode == 0, report.stdout + report.stderr
    assert json.loads(report.stdout)["valid"] is True
    data = tomllib.loads(config.read_text())
    assert set(expected) <= set(data["tasks"])
    assert {"cron.hourly-2", "cron.daily-2", "cron.weekly-2", "cron.monthly-2"} <= set(
        data["tasks"]
    )
    assert data["tasks"]["cron.hourly-2"]["command"] == (
        "cd / && run-parts --report /etc/cron.hourly"
    )
    # munin-node and awstats both say MAILTO=root: one target, used by both.
    assert config.read_text().count("[notify.mail-root]") == 1
    assert data["tasks"]["munin-run"]["notify"] == ["mail-root"]
    assert data["tasks"]["awstats-update.sh"]["notify"] == ["mail-root"]


def test_importing_the_same_file_twice_suffixes_the_second(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    for _ in range(2):
        result = import_crontab(DEBIAN / "awstats", "--system", "--config", str(config))
        assert result.returncode == 0, result.stderr
        with config.open("a") as out:
            out.write(result.stdout)
    assert validate(config).returncode == 0
    tasks = tomllib.loads(config.read_text())["tasks"]
    assert list(tasks) == [
        "awstats-update.sh",
        "awstats-buildstatic.sh",
        "awstats-update.sh-2",
        "awstats-buildstatic.sh-2",
    ]


def test_a_system_file_read_as_a_user_crontab_is_refused() -> None:
    result = import_crontab(DEBIAN / "sysstat")
    assert result.returncode == 2 and result.stdout == ""
    assert "'root', is a user, not a command" in result.stderr
    assert "add --system" in result.stderr and "Traceback" not in result.stderr


def test_a_program_named_like_a_system_user_is_still_a_command(tmp_path: Path) -> None:
    """Debian has users called backup, mail, news...: "backup" alone, or "mail -s", is
    a command (a system entry would need one after the user)."""
    crontab = "0 3 * * * backup\n0 8 * * * mail -s report root%hello\n"
    result = import_crontab("-", "--user", "www-data", stdin=crontab)
    assert result.returncode == 0, result.stderr
    assert list(loads(result.stdout, tmp_path)) == ["backup", "mail"]


def test_a_user_crontab_read_as_a_system_file_is_refused() -> None:
    result = import_crontab(DATA / "user.crontab", "--system")
    assert result.returncode == 2 and result.stdout == ""
    assert "line 10:" in result.stderr
    assert "'/usr/local/bin/backup.sh', is a command, not a user" in result.stderr
    assert "drop --system and give --user NAME" in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--system", "--user", "root"), "--user is for a user crontab"),
        (("--user", "nosuchuser"), "--user 'nosuchuser': no such user on this host"),
    ],
)
def test_bad_user_options_are_refused(flags: tuple[str, ...], message: str) -> None:
    result = import_crontab(DATA / "user.crontab", *flags)
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_config_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[tasks\n")
    result = import_crontab(DEBIAN / "php", "--system", "--config", str(config))
    assert result.returncode == 2 and "is not valid TOML" in result.stderr


def test_a_system_crontab_keeps_the_user_column(tmp_path: Path) -> None:
    result = import_crontab(DATA / "system.crontab", "--system")
    assert result.returncode == 1
    tasks = loads(result.stdout, tmp_path)
    users = {name: t["user"] for name, t in tasks.items()}
    expected = {
        "cron.hourly": "root",
        "cron.daily": "root",
        "cron.weekly": "root",
        "cron.monthly": "root",
        "cron.php": "www-data",
        "postgresql-pg_ctl": "postgres",
        "offsite-sync": "backup",
    }
    if not _user_exists("postgres"):  # an unknown user is refused by the loader: reported
        del expected["postgresql-pg_ctl"]
    assert users == expected
    assert tasks["cron.hourly"]["command"] == "cd / && run-parts --report /etc/cron.hourly"
    assert tasks["cron.hourly"]["env"]["PATH"].startswith("/usr/local/sbin")
    assert "line 20: not a crontab entry" in result.stderr


def test_an_entry_for_a_user_this_host_lacks_is_reported(tmp_path: Path) -> None:
    crontab = tmp_path / "cron.d-munin"
    crontab.write_text(
        "*/5 * * * * root /usr/bin/munin-cron\n0 * * * * nosuchuser /usr/bin/munin-limits\n"
    )
    result = import_crontab(crontab, "--system")
    assert result.returncode == 1
    assert list(loads(result.stdout, tmp_path)) == ["munin-cron"]
    assert re.search(r"line 2: not converted: .*unknown user 'nosuchuser'", result.stderr)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_percent_gives_the_command_what_cron_would_on_stdin() -> None:
    tasks = convert("0 * * * * cat%first line%second line\\%with a percent%\n").tasks
    command = tasks["cat"]["command"]
    output = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True)
    assert output.stdout == "first line\nsecond line%with a percent\n"


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("flock -n -w 5 /tmp/x.lock /usr/bin/report", "report"),
        ("flock -w 10 /tmp/x -c 'cd /srv && ./bin/sweep'", "sweep"),
        ("timeout -k 5s 2h /usr/local/bin/offsite-sync", "offsite-sync"),
        ("nice -n 10 ionice -c3 chronic /usr/local/bin/vacuum-db", "vacuum-db"),
        ("env -i LC_ALL=C HOME=/x /opt/app/bin/task", "task"),
        ("cd /srv/app && ./bin/sync-queue", "sync-queue"),
        ("[ -x /usr/bin/x ] && /usr/bin/x --flag", "x"),
        ("command -v foo >/dev/null && foo", "foo"),
        ("if test -f /etc/x; then /usr/sbin/y; fi", "y"),
        ("run-parts --report /etc/cron.daily", "cron.daily"),
        ("/usr/sbin/invoke-rc.d anacron start", "anacron"),
        ("/usr/lib/php/sessionclean", "php-sessionclean"),
        ("perl -e 'sleep 3' && certbot renew", "certbot"),
        ("perl -e 'print 1'", "perl"),
        ("sh -c '/usr/bin/backup --all'", "backup"),
        ("python3 /opt/jobs/sync.py", "sync.py"),
        ("echo hi | mail -s x root", "mail"),
        (": ..", "job"),
        ("..", "job"),
        ("./.", "job"),
    ],
)
def test_names_come_from_the_program_run(command: str, name: str) -> None:
    assert name_for(command) == name


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = import_crontab(tmp_path / "nope")
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
