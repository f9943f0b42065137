"""Jenkins-style H in cron fields: the fires are croniter's own hashed expansion for the
task name, the same in every process, spread across names, and under the DST rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from cronwarden.config import parse_config
from cronwarden.errors import ScheduleError
from cronwarden.scheduler.triggers import CronTrigger, parse_schedule, schedule_kind
from cronwarden.support.timefmt import iso_z

START = datetime(2026, 1, 1, tzinfo=UTC)


def fires(trigger: object, count: int, after: datetime = START) -> list[datetime]:
    assert isinstance(trigger, CronTrigger)
    found = []
    for _ in range(count):
        nxt = trigger.next_fire(after)
        assert nxt is not None
        found.append(nxt)
        after = nxt
    return found


@pytest.mark.parametrize(
    ("expression", "seconds_first"),
    [
        ("H H * * *", False),
        ("H/15 * * * *", False),
        ("H(0-29) H(1-5) * * H", False),
        ("H H H * *", False),
        ("30 H * * 1-5", False),
        ("H/10 H * * * *", True),
    ],
)
@pytest.mark.parametrize("task", ["backup", "report-eu", "a", "x" * 100])
def test_fires_match_croniters_hashed_expansion(
    expression: str, seconds_first: bool, task: str
) -> None:
    ours = fires(parse_schedule(expression, UTC, task), 50)
    reference = croniter(
        expression,
        START.replace(tzinfo=None),
        hash_id=task.encode(),
        second_at_beginning=seconds_first,
    )
    theirs = [reference.get_next(datetime).replace(tzinfo=UTC) for _ in range(50)]
    assert ours == theirs


def test_tasks_spread_out_and_each_keeps_its_own_time() -> None:
    minutes = {
        fires(parse_schedule("H * * * *", UTC, f"task-{i}"), 1)[0].minute for i in range(200)
    }
    assert len(minutes) > 40
    again = [fires(parse_schedule("H H * * *", UTC, f"task-{i}"), 3) for i in range(5)]
    assert again == [fires(parse_schedule("H H * * *", UTC, f"task-{i}"), 3) for i in range(5)]


def test_the_same_times_in_another_process_and_with_another_hash_seed(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[tasks.nightly]\ncommand = "true"\nschedule = "H H * * *"\ntimezone = "UTC"\n'
    )
    outputs = []
    for seed in ("1", "2"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cronwarden",
                "explain",
                "-c",
                str(config),
                "nightly",
                "--json",
                "--after",
                "2026-01-01T00:00:00Z",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.append(json.loads(result.stdout)["fires"])
    assert outputs[0] == outputs[1]
    in_process = fires(parse_config(config.read_text(), config).tasks["nightly"].trigger, 10)
    assert [f["utc"] for f in outputs[0]] == [iso_z(f) for f in in_process]


def test_explain_shows_where_h_landed(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[tasks.nightly]\ncommand = "true"\nschedule = "H H * * *"\ntimezone = "UTC"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "cronwarden", "explain", "-c", str(config), "nightly", "-n", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    trigger = parse_config(config.read_text(), config).tasks["nightly"].trigger
    assert isinstance(trigger, CronTrigger)
    assert f"H placed by the task name: {trigger.cron!r}" in result.stdout


def test_a_hashed_hour_is_a_fixed_time_and_keeps_the_dst_rule() -> None:
    london = ZoneInfo("Europe/London")
    for i in range(60):  # find a task whose H hour falls in the skipped 01:00-02:00
        trigger = parse_schedule("H H * * *", london, f"t{i}")
        assert isinstance(trigger, CronTrigger)
        if trigger.cron.split()[1] == "1":
            break
    else:
        pytest.skip("no name among 60 hashed into hour 1")
    assert schedule_kind(trigger) == "fixed-time"
    minute = int(trigger.cron.split()[0])
    # 2026-03-29: 01:00 GMT jumps to 02:00 BST; the fixed-time fire comes right after
    fire = trigger.next_fire(datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert fire == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 02:00 BST
    later = trigger.next_fire(fire)
    assert later == datetime(2026, 3, 30, 0, minute, tzinfo=UTC)  # 01:MM BST
    periodic = parse_schedule("H/15 * * * *", london, "t")
    assert schedule_kind(periodic) == "periodic"


def test_a_bad_hashed_field_says_which_forms_h_takes() -> None:
    with pytest.raises(ScheduleError, match="H takes the forms"):
        parse_schedule("H(5-1) * * * *", UTC, "t")
    assert parse_schedule("0 9 * * thu", UTC, "t").next_fire(START) == datetime(
        2026, 1, 1, 9, tzinfo=UTC
    )
