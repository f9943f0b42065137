"""``PATCH /api/runs/{run_id}``: a running job reports its stage, its progress and a
result (as PostHog's jobs PATCH their run, and Cronicle's report progress), authorised
by its run's own token and by nothing else (cronwarden/run_tokens.py, api/auth.py).

Any node sharing the database can take a report: the token's hash and the run's row
are there.  The write lands only while the run has not ended (the same statement
checks it), so a report and the run's end cannot cross; the end writes its own fields,
never these.  A field sent as null clears it.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from aiohttp import web
from pydantic import ConfigDict, Field, field_validator, model_validator

from cronwarden.api.auth import bearer
from cronwarden.api.handlers import _read_body, _run_id
from cronwarden.api.keys import SERVICES, Services
from cronwarden.api.schemas import Schema, run_json
from cronwarden.errors import Conflict, Forbidden, RunNotFound, Unauthorized
from cronwarden.model import Run, Status
from cronwarden.run_tokens import TOKEN_VARIABLE, run_of_token, token_matches

MAX_STAGE = 200  # characters
MAX_OUTPUT = 64 * 1024  # bytes of the output as compact JSON (UTF-8)
# No control characters (newlines, tabs, NUL), line or paragraph separators, or lone
# surrogates: a stage is one line of text, shown as it is.
_NOT_PRINTABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})


class ReportBody(Schema):
    """What a job reports: any of the three, at least one; null clears a field."""

    model_config = ConfigDict(extra="forbid")

    stage: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STAGE,
        description=f"what the job is doing now: 1 to {MAX_STAGE} characters of printable "
        "text on one line",
    )
    progress: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="how far along it is: a number from 0 to 1",
    )
    output: Any = Field(
        default=None,
        description=f"a result: any JSON value, at most {MAX_OUTPUT // 1024} KiB as compact JSON",
    )

    @field_validator("stage")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(unicodedata.category(c) in _NOT_PRINTABLE for c in value):
            raise ValueError(
                "must be printable text on one line: no control characters (newline, tab, "
                "NUL), line separators or lone surrogates"
            )
        return value

    @field_validator("output")
    @classmethod
    def _capped(cls, value: Any) -> Any:
        output_text(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> ReportBody:
        if not self.model_fields_set:
            raise ValueError("report at least one of stage, progress and output")
        return self

    def values(self) -> dict[str, Any]:
        """The columns to write: the fields sent (the output as its JSON text)."""
        values = {name: getattr(self, name) for name in self.model_fields_set}
        if values.get("output") is not None:
            values["output"] = output_text(values["output"])
        return values


def output_text(value: Any) -> str:
    """An output as the run's row keeps it: compact JSON; ValueError if it is not JSON
    that can be kept (NaN, a lone surrogate) or is over the cap."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("must be Unicode text (it holds a lone surrogate)") from None
    except ValueError:
        raise ValueError("must be JSON without NaN or Infinity") from None
    if size > MAX_OUTPUT:
        raise ValueError(
            f"is {size} bytes as compact JSON; the cap is {MAX_OUTPUT} bytes "
            f"({MAX_OUTPUT // 1024} KiB): report a summary, or keep the rest in a file"
        )
    return text


async def report_run(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    run_id = _run_id(request)
    token = bearer(request)
    if token is None:
        raise Unauthorized(
            f"a run reports with its own token: send Authorization: Bearer ${TOKEN_VARIABLE} "
            "(the run's environment has it; cronwarden report sends it)"
        )
    run = await services.store.get_run(run_id)
    await _check_token(services, run, token)
    if run.status == Status.ENDED:
        raise Conflict(_ended(run))
    body = await _read_body(request, ReportBody)
    if not await services.store.report(run_id, body.values()):
        raise Conflict(_ended(await services.store.get_run(run_id)))
    written = await services.store.get_run(run_id)
    services.dispatcher.reports.reported(written)
    return web.json_response(body=run_json(written))


async def _check_token(services: Services, run: Run, token: str) -> None:
    """Unauthorized unless ``token`` is this run's; Forbidden if it is another run's."""
    if token_matches(token, run.report_token_sha256):
        return
    other = run_of_token(token)
    if other is not None and other != run.id:
        try:
            theirs = await services.store.get_run(other)
        except RunNotFound:
            pass
        else:
            if token_matches(token, theirs.report_token_sha256):
                raise Forbidden(
                    f"this token is run {other}'s; a run's token reports on its own run only"
                )
    raise Unauthorized(
        f"this is not run {run.id}'s token; a run reports with the token in its own "
        f"environment ({TOKEN_VARIABLE})"
    )


def _ended(run: Run) -> str:
    return (
        f"run {run.id} has ended ({run.end_reason}); a run reports only until it ends, "
        "and what it reported stays"
    )
