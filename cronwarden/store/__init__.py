"""The only code that talks SQL: engine set-up, migrations and queries."""

from cronwarden.store.engine import open_engine
from cronwarden.store.paging import RunPage
from cronwarden.store.runs import RunFilter, Store

__all__ = ["RunFilter", "RunPage", "Store", "open_engine"]
