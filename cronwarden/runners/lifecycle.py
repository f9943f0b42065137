"""A run's life inside the daemon: one enum of states, one transition function.

Every run the daemon is responsible for has one ``RunHandle``; its state changes only
through ``RunHandle.apply``, which asks ``transition`` whether the move is legal.  The
state alone says where a run is: waiting in line, waiting for its time, waiting for a
place, running, being given up.  Which optional fields happen to be set never does
(that is how a queued run once got started twice).

    CLAIMING --claimed_to_start--> PLACING --placed--> STARTING --spawned--> RUNNING
       |  |  \\--claimed_to_queue--> QUEUED --slot_granted--> PLACING
       |  \\----claimed_to_delay--> DELAYED --slot_granted--> PLACING
       |                              |  \\--lined_up--> QUEUED
       |                              \\--left_for_next_life--> LEFT
       |--adopted--> RUNNING
       \\--claim_lost--> LOST
    QUEUED | DELAYED --cancelled--> ENDING
    PLACING | STARTING | RUNNING --exited--> ENDING --recorded / record_failed--> ENDED
    QUEUED | DELAYED --abandoned--> GIVEN_UP
    PLACING | STARTING | RUNNING --abandoned--> ABANDONING --exited--> GIVEN_UP

* CLAIMING: admission has decided; the pending row is being committed.
* QUEUED: committed, waiting in line for one of its task's slots.
* DELAYED: committed, waiting for its time (a retry's delay, a pending run recovered at
  start-up); at its time it goes through admission like any other start.
* PLACING: holds its task's slot; waits for the other places a run must hold before
  it starts (a place under max_concurrent_runs, a place among the task's runs on every
  node sharing the database; see ``gate``).
* STARTING: holds every place; its process is being paced and spawned.
* RUNNING: the process runs (pid known); an adopted run starts here.
* ENDING: the outcome is known and being committed; the slot is still held, so the
  next run starts only once this one's record is durable.
* ENDED: recorded; the slot is free.  LOST: the claim did not become ours (another
  node or an earlier request had it, or the database refused).  LEFT: a delayed run
  handed, still pending, to the next daemon life at shutdown.
* ABANDONING / GIVEN_UP: a surviving node took the run over while this one was cut off
  (see ``takeover``): its process is stopped, and its end, which the survivor already
  recorded, is neither recorded nor retried here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from cronwarden.config import TaskConfig
from cronwarden.errors import IllegalTransition
from cronwarden.run_record import RunRecord
from cronwarden.runners.execute import RunControl
from cronwarden.support.clock import Cancellable


class RunState(StrEnum):
    CLAIMING = "claiming"
    QUEUED = "queued"
    DELAYED = "delayed"
    PLACING = "placing"
    STARTING = "starting"
    RUNNING = "running"
    ENDING = "ending"
    ENDED = "ended"
    LOST = "lost"
    LEFT = "left"
    ABANDONING = "abandoning"
    GIVEN_UP = "given_up"


class RunEvent(StrEnum):
    CLAIMED_TO_START = "claimed_to_start"
    CLAIMED_TO_QUEUE = "claimed_to_queue"
    CLAIMED_TO_DELAY = "claimed_to_delay"
    CLAIM_LOST = "claim_lost"
    ADOPTED = "adopted"  # its process outlived the previous daemon life (or is gone)
    SLOT_GRANTED = "slot_granted"
    LINED_UP = "lined_up"  # a delayed run's time came, and its task's slots are full
    PLACED = "placed"  # holds every place it needs
    SPAWNED = "spawned"
    EXITED = "exited"  # the process ended, or the run could not start
    CANCELLED = "cancelled"  # stopped, removed or refused while it waited
    RECORDED = "recorded"
    RECORD_FAILED = "record_failed"  # not a database outage (those are waited out): a bug
    LEFT_FOR_NEXT_LIFE = "left_for_next_life"
    ABANDONED = "abandoned"  # a survivor took it over


S, E = RunState, RunEvent
_MOVES: dict[tuple[RunState, RunEvent], RunState] = {
    (S.CLAIMING, E.CLAIMED_TO_START): S.PLACING,
    (S.CLAIMING, E.CLAIMED_TO_QUEUE): S.QUEUED,
    (S.CLAIMING, E.CLAIMED_TO_DELAY): S.DELAYED,
    (S.CLAIMING, E.CLAIM_LOST): S.LOST,
    (S.CLAIMING, E.ADOPTED): S.RUNNING,
    (S.QUEUED, E.SLOT_GRANTED): S.PLACING,
    (S.QUEUED, E.CANCELLED): S.ENDING,
    (S.QUEUED, E.ABANDONED): S.GIVEN_UP,
    (S.DELAYED, E.SLOT_GRANTED): S.PLACING,
    (S.DELAYED, E.LINED_UP): S.QUEUED,
    (S.DELAYED, E.CANCELLED): S.ENDING,
    (S.DELAYED, E.LEFT_FOR_NEXT_LIFE): S.LEFT,
    (S.DELAYED, E.ABANDONED): S.GIVEN_UP,
    (S.PLACING, E.PLACED): S.STARTING,
    (S.PLACING, E.EXITED): S.ENDING,
    (S.PLACING, E.ABANDONED): S.ABANDONING,
    (S.STARTING, E.SPAWNED): S.RUNNING,
    (S.STARTING, E.EXITED): S.ENDING,
    (S.STARTING, E.ABANDONED): S.ABANDONING,
    (S.RUNNING, E.EXITED): S.ENDING,
    (S.RUNNING, E.ABANDONED): S.ABANDONING,
    (S.ABANDONING, E.EXITED): S.GIVEN_UP,
    (S.ENDING, E.RECORDED): S.ENDED,
    (S.ENDING, E.RECORD_FAILED): S.ENDED,
}
TERMINAL = frozenset({S.ENDED, S.LOST, S.LEFT, S.GIVEN_UP})
WAITING = frozenset({S.QUEUED, S.DELAYED, S.PLACING})  # carried, not started yet
LIVE = frozenset({S.STARTING, S.RUNNING, S.ENDING, S.ABANDONING})  # a process, or its end
STOPPABLE = frozenset({S.CLAIMING, S.PLACING, S.STARTING, S.RUNNING})  # by its control
NOT_STARTED = frozenset({S.CLAIMING, *WAITING})  # a ttl can still end it


def transition(state: RunState, event: RunEvent) -> RunState:
    """The state ``event`` leads to from ``state``; IllegalTransition if none."""
    try:
        return _MOVES[(state, event)]
    except KeyError:
        raise IllegalTransition(f"a run cannot go from {state} on {event}") from None


def legal_events(state: RunState) -> list[RunEvent]:
    return [event for (origin, event) in _MOVES if origin == state]


@dataclass(eq=False, slots=True)
class RunHandle:
    """The one owner of a run while this daemon is responsible for it."""

    run: RunRecord
    task: TaskConfig  # the definition it runs under, kept through reloads
    state: RunState = RunState.CLAIMING
    control: RunControl = field(default_factory=RunControl)
    job: asyncio.Task[None] | None = None  # its life (see ``life``), from PLACING on
    timer: Cancellable | None = None  # while DELAYED: calls it at its time
    # A run triggered with a ttl, until it starts: ends it expired at its expires_at.
    expiry: Cancellable | None = None
    expired: bool = False  # its ttl passed before it started

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def task_name(self) -> str:
        return self.run.task_name

    def apply(self, event: RunEvent) -> RunState:
        self.state = transition(self.state, event)
        if self.state is not RunState.DELAYED and self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.expiry is not None and self.state not in NOT_STARTED:
            self.expiry.cancel()
            self.expiry = None
        return self.state

    def can(self, event: RunEvent) -> bool:
        return (self.state, event) in _MOVES

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL
