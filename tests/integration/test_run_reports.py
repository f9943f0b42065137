"""What a job reports on its run, on a real daemon (SQLite, then PostgreSQL): its stage,
progress and output through `cronwarden report` inside the job and over HTTP with the
run's token; the token good for its own run until it ends and for nothing else, never
shown in a log, an answer or the daemon's log; a run.reported event; a chained run
(whose row the store made) reporting too; a report through another node sharing the
database (issue 31)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import (  # type: ignore[import-not-found]
    DATABASES,
    database_option,
    wait_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronwarden.client import EventStreamParser

PY = sys.executable
# The job's environment is cron's: the daemon's PYTHONPATH (a checkout under test) is
# passed on explicitly; when unset (an installed package) nothing is.
REPORT = f"{PY} -m cronwarden report"


def keeping_token(directory: Path, then: str) -> str:
    """A task whose job writes its run's token where the test reads it (the job's log
    would show it masked), prints it, then does ``then``."""
    return f"""
    inherit_env = ["PYTHONPATH"]
    command = '''printf %s "$CRONWARDEN_RUN_TOKEN" > {directory}/token-$CRONWARDEN_RUN_ID; \\
    echo "token: $CRONWARDEN_RUN_TOKEN at $CRONWARDEN_URL"; {then}'''
    """


def token_of(directory: Path, run_id: str) -> str:
    path = directory / f"token-{run_id}"
    return str(wait_for(lambda: path.exists() and path.read_text(), what=f"{run_id}'s token"))


def patch(daemon, run_id: str, body: Any, token: str | None) -> Any:  # type: ignore[no-untyped-def]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return daemon.request("PATCH", f"/api/runs/{run_id}", body, headers=headers)


class Events:
    """A follower of /api/events, subscribed once made."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/api/events")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.parser = EventStreamParser()
        self.ready: list[tuple[str, Any]] = []

    def until(self, kind: str, run_id: str) -> dict[str, Any]:
        """The next ``kind`` event of the run."""
        while True:
            while not self.ready:
                chunk = self.resp.read1(65536)
                assert chunk, "the stream ended"
                self.ready += [(e.kind, json.loads(e.data)) for e in self.parser.feed(chunk)]
            seen, data = self.ready.pop(0)
            if seen == kind and data["id"] == run_id:
                return dict(data)


