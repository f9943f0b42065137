"""A large batch of fires is claimed, then started a hundred at a time with turns of
the loop between: the first ones may have run and ended before the batch is through.
Each run is still told created and ended once, never taken for a fire the batch
recorded ended (skipped, missed).  (Seen in a 10,000-task minute: 172 runs that ended
with success were logged ``run.skipped`` after their end, and told created and ended
a second time.)"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from dispatch_doubles import T0, FakeLauncher, rig, settle  # type: ignore[import-not-found]

from cronwarden.model import EndReason, Trigger
from cronwarden.runners.fires import TURN_SHARE
from cronwarden.runners.launch import Ending
from cronwarden.runners.outcome import Outcome

TASKS = TURN_SHARE * 3


class EndsAtOnce(FakeLauncher):
    """Each run's process ends as soon as it is spawned."""

    async def run(self, run, task, control, on_started):  # type: ignore[no-untyped-def]
        on_started(1, lambda: None)
        return Ending(Outcome(EndReason.SUCCESS, exit_code=0))


async def test_runs_that_end_before_their_batch_is_through_are_told_once() -> None:
    tasks = "".join(f'[tasks.t{i:04d}]\ncommand = "true"\n' for i in range(TASKS))
    r = rig(tasks, launcher=lambda clock: EndsAtOnce())
    fires = [(f"t{i:04d}", T0, Trigger.SCHEDULE) for i in range(TASKS)]
    claimed = await r.dispatcher.fire_many(fires)
    assert len(claimed) == TASKS
    for _ in range(100):
        if r.dispatcher.active_runs == 0:
            break
        await settle()
    told = Counter(r.changes)
    assert {kind for kind, _ in told} == {"run.created", "run.started", "run.ended"}
    assert set(told.values()) == {1}, [c for c, n in told.items() if n > 1][:5]
    assert all(row.end_reason == EndReason.SUCCESS for row in r.store.runs.values())
    await r.dispatcher.shutdown(timedelta(0))
