"""What a run's final end asks to start: the runs of the tasks whose ``after`` names
its task (cronwarden/chains.py says the rules; the store creates them in the
transaction of the end, once per cause)."""

from __future__ import annotations

from cronwarden.chains import ChainAsk, followers, params_for
from cronwarden.config import Config
from cronwarden.live_config import LiveConfig
from cronwarden.model import Trigger
from cronwarden.run_record import RunRecord, run_row
from cronwarden.runners.rows import NewRuns


class Chaining:
    def __init__(self, config: LiveConfig, new_run: NewRuns) -> None:
        self._config = config
        self._new_run = new_run
        self._followers: dict[str, list[str]] = {}
        self._of: Config | None = None  # the config the followers were read from

    def asks(self, run: RunRecord) -> list[ChainAsk]:
        """The chained runs ``run``'s end starts (its end must count for each: one of
        the task's after_on); enabled tasks only."""
        tasks = self._config.tasks
        asks = []
        for name in self._followers_of(run.task_name):
            task = tasks.get(name)
            if task is None or not task.enabled or run.end_reason not in task.after_on:
                continue
            params = params_for(task.params, run.params) if task.after_params == "inherit" else {}
            chained = self._new_run(task, Trigger.CHAIN, params=params)
            chained.change({"not_before": chained.created_at})  # due at once, after admission
            asks.append(ChainAsk(task.after_mode, task.after, task.after_on, run_row(chained)))
        return asks

    def _followers_of(self, task_name: str) -> list[str]:
        current = self._config.current
        if current is not self._of:  # read once per config (10,000 tasks: a reload's cost)
            self._followers = followers(current.tasks[name] for name in current.tasks)
            self._of = current
        return self._followers.get(task_name, [])
