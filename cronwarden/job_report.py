"""``cronwarden report``: what a job sends to report on its own run, from the options
given and the run's environment (CRONWARDEN_RUN_ID, CRONWARDEN_RUN_TOKEN and
CRONWARDEN_URL; cronwarden/run_tokens.py), and its sending as PATCH /api/runs/{id}.

Made to be called from a job's script, often: silent when the report lands, one line
on stderr and a non-zero exit when it does not (2: the options, or not inside a run;
1: the daemon refused it or could not be reached).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from cronwarden.host.control_env import RUN_ID_VARIABLE
from cronwarden.run_tokens import TOKEN_VARIABLE


class ReportError(Exception):
    """Why the report was not made, as the line to print; ``exit_code`` says whose doing
    it was."""

    def __init__(self, why: str, exit_code: int, *, line: str | None = None) -> None:
        super().__init__(line or f"cronwarden report: {why}")
        self.exit_code = exit_code


def report_body(
    stage: str | None, progress: str | None, output: str | None, output_file: str | None
) -> dict[str, Any]:
    """The body of the report from the command's options; ReportError (exit 2) if an
    option is wrong or none is given."""
    body: dict[str, Any] = {}
    if stage is not None:
        body["stage"] = stage
    if progress is not None:
        body["progress"] = _progress(progress)
    if output is not None and output_file is not None:
        raise ReportError("give --output or --output-file, not both", 2)
    if output is not None:
        body["output"] = _json(output, "--output")
    elif output_file is not None:
        body["output"] = _json(_read(output_file), f"--output-file {output_file}")
    if not body:
        raise ReportError("nothing to report: give --stage, --progress or --output", 2)
    return body


def send_report(environ: Mapping[str, str], body: dict[str, Any]) -> None:
    """PATCH the run named by the environment with ``body``, with its token."""
    from urllib.parse import quote

    from cronwarden.client import Client, ClientError, resolve_url

    token = environ.get(TOKEN_VARIABLE)
    run_id = environ.get(RUN_ID_VARIABLE)
    for name, value in ((TOKEN_VARIABLE, token), (RUN_ID_VARIABLE, run_id)):
        if not value:
            line = f"cronwarden report works inside a run: {name} is not set"
            raise ReportError(line, 2, line=line)
    assert token is not None and run_id is not None
    client = Client(resolve_url(environ.get("CRONWARDEN_URL"), None), token=token)
    try:
        client.call("PATCH", "/api/runs/" + quote(run_id, safe=""), body)
    except ClientError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ReportError("; ".join(lines), 1) from None


def _progress(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise ReportError(f"--progress must be a number from 0 to 1, not {text!r}", 2)
    return value


def _json(text: str, what: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        raise ReportError(f"{what} is not JSON: {exc}", 2) from None
    except RecursionError:
        raise ReportError(f"{what} is nested too deeply", 2) from None


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ReportError(f"cannot read --output-file {path}: {exc.strerror or exc}", 2) from None
    except UnicodeDecodeError:
        raise ReportError(f"--output-file {path} is not UTF-8 text", 2) from None
