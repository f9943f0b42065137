"""The only code that talks SQL: engine set-up, migrations and queries."""

from cronwarden.store.engine import open_engine
from cronwarden.store.runs import RunFilter, RunPage, Store

__all__ = ["RunFilter", "RunPage", "Store", "open_engine"]
