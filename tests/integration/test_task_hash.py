"""A run's task_hash says which definition ran without letting a reader test guesses of
a secret_env value offline (issue 24): it is keyed by the installation's key, kept in
the store, the same for every node sharing a database and across restarts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

from cronwarden.config import TaskConfig, load_config

if TYPE_CHECKING:
    from cronwarden.store import Store

TOKENS = {"viewer": ("read", "viewer-token-1"), "operator": ("admin", "operator-token-1")}
TOKEN_LINES = "".join(
    f'[[daemon.tokens]]\nname = "{name}"\nscopes = ["{scope}"]\n'
    f'sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"\n'
    for name, (scope, secret) in TOKENS.items()
)

SECRET_TASK = """
[tasks.deploy]
command = "true"
secret_env = ["API_KEY"]
env = {{API_KEY = "{value}", REGION = "eu-west-1"}}
"""


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][1]}"}


def read(daemon, path: str) -> Any:  # type: ignore[no-untyped-def]
    """A GET by the read-only client."""
    answer = daemon.request("GET", path, headers=bearer("viewer"))
    assert answer.status == 200, answer
    return answer.body


def ended_run(daemon, task: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Trigger ``task`` as the operator; the run once it ended, as the viewer reads it."""
    started = daemon.request("POST", f"/api/tasks/{task}/runs", headers=bearer("operator"))
    assert started.status == 201, started
    return dict(
        wait_for(
            lambda: (
                (run := read(daemon, f"/api/runs/{started.body['id']}"))["status"] == "ended"
                and run
            ),
            what="the run ended",
        )
    )


def unkeyed_hash(task: TaskConfig) -> str:
    """What task_hash was before it was keyed: anyone could compute it."""
    blob = json.dumps(
        task.model_dump(mode="json", exclude={"name"}), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def with_guess(definition: dict[str, Any], name: str, guess: str) -> TaskConfig:
    """The task a reader rebuilds from ``?definition=true`` and a guess of the secret."""
    env = {**definition["env"], "API_KEY": guess}
    return TaskConfig.model_validate({**definition, "name": name, "env": env})


def installation_key(database_url: str) -> bytes:
    """The key as the store holds it (read by the test, never shown by the daemon)."""
    from cronwarden.store import Store, open_engine

    async def fetch() -> bytes:
        store = await Store.open(open_engine(database_url))
        try:
            return await store.installation_key()
        finally:
            await store.close()

    return asyncio.run(fetch())


@pytest.mark.both_databases
def test_a_reader_cannot_confirm_a_guessed_secret_from_task_hash(make_daemon) -> None:
    daemon = make_daemon(SECRET_TASK.format(value="hunter2"), daemon_extra=TOKEN_LINES)
    first = ended_run(daemon, "deploy")
    definition = read(daemon, "/api/tasks/deploy?definition=true")["definition"]
    assert definition["env"]["API_KEY"] == "***"

    # Everything but the secret is public: with the right guess the reader rebuilds
    # exactly the task the daemon ran ...
    guessed = with_guess(definition, "deploy", "hunter2")
    assert guessed == load_config(daemon.config).tasks["deploy"]
    # ... yet no guess, the right one included, can be checked against task_hash.
    for guess in ("hunter1", "hunter2", "hunter3", "***"):
        assert unkeyed_hash(with_guess(definition, "deploy", guess)) != first["task_hash"]
    assert len(first["task_hash"]) == 16

    # The same definition after a restart: the same hash (the key is the store's).
    assert daemon.stop() == 0
    daemon.start()
    again = ended_run(daemon, "deploy")
    assert again["task_hash"] == first["task_hash"]

    # The key behind it is the stored one, and it never leaves the daemon.
    key = installation_key(daemon.database)
    assert len(key) == 32
    canonical = json.dumps(
        guessed.model_dump(mode="json", exclude={"name"}), sort_keys=True, separators=(",", ":")
    )
    keyed = hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()[:16]
    assert keyed == first["task_hash"]
    shown = [
        json.dumps(read(daemon, path))
        for path in ("/api/info", "/api/nodes", "/api/tasks", "/api/tasks/deploy?definition=true")
    ]
    metrics = daemon.request("GET", "/metrics", headers=bearer("viewer"))
    for text in (*shown, str(metrics.body), daemon.log()):
        assert key.hex() not in text and "hunter2" not in text

    # A changed secret is a changed definition: task_hash keeps its meaning.
    daemon.config.write_text(daemon.config.read_text().replace("hunter2", "hunter3"))
    reloaded = daemon.request("POST", "/api/reload", headers=bearer("operator"))
    assert reloaded.status == 200, reloaded
    changed = ended_run(daemon, "deploy")
    assert changed["task_hash"] != first["task_hash"]
    # Old runs keep the hash they ran with.
    assert read(daemon, f"/api/runs/{first['id']}")["task_hash"] == first["task_hash"]


@pytest.mark.postgres
def test_nodes_on_one_database_share_the_key(make_daemon, pg_admin) -> None:
    url = pg_admin.create()
    extra = f'database = "{url}"\n{TOKEN_LINES}'
    tasks = SECRET_TASK.format(value="hunter2")
    # Started together: both find the database without a key and race to make it.
    nodes = [make_daemon(tasks, start=False, daemon_extra=extra) for _ in range(2)]
    for node in nodes:
        node.start_process()
    for node in nodes:
        node.wait_healthy()

    hashes = {ended_run(node, "deploy")["task_hash"] for node in nodes}
    assert len(hashes) == 1

    def both_listed_alike() -> list[dict[str, Any]] | None:
        listed = read(nodes[0], "/api/nodes")["nodes"]
        same = len(listed) == 2 and all(n["same_config"] for n in listed)
        return listed if same else None

    listed = wait_for(both_listed_alike, what="both nodes with the same config")
    assert len({n["config_hash"] for n in listed}) == 1
    assert all(n["same_config"] for n in read(nodes[1], "/api/nodes")["nodes"])


async def test_the_key_is_made_once_and_kept(store: Store) -> None:
    """Two stores on one database agree on one key, and a store opened later reads it."""
    from cronwarden.store import Store, open_engine

    url = store.engine.url.render_as_string(hide_password=False)
    other = await Store.open(open_engine(url))
    try:
        keys = await asyncio.gather(store.installation_key(), other.installation_key())
        assert keys[0] == keys[1] and len(keys[0]) == 32
    finally:
        await other.close()
    later = await Store.open(open_engine(url))
    try:
        assert await later.installation_key() == keys[0]
    finally:
        await later.close()
