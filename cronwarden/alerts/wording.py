"""An alert as people read it: a subject line and a plain-text body, for mail and chat
targets (Apprise).  Webhooks and commands get the JSON instead; this is the same event
in words.  Pure: it reads the alert's JSON body only.

The subject names the task, what happened and how the run ended, so a mailbox or a
channel can be scanned without opening anything ("cronwarden: backup failed (exit 2)").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Severity = Literal["info", "success", "warning", "failure"]  # Apprise's notify types

_WHAT: dict[str, str] = {
    "run.failed": "failed",
    "run.timeout": "timed out",
    "run.crashed": "crashed",
    "run.output": "printed output",
    "run.stuck": "is stuck",
    "fire.missed": "missed a fire",
    "task.overdue": "is overdue",
    "task.recovered": "recovered",
    "run.too_short": "finished too soon",
    "run.too_long": "is running long",
    "fire.late": "is late to start",
    "run.expired": "expired before it started",
}
_SEVERITY: dict[str, Severity] = {
    "run.failed": "failure",
    "run.timeout": "failure",
    "run.crashed": "failure",
    "run.stuck": "warning",
    "fire.missed": "warning",
    "task.overdue": "warning",
    "task.recovered": "success",
    "run.too_short": "warning",
    "run.too_long": "warning",
    "fire.late": "warning",
    "run.expired": "warning",
}
_ENDED: dict[str, str] = {
    "success": "succeeded",
    "failed": "failed",
    "timeout": "timed out",
    "stopped": "stopped",
    "crashed": "crashed",
    "log_overflow": "output over max_log_size",
    "expired": "expired before it started",
}


def subject(alert: Mapping[str, Any]) -> str:
    """``cronwarden: TASK WHAT (OUTCOME)``."""
    event = str(alert["event"])
    what = _WHAT.get(event, event)
    if event == "fire.missed":
        count = (alert.get("details") or {}).get("missed", 1)
        what = f"missed {count} fires" if count != 1 else what
    outcome = _outcome(alert.get("run"), repeat=event != "run.output")
    return f"cronwarden: {alert['task']} {what}" + (f" ({outcome})" if outcome else "")


def severity(alert: Mapping[str, Any]) -> Severity:
    event = str(alert["event"])
    if event == "run.output":  # as the run went
        reason = (alert.get("run") or {}).get("end_reason")
        return "info" if reason in (None, "success") else "failure"
    return _SEVERITY.get(event, "info")


def text(alert: Mapping[str, Any]) -> str:
    """The message, where to look, and the output excerpt when the alert has one."""
    lines = [str(alert["message"]), ""]
    run = alert.get("run") or {}
    if run.get("id"):
        lines.append(f"Run:  {run['id']} (attempt {run.get('attempt', 1)})")
    if alert.get("log_url"):
        lines.append(f"Log:  {alert['log_url']}")
    lines.append(f"Node: {alert['node']}")
    lines.append(f"At:   {alert['at']}")
    output = alert.get("output")
    if output is not None:
        lines.append("")
        if not output["text"]:
            lines.append("It printed nothing.")
        else:
            shown = len(output["text"].encode())
            lines.append(
                f"Output (the first {shown} of {output['size']} bytes):"
                if output["truncated"]
                else "Output:"
            )
            lines.append("")
            lines.append(output["text"].rstrip("\n"))
        if output.get("error"):
            lines.append(f"(the output could not be read: {output['error']})")
    return "\n".join(lines) + "\n"


def _outcome(run: Mapping[str, Any] | None, *, repeat: bool) -> str:
    """How the run ended, in a few words: "exit 2", "signal 9", "succeeded, exit 0".
    ``repeat`` False adds the end reason, which the subject does not say otherwise."""
    if not run or run.get("end_reason") is None:
        return ""
    reason = str(run["end_reason"])
    parts = (
        []
        if repeat and reason in ("failed", "timeout", "crashed")
        else [_ENDED.get(reason, reason)]
    )
    if run.get("exit_code") is not None:
        parts.append(f"exit {run['exit_code']}")
    elif run.get("signal") is not None:
        parts.append(f"signal {run['signal']}")
    return ", ".join(parts)
