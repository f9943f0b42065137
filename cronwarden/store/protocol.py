"""The store's side of the seams declared in ``cronwarden/ports.py`` (kept here so
that store modules and their tests keep importing them from the store package)."""

from __future__ import annotations

from cronwarden.ports import InstallationKeys, KeyClaim, KeyedRun, RunRecords, SharedPlaces

__all__ = ["InstallationKeys", "KeyClaim", "KeyedRun", "RunRecords", "SharedPlaces"]
