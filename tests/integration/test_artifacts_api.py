"""Run artifacts on a real daemon, on SQLite and on PostgreSQL: the files a job leaves in
$CRONWARDEN_ARTIFACTS_DIR are listed and downloaded byte for byte through the API and
the CLI; links, past-the-cap files and the oldest runs past keep_artifacts_size are
dropped (and said); a run as another user writes its own directory; retention removes
a run's files with it; names that climb out are refused."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

NOBODY = pwd.getpwnam("nobody")
PAYLOAD = bytes(range(256)) * 12 + b"\r\n\0 tail"  # every byte value, no text
CSV = b"a,b\n1,2\n"

WRITER = """
[tasks.writer]
command = '''
cp "{source}" "$CRONWARDEN_ARTIFACTS_DIR/report.bin" &&
mkdir "$CRONWARDEN_ARTIFACTS_DIR/sub" &&
printf 'a,b\\n1,2\\n' > "$CRONWARDEN_ARTIFACTS_DIR/sub/data.csv" &&
ln -s /etc/passwd "$CRONWARDEN_ARTIFACTS_DIR/passwd"
'''
"""
CAPPED = """
[tasks.capped]
max_artifacts_size = "1KiB"
command = '''
cd "$CRONWARDEN_ARTIFACTS_DIR" &&
head -c 600 /dev/zero > a.txt && head -c 600 /dev/zero > b.txt && head -c 100 /dev/zero > c.txt
'''

[tasks.rolling]
max_artifacts_size = "1KiB"
keep_artifacts_size = "2KiB"
command = 'head -c 1000 /dev/zero > "$CRONWARDEN_ARTIFACTS_DIR/out.bin"'