def cli_report(
    run_id: str, token: str, url: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """`cronwarden report` as a job runs it, with its run's environment."""
    env = {**os.environ, "CRONWARDEN_RUN_ID": run_id, "CRONWARDEN_RUN_TOKEN": token}
    env["CRONWARDEN_URL"] = url
    return subprocess.run(
        [PY, "-m", "cronwarden", "report", *options],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.both_databases
def test_a_job_reports_stage_progress_and_output_with_cronwarden_report(
    make_daemon, gate, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    then = f"""{REPORT} --stage loading --progress 0.5 --output '{{"rows": 3}}' && \\
    {gate.wait_command} && {REPORT} --stage done --progress 1"""
    daemon = make_daemon(f"[tasks.load]{keeping_token(tmp_path, then)}")
    events = Events(daemon.port)
    run = daemon.trigger("load")
    token = token_of(tmp_path, run["id"])
    reported = events.until("run.reported", run["id"])
    assert (reported["stage"], reported["progress"], reported["output"]) == (
        "loading",
        0.5,
        {"rows": 3},
    )
    shown = daemon.get(f"/api/runs/{run['id']}").body
    assert shown["status"] == "running"
    assert (shown["stage"], shown["progress"], shown["output"]) == ("loading", 0.5, {"rows": 3})
    listed = daemon.get("/api/runs?task_name=load").body["runs"][0]
    assert listed["output"] == {"rows": 3} and listed["stage"] == "loading"
    gate.open()
    ended = daemon.wait_run(run["id"])
    assert ended["end_reason"] == "success", ended
    # The last report (stage and progress) kept the output; the end kept them all.
    assert (ended["stage"], ended["progress"], ended["output"]) == ("done", 1.0, {"rows": 3})
    assert events.until("run.ended", run["id"])["stage"] == "done"
    # The token: masked in the run's log, never in an answer or the daemon's log.
    raw = daemon.get(f"/api/runs/{run['id']}/log/raw").body
    assert f"token: *** at http://127.0.0.1:{daemon.port}" in raw
    for text in (raw, json.dumps(daemon.get("/api/runs").body), json.dumps(ended), daemon.log()):
        assert token not in text
        assert hashlib.sha256(token.encode()).hexdigest() not in text


@pytest.mark.both_databases
def test_the_run_token_reports_on_its_own_run_until_it_ends_and_does_nothing_else(
    make_daemon, gate, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(f"[tasks.wait]{keeping_token(tmp_path, gate.wait_command)}")
    mine, theirs = daemon.trigger("wait"), daemon.trigger("wait")
    token, their_token = token_of(tmp_path, mine["id"]), token_of(tmp_path, theirs["id"])
    run_id = mine["id"]

    said = {"stage": "step 2/3", "progress": 0.25, "output": {"ok": [1, 2]}}
    for wrong in (None, "nonsense", f"cwr_{run_id}_guessed", their_token[:-1]):
        refused = patch(daemon, run_id, said, wrong)
        assert refused.status == 401, refused
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    refused = patch(daemon, run_id, said, their_token)
    assert refused.status == 403 and theirs["id"] in refused.body["detail"], refused
    answer = patch(daemon, run_id, said, token)
    assert answer.status == 200, answer
    assert {k: answer.body[k] for k in said} == said
    assert daemon.get(f"/api/runs/{theirs['id']}").body["stage"] is None  # theirs untouched

    # Nothing else takes it: reading runs (its own too), listing, triggering.
    bearer = {"Authorization": f"Bearer {token}"}
    for method, path in (
        ("GET", f"/api/runs/{theirs['id']}"),
        ("GET", f"/api/runs/{run_id}"),
        ("GET", "/api/runs"),
        ("POST", "/api/tasks/wait/runs"),
        ("POST", f"/api/runs/{theirs['id']}/stop"),
        ("POST", "/api/reload"),
    ):
        refused = daemon.request(method, path, {} if method == "POST" else None, headers=bearer)
        assert refused.status == 403, (method, path, refused)
        assert "good for one thing only" in refused.body["detail"]
    assert len(daemon.runs(task_name="wait")) == 2  # no trigger went through

    # What a report may say: the errors say what is allowed.
    big = {"output": {"blob": "x" * 70_000}}
    for body, field in (({}, "body"), ({"progress": 1.5}, "progress"), (big, "output")):
        refused = patch(daemon, run_id, body, token)
        assert refused.status == 422 and refused.body["errors"][0]["field"] == field, refused
    assert (
        "the cap is 65536 bytes (64 KiB)"
        in patch(daemon, run_id, big, token).body["errors"][0]["message"]
    )
    cleared = patch(daemon, run_id, {"output": None}, token).body
    assert (cleared["stage"], cleared["output"]) == ("step 2/3", None)

    gate.open()
    ended = daemon.wait_run(run_id)
    daemon.wait_run(theirs["id"])
    late = patch(daemon, run_id, {"stage": "late"}, token)
    assert late.status == 409 and "has ended (success)" in late.body["detail"], late
    assert daemon.get(f"/api/runs/{run_id}").body["stage"] == ended["stage"] == "step 2/3"
    # The same through the CLI: one line, exit 1, no token in it.
    done = cli_report(run_id, token, daemon.url, "--stage", "late")
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "409" in done.stderr and "has ended" in done.stderr
    assert token not in done.stderr + done.stdout and "Traceback" not in done.stderr
    for text in (daemon.log(), json.dumps(daemon.get("/api/runs").body)):
        assert token not in text and their_token not in text


@pytest.mark.both_databases
def test_a_daemon_with_tokens_takes_only_the_run_s_token_for_its_report(
    make_daemon, gate, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Daemon tokens neither stand in for a run's token nor let it through elsewhere."""
    admin = "admin-secret-token"
    digest = hashlib.sha256(admin.encode()).hexdigest()
    tokens = f'[[daemon.tokens]]\nname = "ops"\nsha256 = "{digest}"\nscopes = ["admin"]\n'
    then = f"{REPORT} --stage started --progress 0.1 && {gate.wait_command}"
    daemon = make_daemon(f"[tasks.job]{keeping_token(tmp_path, then)}", daemon_extra=tokens)
    ops = {"Authorization": f"Bearer {admin}"}
    run = daemon.request("POST", "/api/tasks/job/runs", {}, headers=ops).body
    token = token_of(tmp_path, run["id"])

    def shown() -> dict[str, Any]:
        return dict(daemon.request("GET", f"/api/runs/{run['id']}", headers=ops).body)

    wait_for(lambda: shown()["stage"] == "started", what="the job's report")
    assert shown()["progress"] == 0.1
    assert patch(daemon, run["id"], {"stage": "forged"}, admin).status == 401
    as_run = {"Authorization": f"Bearer {token}"}
    refused = daemon.request("GET", f"/api/runs/{run['id']}", headers=as_run)
    assert refused.status == 403
    assert patch(daemon, run["id"], {"progress": 0.9}, token).status == 200
    gate.open()
    wait_for(lambda: shown()["status"] == "ended", what="the run's end")
    assert (shown()["stage"], shown()["progress"]) == ("started", 0.9)


@pytest.mark.both_databases
def test_a_run_adopted_after_a_daemon_crash_still_reports_and_its_token_stays_masked(
    make_daemon, gate, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Only the token's hash outlives the daemon: the run's process still has the token
    (read back from its environment, to mask it in the rest of its log)."""
    then = f"""echo before; {gate.wait_command}; echo "after: $CRONWARDEN_RUN_TOKEN"; \\
    {REPORT} --stage adopted --progress 1"""
    daemon = make_daemon(f"[tasks.long]{keeping_token(tmp_path, then)}")
    run = daemon.trigger("long")
    token = token_of(tmp_path, run["id"])
    wait_for(
        lambda: "before" in daemon.get(f"/api/runs/{run['id']}/log/raw").body,
        what="the job's first line",
    )
    daemon.kill9()
    daemon.start()
    assert patch(daemon, run["id"], {"stage": "while adopted"}, token).status == 200
    gate.open()
    ended = daemon.wait_run(run["id"])
    assert (ended["stage"], ended["progress"]) == ("adopted", 1.0), ended
    raw = daemon.get(f"/api/runs/{run['id']}/log/raw").body
    assert "after: ***" in raw and token not in raw, raw


@pytest.mark.both_databases
def test_a_chained_run_gets_its_token_when_it_starts(make_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A chained run's row is made by the store with its cause's end: its token is made
    (its hash written) when it starts."""
    daemon = make_daemon(
        f"""
    [tasks.first]
    command = "true"

    [tasks.second]
    after = ["first"]
    inherit_env = ["PYTHONPATH"]
    command = "{REPORT} --stage chained --output '[1, 2]'"
    """
    )
    first = daemon.wait_run(daemon.trigger("first")["id"])
    assert first["end_reason"] == "success"
    second = wait_for(lambda: daemon.runs(task_name="second"), what="the chained run")[0]
    ended = daemon.wait_run(second["id"])
    assert ended["end_reason"] == "success", daemon.get(f"/api/runs/{second['id']}/log/raw").body
    assert (ended["stage"], ended["output"]) == ("chained", [1, 2])


@pytest.fixture(params=DATABASES)
def database_line(request: pytest.FixtureRequest) -> str:
    return database_option(request)


def test_a_job_reports_over_the_unix_socket(database_line: str, tmp_path: Path) -> None:
    """On a unix socket the run's CRONWARDEN_URL is unix:/path, the socket trusted for
    everything else, and a report still needs the run's token."""
    sock = tmp_path / "run" / "api.sock"
    config = tmp_path / "c.toml"
    command = f'{REPORT} --stage via-socket --output 7 && echo "$CRONWARDEN_URL"'
    config.write_text(
        f'[daemon]\nlisten = "unix:{sock}"\ndata_dir = "{tmp_path / "data"}"\n{database_line}\n'
        f"[tasks.job]\ninherit_env = [\"PYTHONPATH\"]\ncommand = '''{command}'''\n"
    )
    daemon = subprocess.Popen(
        [PY, "-m", "cronwarden", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cli = [PY, "-m", "cronwarden"]
    try:
        wait_for(lambda: sock.exists() or daemon.poll() is not None, what="the socket")
        run = subprocess.run(
            [*cli, "run", "job", "--wait", "--json", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        ended = json.loads(run.stdout)
        assert (ended["stage"], ended["output"]) == ("via-socket", 7)
        logs = subprocess.run(
            [*cli, "logs", ended["id"], "--url", f"unix:{sock}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert logs.stdout == f"unix:{sock}\n"
        forged = subprocess.run(
            [*cli, "report", "--stage", "forged"],
            capture_output=True,
            text=True,
            timeout=30,
            env={
                **os.environ,
                "CRONWARDEN_RUN_ID": ended["id"],
                "CRONWARDEN_RUN_TOKEN": "x",
                "CRONWARDEN_URL": f"unix:{sock}",
            },
        )
        assert forged.returncode == 1 and "401" in forged.stderr, forged.stderr
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0


def test_cronwarden_report_outside_a_run_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONWARDEN_")}
    outside = subprocess.run(
        [PY, "-m", "cronwarden", "report", "--progress", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert outside.returncode == 2
    assert outside.stderr == (
        "cronwarden report works inside a run: CRONWARDEN_RUN_TOKEN is not set\n"
    )
    run_id = "01a24c36-cf79-74f5-afa2-67a5c43e2cc6"
    wrong = cli_report(run_id, "cwr_x", "http://127.0.0.1:9", "--progress", "half")
    assert wrong.returncode == 2 and wrong.stderr == (
        "cronwarden report: --progress must be a number from 0 to 1, not 'half'\n"
    )
    unreachable = cli_report(run_id, "cwr_x", "http://127.0.0.1:9", "--stage", "x")
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") == 1
    assert "cannot reach the cronwarden API at http://127.0.0.1:9" in unreachable.stderr


@pytest.mark.postgres
def test_a_report_through_another_node_sharing_the_database(
    make_daemon, pg_admin, gate, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The run's row and its token's hash are in the shared database: a node that does
    not carry the run takes its report; the carrying node's end keeps it."""
    url = pg_admin.create()
    tasks = f"[tasks.job]{keeping_token(tmp_path, gate.wait_command)}"
    carrier, other = (make_daemon(tasks, daemon_extra=f'database = "{url}"\n') for _ in "ab")
    run = carrier.trigger("job")
    token = token_of(tmp_path, run["id"])
    answer = patch(other, run["id"], {"stage": "elsewhere", "progress": 0.5}, token)
    assert answer.status == 200 and answer.body["node"] == carrier.get("/api/info").body["node"]
    assert carrier.get(f"/api/runs/{run['id']}").body["stage"] == "elsewhere"
    done = cli_report(run["id"], token, other.url, "--output", '{"via": "other"}')
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done
    gate.open()
    ended = carrier.wait_run(run["id"])
    assert (ended["stage"], ended["progress"], ended["output"]) == (
        "elsewhere",
        0.5,
        {"via": "other"},
    )
    assert patch(other, run["id"], {"stage": "late"}, token).status == 409


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
report_bodies = st.one_of(
    st.dictionaries(
        st.sampled_from(["stage", "progress", "output", "other"]), json_values, max_size=3
    ),
    json_values,
)


@pytest.mark.both_databases
def test_no_report_gets_a_server_error(make_daemon, gate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Whatever a job sends with its token: written (200) or refused saying why (422),
    never a 5xx; what was written reads back as it was sent."""
    daemon = make_daemon(f"[tasks.wait]{keeping_token(tmp_path, gate.wait_command)}")
    run_id = daemon.trigger("wait")["id"]
    token = token_of(tmp_path, run_id)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=report_bodies)
    def one(body: Any) -> None:
        raw = json.dumps(body).encode()  # NaN and Infinity included, as Python writes them
        answer = daemon.request(
            "PATCH",
            f"/api/runs/{run_id}",
            raw=raw,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert answer.status in (200, 422), answer
        assert answer.headers["Content-Type"].startswith(
            "application/json" if answer.status == 200 else "application/problem+json"
        )
        if answer.status == 200:
            for name in set(body) & {"stage", "progress", "output"}:
                assert answer.body[name] == body[name]

    one()
    gate.open()
    assert daemon.wait_run(run_id)["end_reason"] == "success"
