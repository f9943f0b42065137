"""The direct cron step (CronFields) against croniter itself, on random expressions:
every next wall time must be croniter's, for 5 and 6 fields, both day rules, names,
ranges, steps and lists."""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from cronwarden.scheduler.triggers import CronFields


def field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    ranges = st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}")
    steps = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, 9)).map(
        lambda p: f"{p[0]}/{p[1]}"
    )
    single = st.one_of(number.map(str), ranges, steps, st.just("*"))
    if names:
        single = st.one_of(single, st.sampled_from(names))
    return st.lists(single, min_size=1, max_size=3).map(
        lambda parts: "*" if "*" in parts else ",".join(parts)
    )


EXPRESSION = st.tuples(
    field(0, 59),
    field(0, 59),
    field(0, 23),
    field(1, 31),
    field(1, 12, ["jan", "mar", "jun", "dec"]),
    field(0, 7, ["sun", "mon", "wed", "fri"]),
    st.booleans(),
    st.booleans(),
)
START = datetime(2026, 1, 1)


@settings(max_examples=400, deadline=None)
@given(EXPRESSION, st.integers(0, 3 * 365 * 24 * 60))
def test_the_direct_step_finds_what_croniter_finds(parts: tuple, minutes: int) -> None:
    second, minute, hour, day, month, weekday, with_seconds, day_or = parts
    fields = [minute, hour, day, month, weekday]
    if with_seconds:
        fields = [second, *fields]
    cron = " ".join(fields)
    reference = croniter(
        cron, START, day_or=day_or, second_at_beginning=with_seconds, ret_type=datetime
    )
    direct = CronFields.of(cron, reference, day_or)
    assert direct is not None
    at = START + timedelta(minutes=minutes, seconds=minutes % 61)
    reference.set_current(at, force=True)
    for _ in range(5):
        try:
            expected = reference.get_next(datetime)
        except Exception:  # croniter gives up: no date within its horizon
            assert direct.next_wall(at) is None or direct.next_wall(at).year > at.year + 4
            return
        found = direct.next_wall(at)
        assert found == expected, (cron, day_or, at)
        at = found


def test_expressions_with_l_w_or_hash_keep_croniters_search() -> None:
    for cron in ("0 0 L * *", "0 0 15W * *", "0 0 * * 5#2", "0 0 1,L * *"):
        assert CronFields.of(cron, croniter(cron, START), True) is None
    names = "0 9 * * wed"  # a weekday name with a w in it is not the W flag
    assert CronFields.of(names, croniter(names, START), True) is not None