[tasks.as_nobody]
user = "nobody"
command = 'id -un > "$CRONWARDEN_ARTIFACTS_DIR/who.txt"'
"""


def fetch(daemon, path: str) -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    """GET the raw bytes of an answer (the fixture's client decodes them as text)."""
    try:
        with urllib.request.urlopen(daemon.url + path, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", *args], capture_output=True, timeout=60
    )


def listing(daemon, run_id: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    answer = daemon.get(f"/api/runs/{run_id}/artifacts")
    assert answer.status == 200, answer
    return dict(answer.body)


def ended_run(daemon, task: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    run = daemon.wait_run(daemon.trigger(task)["id"])
    assert run["end_reason"] == "success", run
    return run


def run_dir(daemon, run_id: str) -> Path:  # type: ignore[no-untyped-def]
    return Path(daemon.data_dir) / "artifacts" / run_id


@pytest.mark.both_databases
def test_a_runs_files_are_listed_and_downloaded_byte_for_byte(make_daemon, tmp_path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(PAYLOAD)
    daemon = make_daemon(WRITER.format(source=source))
    run = ended_run(daemon, "writer")

    body = listing(daemon, run["id"])
    assert body["artifacts"] == [
        {"name": "report.bin", "size": len(PAYLOAD), "sha256": hashlib.sha256(PAYLOAD).hexdigest()},
        {"name": "sub/data.csv", "size": len(CSV), "sha256": hashlib.sha256(CSV).hexdigest()},
    ]
    [link] = body["dropped"]
    assert link["name"] == "passwd" and link["size"] is None
    assert "symbolic link" in link["why"]
    kept = run_dir(daemon, run["id"])
    assert sorted(p.name for p in kept.iterdir()) == ["report.bin", "sub"]  # the link went
    assert Path("/etc/passwd").is_file()  # and only the link

    status, headers, data = fetch(daemon, f"/api/runs/{run['id']}/artifacts/report.bin")
    assert status == 200 and data == PAYLOAD
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Length"] == str(len(PAYLOAD))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith('attachment; filename="report.bin"')
    status, headers, data = fetch(daemon, f"/api/runs/{run['id']}/artifacts/sub/data.csv")
    assert status == 200 and data == CSV
    assert 'filename="data.csv"' in headers["Content-Disposition"]

    table = cli("artifacts", run["id"], "--url", daemon.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "SHA256"]
    assert lines[1].startswith("report.bin") and hashlib.sha256(PAYLOAD).hexdigest() in lines[1]
    assert lines[2].startswith("sub/data.csv") and "8B" in lines[2]
    assert any(line.startswith("passwd") and "symbolic link" in line for line in lines[3:])
    as_json = cli("artifacts", run["id"], "--json", "--url", daemon.url)
    assert json.loads(as_json.stdout) == body
    printed = cli("artifacts", run["id"], "report.bin", "--url", daemon.url)
    assert printed.returncode == 0 and printed.stdout == PAYLOAD, printed.stderr
    saved = tmp_path / "saved.csv"
    into = cli("artifacts", run["id"], "sub/data.csv", "-o", str(saved), "--url", daemon.url)
    assert into.returncode == 0 and into.stdout == b"", into.stderr
    assert saved.read_bytes() == CSV
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


@pytest.mark.both_databases
def test_unknown_and_dropped_names_are_404_and_climbing_names_400(make_daemon, tmp_path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(PAYLOAD)
    daemon = make_daemon(WRITER.format(source=source))
    run_id = ended_run(daemon, "writer")["id"]
    base = f"/api/runs/{run_id}/artifacts"

    missing = daemon.get(f"{base}/nothing-here.txt")
    assert missing.status == 404 and missing.body["type"].endswith("artifact-not-found")
    dropped = daemon.get(f"{base}/passwd")
    assert dropped.status == 404 and "symbolic link" in dropped.body["detail"]
    for name in ("..%2Fcronwarden.db", "sub/%2E%2E/%2E%2E/x", "a%00b", "%2Fetc%2Fpasswd"):
        refused = daemon.get(f"{base}/{name}")
        assert refused.status == 400, (name, refused)
        assert refused.content_type == "application/problem+json"
        assert refused.body["type"].endswith("invalid-artifact-name"), refused.body
    unknown_run = daemon.get("/api/runs/0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a/artifacts")
    assert unknown_run.status == 404 and unknown_run.body["type"].endswith("run-not-found")
    assert daemon.get("/api/runs/not-a-run/artifacts").status == 400

    climbing = cli("artifacts", run_id, "../cronwarden.db", "--url", daemon.url)
    assert climbing.returncode == 2 and b"has a '..' part" in climbing.stderr, climbing.stderr
    assert b"Traceback" not in climbing.stderr
    nowhere = cli(
        "artifacts", run_id, "report.bin", "-o", "/nonexistent/dir/x", "--url", daemon.url
    )
    assert nowhere.returncode == 1 and b"cannot write /nonexistent/dir/x" in nowhere.stderr
    assert cli("artifacts", run_id, "-o", "x", "--url", daemon.url).returncode == 2


@pytest.mark.both_databases
def test_caps_drop_files_past_the_run_cap_and_the_oldest_runs_past_the_task_cap(
    make_daemon,
) -> None:
    daemon = make_daemon(CAPPED)
    capped = ended_run(daemon, "capped")
    body = listing(daemon, capped["id"])
    # Name order: a fits, b no longer does, the smaller c still does.
    assert [(a["name"], a["size"]) for a in body["artifacts"]] == [("a.txt", 600), ("c.txt", 100)]
    [past] = body["dropped"]
    assert past["name"] == "b.txt" and past["size"] == 600
    assert "max_artifacts_size (1KiB)" in past["why"] and "424 were left" in past["why"]
    assert sorted(p.name for p in run_dir(daemon, capped["id"]).iterdir()) == ["a.txt", "c.txt"]

    runs = [ended_run(daemon, "rolling") for _ in range(3)]  # 1000 bytes each, 2KiB kept
    oldest, *newest = runs
    gone = listing(daemon, oldest["id"])
    assert gone["artifacts"] == [] and gone["dropped"][0]["name"] == "out.bin"
    assert "keep_artifacts_size (2KiB)" in gone["dropped"][0]["why"]
    assert not run_dir(daemon, oldest["id"]).exists()
    for run in newest:
        assert [a["name"] for a in listing(daemon, run["id"])["artifacts"]] == ["out.bin"]
        assert (run_dir(daemon, run["id"]) / "out.bin").stat().st_size == 1000


@pytest.fixture
def passable_data_dir() -> Iterator[Path]:
    """A data_dir whose parents another user may pass through, as /var/lib (pytest's
    own temporary directories are 0700)."""
    base = Path(tempfile.mkdtemp(prefix="cronwarden-artifacts-"))
    base.chmod(0o711)
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.both_databases
def test_a_run_as_another_user_writes_its_own_directory(make_daemon, passable_data_dir) -> None:
    daemon = make_daemon(CAPPED, data_dir=passable_data_dir)
    run = ended_run(daemon, "as_nobody")
    assert listing(daemon, run["id"])["artifacts"][0]["name"] == "who.txt"
    status, _, data = fetch(daemon, f"/api/runs/{run['id']}/artifacts/who.txt")
    assert status == 200 and data == b"nobody\n"
    own = run_dir(daemon, run["id"])
    info = own.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NOBODY.pw_uid, 0o700)
    # It passed through data_dir and artifacts/ (search only): nothing else opened up.
    data_dir = Path(daemon.data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o711
    assert stat.S_IMODE((data_dir / "artifacts").stat().st_mode) == 0o711
    others = [p for p in data_dir.iterdir() if p.name != "artifacts"]
    assert others and all(p.lstat().st_mode & 0o077 == 0 for p in others), others


@pytest.mark.both_databases
def test_retention_removes_a_runs_files_with_the_run(make_daemon, tmp_path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(PAYLOAD)
    daemon = make_daemon(WRITER.format(source=source) + "keep_runs = 1\n")
    first, second = ended_run(daemon, "writer"), ended_run(daemon, "writer")
    assert run_dir(daemon, first["id"]).is_dir()
    daemon.stop()
    daemon.start()  # a retention pass at start-up
    report = wait_for(lambda: daemon.get("/api/info").body["retention"], what="a retention pass")
    assert report["deleted_runs"] == 1 and report["error"] is None, report
    assert daemon.get(f"/api/runs/{first['id']}/artifacts").status == 404
    assert not run_dir(daemon, first["id"]).exists()
    assert listing(daemon, second["id"])["artifacts"][0]["name"] == "report.bin"
    assert run_dir(daemon, second["id"]).is_dir()


def test_a_run_is_told_its_directory_and_finds_it_empty_and_its_own(make_daemon) -> None:
    daemon = make_daemon(
        """
        [tasks.look]
        command = 'echo "$CRONWARDEN_ARTIFACTS_DIR"; ls -A "$CRONWARDEN_ARTIFACTS_DIR" | wc -l'
        """
    )
    run = ended_run(daemon, "look")
    lines = [line["text"] for line in daemon.get(f"/api/runs/{run['id']}/log").body["lines"]]
    assert lines == [str(run_dir(daemon, run["id"])), "0"]
    assert not run_dir(daemon, run["id"]).exists()  # it left nothing: nothing stays
    assert listing(daemon, run["id"]) == {"artifacts": [], "dropped": []}
    assert os.stat(daemon.data_dir).st_mode & 0o077 == 0  # no other user ran: still 0700
