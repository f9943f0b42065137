"""Many frozen models of one class, held as tuples of their values and built on access.

A validated task is ~1.2 KB as a pydantic model (a ``__dict__`` of 36 fields, a
fields-set, an empty ``env``), so 10,000 tasks held as models were a tenth of the
daemon's memory, while only the few tasks firing or running are looked at at a time.
Packed, a task is one tuple whose equal values (the same command, zone, defaults) are
shared between tasks.

A model is built again from its tuple by ``model_construct``, pydantic's public way to
make a model from values already validated (they were, once, when the config was read):
no validation, and nothing of pydantic's private layout, so a pydantic upgrade cannot
break it.  There is one way to read a model, ``table[name]`` (and what ``Mapping``
builds on it: ``get``, ``values``, ``items``), and it means one thing: the model added
as ``name``, the same object for as long as anything holds it (a run in flight holds
its task's, so the reads of a run's life build it once, and what the model works out,
such as its trigger, is worked out once), a new one once nothing does.  Nothing is
kept for its own sake: walking every task leaves no model behind, and pushes nothing
out.  A build costs ~11 microseconds, three times what rebuilding pydantic's private
state cost (3.8): ~75 ms more for a start-up that walks 10,000 tasks, the same memory.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class _Mutable:
    """A dict or list in a packed tuple, held as a tuple of its items: each build gets
    a new one, so no two models share a mutable value, and equal ones are packed once
    for all tasks like any other value."""

    kind: type[dict[Any, Any]] | type[list[Any]]
    items: tuple[Any, ...]

    def new(self) -> dict[Any, Any] | list[Any]:
        return self.kind(self.items)


class PackedModels(Mapping[str, M], Generic[M]):
    """Models by name; ``key_field`` names the field that holds the name (kept once,
    as the key, rather than once more in every tuple)."""

    def __init__(
        self,
        model: type[M],
        models: Iterable[tuple[str, M]] = (),
        *,
        key_field: str | None = None,
    ) -> None:
        if not hasattr(model, "__weakref__"):
            raise TypeError(
                f"{model.__name__} cannot be referred to weakly (its __slots__ leave out "
                '"__weakref__"); packed models must be: add it to its __slots__'
            )
        self._model = model
        self._key_field = key_field
        self._fields = tuple(f for f in model.model_fields if f != key_field)
        self._packed: dict[str, tuple[Any, ...]] = {}
        self._fields_set: dict[str, frozenset[str]] = {}
        # Per field, one object for each distinct value; fields sets likewise.
        self._shared: tuple[dict[Hashable, Any], ...] = tuple({} for _ in self._fields)
        self._shared_sets: dict[frozenset[str], frozenset[str]] = {}
        # The models built that something still holds.
        self._held: weakref.WeakValueDictionary[str, M] = weakref.WeakValueDictionary()
        for name, instance in models:
            self.add(name, instance)

    def add(self, name: str, instance: M) -> None:
        """Pack a model.  A table is filled while its config is read, and not changed
        once the config is in use."""
        if type(instance) is not self._model:
            raise TypeError(f"expected {self._model.__name__}, got {type(instance).__name__}")
        if self._key_field is not None and getattr(instance, self._key_field) != name:
            key = getattr(instance, self._key_field)
            raise ValueError(f"{name!r} is keyed by {self._key_field}={key!r}")
        self._packed[name] = tuple(
            _shared(shared, getattr(instance, field))
            for field, shared in zip(self._fields, self._shared, strict=True)
        )
        fields_set = frozenset(instance.model_fields_set)
        self._fields_set[name] = self._shared_sets.setdefault(fields_set, fields_set)
        self._held.pop(name, None)

    def field(self, field: str) -> Iterator[tuple[str, Any]]:
        """(name, the value of ``field``) of every model, without building one: a walk
        that needs one value of each task (start-up asks which tasks alert) reads a
        tuple, where building 10,000 models would cost a tenth of a second."""
        index = self._fields.index(field)
        for name, packed in self._packed.items():
            value = packed[index]
            yield name, value.new() if isinstance(value, _Mutable) else value

    def __getitem__(self, name: str) -> M:
        """The model added as ``name`` (see the module's docstring); KeyError if none was."""
        held = self._held.get(name)
        if held is None:
            held = self._held[name] = self._build(name)
        return held

    def _build(self, name: str) -> M:
        packed = self._packed[name]
        values = {
            field: value.new() if type(value) is _Mutable else value
            for field, value in zip(self._fields, packed, strict=True)
        }
        if self._key_field is not None:
            values[self._key_field] = name
        # A set of its own: pydantic keeps the one it is given as the model's.
        return self._model.model_construct(_fields_set=set(self._fields_set[name]), **values)

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

    def __repr__(self) -> str:
        return f"PackedModels({self._model.__name__}, {len(self)} models)"


def _shared(shared: dict[Hashable, Any], value: Any) -> Any:
    """The one object kept for ``value`` among a field's values (``value`` if new)."""
    if type(value) is dict:
        value = _Mutable(dict, tuple(value.items()))
        texts = all(type(k) is str and type(v) is str for k, v in value.items)
    elif type(value) is list:
        value = _Mutable(list, tuple(value))
        texts = all(type(item) is str for item in value.items)
    else:
        texts = True
    if not texts:
        # Equal is not enough (1 == 1.0 == True), and inside a container the types of
        # what two equal values hold cannot be told apart by their own types: kept apart.
        return value
    try:
        kept = shared.setdefault(value, value)
    except TypeError:  # unhashable: this model's own
        return value
    # Equal is not enough: 1 == 1.0 == True, and a field may hold any of them.
    return kept if type(kept) is type(value) else value
