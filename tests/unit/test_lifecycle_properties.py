"""Random sequences of fire / trigger / stop / process end / retry-due / reload events
against the real Dispatcher: never more live runs than max_concurrent, never more
waiting than queue_max, every run ends exactly once and is recorded once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

from dispatch_doubles import T0, Rig, config, rig, settle  # type: ignore[import-not-found]
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cronwarden.errors import Conflict, ShuttingDown, TaskNotFound, TriggerRefused
from cronwarden.model import EndReason, Status

POLICIES = {
    "skip": 'overlap = "skip"\nmax_concurrent = 1',
    "queue": 'overlap = "queue"\nmax_concurrent = 2\nqueue_max = 2',
    "terminate": 'overlap = "terminate"\nmax_concurrent = 1',
    "allow": 'overlap = "allow"',
}
LIMITS = {"skip": (1, 0), "queue": (2, 2), "terminate": (1, 1), "allow": (10**6, 0)}


def tasks_text(present: set[str]) -> str:
    return (
        "".join(
            f'[tasks.{name}]\ncommand = "true"\n{POLICIES[name]}\n'
            'retries = 1\nretry_delay = "5s"\nretry_on = ["failed"]\n'
            for name in sorted(present)
        )
        or '[tasks.idle]\ncommand = "true"\n'
    )


class Lifecycle(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.present = set(POLICIES)
        self.rig: Rig = rig(tasks_text(self.present))
        self.fires = 0

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.run(self.rig.dispatcher.shutdown(timedelta(0)))
            self._check_ended_once(final=True)
            self.loop.close()

    def run(self, coro):  # type: ignore[no-untyped-def]
        async def with_settle():  # type: ignore[no-untyped-def]
            try:
                return await coro
            finally:
                await settle()

        return self.loop.run_until_complete(with_settle())

    @rule(task=st.sampled_from(sorted(POLICIES)))
    def trigger(self, task: str) -> None:
        with contextlib.suppress(TriggerRefused, TaskNotFound, ShuttingDown):
            self.run(self.rig.dispatcher.trigger(task))

    @rule(task=st.sampled_from(sorted(POLICIES)))
    def fire(self, task: str) -> None:
        self.fires += 1
        with contextlib.suppress(TaskNotFound):
            self.run(self.rig.dispatcher.fire(task, T0 + timedelta(minutes=self.fires)))

    @precondition(lambda self: bool(self.rig.store.runs))
    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.rig.store.runs)))
        with contextlib.suppress(Conflict):
            self.run(self.rig.dispatcher.stop(run_id))

    @precondition(lambda self: bool(self.rig.launcher.live))
    @rule(data=st.data(), failed=st.booleans())
    def process_ends(self, data: st.DataObject, failed: bool) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.rig.launcher.live)))
        self.rig.launcher.finish(run_id, EndReason.FAILED if failed else EndReason.SUCCESS)
        self.run(settle())

    @rule()
    def retries_come_due(self) -> None:
        async def advance() -> None:  # timers fire inside the loop, as real ones do
            self.rig.clock.advance(timedelta(seconds=5))

        self.run(advance())

    @rule(task=st.sampled_from(sorted(POLICIES)))
    def reload_toggles_a_task(self, task: str) -> None:
        self.present ^= {task}
        changes = self.rig.live.swap(config(tasks_text(self.present)))
        self.run(self.rig.dispatcher.reload(changes))

    @invariant()
    def never_more_live_than_allowed(self) -> None:
        for task, (max_concurrent, queue_max) in LIMITS.items():
            assert len(self.rig.launcher.running(task)) <= max_concurrent
            holding, waiting = self.rig.dispatcher.counts(task)
            assert holding <= max_concurrent
            assert waiting <= max(queue_max, 1 if task == "terminate" else 0)

    @invariant()
    def ended_at_most_once(self) -> None:
        self._check_ended_once(final=False)

    def _check_ended_once(self, final: bool) -> None:
        counts = Counter(self.rig.store.end_records)
        assert all(n == 1 for n in counts.values()), counts
        for run in self.rig.store.runs.values():
            if run.status == Status.ENDED:
                assert counts[run.id] == 1
            elif final:  # only a delayed retry may be left, pending, for a next life
                assert run.status == Status.PENDING and run.not_before is not None, run


Lifecycle.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase
