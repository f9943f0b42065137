"""The one definition of a failing end reason (cronwarden/outcomes.py), and what
follows it."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from cronwarden.alerts.rules import _EVENT_OF_END, FAILING
from cronwarden.config import TaskSettings
from cronwarden.model import EndReason
from cronwarden.outcomes import FAILURE_END_REASONS, RAN_TO_AN_OUTCOME


def test_the_failures_are_end_reasons() -> None:
    assert set(FAILURE_END_REASONS) <= set(EndReason)
    assert set(FAILURE_END_REASONS) == {"failed", "timeout", "crashed", "log_overflow"}


def test_runs_that_never_ran_and_stops_are_no_failures() -> None:
    assert not {"success", "stopped", "skipped", "missed"} & set(FAILURE_END_REASONS)


def test_runs_that_ran_to_an_outcome_are_the_successes_failures_and_stops() -> None:
    assert set(RAN_TO_AN_OUTCOME) == {"success", "stopped", *FAILURE_END_REASONS}
    assert set(RAN_TO_AN_OUTCOME) <= set(EndReason)


def test_every_failure_raises_an_alert_event_and_counts_for_a_recovery() -> None:
    # and an expired run (not a failure: it never ran) raises run.expired
    assert set(_EVENT_OF_END) == {*FAILURE_END_REASONS, "expired"}
    assert _EVENT_OF_END["expired"] == "run.expired"
    assert frozenset(FAILURE_END_REASONS) == FAILING


def test_retry_on_allows_the_failures_and_names_them_when_refusing() -> None:
    field = TaskSettings.model_fields["retry_on"]
    assert set(get_args(get_args(field.annotation)[0])) == set(FAILURE_END_REASONS)
    with pytest.raises(ValidationError) as refused:
        TaskSettings.model_validate({"retry_on": ["stopped"]})
    message = str(refused.value)
    assert all(repr(reason) in message for reason in FAILURE_END_REASONS)
