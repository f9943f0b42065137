"""One place where changes are told: whoever makes a change publishes it, whoever cares
subscribes, and neither knows the other.

Three topics, each typed by the kinds it carries and what comes with them::

    hub = Hub()
    hub.runs.subscribe(metrics.observe)             # (kind, run)
    hub.tasks.subscribe(lambda kind, name: ...)     # ("task.paused" | "task.resumed", task name)
    hub.reloads.subscribe(lambda kind, answer: ...) # ("config.reloaded", what changed)

    hub.runs.publish("run.ended", run)              # the dispatcher
    hub.tasks.publish("task.paused", "backup")      # the owner of pause/resume
    hub.reloads.publish("config.reloaded", answer)  # the daemon's reload

* ``hub.runs``: "run.created" (its row is committed), "run.started" (spawned), "run.ended"
  (its end is recorded), "run.reported" (its job reported its stage, progress or output,
  written), with the run's ``RunRecord`` (run_record.py).
* ``hub.tasks``: "task.paused", "task.resumed", with the task's name.
* ``hub.reloads``: "config.reloaded", with the reload's answer (tasks added, removed,
  changed; keys that need a restart).

Subscribers are plain synchronous callables, called in the order they subscribed, in
the publisher's turn of the loop (a run's "run.started" is told before its "run.ended"
can be).  One that must do I/O starts a task of its own.  One that raises is logged and
the others are still told: a bug in the metrics must not keep a run's end from the
events log.  Publishing with no subscriber costs a loop over an empty list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import structlog

from cronwarden.run_record import RunRecord

log = structlog.get_logger("cronwarden.hub")

RunChange = Literal["run.created", "run.started", "run.ended", "run.reported"]
TaskChange = Literal["task.paused", "task.resumed"]
Reload = Literal["config.reloaded"]

K = TypeVar("K", bound=str)
P = TypeVar("P")


class Topic(Generic[K, P]):
    """Subscribers to one kind of change, told in subscription order."""

    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: list[Callable[[K, P], None]] = []

    def subscribe(self, subscriber: Callable[[K, P], None]) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Callable[[K, P], None]) -> None:
        """Stop telling ``subscriber`` (no error if it was not subscribed)."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def publish(self, kind: K, payload: P) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(kind, payload)
            except Exception:
                log.exception("hub.subscriber_failed", kind=kind, subscriber=_name(subscriber))


class Hub:
    """The daemon's topics; see the module docstring."""

    __slots__ = ("reloads", "runs", "tasks")

    def __init__(self) -> None:
        self.runs: Topic[RunChange, RunRecord] = Topic()
        self.tasks: Topic[TaskChange, str] = Topic()
        self.reloads: Topic[Reload, dict[str, Any]] = Topic()


def _name(subscriber: Callable[..., Any]) -> str:
    return getattr(subscriber, "__qualname__", None) or repr(subscriber)
