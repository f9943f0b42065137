"""Hostile inputs against a real daemon and the CLI: a 4xx problem+json or a clear
message for each, never a 5xx or a traceback, and nothing recorded that could later
break a read (issue: hostile inputs and faults)."""

from __future__ import annotations

import base64
import http.client
import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Response, wait_for  # type: ignore[import-not-found]

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


# -- Malformed input on SQLite and PostgreSQL: a 4xx naming the parameter, never a 5xx.
# A 503 means only that the database is really down (last test).

MakeDaemon = Callable[..., Any]
HELLO = """
[tasks.hello]
command = "echo hello"
params = ["who"]
"""


def send(  # type: ignore[no-untyped-def]
    daemon, method: str, path: str, headers: dict[str, bytes] | None = None
):
    """Raw HTTP (header values as bytes, so they may hold any byte); a stream that
    starts is not read, only its status and type."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        answer = conn.getresponse()
        streaming = (answer.getheader("Content-Type") or "").startswith("text/event-stream")
        payload = b"" if streaming else answer.read()
        return Response(answer.status, dict(answer.getheaders()), _parsed(payload))
    finally:
        conn.close()


def _parsed(payload: bytes) -> object:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return payload.decode(errors="replace")


def assert_refused(answer, status: int, names: str) -> None:  # type: ignore[no-untyped-def]
    """A problem+json ``status`` whose detail or errors name ``names`` (the parameter)."""
    assert_problem(answer, status)
    fields = [e.get("field") for e in answer.body["errors"]]
    assert names in answer.body["detail"] or names in fields, answer


def assert_no_internal_error(daemon) -> None:  # type: ignore[no-untyped-def]
    assert "api.internal_error" not in daemon.log()
    assert daemon.get("/api/runs").status == 200


def ended_run(daemon) -> str:  # type: ignore[no-untyped-def]
    return str(daemon.wait_run(daemon.trigger("hello")["id"])["id"])


BAD_EVENT_IDS = [
    "\u00b2".encode(),  # a digit to str.isdigit, not to int()
    "\u0661".encode(),  # ARABIC-INDIC DIGIT ONE: int() reads it, no id is written so
    b"9" * 4300,
    b"9" * 5000,  # beyond int()'s digit limit
    str(2**63).encode(),
    b"-1",
    b"1.5",
    b"0x10",
]


@pytest.mark.both_databases
def test_a_malformed_last_event_id_or_after_is_a_client_error(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon(HELLO)
    run_id = ended_run(daemon)
    for target in ("/api/events", f"/api/runs/{run_id}/log?follow=true"):
        for bad in BAD_EVENT_IDS:
            answer = send(daemon, "GET", target, {"Last-Event-ID": bad})
            assert_refused(answer, 400, "Last-Event-ID")
            assert answer.body["type"].endswith("invalid-last-event-id")
        for after in ("%C2%B2", "%D9%A1", "9" * 5000, str(2**63), "-1", "1.5"):
            sep = "&" if "?" in target else "?"
            assert_refused(send(daemon, "GET", f"{target}{sep}after={after}"), 422, "after")
        fine = send(daemon, "GET", target, {"Last-Event-ID": b" 0 "})
        assert fine.status == 200 and fine.content_type == "text/event-stream", fine
    assert_refused(send(daemon, "GET", f"/api/runs/{run_id}/log?after={2**63}"), 422, "after")
    assert send(daemon, "GET", f"/api/runs/{run_id}/log?after={2**63 - 1}").status == 200
    assert_no_internal_error(daemon)


@pytest.mark.both_databases
def test_text_no_database_can_hold_is_a_client_error(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon(HELLO)
    ended_run(daemon)
    for path, name in [
        ("/api/runs?search=a%00bc", "search"),
        ("/api/runs?search=a%00", "search"),
        ("/api/runs?search=%00", "search"),
        ("/api/tasks/hello/runs?search=abc%00", "search"),
        ("/api/runs?task_name=a%00bc", "task_name"),
        ("/api/runs?task_name=" + "a" * 101, "task_name"),
        ("/api/runs?task_name=a%20b", "task_name"),
        ("/api/events?task=hello,a%00b", "task"),
        ("/api/tasks/hello/stats?since=a%00", "since"),
        ("/api/runs?start_date=2026%00", "start_date"),
    ]:
        assert_refused(send(daemon, "GET", path), 422, name)
    params = b'{"params": {"who": "a\\u0000b"}}'
    answer = daemon.request(
        "POST", "/api/tasks/hello/runs", raw=params, headers={"Content-Type": "application/json"}
    )
    assert_problem(answer, 422)
    # What may be searched for still is: quotes, wildcards, backslashes, other scripts.
    for term in ("%22he%22", "%25_%5C", "hel", "h", "%E2%80%AEllo", "%F0%9F%98%80x"):
        assert daemon.get(f"/api/runs?search={term}").status == 200, term
    assert len(daemon.get("/api/runs?search=HELL").body["runs"]) == 1
    assert daemon.get("/api/runs?task_name=hello").body["runs"]
    assert daemon.get("/api/runs?task_name=").body["runs"]  # empty: any task, as search=
    assert_no_internal_error(daemon)


@pytest.mark.both_databases
def test_a_name_or_id_that_cannot_exist_in_the_path_is_a_client_error(
    make_daemon: MakeDaemon,
) -> None:
    daemon = make_daemon(HELLO)
    for segment in ("a%00bc", "x%3Fy", "%FF", "a%20b", "a" * 101, "%C2%B2"):
        for method, path in [
            ("GET", "/api/tasks/{}"),
            ("GET", "/api/tasks/{}/runs"),
            ("GET", "/api/tasks/{}/stats"),
            ("POST", "/api/tasks/{}/runs"),
            ("POST", "/api/tasks/{}/pause"),
            ("POST", "/api/tasks/{}/resume"),
        ]:
            answer = send(daemon, method, path.format(segment))
            assert_refused(answer, 400, "task")
            assert answer.body["type"].endswith("invalid-task-name"), answer
            assert "A-Z a-z 0-9 . _ -" in answer.body["detail"], answer
    never = daemon.get("/api/tasks/never-was/stats")  # well-formed, unknown: 404
    assert never.status == 404 and "never-was" in never.body["detail"]
    assert daemon.get("/api/tasks/hello/stats").status == 200
    run_id = ended_run(daemon)
    arabic_indic = "%D9%A1" * 32  # digits to int(), which uuid.UUID reads hex with
    for method, path in [
        ("GET", "/api/runs/{}"),
        ("GET", "/api/runs/{}/log"),
        ("GET", "/api/runs/{}/log/raw"),
        ("POST", "/api/runs/{}/stop"),
        ("POST", "/api/runs/{}/rerun"),
    ]:
        assert_refused(send(daemon, method, path.format(arabic_indic)), 400, "run id")
    assert daemon.get(f"/api/runs/{run_id.upper()}").body["id"] == run_id
    assert_no_internal_error(daemon)


@pytest.mark.both_databases
def test_an_idempotency_key_that_is_not_text_is_a_client_error(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon(HELLO)
    for bad in (b"\xff\xfe", b"deploy-\xc3", b"\xed\xa0\x80", b"a\tb", b"a" * 256):
        answer = send(daemon, "POST", "/api/tasks/hello/runs", {"Idempotency-Key": bad})
        assert_refused(answer, 400, "Idempotency-Key")
    assert daemon.get("/api/runs?total=true").body["total"] == 0  # nothing recorded
    key = {"Idempotency-Key": "d\u00e9ploiement-42".encode()}  # UTF-8 text is a key
    first = send(daemon, "POST", "/api/tasks/hello/runs", key)
    again = send(daemon, "POST", "/api/tasks/hello/runs", key)
    assert (first.status, again.status) == (201, 200), (first, again)
    assert first.body["id"] == again.body["id"]
    assert first.body["idempotency_key"] == "d\u00e9ploiement-42"
    assert_no_internal_error(daemon)


def cursor_of(*values: object) -> str:
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


AT = "2026-01-01T00:00:00+00:00"
RUN_ID = "0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a"


@pytest.mark.both_databases
def test_a_forged_cursor_is_a_client_error(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon(HELLO)
    for _ in range(3):
        ended_run(daemon)
    for sort, cursor in [
        ("created_at", cursor_of("created_at", False, AT, "a\u0000b")),
        ("created_at", cursor_of("created_at", False, AT, "a\ud800b")),
        ("created_at", cursor_of("created_at", False, AT, "not-a-run-id")),
        ("exit_code", cursor_of("exit_code", False, 10**30, AT, RUN_ID)),
        ("exit_code", cursor_of("exit_code", False, 2**63, AT, RUN_ID)),
        ("duration_ms", cursor_of("duration_ms", False, -(2**70), AT, RUN_ID)),
        ("task_name", cursor_of("task_name", False, "a\u0000", AT, RUN_ID)),
        ("status", cursor_of("status", False, "a\u0000", AT, RUN_ID)),
        ("status", cursor_of("status", False, "sleeping", AT, RUN_ID)),
    ]:
        answer = send(daemon, "GET", f"/api/runs?sort_field={sort}&cursor={cursor}")
        assert_refused(answer, 400, "cursor")
    for sort in ("created_at", "exit_code", "duration_ms", "task_name", "status"):
        seen, cursor = [], ""
        while True:  # the cursors the daemon hands out still page through every run
            page = daemon.get(f"/api/runs?sort_field={sort}&limit=1{cursor}").body
            seen += [r["id"] for r in page["runs"]]
            if not page["has_next"]:
                break
            cursor = f"&cursor={page['next_cursor']}"
        assert len(set(seen)) == 3, (sort, seen)
    assert_no_internal_error(daemon)


@pytest.mark.both_databases
def test_numbers_out_of_range_are_client_errors(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon(HELLO)
    run_id = ended_run(daemon)
    huge = "9" * 5000
    for method, path, name in [
        ("GET", f"/api/runs?limit={huge}", "limit"),
        ("GET", "/api/runs?limit=0", "limit"),
        ("GET", f"/api/runs?offset={huge}", "offset"),
        ("GET", "/api/runs?offset=-1", "offset"),
        ("GET", f"/api/tasks/hello/runs?limit={2**63}", "limit"),
        ("GET", f"/api/tasks/hello?next={huge}", "next"),
        ("GET", "/api/tasks/hello?next=-1", "next"),
        ("GET", f"/api/runs/{run_id}/log?limit={huge}", "limit"),
        ("GET", f"/api/runs/{run_id}/log?after=-1", "after"),
        ("POST", f"/api/tasks/hello/runs?wait={huge}", "wait"),
        ("POST", "/api/tasks/hello/runs?wait=-1", "wait"),
        ("POST", f"/api/runs/{run_id}/rerun?wait={huge}", "wait"),
        ("GET", f"/api/runs?start_date={huge}%20days%20ago", "start_date"),
        ("GET", f"/api/tasks/hello/stats?since={huge}%20seconds%20ago", "since"),
    ]:
        assert_refused(send(daemon, method, path), 422, name)
    assert_no_internal_error(daemon)


@pytest.mark.postgres
def test_a_real_outage_still_answers_503(make_daemon: MakeDaemon, pg_admin: Any) -> None:
    url = pg_admin.create()
    daemon = make_daemon(HELLO, daemon_extra=f'database = "{url}"')
    ended_run(daemon)
    pg_admin.cut_off(url)
    try:
        for method, path in [
            ("GET", "/api/runs?search=hello"),
            ("GET", "/api/runs?task_name=hello"),
            ("GET", "/api/tasks/hello/stats"),
            ("GET", "/api/tasks/hello/runs"),
        ]:
            answer = send(daemon, method, path)
            assert answer.status == 503, (path, answer)
            assert answer.content_type == "application/problem+json"
            assert answer.body["type"].endswith("database-unavailable")
        keyed = send(daemon, "POST", "/api/tasks/hello/runs", {"Idempotency-Key": b"k-1"})
        assert keyed.status == 503, keyed
    finally:
        pg_admin.restore(url)
    wait_for(lambda: daemon.get("/api/runs?search=hello").status == 200, 30, "the store back")


def test_browser_headers_that_are_not_utf8_are_client_errors(daemon) -> None:
    """A refusal that quotes a header escapes what is not UTF-8 instead of failing."""
    for headers in (
        {"Sec-Fetch-Site": b"\xff", "Content-Type": b"application/json"},
        {"Origin": b"http://\xfe.example", "Content-Type": b"application/json"},
        {"Content-Type": b"text/\xff"},
    ):
        resp = send(daemon, "POST", "/api/tasks/echo/pause", headers)
        assert resp.status in (403, 415), (headers, resp)
        assert resp.headers["Content-Type"].startswith("application/problem+json")
