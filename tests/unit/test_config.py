"""Config validation: every class of error, reported all at once, with file:line and key."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from cronwarden.config import load_config, parse_config
from cronwarden.errors import ConfigError
from cronwarden.task_hash import new_key, task_hash


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    config = parse_config('[tasks.a]\ncommand = "true"\n', tmp_path / "c.toml")
    daemon, task = config.daemon, config.tasks["a"]
    assert str(daemon.listen) == "127.0.0.1:9477"
    assert daemon.shutdown_timeout == timedelta(seconds=30)
    assert daemon.keep_runs == 10000 and daemon.keep_for == timedelta(days=90)
    assert daemon.max_body == 1024 * 1024 and daemon.node_lease == timedelta(seconds=10)
    assert task.timeout == timedelta(0) and task.kill_grace == timedelta(seconds=5)
    assert task.stop_signal == signal.SIGTERM and task.success_exit_codes == (0,)
    assert (task.retries, task.retry_delay, task.retry_backoff) == (
        0,
        timedelta(seconds=10),
        "exponential",
    )
    assert task.retry_max_delay == timedelta(minutes=5)
    assert task.retry_on == ("failed", "timeout", "crashed")
    assert (task.overlap, task.max_concurrent, task.queue_max) == ("allow", 1, 100)
    assert (task.catch_up, task.max_catch_up) == ("latest", 100)
    assert task.max_log_size == 10 * 1024 * 1024 and task.log_on_full == "drop_old"
    assert task.api_trigger and task.enabled and task.params == () and task.notify == ()
    assert task.argv == ["/bin/sh", "-c", "true"]


def test_defaults_apply_and_tasks_override(tmp_path: Path) -> None:
    config = parse_config(
        '[defaults]\ntimeout = "5m"\nretries = 2\n'
        '[tasks.a]\ncommand = "true"\n[tasks.b]\ncommand = "true"\nretries = 0\n',
        tmp_path / "c.toml",
    )
    assert config.tasks["a"].timeout == timedelta(minutes=5)
    assert config.tasks["a"].retries == 2 and config.tasks["b"].retries == 0


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    (sub / "c.toml").write_text(
        '[daemon]\ndata_dir = "state"\n[tasks.a]\ncommand = "true"\nworking_dir = "work"\n'
        'env_file = "a.env"\n'
    )
    config = load_config(sub / "c.toml")
    assert config.daemon.data_dir == sub / "state"
    assert config.tasks["a"].working_dir == sub / "work"
    assert config.tasks["a"].env_file == sub / "a.env"


def test_durations_sizes_and_signals_parse(tmp_path: Path) -> None:
    config = parse_config(
        '[tasks.a]\ncommand = ["/bin/true"]\ntimeout = "1h30m"\nmax_log_size = "512KiB"\n'
        'stop_signal = "INT"\numask = "027"\n',
        tmp_path / "c.toml",
    )
    task = config.tasks["a"]
    assert task.timeout == timedelta(hours=1, minutes=30)
    assert task.max_log_size == 512 * 1024
    assert task.stop_signal == signal.SIGINT and task.umask == 0o27
    assert task.argv == ["/bin/true"]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        """\
[daemon]
listen = "nowhere"
typo_key = 1

[defaults]
timeout = "5 minutes"

[tasks.a]
command = "true"
schedule = "* * * *"
timezone = "Nowhere/Special"
overlap = "sometimes"
max_log_size = "10 parsecs"
stop_signal = "SIGNOPE"
params = ["1bad"]
notify = ["pager"]

[tasks."has space"]
command = "true"

[tasks.c]
schedule = "@daily"

