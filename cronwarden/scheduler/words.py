"""Pure: a schedule in words, for people reading the dashboard and ``GET /api/tasks``.

cron-descriptor phrases the cron fields; the schedules it does not know (``@every``,
``@reboot``) are phrased here.  ``H`` fields are phrased as the values they were placed
on, since that is when the task fires.
"""

from __future__ import annotations

import functools

from cronwarden.scheduler.triggers import AnyTrigger, CronTrigger, EveryTrigger
from cronwarden.support.units import format_duration


def schedule_in_words(trigger: AnyTrigger) -> str:
    if isinstance(trigger, EveryTrigger):
        return f"Every {format_duration(trigger.interval)}, counted from the Unix epoch"
    if not isinstance(trigger, CronTrigger):
        return "Once, when the daemon starts"
    return _cron_in_words(trigger.cron) or trigger.expression


@functools.lru_cache(maxsize=16384)
def _cron_in_words(cron: str) -> str | None:
    """Cached: a task list phrases every task's schedule on each request, and many
    tasks share one.  Imported here, not at start-up, which it would slow by ~70 ms."""
    from cron_descriptor import CasingTypeEnum, FormatException, Options, get_description

    options = Options()
    options.use_24hour_time_format = True
    options.casing_type = CasingTypeEnum.Sentence
    options.verbose = False
    try:
        text: str = get_description(cron, options)
    except (FormatException, ValueError, KeyError, IndexError):
        return None  # a form the phrasing library does not know: shown as written
    return text
