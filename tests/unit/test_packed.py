"""Packed task tables: a task read back is the task that was validated, built through
pydantic's public API, and each read means the same: a new model equal to the one added."""

from __future__ import annotations

import gc
import tomllib
import weakref
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from cronwarden.config import TaskConfig, parse_config
from cronwarden.packed import PackedModels
from cronwarden.task_hash import new_key, task_hash

KEY = new_key()

CONFIG = """
[defaults]
timezone = "Europe/London"
retries = 2

[tasks.plain]
command = "true"
schedule = "*/5 * * * *"

[tasks.same]
command = "true"
schedule = "*/5 * * * *"

[tasks.full]
command = ["/bin/echo", "hi"]
schedule = "@every 90s"
working_dir = "work"
env = { A = "1", B = "two" }
secret_env = ["B"]
timeout = "1m"
success_exit_codes = [0, 3]
retry_on = ["failed"]
overlap = "queue"
catch_up = "all"
jitter = "10s"
params = ["X"]
keep_runs = 5
enabled = false
"""


def tasks_of(tmp_path: Path) -> tuple[dict[str, TaskConfig], PackedModels[TaskConfig]]:
    """The tasks validated straight from the file's tables, and as the config holds them."""
    data = tomllib.loads(CONFIG)
    validated = {
        name: TaskConfig.model_validate(
            {**data["defaults"], **body, "name": name}, context={"base_dir": tmp_path}
        )
        for name, body in data["tasks"].items()
    }
    return validated, parse_config(CONFIG, tmp_path / "c.toml").tasks


def test_a_task_read_back_is_the_task_that_was_validated(tmp_path: Path) -> None:
    validated, tasks = tasks_of(tmp_path)
    assert list(tasks) == ["plain", "same", "full"] and len(tasks) == 3
    for name, task in tasks.items():
        assert task == validated[name]
        assert task.model_fields_set == validated[name].model_fields_set
        assert task.model_dump() == validated[name].model_dump()
        assert task_hash(KEY, task) == task_hash(KEY, validated[name])
    full = tasks["full"]
    assert full.env == {"A": "1", "B": "two"} and full.working_dir == tmp_path / "work"
    assert full.trigger is not None and full.zone == tasks["plain"].zone
    assert "missing" not in tasks and tasks.get("missing") is None
    with pytest.raises(KeyError):
        tasks["missing"]


def test_equal_values_are_one_object_and_mutable_ones_never_shared(tmp_path: Path) -> None:
    _, tasks = tasks_of(tmp_path)
    plain, same = tasks["plain"], tasks["same"]
    assert plain.command is same.command and plain.schedule is same.schedule
    assert plain.env == {} and plain.env is not same.env
    plain.env["LEAK"] = "1"  # a model is frozen, its dict is not: nothing else sees it
    assert same.env == {} and tasks["same"].env == {}
    tasks["full"].env["LEAK"] = "1"  # and once nothing holds that model,
    gc.collect()
    assert tasks["full"].env == {"A": "1", "B": "two"}  # the next one has its own


def test_a_model_is_the_same_object_while_held_and_nothing_is_kept_after(
    tmp_path: Path,
) -> None:
    """One access path, one meaning: indexing, get, values and items all give the model
    added, the same object while anything holds it (what it worked out stays with it),
    and walking every task keeps none of them."""
    _, tasks = tasks_of(tmp_path)
    plain = tasks["plain"]
    assert plain.trigger is not None  # worked out once, on the model held
    assert tasks["plain"] is plain and tasks.get("plain") is plain
    assert dict(tasks.items())["plain"] is plain
    assert [t.name for t in tasks.values()] == ["plain", "same", "full"]
    full = weakref.ref(tasks["full"])
    gc.collect()
    assert full() is None  # nothing holds it: the table did not keep it
    del plain
    gc.collect()
    again = tasks["plain"]
    assert "trigger" not in vars(again) and again == validated_plain(tmp_path)
    with pytest.raises(ValidationError, match="frozen"):
        again.retries = 9  # type: ignore[misc]


