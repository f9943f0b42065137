"""Per-task admission: who may run now, who waits, who is turned away.  Pure, no I/O.

Every path that would start a process (a fire, an API trigger, a dequeued run, a
delayed retry, a pending run recovered at start-up) asks ``TaskSlots.acquire`` first;
a slot is given back with ``release``, which hands it straight to the next queued run.
Decisions are synchronous, so no other request can slip in between "is a slot free?"
and "take it".

overlap (when all max_concurrent slots are held):
* allow: no limit, always start.
* skip: refuse (a scheduled fire is recorded as skipped; an API trigger answers 409).
* queue: wait in line, at most queue_max; beyond that refuse.
* terminate: the newest wins.  The oldest run not already being stopped is stopped,
  and the newcomer waits for the slot it frees, so max_concurrent holds at every
  instant.  If every holder is already being stopped, the oldest waiting newcomer is
  superseded (it ends stopped) instead of growing the line.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Overlap = Literal["allow", "skip", "queue", "terminate"]


class Verdict(StrEnum):
    START = "start"  # a slot is now held by the run
    QUEUE = "queue"  # the run waits in line for a slot
    SKIP = "skip"  # overlap = skip and every slot is held
    REFUSE = "refuse"  # overlap = queue and the line is full


@dataclass(frozen=True)
class Policy:
    overlap: Overlap
    max_concurrent: int
    queue_max: int


@dataclass(frozen=True)
class Eviction:
    """What terminate asks for once the newcomer's record is committed."""

    stop: list[str]  # holders to stop (their slots go to the line)
    supersede: list[str]  # waiting runs to end as replaced by a newer one


@dataclass
class TaskSlots:
    """One task's slots and its line of waiting runs (run ids, oldest first)."""

    holders: dict[str, bool] = field(default_factory=dict)  # run id -> being stopped
    line: deque[str] = field(default_factory=deque)

    def acquire(self, run_id: str, policy: Policy, elsewhere: int = 0) -> Verdict:
        """``elsewhere``: active runs of the task on other nodes sharing the database.
        Only skip counts them: a queued run is granted its slot by a release on this
        node, which a run ending elsewhere would never give."""
        if self._has_room(policy) and not (
            policy.overlap == "skip" and len(self.holders) + elsewhere >= policy.max_concurrent
        ):
            self.holders[run_id] = False
            return Verdict.START
        if policy.overlap == "skip":
            return Verdict.SKIP
        if policy.overlap == "queue" and len(self.line) >= policy.queue_max:
            return Verdict.REFUSE
        self.line.append(run_id)
        return Verdict.QUEUE

    def evict_for(self, run_id: str) -> Eviction:
        """terminate: make room for ``run_id`` (waiting in line) by stopping the oldest
        holder not being stopped yet, or by superseding an older waiting run."""
        for holder, being_stopped in self.holders.items():
            if not being_stopped:
                self.holders[holder] = True
                return Eviction(stop=[holder], supersede=[])
        # Every holder is being stopped already: each frees one slot, so the line needs
        # no more runs than that; the older newcomers give way to the newest.
        superseded = []
        while len(self.line) > max(len(self.holders), 1) and self.line[0] != run_id:
            superseded.append(self.line.popleft())
        return Eviction(stop=[], supersede=superseded)

    def release(self, run_id: str, policy: Policy) -> list[str]:
        """Give back ``run_id``'s slot, or its place in line; returns the waiting runs
        that now hold a slot (in the order they waited)."""
        if self.holders.pop(run_id, None) is None:
            self.withdraw(run_id)
        return self.grant(policy)

    def grant(self, policy: Policy) -> list[str]:
        """Hand free slots to waiting runs (after a release, or a reload raised limits)."""
        granted = []
        while self.line and self._has_room(policy):
            run_id = self.line.popleft()
            self.holders[run_id] = False
            granted.append(run_id)
        return granted

    def withdraw(self, run_id: str) -> bool:
        """Take a waiting run out of line (stopped or removed before its turn)."""
        try:
            self.line.remove(run_id)
        except ValueError:
            return False
        return True

    def seat(self, run_id: str) -> None:
        """A run a previous daemon life started (adopted): it holds a slot, whatever
        the limit says now."""
        self.holders[run_id] = False

    def mark_stopping(self, run_id: str) -> None:
        if run_id in self.holders:
            self.holders[run_id] = True

    @property
    def idle(self) -> bool:
        return not self.holders and not self.line

    def _has_room(self, policy: Policy) -> bool:
        return policy.overlap == "allow" or len(self.holders) < policy.max_concurrent
