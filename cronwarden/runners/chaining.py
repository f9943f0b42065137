"""What a run's final end asks to start: the runs of the tasks whose ``after`` names
its task (cronwarden/chains.py says the rules; the store creates them in the
transaction of the end, once per cause)."""

from __future__ import annotations

from cronwarden.chains import ChainAsk, params_for
from cronwarden.live_config import LiveConfig
from cronwarden.model import Trigger
from cronwarden.run_record import RunRecord, run_row
from cronwarden.runners.rows import NewRuns


class Chaining:
    def __init__(self, config: LiveConfig, new_run: NewRuns) -> None:
        self._config = config
        self._new_run = new_run

    def asks(self, run: RunRecord) -> list[ChainAsk]:
        """The chained runs ``run``'s end starts (its end must count for each: one of
        the task's after_on); enabled tasks only."""
        tasks = self._config.tasks
        asks = []
        for name in self._config.current.starts.get(run.task_name, ()):
            task = tasks.get(name)
            if task is None or not task.enabled or run.end_reason not in task.after_on:
                continue
            params = params_for(task.params, run.params) if task.after_params == "inherit" else {}
            chained = self._new_run(task, Trigger.CHAIN, params=params)
            chained.change({"not_before": chained.created_at})  # due at once, after admission
            asks.append(ChainAsk(task.after_mode, task.after, task.after_on, run_row(chained)))
        return asks
