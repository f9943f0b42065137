"""The only code that talks SQL: engine set-up, migrations and queries.

Its names are imported on first use (PEP 562): the process that migrates a database
(store/migrate.py) imports ``cronwarden.store.migrate`` without the store's queries."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cronwarden.store.engine import open_engine
    from cronwarden.store.paging import RunPage
    from cronwarden.store.runs import RunFilter, Store

__all__ = ["RunFilter", "RunPage", "Store", "open_engine"]
_HOMES = {
    "open_engine": "cronwarden.store.engine",
    "RunPage": "cronwarden.store.paging",
    "RunFilter": "cronwarden.store.runs",
    "Store": "cronwarden.store.runs",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