[mystery]
x = 1
""",
        tmp_path,
    )
    text = "\n".join(found)
    expected = [
        ':2: daemon.listen: expected "HOST:PORT"',
        ":3: daemon.typo_key: unknown key; allowed keys here:",
        ":6: defaults.timeout: expected a duration",
        ":10: tasks.a.schedule: ",
        ":11: tasks.a.timezone: unknown time zone 'Nowhere/Special'",
        ":12: tasks.a.overlap: Input should be 'allow', 'skip', 'queue' or 'terminate'",
        ":13: tasks.a.max_log_size: expected a number of bytes",
        ":14: tasks.a.stop_signal: expected a signal name",
        ":15: tasks.a.params.0: '1bad' is not a valid variable name",
        ":16: tasks.a.notify: unknown target 'pager'",
        ":18: tasks.has space: invalid task name",
        ":21: tasks.c.command: required key is missing",
        ":24: mystery: unknown section",
    ]
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{text}"
    assert len(found) == len(expected)
    assert all(line.startswith(str(tmp_path / "c.toml")) for line in found)


def test_error_shows_the_offending_value(tmp_path: Path) -> None:
    (line,) = problems('[tasks.a]\ncommand = "x"\nretries = -1\n', tmp_path)
    assert "tasks.a.retries" in line and "(got -1)" in line


def test_a_scalar_where_an_array_belongs_says_array(tmp_path: Path) -> None:
    """Keys held as tuples are arrays in the file: the message speaks TOML, not Python."""
    lines = problems('[tasks.a]\ncommand = "x"\nretry_on = "failed"\nnotify = 5\n', tmp_path)
    assert any("tasks.a.retry_on: expected an array, e.g. [...] (got 'failed')" in x for x in lines)
    assert any("tasks.a.notify: expected an array, e.g. [...] (got 5)" in x for x in lines)
    assert not any("tuple" in x for x in lines)


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "has 3 fields"),
        ("0 0 31 2 *", "never matches"),
        ("@fortnightly", "unknown schedule"),
        ("@every 5 minutes", "@every needs a duration"),
        ("@every 0s", "at least 1s"),
        ("1 2 3 4 5 6 7", "has 7 fields"),
    ],
)
def test_bad_schedules(tmp_path: Path, schedule: str, fragment: str) -> None:
    (line,) = problems(f'[tasks.a]\ncommand = "x"\nschedule = "{schedule}"\n', tmp_path)
    assert "tasks.a.schedule" in line and fragment in line


@pytest.mark.parametrize(
    ("listen", "ok"),
    [
        ("127.0.0.1:9477", True),
        ("[::1]:9477", True),
        ("localhost:8080", True),
        ("unix:/run/cronwarden/api.sock", True),
        ("0.0.0.0:9477", False),
        ("10.0.0.5:9477", False),
        ("unix:relative.sock", False),
        ("127.0.0.1:0", False),
        ("127.0.0.1", False),
    ],
)
def test_listen_addresses(tmp_path: Path, listen: str, ok: bool) -> None:
    text = f'[daemon]\nlisten = "{listen}"\n'
    if ok:
        assert str(parse_config(text, tmp_path / "c.toml").daemon.listen) == listen
    else:
        (line,) = problems(text, tmp_path)
        assert "daemon.listen" in line or "daemon:" in line


def test_non_loopback_listen_is_allowed_with_tokens(tmp_path: Path) -> None:
    config = parse_config(
        '[daemon]\nlisten = "0.0.0.0:9477"\n[[daemon.tokens]]\nname = "ci"\n'
        f'sha256 = "{"ab" * 32}"\nscopes = ["read"]\n',
        tmp_path / "c.toml",
    )
    assert config.daemon.tokens[0].scopes == ["read"]


def test_token_errors_point_into_the_array(tmp_path: Path) -> None:
    (line,) = problems(
        '[[daemon.tokens]]\nname = "ci"\nsha256 = "nothex"\nscopes = ["read"]\n', tmp_path
    )
    assert ":3: daemon.tokens.0.sha256:" in line and "SHA-256" in line


def test_notify_targets_validate(tmp_path: Path) -> None:
    found = problems(
        '[notify.hook]\ntype = "webhook"\n[notify.cmd]\ntype = "command"\nurl = "http://x"\n'
        '[notify.bad]\ntype = "pigeon"\n',
        tmp_path,
    )
    text = "\n".join(found)
    assert "notify.hook" in text and "needs url" in text
    assert "notify.cmd" in text and "needs command" in text
    assert "notify.bad.type" in text and len(found) == 3


def test_alert_and_host_keys_validate(tmp_path: Path) -> None:
    found = problems(
        '[daemon]\nmax_concurrent_runs = -1\nmetrics_open = "yes please"\n'
        '[notify.signed]\ntype = "webhook"\nurl = "http://x"\nsecret = "short"\n'
        '[notify.cmd]\ntype = "command"\ncommand = "logger"\nsecret = "0123456789abcdef"\n'
        'headers = { A = "b" }\n'
        '[notify.picky]\ntype = "webhook"\nurl = "http://x"\nevents = ["run.exploded"]\n',
        tmp_path,
    )
    text = "\n".join(found)
    assert "daemon.max_concurrent_runs" in text and "daemon.metrics_open" in text
    assert "notify.signed.secret" in text and "at least 16" in text
    assert 'type = "command" takes command, not secret, headers' in text
    assert "notify.picky.events" in text and "task.recovered" in text
    assert len(found) == 5


def test_toml_syntax_error(tmp_path: Path) -> None:
    (line,) = problems("[tasks.a\ncommand = 1\n", tmp_path)
    assert "not valid TOML" in line and "line 1" in line


def test_task_hash_changes_with_the_definition(tmp_path: Path) -> None:
    one = parse_config('[tasks.a]\ncommand = "true"\n', tmp_path / "c.toml").tasks["a"]
    same = parse_config('[tasks.a]\ncommand = "true"\n', tmp_path / "c.toml").tasks["a"]
    other = parse_config('[tasks.a]\ncommand = "false"\n', tmp_path / "c.toml").tasks["a"]
    key = new_key()
    assert task_hash(key, one) == task_hash(key, same) != task_hash(key, other)


def test_locks_and_pools_parse(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        """\
[pools.heavy]
size = 2

