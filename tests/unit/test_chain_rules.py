"""The pure rules of chains (cronwarden/chains.py): what a task's end starts, cycles,
inherited params."""

from __future__ import annotations

from dataclasses import dataclass

from cronwarden.chains import find_cycle, followers, params_for


@dataclass(frozen=True)
class T:
    name: str
    after: tuple[str, ...] = ()


def tasks(*pairs: tuple[str, tuple[str, ...]]) -> dict[str, T]:
    return {name: T(name, after) for name, after in pairs}


def test_followers_are_what_a_task_s_end_starts() -> None:
    table = tasks(("a", ()), ("b", ("a",)), ("c", ("a", "b")))
    assert followers(table.values()) == {"a": ["b", "c"], "b": ["c"]}


def test_cycles_are_found_in_the_order_runs_would_start_each_other() -> None:
    assert find_cycle(tasks(("a", ("c",)), ("b", ("a",)), ("c", ("b",)))) == ["a", "b", "c", "a"]
    assert find_cycle(tasks(("self", ("self",)))) == ["self", "self"]
    assert find_cycle(tasks(("a", ()), ("b", ("a",)), ("c", ("a", "b")))) is None


def test_a_long_chain_is_no_recursion_problem() -> None:
    long = tasks(*((f"t{i}", (f"t{i + 1}",) if i < 5000 else ()) for i in range(5001)))
    assert find_cycle(long) is None
    long["t5000"] = T("t5000", ("t0",))
    cycle = find_cycle(long)
    assert cycle is not None and len(cycle) == 5002


def test_inherited_params_are_those_the_chained_task_declares() -> None:
    assert params_for(["day"], {"day": "mon", "secret": "x"}) == {"day": "mon"}
    assert params_for([], {"day": "mon"}) == {}
