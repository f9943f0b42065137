"""The rules of run tags and metadata (cronwarden/run_tags.py), as the config, the API
and the CLI share them: what is allowed, and what a refusal says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cronwarden.config import parse_config
from cronwarden.errors import ConfigError
from cronwarden.run_tags import MAX_METADATA_BYTES, check_metadata, check_tags, run_tags


@pytest.mark.parametrize(
    "tags", [[], ["a"], ["nightly", "customer:42", "env=prod", "path/to.x_y-z"], ["x" * 64]]
)
def test_tags_that_are_allowed(tags: list[str]) -> None:
    assert check_tags(tags) == tuple(tags)


@pytest.mark.parametrize(
    ("tags", "said"),
    [
        ("nightly", "tags are a list of strings"),
        ([1], "tags are a list of strings"),
        ([f"t{i}" for i in range(11)], "at most 10 tags are allowed (this list has 11)"),
        (["x" * 65], "is 65 characters long: a tag is 1 to 64 characters"),
        ([""], "'' is not a tag"),
        (["a b"], "'a b' is not a tag"),
        (["a,b"], "is not a tag"),
        (['say"hi'], "is not a tag"),
        (["caf\u00e9"], "is not a tag"),
        (["50%"], "is not a tag"),
    ],
)
def test_tags_that_are_refused_say_what_is_allowed(tags: object, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        check_tags(tags)


def test_a_runs_tags_are_its_tasks_then_its_triggers_each_once() -> None:
    assert check_tags(["a", "b", "a"]) == ("a", "b")
    assert run_tags(("team", "nightly"), ["nightly", "customer:1"]) == [
        "team",
        "nightly",
        "customer:1",
    ]
    assert check_tags([f"t{i}" for i in range(20)], most=20)


def test_metadata_is_a_small_json_object() -> None:
    assert check_metadata({}) == {}
    nested = {"who": "ann", "n": [1, 2.5, None, True, {"deep": "\u00e9t\u00e9"}]}
    assert check_metadata(nested) is nested
    fits = {"k": "x" * (MAX_METADATA_BYTES - len('{"k":""}'))}
    assert check_metadata(fits) is fits
    for value, said in [
        ([1], "(got a list)"),
        ("x", "(got a string)"),
        (None, "(got null)"),
        (3, "(got a number)"),
        ({"k": "x" * MAX_METADATA_BYTES}, f"is {MAX_METADATA_BYTES + 8} bytes as compact JSON"),
        ({"k": "\u00e9" * 2100}, "is 4208 bytes"),  # counted in UTF-8 bytes
        ({"k\u0000": 1}, "NUL"),
        ({"k": ["a\u0000"]}, "NUL"),
        ({"k": "\ud800"}, "lone surrogate"),
        ({"a": json.loads("[" * 32 + "]" * 32)}, "deeper than 32 levels"),
    ]:
        with pytest.raises(ValueError, match=re.escape(said)):
            check_metadata(value)
    assert check_metadata({"a": json.loads("[" * 31 + "]" * 31)})  # 32 levels


def test_the_config_takes_tags_on_a_task_and_in_defaults(tmp_path: Path) -> None:
    config = parse_config(
        """
        [defaults]
        tags = ["team:data"]

        [tasks.inherits]
        command = "true"

        [tasks.own]
        command = "true"
        tags = ["nightly", "nightly", "backup"]
        """.replace("\n        ", "\n"),
        tmp_path / "c.toml",
    )
    assert config.tasks["inherits"].tags == ("team:data",)
    assert config.tasks["own"].tags == ("nightly", "backup")  # a task's own replace [defaults]'
    with pytest.raises(ConfigError) as refused:
        parse_config(
            '[defaults]\ntags = ["a b"]\n\n[tasks.t]\ncommand = "true"\ntags = "x"\n',
            tmp_path / "c.toml",
        )
    problems = refused.value.problems
    assert any("c.toml:2: defaults.tags: 'a b' is not a tag" in p for p in problems), problems
    assert any("c.toml:6: tasks.t.tags: tags are a list of strings" in p for p in problems)