[tasks.backup]
command = "true"
locks = ["backup-repo", "nas"]
pool = "heavy"
overlap = "queue"
"""
    )
    config = load_config(path)
    task = config.tasks["backup"]
    assert task.locks == ("backup-repo", "nas") and task.pool == "heavy"
    assert config.pools["heavy"].size == 2


def test_lock_and_pool_mistakes_are_reported_with_their_lines(tmp_path: Path) -> None:
    found = problems(
        """\
[pools.broken]
size = 0

[pools."no good"]
size = 1

[tasks.a]
command = "true"
pool = "missing"

[tasks.b]
command = "true"
locks = ["repo"]
overlap = "terminate"

[tasks.c]
command = "true"
locks = ["has space"]

[tasks.d]
command = "true"
pool = "broken"
""",
        tmp_path,
    )
    text = "\n".join(found)
    assert "c.toml:2: pools.broken.size" in text  # the invalid pool, said once, where it is
    assert "pools.no good: invalid name" in text
    assert "c.toml:9: tasks.a.pool: unknown pool 'missing'; define [pools.missing]" in text
    assert "(defined: broken, no good)" in text
    assert 'c.toml:14: tasks.b.overlap: overlap = "terminate" cannot go with locks' in text
    assert "tasks.c.locks.0: invalid name 'has space'" in text
    assert "tasks.d.pool" not in text


def test_chain_mistakes_are_reported_with_their_lines(tmp_path: Path) -> None:
    text = """\
[tasks.a]
command = "true"
after = ["c"]

[tasks.b]
command = "true"
after = ["a", "nowhere"]
after_mode = "some"

[tasks.c]
command = "true"
after = ["b"]
"""
    found = "\n".join(problems(text, tmp_path))
    assert "c.toml:8: tasks.b.after_mode: Input should be 'any' or 'all'" in found
    found = "\n".join(problems(text.replace('after_mode = "some"', 'after_mode = "all"'), tmp_path))
    assert "c.toml:7: tasks.b.after: unknown task 'nowhere'" in found
    assert "c.toml:7: tasks.b.after: a chain that starts itself: a -> b -> c -> a" in found


def test_limits_are_read_and_each_bad_bound_names_what_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        """\
[defaults]
limits = { memory = "2GiB" }

[tasks.a]
command = "true"
limits = { memory = "512MiB", cpu_time = "10m", open_files = 64, processes = 8, cpu = 0.5 }

[tasks.b]
command = "true"
"""
    )
    tasks = load_config(path).tasks
    a, b = tasks["a"].limits, tasks["b"].limits
    assert a is not None and b is not None
    assert (a.memory, a.cpu_time, a.open_files, a.processes, a.cpu) == (
        512 << 20,
        timedelta(minutes=10),
        64,
        8,
        0.5,
    )
    assert (b.memory, b.cpu_time) == (2 << 30, None)  # a task's own limits replace [defaults]'
    found = problems(
        """\
[tasks.a]
command = "true"
limits = { memory = "10", cpu_time = "0s", open_files = 1, cpu = 0, processes = 0, swap = 1 }
""",
        tmp_path,
    )
    text = "\n".join(found)
    assert 'tasks.a.limits.memory: must be at least 1MiB: a size such as "512MiB"' in text
    assert "tasks.a.limits.cpu_time: must be at least 1s" in text
    assert "tasks.a.limits.open_files:" in text and "tasks.a.limits.processes:" in text
    assert "tasks.a.limits.cpu: Input should be greater than 0" in text
    assert (
        "tasks.a.limits.swap: unknown key; allowed keys here: cpu, cpu_time, memory, "
        "open_files, processes" in text
    )
