"""run.output, cron's MAILTO: a run that printed something is told, with what it printed.

cron mails the output of every job that prints, whatever its exit status, and
operators moving from cron rely on it: a job that prints only when something is off
(``df | awk '$5 > 90'``) is an alert by design.  So each run that ended having printed
raises run.output: success or failure, and every attempt of a retried run too.  Unlike
run.failed, which waits for the attempt that ends the chain (a retry may still succeed),
an attempt's output is not repeated by its retry: it is told with that attempt or never.

An alert carries the first ``EXCERPT_BYTES`` of the stored output: enough for a mail
or a chat message, bounded however much a run printed.  The stored log already has
secret_env values replaced by ``***`` (runlog/masking.py), so the excerpt does too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cronwarden.alerts.rules import AlertEvent, describe_end
from cronwarden.config import EventName
from cronwarden.model import Status
from cronwarden.run_record import AnyRun

EXCERPT_BYTES = 64 * 1024
# The events whose alert carries the run's output: the end of a run that went wrong
# (a success too soon included: what it printed may say why), and the output itself.
CARRIES_OUTPUT: frozenset[EventName] = frozenset(
    {"run.failed", "run.timeout", "run.crashed", "run.too_short", "run.output"}
)


def output_event(run: AnyRun, run_json: dict[str, Any] | None, now: datetime) -> AlertEvent | None:
    """run.output for a run that ended having printed (stdout or stderr), else None."""
    if run.status != Status.ENDED or run.log_size <= 0:
        return None
    noun = "byte" if run.log_size == 1 else "bytes"
    return AlertEvent(
        event="run.output",
        task=run.task_name,
        at=now,
        message=f"{describe_end(run)}; it printed {run.log_size} {noun}",
        run=run_json,
    )


def cut_excerpt(data: bytes, limit: int = EXCERPT_BYTES) -> tuple[str, bool]:
    """The first ``limit`` bytes of ``data`` as text, and whether some were cut off.

    The cut moves back to a character boundary (a character split in two would show as
    garbage at the end); bytes that are not UTF-8 show as U+FFFD, as the log API does.
    """
    if len(data) <= limit:
        return data.decode(errors="replace"), False
    head = data[:limit]
    # A UTF-8 character is at most 4 bytes: look at most 3 back for its lead byte.
    for back in range(1, min(4, len(head)) + 1):
        byte = head[-back]
        if byte < 0x80:  # ASCII: the cut is between characters
            break
        if byte >= 0xC0:  # a lead byte: drop it if its character does not fit
            width = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if width > back:
                head = head[:-back]
            break
    return head.decode(errors="replace"), True
