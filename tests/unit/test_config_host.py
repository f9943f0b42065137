"""Config checks added for operators moving from cron and for what is never echoed:
users and groups that exist, paths that may appear later, names a URL can carry,
the runs' PATH, the daemon's allowed host names, and credentials kept out of errors."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from cronwarden.config import DEFAULT_PATH, load_config, parse_config, redact_url
from cronwarden.errors import ConfigError


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused(tmp_path: Path, name: str) -> None:
    (problem,) = problems(f'[tasks."{name}"]\ncommand = "true"\n', tmp_path)
    assert f"tasks.{name}: invalid task name" in problem and '"." or ".."' in problem


def test_a_name_with_a_newline_at_its_end_is_refused(tmp_path: Path) -> None:
    (problem,) = problems('[tasks."a\\n"]\ncommand = "true"\n', tmp_path)
    assert "invalid task name" in problem


def test_names_with_dots_inside_still_pass(tmp_path: Path) -> None:
    config = parse_config('[tasks."a.b"]\ncommand = "true"\n', tmp_path / "c.toml")
    assert list(config.tasks) == ["a.b"]


def test_unknown_user_and_group_are_errors_naming_them(tmp_path: Path) -> None:
    found = problems(
        '[tasks.a]\ncommand = "true"\nuser = "nosuchuser"\ngroup = "nosuchgroup"\n', tmp_path
    )
    assert any(":3: tasks.a.user: unknown user 'nosuchuser'" in p for p in found), found
    assert any(":4: tasks.a.group: unknown group 'nosuchgroup'" in p for p in found), found


def test_known_user_and_numeric_ids_pass(tmp_path: Path) -> None:
    me = getpass.getuser()
    text = (
        f'[tasks.a]\ncommand = "true"\nuser = "{me}"\n[tasks.b]\ncommand = "true"\nuser = 54321\n'
    )
    config = parse_config(text, tmp_path / "c.toml")
    assert config.tasks["a"].user == me and config.tasks["b"].user == 54321


def test_missing_working_dir_and_env_file_are_warnings(tmp_path: Path) -> None:
    text = (
        '[tasks.a]\ncommand = "true"\nworking_dir = "/nonexistent/dir"\nenv_file = "missing.env"\n'
    )
    config = parse_config(text, tmp_path / "c.toml")
    assert len(config.warnings) == 2
    assert ":3: tasks.a.working_dir: /nonexistent/dir does not exist" in config.warnings[0]
    assert f":4: tasks.a.env_file: {tmp_path / 'missing.env'} does not exist" in config.warnings[1]
    assert parse_config('[tasks.a]\ncommand = "true"\n', tmp_path / "c.toml").warnings == ()


def test_path_and_inherit_env(tmp_path: Path) -> None:
    config = parse_config(
        '[defaults]\ninherit_env = ["LANG_EXTRA"]\n'
        '[tasks.a]\ncommand = "true"\n[tasks.b]\ncommand = "true"\ninherit_env = true\n',
        tmp_path / "c.toml",
    )
    assert config.daemon.path == DEFAULT_PATH
    assert config.tasks["a"].inherit_env == ("LANG_EXTRA",)
    assert config.tasks["b"].inherit_env is True
    assert (
        parse_config('[tasks.a]\ncommand = "x"\n', tmp_path / "c.toml").tasks["a"].inherit_env
        is False
    )
    found = problems(
        '[daemon]\npath = "bin:/usr/bin"\n[tasks.a]\ncommand = "true"\ninherit_env = ["1BAD"]\n',
        tmp_path,
    )
    assert any(
        "daemon.path: every PATH entry must be an absolute directory (got 'bin')" in p
        for p in found
    )
    assert any("tasks.a.inherit_env" in p for p in found)
    (control,) = problems(
        '[tasks.a]\ncommand = "true"\ninherit_env = ["NOTIFY_SOCKET"]\n', tmp_path
    )
    assert (
        "tasks.a.inherit_env: 'NOTIFY_SOCKET' is one of the daemon's control variables" in control
    )


def test_warnings_come_with_errors_too(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[tasks.a]\ncommand = "true"\nworking_dir = "/nonexistent"\n'
        '[tasks.b]\ncommand = "true"\nretries = -1\ninherit_env = "yes"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 2 and "working_dir" in info.value.warnings[0]
    assert "tasks.b.inherit_env: expected true, false or a list" in info.value.problems[1]


def test_allowed_hosts_are_host_names(tmp_path: Path) -> None:
    config = parse_config(
        '[daemon]\nallowed_hosts = ["Cron.Example.com", "10.0.0.5"]\n', tmp_path / "c.toml"
    )
    assert config.daemon.allowed_hosts == ("cron.example.com", "10.0.0.5")
    (problem,) = problems('[daemon]\nallowed_hosts = ["https://x.example:443"]\n', tmp_path)
    assert "daemon.allowed_hosts:" in problem and "no port, no scheme" in problem


def test_apprise_target_needs_urls_and_never_echoes_them(tmp_path: Path) -> None:
    config = parse_config(
        '[notify.mail]\ntype = "apprise"\nurls = ["mailto://localhost:2525?to=ops@example.com"]\n'
        'events = ["run.output", "run.failed"]\n',
        tmp_path / "c.toml",
    )
    assert config.notify["mail"].urls[0].startswith("mailto://")
    found = problems(
        '[notify.a]\ntype = "apprise"\n'
        '[notify.b]\ntype = "apprise"\nurls = ["slack-T0KEN-secret"]\n'
        '[notify.c]\ntype = "webhook"\nurl = "https://h.example/x"\nurls = ["json://h"]\n',
        tmp_path,
    )
    text = "\n".join(found)
    assert 'notify.a: type = "apprise" needs urls' in text
    assert "notify.b: urls[0] is not an Apprise URL" in text and "T0KEN" not in text
    assert 'notify.c: type = "webhook" takes url, not urls' in text


def test_a_bad_file_never_echoes_credentials(tmp_path: Path) -> None:
    """Every value a config error may carry that can hold a credential is left out
    (notify secret, headers, URLs, token digests) or shown with its password as ***."""
    found = problems(
        '[daemon]\ndatabase = "mysql://admin:s3cr3t-pw@db.example/cw"\n'
        '[[daemon.tokens]]\nname = "ci"\nsha256 = "hunter2-not-a-digest"\nscopes = ["read"]\n'
        '[notify.hook]\ntype = "webhook"\nurl = "ftp://u:hook-pass@h.example/T0KEN"\n'
        'secret = "short-s3cr3t"\nheaders = {Authorization = 7}\n',
        tmp_path,
    )
    text = "\n".join(found)
    for secret in ("s3cr3t-pw", "hunter2", "hook-pass", "T0KEN", "short-s3cr3t"):
        assert secret not in text, text
    assert "mysql://admin:***@db.example/cw" in text
    assert "notify.hook.secret" in text and "daemon.tokens.0.sha256" in text


def test_redact_url() -> None:
    assert (
        redact_url("postgresql+asyncpg://cw:pw@h:5432/db")
        == "postgresql+asyncpg://cw:***@h:5432/db"
    )
    assert redact_url("postgresql+asyncpg://cw@h/db") == "postgresql+asyncpg://cw@h/db"
    assert redact_url("mailtos://user:p%40ss@smtp.example") == "mailtos://user:***@smtp.example"


def test_each_read_looks_at_the_host_again(tmp_path: Path) -> None:
    """A reload sees the directory mounted since the last read (nothing is remembered
    across reads)."""
    later = tmp_path / "mounted-later"
    text = f'[tasks.a]\ncommand = "true"\nworking_dir = "{later}"\n'
    assert len(parse_config(text, tmp_path / "c.toml").warnings) == 1
    later.mkdir()
    assert parse_config(text, tmp_path / "c.toml").warnings == ()
