"""The alert rule keys and a target's ``tasks`` in the config: defaults, [defaults],
and a clear error (or warning) for each way to get them wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cronwarden.config import DEFAULT_EVENTS, load_config, parse_config
from cronwarden.errors import ConfigError

TARGET = '[notify.ops]\ntype = "command"\ncommand = "true"\n'


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def warnings(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return list(load_config(path).warnings)


def test_the_rules_are_off_by_default_and_may_come_from_defaults(tmp_path: Path) -> None:
    config = parse_config(
        '[defaults]\nalert_after_failures = 3\nmax_duration = "2h"\n'
        '[tasks.a]\ncommand = "true"\n'
        '[tasks.b]\ncommand = "true"\nalert_after_failures = 1\nmin_duration = "30s"\n'
        'start_grace = "5m"\nschedule = "@hourly"\n'
        '[tasks.c]\ncommand = "true"\nmax_duration = "0"\n',
        tmp_path / "c.toml",
    )
    a, b, c = (config.tasks[name] for name in "abc")
    assert (a.alert_after_failures, a.min_duration, a.max_duration, a.start_grace) == (
        3,
        timedelta(0),
        timedelta(hours=2),
        timedelta(0),
    )
    assert (b.alert_after_failures, b.min_duration, b.start_grace) == (
        1,
        timedelta(seconds=30),
        timedelta(minutes=5),
    )
    assert c.max_duration == timedelta(0)  # "0" turns a default off
    plain = parse_config('[tasks.a]\ncommand = "true"\n', tmp_path / "d.toml").tasks["a"]
    assert (plain.alert_after_failures, plain.min_duration) == (1, timedelta(0))
    assert (plain.max_duration, plain.start_grace) == (timedelta(0), timedelta(0))


def test_the_new_events_are_opt_in_and_tasks_routes_none_by_default(tmp_path: Path) -> None:
    target = parse_config(TARGET, tmp_path / "c.toml").notify["ops"]
    assert target.tasks == ()
    assert (
        list(DEFAULT_EVENTS)
        == target.events
        == [
            "run.failed",
            "run.timeout",
            "run.crashed",
            "fire.missed",
            "run.stuck",
            "task.overdue",
        ]
    )
    chosen = parse_config(
        TARGET + 'events = ["run.too_short", "run.too_long", "fire.late"]\n'
        'tasks = ["backup-*", "db?", "[a-c]x", "[!z]y", "nightly"]\n',
        tmp_path / "d.toml",
    ).notify["ops"]
    assert chosen.events == ["run.too_short", "run.too_long", "fire.late"]
    assert chosen.routes("backup-home") and chosen.routes("db1") and chosen.routes("bx")
    assert chosen.routes("ay") and not chosen.routes("zy") and not chosen.routes("backup")


def test_a_bad_count_says_what_is_allowed(tmp_path: Path) -> None:
    found = problems(
        "[defaults]\nalert_after_failures = 0\n"
        '[tasks.a]\ncommand = "true"\nalert_after_failures = -1\n'
        '[tasks.b]\ncommand = "true"\nalert_after_failures = "3"\n'
        '[tasks.c]\ncommand = "true"\nalert_after_failures = 2.5\n'
        '[tasks.d]\ncommand = "true"\nalert_after_failures = 1001\n',
        tmp_path,
    )
    allowed = "expected a whole number from 1 to 1000: the failing runs in a row"
    assert [p.split(": ", 2)[1] for p in found] == [
        "defaults.alert_after_failures",
        "tasks.a.alert_after_failures",
        "tasks.b.alert_after_failures",
        "tasks.c.alert_after_failures",
        "tasks.d.alert_after_failures",
    ]
    assert all(allowed in p for p in found)
    assert found[0].endswith("(got 0)") and found[1].endswith("(got -1)")
    assert found[2].endswith("(got '3')") and ":2: " in found[0] and ":5: " in found[1]


def test_a_bad_duration_says_what_a_duration_is(tmp_path: Path) -> None:
    found = problems(
        '[tasks.a]\ncommand = "true"\nmin_duration = "5 minutes"\nmax_duration = 90\n'
        'start_grace = "-5m"\n',
        tmp_path,
    )
    assert len(found) == 3
    for problem, key in zip(found, ("min_duration", "max_duration", "start_grace"), strict=True):
        assert f"tasks.a.{key}: " in problem
        assert 'expected a duration such as "90s", "5m"' in problem
    assert "a bare number is ambiguous" in found[1]


def test_a_misspelt_key_is_an_error_naming_the_keys_allowed(tmp_path: Path) -> None:
    found = problems(
        '[tasks.a]\ncommand = "true"\nalert_after_failure = 3\n' + TARGET + 'task = ["a"]\n',
        tmp_path,
    )
    assert len(found) == 2
    assert "tasks.a.alert_after_failure: unknown key; allowed keys here:" in found[0]
    assert "alert_after_failures" in found[0] and "start_grace" in found[0]
    assert "notify.ops.task: unknown key; allowed keys here:" in found[1]
    assert ", tasks, " in found[1]


@pytest.mark.parametrize(
    "glob",
    ['"backup"', '["bad glob"]', '["[abc"]', '["a/b"]', '[""]', '["x]"]', "[1]"],
)
def test_a_bad_glob_is_an_error(glob: str, tmp_path: Path) -> None:
    found = problems(TARGET + f"tasks = {glob}\n[tasks.a]\ncommand = 'true'\n", tmp_path)
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'c.toml'}:4: notify.ops.tasks: ")
    assert "task-name glob" in found[0] and 'e.g. ["backup-*"' in found[0]


def test_min_duration_must_be_below_max_duration(tmp_path: Path) -> None:
    found = problems(
        '[tasks.a]\ncommand = "true"\nmin_duration = "1h"\nmax_duration = "30m"\n', tmp_path
    )
    assert found == [
        f"{tmp_path / 'c.toml'}:3: tasks.a.min_duration: min_duration = '1h' is not below "
        "max_duration = '30m': every run would be too short or too long; min_duration "
        "must be the shorter"
    ]


def test_rules_that_would_tell_nobody_or_never_fire_are_warned_of(tmp_path: Path) -> None:
    said = warnings(
        TARGET
        + 'tasks = ["backup-*", "nothing-*"]\nevents = ["run.too_long"]\n'
        + '[defaults]\nmin_duration = "1s"\n'  # from [defaults]: not said for each task
        + '[tasks.backup-a]\ncommand = "true"\nmax_duration = "1h"\n'  # routed: fine
        + '[tasks.b]\ncommand = "true"\nmax_duration = "1h"\ntimeout = "30m"\n'
        + 'start_grace = "5m"\nnotify = ["ops"]\n',
        tmp_path,
    )
    assert [w.split(": ", 2)[1:] for w in said] == [
        ["notify.ops.tasks", "'nothing-*' matches no task of this file"],
        [
            "tasks.b.max_duration",
            "max_duration = '1h' is not below timeout = '30m': the timeout stops a run "
            "before it is too long",
        ],
        ["tasks.b.start_grace", "start_grace watches scheduled runs, but the task has no schedule"],
        [
            "tasks.b.start_grace",
            'start_grace raises fire.late, but no target of this task takes it: add "fire.late" '
            "to the events of a target in its notify (or route it with tasks)",
        ],
    ]
