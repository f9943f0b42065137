"""cronwarden: a cron-style job scheduler daemon with durable run history."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cronwarden")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
