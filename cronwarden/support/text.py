"""Text that is safe to put in a JSON response or a log line."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` if it can be encoded as UTF-8, else with the offending code points
    escaped (a JSON string may carry a lone surrogate that no response can)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
