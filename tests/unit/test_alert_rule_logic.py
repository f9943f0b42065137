"""The alert rules' pure parts: counting failing runs in a row, when a run is too
short, too long or late, what each alert says, and which targets an alert goes to."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dispatch_doubles import T0  # type: ignore[import-not-found]

from cronwarden.alerts import wording
from cronwarden.alerts.streaks import (
    FailureStreak,
    failure_alert_due,
    ordinal,
    recovered_from,
    streak_note,
)
from cronwarden.alerts.timing import (
    late_at,
    late_event,
    too_long_at,
    too_long_event,
    too_short_event,
)
from cronwarden.config import TaskConfig, alert_targets, parse_config
from cronwarden.run_record import RunRecord
from cronwarden.scheduler.policies import jitter_offset
from cronwarden.store.runs import Attempt

SECOND = timedelta(seconds=1)


def attempt(
    i: int, end_reason: str | None, retry_of: int | None = None, ended: int | None = None
) -> Attempt:
    """Run ``i``, created at second i and ended then (or at second ``ended``)."""
    end = None if end_reason is None else T0 + (i if ended is None else ended) * SECOND
    return Attempt(
        f"r{i}", T0 + i * SECOND, end, end_reason, None if retry_of is None else f"r{retry_of}"
    )


def newest_first(*attempts: Attempt) -> list[Attempt]:
    return sorted(attempts, key=lambda a: a.created_at, reverse=True)


# -- failing runs in a row -----------------------------------------------------------------


def test_failing_runs_are_counted_back_to_the_last_success() -> None:
    streak = FailureStreak(cap=10)
    history = newest_first(
        attempt(1, "failed"),  # before the success: not counted
        attempt(2, "success"),
        attempt(3, "failed"),
        attempt(4, "timeout"),
        attempt(5, "crashed"),
        attempt(6, "log_overflow"),
    )
    assert streak.read(history) is True
    assert streak.count == 4 and streak.newest == "log_overflow"


def test_a_retried_attempt_is_part_of_its_retrys_chain_not_a_failure_of_its_own() -> None:
    # r1 failed, retried as r2 which succeeded: one chain, a success.  r3 failed, its
    # retry r4 failed too: one failing chain.  r5 failed, its retry r6 still pending.
    history = newest_first(
        attempt(1, "failed"),
        attempt(2, "success", retry_of=1),
        attempt(3, "failed"),
        attempt(4, "failed", retry_of=3),
        attempt(5, "failed"),
        attempt(6, None, retry_of=5),
    )
    streak = FailureStreak(cap=10)
    assert streak.read(history) is True
    assert streak.count == 1


def test_stops_and_runs_in_flight_neither_count_nor_end_a_streak() -> None:
    history = newest_first(
        attempt(1, "success"),
        attempt(2, "failed"),
        attempt(3, "stopped"),
        attempt(4, None),  # still running
        attempt(5, "failed"),
    )
    streak = FailureStreak(cap=10)
    streak.read(history)
    assert streak.count == 2


def test_a_stopped_retry_keeps_its_failed_attempt_out_of_the_count() -> None:
    """The failed attempt raised nothing (its retry was to come); the operator
    stopped the retry: that chain ended stopped, not failed."""
    history = newest_first(attempt(1, "failed"), attempt(2, "stopped", retry_of=1))
    streak = FailureStreak(cap=10)
    streak.read(history)
    assert streak.count == 0


def test_what_came_before_an_end_is_what_had_ended_by_then() -> None:
    """r3 ran beside r2 and ended before it: r2's failure is the 2nd in a row.  r4 and
    r5 ended after r2 (read late): they do not count for r2, and r2 itself is left out."""
    history = newest_first(
        attempt(0, "success"),
        attempt(1, "failed"),
        attempt(2, "failed", ended=20),
        attempt(3, "timeout", ended=10),
        attempt(4, "failed", ended=30),
        attempt(5, "success", ended=40),
    )
    streak = FailureStreak(cap=10, of="r2", until=T0 + 20 * SECOND)
    assert streak.read(history) is True
    assert streak.count == 2 and streak.newest == "timeout"


def test_counting_stops_at_the_cap_and_reads_on_over_pages() -> None:
    streak = FailureStreak(cap=3)
    assert streak.read([attempt(9, "failed"), attempt(8, "stopped")]) is False
    assert streak.read([attempt(7, "failed")]) is False  # a later page goes on
    assert streak.read([attempt(6, "failed"), attempt(5, "failed")]) is True
    assert streak.count == 3  # never more than the cap


def test_a_retry_seen_on_an_earlier_page_still_marks_its_attempt() -> None:
    streak = FailureStreak(cap=5)
    streak.read([attempt(2, "failed", retry_of=1)])
    streak.read([attempt(1, "failed"), attempt(0, "success")])
    assert streak.count == 1


@pytest.mark.parametrize(
    ("count", "after", "due"),
    [(0, 1, True), (0, 3, False), (1, 3, False), (2, 3, True), (3, 3, True)],
)
def test_the_failure_alert_goes_from_the_nth_failing_run_in_a_row(
    count: int, after: int, due: bool
) -> None:
    assert failure_alert_due(FailureStreak(cap=after, count=count), after) is due


def test_a_history_not_read_alerts_and_recovers_nothing() -> None:
    assert failure_alert_due(None, 5) is True  # a missed alert costs more
    assert recovered_from(None, 1) is None


def test_a_recovery_is_told_only_after_a_streak_that_alerted() -> None:
    assert recovered_from(FailureStreak(cap=1, count=1, newest="timeout"), 1) == (
        "a run that ended timeout"
    )
    assert recovered_from(FailureStreak(cap=1, count=0), 1) is None
    assert recovered_from(FailureStreak(cap=3, count=2), 3) is None  # never alerted
    assert recovered_from(FailureStreak(cap=3, count=3), 3) == "3 or more failing runs in a row"


def test_what_a_failure_alert_says_of_its_streak() -> None:
    assert streak_note(None, 1) == ""
    assert streak_note(FailureStreak(cap=1, count=4), 1) == ""  # the rule is off
    assert streak_note(FailureStreak(cap=3, count=2), 3) == (
        "; the 3rd failing run in a row (alert_after_failures = 3)"
    )
    assert streak_note(FailureStreak(cap=3, count=3), 3) == (
        "; 4 or more failing runs in a row (alert_after_failures = 3)"
    )
    words = [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)]
    assert words == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "101st",
        "111th",
    ]


# -- a run's times ----------------------------------------------------------------------------


def task(tmp_path: Path, **keys: str) -> TaskConfig:
    lines = "".join(f"{k} = {v}\n" for k, v in keys.items())
    config = parse_config(f'[tasks.backup]\ncommand = "true"\n{lines}', tmp_path / "c.toml")
    return config.tasks["backup"]


def run(**values: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": "00000000-0000-7000-8000-000000000001",
        "task_name": "backup",
        "triggered_by": "schedule",
        "created_at": T0,
        "scheduled_for": T0,
        "node": "n1",
        "task_hash": "h",
    }
    return RunRecord(**{**fields, **values})


def test_a_success_quicker_than_min_duration_is_too_short() -> None:
    limit = timedelta(minutes=1)
    quick = run(status="ended", end_reason="success", exit_code=0, duration_ms=1500)
    event = too_short_event(quick, {"id": quick.id}, limit, T0)
    assert event is not None and event.event == "run.too_short"
    assert event.message == "backup succeeded after 1.5s, under min_duration = 1m"
    assert event.details == {"duration_s": 1.5, "min_duration_s": 60.0}
    assert event.run == {"id": quick.id}
    slow_enough = run(status="ended", end_reason="success", duration_ms=60_000)
    assert too_short_event(slow_enough, {}, limit, T0) is None
    failed = run(status="ended", end_reason="failed", duration_ms=10)
    assert too_short_event(failed, {}, limit, T0) is None  # the failure is its own alert
    assert too_short_event(quick, {}, timedelta(0), T0) is None  # off


def test_a_run_is_too_long_max_duration_after_its_real_start() -> None:
    started = run(status="running", start_at=T0 - timedelta(minutes=50))
    assert too_long_at(started, timedelta(hours=1), T0) == T0 + timedelta(minutes=10)
    assert too_long_at(started, timedelta(0), T0) is None
    event = too_long_event(started, {}, timedelta(hours=1), T0 + timedelta(minutes=10))
    assert event.event == "run.too_long"
    assert event.message == (
        "backup has been running for 1h (max_duration = 1h); it goes on running"
    )
    assert event.details == {"running_for_s": 3600.0, "max_duration_s": 3600.0}


def test_a_scheduled_fire_is_late_start_grace_after_its_jittered_instant(tmp_path: Path) -> None:
    plain = task(tmp_path, schedule='"@hourly"', start_grace='"5m"')
    assert late_at(run(), plain) == T0 + timedelta(minutes=5)
    jittered = task(tmp_path, schedule='"@hourly"', start_grace='"5m"', jitter='"10m"')
    offset = jitter_offset("backup", timedelta(minutes=10))
    assert offset > timedelta(0)
    assert late_at(run(), jittered) == T0 + offset + timedelta(minutes=5)
    # not watched: off, a run on request, a retry (it waits by design)
    assert late_at(run(), task(tmp_path, schedule='"@hourly"')) is None
    assert late_at(run(triggered_by="api", scheduled_for=None), plain) is None
    assert late_at(run(triggered_by="retry", attempt=2), plain) is None


def test_what_fire_late_says_while_waiting_and_once_started(tmp_path: Path) -> None:
    grace = task(tmp_path, schedule='"@hourly"', start_grace='"5m"')
    waiting = late_event(run(status="pending"), {}, grace, T0 + timedelta(minutes=5))
    assert waiting.event == "fire.late"
    assert waiting.message == (
        "backup has not started 5m after its scheduled time 2031-01-06T09:00:00.000Z "
        "(start_grace = 5m)"
    )
    assert waiting.details == {
        "scheduled_for": "2031-01-06T09:00:00.000Z",
        "late_s": 300.0,
        "start_grace_s": 300.0,
    }
    started = run(status="running", start_at=T0 + timedelta(minutes=7, seconds=30))
    said = late_event(started, {}, grace, T0 + timedelta(minutes=8))
    assert said.message.startswith("backup started 7m30s after its scheduled time")
    assert said.details["late_s"] == 450.0


@pytest.mark.parametrize(
    ("event", "subject", "severity"),
    [
        ("run.too_short", "cronwarden: backup finished too soon (succeeded, exit 0)", "warning"),
        ("run.too_long", "cronwarden: backup is running long", "warning"),
        ("fire.late", "cronwarden: backup is late to start", "warning"),
    ],
)
def test_the_new_events_in_words(event: str, subject: str, severity: str) -> None:
    ran = {"id": "r1", "end_reason": "success", "exit_code": 0, "signal": None, "attempt": 1}
    body = {
        "event": event,
        "task": "backup",
        "run": ran if event == "run.too_short" else {"id": "r1", "end_reason": None},
    }
    assert wording.subject(body) == subject
    assert wording.severity(body) == severity


# -- where an alert goes ---------------------------------------------------------------------


def test_targets_are_the_tasks_own_then_those_routing_it_each_once(tmp_path: Path) -> None:
    config = parse_config(
        """
        [notify.ops]
        type = "command"
        command = "true"
        tasks = ["backup-*"]
        [notify.dba]
        type = "command"
        command = "true"
        tasks = ["*-db", "backup-[0-9]*"]
        events = ["run.failed", "run.too_long"]
        [notify.own]
        type = "command"
        command = "true"
        [tasks.backup-db]
        command = "true"
        notify = ["own", "ops"]
        [tasks.report]
        command = "true"
        """.replace("\n        ", "\n"),
        tmp_path / "c.toml",
    )
    notify = config.notify

    def names(task: str, own: tuple[str, ...], event: str) -> list[str]:
        return [name for name, _ in alert_targets(notify, task, own, event)]

    # ops is named and routes it too: told once; dba routes it by "*-db"
    assert names("backup-db", ("own", "ops"), "run.failed") == ["own", "ops", "dba"]
    assert names("backup-db", ("own", "ops"), "task.overdue") == ["own", "ops"]  # dba: no
    assert names("backup-7", (), "run.too_long") == ["dba"]  # ops' events: the defaults
    assert names("report", (), "run.failed") == []
    assert names("Backup-db", (), "run.failed") == ["dba"]  # "backup-*" is case-sensitive
