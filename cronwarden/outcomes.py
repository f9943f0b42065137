"""What a run's end reason says about its task: the one definition of a failure.

Alerts (run.failed, run.timeout, run.crashed and task.recovered), the stats'
``last_failure_at``, the values ``retry_on`` allows, the store's duration sample and the
dashboard's colours (through ``GET /api/info``) all read these sets, so a new end
reason is classed here once.  Kept free of imports, like run_sorts.py: the config is
read without loading the store.

A failure is an outcome that says the task is unwell: it exited badly, ran past its
timeout, crashed (its process or the daemon died under it), or printed past
``max_log_size`` with ``log_on_full = "kill"``.  A stop is an operator's decision, and
skipped and missed runs never ran: none of them says anything about the task's health.
"""

from typing import Literal, get_args

FailureReason = Literal["failed", "timeout", "crashed", "log_overflow"]
FAILURE_END_REASONS: tuple[FailureReason, ...] = get_args(FailureReason)

# Runs whose process ran and came to an outcome (not skipped, missed or expired): the
# ones a success rate and a duration are taken over.
RAN_TO_AN_OUTCOME: tuple[str, ...] = ("success", *FAILURE_END_REASONS, "stopped")
