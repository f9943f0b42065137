"""Hostile inputs against a real daemon and the CLI: a 4xx problem+json or a clear
message for each, never a 5xx or a traceback, and nothing recorded that could later
break a read (issue: hostile inputs and faults)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

TASKS = """
[tasks.hello]
command = "echo hello"
params = ["who"]
schedule = "0 9 * * *"
timezone = "UTC"
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    from conftest import Daemon  # type: ignore[import-not-found]

    d = Daemon(tmp_path_factory.mktemp("hostile"), TASKS).start()
    yield d
    assert d.stop() == 0, d.log()


def assert_problem(response, status: int | None = None) -> None:  # type: ignore[no-untyped-def]
    assert 400 <= response.status < 500, response
    assert response.content_type == "application/problem+json", response
    if status is not None:
        assert response.status == status, response
    assert "Traceback" not in str(response.body)


def test_a_lone_surrogate_in_params_is_refused_before_anything_is_recorded(daemon) -> None:
    before = daemon.get("/api/runs?task_name=hello&total=true").body["total"]
    raw = b'{"params": {"who": "a\\ud800b"}}'
    answer = daemon.request(
        "POST", "/api/tasks/hello/runs", raw=raw, headers={"Content-Type": "application/json"}
    )
    assert_problem(answer, 422)
    assert "Unicode" in str(answer.body)
    assert daemon.get("/api/runs?task_name=hello&total=true").body["total"] == before
    assert daemon.get("/api/runs").status == 200
    assert daemon.get("/api/tasks").status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs?offset=9223372036854775808",
        "/api/runs?limit=99999999999999999999999",
        "/api/runs?start_date=99999999999%20days%20ago",
        "/api/runs?start_date=0001-01-01T00:00:00%2B14:00",
        "/api/runs?end_date=9999-12-31T23:59:59-14:00",
        "/api/tasks/hello?next=%C2%B2",
        "/api/tasks/hello?next=%D9%A1",
        "/api/tasks/hello?next=-1",
        # a cursor holding a date that cannot be moved to UTC
        "/api/runs?cursor=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwiYSJd",
    ],
)
def test_out_of_range_queries_are_client_errors(daemon, path: str) -> None:
    assert_problem(daemon.get(path))


def test_a_deeply_nested_body_is_a_client_error(daemon) -> None:
    raw = b'{"params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = daemon.request(
        "POST", "/api/tasks/hello/runs", raw=raw, headers={"Content-Type": "application/json"}
    )
    assert_problem(answer, 400)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_task_names_are_sent_as_names_not_paths(daemon) -> None:
    reloads_before = daemon.log().count("config.reloaded")
    result = cli("run", "../../api/reload?", "--url", daemon.url)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no task" in result.stderr.lower()
    weird = cli("run", "x?y", "--url", daemon.url)
    assert weird.returncode != 0 and "no task" in weird.stderr.lower(), weird.stderr
    assert daemon.log().count("config.reloaded") == reloads_before


def test_explain_near_the_end_of_the_calendar_says_so(daemon) -> None:
    result = cli("explain", "-c", str(daemon.config), "hello", "--after", "9999-12-31T23:00:00Z")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr


def test_env_values_are_never_echoed_in_errors(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[tasks.a]\ncommand = "true"\nenv = { API_TOKEN = 987654321012 }\n')
    result = cli("validate", "-c", str(config))
    assert result.returncode == 2
    assert "env.API_TOKEN" in result.stderr and "987654321012" not in result.stderr


def test_data_dir_and_its_files_are_private(daemon) -> None:
    daemon.wait_run(daemon.trigger("hello")["id"])
    assert stat.S_IMODE(daemon.data_dir.stat().st_mode) == 0o700
    files = [p for p in daemon.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "cronwarden.db" for p in files) and any(p.suffix == ".out" for p in files)
    loose = {
        str(p): oct(stat.S_IMODE(p.stat().st_mode))
        for p in files
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert loose == {}
    dirs = [p for p in daemon.data_dir.rglob("*") if p.is_dir()]
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in dirs)


def test_runs_keep_the_usual_umask_for_their_own_files(daemon, tmp_path: Path) -> None:
    """The daemon's private umask is not imposed on the files tasks create."""
    import os

    target = tmp_path / "made-by-task"
    daemon.config.write_text(
        daemon.config.read_text() + f'\n[tasks.touch]\ncommand = "touch {target}"\n'
    )
    assert daemon.post("/api/reload").status == 200
    daemon.wait_run(daemon.trigger("touch")["id"])
    original = os.umask(0)
    os.umask(original)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~original


def test_an_overlong_url_or_header_is_problem_json(daemon) -> None:
    url = daemon.get("/api/runs?search=" + "x" * 10_000)
    assert_problem(url, 414)
    header = daemon.request("GET", "/api/runs", headers={"X-Big": "y" * 10_000})
    assert_problem(header, 431)
    assert daemon.get("/api/runs?limit=5").status == 200  # the daemon is unharmed
