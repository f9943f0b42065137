"""The OpenAPI document against the real daemon: it describes every route, the CLI
prints the same, and schemathesis finds no server error and no answer that departs
from it (issue: the API, complete)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TASKS = """
[tasks.hello]
command = "echo hello"
params = ["who"]

[tasks.nightly]
command = "true"
schedule = "0 3 * * *"
overlap = "skip"
"""
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def test_the_document_covers_every_route_and_the_cli_prints_it(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    served = daemon.get("/openapi.json")
    assert served.status == 200 and served.body["openapi"] == "3.1.0"
    operations = {
        (method.upper(), path) for path, item in served.body["paths"].items() for method in item
    }
    assert ("GET", "/api/events") in operations and (
        "POST",
        "/api/runs/{run_id}/rerun",
    ) in operations
    assert len(operations) == 23  # with /metrics, /api/nodes, /api/locks, a run's report, artifacts
    assert ("PATCH", "/api/runs/{run_id}") in operations
    for item in served.body["paths"].values():
        for operation in item.values():
            assert {"200", "201", "202"} & set(operation["responses"]), operation["operationId"]
            assert "422" in operation["responses"] and "503" in operation["responses"]
    task = served.body["paths"]["/api/tasks/{task}"]["get"]["parameters"][0]
    assert set(task["examples"]) == {"hello", "nightly"}
    printed = subprocess.run(
        [sys.executable, "-m", "cronwarden", "openapi", "-c", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0 and json.loads(printed.stdout) == served.body


def test_schemathesis_finds_no_failure(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon(TASKS)
    for who in ("ann", "bob"):
        daemon.wait_run(daemon.trigger("hello", {"who": who})["id"])
    # Every operation with positive and negative data, except the event stream, whose
    # valid requests never end by design (test_events_api.py follows it); its invalid
    # requests are fuzzed on their own, and must be refused at once.
    everything_else = schemathesis(
        daemon, tmp_path, "--mode", "all", "--exclude-path", "/api/events"
    )
    assert everything_else.returncode == 0, everything_else.stdout[-6000:]
    refused = schemathesis(
        daemon,
        tmp_path,
        "--mode",
        "negative",
        "--include-path",
        "/api/events",
        "--phases",
        "coverage,fuzzing",
    )
    assert refused.returncode == 0, refused.stdout[-6000:]


def schemathesis(daemon, workdir: Path, *selection: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary is not None, "schemathesis is installed with the test extras"
    return subprocess.run(
        [
            binary,
            "run",
            f"{daemon.url}/openapi.json",
            "--checks",
            CHECKS,
            *selection,
            "--max-examples",
            "25",
            "--request-timeout",
            "30",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=480,
        cwd=workdir,
    )
