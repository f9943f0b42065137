"""fire.missed alerts while the daemon is behind: one per gathering, each gathering
twice as long as the last while the task goes on missing fires (a 30-minute soak
raised 47,671 alerts gathered a second at a time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronwarden.alerts.missed import FIRST, LONGEST, MissedFires

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@dataclass
class Missed:
    task_name: str
    n: int


def behind(fires: MissedFires, task: str, seconds: int) -> list[list[Any]]:
    """A fire of ``task`` missed every second; each alert's runs, as its timer takes
    them (what the alerts service does)."""
    alerts: list[list[Any]] = []
    due: datetime | None = None
    for n in range(seconds):
        now = T0 + n * SECOND
        if due is not None and due <= now:
            alerts.append(fires.take(task, due))
            due = None
        when = fires.add(Missed(task, n), now)  # type: ignore[arg-type]
        if when is not None:
            assert due is None, "a second timer for one task"
            due = when
    if due is not None:
        alerts.append(fires.take(task, due))
    return alerts


def test_a_catch_up_s_missed_fires_are_one_alert_a_second_later() -> None:
    fires = MissedFires()
    due = [fires.add(Missed("backup", n), T0) for n in range(5)]  # type: ignore[arg-type]
    assert due == [T0 + FIRST, None, None, None, None]
    assert [run.n for run in fires.take("backup", T0 + FIRST)] == [0, 1, 2, 3, 4]
    assert fires.take("backup", T0 + FIRST) == []


def test_a_task_behind_for_30_minutes_raises_a_handful_of_alerts_and_loses_no_fire() -> None:
    alerts = behind(MissedFires(), "tick", 30 * 60)
    assert 10 <= len(alerts) <= 16  # gathered a second at a time: ~1,800
    assert [run.n for runs in alerts for run in runs] == list(range(30 * 60))
    sizes = [len(runs) for runs in alerts]
    assert sizes[:6] == [1, 2, 4, 8, 16, 32]  # each gathering twice the last
    assert max(sizes) == LONGEST // SECOND  # and never longer than LONGEST


def test_a_quiet_spell_as_long_as_the_last_gathering_starts_again_at_a_second() -> None:
    fires = MissedFires()
    behind(fires, "tick", 60)
    quiet = T0 + timedelta(minutes=10)
    assert fires.add(Missed("tick", 0), quiet) == quiet + FIRST  # type: ignore[arg-type]


def test_tasks_are_gathered_apart_and_quiet_ones_forgotten() -> None:
    fires = MissedFires()
    assert fires.add(Missed("a", 0), T0) == T0 + FIRST  # type: ignore[arg-type]
    assert fires.add(Missed("b", 0), T0) == T0 + FIRST  # type: ignore[arg-type]
    assert [run.task_name for run in fires.take("a", T0 + FIRST)] == ["a"]
    assert fires.take_all(T0 + FIRST) == {"b": [Missed("b", 0)]}
    fires.forget_quiet(T0 + timedelta(minutes=1))
    assert fires.add(Missed("a", 1), T0 + timedelta(minutes=1)) == (  # type: ignore[arg-type]
        T0 + timedelta(minutes=1) + FIRST
    )
