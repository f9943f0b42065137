"""What a run's tags and metadata may be (as Trigger.dev's ``tags`` and ``metadata``).

Tags are short labels to find runs by: a task's ``tags`` (config, ``[defaults]`` too)
go on every run of it (scheduled, retried, chained, rerun), and a trigger may add its
own.  Their characters are few on purpose: no space, comma (lists of them are
comma-separated), quote or wildcard, so a tag is the same text in a URL, a shell, a
JSON document and a query.  Metadata is a small JSON object a trigger attaches to its
run (who asked, for which customer, ...); a retry and a rerun carry it on.

The rules are checked here, once, for the config, the API and the CLI; each raises
ValueError with the message a user reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MAX_TAG_LENGTH = 64
MAX_TAGS = 10  # on a task, and on a trigger
MAX_RUN_TAGS = 2 * MAX_TAGS  # on a run: its task's and its trigger's
MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 32  # levels of objects and lists, the metadata object the first
TAG_RE = re.compile(rf"^[A-Za-z0-9._:/=-]{{1,{MAX_TAG_LENGTH}}}$")
TAG_RULE = f"a tag is 1 to {MAX_TAG_LENGTH} characters of A-Z a-z 0-9 . _ - : / ="
TAG_EXAMPLE = '["nightly", "customer:42", "env=prod"]'


def check_tags(value: object, *, most: int = MAX_TAGS) -> tuple[str, ...]:
    """``value`` as tags (a list of at most ``most`` valid tags, duplicates dropped);
    ValueError saying what is wrong and what is allowed."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"tags are a list of strings, e.g. {TAG_EXAMPLE}")
    if len(value) > most:
        raise ValueError(f"at most {most} tags are allowed (this list has {len(value)})")
    for tag in value:
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"{_shown(tag)} is {len(tag)} characters long: {TAG_RULE}")
        if not TAG_RE.fullmatch(tag):
            raise ValueError(f"{_shown(tag)} is not a tag: {TAG_RULE}")
    return tuple(dict.fromkeys(value))


def check_metadata(value: object) -> dict[str, Any]:
    """``value`` as run metadata: a JSON object of at most MAX_METADATA_BYTES as compact
    UTF-8 JSON and MAX_METADATA_DEPTH levels, whose text a database can hold;
    ValueError otherwise."""
    if not isinstance(value, dict):
        raise ValueError(
            'metadata is a JSON object, e.g. {"customer": 42, "requested_by": "ann"} '
            f"(got {_json_kind(value)})"
        )
    _check_texts(value)
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(
            "metadata must be Unicode text (it holds a lone surrogate: bytes that are not UTF-8)"
        ) from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {size} bytes as compact JSON; at most {MAX_METADATA_BYTES} bytes "
            f"({MAX_METADATA_BYTES // 1024} KiB) are allowed"
        )
    return value


def _check_texts(value: dict[str, Any]) -> None:
    """Every key and string in ``value`` free of NUL (no text column holds one), and
    nesting at most MAX_METADATA_DEPTH levels (a serializer gives up at a few hundred):
    walked with a stack, not recursion, as the nesting is what is being checked."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(item, dict):
            stack += [(key, depth) for key in item]
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
        elif isinstance(item, str) and "\0" in item:
            raise ValueError("metadata must not contain a NUL character (U+0000)")


def run_tags(*groups: Iterable[str]) -> list[str]:
    """A run's tags: each group's in turn (the task's, then the trigger's), each tag
    once."""
    return list(dict.fromkeys(tag for group in groups for tag in group))


def _shown(tag: str) -> str:
    shown = repr(tag)
    return shown if len(shown) <= 80 else shown[:70] + "...'"


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
