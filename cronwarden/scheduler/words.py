"""Pure: a schedule in words, for people reading the dashboard and ``GET /api/tasks``.

cron-descriptor phrases the cron fields; the schedules it does not know (``@every``,
``@reboot``) are phrased here.  ``H`` fields are phrased as the values they were placed
on, since that is when the task fires.
"""

from __future__ import annotations

from cron_descriptor import CasingTypeEnum, FormatException, Options, get_description

from cronwarden.scheduler.triggers import AnyTrigger, CronTrigger, EveryTrigger
from cronwarden.units import format_duration

_OPTIONS = Options()
_OPTIONS.use_24hour_time_format = True
_OPTIONS.casing_type = CasingTypeEnum.Sentence
_OPTIONS.verbose = False


def schedule_in_words(trigger: AnyTrigger) -> str:
    if isinstance(trigger, EveryTrigger):
        return f"Every {format_duration(trigger.interval)}, counted from the Unix epoch"
    if not isinstance(trigger, CronTrigger):
        return "Once, when the daemon starts"
    try:
        text: str = get_description(trigger.cron, _OPTIONS)
    except (FormatException, ValueError, KeyError, IndexError):
        return trigger.expression  # a form the phrasing library does not know
    return text
