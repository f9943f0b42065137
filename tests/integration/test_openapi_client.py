"""A client generated from /openapi.json by an outside generator (openapi-python-client)
can send every documented value: a relative start_date, an Idempotency-Key; and what
the document declares of dates is what the server accepts."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

DATE_PARAMETERS = {"start_date", "end_date", "since"}


def _generate(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(daemon.get("/openapi.json").body))
    generator = Path(sys.executable).with_name("openapi-python-client")
    bin_dir = str(Path(sys.executable).parent)  # its ruff, for the generator's post hooks
    output = ["--output-path", str(tmp_path / "cronwarden_client")]
    done = subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--meta", "none", *output],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))


def test_a_generated_client_lists_by_relative_date_and_triggers_with_a_key(
    make_daemon, tmp_path
) -> None:
    daemon = make_daemon('[tasks.job]\ncommand = "echo hi"\nparams = ["who"]\n')
    _generate(daemon, tmp_path)
    try:
        client_module = importlib.import_module("cronwarden_client")
        trigger_run = importlib.import_module("cronwarden_client.api.default.trigger_run")
        list_runs = importlib.import_module("cronwarden_client.api.default.list_runs")
        models = importlib.import_module("cronwarden_client.models")
        client = client_module.Client(base_url=daemon.url, raise_on_unexpected_status=True)
        params = models.TriggerBodyParams.from_dict({"who": "world"})
        body = models.TriggerBody(params=params)
        first = trigger_run.sync_detailed("job", client=client, body=body, idempotency_key="k-1")
        again = trigger_run.sync_detailed("job", client=client, body=body, idempotency_key="k-1")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.parsed.id == again.parsed.id
        assert first.parsed.created_at.year >= 2026  # a date-time, parsed as one
        daemon.wait_run(first.parsed.id)
        page = list_runs.sync(client=client, start_date="7 days ago", end_date="today")
        assert [run.id for run in page.runs] == [first.parsed.id]
        assert list_runs.sync(client=client, start_date="2000-01-01").runs
    finally:
        for name in [m for m in sys.modules if m.startswith("cronwarden_client")]:
            del sys.modules[name]
        sys.path.remove(str(tmp_path))


def test_declared_date_parameters_are_the_strings_the_server_reads(make_daemon) -> None:
    daemon = make_daemon('[tasks.job]\ncommand = "true"\n')
    spec = daemon.get("/openapi.json").body
    seen = set()
    for path, item in spec["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] not in DATE_PARAMETERS:
                    continue
                seen.add(parameter["name"])
                schema = parameter["schema"]
                assert schema["type"] == "string" and "format" not in schema, (path, schema)
                for example in schema["examples"]:
                    query = f"{parameter['name']}={example.replace(' ', '%20')}"
                    target = path.replace("{task}", "job")
                    answer = daemon.get(f"{target}?{query}")
                    assert answer.status == 200, (target, query, answer)
    assert seen == DATE_PARAMETERS
    run = spec["components"]["schemas"]["RunOut"]["properties"]
    assert (run["created_at"]["type"], run["created_at"]["format"]) == ("string", "date-time")
    trigger = spec["paths"]["/api/tasks/{task}/runs"]["post"]["parameters"]
    assert "Idempotency-Key" in [p["name"] for p in trigger if p["in"] == "header"]
    follow = spec["paths"]["/api/runs/{run_id}/log"]["get"]
    assert "Last-Event-ID" in [p["name"] for p in follow["parameters"] if p["in"] == "header"]
    assert "409" in follow["responses"]
