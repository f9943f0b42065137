"""The names a client may ask for, and the file name a download is saved under.

An artifact is asked for by its name in the listing: a relative path with '/' between
directories.  A name no listing can hold is refused before any lookup (400): one with a
'..' part, a NUL, or that starts with '/'.  Any other unknown name is just not there
(404); and a name is only ever served when the run's listing keeps it, so the checks
here are a first wall, not the only one.
"""

from __future__ import annotations

import re
from urllib.parse import quote

NAMES = (
    "a relative path such as report.html or out/data.csv: no '..' part, no NUL, "
    "not starting with '/'"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an artifact, or None if it might."""
    if not name:
        return "the name is empty"
    if "\0" in name:
        return "the name holds a NUL character"
    if name.startswith("/"):
        return "the name is an absolute path"
    if ".." in name.split("/"):
        return "the name has a '..' part"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not UTF-8 text"
    return None


def attachment(name: str) -> str:
    """A Content-Disposition that saves the file under its own base name: a plain ASCII
    ``filename`` any browser takes (other characters become '_'), and the exact name
    in ``filename*`` (RFC 6266) for those that read it."""
    base = name.rsplit("/", 1)[-1]
    plain = _UNSAFE.sub("_", base).strip(".") or "artifact"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(base, safe='')}"
