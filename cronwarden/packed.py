"""Many frozen models of one class, held as tuples of their values and built on access.

A validated task is ~1.2 KB as a pydantic model (a ``__dict__`` of 36 fields, a
fields-set, an empty ``env``), so 10,000 tasks held as models were a tenth of the
daemon's memory, while only the few tasks firing or running are looked at at a time.
Packed, a task is one tuple whose equal values (the same command, zone, defaults) are
shared between tasks.  A model is rebuilt from pydantic's own pickle state, with no
validation (it was validated once, when the config was read), and the most recently
used ones are kept, so the tasks in use are the same objects from one call to the next
(and what a model works out once, such as a task's definition hash, is worked out once
while it is kept).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

KEEP = 1024  # built models kept: more than the tasks a burst of fires touches at once


class _Empty:
    """An empty dict or list in a packed tuple: each build gets a new one, so no two
    tasks share a mutable value (a non-empty dict or list is unhashable, so never
    shared: it stays its task's own)."""

    def __init__(self, kind: type[dict[Any, Any]] | type[list[Any]]) -> None:
        self.kind = kind


_EMPTY_DICT = _Empty(dict)
_EMPTY_LIST = _Empty(list)


class PackedModels(Mapping[str, M], Generic[M]):
    """Models by name; ``key_field`` names the field that holds the name (kept once,
    as the key, rather than once more in every tuple)."""

    def __init__(
        self,
        model: type[M],
        models: Iterable[tuple[str, M]] = (),
        *,
        key_field: str | None = None,
        keep: int = KEEP,
    ) -> None:
        self._model = model
        self._key_field = key_field
        self._fields = tuple(f for f in model.model_fields if f != key_field)
        self._keep = keep
        self._packed: dict[str, tuple[Any, ...]] = {}
        self._fields_set: dict[str, frozenset[str]] = {}
        self._built: OrderedDict[str, M] = OrderedDict()
        # Per field, one object for each distinct value; fields sets likewise.
        self._shared: tuple[dict[Hashable, Any], ...] = tuple({} for _ in self._fields)
        self._shared_sets: dict[frozenset[str], frozenset[str]] = {}
        for name, instance in models:
            self.add(name, instance)

    def add(self, name: str, instance: M) -> None:
        """Pack a model.  A table is filled while its config is read, and not changed
        once the config is in use."""
        if type(instance) is not self._model:
            raise TypeError(f"expected {self._model.__name__}, got {type(instance).__name__}")
        values = instance.__dict__
        if self._key_field is not None and values[self._key_field] != name:
            raise ValueError(f"{name!r} is keyed by {self._key_field}={values[self._key_field]!r}")
        self._packed[name] = tuple(
            _shared(shared, values[field])
            for field, shared in zip(self._fields, self._shared, strict=True)
        )
        fields_set = frozenset(instance.model_fields_set)
        self._fields_set[name] = self._shared_sets.setdefault(fields_set, fields_set)
        self._built.pop(name, None)

    def _build(self, name: str) -> M:
        values = {
            field: value.kind() if isinstance(value, _Empty) else value
            for field, value in zip(self._fields, self._packed[name], strict=True)
        }
        if self._key_field is not None:
            values[self._key_field] = name
        instance = self._model.__new__(self._model)
        instance.__setstate__(
            {
                "__dict__": values,
                "__pydantic_fields_set__": set(self._fields_set[name]),
                "__pydantic_extra__": None,
                "__pydantic_private__": None,
            }
        )
        return instance

    def peek(self, name: str) -> M:
        """The kept model, or one built and not kept: walking every task must not push
        the tasks in use out."""
        built = self._built.get(name)
        return built if built is not None else self._build(name)

    def __getitem__(self, name: str) -> M:
        built = self._built.get(name)
        if built is not None:
            self._built.move_to_end(name)
            return built
        if name not in self._packed:
            raise KeyError(name)
        built = self._build(name)
        self._built[name] = built
        if len(self._built) > self._keep:
            self._built.popitem(last=False)
        return built

    def same(self, name: str, other: PackedModels[M]) -> bool:
        """Whether ``other`` holds a model equal to this one's ``name`` (compared packed:
        a reload of 10,000 tasks compares them all)."""
        return (
            other._model is self._model
            and other._key_field == self._key_field
            and self._packed[name] == other._packed.get(name)
        )

    def __contains__(self, name: object) -> bool:
        return name in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def values(self) -> ValuesView[M]:
        return _Values(self)

    def items(self) -> ItemsView[str, M]:
        return _Items(self)

    def __repr__(self) -> str:
        return f"PackedModels({self._model.__name__}, {len(self)} models)"


def _shared(shared: dict[Hashable, Any], value: Any) -> Any:
    """The one object kept for ``value`` among a field's values (``value`` if new)."""
    if type(value) in (dict, list) and not value:
        return _EMPTY_DICT if type(value) is dict else _EMPTY_LIST
    try:
        kept = shared.setdefault(value, value)
    except TypeError:  # unhashable: this model's own
        return value
    # Equal is not enough: 1 == 1.0 == True, and a field may hold any of them.
    return kept if type(kept) is type(value) else value


class _Values(ValuesView[M]):
    _mapping: PackedModels[M]

    def __iter__(self) -> Iterator[M]:
        for name in self._mapping:
            yield self._mapping.peek(name)


class _Items(ItemsView[str, M]):
    _mapping: PackedModels[M]

    def __iter__(self) -> Iterator[tuple[str, M]]:
        for name in self._mapping:
            yield name, self._mapping.peek(name)
