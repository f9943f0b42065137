"""One queue and one worker per alert target, so a slow or failing target delays
neither runs nor the other targets; its own alerts go out in order.

An alert may hold a part still being read (the run's output, read on a thread while the
alert already waits in line): the worker awaits it just before the first try, so
alerts keep their order and a slow read delays only the alerts behind it.

A full queue drops the newest alert, saying so (a target that cannot keep up must not
grow the daemon's memory without bound).  Retries wait per the target's retry_delay,
doubling, capped at ``MAX_RETRY_DELAY``.  Every outcome is a log event and a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog

from cronwarden.alerts.senders import SendFailed
from cronwarden.config import NotifyConfig
from cronwarden.support.backoff import backoff_delay

log = structlog.get_logger("cronwarden.alerts")

QUEUE_MAX = 1000
MAX_RETRY_DELAY = timedelta(minutes=5)
Send = Callable[[NotifyConfig, Mapping[str, Any]], Awaitable[None]]
Outcome = Callable[[str, str, str], None]  # target, event, outcome


async def settled(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The alert with every part still being read (an ``asyncio.Future``) filled in."""
    pending = {k: v for k, v in event.items() if isinstance(v, asyncio.Future)}
    if not pending:
        return event
    # Shielded: a worker cancelled at shutdown must not cancel a read other targets await.
    return {**event, **{k: await asyncio.shield(v) for k, v in pending.items()}}


class Courier:
    def __init__(
        self,
        name: str,
        target: NotifyConfig,
        send: Send,
        on_outcome: Outcome,
    ) -> None:
        self.name = name
        self.target = target
        self._send = send
        self._on_outcome = on_outcome
        self._queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self._worker: asyncio.Task[None] | None = None

    def post(self, event: Mapping[str, Any]) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._deliver_forever(), name=f"alerts to {self.name}"
            )
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.error(
                "alert.dropped",
                target=self.name,
                alert_event=event["event"],
                task=event["task"],
                why=f"{QUEUE_MAX} alerts already wait for this target",
            )
            self._on_outcome(self.name, str(event["event"]), "dropped")

    async def drain(self, within: float) -> None:
        """Give queued alerts ``within`` seconds to go out (at shutdown), then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), within)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker

    async def _deliver_forever(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._deliver(await settled(event))
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in a sender must not stop this target for good
                log.exception("alert.failed", target=self.name, alert_event=event["event"])
                self._on_outcome(self.name, str(event["event"]), "failed")
            finally:
                self._queue.task_done()

    async def _deliver(self, event: Mapping[str, Any]) -> None:
        tries = self.target.retries + 1
        for attempt in range(1, tries + 1):
            try:
                await self._send(self.target, event)
            except SendFailed as exc:
                last_try = attempt == tries or not exc.retryable
                fields = {
                    "target": self.name,
                    "alert_event": event["event"],
                    "task": event["task"],
                    "attempt": attempt,
                    "error": str(exc),
                }
                if last_try:
                    log.error("alert.failed", **fields)
                    self._on_outcome(self.name, str(event["event"]), "failed")
                    return
                delay = backoff_delay(
                    attempt,
                    delay=self.target.retry_delay,
                    backoff="exponential",
                    max_delay=MAX_RETRY_DELAY,
                )
                log.warning("alert.retrying", **fields, delay_s=delay.total_seconds())
                await asyncio.sleep(delay.total_seconds())
            else:
                log.info(
                    "alert.delivered",
                    target=self.name,
                    alert_event=event["event"],
                    task=event["task"],
                    attempt=attempt,
                )
                self._on_outcome(self.name, str(event["event"]), "delivered")
                return
