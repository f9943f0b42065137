"""Runs in words and table cells, as the CLI prints them for people (scripts read
``--json``, which keeps every field as the API gives it).

The runs table fits 100 columns: its every field came to 128, wider than most
terminals, so each row wrapped into two.  It keeps what tells runs apart and what
became of them: the id, whole (``show``, ``logs`` and ``rerun`` take it), the task (the
column that gives way, cut, when the others leave it too little), the outcome (an ended
run's end reason, else its status), how the process ended (its exit code, or the signal
that ended it), when the run was created (UTC, to the second) and how long it took.
``--wide`` adds the rest: the trigger, the signal's number, the whole created instant,
what the run cost and its tags.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

from cronwarden.support import readable

Run = Mapping[str, Any]

TABLE_WIDTH = 100
HEADERS = ["id", "task", "status", "exit", "created (utc)", "took"]
TASK_COLUMN = HEADERS.index("task")
# What a run cost, in the wide table: CPU seconds (user + system) and peak memory.  Its
# output bytes are left to --json and the view of one run.
COST_HEADERS = ["cpu", "mem"]
WIDE_HEADERS = [
    *["id", "task", "status", "end", "exit", "signal", "by", "created", "took"],
    *COST_HEADERS,
    "tags",
]


def cells(run: Run) -> list[str]:
    """A row of the runs table."""
    created = run["created_at"]
    return [
        run["id"],
        run["task_name"],
        run["end_reason"] or run["status"],
        _exit_cell(run),
        f"{created[5:10]} {created[11:19]}" if created else "-",
        took(run) or "-",
    ]


def wide_cells(run: Run) -> list[str]:
    """A row of the runs table with ``--wide``: every column."""
    return [
        run["id"],
        run["task_name"],
        run["status"],
        run["end_reason"] or "-",
        "-" if run["exit_code"] is None else str(run["exit_code"]),
        "-" if run["signal"] is None else str(run["signal"]),
        run["triggered_by"],
        run["created_at"] or "-",
        took(run) or "-",
        *cost_cells(run),
        ",".join(run["tags"]) or "-",
    ]


def took(run: Run) -> str | None:
    """``3m21s`` for a run of 200893 ms; None for a run that did not run."""
    return None if run["duration_ms"] is None else readable.duration_ms(run["duration_ms"])


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; the number for one this system does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def ending(run: Run) -> str | None:
    """How the run's process ended: ``exit 3``, ``SIGTERM``; None if it never ran."""
    if run["exit_code"] is not None:
        return f"exit {run['exit_code']}"
    if run["signal"] is not None:
        return signal_name(int(run["signal"]))
    return None


def _exit_cell(run: Run) -> str:
    if run["exit_code"] is not None:
        return str(run["exit_code"])
    return "-" if run["signal"] is None else signal_name(int(run["signal"]))


def ended_line(run: Run) -> str:
    """An ended run in one line (``run --wait``): ``ID ended failed (exit 3) in 2.05s
    (attempt 2); cpu ...``."""
    how = ending(run)
    spent = took(run)
    return (
        f"{run['id']} ended {run['end_reason']}"
        + (f" ({how})" if how and run["end_reason"] != "success" else "")
        + (f" in {spent}" if spent else "")
        + (f" (attempt {run['attempt']})" if run["attempt"] > 1 else "")
        + f"; {cost_line(run)}"
    )


def cost_cells(run: Run) -> list[str]:
    peak = run.get("max_rss_bytes")
    return [cpu_total(run) or "-", "-" if peak is None else readable.size(peak)]


def cpu_total(run: Run) -> str | None:
    user, system = run.get("cpu_user_s"), run.get("cpu_system_s")
    return None if user is None or system is None else readable.seconds(user + system)


def cost_line(run: Run) -> str:
    """A run's cost in words, for the view of one run (``run --wait``, ``rerun --wait``)."""
    parts = []
    total = cpu_total(run)
    if total is not None:
        user, system = (readable.seconds(run[k]) for k in ("cpu_user_s", "cpu_system_s"))
        parts.append(f"cpu {total} ({user} user, {system} system)")
    if run.get("max_rss_bytes") is not None:
        parts.append(f"peak memory {readable.size(run['max_rss_bytes'])}")
    if run.get("output_bytes") is not None:
        parts.append(f"output {readable.size(run['output_bytes'])}")
    return ", ".join(parts) or "cost not known"
