"""A run's life inside the daemon: one enum of states, one transition function.

Every run the daemon is responsible for has one ``RunHandle``; its state changes only
through ``RunHandle.apply``, which asks ``transition`` whether the move is legal.  Which
optional fields happen to be set never says what a run is doing (that is how a queued
run once got started twice).

    CLAIMING --claimed_to_start--> STARTING --spawned--> RUNNING
        |  \\--claimed_to_wait--> WAITING --slot_granted--> STARTING
        |                            |  \\--left_for_next_life--> LEFT
        \\--claim_lost--> LOST       \\--cancelled--> ENDING
    STARTING | RUNNING --exited--> ENDING --recorded / record_failed--> ENDED

* CLAIMING: admission has decided; the pending row is being committed.
* WAITING: committed, waiting for a slot (queued) or for its time (a retry's delay,
  a pending run recovered at start-up).
* STARTING: holds a slot; its process is being spawned.
* RUNNING: the process runs (pid known).
* ENDING: the outcome is known and being committed; the slot is still held, so the
  next run starts only once this one's record is durable.
* ENDED: recorded; the slot is free.  LOST: the claim did not become ours (another
  node or an earlier request had it, or the database refused).  LEFT: a waiting run
  handed, still pending, to the next daemon life at shutdown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from cronwarden.clock import Cancellable
from cronwarden.config import TaskConfig
from cronwarden.errors import IllegalTransition
from cronwarden.model import Run
from cronwarden.runners.execute import RunControl


class RunState(StrEnum):
    CLAIMING = "claiming"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    ENDING = "ending"
    ENDED = "ended"
    LOST = "lost"
    LEFT = "left"


class RunEvent(StrEnum):
    CLAIMED_TO_START = "claimed_to_start"
    CLAIMED_TO_WAIT = "claimed_to_wait"
    CLAIM_LOST = "claim_lost"
    SLOT_GRANTED = "slot_granted"
    SPAWNED = "spawned"
    EXITED = "exited"  # the process ended, or could not start
    CANCELLED = "cancelled"  # stopped, removed or refused before it started
    RECORDED = "recorded"
    RECORD_FAILED = "record_failed"  # not a database outage (those are waited out): a bug
    LEFT_FOR_NEXT_LIFE = "left_for_next_life"


S, E = RunState, RunEvent
_MOVES: dict[tuple[RunState, RunEvent], RunState] = {
    (S.CLAIMING, E.CLAIMED_TO_START): S.STARTING,
    (S.CLAIMING, E.CLAIMED_TO_WAIT): S.WAITING,
    (S.CLAIMING, E.CLAIM_LOST): S.LOST,
    (S.WAITING, E.SLOT_GRANTED): S.STARTING,
    (S.WAITING, E.CANCELLED): S.ENDING,
    (S.WAITING, E.LEFT_FOR_NEXT_LIFE): S.LEFT,
    (S.STARTING, E.SPAWNED): S.RUNNING,
    (S.STARTING, E.EXITED): S.ENDING,
    (S.RUNNING, E.EXITED): S.ENDING,
    (S.ENDING, E.RECORDED): S.ENDED,
    (S.ENDING, E.RECORD_FAILED): S.ENDED,
}
TERMINAL = frozenset({S.ENDED, S.LOST, S.LEFT})
HOLDS_SLOT = frozenset({S.STARTING, S.RUNNING, S.ENDING})


def transition(state: RunState, event: RunEvent) -> RunState:
    """The state ``event`` leads to from ``state``; IllegalTransition if none."""
    try:
        return _MOVES[(state, event)]
    except KeyError:
        raise IllegalTransition(f"a run cannot go from {state} on {event}") from None


def legal_events(state: RunState) -> list[RunEvent]:
    return [event for (origin, event) in _MOVES if origin == state]


@dataclass(eq=False)
class RunHandle:
    """The one owner of a run while this daemon is responsible for it."""

    run: Run
    task: TaskConfig  # the definition it runs under, kept through reloads
    state: RunState = RunState.CLAIMING
    control: RunControl = field(default_factory=RunControl)
    job: asyncio.Task[None] | None = None  # the coroutine carrying it from STARTING on
    timer: Cancellable | None = None  # while WAITING for its time
    holds_shared_place = False  # one of its task's places on a shared database

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def task_name(self) -> str:
        return self.run.task_name

    def apply(self, event: RunEvent) -> RunState:
        self.state = transition(self.state, event)
        if self.state is not RunState.WAITING and self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return self.state

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL
