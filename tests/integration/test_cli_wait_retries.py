"""``cronwarden run --wait`` (and ``rerun --wait``) follow a fire's retries to its
final outcome, saying when each retry is due; the exit code is the last attempt's.
``--no-wait-retries`` ends with the first attempt, still saying a retry is coming."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon, as_from_a_terminal, wait_for  # type: ignore[import-not-found]

from cronwarden.retry_chain import instant
from cronwarden.support.timefmt import iso_z

# Fails (exit 1) until its third attempt: the attempts count in a file.
FLAKY = """\
n=$(cat "$1" 2>/dev/null || echo 0)
echo $((n + 1)) > "$1"
[ "$n" -ge 2 ]
"""
ATTEMPT = re.compile(
    r"^attempt (\d) (\S+) \((.+?)\); retry (\d) scheduled at (\S+Z)(?: \(in \S+\))?: (\S+)$"
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("wait-retries")
    (workdir / "flaky.sh").write_text(FLAKY)
    tasks = f"""
[tasks.flaky]
command = ["/bin/sh", "{workdir / "flaky.sh"}", "{workdir / "count"}"]
retries = 3
retry_delay = "200ms"
retry_backoff = "linear"
[tasks.doomed]
command = "exit 3"
retries = 1
retry_delay = "100ms"
[tasks.once]
command = "exit 4"
"""
    d = Daemon(workdir, tasks).start()
    yield d
    assert d.stop() == 0


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args, "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=120,
    )


def attempts_of(daemon: Daemon, run_id: str) -> list[dict[str, Any]]:
    return list(daemon.get(f"/api/runs/{run_id}?expand=attempts").body["attempts"])


def test_run_wait_follows_the_retries_to_the_final_success(daemon: Daemon) -> None:
    done = cli(daemon, "run", "flaky", "--wait")
    assert done.returncode == 0, done.stderr
    said = [ATTEMPT.match(line) for line in done.stderr.splitlines()]
    assert all(said) and len(said) == 2, done.stderr
    final_id = done.stdout.split()[0]
    attempts = attempts_of(daemon, final_id)
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["end_reason"] for a in attempts] == ["failed", "failed", "success"]
    for line, failed, retry in zip(said, attempts, attempts[1:], strict=False):
        assert line is not None
        number, reason, how, next_number, due, retry_id = line.groups()
        assert (int(number), reason, how) == (failed["attempt"], "failed", "exit 1")
        assert (int(next_number), retry_id) == (retry["attempt"], retry["id"])
        # Due after the linear backoff: 200 ms after attempt 1, 400 ms after attempt 2.
        wait = timedelta(milliseconds=200 * failed["attempt"])
        assert due == iso_z(instant(retry["created_at"]) + wait)
    assert final_id == attempts[2]["id"]
    assert done.stdout.startswith(f"{final_id} ended success in ")
    assert " (attempt 3); cpu " in done.stdout and len(done.stdout.splitlines()) == 1


def test_the_exit_code_is_the_last_attempts(daemon: Daemon) -> None:
    done = cli(daemon, "run", "doomed", "--wait")
    assert done.returncode == 3
    line = ATTEMPT.match(done.stderr.strip())
    assert line and line.group(1, 2, 3, 4) == ("1", "failed", "exit 3", "2"), done.stderr
    retry_id = line.group(6)
    assert done.stdout.startswith(f"{retry_id} ended failed (exit 3) in ")
    assert "(attempt 2)" in done.stdout
    # A task with no retries: its one attempt, nothing said of retries.
    once = cli(daemon, "run", "once", "--wait")
    assert once.returncode == 4 and once.stderr == ""
    assert " ended failed (exit 4) in " in once.stdout and "(attempt" not in once.stdout


def test_no_wait_retries_ends_with_the_first_attempt(daemon: Daemon) -> None:
    done = cli(daemon, "run", "doomed", "--wait", "--no-wait-retries")
    assert done.returncode == 3
    first_id = done.stdout.split()[0]
    assert done.stdout.startswith(f"{first_id} ended failed (exit 3) in ")
    line = ATTEMPT.match(done.stderr.strip())
    assert line and line.group(1, 4) == ("1", "2"), done.stderr
    # The retry said to be scheduled is the daemon's, and runs on without the client.
    retry = daemon.wait_run(line.group(6))
    assert retry["retry_of"] == first_id and retry["end_reason"] == "failed"


def test_json_wait_prints_the_last_attempt_with_every_attempt(daemon: Daemon) -> None:
    done = cli(daemon, "run", "doomed", "--wait", "--json")
    assert done.returncode == 3 and done.stderr == ""
    last = json.loads(done.stdout)
    assert last["attempt"] == 2 and last["end_reason"] == "failed"
    assert [a["attempt"] for a in last["attempts"]] == [1, 2]
    assert last["attempts"][1]["id"] == last["id"]


def test_rerun_wait_follows_the_retries_too(daemon: Daemon) -> None:
    first = daemon.wait_run(daemon.trigger("doomed")["id"])
    done = cli(daemon, "rerun", first["id"], "--wait")
    assert done.returncode == 3
    line = ATTEMPT.match(done.stderr.strip())
    assert line and line.group(1, 4) == ("1", "2"), done.stderr
    rerun_id = daemon.get(f"/api/runs/{line.group(6)}").body["retry_of"]
    assert daemon.get(f"/api/runs/{rerun_id}").body["rerun_of"] == first["id"]
    assert done.stdout.startswith(f"{line.group(6)} ended failed (exit 3)")


def test_waiting_is_documented(daemon: Daemon) -> None:
    shown = cli(daemon, "run", "--help")
    assert "--wait-retries / --no-wait-retries" in shown.stdout
    assert "retry N scheduled at" in " ".join(shown.stdout.split())


def test_ctrl_c_stops_waiting_not_the_run(make_daemon, gate) -> None:  # type: ignore[no-untyped-def]
    held = make_daemon(f'[tasks.held]\ncommand = "{gate.wait_command}"\n')
    waiting = subprocess.Popen(
        [sys.executable, "-m", "cronwarden", "run", "held", "--wait", "--url", held.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    running = wait_for(lambda: held.runs(task_name="held", status="running"), what="the run")
    # Past its trigger, the client sleeps between polls of the run: interrupted there.
    wchan = Path(f"/proc/{waiting.pid}/wchan")
    wait_for(lambda: wchan.read_text() == "hrtimer_nanosleep", what="the client polling")
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 130 and out == ""
    assert err == (
        f"cronwarden: stopped waiting; the run goes on (cronwarden show {running[0]['id']})\n"
    )
    assert held.get(f"/api/runs/{running[0]['id']}").body["status"] == "running"
    gate.open()
    assert held.wait_run(running[0]["id"])["end_reason"] == "success"
