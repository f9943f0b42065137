"""An imported schedule fires when cron would: every schedule import-crontab writes for
Debian 12's cron files and a user crontab, against cronsim (a Vixie/Debian cron
simulator), around the DST changes of Europe/London and America/New_York, and in UTC.

cronsim and cronwarden read DST the same way (DESIGN.md "DST") for a schedule whose
minute and hour fields are both fixed (fixed-time: a repeated wall time fires once, a
skipped one right after the jump) and for one whose hour field starts with "*"
(periodic: follows elapsed time).  They differ by definition for a fixed hour with a
"*" minute ("*/20 2 * * *": cronwarden fixed-time, Debian cron periodic); such
schedules are compared in UTC, where there is no DST to read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from cronwarden.crontab.convert import Existing, convert
from cronwarden.scheduler.triggers import parse_schedule

DATA = Path(__file__).resolve().parents[1] / "data"
# crontab(5)'s meaning of each macro, written out here so the check does not reuse
# cronwarden's own table.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (zone, UTC instant of a clock change): spring forward and fall back in each zone.
CHANGES = [
    ("Europe/London", datetime(2025, 3, 30, 1, 0, tzinfo=UTC)),
    ("Europe/London", datetime(2025, 10, 26, 1, 0, tzinfo=UTC)),
    ("America/New_York", datetime(2025, 3, 9, 7, 0, tzinfo=UTC)),
    ("America/New_York", datetime(2025, 11, 2, 6, 0, tzinfo=UTC)),
    ("UTC", datetime(2025, 3, 30, 1, 0, tzinfo=UTC)),
    ("UTC", datetime(2025, 10, 26, 1, 0, tzinfo=UTC)),
]
WINDOW = timedelta(days=2)  # each side of the change
AT_LEAST = 3  # fires compared for schedules rarer than the window (@yearly)


def imported_schedules() -> set[str]:
    files = [(p, True) for p in sorted((DATA / "debian").iterdir())]
    files.append((DATA / "user.crontab", False))
    schedules: set[str] = set()
    for path, system in files:
        result = convert(path.read_text(), system=system, user="root", existing=Existing())
        schedules |= {str(t["schedule"]) for t in result.tasks.values()}
    schedules.discard("@reboot")
    return schedules


SCHEDULES = sorted(imported_schedules())


def agree_by_definition(cron: str) -> bool:
    minute, hour = cron.split()[:2]
    return hour.startswith("*") or not minute.startswith("*")


def cronsim_fires(cron: str, start: datetime) -> Iterator[datetime]:
    for fire in CronSim(cron, start):
        yield fire.astimezone(UTC)


def cronwarden_fires(schedule: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    trigger = parse_schedule(schedule, zone)
    at: datetime | None = start
    while at is not None:
        at = trigger.next_fire(at)
        if at is not None:
            yield at.astimezone(UTC)


def first(fires: Iterator[datetime], until: datetime) -> list[datetime]:
    taken: list[datetime] = []
    for fire in fires:
        if fire > until and len(taken) >= AT_LEAST:
            break
        taken.append(fire)
    return taken


def test_the_imports_give_schedules_of_every_kind() -> None:
    assert len(SCHEDULES) >= 25
    assert any(not agree_by_definition(MACROS.get(s, s)) for s in SCHEDULES)
    assert {"5-55/10 * * * *", "09,39 * * * *", "30 7-23 * * *", "@hourly"} <= set(SCHEDULES)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_an_imported_schedule_fires_when_cron_would(schedule: str) -> None:
    cron = MACROS.get(schedule, schedule)
    compared = 0
    for zone_name, change in CHANGES:
        if zone_name != "UTC" and not agree_by_definition(cron):
            continue
        zone = ZoneInfo(zone_name)
        start, until = change - WINDOW, change + WINDOW
        expected = first(cronsim_fires(cron, start.astimezone(zone)), until)
        got = first(cronwarden_fires(schedule, zone, start), until)
        assert got[: len(expected)] == expected[: len(got)], (schedule, zone_name)
        assert len(got) == len(expected), (schedule, zone_name)
        compared += len(got)
    assert compared >= AT_LEAST * 2


def test_thousands_of_instants_are_compared() -> None:
    """The windows above are wide enough to mean something."""
    total = 0
    for schedule in SCHEDULES:
        cron = MACROS.get(schedule, schedule)
        for zone_name, change in CHANGES:
            if zone_name != "UTC" and not agree_by_definition(cron):
                continue
            start = (change - WINDOW).astimezone(ZoneInfo(zone_name))
            total += len(first(cronsim_fires(cron, start), change + WINDOW))
    assert total >= 3000
