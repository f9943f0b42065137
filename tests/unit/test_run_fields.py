"""The fast run serialization (run_fields, RunOut.of) says exactly what the validated
RunOut model says, for either shape of a run, and draws no serializer warnings."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime

from cronwarden.api.schemas import RunOut, run_fields
from cronwarden.model import EndReason, Run, Status, Trigger
from cronwarden.run_record import AnyRun, RunRecord

AT = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)


def runs() -> list[AnyRun]:
    """Each run in both shapes: the record of a run in flight, and the store's Run."""
    ended = dict(
        id="0190f3a0-0000-7000-8000-000000000001",
        task_name="backup",
        status=Status.ENDED,
        end_reason=EndReason.FAILED,
        exit_code=3,
        triggered_by=Trigger.SCHEDULE,
        scheduled_for=AT,
        created_at=AT,
        start_at=AT,
        end_at=AT,
        duration_ms=1,
        attempt=2,
        retry_of="0190f3a0-0000-7000-8000-000000000000",
        params={"day": "mon\x00day"},
        node="n1",
        log_size=10,
        log_truncated=True,
        task_hash="abc",
        error="exit status 3\x1b[31m",
    )
    pending = dict(  # as read back from the store: plain text, no enums
        id="0190f3a0-0000-7000-8000-000000000002",
        task_name="adhoc",
        status="pending",
        triggered_by="api",
        created_at=AT,
        node="n1",
        task_hash="abc",
    )
    return [shape(**values) for values in (ended, pending) for shape in (RunRecord, Run)]


def test_run_fields_match_the_validated_model() -> None:
    for run in runs():
        validated = RunOut.model_validate(run_fields(run)).model_dump(mode="json")
        assert json.loads(json.dumps(run_fields(run))) == validated
        assert run_fields(run)["created_at"] == "2026-03-29T00:59:59.999Z"


def test_runout_of_draws_no_serializer_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for run in runs():
            out = RunOut.of(run)
            assert json.loads(out.model_dump_json()) == json.loads(json.dumps(run_fields(run)))
            assert out.model_dump(mode="json")["status"] == str(run.status)
