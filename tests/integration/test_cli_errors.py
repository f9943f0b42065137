"""How the client verbs fail: a server that is not cronwarden's JSON API (a proxy's
HTML 502), errors as JSON under --json with the same exit codes, and tokens given by
--token, --token-file or $CRONWARDEN_TOKEN, with a 401 or 403 said in the CLI's terms."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Daemon, free_port  # type: ignore[import-not-found]

RUN_ID = "01a24c63-ee99-7bad-932c-09a91ce422e0"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with no token from this environment unless ``env`` gives one."""
    clean = {k: v for k, v in os.environ.items() if k not in ("CRONWARDEN_TOKEN", "CRONWARDEN_URL")}
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


class _Page(http.server.BaseHTTPRequestHandler):
    """What a reverse proxy answers when its upstream is down (or its login page)."""

    status = 502

    def do_GET(self) -> None:
        body = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>\n" * 20
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(params=[502, 200])
def html_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A server answering every request with an HTML page: a proxy's 502, or a 200
    (a login page, another service at the URL)."""
    handler = type("Page", (_Page,), {"status": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    server.shutdown()
    server.server_close()


VERBS = [
    ("tasks",),
    ("runs",),
    ("show", RUN_ID),
    ("stats", "backup"),
    ("run", "backup", "--wait"),
    ("logs", RUN_ID),
    ("logs", RUN_ID, "--follow"),
    ("events",),
    ("reload",),
]


def test_a_server_that_is_not_the_api_is_said_in_one_line(html_server: tuple[str, int]) -> None:
    url, status = html_server
    said = (
        f"the server at {url} answered {status} text/html, not cronwarden's JSON API: "
        "is a proxy in the way?"
    )
    for verb in VERBS:
        done = cli(*verb, "--url", url)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", f"cronwarden: {said}\n"), verb
        as_json = cli(*verb, "--url", url, "--json")
        assert (as_json.returncode, as_json.stderr) == (1, ""), (verb, as_json)
        assert json.loads(as_json.stdout) == {"error": said, "status": status}, verb


TASKS = '[tasks.backup]\ncommand = "true"\n'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("cli-errors"), TASKS).start()
    yield d
    assert d.stop() == 0


@pytest.mark.parametrize(
    ("args", "code", "status", "said"),
    [
        (("show", RUN_ID), 1, 404, "404 Not Found: no run"),
        (("run", "nope"), 1, 404, "no task is named 'nope'"),
        (("show", "not-an-id"), 1, 400, "not a run id"),
        (("runs", "--sort", "pid"), 2, None, "Invalid value for '--sort'"),
        (("runs", "--limit", "0"), 2, None, "Invalid value for '--limit'"),
        (("run", "backup", "--param", "oops"), 2, None, "'oops' is not NAME=VALUE"),
        (("runs", "--colour"), 2, None, "No such option '--colour'"),
    ],
)
def test_errors_are_json_under_json_with_the_same_exit_codes(
    daemon: Daemon, args: tuple[str, ...], code: int, status: int | None, said: str
) -> None:
    plain = cli(*args, "--url", daemon.url)
    assert plain.returncode == code and plain.stdout == "" and said in plain.stderr, plain
    assert "Traceback" not in plain.stderr
    as_json = cli(*args, "--url", daemon.url, "--json")
    assert as_json.returncode == code and as_json.stderr == "", as_json
    error = json.loads(as_json.stdout)
    assert set(error) == {"error", "status"} and error["status"] == status
    assert said in error["error"], error


def test_config_verbs_answer_errors_in_json_too(daemon: Daemon) -> None:
    plain = cli("explain", "-c", str(daemon.config), "nope")
    said = f"no task 'nope' in {daemon.config} (tasks: backup)"
    assert (plain.returncode, plain.stdout, plain.stderr) == (2, "", f"cronwarden: {said}\n")
    as_json = cli("explain", "-c", str(daemon.config), "nope", "--json")
    assert (as_json.returncode, as_json.stderr) == (2, "")
    assert json.loads(as_json.stdout) == {"error": said, "status": None}
    bad_after = cli("explain", "-c", str(daemon.config), "backup", "--after", "soon", "--json")
    assert bad_after.returncode == 2 and "is not ISO 8601" in json.loads(bad_after.stdout)["error"]


def test_an_unreachable_daemon_is_an_error_with_no_status() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = cli("tasks", "--url", url, "--json")
    assert done.returncode == 1 and done.stderr == ""
    error = json.loads(done.stdout)
    assert error["status"] is None and error["error"].startswith(
        f"cannot reach the cronwarden API at {url}"
    )


# -- tokens -------------------------------------------------------------------------

SECRETS = {"reader": "r-4f1e-secret", "ci": "t-77aa-secret", "ops": "a-0c3d-secret"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tokens = "".join(
        f'[[daemon.tokens]]\nname = "{name}"\n'
        f'sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"\nscopes = ["{scope}"]\n'
        for (name, secret), scope in zip(SECRETS.items(), ["read", "trigger", "admin"], strict=True)
    )
    d = Daemon(tmp_path_factory.mktemp("cli-tokens"), TASKS, daemon_extra=tokens).start()
    yield d
    assert d.stop() == 0


def test_a_token_by_option_file_or_environment(guarded: Daemon, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRETS["ci"] + "\n")
    by_option = cli("tasks", "--url", guarded.url, "--token", SECRETS["reader"])
    assert by_option.returncode == 0 and "backup" in by_option.stdout, by_option.stderr
    by_file = cli("run", "backup", "--wait", "--url", guarded.url, "--token-file", str(token_file))
    assert by_file.returncode == 0 and " ended success " in by_file.stdout, by_file.stderr
    by_env = cli("reload", "--url", guarded.url, env={"CRONWARDEN_TOKEN": SECRETS["ops"]})
    assert by_env.returncode == 0 and by_env.stdout.startswith("reloaded"), by_env.stderr
    # --token wins over the environment.
    chosen = cli(
        "tasks", "--url", guarded.url, "--token", SECRETS["reader"], env={"CRONWARDEN_TOKEN": "x"}
    )
    assert chosen.returncode == 0, chosen.stderr


def test_a_missing_or_unknown_token_says_how_to_give_one(guarded: Daemon) -> None:
    missing = cli("runs", "--url", guarded.url)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        "cronwarden: 401 this daemon needs a token: give --token (or --token-file) or set "
        "CRONWARDEN_TOKEN; the token needs the 'read' scope\n"
    )
    unknown = cli("run", "backup", "--url", guarded.url, "--token", "not-a-token-s3cr3t")
    assert unknown.returncode == 1
    assert unknown.stderr == (
        "cronwarden: 401 the daemon does not know the token from --token: give --token (or "
        "--token-file) or set CRONWARDEN_TOKEN to one of its tokens; the token needs the "
        "'trigger' scope\n"
    )
    from_env = cli("tasks", "--url", guarded.url, env={"CRONWARDEN_TOKEN": "not-a-token-s3cr3t"})
    assert "does not know the token from $CRONWARDEN_TOKEN" in from_env.stderr
    as_json = cli("runs", "--url", guarded.url, "--json", "--token", "not-a-token-s3cr3t")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["status"] == 401
    for done in (unknown, from_env, as_json):
        assert "s3cr3t" not in done.stdout + done.stderr  # a token is never echoed


def test_a_token_short_of_scope_names_the_scope_needed(guarded: Daemon, tmp_path: Path) -> None:
    reader = cli("run", "backup", "--url", guarded.url, "--token", SECRETS["reader"])
    assert reader.returncode == 1
    assert reader.stderr.startswith("cronwarden: 403 token 'reader' has scopes read")
    assert reader.stderr.endswith(
        ": give --token (or --token-file) or set CRONWARDEN_TOKEN to a token with the "
        "'trigger' scope\n"
    ), reader.stderr
    token_file = tmp_path / "ci-token"
    token_file.write_text(SECRETS["ci"])
    ci = cli("pause", "backup", "--url", guarded.url, "--token-file", str(token_file), "--json")
    assert ci.returncode == 1
    error = json.loads(ci.stdout)
    assert error["status"] == 403 and error["error"].endswith("with the 'admin' scope")
    assert SECRETS["ci"] not in ci.stdout + ci.stderr


def test_bad_token_options_are_usage_errors(guarded: Daemon, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    two_lines = tmp_path / "two"
    two_lines.write_text("one-secret\ntwo-secret\n")
    good = tmp_path / "good"
    good.write_text(SECRETS["reader"])
    for args, said in [
        (("--token", "a", "--token-file", str(good)), "give --token or --token-file, not both"),
        (("--token-file", str(tmp_path / "absent")), "cannot read"),
        (("--token-file", str(empty)), "must hold the token alone, on one line"),
        (("--token-file", str(two_lines)), "must hold the token alone, on one line"),
        (("--token", " "), "is empty"),
    ]:
        done = cli("tasks", "--url", guarded.url, *args)
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
        assert "secret" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_every_client_verb_documents_its_token() -> None:
    from cronwarden.cli import main

    runner = CliRunner()
    verbs = [
        name
        for name, command in main.commands.items()
        if any("--url" in p.opts for p in command.params)
    ]
    assert {"tasks", "runs", "run", "rerun", "logs", "reload", "pause", "show"} <= set(verbs)
    for name in verbs:
        shown = runner.invoke(main, [name, "--help"], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        assert "--token TOKEN" in shown.output and "--token-file FILE" in shown.output, name
        assert "[$CRONWARDEN_TOKEN]" in shown.output, name
