"""Delivering one alert to one target, once: a webhook POST or a command.

Each send either returns (delivered) or raises ``SendFailed`` saying why, and whether
trying again could help (a 400 from a webhook will not get better; a 503 may).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
from collections.abc import Mapping
from typing import Any

import aiohttp

from cronwarden import __version__
from cronwarden.config import SHELL, NotifyConfig
from cronwarden.host.control_env import RUN_ID_VARIABLE, without_control_variables

SIGNATURE_HEADER = "X-Cronwarden-Signature"
OUTPUT_KEPT = 2048  # bytes of a failing command's output quoted in the log


class SendFailed(Exception):
    def __init__(self, why: str, retryable: bool = True) -> None:
        super().__init__(why)
        self.retryable = retryable


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, body), as GitHub and Stripe sign."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def send_webhook(
    session: aiohttp.ClientSession, target: NotifyConfig, event: Mapping[str, Any]
) -> None:
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {
        **target.headers,
        "Content-Type": "application/json",
        "User-Agent": f"cronwarden/{__version__}",
        "X-Cronwarden-Event": str(event["event"]),
        "X-Cronwarden-Delivery": str(event["id"]),
    }
    if target.secret:
        headers[SIGNATURE_HEADER] = signature(target.secret, body)
    timeout = aiohttp.ClientTimeout(total=target.timeout.total_seconds() or None)
    try:
        async with session.post(
            str(target.url), data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            if 200 <= response.status < 300:
                return
            # Over again only where the receiver may answer otherwise next time.
            retryable = response.status in (408, 425, 429) or response.status >= 500
            raise SendFailed(f"HTTP {response.status} {response.reason}", retryable)
    except TimeoutError:
        raise SendFailed(f"no answer within {target.timeout.total_seconds():g}s") from None
    except aiohttp.ClientError as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}") from None


async def send_command(
    target: NotifyConfig, event: Mapping[str, Any], env: Mapping[str, str]
) -> None:
    """Run the target's command with the event as JSON on stdin and as environment
    variables; exit 0 is delivered.  Its process group is killed at the timeout."""
    command = target.command
    argv = [*SHELL, command] if isinstance(command, str) else list(command or [])
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # As a run: the daemon's control variables (its token, NOTIFY_SOCKET) stay out.
            env={**without_control_variables(os.environ), **env},
            start_new_session=True,
        )
    except OSError as exc:
        raise SendFailed(f"cannot start {argv[0]!r}: {exc.strerror}") from None
    body = json.dumps(event).encode()
    limit = target.timeout.total_seconds() or None
    try:
        output, _ = await asyncio.wait_for(process.communicate(body), limit)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise SendFailed(f"still running after {limit:g}s; killed") from None
    if process.returncode != 0:
        said = output[-OUTPUT_KEPT:].decode(errors="replace").strip()
        raise SendFailed(f"exit status {process.returncode}" + (f": {said}" if said else ""))


def command_env(event: Mapping[str, Any]) -> dict[str, str]:
    """The event as variables, for commands that would rather not parse JSON."""
    run = event.get("run") or {}
    values = {
        "CRONWARDEN_EVENT": event["event"],
        "CRONWARDEN_EVENT_ID": event["id"],
        "CRONWARDEN_TASK": event["task"],
        "CRONWARDEN_MESSAGE": event["message"],
        "CRONWARDEN_AT": event["at"],
        "CRONWARDEN_NODE": event["node"],
        RUN_ID_VARIABLE: run.get("id"),
        "CRONWARDEN_END_REASON": run.get("end_reason"),
        "CRONWARDEN_EXIT_CODE": run.get("exit_code"),
        "CRONWARDEN_LOG_URL": event.get("log_url"),
    }
    return {k: str(v) for k, v in values.items() if v is not None}
