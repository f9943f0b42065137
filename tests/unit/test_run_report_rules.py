"""The pure parts of what a job reports: its run's token (shape, digest, which run it
names), what a report may say (stage, progress, output and their errors), the run's
environment that carries the token, and what `cronwarden report` makes of its options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cronwarden.api.middlewares import validation_errors
from cronwarden.api.reports import MAX_OUTPUT, ReportBody
from cronwarden.config import Listen, TaskConfig
from cronwarden.job_report import ReportError, report_body
from cronwarden.run_tokens import (
    api_url_for_runs,
    new_token,
    run_of_token,
    token_digest,
    token_matches,
)
from cronwarden.runners.environment import DaemonEnvironment, Reporting, run_environment

RUN = "01a24c36-cf79-74f5-afa2-67a5c43e2cc6"
OTHER = "01a24c36-cf79-74f5-afa2-67a5c43e2cc7"


def test_a_token_names_its_run_and_only_its_digest_matches_it() -> None:
    token = new_token(RUN)
    assert token.startswith(f"cwr_{RUN}_") and len(token) == 4 + 36 + 1 + 43
    assert new_token(RUN) != token  # fresh each time
    assert run_of_token(token) == RUN
    digest = token_digest(token)
    assert len(digest) == 64 and token not in digest
    assert token_matches(token, digest)
    assert not token_matches(token, None)  # a run that keeps no hash takes no token
    assert not token_matches(new_token(RUN), digest)
    assert not token_matches(token + "x", digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "secret",
        f"cwr_{RUN}",  # no secret
        f"cwr_{RUN}_",
        f"cwr_{RUN.upper()}_abc",  # not the canonical spelling of a run id
        f"cwr_{RUN[:-1]}x_abc",
        f"CWR_{RUN}_abc",
        f"cwr_{RUN}-abc",
        "cwr_" + "\ud800" * 36 + "_abc",  # a header's bytes that are not UTF-8
    ],
)
def test_text_not_shaped_as_a_run_token_names_no_run(text: str) -> None:
    assert run_of_token(text) is None
    assert not token_matches(text, token_digest(new_token(RUN)))


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:9477", "http://127.0.0.1:9477"),
        ("0.0.0.0:9477", "http://127.0.0.1:9477"),
        ("[::]:9477", "http://[::1]:9477"),  # an IPv6 wildcard takes IPv6 only
        ("[::1]:8080", "http://[::1]:8080"),
        ("localhost:9000", "http://localhost:9000"),
        ("10.1.2.3:9477", "http://10.1.2.3:9477"),
        ("unix:/run/cronwarden/api.sock", "unix:/run/cronwarden/api.sock"),
    ],
)
def test_runs_reach_the_api_at_the_listen_address_with_loopback_for_a_wildcard(
    listen: str, url: str
) -> None:
    assert api_url_for_runs(Listen.parse(listen)) == url


def problems(body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        ReportBody.model_validate(body)
    return validation_errors(caught.value)


def test_a_report_writes_the_fields_it_sends_and_null_clears_one() -> None:
    body = ReportBody.model_validate({"stage": "loading 3/4 ✓", "progress": 0.5})
    assert body.values() == {"stage": "loading 3/4 ✓", "progress": 0.5}
    assert ReportBody.model_validate({"progress": 1}).values() == {"progress": 1.0}
    output = {"rows": 3, "names": ["ä", "b"], "nested": {"ok": True, "n": None}}
    written = ReportBody.model_validate({"output": output}).values()
    assert written == {"output": json.dumps(output, ensure_ascii=False, separators=(",", ":"))}
    assert ReportBody.model_validate({"output": None, "stage": None}).values() == {
        "output": None,
        "stage": None,
    }
    # Any JSON value is an output, a bare string or number too.
    assert ReportBody.model_validate({"output": "done"}).values() == {"output": '"done"'}


def test_a_report_that_says_nothing_or_too_much_is_refused_saying_why() -> None:
    assert problems({}) == [
        {"field": "body", "message": "report at least one of stage, progress and output"}
    ]
    assert problems({"stage": "x", "step": 3})[0]["field"] == "step"  # unknown keys
    for stage in ("", "x" * 201):
        assert problems({"stage": stage})[0]["field"] == "stage"
    for stage in ("two\nlines", "tab\there", "nul\0", "a\u2028b"):
        [problem] = problems({"stage": stage})
        assert "printable text on one line" in problem["message"], stage
    assert [p["field"] for p in problems({"stage": "lone \ud800"})] == ["stage"]
    assert ReportBody.model_validate({"stage": "x" * 200}).stage == "x" * 200


@pytest.mark.parametrize("progress", [-0.1, 1.0001, True, "0.5", float("nan"), float("inf")])
def test_progress_is_a_number_from_0_to_1(progress: Any) -> None:
    assert [p["field"] for p in problems({"progress": progress})] == ["progress"]


def test_an_output_over_64_kib_is_refused_naming_the_cap() -> None:
    fits = {"blob": "x" * (MAX_OUTPUT - len('{"blob":""}'))}
    assert len(ReportBody.model_validate({"output": fits}).values()["output"]) == MAX_OUTPUT
    [problem] = problems({"output": {"blob": "x" * MAX_OUTPUT}})
    assert problem["field"] == "output"
    assert "the cap is 65536 bytes (64 KiB)" in problem["message"]
    assert "65547 bytes" in problem["message"]  # what it was
    # Counted in UTF-8 bytes, not characters.
    [problem] = problems({"output": "é" * (MAX_OUTPUT // 2)})
    assert "the cap is 65536 bytes" in problem["message"]


@pytest.mark.parametrize(
    ("output", "says"),
    [(float("nan"), "without NaN or Infinity"), ({"k": "\ud800"}, "lone surrogate")],
)
def test_an_output_that_cannot_be_kept_as_json_is_refused(output: Any, says: str) -> None:
    [problem] = problems({"output": output})
    assert problem["field"] == "output" and says in problem["message"]


DAEMON = DaemonEnvironment.of({}, path="/usr/bin:/bin", own_identity={"HOME": "/root"})


def environment(task: TaskConfig, reporting: Reporting | None) -> dict[str, str]:
    return run_environment(
        task,
        daemon=DAEMON,
        run_id=RUN,
        attempt=1,
        scheduled_for=None,
        params={},
        reporting=reporting,
    )


def test_a_run_s_environment_carries_its_token_and_the_daemon_s_address() -> None:
    token = new_token(RUN)
    task = TaskConfig(
        name="job",
        command="true",
        env={"CRONWARDEN_RUN_TOKEN": "forged", "CRONWARDEN_URL": "http://elsewhere:1"},
    )
    env = environment(task, Reporting(token, "http://127.0.0.1:9477"))
    assert env["CRONWARDEN_RUN_TOKEN"] == token
    assert env["CRONWARDEN_URL"] == "http://127.0.0.1:9477"  # this daemon's, over the task's
    # A run without a token has none, not the one a task's env names.
    env = environment(task, Reporting(None, "unix:/run/cronwarden/api.sock"))
    assert "CRONWARDEN_RUN_TOKEN" not in env
    assert env["CRONWARDEN_URL"] == "unix:/run/cronwarden/api.sock"


def test_the_cli_builds_the_report_from_its_options(tmp_path: Path) -> None:
    assert report_body("loading", "0.5", '{"rows": 3}', None) == {
        "stage": "loading",
        "progress": 0.5,
        "output": {"rows": 3},
    }
    assert report_body(None, "1", None, None) == {"progress": 1.0}
    summary = tmp_path / "summary.json"
    summary.write_text('[1, "two"]')
    assert report_body(None, None, None, str(summary)) == {"output": [1, "two"]}


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ((None, None, None, None), "nothing to report: give --stage, --progress or --output"),
        ((None, "abc", None, None), "--progress must be a number from 0 to 1, not 'abc'"),
        ((None, "1.5", None, None), "--progress must be a number from 0 to 1, not '1.5'"),
        ((None, "nan", None, None), "--progress must be a number from 0 to 1, not 'nan'"),
        ((None, None, "{rows: 3}", None), "--output is not JSON: Expecting property name"),
        ((None, None, "NaN", None), "--output is not JSON: NaN is not JSON"),
        ((None, None, "1", "f.json"), "give --output or --output-file, not both"),
        ((None, None, None, "/nonexistent/f.json"), "cannot read --output-file"),
    ],
)
def test_the_cli_refuses_wrong_options_in_one_line(
    options: tuple[str | None, ...], says: str
) -> None:
    with pytest.raises(ReportError) as caught:
        report_body(*options)
    message = str(caught.value)
    assert message.startswith("cronwarden report: ") and says in message
    assert "\n" not in message and caught.value.exit_code == 2