def validated_plain(tmp_path: Path) -> TaskConfig:
    return tasks_of(tmp_path)[0]["plain"]


def test_models_are_built_through_the_public_api() -> None:
    """What pydantic itself sets up for a model made of valid values (private attributes'
    defaults, model_post_init) is there: nothing of its private layout is rebuilt here."""

    class Tracked(BaseModel):
        model_config = ConfigDict(frozen=True)
        name: str
        size: int = 0
        _seen: list[str] = PrivateAttr(default_factory=list)

        def model_post_init(self, context: object) -> None:
            self._seen.append(self.name)

    table = PackedModels(Tracked, [("a", Tracked(name="a", size=2))], key_field="name")
    built = table["a"]
    assert built == Tracked(name="a", size=2) and built._seen == ["a"]
    assert built.model_fields_set == {"name", "size"}
    table.add("b", Tracked(name="b"))
    assert table["b"].model_fields_set == {"name"}  # a default stays a default


def test_only_the_models_of_its_class_keyed_by_their_own_name(tmp_path: Path) -> None:
    _, tasks = tasks_of(tmp_path)
    table = PackedModels(TaskConfig, key_field="name")
    with pytest.raises(ValueError, match="keyed by name='plain'"):
        table.add("other", tasks["plain"])

    class Other(BaseModel):
        name: str

    with pytest.raises(TypeError, match="expected TaskConfig, got Other"):
        table.add("x", Other(name="x"))  # type: ignore[arg-type]

    class Slotted(BaseModel):
        __slots__ = ()
        name: str

    with pytest.raises(TypeError, match='leave out "__weakref__"'):
        PackedModels(Slotted)


def test_equal_values_of_other_types_keep_their_own_type() -> None:
    class Number(BaseModel):
        model_config = ConfigDict(frozen=True, strict=True)
        value: bool | int | float

    table = PackedModels(Number, [("t", Number(value=True)), ("i", Number(value=1))])
    table.add("f", Number(value=1.0))
    assert [type(table[n].value) for n in "tif"] == [bool, int, float]

    class Numbers(BaseModel):
        model_config = ConfigDict(frozen=True, strict=True)
        values: list[bool | int] | dict[str, bool | int]

    lists = PackedModels(Numbers, [("t", Numbers(values=[True])), ("i", Numbers(values=[1]))])
    lists.add("d", Numbers(values={"a": True}))
    lists.add("e", Numbers(values={"a": 1}))
    values = {n: lists[n].model_dump()["values"] for n in "tide"}
    assert values == {"t": [True], "i": [1], "d": {"a": True}, "e": {"a": 1}}
    assert [type(values["t"][0]), type(values["i"][0])] == [bool, int]
    assert [type(values["d"]["a"]), type(values["e"]["a"])] == [bool, int]


def test_a_reread_table_tells_which_tasks_changed(tmp_path: Path) -> None:
    _, tasks = tasks_of(tmp_path)
    reread = parse_config(CONFIG.replace('"@every 90s"', '"@every 91s"'), tmp_path / "c.toml")
    changed = [name for name in tasks if not tasks.same(name, reread.tasks)]
    assert changed == ["full"]
    assert task_hash(KEY, tasks["full"]) != task_hash(KEY, reread.tasks["full"])
    assert task_hash(KEY, tasks["plain"]) == task_hash(KEY, reread.tasks["plain"])
    assert not tasks.same("plain", PackedModels(TaskConfig, key_field="name"))  # not in it


def test_one_field_of_every_model_is_read_without_building_them(tmp_path: Path) -> None:
    validated, tasks = tasks_of(tmp_path)
    assert dict(tasks.field("env")) == {name: task.env for name, task in validated.items()}
    envs = dict(tasks.field("env"))
    envs["full"]["A"] = "changed"  # a copy each read, as a built model's
    assert tasks["full"].env["A"] == "1"
