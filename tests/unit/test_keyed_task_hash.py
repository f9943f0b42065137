"""The keyed task hash (cronwarden/task_hash.py) and how the live config hands it out."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from dispatch_doubles import LoopTurns  # type: ignore[import-not-found]

from cronwarden.config import Config, TaskConfig, parse_config
from cronwarden.live_config import HASH_SHARE, LiveConfig
from cronwarden.task_hash import config_hash, new_key, task_hash

KEY = bytes(range(32))
CONFIG = """
[tasks.deploy]
command = "true"
secret_env = ["API_KEY"]
env = {{API_KEY = "{secret}", REGION = "eu-west-1"}}

[tasks.other]
command = "{other}"
"""


def config(tmp_path: Path, secret: str = "hunter2", other: str = "true") -> Config:
    return parse_config(CONFIG.format(secret=secret, other=other), tmp_path / "c.toml")


def plain_sha256(task: TaskConfig) -> str:
    blob = json.dumps(
        task.model_dump(mode="json", exclude={"name"}), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_the_hash_is_keyed_and_follows_the_definition(tmp_path: Path) -> None:
    deploy = config(tmp_path).tasks["deploy"]
    digest = task_hash(KEY, deploy)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert digest == task_hash(KEY, config(tmp_path).tasks["deploy"])  # stable
    assert digest != plain_sha256(deploy)  # nobody without the key can compute it
    assert digest != task_hash(bytes(reversed(KEY)), deploy)
    assert digest != task_hash(KEY, config(tmp_path, secret="hunter3").tasks["deploy"])
    renamed = deploy.model_copy(update={"name": "deploy2"})
    assert task_hash(KEY, renamed) == digest  # the name is not part of the definition


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        task_hash(b"short", config(tmp_path).tasks["deploy"])


def test_new_keys_are_random_and_32_bytes() -> None:
    assert len(new_key()) == 32 and new_key() != new_key()


def test_config_hash_covers_names_and_hashes_in_any_order() -> None:
    pairs = [("a", "1" * 16), ("b", "2" * 16)]
    assert config_hash(KEY, pairs) == config_hash(KEY, reversed(pairs))
    assert config_hash(KEY, pairs) != config_hash(KEY, [("a", "1" * 16), ("c", "2" * 16)])
    assert config_hash(KEY, pairs) != config_hash(new_key(), pairs)


async def test_live_config_hashes_with_the_key_it_is_given(tmp_path: Path) -> None:
    live = LiveConfig(config(tmp_path), KEY)
    deploy = live.task("deploy")
    assert live.task_hash(deploy) == task_hash(KEY, deploy)
    before = await live.tasks_hash()
    other_node = LiveConfig(config(tmp_path), KEY)
    assert await other_node.tasks_hash() == before  # same key, same tasks: same config hash

    live.use_key(bytes(reversed(KEY)))
    assert live.task_hash(deploy) == task_hash(bytes(reversed(KEY)), deploy)
    assert await live.tasks_hash() != before


def test_without_a_key_a_live_config_still_never_hashes_unkeyed(tmp_path: Path) -> None:
    one, two = LiveConfig(config(tmp_path)), LiveConfig(config(tmp_path))
    deploy = one.task("deploy")
    assert one.task_hash(deploy) != plain_sha256(deploy)
    assert one.task_hash(deploy) != two.task_hash(two.task("deploy"))


async def test_a_reload_rehashes_what_changed_and_only_that(tmp_path: Path) -> None:
    live = LiveConfig(config(tmp_path), KEY)
    old_deploy, old_other = live.task("deploy"), live.task("other")
    old_hashes = live.task_hash(old_deploy), live.task_hash(old_other)
    old_config_hash = await live.tasks_hash()

    changes = live.swap(config(tmp_path, secret="hunter3"))
    assert changes.changed == ["deploy"]
    new_deploy = live.task("deploy")
    assert live.task_hash(new_deploy) == task_hash(KEY, new_deploy) != old_hashes[0]
    assert live.task_hash(live.task("other")) == old_hashes[1]
    assert await live.tasks_hash() != old_config_hash
    # worked out from what changed, it is the hash of the whole new table
    fresh = LiveConfig(config(tmp_path, secret="hunter3"), KEY)
    assert await live.tasks_hash() == await fresh.tasks_hash()
    # A run admitted before the reload records the definition it ran with.
    assert live.task_hash(old_deploy) == old_hashes[0]

    live.swap(config(tmp_path, secret="hunter2"))
    assert await live.tasks_hash() == old_config_hash


def many(tmp_path: Path, command: str = "true") -> Config:
    text = "".join(f'[tasks.t{i:04d}]\ncommand = "{command}"\n' for i in range(HASH_SHARE * 5))
    return parse_config(text, tmp_path / "many.toml")


async def test_the_config_hash_lets_the_loop_turn_and_a_reload_meanwhile_is_hashed(
    tmp_path: Path,
) -> None:
    """10,000 tasks hashed in one go held the loop 1.5 s on a busy host."""
    live = LiveConfig(many(tmp_path), KEY)
    async with LoopTurns() as turns:
        walking = asyncio.ensure_future(live.tasks_hash())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        live.swap(many(tmp_path, "echo reloaded"))  # overtakes the walk
        overtaken = await walking
    assert turns.count >= 4
    assert overtaken == await LiveConfig(many(tmp_path, "echo reloaded"), KEY).tasks_hash()
