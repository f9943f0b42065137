"""Two daemons on one PostgreSQL database, each with its own data_dir: a run's artifacts
lie on the node that ran it; the other node lists them (from the database) and relays
a download from that node, byte for byte, headers included; through the CLI too."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

PAYLOAD = bytes(range(256)) * 40


def fetch(daemon, path: str) -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(daemon.url + path, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_a_download_of_a_run_another_node_carried_is_relayed(
    make_daemon, pg_admin, tmp_path: Path
) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(PAYLOAD)
    tasks = f"""
    [tasks.writer]
    command = 'cd "$CRONWARDEN_ARTIFACTS_DIR" && mkdir out && cp "{source}" out/p.bin'
    """
    url = pg_admin.create()
    extra = f'database = "{url}"\nnode_lease = "2s"\n'
    ran_it, other = (make_daemon(tasks, daemon_extra=extra) for _ in range(2))
    ran_on = ran_it.get("/api/info").body["node"]
    run = ran_it.trigger("writer")  # an API trigger runs on the node that received it
    assert other.wait_run(run["id"])["end_reason"] == "success"
    assert not (Path(other.data_dir) / "artifacts" / run["id"]).exists()

    listing = other.get(f"/api/runs/{run['id']}/artifacts").body
    assert listing["artifacts"] == [
        {"name": "out/p.bin", "size": len(PAYLOAD), "sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    ]
    status, headers, data = fetch(other, f"/api/runs/{run['id']}/artifacts/out/p.bin")
    assert status == 200 and data == PAYLOAD
    assert headers["X-Cronwarden-Node"] == ran_on
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Length"] == str(len(PAYLOAD))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith('attachment; filename="p.bin"')
    missing = other.get(f"/api/runs/{run['id']}/artifacts/out/none.bin")
    assert missing.status == 404  # the listing says so: nothing is relayed

    command = ["artifacts", run["id"], "out/p.bin", "--url", other.url]
    printed = subprocess.run(
        [sys.executable, "-m", "cronwarden", *command], capture_output=True, timeout=60
    )
    assert printed.returncode == 0 and printed.stdout == PAYLOAD, printed.stderr

    ran_it.stop()  # the node that holds the file is gone: where it is, and why not here
    gone = other.get(f"/api/runs/{run['id']}/artifacts/out/p.bin")
    assert gone.status == 409, gone
    where = f"run {run['id']} ran on node {ran_on}, which holds the artifacts and cannot be"
    assert where in gone.body["detail"], gone.body
