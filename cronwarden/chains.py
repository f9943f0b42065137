"""Chains: a task's ``after`` names tasks whose runs' ends start one of its runs.

Pure rules over a config's tasks, for the config check and the run core:

* ``after_on`` (end reasons, ["success"]) says which ends count; ``after_mode`` "any"
  starts one run per counting end of any listed task, "all" one run once every listed
  task has a counting end that is not yet the cause of one of its runs (the latest end
  of each; an end is a cause once, and no clocks are compared).
* Only a run's final outcome counts: a run that will be retried starts nothing; its
  last attempt does.
* A chained run is created in the same transaction that records its cause's end
  (store/recorder.py), unique per cause, so a crash cannot lose it and two nodes cannot
  make it twice; it then goes through admission like any start.
* Cycles (a task that would, through its chain, start itself) and unknown names are
  config errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class Chained(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def after(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class ChainAsk:
    """What the end of a run asks the store to start, in the transaction of that end:
    a run of ``row['task_name']`` caused by it (``any``), or by the latest counting end
    of each of ``after`` once none of those is a cause already (``all``)."""

    mode: str
    after: tuple[str, ...]
    after_on: tuple[str, ...]
    row: Mapping[str, Any]  # the chained run's row, caused_by filled in by the store


def followers(tasks: Iterable[Chained]) -> dict[str, list[str]]:
    """Task name -> the tasks that name it in ``after`` (what its runs' ends start)."""
    found: dict[str, list[str]] = {}
    for task in tasks:
        for cause in task.after:
            found.setdefault(cause, []).append(task.name)
    return found


def find_cycle(tasks: Mapping[str, Chained]) -> list[str] | None:
    """A chain that comes back to where it began (``[a, b, a]``: a's end starts b,
    whose end starts a), or None.  Walked without recursion: a chain may be long."""
    done: set[str] = set()
    for start in sorted(tasks):
        if start in done:
            continue
        path, on_path = [start], {start}
        causes = [iter(tasks[start].after)]
        while causes:
            cause = next(causes[-1], None)
            if cause is None:
                causes.pop()
                on_path.discard(path[-1])
                done.add(path.pop())
            elif cause in on_path:
                return list(reversed([*path[path.index(cause) :], cause]))
            elif cause in tasks and cause not in done:
                path.append(cause)
                on_path.add(cause)
                causes.append(iter(tasks[cause].after))
    return None


def params_for(declared: Iterable[str], cause_params: Mapping[str, str]) -> dict[str, str]:
    """``after_params = "inherit"``: the cause's params this task declares (a param it
    does not declare could not reach its run anyway)."""
    names = set(declared)
    return {name: value for name, value in cause_params.items() if name in names}
